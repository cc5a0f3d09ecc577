/* shmring.h: the message ring of github.com/posixshm/shm/ring in C.
 *
 * Header-only, C11, Linux (glibc or musl), 64-bit or -m32. It speaks the
 * layout of ring/LAYOUT.md (version 1), so a C process can be either end
 * of a ring whose other end is Go, Python or C. Single producer, single
 * consumer, messages of 0 to max_message bytes, whole and in order.
 *
 *   shmring *r = shmring_create("/jobs", 1 << 20);  or shmring_open("/jobs")
 *   shmring_writer(r);                               or shmring_reader(r)
 *   shmring_send(r, msg, len, -1);                   ssize_t n = shmring_recv(r, buf, sizeof buf, -1);
 *   shmring_close(r);
 *
 * Batches: shmring_send_batch(r, iov, count, timeout_ms) sends as many of
 * count messages as fit, shmring_recv_batch(r, iov, lens, count,
 * timeout_ms) receives as many as are there, each with one store of its
 * counter and at most one wake-up. shmring_wait_peer(r, timeout_ms) waits
 * until a live process holds the other end.
 *
 * Errors are -1 (NULL) with errno: EBUSY (the end is claimed by a live
 * process), ETIMEDOUT, EMSGSIZE (message too large, receive buffer too
 * small: the message stays), EPIPE (recv: the writer closed and every
 * message was received; send: the reader closed its end and the ring is
 * full), EOWNERDEAD (the peer's process died; recv first delivers what it
 * committed), EINVAL, EPROTO (not a ring of this layout, or a corrupt
 * record or counter: every head, tail, length and wrap marker read from
 * the shared memory is checked before it decides an address, so a buggy
 * or hostile peer gets EPROTO, never an access outside the data), ECHILD
 * (the handle was inherited through fork(), below). timeout_ms -1 waits
 * forever, 0 never blocks. A blocked call tests the peer's life every
 * 150 ms of the monotonic clock, whatever ends its sleeps (a wake-up, a
 * timeout, a signal handler's EINTR): a dead peer is EOWNERDEAD within
 * about 300 ms even in a process that takes a signal every few ms.
 *
 * fork(): a child holds no claim. A pthread_atfork handler closes, in the
 * child, the descriptor of every handle the parent had and unmaps its
 * ring (both hold the open file description that carries the claims: it
 * stays the parent's alone, so the parent's death frees its end while the
 * child lives); in the child those handles refuse everything with ECHILD,
 * and shmring_close only frees them (it leaves the parent's end open). Open the ring again in the child to
 * use it. A child made by a raw clone system call, which runs no atfork
 * handler, is not covered; one that execs closes the descriptor anyway
 * (O_CLOEXEC). With glibc before 2.34, link with -pthread.
 *
 * A handle holds at most one end. It is not safe for concurrent use by
 * several threads. Include this header before any system header, or
 * compile with _GNU_SOURCE or _DEFAULT_SOURCE, so that shm_open and
 * syscall are declared under -std=c11. All files of a program that
 * include it share one list of handles (a weak symbol) for fork.
 */
#ifndef SHMRING_H
#define SHMRING_H

#if !defined(_GNU_SOURCE) && !defined(_DEFAULT_SOURCE)
#define _DEFAULT_SOURCE
#endif

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define SHMRING_VERSION 1
#define SHMRING_MAGIC "SHMRING" /* 8 bytes with its NUL */
#define SHMRING_HEADER 512
#define SHMRING_WRAP 0xFFFFFFFFu
#define SHMRING_POLL_NS 150000000 /* a blocked call tests the peer's life this often */

/* Byte offsets of the header's fields (LAYOUT.md). */
enum {
	SHMRING_OFF_MAGIC = 0,
	SHMRING_OFF_VERSION = 8,
	SHMRING_OFF_HEADER_SIZE = 12,
	SHMRING_OFF_CAPACITY = 16,
	SHMRING_OFF_MAX_MESSAGE = 24,
	SHMRING_OFF_WRITER_STATE = 32,
	SHMRING_OFF_READER_STATE = 36,
	SHMRING_OFF_WRITER_PID = 40,
	SHMRING_OFF_READER_PID = 44,
	SHMRING_OFF_HEAD = 64,
	SHMRING_OFF_TAIL = 128,
	SHMRING_OFF_READER_SLEEP = 192,
	SHMRING_OFF_WRITER_SLEEP = 256,
	SHMRING_LOCK_WRITER = 448,
	SHMRING_LOCK_READER = 449,
};

