//go:build linux && cgo

package ring_test

// What the hostile review of layout version 2 found in the Go end, each
// reproduced here first: a dead peer unseen by calls whose deadlines are
// shorter than the 150 ms test period; Open panicking on a header larger
// than its object; corrupt state words taken for "not open"; Stat judging
// a joining reader's tails corrupt.

import (
	"context"
	"encoding/binary"
	"errors"
	"io/fs"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/posixshm/shm"
	"github.com/posixshm/shm/ring"
)

// shortCalls calls f with a 100 ms deadline each, for up to 2 s, until it
// returns something other than context.DeadlineExceeded; it returns the
// time that took and that error.
func shortCalls(f func(ctx context.Context) error) (took time.Duration, err error) {
	start := time.Now()
	for time.Since(start) < 2*time.Second {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		err = f(ctx)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			break
		}
	}
	return time.Since(start), err
}

// TestShortDeadlinesSeeDeadPeer: a peer killed with SIGKILL is found by a
// side whose every call has a 100 ms deadline, shorter than the 150 ms
// between tests of a peer's lock: the clock runs on across calls that
// time out (LAYOUT.md §5, wait step 3), as C's and Python's do. A reader
// gets ErrPeerGone within 500 ms; a fan-out writer stops waiting for its
// dead reader; and a second call after ErrPeerGone says so at once.
//
// Kills: the clock started again at every call (ErrPeerGone never comes:
// "context deadline exceeded after 2s"; the fan-out writer sends 4 of 20).
func TestShortDeadlinesSeeDeadPeer(t *testing.T) {
	t.Run("reader", func(t *testing.T) {
		r := newRing(t, 4096)
		p, _ := startPeer(t, goPeer("hold-writer", r.Name(), 0, 0), true)
		p.kill9(t)
		rd, err := r.Reader()
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 4096)
		took, err := shortCalls(func(ctx context.Context) error { _, err := rd.Receive(ctx, buf); return err })
		if !errors.Is(err, ring.ErrPeerGone) || took > stallBound {
			t.Fatalf("100 ms Receives with the writer killed: %v after %v, want ErrPeerGone within %v", err, took.Round(time.Millisecond), stallBound)
		}
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		if _, err := rd.Receive(ctx, buf); !errors.Is(err, ring.ErrPeerGone) {
			t.Errorf("Receive after ErrPeerGone: %v after %v, want ErrPeerGone at once", err, time.Since(start).Round(time.Millisecond))
		}
	})
	t.Run("fan-out-writer", func(t *testing.T) {
		name := ringName(t)
		r, err := ring.CreateWith(name, 4096, &ring.Options{Readers: 2})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		p, _ := startPeer(t, goPeer("hold-reader", name, 0, 0), true)
		p.kill9(t)
		w, err := r.Writer()
		if err != nil {
			t.Fatal(err)
		}
		msg := make([]byte, 1000)
		sent := 0
		took, err := shortCalls(func(ctx context.Context) error {
			for ; sent < 20; sent++ {
				if err := w.Send(ctx, msg); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil || took > stallBound {
			t.Errorf("a fan-out writer with 100 ms deadlines, its only reader dead: %d of 20 1000-byte messages into a 4096-byte lane, %v after %v", sent, err, took.Round(time.Millisecond))
		}
	})
}

// TestOpenHeaderLargerThanObject: a header whose slots need more bytes
// than the object has (64 readers in an 8 KiB object) is ErrNotRing, and
// no panic (the size check must not wrap around below zero).
//
// Kills: the check without its first half ("slice bounds out of range
// [::13056] with capacity 8192").
func TestOpenHeaderLargerThanObject(t *testing.T) {
	name := ringName(t)
	s, err := shm.Create(name, 8192)
	if err != nil {
		t.Fatal(err)
	}
	b := s.Bytes()
	le := binary.LittleEndian
	le.PutUint32(b[8:], ring.Version)
	le.PutUint32(b[12:], uint32(ring.DataOff(1, 64)))
	le.PutUint64(b[16:], 64)
	le.PutUint64(b[24:], 24)
	le.PutUint32(b[32:], 64) // readers
	le.PutUint32(b[36:], 1)  // writers
	copy(b, "SHMRING\x00")
	s.Close()
	defer func() {
		if p := recover(); p != nil {
			t.Fatalf("ring.Open panicked: %v", p)
		}
	}()
	r, err := ring.Open(name)
	if err == nil {
		r.Close()
	}
	if !errors.Is(err, ring.ErrNotRing) {
		t.Errorf("Open: %v, want ErrNotRing", err)
	}
}

// TestCorruptReaderState: a reader slot's state word whose state is
// beyond 2 is a corrupt ring (LAYOUT.md §2) to a writer waiting for room,
// in a one-reader ring and in a fan-out ring, as it is to C and Python:
// ErrCorrupt, not a wait until the context ends.
//
// Kills: the state word's corruption unchecked in judge (one reader: the
// Send waits out its context) or in least (fan-out: the slot is taken
// for not open, and the Send succeeds).
func TestCorruptReaderState(t *testing.T) {
	for _, readers := range []int{1, 2} {
		t.Run(map[int]string{1: "one-reader", 2: "fan-out"}[readers], func(t *testing.T) {
			name := ringName(t)
			r, err := ring.CreateWith(name, 4096, &ring.Options{Readers: readers})
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			rd, err := openRing(t, r).Reader()
			if err != nil {
				t.Fatal(err)
			}
			_ = rd
			w, err := r.Writer()
			if err != nil {
				t.Fatal(err)
			}
			msg := make([]byte, 1000)
			for range 4 { // 4 × 1008 bytes: the lane is full
				if err := w.Send(context.Background(), msg); err != nil {
					t.Fatal(err)
				}
			}
			b := rawRing(t, r)
			off := ring.ReaderSlotOff(1, 0)
			binary.LittleEndian.PutUint32(b[off:], binary.LittleEndian.Uint32(b[off:])&^0xFF|7)
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			if err := w.Send(ctx, msg); !errors.Is(err, ring.ErrCorrupt) {
				t.Errorf("Send with reader slot 0's state 7: %v, want ErrCorrupt", err)
			}
		})
	}
}

// TestStatJoiningReader: in a fan-out ring, a reader slot that is open
// while its tails are still more than a lane behind the head (a reader
// between storing its state and its tails, LAYOUT.md §4) holds nothing
// yet: Stat counts no backlog for it, as the writers give it no room, and
// as C and Python count; it is no corrupt ring.
//
// Kills: Stat taking such a tail as the least ("lane 0: head 12224, tail
// 0, capacity 4096: ring: corrupt counters").
func TestStatJoiningReader(t *testing.T) {
	name := ringName(t)
	r, err := ring.CreateWith(name, 4096, &ring.Options{Readers: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	w, err := r.Writer()
	if err != nil {
		t.Fatal(err)
	}
	msg := make([]byte, 1000)
	for range 12 { // no reader holds the lane: 12 KiB into a 4 KiB lane, overwritten unread
		if err := w.Send(context.Background(), msg); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := openRing(t, r).Reader(); err != nil {
		t.Fatal(err)
	}
	b := rawRing(t, r)
	binary.LittleEndian.PutUint64(b[ring.TailOff(1, 0, 0):], 0) // as before the joining reader stored its tails
	st, err := r.Stat()
	if err != nil {
		t.Fatalf("Stat with a reader joining: %v", err)
	}
	if st.Messages != 0 || st.Bytes != 0 {
		t.Errorf("Stat with a reader joining counts %d messages, %d bytes; want none", st.Messages, st.Bytes)
	}
}

// TestCloseRacesRingClose (second review): a Reader's Close and its Ring's
// Close called at once, from two goroutines, while a Receive is blocked:
// the Ring's close of the reader waits for the Reader's own to finish, so
// the slot reads closed (never dead: a state store into memory the Ring
// already unmapped, or a lock released on a closed descriptor), and the
// Reader's Close returns nil or an error wrapping fs.ErrClosed.
//
// Kills: a second Close that waits only for a call in progress, not for
// the first Close (the Ring's Close unmapped under the Reader's: "slot
// reads dead", "use of closed file", in a few of 200 rounds).
func TestCloseRacesRingClose(t *testing.T) {
	peer := newRing(t, 4096)
	if _, err := peer.Writer(); err != nil { // a live writer: Receive blocks
		t.Fatal(err)
	}
	rounds := 200
	if testing.Short() {
		rounds = 20
	}
	for i := range rounds {
		r := openRing(t, peer)
		rd, err := r.Reader()
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() {
			_, err := rd.Receive(context.Background(), make([]byte, 64))
			done <- err
		}()
		for s, _ := ring.Stats(rd); s == 0; s, _ = ring.Stats(rd) { // until it sleeps
			runtime.Gosched()
		}
		var cerr error
		var wg sync.WaitGroup
		wg.Add(2)
		if i%2 == 0 { // either goroutine started first
			go func() { defer wg.Done(); cerr = rd.Close() }()
			go func() { defer wg.Done(); r.Close() }()
		} else {
			go func() { defer wg.Done(); r.Close() }()
			go func() { defer wg.Done(); cerr = rd.Close() }()
		}
		wg.Wait()
		if err := <-done; !errors.Is(err, fs.ErrClosed) {
			t.Fatalf("round %d: blocked Receive returned %v, want fs.ErrClosed", i, err)
		}
		if cerr != nil && !errors.Is(cerr, fs.ErrClosed) {
			t.Fatalf("round %d: Reader.Close racing Ring.Close: %v, want nil or fs.ErrClosed", i, cerr)
		}
		st, err := peer.Stat()
		if err != nil {
			t.Fatal(err)
		}
		if s := st.Readers[0].State; s != ring.EndClosed {
			t.Fatalf("round %d: reader slot %v after both Closes, want closed (Reader.Close: %v)", i, s, cerr)
		}
	}
}

// TestNilContext: every call that takes a context refuses a nil one with
// an error wrapping EINVAL, also where it would not block (a lane with
// room, a message waiting), instead of the nil dereference a wait makes.
//
// Kills: the check missing from any one call (Send on a full lane, as
// the review found, panicked).
func TestNilContext(t *testing.T) {
	r := newRing(t, 4096)
	w, rd := ends(t, r)
	if err := w.Send(context.Background(), []byte("waiting")); err != nil {
		t.Fatal(err)
	}
	var nilCtx context.Context
	calls := map[string]func() error{
		"Send":       func() error { return w.Send(nilCtx, []byte("x")) },
		"Reserve":    func() error { _, err := w.Reserve(nilCtx, 1); return err },
		"SendBatch":  func() error { _, err := w.SendBatch(nilCtx, [][]byte{[]byte("x")}); return err },
		"WaitReader": func() error { return w.WaitReader(nilCtx) },
		"Receive":    func() error { _, err := rd.Receive(nilCtx, make([]byte, 64)); return err },
		"Next":       func() error { _, err := rd.Next(nilCtx); return err },
		"ReceiveBatch": func() error {
			_, err := rd.ReceiveBatch(nilCtx, [][]byte{make([]byte, 64)}, make([]int, 1))
			return err
		},
		"WaitWriter": func() error { return rd.WaitWriter(nilCtx) },
	}
	for name, call := range calls {
		var pe *fs.PathError
		if err := call(); !errors.Is(err, syscall.EINVAL) || !errors.As(err, &pe) {
			t.Errorf("%s(nil context) = %v, want a *fs.PathError wrapping EINVAL", name, err)
		}
	}
	if n, err := rd.Receive(context.Background(), make([]byte, 64)); err != nil || n != len("waiting") {
		t.Errorf("after the refusals: Receive = %d, %v; want the waiting message", n, err)
	}
}

// TestMapFileClosed: MapFile of a closed *os.File is a *fs.PathError
// wrapping fs.ErrClosed (it was poll's bare "use of closed file").
func TestMapFileClosed(t *testing.T) {
	r := newRing(t, 4096)
	f, err := r.File()
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	var pe *fs.PathError
	if _, err := ring.MapFile(f); !errors.Is(err, fs.ErrClosed) || !errors.As(err, &pe) {
		t.Fatalf("MapFile of a closed file: %v, want a *fs.PathError wrapping fs.ErrClosed", err)
	}
}
