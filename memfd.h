//go:build linux && cgo

// The memfd part of the shim of github.com/posixshm/shm: anonymous shared
// memory (memfd_create), seals, descriptors handed to another process.
// Conventions as in shm.h: one crossing per operation, failures
// -(GOSHM_OP_* << 16 | errno), never a touch of mapped memory.

#ifndef GOSHM_MEMFD_H
#define GOSHM_MEMFD_H

#include "shm.h"

#include <fcntl.h>

// Kernel values, for C headers that lack them (F_SEAL_FUTURE_WRITE is
// Linux 5.1, F_SEAL_EXEC and MFD_NOEXEC_SEAL are Linux 6.3).
#ifndef F_ADD_SEALS
#define F_ADD_SEALS 1033
#define F_GET_SEALS 1034
#endif
#ifndef F_SEAL_SEAL
#define F_SEAL_SEAL 0x0001
#define F_SEAL_SHRINK 0x0002
#define F_SEAL_GROW 0x0004
#define F_SEAL_WRITE 0x0008
#endif
#ifndef F_SEAL_FUTURE_WRITE
#define F_SEAL_FUTURE_WRITE 0x0010
#endif
#ifndef F_SEAL_EXEC
#define F_SEAL_EXEC 0x0020
#endif

// The operations of memfd.c, numbered from 48 so that they never meet
// another file's.
enum {
	GOSHM_OP_MEMFD_CREATE = 48,
	GOSHM_OP_FCNTL,    // 49: fcntl (F_ADD_SEALS, F_GET_SEALS, F_GETFL, F_DUPFD_CLOEXEC)
	GOSHM_OP_NOMEMFD,  // 50: this C library (or kernel) has no memfd_create (ENOSYS)
	GOSHM_OP_WSEALED,  // 51: mmap refused: the object is sealed against writing (EPERM)
	GOSHM_OP_RDONLYFD, // 52: mmap refused: the descriptor is open read-only (EACCES)
	GOSHM_OP_REOPEN,   // 53: open of /proc/self/fd/N (a read-only descriptor)
};

// Flags of goshm_memfd beyond shm.h's.
enum {
	// Behave as with a C library that lacks memfd_create: tests.
	GOSHM_MEMFD_NOLIBC = 1 << 16,
};

// goshm_memfd makes an anonymous object: memfd_create(name, MFD_CLOEXEC |
// MFD_ALLOW_SEALING | MFD_NOEXEC_SEAL), without MFD_NOEXEC_SEAL on kernels
// before 6.3; size bytes reserved with fallocate as shm.c's reserve does
// (ftruncate with GOSHM_SPARSE or where fallocate is unsupported); then
// fcntl(F_ADD_SEALS, seals) if seals != 0; then mmap (and madvise) as
// goshm_map. The descriptor is res->fd. On failure nothing is left: the
// descriptor is closed, and with it the object.
int goshm_memfd(const char *name, int64_t size, int seals, int flags, goshm_result *res);

// goshm_seals is fcntl(fd, F_GET_SEALS): the seals (>= 0), 0 for a file
// that cannot be sealed (EINVAL), or a failure.
int goshm_seals(int fd);

// goshm_dup is fcntl(fd, F_DUPFD_CLOEXEC, 0): the new descriptor, or a
// failure.
int goshm_dup(int fd);

// goshm_add_seals is fcntl(fd, F_ADD_SEALS, seals). With F_SEAL_WRITE and
// addr != 0, the caller's own shared writable mapping [addr, addr+size) of
// fd, which would make the kernel refuse the seal (EBUSY), is first
// replaced in place (MAP_FIXED) by a read-only one made from a read-only
// descriptor (open of /proc/self/fd/N, O_RDONLY), and put back read-write
// if the seal is refused after all. *rdonly is 1 when the mapping is
// read-only on return.
int goshm_add_seals(int fd, uintptr_t addr, int64_t size, int seals, int *rdonly);

// goshm_mapfd is goshm_map of a descriptor received from elsewhere, with
// two checks first that give a clear verdict where mmap would give a bare
// one: a shared writable mapping of a descriptor open read-only
// (GOSHM_OP_RDONLYFD, EACCES) or of an object sealed against writing
// (GOSHM_OP_WSEALED, EPERM). *seals is fcntl(F_GET_SEALS), 0 where the
// file cannot be sealed.
int goshm_mapfd(int fd, int64_t off, int64_t length, int flags, goshm_result *res, int *seals);

#endif
