//go:build linux && cgo

// The shim's lifecycle call: resizing an object and its mapping in one
// crossing. Conventions as in shm.h. (Stat, Chmod and Chown are single
// kernel calls, made from Go.)

#ifndef GOSHM_LIFECYCLE_H
#define GOSHM_LIFECYCLE_H

#include <stdint.h>

#include "shm.h"

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
