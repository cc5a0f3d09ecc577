package shmdir

// Removing a stale entry (shm rm -stale) so that no two objects end up
// used under one name, and the kernel calls it needs that neither package
// shm nor Go's syscall package offers: renameat2 with its flags, and file
// leases, with the numbers of internal/kernel (generated from the C
// headers).

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"unsafe"

	"github.com/posixshm/shm"
	"github.com/posixshm/shm/internal/kernel"
	"github.com/posixshm/shm/internal/tmpname"
)

// StaleOptions are RemoveStale's.
type StaleOptions struct {
	// IgnoreDenied: where no lease can be had, a process that could not
	// be inspected does not stop the removal.
	IgnoreDenied bool
	// NoLease takes the way of a system or user without leases (tests).
	NoLease bool
	// Quarantined, when set, runs once the entry is under its quarantine
	// path q, before the last look for holders (tests).
	Quarantined func(q string)
}

// A Verdict is what RemoveStale did.
type Verdict struct {
	Action string // "removed", "kept" or "error"
	Reason string // why, in words that name no entry; "" when removed
	// Left, when set, is the name ("/NAME.~RANDOM", as shm.Open or
	// shm.OpenSemaphore takes it) the entry was left under because it
	// could not be put back; Reason then ends "it is now".
	Left string
}

// RemoveStale removes e, which a first scan found held by nobody, unless
// a process holds it or opens it by the time it would go, and never so
// that two objects end up used under one name (issue 21 item 11):
//
//  1. A descriptor of e of its own, and a write lease on it (fcntl
//     F_SETLEASE F_WRLCK): the kernel grants it only while no other open
//     file description of the file exists, in any process of any pid
//     namespace, a mapping's included; so it is the check for holders,
//     exact at that instant. EAGAIN: kept. From then on, an open of the
//     file, however it found it, breaks the lease (F_GETLEASE tells) and
//     waits until the lease is dropped, or fails with EWOULDBLOCK if it is
//     O_NONBLOCK. Where no lease can be had (not the owner and without
//     CAP_LEASE, leases disabled), a second scan of /proc at step 3 stands
//     in for it.
//  2. An empty directory made under a quarantine name (NAME.~RANDOM, as an
//     unfinished Create leaves, so that Leftovers finds the entry if this
//     process is killed in between) is exchanged with the entry
//     (renameat2 RENAME_EXCHANGE): atomically, the name is the directory
//     and the entry is NAME.~RANDOM. The name is never absent, so no
//     open-or-create can make a new object under it meanwhile; an open of
//     it fails (EISDIR; a read-only one gets a directory, which cannot be
//     mapped).
//  3. The lease is looked at (or /proc scanned for holders of
//     NAME.~RANDOM). Opened or held: the entry is exchanged back, which
//     cannot fail for want of a free name, and a waiting open then gets it
//     under its name: kept.
//  4. Otherwise the entry is unlinked (shm_unlink, sem_unlink), then the
//     directory; the lease goes with the descriptor.
//
// What no protocol can see is an open(2) that had resolved the name before
// step 2 and reaches the file after step 3 (within one system call, as
// for any shm_unlink racing an open). Where the kernel refuses
// RENAME_EXCHANGE, step 2 renames the entry away (RENAME_NOREPLACE) and
// step 3 puts it back with link(2): the name is then absent meanwhile,
// and an open-or-create in that window can leave a holder alone on
// NAME.~RANDOM (an error with Left naming it).
func RemoveStale(e Entry, o StaleOptions) Verdict {
	dir, base := filepath.Split(e.Path)
	qbase := tmpname.New(base)
	q := dir + qbase
	if st, err := lstat(e.Path); err != nil || !sameFile(st, e.Stat) {
		return Verdict{"kept", "replaced by another object meanwhile", ""}
	}
	fd := -1
	if !o.NoLease {
		f, err := syscall.Open(e.Path, syscall.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0)
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return Verdict{"kept", "another process holds a lease on it (another rm -stale?)", ""}
		}
		if err == nil {
			var st syscall.Stat_t
			if err := syscall.Fstat(f, &st); err != nil || !sameFile(&st, e.Stat) {
				syscall.Close(f)
				return Verdict{"kept", "replaced by another object meanwhile", ""}
			}
			switch err := setLease(f, syscall.F_WRLCK); {
			case err == nil:
				fd = f
				defer syscall.Close(fd) // drops the lease, after the entry is back or gone
			case errors.Is(err, syscall.EAGAIN):
				syscall.Close(f)
				return Verdict{"kept", heldSince(base), ""}
			default: // EACCES, EINVAL: no lease here; /proc stands in
				syscall.Close(f)
			}
		}
	}
	if err := os.Mkdir(q, 0); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return Verdict{"error", "no free quarantine name; try again", ""}
		}
		return Verdict{"error", Bare(err).Error(), ""}
	}
	if err := renameat2(q, e.Path, kernel.RENAME_EXCHANGE); err != nil {
		syscall.Rmdir(q)
		if errors.Is(err, syscall.EINVAL) || errors.Is(err, syscall.ENOSYS) {
			return removeRenamed(e, q, qbase, fd, o)
		}
		return Verdict{"error", Bare(err).Error(), ""}
	}
	putBack := func(why string) Verdict {
		if err := renameat2(q, e.Path, kernel.RENAME_EXCHANGE); err != nil {
			return notPutBack(e, qbase, why, err)
		}
		syscall.Rmdir(q) // the directory; never an object
		return Verdict{"kept", why, ""}
	}
	if v, ok := judge(e, q, qbase, fd, o, putBack); !ok {
		return v
	}
	if err := syscall.Rmdir(e.Path); err != nil {
		return Verdict{"error", fmt.Sprintf("removed, but the directory that stood in for it under its name could not be removed (%s)", Bare(err)), ""}
	}
	return Verdict{"removed", "", ""}
}

