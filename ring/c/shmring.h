/* shmring.h: the message ring of github.com/posixshm/shm/ring in C.
 *
 * Header-only, C11, Linux (glibc or musl), 64-bit or -m32. It speaks the
 * layout of ring/LAYOUT.md (version 2), so a C process can be any writer
 * or reader of a ring whose other ends are Go, Python or C. A ring has 1
 * to 64 writer slots, each with a lane of its own, and 1 to 64 reader
 * slots; every reader receives every message published while it holds its
 * slot (fan-out), each writer's messages whole and in its order.
 *
 *   shmring *r = shmring_create("/jobs", 1 << 20);  or shmring_open("/jobs")
 *   shmring_writer(r);                               or shmring_reader(r)
 *   shmring_send(r, msg, len, -1);                   ssize_t n = shmring_recv(r, buf, sizeof buf, -1);
 *   shmring_close(r);
 *
 * shmring_create makes a ring of one writer and one reader;
 * shmring_create_with(name, capacity, readers, writers) one of 1 to 64 of
 * each (capacity is each writer's lane). shmring_writer and shmring_reader
 * claim the first free slot of that kind; a handle holds at most one slot
 * (open the ring again for another). A writer waits for room in its lane
 * for the slowest live reader. With one reader slot, that slot keeps its
 * place across readers (a new reader starts at the first message the last
 * one did not consume; messages wait for a reader, and a writer blocked
 * for room gets EPIPE if the reader closed, EOWNERDEAD if it died). With
 * several reader slots, a reader that claims a slot starts at the next
 * message published after its claim; a reader that closes or dies stops
 * holding the writers back (a dead one within about 300 ms), and a writer
 * only ever waits for the live readers: a slow reader slows every writer
 * to its pace. A reader takes the lanes in turn (round robin), so that no
 * writer starves another; it gets the end of stream (EPIPE) once its lanes
 * are empty and every writer slot that was ever claimed is closed, or
 * EOWNERDEAD if one of them died instead (messages committed before are
 * delivered first); it waits while any writer slot is open and alive, or
 * while none was ever claimed.
 *
 * Batches: shmring_send_batch(r, iov, count, timeout_ms) sends as many of
 * count messages as fit, shmring_recv_batch(r, iov, lens, count,
 * timeout_ms) receives as many as are there, each with one store of a
 * lane's counter and at most one wake-up per lane and slot.
 * Zero-copy: shmring_reserve(r, n, timeout_ms) hands out n bytes of the
 * lane to fill in place, shmring_commit(r, m) publishes the first m of
 * them as a message (a writer that dies in between published nothing);
 * shmring_next(r, &msg, timeout_ms) hands out the next message in place,
 * valid until shmring_release(r).
 * shmring_wait_peer(r, timeout_ms) waits until a live process holds a
 * slot of the other kind. shmring_stat(r, &st) describes the ring without
 * claiming anything: sizes, the backlog of the slowest holding reader, and
 * each slot's state (never, open, closed, dead) and recorded pid.
 *
 * Errors are -1 (NULL) with errno: EBUSY (every slot of that kind is held
 * by a live process), ETIMEDOUT, EMSGSIZE (message too large, receive
 * buffer too small: the message stays), EPIPE, EOWNERDEAD (above), EINVAL,
 * EPROTO (not a ring of this layout: a version-1 ring among others; or a
 * corrupt record, counter or state word: every head, tail, length and wrap
 * marker read from the shared memory is checked before it decides an
 * address, so a buggy or hostile peer gets EPROTO, never an access
 * outside the data), ECHILD (the handle was inherited through fork(),
 * below). timeout_ms -1 waits forever, 0 never blocks. A blocked call
 * tests its peers' life every 150 ms of the monotonic clock, whatever ends
 * its sleeps (a wake-up, a timeout, a signal handler's EINTR): a dead peer
 * is seen within about 300 ms even in a process that takes a signal every
 * few ms.
 *
 * fork(): a child holds no claim. A pthread_atfork handler closes, in the
 * child, the descriptor of every handle the parent had and unmaps its
 * ring (both hold the open file description that carries the claims: it
 * stays the parent's alone, so the parent's death frees its slot while the
 * child lives); in the child those handles refuse everything with ECHILD,
 * and shmring_close only frees them (it leaves the parent's slot open).
 * Open the ring again in the child to use it. A child made by a raw clone
 * system call, which runs no atfork handler, is not covered; one that
 * execs closes the descriptor anyway (O_CLOEXEC). With glibc before 2.34,
 * link with -pthread.
 *
 * A handle is not safe for concurrent use by several threads, and no call
 * on it is async-signal-safe: shmring_close from a signal handler that
 * interrupted a call on the same handle frees what that call still uses
 * (set a flag in the handler and pass a timeout instead). Include this
 * header before any system header, or compile with _GNU_SOURCE or
 * _DEFAULT_SOURCE, so that shm_open and syscall are declared under
 * -std=c11. All files of a program that include it share one list of
 * handles (a weak symbol) for fork.
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

#define SHMRING_VERSION 2
#define SHMRING_MAGIC "SHMRING" /* 8 bytes with its NUL */
#define SHMRING_HEADER 512      /* the fixed header; the data starts at header_size */
#define SHMRING_MAX_SLOTS 64
#define SHMRING_WRAP 0xFFFFFFFFu
#define SHMRING_POLL_NS 150000000 /* a blocked call tests its peers' life this often */

/* Byte offsets (LAYOUT.md §2): the fixed header's fields, and the fields
 * within a writer slot (at 512 + 192 w) and a reader slot (at
 * RS + RSZ r). */
enum {
	SHMRING_OFF_MAGIC = 0,
	SHMRING_OFF_VERSION = 8,
	SHMRING_OFF_HEADER_SIZE = 12,
	SHMRING_OFF_CAPACITY = 16,
	SHMRING_OFF_MAX_MESSAGE = 24,
	SHMRING_OFF_READERS = 32,
	SHMRING_OFF_WRITERS = 36,
	SHMRING_LOCK_WRITER = 64,  /* + w */
	SHMRING_LOCK_READER = 128, /* + r */
	SHMRING_WSLOT = 512,
	SHMRING_WSLOT_SIZE = 192,
	SHMRING_SLOT_STATE = 0,
	SHMRING_SLOT_PID = 4,
	SHMRING_WSLOT_HEAD = 64,
	SHMRING_WSLOT_SLEEP = 128,
	SHMRING_RSLOT_SLEEP = 64,
	SHMRING_RSLOT_TAIL = 128, /* + 8 w */
};

