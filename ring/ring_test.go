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
	"math"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/posixshm/shm"
	"github.com/posixshm/shm/ring"
)

// TestStreamInProcess sends 5000 messages of random sizes 0..MaxMessage
// (Send and Reserve/Commit) from one goroutine to another through a 4 KiB
// ring (Receive and Next/Release, and a buffer one byte short each time),
// every byte checked, then io.EOF after the writer's Close; and no side
// woke the other more often than the other announced a sleep.
//
// Kills: head stored before the copy or tail before the read is done
// (wrong content); the wrap marker not written or not followed (wrong
// length or ErrCorrupt); the padding to 8 dropped (ErrCorrupt); Receive
// releasing a message its buffer was too small for (wrong content);
// waking on every message (wakes > sleeps).
func TestStreamInProcess(t *testing.T) {
	r := newRing(t, 4096)
	if got := r.MaxMessage(); got != 4096/2-8 {
		t.Fatalf("MaxMessage %d, want %d", got, 4096/2-8)
	}
	w, err := r.Writer()
	if err != nil {
		t.Fatal(err)
	}
	rd, err := openRing(t, r).Reader()
	if err != nil {
		t.Fatal(err)
	}
	ctx := within(t, 60*time.Second)
	const count = 5000
	werr := make(chan error, 1)
	go func() {
		err := writeStream(ctx, w, r.MaxMessage(), count, 1)
		if err == nil {
			err = w.Close()
		}
		werr <- err
	}()
	if err := readStream(ctx, rd, r.MaxMessage(), count, 1); err != nil {
		t.Fatal(err)
	}
	if err := <-werr; err != nil {
		t.Fatal(err)
	}
	if _, err := rd.Receive(ctx, nil); err != io.EOF {
		t.Fatalf("after the writer's Close: %v, want io.EOF", err)
	}
	ws, ww := ring.Stats(w)
	rs, rw := ring.Stats(rd)
	t.Logf("writer slept %d, woke %d; reader slept %d, woke %d", ws, ww, rs, rw)
	if ww > rs || rw > ws {
		t.Fatalf("more wakes than announced sleeps: writer woke %d for %d, reader woke %d for %d", ww, rs, rw, ws)
	}
}

// TestBetweenLanguages moves 20000 messages of random sizes 0..MaxMessage
// through a 64 KiB ring between this process and testdata/peer.c, built
// by gcc, gcc -m32 and musl-gcc, in both directions; the reading side
// checks every byte and, after the last message, the end of stream
// (io.EOF, EPIPE). The C reader also checks that a buffer one byte short
// is EMSGSIZE and leaves the message, the C writer that max+1 bytes are
// EMSGSIZE. Under GOARCH=386 the same runs pair a 386 Go with 64-bit C.
//
// Kills: the C writer storing head before its memcpy, or the Go one
// before the copy (the reader sees stale bytes: wrong content); C and Go
// disagreeing on an offset or the wrap marker (wrong length, EPROTO);
// the C reader storing tail before its memcpy (wrong content); a missing
// wake on either side (the 10 s timeouts: ETIMEDOUT or deadline).
func TestBetweenLanguages(t *testing.T) {
	for _, cc := range []string{"gcc", "gcc -m32", "musl-gcc"} {
		for _, goWrites := range []bool{true, false} {
			dir := map[bool]string{true: "Go-to-C", false: "C-to-Go"}[goWrites]
			t.Run(strings.ReplaceAll(cc, " ", "")+"/"+dir, func(t *testing.T) {
				bin := buildPeer(t, cc)
				r := newRing(t, 64<<10)
				const count, seed = 20000, 7
				ctx := within(t, 60*time.Second)
				if goWrites {
					w, err := r.Writer()
					if err != nil {
						t.Fatal(err)
					}
					p, _ := startPeer(t, exec.Command(bin, "read", r.Name(), strconv.Itoa(count), strconv.Itoa(seed)), false)
					if err := writeStream(ctx, w, r.MaxMessage(), count, seed); err != nil {
						t.Fatalf("%v\nC: %s", err, p.stderr)
					}
					if err := w.Close(); err != nil {
						t.Fatal(err)
					}
					out, err := p.wait()
					if err != nil || !strings.HasPrefix(out, "ok") {
						t.Fatalf("C reader: %v %q\n%s", err, out, p.stderr)
					}
					return
				}
				rd, err := r.Reader()
				if err != nil {
					t.Fatal(err)
				}
				p, _ := startPeer(t, exec.Command(bin, "write", r.Name(), strconv.Itoa(count), strconv.Itoa(seed)), false)
				if err := readStream(ctx, rd, r.MaxMessage(), count, seed); err != nil {
					t.Fatalf("%v\nC: %s", err, p.stderr)
				}
				if _, err := rd.Receive(ctx, nil); err != io.EOF {
					t.Fatalf("after the stream: %v, want io.EOF", err)
				}
				if out, err := p.wait(); err != nil || !strings.HasPrefix(out, "ok") {
					t.Fatalf("C writer: %v %q\n%s", err, out, p.stderr)
				}
			})
		}
	}
}

