//go:build linux

package wait

import (
	"context"
	"errors"
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
	return s.Run(ctx, &Call{
		Lock: lk,
		Arm: func(r Result) (uintptr, uint32, bool, error) {
			return uintptr(unsafe.Pointer(w)), 0, r == Woken, nil
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
// ("the cancellation woke another call": the other call returns).
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

			other := end(context.Background())
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
