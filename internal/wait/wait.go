//go:build linux

// Package wait is the one way the module blocks: a futex sleep on a
// 32-bit word that cancellation, a deadline, the Close of the object
// waited on and a liveness check all end, without signals.
//
// Each blocking call sleeps in futex_waitv(2) (Linux 5.16) on two words
// at once: the caller's shared word, while it holds the expected value,
// and a private cancel word of the call's own. Cancellation (ctx done) and
// a kick (Close, Remap) store to the cancel word and wake it: only that
// call wakes, in this process or any other, and nothing depends on what
// the program does with its signals. The deadline is the call's own
// timeout on CLOCK_MONOTONIC. A call that waits for another party (a
// lock's holder) names an Alive test: while such calls sleep, one watcher
// goroutine per process runs it every Period of elapsed time, once per
// Key, and kicks out the sleepers of a Key whose party died. On kernels
// without futex_waitv (ENOSYS), or where a seccomp filter refuses it
// (EPERM, as container profiles older than the call do), the sleep is a
// FUTEX_WAIT on the caller's word bounded by fallbackPoll, after which the
// cancel word is looked at.
package wait

import (
	"context"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/posixshm/shm/internal/kernel"
)

// Why a sleep ended, as Run's arm and disarm see it.
type Result int

const (
	First   Result = iota // no sleep yet: the call's first arm
	Woken                 // woken, or the word did not hold the value, or spuriously
	Timeout               // a liveness period or the deadline passed
	Kicked                // Close or Remap kicked the call out: look at the object again
	Stopped               // ctx is done: Run returns ctx.Err() after disarm
)

// Cancel word bits.
const (
	cancelled = 1 << iota // ctx done: every later sleep ends at once
	kicked                // Close or Remap: this sleep ends; cleared at the next add
)

// A waiter is one blocking call: its cancel word and the two entries of
// its futex_waitv. It lives on the heap for the whole call, so the address
// handed to the kernel stays valid.
type waiter struct {
	cancel atomic.Uint32
	v      [2]kernel.FutexWaitv
}

func (w *waiter) stop(bit uint32) {
	w.cancel.Or(bit)
	Wake(uintptr(unsafe.Pointer(&w.cancel)), 1, true)
}

// fallbackPoll bounds a sleep where the kernel has no futex_waitv.
const fallbackPoll = 5 * time.Millisecond

// noWaitv is set once futex_waitv answered ENOSYS or EPERM (seccomp).
var noWaitv atomic.Bool

// sleep sleeps on the shared word at addr while it holds val, and on w's
// cancel word while it is 0, until woken or until (a CLOCK_MONOTONIC
// reading; 0 is no limit).
func (w *waiter) sleep(addr uintptr, val uint32, until int64) (Result, syscall.Errno) {
	if !noWaitv.Load() {
		w.v[0] = kernel.FutexWaitv{Val: uint64(val), Uaddr: uint64(addr), Flags: kernel.FUTEX_32}
		w.v[1] = kernel.FutexWaitv{Uaddr: uint64(uintptr(unsafe.Pointer(&w.cancel))), Flags: kernel.FUTEX_32 | kernel.FUTEX_PRIVATE_FLAG}
		var ts *kernel.Timespec
		if until > 0 {
			ts = &kernel.Timespec{Sec: until / 1e9, Nsec: until % 1e9}
		}
		_, _, e := syscall.Syscall6(kernel.SYS_FUTEX_WAITV, uintptr(unsafe.Pointer(&w.v[0])), 2, 0,
			uintptr(unsafe.Pointer(ts)), kernel.CLOCK_MONOTONIC, 0)
		if e != syscall.ENOSYS && e != syscall.EPERM { // futex_waitv itself never says EPERM
			return w.result(e)
		}
		noWaitv.Store(true)
	}
	for {
		if w.cancel.Load() != 0 {
			return w.result(0)
		}
		rel := int64(fallbackPoll)
		if until > 0 {
			rel = min(rel, max(until-Now(), 0))
		}
		ts := syscall.NsecToTimespec(rel)
		_, _, e := syscall.Syscall6(kernel.SYS_FUTEX, addr, kernel.FUTEX_WAIT, uintptr(val), uintptr(unsafe.Pointer(&ts)), 0, 0)
		if e != syscall.ETIMEDOUT || until > 0 && Now() >= until {
			return w.result(e)
		}
		// The poll, not the deadline: look at the cancel word, sleep again.
	}
}