// TestBetweenGoProcesses is TestBetweenLanguages with this test binary as
// the peer, by name and, for a ring in a memfd, by descriptor.
//
// Kills: MapFile mapping the wrong file or skipping the header check;
// File handing over the claim-holding open file description (the child's
// reader then shares it: ErrBusy is not seen, see TestBusy).
func TestBetweenGoProcesses(t *testing.T) {
	for _, memfd := range []bool{false, true} {
		t.Run(map[bool]string{false: "name", true: "memfd"}[memfd], func(t *testing.T) {
			var r *ring.Ring
			var err error
			name := "fd3"
			if memfd {
				r, err = ring.CreateMemfd("ringtest", 16<<10)
			} else {
				name = ringName(t)
				r, err = ring.Create(name, 16<<10)
			}
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			w, err := r.Writer()
			if err != nil {
				t.Fatal(err)
			}
			const count, seed = 5000, 3
			cmd := goPeer("read", name, count, seed)
			if memfd {
				f, err := r.File()
				if err != nil {
					t.Fatal(err)
				}
				cmd.ExtraFiles = []*os.File{f}
				defer f.Close()
			}
			p, _ := startPeer(t, cmd, false)
			if err := writeStream(within(t, 60*time.Second), w, r.MaxMessage(), count, seed); err != nil {
				t.Fatalf("%v\nchild: %s", err, p.stderr)
			}
			w.Close()
			if out, err := p.wait(); err != nil || !strings.HasPrefix(out, "ok") {
				t.Fatalf("Go reader: %v %q\n%s", err, out, p.stderr)
			}
		})
	}
}

// TestPeerDeath kills -9 the peer process while this one is blocked, and
// checks that the blocked call ends with ErrPeerGone within 500 ms, that
// Receive first delivers what the dead writer committed and then keeps
// returning ErrPeerGone, and that the dead end can be claimed again.
//
// Kills: never testing the peer's lock (the call blocks to the 5 s
// deadline); testing it but ignoring the answer (same); not re-checking
// the ring after the death (the committed messages are lost: ErrPeerGone
// first); claims not released by the kernel on death (a pid-based or
// flag-based claim: the takeover is ErrBusy).
func TestPeerDeath(t *testing.T) {
	t.Run("writer-dies/Go-reader-blocked", func(t *testing.T) {
		r := newRing(t, 4096)
		rd, err := r.Reader()
		if err != nil {
			t.Fatal(err)
		}
		ctx := within(t, 5*time.Second)
		buf := make([]byte, 64)
		// Blocked in Receive when the writer dies.
		p, _ := startPeer(t, goPeer("hold-writer", r.Name(), 0, 0), true)
		done := blocked(t, rd, func() error { _, err := rd.Receive(ctx, buf); return err })
		p.kill9(t)
		killed := time.Now()
		err = <-done
		d := time.Since(killed)
		if !errors.Is(err, ring.ErrPeerGone) || d > 500*time.Millisecond {
			t.Fatalf("blocked Receive after the writer's death: %v after %v, want ErrPeerGone within 500ms", err, d)
		}
		t.Logf("ErrPeerGone %v after kill -9", d.Round(time.Millisecond))
		if _, err := rd.Receive(ctx, buf); !errors.Is(err, ring.ErrPeerGone) {
			t.Fatalf("Receive again: %v, want ErrPeerGone again", err)
		}
		// A writer that commits three messages and dies: they come first.
		p, _ = startPeer(t, goPeer("hold-writer", r.Name(), 3, 0), true)
		p.kill9(t)
		var got []string
		for {
			n, err := rd.Receive(ctx, buf)
			if err != nil {
				if !errors.Is(err, ring.ErrPeerGone) {
					t.Fatalf("after %q: %v, want ErrPeerGone", got, err)
				}
				break
			}
			got = append(got, string(buf[:n]))
		}
		if strings.Join(got, ",") != "0,1,2" {
			t.Fatalf("received %q before ErrPeerGone, want the 3 committed messages", got)
		}
		w, err := openRing(t, r).Writer()
		if err != nil {
			t.Fatalf("takeover of the dead writer's end: %v", err)
		}
		if err := w.Send(ctx, []byte("new")); err != nil {
			t.Fatal(err)
		}
		if n, err := rd.Receive(ctx, buf); err != nil || string(buf[:n]) != "new" {
			t.Fatalf("from the new writer: %q, %v", buf[:n], err)
		}
	})
	t.Run("reader-dies/Go-writer-blocked", func(t *testing.T) {
		r := newRing(t, 64)
		w, err := r.Writer()
		if err != nil {
			t.Fatal(err)
		}
		p, _ := startPeer(t, goPeer("hold-reader", r.Name(), 0, 0), true)
		ctx := within(t, 5*time.Second)
		// Sends succeed while there is room, then block.
		for i := 0; ; i++ {
			c, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
			err := w.Send(c, make([]byte, 8))
			cancel()
			if errors.Is(err, context.DeadlineExceeded) {
				break
			}
			if err != nil || i > 64 {
				t.Fatalf("send %d: %v", i, err)
			}
		}
		done := make(chan error, 1)
		go func() { done <- w.Send(ctx, make([]byte, 8)) }()
		p.kill9(t)
		killed := time.Now()
		err = <-done
		if d := time.Since(killed); !errors.Is(err, ring.ErrPeerGone) || d > 500*time.Millisecond {
			t.Fatalf("blocked Send after the reader's death: %v after %v, want ErrPeerGone within 500ms", err, d)
		}
		rd, err := openRing(t, r).Reader()
		if err != nil {
			t.Fatalf("takeover of the dead reader's end: %v", err)
		}
		if _, err := rd.Receive(ctx, make([]byte, 8)); err != nil {
			t.Fatalf("the new reader finds the messages: %v", err)
		}
	})
	for _, cc := range []string{"gcc", "gcc -m32", "musl-gcc"} {
		t.Run("Go-dies/C-blocked/"+strings.ReplaceAll(cc, " ", ""), func(t *testing.T) {
			bin := buildPeer(t, cc)
			for _, cReads := range []bool{true, false} {
				r := newRing(t, 64)
				if !cReads { // the C writer fills the ring and blocks
					defer r.Close()
				}
				role, cmode := "hold-writer", "recv-wait"
				if !cReads {
					role, cmode = "hold-reader", "send-wait"
				}
				gp, _ := startPeer(t, goPeer(role, r.Name(), 0, 0), true)
				cp, _ := startPeer(t, exec.Command(bin, cmode, r.Name()), true)
				gp.kill9(t)
				killed := time.Now()
				out, err := cp.wait()
				d := time.Since(killed)
				if err != nil || !strings.HasPrefix(out, "EOWNERDEAD") || d > 500*time.Millisecond {
					t.Fatalf("C %s after the Go peer's death: %q %v after %v, want EOWNERDEAD within 500ms\n%s", cmode, out, err, d, cp.stderr)
				}
				t.Logf("C %s: %s after %v", cmode, strings.TrimSpace(out), d.Round(time.Millisecond))
			}
		})
	}
}

