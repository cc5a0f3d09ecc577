//go:build linux && cgo

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
// Sync, SyncRange, File, Seals, AddSeals and Close return errors wrapping
// fs.ErrClosed, Bytes returns nil, Size 0 and Sealed false; Name, Created
// and Unlink still work. CreateMemfd makes a Segment with no name.
type Segment struct {
	mapping
	created bool
	private bool // mapped MAP_PRIVATE: Truncate and Remap map it so again
	memfd   bool // made by CreateMemfd or NewMemfd: no name
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

	// Populate pre-faults the whole mapping so that first touches run at
	// memory speed: madvise MADV_POPULATE_WRITE, or MADV_POPULATE_READ for
	// read-only, private and file mappings (Linux 5.14 and later); on
	// older kernels mmap with MAP_POPULATE, then mincore to check that
	// every page is resident. A page that cannot be populated (a full
	// /dev/shm under a sparse object) is an error wrapping syscall.EFAULT
	// from the call, not a SIGBUS later. A mapping of 64 MiB or more is
	// populated in parallel, in slices whose offsets are multiples of
	// 2 MiB, by up to GOMAXPROCS (at most 8) goroutines.
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
// mmap(MAP_SHARED), in one cgo crossing. The object is made under a random
// temporary name derived from name and only then linked to name (see
// OpenFile), so no other process ever sees it half-made. It fails with an
// error wrapping fs.ErrExist if the name exists, so nobody can plant an
// object under a name you are about to create, and with syscall.ENOSPC if
// /dev/shm cannot hold size bytes; on failure only the temporary name is
// removed. size must be positive.
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
// which through Created: it opens what exists, else creates exclusively,
// and opens again if another process created it in between.
//
// Every shm_open is O_NONBLOCK, and anything but a regular file (a FIFO,
// directory or socket someone made under the name) is refused with an
// error wrapping syscall.ENODEV, or the kernel's verdict.
//
// A new object is published atomically. shm_open(name, O_RDONLY) lets libc
// judge the name (an existing one is EEXIST at once); the object is then
// made by shm_open(O_CREAT|O_EXCL) under a random temporary name,
// "NAME.~RANDOM" cut to fit NAME_MAX, sized and mapped (and populated),
// then linked to name with link(2) in the directory libc uses (learnt once
// per process from /proc/self/fd), which fails with EEXIST if the name was
// taken meanwhile, exactly as O_EXCL would; the temporary name is then
// removed with shm_unlink. If any step fails, only the temporary name is
// removed. Objects made by other programs that create under the real name
// (C, Python) can still be seen by Open at size 0 until they are sized.
//
// The calls (shm_open, fallocate or ftruncate or fstat, mmap, madvise,
// link, shm_unlink) are made in one cgo crossing, two when a large
// mapping is populated in parallel. Argument errors have Op "openfile".
func OpenFile(name string, flag int, perm fs.FileMode, size int, opt *Options) (*Segment, error) {
	bad := func(format string, args ...any) (*Segment, error) {
		return nil, argErr("openfile", name, format, args...)
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
	if testNoMadvPopulate {
		flags |= mapNoMadv
	}
	for tries := 1; ; tries++ {
		r, tmp, err := shmOpen(name, flag, uint32(perm), int64(size), flags)
		if err == nil {
			err = finishPopulate(name, tmp, r)
		}
		if err == nil && r.pending {
			if err = publish(name, tmp, r.fd); err != nil {
				unmapClose(name, r.data, r.fd)
				shmUnlink(tmp)
				if flag&os.O_EXCL == 0 && errors.Is(err, fs.ErrExist) && tries < 100 {
					continue // open-or-create: another process made it first; open it
				}
			}
		}
		if err != nil {
			return nil, err
		}
		s := &Segment{created: r.created, private: opt != nil && opt.Private}
		s.init(name, r, access == os.O_RDONLY)
		return s, nil
	}
}

// testNoMadvPopulate makes OpenFile behave as on a kernel without
// MADV_POPULATE_* (before 5.14); set by tests only.
var testNoMadvPopulate bool

// tmpName returns a fresh temporary name for a new object that is to be
// called name: name's own (without its leading slashes, cut short to leave
// room within NAME_MAX), ".~" and a random part, as "/NAME.~RANDOM". Only
// the process that makes it ever knows it.
func tmpName(name string) string {
	const nameMax = 255 // NAME_MAX on Linux
	suffix := ".~" + strconv.FormatUint(rand.Uint64(), 36)
	base := strings.TrimLeft(name, "/")
	if len(base) > nameMax-len(suffix) {
		base = base[:nameMax-len(suffix)]
	}
	return "/" + base + suffix
}

// Unlink removes the name of a shared memory object: shm_unlink(name).
// Processes that have it mapped keep their memory until they unmap it; the
// memory is freed when the last mapping goes. An error wraps fs.ErrNotExist
// if there is no such object.
func Unlink(name string) error {
	return shmUnlink(name)
}

// Name returns the name the Segment was opened or created with, as given.
// For a memfd Segment (CreateMemfd) it is "memfd:NAME", the label
// /proc/self/fd shows, not a name in /dev/shm: the package's functions
// given it (Open, Stat, Holders, Unlink) would look for an unrelated object
// of that name; use the Segment's own methods (Stat, File, Unlink says
// there is nothing to unlink). Safe after Close and across goroutines.
func (m *Segment) Name() string { return m.name }

// Created reports whether the call that returned m created the object
// (always true from Create and CreateTemp, false from Open).
func (m *Segment) Created() bool { return m.created }

// Unlink removes the Segment's name: shm_unlink(s.Name()). The mapping
// stays usable until Close. It works before and after Close, and can be
// called from any goroutine. A memfd Segment has no name: its Unlink is an
// error wrapping syscall.EINVAL that says so.
func (m *Segment) Unlink() error {
	if m.memfd {
		return m.errNoName()
	}
	return Unlink(m.name)
}
