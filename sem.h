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

// goshm_sem_wait_prepare takes one if the count is positive (1), or
// registers the caller as a waiter the way libc's own sem_wait does, so
// that sem_post wakes it, and names the futex word to sleep on while it
// holds *val (0). After each sleep the caller calls goshm_sem_wait_done,
// which unregisters it and returns how many sleepers to wake on that
// word: a leaving waiter (leaving nonzero) passes on a wake-up that a post
// may have meant for it.
int goshm_sem_wait_prepare(uintptr_t sem, uintptr_t *addr, uint32_t *val);
int goshm_sem_wait_done(uintptr_t sem, int leaving);

// goshm_sem_getvalue is sem_getvalue(sem, value).
int goshm_sem_getvalue(uintptr_t sem, int *value);

#endif
