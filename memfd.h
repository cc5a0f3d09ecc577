//go:build linux && cgo

// The memfd part of the shim of github.com/posixshm/shm: anonymous shared
// memory (memfd_create), seals, descriptors handed to another process.
// Conventions as in shm.h. (F_GET_SEALS, F_GETFL and F_DUPFD_CLOEXEC are
// single fcntl calls, made from Go.)

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

// goshm_memfd makes an anonymous object: memfd_create(name, MFD_CLOEXEC |
// MFD_ALLOW_SEALING | MFD_NOEXEC_SEAL), without MFD_NOEXEC_SEAL on kernels
// before 6.3; size bytes reserved with fallocate as shm.c's reserve does
// (ftruncate with GOSHM_SPARSE or where fallocate is unsupported); then
// fcntl(F_ADD_SEALS, seals) if seals != 0; then mmap (and madvise) as
// goshm_map. ENOSYS (reported as memfd_create's) where the C library has
// no memfd_create, or with GOSHM_NO_MEMFD. The descriptor is res->fd. On
// failure nothing is left: the descriptor is closed, and with it the
// object.
int goshm_memfd(const char *name, int64_t size, int seals, int flags, goshm_result *res);

// goshm_add_seals is fcntl(fd, F_ADD_SEALS, seals). With ro >= 0, a
// read-only descriptor of the same object, the caller's own shared
// writable mapping [addr, addr+size) of fd, which would make the kernel
// refuse F_SEAL_WRITE (EBUSY), is first replaced in place (MAP_FIXED) by a
// read-only one of ro (unless the object has F_SEAL_SEAL: EPERM, as
// F_ADD_SEALS says), and put back read-write if the seal is refused after
// all. *rdonly is 1 when the mapping is read-only on return. ro is not
// closed.
int goshm_add_seals(int fd, int ro, uintptr_t addr, int64_t size, int seals, int *rdonly);

#endif