enum { SHMRING_END_NONE = 0, SHMRING_END_OPEN = 1, SHMRING_END_CLOSED = 2 };

#ifndef F_OFD_GETLK
#define F_OFD_GETLK 36
#define F_OFD_SETLK 37
#endif

typedef struct shmring {
	unsigned char *base; /* the mapping */
	size_t size;
	int fd;              /* our own open file description: the end's lock */
	uint64_t cap, max;
	unsigned char *data;
	int role;            /* 0 none, 1 writer, 2 reader */
	uint64_t pos;        /* writer: head; reader: tail (past a wrap marker read) */
	int64_t check_at;    /* monotonic ns when the peer's lock is next tested; 0: not waiting */
	long spin_ns;        /* how long a blocked call polls before sleeping */
	int forked;          /* inherited through fork: fd closed, every call ECHILD */
	struct shmring *prev, *next; /* the handles of this process (for fork) */
	unsigned long publishes;     /* stores of head (writer) or tail (reader) made: for tests */
	unsigned long wakes;         /* futex wake-ups of the peer made: for tests */
} shmring;

/* The handles of this process, whose descriptors a fork's child closes. */
struct shmring__registry {
	pthread_mutex_t mu;
	pthread_once_t once;
	shmring *list;
};

__attribute__((weak)) struct shmring__registry shmring__g = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_ONCE_INIT, NULL};

static inline void shmring__prefork(void) { pthread_mutex_lock(&shmring__g.mu); }
static inline void shmring__postfork_parent(void) { pthread_mutex_unlock(&shmring__g.mu); }

/* shmring__postfork_child: the inherited descriptors share the parent's
 * open file descriptions, hence its claims; the child is not the parent.
 * The mapping, made through the same description, holds it open too: both
 * go, so that the description's last references are the parent's. */
static inline void shmring__postfork_child(void) {
	for (shmring *r = shmring__g.list; r; r = r->next) {
		if (r->fd >= 0)
			close(r->fd);
		r->fd = -1;
		if (r->base && r->base != MAP_FAILED)
			munmap(r->base, r->size);
		r->base = NULL;
		r->data = NULL;
		r->forked = 1;
		r->prev = NULL;
	}
	shmring__g.list = NULL;
	pthread_mutex_unlock(&shmring__g.mu); /* the forking thread locked it in prefork */
}

static inline void shmring__atfork(void) {
	pthread_atfork(shmring__prefork, shmring__postfork_parent, shmring__postfork_child);
}

static inline void shmring__register(shmring *r) {
	pthread_once(&shmring__g.once, shmring__atfork);
	pthread_mutex_lock(&shmring__g.mu);
	r->next = shmring__g.list;
	r->prev = NULL;
	if (r->next)
		r->next->prev = r;
	shmring__g.list = r;
	pthread_mutex_unlock(&shmring__g.mu);
}

static inline void shmring__unregister(shmring *r) {
	pthread_mutex_lock(&shmring__g.mu);
	if (!r->forked) { /* a forked handle is on no list */
		if (r->prev)
			r->prev->next = r->next;
		else if (shmring__g.list == r)
			shmring__g.list = r->next;
		if (r->next)
			r->next->prev = r->prev;
	}
	pthread_mutex_unlock(&shmring__g.mu);
}

static inline _Atomic uint64_t *shmring__u64(shmring *r, int off) { return (_Atomic uint64_t *)(void *)(r->base + off); }
static inline _Atomic uint32_t *shmring__u32(shmring *r, int off) { return (_Atomic uint32_t *)(void *)(r->base + off); }

static inline uint64_t shmring__le64(const unsigned char *p) {
	uint64_t v;
	memcpy(&v, p, 8); /* Linux on x86 and arm is little-endian; LAYOUT.md says so */
	return v;
}

static inline int64_t shmring__now_ns(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* The kernel's struct flock (flock64 on i386, where int64_t is 4-aligned
 * in structs); fcntl64 on 32-bit, fcntl on 64-bit, called directly so
 * that neither the C library's struct nor its _FILE_OFFSET_BITS matter. */
struct shmring__flock {
	short type, whence;
	int64_t start, len;
	int pid;
};

