//go:build linux && cgo

package shm

import (
	"context"
	"fmt"
	"io/fs"
	"math"
	"sync/atomic"
	"syscall"
	"unsafe"

	"github.com/posixshm/shm/internal/wait"
)

// word returns the address of the size-byte word at off, checked; the
// caller holds m.mu for reading.
func (m *Mapping) word(op string, off int64, size int64) (unsafe.Pointer, error) {
	if m.data == nil {
		return nil, m.errClosed(op)
	}
	if op == "futex" && m.private {
		return nil, argErr(op, m.name, "a private (copy-on-write) mapping's words are this process's own: the kernel keys its futex to this process, so no other process's Wake reaches its Wait; map the object shared")
	}
	if off < 0 || off > int64(len(m.data))-size || off%size != 0 {
		return nil, argErr(op, m.name, "offset %d: want a multiple of %d with %d bytes inside the %d-byte mapping", off, size, size, len(m.data))
	}
	return unsafe.Pointer(&m.data[off]), nil
}

// Uint32 returns the aligned 32-bit word at offset off of the mapping, for
// sync/atomic between processes and for Wait and Wake. off must be a
// multiple of 4 with the word inside the mapping, else the error wraps
// syscall.EINVAL; after Close the error wraps fs.ErrClosed. It makes no
// system call.
//
// The word is the mapped memory itself, as unguarded as Bytes: it is valid
// until Close and must not be used after it, also across Truncate and
// Remap, which never unmap it (a grow may move the mapping, but the word
// keeps reaching the same bytes of the object; see Truncate); loading or
// storing it raises SIGBUS if its page is past the object's end (another
// process, or a Truncate, shrank the object) (Wait and Wake
// report that as an error instead). Storing to a read-only mapping faults.
// Go's atomics are sequentially consistent and agree with C11 atomic_*,
// Rust's AtomicU32 and Python's ctypes on the same memory. Safe for
// concurrent use.
func (m *Mapping) Uint32(off int64) (*atomic.Uint32, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	p, err := m.word("uint32", off, 4)
	return (*atomic.Uint32)(p), err
}

// Uint64 is Uint32 for the aligned 64-bit word at off (a multiple of 8).
// Futexes are 32-bit: to Wait on a 64-bit counter, Wait on its low half,
// Uint32(off) on little-endian machines.
func (m *Mapping) Uint64(off int64) (*atomic.Uint64, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	p, err := m.word("uint64", off, 8)
	return (*atomic.Uint64)(p), err
}

// Wait blocks while the 32-bit word at off (as from Uint32) holds old,
// until Wake is called on it by this or any other process, or ctx is
// done: a shared (not private) futex wait, so a C peer's futex(FUTEX_WAKE)
// on the same object wakes it, and Wake wakes a C peer's FUTEX_WAIT.
//
// It returns nil when woken, when the word does not hold old (at once),
// and also spuriously, as futex waits may: the caller loads the word again
// and decides, in a loop. The comparison and the sleep are atomic in the
// kernel, so a Wake after the word changed is never lost.
//
// A waiting Wait costs no CPU: it sleeps in the kernel, in futex_waitv
// (Linux 5.16+) on the word and on a private word of its own, which
// cancellation of ctx and Close write and wake. So cancellation ends it
// at once whatever the program does with its signals, and wakes no other
// waiter in this process or another. It returns context.DeadlineExceeded
// at ctx's deadline (CLOCK_MONOTONIC). A ctx already done returns
// ctx.Err() at once. Where the kernel lacks futex_waitv, a waiting Wait
// wakes every 5 ms to look for cancellation.
//
// Wait and Wake are refused on a private mapping (Options.Private) with an
// error wrapping syscall.EINVAL: the kernel keys a futex in a private
// mapping to this process alone, so another process's Wake would never
// reach the Wait.
//
// Wait is fault-safe: where another process truncated the word's page
// away, the kernel answers EFAULT and Wait returns an *fs.PathError with
// Op "futex" wrapping both ErrFault and syscall.EFAULT. off must be a
// multiple of 4 inside the mapping (else syscall.EINVAL). A blocked Wait
// holds one OS thread and no P. Safe for concurrent use; Close (and
// Remap, Truncate, AddSeals) wakes Waits in progress out of the kernel
// and waits for them, never unmapping under them; after Close they return
// errors wrapping fs.ErrClosed, after the others they wait on.
func (m *Mapping) Wait(ctx context.Context, off int64, old uint32) error {
	if ctx == nil {
		return argErr("futex", m.name, "nil context")
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	err := m.waits.Run(ctx, &wait.Call{
		Lock: m.mu.RLocker(),
		Arm: func(r wait.Result) (uintptr, uint32, bool, error) {
			p, err := m.word("futex", off, 4)
			if err != nil || r == wait.Woken {
				return 0, 0, true, err
			}
			return uintptr(p), old, false, nil
		},
	})
	if e, ok := err.(syscall.Errno); ok {
		return m.futexErr(e)
	}
	return err
}

func (m *Mapping) futexErr(e syscall.Errno) error {
	if e == syscall.EFAULT {
		return &fs.PathError{Op: "futex", Path: m.name, Err: fmt.Errorf("%w (%w)", ErrFault, e)}
	}
	return &fs.PathError{Op: "futex", Path: m.name, Err: e}
}

// Wake wakes up to n waiters on the 32-bit word at off, in any process,
// and returns how many it woke: futex(FUTEX_WAKE), shared. Store the new
// value before waking, or a waiter may sleep again. n above math.MaxInt32
// means all, as does math.MaxInt; n 0 wakes nobody and makes no system
// call (the kernel would take 0 as 1); a negative n is syscall.EINVAL.
// Waking when nobody waits still costs the system call; a word that tells
// whether anyone waits avoids it.
//
// Wake is fault-safe as Wait is (an error wrapping ErrFault where the page
// is gone); off must be a multiple of 4 inside the mapping. Safe for
// concurrent use; after Close it returns an error wrapping fs.ErrClosed.
func (m *Mapping) Wake(off int64, n int) (int, error) {
	if n < 0 {
		return 0, argErr("futex", m.name, "negative count %d", n)
	}
	n = min(n, math.MaxInt32)
	m.mu.RLock()
	defer m.mu.RUnlock()
	p, err := m.word("futex", off, 4)
	if err != nil || n == 0 {
		return 0, err
	}
	r, e := wait.Wake(uintptr(p), n, false)
	if e != 0 {
		return 0, m.futexErr(e)
	}
	return r, nil
}
