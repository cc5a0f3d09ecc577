//go:build linux && cgo

// The shim's lifecycle call: resizing an object and its mapping in one
// crossing. Conventions as in shm.h. (Stat, Chmod and Chown are single
// kernel calls, made from Go.)

#ifndef GOSHM_LIFECYCLE_H
#define GOSHM_LIFECYCLE_H

#include <stdint.h>

#include "shm.h"

// The outcome of goshm_resize.
typedef struct {
	void *addr;     // the whole mapping afterwards (NULL: nothing mapped)
	int64_t maplen; // its length, at least size: the tail past size is mapped too
	int64_t size;   // the object's size as this mapping now covers it; -1: fstat failed, nothing changed
	int moved;      // 1: the mapping moved and the old one was left in place
} goshm_resized;

// goshm_resize changes the object fd to size bytes (size < 0: leaves it as
// fstat finds it, for Remap) and makes the mapping cover the object's new
// size. addr and maplen are the whole current mapping (0 and 0 for none);
// flags are GOSHM_RDONLY and GOSHM_PRIVATE, as the mapping was made; the
// caller refuses to resize through a read-only mapping.
//
// No address the mapping covered is ever unmapped here, so a stale pointer
// into it never reaches memory mapped later: a shrink keeps the tail
// mapped (touching it past the object's end is SIGBUS, as for any mapping
// beyond EOF). A grow that the mapping does not cover makes it twice the
// new size (in whole pages; the new size itself where twice does not fit),
// the part past the object's end mapped beyond EOF like a shrunk tail, so
// that the grows after it, this process's and those Remap follows, need no
// new mapping until the object doubles: the address space stays within a
// few times the object's size and the mappings of one object O(log) of its
// growth. That mapping is made in place (mremap without MREMAP_MAYMOVE)
// where the address space after it is free. Otherwise it is made elsewhere
// and the old one is left in place, still mapping the same object
// (shared: mmap of fd again; private: mremap(MREMAP_MAYMOVE|
// MREMAP_DONTUNMAP), which moves this process's private pages and leaves
// the old range mapping the file; where the kernel refuses that, before
// 5.13, mremap(MREMAP_MAYMOVE) and the object mapped over the old range
// again at once, MAP_FIXED_NOREPLACE), and res->moved tells the caller to
// unmap it at Close.
//
// Growing maps first, then reserves the new range only (fallocate of
// [old, size), EINTR retried with signals blocked), so a full file system
// is ENOSPC and leaves the object unchanged; where the file system cannot
// reserve, ftruncate. Shrinking is ftruncate. res says what is mapped
// afterwards, failed or not.
int goshm_resize(int fd, uintptr_t addr, int64_t maplen, int64_t size, int flags, goshm_resized *res);

#endif
