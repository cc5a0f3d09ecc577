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

// span is how long a mapping that must grow to size bytes is made: twice
// size, in whole pages, so that the grows after it fit in it without a
// system call or a move (the pages past the object's end are mapped beyond
// EOF: nothing is charged for them, and touching one is SIGBUS, as after a
// shrink); size itself where twice would not fit in the address space's
// arithmetic (a 32-bit size_t, a Go int).
static int64_t span(int64_t size) {
	int64_t page = (int64_t)sysconf(_SC_PAGESIZE);
	if (size > (int64_t)(PTRDIFF_MAX / 2) - page)
		return size;
	return (2 * size + page - 1) / page * page;
}

// grow_at extends the mapping res describes in place (mremap without
// MREMAP_MAYMOVE) to span(size) bytes, else to size: 1 when it did, 0 when
// the address space after it is taken (or it is not one mapping the kernel
// can extend), a failure otherwise.
static int grow_at(goshm_resized *res, int64_t size) {
	int64_t want[2] = {span(size), size};
	for (int i = 0; i < 2; i++) {
		if (mremap(res->addr, (size_t)res->maplen, (size_t)want[i], 0) != MAP_FAILED) {
			res->maplen = want[i];
			return 1;
		}
		if (errno != ENOMEM && errno != EFAULT)
			return goshm_fail(GOSHM_OP_MREMAP, errno);
	}
	return 0;
}

// grow_moving is mremap(addr, len, span(size) or else size,
// MREMAP_MAYMOVE) of a mapping nothing else points into: the new address,
// or MAP_FAILED with errno, and its length in *got.
static void *grow_moving(void *addr, int64_t len, int64_t size, int64_t *got) {
	void *p = mremap(addr, (size_t)len, (size_t)span(size), MREMAP_MAYMOVE);
	*got = span(size);
	if (p == MAP_FAILED && errno == ENOMEM) {
		p = mremap(addr, (size_t)len, (size_t)size, MREMAP_MAYMOVE);
		*got = size;
	}
	return p;
}

// cover makes res's mapping of fd at least size bytes long without ever
// unmapping an address it covered (lifecycle.h).
static int cover(int fd, int flags, goshm_resized *res, int64_t size) {
	void *p;
	int64_t len;
	if (size <= res->maplen)
		return 0;
	if (res->addr != NULL) {
		int r = grow_at(res, size);
		if (r != 0)
			return r < 0 ? r : 0;
	}
	if (res->addr == NULL || !(flags & GOSHM_PRIVATE)) {
		// Shared (or nothing mapped yet): a new mapping of the object;
		// the old one stays.
		len = span(size);
		p = mmap(NULL, (size_t)len, goshm_prot(flags), goshm_mflags(flags), fd, 0);
		if (p == MAP_FAILED && errno == ENOMEM) {
			len = size;
			p = mmap(NULL, (size_t)len, goshm_prot(flags), goshm_mflags(flags), fd, 0);
		}
		if (p == MAP_FAILED)
			return goshm_fail(GOSHM_OP_MMAP, errno);
		res->moved = res->addr != NULL;
		res->addr = p;
		res->maplen = len;
		return 0;
	}
	void *old = res->addr;
	size_t oldlen = (size_t)res->maplen;
	if (!(flags & GOSHM_NO_DONTUNMAP)) {
		// Private: this process's copies of pages move with
		// MREMAP_DONTUNMAP (Linux 5.13 for file mappings); the old range
		// stays, mapping the file. Then the moved mapping, which nothing
		// else points into, grows wherever it can.
		p = mremap(old, oldlen, oldlen, MREMAP_MAYMOVE | MREMAP_DONTUNMAP);
		if (p != MAP_FAILED) {
			void *q = grow_moving(p, (int64_t)oldlen, size, &len);
			if (q == MAP_FAILED) {
				int err = errno;
				// Back where it was: the old range is still ours.
				if (mremap(p, oldlen, oldlen, MREMAP_MAYMOVE | MREMAP_FIXED, old) == MAP_FAILED)
					munmap(p, oldlen);
				return goshm_fail(GOSHM_OP_MREMAP, err);
			}
			res->addr = q;
			res->maplen = len;
			res->moved = 1;
			return 0;
		}
		if (errno != EINVAL)
			return goshm_fail(GOSHM_OP_MREMAP, errno);
	}
	// Linux before 5.13 refuses MREMAP_DONTUNMAP for files: the private
	// pages move (mremap(MREMAP_MAYMOVE) unmaps the old range) and the
	// object is mapped over the old range again at once, as
	// MREMAP_DONTUNMAP would have left it. MAP_FIXED_NOREPLACE never
	// takes another mapping's place: should another thread map something
	// there in between, the old range is not ours, and not retired.
	p = grow_moving(old, (int64_t)oldlen, size, &len);
	if (p == MAP_FAILED)
		return goshm_fail(GOSHM_OP_MREMAP, errno);
	res->addr = p;
	res->maplen = len;
	if (p == old)
		return 0; // grew in place after all
	void *r = mmap(old, oldlen, goshm_prot(flags), MAP_PRIVATE | MAP_FIXED_NOREPLACE, fd, 0);
	if (r == old)
		res->moved = 1; // the old range maps the object again
	else if (r != MAP_FAILED)
		munmap(r, oldlen); // a kernel without MAP_FIXED_NOREPLACE (before 4.17) put it elsewhere
	return 0;
}

// min64 is the smaller of a and b.
static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

int goshm_resize(int fd, uintptr_t addr, int64_t maplen, int64_t size, int flags, goshm_resized *res) {
	int64_t cur = 0;
	int r;

	*res = (goshm_resized){.addr = (void *)addr, .maplen = addr != 0 ? maplen : 0};
	r = goshm_measure(fd, &cur);
	if (r != 0) {
		res->size = -1; // nothing changed: the caller keeps the size it had
		return r;
	}
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