// TestBusy: a claim while the holder lives is ErrBusy (EBUSY in C), from
// this Ring, another open of it, another Go process or a C process; after
// the holder's Close the end can be claimed.
//
// Kills: a claim by flag in the ring (a second Ring in this process or a
// C process claims too); no in-process check (the same Ring's second
// Writer succeeds, since its own lock never conflicts); Close not
// releasing the lock (the claim after Close is ErrBusy).
func TestBusy(t *testing.T) {
	r := newRing(t, 4096)
	o := openRing(t, r)
	w, err := r.Writer()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Writer(); !errors.Is(err, ring.ErrBusy) {
		t.Fatalf("second Writer of the same Ring: %v, want ErrBusy", err)
	}
	if _, err := o.Writer(); !errors.Is(err, ring.ErrBusy) {
		t.Fatalf("Writer of another open: %v, want ErrBusy", err)
	}
	if bin := buildPeer(t, "gcc"); bin != "" {
		c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		out, err := exec.CommandContext(c, bin, "hold-writer", r.Name()).CombinedOutput() // a C claim that succeeds holds on
		cancel()
		if err == nil || !strings.Contains(string(out), "EBUSY") {
			t.Fatalf("C writer claim while Go holds it: %v %q, want EBUSY", err, out)
		}
	}
	if _, err := o.Reader(); err != nil {
		t.Fatalf("the other end is free: %v", err)
	}
	if _, err := r.Reader(); !errors.Is(err, ring.ErrBusy) {
		t.Fatalf("Reader held by another open: %v, want ErrBusy", err)
	}
	w.Close()
	if _, err := o.Writer(); err != nil {
		t.Fatalf("Writer after the holder's Close: %v", err)
	}
	// Held by another process.
	r2 := newRing(t, 4096)
	startPeer(t, goPeer("hold-reader", r2.Name(), 0, 0), true)
	if _, err := r2.Reader(); !errors.Is(err, ring.ErrBusy) {
		t.Fatalf("Reader held by a live child: %v, want ErrBusy", err)
	}
}

// TestAtLeastOnce kills -9 a reader between Next and Release: the next
// reader gets the same message.
//
// Kills: Next storing the tail (the message is lost: the new reader gets
// the second one).
func TestAtLeastOnce(t *testing.T) {
	r := newRing(t, 4096)
	w, err := r.Writer()
	if err != nil {
		t.Fatal(err)
	}
	ctx := within(t, 5*time.Second)
	for _, m := range []string{"first", "second"} {
		if err := w.Send(ctx, []byte(m)); err != nil {
			t.Fatal(err)
		}
	}
	p, line := startPeer(t, goPeer("next-hold", r.Name(), 0, 0), true)
	if line != `ready "first"` {
		t.Fatalf("child said %q", line)
	}
	p.kill9(t)
	rd, err := openRing(t, r).Reader()
	if err != nil {
		t.Fatal(err)
	}
	m, err := rd.Next(ctx)
	if err != nil || string(m) != "first" {
		t.Fatalf("after the reader died before Release: %q, %v; want \"first\" again", m, err)
	}
	if again, _ := rd.Next(ctx); string(again) != "first" {
		t.Fatalf("Next before Release: %q, want the same message", again)
	}
	rd.Release()
	if m, err := rd.Next(ctx); err != nil || string(m) != "second" {
		t.Fatalf("after Release: %q, %v", m, err)
	}
}

// TestDeadline: Receive on an empty ring and Send on a full one end with
// the context's error at its deadline, and at once when it is done.
//
// Kills: ignoring the context while asleep (the call blocks past the
// deadline: the 5 s guard fails it); a wake-up that loses the deadline.
func TestDeadline(t *testing.T) {
	r := newRing(t, 64)
	w, err := r.Writer()
	if err != nil {
		t.Fatal(err)
	}
	rd, err := openRing(t, r).Reader()
	if err != nil {
		t.Fatal(err)
	}
	check := func(what string, call func(ctx context.Context) error) {
		t.Helper()
		start := time.Now() // before the deadline is set: the deadline is at least 100 ms after start
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		done := make(chan error, 1)
		go func() { done <- call(ctx) }()
		var err error
		select {
		case err = <-done:
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: still blocked 5s after a 100ms deadline", what)
		}
		d := time.Since(start)
		if !errors.Is(err, context.DeadlineExceeded) || d < 100*time.Millisecond || d > 2*time.Second {
			t.Fatalf("%s: %v after %v, want context.DeadlineExceeded at 100ms", what, err, d)
		}
		canceled, cancel2 := context.WithCancel(context.Background())
		cancel2()
		if err := call(canceled); !errors.Is(err, context.Canceled) {
			t.Fatalf("%s with a canceled context: %v", what, err)
		}
		// Canceled while asleep: shm's Wait is interrupted at once
		// (about 1 ms), long before the ring's own 150 ms poll.
		ctx3, cancel3 := context.WithCancel(context.Background())
		defer cancel3()
		e := any(rd)
		if strings.HasPrefix(what, "Send") {
			e = w
		}
		done3 := blocked(t, e, func() error { return call(ctx3) })
		canceledAt := time.Now()
		cancel3()
		if err := <-done3; !errors.Is(err, context.Canceled) || time.Since(canceledAt) > 120*time.Millisecond {
			t.Fatalf("%s canceled while asleep: %v after %v, want context.Canceled within 120ms", what, err, time.Since(canceledAt))
		}
	}
	check("Receive on an empty ring", func(ctx context.Context) error { _, err := rd.Receive(ctx, nil); return err })
	for w.Send(within(t, 10*time.Millisecond), make([]byte, 16)) == nil {
	}
	check("Send on a full ring", func(ctx context.Context) error { return w.Send(ctx, make([]byte, 16)) })
}

