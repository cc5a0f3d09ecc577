/* eintr.so, for LD_PRELOAD: a fallocate that acts like the tmpfs of
 * kernels before 6.x, which abandons fallocate with EINTR whenever a signal
 * is pending; the Go runtime signals its threads often enough that, with
 * signals unblocked, every attempt is interrupted. This fallocate fails with
 * EINTR unless the caller has blocked SIGURG and SIGPROF (the runtime's
 * preemption and profiling signals); after 100 such attempts it gives up
 * with EIO, so a retry loop that never blocks signals fails instead of
 * spinning forever. It says once on stderr that it is in place. */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

static int unblocked;

static int fake(int fd, int mode, off_t off, off_t len) {
	sigset_t cur;
	sigprocmask(SIG_SETMASK, NULL, &cur);
	if (!sigismember(&cur, SIGURG) || !sigismember(&cur, SIGPROF)) {
		if (unblocked++ == 0) {
			static const char msg[] = "eintr.so: fallocate interrupted\n";
			write(2, msg, sizeof msg - 1);
		}
		errno = unblocked > 100 ? EIO : EINTR;
		return -1;
	}
	if (syscall(SYS_fallocate, fd, mode, off, len) != 0)
		return -1;
	return 0;
}

int fallocate(int fd, int mode, off_t off, off_t len) { return fake(fd, mode, off, len); }
int fallocate64(int fd, int mode, off_t off, off_t len) { return fake(fd, mode, off, len); }
