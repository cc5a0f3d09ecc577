//go:build linux && cgo

package shm

import (
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"

	"github.com/posixshm/shm/internal/proc"
	"github.com/posixshm/shm/internal/tmpname"
)

// A Segment is a POSIX shared memory object that has a name, open and
// mapped into memory: a Mapping (every method of which it has) with what
// the name adds: Name, Created and Unlink. Only Create, CreateTemp, Open
// and OpenFile make one; a memfd, which has no name, is a Mapping
// (CreateMemfd).
//
// Its methods are safe for concurrent use. After Close, the Mapping's
// methods return errors wrapping fs.ErrClosed (Bytes returns nil, Size 0);
// Name, Created and Unlink still work.
type Segment struct {
	Mapping
	created bool
}

// Create creates a new shared memory object of size bytes and maps it
// read-write: shm_open(name, O_RDWR|O_CREAT|O_EXCL, 0600), fallocate to
// reserve every page (ftruncate where the file system cannot reserve), and
// mmap(MAP_SHARED), in one cgo crossing. The object is made under a random
// temporary name derived from name and only then renamed to name (see
// OpenFile: a crossing before, to let libc judge the name, and one for
// renameat2 after), so no other process ever sees it half-made; afterwards
// its descriptor and mapping show "/dev/shm/NAME" in /proc, as after
// libc's shm_open. It fails with an
// error wrapping fs.ErrExist if the name exists, so nobody can plant an
// object under a name you are about to create, and with syscall.ENOSPC if
// /dev/shm cannot hold size bytes; on failure only the temporary name is
// removed. size must be positive.
//
// tmpfs pages are charged to the memory cgroup of the process that
// reserves them, and a reservation beyond the cgroup's limit is an OOM
// kill, not an error. So where the process's memory cgroup (v2 memory.max
// and memory.current, or v1 memory.limit_in_bytes and
// memory.usage_in_bytes, along the hierarchy from /proc/self/cgroup) has a
// limit, a reservation of any size that cannot fit in what is left
// (reclaimable file cache and usable swap counted, a sixteenth of the
// limit kept for the cgroup's processes) is refused with an
// error wrapping syscall.ENOMEM, Op "openfile", before any page is
// touched. So, everywhere, is one beyond the host's memory (MemAvailable
// and SwapFree of /proc/meminfo, less a sixteenth of MemTotal). This is
// best effort: other processes allocate meanwhile, and the kernel may
// reclaim more or less than counted. Sparse objects are not
// checked unless Options.Populate makes their pages resident (Op
// "madvise" then): they reserve nothing.
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
// os.O_TRUNC need os.O_RDWR. A reservation, os.O_TRUNC's too, is checked
// against the memory cgroup's limit as Create describes (ENOMEM).
//
// os.O_CREATE without os.O_EXCL opens the object or creates it, and tells
// which through Created: it opens what exists, else creates exclusively,
// and opens again if another process created it in between.
//
// Every shm_open is O_NONBLOCK, and anything but a regular file (a FIFO,
// directory or socket someone made under the name) is refused with an
// error wrapping syscall.ENODEV, or the kernel's verdict.
//
// A new object is published atomically (create, below, tells the whole
// protocol): it is made under a random temporary name, "NAME.~RANDOM" cut
// to fit NAME_MAX, sized and mapped (and populated), then renamed to name
// (renameat2 RENAME_NOREPLACE), which fails with EEXIST if the name was
// taken meanwhile, exactly as O_EXCL would; if any step fails, only the
// temporary name is removed. The rename moves the object's one directory
// entry, so /proc/self/fd and /proc/self/maps (lsof, CRIU) then show
// "/dev/shm/NAME", exactly as after shm_open(name); only where renameat2 is
// refused (Linux before 3.15) is the object linked instead and the
// temporary name removed, and /proc shows "NAME.~RANDOM (deleted)".
// Objects made by other programs that create under the real name (C,
// Python) can still be seen by Open at size 0 until they are sized.
//
// Opening is one cgo crossing (shm_open, fstat or fallocate or ftruncate,
// mmap, madvise); creating is three (shm_open of name to probe it;
// shm_open of the temporary name, fallocate or ftruncate, mmap, madvise;
// renameat2). Populating a mapping of 64 MiB or more adds one madvise
// crossing per slice, up to eight, made in parallel (Options.Populate).
// Argument errors, and a reservation refused for the memory cgroup, have
// Op "openfile".
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
	case opt.init() != nil && opt.Private:
		return bad("Init with Private: a private mapping's writes never reach the object")
	case opt != nil && opt.Sparse && !sizing:
		return bad("Options.Sparse without os.O_CREATE or os.O_TRUNC: the call sizes nothing, so it reserves nothing")
	case opt.init() != nil && flag&os.O_CREATE == 0:
		return bad("Options.Init without os.O_CREATE: the call creates nothing to initialise")
	}
	flags := opt.mapFlags()
	if access == os.O_RDONLY {
		flags |= mapReadOnly
	}
	r, err := openOrCreate(name, flag, uint32(perm), int64(size), flags, opt.init())
	if err != nil {
		return nil, explain(err)
	}
	s := &Segment{created: r.created}
	s.private = opt != nil && opt.Private
	s.init(name, r, access == os.O_RDONLY)
	return s, nil
}

