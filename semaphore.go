//go:build linux && cgo

package shm

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"strings"
	"sync"
	"syscall"

	"github.com/posixshm/shm/internal/kernel"
	"github.com/posixshm/shm/internal/wait"
)

// A Semaphore is a named POSIX semaphore, opened with libc's sem_open: a
// counter shared by every process that opens the same name, whatever its
// language. Post adds one; Wait takes one, blocking while the count is 0.
//
// Its methods are safe for concurrent use. Close signals Waits out of
// libc and waits for calls in progress to leave it before sem_close, and
// afterwards every method but Name, Created and Unlink returns an
// error wrapping fs.ErrClosed.
type Semaphore struct {
	name    string
	created bool
	mu      sync.RWMutex // read-held across every libc call on sem; Close write-locks it
	sem     uintptr      // libc's sem_t *; 0 after Close
	waits   wait.Set     // Waits asleep, for Close
}

// SemValueMax is SEM_VALUE_MAX under glibc and musl on Linux: the largest
// count a semaphore can hold. A Post beyond it fails with EOVERFLOW.
const SemValueMax = math.MaxInt32

// CreateSemaphore creates a new named semaphore with count value:
// sem_open(name, O_CREAT|O_EXCL, 0600, value). It fails with an error
// wrapping fs.ErrExist if the name exists. Names are libc's, as for
// Create: "/x" is the file /dev/shm/sem.x under glibc, /dev/shm/x under
// musl. A value above SemValueMax is libc's EINVAL. A name longer than
// NAME_MAX (255) with its leading slashes, which glibc refuses only after
// making and mapping its file, is refused before glibc is called, with the
// verdict glibc gives (EINVAL; ENAMETOOLONG where sem.NAME is too long a
// file name; EEXIST where the file exists) and nothing left.
func CreateSemaphore(name string, value int) (*Semaphore, error) {
	return OpenSemaphoreWith(name, os.O_CREATE|os.O_EXCL, 0o600, value)
}

// OpenSemaphore opens an existing named semaphore: sem_open(name, 0). An
// error wraps fs.ErrNotExist if there is none.
func OpenSemaphore(name string) (*Semaphore, error) {
	return OpenSemaphoreWith(name, 0, 0, 0)
}

// OpenSemaphoreWith is the general form of CreateSemaphore and
// OpenSemaphore, in the manner of OpenFile: flag is 0 (open an existing
// semaphore) or os.O_CREATE, optionally with os.O_EXCL; perm (permission
// bits only, less the umask) and value (0 to SemValueMax) are the mode and
// count of a semaphore this call creates. Without os.O_CREATE, perm and
// value must be 0.
//
// os.O_CREATE without os.O_EXCL opens the semaphore or creates it, and
// tells which through Created: it calls sem_open with O_EXCL, then without
// O_CREAT, and again if the semaphore vanished in between: one cgo
// crossing per sem_open.
//
// An existing semaphore's file (/dev/shm/sem.NAME under glibc,
// /dev/shm/NAME under musl), when it is a regular file, must be large
// enough for libc's sem_t; it is checked with lstat before and after
// sem_open, and one too small (an empty file any user can plant, a
// truncated one) is refused with an error wrapping syscall.EINVAL, where
// libc would let the first Post or Wait die of SIGBUS. Anything but a
// regular file gets libc's own verdict (ELOOP for a symbolic link, EISDIR
// for a directory, ...). What no check can prevent: a process that truncates
// the file while this one has the semaphore open makes the next call
// SIGBUS inside libc, which kills a Go program as it kills a C one. Give
// the semaphore's file permissions that keep untrusted users from writing
// it (the default 0600).
func OpenSemaphoreWith(name string, flag int, perm fs.FileMode, value int) (*Semaphore, error) {
	bad := func(format string, args ...any) (*Semaphore, error) {
		return nil, argErr("opensemaphorewith", name, format, args...)
	}
	create := flag&os.O_CREATE != 0
	switch {
	case flag&^(os.O_CREATE|os.O_EXCL) != 0:
		return bad("unsupported flag bits %#x: want 0 or os.O_CREATE, with os.O_EXCL", flag&^(os.O_CREATE|os.O_EXCL))
	case flag&os.O_EXCL != 0 && !create:
		return bad("os.O_EXCL without os.O_CREATE")
	case perm&^fs.ModePerm != 0:
		return bad("mode %v: only permission bits are allowed", perm)
	case value < 0 || uint64(value) > math.MaxUint32:
		return bad("value %d outside [0, %d]", value, SemValueMax)
	case !create && (value != 0 || perm != 0):
		return bad("mode and value given, but without os.O_CREATE the semaphore's own are used: pass 0")
	}
	sem, created, err := semOpenOrCreate(name, flag, uint32(perm), uint32(value))
	if err != nil {
		return nil, err
	}
	return &Semaphore{name: name, created: created, sem: sem}, nil
}

