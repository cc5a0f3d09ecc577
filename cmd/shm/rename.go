package main

// The kernel calls rm -stale needs that neither the package nor Go's
// syscall package offers: renameat2 with its flags, and file leases. The
// only file of the command that imports "C", so that the constants come
// from the C headers.

/*
#cgo CFLAGS: -O2 -Wall -D_FILE_OFFSET_BITS=64
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>

// glibc's <stdio.h> has these since 2.28, musl's not at all: the values
// of <linux/fs.h>, which musl's include path lacks.
#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#endif
#ifndef RENAME_EXCHANGE
#define RENAME_EXCHANGE (1 << 1)
#endif

// shmcmd_renameat2 is renameat2(AT_FDCWD, from, AT_FDCWD, to, flags):
// 0 or -errno; -ENOSYS where the headers know no renameat2.
static int shmcmd_renameat2(const char *from, const char *to, unsigned flags) {
#ifdef SYS_renameat2
	return syscall(SYS_renameat2, AT_FDCWD, from, AT_FDCWD, to, flags) == 0 ? 0 : -errno;
#else
	(void)from;
	(void)to;
	(void)flags;
	return -ENOSYS;
#endif
}

// shmcmd_fcntl is fcntl(fd, cmd, arg): its result, or -errno.
static int shmcmd_fcntl(int fd, int cmd, int arg) {
	int r = fcntl(fd, cmd, arg);
	return r < 0 ? -errno : r;
}
*/
import "C"

import (
	"errors"
	"io/fs"
	"os"
	"syscall"
	"unsafe"
)

const (
	flagNoReplace = C.RENAME_NOREPLACE
	flagExchange  = C.RENAME_EXCHANGE
	leaseWrite    = C.F_WRLCK
	leaseNone     = C.F_UNLCK
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
// flagExchange): ENOSYS where the C headers know no renameat2, EINVAL
// where the kernel or file system lacks a flag.
func renameat2(old, new string, flags uint) error {
	po, err := syscall.BytePtrFromString(old)
	if err != nil {
		return &os.LinkError{Op: "renameat2", Old: old, New: new, Err: err}
	}
	pn, err := syscall.BytePtrFromString(new)
	if err != nil {
		return &os.LinkError{Op: "renameat2", Old: old, New: new, Err: err}
	}
	if r := C.shmcmd_renameat2((*C.char)(unsafe.Pointer(po)), (*C.char)(unsafe.Pointer(pn)), C.uint(flags)); r != 0 {
		return &os.LinkError{Op: "renameat2", Old: old, New: new, Err: syscall.Errno(-r)}
	}
	return nil
}

// setLease sets (leaseWrite) or drops (leaseNone) the lease of the open
// file fd: fcntl(F_SETLEASE). A write lease is granted only while no other
// open file description of the file exists anywhere (a mapping keeps its
// own), else EAGAIN; the owner of the file or a holder of CAP_LEASE may
// take one (else EACCES), and not where leases are disabled (EINVAL).
func setLease(fd, lease int) error {
	if r := C.shmcmd_fcntl(C.int(fd), C.F_SETLEASE, C.int(lease)); r < 0 {
		return os.NewSyscallError("fcntl", syscall.Errno(-r))
	}
	return nil
}

// leaseOf is the lease fd holds now (fcntl F_GETLEASE): leaseWrite while
// no other open of the file has begun; another value once one has (the
// kernel then breaks the lease, and a blocking open waits until it is
// dropped; an O_NONBLOCK one fails with EWOULDBLOCK).
func leaseOf(fd int) (int, error) {
	r := C.shmcmd_fcntl(C.int(fd), C.F_GETLEASE, 0)
	if r < 0 {
		return 0, os.NewSyscallError("fcntl", syscall.Errno(-r))
	}
	return int(r), nil
}