#if defined(__i386__)
_Static_assert(sizeof(struct shmring__flock) == 24, "struct flock64 of i386 is 24 bytes");
#elif defined(__x86_64__) || defined(__aarch64__)
_Static_assert(sizeof(struct shmring__flock) == 32, "struct flock of 64-bit Linux is 32 bytes");
#endif
/* A lock-based atomic would not be atomic for another process. */
_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2 && ATOMIC_INT_LOCK_FREE == 2, "64-bit and 32-bit atomics must be lock-free");

static inline int shmring__fcntl(int fd, int cmd, short type, int64_t off, short *got) {
	struct shmring__flock fl = {type, SEEK_SET, off, 1, 0};
	long rc;
	do {
#ifdef SYS_fcntl64
		rc = syscall(SYS_fcntl64, fd, cmd, &fl);
#else
		rc = syscall(SYS_fcntl, fd, cmd, &fl);
#endif
	} while (rc < 0 && errno == EINTR);
	if (got)
		*got = fl.type;
	return rc < 0 ? -1 : 0;
}

static inline void shmring__free(shmring *r) {
	int e = errno;
	shmring__unregister(r);
	if (r->base && r->base != MAP_FAILED)
		munmap(r->base, r->size);
	if (r->fd >= 0)
		close(r->fd);
	free(r);
	errno = e;
}

/* shmring__check checks the header; EPROTO if it is not a ring of this
 * layout, EAGAIN if the magic is not there yet. */
static inline int shmring__check(shmring *r) {
	if (r->size < SHMRING_HEADER) {
		errno = r->size == 0 ? EAGAIN : EPROTO;
		return -1;
	}
	uint64_t m = atomic_load_explicit(shmring__u64(r, SHMRING_OFF_MAGIC), memory_order_acquire);
	if (m == 0) {
		errno = EAGAIN;
		return -1;
	}
	uint32_t v, hs;
	memcpy(&v, r->base + SHMRING_OFF_VERSION, 4);
	memcpy(&hs, r->base + SHMRING_OFF_HEADER_SIZE, 4);
	uint64_t c = shmring__le64(r->base + SHMRING_OFF_CAPACITY), mm = shmring__le64(r->base + SHMRING_OFF_MAX_MESSAGE);
	if (memcmp(r->base, SHMRING_MAGIC, 8) || v != SHMRING_VERSION || hs != SHMRING_HEADER || c < 64 ||
	    c > ((uint64_t)1 << 40) || c % 8 || c > r->size - SHMRING_HEADER || mm != c / 2 - 8) {
		errno = EPROTO;
		return -1;
	}
	r->cap = c;
	r->max = mm;
	r->data = r->base + SHMRING_HEADER;
	return 0;
}

static inline shmring *shmring__new(void) {
	shmring *r = calloc(1, sizeof *r);
	if (r) {
		r->fd = -1;
		r->spin_ns = 10000;
		shmring__register(r);
	}
	return r;
}

/* shmring__openfd opens r's descriptor (shm_open of name if shm, else
 * open of the path name) under the lock of the handles' list, so that a fork in another
 * thread never gives its child a descriptor it does not close. */
static inline int shmring__openfd(shmring *r, int shm, const char *name, int flags, mode_t mode) {
	pthread_mutex_lock(&shmring__g.mu);
	r->fd = shm ? shm_open(name, flags | O_CLOEXEC, mode) : open(name, flags | O_CLOEXEC);
	int e = errno;
	pthread_mutex_unlock(&shmring__g.mu);
	errno = e;
	return r->fd;
}

/* shmring_create makes a new ring of capacity data bytes (a multiple of 8
 * from 64 to 2^40) in a new object name (O_EXCL, mode 0600, pages
 * reserved). NULL and errno on failure; nothing is left behind. */
