//go:build linux && cgo

package shm

import (
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
// The layout is shared with wake.h (struct goshm_sleeper): four int32s.
type sleeper struct {
	tid    atomic.Int32 // the sleeping thread, valid while inside is 1
	inside atomic.Int32 // 1 from just before the flags are checked until the call returned
	stop   atomic.Int32 // 1 once interrupt was called (ctx done): every later call ends at once
	kick   atomic.Int32 // 1 once kicked by Close or Remap: this registration's call ends
}

// interrupt ends s's call, now or as soon as it starts, and every later
// one, and returns once s is out of the call.
func (s *sleeper) interrupt() {
	s.stop.Store(1)
	s.signalOut()
}

// stopped reports whether s was interrupted or kicked.
func (s *sleeper) stopped() bool { return s.stop.Load() != 0 || s.kick.Load() != 0 }

// signalOut makes s leave its call. The sleeper sets inside, then checks
// its flags; the caller set a flag, then checks inside (both sequentially
// consistent): either the sleeper sees the flag and never sleeps, or
// signalOut sees it inside and signals its thread, again (a signal can
// land just before the thread enters the kernel) until it is out.
func (s *sleeper) signalOut() {
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
// holds val, for at most timeout, ended early by s.interrupt or a kick. It
// returns the errno (0 when woken, EAGAIN when the word did not hold val,
// ETIMEDOUT, EINTR for a signal, which may be ours or another) and whether
// s was stopped or kicked. It is one cgo call (wake.c), so that the thread
// recorded for the signal is the one in the system call.
func (s *sleeper) futexWait(addr unsafe.Pointer, val uint32, timeout time.Duration) (stopped bool, e syscall.Errno) {
	e = futexSleep(addr, val, int64(max(timeout, 0)), s)
	return s.stopped(), e
}

// A sleepers is the set of calls in progress on one object, so that Close
// (and Remap) can end them before they free or move what they wait on.
// The zero value is ready.
type sleepers struct {
	mu     sync.Mutex
	set    map[*sleeper]struct{}
	paused bool
}

// add registers s for one call (clearing an earlier kick); false while
// paused, when the caller must not sleep but retry once it gets its lock
// again (Close or Remap holds it then).
func (ss *sleepers) add(s *sleeper) bool {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.paused {
		return false
	}
	if ss.set == nil {
		ss.set = make(map[*sleeper]struct{})
	}
	s.kick.Store(0)
	ss.set[s] = struct{}{}
	return true
}

func (ss *sleepers) remove(s *sleeper) {
	ss.mu.Lock()
	delete(ss.set, s)
	ss.mu.Unlock()
}

// pause refuses new sleepers and kicks those registered out of their
// calls, without waiting: they hold the object's lock for reading while
// inside, and the caller then waits for them by taking it for writing.
func (ss *sleepers) pause() {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	ss.paused = true
	for s := range ss.set {
		s.kick.Store(1)
		go s.signalOut()
	}
}

// resume undoes pause, for an object that stays usable (Remap).
func (ss *sleepers) resume() {
	ss.mu.Lock()
	ss.paused = false
	ss.mu.Unlock()
}

// lockOut takes m's lock for writing, first kicking Waits and Locks out of
// the kernel (they hold it for reading while inside); unlockIn lets them
// sleep again and releases it.
func (m *Mapping) lockOut() {
	m.sleepers.pause()
	m.mu.Lock()
}

func (m *Mapping) unlockIn() {
	m.sleepers.resume()
	m.mu.Unlock()
}
