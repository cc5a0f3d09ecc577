//go:build linux && cgo

package shm

// This is the only file that imports "C": thin wrappers over the shim (shm.c,
// sem.c, memfd.c, lifecycle.c), each one cgo crossing, turning its failures
// into *fs.PathError.

/*
#cgo CFLAGS: -O2 -Wall -D_FILE_OFFSET_BITS=64
#cgo LDFLAGS: -lrt
#cgo noescape goshm_open
#cgo nocallback goshm_open
#cgo noescape goshm_publish
#cgo nocallback goshm_publish
#cgo noescape goshm_map
#cgo nocallback goshm_map
#cgo nocallback goshm_populate
#cgo nocallback goshm_close
#cgo nocallback goshm_msync
#cgo noescape goshm_unlink
#cgo nocallback goshm_unlink
#include "shm.h"
#cgo noescape goshm_stat_name
#cgo nocallback goshm_stat_name
#cgo noescape goshm_fstat
#cgo nocallback goshm_fstat
#cgo nocallback goshm_fchmod
#cgo nocallback goshm_fchown
#cgo noescape goshm_resize
#cgo nocallback goshm_resize
#include "lifecycle.h"
// Named semaphores (sem.h; semaphore.go).
#cgo noescape goshm_sem_open
#cgo nocallback goshm_sem_open
#cgo noescape goshm_sem_unlink
#cgo nocallback goshm_sem_unlink
#cgo noescape goshm_sem_getvalue
#cgo nocallback goshm_sem_getvalue
#cgo nocallback goshm_sem_close
#cgo nocallback goshm_sem_post
#cgo nocallback goshm_sem_trywait
#cgo nocallback goshm_sem_wait
#include "sem.h"
#cgo noescape goshm_memfd
#cgo nocallback goshm_memfd
#cgo nocallback goshm_seals
#cgo nocallback goshm_dup
#cgo noescape goshm_add_seals
#cgo nocallback goshm_add_seals
#cgo noescape goshm_mapfd
#cgo nocallback goshm_mapfd
#include "memfd.h"
*/
import "C"

import (
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"syscall"
	"unsafe"
)

// opNames maps GOSHM_OP_* to the libc function names used as PathError.Op.
// Op numbers are sparse (each file of the shim numbers its own from its own
// base), so this is a map.
var opNames = map[int]string{
	C.GOSHM_OP_SHM_OPEN:      "shm_open",
	C.GOSHM_OP_FTRUNCATE:     "ftruncate",
	C.GOSHM_OP_FALLOCATE:     "fallocate",
	C.GOSHM_OP_FSTAT:         "fstat",
	C.GOSHM_OP_MMAP:          "mmap",
	C.GOSHM_OP_MADVISE:       "madvise",
	C.GOSHM_OP_MSYNC:         "msync",
	C.GOSHM_OP_MUNMAP:        "munmap",
	C.GOSHM_OP_CLOSE:         "close",
	C.GOSHM_OP_SHM_UNLINK:    "shm_unlink",
	C.GOSHM_OP_LINK:          "link",
	C.GOSHM_OP_MINCORE:       "mincore",
	C.GOSHM_OP_NOTREG:        "shm_open",
	C.GOSHM_OP_TOOBIG:        "fstat",
	C.GOSHM_OP_TMPNAME:       "shm_open",
	C.GOSHM_OP_FCHMOD:        "fchmod",
	C.GOSHM_OP_FCHOWN:        "fchown",
	C.GOSHM_OP_MREMAP:        "mremap",
	C.GOSHM_OP_SEM_OPEN:      "sem_open",
	C.GOSHM_OP_SEM_CLOSE:     "sem_close",
	C.GOSHM_OP_SEM_UNLINK:    "sem_unlink",
	C.GOSHM_OP_SEM_POST:      "sem_post",
	C.GOSHM_OP_SEM_TRYWAIT:   "sem_trywait",
	C.GOSHM_OP_SEM_CLOCKWAIT: semWaitOp,
	C.GOSHM_OP_SEM_GETVALUE:  "sem_getvalue",
	C.GOSHM_OP_MEMFD_CREATE:  "memfd_create",
	C.GOSHM_OP_FCNTL:         "fcntl",
	C.GOSHM_OP_NOMEMFD:       "memfd_create",
	C.GOSHM_OP_WSEALED:       "mmap",
	C.GOSHM_OP_RDONLYFD:      "mmap",
	C.GOSHM_OP_REOPEN:        "open",
}