static inline shmring *shmring_create(const char *name, size_t capacity) {
	if (capacity < 64 || capacity % 8 || capacity > (size_t)-1 - SHMRING_HEADER ||
	    (capacity >> 20) > ((size_t)1 << 20) || ((capacity >> 20) == ((size_t)1 << 20) && (capacity & 0xFFFFF))) {
		/* (capacity >> 20) compares with 2^40 without a warning where size_t is 32-bit */
		errno = EINVAL;
		return NULL;
	}
	shmring *r = shmring__new();
	if (!r)
		return NULL;
	r->size = SHMRING_HEADER + capacity;
	if (shmring__openfd(r, 1, name, O_RDWR | O_CREAT | O_EXCL, 0600) < 0) {
		shmring__free(r);
		return NULL;
	}
	int e;
	if (ftruncate(r->fd, (off_t)r->size) < 0)
		goto fail;
	do
		e = posix_fallocate(r->fd, 0, (off_t)r->size);
	while (e == EINTR);
	if (e && e != EOPNOTSUPP && e != EINVAL) {
		errno = e;
		goto fail;
	}
	r->base = mmap(NULL, r->size, PROT_READ | PROT_WRITE, MAP_SHARED, r->fd, 0);
	if (r->base == MAP_FAILED)
		goto fail;
	uint32_t v = SHMRING_VERSION, hs = SHMRING_HEADER;
	uint64_t c = capacity, mm = capacity / 2 - 8, m;
	memcpy(r->base + SHMRING_OFF_VERSION, &v, 4);
	memcpy(r->base + SHMRING_OFF_HEADER_SIZE, &hs, 4);
	memcpy(r->base + SHMRING_OFF_CAPACITY, &c, 8);
	memcpy(r->base + SHMRING_OFF_MAX_MESSAGE, &mm, 8);
	memcpy(&m, SHMRING_MAGIC, 8);
	atomic_store_explicit(shmring__u64(r, SHMRING_OFF_MAGIC), m, memory_order_release);
	shmring__check(r);
	return r;
fail:
	e = errno;
	shm_unlink(name);
	errno = e;
	shmring__free(r);
	return NULL;
}

/* shmring__map maps r's descriptor and checks the header; on failure it
 * frees r. */
static inline shmring *shmring__map(shmring *r) {
	struct stat st;
	if (fstat(r->fd, &st) < 0) {
		shmring__free(r);
		return NULL;
	}
	r->size = (size_t)st.st_size;
	if (r->size > 0) {
		r->base = mmap(NULL, r->size, PROT_READ | PROT_WRITE, MAP_SHARED, r->fd, 0);
		if (r->base == MAP_FAILED) {
			shmring__free(r);
			return NULL;
		}
	}
	if (shmring__check(r) < 0) {
		shmring__free(r);
		return NULL;
	}
	return r;
}

/* shmring_open opens the ring in the existing object name and checks its
 * header (EPROTO if it is not a ring of this layout). A header its creator
 * is still writing is waited for, up to a second. */
static inline shmring *shmring_open(const char *name) {
	for (int tries = 0;; tries++) {
		shmring *r = shmring__new();
		if (!r)
			return NULL;
		if (shmring__openfd(r, 1, name, O_RDWR, 0) < 0) {
			shmring__free(r);
			return NULL;
		}
		r = shmring__map(r);
		if (r || errno != EAGAIN)
			return r;
		if (tries >= 1000) {
			errno = EPROTO;
			return NULL;
		}
		struct timespec ms = {0, 1000000};
		nanosleep(&ms, NULL);
	}
}

/* shmring_open_fd maps the ring in fd, a descriptor received from another
 * process, through a new open file description of its own (the claims
 * are locked on it); fd stays the caller's. */
static inline shmring *shmring_open_fd(int fd) {
	char path[64];
	snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
	shmring *r = shmring__new();
	if (!r)
		return NULL;
	if (shmring__openfd(r, 0, path, O_RDWR, 0) < 0) {
		shmring__free(r);
		return NULL;
	}
	r = shmring__map(r);
	if (!r && errno == EAGAIN)
		errno = EPROTO;
	return r;
}

static inline int shmring__claim(shmring *r, int role, int lock, int state_off, int pid_off) {
	short got;
	if (r->forked) {
		errno = ECHILD;
		return -1;
	}
	if (r->role) {
		errno = EBUSY;
		return -1;
	}
	if (shmring__fcntl(r->fd, F_OFD_SETLK, F_WRLCK, lock, &got) < 0) {
		if (errno == EAGAIN || errno == EACCES)
			errno = EBUSY;
		return -1;
	}
	/* the claimant's pid, informational only (LAYOUT.md §2), before the state */
	atomic_store(shmring__u32(r, pid_off), (uint32_t)getpid());
	atomic_store(shmring__u32(r, state_off), SHMRING_END_OPEN);
	r->role = role;
	r->check_at = 0;
	/* checked where it is used: shmring_send and shmring_recv refuse a
	 * position that is not a multiple of 8 (EPROTO) */
	r->pos = atomic_load(shmring__u64(r, role == 1 ? SHMRING_OFF_HEAD : SHMRING_OFF_TAIL));
	return 0;
}

/* shmring_writer claims the writing end: 0, or -1 with EBUSY (or ECHILD
 * in a fork's child). */
