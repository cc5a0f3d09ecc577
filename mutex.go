//go:build linux && cgo

package shm

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/posixshm/shm/internal/kernel"
	"github.com/posixshm/shm/internal/proc"
	"github.com/posixshm/shm/internal/wait"
)

// MutexSize is the number of bytes a Mutex occupies in a mapping: one
// 64-bit word, at an offset that is a multiple of 8. Zero bytes are an
// unlocked Mutex. The layout is c/LAYOUT.md's, shared with c/shmmutex.h.
const MutexSize = 8

// ErrOwnerDead is wrapped by the error of a Lock or TryLock that took the
// lock from a process that died holding it. The lock is then held by the
// caller, as after a plain Lock; what it protects may be half-updated, and
// only the caller can check and repair it before Unlock. The error also
// wraps syscall.EOWNERDEAD, as pthread_mutex_lock and shmmutex_lock say it.
var ErrOwnerDead = errors.New("lock taken from a process that died holding it")

var errOwnerDead = fmt.Errorf("%w (%w)", ErrOwnerDead, syscall.EOWNERDEAD)

// The lock word (c/LAYOUT.md). 0 is unlocked. Locked, it holds the
// holder's token, a 62-bit number drawn at random by each process for
// each object, in bits 0-30 and 32-62; bit 31 says that a process may be
// waiting; bit 63 is 0 in layout version 1 (a later layout sets it, and
// version 1 refuses such a word). The futex is the 32-bit half holding
// bits 0-31, so taking, releasing and the waiters bit all change it.
const (
	waitersBit = 1 << 31
	tokenMask  = 0x7fffffff_7fffffff
	layoutBit  = 1 << 63
	// slotBase is the file offset of slot 0: the holder of token t holds
	// an open-file-description write lock on the byte at slotBase+slot(t)
	// of the object for as long as its registration lives. Far beyond any
	// real object's end, where locks may lie.
	slotBase = 1 << 62
)

// slot is the byte (from slotBase) of token t: its 62 bits, packed.
func slot(t uint64) int64 { return int64(t>>32)<<31 | int64(t&0x7fffffff) }

// A Mutex is a lock between processes whose state lives in MutexSize bytes
// of a mapping, from (*Segment).Mutex or (*Mapping).Mutex. Go and C
// (c/shmmutex.h) processes that map the same object lock the same Mutex.
//
// A Mutex is held by a process, not a goroutine or thread: any goroutine
// of the holding process may Unlock it, as with sync.Mutex, and every
// Mutex value for the same bytes of the same object in one process, from
// any Segment or Mapping, is the same lock. It is not reentrant: a second
// Lock waits, even in the holding process. When the holding process dies,
// the next Lock or TryLock takes the lock and reports ErrOwnerDead.
//
// How a death is known: a process that uses a lock of an object holds an
// open-file-description lock (fcntl F_OFD_SETLK) on a byte of the object
// far past its end, chosen by a random 62-bit token that it writes into the
// lock word when it takes the lock: its registration on the object. The
// kernel releases that byte lock when the process dies, whatever its pid
// namespace; another process that finds the word held tests the byte
// (F_OFD_GETLK) and takes the lock from the dead only if nobody holds it.
// No pid is ever trusted: pid reuse and pid namespaces do not matter. See
// c/LAYOUT.md.
//
// The registration lives as long as the process has an open Mapping (or
// Segment) of the object from which it made a Mutex: the first such Mutex
// makes it, and the Close of the last such Mapping closes it, so that a
// process that creates, locks, closes and unlinks objects over and over
// keeps no descriptor and no memory of them. While one of those Mappings
// is open, the process's locks on the object are its own. Once the last
// closes, a lock the process still holds there looks as if its holder had
// died, which is the truth for the lock, since the process can no longer
// Unlock it: the next Lock or TryLock (of another process, or of this one
// through a new Mapping) takes it with ErrOwnerDead. A Mutex made after
// that starts a new registration with a new token.
//
// The Mutex is the mapped memory itself, like Uint32: valid until the
// mapping's Close (Truncate and Remap never unmap what it points into).
// After Close, Lock, TryLock and Unlock return errors wrapping
// fs.ErrClosed, and a Lock asleep when Close came ends so; one that
// starts while Close runs in another goroutine races with the unmap, as
// a use of Bytes would. Lock, TryLock and Unlock fault like Bytes if the
// object shrank below the Mutex (a Lock asleep then ends with ErrFault).
// Taking and releasing an unlocked lock is one compare-and-swap each,
// after one load of the mapping's closed flag, with no system call, cgo
// call or allocation. Safe for concurrent use.
type Mutex struct {
	word *atomic.Uint64
	m    *Mapping
	off  int64
	reg  *objReg
}