// retries bounds the loops of the publish protocol: how often a race with
// other processes, or a colliding temporary name, is tried again.
const retries = 100

// openOrCreate opens (without os.O_CREATE), creates (with os.O_EXCL) or,
// with os.O_CREATE alone, opens what exists, else creates exclusively, and
// tries again while another process creates or removes the name in
// between.
func openOrCreate(name string, flag int, perm uint32, size int64, flags int, init func([]byte) error) (result, error) {
	if flag&os.O_CREATE == 0 {
		return open(name, flag, size, flags)
	}
	if flag&os.O_EXCL != 0 {
		return create(name, perm, size, flags, init)
	}
	for tries := 0; ; tries++ {
		r, err := open(name, flag&^os.O_CREATE, size, flags)
		if !errors.Is(err, fs.ErrNotExist) || tries == retries {
			return r, err
		}
		r, err = create(name, perm, size, flags, init)
		if !errors.Is(err, fs.ErrExist) {
			return r, err
		}
	}
}

// open opens and maps the existing object name, and populates it. With
// os.O_TRUNC it reserves (or populates) size bytes as create does, so the
// memory cgroup is checked first, as for create; without, populating
// fills the object's holes, which are checked (checkPopulate).
func open(name string, flag int, size int64, flags int) (result, error) {
	if flag&os.O_TRUNC == 0 && flags&mapPopulate != 0 {
		if err := checkPopulate(name, flag); err != nil {
			return result{}, err
		}
	}
	if flag&os.O_TRUNC != 0 && resident(flags) {
		if err := checkMemoryRoom(residentOp("openfile", flags), name, size); err != nil {
			// What shm_open would say first (ENOENT, EACCES, ...) is the
			// answer; only an object it opens is too big to reserve.
			fd, oerr := shmOpenFD(name, flag&(os.O_RDONLY|os.O_RDWR), 0)
			if oerr != nil {
				return result{}, oerr
			}
			closeFD(fd)
			return result{}, err
		}
	}
	r, err := shmOpen(name, flag&(os.O_RDONLY|os.O_RDWR|os.O_TRUNC), size, flags)
	if err == nil {
		err = finishPopulate(name, r)
	}
	return r, err
}