static inline int shmring_writer(shmring *r) { return shmring__claim(r, 1, SHMRING_LOCK_WRITER, SHMRING_OFF_WRITER_STATE, SHMRING_OFF_WRITER_PID); }

/* shmring_reader claims the reading end: 0, or -1 with EBUSY (or ECHILD
 * in a fork's child). */
static inline int shmring_reader(shmring *r) { return shmring__claim(r, 2, SHMRING_LOCK_READER, SHMRING_OFF_READER_STATE, SHMRING_OFF_READER_PID); }
/* shmring__peer_alive: does another open file description hold the lock? */
static inline int shmring__peer_alive(shmring *r, int lock) {
	short got = F_UNLCK;
	if (shmring__fcntl(r->fd, F_OFD_GETLK, F_WRLCK, lock, &got) < 0)
		return 1; /* never declare dead what we cannot judge */
	return got != F_UNLCK;
}

static inline void shmring__wake(shmring *r, int off) {
	_Atomic uint32_t *w = shmring__u32(r, off);
	if (atomic_load(w) && atomic_exchange(w, 0)) {
		r->wakes++;
		syscall(SYS_futex, (void *)w, 1 /* FUTEX_WAKE */, 1, NULL, NULL, 0);
	}
}

/* shmring__wait waits until ready(r, arg) (1; -1 is a corrupt ring:
 * EPROTO), spinning, then sleeping on the role's futex word after
 * announcing it there. closed_err is the errno when the peer closed its
 * end. The peer's lock is tested when SHMRING_POLL_NS have passed on the
 * monotonic clock since the wait first slept (or last tested it), whatever
 * ended the sleeps: a signal's EINTR every few ms must not put it off. The
 * clock runs on across calls that time out, until the ring moves. */
static inline int shmring__wait(shmring *r, int (*ready)(shmring *, uint64_t), uint64_t arg, int timeout_ms, int closed_err) {
	int64_t start = shmring__now_ns(), deadline = timeout_ms < 0 ? INT64_MAX : start + (int64_t)timeout_ms * 1000000;
	int k = 0;
	for (long i = 1; timeout_ms != 0; i++) { /* timeout 0: one look, no spin */
		if ((k = ready(r, arg)) != 0)
			goto done;
		if (i % 64 == 0 && shmring__now_ns() - start > r->spin_ns)
			break;
	}
	int sleep_off = r->role == 1 ? SHMRING_OFF_WRITER_SLEEP : SHMRING_OFF_READER_SLEEP;
	int peer_state = r->role == 1 ? SHMRING_OFF_READER_STATE : SHMRING_OFF_WRITER_STATE;
	int peer_lock = r->role == 1 ? SHMRING_LOCK_READER : SHMRING_LOCK_WRITER;
	_Atomic uint32_t *sl = shmring__u32(r, sleep_off);
	for (;;) {
		int64_t now = shmring__now_ns();
		if (now >= deadline) {
			errno = ETIMEDOUT;
			return -1;
		}
		atomic_store(sl, 1); /* announce, then look again */
		if ((k = ready(r, arg)) != 0) {
			atomic_store(sl, 0);
			goto done;
		}
		if (r->check_at == 0)
			r->check_at = now + SHMRING_POLL_NS; /* the first sleep: the clock starts */
		uint32_t st = atomic_load(shmring__u32(r, peer_state));
		int err = 0;
		if (st == SHMRING_END_CLOSED)
			err = closed_err;
		else if (st == SHMRING_END_OPEN && now >= r->check_at) {
			r->check_at = now + SHMRING_POLL_NS;
			if (!shmring__peer_alive(r, peer_lock)) {
				err = EOWNERDEAD;
				r->check_at = 1; /* due: the next call tests again at once */
			}
		}
		if (err) {
			atomic_store(sl, 0);
			if ((k = ready(r, arg)) != 0)
				goto done;
			errno = err;
			return -1;
		}
		/* sleep until the next test of the peer (at most SHMRING_POLL_NS:
		 * the peer's state is read again then) or the deadline */
		int64_t until = now + SHMRING_POLL_NS;
		if (st == SHMRING_END_OPEN && r->check_at < until)
			until = r->check_at;
		if (deadline < until)
			until = deadline;
		int64_t slice = until - now;
		struct timespec ts = {(time_t)(slice / 1000000000), (long)(slice % 1000000000)};
		syscall(SYS_futex, (void *)sl, 0 /* FUTEX_WAIT */, 1, &ts, NULL, 0); /* woken, timed out, EINTR: all go round */
	}
done:
	r->check_at = 0;
	if (k < 0) {
		errno = EPROTO;
		return -1;
	}
	return 0;
}

