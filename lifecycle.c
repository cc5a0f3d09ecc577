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

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif

// cover_moved grows a private mapping where MREMAP_DONTUNMAP is refused
// (Linux before 5.13): mremap(MREMAP_MAYMOVE) takes this process's private
// bytes along and unmaps the old range, which is then reserved at once,
// inaccessible (PROT_NONE; MAP_FIXED_NOREPLACE never takes another
// mapping's place), for the caller to unmap at Close. Best effort: in the
// moment between the two calls another thread could map something there.
static int cover_moved(goshm_resized *res, int64_t size) {
	void *old = res->addr;
	size_t oldlen = (size_t)res->maplen;
	void *p = mremap(old, oldlen, (size_t)size, MREMAP_MAYMOVE);
	if (p == MAP_FAILED)
		return goshm_fail(GOSHM_OP_MREMAP, errno);
	res->addr = p;
	res->maplen = size;
	void *r = mmap(old, oldlen, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE, -1, 0);
	if (r == old)
		res->moved = 1; // the reservation is the old range now
	else if (r != MAP_FAILED)
		munmap(r, oldlen); // a kernel without MAP_FIXED_NOREPLACE (before 4.17) put it elsewhere
	return 0;
}

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
		p = (flags & GOSHM_NO_DONTUNMAP) ? MAP_FAILED
			: mremap(res->addr, (size_t)res->maplen, (size_t)res->maplen, MREMAP_MAYMOVE | MREMAP_DONTUNMAP);
		if (p == MAP_FAILED && ((flags & GOSHM_NO_DONTUNMAP) || errno == EINVAL))
			return cover_moved(res, size);
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
