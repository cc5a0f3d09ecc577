//go:build linux && cgo

package shm_test

// Words of a mapping: Uint32 and Uint64, and futex Wait and Wake on them,
// within a process, across processes with a C peer, against a truncated
// page, and racing Close.

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/posixshm/shm"
)

const futexWaitFrame = "shm.(*Mapping).Wait"

// childSyncFutexFault plays "sync-futex-fault": Wait and Wake on a word
// whose page the parent truncates away
func childSyncFutexFault(role, name string, in *bufio.Reader) int {
	s, err := shm.Open(name)
	if err != nil {
		return childFail(role, "%v", err)
	}
	defer s.Close()
	page := int64(os.Getpagesize())
	fmt.Println("mapped")
	if err := waitParent(in); err != nil {
		return childFail(role, "waiting for parent: %v", err)
	}
	err = s.Wait(context.Background(), page, 0)
	var pe *fs.PathError
	if !errors.Is(err, shm.ErrFault) || !errors.Is(err, syscall.EFAULT) || !errors.As(err, &pe) || pe.Op != "futex" {
		return childFail(role, "Wait on a truncated page = %v; want futex ErrFault, EFAULT", err)
	}
	if _, err := s.Wake(page+4, 1); !errors.Is(err, shm.ErrFault) {
		return childFail(role, "Wake on a truncated page = %v; want ErrFault", err)
	}
	if err := s.Wait(context.Background(), 0, 12345); err != nil {
		return childFail(role, "Wait on the page that remains: %v", err)
	}
	fmt.Println("ok")
	return 0
}

// childSyncFutexPong plays "sync-futex-pong": answer tokens at word 0, as
// testdata/futexpeer.c does
func childSyncFutexPong(role, name string, in *bufio.Reader) int {
	s, err := shm.Open(name)
	if err != nil {
		return childFail(role, "%v", err)
	}
	defer s.Close()
	n, _ := strconv.Atoi(os.Getenv("SHM_TEST_N"))
	spin, _ := strconv.Atoi(os.Getenv("SHM_TEST_SPIN"))
	if err := futexPong(s, n, spin); err != nil {
		return childFail(role, "%v", err)
	}
	return 0
}

// childSyncSemPong plays "sync-sem-pong": answer posts on name with posts
// on name+"-b"
func childSyncSemPong(role, name string, in *bufio.Reader) int {
	a, err := shm.OpenSemaphore(name)
	if err != nil {
		return childFail(role, "%v", err)
	}
	b, err := shm.OpenSemaphore(name + "-b")
	if err != nil {
		return childFail(role, "%v", err)
	}
	n, _ := strconv.Atoi(os.Getenv("SHM_TEST_N"))
	for range n + 1 {
		if err := a.Wait(context.Background()); err != nil {
			return childFail(role, "%v", err)
		}
		if err := b.Post(); err != nil {
			return childFail(role, "%v", err)
		}
	}
	return 0
}

// futexPing sends tokens 1, 3, ..., 2n+1 through word 0 of s and waits
// for each answer, as testdata/futexpeer.c's ping does (spinning spin
// loads before each Wait), and returns the time of the last n round trips
// (the first waits for the peer to start).
func futexPing(ctx context.Context, s *shm.Segment, n, spin int) (time.Duration, error) {
	w, err := s.Uint32(0)
	if err != nil {
		return 0, err
	}
	start := time.Now()
	for i := uint32(1); i <= uint32(n)+1; i++ {
		if i == 2 {
			start = time.Now()
		}
		w.Store(2*i - 1)
		if _, err := s.Wake(0, 1); err != nil {
			return 0, err
		}
		if err := futexAwait(ctx, s, w, 2*i, spin); err != nil {
			return 0, fmt.Errorf("round %d: %w", i, err)
		}
	}
	return time.Since(start), nil
}

// futexAwait waits until w holds want: spin loads first, as
// testdata/futexpeer.c's wait_for does, then Wait on word 0.
func futexAwait(ctx context.Context, s *shm.Segment, w *atomic.Uint32, want uint32, spin int) error {
	for i := 0; ; i++ {
		cur := w.Load()
		if cur == want {
			return nil
		}
		if i < spin {
			continue
		}
		if err := s.Wait(ctx, 0, cur); err != nil {
			return err
		}
	}
}

func futexPong(s *shm.Segment, n, spin int) error {
	w, err := s.Uint32(0)
	if err != nil {
		return err
	}
	for i := uint32(1); i <= uint32(n)+1; i++ {
		if err := futexAwait(context.Background(), s, w, 2*i-1, spin); err != nil {
			return err
		}
		w.Store(2 * i)
		if _, err := s.Wake(0, 1); err != nil {
			return err
		}
	}
	return nil
}