// TestDrainBeforeEOF: a message committed, and the writer closed, between
// the reader's announcing its sleep and its reading the writer's state, is
// delivered before io.EOF (the hook makes that interleaving certain).
//
// Kills: reporting the end of stream without looking at the ring again
// (the message is lost: io.EOF first).
func TestDrainBeforeEOF(t *testing.T) {
	r := newRing(t, 4096)
	r.SetSpin(0)
	w, _ := r.Writer()
	rd, _ := openRing(t, r).Reader()
	ctx := within(t, 5*time.Second)
	ring.SetHookAnnounced(func() {
		ring.SetHookAnnounced(nil)
		w.Send(ctx, []byte("late"))
		w.Close()
	})
	defer ring.SetHookAnnounced(nil)
	buf := make([]byte, 8)
	if n, err := rd.Receive(ctx, buf); err != nil || string(buf[:n]) != "late" {
		t.Fatalf("message committed before the close: %q, %v; want \"late\" before io.EOF", buf[:n], err)
	}
	if _, err := rd.Receive(ctx, buf); err != io.EOF {
		t.Fatalf("then: %v, want io.EOF", err)
	}
}

// TestEndOfStream: a writer's Close lets the reader drain, then io.EOF;
// a reader's Close makes a Send that would block io.ErrClosedPipe while
// Sends with room still succeed; Close wakes a blocked call of the peer.
//
// Kills: Close not setting the closed state (the reader blocks: deadline);
// EOF before the drain (a message lost); a Send failing because the reader
// closed while there is room; Close not waking the sleeping peer (the
// blocked call ends at the 150 ms poll instead: a 100 ms bound fails).
func TestEndOfStream(t *testing.T) {
	r := newRing(t, 4096)
	o := openRing(t, r)
	w, _ := r.Writer()
	rd, _ := o.Reader()
	ctx := within(t, 5*time.Second)
	w.Send(ctx, []byte("last"))
	w.Close()
	buf := make([]byte, 16)
	if n, err := rd.Receive(ctx, buf); err != nil || string(buf[:n]) != "last" {
		t.Fatalf("drain: %q, %v", buf[:n], err)
	}
	if _, err := rd.Receive(ctx, buf); err != io.EOF {
		t.Fatalf("after the drain: %v, want io.EOF", err)
	}
	// A blocked Receive and the writer's Close.
	w, _ = r.Writer()
	done := blocked(t, rd, func() error { _, err := rd.Receive(ctx, buf); return err })
	closed := time.Now()
	w.Close()
	if err := <-done; err != io.EOF || time.Since(closed) > 100*time.Millisecond {
		t.Fatalf("blocked Receive at the writer's Close: %v after %v, want io.EOF at once", err, time.Since(closed))
	}
	// The reader closes: Sends with room succeed, then io.ErrClosedPipe.
	w, _ = r.Writer()
	rd.Close()
	for i := 0; ; i++ {
		err := w.Send(ctx, make([]byte, 100))
		if err == io.ErrClosedPipe {
			if i == 0 {
				t.Fatal("io.ErrClosedPipe with room in the ring")
			}
			break
		}
		if err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
	}
}

// blocked starts call in a goroutine and returns, once the end e has
// announced a new sleep, a channel with call's result. (The test's only
// poll: it observes that the call sleeps, it does not synchronize the
// ring.)
func blocked(t *testing.T, e any, call func() error) <-chan error {
	t.Helper()
	stats := func() int64 {
		var s int64
		switch v := e.(type) {
		case *ring.Reader:
			s, _ = ring.Stats(v)
		case *ring.Writer:
			s, _ = ring.Stats(v)
		}
		return s
	}
	s0 := stats()
	done := make(chan error, 1)
	go func() { done <- call() }()
	deadline := time.Now().Add(5 * time.Second)
	for stats() == s0 {
		if time.Now().After(deadline) {
			t.Fatal("the call never slept")
		}
		time.Sleep(time.Millisecond)
	}
	return done
}