func (w *waiter) result(e syscall.Errno) (Result, syscall.Errno) {
	switch c := w.cancel.Load(); {
	case c&cancelled != 0:
		return Stopped, 0
	case c&kicked != 0:
		return Kicked, 0
	}
	switch e {
	case 0, syscall.EAGAIN, syscall.EINTR:
		return Woken, 0
	case syscall.ETIMEDOUT:
		return Timeout, 0
	}
	return Woken, e
}

// Now is CLOCK_MONOTONIC in nanoseconds, the clock of every deadline here.
func Now() int64 {
	var ts syscall.Timespec
	syscall.Syscall(syscall.SYS_CLOCK_GETTIME, kernel.CLOCK_MONOTONIC, uintptr(unsafe.Pointer(&ts)), 0)
	return ts.Nano()
}

// Wake wakes up to n sleepers on the 32-bit word at addr (shared between
// processes unless private) and returns how many it woke. addr is never
// Go memory that can move: a mapping, libc's, or a heap word kept alive.
func Wake(addr uintptr, n int, private bool) (int, syscall.Errno) {
	op := uintptr(kernel.FUTEX_WAKE)
	if private {
		op |= kernel.FUTEX_PRIVATE_FLAG
	}
	r, _, e := syscall.RawSyscall6(kernel.SYS_FUTEX, addr, op, uintptr(n), 0, 0, 0)
	return int(r), e
}

// A Set is the blocking calls in progress on one object, so that Close
// (and Remap) can end them before freeing or moving what they sleep on.
// The zero value is ready.
type Set struct {
	mu     sync.Mutex
	set    map[*waiter]struct{}
	paused int // Pauses not yet Resumed: writers holding or awaiting the lock
}

// add registers w for one sleep, clearing an earlier kick; false while
// paused, when the caller must not sleep but retry once it has the
// object's lock again (Close or Remap holds it then).
func (s *Set) add(w *waiter) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.paused > 0 {
		return false
	}
	if s.set == nil {
		s.set = make(map[*waiter]struct{})
	}
	w.cancel.And(^uint32(kicked))
	s.set[w] = struct{}{}
	return true
}

func (s *Set) remove(w *waiter) {
	s.mu.Lock()
	delete(s.set, w)
	s.mu.Unlock()
}

// Pause refuses new sleeps and kicks the calls asleep out of the kernel,
// without waiting: they hold the object's lock for reading while they
// sleep, and the caller waits for them by taking it for writing. Sleeps
// stay refused until every Pause is Resumed: a writer still waiting for
// the lock keeps them out after another writer's Resume.
func (s *Set) Pause() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.paused++
	for w := range s.set {
		w.stop(kicked)
	}
}

// Resume undoes one Pause, for an object that stays usable (Remap).
func (s *Set) Resume() {
	s.mu.Lock()
	s.paused--
	s.mu.Unlock()
}

// A Call describes one blocking call for Run.
type Call struct {
	// Lock is the object's lock, taken for reading around each arm, sleep
	// and disarm; its writer (Close, Remap) first Pauses the Set.
	Lock sync.Locker
	// Arm is called with Lock held, first with First and then after each
	// sleep with why it ended (Woken, Timeout, Kicked; never Stopped). It
	// ends the call (done, or an error) or names the shared 32-bit word
	// to sleep on while it holds val.
	Arm func(r Result) (addr uintptr, val uint32, done bool, err error)
	// Disarm, if set, is called with Lock held once for each Arm that
	// named a word, after the sleep, with why it ended or why there was
	// none (Stopped: ctx done; Timeout: also the deadline; Kicked: also a
	// Set paused), before the next Arm or before Run returns.
	Disarm func(r Result)
	// Alive, if set, tells whether the party the call waits for (a lock's
	// holder) still lives. While the call sleeps, the process's watcher
	// calls it every Period of elapsed time, once per Key however many
	// calls sleep with that Key, and wakes every sleeper on the word when
	// it says false; Arm then sees the death. It is called with Lock held
	// for reading by the sleeping call, so what it reads stays valid.
	Alive  func() bool
	Key    any
	Period time.Duration
}

