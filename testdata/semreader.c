/* semreader NAME: the classic POSIX reader with a semaphore handshake.
 * Opens or creates the semaphore NAME-ready (count 0) and waits on it: the
 * writer posts once the object NAME holds its message. Then opens the
 * object, prints the string at its start, and unlinks both names. */
#include <errno.h>
#include <fcntl.h>
#include <semaphore.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

int main(int argc, char **argv) {
	const int SIZE = 4096;
	if (argc != 2) {
		fprintf(stderr, "usage: semreader NAME\n");
		return 2;
	}
	char sem[256];
	snprintf(sem, sizeof sem, "%s-ready", argv[1]); /* musl keeps semaphores beside the objects */
	sem_t *ready = sem_open(sem, O_CREAT, 0600, 0);
	if (ready == SEM_FAILED) { perror("sem_open"); return 1; }
	while (sem_wait(ready) != 0) {
		if (errno != EINTR) { perror("sem_wait"); return 1; }
	}
	int fd = shm_open(argv[1], O_RDWR, 0);
	if (fd < 0) { perror("shm_open"); return 1; }
	char *p = mmap(NULL, SIZE, PROT_READ, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) { perror("mmap"); return 1; }
	printf("%.*s", SIZE, p);
	munmap(p, SIZE);
	close(fd);
	sem_close(ready);
	if (shm_unlink(argv[1]) != 0) { perror("shm_unlink"); return 1; }
	if (sem_unlink(sem) != 0) { perror("sem_unlink"); return 1; }
	return 0;
}
