/* writer NAME MESSAGE: the classic POSIX writer. Creates (or opens) the
 * object, sizes it to one page, maps it, copies MESSAGE in with its NUL,
 * unmaps. The reader unlinks it. */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int main(int argc, char **argv) {
	const int SIZE = 4096;
	if (argc != 3) {
		fprintf(stderr, "usage: writer NAME MESSAGE\n");
		return 2;
	}
	int fd = shm_open(argv[1], O_CREAT | O_RDWR, 0600);
	if (fd < 0) { perror("shm_open"); return 1; }
	if (ftruncate(fd, SIZE) != 0) { perror("ftruncate"); return 1; }
	char *p = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) { perror("mmap"); return 1; }
	memcpy(p, argv[2], strlen(argv[2]) + 1);
	munmap(p, SIZE);
	close(fd);
	return 0;
}
