/* eintr.so, for LD_PRELOAD: a fallocate that acts like the tmpfs of
 * kernels before 6.x, which abandons fallocate with EINTR whenever a signal
 * is pending; the Go runtime signals its threads often enough that, with
 * signals unblocked, every attempt is interrupted. This fallocate fails with
 * EINTR unless the caller has blocked SIGURG and SIGPROF (the runtime's
 * preemption and profiling signals); after 100 such attempts it gives up
 * with EIO, so a retry loop that never blocks signals fails instead of
 * spinning forever. It says once on stderr that it is in place. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/types.h>
#include <unistd.h>

static int unblocked;

// interrupted says whether this call fails with EINTR (or EIO), as above.
static int interrupted(void) {
	sigset_t cur;
	sigprocmask(SIG_SETMASK, NULL, &cur);
	if (sigismember(&cur, SIGURG) && sigismember(&cur, SIGPROF))
		return 0;
	if (unblocked++ == 0) {
		static const char msg[] = "eintr.so: fallocate interrupted\n";
		write(2, msg, sizeof msg - 1);
	}
	errno = unblocked > 100 ? EIO : EINTR;
	return 1;
}

// The real calls are libc's own (RTLD_NEXT), so that 32-bit offsets and
// the 64-bit variant glibc uses under _FILE_OFFSET_BITS=64 on 386 both
// pass through unchanged.
int fallocate(int fd, int mode, off_t off, off_t len) {
	if (interrupted())
		return -1;
	int (*real)(int, int, off_t, off_t) = (int (*)(int, int, off_t, off_t))dlsym(RTLD_NEXT, "fallocate");
	return real(fd, mode, off, len);
}

#ifdef __GLIBC__
int fallocate64(int fd, int mode, off64_t off, off64_t len) {
	if (interrupted())
		return -1;
	int (*real)(int, int, off64_t, off64_t) = (int (*)(int, int, off64_t, off64_t))dlsym(RTLD_NEXT, "fallocate64");
	return real(fd, mode, off, len);
}
#endif
