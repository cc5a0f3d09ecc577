//go:build linux && cgo

package shm

import (
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

// A sleeper is one blocking call (a futex wait in Go, a libc semaphore
// wait in the shim) that another goroutine can end without touching the
// object waited on: it sends the sleeping thread a signal. The call must
// be one the kernel ends with EINTR when a signal handler runs even under
// SA_RESTART, which the Go runtime's handlers use: a futex wait with a
// timeout (the kernel's ERESTART_RESTARTBLOCK becomes EINTR once a handler
// ran), and glibc's and musl's sem_clockwait/sem_timedwait, which wait so.
//
// The signal is SIGURG, which the Go runtime already sends its own threads
// to preempt goroutines and ignores when it asks for nothing: a program
// that asks os/signal for SIGURG sees one more (Go documents that SIGURG
// comes spuriously). No peer, no semaphore count and no futex word is
// involved: a cancelled wait wakes nobody else and posts nothing.
//
// The layout is shared with sem.c (struct goshm_sleeper): three int32s.
type sleeper struct {
	tid    atomic.Int32 // the sleeping thread, valid while inside is 1
	inside atomic.Int32 // 1 from just before the stop check until the call returned
	stop   atomic.Int32 // 1 once interrupt was called: the call ends, and stays ended
}

// interrupt ends s's call, now or as soon as it starts, and returns once
// s is out of it. The sleeper sets inside, then checks stop; interrupt
// sets stop, then checks inside (both sequentially consistent): either the
// sleeper sees stop and never sleeps, or interrupt sees it inside and
// signals its thread, again (a signal can land just before the thread
// enters the kernel) until it is out.
func (s *sleeper) interrupt() {
	s.stop.Store(1)
	for d := 20 * time.Microsecond; s.inside.Load() != 0; d = min(2*d, 2*time.Millisecond) {
		syscall.Tgkill(pid, int(s.tid.Load()), syscall.SIGURG)
		time.Sleep(d)
	}
}

var pid = syscall.Getpid()

// foreverWait is the timeout of a wait that has no deadline: a futex wait
// needs one for a signal to end it with EINTR (see sleeper), and waking
// once an hour costs nothing.
const foreverWait = time.Hour

// futexWait is FUTEX_WAIT (shared) on the 32-bit word at addr while it
// holds val, for at most timeout, ended early by s.interrupt. It returns
// the errno (0 when woken, EAGAIN when the word did not hold val,
// ETIMEDOUT, EINTR for a signal, which may be interrupt's or the runtime's
// own) and whether s was interrupted.
func (s *sleeper) futexWait(addr unsafe.Pointer, val uint32, timeout time.Duration) (stopped bool, e syscall.Errno) {
	runtime.LockOSThread() // the signal must reach the thread in the call
	defer runtime.UnlockOSThread()
	s.tid.Store(int32(syscall.Gettid()))
	s.inside.Store(1)
	defer s.inside.Store(0)
	if s.stop.Load() != 0 {
		return true, syscall.EINTR
	}
	ts := syscall.NsecToTimespec(int64(max(timeout, 0)))
	_, _, e = syscall.Syscall6(syscall.SYS_FUTEX, uintptr(addr), futexWait, uintptr(val),
		uintptr(unsafe.Pointer(&ts)), 0, 0)
	return s.stop.Load() != 0, e
}

// A sleepers is the set of calls in progress on one object, so that Close
// can end them before it frees what they wait on.
type sleepers struct {
	mu     sync.Mutex
	set    map[*sleeper]struct{}
	closed bool
}

// add registers s; false after closeAll, when the caller must not sleep.
func (ss *sleepers) add(s *sleeper) bool {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.closed {
		return false
	}
	if ss.set == nil {
		ss.set = make(map[*sleeper]struct{})
	}
	ss.set[s] = struct{}{}
	return true
}

func (ss *sleepers) remove(s *sleeper) {
	ss.mu.Lock()
	delete(ss.set, s)
	ss.mu.Unlock()
}

// closeAll refuses new sleepers and interrupts those registered, without
// waiting for them: they are waited for by the caller's lock, which they
// hold for reading while inside. It returns at once; the interrupts run on.
func (ss *sleepers) closeAll() {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	ss.closed = true
	for s := range ss.set {
		go s.interrupt()
	}
}

// reopen undoes closeAll, for an object that can be used again.
func (ss *sleepers) reopen() {
	ss.mu.Lock()
	ss.closed = false
	ss.mu.Unlock()
}
