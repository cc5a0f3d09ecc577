//go:build linux && cgo

// Blocking calls that Go can end by a signal to the waiting thread; see
// wake.go. With shm.h's failure convention -(op << 16 | errno).

#ifndef GOSHM_WAKE_H
#define GOSHM_WAKE_H

#include <stdint.h>

#include "shm.h"

// A goshm_sleeper is Go's sleeper (wake.go): the waiting thread's id,
// whether it is inside the wait, and the two flags that end the wait. Go
// sets a flag and then, while inside is 1, signals tid; the wait sets
// inside, then checks the flags, then sleeps, so that either it sees the
// flag or Go sees it inside.
struct goshm_sleeper {
	int32_t tid, inside, stop, kick;
};

// goshm_sleeper_enter records the calling thread in sl and marks it
// inside; it returns 0, or 1 (and marks it out again) if a flag is set.
int goshm_sleeper_enter(struct goshm_sleeper *sl);

// goshm_sleeper_leave marks sl out of its wait.
void goshm_sleeper_leave(struct goshm_sleeper *sl);

// goshm_futex_wait is futex(FUTEX_WAIT) (shared) on the 32-bit word at
// addr while it holds val, for at most timeout_ns nanoseconds, unless sl
// is flagged: 0 when woken, else the failure with EAGAIN (the word is not
// val), ETIMEDOUT, EINTR (a signal, or sl flagged before the wait) or
// EFAULT (the page is gone). A timed futex wait ends with EINTR when a
// signal handler runs, even one installed with SA_RESTART.
int goshm_futex_wait(uintptr_t addr, uint32_t val, int64_t timeout_ns, struct goshm_sleeper *sl);

#endif
