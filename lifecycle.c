//go:build linux && cgo

// The shim's lifecycle calls; see lifecycle.h. Syscalls only: nothing here
// reads or writes the mapped memory.

#define _GNU_SOURCE
#include "lifecycle.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#ifndef MREMAP_DONTUNMAP
#define MREMAP_DONTUNMAP 4
#endif

// cover makes res's mapping of fd at least size bytes long without ever
// unmapping an address it covered (lifecycle.h).
static int cover(int fd, int flags, goshm_resized *res, int64_t size) {
	void *p;
	if (size <= res->maplen)
		return 0;
	if (res->addr == NULL) {
		p = mmap(NULL, (size_t)size, goshm_prot(flags), goshm_mflags(flags), fd, 0);
		if (p == MAP_FAILED)
			return goshm_fail(GOSHM_OP_MMAP, errno);
		res->addr = p;
		res->maplen = size;
		return 0;
	}
	// In place, where the address space after the mapping is free.
	p = mremap(res->addr, (size_t)res->maplen, (size_t)size, 0);
	if (p != MAP_FAILED) {
		res->maplen = size;
		return 0;
	}
	if (errno != ENOMEM)
		return goshm_fail(GOSHM_OP_MREMAP, errno);
	if (!(flags & GOSHM_PRIVATE)) {
		// Shared: a new mapping of the same object; the old one stays.
		p = mmap(NULL, (size_t)size, goshm_prot(flags), goshm_mflags(flags), fd, 0);
		if (p == MAP_FAILED)
			return goshm_fail(GOSHM_OP_MMAP, errno);
	} else {
		// Private: this process's copies of pages move with
		// MREMAP_DONTUNMAP (Linux 5.13 for file mappings); the old range
		// stays, mapping the file. Then the moved mapping, which nothing
		// else points into, grows wherever it can.
		p = mremap(res->addr, (size_t)res->maplen, (size_t)res->maplen, MREMAP_MAYMOVE | MREMAP_DONTUNMAP);
		if (p == MAP_FAILED)
			return goshm_fail(GOSHM_OP_MREMAP, errno);
		void *q = mremap(p, (size_t)res->maplen, (size_t)size, MREMAP_MAYMOVE);
		if (q == MAP_FAILED) {
			int err = errno;
			// Back where it was: the old range is still ours.
			if (mremap(p, (size_t)res->maplen, (size_t)res->maplen, MREMAP_MAYMOVE | MREMAP_FIXED, res->addr) == MAP_FAILED)
				munmap(p, (size_t)res->maplen);
			return goshm_fail(GOSHM_OP_MREMAP, err);
		}
		p = q;
	}
	res->addr = p;
	res->maplen = size;
	res->moved = 1;
	return 0;
}

// min64 is the smaller of a and b.
static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

int goshm_resize(int fd, uintptr_t addr, int64_t maplen, int64_t size, int flags, goshm_resized *res) {
	int64_t cur = 0;
	int r;

	*res = (goshm_resized){.addr = (void *)addr, .maplen = addr != 0 ? maplen : 0};
	r = goshm_measure(fd, &cur);
	if (r != 0)
		return r;
	if (size < 0) { // Remap: follow the object
		r = cover(fd, flags, res, cur);
		res->size = min64(cur, res->maplen);
		return r;
	}
	if (size > cur) {
		// Map first: mapping can fail (ENOMEM) while nothing has
		// changed; then reserve only the new range, which grows the
		// object. If that fails the object is unchanged (tmpfs undoes a
		// failed fallocate), and so is the size the mapping covers.
		res->size = min64(cur, res->maplen);
		r = cover(fd, flags, res, size);
		if (r == 0)
			r = goshm_size(fd, cur, size, flags);
		if (r == 0)
			res->size = size;
		return r;
	}
	if (size < cur && ftruncate(fd, (off_t)size) != 0) {
		res->size = min64(cur, res->maplen);
		return goshm_fail(GOSHM_OP_FTRUNCATE, errno);
	}
	// A shrink keeps the whole mapping (size <= maplen: nothing to map);
	// the same size covers what the mapping lacks.
	r = cover(fd, flags, res, size);
	res->size = min64(size, res->maplen);
	return r;
}