// TestClosed: every method after Close is an error wrapping fs.ErrClosed;
// Ring.Close closes the ends it handed out (the writer's: end of stream);
// a blocked Receive is ended by the Reader's Close from another goroutine.
//
// Kills: Ring.Close not closing its writer (the peer reader blocks, not
// io.EOF); Close not waking its own sleeping call (the 100 ms bound).
func TestClosed(t *testing.T) {
	r := newRing(t, 4096)
	o := openRing(t, r)
	w, _ := r.Writer()
	rd, _ := o.Reader()
	ctx := within(t, 5*time.Second)
	done := blocked(t, rd, func() error { _, err := rd.Receive(ctx, nil); return err })
	r.Close()
	if err := <-done; err != io.EOF {
		t.Fatalf("Receive when the writer's Ring closed: %v, want io.EOF", err)
	}
	if err := w.Send(ctx, nil); !errors.Is(err, fs.ErrClosed) {
		t.Fatalf("Send after Ring.Close: %v", err)
	}
	for name, err := range map[string]error{
		"Ring.Close":   r.Close(),
		"Writer.Close": w.Close(),
		"Commit":       w.Commit(0),
	} {
		if !errors.Is(err, fs.ErrClosed) {
			t.Errorf("%s after Close: %v, want fs.ErrClosed", name, err)
		}
	}
	if _, err := r.Writer(); !errors.Is(err, fs.ErrClosed) {
		t.Errorf("Writer after Close: %v", err)
	}
	if _, err := w.Reserve(ctx, 1); !errors.Is(err, fs.ErrClosed) {
		t.Errorf("Reserve after Close: %v", err)
	}
	// A blocked Receive, and the Reader's own Close.
	w2, _ := openRing(t, o).Writer()
	_ = w2
	done = blocked(t, rd, func() error { _, err := rd.Receive(ctx, nil); return err })
	closed := time.Now()
	rd.Close()
	if err := <-done; !errors.Is(err, fs.ErrClosed) || time.Since(closed) > 100*time.Millisecond {
		t.Fatalf("blocked Receive at its Reader's Close: %v after %v, want fs.ErrClosed at once", err, time.Since(closed))
	}
	for name, f := range map[string]func() error{
		"Receive": func() error { _, err := rd.Receive(ctx, nil); return err },
		"Next":    func() error { _, err := rd.Next(ctx); return err },
		"Release": rd.Release,
		"Close":   rd.Close,
	} {
		if err := f(); !errors.Is(err, fs.ErrClosed) {
			t.Errorf("Reader.%s after Close: %v, want fs.ErrClosed", name, err)
		}
	}
}

// TestBadInput: arguments and messages out of range are clear errors,
// nothing sent.
//
// Kills: Send of MaxMessage+1 sending (ErrTooLarge not returned); bad
// capacities accepted (no error); Commit beyond the reservation accepted.
func TestBadInput(t *testing.T) {
	for _, c := range []int{0, -8, 63, 100, int(min(1<<40+8, math.MaxInt))} {
		if _, err := ring.Create(ringName(t), c); !errors.Is(err, syscall.EINVAL) {
			t.Errorf("Create with capacity %d: %v, want EINVAL", c, err)
		}
	}
	r := newRing(t, 4096)
	w, _ := r.Writer()
	ctx := within(t, 5*time.Second)
	if err := w.Send(ctx, make([]byte, r.MaxMessage()+1)); !errors.Is(err, ring.ErrTooLarge) {
		t.Fatalf("Send of MaxMessage+1: %v, want ErrTooLarge", err)
	}
	if _, err := w.Reserve(ctx, r.MaxMessage()+1); !errors.Is(err, ring.ErrTooLarge) {
		t.Fatalf("Reserve of MaxMessage+1: %v", err)
	}
	if _, err := w.Reserve(ctx, -1); !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("Reserve(-1): %v", err)
	}
	if err := w.Commit(0); !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("Commit without Reserve: %v", err)
	}
	if _, err := w.Reserve(ctx, 10); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(11); !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("Commit beyond the reservation: %v", err)
	}
	if err := w.Commit(10); err != nil {
		t.Fatal(err)
	}
	rd, _ := openRing(t, r).Reader()
	if err := rd.Release(); !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("Release without Next: %v", err)
	}
	if m, err := rd.Next(ctx); err != nil || len(m) != 10 {
		t.Fatalf("only the committed message: %d bytes, %v", len(m), err)
	}
	rd.Release()
	if _, err := rd.Receive(within(t, 10*time.Millisecond), nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("after the one message: %v, want nothing more", err)
	}
}

// TestBadHeader: objects that are not rings of this layout, or whose
// header lies about sizes, are refused with ErrNotRing (EPROTO in C),
// never a crash; a corrupt record is ErrCorrupt.
//
// Kills: dropping any one header check (magic, version, header size,
// capacity against the object's size, max message): Open then succeeds
// or faults beyond the mapping.
func TestBadHeader(t *testing.T) {
	r := newRing(t, 4096)
	good := bytes.Clone(shmBytes(t, r.Name())[:ring.HeaderSize])
	cases := map[string]func(b []byte){
		"foreign":     func(b []byte) { copy(b, "hello, world") },
		"version":     func(b []byte) { binary.LittleEndian.PutUint32(b[8:], 3) },
		"header-size": func(b []byte) { binary.LittleEndian.PutUint32(b[12:], 1024) },
		"capacity-big": func(b []byte) {
			binary.LittleEndian.PutUint64(b[16:], 8192)
			binary.LittleEndian.PutUint64(b[24:], 8192/2-8)
		},
		"capacity-odd": func(b []byte) { binary.LittleEndian.PutUint64(b[16:], 4092) },
		"max-message":  func(b []byte) { binary.LittleEndian.PutUint64(b[24:], 4096) },
		"big-endian":   func(b []byte) { copy(b, "\x00GNIRMHS") },
		// version 2's slot counts (issue 23)
		"readers-0":  func(b []byte) { binary.LittleEndian.PutUint32(b[32:], 0) },
		"readers-65": func(b []byte) { binary.LittleEndian.PutUint32(b[32:], 65) },
		"writers-0":  func(b []byte) { binary.LittleEndian.PutUint32(b[36:], 0) },
		"writers-65": func(b []byte) { binary.LittleEndian.PutUint32(b[36:], 65) },
		"readers-2":  func(b []byte) { binary.LittleEndian.PutUint32(b[32:], 2) }, // header size no longer matches
		"writers-2-lanes-past-the-object": func(b []byte) {
			binary.LittleEndian.PutUint32(b[36:], 2)
			binary.LittleEndian.PutUint32(b[12:], uint32(ring.DataOff(2, 1)))
		},
	}
	bin := ""
	if _, err := exec.LookPath("gcc"); err == nil {
		bin = buildPeer(t, "gcc")
	}
	for name, corrupt := range cases {
		b := shmBytes(t, r.Name())
		copy(b, good)
		corrupt(b)
		_, err := ring.Open(r.Name())
		if !errors.Is(err, ring.ErrNotRing) {
			t.Errorf("%s: Open: %v, want ErrNotRing", name, err)
		} else {
			t.Logf("%s: %v", name, err)
		}
		if bin != "" {
			c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			out, _ := exec.CommandContext(c, bin, "hold-reader", r.Name()).CombinedOutput() // a C peer that accepts would hold on
			cancel()
			if !strings.Contains(string(out), "EPROTO") {
				t.Errorf("%s: C open: %q, want EPROTO", name, out)
			}
		}
	}
	copy(shmBytes(t, r.Name()), good)
	// Too small, and empty for longer than a creator takes.
	small, _ := shm.Create(ringName(t), 100)
	defer small.Close()
	if _, err := ring.Open(small.Name()); !errors.Is(err, ring.ErrNotRing) {
		t.Errorf("100-byte object: %v", err)
	}
	// A corrupt record: a length beyond what was published.
	w, _ := r.Writer()
	ctx := within(t, 5*time.Second)
	w.Send(ctx, []byte("ok"))
	b := shmBytes(t, r.Name())
	binary.LittleEndian.PutUint32(b[ring.HeaderSize:], 3000)
	rd, _ := openRing(t, r).Reader()
	if _, err := rd.Receive(ctx, make([]byte, 4096)); !errors.Is(err, ring.ErrCorrupt) {
		t.Fatalf("corrupt record: %v, want ErrCorrupt", err)
	}
}

