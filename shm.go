//go:build cgo

// Package shm gives Go programs POSIX shared memory with exactly the C
// library's semantics. It calls libc's shm_open, shm_unlink, fallocate,
// ftruncate, mmap, msync and munmap through a small C shim, one cgo crossing
// per operation, and hands the mapping to Go as a []byte.
//
// A Go program and a C, C++, Python (multiprocessing.shared_memory) or Rust
// program that name the same object share the same bytes:
//
//	s, err := shm.Create("/demo", 4096) // shm_open(O_CREAT|O_EXCL|O_RDWR, 0600)
//	if err != nil { ... }
//	defer s.Close()  // munmap + close; never unlinks
//	defer s.Unlink() // shm_unlink: the name goes, the memory stays mapped
//	copy(s.Bytes(), "hello")
//
// and in another process
//
//	s, err := shm.Open("/demo")
//
// # Names
//
// Names go to libc unchanged: what "/x", "x" or "a/b" mean is what the C
// library makes of them (glibc and musl strip leading slashes and refuse a
// slash inside). The one exception is a name holding a NUL byte, which is
// EINVAL before any C call, since C would cut it short and act on another
// object.
//
// # Errors
//
// Errors are *fs.PathError with Op the libc function that failed
// ("shm_open", "fallocate", "mmap", ...), Path the name and Err the
// syscall.Errno, so errors.Is(err, fs.ErrExist), fs.ErrNotExist,
// fs.ErrPermission or syscall.ENOSPC work. Bad arguments are errors wrapping
// syscall.EINVAL, never panics and never silent clamps.
//
// # Safety
//
// A page of a shared mapping can vanish: another process shrinks the
// object, or a full /dev/shm cannot supply a page of a sparse object.
// Touching it raises SIGBUS, which kills a Go program. This package
// reserves every page when it creates an object (a full /dev/shm is ENOSPC
// from Create, and nothing is left behind), and ReadAt and WriteAt turn the
// fault into ErrFault. Bytes is the fast, unguarded path.
//
// A Segment is safe for concurrent use by its methods; Close waits for
// ReadAt, WriteAt and Sync in flight. Synchronisation between processes is
// the user's: for example sync/atomic on aligned words of the mapping.
package shm

import (
	"errors"
	"io/fs"
	"math/rand/v2"
	"os"
	"runtime"
	"strconv"
	"strings"
)

// A Segment is a POSIX shared memory object, open and mapped into memory.
//
// Its methods are safe for concurrent use. After Close, ReadAt, WriteAt,
// Sync, SyncRange and Close return errors wrapping fs.ErrClosed, Bytes
// returns nil and Size 0; Name, Created and Unlink still work.
type Segment struct {
	mapping
	created bool
}

// Options are the choices of OpenFile (and MapFile) that the short forms
// fix. The zero value, or a nil *Options, is what Create and Open do.
type Options struct {
	// Private maps the object copy-on-write (MAP_PRIVATE): this process's
	// writes are its own, never seen by other processes nor kept in the
	// object.
	Private bool

	// Sparse skips the reservation of a new object's pages: ftruncate
	// only, no fallocate. Creating is faster for huge objects that will be
	// touched sparsely, but a full /dev/shm then shows only later, as
	// SIGBUS through Bytes or ErrFault through ReadAt and WriteAt.
	Sparse bool

	// Populate pre-faults the whole mapping (madvise MADV_POPULATE_WRITE,
	// or MADV_POPULATE_READ for read-only and private mappings; on kernels
	// before 5.14, mmap with MAP_POPULATE) so that first touches run at
	// memory speed. A page that cannot be populated is an error from the
	// call, not a SIGBUS later. A mapping of 64 MiB or more is populated
	// in parallel, in 2 MiB-aligned slices, by up to GOMAXPROCS (at most 8)
	// goroutines.
	Populate bool
}

func (o *Options) mapFlags() int {
	if o == nil {
		return 0
	}
	var f int
	if o.Private {
		f |= mapPrivate
	}
	if o.Sparse {
		f |= mapSparse
	}
	if o.Populate {
		f |= mapPopulate
		if runtime.GOMAXPROCS(0) > 1 {
			f |= mapDefer // large mappings: finishPopulate, in parallel
		}
	}
	return f
}

// Create creates a new shared memory object of size bytes and maps it
// read-write: shm_open(name, O_RDWR|O_CREAT|O_EXCL, 0600), fallocate to
// reserve every page (ftruncate where the file system cannot reserve), and
// mmap(MAP_SHARED), in one cgo crossing. It fails with an error wrapping
// fs.ErrExist if the name exists, so nobody can plant an object under a
// name you are about to create, and with syscall.ENOSPC if /dev/shm cannot
// hold size bytes; if any step after shm_open fails, the object it made is
// unlinked. size must be positive.
func Create(name string, size int) (*Segment, error) {
	return OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600, size, nil)
}

