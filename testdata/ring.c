/* ring: a C peer for the single-producer single-consumer ring of
 * ring_test.go, in a POSIX shared memory object laid out as
 *
 *   0     head   messages written (uint32, wraps)
 *   64    tail   messages read
 *   128   rwait  1 while the reader is about to sleep or asleep (futex word)
 *   192   wwait  1 while the writer is about to sleep or asleep (futex word)
 *   256   slots, 260 slot size (set by whoever created the object)
 *   4096  slots: a uint32 length, then the message from offset 8
 *
 * A side that finds the ring empty (reader) or full (writer) stores 1 in its
 * wait word, loads the other side's counter again, and only then sleeps in
 * futex(FUTEX_WAIT) on its wait word while it holds 1. The other side, after
 * storing its counter, exchanges the wait word for 0 and calls
 * futex(FUTEX_WAKE) only if it held 1: one wake per sleep, none while both
 * run. All accesses to the header are sequentially consistent (__atomic
 * builtins), which is what makes "store my word, load yours" on both sides
 * safe (Dekker). Futexes are shared: no FUTEX_PRIVATE_FLAG.
 *
 * The messages are a deterministic stream: lengths from a xorshift32 of the
 * seed, 1 .. slot size - 8, the last cut to the total; bytes at stream
 * position p are pat[p % PATN] from a xorshift64* of the seed.
 *
 *   ring write NAME TOTAL SEED   write TOTAL bytes of messages
 *   ring read NAME TOTAL SEED    read and verify them
 *
 * Both print "SLEEPS WAKES NS TIMEOUTS": how often this side announced a
 * sleep, how often it woke the other side, the nanoseconds the transfer took
 * (for the reader, from the first message on), and how often a sleep ended
 * by its 1 s bound instead of a wake-up.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* linux/futex.h; musl-gcc does not see the kernel's headers. */
#define FUTEX_WAIT 0
#define FUTEX_WAKE 1

enum { HEAD = 0, TAIL = 64 / 4, RWAIT = 128 / 4, WWAIT = 192 / 4, NSLOTS = 256 / 4, SLOTSIZE = 260 / 4 };
#define DATA 4096
#define PATN ((1 << 20) + 4093) /* not a multiple of anything in the ring */
#define PATEXT (64 << 10)       /* pat[PATN:] repeats its start: no split copies */

static uint32_t *hdr;
static unsigned char *data;
static uint32_t slots, slotsize;
static long sleeps, wakes, timeouts;

static uint32_t ld(int i) { return __atomic_load_n(&hdr[i], __ATOMIC_SEQ_CST); }
static void st(int i, uint32_t v) { __atomic_store_n(&hdr[i], v, __ATOMIC_SEQ_CST); }

static void die(const char *what) {
	perror(what);
	exit(1);
}

/* wait_while sleeps while header word w holds v, on the wait word flag. */
static void wait_while(int w, uint32_t v, int flag) {
	while (ld(w) == v) {
		st(flag, 1);
		sleeps++;
		if (ld(w) != v) {
			st(flag, 0);
			break;
		}
		/* Bounded: a wake-up that never comes (a bug on either side, or
		 * one the kernel loses) shows as a counted timeout, not a hang. */
		struct timespec limit = {1, 0};
		if (syscall(SYS_futex, &hdr[flag], FUTEX_WAIT, 1, &limit, NULL, 0) != 0) {
			if (errno == ETIMEDOUT)
				timeouts++;
			else if (errno != EAGAIN && errno != EINTR)
				die("futex wait");
		}
	}
}

/* wake wakes the other side if it announced a sleep. */
static void wake(int flag) {
	if (ld(flag) && __atomic_exchange_n(&hdr[flag], 0, __ATOMIC_SEQ_CST)) {
		if (syscall(SYS_futex, &hdr[flag], FUTEX_WAKE, 1, NULL, NULL, 0) < 0)
			die("futex wake");
		wakes++;
	}
}

static unsigned char *pattern(uint64_t seed) {
	unsigned char *p = malloc(PATN + PATEXT);
	if (!p)
		die("malloc");
	uint64_t x = 2 * seed + 1;
	for (int i = 0; i < PATN; i++) {
		x ^= x >> 12;
		x ^= x << 25;
		x ^= x >> 27;
		p[i] = (x * 0x2545F4914F6CDD1DULL) >> 56;
	}
	memcpy(p + PATN, p, PATEXT);
	return p;
}

static uint32_t lenstate;

static uint32_t next_len(uint64_t left) {
	uint32_t y = lenstate;
	y ^= y << 13;
	y ^= y >> 17;
	y ^= y << 5;
	lenstate = y;
	uint64_t n = 1 + y % (slotsize - 8);
	return n < left ? n : left;
}

int main(int argc, char **argv) {
	if (argc != 5) {
		fprintf(stderr, "usage: ring write|read NAME TOTAL SEED\n");
		return 2;
	}
	int fd = shm_open(argv[2], O_RDWR, 0);
	if (fd < 0)
		die("shm_open");
	struct stat st_;
	if (fstat(fd, &st_) < 0)
		die("fstat");
	hdr = mmap(NULL, st_.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (hdr == MAP_FAILED)
		die("mmap");
	close(fd);
	data = (unsigned char *)hdr + DATA;
	slots = ld(NSLOTS);
	slotsize = ld(SLOTSIZE);
	if (slots == 0 || slotsize <= 8 || slotsize - 8 > PATEXT ||
	    DATA + (uint64_t)slots * slotsize > (uint64_t)st_.st_size) {
		fprintf(stderr, "ring: bad header: %u slots of %u bytes in %lld\n", slots, slotsize, (long long)st_.st_size);
		return 1;
	}
	uint64_t total = strtoull(argv[3], NULL, 10), seed = strtoull(argv[4], NULL, 10);
	unsigned char *pat = pattern(seed);
	lenstate = (uint32_t)seed | 1;

	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	int writer = !strcmp(argv[1], "write");
	uint32_t pos = writer ? ld(HEAD) : ld(TAIL); /* my counter: only I store it */
	for (uint64_t p = 0; p < total;) {
		uint32_t n = next_len(total - p);
		unsigned char *slot = data + (size_t)(pos % slots) * slotsize;
		if (writer) {
			wait_while(TAIL, pos - slots, WWAIT); /* full */
			memcpy(slot + 8, pat + p % PATN, n);
			__atomic_store_n((uint32_t *)slot, n, __ATOMIC_RELAXED);
			st(HEAD, ++pos);
			wake(RWAIT);
		} else {
			wait_while(HEAD, pos, RWAIT); /* empty */
			if (p == 0) /* the clock starts at the first message, not the writer's exec */
				clock_gettime(CLOCK_MONOTONIC, &t0);
			uint32_t got = __atomic_load_n((uint32_t *)slot, __ATOMIC_RELAXED);
			if (got != n) {
				fprintf(stderr, "ring: message %u at byte %llu has length %u, want %u\n", pos, (unsigned long long)p, got, n);
				return 1;
			}
			if (memcmp(slot + 8, pat + p % PATN, n)) {
				fprintf(stderr, "ring: message %u at byte %llu: wrong content\n", pos, (unsigned long long)p);
				return 1;
			}
			st(TAIL, ++pos);
			wake(WWAIT);
		}
		p += n;
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	printf("%ld %ld %.0f %ld\n", sleeps, wakes, (t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec), timeouts);
	return 0;
}
