package shm

// This is the only file that imports "C": thin wrappers over the shim in
// shm.c, each one cgo crossing, turning -errno into *fs.PathError.

/*
#cgo CFLAGS: -O2 -Wall
#cgo LDFLAGS: -lrt
#include "shm.h"
*/
import "C"

import (
	"io/fs"
	"strings"
	"syscall"
	"unsafe"
)

// opNames maps GOSHM_OP_* to the libc function names used as PathError.Op.
var opNames = [...]string{
	C.GOSHM_OP_NONE:       "shm",
	C.GOSHM_OP_SHM_OPEN:   "shm_open",
	C.GOSHM_OP_FTRUNCATE:  "ftruncate",
	C.GOSHM_OP_FALLOCATE:  "fallocate",
	C.GOSHM_OP_FSTAT:      "fstat",
	C.GOSHM_OP_MMAP:       "mmap",
	C.GOSHM_OP_MADVISE:    "madvise",
	C.GOSHM_OP_MSYNC:      "msync",
	C.GOSHM_OP_MUNMAP:     "munmap",
	C.GOSHM_OP_CLOSE:      "close",
	C.GOSHM_OP_SHM_UNLINK: "shm_unlink",
}

// mapFlags are the shim's GOSHM_* flags.
const (
	mapReadOnly = C.GOSHM_RDONLY
	mapPrivate  = C.GOSHM_PRIVATE
	mapSparse   = C.GOSHM_SPARSE
	mapPopulate = C.GOSHM_POPULATE
)

// result is what the shim hands back for a mapping.
type result struct {
	data    []byte // the mapping; empty (not nil) when nothing is mapped
	fd      int
	created bool
}

func pathErr(op int, name string, r C.int) error {
	return &fs.PathError{Op: opNames[op], Path: name, Err: syscall.Errno(-r)}
}

// cname returns name as a NUL-terminated C string in Go memory. A name with
// a NUL byte is refused: C would cut it short and act on another object.
func cname(op, name string) (*C.char, error) {
	if strings.IndexByte(name, 0) >= 0 {
		return nil, &fs.PathError{Op: op, Path: name, Err: syscall.EINVAL}
	}
	b := make([]byte, len(name)+1)
	copy(b, name)
	return (*C.char)(unsafe.Pointer(&b[0])), nil
}

func toResult(r *C.goshm_result) result {
	res := result{data: []byte{}, fd: int(r.fd), created: r.created != 0}
	if r.addr != nil {
		res.data = unsafe.Slice((*byte)(r.addr), int(r.size))
	}
	return res
}

// shmOpen: shm_open, then fallocate or ftruncate (new or truncated
// objects) or fstat (existing ones), then mmap and madvise; one crossing.
func shmOpen(name string, oflag int, mode uint32, size int64, flags int) (result, error) {
	cs, err := cname("shm_open", name)
	if err != nil {
		return result{}, err
	}
	var r C.goshm_result
	if e := C.goshm_open(cs, C.int(oflag), C.uint(mode), C.int64_t(size), C.int(flags), &r); e != 0 {
		return result{}, pathErr(int(r.op), name, e)
	}
	return toResult(&r), nil
}

// mmapFile maps length bytes of fd at off (validated by the caller).
func mmapFile(name string, fd int, off, length int64, flags int) (result, error) {
	var r C.goshm_result
	if e := C.goshm_map(C.int(fd), C.int64_t(off), C.int64_t(length), C.int(flags), &r); e != 0 {
		return result{}, pathErr(int(r.op), name, e)
	}
	return toResult(&r), nil
}

// unmapClose: munmap of a whole mapping this package made, and close of fd
// when fd >= 0.
func unmapClose(name string, data []byte, fd int) error {
	var addr unsafe.Pointer // nil for an empty mapping: nothing to unmap
	if len(data) > 0 {
		addr = unsafe.Pointer(unsafe.SliceData(data))
	}
	var op C.int
	if e := C.goshm_close(addr, C.int64_t(len(data)), C.int(fd), &op); e != 0 {
		return pathErr(int(op), name, e)
	}
	return nil
}

// msync of b, which must start on a page boundary inside a mapping.
func msync(name string, b []byte, flags int) error {
	if e := C.goshm_msync(unsafe.Pointer(unsafe.SliceData(b)), C.int64_t(len(b)), C.int(flags)); e != 0 {
		return pathErr(C.GOSHM_OP_MSYNC, name, e)
	}
	return nil
}

func shmUnlink(name string) error {
	cs, err := cname("shm_unlink", name)
	if err != nil {
		return err
	}
	if e := C.goshm_unlink(cs); e != 0 {
		return pathErr(C.GOSHM_OP_SHM_UNLINK, name, e)
	}
	return nil
}
