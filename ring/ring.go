//go:build linux && cgo

package ring

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"runtime/debug"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/posixshm/shm"
	"github.com/posixshm/shm/internal/fence"
	"github.com/posixshm/shm/internal/proc"
)

// Errors of the ring. Besides these, calls return io.EOF (every writer
// that claimed the ring closed its end and every message was received),
// io.ErrClosedPipe (a Send that would block while the reader of a
// one-reader ring closed its end), the context's error, and errors
// wrapping fs.ErrClosed (use after Close), syscall.EINVAL (bad arguments)
// or shm.ErrFault (the object was truncated under the ring by another
// process: see Ring).
var (
	// ErrPeerGone: the process at the other end died without closing it.
	ErrPeerGone = errors.New("ring: the process at the other end died")
	// ErrBusy: every slot of the kind asked for is claimed by a live
	// process (or by this Ring).
	ErrBusy = errors.New("ring: every slot already claimed by a live process")
	// ErrTooLarge: a message longer than MaxMessage.
	ErrTooLarge = errors.New("ring: message larger than MaxMessage")
	// ErrNotRing: the object is not a ring of a layout this package knows
	// (magic, version or sizes), or it is too small for its header. The
	// error wrapping it names the version found when it is not Version.
	ErrNotRing = errors.New("ring: not a ring of layout version " + strconv.Itoa(Version))
	// ErrCorrupt: the ring's counters or a record break the layout (head
	// or tail not a multiple of 8, head behind tail or more than the
	// capacity ahead of it, a length beyond MaxMessage or beyond what the
	// writer published, a wrap marker where none belongs, a state word
	// with an unknown state): the memory was written by something that
	// does not follow the protocol. The call refuses, touching nothing
	// outside the ring's data. It wraps syscall.EPROTO, the C end's errno
	// for the same.
	ErrCorrupt = fmt.Errorf("ring: corrupt counters or record: %w", syscall.EPROTO)
)

// pollPeer is how long a blocked call sleeps before it checks that its
// peers' processes still hold their slots.
const pollPeer = 150 * time.Millisecond

// defaultSpin is how long a call polls before it sleeps.
const defaultSpin = 10 * time.Microsecond

// memory is what the ring needs of a mapping: a *shm.Segment (a named
// ring: Name and Unlink look for one) or a *shm.Mapping.
type memory interface {
	Bytes() []byte
	Uint32(off int64) (*atomic.Uint32, error)
	Uint64(off int64) (*atomic.Uint64, error)
	Wait(ctx context.Context, off int64, old uint32) error
	Wake(off int64, n int) (int, error)
	Close() error
}

// A Ring is a message ring in a shared memory object, open in this
// process. Its methods are safe for concurrent use. Close closes the
// writers and readers it handed out.
//
// A ring whose object another process truncates (shm truncate, ftruncate
// of /dev/shm/NAME) does not crash this one: every method of Ring, Writer
// and Reader that touches the ring's memory (a blocked Send or Receive
// included, within about 150 ms) catches the fault (SIGBUS) and returns an
// *fs.PathError wrapping shm.ErrFault instead. The slices that Reserve and
// Next return are the mapping itself and are not guarded: touching them
// after such a truncation raises SIGBUS, which kills a Go program, as
// shm's Bytes does. (Rings made by CreateMemfd are sealed against
// shrinking and never fault so.)
type Ring struct {
	name     string
	mem      memory
	lockf    *os.File // our own open file description: the slots' locks
	base     uintptr  // the mapping's address and length: a fault there is the ring's
	size     uintptr
	capacity uint64
	max      uint64
	ws       []wslot      // the writer slots
	rs       []rslot      // the reader slots
	spin     atomic.Int64 // nanoseconds

	mu      sync.Mutex
	writers []*Writer // the writer slots this Ring holds, by slot
	readers []*Reader
	closed  bool
}

// wslot is a writer slot's words and its lane.
type wslot struct {
	state, pid, sleep *atomic.Uint32
	head              *atomic.Uint64
	sleepOff          int64
	data              []byte // the lane
}

// rslot is a reader slot's words.
type rslot struct {
	state, pid, sleep *atomic.Uint32
	tails             []*atomic.Uint64 // by lane
	sleepOff          int64
}

// Options are the slots of a new ring (CreateWith).
type Options struct {
	// Readers is the number of reader slots, 1 to 64 (0 means 1). Every
	// reader receives every message (fan-out); with more than one, a
	// reader that joins starts at the next message published.
	Readers int
	// Writers is the number of writer slots, 1 to 64 (0 means 1), each
	// with a lane of capacity bytes of its own.
	Writers int
}

// nilContext is the error of a call given a nil context.Context (a
// call that would not block today may block tomorrow: it is refused
// always, not only when it would wait).
func nilContext(op string, r *Ring) error { return argErr("ring "+op, r.name, "nil context") }

func argErr(op, name, format string, args ...any) error {
	return &fs.PathError{Op: op, Path: name, Err: fmt.Errorf(format+": %w", append(args, syscall.EINVAL)...)}
}

// Create makes a new ring of one writer and one reader, as CreateWith
// with nil Options.
func Create(name string, capacity int) (*Ring, error) { return CreateWith(name, capacity, nil) }

// CreateWith makes a new ring in a new shared memory object called name
// (shm.Create: exclusive, mode 0600, pages reserved), with the writer and
// reader slots opt asks for (nil: one of each) and a lane of capacity data
// bytes per writer slot. capacity must be a multiple of 8 from 64 to
// 1<<40, and capacity times the writers at most 1<<40; the largest message
// is capacity/2-8 bytes. The object holds a header (896 bytes for one
// writer and one reader; LAYOUT.md) and the lanes. The caller unlinks the
// object (Unlink) when the ring is no longer wanted.
func CreateWith(name string, capacity int, opt *Options) (*Ring, error) {
	nw, nr, err := checkCreate("create", name, capacity, opt)
	if err != nil {
		return nil, err
	}
	// The header is written before the name is published (Options.Init),
	// so no Go, C or Python peer ever opens this ring half-made, and a
	// failure leaves no object behind.
	s, err := shm.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600, headerSize(nw, nr)+nw*capacity,
		&shm.Options{Init: func(b []byte) error { writeHeader(b, capacity, nw, nr); return nil }})
	if err != nil {
		return nil, err
	}
	r, err := newSegment(s, name)
	if err != nil {
		s.Unlink() // ours: a failed Create leaves nothing
	}
	return r, err
}

