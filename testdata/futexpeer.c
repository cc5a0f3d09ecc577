/* futexpeer: a C peer for futex words in a POSIX shared memory object.
 * Word 0 of the object carries a token: the pinger stores odd tokens, the
 * ponger answers each with the next even one; each side sleeps in
 * futex(FUTEX_WAIT) (shared: no FUTEX_PRIVATE_FLAG) until the other wakes
 * it with futex(FUTEX_WAKE), after spinning SPIN loads first.
 *
 *   futexpeer pong NAME N SPIN   answer tokens 1, 3, ... 2N+1
 *   futexpeer ping NAME N SPIN   send them; prints ns per round trip of the
 *                                last N (the first waits for pong to start)
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* linux/futex.h; musl-gcc does not see the kernel's headers. */
#define FUTEX_WAIT 0
#define FUTEX_WAKE 1

static uint32_t *word;
static long spin;

static void wait_for(uint32_t want) {
	for (long i = 0;; i++) {
		uint32_t cur = __atomic_load_n(word, __ATOMIC_SEQ_CST);
		if (cur == want)
			return;
		if (i < spin)
			continue;
		if (syscall(SYS_futex, word, FUTEX_WAIT, cur, NULL, NULL, 0) != 0 &&
		    errno != EAGAIN && errno != EINTR) {
			perror("futex wait");
			exit(1);
		}
	}
}

static void send(uint32_t tok) {
	__atomic_store_n(word, tok, __ATOMIC_SEQ_CST);
	if (syscall(SYS_futex, word, FUTEX_WAKE, 1, NULL, NULL, 0) < 0) {
		perror("futex wake");
		exit(1);
	}
}

int main(int argc, char **argv) {
	if (argc != 5) {
		fprintf(stderr, "usage: futexpeer ping|pong NAME N SPIN\n");
		return 2;
	}
	int fd = shm_open(argv[2], O_RDWR, 0);
	if (fd < 0) { perror("shm_open"); return 1; }
	word = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (word == MAP_FAILED) { perror("mmap"); return 1; }
	long n = atol(argv[3]);
	spin = atol(argv[4]);
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (uint32_t i = 1; i <= n + 1; i++) {
		if (i == 2) /* the first round waits for the peer to start */
			clock_gettime(CLOCK_MONOTONIC, &t0);
		if (!strcmp(argv[1], "pong")) {
			wait_for(2 * i - 1);
			send(2 * i);
		} else {
			send(2 * i - 1);
			wait_for(2 * i);
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	if (!strcmp(argv[1], "ping"))
		printf("%.1f\n", ((t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec)) / n);
	return 0;
}
