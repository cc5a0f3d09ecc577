//go:build linux && cgo

package ring_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/posixshm/shm/ring"
)

// writeBatchStream sends count messages of the stream seed with
// SendBatch, up to batch at a time, and returns how many calls it made.
func writeBatchStream(ctx context.Context, w *ring.Writer, max, count, batch int, seed uint64) (int, error) {
	s := newStream(seed, max)
	var pending [][]byte
	calls, i := 0, 0
	for i < count || len(pending) > 0 {
		for len(pending) < batch && i < count {
			pending = append(pending, s.next())
			i++
		}
		n, err := w.SendBatch(ctx, pending)
		calls++
		if err != nil {
			return calls, fmt.Errorf("batch at message %d: %w", i-len(pending), err)
		}
		if n < 1 || n > len(pending) {
			return calls, fmt.Errorf("SendBatch of %d sent %d", len(pending), n)
		}
		pending = pending[n:]
	}
	return calls, nil
}

// readBatchStream receives and checks count messages of the stream seed
// with ReceiveBatch, up to batch at a time, then expects io.EOF; it
// returns how many calls received messages.
func readBatchStream(ctx context.Context, rd *ring.Reader, max, count, batch int, seed uint64) (int, error) {
	s := newStream(seed, max)
	bufs, lens := make([][]byte, batch), make([]int, batch)
	for i := range bufs {
		bufs[i] = make([]byte, max)
	}
	calls := 0
	for i := 0; i < count; {
		n, err := rd.ReceiveBatch(ctx, bufs[:min(batch, count-i)], lens)
		calls++
		if err != nil {
			return calls, fmt.Errorf("batch at message %d: %w", i, err)
		}
		for j := range n {
			want := s.next()
			if !bytes.Equal(bufs[j][:lens[j]], want) {
				return calls, fmt.Errorf("message %d: %d bytes, want %d, or wrong content", i+j, lens[j], len(want))
			}
		}
		i += n
	}
	if _, err := rd.ReceiveBatch(ctx, bufs, lens); err != io.EOF {
		return calls, fmt.Errorf("after the stream: %v, want io.EOF", err)
	}
	return calls, nil
}

var countersRe = regexp.MustCompile(`^ok (\d+) \d+ calls=(\d+) publishes=(\d+) wakes=(\d+)$`)