// CreateMemfd makes a new ring of one writer and one reader as Create
// does, in an anonymous memfd (shm.CreateMemfd: sealed so that it can
// never shrink or grow) instead of a named object. Hand it to another
// process with File; it maps it with MapFile. name is only the memfd's
// label: the ring has no name (Name is "", Unlink an error), and is freed
// with its last descriptor and mapping.
func CreateMemfd(name string, capacity int) (*Ring, error) {
	nw, nr, err := checkCreate("creatememfd", name, capacity, nil)
	if err != nil {
		return nil, err
	}
	s, err := shm.CreateMemfd(name, headerSize(nw, nr)+nw*capacity)
	if err != nil {
		return nil, err
	}
	writeHeader(s.Bytes(), capacity, nw, nr)
	return newSegment(s, "")
}

// checkCreate checks a new ring's capacity and options and returns its
// writer and reader slot counts.
func checkCreate(op, name string, capacity int, opt *Options) (nw, nr int, err error) {
	nw, nr = 1, 1
	if opt != nil {
		if opt.Writers < 0 || opt.Writers > maxEnds || opt.Readers < 0 || opt.Readers > maxEnds {
			return 0, 0, argErr("ring "+op, name, "%d writers and %d readers: want 0 (one) to %d of each", opt.Writers, opt.Readers, maxEnds)
		}
		nw, nr = max(opt.Writers, 1), max(opt.Readers, 1)
	}
	if capacity < minCapacity || uint64(capacity) > maxCapacity || capacity%recordAlign != 0 {
		return 0, 0, argErr("ring "+op, name, "capacity %d: want a multiple of %d from %d to %d", capacity, recordAlign, minCapacity, uint64(maxCapacity))
	}
	if uint64(capacity)*uint64(nw) > maxCapacity {
		return 0, 0, argErr("ring "+op, name, "capacity %d times %d writers: more than %d bytes of lanes", capacity, nw, uint64(maxCapacity))
	}
	if uint64(capacity)*uint64(nw) > uint64(math.MaxInt-headerSize(nw, nr)) {
		return 0, 0, argErr("ring "+op, name, "capacity %d times %d writers does not fit this process's address space", capacity, nw)
	}
	return nw, nr, nil
}

// writeHeader writes the header of a new ring into b, the magic last (a
// release store: a peer that sees the magic sees the rest).
func writeHeader(b []byte, capacity, nw, nr int) {
	binary.LittleEndian.PutUint32(b[offVersion:], Version)
	binary.LittleEndian.PutUint32(b[offHeaderSize:], uint32(headerSize(nw, nr)))
	binary.LittleEndian.PutUint64(b[offCapacity:], uint64(capacity))
	binary.LittleEndian.PutUint64(b[offMaxMessage:], maxMessage(uint64(capacity)))
	binary.LittleEndian.PutUint32(b[offReaders:], uint32(nr))
	binary.LittleEndian.PutUint32(b[offWriters:], uint32(nw))
	(*atomic.Uint64)(unsafePointer(b, offMagic)).Store(binary.LittleEndian.Uint64([]byte(magic)))
}

// newSegment makes the Ring of s, a new ring whose header is written.
// Its errors say name, or, if name is "", s's label (File's name).
func newSegment(s interface {
	memory
	File() (*os.File, error)
}, name string) (*Ring, error) {
	f, err := s.File()
	if err != nil {
		s.Close()
		return nil, err
	}
	if name == "" {
		name = f.Name()
	}
	r, err := newRing(name, s, f)
	if err != nil {
		f.Close()
		s.Close()
	}
	return r, err
}

// Open opens the ring in the existing shared memory object name
// (shm.Open) and checks its header: an object that is not a ring of this
// layout version, or whose sizes do not fit it, is an error wrapping
// ErrNotRing. A header still being written by its creator (magic not yet
// set) is waited for, up to a second.
func Open(name string) (*Ring, error) {
	deadline := time.Now().Add(time.Second)
	for {
		s, err := shm.Open(name)
		if err != nil {
			return nil, err
		}
		if _, err = checkHeader(s.Bytes()); errors.Is(err, errNoMagicYet) && time.Now().Before(deadline) {
			s.Close()
			time.Sleep(time.Millisecond) // a creator between shm_open and its header: microseconds
			continue
		}
		var f *os.File
		if err == nil {
			f, err = s.File()
		}
		if err != nil {
			s.Close()
			return nil, &fs.PathError{Op: "ring open", Path: name, Err: err}
		}
		r, err := newRing(name, s, f)
		if err != nil {
			f.Close()
			s.Close()
		}
		return r, err
	}
}

// MapFile maps the ring in f, a descriptor of a shared memory object or
// memfd received from another process (exec.Cmd's ExtraFiles, SCM_RIGHTS),
// and checks its header as Open does. The ring reopens the object through
// /proc/self/fd to get its own open file description, which its claims
// are locked on: a descriptor shared with another process must not carry
// them, or that process's death would not free its slots. f stays the
// caller's; close it.
func MapFile(f *os.File) (*Ring, error) {
	if f == nil {
		return nil, argErr("ring mapfile", "<nil>", "nil *os.File")
	}
	own, err := reopen(f)
	if err != nil {
		return nil, err
	}
	m, err := shm.MapFile(own, os.O_RDWR, 0, 0, nil)
	if err == nil {
		if _, err = checkHeader(m.Bytes()); err != nil {
			m.Close()
			err = &fs.PathError{Op: "ring mapfile", Path: f.Name(), Err: err}
		}
	}
	if err != nil {
		own.Close()
		return nil, err
	}
	r, err := newRing(f.Name(), m, own)
	if err != nil {
		own.Close()
		m.Close()
	}
	return r, err
}

// reopen opens f's file again, read-write: a new open file description.
func reopen(f *os.File) (*os.File, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, err
	}
	nfd := -1
	cerr := rc.Control(func(fd uintptr) {
		for {
			nfd, err = syscall.Open(proc.FD(int(fd)), syscall.O_RDWR|syscall.O_CLOEXEC, 0)
			if err != syscall.EINTR {
				return
			}
		}
	})
	if cerr != nil { // f is closed (the only error Control returns for a valid *os.File)
		return nil, &fs.PathError{Op: "ring mapfile", Path: f.Name(), Err: fs.ErrClosed}
	}
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: f.Name(), Err: err}
	}
	return os.NewFile(uintptr(nfd), f.Name()), nil
}

// unsafePointer is the address of b[off].
func unsafePointer(b []byte, off int) unsafe.Pointer { return unsafe.Pointer(&b[off]) }

var errNoMagicYet = fmt.Errorf("no magic yet (a creator still writing the header, or not a ring): %w", ErrNotRing)

// header is what checkHeader read and checked: the sizes a Ring is made
// of, read once (another process may rewrite the header meanwhile).
type header struct {
	capacity uint64
	nw, nr   int
}

