//go:build linux && cgo

package shm

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"
	"weak"

	"github.com/posixshm/shm/internal/proc"
	"github.com/posixshm/shm/internal/wait"
)

// ErrFault is the error inside the *fs.PathError that ReadAt and WriteAt
// return when the memory behind the mapping is gone: another process
// truncated the object, or a sparse object's page could not be allocated
// because /dev/shm is full. Touching such a page through Bytes raises SIGBUS
// and kills the program; ReadAt and WriteAt catch the fault instead.
var ErrFault = errors.New("memory fault: pages behind the mapping are gone (object truncated, or /dev/shm full)")

var (
	pageSize          = os.Getpagesize()
	errNegativeOffset = fmt.Errorf("negative offset: %w", syscall.EINVAL)
)

// A Mapping is a memory mapping of a whole shared memory object, a memfd,
// or a range of an ordinary file, together with a descriptor of that
// object: everything that can be done with a mapped descriptor, whoever
// made it. MapFile makes one from any *os.File (one received from another
// process too), CreateMemfd one of a new memfd; a Segment is a Mapping
// with a name. The Mappings that MapFile makes from one *os.File share
// one descriptor (see MapFile), so a process can have as many Mappings of
// a file as the kernel allows it mappings, as in C.
//
// Its methods are safe for concurrent use. Bytes is the unguarded fast
// path; ReadAt and WriteAt are fault-safe. After Close, every method that
// returns an error returns one wrapping fs.ErrClosed (a second Close too);
// Bytes returns nil, Size 0 and ShrinkSealed false.
type Mapping struct {
	mu       sync.RWMutex
	data     []byte    // the mapped object's bytes, whole[:size:size]; empty when nothing is mapped; nil after Close
	whole    []byte    // the whole mapping, what munmap takes: past size, a shrink's tail or a grow's room (Truncate)
	handed   int       // the most bytes of whole that data ever covered: what a stale slice can reach
	retired  [][]byte  // earlier mappings a moving resize left in place (what was handed out of them), unmapped at Close
	fd       int       // the descriptor, -1 after Close: owned, or shared's
	shared   *sharedFD // the descriptor's owner when MapFile made m; nil when m owns fd
	name     string    // for errors
	readOnly bool
	sealed   bool        // read-only because AddSeals sealed the memfd against writing
	private  bool        // mapped MAP_PRIVATE: Truncate and Remap map it so again
	off      int64       // file offset of the mapping (MapFile); Truncate and Remap need 0
	waits    wait.Set    // Wait and Lock calls asleep, for Close and Remap
	onClose  closeHooks  // what capabilities built on m release at its Close (a Mutex's registration)
	closed   atomic.Bool // set by Close before it unmaps: read without the lock by a Mutex's fast paths
}

// closeHooks are functions a Mapping's Close runs once, after the unmap,
// with the Mapping's lock held for writing (no call of it is in
// progress): how a capability built on a Mapping (Mutex) lets go of what
// it keeps for it, without the Mapping knowing the capability.
type closeHooks struct {
	mu sync.Mutex
	fs []func()
}

func (h *closeHooks) add(f func()) {
	h.mu.Lock()
	h.fs = append(h.fs, f)
	h.mu.Unlock()
}

func (h *closeHooks) run() {
	h.mu.Lock()
	fs := h.fs
	h.fs = nil
	h.mu.Unlock()
	for _, f := range fs {
		f()
	}
}

func (m *Mapping) init(name string, r result, readOnly bool) {
	m.name, m.data, m.whole, m.fd, m.readOnly = name, r.data, r.data, r.fd, readOnly
	m.handed = len(r.data)
}

