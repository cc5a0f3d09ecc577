//go:build linux

package ring

import (
	"os"
	"syscall"

	"github.com/posixshm/shm/internal/kernel"
)

// Open-file-description locks (fcntl(2), Linux 3.15): owned by the open
// file description, not the process, so two opens in one process
// conflict, and released by the kernel when the last descriptor of it is
// closed, which a process's death does. They carry no pid (F_OFD_GETLK
// answers l_pid -1), so neither pid reuse nor pid namespaces can fool them.
// syscall.FcntlFlock uses fcntl64 on 386, whose struct is syscall.Flock_t.
const (
	fOFDGetlk = kernel.F_OFD_GETLK
	fOFDSetlk = kernel.F_OFD_SETLK
)

// ofdFcntl runs fcntl(cmd) with a lock of type typ on the one byte at off.
func ofdFcntl(f *os.File, cmd int, typ int16, off int64) (syscall.Flock_t, error) {
	lk := syscall.Flock_t{Type: typ, Whence: 0, Start: off, Len: 1}
	rc, err := f.SyscallConn()
	if err != nil {
		return lk, err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) {
		for {
			ferr = syscall.FcntlFlock(fd, cmd, &lk)
			if ferr != syscall.EINTR {
				return
			}
		}
	}); err != nil {
		return lk, err
	}
	return lk, ferr
}

// tryLock takes the write lock on the byte at off without waiting: false
// if another open file description holds it.
func tryLock(f *os.File, off int64) (bool, error) {
	_, err := ofdFcntl(f, fOFDSetlk, syscall.F_WRLCK, off)
	if err == syscall.EAGAIN || err == syscall.EACCES {
		return false, nil
	}
	return err == nil, err
}

// unlock releases the lock on the byte at off.
func unlock(f *os.File, off int64) error {
	_, err := ofdFcntl(f, fOFDSetlk, syscall.F_UNLCK, off)
	return err
}

// locked reports whether another open file description holds a lock on
// the byte at off.
func locked(f *os.File, off int64) (bool, error) {
	lk, err := ofdFcntl(f, fOFDGetlk, syscall.F_WRLCK, off)
	return err == nil && lk.Type != syscall.F_UNLCK, err
}
