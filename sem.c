//go:build linux && cgo

// Named POSIX semaphores for github.com/posixshm/shm; see sem.h. Only libc
// calls: the semaphore's memory is libc's to touch.

#define _GNU_SOURCE
#include "sem.h"

#include <errno.h>
#include <fcntl.h>
#include <semaphore.h>
#include <stdint.h>

int goshm_sem_open(const char *name, int oflag, unsigned int mode, unsigned int value, uintptr_t *sem) {
	errno = 0;
	sem_t *s = (oflag & O_CREAT) ? sem_open(name, oflag, (mode_t)mode, value) : sem_open(name, oflag);
	*sem = (uintptr_t)(s == SEM_FAILED ? NULL : s);
	// glibc can fail without setting errno (a name longer than NAME_MAX
	// with its slashes): reported as EINVAL, never as errno 0.
	return s == SEM_FAILED ? goshm_fail(GOSHM_OP_SEM_OPEN, errno != 0 ? errno : EINVAL) : 0;
}

int goshm_sem_close(uintptr_t sem) {
	return sem_close((sem_t *)sem) != 0 ? goshm_fail(GOSHM_OP_SEM_CLOSE, errno) : 0;
}

int goshm_sem_unlink(const char *name) {
	return sem_unlink(name) != 0 ? goshm_fail(GOSHM_OP_SEM_UNLINK, errno) : 0;
}

int goshm_sem_post(uintptr_t sem) {
	return sem_post((sem_t *)sem) != 0 ? goshm_fail(GOSHM_OP_SEM_POST, errno) : 0;
}

int goshm_sem_trywait(uintptr_t sem) {
	int r;
	do {
		r = sem_trywait((sem_t *)sem);
	} while (r != 0 && errno == EINTR);
	return r != 0 ? goshm_fail(GOSHM_OP_SEM_TRYWAIT, errno) : 0;
}

/*
 * The waiting side of libc's own semaphore protocol, so that Go can sleep
 * on the semaphore's futex word in its one wait loop (internal/wait: a
 * futex_waitv that cancellation and Close end without a signal) while
 * sem_post in any process, whatever its libc call, wakes it exactly as it
 * wakes libc's own sem_wait. The layouts and steps are those of glibc
 * (nptl/sem_waitcommon.c, 2.21 and later: a 64-bit word on 64-bit
 * machines, a value word and a waiter count on 32-bit ones) and of musl
 * (src/thread/sem_timedwait.c and sem_post.c); the static assert below
 * checks the size against <semaphore.h>. The futex word is the first 32
 * bits of sem_t in all three (little-endian; the low half of glibc's
 * 64-bit word).
 */
#if defined(__GLIBC__) && UINTPTR_MAX == UINT64_MAX
struct libc_sem {
	uint64_t data; // count in bits 0-31, waiters in bits 32-63
	int private_, pad;
};
#define NWAITERS ((uint64_t)1 << 32)
#define VALUE(d) ((d) & (NWAITERS - 1))

