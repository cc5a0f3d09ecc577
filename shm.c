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
#include <unistd.h>

// Kernel 5.14 values; older C headers (musl 1.2.3) lack them.
#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#endif
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

// fail encodes a failure as shm.h says: -(op << 16 | errno).
static int fail(int op, int err) {
	return -(op << 16 | err);
}

// reserve allocates the object's pages so that a full file system is
// ENOSPC here instead of SIGBUS at first touch. tmpfs abandons a fallocate
// with EINTR, undoing it, whenever a signal is pending, and the Go runtime
// signals its threads often (SIGURG for preemption, SIGPROF), so a long
// reservation retried naively could start over forever. The first attempt
// runs as is (a short one rarely meets a signal, and blocking costs two
// system calls); after EINTR, all signals are blocked around the retries.
// Blocked signals stay pending and are delivered when the mask is restored.
static int reserve(int fd, int64_t size) {
	sigset_t all, old;
	int r, err;

	if (fallocate(fd, 0, 0, (off_t)size) == 0)
		return 0;
	if (errno != EINTR)
		return errno;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	do {
		r = fallocate(fd, 0, 0, (off_t)size);
	} while (r != 0 && errno == EINTR);
	err = r != 0 ? errno : 0;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return err;
}

static int populate(void *addr, size_t length, int advice) {
	int r;
	do {
		r = madvise(addr, length, advice);
	} while (r != 0 && errno == EINTR);
	return r != 0 ? errno : 0;
}

// map does mmap and, if asked, pre-faults with MADV_POPULATE_* (Linux 5.14),
// falling back to MAP_POPULATE where the kernel lacks them. A large mapping
// may be left to the caller (GOSHM_POPULATE_DEFER) once its first page shows
// that madvise works.
static int map(int fd, int64_t off, int64_t size, int flags, goshm_result *res) {
	int prot = (flags & GOSHM_RDONLY) ? PROT_READ : PROT_READ | PROT_WRITE;
	int mflags = (flags & GOSHM_PRIVATE) ? MAP_PRIVATE : MAP_SHARED;
	void *p = mmap(NULL, (size_t)size, prot, mflags, fd, (off_t)off);
	if (p == MAP_FAILED)
		return fail(GOSHM_OP_MMAP, errno);
	if (flags & GOSHM_POPULATE) {
		// A private mapping is populated for reading: populating it for
		// writing would copy every page up front.
		int advice = (prot & PROT_WRITE) && mflags == MAP_SHARED
			? MADV_POPULATE_WRITE : MADV_POPULATE_READ;
		size_t first = (flags & GOSHM_POPULATE_DEFER) && size >= GOSHM_PARALLEL_MIN
			? (size_t)sysconf(_SC_PAGESIZE) : (size_t)size;
		int err = populate(p, first, advice);
		if (err == 0 && first < (size_t)size)
			res->advice = advice;
		if (err != 0) {
			munmap(p, (size_t)size);
			if (err != EINVAL)
				return fail(GOSHM_OP_MADVISE, err);
			p = mmap(NULL, (size_t)size, prot, mflags | MAP_POPULATE, fd, (off_t)off);
			if (p == MAP_FAILED)
				return fail(GOSHM_OP_MMAP, errno);
		}
	}
	res->addr = p;
	res->size = size;
	return 0;
}

static void clear(goshm_result *res) {
	res->addr = NULL;
	res->size = 0;
	res->fd = -1;
	res->created = 0;
	res->advice = 0;
}

int goshm_open(const char *name, int oflag, unsigned int mode, int64_t size,
               int flags, goshm_result *res) {
	int fd, created, err, r = 0;

	clear(res);
	if ((oflag & O_CREAT) && !(oflag & O_EXCL)) {
		// Open-or-create that knows which happened: create exclusively,
		// else open what exists; if it vanished in between, start over.
		for (int tries = 0;; tries++) {
			fd = shm_open(name, oflag | O_EXCL, (mode_t)mode);
			if (fd >= 0) {
				created = 1;
				break;
			}
			if (errno != EEXIST || tries == 100)
				return fail(GOSHM_OP_SHM_OPEN, errno);
			fd = shm_open(name, oflag & ~O_CREAT, (mode_t)mode);
			if (fd >= 0) {
				created = 0;
				break;
			}
			if (errno != ENOENT)
				return fail(GOSHM_OP_SHM_OPEN, errno);
		}
	} else {
		fd = shm_open(name, oflag, (mode_t)mode);
		if (fd < 0)
			return fail(GOSHM_OP_SHM_OPEN, errno);
		created = (oflag & O_CREAT) != 0;
	}

	if (created || (oflag & O_TRUNC)) {
		int sparse = flags & GOSHM_SPARSE;
		if (!sparse) {
			err = reserve(fd, size);
			if (err == EOPNOTSUPP || err == ENOSYS)
				sparse = 1; // the file system cannot reserve
			else if (err != 0)
				r = fail(GOSHM_OP_FALLOCATE, err);
		}
		if (sparse && ftruncate(fd, (off_t)size) != 0)
			r = fail(GOSHM_OP_FTRUNCATE, errno);
	} else {
		struct stat st;
		if (fstat(fd, &st) != 0)
			r = fail(GOSHM_OP_FSTAT, errno);
		else if ((uint64_t)st.st_size > (uint64_t)PTRDIFF_MAX)
			r = fail(GOSHM_OP_MMAP, EFBIG);
		else
			size = st.st_size;
	}

	if (r == 0 && size > 0)
		r = map(fd, 0, size, flags, res);
	if (r != 0) {
		if (created)
			shm_unlink(name); // only what this call made
		close(fd);
		clear(res);
		return r;
	}
	res->fd = fd;
	res->created = created;
	res->size = size;
	return 0;
}

int goshm_map(int fd, int64_t off, int64_t length, int flags, goshm_result *res) {
	clear(res);
	if (length == 0)
		return 0;
	return map(fd, off, length, flags, res);
}

int goshm_populate(uintptr_t addr, int64_t length, int advice) {
	int err = populate((void *)addr, (size_t)length, advice);
	return err != 0 ? fail(GOSHM_OP_MADVISE, err) : 0;
}

int goshm_close(uintptr_t addr, int64_t size, int fd) {
	int err = 0;
	if (addr != 0 && munmap((void *)addr, (size_t)size) != 0)
		err = fail(GOSHM_OP_MUNMAP, errno);
	// close(2) on Linux releases the fd even when it reports an error, so
	// it is never retried.
	if (fd >= 0 && close(fd) != 0 && err == 0)
		err = fail(GOSHM_OP_CLOSE, errno);
	return err;
}

int goshm_msync(uintptr_t addr, int64_t length, int flags) {
	return msync((void *)addr, (size_t)length, flags) != 0 ? fail(GOSHM_OP_MSYNC, errno) : 0;
}

int goshm_unlink(const char *name) {
	return shm_unlink(name) != 0 ? fail(GOSHM_OP_SHM_UNLINK, errno) : 0;
}
