//go:build linux && cgo

// Named POSIX semaphores for github.com/posixshm/shm: libc's sem_open
// family, one cgo crossing per operation, with shm.h's conventions.
// Semaphores cross as integers (sem_t * from libc): they are never Go
// memory.

#ifndef GOSHM_SEM_H
#define GOSHM_SEM_H

#include <semaphore.h>
#include <stdint.h>

#include "shm.h"
#include "wake.h"

// What libc's semaphores are: the size of a sem_t, which the semaphore's
// file must hold, and whether libc is glibc, which keeps the semaphore
// "/x" as the file sem.x beside the objects (musl: x).
enum {
	GOSHM_SEM_SIZE = sizeof(sem_t),
#ifdef __GLIBC__
	GOSHM_SEM_GLIBC = 1,
#else
	GOSHM_SEM_GLIBC = 0,
#endif
};

// goshm_sem_clockwait returns 1 where libc has sem_clockwait (glibc 2.30+),
// else 0 (musl): goshm_sem_wait then uses sem_timedwait on CLOCK_REALTIME.
int goshm_sem_clockwait(void);

// goshm_sem_open is sem_open(name, oflag, mode, value), mode and value
// only with O_CREAT. A failure without errno is EINVAL.
int goshm_sem_open(const char *name, int oflag, unsigned int mode, unsigned int value, uintptr_t *sem);

// goshm_sem_close is sem_close(sem).
int goshm_sem_close(uintptr_t sem);

// goshm_sem_unlink is sem_unlink(name).
int goshm_sem_unlink(const char *name);

// goshm_sem_post is sem_post(sem).
int goshm_sem_post(uintptr_t sem);

// goshm_sem_trywait is sem_trywait(sem), retried on EINTR: 0 when it took
// one, the EAGAIN failure when the count is 0.
int goshm_sem_trywait(uintptr_t sem);

// goshm_sem_wait waits to take one, at most timeout_ns nanoseconds
// (measured on CLOCK_MONOTONIC where libc has sem_clockwait), or without
// end if timeout_ns < 0: 0 when it took one, the ETIMEDOUT failure when
// the time ran out, the ECANCELED failure when sl's stop or kick flag was
// set. Go sets a flag and then signals sl->tid while sl->inside is 1: the
// signal ends the libc wait with EINTR (a timed futex wait ends so even
// under SA_RESTART), after which the flags are checked again; other EINTRs
// are retried against the same deadline.
int goshm_sem_wait(uintptr_t sem, int64_t timeout_ns, struct goshm_sleeper *sl);

// goshm_sem_getvalue is sem_getvalue(sem, value).
int goshm_sem_getvalue(uintptr_t sem, int *value);

#endif