// mapFlags are the shim's GOSHM_* flags.
const (
	mapReadOnly = C.GOSHM_RDONLY
	mapPrivate  = C.GOSHM_PRIVATE
	mapSparse   = C.GOSHM_SPARSE
	mapPopulate = C.GOSHM_POPULATE
	mapDefer    = C.GOSHM_POPULATE_DEFER
	mapReadFill = C.GOSHM_POPULATE_READ
	mapNoMadv   = C.GOSHM_NO_MADV_POPULATE
)

// result is what the shim hands back for a mapping.
type result struct {
	data    []byte // the mapping; empty (not nil) when nothing is mapped
	fd      int
	created bool
	advice  int  // populate still to do (mapDefer), else 0
	pending bool // the new object still has only its temporary name
}

// shimErr decodes a shim failure, -(op << 16 | errno), into an
// *fs.PathError naming the libc call.
func shimErr(name string, r C.int) error {
	op, errno := int(-r>>16), syscall.Errno(-r&0xffff)
	var err error = errno
	switch {
	case (op == C.GOSHM_OP_MADVISE || op == C.GOSHM_OP_MMAP) && errno == syscall.EFAULT:
		// What the kernel says, or mincore shows, where touching the
		// page would SIGBUS.
		err = fmt.Errorf("a page cannot be populated (/dev/shm full, or the object shorter than the mapping): %w", err)
	case op == C.GOSHM_OP_NOTREG:
		err = fmt.Errorf("not a regular file (a directory, FIFO, socket or device): %w", err)
	case op == C.GOSHM_OP_TOOBIG:
		err = fmt.Errorf("the object is larger than this process can map: %w", err)
	case op == C.GOSHM_OP_NOMEMFD:
		err = fmt.Errorf("no memfd_create in this C library or kernel (glibc 2.27, musl 1.1.20 and Linux 3.17 have it): %w", errno)
	case op == C.GOSHM_OP_WSEALED:
		err = fmt.Errorf("the object is sealed against writing (F_SEAL_WRITE or F_SEAL_FUTURE_WRITE): map it with os.O_RDONLY: %w", errno)
	case op == C.GOSHM_OP_RDONLYFD:
		err = fmt.Errorf("the descriptor is open read-only: map it with os.O_RDONLY: %w", errno)
	case op == C.GOSHM_OP_MEMFD_CREATE && errno == syscall.EINVAL:
		err = fmt.Errorf("name longer than 249 bytes, or flags the kernel does not know: %w", errno)
	}
	opn, ok := opNames[op]
	if !ok {
		opn = "shim op " + strconv.Itoa(op)
	}
	return &fs.PathError{Op: opn, Path: name, Err: err}
}

// nameBuf holds a name for C on the caller's stack: the shim keeps no
// pointer (noescape), and a longer name than NAME_MAX is allocated.
type nameBuf [256]byte

// cname returns name as a NUL-terminated C string in Go memory, in buf
// when it fits. A name with a NUL byte is refused: C would cut it short and
// act on another object.
func cname(op, name string, buf *nameBuf) (*C.char, error) {
	if strings.IndexByte(name, 0) >= 0 {
		return nil, &fs.PathError{Op: op, Path: name, Err: syscall.EINVAL}
	}
	b := buf[:]
	if len(name) >= len(buf) {
		b = make([]byte, len(name)+1)
	}
	copy(b, name)
	b[len(name)] = 0
	return (*C.char)(unsafe.Pointer(&b[0])), nil
}

// isTmpCollision reports whether err says that a temporary name was taken.
func isTmpCollision(r C.int) bool { return int(-r>>16) == C.GOSHM_OP_TMPNAME }

func toResult(r *C.goshm_result) result {
	res := result{data: []byte{}, fd: int(r.fd), created: r.created != 0, advice: int(r.advice), pending: r.pending != 0}
	if r.addr != nil {
		res.data = unsafe.Slice((*byte)(r.addr), int(r.size))
	}
	return res
}