// Mutex returns the lock whose MutexSize bytes start at off of the mapping.
// off must be a multiple of 8 with MutexSize bytes inside the mapping,
// else the error wraps syscall.EINVAL; a read-only or private mapping
// cannot hold a lock other processes see (syscall.EINVAL too), and after
// Close the error wraps fs.ErrClosed. All-zero bytes are an unlocked lock:
// a new object needs no initialisation.
//
// The first Mutex of an object in a process opens the object again and
// takes this process's byte lock on it, its registration (see Mutex); the
// byte lock needs the object open for writing. Each Mapping from which a
// Mutex is made keeps that registration until its Close, and the Close of
// the last one closes the descriptor and so drops the byte lock: a lock the
// process still holds in the object is then taken by the next locker with
// ErrOwnerDead.
func (m *Mapping) Mutex(off int64) (*Mutex, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	p, err := m.word("mutex", off, MutexSize)
	if err != nil {
		return nil, err
	}
	if m.readOnly || m.private {
		return nil, argErr("mutex", m.name, "a read-only or private (copy-on-write) mapping cannot hold a lock other processes see")
	}
	reg, err := register(m, uintptr(p))
	if err != nil {
		return nil, err
	}
	return &Mutex{word: (*atomic.Uint64)(p), m: m, off: off, reg: reg}, nil
}

// An objReg is this process's registration on one object: its own open
// file description of the object, holding the byte lock of its token. It
// lives while an open Mapping holds it (refs counts them, each Mapping
// once, in its reg field); the last release closes fd, which drops the
// byte lock, and sets it to -1.
//
// Its descriptor is used (alive) only by a Lock or TryLock holding the
// read lock of an open Mapping that holds the registration, and by the
// watcher's test for such a Lock while it sleeps: Close takes the write lock,
// so it releases the registration only once they are done.
type objReg struct {
	fd    int
	token uint64
	name  string
	id    proc.FileID
	refs  int // guarded by registry
}

// registry maps each object this process has a registration on to it,
// and each open Mapping that holds one to it.
var registry struct {
	sync.Mutex
	byID      map[proc.FileID]*objReg
	byMapping map[*Mapping]*objReg
}

