//go:build linux && cgo

// Blocking calls that Go can end by a signal; see wake.h. The futex word
// is only passed to the kernel, never touched here.

#define _GNU_SOURCE
#include "wake.h"

#include <errno.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "shm.h"

int goshm_sleeper_enter(struct goshm_sleeper *sl) {
	__atomic_store_n(&sl->tid, (int32_t)syscall(SYS_gettid), __ATOMIC_SEQ_CST);
	__atomic_store_n(&sl->inside, 1, __ATOMIC_SEQ_CST);
	if (__atomic_load_n(&sl->stop, __ATOMIC_SEQ_CST) || __atomic_load_n(&sl->kick, __ATOMIC_SEQ_CST)) {
		goshm_sleeper_leave(sl);
		return 1;
	}
	return 0;
}

void goshm_sleeper_leave(struct goshm_sleeper *sl) {
	__atomic_store_n(&sl->inside, 0, __ATOMIC_SEQ_CST);
}

int goshm_futex_wait(uintptr_t addr, uint32_t val, int64_t timeout_ns, struct goshm_sleeper *sl) {
	struct timespec ts = {timeout_ns / 1000000000, timeout_ns % 1000000000};
	if (timeout_ns < 0)
		ts.tv_sec = ts.tv_nsec = 0;
	if (goshm_sleeper_enter(sl))
		return goshm_fail(GOSHM_OP_FUTEX, EINTR);
	long r = syscall(SYS_futex, (uint32_t *)addr, 0 /* FUTEX_WAIT, shared */, val, &ts, NULL, 0);
	int e = errno;
	goshm_sleeper_leave(sl);
	return r == 0 ? 0 : goshm_fail(GOSHM_OP_FUTEX, e);
}
