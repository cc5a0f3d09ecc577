/* shmmutex.h: a lock between processes that survives its holder's death,
 * in MutexSize bytes of a shared mapping; the C side of
 * github.com/posixshm/shm's Mutex. Header-only, C11, Linux (3.15+), glibc
 * or musl, 32- and 64-bit. The layout and protocol are c/LAYOUT.md's.
 *
 *   int shmmutex_lock(void *m, int timeout_ms);  0, EOWNERDEAD, ETIMEDOUT
 *   int shmmutex_trylock(void *m);               0, EBUSY, EOWNERDEAD
 *   int shmmutex_unlock(void *m);                0, EPERM
 *
 * m points at SHMMUTEX_SIZE bytes, 8-aligned, of a MAP_SHARED mapping of a
 * file (a POSIX shared memory object, a memfd, an ordinary file); all-zero
 * bytes are an unlocked lock. The functions return 0 or an errno value
 * (errno may change). timeout_ms < 0 waits without end.
 *
 * The lock is held by the process, not the thread: any thread of the
 * holder may unlock; it is not reentrant. When the holder dies, the next
 * lock or trylock takes it and returns EOWNERDEAD: the lock is held, and
 * the data it protects may be half-updated; repair it, then unlock.
 * A holder's death is known from the kernel, never from a pid: each
 * process holds an open-file-description lock on one byte of the object
 * (past its end) for its lifetime. So the first call on an object opens it
 * again, read-write, from the address: /proc/self/map_files (needs
 * CAP_SYS_ADMIN), else the path /proc/self/maps shows if it is still the
 * same file, else a descriptor of it this process has open; failing those,
 * the call returns ENOENT (keep the object's name, or its descriptor,
 * while locking). That descriptor stays open until exit. A mapping's
 * address range is remembered with its object: do not map another object
 * where one with a lock was. After fork, the child holds nothing and
 * starts afresh. A process can lock in at most 64 mappings (ENOMEM beyond).
 * A waiter tests the holder's life every 200 ms while it sleeps.
 *
 * Needs POSIX declarations (gcc's default -std=gnu11, or -std=c11 with
 * -D_DEFAULT_SOURCE) and, with glibc before 2.34, -pthread. All files of a
 * program that include it share one state (weak symbols).
 */
#ifndef SHMMUTEX_H
#define SHMMUTEX_H

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#define SHMMUTEX_SIZE 8
#define SHMMUTEX_LAYOUT_VERSION 1

_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2, "shmmutex needs lock-free 64-bit atomics");

long syscall(long, ...); /* as glibc and musl declare it */

#define SHMMUTEX__WAITERS 0x80000000ull
#define SHMMUTEX__TOKEN 0x7fffffff7fffffffull
#define SHMMUTEX__LAYOUT 0x8000000000000000ull
#define SHMMUTEX__SLOTBASE (1ll << 62)
#define SHMMUTEX__OFD_GETLK 36
#define SHMMUTEX__OFD_SETLK 37
#define SHMMUTEX__MAX 64
#define SHMMUTEX__PERIOD_MS 200 /* a waiter tests the holder's life this often */

/* The kernel's struct flock64 (struct flock on 64-bit): long long has the
 * same alignment in it as here on every Linux ABI. */
struct shmmutex__flock {
	short type, whence;
	long long start, len;
	int pid;
};

struct shmmutex__reg { /* this process on one object */
	unsigned long long dev, ino;
	int fd;
	uint64_t token;
};

struct shmmutex__range { /* a mapping found to be of reg */
	uintptr_t start, end;
	int reg;
};

struct shmmutex__state {
	pthread_mutex_t mu;
	pthread_once_t once;
	int nreg;
	_Atomic int nrange; /* ranges[0..nrange) are final once counted */
	struct shmmutex__reg regs[SHMMUTEX__MAX];
	struct shmmutex__range ranges[SHMMUTEX__MAX];
};

__attribute__((weak)) struct shmmutex__state shmmutex__g = {
	.mu = PTHREAD_MUTEX_INITIALIZER,
	.once = PTHREAD_ONCE_INIT,
};

static inline int shmmutex__fcntl(int fd, int cmd, struct shmmutex__flock *lk) {
#ifdef SYS_fcntl64
	long r = syscall(SYS_fcntl64, fd, cmd, lk);
#else
	long r = syscall(SYS_fcntl, fd, cmd, lk);
#endif
	return r < 0 ? errno : 0;
}

static inline long long shmmutex__slot(uint64_t t) {
	return SHMMUTEX__SLOTBASE + (long long)((t >> 32) << 31 | (t & 0x7fffffff));
}

static inline void shmmutex__atfork_child(void) {
	/* The inherited descriptors share the parent's open file descriptions,
	 * hence its byte locks: the child is not the parent. */
	for (int i = 0; i < shmmutex__g.nreg; i++)
		close(shmmutex__g.regs[i].fd);
	shmmutex__g.nreg = 0;
	atomic_store(&shmmutex__g.nrange, 0);
	pthread_mutex_init(&shmmutex__g.mu, NULL);
}