// checkHeader checks the header of a ring mapped at b, in LAYOUT.md's
// order, and returns the sizes it checked.
func checkHeader(b []byte) (header, error) {
	if len(b) < fixedHeader {
		if len(b) == 0 {
			return header{}, errNoMagicYet
		}
		return header{}, fmt.Errorf("%d bytes, less than a ring's header: %w", len(b), ErrNotRing)
	}
	le := binary.LittleEndian
	m := (*atomic.Uint64)(unsafePointer(b, offMagic)).Load() // acquire: the header after the magic
	switch {
	case m == 0:
		return header{}, errNoMagicYet
	case m != le.Uint64([]byte(magic)):
		return header{}, fmt.Errorf("magic %q, want %q: %w", le.AppendUint64(nil, m), magic, ErrNotRing)
	}
	v, hs, c, mm := le.Uint32(b[offVersion:]), le.Uint32(b[offHeaderSize:]), le.Uint64(b[offCapacity:]), le.Uint64(b[offMaxMessage:])
	nr, nw := le.Uint32(b[offReaders:]), le.Uint32(b[offWriters:])
	if v != Version {
		return header{}, fmt.Errorf("layout version %d, this package knows %d: %w", v, Version, ErrNotRing)
	}
	if nr < 1 || nr > maxEnds || nw < 1 || nw > maxEnds {
		return header{}, fmt.Errorf("%d readers and %d writers, want 1 to %d of each: %w", nr, nw, maxEnds, ErrNotRing)
	}
	d := headerSize(int(nw), int(nr))
	switch {
	case hs != uint32(d):
		return header{}, fmt.Errorf("header size %d, want %d for %d writers and %d readers: %w", hs, d, nw, nr, ErrNotRing)
	case c < minCapacity || c > maxCapacity || c%recordAlign != 0:
		return header{}, fmt.Errorf("capacity %d is not a multiple of %d from %d to %d: %w", c, recordAlign, minCapacity, uint64(maxCapacity), ErrNotRing)
	case c*uint64(nw) > maxCapacity:
		return header{}, fmt.Errorf("capacity %d times %d writers is more than %d: %w", c, nw, uint64(maxCapacity), ErrNotRing)
	case mm != maxMessage(c):
		return header{}, fmt.Errorf("max message %d, want %d for capacity %d: %w", mm, maxMessage(c), c, ErrNotRing)
	case uint64(len(b)) < uint64(d) || c*uint64(nw) > uint64(len(b)-d):
		return header{}, fmt.Errorf("%d lanes of %d bytes after a %d-byte header do not fit the %d-byte object: %w", nw, c, d, len(b), ErrNotRing)
	}
	return header{capacity: c, nw: int(nw), nr: int(nr)}, nil
}

func newRing(name string, mem memory, lockf *os.File) (*Ring, error) {
	b := mem.Bytes()
	h, err := checkHeader(b)
	if err != nil {
		return nil, &fs.PathError{Op: "ring open", Path: name, Err: err}
	}
	c, nw, nr := h.capacity, h.nw, h.nr // as checked: the header is not read again
	r := &Ring{name: name, mem: mem, lockf: lockf, capacity: c, max: maxMessage(c),
		base: uintptr(unsafe.Pointer(unsafe.SliceData(b))), size: uintptr(len(b)),
		ws: make([]wslot, nw), rs: make([]rslot, nr), writers: make([]*Writer, nw), readers: make([]*Reader, nr)}
	r.spin.Store(int64(defaultSpin))
	u32 := func(p **atomic.Uint32, off int) {
		if err == nil {
			*p, err = mem.Uint32(int64(off))
		}
	}
	for w := range r.ws {
		s, o := &r.ws[w], writerSlot(w)
		u32(&s.state, o+wsState)
		u32(&s.pid, o+wsPid)
		u32(&s.sleep, o+wsSleep)
		s.sleepOff = int64(o + wsSleep)
		if err == nil {
			s.head, err = mem.Uint64(int64(o + wsHead))
		}
		d := uint64(laneOff(nw, nr, w, int(c)))
		s.data = b[d : d+c : d+c]
	}
	for i := range r.rs {
		s, o := &r.rs[i], readerSlot(nw, i)
		u32(&s.state, o+wsState)
		u32(&s.pid, o+wsPid)
		u32(&s.sleep, o+rsSleep)
		s.sleepOff = int64(o + rsSleep)
		s.tails = make([]*atomic.Uint64, nw)
		for w := range s.tails {
			if err == nil {
				s.tails[w], err = mem.Uint64(int64(tailOff(nw, i, w)))
			}
		}
	}
	if err != nil {
		return nil, err
	}
	if nr == 1 { // the one reader slot always holds: its tails must fit the heads
		for w := range r.ws {
			if h, t := r.ws[w].head.Load(), r.rs[0].tails[w].Load(); h-t > c || h%recordAlign != 0 || t%recordAlign != 0 {
				return nil, &fs.PathError{Op: "ring open", Path: name, Err: fmt.Errorf("lane %d: head %d and tail %d do not fit capacity %d: %w", w, h, t, c, ErrCorrupt)}
			}
		}
	}
	return r, nil
}

// Name returns the name of the ring's object, as given to Create or Open.
// A ring from CreateMemfd or MapFile knows its object by descriptor only:
// its Name is "" (its errors say the memfd's label or the file's name).
func (r *Ring) Name() string {
	if s, ok := r.mem.(*shm.Segment); ok {
		return s.Name()
	}
	return ""
}

// MaxMessage returns the largest message the ring takes, in bytes:
// capacity/2-8 (a lane's capacity), at least a quarter of it.
func (r *Ring) MaxMessage() int { return int(r.max) }

// Capacity returns the data bytes of each of the ring's lanes (one per
// writer slot).
func (r *Ring) Capacity() int { return int(r.capacity) }

// SetSpin sets how long a Send or Receive that would block polls the ring
// before it sleeps (10 µs unless set). Spinning trades a CPU for latency:
// a process with a core to itself may spin for milliseconds; 0 sleeps at
// once. Safe for concurrent use.
func (r *Ring) SetSpin(d time.Duration) { r.spin.Store(int64(max(d, 0))) }

// Unlink removes the ring's object name (shm.Unlink of Name). Processes
// that have it open keep using it. A ring with no Name (CreateMemfd,
// MapFile) has nothing to unlink: Unlink is then an error wrapping
// syscall.EINVAL, and removes nothing.
func (r *Ring) Unlink() error {
	s, ok := r.mem.(*shm.Segment)
	if !ok {
		return argErr("ring unlink", r.name, "no name to unlink: a ring from CreateMemfd or MapFile knows its object by descriptor only")
	}
	return s.Unlink()
}

