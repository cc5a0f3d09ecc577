//go:build linux && cgo

package shm

// The cgo vocabulary: the package's only file that imports "C". Thin,
// Go-typed wrappers over the shim (shm.c, lifecycle.c, memfd.c, sem.c),
// each one cgo crossing, and some single kernel calls on a descriptor
// (fstat, fchmod, fchown, fstatfs, fcntl) through the syscall package.
// Others are made where they are used: futex wakes and the one wait in
// internal/wait, the lock's byte locks in mutex.go, /proc and cgroup
// reads in lifecycle.go and memlimit.go. A failure here is an
// *fs.PathError naming the libc or kernel call and wrapping its
// syscall.Errno, nothing more: no retries, no names of this package's
// choosing, no explanations. Those are the callers' (shm.go and the
// capability files).

/*
#cgo CFLAGS: -O2 -Wall -D_FILE_OFFSET_BITS=64
#cgo LDFLAGS: -lrt
#cgo noescape goshm_shm_open
#cgo nocallback goshm_shm_open
#cgo noescape goshm_create
#cgo nocallback goshm_create
#cgo noescape goshm_open
#cgo nocallback goshm_open
#cgo noescape goshm_map
#cgo nocallback goshm_map
#cgo nocallback goshm_populate
#cgo nocallback goshm_close
#cgo nocallback goshm_msync
#cgo noescape goshm_unlink
#cgo nocallback goshm_unlink
#cgo noescape goshm_link
#cgo nocallback goshm_link
#cgo noescape goshm_rename_noreplace
#cgo nocallback goshm_rename_noreplace
#include "shm.h"
#cgo noescape goshm_resize
#cgo nocallback goshm_resize
#include "lifecycle.h"
#cgo noescape goshm_sem_open
#cgo nocallback goshm_sem_open
#cgo noescape goshm_sem_unlink
#cgo nocallback goshm_sem_unlink
#cgo noescape goshm_sem_getvalue
#cgo nocallback goshm_sem_getvalue
#cgo nocallback goshm_sem_close
#cgo nocallback goshm_sem_post
#cgo nocallback goshm_sem_trywait
#cgo nocallback goshm_sem_wait_prepare
#cgo nocallback goshm_sem_wait_done
#include "sem.h"
#cgo noescape goshm_memfd
#cgo nocallback goshm_memfd
#cgo noescape goshm_add_seals
#cgo nocallback goshm_add_seals
#include "memfd.h"
*/
import "C"

import (
	"errors"
	"io/fs"
	"strconv"
	"strings"
	"syscall"
	"unsafe"

	"github.com/posixshm/shm/internal/kernel"
)

// opNames are the libc function names of the shim's GOSHM_OP_* numbers
// (shm.h), used as PathError.Op.
var opNames = [C.GOSHM_OP_COUNT]string{
	C.GOSHM_OP_SHM_OPEN:     "shm_open",
	C.GOSHM_OP_FTRUNCATE:    "ftruncate",
	C.GOSHM_OP_FALLOCATE:    "fallocate",
	C.GOSHM_OP_FSTAT:        "fstat",
	C.GOSHM_OP_MMAP:         "mmap",
	C.GOSHM_OP_MADVISE:      "madvise",
	C.GOSHM_OP_MSYNC:        "msync",
	C.GOSHM_OP_MUNMAP:       "munmap",
	C.GOSHM_OP_CLOSE:        "close",
	C.GOSHM_OP_SHM_UNLINK:   "shm_unlink",
	C.GOSHM_OP_MINCORE:      "mincore",
	C.GOSHM_OP_LINK:         "link",
	C.GOSHM_OP_MREMAP:       "mremap",
	C.GOSHM_OP_MEMFD_CREATE: "memfd_create",
	C.GOSHM_OP_FCNTL:        "fcntl",
	C.GOSHM_OP_SEM_OPEN:     "sem_open",
	C.GOSHM_OP_SEM_CLOSE:    "sem_close",
	C.GOSHM_OP_SEM_UNLINK:   "sem_unlink",
	C.GOSHM_OP_SEM_POST:     "sem_post",
	C.GOSHM_OP_SEM_TRYWAIT:  "sem_trywait",
	C.GOSHM_OP_SEM_GETVALUE: "sem_getvalue",
	C.GOSHM_OP_RENAMEAT2:    "renameat2",
}

