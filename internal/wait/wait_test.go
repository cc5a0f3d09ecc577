//go:build linux

package wait

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unsafe"
)

// word returns a 32-bit word of a shared anonymous mapping.
func word(t *testing.T) *atomic.Uint32 {
	mem, err := syscall.Mmap(-1, 0, 4096, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED|syscall.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Munmap(mem) })
	return (*atomic.Uint32)(unsafe.Pointer(&mem[0]))
}

// waitWord is Mapping.Wait's call on w: one sleep while w holds 0.
func waitWord(s *Set, lk sync.Locker, ctx context.Context, w *atomic.Uint32) error {
	return waitWordCounting(s, lk, ctx, w, nil)
}

// waitWordCounting is waitWord that counts, in idle, the wake-ups that
// found the word still 0 (a signal's EINTR, which a sleep may always
// return; or a bug's): the call sleeps again after each.
func waitWordCounting(s *Set, lk sync.Locker, ctx context.Context, w *atomic.Uint32, idle *atomic.Int32) error {
	return s.Run(ctx, &Call{
		Lock: lk,
		Arm: func(r Result) (uintptr, uint32, bool, error) {
			if r == Woken && w.Load() == 0 && idle != nil {
				idle.Add(1)
			}
			return uintptr(unsafe.Pointer(w)), 0, r == Woken && w.Load() != 0, nil
		},
	})
}

// asleep waits until n calls of s are registered asleep.
func asleep(s *Set, n int) {
	for {
		s.mu.Lock()
		k := len(s.set)
		s.mu.Unlock()
		if k >= n {
			return
		}
		time.Sleep(time.Millisecond)
	}
}

// TestRun: with futex_waitv and with the fallback for kernels without it
// (forced), a sleeping call returns on a Wake of its word, on
// cancellation, at its deadline, and when its Set is paused (Close); a
// cancellation wakes only its own call.
//
// Kills: a fallback that never looks at the cancel word (cancellation
// hangs: "still asleep"); a fallback whose 5 ms polls return as wake-ups
// ("the other call woke 5 times with its word unchanged"). The calls wait
// for their word to change, not for any wake-up: a sleep may always end
// with a signal's EINTR (a deadline call once returned at such a wake-up
// under -race in CI, "call with a deadline: <nil>").
func TestRun(t *testing.T) {
	for _, fallback := range []bool{false, true} {
		name := map[bool]string{false: "futex_waitv", true: "fallback"}[fallback]
		t.Run(name, func(t *testing.T) {
			noWaitv.Store(fallback)
			t.Cleanup(func() { noWaitv.Store(false) })
			w := word(t)
			var s Set
			var mu sync.RWMutex
			end := func(ctx context.Context) chan error {
				c := make(chan error, 1)
				go func() { c <- waitWord(&s, mu.RLocker(), ctx, w) }()
				return c
			}
			expect := func(c chan error, want error, what string) {
				t.Helper()
				select {
				case err := <-c:
					if !errors.Is(err, want) && err != want {
						t.Fatalf("%s: %v; want %v", what, err, want)
					}
				case <-time.After(5 * time.Second):
					t.Fatalf("%s: still asleep after 5 s", what)
				}
			}

			var idle atomic.Int32 // the other call's wake-ups that found its word unchanged
			other := make(chan error, 1)
			go func() { other <- waitWordCounting(&s, mu.RLocker(), context.Background(), w, &idle) }()
			asleep(&s, 1)
			ctx, cancel := context.WithCancel(context.Background())
			c := end(ctx)
			asleep(&s, 2)
			cancel()
			expect(c, context.Canceled, "cancelled call")
			select {
			case err := <-other:
				t.Fatalf("the cancellation woke another call: %v", err)
			case <-time.After(20 * time.Millisecond):
			}

			w.Store(1)
			Wake(uintptr(unsafe.Pointer(w)), 1, false)
			expect(other, nil, "woken call")
			w.Store(0)
			if n := idle.Load(); n > 2 { // a signal's EINTR now and then; a 5 ms poll taken for a wake-up, every 5 ms
				t.Fatalf("the other call woke %d times with its word unchanged", n)
			}

			dctx, dcancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
			defer dcancel()
			expect(end(dctx), context.DeadlineExceeded, "call with a deadline")

			closed := errors.New("closed")
			var shut bool
			c = make(chan error, 1)
			go func() {
				c <- s.Run(context.Background(), &Call{
					Lock: mu.RLocker(),
					Arm: func(Result) (uintptr, uint32, bool, error) {
						if shut {
							return 0, 0, false, closed
						}
						return uintptr(unsafe.Pointer(w)), 0, false, nil
					},
				})
			}()
			asleep(&s, 1)
			s.Pause()
			mu.Lock()
			shut = true
			mu.Unlock()
			expect(c, closed, "call under Pause (Close)")
		})
	}
}

// TestPauseTwoWriters: two writers (Truncate and Close, or two Remaps)
// each Pause the Set and take the lock. The first one's Resume must not
// undo the second one's Pause: a call that the first writer kicked out
// waits for the lock again, gets it before the second writer (a pending
// RWMutex writer lets readers blocked earlier in first), and must not
// go back to sleep, or the second writer waits for it forever.
//
// Kills: a Set whose Resume clears the pause of a writer still waiting
// for the lock ("second writer never got the lock").
func TestPauseTwoWriters(t *testing.T) {
	w := word(t)
	var s Set
	var mu sync.RWMutex
	done := make(chan error, 1)
	go func() { done <- waitWord(&s, mu.RLocker(), context.Background(), w) }()
	asleep(&s, 1)

	s.Pause() // writer 1 (Truncate)
	mu.Lock()
	// The kicked call is out of the kernel and back at the read lock.
	blockedIn(t, "(*RWMutex).RLock")
	s.Pause() // writer 2 (Close) pauses, then waits for the lock
	got := make(chan struct{})
	go func() { mu.Lock(); close(got) }()
	blockedIn(t, "(*RWMutex).Lock")
	s.Resume() // writer 1 done
	mu.Unlock()

	select {
	case <-got:
	case <-time.After(5 * time.Second):
		w.Store(1) // let the call out, so that the test ends
		Wake(uintptr(unsafe.Pointer(w)), 1, false)
		t.Fatal("second writer never got the lock: the call it paused went back to sleep")
	}
	s.Resume() // writer 2 done (a Remap: the object stays usable)
	mu.Unlock()
	w.Store(1)
	Wake(uintptr(unsafe.Pointer(w)), 1, false)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// blockedIn waits until some goroutine is blocked with fn on its stack.
func blockedIn(t *testing.T, fn string) {
	t.Helper()
	buf := make([]byte, 1<<20)
	for deadline := time.Now().Add(10 * time.Second); ; {
		n := runtime.Stack(buf, true)
		for _, g := range strings.Split(string(buf[:n]), "\n\n") {
			if strings.Contains(g, "[sync.") && strings.Contains(g, fn) {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("nobody blocked in %s", fn)
		}
		runtime.Gosched()
	}
}
