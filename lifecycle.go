//go:build linux && cgo

package shm

// Lifecycle: what exists, who holds it, its mode and owner, and
// its size. The libc calls are in lifecycle.c; the directory and /proc
// scans are plain Go.

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"iter"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/posixshm/shm/internal/kernel"
	"github.com/posixshm/shm/internal/proc"
)

// fileInfo is the fs.FileInfo of an object, from fstat.
type fileInfo struct {
	name string
	st   *syscall.Stat_t
}

func (fi *fileInfo) Name() string      { return fi.name }
func (fi *fileInfo) Size() int64       { return fi.st.Size }
func (fi *fileInfo) Mode() fs.FileMode { return fs.FileMode(fi.st.Mode) & fs.ModePerm }
func (fi *fileInfo) ModTime() time.Time {
	return time.Unix(int64(fi.st.Mtim.Sec), int64(fi.st.Mtim.Nsec))
}
func (fi *fileInfo) IsDir() bool { return false }
func (fi *fileInfo) Sys() any    { return fi.st }

// Stat describes the shared memory object name without creating it,
// changing it or blocking: shm_open(name, O_RDONLY|O_NONBLOCK), fstat and
// close. The info's Name is name without its leading
// slashes, as a file name would be; Mode holds the permission bits; Sys
// is the *syscall.Stat_t (Uid, Gid, Ino, Ctim, ...). Errors are as for
// Open (Op "shm_open" or "fstat"); anything but a regular file is an error
// wrapping syscall.ENODEV. Stat needs read permission on the object, as
// Open does. (shm_open is libc's, in one cgo crossing; fstat and close are
// kernel calls from Go.)
func Stat(name string) (fs.FileInfo, error) {
	fd, err := shmOpenFD(name, os.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	st, err := fstatFD(name, fd)
	closeFD(fd)
	if err != nil {
		return nil, err
	}
	if st.Mode&syscall.S_IFMT != syscall.S_IFREG {
		return nil, explain(&fs.PathError{Op: "shm_open", Path: name, Err: syscall.ENODEV})
	}
	return &fileInfo{name: baseName(name), st: st}, nil
}

// Stat describes the mapped object or file, as Stat(name) does, with
// fstat on the Mapping's descriptor: it describes this object even if its
// name has been unlinked or reused. The info's Name is the last element of
// the name the Mapping was made with. The size is the object's, which can
// differ from Size (the mapping's) after another process resized it; see
// Remap. Safe for concurrent use; after Close it returns an error wrapping
// fs.ErrClosed.
func (m *Mapping) Stat() (fs.FileInfo, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.data == nil {
		return nil, m.errClosed("fstat")
	}
	st, err := fstatFD(m.name, m.fd)
	if err != nil {
		return nil, err
	}
	return &fileInfo{name: path.Base(m.name), st: st}, nil
}

// Chmod sets the object's permission bits to exactly mode, whatever the
// umask: fchmod. Only the owner (or root) may. mode must hold permission
// bits only. Safe for concurrent use; after Close it returns an error
// wrapping fs.ErrClosed.
func (m *Mapping) Chmod(mode fs.FileMode) error {
	if err := checkMode("fchmod", m.name, mode); err != nil {
		return err
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.data == nil {
		return m.errClosed("fchmod")
	}
	return fchmod(m.name, m.fd, uint32(mode))
}

// Chown sets the object's owner and group: fchown. A uid or gid of -1
// leaves that one unchanged. Changing the owner needs root
// (CAP_CHOWN); the owner may set a group it belongs to. Safe for
// concurrent use; after Close it returns an error wrapping fs.ErrClosed.
func (m *Mapping) Chown(uid, gid int) error {
	if err := checkOwner("fchown", m.name, uid, gid); err != nil {
		return err
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.data == nil {
		return m.errClosed("fchown")
	}
	return fchown(m.name, m.fd, uid, gid)
}

// checkMode refuses a mode with more than permission bits.
func checkMode(op, name string, mode fs.FileMode) error {
	if mode&^fs.ModePerm != 0 {
		return argErr(op, name, "mode %v: only permission bits are allowed", mode)
	}
	return nil
}

// checkOwner refuses a uid or gid that is neither -1 nor a 32-bit id.
func checkOwner(op, name string, uid, gid int) error {
	if uid < -1 || gid < -1 || int64(uid) > 1<<32-2 || int64(gid) > 1<<32-2 {
		return argErr(op, name, "uid %d, gid %d: want -1 or a 32-bit id", uid, gid)
	}
	return nil
}

// Lstat describes the object name as Stat does, but needs no permission
// on the object, as lstat(2) needs none on a file: where this user may
// not read it (shm_open fails with EACCES), the object's file in Dir is
// opened with O_PATH|O_NOFOLLOW, which grants no access to its bytes, and
// fstat describes it. Errors are as Stat's; a symbolic link or anything
// else but a regular file under the name is an error wrapping
// syscall.ENODEV.
func Lstat(name string) (fs.FileInfo, error) {
	var fi fs.FileInfo
	err := byName(name, func(fd int, st *syscall.Stat_t, _ bool) error {
		fi = &fileInfo{name: baseName(name), st: st}
		return nil
	})
	return fi, err
}

// Chmod sets the permission bits of the object name to exactly mode,
// whatever the umask, as os.Chmod does for a file; only the object's owner
// (or root) may. Like chmod(1), it needs no permission on the object:
// shm_open(name, O_RDONLY|O_NONBLOCK) and fchmod, or, where this user may
// not read the object (EACCES), an O_PATH|O_NOFOLLOW open of its file in
// Dir and chmod(2) of that descriptor's /proc/self/fd link, which reaches
// the very file that was opened. mode must hold permission bits only (else
// an error wrapping syscall.EINVAL). Errors are *fs.PathError with the
// failing call as Op; anything but a regular file under the name is an
// error wrapping syscall.ENODEV.
func Chmod(name string, mode fs.FileMode) error {
	if err := checkMode("chmod", name, mode); err != nil {
		return err
	}
	return byName(name, func(fd int, _ *syscall.Stat_t, pathOnly bool) error {
		if !pathOnly {
			return fchmod(name, fd, uint32(mode))
		}
		if err := syscall.Chmod(proc.FD(fd), uint32(mode)); err != nil {
			return &fs.PathError{Op: "chmod", Path: name, Err: err}
		}
		return nil
	})
}

// Chown sets the owner and group of the object name, as os.Chown does for
// a file; a uid or gid of -1 leaves that one unchanged. Changing the owner
// needs root (CAP_CHOWN); the owner may set a group it belongs to. Like
// chown(1), it needs no permission on the object: shm_open(name,
// O_RDONLY|O_NONBLOCK) and fchown, or, where this user may not read the
// object (EACCES), an O_PATH|O_NOFOLLOW open of its file in Dir and
// fchownat(fd, "", AT_EMPTY_PATH). Errors are *fs.PathError with the
// failing call as Op; a bad id wraps syscall.EINVAL, anything but a
// regular file under the name syscall.ENODEV.
func Chown(name string, uid, gid int) error {
	if err := checkOwner("chown", name, uid, gid); err != nil {
		return err
	}
	return byName(name, func(fd int, _ *syscall.Stat_t, pathOnly bool) error {
		if !pathOnly {
			return fchown(name, fd, uid, gid)
		}
		if err := syscall.Fchownat(fd, "", uid, gid, kernel.AT_EMPTY_PATH); err != nil {
			return &fs.PathError{Op: "fchownat", Path: name, Err: err}
		}
		return nil
	})
}

// byName runs do on a descriptor of the object name and its fstat: one
// that shm_open(O_RDONLY) made, or, where this user may not read the
// object, an O_PATH descriptor of its file in Dir (pathOnly), which libc's
// EACCES showed to exist under a valid name. Only a regular file is an
// object (else ENODEV, as Stat says; a symbolic link put there since is
// one, which O_NOFOLLOW opened itself).
func byName(name string, do func(fd int, st *syscall.Stat_t, pathOnly bool) error) error {
	fd, err := shmOpenFD(name, os.O_RDONLY, 0)
	pathOnly := false
	if errors.Is(err, syscall.EACCES) {
		pathOnly = true
		fd, err = syscall.Open(Dir()+"/"+baseName(name), kernel.O_PATH|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0)
		if err != nil {
			return &fs.PathError{Op: "open", Path: name, Err: err}
		}
	}
	if err != nil {
		return err
	}
	defer closeFD(fd)
	st, err := fstatFD(name, fd)
	if err != nil {
		return err
	}
	if st.Mode&syscall.S_IFMT != syscall.S_IFREG {
		return explain(&fs.PathError{Op: "shm_open", Path: name, Err: syscall.ENODEV})
	}
	return do(fd, st, pathOnly)
}

// Truncate changes the object's size to size bytes and maps all of it in
// this process, in one cgo crossing: fstat, then, to grow, fallocate of the
// new range only (ftruncate where the file system cannot reserve), so that
// a full /dev/shm is an error wrapping syscall.ENOSPC and leaves the object
// as it was, never a SIGBUS later; to shrink, ftruncate. size 0 leaves an
// empty Bytes. A grow of an object in memory (tmpfs, memfd) that cannot
// fit in the memory cgroup's limit or in the host's memory is an error
// wrapping syscall.ENOMEM, as for Create; a file on disk is not checked.
//
// What stays valid: no address that a slice from Bytes or a word from
// Uint32 or Uint64 pointed into is unmapped before Close, so a stale one
// never reaches another object. A grow that the mapping does not cover
// maps twice the new size (the part past the object's end is mapped
// beyond EOF, as a shrunk tail is, and never handed out), so that later
// grows, and the Remaps that follow another process's, need no new
// mapping until the object doubles: growing page by page costs O(log n)
// mappings and address space within a few times the object's size. That
// mapping extends the old one in place (mremap without MREMAP_MAYMOVE)
// where the address space after it is free; otherwise it is made elsewhere
// (mmap, or for a private Mapping mremap(MREMAP_MAYMOVE|MREMAP_DONTUNMAP),
// which takes this process's private bytes along) and the old one stays
// mapped, to the same object, until Close. (A private Mapping on Linux
// before 5.13, which has no MREMAP_DONTUNMAP for files, moves with
// MREMAP_MAYMOVE and maps the object over the old range again at once,
// with MAP_FIXED_NOREPLACE: best effort, since another thread of the
// process could map something there in between, and the old range is then
// left to it.) So after a grow, earlier slices and words keep reading and
// writing the object's bytes (for a shared Mapping; a private one's old
// range shows the object as it is, without this process's private
// writes), but Bytes must be called again to see the new size. A shrink
// keeps the mapping's tail: a stale slice or word past the new end faults
// (SIGBUS; ReadAt and WriteAt are bounded by the new size) until a later
// grow brings those bytes back.
//
// Truncate holds the Mapping's lock: ReadAt, WriteAt and Sync in flight
// finish first, and later ones see the new mapping. Other processes keep
// their mappings: after a grow they see the new bytes only once they call
// Remap (or Open again); after a shrink, their ReadAt and WriteAt of the
// lost pages return ErrFault, and their Bytes faults. A read-only Mapping
// returns an error wrapping syscall.EBADF, as os.File does (a memfd sealed
// against writing: syscall.EPERM, saying so). After Close it
// returns an error wrapping fs.ErrClosed.
//
// When another process resizes concurrently, the size last set wins; the
// mapping covers size bytes.
func (m *Mapping) Truncate(size int) error {
	m.lockOut()
	defer m.unlockIn()
	switch {
	case m.data == nil:
		return m.errClosed("truncate")
	case m.readOnly:
		return m.errReadOnly("truncate")
	case size < 0:
		return argErr("truncate", m.name, "negative size %d", size)
	case m.off != 0:
		return m.errOffset("truncate")
	}
	// What the object grows by is what fallocate reserves: from its own
	// size (another process may have grown it already), not this mapping's;
	// and only tmpfs pages are memory (a file on disk reserves blocks).
	// Every size counts, and so does a grow of an object that a peer shrank
	// below this mapping.
	var grow int64
	if onTmpfs(m.fd) {
		if st, err := fstatFD(m.name, m.fd); err == nil {
			grow = int64(size) - st.Size
		}
	}
	if err := checkMemoryRoom("truncate", m.name, grow); err != nil {
		return err
	}
	return m.resize(int64(size))
}

// Remap follows a resize made by another process (or by Truncate through
// another Mapping): fstat for the object's size, then, where the mapping
// must grow, as Truncate grows it (mremap in place, else a new mapping
// beside the old), in one cgo crossing.
// Size then reports the new size. As with Truncate, nothing earlier Bytes
// slices and words point into is unmapped before Close (the mapping may
// move; the old one then stays), and ReadAt, WriteAt and Sync in flight
// finish first. A Mapping that is already the object's size
// is left as it is. Read-only Mappings may Remap. A Mapping that MapFile
// made from an offset other than 0 can neither Truncate nor Remap (an
// error wrapping syscall.EINVAL); one from offset 0 maps the whole object
// afterwards. After Close it returns an error wrapping fs.ErrClosed.
func (m *Mapping) Remap() error {
	m.lockOut()
	defer m.unlockIn()
	if m.data == nil {
		return m.errClosed("remap")
	}
	if m.off != 0 {
		return m.errOffset("remap")
	}
	return m.resize(-1)
}

// resize is Truncate (size >= 0) and Remap (size < 0); m.mu is held for
// writing. Nothing a Uint32, Uint64 or Bytes handed out points into is
// ever unmapped before Close: the shim keeps a shrunk mapping's tail, grows
// in place where it can, and otherwise leaves the old mapping in place,
// which m.retired keeps for Close (as far as data ever reached into it).
func (m *Mapping) resize(size int64) error {
	old := m.whole
	fd, done := mapFD(m.name, m.fd, m.mapFlags()) // a read-only mapping stays one the kernel counts so (see MapFile)
	whole, n, moved, err := resizeMap(m.name, fd, m.whole, size, m.mapFlags())
	done()
	if n < 0 { // fstat refused (an object too large to map): nothing changed
		n = len(m.data)
	}
	if moved {
		// The old mapping stays for the stale slices and words, which
		// reach no further than data ever did; its room to grow past
		// that was never handed out and goes now.
		keep := pageUp(m.handed, len(old))
		if keep < len(old) {
			unmapClose(m.name, old[keep:], -1)
		}
		if keep > 0 {
			m.retired = append(m.retired, old[:keep])
		}
		m.handed = 0
	}
	m.whole = whole
	if whole == nil {
		m.data = []byte{}
	} else {
		m.data = whole[:n:n]
	}
	m.handed = max(m.handed, n)
	return explain(err)
}

// pageUp is n rounded up to a whole number of pages, or limit where that
// is less (and where rounding would overflow an int on 32-bit).
func pageUp(n, limit int) int {
	if r := n % pageSize; r != 0 {
		if n > limit-(pageSize-r) {
			return limit
		}
		n += pageSize - r
	}
	return min(n, limit)
}

// errOffset is Truncate's and Remap's error for a mapping that does not
// start at the beginning of its file.
func (m *Mapping) errOffset(op string) error {
	return argErr(op, m.name, "the mapping starts at offset %d, not at the start of the object it would follow", m.off)
}

// isObject reports whether a directory entry of Dir is a shared memory
// object: a regular file, and not a named semaphore (sem.NAME).
func isObject(name string, mode fs.FileMode) bool {
	return mode.IsRegular() && !strings.HasPrefix(name, "sem.")
}

// List returns the names of this host's shared memory objects (of this
// mount namespace's /dev/shm, the directory glibc 2.34 and later and musl
// use), each as Open takes it: "/name". Named semaphores (sem.*) and
// anything that is not a regular file are left out. A leftover temporary
// name "NAME.~RANDOM" of a creator that was killed before publishing is
// an object like any other. The names are in directory order. Objects
// come and go while List reads; it reports what it saw.
func List() ([]string, error) {
	var names []string
	for fi, err := range Objects() {
		if err != nil {
			return names, err
		}
		names = append(names, "/"+fi.Name())
	}
	return names, nil
}

// Objects returns an iterator over this host's shared memory objects, as
// List selects them, each with its fs.FileInfo from the directory (lstat:
// no permission on the object is needed). Name is the file name, without
// the slash Open takes; Sys is the *syscall.Stat_t. An object removed
// while Objects reads is left out. An error reading the directory is
// yielded once, last.
func Objects() iter.Seq2[fs.FileInfo, error] { return dirEntries(isObject) }

// Semaphores returns an iterator over this host's named semaphores as
// glibc keeps them, the regular files sem.NAME of Dir, each with its
// fs.FileInfo from the directory (lstat): Name is the file name
// ("sem.x" for the semaphore "/x"), Sys the *syscall.Stat_t. musl keeps a
// semaphore as a file like an object, which Objects lists and which no
// directory entry tells apart: there Semaphores yields only what glibc
// made. A semaphore removed while Semaphores reads is left out; an error
// reading the directory is yielded once, last.
func Semaphores() iter.Seq2[fs.FileInfo, error] {
	return dirEntries(func(name string, mode fs.FileMode) bool {
		return mode.IsRegular() && strings.HasPrefix(name, "sem.") && len(name) > len("sem.")
	})
}

// dirEntries iterates over the entries of Dir that keep selects.
func dirEntries(keep func(name string, mode fs.FileMode) bool) iter.Seq2[fs.FileInfo, error] {
	return func(yield func(fs.FileInfo, error) bool) {
		d, err := os.Open(Dir())
		if err != nil {
			yield(nil, err)
			return
		}
		defer d.Close()
		for {
			entries, err := d.ReadDir(256)
			for _, e := range entries {
				if !keep(e.Name(), e.Type()) {
					continue
				}
				fi, err := e.Info()
				if errors.Is(err, fs.ErrNotExist) {
					continue // removed meanwhile
				}
				if !yield(fi, err) || err != nil {
					return
				}
			}
			if err == io.EOF {
				return
			}
			if err != nil {
				yield(nil, err)
				return
			}
		}
	}
}

// Holders returns the pids, in increasing order, of the processes that
// have the object name open or mapped, as fuser does: the object is
// identified by device and inode (Stat), never by path, then every
// /proc/PID/fd/* is stat'ed and every /proc/PID/maps read for that device
// and inode. So a process is found that opened the object under another
// name, or whose object's name was unlinked or replaced, or that
// closed the descriptor but keeps the mapping.
//
// Processes it may not inspect (another user's, unless root) are not
// skipped silently: the error then wraps fs.ErrPermission and says how
// many, and the pids found are returned beside it. Processes hidden by a
// /proc mounted with hidepid cannot be seen at all. The answer may be out
// of date as soon as it is returned: a process may open the object next.
func Holders(name string) ([]int, error) {
	fi, err := Stat(name)
	if err != nil {
		return nil, err
	}
	st := fi.Sys().(*syscall.Stat_t)
	id := proc.FileID{Dev: uint64(st.Dev), Ino: uint64(st.Ino)}
	held, err := scanHolders(map[proc.FileID]bool{id: true}, name)
	return held[id], err
}

// HoldersAll returns the holders of every object List would return, keyed
// by name ("/name") and, for each, in increasing order, as Holders finds
// them but with one scan of /proc for all. Objects that no process holds
// are left out. Errors are as Holders'.
func HoldersAll() (map[string][]int, error) {
	names := make(map[proc.FileID][]string)
	var errs []error
	for fi, err := range Objects() {
		if err != nil {
			errs = append(errs, err)
			break
		}
		st := fi.Sys().(*syscall.Stat_t)
		id := proc.FileID{Dev: uint64(st.Dev), Ino: uint64(st.Ino)}
		names[id] = append(names[id], "/"+fi.Name())
	}
	ids := make(map[proc.FileID]bool, len(names))
	for id := range names {
		ids[id] = true
	}
	held, err := scanHolders(ids, Dir())
	if err != nil {
		errs = append(errs, err)
	}
	out := make(map[string][]int)
	for id, pids := range held {
		for _, n := range names[id] {
			out[n] = pids
		}
	}
	return out, errors.Join(errs...)
}

// procDir is where scanHolders looks; tests may point it elsewhere.
var procDir = "/proc"

// scanHolders returns the pids that have any of ids open or mapped, per
// id, sorted. Processes it may not inspect are counted in an error that
// wraps fs.ErrPermission, with Path what (the name asked about).
func scanHolders(ids map[proc.FileID]bool, what string) (map[proc.FileID][]int, error) {
	held := make(map[proc.FileID][]int)
	if len(ids) == 0 {
		return held, nil
	}
	byMap := make(map[proc.MapID]proc.FileID, len(ids))
	for id := range ids {
		byMap[id.MapID()] = id
	}
	d, err := os.Open(procDir)
	if err != nil {
		return held, &fs.PathError{Op: "holders", Path: what, Err: err}
	}
	defer d.Close()
	pidNames, err := d.Readdirnames(-1)
	if err != nil {
		return held, &fs.PathError{Op: "holders", Path: what, Err: err}
	}
	var denied []int
	for _, pn := range pidNames {
		pid, err := strconv.Atoi(pn)
		if err != nil || pid <= 0 {
			continue
		}
		found := make(map[proc.FileID]bool)
		dir := procDir + "/" + pn
		fdErr := scanFDs(dir+"/fd", ids, found)
		mapErr := scanMaps(dir+"/maps", byMap, found)
		for id := range found {
			held[id] = append(held[id], pid)
		}
		if len(found) == 0 && (errors.Is(fdErr, fs.ErrPermission) || errors.Is(mapErr, fs.ErrPermission)) &&
			!holdsNothing(dir) {
			denied = append(denied, pid)
		}
	}
	for _, pids := range held {
		slices.Sort(pids)
	}
	if len(denied) > 0 {
		shown := denied[:min(len(denied), 10)]
		more := ""
		if len(denied) > len(shown) {
			more = ", ..."
		}
		return held, &fs.PathError{Op: "holders", Path: what,
			Err: &DeniedError{PIDs: denied, msg: fmt.Sprintf("%d %s could not be inspected (pids %s%s)",
				len(denied), plural(len(denied), "process", "processes"), strings.Trim(fmt.Sprint(shown), "[]"), more)}}
	}
	return held, nil
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// holdsNothing reports whether the process at dir (/proc/PID) can hold
// no object: a kernel thread (PF_KTHREAD), or a zombie, whose descriptors
// and memory are gone. /proc/PID/stat is readable by every user.
func holdsNothing(dir string) bool {
	data, err := os.ReadFile(dir + "/stat")
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(data, ')') // after the command, which may hold anything
	if i < 0 {
		return false
	}
	f := strings.Fields(string(data[i+1:])) // state ppid pgrp session tty_nr tpgid flags ...
	if len(f) < 7 {
		return false
	}
	const pfKthread = 0x00200000
	flags, err := strconv.ParseUint(f[6], 10, 64)
	return err == nil && flags&pfKthread != 0 || f[0] == "Z" || f[0] == "X"
}

// DeniedError is the error inside the *fs.PathError of Holders and
// HoldersAll when some processes could not be inspected; it wraps
// fs.ErrPermission. PIDs lists them, in the order /proc gave them.
type DeniedError struct {
	PIDs []int
	msg  string
}

// Error says how many processes could not be inspected, and which.
func (e *DeniedError) Error() string { return e.msg + ": " + fs.ErrPermission.Error() }

// Unwrap returns fs.ErrPermission, so errors.Is(err, fs.ErrPermission)
// holds.
func (e *DeniedError) Unwrap() error { return fs.ErrPermission }

// scanFDs adds to found the ids that the descriptors in dir
// (/proc/PID/fd) refer to. A process that exits meanwhile has none.
func scanFDs(dir string, ids map[proc.FileID]bool, found map[proc.FileID]bool) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	fds, err := d.Readdirnames(-1)
	if err != nil {
		return err
	}
	var st syscall.Stat_t
	var denied error
	for _, fd := range fds {
		err := syscall.Stat(dir+"/"+fd, &st)
		if err == syscall.EACCES || err == syscall.EPERM {
			// The directory can be listed, but following its links
			// needs ptrace access (a process with more capabilities).
			denied = &fs.PathError{Op: "stat", Path: dir + "/" + fd, Err: err}
			continue
		}
		if err != nil {
			continue // closed meanwhile
		}
		if id := (proc.FileID{Dev: uint64(st.Dev), Ino: uint64(st.Ino)}); ids[id] {
			found[id] = true
		}
	}
	return denied
}

// scanMaps adds to found the ids mapped in path (/proc/PID/maps), whose
// lines are "start-end perms offset major:minor inode [path]".
func scanMaps(path string, byMap map[proc.MapID]proc.FileID, found map[proc.FileID]bool) error {
	maps, err := proc.Maps(path)
	if err != nil {
		return err
	}
	for _, m := range maps {
		if id, ok := byMap[m.ID()]; ok && m.Inode != 0 {
			found[id] = true
		}
	}
	return nil
}