// shmBytes maps the object name for the test to write its header.
func shmBytes(t *testing.T, name string) []byte {
	t.Helper()
	s, err := shm.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s.Bytes()
}

// TestSmallDevShm: in a 1 MiB /dev/shm, a ring that does not fit is
// ENOSPC at Create and leaves nothing; one that fits works.
//
// Kills: a sparse Create (no ENOSPC: SIGBUS later, the child dies);
// a failed Create leaving its object (the listing is not empty).
func TestSmallDevShm(t *testing.T) {
	if !inSmallDevShm(t, "1m") {
		return
	}
	name := ringName(t)
	if _, err := ring.Create(name, 2<<20); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("a 2 MiB ring in a 1 MiB /dev/shm: %v, want ENOSPC", err)
	}
	if ents, _ := os.ReadDir("/dev/shm"); len(ents) != 0 {
		t.Fatalf("left behind: %v", ents)
	}
	r := newRing(t, 256<<10)
	w, _ := r.Writer()
	rd, _ := openRing(t, r).Reader()
	ctx := within(t, 5*time.Second)
	if err := w.Send(ctx, make([]byte, r.MaxMessage())); err != nil {
		t.Fatal(err)
	}
	if n, err := rd.Receive(ctx, make([]byte, r.MaxMessage())); err != nil || n != r.MaxMessage() {
		t.Fatal(n, err)
	}
}

// inSmallDevShm reports whether this run of t is the one inside a private
// mount namespace with a tmpfs of size on /dev/shm; when not, it runs t
// there (as shm's own tests do) and checks that it passed.
func inSmallDevShm(t *testing.T, size string) bool {
	t.Helper()
	const env = "SHMRING_TEST_DEVSHM"
	if os.Getenv(env) == size {
		return true
	}
	if os.Geteuid() != 0 {
		t.Skip("mounting a small /dev/shm needs root")
	}
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("needs unshare(1) to mount a small /dev/shm")
	}
	if out, err := exec.Command("unshare", "--mount", "--ipc", "true").CombinedOutput(); err != nil {
		t.Skipf("unshare --mount --ipc is not permitted here: %v %s", err, out)
	}
	exe, _ := os.Executable()
	cmd := exec.Command("unshare", "--mount", "--ipc", "--propagation", "private", "sh", "-c",
		`mount -t tmpfs -o size=`+size+` shmtest /dev/shm && exec "$0" -test.run="^$1\$" -test.v -test.count=1`,
		exe, t.Name())
	cmd.Env = append(os.Environ(), env+"="+size)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: "+t.Name()) {
		t.Fatalf("in a %s /dev/shm: %v\n%s", size, err, out)
	}
	t.Logf("in a %s /dev/shm:\n%s", size, out)
	return false
}

