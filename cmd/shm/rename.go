package main

// The kernel calls rm -stale needs that neither the package nor Go's
// syscall package offers: renameat2 with its flags, and file leases, with
// the numbers of internal/kernel (generated from the C headers).

import (
	"errors"
	"io/fs"
	"os"
	"syscall"
	"unsafe"

	"github.com/posixshm/shm/internal/kernel"
)

const (
	flagNoReplace = kernel.RENAME_NOREPLACE
	flagExchange  = kernel.RENAME_EXCHANGE
	leaseWrite    = syscall.F_WRLCK
	leaseNone     = syscall.F_UNLCK
)

// renameNoReplace renames old to new unless new exists (renameat2 with
// RENAME_NOREPLACE: EEXIST, and nothing changes), so that rm -stale's
// quarantine can never replace an object created under its random name
// meanwhile. Where the kernel or the architecture's table has no
// renameat2 (ENOSYS, or EINVAL from a file system without the flag), it
// checks with lstat and renames: the old, small window.
func renameNoReplace(old, new string) error {
	err := renameat2(old, new, flagNoReplace)
	if errors.Is(err, syscall.ENOSYS) || errors.Is(err, syscall.EINVAL) {
		if _, lerr := os.Lstat(new); !errors.Is(lerr, fs.ErrNotExist) {
			return &os.LinkError{Op: "rename", Old: old, New: new, Err: syscall.EEXIST}
		}
		return os.Rename(old, new)
	}
	return err
}

// renameat2 is renameat2(2) of old to new with flags (flagNoReplace,
// flagExchange): ENOSYS where the kernel has no renameat2, EINVAL where
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

// setLease sets (leaseWrite) or drops (leaseNone) the lease of the open
// file fd: fcntl(F_SETLEASE). A write lease is granted only while no other
// open file description of the file exists anywhere (a mapping keeps its
// own), else EAGAIN; the owner of the file or a holder of CAP_LEASE may
// take one (else EACCES), and not where leases are disabled (EINVAL).
func setLease(fd, lease int) error {
	if _, _, e := syscall.Syscall(syscall.SYS_FCNTL, uintptr(fd), kernel.F_SETLEASE, uintptr(lease)); e != 0 {
		return os.NewSyscallError("fcntl", e)
	}
	return nil
}

// leaseOf is the lease fd holds now (fcntl F_GETLEASE): leaseWrite while
// no other open of the file has begun; another value once one has (the
// kernel then breaks the lease, and a blocking open waits until it is
// dropped; an O_NONBLOCK one fails with EWOULDBLOCK).
func leaseOf(fd int) (int, error) {
	r, _, e := syscall.Syscall(syscall.SYS_FCNTL, uintptr(fd), kernel.F_GETLEASE, 0)
	if e != 0 {
		return 0, os.NewSyscallError("fcntl", e)
	}
	return int(r), nil
}