// TestBatchBetweenLanguages (issue 23): a stream of messages of every
// length through a small ring (wraps, full and empty rings, sleeps on both
// sides), Go's SendBatch to C's shmring_recv_batch and C's
// shmring_send_batch to Go's ReceiveBatch, 64-bit, -m32 and musl. Each
// side stores its counter once per call (publishes == calls) and wakes
// its peer at most once per call.
func TestBatchBetweenLanguages(t *testing.T) {
	const count, batch, capacity = 20000, 16, 4096
	for _, cc := range []string{"gcc", "gcc -m32", "musl-gcc"} {
		t.Run(strings.ReplaceAll(cc, " ", ""), func(t *testing.T) {
			bin := buildPeer(t, cc)
			check := func(t *testing.T, who string, calls, publishes, wakes int64) {
				t.Helper()
				if calls == 0 || publishes != calls || wakes > calls {
					t.Errorf("%s: %d calls, %d publishes, %d wakes: want one publish and at most one wake per call", who, calls, publishes, wakes)
				}
				t.Logf("%s: %d calls, %d publishes, %d wakes", who, calls, publishes, wakes)
			}
			cCounters := func(t *testing.T, out string) (calls, publishes, wakes int64) {
				m := countersRe.FindStringSubmatch(strings.TrimSpace(out))
				if m == nil || m[1] != strconv.Itoa(count) {
					t.Fatalf("C peer said %q", out)
				}
				c, _ := strconv.ParseInt(m[2], 10, 64)
				p, _ := strconv.ParseInt(m[3], 10, 64)
				w, _ := strconv.ParseInt(m[4], 10, 64)
				return c, p, w
			}
			t.Run("GoToC", func(t *testing.T) {
				r := newRing(t, capacity)
				w, err := r.Writer()
				if err != nil {
					t.Fatal(err)
				}
				p, _ := startPeer(t, exec.Command(bin, "batch-read", r.Name(), strconv.Itoa(count), "7", strconv.Itoa(batch)), false)
				calls, err := writeBatchStream(within(t, 30*time.Second), w, r.MaxMessage(), count, batch, 7)
				if err != nil {
					t.Fatal(err)
				}
				sleeps, wakes := ring.Stats(w)
				check(t, "Go writer", int64(calls), ring.Publishes(w), wakes)
				t.Logf("Go writer slept %d times", sleeps)
				w.Close()
				out, err := p.wait()
				if err != nil {
					t.Fatalf("C reader: %v %q\n%s", err, out, p.stderr)
				}
				c, pub, wk := cCounters(t, out)
				check(t, "C reader", c, pub, wk)
			})
			t.Run("CToGo", func(t *testing.T) {
				r := newRing(t, capacity)
				rd, err := r.Reader()
				if err != nil {
					t.Fatal(err)
				}
				p, _ := startPeer(t, exec.Command(bin, "batch-write", r.Name(), strconv.Itoa(count), "11", strconv.Itoa(batch)), false)
				calls, err := readBatchStream(within(t, 30*time.Second), rd, r.MaxMessage(), count, batch, 11)
				if err != nil {
					t.Fatalf("%v\n%s", err, p.stderr)
				}
				sleeps, wakes := ring.Stats(rd)
				// (the last call, io.EOF, is not counted: it stores nothing)
				check(t, "Go reader", int64(calls), ring.Publishes(rd), wakes)
				t.Logf("Go reader slept %d times", sleeps)
				out, err := p.wait()
				if err != nil {
					t.Fatalf("C writer: %v %q\n%s", err, out, p.stderr)
				}
				c, pub, wk := cCounters(t, out)
				check(t, "C writer", c, pub, wk)
			})
		})
	}
}

// rawRing maps r's object again, for a test to read or break its words.
func rawRing(t *testing.T, r *ring.Ring) []byte {
	t.Helper()
	return shmBytes(t, r.Name())
}

// TestBatchWrap (issue 23): a batch whose records run past the end of the
// data continues at offset 0 behind a wrap marker, published with the
// rest, and a batch receive reads across it.
func TestBatchWrap(t *testing.T) {
	const capacity = 256 // max message 120
	r := newRing(t, capacity)
	raw := rawRing(t, r)
	w, rd := ends(t, r)
	ctx := within(t, 10*time.Second)
	// Move head and tail to 208: 48 bytes before the end of the data.
	for _, n := range []int{92, 92} { // 2 × 104 bytes
		if err := w.Send(ctx, make([]byte, n)); err != nil {
			t.Fatal(err)
		}
		if _, err := rd.Receive(ctx, make([]byte, 120)); err != nil {
			t.Fatal(err)
		}
	}
	msgs := [][]byte{bytes.Repeat([]byte("a"), 20), bytes.Repeat([]byte("b"), 30), bytes.Repeat([]byte("c"), 40), []byte("d")}
	// A record of 32 bytes at 208, then 40 bytes do not fit in the 16
	// left: a marker at 240, 40 at 0, 48 at 40, 16 at 88: head 256+104.
	n, err := w.SendBatch(ctx, msgs)
	if n != 4 || err != nil {
		t.Fatalf("SendBatch across the end: %d, %v; want 4, nil", n, err)
	}
	le := binary.LittleEndian
	if m := le.Uint32(raw[ring.HeaderSize+240:]); m != 0xFFFFFFFF {
		t.Errorf("at data offset 240: %#x, want the wrap marker", m)
	}
	if h := le.Uint64(raw[offHead:]); h != 256+104 {
		t.Errorf("head %d, want %d (one store, past the wrap)", h, 256+104)
	}
	if got := ring.Publishes(w); got != 3 {
		t.Errorf("%d publishes, want 3: 2 sends and 1 batch", got)
	}
	bufs, lens := [][]byte{make([]byte, 64), make([]byte, 64), make([]byte, 64), make([]byte, 64), make([]byte, 64)}, make([]int, 5)
	n, err = rd.ReceiveBatch(ctx, bufs, lens)
	if n != 4 || err != nil {
		t.Fatalf("ReceiveBatch across the end: %d, %v; want 4, nil", n, err)
	}
	for i, m := range msgs {
		if !bytes.Equal(bufs[i][:lens[i]], m) {
			t.Errorf("message %d: %q, want %q", i, bufs[i][:lens[i]], m)
		}
	}
	if tl := le.Uint64(raw[offTail:]); tl != 256+104 {
		t.Errorf("tail %d, want %d", tl, 256+104)
	}
	if got := ring.Publishes(rd); got != 3 {
		t.Errorf("%d reader publishes, want 3: 2 receives and 1 batch", got)
	}
}