// register returns this process's registration on the object m maps
// (addr is inside the mapping), making it if the process has none, and
// makes m hold it until its Close (a close hook: releaseReg). m's read
// lock is held.
func register(m *Mapping, addr uintptr) (*objReg, error) {
	registry.Lock()
	r := registry.byMapping[m]
	registry.Unlock()
	if r != nil {
		return r, nil // a Mapping maps one object for life
	}
	fd, err := reopenObject(m, addr)
	if err != nil {
		return nil, err
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil {
		syscall.Close(fd)
		return nil, &fs.PathError{Op: "fstat", Path: m.name, Err: err}
	}
	id := proc.FileID{Dev: uint64(st.Dev), Ino: st.Ino}
	registry.Lock()
	defer registry.Unlock()
	if r := registry.byMapping[m]; r != nil { // another Mutex call on m got there first
		syscall.Close(fd)
		return r, nil
	}
	if r := registry.byID[id]; r != nil {
		syscall.Close(fd)
		r.refs++
		hold(m, r)
		return r, nil
	}
	for range 100 {
		t := rand.Uint64() & tokenMask
		if t&0x7fffffff == 0 {
			continue // the futex half must be nonzero while locked
		}
		lk := syscall.Flock_t{Type: syscall.F_WRLCK, Whence: 0, Start: slotBase + slot(t), Len: 1}
		err := syscall.FcntlFlock(uintptr(fd), kernel.F_OFD_SETLK, &lk)
		if err == syscall.EAGAIN || err == syscall.EACCES {
			continue // a live process has this token
		}
		if err != nil {
			syscall.Close(fd)
			return nil, &fs.PathError{Op: "fcntl", Path: m.name, Err: err}
		}
		if registry.byID == nil {
			registry.byID = make(map[proc.FileID]*objReg)
		}
		r := &objReg{fd: fd, token: t, name: m.name, id: id, refs: 1}
		registry.byID[id] = r
		hold(m, r)
		return r, nil
	}
	syscall.Close(fd)
	return nil, &fs.PathError{Op: "fcntl", Path: m.name, Err: fmt.Errorf("no free token after 100 draws: %w", syscall.EAGAIN)}
}

// hold makes m hold r until its Close. registry is locked.
func hold(m *Mapping, r *objReg) {
	if registry.byMapping == nil {
		registry.byMapping = make(map[*Mapping]*objReg)
	}
	registry.byMapping[m] = r
	m.onClose.add(func() { releaseReg(m) })
}

// releaseReg lets go of m's registration: the last Mapping to let go
// closes its descriptor, and so drops the byte lock of its token, and a
// later Mutex of the object makes a new one. It is m's close hook: m is
// closed, and no Lock or TryLock of m uses the registration.
func releaseReg(m *Mapping) {
	registry.Lock()
	defer registry.Unlock()
	r := registry.byMapping[m]
	delete(registry.byMapping, m)
	if r.refs--; r.refs > 0 {
		return
	}
	delete(registry.byID, r.id)
	syscall.Close(r.fd)
	r.fd = -1 // a use after this fails (EBADF), never reaches another file
}

// reopenObject opens the object m maps, read-write, as a new open file
// description. A mapping with a descriptor reopens /proc/self/fd/N (which
// works for unlinked objects and memfds). A Mapping of a file that was
// closed finds the file from its address in /proc/self/maps: through
// /proc/self/map_files (which needs CAP_SYS_ADMIN), else by the path if it
// still names the same device and inode, else through a descriptor of this
// process that does.
func reopenObject(m *Mapping, addr uintptr) (int, error) {
	if m.fd >= 0 {
		fd, err := syscall.Open(proc.FD(m.fd), syscall.O_RDWR|syscall.O_CLOEXEC, 0)
		if err != nil {
			return -1, &fs.PathError{Op: "open", Path: m.name, Err: err}
		}
		return fd, nil
	}
	maps, err := proc.Maps("/proc/self/maps")
	if err != nil {
		return -1, err
	}
	for _, mp := range maps {
		if uint64(addr) < mp.Start || uint64(addr) >= mp.End || mp.Path == "" {
			continue
		}
		want := mp.ID()
		same := func(fd int) bool {
			var st syscall.Stat_t
			if syscall.Fstat(fd, &st) != nil {
				return false
			}
			return proc.FileID{Dev: uint64(st.Dev), Ino: st.Ino}.MapID() == want
		}
		try := func(path string) int {
			fd, err := syscall.Open(path, syscall.O_RDWR|syscall.O_CLOEXEC|syscall.O_NONBLOCK, 0)
			if err != nil {
				return -1
			}
			if !same(fd) {
				syscall.Close(fd)
				return -1
			}
			return fd
		}
		if fd := try("/proc/self/map_files/" + mp.Range); fd >= 0 {
			return fd, nil
		}
		if mp.Path[0] == '/' {
			if fd := try(mp.Path); fd >= 0 {
				return fd, nil
			}
		}
		ents, _ := os.ReadDir("/proc/self/fd")
		for _, e := range ents {
			if n, err := strconv.Atoi(e.Name()); err == nil {
				if fd := try(proc.FD(n)); fd >= 0 {
					return fd, nil
				}
			}
		}
		return -1, &fs.PathError{Op: "open", Path: m.name, Err: fmt.Errorf(
			"cannot open the mapped file again (no /proc/self/map_files access, its path is gone and no descriptor of it is open): %w", syscall.ENOENT)}
	}
	return -1, &fs.PathError{Op: "open", Path: m.name, Err: fmt.Errorf("mapping not found in /proc/self/maps: %w", syscall.ENOENT)}
}

// alive reports whether the process holding token t's byte lock is alive:
// whether anybody holds that byte (F_OFD_GETLK). Our own descriptor's
// locks never conflict with themselves, so t must not be r's own token.
func (r *objReg) alive(t uint64) (bool, error) {
	lk := syscall.Flock_t{Type: syscall.F_WRLCK, Whence: 0, Start: slotBase + slot(t), Len: 1}
	if err := syscall.FcntlFlock(uintptr(r.fd), kernel.F_OFD_GETLK, &lk); err != nil {
		return false, &fs.PathError{Op: "fcntl", Path: r.name, Err: err}
	}
	return lk.Type != syscall.F_UNLCK, nil
}

// step makes one attempt to take the lock at w. It takes a free lock, and
// one whose holder is dead (dead true). Otherwise it returns the word it
// found, with the waiters bit set in memory first if announce: a process
// about to sleep must be woken by the Unlock.
func (mu *Mutex) step(op string, w *atomic.Uint64, announce bool) (took, dead bool, cur uint64, err error) {
	me := mu.reg.token
	for {
		cur = w.Load()
		switch holder := cur &^ waitersBit; {
		case cur&layoutBit != 0:
			return false, false, cur, &fs.PathError{Op: op, Path: mu.m.name, Err: fmt.Errorf(
				"lock word %#x at offset %d is not layout version 1: %w", cur, mu.off, syscall.EPROTO)}
		case cur == 0:
			next := me
			if announce {
				next |= waitersBit // others may sleep too: our Unlock must wake one
			}
			if w.CompareAndSwap(0, next) {
				return true, false, 0, nil
			}
			continue
		case holder != me:
			alive, err := mu.reg.alive(holder)
			if err != nil {
				return false, false, cur, err
			}
			if !alive {
				if w.CompareAndSwap(cur, me|cur&waitersBit) {
					return true, true, 0, nil
				}
				continue
			}
		}
		if !announce || cur&waitersBit != 0 {
			return false, false, cur, nil
		}
		if w.CompareAndSwap(cur, cur|waitersBit) {
			return false, false, cur | waitersBit, nil
		}
	}
}

func (mu *Mutex) result(op string, dead bool) error {
	if dead {
		return &fs.PathError{Op: op, Path: mu.m.name, Err: errOwnerDead}
	}
	return nil
}

// TryLock takes the lock if it is free, or if its holder died (then with
// an error wrapping ErrOwnerDead, the lock held), and reports whether it
// did; it never waits. A lock this process holds is not free. Without
// contention it is one compare-and-swap; finding the lock held costs one
// fcntl system call to see whether the holder lives.
func (mu *Mutex) TryLock() (bool, error) {
	if mu.m.closed.Load() {
		return false, mu.m.errClosed("trylock")
	}
	if mu.word.CompareAndSwap(0, mu.reg.token) {
		return true, nil
	}
	// The registration is used only under the read lock of an open mapping
	// (Close releases it).
	m := mu.m
	m.mu.RLock()
	defer m.mu.RUnlock()
	p, err := m.word("trylock", mu.off, MutexSize)
	if err != nil {
		return false, err
	}
	took, dead, _, err := mu.step("trylock", (*atomic.Uint64)(p), false)
	if err != nil {
		return false, err
	}
	return took, mu.result("trylock", dead)
}

// Lock takes the lock, waiting while another process (or this one) holds
// it, until ctx is done. A free lock is taken even when ctx is done. If the
// holder died, Lock takes the lock and returns an error wrapping
// ErrOwnerDead: the lock is held, and the caller repairs what it protects.
//
// A waiting Lock sleeps on the lock word (the package's one wait, see
// Mapping.Wait), woken by the Unlock of any process, C's included. Every
// 250 ms of elapsed time, whatever woke it meanwhile, it reads the word
// again and tests whether the process holding the lock now still holds
// its byte lock: a holder's death, the first one's or a later one's, is
// seen within about 250 ms. Sleeping, it costs no CPU but that test.
// Cancellation and the deadline of ctx end a waiting Lock at once,
// whatever the program does with its signals; one that an Unlock woke
// just then wakes another waiter in its place. Close of the mapping ends
// it with an error wrapping fs.ErrClosed.
func (mu *Mutex) Lock(ctx context.Context) error {
	if ctx == nil { // refused always, not only when Lock would wait
		return argErr("lock", mu.m.name, "nil context")
	}
	if mu.m.closed.Load() {
		return mu.m.errClosed("lock")
	}
	if mu.word.CompareAndSwap(0, mu.reg.token) {
		return nil
	}
	return mu.lockSlow(ctx)
}

// lockPeriod is how often, by elapsed time, the holder of a lock that
// Locks of this process wait for is tested.
const lockPeriod = 250 * time.Millisecond

func (mu *Mutex) lockSlow(ctx context.Context) error {
	m := mu.m
	var dead bool
	var word *atomic.Uint64
	err := m.waits.Run(ctx, &wait.Call{
		Lock: m.mu.RLocker(),
		// Each arm, after any wake-up, reads the word again and tests
		// whoever holds the lock now.
		Arm: func(wait.Result) (uintptr, uint32, bool, error) {
			p, err := m.word("lock", mu.off, MutexSize)
			if err != nil {
				return 0, 0, false, err
			}
			word = (*atomic.Uint64)(p)
			var took, d bool
			var cur uint64
			err = faultAt("lock", m.name, word, func() (err error) {
				took, d, cur, err = mu.step("lock", word, true)
				return err
			})
			if took || err != nil {
				dead = d
				return 0, 0, true, err
			}
			// The waiters bit is set: an Unlock will wake a sleeper.
			return uintptr(low32(p)), uint32(cur), false, nil
		},
		// A call that leaves without the lock (ctx done, Close) may have
		// taken the one wake-up of an Unlock, which cleared the waiters
		// bit: then nobody else would wake. While the bit is clear, it
		// wakes another sleeper in its place, which looks again.
		Disarm: func(r wait.Result) {
			var cur uint64
			if faultAt("lock", m.name, word, func() error { cur = word.Load(); return nil }) != nil {
				return // the object shrank below the word: nobody sleeps on it any more
			}
			if r != wait.Woken && cur&waitersBit == 0 {
				wait.Wake(uintptr(low32(unsafe.Pointer(word))), 1, false)
			}
		},
		// While it sleeps, the watcher reads the word every lockPeriod
		// and tests whoever holds the lock then: a holder that took it
		// while this call slept is watched as the first one was.
		Alive: func() bool {
			var holder uint64
			if faultAt("lock", m.name, word, func() error { holder = word.Load() &^ waitersBit; return nil }) != nil {
				return false // the object shrank below the word (a peer's truncate): wake, for Arm to report it
			}
			if holder == 0 || holder == mu.reg.token {
				return true // free (an Unlock wakes), or ours: we cannot die while we wait
			}
			alive, err := mu.reg.alive(holder)
			return alive && err == nil // on an error, wake: Arm's test reports it
		},
		Key:    mu, // one test per Mutex per period, however many Locks wait on it
		Period: lockPeriod,
	})
	if e, ok := err.(syscall.Errno); ok {
		return m.futexErr(e)
	}
	if err != nil {
		return err
	}
	return mu.result("lock", dead)
}

// faultAt runs f, which reads or writes the lock word w, turning a memory
// fault at w (SIGBUS: a peer truncated the object below the word) into an
// error wrapping ErrFault with op and name instead of a crash. A sleeping
// Lock's Arm, Disarm and Alive (the last on the process's watcher
// goroutine, which no caller could recover) read w through it.
func faultAt(op, name string, w *atomic.Uint64, f func() error) (err error) {
	old := debug.SetPanicOnFault(true)
	defer func() {
		debug.SetPanicOnFault(old)
		if r := recover(); r != nil {
			fa, ok := r.(interface{ Addr() uintptr })
			if a := uintptr(unsafe.Pointer(w)); !ok || fa.Addr()-a >= 8 {
				panic(r)
			}
			err = &fs.PathError{Op: op, Path: name, Err: ErrFault}
		}
	}()
	return f()
}

// Unlock releases the lock and wakes one waiting process, if any announced
// itself. A lock this process does not hold (free, or held by another
// process) is not released: the error wraps syscall.EPERM. Any goroutine
// of the holding process may unlock. Without waiters it is one
// compare-and-swap; with them, one futex(FUTEX_WAKE) system call more.
func (mu *Mutex) Unlock() error {
	if mu.m.closed.Load() {
		return mu.m.errClosed("unlock")
	}
	me := mu.reg.token
	if mu.word.CompareAndSwap(me, 0) {
		return nil
	}
	for {
		cur := mu.word.Load()
		if cur&^waitersBit != me {
			return &fs.PathError{Op: "unlock", Path: mu.m.name, Err: fmt.Errorf(
				"lock at offset %d is not held by this process: %w", mu.off, syscall.EPERM)}
		}
		if mu.word.CompareAndSwap(cur, 0) {
			wait.Wake(uintptr(low32(unsafe.Pointer(mu.word))), 1, false)
			return nil
		}
	}
}

// low32 is the address of the 32-bit half of the 64-bit word at p that
// holds bits 0-31: the futex.
func low32(p unsafe.Pointer) unsafe.Pointer {
	if bigEndian {
		return unsafe.Add(p, 4)
	}
	return p
}

var bigEndian = func() bool { x := uint16(1); return *(*byte)(unsafe.Pointer(&x)) == 0 }()