/* A slot's state (the low byte of its state word; dead is not stored). */
enum { SHMRING_SLOT_NEVER = 0, SHMRING_SLOT_OPEN = 1, SHMRING_SLOT_CLOSED = 2, SHMRING_SLOT_DEAD = 3 };

#ifndef F_OFD_GETLK
#define F_OFD_GETLK 36
#define F_OFD_SETLK 37
#endif

typedef struct shmring {
	unsigned char *base; /* the mapping */
	size_t size;
	int fd;              /* our own open file description: the slot's lock */
	uint64_t cap, max;   /* each lane's data bytes; the largest message */
	unsigned char *data; /* lane 0's data (header_size) */
	int nw, nr;          /* writer and reader slots */
	uint32_t rs, rsz;    /* the reader slots' offset and size */
	int role;            /* 0 none, 1 writer, 2 reader */
	int slot;            /* the slot claimed */
	_Atomic uint32_t *sleep; /* the slot's sleep word */
	/* writer */
	uint64_t pos;        /* head of its lane */
	uint64_t least;      /* the least tail last computed: pos - least <= cap */
	unsigned char *lane; /* its lane's data */
	_Atomic uint64_t *head; /* its lane's head word */
	uint64_t dead;       /* reader slots found dead (R > 1), with the state word seen: */
	uint32_t dead_word[SHMRING_MAX_SLOTS];
	int reserved;        /* shmring_reserve: the record's offset and bytes skipped */
	uint64_t res_off, res_skip, res_n;
	/* reader */
	int last;            /* the lane last received from */
	int held;            /* shmring_next: lane held + 1, 0 none */
	uint64_t held_rec;
	_Atomic uint64_t *tailp; /* its tail words, one per lane */
	uint64_t tail[SHMRING_MAX_SLOTS]; /* its tails (past a wrap marker read) */
	uint64_t heads[SHMRING_MAX_SLOTS]; /* the heads last loaded */
	int64_t check_at;    /* monotonic ns when the peers' locks are next tested; 0: not waiting */
	long spin_ns;        /* how long a blocked call polls before sleeping */
	int forked;          /* inherited through fork: fd closed, every call ECHILD */
	struct shmring *prev, *next; /* the handles of this process (for fork) */
	unsigned long publishes;     /* stores of a head (writer) or a tail (reader) made: for tests */
	unsigned long wakes;         /* futex wake-ups of peers made: for tests */
} shmring;

/* shmring_stat describes a ring (shmring_stat). The backlog is what the
 * slowest holding reader has not consumed, summed over the lanes: with
 * one reader slot, that slot always holds (whether open, closed or dead);
 * with several, only open ones whose claimant lives. A lane no reader
 * holds has no backlog. */
struct shmring_stat {
	uint64_t capacity;    /* data bytes of each lane */
	uint64_t max_message; /* the largest message */
	uint64_t messages;    /* messages not yet consumed */
	uint64_t bytes;       /* their lengths' sum */
	uint64_t used;        /* lane bytes they take: bytes plus record headers, padding and bytes skipped at a wrap */
	int readers, writers; /* slots of each kind */
	/* per slot: SHMRING_SLOT_NEVER, _OPEN, _CLOSED or _DEAD (open, but
	 * nobody holds its lock), and the pid its last claimant recorded (0
	 * none; informational only: it may be reused or of another pid
	 * namespace). Slots past readers/writers are zero. */
	int reader_state[SHMRING_MAX_SLOTS], writer_state[SHMRING_MAX_SLOTS];
	uint32_t reader_pid[SHMRING_MAX_SLOTS], writer_pid[SHMRING_MAX_SLOTS];
};

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

static inline _Atomic uint64_t *shmring__u64(shmring *r, size_t off) { return (_Atomic uint64_t *)(void *)(r->base + off); }
static inline _Atomic uint32_t *shmring__u32(shmring *r, size_t off) { return (_Atomic uint32_t *)(void *)(r->base + off); }

/* The words of writer slot w and reader slot i. */
static inline size_t shmring__ws(int w) { return SHMRING_WSLOT + (size_t)SHMRING_WSLOT_SIZE * (size_t)w; }
static inline size_t shmring__rsl(shmring *r, int i) { return r->rs + (size_t)r->rsz * (size_t)i; }
static inline _Atomic uint32_t *shmring__wstate(shmring *r, int w) { return shmring__u32(r, shmring__ws(w) + SHMRING_SLOT_STATE); }
static inline _Atomic uint64_t *shmring__whead(shmring *r, int w) { return shmring__u64(r, shmring__ws(w) + SHMRING_WSLOT_HEAD); }
static inline _Atomic uint32_t *shmring__rstate(shmring *r, int i) { return shmring__u32(r, shmring__rsl(r, i) + SHMRING_SLOT_STATE); }
static inline _Atomic uint64_t *shmring__rtail(shmring *r, int i, int w) { return shmring__u64(r, shmring__rsl(r, i) + SHMRING_RSLOT_TAIL + 8 * (size_t)w); }

/* shmring__layout: the reader slots' offset and size, and header_size,
 * of a ring of nr readers and nw writers (LAYOUT.md §2). */
static inline uint32_t shmring__layout(int nr, int nw, uint32_t *rs, uint32_t *rsz) {
	*rs = SHMRING_WSLOT + SHMRING_WSLOT_SIZE * (uint32_t)nw;
	*rsz = 128 + 64 * (((uint32_t)nw + 7) / 8);
	return *rs + *rsz * (uint32_t)nr;
}

/* shmring__setbase points r's pointers into the mapping at base (used
 * when the mapping is made or moved). */
