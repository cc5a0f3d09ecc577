// The C shim of github.com/posixshm/shm.
//
// Each goshm_ function does one whole operation in one cgo crossing and
// returns 0, or -(GOSHM_OP_* << 16 | errno) naming the libc call that failed
// and its errno, so the caller never reads the global errno. None touches
// mapped memory: a fault inside C could not be recovered by Go.

#ifndef GOSHM_H
#define GOSHM_H

#include <stddef.h>
#include <stdint.h>

// The libc calls, as reported in a failure's upper bits.
enum {
	GOSHM_OP_NONE = 0,
	GOSHM_OP_SHM_OPEN,
	GOSHM_OP_FTRUNCATE,
	GOSHM_OP_FALLOCATE,
	GOSHM_OP_FSTAT,
	GOSHM_OP_MMAP,
	GOSHM_OP_MADVISE,
	GOSHM_OP_MSYNC,
	GOSHM_OP_MUNMAP,
	GOSHM_OP_CLOSE,
	GOSHM_OP_SHM_UNLINK,
};

// Flags for goshm_open and goshm_map.
enum {
	GOSHM_RDONLY = 1 << 0,   // PROT_READ only
	GOSHM_PRIVATE = 1 << 1,  // MAP_PRIVATE instead of MAP_SHARED
	GOSHM_SPARSE = 1 << 2,   // ftruncate only, no fallocate reservation
	GOSHM_POPULATE = 1 << 3, // pre-fault the mapping
	// With GOSHM_POPULATE: a mapping of GOSHM_PARALLEL_MIN bytes or more
	// is left for the caller to populate in parallel with goshm_populate
	// (res->advice says how), once madvise is known to work on it.
	GOSHM_POPULATE_DEFER = 1 << 4,
};

#define GOSHM_PARALLEL_MIN ((int64_t)64 << 20)

typedef struct {
	void *addr;    // the mapping, NULL when size is 0
	int64_t size;  // bytes mapped
	int fd;        // the object's descriptor (goshm_open), else -1
	int created;   // 1 when this call created the object
	int advice;    // MADV_POPULATE_* left to the caller (POPULATE_DEFER), or 0
} goshm_result;

// goshm_open opens or creates the POSIX shared memory object name with
// shm_open(oflag, mode). When it creates the object (or oflag has O_TRUNC)
// it sizes it to size bytes: fallocate reserves the pages unless
// GOSHM_SPARSE, falling back to ftruncate where the file system cannot
// reserve. Otherwise the size comes from fstat and is never changed. It then
// maps the object. With O_CREAT but not O_EXCL it reports in created whether
// it made the object. If a step after shm_open fails it closes the fd and
// unlinks the object only if this call created it.
int goshm_open(const char *name, int oflag, unsigned int mode, int64_t size,
               int flags, goshm_result *res);

// goshm_map maps length bytes of the open file fd from offset off (page
// aligned); length 0 means up to the end of the file. A range beyond the end
// of the file is EINVAL before mmap. The fd is not kept: res->fd is -1.
int goshm_map(int fd, int64_t off, int64_t length, int flags, goshm_result *res);

// goshm_populate is madvise(addr, length, advice), retried on EINTR: one
// slice of a deferred populate.
int goshm_populate(uintptr_t addr, int64_t length, int advice);

// goshm_close unmaps addr (if not 0) and closes fd (if >= 0). Both are
// attempted; the first failure is returned. Addresses cross as integers:
// they are never Go memory, so cgo need not check them.
int goshm_close(uintptr_t addr, int64_t size, int fd);

// goshm_msync is msync(addr, length, flags).
int goshm_msync(uintptr_t addr, int64_t length, int flags);

// goshm_unlink is shm_unlink(name).
int goshm_unlink(const char *name);

#endif