// File returns a new descriptor of the ring's object, to hand to another
// process (exec.Cmd's ExtraFiles, SCM_RIGHTS), which maps it with
// MapFile. It is a fresh open file description (opened through
// /proc/self/fd), so no claim of this process travels with it. The caller
// closes it.
func (r *Ring) File() (*os.File, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, r.errClosed("file")
	}
	return reopen(r.lockf)
}

func (r *Ring) errClosed(op string) error {
	return &fs.PathError{Op: "ring " + op, Path: r.name, Err: fs.ErrClosed}
}

// errCorrupt is the error of a call that found the ring's counters or
// records broken.
func (r *Ring) errCorrupt(op, format string, args ...any) error {
	return &fs.PathError{Op: "ring " + op, Path: r.name, Err: fmt.Errorf(format+": %w", append(args, ErrCorrupt)...)}
}

// guard, deferred by every call that touches the ring's memory as
//
//	defer r.guard(op, debug.SetPanicOnFault(true), &err)
//
// (old is what SetPanicOnFault returned, restored here), turns a memory
// fault at an address of the ring's mapping into an error in *err: the
// object was truncated by another process and the page is gone (SIGBUS).
// Any other panic, a fault elsewhere (in the caller's buffer) included,
// goes on.
func (r *Ring) guard(op string, old bool, err *error) {
	debug.SetPanicOnFault(old)
	if p := recover(); p != nil {
		f, ok := p.(interface{ Addr() uintptr })
		if !ok || f.Addr()-r.base >= r.size {
			panic(p)
		}
		*err = &fs.PathError{Op: "ring " + op, Path: r.name, Err: shm.ErrFault}
	}
}

// leave, deferred right after a successful begin as
//
//	defer e.leave(op, debug.SetPanicOnFault(true), &err)
//
// is guard and the end's unlock in one deferred call (the calls made per
// message pay for one defer, not two): it unlocks the end, then turns a
// fault in the ring's mapping into an error in *err as guard does.
func (e *end) leave(op string, old bool, err *error) {
	debug.SetPanicOnFault(old)
	e.mu.Unlock()
	if p := recover(); p != nil {
		r := e.r
		f, ok := p.(interface{ Addr() uintptr })
		if !ok || f.Addr()-r.base >= r.size {
			panic(p)
		}
		*err = &fs.PathError{Op: "ring " + op, Path: r.name, Err: shm.ErrFault}
	}
}

// safely runs f, which touches the ring's memory, under guard.
func (r *Ring) safely(op string, f func()) (err error) {
	defer r.guard(op, debug.SetPanicOnFault(true), &err)
	f()
	return nil
}

// Writers returns the ring's number of writer slots.
func (r *Ring) Writers() int { return len(r.ws) }

// Readers returns the ring's number of reader slots.
func (r *Ring) Readers() int { return len(r.rs) }

// Close closes the writers and readers this Ring handed out, as their
// own Close would (a writer's close ends its lane's stream), then unmaps
// the ring. A second Close returns an error wrapping fs.ErrClosed.
func (r *Ring) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return r.errClosed("close")
	}
	r.closed = true
	ws, rs := slices.Clone(r.writers), slices.Clone(r.readers)
	r.mu.Unlock()
	for _, w := range ws {
		if w != nil {
			w.Close()
		}
	}
	for _, rd := range rs {
		if rd != nil {
			rd.Close()
		}
	}
	err := r.lockf.Close()
	if err2 := r.mem.Close(); err == nil {
		err = err2
	}
	return err
}

// claim takes the first slot free of a kind for this Ring: it tries the
// lock bytes lock0+i of the n slots in order, skipping those mine says
// this Ring holds (its own lock would not conflict). Called with r.mu.
func (r *Ring) claim(op string, lock0 int64, n int, mine func(i int) bool) (int, error) {
	if r.closed {
		return -1, r.errClosed(op)
	}
	for i := range n {
		if mine(i) {
			continue
		}
		ok, err := tryLock(r.lockf, lock0+int64(i))
		if err != nil {
			return -1, &fs.PathError{Op: "fcntl", Path: r.name, Err: err}
		}
		if ok {
			return i, nil
		}
	}
	return -1, &fs.PathError{Op: "ring " + op, Path: r.name, Err: ErrBusy}
}

// Writer claims the first free writer slot (ErrBusy if live processes,
// this Ring included, hold them all; one Ring may hold several, one per
// Writer). A writer that died left its slot free; the new writer of the
// slot continues its lane after the last message the old one committed.
// (The head it continues from is checked by each Send and Reserve, which
// refuse a corrupt one with ErrCorrupt.)
func (r *Ring) Writer() (*Writer, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	i, err := r.claim("writer", lockWriter0, len(r.ws), func(i int) bool { return r.writers[i] != nil })
	if err != nil {
		return nil, err
	}
	s := &r.ws[i]
	var head uint64
	var word uint32
	if err := r.safely("writer", func() {
		s.pid.Store(uint32(os.Getpid())) // before the state: a Stat that sees open sees the pid
		word = claimWord(s.state.Load())
		s.state.Store(word)
		head = s.head.Load()
	}); err != nil {
		unlock(r.lockf, lockWriter0+int64(i))
		return nil, err
	}
	w := &Writer{end: end{r: r, slot: i, sleep: s.sleep, sleepOff: s.sleepOff, state: s.state, word: word, lock: lockWriter0 + int64(i)},
		lane: s.data, headp: s.head, head: head, resv: -1, rt: make([]*atomic.Uint64, len(r.rs)), dead: make([]uint32, len(r.rs))}
	for j := range r.rs {
		w.rt[j] = r.rs[j].tails[i]
	}
	r.writers[i] = w
	return w, nil
}

// Reader claims the first free reader slot (ErrBusy if live processes,
// this Ring included, hold them all; one Ring may hold several, one per
// Reader). In a ring of one reader slot, a reader that died or closed
// left its place: the new reader starts at the first message not yet
// released, which may be one the old reader had received (at least
// once). In a ring of several reader slots, the new reader starts at the
// next message published after its claim. (The tails it starts from are
// checked by each Receive and Next, which refuse a corrupt one with
// ErrCorrupt.)
func (r *Ring) Reader() (*Reader, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	i, err := r.claim("reader", lockReader0, len(r.rs), func(i int) bool { return r.readers[i] != nil })
	if err != nil {
		return nil, err
	}
	s := &r.rs[i]
	rd := &Reader{end: end{r: r, slot: i, sleep: s.sleep, sleepOff: s.sleepOff, state: s.state, lock: lockReader0 + int64(i)},
		held: -1, lanes: make([]rlane, len(r.ws)), last: len(r.ws) - 1}
	if err := r.safely("reader", func() {
		s.pid.Store(uint32(os.Getpid()))
		rd.word = claimWord(s.state.Load())
		s.state.Store(rd.word) // seq_cst: a writer that loads our tails after this sees us hold
		fence.Full()           // the store before the loads of the heads below, in race builds too
		for w := range rd.lanes {
			l := &rd.lanes[w]
			ws := &r.ws[w]
			l.tailp, l.headp, l.data, l.wsleep, l.wsleepOff = s.tails[w], ws.head, ws.data, ws.sleep, ws.sleepOff
			if len(r.rs) == 1 {
				l.tail = l.tailp.Load() // the one reader slot keeps its place
			} else {
				l.tail = l.headp.Load() // joining: from the next message published
				l.tailp.Store(l.tail)
			}
			l.headSeen, l.offTail = l.tail, ^uint64(0)
		}
		if len(r.rs) > 1 {
			rd.wakeWriters() // a writer waiting for our old tails has room now
		}
	}); err != nil {
		unlock(r.lockf, lockReader0+int64(i))
		return nil, err
	}
	r.readers[i] = rd
	return rd, nil
}

