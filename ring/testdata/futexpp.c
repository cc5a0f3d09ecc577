/* futexpp: the blocking round trip between two processes in C, the
 * baseline for the ring's ping-pong: two shared futex words, each side
 * wakes the other every time (FUTEX_WAKE, no PRIVATE flag) and sleeps in
 * FUTEX_WAIT. Prints "P50 P99 P999" of N round trips, in nanoseconds.
 *
 *   futexpp N
 */
#define _GNU_SOURCE
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void fwait(_Atomic uint32_t *w) {
	while (atomic_load(w) == 0)
		syscall(SYS_futex, (void *)w, 0, 0, NULL, NULL, 0);
	atomic_store(w, 0);
}

static void fwake(_Atomic uint32_t *w) {
	atomic_store(w, 1);
	syscall(SYS_futex, (void *)w, 1, 1, NULL, NULL, 0);
}

static int cmp(const void *a, const void *b) {
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

int main(int argc, char **argv) {
	int n = argc > 1 ? atoi(argv[1]) : 10000;
	_Atomic uint32_t *w = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (w == MAP_FAILED)
		return 1;
	pid_t pid = fork();
	if (pid == 0) {
		for (int i = 0; i < n; i++) {
			fwait(&w[0]);
			fwake(&w[16]);
		}
		_exit(0);
	}
	int64_t *rt = malloc(sizeof *rt * n);
	for (int i = 0; i < n; i++) {
		struct timespec a, b;
		clock_gettime(CLOCK_MONOTONIC, &a);
		fwake(&w[0]);
		fwait(&w[16]);
		clock_gettime(CLOCK_MONOTONIC, &b);
		rt[i] = (b.tv_sec - a.tv_sec) * 1000000000LL + (b.tv_nsec - a.tv_nsec);
	}
	waitpid(pid, NULL, 0);
	qsort(rt, n, sizeof *rt, cmp);
	printf("%lld %lld %lld\n", (long long)rt[n / 2], (long long)rt[n * 99 / 100], (long long)rt[n * 999 / 1000]);
	return 0;
}
