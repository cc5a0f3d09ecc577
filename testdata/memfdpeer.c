/* memfdpeer [shrink]: a C peer handed a shared memory object's descriptor
 * at fd 3 (exec.Cmd's ExtraFiles), as any C program that inherits one.
 * It maps the whole object (size from fstat), prints the NUL-terminated
 * message at its start, writes an answer at offset 512, prints the seals,
 * and with "shrink" tries to shrink the object to half its size and to
 * grow it to twice, printing what ftruncate said ("ok", "EPERM", or the
 * error), then the size fstat gives afterwards. Exit 0 unless a step
 * other than the two ftruncates failed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef F_GET_SEALS
#define F_GET_SEALS 1034
#endif

static const char *verdict(int r) {
	if (r == 0)
		return "ok";
	return errno == EPERM ? "EPERM" : strerror(errno);
}

int main(int argc, char **argv) {
	struct stat st;
	if (fstat(3, &st) != 0) {
		perror("fstat fd 3");
		return 1;
	}
	char *p = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, 3, 0);
	if (p == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	printf("size %lld read \"%s\"\n", (long long)st.st_size, p);
	snprintf(p + 512, 128, "C child %d got: %s", (int)getpid(), p);
	printf("seals %#x\n", fcntl(3, F_GET_SEALS));
	if (argc > 1 && strcmp(argv[1], "shrink") == 0) {
		printf("ftruncate %lld: %s\n", (long long)st.st_size / 2, verdict(ftruncate(3, st.st_size / 2)));
		printf("ftruncate %lld: %s\n", (long long)st.st_size * 2, verdict(ftruncate(3, st.st_size * 2)));
		struct stat after;
		fstat(3, &after);
		printf("size after %lld\n", (long long)after.st_size);
	}
	munmap(p, (size_t)st.st_size);
	return 0;
}
