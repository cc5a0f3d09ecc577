/* sempeer: a C peer for named POSIX semaphores, calling libc's sem_open
 * family directly.
 *
 *   sempeer pong A B N       N+1 times: sem_wait(A), sem_post(B)
 *   sempeer ping A B N       N+1 round trips sem_post(A), sem_wait(B); prints
 *                            ns each of the last N (the first waits for pong)
 *   sempeer uncontended S N  N times sem_post(S), sem_wait(S); prints ns each
 *   sempeer take S N         N times sem_wait(S), then prints "took N"
 *   sempeer create S         creates S (O_CREAT|O_EXCL, 0600, 0), prints "ready",
 *                            sem_wait(S), prints "got", closes and unlinks it
 *   sempeer names HEX...     per name: "<sem_unlink errno> <sem_open errno>
 *                            <sem_unlink errno after>" (sem_open is
 *                            O_CREAT|O_EXCL, 0600, 0; after is -1 if it failed)
 */
#include <errno.h>
#include <fcntl.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static sem_t *open1(const char *name) {
	sem_t *s = sem_open(name, 0);
	if (s == SEM_FAILED) {
		perror("sem_open");
		exit(1);
	}
	return s;
}

static void wait1(sem_t *s) {
	while (sem_wait(s) != 0) {
		if (errno != EINTR) {
			perror("sem_wait");
			exit(1);
		}
	}
}

static void post1(sem_t *s) {
	if (sem_post(s) != 0) {
		perror("sem_post");
		exit(1);
	}
}

static double now(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static char *unhex(const char *h) {
	size_t n = strlen(h) / 2;
	char *s = malloc(n + 1);
	for (size_t i = 0; i < n; i++) {
		unsigned v;
		sscanf(h + 2 * i, "%2x", &v);
		s[i] = (char)v;
	}
	s[n] = 0;
	return s;
}

int main(int argc, char **argv) {
	if (argc >= 5 && (!strcmp(argv[1], "pong") || !strcmp(argv[1], "ping"))) {
		sem_t *a = open1(argv[2]), *b = open1(argv[3]);
		long n = atol(argv[4]);
		double start = now();
		/* One more round than N: the first, untimed, waits for the peer to start. */
		for (long i = -1; i < n; i++) {
			if (i == 0)
				start = now();
			if (argv[1][1] == 'o') { /* pong */
				wait1(a);
				post1(b);
			} else {
				post1(a);
				wait1(b);
			}
		}
		if (argv[1][1] == 'i')
			printf("%.1f\n", (now() - start) / n);
		return 0;
	}
	if (argc == 4 && !strcmp(argv[1], "uncontended")) {
		sem_t *s = open1(argv[2]);
		long n = atol(argv[3]);
		double start = now();
		for (long i = 0; i < n; i++) {
			post1(s);
			wait1(s);
		}
		printf("%.1f\n", (now() - start) / n);
		return 0;
	}
	if (argc == 4 && !strcmp(argv[1], "take")) {
		sem_t *s = open1(argv[2]);
		long n = atol(argv[3]);
		for (long i = 0; i < n; i++)
			wait1(s);
		printf("took %ld\n", n);
		return 0;
	}
	if (argc == 3 && !strcmp(argv[1], "create")) {
		sem_t *s = sem_open(argv[2], O_CREAT | O_EXCL, 0600, 0);
		if (s == SEM_FAILED) {
			perror("sem_open");
			return 1;
		}
		printf("ready\n");
		fflush(stdout);
		wait1(s);
		printf("got\n");
		sem_close(s);
		if (sem_unlink(argv[2]) != 0) {
			perror("sem_unlink");
			return 1;
		}
		return 0;
	}
	if (argc >= 2 && !strcmp(argv[1], "names")) {
		for (int i = 2; i < argc; i++) {
			char *name = unhex(argv[i]);
			int before = sem_unlink(name) == 0 ? 0 : errno;
			sem_t *s = sem_open(name, O_CREAT | O_EXCL, 0600, 0);
			int open_errno = s != SEM_FAILED ? 0 : errno, after = -1;
			if (s != SEM_FAILED) {
				sem_close(s);
				after = sem_unlink(name) == 0 ? 0 : errno;
			}
			printf("%d %d %d\n", before, open_errno, after);
			free(name);
		}
		return 0;
	}
	fprintf(stderr, "usage: see the comment at the top of sempeer.c\n");
	return 2;
}