// TestBatchLimits (issue 23): SendBatch sends what fits and says how
// many; a message over MaxMessage ends the batch before it; a buffer too
// small ends a receive batch before its message, which stays; lens
// shorter than bufs is EINVAL; empty batches do nothing.
func TestBatchLimits(t *testing.T) {
	const capacity = 256
	r := newRing(t, capacity)
	w, _ := r.Writer()
	rd, _ := r.Reader()
	ctx := within(t, 10*time.Second)
	if n, err := w.SendBatch(ctx, nil); n != 0 || err != nil {
		t.Errorf("SendBatch(nil): %d, %v", n, err)
	}
	ten := make([][]byte, 10)
	for i := range ten {
		ten[i] = bytes.Repeat([]byte{byte('0' + i)}, 40) // 48-byte records: 5 fit in 256
	}
	n, err := w.SendBatch(ctx, ten)
	if n != 5 || err != nil {
		t.Fatalf("SendBatch of 10 × 48 bytes into 256: %d, %v; want 5, nil", n, err)
	}
	short := time.Now().Add(20 * time.Millisecond)
	sctx, cancel := context.WithDeadline(ctx, short)
	n, err = w.SendBatch(sctx, ten[5:])
	cancel()
	if n != 0 || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("SendBatch into a full ring: %d, %v; want 0, context.DeadlineExceeded", n, err)
	}
	bufs, lens := [][]byte{make([]byte, 40), make([]byte, 40), make([]byte, 39), make([]byte, 40)}, make([]int, 4)
	n, err = rd.ReceiveBatch(ctx, bufs, lens)
	if n != 2 || err != nil || lens[0] != 40 || bufs[1][0] != '1' {
		t.Fatalf("ReceiveBatch with the third buffer short: %d, %v, lens %v; want 2, nil", n, err, lens)
	}
	n, err = rd.ReceiveBatch(ctx, bufs[2:], lens)
	if n != 0 || err != io.ErrShortBuffer {
		t.Fatalf("ReceiveBatch with the first buffer short: %d, %v; want 0, io.ErrShortBuffer", n, err)
	}
	if _, err := rd.ReceiveBatch(ctx, bufs, lens[:3]); !errors.Is(err, syscall.EINVAL) {
		t.Errorf("ReceiveBatch with 3 lengths for 4 buffers: %v, want EINVAL", err)
	}
	n, err = rd.ReceiveBatch(ctx, bufs[:1], lens)
	if n != 1 || err != nil || bufs[0][0] != '2' {
		t.Fatalf("ReceiveBatch after the short buffer: %d, %v, %q; want message 2", n, err, bufs[0][:lens[0]])
	}
	big := [][]byte{[]byte("x"), make([]byte, r.MaxMessage()+1), []byte("y")}
	n, err = w.SendBatch(ctx, big)
	if n != 1 || err != ring.ErrTooLarge {
		t.Fatalf("SendBatch with a message over MaxMessage second: %d, %v; want 1, ErrTooLarge", n, err)
	}
	if n, err = w.SendBatch(ctx, big[1:]); n != 0 || err != ring.ErrTooLarge {
		t.Fatalf("SendBatch with a message over MaxMessage first: %d, %v; want 0, ErrTooLarge", n, err)
	}
	// Next then ReceiveBatch: the held message is the batch's first.
	m, err := rd.Next(ctx)
	if err != nil || m[0] != '3' {
		t.Fatalf("Next: %q, %v", m, err)
	}
	bufs = [][]byte{make([]byte, 64), make([]byte, 64), make([]byte, 64)}
	n, err = rd.ReceiveBatch(ctx, bufs, lens)
	if n != 3 || err != nil || lens[2] != 1 || bufs[0][0] != '3' {
		t.Fatalf("ReceiveBatch after Next: %d, %v, lens %v; want messages 3, 4 and x", n, err, lens)
	}
	if err := rd.Release(); err == nil {
		t.Error("Release after a ReceiveBatch that took Next's message: no error")
	}
}