int goshm_sem_wait_prepare(uintptr_t sem, uintptr_t *addr, uint32_t *val) {
	struct libc_sem *s = (struct libc_sem *)sem;
	uint64_t d = __atomic_add_fetch(&s->data, NWAITERS, __ATOMIC_RELAXED);
	while (VALUE(d) != 0)
		if (__atomic_compare_exchange_n(&s->data, &d, d - 1 - NWAITERS, 1, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
			return 1;
	*addr = (uintptr_t)&s->data;
	*val = 0;
	return 0;
}

int goshm_sem_wait_done(uintptr_t sem, int leaving) {
	struct libc_sem *s = (struct libc_sem *)sem;
	uint64_t d = __atomic_sub_fetch(&s->data, NWAITERS, __ATOMIC_RELAXED);
	// A post may have woken this waiter, which now leaves: pass it on.
	return leaving && VALUE(d) != 0 && (d >> 32) != 0;
}
#elif defined(__GLIBC__)
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

struct libc_sem {
	unsigned int value; // count << 1 | 1 while waiters may sleep
	int private_, pad;
	unsigned int nwaiters;
};

// finish is glibc's __sem_wait_32_finish: the last waiter out clears the
// waiters bit, setting it again (and waking) if another came meanwhile. It
// returns how many to wake.
static int finish(struct libc_sem *s) {
	unsigned int wguess = __atomic_load_n(&s->nwaiters, __ATOMIC_RELAXED);
	if (wguess == 1)
		__atomic_fetch_and(&s->value, ~1u, __ATOMIC_ACQUIRE);
	unsigned int wfinal = __atomic_fetch_sub(&s->nwaiters, 1, __ATOMIC_RELEASE);
	if (wfinal > 1 && wguess == 1)
		return (int)(__atomic_fetch_or(&s->value, 1u, __ATOMIC_RELAXED) >> 1);
	return 0;
}

int goshm_sem_wait_prepare(uintptr_t sem, uintptr_t *addr, uint32_t *val) {
	struct libc_sem *s = (struct libc_sem *)sem;
	__atomic_fetch_add(&s->nwaiters, 1, __ATOMIC_ACQUIRE);
	unsigned int v = __atomic_load_n(&s->value, __ATOMIC_RELAXED);
	for (;;) {
		if (v >> 1 != 0) {
			if (__atomic_compare_exchange_n(&s->value, &v, v - 2, 1, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) {
				// As glibc's own: finish may have cleared the waiters
				// bit under a waiter that came meanwhile and sleeps,
				// and a post may have come before it set it again.
				int n = finish(s);
				if (n > 0)
					syscall(SYS_futex, &s->value, FUTEX_WAKE, n, NULL, NULL, 0); // shared, as named semaphores are
				return 1;
			}
			continue;
		}
		if (!(v & 1) && !__atomic_compare_exchange_n(&s->value, &v, v | 1, 1, __ATOMIC_RELEASE, __ATOMIC_RELAXED))
			continue;
		*addr = (uintptr_t)&s->value;
		*val = 1;
		return 0;
	}
}

int goshm_sem_wait_done(uintptr_t sem, int leaving) {
	struct libc_sem *s = (struct libc_sem *)sem;
	int n = finish(s);
	return n != 0 ? n : leaving && (__atomic_load_n(&s->value, __ATOMIC_RELAXED) >> 1) != 0;
}
#else // musl
// musl's sem_t holds the count word, the number of waiters and the private
// flag in its first three ints. Its versions differ in how the count word
// says "0, with waiters" (-1 up to 1.2.3, bit 31 from 1.2.4), but every
// sem_post wakes one sleeper on the count word whenever the waiters count
// is not 0. So a waiter here counts itself there, reads the count word,
// lets sem_trywait judge the count, and sleeps while the word holds what it
// read: any post changes the word, and wakes.
struct libc_sem {
	int val[3]; // count word, waiters, private
};

int goshm_sem_wait_prepare(uintptr_t sem, uintptr_t *addr, uint32_t *val) {
	struct libc_sem *s = (struct libc_sem *)sem;
	__atomic_fetch_add(&s->val[1], 1, __ATOMIC_SEQ_CST);
	uint32_t v = (uint32_t)__atomic_load_n(&s->val[0], __ATOMIC_SEQ_CST);
	if (sem_trywait((sem_t *)sem) == 0) {
		__atomic_fetch_sub(&s->val[1], 1, __ATOMIC_SEQ_CST);
		return 1;
	}
	*addr = (uintptr_t)&s->val[0];
	*val = v;
	return 0;
}

int goshm_sem_wait_done(uintptr_t sem, int leaving) {
	struct libc_sem *s = (struct libc_sem *)sem;
	int w = __atomic_sub_fetch(&s->val[1], 1, __ATOMIC_SEQ_CST), v = 0;
	return leaving && w != 0 && sem_getvalue((sem_t *)sem, &v) == 0 && v > 0;
}
#endif
_Static_assert(sizeof(struct libc_sem) <= sizeof(sem_t), "sem_t is smaller than the libc layout assumed");

int goshm_sem_getvalue(uintptr_t sem, int *value) {
	return sem_getvalue((sem_t *)sem, value) != 0 ? goshm_fail(GOSHM_OP_SEM_GETVALUE, errno) : 0;
}
