package main

import (
	"errors"
	"io/fs"
	"os"
	"runtime"
	"syscall"
	"unsafe"
)

// renameNoReplace renames old to new unless new exists (renameat2 with
// RENAME_NOREPLACE: EEXIST, and nothing changes), so that rm -stale's
// quarantine can never replace an object created under its random name
// meanwhile. Where the kernel or the architecture's table has no
// renameat2 (ENOSYS, or EINVAL from a file system without the flag), it
// checks with lstat and renames: the old, small window.
func renameNoReplace(old, new string) error {
	err := renameat2(old, new)
	if errors.Is(err, syscall.ENOSYS) || errors.Is(err, syscall.EINVAL) {
		if _, lerr := os.Lstat(new); !errors.Is(lerr, fs.ErrNotExist) {
			return &os.LinkError{Op: "rename", Old: old, New: new, Err: syscall.EEXIST}
		}
		return os.Rename(old, new)
	}
	return err
}

// sysRenameat2 is renameat2's system call number by GOARCH: Go's syscall
// package has SYS_RENAMEAT2 only on some architectures (not amd64, 386).
var sysRenameat2 = map[string]uintptr{
	"amd64": 316, "386": 353, "arm": 382, "arm64": 276, "riscv64": 276,
	"loong64": 276, "ppc64": 357, "ppc64le": 357, "s390x": 347,
}

func renameat2(old, new string) error {
	nr, ok := sysRenameat2[runtime.GOARCH]
	if !ok {
		return &os.LinkError{Op: "renameat2", Old: old, New: new, Err: syscall.ENOSYS}
	}
	po, err := syscall.BytePtrFromString(old)
	if err != nil {
		return &os.LinkError{Op: "renameat2", Old: old, New: new, Err: err}
	}
	pn, err := syscall.BytePtrFromString(new)
	if err != nil {
		return &os.LinkError{Op: "renameat2", Old: old, New: new, Err: err}
	}
	const renameNoreplace = 1
	fdcwd := -100 // AT_FDCWD
	_, _, e := syscall.Syscall6(nr, uintptr(fdcwd), uintptr(unsafe.Pointer(po)),
		uintptr(fdcwd), uintptr(unsafe.Pointer(pn)), renameNoreplace, 0)
	if e != 0 {
		return &os.LinkError{Op: "renameat2", Old: old, New: new, Err: e}
	}
	return nil
}