// create makes a new object called name, published atomically, so that no
// other process ever sees it half-made and no call removes a name it does
// not own, while every object still comes from libc's shm_open and every
// removal from libc's shm_unlink:
//
//  1. shm_open(name, O_RDONLY) lets libc judge the name: its EINVAL and
//     ENAMETOOLONG are the answer, and an existing object (whatever it
//     is) is EEXIST at once, as O_CREAT|O_EXCL would say.
//  2. The object is made under a fresh temporary name (tmpName) with
//     shm_open(O_CREAT|O_EXCL), sized and mapped; a temporary name that
//     exists is replaced by another.
//  3. It is populated, if asked, and Options.Init runs on its bytes.
//  4. It is renamed to name in the directory libc uses (Dir, learnt from
//     the new descriptor) with renameat2(RENAME_NOREPLACE): EEXIST if
//     name is taken by now. /proc then names the object as shm_open would.
//  5. Only where renameat2 is refused (EINVAL, ENOSYS): link(2) to name
//     instead, and shm_unlink of the temporary name.
//
// If step 2 fails to size or map, or the memory check refuses the size,
// while something has taken name (another creator, or what the probe
// could not open: another user's object, a symlink, a socket), the error
// is EEXIST, as O_EXCL would have said. On any failure, only the
// temporary name is removed.
func create(name string, perm uint32, size int64, flags int, init func([]byte) error) (result, error) {
	if err := probe(name); err != nil {
		return result{}, err
	}
	if resident(flags) { // after libc's verdict on the name, before any page
		if err := checkMemoryRoom(residentOp("openfile", flags), name, size); err != nil {
			var st syscall.Stat_t
			if syscall.Lstat(Dir()+"/"+baseName(name), &st) == nil { // what the probe could not open holds the name
				return result{}, &fs.PathError{Op: "shm_open", Path: name, Err: syscall.EEXIST}
			}
			return result{}, err
		}
	}
	for tries := 0; ; tries++ {
		tmp := tmpName(name)
		r, err := shmCreate(name, tmp, perm, size, flags)
		if err != nil && !r.created {
			if errors.Is(err, fs.ErrExist) && tries < retries {
				continue // the temporary name is taken: draw another
			}
			return result{}, err
		}
		if err != nil {
			if taken(r.fd, tmp, name) {
				err = &fs.PathError{Op: "shm_open", Path: name, Err: syscall.EEXIST}
			}
			closeFD(r.fd)
		} else if err = finishPopulate(name, r); err == nil {
			if init != nil {
				err = runInit(name, tmp, r, init)
			}
			if err == nil {
				err = publish(name, tmp, r.fd)
			}
			if err != nil {
				unmapClose(name, r.data, r.fd)
			}
		}
		if err != nil {
			shmUnlink(tmp) // a name nobody else knows
			return result{}, err
		}
		return r, nil
	}
}

// probe is step 1 of create: nil when name is free for libc, else the
// error creating it would meet first.
func probe(name string) error {
	errno, err := shmProbe(name, os.O_RDONLY)
	switch {
	case err != nil:
		return err
	case errno == 0:
		errno = syscall.EEXIST
	case errno != syscall.EINVAL && errno != syscall.ENAMETOOLONG:
		return nil // anything else (EACCES, ELOOP on a symlink) is link's to answer
	}
	return &fs.PathError{Op: "shm_open", Path: name, Err: errno}
}

// publish is steps 4 and 5 of create: it renames fd's temporary name tmp
// to name with renameat2(RENAME_NOREPLACE), which moves the object's one
// directory entry, so that the descriptor and the mapping then show
// "/dev/shm/NAME" in /proc, exactly as after shm_open(name). Where the
// kernel or file system refuses renameat2 (EINVAL, ENOSYS: Linux before
// 3.15), it links fd to name and removes tmp; /proc then shows the
// temporary name "(deleted)". Either is EEXIST when name is taken. One
// crossing (two where renameat2 is refused).
func publish(name, tmp string, fd int) error {
	dir := learnDir(fd, tmp)
	if dir == "" {
		return &fs.PathError{Op: "renameat2", Path: name, Err: syscall.ENOENT}
	}
	err := shmRename(name, dir, baseName(tmp), baseName(name))
	if errors.Is(err, syscall.EINVAL) || errors.Is(err, syscall.ENOSYS) {
		err = shmLink(name, dir, baseName(tmp), baseName(name), tmp)
	}
	if errors.Is(err, syscall.EEXIST) {
		// The name is taken: what O_CREAT|O_EXCL would say.
		return &fs.PathError{Op: "shm_open", Path: name, Err: syscall.EEXIST}
	}
	return err
}