// shmOpen: shm_open, then fallocate or ftruncate (new or truncated
// objects) or fstat (existing ones), then mmap and madvise, then for a new
// object link and shm_unlink of its temporary name; one crossing. With
// os.O_CREATE, it picks the temporary name (tmpName) and, should that be
// taken, another; the name it used is returned for publish.
func shmOpen(name string, oflag int, mode uint32, size int64, flags int) (result, string, error) {
	var buf, tbuf nameBuf
	cs, err := cname("shm_open", name, &buf)
	if err != nil {
		return result{}, "", err
	}
	for tries := 0; ; tries++ {
		var tmp string
		var ct *C.char
		if oflag&os.O_CREATE != 0 {
			tmp = tmpName(name)
			ct, _ = cname("shm_open", tmp, &tbuf)
		}
		var r C.goshm_result
		e := C.goshm_open(cs, ct, C.int(oflag), C.uint(mode), C.int64_t(size), C.int(flags), &r)
		if e != 0 && isTmpCollision(e) && tries < 100 {
			continue
		}
		if e != 0 {
			return result{}, "", shimErr(name, e)
		}
		return toResult(&r), tmp, nil
	}
}

// publish gives fd, a new object under the temporary name tmp, its real
// name: link, then shm_unlink of tmp; one crossing.
func publish(name, tmp string, fd int) error {
	var buf, tbuf nameBuf
	cs, err := cname("shm_open", name, &buf)
	if err != nil {
		return err
	}
	ct, err := cname("shm_open", tmp, &tbuf)
	if err != nil {
		return err
	}
	if e := C.goshm_publish(C.int(fd), ct, cs); e != 0 {
		return shimErr(name, e)
	}
	return nil
}

// mmapFile maps length bytes of fd at off (validated by the caller).
func mmapFile(name string, fd int, off, length int64, flags int) (result, error) {
	var r C.goshm_result
	if e := C.goshm_map(C.int(fd), C.int64_t(off), C.int64_t(length), C.int(flags), &r); e != 0 {
		return result{}, shimErr(name, e)
	}
	return toResult(&r), nil
}

// addrOf is where b, a slice of a mapping, starts, as the integer the shim
// takes (mapped memory is not Go memory: cgo has nothing to check); 0 for an
// empty slice, which maps nothing.
func addrOf(b []byte) C.uintptr_t {
	if len(b) == 0 {
		return 0
	}
	return C.uintptr_t(uintptr(unsafe.Pointer(unsafe.SliceData(b))))
}

// unmapClose: munmap of a whole mapping this package made, and close of fd
// when fd >= 0.
func unmapClose(name string, data []byte, fd int) error {
	if e := C.goshm_close(addrOf(data), C.int64_t(len(data)), C.int(fd)); e != 0 {
		return shimErr(name, e)
	}
	return nil
}

// populate is madvise(advice) over b, a slice of a mapping.
func populate(name string, b []byte, advice int) error {
	if e := C.goshm_populate(addrOf(b), C.int64_t(len(b)), C.int(advice)); e != 0 {
		return shimErr(name, e)
	}
	return nil
}

// msync of b, which must start on a page boundary inside a mapping.
func msync(name string, b []byte, flags int) error {
	if e := C.goshm_msync(addrOf(b), C.int64_t(len(b)), C.int(flags)); e != 0 {
		return shimErr(name, e)
	}
	return nil
}

func shmUnlink(name string) error {
	var buf nameBuf
	cs, err := cname("shm_unlink", name, &buf)
	if err != nil {
		return err
	}
	if e := C.goshm_unlink(cs); e != 0 {
		return shimErr(name, e)
	}
	return nil
}

// Named semaphores (sem.c): thin wrappers for semaphore.go. A semaphore is
// libc's sem_t *, held as a uintptr: never Go memory.

// semWaitOp is the libc function that waits with a timeout:
// sem_clockwait(CLOCK_MONOTONIC) where libc has it (glibc 2.30+), else
// sem_timedwait (musl).
var semWaitOp = func() string {
	if C.goshm_sem_clockwait() != 0 {
		return "sem_clockwait"
	}
	return "sem_timedwait"
}()

// semErrno is the errno of a shim failure.
func semErrno(r C.int) syscall.Errno { return syscall.Errno(-r & 0xffff) }

