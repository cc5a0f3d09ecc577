/* names HEX...: for each name (hex-encoded, so any bytes pass), what libc
 * says of it. Prints one line per name:
 *
 *   <shm_unlink errno before> <shm_open errno> <shm_unlink errno after>
 *
 * shm_open is O_RDWR|O_CREAT|O_EXCL, 0600, as shm.Create calls it; an
 * object it makes is closed and unlinked ("after"), otherwise "after" is
 * -1. 0 means success. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

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
	for (int i = 1; i < argc; i++) {
		char *name = unhex(argv[i]);
		int before = shm_unlink(name) == 0 ? 0 : errno;
		int fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0600);
		int open_errno = fd >= 0 ? 0 : errno, after = -1;
		if (fd >= 0) {
			close(fd);
			after = shm_unlink(name) == 0 ? 0 : errno;
		}
		printf("%d %d %d\n", before, open_errno, after);
		free(name);
	}
	return 0;
}
