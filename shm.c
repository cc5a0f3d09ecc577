//go:build linux && cgo

// The C shim of github.com/posixshm/shm; see shm.h. Syscalls only: nothing
// here reads or writes the mapped memory.

#define _GNU_SOURCE
#include "shm.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

// Kernel 5.14 values; older C headers (musl 1.2.3) lack them.
#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#endif
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

// reserve_range allocates the object's pages so that a full file system is
// ENOSPC here instead of SIGBUS at first touch. tmpfs abandons a fallocate
// with EINTR, undoing it, whenever a signal is pending, and the Go runtime
// signals its threads often (SIGURG for preemption, SIGPROF), so a long
// reservation retried naively could start over forever. The first attempt
// runs as is (a short one rarely meets a signal, and blocking costs two
// system calls); after EINTR, all signals are blocked around the retries.
// Blocked signals stay pending and are delivered when the mask is restored.
// It reserves [off, off+len).
static int reserve_range(int fd, int64_t off, int64_t len) {
	sigset_t all, old;
	int r, err;

	if (fallocate(fd, 0, (off_t)off, (off_t)len) == 0)
		return 0;
	if (errno != EINTR)
		return errno;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	do {
		r = fallocate(fd, 0, (off_t)off, (off_t)len);
	} while (r != 0 && errno == EINTR);
	err = r != 0 ? errno : 0;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return err;
}

// goshm_size: see shm.h.
int goshm_size(int fd, int64_t from, int64_t size, int flags) {
	if (!(flags & GOSHM_SPARSE)) {
		int err = reserve_range(fd, from, size - from);
		if (err == 0)
			return 0;
		if (err != EOPNOTSUPP && err != ENOSYS)
			return goshm_fail(GOSHM_OP_FALLOCATE, err);
	}
	return ftruncate(fd, (off_t)size) != 0 ? goshm_fail(GOSHM_OP_FTRUNCATE, errno) : 0;
}

static int populate(void *addr, size_t length, int advice) {
	int r;
	do {
		r = madvise(addr, length, advice);
	} while (r != 0 && errno == EINTR);
	return r != 0 ? errno : 0;
}

// resident checks with mincore that every page of a MAP_POPULATE mapping
// was faulted in: MAP_POPULATE itself cannot report a page it could not
// fault (a sparse object on a full /dev/shm, a file shorter than the map).
static int resident(void *addr, size_t length) {
	size_t page = (size_t)sysconf(_SC_PAGESIZE), pages = (length + page - 1) / page;
	unsigned char vec[4096];
	for (size_t i = 0; i < pages; i += sizeof vec) {
		size_t n = pages - i < sizeof vec ? pages - i : sizeof vec;
		char *p = (char *)addr + i * page;
		size_t len = i + n == pages ? length - i * page : n * page;
		if (mincore(p, len, vec) != 0)
			return goshm_fail(GOSHM_OP_MINCORE, errno);
		for (size_t j = 0; j < n; j++)
			if (!(vec[j] & 1))
				return goshm_fail(GOSHM_OP_MMAP, EFAULT);
	}
	return 0;
}

int goshm_prot(int flags) { return (flags & GOSHM_RDONLY) ? PROT_READ : PROT_READ | PROT_WRITE; }

int goshm_mflags(int flags) { return (flags & GOSHM_PRIVATE) ? MAP_PRIVATE : MAP_SHARED; }

int goshm_measure(int fd, int64_t *size) {
	struct stat st;
	if (fstat(fd, &st) != 0)
		return goshm_fail(GOSHM_OP_FSTAT, errno);
	if (!S_ISREG(st.st_mode))
		return goshm_fail(GOSHM_OP_SHM_OPEN, ENODEV);
	if ((uint64_t)st.st_size > (uint64_t)PTRDIFF_MAX)
		return goshm_fail(GOSHM_OP_FSTAT, EFBIG);
	*size = (int64_t)st.st_size;
	return 0;
}