func semOpen(name string, oflag int, mode uint32, value uint32) (sem uintptr, created bool, err error) {
	var buf nameBuf
	cs, err := cname("sem_open", name, &buf)
	if err != nil {
		return 0, false, err
	}
	var s C.uintptr_t
	var c C.int
	if e := C.goshm_sem_open(cs, C.int(oflag), C.uint(mode), C.uint(value), &s, &c); e != 0 {
		return 0, false, shimErr(name, e)
	}
	return uintptr(s), c != 0, nil
}

func semUnlink(name string) error {
	var buf nameBuf
	cs, err := cname("sem_unlink", name, &buf)
	if err != nil {
		return err
	}
	if e := C.goshm_sem_unlink(cs); e != 0 {
		return shimErr(name, e)
	}
	return nil
}

func semClose(name string, sem uintptr) error {
	if e := C.goshm_sem_close(C.uintptr_t(sem)); e != 0 {
		return shimErr(name, e)
	}
	return nil
}

func semPost(name string, sem uintptr) error {
	if e := C.goshm_sem_post(C.uintptr_t(sem)); e != 0 {
		return shimErr(name, e)
	}
	return nil
}

// semTryWait reports whether it took one; the count being 0 is not an
// error.
func semTryWait(name string, sem uintptr) (bool, error) {
	e := C.goshm_sem_trywait(C.uintptr_t(sem))
	switch {
	case e == 0:
		return true, nil
	case semErrno(e) == syscall.EAGAIN:
		return false, nil
	}
	return false, shimErr(name, e)
}

// semWait waits up to timeout to take one; false, nil when the time ran
// out.
func semWait(name string, sem uintptr, timeout int64) (bool, error) {
	e := C.goshm_sem_wait(C.uintptr_t(sem), C.int64_t(timeout))
	switch {
	case e == 0:
		return true, nil
	case semErrno(e) == syscall.ETIMEDOUT:
		return false, nil
	}
	return false, shimErr(name, e)
}

func semGetValue(name string, sem uintptr) (int, error) {
	var v C.int
	if e := C.goshm_sem_getvalue(C.uintptr_t(sem), &v); e != 0 {
		return 0, shimErr(name, e)
	}
	return int(v), nil
}

// Lifecycle: stat, chmod, chown and resizing, over lifecycle.c.

// setInt stores v in a field of syscall.Stat_t, whose integer types differ
// between architectures.
func setInt[T ~int32 | ~int64 | ~uint32 | ~uint64](p *T, v int64) { *p = T(v) }

// toStat converts the shim's fixed-layout stat to the syscall.Stat_t that
// os.Stat would give.
func toStat(c *C.goshm_stat) *syscall.Stat_t {
	var st syscall.Stat_t
	setInt(&st.Dev, int64(c.dev))
	setInt(&st.Ino, int64(c.ino))
	setInt(&st.Nlink, int64(c.nlink))
	setInt(&st.Rdev, int64(c.rdev))
	st.Mode, st.Uid, st.Gid = uint32(c.mode), uint32(c.uid), uint32(c.gid)
	st.Size = int64(c.size)
	setInt(&st.Blksize, int64(c.blksize))
	st.Blocks = int64(c.blocks)
	st.Atim = syscall.NsecToTimespec(int64(c.atime_sec)*1e9 + int64(c.atime_nsec))
	st.Mtim = syscall.NsecToTimespec(int64(c.mtime_sec)*1e9 + int64(c.mtime_nsec))
	st.Ctim = syscall.NsecToTimespec(int64(c.ctime_sec)*1e9 + int64(c.ctime_nsec))
	return &st
}

// statName: shm_open(name, O_RDONLY|O_NONBLOCK), fstat, close; one
// crossing. Anything but a regular file is an error wrapping ENODEV.
func statName(name string) (*syscall.Stat_t, error) {
	var buf nameBuf
	cs, err := cname("shm_open", name, &buf)
	if err != nil {
		return nil, err
	}
	var st C.goshm_stat
	if e := C.goshm_stat_name(cs, &st); e != 0 {
		return nil, shimErr(name, e)
	}
	return toStat(&st), nil
}