static inline void shmring__setbase(shmring *r, unsigned char *base) {
	r->base = base;
	uint32_t rs, rsz, hs = shmring__layout(r->nr, r->nw, &rs, &rsz);
	r->rs = rs;
	r->rsz = rsz;
	r->data = base + hs;
	if (r->role == 1) {
		r->lane = r->data + r->cap * (size_t)r->slot;
		r->head = shmring__whead(r, r->slot);
		r->sleep = shmring__u32(r, shmring__ws(r->slot) + SHMRING_WSLOT_SLEEP);
	} else if (r->role == 2) {
		r->tailp = shmring__rtail(r, r->slot, 0);
		r->sleep = shmring__u32(r, shmring__rsl(r, r->slot) + SHMRING_RSLOT_SLEEP);
	}
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

/* shmring__alive: does another open file description hold the lock byte? */
static inline int shmring__alive(shmring *r, int64_t lock) {
	short got = F_UNLCK;
	if (shmring__fcntl(r->fd, F_OFD_GETLK, F_WRLCK, lock, &got) < 0)
		return 1; /* never declare dead what we cannot judge */
	return got != F_UNLCK;
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

/* shmring__valid_cap: capacity a multiple of 8 in [64, 2^40], and
 * nw * capacity <= 2^40. */
static inline int shmring__valid_cap(uint64_t c, int nw) {
	return c >= 64 && c % 8 == 0 && c <= ((uint64_t)1 << 40) / (uint64_t)nw;
}

/* shmring__check checks the header (LAYOUT.md §2, "Opening"); EPROTO if
 * it is not a ring of this layout, EAGAIN if the magic is not there yet. */
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
	uint32_t v, hs, nr, nw, rs, rsz;
	uint64_t c, mm;
	memcpy(&v, r->base + SHMRING_OFF_VERSION, 4);
	memcpy(&hs, r->base + SHMRING_OFF_HEADER_SIZE, 4);
	memcpy(&c, r->base + SHMRING_OFF_CAPACITY, 8);
	memcpy(&mm, r->base + SHMRING_OFF_MAX_MESSAGE, 8);
	memcpy(&nr, r->base + SHMRING_OFF_READERS, 4);
	memcpy(&nw, r->base + SHMRING_OFF_WRITERS, 4);
	errno = EPROTO;
	if (memcmp(r->base, SHMRING_MAGIC, 8) || v != SHMRING_VERSION) /* a version-1 ring among others */
		return -1;
	if (nr < 1 || nr > SHMRING_MAX_SLOTS || nw < 1 || nw > SHMRING_MAX_SLOTS || hs != shmring__layout((int)nr, (int)nw, &rs, &rsz))
		return -1;
	if (!shmring__valid_cap(c, (int)nw) || mm != c / 2 - 8 || (uint64_t)r->size < hs || (uint64_t)r->size - hs < c * nw)
		return -1;
	r->cap = c;
	r->max = mm;
	r->nr = (int)nr;
	r->nw = (int)nw;
	shmring__setbase(r, r->base);
	return 0;
}

static inline shmring *shmring__new(void) {
	shmring *r = calloc(1, sizeof *r);
	if (r) {
		r->fd = -1;
		r->slot = -1;
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

/* shmring_create_with makes a new ring of readers and writers slots (1 to
 * 64 each) and capacity data bytes per writer's lane (a multiple of 8 from
 * 64 to 2^40, writers * capacity at most 2^40) in a new object name
 * (O_EXCL, mode 0600, pages reserved). NULL and errno on failure (EINVAL
 * for a count or capacity out of range); nothing is left behind. */
static inline shmring *shmring_create_with(const char *name, size_t capacity, int readers, int writers) {
	uint32_t rs, rsz, hs;
	if (readers < 1 || readers > SHMRING_MAX_SLOTS || writers < 1 || writers > SHMRING_MAX_SLOTS ||
	    !shmring__valid_cap((uint64_t)capacity, writers)) {
		errno = EINVAL;
		return NULL;
	}
	hs = shmring__layout(readers, writers, &rs, &rsz);
	uint64_t total = hs + (uint64_t)capacity * (uint64_t)writers;
	if (total > (uint64_t)(size_t)-1 || total > (uint64_t)INT64_MAX) { /* more than a 32-bit process maps */
		errno = EINVAL;
		return NULL;
	}
	shmring *r = shmring__new();
	if (!r)
		return NULL;
	r->size = (size_t)total;
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
	uint32_t v = SHMRING_VERSION, nr = (uint32_t)readers, nw = (uint32_t)writers;
	uint64_t c = capacity, mm = capacity / 2 - 8, m;
	memcpy(r->base + SHMRING_OFF_VERSION, &v, 4);
	memcpy(r->base + SHMRING_OFF_HEADER_SIZE, &hs, 4);
	memcpy(r->base + SHMRING_OFF_CAPACITY, &c, 8);
	memcpy(r->base + SHMRING_OFF_MAX_MESSAGE, &mm, 8);
	memcpy(r->base + SHMRING_OFF_READERS, &nr, 4);
	memcpy(r->base + SHMRING_OFF_WRITERS, &nw, 4);
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

/* shmring_create makes a new ring of one writer and one reader:
 * shmring_create_with(name, capacity, 1, 1). */
static inline shmring *shmring_create(const char *name, size_t capacity) { return shmring_create_with(name, capacity, 1, 1); }

/* shmring__map maps r's descriptor and checks the header; on failure it
 * frees r. */
static inline shmring *shmring__map(shmring *r) {
	struct stat st;
	if (fstat(r->fd, &st) < 0) {
		shmring__free(r);
		return NULL;
	}
	if ((uint64_t)st.st_size > (uint64_t)(size_t)-1) {
		shmring__free(r);
		errno = EFBIG;
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
 * header (EPROTO if it is not a ring of this layout, a version-1 ring
 * among others). A header its creator is still writing is waited for, up
 * to a second. */
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

/* shmring__wake wakes the sleeper of the sleep word at off, if it
 * announced a sleep (LAYOUT.md §5, "Wake"). */
static inline void shmring__wake(shmring *r, _Atomic uint32_t *w) {
	if (atomic_load(w) && atomic_exchange(w, 0)) {
		r->wakes++;
		syscall(SYS_futex, (void *)w, 1 /* FUTEX_WAKE */, 1, NULL, NULL, 0);
	}
}

static inline void shmring__wake_readers(shmring *r) {
	for (int i = 0; i < r->nr; i++)
		shmring__wake(r, shmring__u32(r, shmring__rsl(r, i) + SHMRING_RSLOT_SLEEP));
}

static inline void shmring__wake_writers(shmring *r) {
	for (int w = 0; w < r->nw; w++)
		shmring__wake(r, shmring__u32(r, shmring__ws(w) + SHMRING_WSLOT_SLEEP));
}

/* shmring__claim claims the first free slot of the role's kind
 * (LAYOUT.md §4). */
static inline int shmring__claim(shmring *r, int role) {
	if (r->forked) {
		errno = ECHILD;
		return -1;
	}
	if (r->role) {
		errno = EBUSY;
		return -1;
	}
	int n = role == 1 ? r->nw : r->nr;
	for (int i = 0; i < n; i++) {
		if (shmring__fcntl(r->fd, F_OFD_SETLK, F_WRLCK, (role == 1 ? SHMRING_LOCK_WRITER : SHMRING_LOCK_READER) + i, NULL) < 0) {
			if (errno == EAGAIN || errno == EACCES)
				continue; /* a live holder */
			return -1;
		}
		size_t slot = role == 1 ? shmring__ws(i) : shmring__rsl(r, i);
		/* the claimant's pid, informational only (LAYOUT.md §2), before the state */
		atomic_store(shmring__u32(r, slot + SHMRING_SLOT_PID), (uint32_t)getpid());
		_Atomic uint32_t *st = shmring__u32(r, slot + SHMRING_SLOT_STATE);
		uint32_t old = atomic_load(st);
		atomic_store(st, (((old >> 8) + 1) & 0xFFFFFF) << 8 | SHMRING_SLOT_OPEN);
		r->role = role;
		r->slot = i;
		r->check_at = 0;
		shmring__setbase(r, r->base);
		if (role == 1) {
			/* checked where it is used: a head that is not a multiple
			 * of 8 is EPROTO at the first send */
			r->pos = atomic_load(r->head);
			r->least = r->pos - r->cap; /* no room known: computed at the first send */
			r->dead = 0;
			r->reserved = 0;
		} else {
			r->last = r->nw - 1; /* the first look starts at lane 0 */
			r->held = 0;
			for (int w = 0; w < r->nw; w++) {
				if (r->nr == 1) { /* the one reader slot keeps its place */
					r->tail[w] = atomic_load(r->tailp + w);
				} else { /* joining: from the next message published */
					r->tail[w] = atomic_load(shmring__whead(r, w));
					atomic_store(r->tailp + w, r->tail[w]);
				}
				r->heads[w] = r->tail[w];
			}
			if (r->nr > 1)
				shmring__wake_writers(r);
		}
		return 0;
	}
	errno = EBUSY;
	return -1;
}

/* shmring_writer claims the first free writer slot: 0, or -1 with EBUSY
 * (every writer slot held by a live process, or this handle holds a slot
 * already) or ECHILD in a fork's child. The writer continues its slot's
 * lane where the last one left it. */
static inline int shmring_writer(shmring *r) { return shmring__claim(r, 1); }

/* shmring_reader claims the first free reader slot: 0, or -1 with EBUSY
 * (every reader slot held by a live process, or this handle holds a slot
 * already) or ECHILD in a fork's child. */
static inline int shmring_reader(shmring *r) { return shmring__claim(r, 2); }

/* shmring_slot is the slot the handle claimed (0 to 63), or -1. */
static inline int shmring_slot(const shmring *r) { return r->role ? r->slot : -1; }

/* shmring__least computes the least tail of the holding readers of the
 * writer's lane into r->least (LAYOUT.md §5, "Room"), the published head
 * r->pos if none holds: 1 if that leaves need bytes of room beyond the
 * published head, 0 if not yet (or a reader is still joining), -1 if a
 * tail or state word read from the ring is corrupt. */
static inline int shmring__least(shmring *r, uint64_t need) {
	uint64_t h = r->pos, m = h;
	int joining = 0;
	for (int i = 0; i < r->nr; i++) {
		if (r->nr > 1) {
			uint32_t s = atomic_load(shmring__rstate(r, i));
			if ((s & 0xFF) > SHMRING_SLOT_CLOSED)
				return -1;
			if ((s & 0xFF) != SHMRING_SLOT_OPEN)
				continue;
			if (r->dead >> i & 1) {
				if (r->dead_word[i] == s)
					continue; /* found dead: disregarded until claimed again */
				r->dead &= ~((uint64_t)1 << i);
			}
		}
		uint64_t t = atomic_load(shmring__rtail(r, i, r->slot)); /* acquire */
		if (t % 8 || (t != h && t - h < (uint64_t)1 << 63))
			return -1; /* ahead of the head */
		if (h - t > r->cap) {
			if (r->nr == 1)
				return -1;
			joining = 1; /* stored its state and not yet its tails */
			continue;
		}
		if (h - t > h - m)
			m = t;
	}
	if (joining)
		return 0;
	r->least = m;
	return r->cap - (h - m) >= need;
}

/* shmring__room: 1 if the writer's lane has need bytes free at its head,
 * 0 if not yet, -1 if corrupt. */
static inline int shmring__room(shmring *r, uint64_t need) {
	if (r->cap - (r->pos - r->least) >= need)
		return 1;
	return shmring__least(r, need);
}

/* shmring__judge_readers: a writer blocked for room judges the readers
 * that hold it back (LAYOUT.md §5); due: test their locks. An errno to
 * end the wait, 0 to go on waiting, -1 if it found one dead (look at the
 * room again). */
static inline int shmring__judge_readers(shmring *r, uint64_t need, int due) {
	if (r->nr == 1) {
		uint32_t s = atomic_load(shmring__rstate(r, 0)) & 0xFF;
		if (s > SHMRING_SLOT_CLOSED)
			return EPROTO;
		if (s == SHMRING_SLOT_CLOSED)
			return EPIPE;
		if (s == SHMRING_SLOT_OPEN && due && !shmring__alive(r, SHMRING_LOCK_READER))
			return EOWNERDEAD;
		return 0;
	}
	if (!due)
		return 0;
	int found = 0;
	uint64_t h = r->pos;
	for (int i = 0; i < r->nr; i++) {
		uint32_t s = atomic_load(shmring__rstate(r, i));
		if ((s & 0xFF) != SHMRING_SLOT_OPEN || (r->dead >> i & 1 && r->dead_word[i] == s))
			continue;
		uint64_t t = atomic_load(shmring__rtail(r, i, r->slot));
		if (h - t <= r->cap && r->cap - (h - t) >= need)
			continue; /* not this one */
		if (!shmring__alive(r, SHMRING_LOCK_READER + i)) {
			r->dead |= (uint64_t)1 << i;
			r->dead_word[i] = s;
			found = 1;
		}
	}
	return found ? -1 : 0;
}

/* shmring__judge_writers: a reader whose lanes are empty judges the
 * writers (LAYOUT.md §5, "End of stream"); due: test the open ones'
 * locks. An errno to end the wait (EPIPE, EOWNERDEAD, EPROTO), or 0. */
static inline int shmring__judge_writers(shmring *r, int due) {
	int claimed = 0, dead = 0;
	for (int w = 0; w < r->nw; w++) {
		uint32_t s = atomic_load(shmring__wstate(r, w)) & 0xFF;
		if (s > SHMRING_SLOT_CLOSED)
			return EPROTO;
		if (s == SHMRING_SLOT_NEVER)
			continue;
		claimed = 1;
		if (s == SHMRING_SLOT_OPEN) {
			if (!due || shmring__alive(r, SHMRING_LOCK_WRITER + w))
				return 0; /* alive, or not tested yet */
			dead = 1;
		}
	}
	if (!claimed)
		return 0;
	return dead ? EOWNERDEAD : EPIPE;
}

/* shmring__pick returns a lane with a message for the reader, starting
 * after the lane it last received from (round robin), -1 if none, -2 if
 * a tail it looked at is not a multiple of 8 (corrupt, even when the head
 * equals it). */
static inline int shmring__pick(shmring *r) {
	int w = r->last;
	for (int i = 0; i < r->nw; i++) {
		if (++w == r->nw)
			w = 0;
		if (r->tail[w] % 8)
			return -2; /* the tail taken over at the claim */
		if (r->heads[w] != r->tail[w])
			return w;
		uint64_t h = atomic_load(shmring__whead(r, w)); /* acquire; checked where it is used */
		if (h != r->tail[w]) {
			r->heads[w] = h;
			return w;
		}
	}
	return -1;
}

static inline int shmring__data(shmring *r, uint64_t unused) {
	(void)unused;
	int w = shmring__pick(r);
	return w >= 0 ? 1 : w == -2 ? -1 : 0;
}

/* shmring__wait waits until ready(r, arg) (1; -1 is a corrupt ring:
 * EPROTO), spinning, then sleeping on the slot's futex word after
 * announcing it there. The peers' locks are tested when SHMRING_POLL_NS
 * have passed on the monotonic clock since the wait first slept (or last
 * tested them), whatever ended the sleeps: a signal's EINTR every few ms
 * must not put it off. The clock runs on across calls that time out,
 * until the ring moves. */
static inline int shmring__wait(shmring *r, int (*ready)(shmring *, uint64_t), uint64_t arg, int timeout_ms) {
	int64_t start = shmring__now_ns(), deadline = timeout_ms < 0 ? INT64_MAX : start + (int64_t)timeout_ms * 1000000;
	int k = 0;
	for (long i = 1; timeout_ms != 0; i++) { /* timeout 0: one look, no spin */
		if ((k = ready(r, arg)) != 0)
			goto done;
		if (i % 64 == 0 && shmring__now_ns() - start > r->spin_ns)
			break;
	}
	_Atomic uint32_t *sl = r->sleep;
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
		int due = now >= r->check_at;
		if (due)
			r->check_at = now + SHMRING_POLL_NS;
		int err = r->role == 1 ? shmring__judge_readers(r, arg, due) : shmring__judge_writers(r, due);
		if (err < 0) { /* a reader found dead holds nothing: look again */
			atomic_store(sl, 0);
			continue;
		}
		if (err) {
			if (err == EOWNERDEAD)
				r->check_at = 1; /* due: the next call tests again at once */
			atomic_store(sl, 0);
			if ((k = ready(r, arg)) != 0)
				goto done;
			errno = err;
			return -1;
		}
		/* sleep until the next test of the peers (at most
		 * SHMRING_POLL_NS: their states are read again then) or the
		 * deadline */
		int64_t until = r->check_at < deadline ? r->check_at : deadline;
		int64_t slice = until - now;
		/* the kernel's timespec for SYS_futex: two longs on 32-bit
		 * (its old timespec) and 64-bit alike, whatever the C
		 * library's struct timespec is (_TIME_BITS=64 makes it 64-bit
		 * on i386); FUTEX_WAIT's timeout is relative, at most
		 * SHMRING_POLL_NS here */
		struct {
			long sec, nsec;
		} ts = {(long)(slice / 1000000000), (long)(slice % 1000000000)};
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

static inline int shmring__writer_ok(shmring *r) {
	if (r->forked) {
		errno = ECHILD;
		return -1;
	}
	if (r->role != 1) {
		errno = EINVAL;
		return -1;
	}
	if (r->pos % 8) { /* the head this writer took over at its claim */
		errno = EPROTO;
		return -1;
	}
	return 0;
}

/* shmring__space: for a record of n bytes at the writer's head, the
 * record's size, its data offset and the bytes skipped before it (a wrap
 * marker's); waits up to timeout_ms for room. */
static inline int shmring__space(shmring *r, size_t n, uint64_t *rec, uint64_t *off, uint64_t *skip, int timeout_ms) {
	/* pos is a multiple of 8 and so is cap: off <= cap - 8, and the
	 * marker and the record lie inside the lane */
	*rec = 8 + (((uint64_t)n + 7) & ~(uint64_t)7);
	*off = r->pos % r->cap;
	*skip = *rec > r->cap - *off ? r->cap - *off : 0;
	int k = shmring__room(r, *skip + *rec);
	if (k == 0)
		k = shmring__wait(r, shmring__room, *skip + *rec, timeout_ms) < 0 ? -2 : 1;
	if (k < 0) {
		if (k == -1)
			errno = EPROTO;
		return -1;
	}
	return 0;
}

/* shmring__publish stores the writer's head and wakes every reader. */
static inline void shmring__publish(shmring *r) {
	r->publishes++;
	atomic_store(r->head, r->pos); /* release: the records first */
	shmring__wake_readers(r);
}

/* shmring_send sends len bytes of msg as one message, waiting up to
 * timeout_ms while the lane is full. A reservation not committed is
 * dropped. */
static inline int shmring_send(shmring *r, const void *msg, size_t len, int timeout_ms) {
	if (shmring__writer_ok(r) < 0)
		return -1;
	if ((uint64_t)len > r->max) {
		errno = EMSGSIZE;
		return -1;
	}
	r->reserved = 0;
	uint64_t rec, off, skip;
	if (shmring__space(r, len, &rec, &off, &skip, timeout_ms) < 0)
		return -1;
	uint64_t word = SHMRING_WRAP;
	if (skip) {
		memcpy(r->lane + off, &word, 8);
		off = 0;
	}
	memcpy(r->lane + off + 8, msg, len);
	word = len;
	memcpy(r->lane + off, &word, 8);
	r->pos += skip + rec;
	shmring__publish(r);
	return 0;
}

/* shmring_reserve hands out n bytes (n <= max_message) of the writer's
 * lane to fill in place, waiting up to timeout_ms for room (errors as
 * shmring_send's). Nothing is published until shmring_commit; a writer
 * that dies or closes before published nothing, and another reserve or a
 * send drops the reservation. NULL and errno on failure. */
static inline void *shmring_reserve(shmring *r, size_t n, int timeout_ms) {
	if (shmring__writer_ok(r) < 0)
		return NULL;
	if ((uint64_t)n > r->max) {
		errno = EMSGSIZE;
		return NULL;
	}
	r->reserved = 0;
	uint64_t rec, off, skip;
	if (shmring__space(r, n, &rec, &off, &skip, timeout_ms) < 0)
		return NULL;
	if (skip) {
		uint64_t word = SHMRING_WRAP;
		memcpy(r->lane + off, &word, 8);
		off = 0;
	}
	r->reserved = 1;
	r->res_off = off;
	r->res_skip = skip;
	r->res_n = n;
	return r->lane + off + 8;
}

/* shmring_commit publishes the first m bytes (m <= the n reserved) of the
 * reservation as one message. -1 with EINVAL if nothing is reserved or m
 * is larger. */
static inline int shmring_commit(shmring *r, size_t m) {
	if (shmring__writer_ok(r) < 0)
		return -1;
	if (!r->reserved || (uint64_t)m > r->res_n) {
		errno = EINVAL;
		return -1;
	}
	r->reserved = 0;
	uint64_t word = m;
	memcpy(r->lane + r->res_off, &word, 8);
	r->pos += r->res_skip + 8 + (((uint64_t)m + 7) & ~(uint64_t)7);
	shmring__publish(r);
	return 0;
}

/* shmring__reader_ok checks that r may receive. */
static inline int shmring__reader_ok(shmring *r) {
	if (r->forked) {
		errno = ECHILD;
		return -1;
	}
	if (r->role != 2) {
		errno = EINVAL;
		return -1;
	}
	return 0;
}

/* shmring__record finds the next record of lane w below the head loaded
 * (LAYOUT.md §5, Receive steps 2-4), passing wrap markers (in the local
 * tail): its data offset and length. 1, 0 if the lane is empty, -1
 * corrupt (EPROTO). */
static inline int shmring__record(shmring *r, int w, uint64_t *off, uint32_t *n) {
	uint64_t h = r->heads[w];
	for (;;) {
		uint64_t t = r->tail[w];
		if (t == h)
			return 0;
		if (t % 8 || h % 8 || h - t > r->cap)
			return -1;
		uint64_t o = t % r->cap; /* a multiple of 8, <= cap - 8 */
		const unsigned char *lane = r->data + r->cap * (size_t)w;
		uint32_t len;
		memcpy(&len, lane + o, 4);
		if (len == SHMRING_WRAP) {
			if (o == 0 || h - t < r->cap - o)
				return -1;
			r->tail[w] += r->cap - o;
			continue;
		}
		uint64_t rec = 8 + (((uint64_t)len + 7) & ~(uint64_t)7);
		if (len > r->max || rec > h - t || o + rec > r->cap)
			return -1;
		*off = o;
		*n = len;
		return 1;
	}
}

/* shmring__consume stores the reader's tail of lane w and wakes its
 * writer. */
static inline void shmring__consume(shmring *r, int w) {
	r->publishes++;
	atomic_store(r->tailp + w, r->tail[w]); /* release: done with the records */
	shmring__wake(r, shmring__u32(r, shmring__ws(w) + SHMRING_WSLOT_SLEEP));
}

/* shmring__next_lane waits up to timeout_ms for a lane with a record and
 * returns it, with the record's offset and length. */
static inline int shmring__next_lane(shmring *r, uint64_t *off, uint32_t *n, int timeout_ms) {
	for (;;) {
		int w = shmring__pick(r);
		if (w == -2) {
			errno = EPROTO;
			return -1;
		}
		if (w < 0) {
			if (shmring__wait(r, shmring__data, 0, timeout_ms) < 0)
				return -1;
			continue;
		}
		int k = shmring__record(r, w, off, n);
		if (k < 0) {
			errno = EPROTO;
			return -1;
		}
		if (k > 0)
			return w;
		/* only a wrap marker up to the head: look again */
	}
}

/* shmring__release_held consumes the message shmring_next handed out,
 * if any (shmring_recv and shmring_recv_batch release it first). */
static inline void shmring__release_held(shmring *r) {
	if (r->held) {
		int w = r->held - 1;
		r->held = 0;
		r->tail[w] += r->held_rec;
		shmring__consume(r, w);
	}
}

/* shmring_recv copies the next message into buf (cap bytes) and returns
 * its length, waiting up to timeout_ms while every lane is empty. A
 * message held by shmring_next is released first. */
static inline ssize_t shmring_recv(shmring *r, void *buf, size_t cap, int timeout_ms) {
	if (shmring__reader_ok(r) < 0)
		return -1;
	shmring__release_held(r);
	uint64_t off;
	uint32_t n;
	int w = shmring__next_lane(r, &off, &n, timeout_ms);
	if (w < 0)
		return -1;
	if (n > cap) {
		errno = EMSGSIZE;
		return -1;
	}
	memcpy(buf, r->data + r->cap * (size_t)w + off + 8, n);
	r->tail[w] += 8 + (((uint64_t)n + 7) & ~(uint64_t)7);
	r->last = w;
	shmring__consume(r, w);
	return (ssize_t)n;
}

/* shmring_next points *msg at the next message, in the ring itself, and
 * returns its length, waiting up to timeout_ms while every lane is empty
 * (errors as shmring_recv's). The message stays in place, unconsumed (no
 * writer overwrites it), until shmring_release consumes it; shmring_recv
 * and shmring_recv_batch release it first; a call of shmring_next before
 * that returns the same message again. shmring_close leaves it
 * unconsumed (with one reader slot, the next reader gets it again). */
static inline ssize_t shmring_next(shmring *r, const void **msg, int timeout_ms) {
	if (shmring__reader_ok(r) < 0)
		return -1;
	if (!msg) {
		errno = EINVAL;
		return -1;
	}
	uint64_t off;
	uint32_t n;
	int w;
	if (r->held) {
		w = r->held - 1;
		if (shmring__record(r, w, &off, &n) <= 0) { /* the same record: checked before */
			errno = EPROTO;
			return -1;
		}
	} else if ((w = shmring__next_lane(r, &off, &n, timeout_ms)) < 0) {
		return -1;
	}
	r->held = w + 1;
	r->held_rec = 8 + (((uint64_t)n + 7) & ~(uint64_t)7);
	r->last = w;
	*msg = r->data + r->cap * (size_t)w + off + 8;
	return (ssize_t)n;
}

/* shmring_release consumes the message shmring_next handed out: 0, or -1
 * with EINVAL if none is held. */
static inline int shmring_release(shmring *r) {
	if (shmring__reader_ok(r) < 0)
		return -1;
	if (!r->held) {
		errno = EINVAL;
		return -1;
	}
	shmring__release_held(r);
	return 0;
}

/* shmring_send_batch sends the count messages of msgs (iov_base, iov_len
 * bytes each), in order, as many as the lane has room for, and returns how
 * many it sent (the first ones). It waits up to timeout_ms for room for
 * the first message only, as shmring_send does (its errors are
 * shmring_send's), then writes the others while they fit, and publishes
 * them all with one store of the head and at most one wake-up of each
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
	if (shmring__writer_ok(r) < 0)
		return -1;
	r->reserved = 0;
	uint64_t rec, off, skip;
	if (shmring__space(r, msgs[0].iov_len, &rec, &off, &skip, timeout_ms) < 0)
		return -1;
	/* the batch's counters in locals: the copies below may alias *r as
	 * far as the compiler knows */
	uint64_t pos = r->pos, cap = r->cap, max = r->max, room = cap - (pos - r->least);
	unsigned char *lane = r->lane;
	int i;
	for (i = 0; i < count; i++) {
		size_t len = msgs[i].iov_len;
		if (i > 0) {
			if ((uint64_t)len > max)
				break;
			rec = 8 + (((uint64_t)len + 7) & ~(uint64_t)7);
			off = pos % cap;
			skip = rec > cap - off ? cap - off : 0;
			if (room < skip + rec) {
				/* room measured from the published head r->pos,
				 * as the readers see it: the batch's unpublished
				 * records count as needed (with no reader holding,
				 * the least tail is the published head, and a batch
				 * never writes more than the capacity beyond it) */
				if (shmring__least(r, (pos - r->pos) + skip + rec) != 1) /* not yet, or a corrupt tail: the next call reports it */
					break;
				room = cap - (pos - r->least);
			}
		}
		uint64_t word = SHMRING_WRAP;
		if (skip) {
			memcpy(lane + off, &word, 8);
			off = 0;
		}
		memcpy(lane + off + 8, msgs[i].iov_base, len);
		word = len;
		memcpy(lane + off, &word, 8);
		pos += skip + rec;
		room -= skip + rec;
	}
	r->pos = pos;
	shmring__publish(r); /* every record of the batch first */
	return i;
}

/* shmring_recv_batch copies the next messages into the count buffers of
 * bufs (iov_base, iov_len bytes each), message i into bufs[i] with its
 * length in lens[i], and returns how many it received. It waits up to
 * timeout_ms for the first message only, as shmring_recv does (its errors
 * are shmring_recv's: EMSGSIZE if the first does not fit its buffer), then
 * takes the others already published, lane after lane, stopping before one
 * its buffer is too small for, and releases each lane's with one store of
 * its tail and at most one wake-up of its writer. A corrupt record after
 * the first ends the batch before it: the next call reports EPROTO. A
 * message held by shmring_next is released first. count 0 returns 0. */
static inline int shmring_recv_batch(shmring *r, const struct iovec *bufs, size_t *lens, int count, int timeout_ms) {
	if (shmring__reader_ok(r) < 0)
		return -1;
	if (count < 0 || (count > 0 && (!bufs || !lens))) {
		errno = EINVAL;
		return -1;
	}
	if (count == 0)
		return 0;
	shmring__release_held(r);
	uint64_t off;
	uint32_t n;
	int w = shmring__next_lane(r, &off, &n, timeout_ms);
	if (w < 0)
		return -1;
	if (n > bufs[0].iov_len) {
		errno = EMSGSIZE;
		return -1;
	}
	int i = 0, stop = 0;
	for (int lanes = 0; lanes < r->nw && i < count && !stop; lanes++) {
		if (lanes > 0) { /* the next lane with a message, if any */
			if ((w = shmring__pick(r)) < 0 || shmring__record(r, w, &off, &n) <= 0)
				break;
		}
		/* the lane's counters in locals: the copies below may alias *r
		 * as far as the compiler knows; record() checked t and h */
		uint64_t t = r->tail[w], h = r->heads[w], cap = r->cap, max = r->max;
		const unsigned char *lane = r->data + cap * (size_t)w;
		int took = 0;
		for (;;) {
			if (n > bufs[i].iov_len) {
				stop = 1; /* the next message does not fit its buffer */
				break;
			}
			memcpy(bufs[i].iov_base, lane + off + 8, n);
			lens[i++] = n;
			took++;
			t += 8 + (((uint64_t)n + 7) & ~(uint64_t)7);
			if (i == count)
				break;
			/* the next record (Receive steps 3-4); a corrupt one ends
			 * the batch before it, for the next call to report */
			uint32_t len;
			uint64_t o, rec;
			for (;;) {
				if (t == h)
					goto lane_done;
				o = t % cap;
				memcpy(&len, lane + o, 4);
				if (len != SHMRING_WRAP)
					break;
				if (o == 0 || h - t < cap - o)
					goto lane_done;
				t += cap - o;
			}
			rec = 8 + (((uint64_t)len + 7) & ~(uint64_t)7);
			if (len > max || rec > h - t || o + rec > cap)
				break;
			off = o;
			n = len;
		}
	lane_done:
		r->tail[w] = t;
		if (took) {
			r->last = w;
			shmring__consume(r, w);
		}
	}
	return i;
}

/* shmring_wait_peer waits up to timeout_ms (-1: forever) until a live
 * process holds a slot of the other kind: its state word says open and its
 * lock is held (peers that closed, died or never came are waited for),
 * polling every few ms, at most every 50 ms. 0, or -1 with ETIMEDOUT,
 * EINVAL (no slot claimed) or ECHILD. So a writer whose readers died can
 * wait for the next reader instead of writing for nobody (or failing with
 * EOWNERDEAD, with one reader slot). */
static inline int shmring_wait_peer(shmring *r, int timeout_ms) {
	if (r->forked) {
		errno = ECHILD;
		return -1;
	}
	if (r->role != 1 && r->role != 2) {
		errno = EINVAL;
		return -1;
	}
	int64_t deadline = timeout_ms < 0 ? INT64_MAX : shmring__now_ns() + (int64_t)timeout_ms * 1000000;
	int64_t d = 1000000;
	for (;;) {
		int n = r->role == 1 ? r->nr : r->nw;
		for (int i = 0; i < n; i++) {
			uint32_t s = atomic_load(r->role == 1 ? shmring__rstate(r, i) : shmring__wstate(r, i)) & 0xFF;
			if (s == SHMRING_SLOT_OPEN && shmring__alive(r, (r->role == 1 ? SHMRING_LOCK_READER : SHMRING_LOCK_WRITER) + i))
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

/* shmring__slot_state is slot i's state for stat: the state word's low
 * byte, or dead for open with nobody holding its lock (this handle's own
 * slot is held). -1 if the word is corrupt. */
static inline int shmring__slot_state(shmring *r, int writer, int i, uint32_t *pid) {
	size_t slot = writer ? shmring__ws(i) : shmring__rsl(r, i);
	*pid = atomic_load(shmring__u32(r, slot + SHMRING_SLOT_PID));
	uint32_t s = atomic_load(shmring__u32(r, slot + SHMRING_SLOT_STATE)) & 0xFF;
	if (s > SHMRING_SLOT_CLOSED)
		return -1;
	if (s == SHMRING_SLOT_OPEN && !(r->role == (writer ? 1 : 2) && r->slot == i) &&
	    !shmring__alive(r, (writer ? SHMRING_LOCK_WRITER : SHMRING_LOCK_READER) + i))
		return SHMRING_SLOT_DEAD;
	return (int)s;
}

/* shmring__backlog adds lane w's backlog (LAYOUT.md §6) to st; holds:
 * the reader slots that hold (a bit each). 0, -1 corrupt (EPROTO), -2
 * too busy to count. */
static inline int shmring__backlog(shmring *r, int w, uint64_t holds, struct shmring_stat *st) {
	const unsigned char *lane = r->data + r->cap * (size_t)w;
	uint64_t t[SHMRING_MAX_SLOTS];
	for (int tries = 0; tries < 64; tries++) {
		for (int i = 0; i < r->nr; i++) /* tails first, then the head */
			if (holds >> i & 1)
				t[i] = atomic_load(shmring__rtail(r, i, w));
		uint64_t h = atomic_load(shmring__whead(r, w)), m = 0;
		int least = -1, moved = 0;
		for (int i = 0; i < r->nr; i++) {
			if (!(holds >> i & 1))
				continue;
			uint64_t d = h - t[i];
			if (t[i] % 8 || h % 8 || d > r->cap) { /* broken, unless the tail moved meanwhile */
				if (atomic_load(shmring__rtail(r, i, w)) != t[i]) {
					moved = 1;
					break;
				}
				if (r->nr > 1 && h % 8 == 0 && t[i] % 8 == 0 && d > r->cap && d < (uint64_t)1 << 63)
					continue; /* a reader joining: stored its state, not yet its tails */
				return -1;
			}
			if (least < 0 || d > h - m)
				m = t[i], least = i;
		}
		if (moved)
			continue;
		if (least < 0)
			return 0; /* no reader holds this lane */
		_Atomic uint64_t *lt = shmring__rtail(r, least, w);
		uint64_t p, msgs = 0, bytes = 0;
		for (p = m; p != h;) {
			uint64_t o = p % r->cap;
			uint32_t n;
			memcpy(&n, lane + o, 4);
			if (atomic_load(lt) - m > p - m) {
				moved = 1; /* the record may be overwritten: count again */
				break;
			}
			if (n == SHMRING_WRAP) {
				if (o == 0 || h - p < r->cap - o)
					return -1;
				p += r->cap - o;
				continue;
			}
			uint64_t rec = 8 + (((uint64_t)n + 7) & ~(uint64_t)7);
			if (n > r->max || rec > h - p || o + rec > r->cap)
				return -1;
			msgs++;
			bytes += n;
			p += rec;
		}
		if (moved)
			continue;
		st->messages += msgs;
		st->bytes += bytes;
		st->used += h - m;
		return 0;
	}
	return -2;
}

/* shmring_stat describes the ring into *st without claiming or storing
 * anything (LAYOUT.md §6): it loads the ring's words, tests the locks of
 * open slots (F_OFD_GETLK), and walks each lane's records from the least
 * tail of its holding readers to its head, checking each as a reader
 * does. 0, or -1 with EPROTO (a corrupt counter, record or state word),
 * EAGAIN (readers released records under the walk 64 times over: a ring
 * too busy to count; try again), EINVAL or ECHILD. It takes a time
 * proportional to the number of messages. */
static inline int shmring_stat(shmring *r, struct shmring_stat *st) {
	if (r->forked) {
		errno = ECHILD;
		return -1;
	}
	if (!st) {
		errno = EINVAL;
		return -1;
	}
	memset(st, 0, sizeof *st);
	st->capacity = r->cap;
	st->max_message = r->max;
	st->readers = r->nr;
	st->writers = r->nw;
	uint64_t holds = 0;
	for (int i = 0; i < r->nw; i++)
		if ((st->writer_state[i] = shmring__slot_state(r, 1, i, &st->writer_pid[i])) < 0)
			goto corrupt;
	for (int i = 0; i < r->nr; i++) {
		if ((st->reader_state[i] = shmring__slot_state(r, 0, i, &st->reader_pid[i])) < 0)
			goto corrupt;
		if (r->nr == 1 || st->reader_state[i] == SHMRING_SLOT_OPEN)
			holds |= (uint64_t)1 << i;
	}
	for (int w = 0; w < r->nw; w++) {
		int k = shmring__backlog(r, w, holds, st);
		if (k == -1)
			goto corrupt;
		if (k == -2) {
			errno = EAGAIN;
			return -1;
		}
	}
	return 0;
corrupt:
	errno = EPROTO;
	return -1;
}

/* shmring_close releases the handle's slot (a writer's close ends its
 * lane's stream: once every writer slot ever claimed is closed, the
 * readers drain, then get EPIPE), unmaps and frees. In a fork's child it
 * only unmaps and frees: the slot is the parent's. */
static inline void shmring_close(shmring *r) {
	if (!r)
		return;
	if (r->role && !r->forked) {
		_Atomic uint32_t *st = r->role == 1 ? shmring__wstate(r, r->slot) : shmring__rstate(r, r->slot);
		atomic_store(st, (atomic_load(st) & ~(uint32_t)0xFF) | SHMRING_SLOT_CLOSED);
		if (r->role == 1)
			shmring__wake_readers(r);
		else
			shmring__wake_writers(r);
		shmring__fcntl(r->fd, F_OFD_SETLK, F_UNLCK, (r->role == 1 ? SHMRING_LOCK_WRITER : SHMRING_LOCK_READER) + r->slot, NULL);
	}
	shmring__free(r);
}

/* shmring_max_message is the largest message the ring takes. */
static inline size_t shmring_max_message(const shmring *r) { return (size_t)r->max; }

#endif