/* shmring__room: 1 if the ring has need bytes free at the writer's head,
 * 0 if not yet, -1 if the tail read from the ring is corrupt (not a
 * multiple of 8, ahead of the head or more than capacity behind it). */
static inline int shmring__room(shmring *r, uint64_t need) {
	uint64_t t = atomic_load(shmring__u64(r, SHMRING_OFF_TAIL)), used = r->pos - t;
	if (used > r->cap || t % 8)
		return -1;
	return r->cap - used >= need;
}

static inline int shmring__data(shmring *r, uint64_t unused) {
	(void)unused;
	return atomic_load(shmring__u64(r, SHMRING_OFF_HEAD)) != r->pos; /* shmring_recv checks it */
}

/* shmring_send sends len bytes of msg as one message, waiting up to
 * timeout_ms while the ring is full. */
static inline int shmring_send(shmring *r, const void *msg, size_t len, int timeout_ms) {
	if (r->forked) {
		errno = ECHILD;
		return -1;
	}
	if (r->role != 1) {
		errno = EINVAL;
		return -1;
	}
	if ((uint64_t)len > r->max) {
		errno = EMSGSIZE;
		return -1;
	}
	if (r->pos % 8) { /* the head this writer took over at its claim */
		errno = EPROTO;
		return -1;
	}
	/* pos is a multiple of 8 and so is cap: off <= cap - 8, and the
	 * marker and the record below lie inside the data */
	uint64_t rec = 8 + (((uint64_t)len + 7) & ~(uint64_t)7), off = r->pos % r->cap, skip = 0;
	if (rec > r->cap - off)
		skip = r->cap - off;
	int k = shmring__room(r, skip + rec);
	if (k == 0)
		k = shmring__wait(r, shmring__room, skip + rec, timeout_ms, EPIPE) < 0 ? -2 : 1;
	if (k < 0) {
		if (k == -1)
			errno = EPROTO;
		return -1;
	}
	uint64_t word = SHMRING_WRAP;
	if (skip) {
		memcpy(r->data + off, &word, 8);
		off = 0;
	}
	memcpy(r->data + off + 8, msg, len);
	word = len;
	memcpy(r->data + off, &word, 8);
	r->pos += skip + rec;
	r->publishes++;
	atomic_store(shmring__u64(r, SHMRING_OFF_HEAD), r->pos); /* release: the record first */
	shmring__wake(r, SHMRING_OFF_READER_SLEEP);
	return 0;
}

/* shmring_recv copies the next message into buf (cap bytes) and returns
 * its length, waiting up to timeout_ms while the ring is empty. */
static inline ssize_t shmring_recv(shmring *r, void *buf, size_t cap, int timeout_ms) {
	if (r->forked) {
		errno = ECHILD;
		return -1;
	}
	if (r->role != 2) {
		errno = EINVAL;
		return -1;
	}
	for (;;) {
		if (r->pos % 8) { /* the tail this reader took over at its claim */
			errno = EPROTO;
			return -1;
		}
		uint64_t h = atomic_load(shmring__u64(r, SHMRING_OFF_HEAD));
		if (h == r->pos) {
			if (shmring__wait(r, shmring__data, 0, timeout_ms, EPIPE) < 0)
				return -1;
			continue;
		}
		if (h - r->pos > r->cap || h % 8) {
			errno = EPROTO;
			return -1;
		}
		uint64_t off = r->pos % r->cap; /* a multiple of 8, <= cap - 8 */
		uint32_t n;
		memcpy(&n, r->data + off, 4);
		if (n == SHMRING_WRAP) {
			if (off == 0 || h - r->pos < r->cap - off) {
				errno = EPROTO;
				return -1;
			}
			r->pos += r->cap - off;
			continue;
		}
		uint64_t rec = 8 + (((uint64_t)n + 7) & ~(uint64_t)7);
		if (n > r->max || rec > h - r->pos || off + rec > r->cap) {
			errno = EPROTO;
			return -1;
		}
		if (n > cap) {
			errno = EMSGSIZE;
			return -1;
		}
		memcpy(buf, r->data + off + 8, n);
		r->pos += rec;
		r->publishes++;
		atomic_store(shmring__u64(r, SHMRING_OFF_TAIL), r->pos); /* release: done with the record */
		shmring__wake(r, SHMRING_OFF_WRITER_SLEEP);
		return (ssize_t)n;
	}
}