func fstatFD(name string, fd int) (*syscall.Stat_t, error) {
	var st C.goshm_stat
	if e := C.goshm_fstat(C.int(fd), &st); e != 0 {
		return nil, shimErr(name, e)
	}
	return toStat(&st), nil
}

func fchmod(name string, fd int, mode uint32) error {
	if e := C.goshm_fchmod(C.int(fd), C.uint(mode)); e != 0 {
		return shimErr(name, e)
	}
	return nil
}

func fchown(name string, fd, uid, gid int) error {
	if e := C.goshm_fchown(C.int(fd), C.int64_t(uid), C.int64_t(gid)); e != 0 {
		return shimErr(name, e)
	}
	return nil
}

// resizeMap resizes the object fd to size bytes (size < 0: leaves it as it
// is) and remaps data, a mapping of it made with flags, to the object's
// new size: fstat, fallocate or ftruncate, mremap; one crossing. It returns
// the mapping as it is afterwards, whether or not the call failed.
func resizeMap(name string, fd int, data []byte, size int64, flags int) ([]byte, error) {
	var r C.goshm_result
	e := C.goshm_resize(C.int(fd), addrOf(data), C.int64_t(len(data)), C.int64_t(size), C.int(flags), &r)
	data = toResult(&r).data
	if e != 0 {
		return data, shimErr(name, e)
	}
	return data, nil
}

// memfd: the wrappers of memfd.c.

// The seals as the kernel numbers them; the build fails if Seal's values
// ever differ from the C headers'.
var _ = [1]struct{}{}[SealSeal-C.F_SEAL_SEAL+SealShrink-C.F_SEAL_SHRINK+SealGrow-C.F_SEAL_GROW+
	SealWrite-C.F_SEAL_WRITE+SealFutureWrite-C.F_SEAL_FUTURE_WRITE+SealExec-C.F_SEAL_EXEC]

const memfdNoLibc = C.GOSHM_MEMFD_NOLIBC

// memfdCreate: memfd_create, fallocate (or ftruncate), fcntl(F_ADD_SEALS),
// mmap and madvise; one crossing. The name is the caller's, without
// "memfd:"; errors carry path.
func memfdCreate(name, path string, size int64, seals Seal, flags int) (result, error) {
	var buf nameBuf
	cs, err := cname("memfd_create", name, &buf)
	if err != nil {
		return result{}, &fs.PathError{Op: "memfd_create", Path: path, Err: syscall.EINVAL}
	}
	var r C.goshm_result
	if e := C.goshm_memfd(cs, C.int64_t(size), C.int(seals), C.int(flags), &r); e != 0 {
		return result{}, shimErr(path, e)
	}
	return toResult(&r), nil
}

// getSeals: fcntl(F_GET_SEALS).
func getSeals(name string, fd int) (Seal, error) {
	r := C.goshm_seals(C.int(fd))
	if r < 0 {
		return 0, shimErr(name, r)
	}
	return Seal(r), nil
}

// dupFD: fcntl(F_DUPFD_CLOEXEC).
func dupFD(name string, fd int) (int, error) {
	r := C.goshm_dup(C.int(fd))
	if r < 0 {
		return -1, shimErr(name, r)
	}
	return int(r), nil
}

// addSeals: fcntl(F_ADD_SEALS); with SealWrite and data, data (the
// caller's whole mapping of fd) is first made read-only in place. It
// reports whether data is read-only now.
func addSeals(name string, fd int, data []byte, seals Seal) (bool, error) {
	var rdonly C.int
	if e := C.goshm_add_seals(C.int(fd), addrOf(data), C.int64_t(len(data)), C.int(seals), &rdonly); e != 0 {
		return rdonly != 0, shimErr(name, e)
	}
	return rdonly != 0, nil
}

// mapFD: fcntl(F_GETFL), fcntl(F_GET_SEALS), mmap, madvise of a
// descriptor that may come from another process; one crossing.
func mapFD(name string, fd int, off, length int64, flags int) (result, Seal, error) {
	var r C.goshm_result
	var seals C.int
	if e := C.goshm_mapfd(C.int(fd), C.int64_t(off), C.int64_t(length), C.int(flags), &r, &seals); e != 0 {
		return result{}, Seal(seals), shimErr(name, e)
	}
	return toResult(&r), Seal(seals), nil
}