// CreateTemp creates a new object like Create under a fresh random name
// made from pattern as os.CreateTemp does: the last "*" of pattern is
// replaced by a random string, or the string is appended if there is no
// "*". The name starts with "/", whether pattern does or not; pattern must
// not hold any other "/". It retries on a name that exists. Name tells the
// name chosen; the caller unlinks it.
func CreateTemp(pattern string, size int) (*Segment, error) {
	pattern = strings.TrimPrefix(pattern, "/")
	if strings.ContainsRune(pattern, '/') {
		return nil, argErr("createtemp", pattern, "pattern contains a slash")
	}
	prefix, suffix := pattern, ""
	if i := strings.LastIndexByte(pattern, '*'); i >= 0 {
		prefix, suffix = pattern[:i], pattern[i+1:]
	}
	for range 10000 {
		name := "/" + prefix + randName() + suffix
		s, err := Create(name, size)
		if !errors.Is(err, fs.ErrExist) {
			return s, err
		}
	}
	return nil, &fs.PathError{Op: "createtemp", Path: "/" + prefix + "*" + suffix, Err: fs.ErrExist}
}

// randName is the random part of CreateTemp's names; tests replace it.
var randName = func() string { return strconv.FormatUint(rand.Uint64(), 36) }

// Open opens an existing shared memory object and maps all of it
// read-write: shm_open(name, O_RDWR), fstat for the size, and
// mmap(MAP_SHARED), in one cgo crossing. Open never changes the object's
// size. An object of size 0 (one whose creator has not sized it yet) opens
// as a Segment with Size 0 and an empty Bytes; open it again once it has
// been sized.
func Open(name string) (*Segment, error) {
	return OpenFile(name, os.O_RDWR, 0, 0, nil)
}

// OpenFile is the general form of Create and Open, in the manner of
// os.OpenFile. flag is os.O_RDONLY (mapped PROT_READ; WriteAt is refused)
// or os.O_RDWR, or'ed with any of os.O_CREATE, os.O_EXCL and os.O_TRUNC;
// perm (permission bits only) is the mode of an object this call creates,
// less the umask, as for shm_open. opt may be nil.
//
// When the call creates the object, or truncates it with os.O_TRUNC, it
// sizes it to size bytes, which must then be positive, reserving the pages
// with fallocate unless opt.Sparse; otherwise size must be 0 and the
// mapping covers the object's current size, from fstat. os.O_CREATE and
// os.O_TRUNC need os.O_RDWR.
//
// os.O_CREATE without os.O_EXCL opens the object or creates it, and tells
// which through Created: it tries shm_open with O_EXCL, then without
// O_CREAT, and again if the object vanished in between. An object that
// another process has created but not yet sized opens with Size 0.
//
// The calls (shm_open, fallocate or ftruncate or fstat, mmap, madvise) are
// made in one cgo crossing. If a step after shm_open fails, the descriptor
// is closed and the object unlinked, but only if this call created it.
func OpenFile(name string, flag int, perm fs.FileMode, size int, opt *Options) (*Segment, error) {
	bad := func(format string, args ...any) (*Segment, error) {
		return nil, argErr("shm_open", name, format, args...)
	}
	const known = os.O_RDONLY | os.O_WRONLY | os.O_RDWR | os.O_CREATE | os.O_EXCL | os.O_TRUNC
	if flag&^known != 0 {
		return bad("unsupported flag bits %#x", flag&^known)
	}
	access := flag & (os.O_RDONLY | os.O_WRONLY | os.O_RDWR)
	sizing := flag&(os.O_CREATE|os.O_TRUNC) != 0
	switch {
	case access != os.O_RDONLY && access != os.O_RDWR:
		return bad("flag must hold os.O_RDONLY or os.O_RDWR: a write-only object cannot be mapped")
	case sizing && access != os.O_RDWR:
		return bad("os.O_CREATE and os.O_TRUNC need os.O_RDWR to size the object")
	case flag&os.O_EXCL != 0 && flag&os.O_CREATE == 0:
		return bad("os.O_EXCL without os.O_CREATE")
	case perm&^fs.ModePerm != 0:
		return bad("mode %v: only permission bits are allowed", perm)
	case sizing && size <= 0:
		return bad("size %d must be positive", size)
	case !sizing && size != 0:
		return bad("size %d given, but without os.O_CREATE or os.O_TRUNC the size is the object's own: pass 0", size)
	}
	flags := opt.mapFlags()
	if access == os.O_RDONLY {
		flags |= mapReadOnly
	}
	r, err := shmOpen(name, flag, uint32(perm), int64(size), flags)
	if err == nil {
		err = finishPopulate(name, r)
	}
	if err != nil {
		return nil, err
	}
	s := &Segment{created: r.created}
	s.init(name, r, access == os.O_RDONLY)
	return s, nil
}

// Unlink removes the name of a shared memory object: shm_unlink(name).
// Processes that have it mapped keep their memory until they unmap it; the
// memory is freed when the last mapping goes. An error wraps fs.ErrNotExist
// if there is no such object.
func Unlink(name string) error {
	return shmUnlink(name)
}

// Name returns the name the Segment was opened or created with, as given.
func (s *Segment) Name() string { return s.name }

// Created reports whether the call that returned s created the object
// (always true from Create and CreateTemp, false from Open).
func (s *Segment) Created() bool { return s.created }

// Unlink removes the Segment's name: shm_unlink(s.Name()). The mapping
// stays usable until Close. It works before and after Close, and can be
// called from any goroutine.
func (s *Segment) Unlink() error { return Unlink(s.name) }