/* shmring_send_batch sends the count messages of msgs (iov_base, iov_len
 * bytes each), in order, as many as the ring has room for, and returns how
 * many it sent (the first ones). It waits up to timeout_ms for room for
 * the first message only, as shmring_send does (its errors are
 * shmring_send's), then writes the others while they fit, and publishes
 * them all with one store of the head and at most one wake-up of the
 * reader. A message larger than max_message ends the batch before it
 * (EMSGSIZE if it is the first); so does a corrupt tail (EPROTO if it is
 * the first: else the next call reports it). count 0 returns 0. */
static inline int shmring_send_batch(shmring *r, const struct iovec *msgs, int count, int timeout_ms) {
	if (r->forked) {
		errno = ECHILD;
		return -1;
	}
	if (r->role != 1 || count < 0 || (count > 0 && !msgs)) {
		errno = EINVAL;
		return -1;
	}
	if (count == 0)
		return 0;
	if ((uint64_t)msgs[0].iov_len > r->max) {
		errno = EMSGSIZE;
		return -1;
	}
	if (r->pos % 8) { /* the head this writer took over at its claim */
		errno = EPROTO;
		return -1;
	}
	uint64_t head = r->pos, t = 0;
	int i;
	for (i = 0; i < count; i++) {
		size_t len = msgs[i].iov_len;
		if ((uint64_t)len > r->max)
			break;
		/* head is a multiple of 8 and so is cap: off <= cap - 8 */
		uint64_t rec = 8 + (((uint64_t)len + 7) & ~(uint64_t)7), off = head % r->cap, skip = 0;
		if (rec > r->cap - off)
			skip = r->cap - off;
		if (i == 0) {
			int k = shmring__room(r, skip + rec);
			if (k == 0)
				k = shmring__wait(r, shmring__room, skip + rec, timeout_ms, EPIPE) < 0 ? -2 : 1;
			if (k < 0) {
				if (k == -1)
					errno = EPROTO;
				return -1;
			}
			t = atomic_load(shmring__u64(r, SHMRING_OFF_TAIL)); /* at least the tail that gave room */
			if (head - t > r->cap || t % 8) {
				errno = EPROTO;
				return -1;
			}
		} else if (r->cap - (head - t) < skip + rec) {
			t = atomic_load(shmring__u64(r, SHMRING_OFF_TAIL)); /* acquire */
			if (head - t > r->cap || t % 8 || r->cap - (head - t) < skip + rec)
				break;
		}
		uint64_t word = SHMRING_WRAP;
		if (skip) {
			memcpy(r->data + off, &word, 8);
			off = 0;
		}
		memcpy(r->data + off + 8, msgs[i].iov_base, len);
		word = len;
		memcpy(r->data + off, &word, 8);
		head += skip + rec;
	}
	r->pos = head;
	r->publishes++;
	atomic_store(shmring__u64(r, SHMRING_OFF_HEAD), head); /* release: every record of the batch first */
	shmring__wake(r, SHMRING_OFF_READER_SLEEP);
	return i;
}

/* shmring_recv_batch copies the next messages into the count buffers of
 * bufs (iov_base, iov_len bytes each), message i into bufs[i] with its
 * length in lens[i], and returns how many it received. It waits up to
 * timeout_ms for the first message only, as shmring_recv does (its errors
 * are shmring_recv's: EMSGSIZE if the first does not fit its buffer), then
 * takes the others already published, stopping before one its buffer is
 * too small for, and releases them all with one store of the tail and at
 * most one wake-up of the writer. A corrupt record after the first ends
 * the batch before it: the next call reports EPROTO. count 0 returns 0. */