// TestBlockingRoundTrips sends 200 messages back and forth over two rings
// with spinning off, so every wait sleeps, to a Go goroutine and to a C
// process (gcc, gcc -m32, musl-gcc): a lost wake-up costs a 150 ms poll,
// 200 of them 30 s; the test wants all in under 3 s.
//
// Kills: the writer or the reader not waking the other, in Go (wakePeer
// a no-op) or in C (shmring__wake a no-op); announcing the sleep without
// looking at the ring again (the Dekker re-check dropped, Go or C).
func TestBlockingRoundTrips(t *testing.T) {
	for _, peer := range []string{"Go", "gcc", "gcc -m32", "musl-gcc"} {
		t.Run(strings.ReplaceAll(peer, " ", ""), func(t *testing.T) {
			a, b := newRing(t, 4096), newRing(t, 4096)
			ao, bo := openRing(t, a), openRing(t, b)
			for _, r := range []*ring.Ring{a, b, ao, bo} {
				r.SetSpin(0)
			}
			aw, _ := a.Writer()
			bw := (*ring.Writer)(nil)
			br, _ := bo.Reader()
			ctx := within(t, 60*time.Second)
			const n = 200
			if peer == "Go" {
				ar, _ := ao.Reader()
				bw, _ = b.Writer()
				go func() {
					buf := make([]byte, 8)
					for range n {
						k, err := ar.Receive(ctx, buf)
						if err != nil || bw.Send(ctx, buf[:k]) != nil {
							return
						}
					}
				}()
			} else {
				startPeer(t, exec.Command(buildPeer(t, peer), "echo", a.Name(), b.Name(), "0"), true)
			}
			start := time.Now()
			buf := make([]byte, 8)
			for i := range n {
				if err := aw.Send(ctx, []byte(fmt.Sprint(i))); err != nil {
					t.Fatal(err)
				}
				k, err := br.Receive(ctx, buf)
				if err != nil || string(buf[:k]) != fmt.Sprint(i) {
					t.Fatalf("round trip %d: %q %v", i, buf[:k], err)
				}
			}
			d := time.Since(start)
			s, _ := ring.Stats(br)
			_, w := ring.Stats(aw) // each a wake of the peer's reader, asleep
			t.Logf("%d blocking round trips in %v (%v each); the receiver slept %d times, the peer's reader was woken %d times", n, d, d/n, s, w)
			if d > 3*time.Second {
				t.Fatalf("%d round trips took %v: wake-ups lost", n, d)
			}
			// A quick C echo often answers before Go's receiver looks, so
			// Go's receiver may rarely sleep; the peer's reader, with
			// spinning off, sleeps for every message Go has not sent yet.
			if s+w < n/10 {
				t.Fatalf("%d sleeps of the receiver and %d wakes of the peer's reader in %d round trips: the test did not test sleeping", s, w, n)
			}
		})
	}
}

// python returns python3's path and testdata/peer.py, skipping t where
// python3 is missing.
func python(t *testing.T) (string, string) {
	t.Helper()
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 is not installed")
	}
	return py, "testdata/peer.py"
}

// TestPython moves 3000 messages of random sizes 0..MaxMessage through an
// 8 KiB ring between this process and ring/python/shmring.py, both ways,
// every byte checked by the reader, then the end of stream; kills -9 a
// Python writer while Go is blocked (ErrPeerGone), and a Go child while
// Python is blocked (PeerGoneError); and checks that Python's claim is
// refused while Go holds the end.
//
// Kills: Python storing head before the copy or reading the length at the
// wrong offset (wrong content, wrong length); Python's wake a no-op (the
// 10 s timeouts); Python never testing the peer's lock (no PeerGoneError
// within 500 ms); Python claiming without the lock (no BusyError).
func TestPython(t *testing.T) {
	py, script := python(t)
	const count, seed = 3000, 11
	for _, goWrites := range []bool{true, false} {
		t.Run(map[bool]string{true: "Go-to-Python", false: "Python-to-Go"}[goWrites], func(t *testing.T) {
			r := newRing(t, 8192)
			ctx := within(t, 60*time.Second)
			if goWrites {
				w, _ := r.Writer()
				p, _ := startPeer(t, exec.Command(py, script, "read", r.Name(), strconv.Itoa(count), strconv.Itoa(seed)), false)
				if err := writeStream(ctx, w, r.MaxMessage(), count, seed); err != nil {
					t.Fatalf("%v\nPython: %s", err, p.stderr)
				}
				w.Close()
				if out, err := p.wait(); err != nil || !strings.HasPrefix(out, "ok") {
					t.Fatalf("Python reader: %v %q\n%s", err, out, p.stderr)
				}
				return
			}
			rd, _ := r.Reader()
			p, _ := startPeer(t, exec.Command(py, script, "write", r.Name(), strconv.Itoa(count), strconv.Itoa(seed)), false)
			if err := readStream(ctx, rd, r.MaxMessage(), count, seed); err != nil {
				t.Fatalf("%v\nPython: %s", err, p.stderr)
			}
			if _, err := rd.Receive(ctx, nil); err != io.EOF {
				t.Fatalf("after the stream: %v, want io.EOF", err)
			}
			if out, err := p.wait(); err != nil || !strings.HasPrefix(out, "ok") {
				t.Fatalf("Python writer: %v %q\n%s", err, out, p.stderr)
			}
		})
	}
	t.Run("Python-dies/Go-blocked", func(t *testing.T) {
		r := newRing(t, 4096)
		rd, _ := r.Reader()
		p, _ := startPeer(t, exec.Command(py, script, "hold-writer", r.Name()), true)
		ctx := within(t, 5*time.Second)
		done := blocked(t, rd, func() error { _, err := rd.Receive(ctx, nil); return err })
		p.kill9(t)
		killed := time.Now()
		if err := <-done; !errors.Is(err, ring.ErrPeerGone) || time.Since(killed) > 500*time.Millisecond {
			t.Fatalf("blocked Receive after the Python writer's death: %v after %v", err, time.Since(killed))
		}
	})
	t.Run("Go-dies/Python-blocked", func(t *testing.T) {
		r := newRing(t, 4096)
		gp, _ := startPeer(t, goPeer("hold-writer", r.Name(), 0, 0), true)
		pp, _ := startPeer(t, exec.Command(py, script, "recv-wait", r.Name()), true)
		gp.kill9(t)
		killed := time.Now()
		out, err := pp.wait()
		if d := time.Since(killed); err != nil || !strings.HasPrefix(out, "PeerGoneError") || d > 500*time.Millisecond {
			t.Fatalf("Python recv after the Go writer's death: %q %v after %v\n%s", out, err, d, pp.stderr)
		}
	})
	t.Run("timeout", func(t *testing.T) {
		r := newRing(t, 4096)
		r.Writer()
		prog := `import sys, time; sys.path.insert(0, "python"); import shmring
r = shmring.Ring.open(sys.argv[1]).reader()
for t in (0, 0.2):
    start = time.monotonic()
    try:
        r.recv(timeout=t)
        sys.exit("a message from an empty ring")
    except TimeoutError:
        print("%.3f" % (time.monotonic() - start))
`
		out, err := exec.Command(py, "-c", prog, r.Name()).CombinedOutput()
		var zero, d float64
		if _, serr := fmt.Sscan(string(out), &zero, &d); err != nil || serr != nil || zero > 0.05 || d < 0.2 || d > 1 {
			t.Fatalf("Python recv on an empty ring: %v %q; want TimeoutError at once (timeout 0) and after 0.2 s", err, out)
		}
	})
	t.Run("busy", func(t *testing.T) {
		r := newRing(t, 4096)
		r.Writer()
		c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		out, err := exec.CommandContext(c, py, script, "hold-writer", r.Name()).CombinedOutput()
		if err == nil || !strings.Contains(string(out), "BusyError") {
			t.Fatalf("Python claim of a held end: %v %q, want BusyError", err, out)
		}
	})
}