// end is what Writer and Reader share: the sleep protocol and Close.
type end struct {
	r        *Ring
	slot     int
	mu       sync.Mutex // held by a call in progress
	closeMu  sync.Mutex // held by a Close in progress, from its start
	closing  atomic.Bool
	closed   bool
	sleep    *atomic.Uint32
	sleepOff int64
	state    *atomic.Uint32
	word     uint32 // the state word our claim stored
	lock     int64

	// The peers' clock (LAYOUT.md §5, wait step 3), under mu:
	tested  time.Time // when the peers were last tested, or this end first slept without the ring moving (zero: it moved since)
	testNow bool      // the last wait ended on a tested peer's verdict: the next tests at once

	sleeps, wakes atomic.Int64 // sleeps announced, wakes made: for tests
	publishes     int64        // stores of head (writer) or tail (reader), under mu: for tests
	timeouts      atomic.Int64 // sleeps ended by pollPeer, not by a wake: for tests
}

// alive reports whether the slot whose lock byte is at lock is held by a
// live process: by another open file description, or by this Ring (mine:
// our own open file description's lock is invisible to F_OFD_GETLK). A
// lock that cannot be tested counts as held: never declare dead what we
// cannot judge.
func (r *Ring) alive(lock int64) bool {
	r.mu.Lock()
	var mine bool
	if lock >= lockReader0 {
		mine = r.readers[lock-lockReader0] != nil
	} else {
		mine = r.writers[lock-lockWriter0] != nil
	}
	r.mu.Unlock()
	if mine {
		return true
	}
	held, err := locked(r.lockf, lock)
	return err != nil || held
}