static inline int shmring_recv_batch(shmring *r, const struct iovec *bufs, size_t *lens, int count, int timeout_ms) {
	if (r->forked) {
		errno = ECHILD;
		return -1;
	}
	if (r->role != 2 || count < 0 || (count > 0 && (!bufs || !lens))) {
		errno = EINVAL;
		return -1;
	}
	if (count == 0)
		return 0;
	uint64_t tail = r->pos, h;
	for (;;) {
		if (tail % 8) { /* the tail this reader took over at its claim */
			errno = EPROTO;
			return -1;
		}
		h = atomic_load(shmring__u64(r, SHMRING_OFF_HEAD)); /* acquire */
		if (h != tail)
			break;
		if (shmring__wait(r, shmring__data, 0, timeout_ms, EPIPE) < 0)
			return -1;
	}
	if (h - tail > r->cap || h % 8) {
		errno = EPROTO;
		return -1;
	}
	int i = 0;
	while (i < count && tail != h) {
		uint64_t off = tail % r->cap; /* a multiple of 8, <= cap - 8 */
		uint32_t n;
		memcpy(&n, r->data + off, 4);
		if (n == SHMRING_WRAP) {
			if (off == 0 || h - tail < r->cap - off)
				goto corrupt;
			tail += r->cap - off;
			continue;
		}
		uint64_t rec = 8 + (((uint64_t)n + 7) & ~(uint64_t)7);
		if (n > r->max || rec > h - tail || off + rec > r->cap)
			goto corrupt;
		if (n > bufs[i].iov_len) {
			if (i == 0) {
				r->pos = tail; /* past a wrap marker read: the message stays */
				errno = EMSGSIZE;
				return -1;
			}
			break;
		}
		memcpy(bufs[i].iov_base, r->data + off + 8, n);
		lens[i++] = n;
		tail += rec;
	}
	if (0) {
	corrupt:
		if (i == 0) {
			r->pos = tail;
			errno = EPROTO;
			return -1;
		}
	}
	r->pos = tail;
	r->publishes++;
	atomic_store(shmring__u64(r, SHMRING_OFF_TAIL), tail); /* release: done with the batch's records */
	shmring__wake(r, SHMRING_OFF_WRITER_SLEEP);
	return i;
}

/* shmring_wait_peer waits up to timeout_ms (-1: forever) until a live
 * process holds the other end: its state word says open and its lock is
 * held (a peer that closed, died or never came is waited for), polling
 * every few ms, at most every 50 ms. 0, or -1 with ETIMEDOUT, EINVAL (no
 * end claimed) or ECHILD. So a writer whose reader died can wait for the
 * next reader instead of failing with EOWNERDEAD at once. */
static inline int shmring_wait_peer(shmring *r, int timeout_ms) {
	if (r->forked) {
		errno = ECHILD;
		return -1;
	}
	if (r->role != 1 && r->role != 2) {
		errno = EINVAL;
		return -1;
	}
	int peer_state = r->role == 1 ? SHMRING_OFF_READER_STATE : SHMRING_OFF_WRITER_STATE;
	int peer_lock = r->role == 1 ? SHMRING_LOCK_READER : SHMRING_LOCK_WRITER;
	int64_t deadline = timeout_ms < 0 ? INT64_MAX : shmring__now_ns() + (int64_t)timeout_ms * 1000000;
	int64_t d = 1000000;
	for (;;) {
		if (atomic_load(shmring__u32(r, peer_state)) == SHMRING_END_OPEN) {
			short got = F_UNLCK;
			if (shmring__fcntl(r->fd, F_OFD_GETLK, F_WRLCK, peer_lock, &got) < 0 || got != F_UNLCK)
				return 0;
		}
		int64_t now = shmring__now_ns();
		if (now >= deadline) {
			errno = ETIMEDOUT;
			return -1;
		}
		int64_t slice = deadline - now < d ? deadline - now : d;
		struct timespec ts = {(time_t)(slice / 1000000000), (long)(slice % 1000000000)};
		nanosleep(&ts, NULL); /* EINTR: look again */
		if (d < 50000000)
			d *= 2;
	}
}

/* shmring_close releases the handle's end (a writer's close ends the
 * stream: the reader drains, then EPIPE), unmaps and frees. In a fork's
 * child it only unmaps and frees: the end is the parent's. */
static inline void shmring_close(shmring *r) {
	if (!r)
		return;
	if (r->role && !r->forked) {
		atomic_store(shmring__u32(r, r->role == 1 ? SHMRING_OFF_WRITER_STATE : SHMRING_OFF_READER_STATE), SHMRING_END_CLOSED);
		shmring__wake(r, r->role == 1 ? SHMRING_OFF_READER_SLEEP : SHMRING_OFF_WRITER_SLEEP);
		shmring__fcntl(r->fd, F_OFD_SETLK, F_UNLCK, r->role == 1 ? SHMRING_LOCK_WRITER : SHMRING_LOCK_READER, NULL);
	}
	shmring__free(r);
}

/* shmring_max_message is the largest message the ring takes. */
static inline size_t shmring_max_message(const shmring *r) { return (size_t)r->max; }

#endif