// TestIdleCost: a Receive blocked for a second on an empty ring, its
// writer alive in another open (so the 150 ms peer checks run), costs the
// process almost no CPU: under 100 ms of user and system time.
//
// Kills: spinning instead of sleeping (a spin of a second: ~1 s of CPU);
// a peer poll that never sleeps.
func TestIdleCost(t *testing.T) {
	r := newRing(t, 4096)
	if _, err := openRing(t, r).Writer(); err != nil {
		t.Fatal(err)
	}
	rd, _ := r.Reader()
	cpu := func() time.Duration {
		var ru syscall.Rusage
		syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	before := cpu()
	if _, err := rd.Receive(within(t, time.Second), nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Receive on an empty ring: %v", err)
	}
	used := cpu() - before
	t.Logf("a second blocked in Receive cost %v of CPU", used)
	if used > 100*time.Millisecond {
		t.Fatalf("a second blocked in Receive cost %v of CPU, want almost none", used)
	}
}

// TestPeerInOtherPidNamespace: a writer in another pid namespace (unshare
// --pid: its pids mean nothing here, and may be reused by unrelated
// processes of this namespace) is judged alive while it lives, through
// several of the reader's 150 ms checks, and dead once killed.
//
// Kills: judging liveness by the pid the lock reports (F_OFD_GETLK gives
// l_pid -1) or by a pid stored in the ring (ErrPeerGone while it lives).
func TestPeerInOtherPidNamespace(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("unshare --pid needs root")
	}
	if err := exec.Command("unshare", "--pid", "--fork", "--kill-child", "true").Run(); err != nil {
		t.Skipf("unshare --pid is not available: %v", err)
	}
	r := newRing(t, 4096)
	rd, _ := r.Reader()
	g := goPeer("hold-writer", r.Name(), 0, 0)
	g.Args = append([]string{"unshare", "--pid", "--fork", "--kill-child", g.Path}, g.Args[1:]...)
	g.Path, _ = exec.LookPath("unshare")
	p, _ := startPeer(t, g, true)
	ctx, cancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
	defer cancel()
	if _, err := rd.Receive(ctx, nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Receive while the writer lives in another pid namespace: %v, want the deadline", err)
	}
	done := blocked(t, rd, func() error { _, err := rd.Receive(within(t, 5*time.Second), nil); return err })
	p.kill9(t)
	if err := <-done; !errors.Is(err, ring.ErrPeerGone) {
		t.Fatalf("after its death: %v, want ErrPeerGone", err)
	}
}

// FuzzCorruptRing writes arbitrary head, tail and record bytes into a
// ring's shared memory, as a broken or hostile peer could, and reads:
// Open and Next return a message inside the data, ErrCorrupt or the
// deadline, never a panic or a read outside the ring.
//
// Kills: dropping any bound of Next's record check (a slice out of range
// panics on the seed "past the end").
func FuzzCorruptRing(f *testing.F) {
	r := newRing(f, 256)
	f.Add(uint64(8), uint64(0), []byte{200, 0, 0, 0})                        // a length beyond what was published
	f.Add(uint64(256), uint64(0), []byte{120, 0, 0, 0})                      // max message, published
	f.Add(uint64(256+248), uint64(248), []byte{})                            // past the end: a record at offset 248 of 120 bytes
	f.Add(uint64(512), uint64(0), []byte{})                                  // head - tail beyond the capacity
	f.Add(uint64(256), uint64(248), []byte{0xff, 0xff, 0xff, 0xff})          // a wrap marker
	f.Add(uint64(16), uint64(8), []byte{0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff}) // a wrap marker at the start
	f.Fuzz(func(t *testing.T, head, tail uint64, data []byte) {
		b := shmBytes(t, r.Name())
		d := b[ring.HeaderSize : ring.HeaderSize+256]
		clear(d)
		copy(d, data)
		if tail%8 == 0 && tail < 256 && len(data) == 0 {
			binary.LittleEndian.PutUint32(d[tail:], 120) // the seeds' records at tail
		}
		binary.LittleEndian.PutUint64(b[ring.OffHead:], head)
		binary.LittleEndian.PutUint64(b[ring.OffTail:], tail)
		o, err := ring.Open(r.Name())
		if err != nil {
			if !errors.Is(err, ring.ErrCorrupt) {
				t.Fatalf("Open: %v", err)
			}
			return
		}
		defer o.Close()
		rd, err := o.Reader()
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Millisecond)
		defer cancel()
		m, err := rd.Next(ctx)
		if err == nil && len(m) > o.MaxMessage() {
			t.Fatalf("a message of %d bytes from a ring whose max is %d", len(m), o.MaxMessage())
		}
		if err != nil && !errors.Is(err, ring.ErrCorrupt) && !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Next: %v", err)
		}
	})
}