// wait blocks until ready() is true, spinning first, then sleeping on the
// end's futex word after announcing it there. judge decides, with the
// sleep announced, whether the peers' states end the wait (nil: sleep);
// check tells it to test the peers' locks, which it is asked every
// pollPeer of elapsed time, whatever ended the sleeps in between. A judge
// that returns nil may have changed what ready sees (a writer disregarding
// a dead reader): ready is asked again before the sleep.
func (e *end) wait(ctx context.Context, ready func() bool, judge func(check bool) error) error {
	r := e.r
	if d := time.Duration(r.spin.Load()); d > 0 {
		start := time.Now()
		for i := 1; ; i++ {
			if ready() {
				e.tested, e.testNow = time.Time{}, false // the ring moved: the peers' clock starts again
				return nil
			}
			if i%64 == 0 && (time.Since(start) > d || ctx.Err() != nil || e.closing.Load()) {
				break // the sleeping loop below reports ctx and Close
			}
		}
	}
	for {
		if e.closing.Load() {
			return r.errClosed("wait")
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		e.sleeps.Add(1)  // not between the store and the load: on x86 a locked add is a fence, which would hide a missing one
		e.sleep.Store(1) // announce, then look again (the peer stores, then loads this word)
		fence.Full()     // the store before the loads below, in race builds too
		if ready() {
			e.sleep.Store(0)
			e.tested, e.testNow = time.Time{}, false
			return nil
		}
		if testHookAnnounced != nil {
			testHookAnnounced()
		}
		if e.closing.Load() {
			e.sleep.Store(0)
			return r.errClosed("wait")
		}
		// The peers are tested by elapsed time since this end first slept
		// without the ring moving, across calls (a caller whose every call
		// times out sooner still learns of a death), whatever ends a sleep.
		now := time.Now()
		if e.tested.IsZero() {
			e.tested = now
		}
		check := e.testNow || now.Sub(e.tested) >= pollPeer
		if check {
			e.tested, e.testNow = now, false
		}
		if err := judge(check); err != nil {
			e.sleep.Store(0)
			if ready() { // committed before it went: deliver first
				e.tested = time.Time{}
				return nil
			}
			e.testNow = check // a verdict from a test: the next call tests at once
			return err
		}
		if check && ready() {
			e.sleep.Store(0)
			e.tested = time.Time{}
			return nil
		}
		sub, cancel := context.WithTimeout(ctx, max(pollPeer-now.Sub(e.tested), time.Millisecond))
		err := r.mem.Wait(sub, e.sleepOff, 1)
		timedOut := sub.Err() != nil || errors.Is(err, context.DeadlineExceeded) // Wait may see the deadline before the context's timer fires
		cancel()
		if err := ctx.Err(); err != nil {
			e.sleep.Store(0)
			return err
		}
		if dl, ok := ctx.Deadline(); ok && !time.Now().Before(dl) {
			e.sleep.Store(0)
			return context.DeadlineExceeded
		}
		if err != nil && !timedOut {
			e.sleep.Store(0)
			if errors.Is(err, shm.ErrFault) { // the futex word's page is gone
				return &fs.PathError{Op: "ring wait", Path: r.name, Err: shm.ErrFault}
			}
			return err
		}
		if timedOut {
			e.timeouts.Add(1)
		}
	}
}

// testHookAnnounced, if set (by tests), runs in wait after the sleep is
// announced and the ring found unready, before the peers' states are read.
var testHookAnnounced func()

// wakeWord wakes a side that announced a sleep in word at off. Its caller
// has just stored a counter or state word the sleeper's wait loads after
// announcing (a Dekker handshake) and run fence.Full, which keeps that
// store before the load of word, in race builds too.
func (e *end) wakeWord(word *atomic.Uint32, off int64) {
	if word.Load() != 0 && word.Swap(0) != 0 {
		e.wakes.Add(1)
		e.r.mem.Wake(off, 1)
	}
}

// wakeReaders wakes every reader slot's sleeper.
func (e *end) wakeReaders() {
	fence.Full()
	if len(e.r.rs) == 1 {
		e.wakeWord(e.r.rs[0].sleep, e.r.rs[0].sleepOff)
		return
	}
	for i := range e.r.rs {
		e.wakeWord(e.r.rs[i].sleep, e.r.rs[i].sleepOff)
	}
}

// wakeWriters wakes every writer slot's sleeper.
func (e *end) wakeWriters() {
	fence.Full()
	for i := range e.r.ws {
		e.wakeWord(e.r.ws[i].sleep, e.r.ws[i].sleepOff)
	}
}

// close ends the end: a call in progress returns fs.ErrClosed, the state
// word says closed, the other side is woken and the lock released. The
// end is closed and its lock released even where the ring's memory is
// gone (the object truncated): the error then wraps shm.ErrFault.
func (e *end) close(op string, wakeOthers func(), clear func()) error {
	r := e.r
	e.closeMu.Lock() // a second Close (the Ring's, say) returns once the first is done
	defer e.closeMu.Unlock()
	if e.closing.Swap(true) { // closed already: the memory may be gone
		return r.errClosed(op)
	}
	ferr := r.safely(op, func() {
		if e.sleep.Swap(0) != 0 { // our own call asleep: wake it; it sees closing
			r.mem.Wake(e.sleepOff, 1<<30)
		}
	})
	e.mu.Lock()
	defer e.mu.Unlock()
	e.closed = true
	if err := r.safely(op, func() { e.state.Store(e.word&^stateMask | endClosed); wakeOthers() }); ferr == nil {
		ferr = err
	}
	err := unlock(r.lockf, e.lock)
	r.mu.Lock()
	clear()
	r.mu.Unlock()
	if err != nil {
		return &fs.PathError{Op: "fcntl", Path: r.name, Err: err}
	}
	return ferr
}

// begin starts a call on the end: false after Close.
func (e *end) begin() bool {
	e.mu.Lock()
	if e.closed || e.closing.Load() {
		e.mu.Unlock()
		return false
	}
	return true
}

// A Writer is a writer slot of a ring, claimed by Ring.Writer, and the
// lane it writes. It is one producer: use it from one goroutine at a
// time (several Writers of one Ring may be used by several goroutines);
// Close may be called from any goroutine and ends a blocked call.
type Writer struct {
	end
	lane  []byte         // our lane's data
	headp *atomic.Uint64 // our lane's head in the ring
	head  uint64         // our copy of the head: only the writer stores it
	resv  int            // bytes reserved, -1 if none
	skip  uint64         // bytes to the end of the data, skipped by the reservation
	pos   uint64         // offset of the reserved record in the data

	rt   []*atomic.Uint64 // each reader slot's tail of our lane
	dead []uint32         // by reader slot: the state word it had when found dead (0: none), disregarded while it stays

	tailSeen uint64 // the least tail reserve last computed and found sound, if tailOK: the holding readers' at most
	tailOK   bool   // tailSeen was computed (a new Writer computes it first)
	offHead  uint64 // the head whose data offset (head % capacity) offVal is
	offVal   uint64 // (kept as the head moves: a division a message saved)
}

// Slot returns the writer slot the Writer holds, from 0.
func (w *Writer) Slot() int { return w.slot }

// Send sends msg as one message on the writer's lane, waiting while the
// lane is full. It returns ErrTooLarge (sending nothing) for more than
// MaxMessage bytes; while the lane is full, in a ring of one reader slot,
// ErrPeerGone if the reader's process died or io.ErrClosedPipe if the
// reader closed its end (in a ring of several, it waits for the slowest
// live reader and never reports their absence); or the context's error.
// While there is room it succeeds, reader or not. Counters that break the
// layout are ErrCorrupt, sending nothing.
func (w *Writer) Send(ctx context.Context, msg []byte) (err error) {
	if ctx == nil {
		return nilContext("send", w.r)
	}
	if len(msg) > int(w.r.max) {
		return ErrTooLarge
	}
	if !w.begin() {
		return w.r.errClosed("send")
	}
	defer w.leave("send", debug.SetPanicOnFault(true), &err) // one defer: the guard and the unlock
	if w.resv >= 0 {
		return argErr("ring send", w.r.name, "a reservation is pending: Commit it first")
	}
	b, err := w.reserve(ctx, "send", len(msg))
	if err != nil {
		return err
	}
	w.resv = -1 // Send's own: a fault in msg's memory leaves no reservation pending
	copy(b, msg)
	return w.commit(len(msg))
}

// Reserve returns n writable bytes in the writer's lane, waiting for room
// as Send does; Commit publishes them as a message. The slice is valid
// until Commit or Close. A second Reserve before Commit is an error. The
// slice is the shared memory itself, unguarded: if another process
// truncates the object, writing to it raises SIGBUS (see Ring). A writer
// that dies before Commit published nothing: no reader sees the bytes.
func (w *Writer) Reserve(ctx context.Context, n int) (b []byte, err error) {
	if ctx == nil {
		return nil, nilContext("reserve", w.r)
	}
	if n < 0 {
		return nil, argErr("ring reserve", w.r.name, "negative length %d", n)
	}
	if n > int(w.r.max) {
		return nil, ErrTooLarge
	}
	defer w.r.guard("reserve", debug.SetPanicOnFault(true), &err)
	if !w.begin() {
		return nil, w.r.errClosed("reserve")
	}
	defer w.mu.Unlock()
	if w.resv >= 0 {
		return nil, argErr("ring reserve", w.r.name, "a reservation is pending: Commit it first")
	}
	return w.reserve(ctx, "reserve", n)
}

// least computes the least tail of our lane among the holding reader
// slots (LAYOUT.md §5): the one slot when there is one; else the open
// ones not found dead, our head if none. corrupt: a tail that breaks the
// layout. A tail more than the capacity behind the head in a ring of
// several reader slots is a reader joining: it counts as the head less
// the capacity (no room) until it stores its tails.
func (w *Writer) least() (m uint64, corrupt string) {
	c := w.r.capacity
	if len(w.rt) == 1 {
		m = w.rt[0].Load()
		if w.head-m > c || m%recordAlign != 0 {
			return m, fmt.Sprintf("head %d, tail %d, capacity %d", w.head, m, c)
		}
		return m, ""
	}
	m = w.head
	for i, tp := range w.rt {
		s := w.r.rs[i].state.Load()
		if s&stateMask > endClosed {
			return m, fmt.Sprintf("reader slot %d state word %#x", i, s)
		}
		if s&stateMask != endOpen || s == w.dead[i] {
			continue
		}
		t := tp.Load()
		if t%recordAlign != 0 || (t != w.head && t-w.head < 1<<63) {
			return t, fmt.Sprintf("head %d, reader slot %d tail %d", w.head, i, t)
		}
		if w.head-t > c {
			t = w.head - c
		}
		if w.head-t > w.head-m {
			m = t
		}
	}
	return m, ""
}

// judge decides, while the writer waits for need bytes of room, whether
// the readers end the wait. One reader slot: its close is
// io.ErrClosedPipe, its death (found when check) ErrPeerGone. Several:
// never; when check, each holding reader whose tail leaves too little
// room is tested, and one found dead is disregarded from then on.
func (w *Writer) judge(check bool, need uint64) error {
	r := w.r
	if len(r.rs) == 1 {
		switch s := r.rs[0].state.Load() & stateMask; {
		case s > endClosed:
			return r.errCorrupt("send", "reader slot 0 state word %#x", r.rs[0].state.Load())
		case s == endClosed:
			return io.ErrClosedPipe
		case s == endOpen && check && !r.alive(lockReader0):
			return ErrPeerGone
		}
		return nil
	}
	if !check {
		return nil
	}
	for i, tp := range w.rt {
		s := r.rs[i].state.Load()
		if s&stateMask != endOpen || s == w.dead[i] {
			continue
		}
		if t := tp.Load(); r.capacity-(w.head-t) >= need && w.head-t <= r.capacity {
			continue // not what keeps us waiting
		}
		if !r.alive(lockReader0 + int64(i)) {
			w.dead[i] = s
		}
	}
	return nil
}

func (w *Writer) reserve(ctx context.Context, op string, n int) ([]byte, error) {
	r := w.r
	if w.head%recordAlign != 0 { // loaded from the ring at the claim
		return nil, r.errCorrupt(op, "head %d is not a multiple of %d", w.head, recordAlign)
	}
	rec := recordSize(uint64(n))
	off := w.offVal
	if w.head != w.offHead {
		off = w.head % r.capacity
	}
	var skip uint64
	if rec > r.capacity-off {
		skip = r.capacity - off
	}
	need := skip + rec
	var t uint64
	var bad string
	room := func() bool { t, bad = w.least(); return bad != "" || r.capacity-(w.head-t) >= need }
	// The least tail computed last, checked then, is the holding readers'
	// at most (a tail only grows while its reader holds, and a reader
	// that joins starts at or past it): while it leaves room, Send does
	// not read the shared tails' cache lines, which the readers write.
	// (Reserve always loads them: it writes nothing itself, and so finds
	// a truncated object.)
	if op != "reserve" && w.tailOK && r.capacity-(w.head-w.tailSeen) >= need {
		t = w.tailSeen
	} else if !room() {
		err := w.wait(ctx, room, func(check bool) error { return w.judge(check, need) })
		if err != nil {
			return nil, err
		}
	}
	if bad != "" {
		return nil, r.errCorrupt(op, "%s", bad)
	}
	if w.head-t > r.capacity || t%recordAlign != 0 {
		return nil, r.errCorrupt(op, "head %d, tail %d, capacity %d", w.head, t, r.capacity)
	}
	w.tailSeen, w.tailOK = t, true
	pos := off
	if skip > 0 {
		binary.LittleEndian.PutUint64(w.lane[off:], wrapMarker)
		pos = 0
	}
	w.resv, w.skip, w.pos = n, skip, pos
	return w.lane[pos+recordHdr : pos+recordHdr+uint64(n) : pos+recordHdr+uint64(n)], nil
}

// Commit publishes the first n bytes of the reservation as one message
// (n at most what Reserve returned) and wakes the readers that sleep.
func (w *Writer) Commit(n int) (err error) {
	defer w.r.guard("commit", debug.SetPanicOnFault(true), &err)
	if !w.begin() {
		return w.r.errClosed("commit")
	}
	defer w.mu.Unlock()
	if w.resv < 0 || n < 0 || n > w.resv {
		return argErr("ring commit", w.r.name, "commit of %d bytes with %d reserved", n, w.resv)
	}
	return w.commit(n)
}

func (w *Writer) commit(n int) error {
	r := w.r
	binary.LittleEndian.PutUint64(w.lane[w.pos:], uint64(n)) // length, reserved word 0
	w.head += w.skip + recordSize(uint64(n))
	w.offHead, w.offVal = w.head, w.pos+recordSize(uint64(n)) // the record ends at or before the data's end
	if w.offVal == r.capacity {
		w.offVal = 0
	}
	w.resv = -1
	w.publishes++
	w.headp.Store(w.head) // release: the record before the head
	w.wakeReaders()
	return nil
}

// Close releases the writer slot and ends its lane's stream: the readers
// receive what was sent, then io.EOF once every writer that claimed the
// ring is closed. A pending reservation is dropped. A blocked Send
// returns an error wrapping fs.ErrClosed. Close again: an error wrapping
// fs.ErrClosed.
func (w *Writer) Close() error {
	return w.close("writer close", w.wakeReaders, func() { w.r.writers[w.slot] = nil })
}

// A Reader is a reader slot of a ring, claimed by Ring.Reader: it
// receives every message of every lane, each lane's in its writer's
// order. It is one consumer: use it from one goroutine at a time (several
// Readers of one Ring may be used by several goroutines); Close may be
// called from any goroutine and ends a blocked call.
type Reader struct {
	end
	lanes []rlane
	last  int    // the lane the last message came from: the next looks after it first
	held  int    // length of the message Next returned, -1 if none
	hl    int    // its lane
	at    uint64 // its offset in the lane
}

// rlane is a reader's view of one lane.
type rlane struct {
	tail      uint64 // our copy of our tail, past any wrap marker read
	headSeen  uint64 // the head last loaded and found sound (the writer's at most); equal to tail: load again
	offTail   uint64 // the tail whose data offset (tail % capacity) offVal is
	offVal    uint64 // (kept as the tail moves: a division a message saved)
	tailp     *atomic.Uint64
	headp     *atomic.Uint64
	data      []byte
	wsleep    *atomic.Uint32
	wsleepOff int64
}

// Slot returns the reader slot the Reader holds, from 0.
func (rd *Reader) Slot() int { return rd.slot }

// Receive copies the next message into buf and releases it, waiting while
// the lanes are empty, and returns its length. A buf too small is
// io.ErrShortBuffer, and the message stays for the next call (Next tells
// its length). When every lane is empty it returns io.EOF if every writer
// that claimed the ring closed, ErrPeerGone if none lives and one died
// (again on every call, until a writer claims a slot), or the context's
// error. A writer that never came is waited for. Counters or a record
// that break the layout are ErrCorrupt (again on every call: the reader
// does not skip what it cannot read).
func (rd *Reader) Receive(ctx context.Context, buf []byte) (n int, err error) {
	if ctx == nil {
		return 0, nilContext("receive", rd.r)
	}
	if !rd.begin() {
		return 0, rd.r.errClosed("receive")
	}
	defer rd.leave("receive", debug.SetPanicOnFault(true), &err) // one defer: the guard and the unlock
	msg, err := rd.next(ctx, "receive")
	if err != nil {
		return 0, err
	}
	if len(buf) < len(msg) {
		return 0, io.ErrShortBuffer
	}
	n = copy(buf, msg)
	rd.release()
	return n, nil
}

// Next returns the next message in place, waiting as Receive does. It is
// valid until Release or Close; Next again before Release returns the same
// message. Release consumes it: a reader that dies before Release leaves
// it to the next reader of a one-reader ring (in a ring of several reader
// slots, a new reader starts afresh). The message is the shared memory
// itself, unguarded: if another process truncates the object, reading it
// raises SIGBUS (see Ring); a write(2) of it (os.File.Write) fails with
// EFAULT instead.
func (rd *Reader) Next(ctx context.Context) (msg []byte, err error) {
	if ctx == nil {
		return nil, nilContext("next", rd.r)
	}
	defer rd.r.guard("next", debug.SetPanicOnFault(true), &err)
	if !rd.begin() {
		return nil, rd.r.errClosed("next")
	}
	defer rd.mu.Unlock()
	return rd.next(ctx, "next")
}

// pick returns a lane with a message and its head (not yet checked),
// looking after the last lane read first, or -1. The head seen last,
// checked then, is the writer's at most, and the records before it were
// published: while it is ahead of the tail, the shared head's cache line,
// which the writer writes, is not read.
func (rd *Reader) pick() (int, uint64) {
	n := len(rd.lanes)
	i := rd.last
	for range n {
		if i++; i == n {
			i = 0
		}
		l := &rd.lanes[i]
		if l.headSeen != l.tail {
			return i, l.headSeen
		}
		if h := l.headp.Load(); h != l.tail { // acquire: the records before the head
			return i, h
		}
	}
	return -1, 0
}

// judge decides, while the reader waits with every lane empty, whether
// the writers end the wait (LAYOUT.md §5, end of stream): nil while a
// writer slot is open (and, when check, alive) or none was ever claimed;
// else io.EOF if every claimed one closed, ErrPeerGone if one died.
func (rd *Reader) judge(check bool) error {
	r := rd.r
	var claimed, dead bool
	for i := range r.ws {
		switch s := r.ws[i].state.Load() & stateMask; s {
		case endNone:
		case endClosed:
			claimed = true
		case endOpen:
			if !check || r.alive(lockWriter0+int64(i)) {
				return nil
			}
			claimed, dead = true, true
		default:
			return r.errCorrupt("receive", "writer slot %d state %d", i, s)
		}
	}
	switch {
	case !claimed:
		return nil
	case dead:
		return ErrPeerGone
	}
	return io.EOF
}

func (rd *Reader) next(ctx context.Context, op string) ([]byte, error) {
	r := rd.r
	if rd.held >= 0 {
		l := &rd.lanes[rd.hl]
		return l.data[rd.at+recordHdr : rd.at+recordHdr+uint64(rd.held) : rd.at+recordHdr+uint64(rd.held)], nil
	}
	for {
		for i := range rd.lanes {
			if rd.lanes[i].tail%recordAlign != 0 { // loaded from the ring at the claim
				return nil, r.errCorrupt(op, "lane %d: tail %d is not a multiple of %d", i, rd.lanes[i].tail, recordAlign)
			}
		}
		var i int
		var h uint64
		if len(rd.lanes) == 1 { // one writer: pick without the loop
			if l := &rd.lanes[0]; l.headSeen != l.tail {
				h = l.headSeen
			} else if h = l.headp.Load(); h == l.tail { // acquire: the records before the head
				i = -1
			}
		} else {
			i, h = rd.pick()
		}
		if i < 0 {
			ready := func() bool { i, _ := rd.pick(); return i >= 0 }
			if l := &rd.lanes[0]; len(rd.lanes) == 1 {
				ready = func() bool { return l.headp.Load() != l.tail }
			}
			if err := rd.wait(ctx, ready, rd.judge); err != nil {
				return nil, err
			}
			continue
		}
		l := &rd.lanes[i]
		if h-l.tail > r.capacity || h%recordAlign != 0 {
			return nil, r.errCorrupt(op, "lane %d: head %d, tail %d, capacity %d", i, h, l.tail, r.capacity)
		}
		l.headSeen = h
		for {
			off := l.offVal
			if l.tail != l.offTail {
				off = l.tail % r.capacity
			}
			n := binary.LittleEndian.Uint32(l.data[off:])
			if n == wrapMarker {
				if off == 0 || h-l.tail < r.capacity-off {
					return nil, r.errCorrupt(op, "lane %d: wrap marker at %d with head %d, tail %d", i, off, h, l.tail)
				}
				l.tail += r.capacity - off
				l.offTail, l.offVal = l.tail, 0
				if l.tail == h {
					break // the marker was the last published: look again
				}
				continue
			}
			if uint64(n) > r.max || recordSize(uint64(n)) > h-l.tail || off+recordSize(uint64(n)) > r.capacity {
				return nil, r.errCorrupt(op, "lane %d: record of %d bytes at %d with %d published", i, n, off, h-l.tail)
			}
			rd.held, rd.hl, rd.at, rd.last = int(n), i, off, i
			return l.data[off+recordHdr : off+recordHdr+uint64(n) : off+recordHdr+uint64(n)], nil
		}
	}
}

// Release consumes the message Next returned and wakes its writer if it
// sleeps for room. Release without a message from Next is an error.
func (rd *Reader) Release() (err error) {
	defer rd.r.guard("release", debug.SetPanicOnFault(true), &err)
	if !rd.begin() {
		return rd.r.errClosed("release")
	}
	defer rd.mu.Unlock()
	if rd.held < 0 {
		return argErr("ring release", rd.r.name, "no message to release: call Next first")
	}
	rd.release()
	return nil
}

func (rd *Reader) release() {
	l := &rd.lanes[rd.hl]
	l.tail += recordSize(uint64(rd.held))
	l.offTail, l.offVal = l.tail, rd.at+recordSize(uint64(rd.held)) // the record ends at or before the data's end
	if l.offVal == rd.r.capacity {
		l.offVal = 0
	}
	rd.held = -1
	rd.publishes++
	l.tailp.Store(l.tail) // release: done with the record before the tail moves
	fence.Full()
	rd.wakeWord(l.wsleep, l.wsleepOff)
}

// Close releases the reader slot. A message from Next not yet released
// stays in the ring for the next reader of a one-reader ring. A blocked
// call returns an error wrapping fs.ErrClosed; in a ring of one reader
// slot, a writer blocked on a full lane gets io.ErrClosedPipe (in a ring
// of several, it stops waiting for this reader). Close again: an error
// wrapping fs.ErrClosed.
func (rd *Reader) Close() error {
	return rd.close("reader close", rd.wakeWriters, func() { rd.r.readers[rd.slot] = nil })
}
