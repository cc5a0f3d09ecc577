package main

// Objects and semaphores as files of the package's directory (shm.Dir:
// object "/x" is the file Dir()+"/x", glibc's semaphore "/x" the file
// Dir()+"/sem.x"), for what the package does not offer: a semaphore's file,
// and an object this user may not read (stat, chmod and chown need no read
// permission, as for any file).

import (
	"fmt"
	"io/fs"
	"strings"
	"syscall"
	"time"

	"github.com/posixshm/shm"
	"github.com/posixshm/shm/internal/kernel"
	"github.com/posixshm/shm/internal/proc"
)

// baseName is name as glibc and musl map it to a file name: leading
// slashes dropped, then one path element, or EINVAL.
func baseName(name string) (string, error) {
	base := strings.TrimLeft(name, "/")
	if base == "" || base == "." || base == ".." || strings.ContainsAny(base, "/\x00") || len(base) > kernel.NAME_MAX {
		return "", syscall.EINVAL
	}
	return base, nil
}

// objectPath is the file behind the object name.
func objectPath(name string) (string, error) {
	base, err := baseName(name)
	if err != nil {
		return "", err
	}
	return shm.Dir() + "/" + base, nil
}

// semPath is the file behind glibc's semaphore name: sem.NAME. (musl keeps
// a semaphore as the file NAME: an object, as far as the directory shows.)
func semPath(name string) (string, error) {
	base, err := baseName(name)
	if err != nil || len(base) > kernel.NAME_MAX-len("sem.") {
		return "", syscall.EINVAL
	}
	return shm.Dir() + "/sem." + base, nil
}

// pathObject is an object or semaphore file opened with O_PATH: no
// permission on it is needed, nothing can be read or written through it,
// but it can be fstat'ed, and its owner (or root) can chmod and chown it.
type pathObject struct {
	fd int
	st syscall.Stat_t
}

// openPath opens path, refusing what the package refuses: a symbolic link
// (ELOOP, from O_NOFOLLOW, as shm_open) and anything but a regular file
// (ENODEV, as shm.Stat).
func openPath(path string) (*pathObject, error) {
	fd, err := syscall.Open(path, kernel.O_PATH|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	p := &pathObject{fd: fd}
	if err := syscall.Fstat(fd, &p.st); err != nil {
		syscall.Close(fd)
		return nil, &fs.PathError{Op: "fstat", Path: path, Err: err}
	}
	if p.st.Mode&syscall.S_IFMT != syscall.S_IFREG {
		syscall.Close(fd)
		return nil, &fs.PathError{Op: "fstat", Path: path, Err: syscall.ENODEV}
	}
	return p, nil
}

// openPathObject opens the object name as openPath does.
func openPathObject(name string) (*pathObject, error) {
	path, err := objectPath(name)
	if err != nil {
		return nil, err
	}
	return openPath(path)
}

func (p *pathObject) close() { syscall.Close(p.fd) }

// chmod sets the mode exactly. Linux has no fchmod of an O_PATH descriptor
// (before fchmodat2), but chmod of its /proc/self/fd link reaches the very
// inode, whatever happened to the name meanwhile.
func (p *pathObject) chmod(mode uint32) error {
	link := proc.FD(p.fd)
	if err := syscall.Chmod(link, mode); err != nil {
		return &fs.PathError{Op: "chmod", Path: link, Err: err}
	}
	return nil
}

// chown sets owner and group (-1 keeps one): fchownat(fd, "", AT_EMPTY_PATH).
func (p *pathObject) chown(uid, gid int) error {
	if err := syscall.Fchownat(p.fd, "", uid, gid, kernel.AT_EMPTY_PATH); err != nil {
		return &fs.PathError{Op: "fchownat", Path: "", Err: err}
	}
	return nil
}

// changed is when the object was last modified or its inode changed
// (created, linked under its name, chmod, chown): the later of mtime and
// ctime. Writes through a mapping change neither, on tmpfs.
func changed(st *syscall.Stat_t) time.Time {
	t, c := mtime(st), ctime(st)
	if c.After(t) {
		return c
	}
	return t
}

func mtime(st *syscall.Stat_t) time.Time {
	return time.Unix(int64(st.Mtim.Sec), int64(st.Mtim.Nsec))
}

func ctime(st *syscall.Stat_t) time.Time {
	return time.Unix(int64(st.Ctim.Sec), int64(st.Ctim.Nsec))
}

// sameFile reports whether a and b are one inode.
func sameFile(a, b *syscall.Stat_t) bool { return a.Dev == b.Dev && a.Ino == b.Ino }

// lstat is syscall.Lstat with a *fs.PathError.
func lstat(path string) (*syscall.Stat_t, error) {
	var st syscall.Stat_t
	if err := syscall.Lstat(path, &st); err != nil {
		return nil, &fs.PathError{Op: "lstat", Path: path, Err: err}
	}
	return &st, nil
}

// modeString is st's mode as ls shows it: -rw-r-----.
func modeString(st *syscall.Stat_t) string {
	return fs.FileMode(st.Mode & 0o777).String()
}

func octal(st *syscall.Stat_t) string { return fmt.Sprintf("%#o", st.Mode&0o7777) }
