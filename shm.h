//go:build linux && cgo

// The C shim of github.com/posixshm/shm: primitives, no policy.
//
// Each goshm_ function does one whole operation in one cgo crossing and
// returns 0 (or a count), or -(GOSHM_OP_* << 16 | errno) naming the libc
// call that failed and its errno, so the caller never reads the global
// errno. None retries a whole operation, picks a name or decides what an
// error means: that is the Go side's (shm.go). None touches mapped memory:
// a fault inside C could not be recovered by Go.
//
// The files: shm.c (objects and mappings), lifecycle.c (resizing), memfd.c
// (anonymous objects and seals), sem.c (named semaphores).

#ifndef GOSHM_H
#define GOSHM_H

#include <stddef.h>
#include <stdint.h>

// The libc calls, as reported in a failure's upper bits: one numbering for
// every file of the shim, mirrored once in Go (opNames in shm_cgo.go).
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
	GOSHM_OP_MINCORE,
	GOSHM_OP_LINK,
	GOSHM_OP_MREMAP,
	GOSHM_OP_MEMFD_CREATE,
	GOSHM_OP_FCNTL,
	GOSHM_OP_SEM_OPEN,
	GOSHM_OP_SEM_CLOSE,
	GOSHM_OP_SEM_UNLINK,
	GOSHM_OP_SEM_POST,
	GOSHM_OP_SEM_TRYWAIT,
	GOSHM_OP_SEM_GETVALUE,
	GOSHM_OP_RENAMEAT2,
	GOSHM_OP_COUNT,
};

// Flags for the calls that map.
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
	// Behave as with a C library that lacks memfd_create: tests.
	GOSHM_NO_MEMFD = 1 << 7,
	// Behave as on a kernel without MREMAP_DONTUNMAP for file mappings
	// (before 5.13): tests.
	GOSHM_NO_DONTUNMAP = 1 << 8,
};

#define GOSHM_PARALLEL_MIN ((int64_t)64 << 20)

typedef struct {
	void *addr;    // the mapping, NULL when size is 0
	int64_t size;  // bytes mapped
	int fd;        // the object's descriptor, else -1
	int created;   // 1 when this call made the object (goshm_create: even on failure)
	int advice;    // MADV_POPULATE_* left to the caller (POPULATE_DEFER), or 0
} goshm_result;

// goshm_shm_open is shm_open(name, oflag | O_NONBLOCK, mode): the
// descriptor, or a failure.
int goshm_shm_open(const char *name, int oflag, unsigned int mode);

// goshm_create makes a new object under name with shm_open(name,
// O_RDWR|O_CREAT|O_EXCL|O_NONBLOCK, mode), sizes it (goshm_size) and maps
// it (goshm_map's flags). When shm_open succeeded but sizing or mapping
// failed, nothing is mapped, res->created is 1 and res->fd is the object's
// descriptor, still open: the caller decides what becomes of the name.
int goshm_create(const char *name, unsigned int mode, int64_t size, int flags, goshm_result *res);

// goshm_open opens the existing object name with shm_open(oflag |
// O_NONBLOCK), which must not hold O_CREAT, and maps it: sized to size
// bytes with O_TRUNC, else as long as fstat says (never changed).
// Anything but a regular file is refused (ENODEV, reported as shm_open's).
// On failure nothing is left open.
int goshm_open(const char *name, int oflag, int64_t size, int flags, goshm_result *res);

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

// goshm_link is link(from, to) and then, once it succeeded, shm_unlink(tmp)
// (whose failure is ignored: only ENOENT, someone removed tmp, is
// possible): a new object made under tmp, whose path is from, gets the
// path to. A failure of link is returned as is.
int goshm_link(const char *from, const char *to, const char *tmp);

// goshm_rename_noreplace is renameat2(AT_FDCWD, from, AT_FDCWD, to,
// RENAME_NOREPLACE) (Linux 3.15): EEXIST when to exists, whatever it is;
// ENOSYS where the C headers know no renameat2. The system call itself:
// musl has no wrapper, glibc only from 2.28, Go's syscall package none.
int goshm_rename_noreplace(const char *from, const char *to);

// goshm_fail encodes a failure: -(op << 16 | errno).
static inline int goshm_fail(int op, int err) { return -(op << 16 | err); }

// goshm_clear empties res: nothing mapped, fd -1.
static inline void goshm_clear(goshm_result *res) {
	*res = (goshm_result){.fd = -1};
}

// goshm_prot and goshm_mflags are mmap's prot and flags for GOSHM_* flags.
int goshm_prot(int flags);
int goshm_mflags(int flags);

// goshm_measure is fstat(fd) of an object to be mapped whole: its size in
// *size, ENODEV (reported as shm_open's) for anything but a regular file,
// EFBIG (reported as fstat's) for a size larger than mmap can take.
int goshm_measure(int fd, int64_t *size);

// goshm_size makes the object fd size bytes long, reserving [from, size)
// with fallocate (EINTR retried with signals blocked) unless GOSHM_SPARSE;
// ftruncate where GOSHM_SPARSE or where the file system cannot reserve.
int goshm_size(int fd, int64_t from, int64_t size, int flags);

#endif