// Run runs c until Arm ends it, ctx is done (ctx.Err(), also for a
// deadline reached) or the sleep fails (the errno). It looks at ctx only
// after Arm: a call that can finish at once finishes even with ctx done.
func (s *Set) Run(ctx context.Context, c *Call) error {
	w := new(waiter)
	if ctx.Done() != nil {
		stop := context.AfterFunc(ctx, func() { w.stop(cancelled) })
		defer stop()
	}
	var deadline int64 // CLOCK_MONOTONIC; 0: none
	if d, ok := ctx.Deadline(); ok {
		// time.Until before Now: the time between the two readings then
		// moves the deadline later, never earlier than ctx's (read the
		// other way round, a Wait returned 22 µs before its deadline)
		until := time.Until(d)
		deadline = Now() + max(int64(until), 1)
	}
	r := First
	for {
		c.Lock.Lock()
		addr, val, done, err := c.Arm(r)
		if done || err != nil {
			c.Lock.Unlock()
			return err
		}
		switch {
		case ctx.Err() != nil:
			r, err = Stopped, ctx.Err()
		case deadline > 0 && Now() >= deadline:
			r, err = Timeout, context.DeadlineExceeded
		case !s.add(w):
			r = Kicked // Close or Remap holds the lock next
		default:
			r = First
		}
		if r != First {
			if c.Disarm != nil {
				c.Disarm(r)
			}
			c.Lock.Unlock()
			if err != nil {
				return err
			}
			continue
		}
		var we *watchEntry
		if c.Alive != nil {
			we = watches.add(c, w)
		}
		var e syscall.Errno
		r, e = w.sleep(addr, val, deadline)
		if we != nil {
			watches.remove(we)
		}
		s.remove(w)
		if c.Disarm != nil {
			c.Disarm(r)
		}
		c.Lock.Unlock()
		if r == Stopped {
			return ctx.Err()
		}
		if e != 0 {
			return e
		}
	}
}

// watches is the process's watcher: while calls with Alive sleep, one
// goroutine runs each Key's Alive every Period and wakes the sleepers of
// a word whose party died.
var watches watcher

type watcher struct {
	mu      sync.Mutex
	keys    map[any]*keyWatch
	running bool
}

// A keyWatch is the calls asleep with one Key, and the word each sleeps
// on.
type keyWatch struct {
	calls map[*Call]*waiter
	last  int64 // when Alive last ran
}

type watchEntry struct{ c *Call }

func (d *watcher) add(c *Call, w *waiter) *watchEntry {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.keys == nil {
		d.keys = make(map[any]*keyWatch)
	}
	kw := d.keys[c.Key]
	if kw == nil {
		kw = &keyWatch{calls: make(map[*Call]*waiter), last: Now()}
		d.keys[c.Key] = kw
	}
	kw.calls[c] = w
	if !d.running {
		d.running = true
		go d.run()
	}
	return &watchEntry{c}
}

func (d *watcher) remove(e *watchEntry) {
	d.mu.Lock()
	defer d.mu.Unlock()
	kw := d.keys[e.c.Key]
	delete(kw.calls, e.c)
	if len(kw.calls) == 0 {
		delete(d.keys, e.c.Key)
	}
}

// run calls, whenever a Key's Period passed, the Alive of one of its
// sleeping calls (each call in the set holds its object's lock for
// reading, and leaves the set under d.mu, so what Alive reads stays
// valid), and kicks every sleeping call of a Key found dead out of the
// kernel through its own cancel word (the shared word's page may be gone:
// a peer truncated the object), for its Arm to look again.
func (d *watcher) run() {
	next := time.Duration(0)
	for {
		time.Sleep(next)
		d.mu.Lock()
		if len(d.keys) == 0 {
			d.running = false
			d.mu.Unlock()
			return
		}
		now := Now()
		next = time.Second
		for _, kw := range d.keys {
			for c := range kw.calls { // any one of them
				if now-kw.last >= int64(c.Period) {
					kw.last = now
					if !c.Alive() {
						for _, w := range kw.calls {
							w.stop(kicked) // by its own word: the shared word's page may be gone (a truncate)
						}
					}
				}
				next = min(next, time.Duration(kw.last+int64(c.Period)-now))
				break
			}
		}
		next = max(next, time.Millisecond)
		d.mu.Unlock()
	}
}
