//go:build linux && cgo

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

// The libc calls, as reported in a failure's upper bits, and three verdicts
// of the shim's own.
enum {
	GOSHM_OP_SHM_OPEN = 1,
	GOSHM_OP_FTRUNCATE,
	GOSHM_OP_FALLOCATE,
	GOSHM_OP_FSTAT,
	GOSHM_OP_MMAP,
	GOSHM_OP_MADVISE,
	GOSHM_OP_MSYNC,
	GOSHM_OP_MUNMAP,
	GOSHM_OP_CLOSE,
	GOSHM_OP_SHM_UNLINK,
	GOSHM_OP_LINK,
	GOSHM_OP_MINCORE,
	GOSHM_OP_NOTREG,  // fstat says the name is not a regular file (ENODEV)
	GOSHM_OP_TOOBIG,  // fstat says the object is larger than mmap can take (EFBIG)
	GOSHM_OP_TMPNAME, // the random temporary name exists: pick another (EEXIST)
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
	// With GOSHM_POPULATE: pre-fault for reading even where the mapping is
	// writable (file mappings: a write fault would dirty every page).
	GOSHM_POPULATE_READ = 1 << 5,
	// Behave as on a kernel without MADV_POPULATE_* (before 5.14): tests.
	GOSHM_NO_MADV_POPULATE = 1 << 6,
};

#define GOSHM_PARALLEL_MIN ((int64_t)64 << 20)

typedef struct {
	void *addr;    // the mapping, NULL when size is 0
	int64_t size;  // bytes mapped
	int fd;        // the object's descriptor (goshm_open), else -1
	int created;   // 1 when this call created the object
	int advice;    // MADV_POPULATE_* left to the caller (POPULATE_DEFER), or 0
	int pending;   // 1 when the new object still has only its temporary name
} goshm_result;

// goshm_open opens or creates the POSIX shared memory object name with
// shm_open(oflag | O_NONBLOCK, mode); anything but a regular file is
// refused (GOSHM_OP_NOTREG).
//
// A new object is published atomically: shm_open(name, O_RDONLY) first
// lets libc judge the name (and an existing object is EEXIST at once);
// then the object is made under tmp, a fresh name of the caller's, with
// shm_open(O_CREAT|O_EXCL), sized (fallocate reserves the pages unless
// GOSHM_SPARSE; ftruncate where the file system cannot reserve) and
// mapped, and only then linked (link(2)) to name in the directory libc
// uses, learnt once per process from /proc/self/fd; EEXIST if name is
// taken by then, as O_EXCL says. tmp is then removed with shm_unlink. A
// failure only ever removes tmp, a name nobody else knows. When populating
// is left to the caller (res->advice), publishing is too (res->pending):
// the caller calls goshm_publish, or shm_unlink(tmp) to give up.
//
// With O_CREAT but not O_EXCL it opens what exists, else creates, and
// reports in created which happened. An existing object is sized to size
// bytes with O_TRUNC, else its size comes from fstat and is never changed.
int goshm_open(const char *name, const char *tmp, int oflag, unsigned int mode,
               int64_t size, int flags, goshm_result *res);

// goshm_publish links the object fd, created under tmp, to name and
// removes tmp: the last step of goshm_open's atomic publish.
int goshm_publish(int fd, const char *tmp, const char *name);

// goshm_map maps length bytes (> 0) of the open regular file fd from
// offset off, which the caller has checked. The fd is not kept: res->fd
// is -1.
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

// goshm_fail encodes a failure: -(op << 16 | errno).
static inline int goshm_fail(int op, int err) { return -(op << 16 | err); }

// goshm_clear empties res: nothing mapped, fd -1.
static inline void goshm_clear(goshm_result *res) {
	*res = (goshm_result){.fd = -1};
}

// goshm_size makes the object fd size bytes long, reserving [from, size)
// with fallocate (EINTR retried with signals blocked) unless GOSHM_SPARSE;
// ftruncate where the file system cannot reserve.
int goshm_size(int fd, int64_t from, int64_t size, int flags);

#endif