// TestBatchCorrupt (issue 23): counters or a record that break the
// layout in the middle of a batch end it with ErrCorrupt, after the
// messages before, and touch nothing outside the data.
func TestBatchCorrupt(t *testing.T) {
	const capacity = 1024
	le := binary.LittleEndian
	isCorrupt := func(err error) bool {
		var pe *fs.PathError
		return errors.Is(err, ring.ErrCorrupt) && errors.Is(err, syscall.EPROTO) && errors.As(err, &pe)
	}
	t.Run("record", func(t *testing.T) {
		r := newRing(t, capacity)
		raw := rawRing(t, r)
		w, _ := r.Writer()
		rd, _ := r.Reader()
		ctx := within(t, 10*time.Second)
		if n, err := w.SendBatch(ctx, [][]byte{[]byte("one"), []byte("two"), []byte("three"), []byte("four")}); n != 4 || err != nil {
			t.Fatal(n, err)
		}
		// The third record (at 32, with 32 bytes published from there)
		// claims 400 bytes: under MaxMessage (504), past the head.
		le.PutUint32(raw[ring.HeaderSize+32:], 400)
		bufs, lens := [][]byte{make([]byte, 512), make([]byte, 512), make([]byte, 512), make([]byte, 512)}, make([]int, 4)
		n, err := rd.ReceiveBatch(ctx, bufs, lens)
		if n != 2 || !isCorrupt(err) || string(bufs[1][:lens[1]]) != "two" {
			t.Fatalf("ReceiveBatch over a corrupt third record: %d, %v; want 2 and a *fs.PathError wrapping ErrCorrupt and EPROTO", n, err)
		}
		if tl := le.Uint64(raw[offTail:]); tl != 32 {
			t.Errorf("tail %d, want 32: the two messages before the bad record are consumed", tl)
		}
		if n, err := rd.ReceiveBatch(ctx, bufs, lens); n != 0 || !isCorrupt(err) {
			t.Errorf("ReceiveBatch again: %d, %v; want 0, ErrCorrupt", n, err)
		}
		le.PutUint32(raw[ring.HeaderSize+32:], 1000) // beyond MaxMessage
		if n, err := rd.ReceiveBatch(ctx, bufs, lens); n != 0 || !isCorrupt(err) {
			t.Errorf("ReceiveBatch at a 1000-byte record: %d, %v; want 0, ErrCorrupt", n, err)
		}
		le.PutUint32(raw[ring.HeaderSize+32:], 0xFFFFFFFF) // a wrap marker where none fits
		if n, err := rd.ReceiveBatch(ctx, bufs, lens); n != 0 || !isCorrupt(err) {
			t.Errorf("ReceiveBatch at a bad wrap marker: %d, %v; want 0, ErrCorrupt", n, err)
		}
	})
	t.Run("wrap-marker-mid-batch", func(t *testing.T) {
		r := newRing(t, capacity)
		raw := rawRing(t, r)
		w, _ := r.Writer()
		rd, _ := r.Reader()
		ctx := within(t, 10*time.Second)
		if n, err := w.SendBatch(ctx, [][]byte{[]byte("one"), []byte("two"), []byte("three")}); n != 3 || err != nil {
			t.Fatal(n, err)
		}
		le.PutUint32(raw[ring.HeaderSize+16:], 0xFFFFFFFF) // a marker with only 32 bytes published
		bufs, lens := [][]byte{make([]byte, 64), make([]byte, 64), make([]byte, 64)}, make([]int, 3)
		if n, err := rd.ReceiveBatch(ctx, bufs, lens); n != 1 || !isCorrupt(err) {
			t.Errorf("ReceiveBatch over a wrap marker past the head: %d, %v; want 1, ErrCorrupt", n, err)
		}
	})
	t.Run("head", func(t *testing.T) {
		r := newRing(t, capacity)
		raw := rawRing(t, r)
		w, _ := r.Writer()
		rd, _ := r.Reader()
		ctx := within(t, 10*time.Second)
		w.SendBatch(ctx, [][]byte{[]byte("one"), []byte("two")})
		for _, h := range []uint64{12, capacity + 8, 1 << 63} {
			le.PutUint64(raw[offHead:], h)
			if n, err := rd.ReceiveBatch(ctx, [][]byte{make([]byte, 64), make([]byte, 64)}, make([]int, 2)); n != 0 || !isCorrupt(err) {
				t.Errorf("ReceiveBatch with head %d: %d, %v; want 0, ErrCorrupt", h, n, err)
			}
		}
	})
	t.Run("tail-mid-batch", func(t *testing.T) {
		r := newRing(t, capacity)
		raw := rawRing(t, r)
		w, _ := r.Writer()
		ctx := within(t, 10*time.Second)
		msgs := make([][]byte, 40) // 40 × 48 bytes: 21 fit in 1024
		for i := range msgs {
			msgs[i] = make([]byte, 40)
		}
		for _, tl := range []uint64{4, 2048, 1 << 63} {
			le.PutUint64(raw[offTail:], 0)
			le.PutUint64(raw[offHead:], 0)
			w.Close()
			w, _ = r.Writer()
			reloads := 0
			ring.SetHookReload(func() { reloads++; le.PutUint64(raw[offTail:], tl) })
			n, err := w.SendBatch(ctx, msgs)
			ring.SetHookReload(nil)
			if n != 21 || !isCorrupt(err) || reloads != 1 {
				t.Errorf("SendBatch with tail %d found on reloading it: %d, %v (%d reloads); want 21 and ErrCorrupt", tl, n, err, reloads)
			}
			if h := le.Uint64(raw[offHead:]); h != 21*48 {
				t.Errorf("head %d, want %d: the messages that had room are published", h, 21*48)
			}
		}
	})
}