// map does mmap and, if asked, pre-faults with MADV_POPULATE_* (Linux 5.14),
// falling back to MAP_POPULATE, checked with mincore, where the kernel lacks
// them. A large mapping may be left to the caller (GOSHM_POPULATE_DEFER)
// once its first page shows that madvise works.
static int map(int fd, int64_t off, int64_t size, int flags, goshm_result *res) {
	int prot = goshm_prot(flags), mflags = goshm_mflags(flags);
	void *p = mmap(NULL, (size_t)size, prot, mflags, fd, (off_t)off);
	if (p == MAP_FAILED)
		return goshm_fail(GOSHM_OP_MMAP, errno);
	if (flags & GOSHM_POPULATE) {
		// A private mapping is populated for reading: populating it for
		// writing would copy every page up front; a file mapping too:
		// it would dirty every page and allocate the file's holes.
		int advice = (prot & PROT_WRITE) && mflags == MAP_SHARED && !(flags & GOSHM_POPULATE_READ)
			? MADV_POPULATE_WRITE : MADV_POPULATE_READ;
		size_t first = (flags & GOSHM_POPULATE_DEFER) && size >= GOSHM_PARALLEL_MIN
			? (size_t)sysconf(_SC_PAGESIZE) : (size_t)size;
		int err = (flags & GOSHM_NO_MADV_POPULATE) ? EINVAL : populate(p, first, advice);
		if (err == 0 && first < (size_t)size)
			res->advice = advice;
		if (err != 0) {
			munmap(p, (size_t)size);
			if (err != EINVAL)
				return goshm_fail(GOSHM_OP_MADVISE, err);
			p = mmap(NULL, (size_t)size, prot, mflags | MAP_POPULATE, fd, (off_t)off);
			if (p == MAP_FAILED)
				return goshm_fail(GOSHM_OP_MMAP, errno);
			int r = resident(p, (size_t)size);
			if (r != 0) {
				munmap(p, (size_t)size);
				return r;
			}
		}
	}
	res->addr = p;
	res->size = size;
	return 0;
}

int goshm_shm_open(const char *name, int oflag, unsigned int mode) {
	int fd = shm_open(name, oflag | O_NONBLOCK, (mode_t)mode);
	return fd < 0 ? goshm_fail(GOSHM_OP_SHM_OPEN, errno) : fd;
}

int goshm_create(const char *name, unsigned int mode, int64_t size, int flags, goshm_result *res) {
	goshm_clear(res);
	int fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL | O_NONBLOCK, (mode_t)mode);
	if (fd < 0)
		return goshm_fail(GOSHM_OP_SHM_OPEN, errno);
	res->fd = fd;
	res->created = 1;
	int r = goshm_size(fd, 0, size, flags);
	if (r == 0)
		r = map(fd, 0, size, flags, res);
	return r;
}

int goshm_open(const char *name, int oflag, int64_t size, int flags, goshm_result *res) {
	goshm_clear(res);
	int fd = shm_open(name, oflag | O_NONBLOCK, 0);
	if (fd < 0)
		return goshm_fail(GOSHM_OP_SHM_OPEN, errno);
	int64_t cur;
	int r = goshm_measure(fd, &cur);
	if (r == 0 && (oflag & O_TRUNC))
		r = goshm_size(fd, 0, size, flags);
	else
		size = cur;
	if (r == 0 && size > 0)
		r = map(fd, 0, size, flags, res);
	if (r != 0) {
		close(fd);
		goshm_clear(res);
		return r;
	}
	res->fd = fd;
	res->size = size;
	return 0;
}

int goshm_map(int fd, int64_t off, int64_t length, int flags, goshm_result *res) {
	goshm_clear(res);
	return map(fd, off, length, flags, res);
}

int goshm_populate(uintptr_t addr, int64_t length, int advice) {
	int err = populate((void *)addr, (size_t)length, advice);
	return err != 0 ? goshm_fail(GOSHM_OP_MADVISE, err) : 0;
}

int goshm_close(uintptr_t addr, int64_t size, int fd) {
	int err = 0;
	if (addr != 0 && munmap((void *)addr, (size_t)size) != 0)
		err = goshm_fail(GOSHM_OP_MUNMAP, errno);
	// close(2) on Linux releases the fd even when it reports an error, so
	// it is never retried.
	if (fd >= 0 && close(fd) != 0 && err == 0)
		err = goshm_fail(GOSHM_OP_CLOSE, errno);
	return err;
}

int goshm_msync(uintptr_t addr, int64_t length, int flags) {
	return msync((void *)addr, (size_t)length, flags) != 0 ? goshm_fail(GOSHM_OP_MSYNC, errno) : 0;
}

int goshm_unlink(const char *name) {
	return shm_unlink(name) != 0 ? goshm_fail(GOSHM_OP_SHM_UNLINK, errno) : 0;
}

int goshm_link(const char *from, const char *to, const char *tmp) {
	if (link(from, to) != 0)
		return goshm_fail(GOSHM_OP_LINK, errno);
	shm_unlink(tmp);
	return 0;
}

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#endif

int goshm_rename_noreplace(const char *from, const char *to) {
#ifdef SYS_renameat2
	if (syscall(SYS_renameat2, AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE) == 0)
		return 0;
	return goshm_fail(GOSHM_OP_RENAMEAT2, errno);
#else
	(void)from;
	(void)to;
	return goshm_fail(GOSHM_OP_RENAMEAT2, ENOSYS);
#endif
}
