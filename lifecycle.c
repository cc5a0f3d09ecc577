//go:build linux && cgo

// The shim's lifecycle calls; see lifecycle.h. Syscalls only: nothing here
// reads or writes the mapped memory.

#define _GNU_SOURCE
#include "lifecycle.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

// remap makes *addr, a mapping of *len bytes of fd (NULL and 0 for none),
// size bytes long: mremap(MREMAP_MAYMOVE), or mmap or munmap to and from
// nothing. *addr and *len say what is mapped afterwards, failed or not.
static int remap(int fd, int flags, void **addr, int64_t *len, int64_t size) {
	void *p;
	if (size == *len)
		return 0;
	if (size == 0) {
		if (munmap(*addr, (size_t)*len) != 0)
			return goshm_fail(GOSHM_OP_MUNMAP, errno);
		*addr = NULL;
		*len = 0;
		return 0;
	}
	if (*len == 0) {
		p = mmap(NULL, (size_t)size, goshm_prot(flags), goshm_mflags(flags), fd, 0);
		if (p == MAP_FAILED)
			return goshm_fail(GOSHM_OP_MMAP, errno);
	} else {
		p = mremap(*addr, (size_t)*len, (size_t)size, MREMAP_MAYMOVE);
		if (p == MAP_FAILED)
			return goshm_fail(GOSHM_OP_MREMAP, errno);
	}
	*addr = p;
	*len = size;
	return 0;
}

int goshm_resize(int fd, uintptr_t addr, int64_t oldlen, int64_t size, int flags, goshm_result *res) {
	void *p = (void *)addr;
	int64_t len = addr != 0 ? oldlen : 0, cur = 0;
	int r = goshm_measure(fd, &cur);

	if (r != 0) {
		// nothing changed
	} else if (size < 0) { // Remap: follow the object
		r = remap(fd, flags, &p, &len, cur);
	} else if (size > cur) {
		// Map first: mremap can fail (ENOMEM) while nothing has changed;
		// then reserve only the new range, which grows the object.
		r = remap(fd, flags, &p, &len, size);
		if (r == 0) {
			r = goshm_size(fd, cur, size, flags);
			if (r != 0) // the object is unchanged (tmpfs undoes a failed
				// fallocate); the mapping shrinks back, in place.
				remap(fd, flags, &p, &len, addr != 0 ? oldlen : 0);
		}
	} else {
		if (size < cur && ftruncate(fd, (off_t)size) != 0)
			r = goshm_fail(GOSHM_OP_FTRUNCATE, errno);
		else
			r = remap(fd, flags, &p, &len, size);
	}
	goshm_clear(res);
	res->addr = p;
	res->size = len;
	res->fd = fd;
	return r;
}