// TestWaitReaderRestart (issue 23): a writer whose reader was killed -9
// waits with WaitReader (the dead reader, whose state word still says
// open, does not count) until a new reader process claims the end, then
// sends a stream that reader receives whole.
func TestWaitReaderRestart(t *testing.T) {
	for _, next := range []string{"go", "c"} {
		t.Run(next, func(t *testing.T) {
			r := newRing(t, 4096)
			raw := rawRing(t, r)
			w, err := r.Writer()
			if err != nil {
				t.Fatal(err)
			}
			old, _ := startPeer(t, goPeer("hold-reader", r.Name(), 0, 0), true)
			if err := w.WaitReader(within(t, 10*time.Second)); err != nil {
				t.Fatalf("WaitReader with a live reader: %v", err)
			}
			old.kill9(t)
			if st := binary.LittleEndian.Uint32(raw[ring.OffReaderState:]) & 0xff; st != 1 {
				t.Fatalf("reader state %d after the kill, want 1 (open: only its lock is gone)", st)
			}
			start := time.Now()
			if err := w.WaitReader(within(t, 200*time.Millisecond)); !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("WaitReader with the reader dead: %v after %v, want context.DeadlineExceeded", err, time.Since(start))
			}
			const count, seed = 3000, 5
			done := make(chan error, 1)
			go func() { done <- w.WaitReader(within(t, 30*time.Second)) }()
			var cmd *exec.Cmd
			if next == "go" {
				cmd = goPeer("read", r.Name(), count, seed)
			} else {
				cmd = exec.Command(buildPeer(t, "gcc"), "read", r.Name(), strconv.Itoa(count), strconv.Itoa(seed))
			}
			p, _ := startPeer(t, cmd, false)
			if err := <-done; err != nil {
				t.Fatalf("WaitReader while a new reader starts: %v\n%s", err, p.stderr)
			}
			if err := writeStream(within(t, 30*time.Second), w, r.MaxMessage(), count, seed); err != nil {
				t.Fatalf("sending to the new reader: %v\n%s", err, p.stderr)
			}
			w.Close()
			if out, err := p.wait(); err != nil || !strings.HasPrefix(out, "ok") {
				t.Fatalf("new reader: %v %q\n%s", err, out, p.stderr)
			}
		})
	}
}