// Options are the choices of OpenFile, MapFile and CreateMemfdWith that
// the short forms fix. The zero value, or a nil *Options, is what Create
// and Open do. A field the call has no use for is an error wrapping
// syscall.EINVAL, never ignored: MapFile takes Private and Populate;
// CreateMemfdWith takes Sparse and Populate; OpenFile takes them all,
// Sparse only with os.O_CREATE or os.O_TRUNC and Init only with
// os.O_CREATE.
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
	// 2 MiB, by up to GOMAXPROCS (at most 8) goroutines. Pre-faulting
	// allocates the object's holes (a Sparse object's, for reading too):
	// like a reservation, they are first checked against the memory
	// cgroup (see Create), an error wrapping syscall.ENOMEM with Op
	// "madvise" where they cannot fit.
	Populate bool

	// Init (OpenFile only), when set, is called with the mapped bytes of
	// an object that the call creates, after it is sized (and populated)
	// and before it is published under its name: whatever Init writes (a
	// header, a magic number) is there before any other process can open
	// the name, so peers never see the object uninitialised. It is not
	// called when the call opens an existing object (or truncates one
	// with os.O_TRUNC). An error from Init fails the call, and the object
	// is removed: only its temporary name ever existed. Init must not
	// keep the slice, and its writes are unguarded like Bytes (with Sparse
	// on a full /dev/shm they fault). Init with Private is an error
	// wrapping syscall.EINVAL: a private mapping's writes never reach the
	// object.
	Init func(b []byte) error
}

// init returns opt.Init, nil for a nil opt.
func (o *Options) init() func([]byte) error {
	if o == nil {
		return nil
	}
	return o.Init
}