// TestUint32Uint64: the words are the mapping's memory, shared with
// another mapping of the object; offsets are bounds- and
// alignment-checked; after Close, fs.ErrClosed. Kills: dropping the
// alignment check; an off-by-one in the bound; no closed check.
func TestUint32Uint64(t *testing.T) {
	page := os.Getpagesize()
	s := create(t, page)
	o, err := shm.Open(s.Name())
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	a, err := s.Uint32(8)
	if err != nil {
		t.Fatal(err)
	}
	a.Store(0xdeadbeef)
	if got := binary.NativeEndian.Uint32(o.Bytes()[8:]); got != 0xdeadbeef {
		t.Fatalf("the other mapping reads %#x", got)
	}
	b, err := o.Uint64(int64(page - 8))
	if err != nil {
		t.Fatal(err)
	}
	b.Add(41)
	b.Add(1)
	if got := binary.NativeEndian.Uint64(s.Bytes()[page-8:]); got != 42 {
		t.Fatalf("the other mapping reads %d", got)
	}
	for _, off := range []int64{-4, 2, int64(page - 2), int64(page), 1 << 40} {
		_, err := s.Uint32(off)
		wantPathErr(t, err, "uint32", s.Name(), syscall.EINVAL)
	}
	for _, off := range []int64{-8, 4, int64(page - 4), int64(page)} {
		_, err := s.Uint64(off)
		wantPathErr(t, err, "uint64", s.Name(), syscall.EINVAL)
	}
	if _, err := s.Uint32(int64(page - 4)); err != nil {
		t.Fatalf("last word: %v", err)
	}
	// A Mapping of a file has the words too, and its length need not be a
	// multiple of 4: the last whole word of a 4095-byte file is at 4088.
	f, err := os.Create(t.TempDir() + "/words")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.Truncate(4095)
	m, err := shm.MapFile(f, os.O_RDWR, 0, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if _, err := m.Uint32(4088); err != nil {
		t.Fatal(err)
	}
	_, err = m.Uint32(4092)
	wantPathErr(t, err, "uint32", f.Name(), syscall.EINVAL)
	_, err = m.Uint64(4088)
	wantPathErr(t, err, "uint64", f.Name(), syscall.EINVAL)

	s.Close()
	_, err = s.Uint32(0)
	wantPathErr(t, err, "uint32", s.Name(), fs.ErrClosed)
	_, err = s.Uint64(0)
	wantPathErr(t, err, "uint64", s.Name(), fs.ErrClosed)
}

// TestFutexWaitWake: Wake wakes a blocked Wait and says how many it woke;
// Wait returns at once when the word is not old. Kills: EAGAIN reported
// as an error; Wake's count dropped; Wait not comparing (FUTEX_WAIT with
// the wrong value).
func TestFutexWaitWake(t *testing.T) {
	s := create(t, 4096)
	w, _ := s.Uint32(64)
	if n, err := s.Wake(64, 1); n != 0 || err != nil {
		t.Fatalf("Wake with no waiter = %d, %v", n, err)
	}
	w.Store(7)
	if err := s.Wait(context.Background(), 64, 6); err != nil {
		t.Fatalf("Wait with a stale old = %v", err)
	}
	errc := make(chan error, 3)
	for range 3 {
		go func() { errc <- s.Wait(context.Background(), 64, 7) }()
	}
	waitBlocked(t, futexWaitFrame, 3)
	w.Store(8)
	if n, err := s.Wake(64, 2); n != 2 || err != nil {
		t.Fatalf("Wake(2) of 3 waiters = %d, %v", n, err)
	}
	for range 2 {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
	// The third waiter sleeps on (it is not woken by the store) until a
	// Wake: it has no slices to notice the change by.
	select {
	case err := <-errc:
		t.Fatalf("the third waiter returned without a Wake: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	if n, err := s.Wake(64, 1); n != 1 || err != nil {
		t.Fatalf("Wake(1) of the third waiter = %d, %v", n, err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	_, err := s.Wake(64, -1)
	wantPathErr(t, err, "futex", s.Name(), syscall.EINVAL)
	_, err = s.Wake(66, 1)
	wantPathErr(t, err, "futex", s.Name(), syscall.EINVAL)
	wantPathErr(t, s.Wait(context.Background(), 4096, 0), "futex", s.Name(), syscall.EINVAL)
}

// TestFutexWaitDeadline: a deadline ends Wait at the deadline (the
// futex timeout); cancellation without one returns within 100 ms (a
// signal to the waiting thread: about a millisecond). Kills: a timeout
// that ignores the deadline; no signal (Wait never returns). A return to
// 50 ms slices is TestIdleWaitersCPU's to kill.
func TestFutexWaitDeadline(t *testing.T) {
	s := create(t, 4096)
	for _, d := range []time.Duration{0, 10 * time.Millisecond, 70 * time.Millisecond} {
		ctx, cancel := context.WithTimeout(context.Background(), d)
		dl, _ := ctx.Deadline()
		err := s.Wait(ctx, 0, 0)
		late := time.Since(dl)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Wait(%v) = %v", d, err)
		}
		if late < 0 || late > 25*time.Millisecond {
			t.Errorf("Wait with a %v deadline returned %v after it", d, late)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error)
	go func() { errc <- s.Wait(ctx, 0, 0) }()
	waitBlocked(t, futexWaitFrame, 1)
	start := time.Now()
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Wait = %v", err)
		}
		if d := time.Since(start); d > 100*time.Millisecond {
			t.Errorf("cancellation took %v; want at most 100 ms", d)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a cancelled Wait did not return")
	}
}

// TestFutexClose: Close while goroutines wait returns only after they
// have left the kernel, and they return fs.ErrClosed; afterwards Wait and
// Wake do too. Kills: Wait not holding the read lock across the system
// call (Close would unmap under it: a waiter is still in the kernel when
// Close returns).
func TestFutexClose(t *testing.T) {
	s := create(t, 4096)
	const waiters = 4
	errc := make(chan error, waiters)
	for range waiters {
		go func() { errc <- s.Wait(context.Background(), 0, 0) }()
	}
	waitBlocked(t, futexWaitFrame, waiters)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if n := countStacks(futexWaitFrame, true); n != 0 {
		t.Fatalf("Close returned with %d waiters still in the kernel", n)
	}
	for range waiters {
		wantPathErr(t, <-errc, "futex", s.Name(), fs.ErrClosed)
	}
	wantPathErr(t, s.Wait(context.Background(), 0, 0), "futex", s.Name(), fs.ErrClosed)
	_, err := s.Wake(0, 1)
	wantPathErr(t, err, "futex", s.Name(), fs.ErrClosed)
}

// TestFutexFault: in a child, Wait and Wake on a word whose page the
// parent truncated away return ErrFault (the kernel's EFAULT), and the
// child lives. Kills: a Go-side load of the word before the system call
// (SIGBUS kills the child).
func TestFutexFault(t *testing.T) {
	page := os.Getpagesize()
	s := create(t, 2*page)
	cmd := childCmd(t, "sync-futex-fault", s.Name())
	stdin, out := startPeer(t, cmd, "mapped\n")
	if err := os.Truncate(devPath(s.Name()), int64(page)); err != nil {
		t.Fatal(err)
	}
	finishPeer(t, cmd, stdin, out, "ok\n")
}

// TestFutexC: a C peer (testdata/futexpeer.c, raw futex system calls)
// answers tokens: Go's Wake wakes its FUTEX_WAIT and its FUTEX_WAKE wakes
// Go's Wait; then the other way round, a Go child and the C pinger.
// Kills: FUTEX_PRIVATE_FLAG in Wait or Wake (the C side never wakes, or
// Go's waits end only by slice timeouts: 200 rounds take seconds).
func TestFutexC(t *testing.T) {
	peer := buildC(t, "futexpeer")
	const n = 200
	for _, goPings := range []bool{true, false} {
		t.Run(map[bool]string{true: "go-ping", false: "c-ping"}[goPings], func(t *testing.T) {
			s := create(t, 4096)
			var cmd *exec.Cmd
			if goPings {
				cmd = exec.Command(peer, "pong", s.Name(), strconv.Itoa(n), "0")
				cmd.Stderr = os.Stderr
			} else {
				cmd = childCmd(t, "sync-futex-pong", s.Name())
				cmd.Env = append(cmd.Env, "SHM_TEST_N="+strconv.Itoa(n))
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer cmd.Process.Kill()
			start := time.Now()
			if goPings {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				if _, err := futexPing(ctx, s, n, 0); err != nil {
					t.Fatal(err)
				}
			} else {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				out, err := exec.CommandContext(ctx, peer, "ping", s.Name(), strconv.Itoa(n), "0").CombinedOutput()
				if err != nil {
					t.Fatalf("C ping: %v %s", err, out)
				}
			}
			if err := cmd.Wait(); err != nil {
				t.Fatalf("pong: %v %s", err, cmd.Stderr)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Fatalf("%d round trips took %v: wake-ups are being missed", n, d)
			}
		})
	}
}

// TestWaitFarDeadline: a deadline past the hour a wait sleeps at most in
// one call (years away: its timespec would overflow a 32-bit time_t) still
// waits, and cancellation still ends it.
//
// Kills, on 386 only (a 32-bit time_t; 64-bit time_t holds a century):
// passing the whole time to the deadline as the timeout (EINVAL from
// futex, or an overflowed sem_clockwait deadline).
func TestWaitFarDeadline(t *testing.T) {
	s := create(t, 4096)
	sem := createSem(t, 0)
	ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(100*365*24*time.Hour))
	errc := make(chan error, 2)
	go func() { errc <- s.Wait(ctx, 0, 0) }()
	go func() { errc <- sem.Wait(ctx) }()
	waitBlocked(t, futexWaitFrame, 1)
	waitBlocked(t, semWaitFrame, 1)
	cancel()
	for range 2 {
		if err := <-errc; !errors.Is(err, context.Canceled) {
			t.Fatalf("Wait with a far deadline, cancelled = %v", err)
		}
	}
}

// TestFutexWakeZero (issue 14 item 6): Wake(off, 0) wakes nobody, as "up
// to n" says, while a waiter is blocked in the kernel; Wake(off, 1) then
// wakes it.
//
// Kills: passing n 0 to FUTEX_WAKE, which the kernel takes as 1 (Wake
// returns 1 and the waiter returns).
func TestFutexWakeZero(t *testing.T) {
	s := create(t, 4096)
	errc := make(chan error, 1)
	go func() { errc <- s.Wait(context.Background(), 64, 0) }()
	for range 20 {
		waitBlocked(t, futexWaitFrame, 1)
		if n, err := s.Wake(64, 0); n != 0 || err != nil {
			t.Fatalf("Wake(0) with a waiter = %d, %v; want 0", n, err)
		}
	}
	select {
	case err := <-errc:
		t.Fatalf("Wake(0) woke the waiter: %v", err)
	default:
	}
	w, _ := s.Uint32(64)
	w.Store(1)
	if _, err := s.Wake(64, 1); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if _, err := s.Wake(4096, 0); !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("Wake(0) outside the mapping = %v, want EINVAL", err)
	}
}

// TestFutexPrivateRefused (issue 14 item 9): Wait and Wake on a word of a
// private mapping are refused with EINVAL: the kernel keys the futex to
// this process, so another process's Wake would never reach the Wait. A
// shared Segment of the same object still waits and wakes.
//
// Kills: no private check (Wait returns nil at once on a word that is
// not old, and would never see another process's Wake on one that is).
func TestFutexPrivateRefused(t *testing.T) {
	s := create(t, 4096)
	p, err := shm.OpenFile(s.Name(), os.O_RDWR, 0, 0, &shm.Options{Private: true})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	wantPathErr(t, p.Wait(context.Background(), 0, 1), "futex", s.Name(), syscall.EINVAL)
	_, err = p.Wake(0, 1)
	wantPathErr(t, err, "futex", s.Name(), syscall.EINVAL)
	if _, err := p.Uint32(0); err != nil {
		t.Fatalf("Uint32 of a private mapping: %v", err)
	}
	if err := s.Wait(context.Background(), 0, 1); err != nil {
		t.Fatalf("shared Wait: %v", err)
	}
}

// TestFutexCloseRacingRemap: Close (or a Remap) while another Remap or
// Truncate of the same Mapping holds its lock, with Waits asleep. The
// first writer's end must not let the Waits it kicked out sleep again
// before the second writer, which waits for them: Close would never
// return.
//
// Kills: a wait.Set whose Resume (Remap's, Truncate's) clears the pause
// of a Close still waiting for the lock ("Close never returned").
func TestFutexCloseRacingRemap(t *testing.T) {
	for round := range 100 {
		s := create(t, 4096)
		// A second Mapping lets the Waits out if Close hangs (the first
		// one's lock is then out of reach).
		s2, err := shm.Open(s.Name())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s2.Close() })
		u, _ := s2.Uint32(0)
		const waiters = 4
		errc := make(chan error, waiters)
		for range waiters {
			go func() {
				var err error
				for u.Load() == 0 && err == nil {
					err = s.Wait(context.Background(), 0, 0)
				}
				errc <- err
			}()
		}
		waitBlocked(t, futexWaitFrame, waiters)
		remapped := make(chan error, 2)
		for range 2 {
			go func() { remapped <- s.Remap() }()
		}
		closed := make(chan error, 1)
		go func() { closed <- s.Close() }()
		select {
		case err := <-closed:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(10 * time.Second):
			u.Store(1)
			s2.Wake(0, waiters)
			<-closed
			t.Fatalf("round %d: Close never returned while Remaps raced it (until the Waits were woken)", round)
		}
		for range 2 {
			if err := <-remapped; err != nil && !errors.Is(err, fs.ErrClosed) {
				t.Fatal(err)
			}
		}
		for range waiters {
			wantPathErr(t, <-errc, "futex", s.Name(), fs.ErrClosed)
		}
	}
}
