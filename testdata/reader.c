/* reader NAME: the classic POSIX reader. Opens the object with
 * O_CREAT|O_RDWR, sets the size itself, maps it, prints the string at its
 * start, unmaps and unlinks it. */
#include <fcntl.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

int main(int argc, char **argv) {
	const int SIZE = 4096;
	if (argc != 2) {
		fprintf(stderr, "usage: reader NAME\n");
		return 2;
	}
	int fd = shm_open(argv[1], O_CREAT | O_RDWR, 0600);
	if (fd < 0) { perror("shm_open"); return 1; }
	if (ftruncate(fd, SIZE) != 0) { perror("ftruncate"); return 1; }
	char *p = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) { perror("mmap"); return 1; }
	printf("%.*s", SIZE, p);
	munmap(p, SIZE);
	close(fd);
	if (shm_unlink(argv[1]) != 0) { perror("shm_unlink"); return 1; }
	return 0;
}
