/* semwriter NAME MESSAGE: the classic POSIX writer with a semaphore
 * handshake instead of a sleep. Opens or creates the semaphore NAME-ready
 * (count 0), creates the object NAME, sizes it to one page, copies MESSAGE
 * in with its NUL, and then posts: the reader waits on the semaphore, so it
 * never reads too early, however the two are scheduled. */
#include <fcntl.h>
#include <semaphore.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int main(int argc, char **argv) {
	const int SIZE = 4096;
	if (argc != 3) {
		fprintf(stderr, "usage: semwriter NAME MESSAGE\n");
		return 2;
	}
	char sem[256];
	snprintf(sem, sizeof sem, "%s-ready", argv[1]); /* musl keeps semaphores beside the objects */
	sem_t *ready = sem_open(sem, O_CREAT, 0600, 0);
	if (ready == SEM_FAILED) { perror("sem_open"); return 1; }
	int fd = shm_open(argv[1], O_CREAT | O_RDWR, 0600);
	if (fd < 0) { perror("shm_open"); return 1; }
	if (ftruncate(fd, SIZE) != 0) { perror("ftruncate"); return 1; }
	char *p = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) { perror("mmap"); return 1; }
	memcpy(p, argv[2], strlen(argv[2]) + 1);
	munmap(p, SIZE);
	close(fd);
	if (sem_post(ready) != 0) { perror("sem_post"); return 1; }
	sem_close(ready);
	return 0;
}
