//go:build linux && cgo

// Named POSIX semaphores for github.com/posixshm/shm; see sem.h. Only libc
// calls: the semaphore's memory is libc's to touch.

#define _GNU_SOURCE
#include "sem.h"

#include <errno.h>
#include <fcntl.h>
#include <semaphore.h>
#include <time.h>

#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 30))
#define HAVE_CLOCKWAIT 1
#else
#define HAVE_CLOCKWAIT 0
#endif

int goshm_sem_clockwait(void) {
	return HAVE_CLOCKWAIT;
}

int goshm_sem_open(const char *name, int oflag, unsigned int mode, unsigned int value, uintptr_t *sem) {
	sem_t *s = (oflag & O_CREAT) ? sem_open(name, oflag, (mode_t)mode, value) : sem_open(name, oflag);
	*sem = (uintptr_t)(s == SEM_FAILED ? NULL : s);
	return s == SEM_FAILED ? goshm_fail(GOSHM_OP_SEM_OPEN, errno) : 0;
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

static void add_ns(struct timespec *ts, int64_t ns) {
	ts->tv_sec += ns / 1000000000;
	ts->tv_nsec += ns % 1000000000;
	if (ts->tv_nsec >= 1000000000) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000;
	}
}

int goshm_sem_wait(uintptr_t sem, int64_t timeout_ns) {
	struct timespec at;
	int r;

	if (timeout_ns < 0)
		timeout_ns = 0;
#if HAVE_CLOCKWAIT
	clock_gettime(CLOCK_MONOTONIC, &at);
	add_ns(&at, timeout_ns);
	do {
		r = sem_clockwait((sem_t *)sem, CLOCK_MONOTONIC, &at);
	} while (r != 0 && errno == EINTR);
#else
	// sem_timedwait measures CLOCK_REALTIME: a clock step during the
	// slice lengthens or shortens it, which the caller's slicing bounds.
	clock_gettime(CLOCK_REALTIME, &at);
	add_ns(&at, timeout_ns);
	do {
		r = sem_timedwait((sem_t *)sem, &at);
	} while (r != 0 && errno == EINTR);
#endif
	return r != 0 ? goshm_fail(GOSHM_OP_SEM_CLOCKWAIT, errno) : 0;
}

int goshm_sem_getvalue(uintptr_t sem, int *value) {
	return sem_getvalue((sem_t *)sem, value) != 0 ? goshm_fail(GOSHM_OP_SEM_GETVALUE, errno) : 0;
}
