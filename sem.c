//go:build linux && cgo

// Named POSIX semaphores for github.com/posixshm/shm; see sem.h. Only libc
// calls: the semaphore's memory is libc's to touch.

#define _GNU_SOURCE
#include "sem.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
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

static void add_ns(struct timespec *ts, int64_t ns) {
	ts->tv_sec += ns / 1000000000;
	ts->tv_nsec += ns % 1000000000;
	if (ts->tv_nsec >= 1000000000) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000;
	}
}

#if !defined(__GLIBC__)
// musl reports EINTR from a timed wait only once some handler was installed
// through its sigaction without SA_RESTART (before that it hides EINTR, for
// old kernels that reported it wrongly). The Go runtime installs all of
// its handlers with SA_RESTART, so musl would restart the wait after the
// signal that is to end it. Set musl's flag once, by reinstalling the Go
// runtime's own SIGRTMAX handler without SA_RESTART and at once with it:
// the handler never changes, only a SIGRTMAX (which nobody sends) in the
// window between the two calls could interrupt a system call.
static pthread_once_t eintr_once = PTHREAD_ONCE_INIT;

static void eintr_valid(void) {
	struct sigaction cur, tmp;
	if (sigaction(SIGRTMAX, NULL, &cur) != 0)
		return;
	tmp = cur;
	tmp.sa_flags &= ~SA_RESTART;
	if (sigaction(SIGRTMAX, &tmp, NULL) == 0)
		sigaction(SIGRTMAX, &cur, NULL);
}
#endif

int goshm_sem_wait(uintptr_t sem, int64_t timeout_ns, struct goshm_sleeper *sl) {
	struct timespec at;
	int r, e, forever = timeout_ns < 0;

#if !defined(__GLIBC__)
	pthread_once(&eintr_once, eintr_valid);
#endif
	for (;;) {
		if (forever)
			timeout_ns = 3600 * (int64_t)1000000000; // a timed wait, so that a signal ends it
#if HAVE_CLOCKWAIT
		clock_gettime(CLOCK_MONOTONIC, &at);
#else
		// sem_timedwait measures CLOCK_REALTIME: a clock step lengthens or
		// shortens the wait.
		clock_gettime(CLOCK_REALTIME, &at);
#endif
		add_ns(&at, timeout_ns);
		do {
			if (goshm_sleeper_enter(sl))
				return goshm_fail(GOSHM_OP_SEM_CLOCKWAIT, ECANCELED);
#if HAVE_CLOCKWAIT
			r = sem_clockwait((sem_t *)sem, CLOCK_MONOTONIC, &at);
#else
			r = sem_timedwait((sem_t *)sem, &at);
#endif
			e = errno;
			goshm_sleeper_leave(sl);
		} while (r != 0 && e == EINTR);
		if (r == 0)
			return 0;
		if (!(forever && e == ETIMEDOUT))
			return goshm_fail(GOSHM_OP_SEM_CLOCKWAIT, e);
	}
}

int goshm_sem_getvalue(uintptr_t sem, int *value) {
	return sem_getvalue((sem_t *)sem, value) != 0 ? goshm_fail(GOSHM_OP_SEM_GETVALUE, errno) : 0;
}