// The shim's flags for the calls that map (shm.h).
const (
	mapReadOnly    = C.GOSHM_RDONLY
	mapPrivate     = C.GOSHM_PRIVATE
	mapSparse      = C.GOSHM_SPARSE
	mapPopulate    = C.GOSHM_POPULATE
	mapDefer       = C.GOSHM_POPULATE_DEFER
	mapReadFill    = C.GOSHM_POPULATE_READ
	mapNoMadv      = C.GOSHM_NO_MADV_POPULATE
	mapNoMemfd     = C.GOSHM_NO_MEMFD
	mapNoDontunmap = C.GOSHM_NO_DONTUNMAP
)

// result is what the shim hands back for a mapping.
type result struct {
	data    []byte // the mapping; empty (not nil) when nothing is mapped
	fd      int
	created bool
	advice  int // populate still to do (mapDefer), else 0
}

// shimErr decodes a shim failure, -(op << 16 | errno), into an
// *fs.PathError naming the libc call.
func shimErr(name string, r C.int) error {
	op := int(-r >> 16)
	opn := "shim op " + strconv.Itoa(op)
	if op > 0 && op < len(opNames) {
		opn = opNames[op]
	}
	return &fs.PathError{Op: opn, Path: name, Err: syscall.Errno(-r & 0xffff)}
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

func toResult(r *C.goshm_result) result {
	res := result{data: []byte{}, fd: int(r.fd), created: r.created != 0, advice: int(r.advice)}
	if r.addr != nil {
		res.data = unsafe.Slice((*byte)(r.addr), int(r.size))
	}
	return res
}

// shmOpenFD is shm_open(name, oflag|O_NONBLOCK, mode): the descriptor.
func shmOpenFD(name string, oflag int, mode uint32) (int, error) {
	var buf nameBuf
	cs, err := cname("shm_open", name, &buf)
	if err != nil {
		return -1, err
	}
	fd := C.goshm_shm_open(cs, C.int(oflag), C.uint(mode))
	if fd < 0 {
		return -1, shimErr(name, fd)
	}
	return int(fd), nil
}

// pathBuf holds a path for C on the caller's stack, as nameBuf a name.
type pathBuf [512]byte

// cpath returns dir+"/"+base as a NUL-terminated C string in Go memory,
// in buf when it fits. Neither holds a NUL (base is a name cname took;
// dir a path the kernel gave).
func cpath(dir, base string, buf *pathBuf) *C.char {
	b := buf[:0]
	if len(dir)+len(base)+2 > len(buf) {
		b = nil
	}
	b = append(append(append(append(b, dir...), '/'), base...), 0)
	return (*C.char)(unsafe.Pointer(&b[0]))
}

// shmLink is link(dir/from, dir/to), then shm_unlink(tmp): one crossing;
// errors carry name.
func shmLink(name, dir, from, to, tmp string) error {
	var fbuf, tobuf pathBuf
	var tbuf nameBuf
	ct, err := cname("shm_unlink", tmp, &tbuf)
	if err != nil {
		return err
	}
	if e := C.goshm_link(cpath(dir, from, &fbuf), cpath(dir, to, &tobuf), ct); e != 0 {
		return shimErr(name, e)
	}
	return nil
}

// shmRename is renameat2(dir/from, dir/to, RENAME_NOREPLACE): one
// crossing (the syscall package has no renameat2); errors carry name.
func shmRename(name, dir, from, to string) error {
	var fbuf, tobuf pathBuf
	if e := C.goshm_rename_noreplace(cpath(dir, from, &fbuf), cpath(dir, to, &tobuf)); e != 0 {
		return shimErr(name, e)
	}
	return nil
}

// shmProbe is shm_open(name, oflag|O_NONBLOCK) and close: 0 when it
// opened, else shm_open's errno, without building an error (Create calls
// it every time, and it fails when all is well). err is for a name that C
// cannot take.
func shmProbe(name string, oflag int) (syscall.Errno, error) {
	var buf nameBuf
	cs, err := cname("shm_open", name, &buf)
	if err != nil {
		return 0, err
	}
	fd := C.goshm_shm_open(cs, C.int(oflag), 0)
	if fd < 0 {
		return syscall.Errno(-fd & 0xffff), nil
	}
	closeFD(int(fd))
	return 0, nil
}

// shmCreate makes a new object under tmp (shm_open O_RDWR|O_CREAT|O_EXCL
// with mode), sizes and maps it: one crossing; errors carry name. When the
// object was made but could not be sized or mapped, the result has created
// set and fd open, and nothing mapped.
func shmCreate(name, tmp string, mode uint32, size int64, flags int) (result, error) {
	var buf nameBuf
	ct, err := cname("shm_open", tmp, &buf)
	if err != nil {
		return result{fd: -1}, &fs.PathError{Op: "shm_open", Path: name, Err: syscall.EINVAL}
	}
	var r C.goshm_result
	if e := C.goshm_create(ct, C.uint(mode), C.int64_t(size), C.int(flags), &r); e != 0 {
		return toResult(&r), shimErr(name, e)
	}
	return toResult(&r), nil
}

// shmOpen opens the existing object name (oflag without O_CREAT), sizes
// it with O_TRUNC, else measures it, and maps it: one crossing. Anything
// but a regular file is ENODEV, as shm_open's.
func shmOpen(name string, oflag int, size int64, flags int) (result, error) {
	var buf nameBuf
	cs, err := cname("shm_open", name, &buf)
	if err != nil {
		return result{}, err
	}
	var r C.goshm_result
	if e := C.goshm_open(cs, C.int(oflag), C.int64_t(size), C.int(flags), &r); e != 0 {
		return result{}, shimErr(name, e)
	}
	return toResult(&r), nil
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

// semErrno is the errno of a shim failure.
func semErrno(r C.int) syscall.Errno { return syscall.Errno(-r & 0xffff) }

// semSize is sizeof(sem_t); semGlibc tells whether libc is glibc.
const (
	semSize  = C.GOSHM_SEM_SIZE
	semGlibc = C.GOSHM_SEM_GLIBC == 1
)

// semOpen is sem_open(name, oflag, mode, value).
func semOpen(name string, oflag int, mode uint32, value uint32) (uintptr, error) {
	var buf nameBuf
	cs, err := cname("sem_open", name, &buf)
	if err != nil {
		return 0, err
	}
	var s C.uintptr_t
	if e := C.goshm_sem_open(cs, C.int(oflag), C.uint(mode), C.uint(value), &s); e != 0 {
		return 0, shimErr(name, e)
	}
	return uintptr(s), nil
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

// semWaitPrepare is goshm_sem_wait_prepare: true if it took one, else
// the futex word (libc's, inside the semaphore) to sleep on while it holds
// val; semWaitDone must follow each sleep.
func semWaitPrepare(sem uintptr) (took bool, addr uintptr, val uint32) {
	var a C.uintptr_t
	var v C.uint32_t
	if C.goshm_sem_wait_prepare(C.uintptr_t(sem), &a, &v) != 0 {
		return true, 0, 0
	}
	return false, uintptr(a), uint32(v)
}

// semWaitDone is goshm_sem_wait_done: how many sleepers to wake.
func semWaitDone(sem uintptr, leaving bool) int {
	l := C.int(0)
	if leaving {
		l = 1
	}
	return int(C.goshm_sem_wait_done(C.uintptr_t(sem), l))
}

func semGetValue(name string, sem uintptr) (int, error) {
	var v C.int
	if e := C.goshm_sem_getvalue(C.uintptr_t(sem), &v); e != 0 {
		return 0, shimErr(name, e)
	}
	return int(v), nil
}

// Resizing (lifecycle.c).

// resizeMap resizes the object fd to size bytes (size < 0: leaves it as it
// is) and makes whole, the whole mapping of it made with flags, cover the
// object's new size: fstat, fallocate or ftruncate, mremap or mmap; one
// crossing. It returns the whole mapping afterwards and the size it now
// covers, whether or not the call failed (-1 where fstat failed and
// nothing changed), and moved: the mapping moved and
// the old whole was left mapped, for the caller to unmap at Close. No
// address of whole is ever unmapped (lifecycle.h).
func resizeMap(name string, fd int, whole []byte, size int64, flags int) (newWhole []byte, n int, moved bool, err error) {
	var r C.goshm_resized
	e := C.goshm_resize(C.int(fd), addrOf(whole), C.int64_t(len(whole)), C.int64_t(size), C.int(flags), &r)
	if r.addr != nil {
		newWhole = unsafe.Slice((*byte)(r.addr), int(r.maplen))
	}
	if e != 0 {
		err = shimErr(name, e)
	}
	return newWhole, int(r.size), r.moved != 0, err
}

// memfd: the wrappers of memfd.c.

// The seals as the kernel numbers them (F_SEAL_*).
const (
	fSealSeal        = C.F_SEAL_SEAL
	fSealShrink      = C.F_SEAL_SHRINK
	fSealGrow        = C.F_SEAL_GROW
	fSealWrite       = C.F_SEAL_WRITE
	fSealFutureWrite = C.F_SEAL_FUTURE_WRITE
	fSealExec        = C.F_SEAL_EXEC
)

// memfdCreate: memfd_create, fallocate (or ftruncate), fcntl(F_ADD_SEALS),
// mmap and madvise; one crossing. The name is the caller's, without
// "memfd:"; errors carry path.
func memfdCreate(name, path string, size int64, seals int, flags int) (result, error) {
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

// addSeals: fcntl(F_ADD_SEALS); with ro >= 0, a read-only descriptor of
// the object, data (the caller's whole mapping of fd) is first made
// read-only in place from ro. It reports whether data is read-only now.
func addSeals(name string, fd, ro int, data []byte, seals int) (bool, error) {
	var rdonly C.int
	if e := C.goshm_add_seals(C.int(fd), C.int(ro), addrOf(data), C.int64_t(len(data)), C.int(seals), &rdonly); e != 0 {
		return rdonly != 0, shimErr(name, e)
	}
	return rdonly != 0, nil
}

// Single kernel calls that libc adds nothing to, made from Go.

// fstatFD is fstat(fd).
func fstatFD(name string, fd int) (*syscall.Stat_t, error) {
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil {
		return nil, &fs.PathError{Op: "fstat", Path: name, Err: err}
	}
	return &st, nil
}

// fchmod is fchmod(fd, mode).
func fchmod(name string, fd int, mode uint32) error {
	if err := syscall.Fchmod(fd, mode); err != nil {
		return &fs.PathError{Op: "fchmod", Path: name, Err: err}
	}
	return nil
}

// fchown is fchown(fd, uid, gid).
func fchown(name string, fd, uid, gid int) error {
	if err := syscall.Fchown(fd, uid, gid); err != nil {
		return &fs.PathError{Op: "fchown", Path: name, Err: err}
	}
	return nil
}

// onTmpfs reports whether fd's file lives in memory (tmpfs, shmem):
// fstatfs. A failure counts as tmpfs.
func onTmpfs(fd int) bool {
	var st syscall.Statfs_t
	return syscall.Fstatfs(fd, &st) != nil || st.Type == kernel.TMPFS_MAGIC
}

// The fcntl commands of descriptors and memfd seals (linux/fcntl.h).
const (
	fGetFL        = syscall.F_GETFL
	fDupFDCloexec = kernel.F_DUPFD_CLOEXEC
	fGetSeals     = kernel.F_GET_SEALS
)

// fcntl is fcntl(fd, cmd, arg): its result.
func fcntl(name string, fd, cmd, arg int) (int, error) {
	r, _, e := syscall.Syscall(syscall.SYS_FCNTL, uintptr(fd), uintptr(cmd), uintptr(arg))
	if e != 0 {
		return -1, &fs.PathError{Op: "fcntl", Path: name, Err: e}
	}
	return int(r), nil
}

// getSeals is fcntl(fd, F_GET_SEALS): the seals, 0 for a file that cannot
// be sealed (EINVAL).
func getSeals(name string, fd int) (int, error) {
	s, err := fcntl(name, fd, fGetSeals, 0)
	if errors.Is(err, syscall.EINVAL) {
		return 0, nil
	}
	return s, err
}

// closeFD is close(fd), for a descriptor nothing is mapped from.
func closeFD(fd int) { syscall.Close(fd) }
