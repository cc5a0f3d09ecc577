/* fdname NAME: what /proc shows for an object libc created. It calls
 * shm_open(NAME, O_RDWR|O_CREAT|O_EXCL, 0600), ftruncate to 4096 and mmap,
 * then prints two lines: readlink of /proc/self/fd/N, and the path field of
 * the /proc/self/maps line of the mapping; then unmaps, closes and unlinks. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static void die(const char *what) {
	perror(what);
	exit(1);
}

int main(int argc, char **argv) {
	if (argc != 2) {
		fprintf(stderr, "usage: fdname NAME\n");
		return 2;
	}
	int fd = shm_open(argv[1], O_RDWR | O_CREAT | O_EXCL, 0600);
	if (fd < 0) die("shm_open");
	if (ftruncate(fd, 4096) != 0) die("ftruncate");
	void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) die("mmap");
	char proc[64], path[4096];
	snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
	ssize_t n = readlink(proc, path, sizeof path - 1);
	if (n < 0) die("readlink");
	path[n] = 0;
	printf("%s\n", path);
	FILE *f = fopen("/proc/self/maps", "r");
	if (f == NULL) die("maps");
	char line[8192];
	int found = 0;
	while (fgets(line, sizeof line, f) != NULL) {
		unsigned long lo, hi;
		int off = 0;
		if (sscanf(line, "%lx-%lx %*s %*s %*s %*s %n", &lo, &hi, &off) < 2)
			continue;
		if (lo == (uintptr_t)p) {
			line[strcspn(line, "\n")] = 0;
			printf("%s\n", line + off);
			found = 1;
		}
	}
	fclose(f);
	if (!found) die("no maps line");
	munmap(p, 4096);
	close(fd);
	if (shm_unlink(argv[1]) != 0) die("shm_unlink");
	return 0;
}
