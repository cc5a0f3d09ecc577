//go:build linux && cgo

// The shim's lifecycle calls; see lifecycle.h. Syscalls only: nothing here
// reads or writes the mapped memory.

#define _GNU_SOURCE
#include "lifecycle.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>


static void copystat(const struct stat *s, goshm_stat *st) {
	st->dev = (uint64_t)s->st_dev;
	st->ino = (uint64_t)s->st_ino;
	st->nlink = (uint64_t)s->st_nlink;
	st->rdev = (uint64_t)s->st_rdev;
	st->mode = (uint32_t)s->st_mode;
	st->uid = (uint32_t)s->st_uid;
	st->gid = (uint32_t)s->st_gid;
	st->size = (int64_t)s->st_size;
	st->blksize = (int64_t)s->st_blksize;
	st->blocks = (int64_t)s->st_blocks;
	st->atime_sec = (int64_t)s->st_atim.tv_sec;
	st->atime_nsec = (int64_t)s->st_atim.tv_nsec;
	st->mtime_sec = (int64_t)s->st_mtim.tv_sec;
	st->mtime_nsec = (int64_t)s->st_mtim.tv_nsec;
	st->ctime_sec = (int64_t)s->st_ctim.tv_sec;
	st->ctime_nsec = (int64_t)s->st_ctim.tv_nsec;
}

int goshm_stat_name(const char *name, goshm_stat *st) {
	struct stat s;
	int fd = shm_open(name, O_RDONLY | O_NONBLOCK, 0);
	if (fd < 0)
		return goshm_fail(GOSHM_OP_SHM_OPEN, errno);
	int r = fstat(fd, &s) != 0 ? goshm_fail(GOSHM_OP_FSTAT, errno) : 0;
	close(fd);
	if (r != 0)
		return r;
	if (!S_ISREG(s.st_mode))
		return goshm_fail(GOSHM_OP_NOTREG, ENODEV);
	copystat(&s, st);
	return 0;
}

int goshm_fstat(int fd, goshm_stat *st) {
	struct stat s;
	if (fstat(fd, &s) != 0)
		return goshm_fail(GOSHM_OP_FSTAT, errno);
	copystat(&s, st);
	return 0;
}

int goshm_fchmod(int fd, unsigned int mode) {
	return fchmod(fd, (mode_t)mode) != 0 ? goshm_fail(GOSHM_OP_FCHMOD, errno) : 0;
}

int goshm_fchown(int fd, int64_t uid, int64_t gid) {
	return fchown(fd, (uid_t)uid, (gid_t)gid) != 0 ? goshm_fail(GOSHM_OP_FCHOWN, errno) : 0;
}

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
		int prot = (flags & GOSHM_RDONLY) ? PROT_READ : PROT_READ | PROT_WRITE;
		int mflags = (flags & GOSHM_PRIVATE) ? MAP_PRIVATE : MAP_SHARED;
		p = mmap(NULL, (size_t)size, prot, mflags, fd, 0);
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
	struct stat s;
	void *p = (void *)addr;
	int64_t len = addr != 0 ? oldlen : 0;
	int r = 0;

	if (fstat(fd, &s) != 0) {
		r = goshm_fail(GOSHM_OP_FSTAT, errno);
	} else if (size < 0) { // Remap: follow the object
		if ((uint64_t)s.st_size > (uint64_t)PTRDIFF_MAX)
			r = goshm_fail(GOSHM_OP_TOOBIG, EFBIG);
		else
			r = remap(fd, flags, &p, &len, (int64_t)s.st_size);
	} else if (size > (int64_t)s.st_size) {
		// Map first: mremap can fail (ENOMEM) while nothing has changed;
		// then reserve only the new range, which grows the object.
		r = remap(fd, flags, &p, &len, size);
		if (r == 0) {
			r = goshm_size(fd, (int64_t)s.st_size, size, flags);
			if (r != 0) // the object is unchanged (tmpfs undoes a failed
				// fallocate); the mapping shrinks back, in place.
				remap(fd, flags, &p, &len, addr != 0 ? oldlen : 0);
		}
	} else {
		if (size < (int64_t)s.st_size && ftruncate(fd, (off_t)size) != 0)
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
