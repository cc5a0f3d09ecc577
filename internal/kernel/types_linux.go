//go:build ignore

// The input of cgo -godefs for zkernel_linux_GOARCH.go: every kernel number
// the module needs, taken from the C headers (glibc's and the kernel's
// UAPI), so that none is typed in by hand and builds with a libc that
// lacks the kernel's headers (musl) still have them. Regenerate with
// go generate ./internal/kernel (gcc and gcc -m32 with glibc's headers);
// TestGenerated fails when the files and the headers disagree.

package kernel

/*
#define _GNU_SOURCE
#include <fcntl.h>
#include <limits.h>
#include <linux/capability.h>
#include <linux/futex.h>
#include <linux/magic.h>
#include <linux/time_types.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <time.h>
*/
import "C"

// futex(2) and futex_waitv(2).
const (
	FUTEX_WAIT         = C.FUTEX_WAIT
	FUTEX_WAKE         = C.FUTEX_WAKE
	FUTEX_PRIVATE_FLAG = C.FUTEX_PRIVATE_FLAG
	FUTEX_32           = C.FUTEX_32
	SYS_FUTEX          = C.SYS_futex
	SYS_FUTEX_WAITV    = C.SYS_futex_waitv
	CLOCK_MONOTONIC    = C.CLOCK_MONOTONIC
)

// FutexWaitv is struct futex_waitv: one word of a futex_waitv call.
type FutexWaitv C.struct_futex_waitv

// Timespec is struct __kernel_timespec, futex_waitv's timeout: 64-bit
// seconds on every GOARCH (syscall.Timespec is 32-bit on 386).
type Timespec C.struct___kernel_timespec

// Open-file-description locks, seals, leases and descriptor duplication
// (fcntl(2)), descriptor-relative opens, and renameat2(2).
const (
	F_OFD_GETLK         = C.F_OFD_GETLK
	F_OFD_SETLK         = C.F_OFD_SETLK
	F_GET_SEALS         = C.F_GET_SEALS
	F_DUPFD_CLOEXEC     = C.F_DUPFD_CLOEXEC
	F_SEAL_SEAL         = C.F_SEAL_SEAL
	F_SEAL_SHRINK       = C.F_SEAL_SHRINK
	F_SEAL_GROW         = C.F_SEAL_GROW
	F_SEAL_WRITE        = C.F_SEAL_WRITE
	F_SEAL_FUTURE_WRITE = C.F_SEAL_FUTURE_WRITE
	O_PATH              = C.O_PATH
	AT_EMPTY_PATH       = C.AT_EMPTY_PATH
	AT_FDCWD            = C.AT_FDCWD
	RENAME_NOREPLACE    = C.RENAME_NOREPLACE
	RENAME_EXCHANGE     = C.RENAME_EXCHANGE
	F_SETLEASE          = C.F_SETLEASE
	F_GETLEASE          = C.F_GETLEASE
	SYS_RENAMEAT2       = C.SYS_renameat2
)

// File systems, names and capabilities.
const (
	CAP_SYS_PTRACE = C.CAP_SYS_PTRACE
	TMPFS_MAGIC    = C.TMPFS_MAGIC
	NAME_MAX       = C.NAME_MAX
)