// TestWaitPeer (issue 23): WaitWriter and WaitReader return once the
// other end is claimed (by another Ring or by the same one), keep waiting
// while it is closed or was never claimed, end with the context, and end
// at once when their own end is closed.
func TestWaitPeer(t *testing.T) {
	r := newRing(t, 4096)
	o := openRing(t, r)
	rd, err := r.Reader()
	if err != nil {
		t.Fatal(err)
	}
	if err := rd.WaitWriter(within(t, 30*time.Millisecond)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitWriter with no writer yet: %v, want context.DeadlineExceeded", err)
	}
	done := make(chan error, 1)
	go func() { done <- rd.WaitWriter(within(t, 10*time.Second)) }()
	w, err := o.Writer()
	if err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("WaitWriter as another Ring claims the writer: %v", err)
	}
	if err := w.WaitReader(within(t, time.Second)); err != nil {
		t.Fatalf("WaitReader with a reader: %v", err)
	}
	w.Close()
	if err := rd.WaitWriter(within(t, 30*time.Millisecond)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitWriter with the writer closed: %v, want context.DeadlineExceeded", err)
	}
	w2, err := r.Writer() // the same Ring holds both ends
	if err != nil {
		t.Fatal(err)
	}
	if err := rd.WaitWriter(within(t, time.Second)); err != nil {
		t.Fatalf("WaitWriter with this Ring's writer: %v", err)
	}
	rd.Close()
	raw := rawRing(t, r)
	go func() { done <- w2.WaitReader(within(t, 10*time.Second)) }()
	// Close ends a WaitReader in progress: once it sleeps on the writer's
	// futex word (a poll of the word: it observes, it does not
	// synchronise), Close, and it returns at once, not at its 10 s.
	for binary.LittleEndian.Uint32(raw[ring.OffWriterSleep:]) == 0 {
		time.Sleep(100 * time.Microsecond)
	}
	start := time.Now()
	if err := w2.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, fs.ErrClosed) || time.Since(start) > 2*time.Second {
		t.Fatalf("WaitReader ended by Close: %v after %v, want fs.ErrClosed at once", err, time.Since(start))
	}
	if err := w2.WaitReader(context.Background()); !errors.Is(err, fs.ErrClosed) {
		t.Fatalf("WaitReader after Close: %v, want fs.ErrClosed", err)
	}
}

// TestWaitPeerC (issue 23): shmring_wait_peer returns once a Go end
// claims the other end, and not while it is unclaimed.
func TestWaitPeerC(t *testing.T) {
	bin := buildPeer(t, "gcc")
	for _, end := range []string{"reader", "writer"} {
		t.Run(end, func(t *testing.T) {
			r := newRing(t, 4096)
			p, _ := startPeer(t, exec.Command(bin, "wait-peer", r.Name(), end), true)
			select {
			case <-p.done:
				t.Fatalf("C wait-peer ended with no peer: %v\n%s", p.err, p.stderr)
			case <-time.After(50 * time.Millisecond): // a negative check: it must still be waiting
			}
			var err error
			if end == "reader" {
				_, err = r.Writer()
			} else {
				_, err = r.Reader()
			}
			if err != nil {
				t.Fatal(err)
			}
			if out, err := p.wait(); err != nil || strings.TrimSpace(out) != "peer" {
				t.Fatalf("C wait-peer: %v %q\n%s", err, out, p.stderr)
			}
		})
	}
}
