// stalepeer NAME ROUNDS: the common "remove stale, then create exclusively"
// loop of a C program, ROUNDS times on NAME. After each create it checks
// that the name still leads to its own object (same inode); if not,
// another process removed it. Prints "created N foreign M".
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

int main(int argc, char **argv) {
	if (argc != 3) {
		fprintf(stderr, "usage: stalepeer NAME ROUNDS\n");
		return 2;
	}
	const char *name = argv[1];
	long rounds = atol(argv[2]), created = 0, foreign = 0;
	char path[512];
	snprintf(path, sizeof path, "/dev/shm/%s", name + (name[0] == '/'));
	for (long i = 0; i < rounds; i++) {
		shm_unlink(name); // stale, from a crashed run
		int fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0600);
		if (fd < 0) {
			if (errno == EEXIST)
				continue;
			perror("shm_open");
			return 1;
		}
		created++;
		struct stat mine, named;
		fstat(fd, &mine);
		if (ftruncate(fd, 4096) != 0) {
			perror("ftruncate");
			return 1;
		}
		sched_yield();
		if (stat(path, &named) != 0 || named.st_ino != mine.st_ino)
			foreign++;
		close(fd);
	}
	shm_unlink(name);
	printf("created %ld foreign %ld\n", created, foreign);
	return 0;
}
