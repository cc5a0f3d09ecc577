//go:build linux && cgo

// The shim's lifecycle calls: stat, permissions, owner and
// resizing of shared memory objects. Conventions as in shm.h: each
// goshm_ function is one whole operation in one cgo crossing, returning 0
// or -(op << 16 | errno); these ops are numbered from 64 so that they never
// collide with other files' ops. None touches mapped memory.

#ifndef GOSHM_LIFECYCLE_H
#define GOSHM_LIFECYCLE_H

#include <stdint.h>

#include "shm.h"

enum {
	GOSHM_OP_FCHMOD = 64,
	GOSHM_OP_FCHOWN,
	GOSHM_OP_MREMAP,
};

// The fields of struct stat the Go side needs, in a layout fixed for every
// C library and architecture (musl's and glibc's struct stat differ on
// 386).
typedef struct {
	uint64_t dev, ino, nlink, rdev;
	uint32_t mode, uid, gid;
	int64_t size, blksize, blocks;
	int64_t atime_sec, atime_nsec, mtime_sec, mtime_nsec, ctime_sec, ctime_nsec;
} goshm_stat;

// goshm_stat_name is shm_open(name, O_RDONLY|O_NONBLOCK), fstat and close:
// it never creates and never blocks. Anything but a regular file is
// GOSHM_OP_NOTREG, as for goshm_open.
int goshm_stat_name(const char *name, goshm_stat *st);

// goshm_fstat is fstat(fd).
int goshm_fstat(int fd, goshm_stat *st);

// goshm_fchmod is fchmod(fd, mode); goshm_fchown is fchown(fd, uid, gid).
int goshm_fchmod(int fd, unsigned int mode);
int goshm_fchown(int fd, int64_t uid, int64_t gid);

// goshm_resize changes the object fd to size bytes (size < 0: leaves it as
// fstat finds it, for Remap) and remaps the mapping addr of oldlen bytes
// (addr 0 when nothing is mapped) to the object's new size; res gets the
// new mapping (addr NULL when the size is 0). flags are GOSHM_RDONLY and
// GOSHM_PRIVATE, as the mapping was made; the caller refuses to resize
// through a read-only mapping.
//
// Growing reserves the new range first (fallocate of [old, size) only,
// EINTR retried with signals blocked), so a full file system is ENOSPC
// and leaves the object unchanged; where the file system cannot reserve,
// ftruncate. The mapping is grown (mremap MREMAP_MAYMOVE) before the
// object, and shrunk back if the object cannot grow. Shrinking is
// ftruncate, then mremap. On failure res is the mapping as it then is
// (it may have moved).
int goshm_resize(int fd, uintptr_t addr, int64_t oldlen, int64_t size, int flags, goshm_result *res);

#endif
