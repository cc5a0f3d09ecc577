/* bench OP NAME N: the package's operations done by C calling libc
 * directly, the physical limit for these semantics. Prints ns per
 * operation, timed around the loop only.
 *
 *   create  shm_open(O_RDWR|O_CREAT|O_EXCL, 0600), fallocate 4096, mmap,
 *           touch a byte, munmap, close, shm_unlink   (shm.Create cycle)
 *   publish the same object made as shm.Create makes it, published
 *           atomically: shm_open(NAME, O_RDONLY) (fails: ENOENT),
 *           shm_open(TMP, O_RDWR|O_CREAT|O_EXCL, 0600), fallocate, mmap,
 *           link(/dev/shm/TMP, /dev/shm/NAME), shm_unlink(TMP), touch,
 *           munmap, close, shm_unlink(NAME)
 *   rename  as publish, but renameat2(/dev/shm/TMP, /dev/shm/NAME,
 *           RENAME_NOREPLACE) instead of link + shm_unlink(TMP): the
 *           sequence shm.Create makes now
 *   open    shm_open(O_RDWR), fstat, mmap, touch, munmap, close of an
 *           existing 4096-byte object NAME            (shm.Open cycle)
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static long long now(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void die(const char *what) {
	perror(what);
	exit(1);
}

int main(int argc, char **argv) {
	if (argc != 4) {
		fprintf(stderr, "usage: bench create|publish|rename|open NAME N\n");
		return 2;
	}
	const char *op = argv[1], *name = argv[2];
	long n = atol(argv[3]);
	char tmp[300], from[320], to[320];
	snprintf(tmp, sizeof tmp, "%s.~tmp", name);
	snprintf(from, sizeof from, "/dev/shm/%s", tmp + (tmp[0] == '/'));
	snprintf(to, sizeof to, "/dev/shm/%s", name + (name[0] == '/'));
	long long t0 = now();
	for (long i = 0; i < n; i++) {
		if (strcmp(op, "create") == 0) {
			int fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0600);
			if (fd < 0) die("shm_open");
			if (fallocate(fd, 0, 0, 4096) != 0) die("fallocate");
			volatile char *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
			if (p == MAP_FAILED) die("mmap");
			p[0] = 1;
			munmap((void *)p, 4096);
			close(fd);
			if (shm_unlink(name) != 0) die("shm_unlink");
		} else if (strcmp(op, "publish") == 0) {
			int fd = shm_open(name, O_RDONLY | O_NONBLOCK, 0);
			if (fd >= 0) die("exists");
			fd = shm_open(tmp, O_RDWR | O_CREAT | O_EXCL | O_NONBLOCK, 0600);
			if (fd < 0) die("shm_open");
			if (fallocate(fd, 0, 0, 4096) != 0) die("fallocate");
			volatile char *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
			if (p == MAP_FAILED) die("mmap");
			if (link(from, to) != 0) die("link");
			if (shm_unlink(tmp) != 0) die("shm_unlink tmp");
			p[0] = 1;
			munmap((void *)p, 4096);
			close(fd);
			if (shm_unlink(name) != 0) die("shm_unlink");
		} else if (strcmp(op, "rename") == 0) {
			int fd = shm_open(name, O_RDONLY | O_NONBLOCK, 0);
			if (fd >= 0) die("exists");
			fd = shm_open(tmp, O_RDWR | O_CREAT | O_EXCL | O_NONBLOCK, 0600);
			if (fd < 0) die("shm_open");
			if (fallocate(fd, 0, 0, 4096) != 0) die("fallocate");
			volatile char *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
			if (p == MAP_FAILED) die("mmap");
			if (syscall(SYS_renameat2, AT_FDCWD, from, AT_FDCWD, to, 1 /* RENAME_NOREPLACE */) != 0) die("renameat2");
			p[0] = 1;
			munmap((void *)p, 4096);
			close(fd);
			if (shm_unlink(name) != 0) die("shm_unlink");
		} else if (strcmp(op, "open") == 0) {
			int fd = shm_open(name, O_RDWR, 0);
			if (fd < 0) die("shm_open");
			struct stat st;
			if (fstat(fd, &st) != 0) die("fstat");
			volatile char *p = mmap(NULL, st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
			if (p == MAP_FAILED) die("mmap");
			p[0]++;
			munmap((void *)p, st.st_size);
			close(fd);
		} else {
			fprintf(stderr, "unknown op %s\n", op);
			return 2;
		}
	}
	printf("%.1f\n", (double)(now() - t0) / n);
	return 0;
}