static inline void shmmutex__init(void) {
	pthread_atfork(NULL, NULL, shmmutex__atfork_child);
}

/* shmmutex__same: fd is the file of device major:minor and inode ino. */
static inline int shmmutex__same(int fd, unsigned maj, unsigned mnr, unsigned long long ino) {
	struct stat st;
	return fstat(fd, &st) == 0 && major(st.st_dev) == maj && minor(st.st_dev) == mnr &&
	       (unsigned long long)st.st_ino == ino;
}

static inline int shmmutex__try(const char *path, unsigned maj, unsigned mnr, unsigned long long ino) {
	int fd = open(path, O_RDWR | O_CLOEXEC | O_NONBLOCK);
	if (fd >= 0 && !shmmutex__same(fd, maj, mnr, ino)) {
		close(fd);
		fd = -1;
	}
	return fd;
}

/* shmmutex__find registers this process on the object mapped at addr
 * (under the state's lock) and returns the range's index, or -errno. */
static inline int shmmutex__find(uintptr_t addr) {
	char line[8192], path[64];
	unsigned long start = 0, end = 0;
	unsigned maj = 0, mnr = 0;
	unsigned long long off, ino = 0;
	int found = 0, fd = -1;
	FILE *f = fopen("/proc/self/maps", "re");
	if (!f)
		return -errno;
	while (fgets(line, sizeof line, f)) {
		int n = 0;
		if (sscanf(line, "%lx-%lx %*s %llx %x:%x %llu %n", &start, &end, &off, &maj, &mnr, &ino, &n) < 6)
			continue;
		if (addr < start || addr >= end)
			continue;
		found = 1;
		snprintf(path, sizeof path, "/proc/self/map_files/%lx-%lx", start, end);
		fd = shmmutex__try(path, maj, mnr, ino);
		char *p = line + n;
		p[strcspn(p, "\n")] = 0;
		if (fd < 0 && p[0] == '/')
			fd = shmmutex__try(p, maj, mnr, ino);
		break;
	}
	fclose(f);
	if (!found || ino == 0)
		return -EINVAL; /* not a mapping of a file */
	if (fd < 0) {
		DIR *d = opendir("/proc/self/fd");
		struct dirent *e;
		while (d && fd < 0 && (e = readdir(d))) {
			if (e->d_name[0] == '.')
				continue;
			snprintf(path, sizeof path, "/proc/self/fd/%.20s", e->d_name);
			fd = shmmutex__try(path, maj, mnr, ino);
		}
		if (d)
			closedir(d);
		if (fd < 0)
			return -ENOENT;
	}
	int r;
	for (r = 0; r < shmmutex__g.nreg; r++)
		if (shmmutex__g.regs[r].dev == ((unsigned long long)maj << 32 | mnr) && shmmutex__g.regs[r].ino == ino)
			break;
	if (r < shmmutex__g.nreg) {
		close(fd);
	} else {
		if (r == SHMMUTEX__MAX || atomic_load(&shmmutex__g.nrange) == SHMMUTEX__MAX) {
			close(fd);
			return -ENOMEM;
		}
		uint64_t t = 0;
		int err = EAGAIN;
		for (int tries = 0; tries < 100 && (err == EAGAIN || err == EACCES); tries++) {
			if (syscall(SYS_getrandom, &t, sizeof t, 0) != (long)sizeof t) {
				err = errno;
				break;
			}
			t &= SHMMUTEX__TOKEN;
			if ((t & 0x7fffffff) == 0)
				continue;
			struct shmmutex__flock lk = {F_WRLCK, SEEK_SET, shmmutex__slot(t), 1, 0};
			err = shmmutex__fcntl(fd, SHMMUTEX__OFD_SETLK, &lk);
		}
		if (err) {
			close(fd);
			return -err;
		}
		shmmutex__g.regs[r] = (struct shmmutex__reg){(unsigned long long)maj << 32 | mnr, ino, fd, t};
		shmmutex__g.nreg++;
	}
	int i = atomic_load(&shmmutex__g.nrange);
	if (i == SHMMUTEX__MAX)
		return -ENOMEM;
	shmmutex__g.ranges[i] = (struct shmmutex__range){start, end, r};
	atomic_store(&shmmutex__g.nrange, i + 1);
	return i;
}

/* shmmutex__reg returns this process's registration on m's object, making
 * it on first use, or NULL with *err set. */