// taken reports whether something now has name in libc's directory (an
// object, or a symlink, socket or FIFO that O_CREAT|O_EXCL would meet).
// fd, made under tmp, shows the directory.
func taken(fd int, tmp, name string) bool {
	dir := learnDir(fd, tmp)
	var st syscall.Stat_t
	return dir != "" && syscall.Lstat(dir+"/"+baseName(name), &st) == nil
}

// tmpName returns a fresh temporary name for a new object that is to be
// called name: name's own (without its leading slashes, cut short to leave
// room within NAME_MAX), ".~" and a random part, as "/NAME.~RANDOM". Only
// the process that makes it ever knows it.
func tmpName(name string) string { return "/" + tmpname.New(baseName(name)) }

// baseName is name as a file name in Dir: without its leading slashes.
func baseName(name string) string { return strings.TrimLeft(name, "/") }

// learntDir is the directory libc keeps objects in, once learnt.
var learntDir atomic.Pointer[string]

// Dir returns the directory in which the C library keeps shared memory
// objects (and, as sem.NAME, named semaphores): object "/x" is the file
// Dir()+"/x". It is learnt from /proc/self/fd when this process first
// creates an object; until then, and without /proc, it is /dev/shm, which
// glibc 2.34 and later and musl always use (older glibc looked for the
// tmpfs mount, which is /dev/shm on every usual system). Safe for
// concurrent use.
func Dir() string {
	if d := learntDir.Load(); d != nil {
		return *d
	}
	return "/dev/shm"
}

// learnDir returns Dir, learning it first from the path of fd, just made
// by shm_open(tmp): the directory is what precedes "/tmp". It returns ""
// when fd's path is not tmp's (tmp was removed).
func learnDir(fd int, tmp string) string {
	if d := learntDir.Load(); d != nil {
		return *d
	}
	base := baseName(tmp)
	path, err := os.Readlink(proc.FD(fd))
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission) {
		path = "/dev/shm/" + base // no /proc
	} else if err != nil {
		return ""
	}
	dir, ok := strings.CutSuffix(path, "/"+base)
	if !ok {
		return "" // not the path of tmp (removed: " (deleted)")
	}
	learntDir.CompareAndSwap(nil, &dir)
	return *learntDir.Load()
}

// Unlink removes the name of a shared memory object: shm_unlink(name).
// Processes that have it mapped keep their memory until they unmap it; the
// memory is freed when the last mapping goes. An error wraps fs.ErrNotExist
// if there is no such object.
func Unlink(name string) error {
	return shmUnlink(name)
}

// Name returns the name the Segment was opened or created with, as given.
// Safe after Close and across goroutines.
func (m *Segment) Name() string { return m.name }

// Created reports whether the call that returned m created the object
// (always true from Create and CreateTemp, false from Open).
func (m *Segment) Created() bool { return m.created }

// Unlink removes the Segment's name: shm_unlink(s.Name()). The mapping
// stays usable until Close. It works before and after Close, and can be
// called from any goroutine.
func (m *Segment) Unlink() error {
	return Unlink(m.name)
}

// runInit runs Options.Init on the new object's bytes. An Init that
// panics or exits its goroutine (runtime.Goexit, t.Fatal in a test)
// leaves nothing either: the mapping and descriptor are released and the
// temporary name removed as on an error, then the panic goes on.
func runInit(name, tmp string, r result, init func([]byte) error) (err error) {
	done := false
	defer func() {
		if !done {
			unmapClose(name, r.data, r.fd)
			shmUnlink(tmp)
		}
	}()
	err = init(r.data)
	done = true
	if err != nil {
		return &fs.PathError{Op: "openfile", Path: name, Err: fmt.Errorf("init: %w", err)}
	}
	return nil
}