// semOpenOrCreate opens (flag 0) or creates (os.O_CREATE|os.O_EXCL) the
// semaphore, or, with os.O_CREATE alone, creates it exclusively, else
// opens what exists, and tries again (up to retries times) if it vanished
// in between.
func semOpenOrCreate(name string, flag int, perm, value uint32) (sem uintptr, created bool, err error) {
	if semGlibc && len(name) > nameMax {
		return 0, false, &fs.PathError{Op: "sem_open", Path: name, Err: glibcLongName(name, flag)}
	}
	if flag&os.O_CREATE == 0 {
		sem, err = semOpenExisting(name)
		return sem, false, err
	}
	for tries := 0; ; tries++ {
		sem, err = semOpen(name, os.O_CREATE|os.O_EXCL, perm, value)
		if err == nil || !errors.Is(err, fs.ErrExist) || tries == retries {
			return sem, err == nil, err
		}
		if flag&os.O_EXCL != 0 {
			return 0, false, err
		}
		sem, err = semOpenExisting(name)
		if !errors.Is(err, fs.ErrNotExist) {
			return sem, false, err
		}
	}
}

// nameMax is NAME_MAX on Linux.
const nameMax = kernel.NAME_MAX

// glibcLongName is glibc's verdict on sem_open of a name longer than
// NAME_MAX with its leading slashes, given without calling it: glibc
// (2.36) judges the name without its slashes, creates and links sem.NAME,
// maps it, and only then fails (errno 0) on the name's full length,
// leaving the file and the mapping behind, so that the next try says
// EEXIST. What glibc says before it creates anything is kept: EINVAL for
// a NAME (without its slashes) longer than NAME_MAX, ENAMETOOLONG where
// sem.NAME is (the kernel's verdict), EEXIST for os.O_CREATE|os.O_EXCL
// when sem.NAME exists, ENOENT for an open when it does not; every other
// case is its failure, as EINVAL.
func glibcLongName(name string, flag int) syscall.Errno {
	base := baseName(name)
	switch {
	case base == "" || strings.ContainsRune(base, '/') || len(base) > nameMax:
		return syscall.EINVAL
	case len("sem.")+len(base) > nameMax:
		// The kernel refuses the file name sem.NAME before glibc
		// creates anything: glibc says ENAMETOOLONG, create or open.
		return syscall.ENAMETOOLONG
	}
	var st syscall.Stat_t
	switch err := syscall.Lstat(Dir()+"/sem."+base, &st); {
	case err == nil && flag&(os.O_CREATE|os.O_EXCL) == os.O_CREATE|os.O_EXCL:
		return syscall.EEXIST
	case err == syscall.ENOENT && flag&os.O_CREATE == 0:
		return syscall.ENOENT
	}
	return syscall.EINVAL
}

// semOpenExisting is sem_open(name, 0) of a semaphore whose file must be
// whole: a regular file of at least sizeof(sem_t) bytes, checked before
// and after sem_open. sem_open maps whatever file has the name, and one
// too small (an empty file any user can plant, a truncated one) would be
// SIGBUS at the first sem_post or sem_wait.
func semOpenExisting(name string) (uintptr, error) {
	if !semWhole(name) {
		return 0, errSemSmall(name)
	}
	sem, err := semOpen(name, 0, 0, 0)
	if err == nil && !semWhole(name) {
		semClose(name, sem)
		return 0, errSemSmall(name)
	}
	return sem, err
}

// semFile is the file libc keeps the semaphore name in: Dir()/sem.NAME
// under glibc, Dir()/NAME under musl.
func semFile(name string) string {
	if semGlibc {
		return Dir() + "/sem." + baseName(name)
	}
	return Dir() + "/" + baseName(name)
}

// semWhole reports whether the semaphore's file, if it is a regular file,
// can hold a sem_t. Where there is none, or it is something else, sem_open
// answers, and fails cleanly: a symbolic link is ELOOP (O_NOFOLLOW), a
// directory EISDIR, a FIFO ENODEV from its mmap, a socket ENXIO.
func semWhole(name string) bool {
	var st syscall.Stat_t
	if syscall.Lstat(semFile(name), &st) != nil || st.Mode&syscall.S_IFMT != syscall.S_IFREG {
		return true
	}
	return st.Size >= semSize
}

func errSemSmall(name string) error {
	return &fs.PathError{Op: "sem_open", Path: name, Err: fmt.Errorf(
		"the semaphore's file is not a regular file of at least %d bytes (a sem_t): planted or truncated, not a semaphore: %w",
		semSize, syscall.EINVAL)}
}

// UnlinkSemaphore removes a named semaphore: sem_unlink(name). Processes
// that have it open keep using it until they close it. An error wraps
// fs.ErrNotExist if there is no such semaphore.
func UnlinkSemaphore(name string) error {
	return semUnlink(name)
}

// Name returns the name the Semaphore was opened or created with, as
// given. It works after Close.
func (s *Semaphore) Name() string { return s.name }