static inline struct shmmutex__reg *shmmutex__reg(void *m, int *err) {
	uintptr_t a = (uintptr_t)m;
	int n = atomic_load(&shmmutex__g.nrange);
	for (int i = 0; i < n; i++)
		if (a >= shmmutex__g.ranges[i].start && a < shmmutex__g.ranges[i].end)
			return &shmmutex__g.regs[shmmutex__g.ranges[i].reg];
	if (a % 8 != 0) {
		*err = EINVAL;
		return NULL;
	}
	pthread_once(&shmmutex__g.once, shmmutex__init);
	pthread_mutex_lock(&shmmutex__g.mu);
	int i = shmmutex__find(a);
	pthread_mutex_unlock(&shmmutex__g.mu);
	if (i < 0) {
		*err = -i;
		return NULL;
	}
	return &shmmutex__g.regs[shmmutex__g.ranges[i].reg];
}

/* shmmutex__step: one attempt, as Mutex.step in Go. Returns 0 or
 * EOWNERDEAD when taken, EBUSY with *cur the word (waiters bit set in
 * memory if announce), or another errno. */
static inline int shmmutex__step(_Atomic uint64_t *w, struct shmmutex__reg *r, int announce, uint64_t *cur) {
	for (;;) {
		uint64_t c = atomic_load(w), holder = c & ~SHMMUTEX__WAITERS;
		*cur = c;
		if (c & SHMMUTEX__LAYOUT)
			return EPROTO;
		if (c == 0) {
			if (atomic_compare_exchange_strong(w, &c, r->token | (announce ? SHMMUTEX__WAITERS : 0)))
				return 0;
			continue;
		}
		if (holder != r->token) {
			struct shmmutex__flock lk = {F_WRLCK, SEEK_SET, shmmutex__slot(holder), 1, 0};
			int err = shmmutex__fcntl(r->fd, SHMMUTEX__OFD_GETLK, &lk);
			if (err)
				return err;
			if (lk.type == F_UNLCK) { /* nobody holds the holder's byte: dead */
				if (atomic_compare_exchange_strong(w, &c, r->token | (c & SHMMUTEX__WAITERS)))
					return EOWNERDEAD;
				continue;
			}
		}
		if (!announce || (c & SHMMUTEX__WAITERS))
			return EBUSY;
		if (atomic_compare_exchange_strong(w, &c, c | SHMMUTEX__WAITERS)) {
			*cur = c | SHMMUTEX__WAITERS;
			return EBUSY;
		}
	}
}

static inline uint32_t *shmmutex__futex(void *m) {
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
	return (uint32_t *)m + 1;
#else
	return (uint32_t *)m;
#endif
}

static inline int shmmutex_trylock(void *m) {
	int err = 0;
	struct shmmutex__reg *r = shmmutex__reg(m, &err);
	if (!r)
		return err;
	_Atomic uint64_t *w = (_Atomic uint64_t *)m;
	uint64_t zero = 0, cur;
	if (atomic_compare_exchange_strong(w, &zero, r->token))
		return 0;
	return shmmutex__step(w, r, 0, &cur);
}

static inline int64_t shmmutex__now_ms(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline int shmmutex_lock(void *m, int timeout_ms) {
	int err = 0;
	struct shmmutex__reg *r = shmmutex__reg(m, &err);
	if (!r)
		return err;
	_Atomic uint64_t *w = (_Atomic uint64_t *)m;
	uint64_t zero = 0, cur;
	if (atomic_compare_exchange_strong(w, &zero, r->token))
		return 0;
	int64_t deadline = timeout_ms < 0 ? INT64_MAX : shmmutex__now_ms() + timeout_ms;
	for (;;) {
		err = shmmutex__step(w, r, 1, &cur);
		if (err != EBUSY)
			return err;
		int64_t left = deadline - shmmutex__now_ms();
		if (left <= 0)
			return ETIMEDOUT; /* the waiters bit stays: no wake-up is lost */
		if (left > SHMMUTEX__PERIOD_MS)
			left = SHMMUTEX__PERIOD_MS; /* then test the holder's life again */
		struct timespec ts = {left / 1000, (long)(left % 1000) * 1000000};
		syscall(SYS_futex, shmmutex__futex(m), 0 /* FUTEX_WAIT, shared */, (uint32_t)cur, &ts, NULL, 0);
	}
}

static inline int shmmutex_unlock(void *m) {
	int err = 0;
	struct shmmutex__reg *r = shmmutex__reg(m, &err);
	if (!r)
		return err;
	_Atomic uint64_t *w = (_Atomic uint64_t *)m;
	uint64_t cur = r->token;
	if (atomic_compare_exchange_strong(w, &cur, 0))
		return 0;
	for (;;) {
		cur = atomic_load(w);
		if ((cur & ~SHMMUTEX__WAITERS) != r->token)
			return EPERM;
		if (atomic_compare_exchange_strong(w, &cur, 0)) {
			syscall(SYS_futex, shmmutex__futex(m), 1 /* FUTEX_WAKE, shared */, 1, NULL, NULL, 0);
			return 0;
		}
	}
}

#endif
