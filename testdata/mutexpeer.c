/* mutexpeer: a C peer for shm.Mutex, through c/shmmutex.h, on the lock at
 * offset 0 of a POSIX shared memory object; the counter is the plain
 * (non-atomic) 64-bit integer at offset 64.
 *
 *   mutexpeer count NAME N     adds 1 to the word at 132 ("ready"), waits
 *                              for the word at 128 ("go") to be nonzero,
 *                              then N times: lock, counter++ (slowly),
 *                              unlock; prints "ownerdead K" for K
 *                              EOWNERDEADs, then "done", and exits at
 *                              the end of its standard input
 *   mutexpeer hold NAME        lock, print "locked", sleep until killed
 *   mutexpeer lock NAME MS     shmmutex_lock(MS); print its result as a
 *                              name (ok, EOWNERDEAD, ETIMEDOUT, ...) and
 *                              the counter, then unlock if it took the lock
 *   mutexpeer misuse NAME      unlock a free lock (EPERM), trylock (ok),
 *                              trylock again (EBUSY), unlock twice (ok, EPERM)
 *   mutexpeer bench NAME N     N uncontended lock+unlock; prints ns/op
 */
#include "../c/shmmutex.h"

#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/mman.h>

static const char *errname(int e) {
	switch (e) {
	case 0: return "ok";
	case EOWNERDEAD: return "EOWNERDEAD";
	case ETIMEDOUT: return "ETIMEDOUT";
	case EBUSY: return "EBUSY";
	case EPERM: return "EPERM";
	case EINVAL: return "EINVAL";
	case ENOENT: return "ENOENT";
	case EPROTO: return "EPROTO";
	}
	return strerror(e);
}

int main(int argc, char **argv) {
	if (argc < 3) {
		fprintf(stderr, "usage: mutexpeer count|hold|lock|misuse|bench NAME [N|MS]\n");
		return 2;
	}
	int fd = shm_open(argv[2], O_RDWR, 0);
	if (fd < 0) {
		perror("shm_open");
		return 1;
	}
	char *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	void *m = p;
	volatile uint64_t *counter = (volatile uint64_t *)(p + 64);
	setvbuf(stdout, NULL, _IONBF, 0);
	const char *cmd = argv[1];
	if (!strcmp(cmd, "count") && argc == 4) {
		long n = atol(argv[3]), dead = 0;
		__atomic_add_fetch((uint32_t *)(p + 132), 1, __ATOMIC_SEQ_CST);
		while (!__atomic_load_n((uint32_t *)(p + 128), __ATOMIC_SEQ_CST))
			sched_yield();
		for (long i = 0; i < n; i++) {
			int r = shmmutex_lock(m, -1);
			if (r == EOWNERDEAD)
				dead++;
			else if (r) {
				printf("lock: %s\n", errname(r));
				return 1;
			}
			uint64_t c = *counter;
			for (volatile int k = 0; k < 1000; k++) /* longer than a futex call takes to sleep */
				;
			*counter = c + 1;
			if ((r = shmmutex_unlock(m))) {
				printf("unlock: %s\n", errname(r));
				return 1;
			}
		}
		printf("ownerdead %ld\ndone\n", dead);
		while (getchar() != EOF) /* stay alive (and registered) until told */
			;
	} else if (!strcmp(cmd, "hold")) {
		int r = shmmutex_lock(m, -1);
		printf("locked %s\n", errname(r));
		for (;;)
			pause();
	} else if (!strcmp(cmd, "lock") && argc == 4) {
		int r = shmmutex_lock(m, atoi(argv[3]));
		printf("%s %llu\n", errname(r), (unsigned long long)*counter);
		if (r == 0 || r == EOWNERDEAD) {
			*counter = *counter + 1;
			if ((r = shmmutex_unlock(m)))
				printf("unlock: %s\n", errname(r));
		}
	} else if (!strcmp(cmd, "misuse")) {
		printf("%s", errname(shmmutex_unlock(m)));
		printf(" %s", errname(shmmutex_trylock(m)));
		printf(" %s", errname(shmmutex_trylock(m)));
		printf(" %s", errname(shmmutex_unlock(m)));
		printf(" %s\n", errname(shmmutex_unlock(m)));
	} else if (!strcmp(cmd, "bench") && argc == 4) {
		long n = atol(argv[3]);
		struct timespec a, b;
		shmmutex_lock(m, -1); /* registers */
		shmmutex_unlock(m);
		clock_gettime(CLOCK_MONOTONIC, &a);
		for (long i = 0; i < n; i++) {
			shmmutex_lock(m, -1);
			shmmutex_unlock(m);
		}
		clock_gettime(CLOCK_MONOTONIC, &b);
		printf("%.2f\n", ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / n);
	} else {
		fprintf(stderr, "mutexpeer: bad arguments\n");
		return 2;
	}
	return 0;
}
