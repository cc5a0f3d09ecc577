//go:build linux && cgo

// The memfd part of the shim; see memfd.h. Syscalls only: nothing here
// reads or writes the mapped memory.

#define _GNU_SOURCE
#include "memfd.h"

#include <errno.h>
#include <sys/mman.h>
#include <unistd.h>

#ifndef MFD_CLOEXEC
#define MFD_CLOEXEC 0x0001U
#define MFD_ALLOW_SEALING 0x0002U
#endif
#ifndef MFD_NOEXEC_SEAL
#define MFD_NOEXEC_SEAL 0x0008U
#endif

// memfd_create is glibc 2.27 and musl 1.1.20. A weak reference links
// against an older C library too, where it is NULL: a clear error at run
// time instead of a program that does not link.
int memfd_create(const char *name, unsigned int flags) __attribute__((weak));

int goshm_memfd(const char *name, int64_t size, int seals, int flags, goshm_result *res) {
	goshm_clear(res);
	if (memfd_create == NULL || (flags & GOSHM_NO_MEMFD))
		return goshm_fail(GOSHM_OP_MEMFD_CREATE, ENOSYS);
	// MFD_NOEXEC_SEAL (Linux 6.3): never executable, and no kernel
	// warning about a memfd made without MFD_EXEC or MFD_NOEXEC_SEAL.
	int fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_NOEXEC_SEAL);
	if (fd < 0 && errno == EINVAL)
		fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return goshm_fail(GOSHM_OP_MEMFD_CREATE, errno);
	int r = goshm_size(fd, 0, size, flags);
	// Sealed before anyone else can see the descriptor.
	if (r == 0 && seals != 0 && fcntl(fd, F_ADD_SEALS, seals) != 0)
		r = goshm_fail(GOSHM_OP_FCNTL, errno);
	if (r == 0)
		r = goshm_map(fd, 0, size, flags, res);
	if (r != 0) {
		close(fd);
		return r;
	}
	res->fd = fd;
	res->created = 1;
	return 0;
}

int goshm_add_seals(int fd, int ro, uintptr_t addr, int64_t size, int seals, int *rdonly) {
	int remapped = 0;
	*rdonly = 0;
	if (ro >= 0) {
		int now = fcntl(fd, F_GET_SEALS);
		if (now < 0)
			return goshm_fail(GOSHM_OP_FCNTL, errno);
		if (now & F_SEAL_SEAL)
			return goshm_fail(GOSHM_OP_FCNTL, EPERM); // what F_ADD_SEALS says, before any remap
		void *p = mmap((void *)addr, (size_t)size, PROT_READ, MAP_SHARED | MAP_FIXED, ro, 0);
		if (p == MAP_FAILED)
			return goshm_fail(GOSHM_OP_MMAP, errno);
		remapped = *rdonly = 1;
	}
	if (fcntl(fd, F_ADD_SEALS, seals) != 0) {
		int err = errno;
		if (remapped && mmap((void *)addr, (size_t)size, PROT_READ | PROT_WRITE,
		                     MAP_SHARED | MAP_FIXED, fd, 0) != MAP_FAILED)
			*rdonly = 0;
		return goshm_fail(GOSHM_OP_FCNTL, err);
	}
	return 0;
}