// mapFlags are the shim flags for opt.
func (o *Options) mapFlags() int {
	f := 0
	if testNoMadvPopulate {
		f |= mapNoMadv
	}
	if o == nil {
		return f
	}
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

// testNoMadvPopulate makes every mapping behave as on a kernel without
// MADV_POPULATE_* (before 5.14); set by tests only.
var testNoMadvPopulate bool

// mapFlags are the shim flags the mapping was made with, for remapping.
func (m *Mapping) mapFlags() int {
	f := 0
	if m.readOnly {
		f |= mapReadOnly
	}
	if m.private {
		f |= mapPrivate
	}
	if testNoDontunmap {
		f |= mapNoDontunmap
	}
	return f
}

// testNoDontunmap makes Truncate and Remap behave as on a kernel without
// MREMAP_DONTUNMAP for file mappings (before 5.13); set by tests only.
var testNoDontunmap bool

// explain adds to err, a failure of the shim, what its bare errno means
// there, where it would puzzle a reader.
func explain(err error) error {
	var pe *fs.PathError
	if !errors.As(err, &pe) {
		return err
	}
	switch errno, _ := pe.Err.(syscall.Errno); {
	case (pe.Op == "madvise" || pe.Op == "mmap") && errno == syscall.EFAULT:
		// What the kernel says, or mincore shows, where touching the
		// page would SIGBUS.
		return because(pe, "a page cannot be populated (/dev/shm full, or the object shorter than the mapping)")
	case pe.Op == "mmap" && errno == syscall.ENOMEM:
		return because(pe, "no room for another mapping: the process is at the kernel's limit on mappings (vm.max_map_count), or out of address space or of memory it may commit")
	case pe.Op == "shm_open" && errno == syscall.ENODEV:
		return because(pe, "not a regular file (a directory, FIFO, socket or device)")
	case pe.Op == "fstat" && errno == syscall.EFBIG:
		return because(pe, "the object is larger than this process can map")
	}
	return err
}

// because puts why before the error inside pe.
func because(pe *fs.PathError, why string) error {
	pe.Err = fmt.Errorf("%s: %w", why, pe.Err)
	return pe
}

// argErr is the error for a bad argument: an *fs.PathError whose message
// says what is wrong and which wraps syscall.EINVAL.
func argErr(op, name, format string, args ...any) error {
	return &fs.PathError{Op: op, Path: name, Err: fmt.Errorf(format+": %w", append(args, syscall.EINVAL)...)}
}

// errReadOnly is the error for writing through a read-only mapping:
// EBADF, as os.File says, or, for a memfd sealed against writing by
// AddSeals, EPERM (what write(2) says) with a message that says so.
func (m *Mapping) errReadOnly(op string) error {
	if m.sealed {
		return &fs.PathError{Op: op, Path: m.name, Err: fmt.Errorf("the memfd is sealed against writing: %w", syscall.EPERM)}
	}
	return &fs.PathError{Op: op, Path: m.name, Err: syscall.EBADF}
}

func (m *Mapping) errClosed(op string) error {
	return &fs.PathError{Op: op, Path: m.name, Err: fs.ErrClosed}
}

// Bytes returns the mapped memory itself, with len and cap equal to Size;
// writes to it are seen by every process that maps the object (unless the
// mapping is private), without a system call. It returns an empty slice for
// an empty mapping and nil after Close. Safe for concurrent use; the memory
// itself is shared, so concurrent writers must synchronise.
//
// Bytes is the fast path and it is unguarded: touching a page that another
// process truncated away raises SIGBUS, which kills a Go program, and using
// the slice after Close faults. Use ReadAt and WriteAt where either can
// happen. Writing through Bytes of a read-only mapping faults too. After
// Truncate or Remap, call Bytes again for the new size: an earlier slice
// still reaches the same bytes of the object (see Truncate), never
// another object.
func (m *Mapping) Bytes() []byte {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.data
}

// Size returns the number of bytes mapped, 0 after Close. Safe for
// concurrent use.
func (m *Mapping) Size() int {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return len(m.data)
}

// ReadAt copies len(p) bytes from offset off of the mapping into p,
// implementing io.ReaderAt: when fewer than len(p) bytes lie past off it
// copies those and returns io.EOF. It makes no system call and does not
// allocate.
//
// ReadAt is fault-safe: if the pages are gone (see ErrFault) it returns 0
// and an *fs.PathError wrapping ErrFault, and the process lives; p may have
// been partly written. It is safe for concurrent use with every other
// method, including Close: after Close it returns an error wrapping
// fs.ErrClosed and never touches unmapped memory.
func (m *Mapping) ReadAt(p []byte, off int64) (int, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.data == nil {
		return 0, m.errClosed("readat")
	}
	if off < 0 {
		return 0, &fs.PathError{Op: "readat", Path: m.name, Err: errNegativeOffset}
	}
	if len(p) == 0 {
		return 0, nil
	}
	if off >= int64(len(m.data)) {
		return 0, io.EOF
	}
	n, err := faultCopy("readat", m.name, p, m.data[off:], m.data)
	if err == nil && n < len(p) {
		err = io.EOF
	}
	return n, err
}

// WriteAt copies p into the mapping at offset off, implementing
// io.WriterAt. A write that does not fit inside the mapping writes nothing
// and returns an error wrapping io.ErrShortWrite: a mapping never grows. A
// read-only mapping returns an error wrapping syscall.EBADF, as os.File
// does; a memfd sealed against writing by AddSeals (SealWrite), one
// wrapping syscall.EPERM that says so.
// It makes no system call and does not allocate.
//
// WriteAt is fault-safe like ReadAt: 0 and an error wrapping ErrFault when
// the pages are gone, after which the bytes of the range are unspecified.
// Safe for concurrent use with every other method, including Close.
// Concurrent writes to overlapping ranges, from this or other processes,
// are not ordered: synchronise them yourself.
func (m *Mapping) WriteAt(p []byte, off int64) (int, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	switch {
	case m.data == nil:
		return 0, m.errClosed("writeat")
	case m.readOnly:
		return 0, m.errReadOnly("writeat")
	case off < 0:
		return 0, &fs.PathError{Op: "writeat", Path: m.name, Err: errNegativeOffset}
	case off > int64(len(m.data)) || int64(len(p)) > int64(len(m.data))-off:
		return 0, &fs.PathError{Op: "writeat", Path: m.name,
			Err: fmt.Errorf("%d bytes at offset %d do not fit in the %d-byte mapping: %w",
				len(p), off, len(m.data), io.ErrShortWrite)}
	}
	return faultCopy("writeat", m.name, m.data[off:], p, m.data)
}

// finishPopulate pre-faults what the shim left to do (r.advice): a large
// mapping, in slices that start on 2 MiB boundaries of the mapping (one
// page table each where the mapping is so aligned), by up to GOMAXPROCS
// (at most 8) goroutines, each in a cgo call of its own, since the kernel
// populates disjoint ranges concurrently. On failure it unmaps and closes.
func finishPopulate(name string, r result) error {
	if r.advice == 0 {
		return nil
	}
	const align = 2 << 20
	workers := min(runtime.GOMAXPROCS(0), 8)
	chunk := ((len(r.data)+workers-1)/workers + align - 1) &^ (align - 1)
	var wg sync.WaitGroup
	errs := make([]error, 0, workers)
	var mu sync.Mutex
	for lo := 0; lo < len(r.data); lo += chunk {
		hi := min(lo+chunk, len(r.data))
		wg.Go(func() {
			if err := populate(name, r.data[lo:hi], r.advice); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(errs) == 0 {
		return nil
	}
	unmapClose(name, r.data, r.fd)
	return explain(errs[0])
}

// faultCopy is copy(dst, src) that turns a memory fault at an address of
// mapped (SIGBUS on a page that is gone) into an error instead of a crash.
// A fault anywhere else (in the caller's buffer) is not the mapping's: the
// copy is redone unguarded, so it faults as a plain copy would.
func faultCopy(op, name string, dst, src, mapped []byte) (n int, err error) {
	old := debug.SetPanicOnFault(true)
	defer func() {
		debug.SetPanicOnFault(old)
		if r := recover(); r != nil {
			f, ok := r.(interface{ Addr() uintptr })
			if !ok {
				panic(r)
			}
			base := uintptr(unsafe.Pointer(unsafe.SliceData(mapped)))
			if a := f.Addr(); a < base || a-base >= uintptr(len(mapped)) {
				n, err = copy(dst, src), nil
				return
			}
			n, err = 0, &fs.PathError{Op: op, Path: name, Err: ErrFault}
		}
	}()
	return copy(dst, src), nil
}

// Sync flushes the whole mapping with msync(MS_SYNC). For a shared memory
// object this is cheap and rarely needed: every process already sees the
// same pages. For a mapped file it writes dirty pages to the file. Safe for
// concurrent use, Truncate and Remap included (it syncs the mapping as it
// is under the lock); after Close it returns an error wrapping
// fs.ErrClosed.
func (m *Mapping) Sync() error {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.data == nil {
		return m.errClosed("msync")
	}
	return m.syncLocked(0, len(m.data), syscall.MS_SYNC)
}

// SyncRange calls msync(flags) on the pages that hold bytes [off, off+n) of
// the mapping. flags are syscall.MS_SYNC or syscall.MS_ASYNC, optionally
// with syscall.MS_INVALIDATE; libc decides what is valid. A range outside
// the mapping is an error. Safe for concurrent use; after Close it returns
// an error wrapping fs.ErrClosed.
func (m *Mapping) SyncRange(off int64, n int, flags int) error {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.data == nil {
		return m.errClosed("msync")
	}
	if off < 0 || n < 0 || off > int64(len(m.data)) || int64(n) > int64(len(m.data))-off {
		return argErr("msync", m.name, "range [%d, %d+%d) outside the %d-byte mapping", off, off, n, len(m.data))
	}
	return m.syncLocked(off, n, flags)
}

// syncLocked is msync(flags) of the pages that hold [off, off+n), a range
// inside the mapping; m.mu is held, so the mapping cannot change size
// between the caller's check and the call.
func (m *Mapping) syncLocked(off int64, n int, flags int) error {
	if len(m.data) == 0 {
		return nil
	}
	start := off &^ int64(pageSize-1) // the mapping starts on a page
	return msync(m.name, m.data[start:off+int64(n)], flags)
}

// Close unmaps the memory (munmap) and closes the descriptor (close), or,
// for a Mapping that shares it (see MapFile), lets go of it: the last
// Mapping to let go closes it. It waits for ReadAt, WriteAt and Sync calls
// in progress, and afterwards they return errors wrapping fs.ErrClosed; a
// second Close does nothing but return such an error. Close never unlinks
// an object, and no finalizer ever unmaps: a slice from Bytes stays valid
// until Close, and must not be used after it.
//
// Close also ends what Mutex made: Locks waiting in it return errors
// wrapping fs.ErrClosed, and if this was the last open Mapping of the
// object from which this process made a Mutex, the process's registration
// on the object (a descriptor and its byte lock, see Mutex) is closed too.
// A lock of the object this process still holds then looks to others as
// if its holder had died: the next Lock or TryLock, in any process, this
// one included, takes it with ErrOwnerDead.
func (m *Mapping) Close() error {
	m.lockOut()
	defer m.mu.Unlock()
	if m.data == nil {
		return m.errClosed("close")
	}
	m.closed.Store(true)
	whole, retired, fd, sh := m.whole, m.retired, m.fd, m.shared
	m.data, m.whole, m.retired, m.fd, m.shared = nil, nil, nil, -1, nil
	if sh != nil {
		fd = -1 // sh.release closes it, if m was its last Mapping
	}
	err := unmapClose(m.name, whole, fd)
	for _, r := range retired {
		if e := unmapClose(m.name, r, -1); err == nil {
			err = e
		}
	}
	sh.release()
	// Every call on m is out (they hold the read lock; a Lock's watch
	// entry goes before it lets go), and none can start.
	m.onClose.run()
	return err
}

// MapFile maps length bytes of f starting at offset off with mmap: the
// other POSIX way for unrelated processes to share memory, and how a
// receiver maps a descriptor handed over by File (exec.Cmd's ExtraFiles,
// SCM_RIGHTS). f must be a regular file, a memfd or shared memory object
// included; anything else is an error wrapping syscall.ENODEV.
//
// flag is os.O_RDONLY (PROT_READ; WriteAt is refused) or os.O_RDWR. off
// must be a multiple of os.Getpagesize(); length 0 maps to the end of the
// file, a range past the end is an error (touching it would fault), and an
// empty range gives an empty Mapping. MapFile never changes f's size. opt
// may be nil; Private and Populate apply, Sparse and Init are errors.
// Populate pre-faults for reading: it never dirties a page nor allocates
// a hole of a file on disk (a tmpfs file's holes it fills, as Options
// says). os.O_RDWR is refused with a clear error where mmap would say
// only "permission denied": for a descriptor open read-only
// (syscall.EACCES) and for an object sealed with SealWrite or
// SealFutureWrite (syscall.EPERM).
//
// The Mapping keeps a duplicate of f's descriptor (F_DUPFD_CLOEXEC), the
// same open file description, for Stat, Truncate, Remap, File, Seals,
// AddSeals and the rest: f itself can be closed as soon as MapFile
// returns. The Mappings made from one *os.File share one duplicate,
// which the last of them to close closes, so that mapping one file many
// times costs one descriptor, as mmap of one descriptor does in C: the
// kernel's limit on mappings (vm.max_map_count), not the limit on
// descriptors, then ends the mappings a process can make, with mmap's
// error wrapping syscall.ENOMEM. (A duplicate is shared while f is open
// and its descriptor still refers to the same file, as fstat says, with
// the same fcntl(F_GETFL) flags; an *os.File made anew for the same
// descriptor gets a duplicate of its own.)
//
// With os.O_RDONLY (and not Private) from a descriptor open for writing
// (what File returns for a memfd a process made), the mapping itself, and
// those Remap makes later, are made from a read-only open file description
// of the same file (open of /proc/self/fd/N with O_RDONLY), closed again
// once mapped: the kernel counts a shared mapping of a writable
// description as writable even with PROT_READ, and any writable mapping
// makes AddSeals(SealWrite) of the memfd fail with EBUSY, the creator's
// too. The kept duplicate stays f's, read-write: AddSeals needs it
// (F_ADD_SEALS of a read-only description is EPERM), and File hands on
// what f gave. Where that open fails (no /proc), f's descriptor is mapped
// read-only, and AddSeals(SealWrite) fails with EBUSY until this Mapping
// is closed.
//
// The calls are fstat, fcntl(F_GETFL), fcntl(F_GET_SEALS),
// fcntl(F_DUPFD_CLOEXEC) (unless a Mapping of f has a duplicate to share)
// and, for a read-only mapping of a writable descriptor, open of
// /proc/self/fd/N from Go, then mmap and, with Populate, madvise, in one
// cgo crossing. Argument errors have Op
// "mapfile".
func MapFile(f *os.File, flag int, off int64, length int, opt *Options) (*Mapping, error) {
	if f == nil {
		return nil, argErr("mapfile", "<nil>", "nil *os.File")
	}
	name := f.Name()
	bad := func(format string, args ...any) (*Mapping, error) {
		return nil, argErr("mapfile", name, format, args...)
	}
	var flags int
	switch flag {
	case os.O_RDONLY:
		flags |= mapReadOnly
	case os.O_RDWR:
	default:
		return bad("flag %#x: want os.O_RDONLY or os.O_RDWR", flag)
	}
	switch {
	case opt != nil && opt.Sparse:
		return bad("Options.Sparse: MapFile creates nothing, so it reserves nothing")
	case opt != nil && opt.Init != nil:
		return bad("Options.Init: MapFile creates nothing to initialise (OpenFile only)")
	}
	flags |= opt.mapFlags() | mapReadFill
	if off < 0 || off%int64(pageSize) != 0 {
		return bad("offset %d is not a non-negative multiple of the page size %d", off, pageSize)
	}
	if length < 0 {
		return bad("negative length %d", length)
	}
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, &fs.PathError{Op: "mmap", Path: name,
			Err: fmt.Errorf("%s, not a regular file: %w", fileKind(fi.Mode()), syscall.ENODEV)}
	}
	size := fi.Size()
	if off > size || int64(length) > size-off {
		return bad("range [%d, %d+%d) reaches past the end of the %d-byte file", off, off, length, size)
	}
	if length == 0 {
		length64 := size - off
		if length64 > int64(math.MaxInt) {
			return bad("%d bytes from offset %d do not fit in memory", length64, off)
		}
		length = int(length64)
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, err
	}
	r := result{data: []byte{}, fd: -1}
	var sh *sharedFD
	cerr := rc.Control(func(fd uintptr) {
		if length > 0 {
			err = writable(name, int(fd), flags)
			if err == nil && flags&mapPopulate != 0 {
				// Pre-faulting a tmpfs file (a memfd or object
				// received) fills its holes.
				err = checkHoles("madvise", name, int(fd), int64(length))
			}
		} else {
			// Nothing to map, but the file must be one that mmap
			// takes: a /proc or sysfs file is "regular" with size 0,
			// and ENODEV.
			var probe result
			if probe, err = mmapFile(name, int(fd), 0, int64(pageSize), mapReadOnly); err == nil {
				err = unmapClose(name, probe.data, -1)
			}
		}
		if err == nil {
			sh, err = shareFD(name, f, int(fd), fi)
		}
	})
	if cerr != nil {
		return nil, cerr
	}
	if err == nil && length > 0 {
		var mr result
		mfd, done := mapFD(name, sh.fd, flags)
		mr, err = mmapFile(name, mfd, off, int64(length), flags)
		done()
		if err == nil {
			r.data, r.advice = mr.data, mr.advice
			err = finishPopulate(name, r) // r.fd is -1: on failure it only unmaps
		}
		if err != nil {
			sh.release()
		}
	}
	if err != nil {
		return nil, explain(err)
	}
	m := &Mapping{private: opt != nil && opt.Private, off: off, shared: sh}
	r.fd = sh.fd
	m.init(name, r, flag == os.O_RDONLY)
	return m, nil
}

// A sharedFD is the duplicate of an *os.File's descriptor that the
// Mappings MapFile makes from that file share, closed by the last of them
// to let go.
type sharedFD struct {
	fd   int
	refs int                   // Mappings that hold fd; guarded by sharedFDs
	file weak.Pointer[os.File] // the file it duplicates: its key in sharedFDs.byFile
	dev  uint64                // the file's device, inode and F_GETFL flags when duplicated:
	ino  uint64                // a descriptor that no longer has them is not the same
	fl   int                   // open file description, and gets a duplicate of its own
}

// sharedFDs holds, by file, the sharedFDs that have Mappings.
var sharedFDs struct {
	sync.Mutex
	byFile map[weak.Pointer[os.File]]*sharedFD
}

// shareFD returns a duplicate of fd, f's descriptor (fi from its fstat),
// for one more Mapping of f: the one earlier Mappings of f hold, if f's
// descriptor is still what it was when that was made, else a new one
// (fcntl(F_DUPFD_CLOEXEC)). Release it with release.
func shareFD(name string, f *os.File, fd int, fi fs.FileInfo) (*sharedFD, error) {
	fl, err := fcntl(name, fd, fGetFL, 0)
	if err != nil {
		return nil, err
	}
	var dev, ino uint64
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		dev, ino = uint64(st.Dev), st.Ino
	}
	key := weak.Make(f)
	sharedFDs.Lock()
	defer sharedFDs.Unlock()
	if s := sharedFDs.byFile[key]; s != nil && s.dev == dev && s.ino == ino && s.fl == fl {
		s.refs++
		return s, nil
	}
	dup, err := fcntl(name, fd, fDupFDCloexec, 0)
	if err != nil {
		return nil, err
	}
	s := &sharedFD{fd: dup, refs: 1, file: key, dev: dev, ino: ino, fl: fl}
	if sharedFDs.byFile == nil {
		sharedFDs.byFile = make(map[weak.Pointer[os.File]]*sharedFD)
	}
	sharedFDs.byFile[key] = s // one it replaces stays its Mappings' until they close
	return s, nil
}

// release lets go of one Mapping's hold on s; the last closes the
// descriptor, once nobody can find it any more. A nil s is nothing to
// let go of.
func (s *sharedFD) release() {
	if s == nil {
		return
	}
	sharedFDs.Lock()
	defer sharedFDs.Unlock()
	if s.refs--; s.refs > 0 {
		return
	}
	if sharedFDs.byFile[s.file] == s {
		delete(sharedFDs.byFile, s.file)
	}
	closeFD(s.fd)
	s.fd = -1
}

// mapFD returns the descriptor a mapping with flags is made from: fd
// itself, except that a read-only shared mapping of a descriptor open for
// writing is made from a new read-only open file description of the same
// file (open of /proc/self/fd/N, which works for memfds and unlinked
// objects too). The kernel counts every shared mapping of a writable
// description as writable (VM_MAYWRITE), PROT_READ or not, and while one
// exists F_ADD_SEALS of F_SEAL_WRITE fails with EBUSY. done closes what
// mapFD opened (the mapping holds the file itself). Where the open fails
// (no /proc, a file whose permissions refuse reading it anew), fd itself.
func mapFD(name string, fd, flags int) (mfd int, done func()) {
	nothing := func() {}
	if flags&(mapReadOnly|mapPrivate) != mapReadOnly {
		return fd, nothing
	}
	if fl, err := fcntl(name, fd, fGetFL, 0); err != nil || fl&syscall.O_ACCMODE == syscall.O_RDONLY {
		return fd, nothing
	}
	ro, err := syscall.Open(proc.FD(fd), syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return fd, nothing
	}
	return ro, func() { closeFD(ro) }
}

// writable checks, for a shared writable mapping of fd (flags), what mmap
// would refuse with a bare EACCES or EPERM: a descriptor open read-only,
// an object sealed against writing.
func writable(name string, fd, flags int) error {
	fl, err := fcntl(name, fd, fGetFL, 0)
	if err != nil || flags&(mapReadOnly|mapPrivate) != 0 {
		return err
	}
	seals, err := getSeals(name, fd)
	if err != nil {
		return err
	}
	const sealedW = fSealWrite | fSealFutureWrite
	switch {
	case fl&syscall.O_ACCMODE == syscall.O_RDONLY:
		return &fs.PathError{Op: "mmap", Path: name,
			Err: fmt.Errorf("the descriptor is open read-only: map it with os.O_RDONLY: %w", syscall.EACCES)}
	case seals&sealedW != 0:
		return &fs.PathError{Op: "mmap", Path: name,
			Err: fmt.Errorf("the object is sealed against writing (F_SEAL_WRITE or F_SEAL_FUTURE_WRITE): map it with os.O_RDONLY: %w", syscall.EPERM)}
	}
	return nil
}

// fileKind names the type of a file that is not regular, for errors.
func fileKind(mode fs.FileMode) string {
	switch mode.Type() {
	case fs.ModeDir:
		return "a directory"
	case fs.ModeNamedPipe:
		return "a pipe or FIFO"
	case fs.ModeSocket:
		return "a socket"
	case fs.ModeDevice:
		return "a block device"
	case fs.ModeDevice | fs.ModeCharDevice:
		return "a character device"
	case fs.ModeSymlink:
		return "a symbolic link"
	}
	return "an irregular file"
}

// lockOut takes m's lock for writing, first waking Waits and Locks out of
// the kernel (they hold it for reading while they sleep); unlockIn lets
// them sleep again and releases it.
func (m *Mapping) lockOut() {
	m.waits.Pause()
	m.mu.Lock()
}

func (m *Mapping) unlockIn() {
	m.waits.Resume()
	m.mu.Unlock()
}