// Created reports whether the call that returned s created the semaphore.
// It works after Close.
func (s *Semaphore) Created() bool { return s.created }

// Unlink removes the Semaphore's name: sem_unlink(s.Name()). It works
// before and after Close, from any goroutine.
func (s *Semaphore) Unlink() error { return semUnlink(s.name) }

func (s *Semaphore) errClosed(op string) error {
	return &fs.PathError{Op: op, Path: s.name, Err: fs.ErrClosed}
}

// Post adds one to the count, waking one waiter in any process:
// sem_post. Past SemValueMax it fails with an error wrapping
// syscall.EOVERFLOW. Safe for concurrent use; after Close it returns an
// error wrapping fs.ErrClosed.
//
// Whether it makes a system call is libc's affair: glibc and musl keep a
// count of waiters in the semaphore itself, and sem_post makes a futex
// wake system call whenever that count is not zero. A waiter killed while
// it waits (SIGKILL, a crash) is never taken off the count, so from then
// on every Post makes the system call, for the life of the semaphore (until
// it is unlinked and made anew), though nobody waits. Only a semaphore
// whose waiters all left through the call makes no system call on Post
// without waiters.
func (s *Semaphore) Post() error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.sem == 0 {
		return s.errClosed("sem_post")
	}
	return semPost(s.name, s.sem)
}

// TryWait takes one if the count is positive and reports whether it did,
// never blocking: sem_trywait (a count of 0 is false, nil). Safe for
// concurrent use; after Close it returns an error wrapping fs.ErrClosed.
func (s *Semaphore) TryWait() (bool, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.sem == 0 {
		return false, s.errClosed("sem_trywait")
	}
	return semTryWait(s.name, s.sem)
}

// Wait takes one, blocking while the count is 0, until ctx is done.
//
// When the count is positive, Wait takes one with libc's sem_trywait in a
// single cgo crossing and no system call. Otherwise it waits as libc's
// sem_wait does, on the semaphore's own futex word and by libc's own
// protocol (glibc's or musl's: it registers as a waiter, so that sem_post
// in any process wakes it), but asleep in the package's one wait: a
// futex_waitv (Linux 5.16+) on that word and on a private word of the
// call's own, which cancellation of ctx and Close write and wake. So
// cancellation ends it at once whatever the program does with its
// signals, and no post is taken or added; one that a post woke just then
// wakes another waiter in its place (TestSemaphoreCancelledWakeup). It
// returns context.DeadlineExceeded at ctx's deadline (CLOCK_MONOTONIC); a
// ctx already done returns ctx.Err() without taking one. A waiting Wait
// costs no CPU.
//
// A blocked Wait holds one OS thread and no P: it does not keep other
// goroutines from running. Safe for concurrent use. Close wakes Waits the
// same way, and they return an error wrapping fs.ErrClosed with Op
// "sem_wait".
func (s *Semaphore) Wait(ctx context.Context) error {
	if ctx == nil {
		return argErr("sem_wait", s.name, "nil context")
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.RLock()
	if s.sem == 0 {
		s.mu.RUnlock()
		return s.errClosed("sem_wait")
	}
	if took, err := semTryWait(s.name, s.sem); took || err != nil {
		s.mu.RUnlock()
		return err
	}
	s.mu.RUnlock()
	var word uintptr
	return s.waits.Run(ctx, &wait.Call{
		Lock: s.mu.RLocker(),
		Arm: func(wait.Result) (uintptr, uint32, bool, error) {
			if s.sem == 0 {
				return 0, 0, false, s.errClosed("sem_wait")
			}
			took, addr, val := semWaitPrepare(s.sem)
			word = addr
			return addr, val, took, nil
		},
		Disarm: func(r wait.Result) {
			if n := semWaitDone(s.sem, r != wait.Woken); n > 0 {
				wait.Wake(word, n, false)
			}
		},
	})
}

// Value returns the current count: sem_getvalue. Other processes may
// change it at any moment, so it is a hint, as in C. Safe for concurrent
// use; after Close it returns an error wrapping fs.ErrClosed.
func (s *Semaphore) Value() (int, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.sem == 0 {
		return 0, s.errClosed("sem_getvalue")
	}
	return semGetValue(s.name, s.sem)
}

// Close releases this process's handle: sem_close, which unmaps libc's
// memory for the semaphore. It waits for Post, TryWait and Value calls in
// progress, and signals Waits out of libc (see Wait), which then return
// errors wrapping fs.ErrClosed; sem_close never runs under a
// waiter. Close never unlinks. A second Close returns an error wrapping
// fs.ErrClosed. Safe for concurrent use.
func (s *Semaphore) Close() error {
	s.waits.Pause() // Waits leave the kernel and the read lock
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sem == 0 {
		return s.errClosed("sem_close")
	}
	sem := s.sem
	s.sem = 0
	return semClose(s.name, sem)
}