// notPutBack is the verdict on an entry kept for why that could not be
// put back under its name (err), and so is left as qbase.
func notPutBack(e Entry, qbase, why string, err error) Verdict {
	return Verdict{"error", fmt.Sprintf("%s, but it could not be put back (%s): it is now", why, Bare(err)), entryName(e.Kind, qbase)}
}

// removeRenamed is RemoveStale's steps 2 to 4 where the kernel refuses
// RENAME_EXCHANGE: the entry is renamed to q (renameat2
// RENAME_NOREPLACE, never over an object made there meanwhile), looked at
// as in step 3, and unlinked, or else put back under its name with
// link(2), never over an object created there meanwhile.
func removeRenamed(e Entry, q, qbase string, fd int, o StaleOptions) Verdict {
	if err := renameNoReplace(e.Path, q); err != nil {
		return Verdict{"error", Bare(err).Error(), ""}
	}
	putBack := func(why string) Verdict {
		if err := os.Link(q, e.Path); err != nil {
			return notPutBack(e, qbase, why, err)
		}
		os.Remove(q)
		return Verdict{"kept", why, ""}
	}
	if v, ok := judge(e, q, qbase, fd, o, putBack); !ok {
		return v
	}
	return Verdict{"removed", "", ""}
}

// judge is step 3 of both ways of removing: it looks at the entry now
// under the quarantine path q (qbase) and unlinks it (ok), or else puts it
// back under its name with putBack, whose verdict it returns.
func judge(e Entry, q, qbase string, fd int, o StaleOptions, putBack func(why string) Verdict) (Verdict, bool) {
	why := ""
	if st, err := lstat(q); err != nil || !sameFile(st, e.Stat) {
		why = "replaced by another object meanwhile"
	} else {
		if o.Quarantined != nil {
			o.Quarantined(q)
		}
		if why = opened(fd, qbase, o.IgnoreDenied); why == "" {
			if err := unlink(e.Kind, qbase); err != nil {
				why = "unlink: " + Bare(err).Error()
			}
		}
	}
	if why != "" {
		return putBack(why), false
	}
	return Verdict{}, true
}

// opened says why the entry now under the quarantine name qbase must be
// kept, or "" if it may go: its lease (fd, when not -1) was broken by an
// open, or (without a lease) /proc shows holders, or cannot say.
func opened(fd int, qbase string, ignoreDenied bool) string {
	if fd >= 0 {
		l, err := leaseOf(fd)
		switch {
		case err != nil:
			return "holders unknown: " + Bare(err).Error()
		case l != syscall.F_WRLCK:
			return "opened by a process meanwhile"
		}
		return ""
	}
	// shm_open reaches every file of the directory, a semaphore's too.
	pids, err := shm.Holders("/" + qbase)
	var de *shm.DeniedError
	if errors.As(err, &de) && ignoreDenied {
		err = nil
	}
	switch {
	case err != nil:
		return "holders unknown: " + Bare(err).Error()
	case len(pids) > 0:
		return "held by " + joinPIDs(pids) + " (since the first look)"
	}
	return ""
}

// heldSince is why an entry that the first scan found free but whose
// lease was refused is kept: the holders /proc shows now, if any.
func heldSince(base string) string {
	if pids, _ := shm.Holders("/" + base); len(pids) > 0 {
		return "held by " + joinPIDs(pids) + " (since the first look)"
	}
	return "held by a process that /proc does not show (another pid namespace's?)"
}

func joinPIDs(pids []int) string {
	s := make([]string, len(pids))
	for i, p := range pids {
		s[i] = strconv.Itoa(p)
	}
	return strings.Join(s, ",")
}

// unlink unlinks the file base of the directory through libc, as kind.
func unlink(kind Kind, base string) error {
	if kind == Semaphore {
		return shm.UnlinkSemaphore(entryName(Semaphore, base))
	}
	return shm.Unlink("/" + base)
}

// renameNoReplace renames old to new unless new exists (renameat2 with
// RENAME_NOREPLACE: EEXIST, and nothing changes), so that a quarantine can
// never replace an object created under its random name meanwhile. Where
// the kernel has no renameat2 (ENOSYS), or the file system lacks the flag
// (EINVAL), it checks with lstat and renames (rename(2)): the old, small
// window.
func renameNoReplace(old, new string) error {
	err := renameat2(old, new, kernel.RENAME_NOREPLACE)
	if errors.Is(err, syscall.ENOSYS) || errors.Is(err, syscall.EINVAL) {
		if _, lerr := os.Lstat(new); !errors.Is(lerr, fs.ErrNotExist) {
			return &os.LinkError{Op: "rename", Old: old, New: new, Err: syscall.EEXIST}
		}
		return os.Rename(old, new)
	}
	return err
}

// renameat2 is renameat2(2) of old to new with flags (RENAME_NOREPLACE,
// RENAME_EXCHANGE): ENOSYS where the kernel has no renameat2, EINVAL where
// the kernel or file system lacks a flag.
func renameat2(old, new string, flags uint) error {
	po, err := syscall.BytePtrFromString(old)
	if err != nil {
		return &os.LinkError{Op: "renameat2", Old: old, New: new, Err: err}
	}
	pn, err := syscall.BytePtrFromString(new)
	if err != nil {
		return &os.LinkError{Op: "renameat2", Old: old, New: new, Err: err}
	}
	cwd := kernel.AT_FDCWD
	_, _, e := syscall.Syscall6(kernel.SYS_RENAMEAT2, uintptr(cwd), uintptr(unsafe.Pointer(po)), uintptr(cwd), uintptr(unsafe.Pointer(pn)), uintptr(flags), 0)
	if e != 0 {
		return &os.LinkError{Op: "renameat2", Old: old, New: new, Err: e}
	}
	return nil
}

// setLease sets (F_WRLCK) or drops (F_UNLCK) the lease of the open file
// fd: fcntl(F_SETLEASE). A write lease is granted only while no other open
// file description of the file exists anywhere (a mapping keeps its own),
// else EAGAIN; the owner of the file or a holder of CAP_LEASE may take one
// (else EACCES), and not where leases are disabled (EINVAL).
func setLease(fd, lease int) error {
	if _, _, e := syscall.Syscall(syscall.SYS_FCNTL, uintptr(fd), kernel.F_SETLEASE, uintptr(lease)); e != 0 {
		return os.NewSyscallError("fcntl", e)
	}
	return nil
}

// leaseOf is the lease fd holds now (fcntl F_GETLEASE): F_WRLCK while no
// other open of the file has begun; another value once one has (the
// kernel then breaks the lease, and a blocking open waits until it is
// dropped; an O_NONBLOCK one fails with EWOULDBLOCK).
func leaseOf(fd int) (int, error) {
	r, _, e := syscall.Syscall(syscall.SYS_FCNTL, uintptr(fd), kernel.F_GETLEASE, 0)
	if e != 0 {
		return 0, os.NewSyscallError("fcntl", e)
	}
	return int(r), nil
}
