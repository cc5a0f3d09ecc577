//go:build linux && cgo

package ring

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"runtime/debug"
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

// Errors of the ring. Besides these, calls return io.EOF (the writer
// closed its end and every message was received), io.ErrClosedPipe (a
// Send that would block while the reader closed its end), the context's
// error, and errors wrapping fs.ErrClosed (use after Close),
// syscall.EINVAL (bad arguments) or shm.ErrFault (the object was
// truncated under the ring by another process: see Ring).
var (
	// ErrPeerGone: the process at the other end died without closing it.
	ErrPeerGone = errors.New("ring: the process at the other end died")
	// ErrBusy: the end is claimed by a live process (or by this Ring).
	ErrBusy = errors.New("ring: end already claimed by a live process")
	// ErrTooLarge: a message longer than MaxMessage.
	ErrTooLarge = errors.New("ring: message larger than MaxMessage")
	// ErrNotRing: the object is not a ring of a layout this package knows
	// (magic, version or sizes), or it is too small for its header.
	ErrNotRing = errors.New("ring: not a ring of layout version " + strconv.Itoa(Version))
	// ErrCorrupt: the ring's counters or a record break the layout (head
	// or tail not a multiple of 8, head behind tail or more than the
	// capacity ahead of it, a length beyond MaxMessage or beyond what the
	// writer published, a wrap marker where none belongs): the memory was
	// written by something that does not follow the protocol. The call
	// refuses, touching nothing outside the ring's data. It wraps
	// syscall.EPROTO, the C end's errno for the same.
	ErrCorrupt = fmt.Errorf("ring: corrupt counters or record: %w", syscall.EPROTO)
)

// pollPeer is how long a blocked call sleeps before it checks that its
// peer's process still holds its end.
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
// process. Its methods are safe for concurrent use. Close closes the ends
// it handed out.
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
	lockf    *os.File // our own open file description: the ends' locks
	base     uintptr  // the mapping's address and length: a fault there is the ring's
	size     uintptr
	data     []byte
	capacity uint64
	max      uint64
	head     *atomic.Uint64
	tail     *atomic.Uint64
	rsleep   *atomic.Uint32
	wsleep   *atomic.Uint32
	wstate   *atomic.Uint32
	rstate   *atomic.Uint32
	wpid     *atomic.Uint32
	rpid     *atomic.Uint32
	spin     atomic.Int64 // nanoseconds

	mu     sync.Mutex
	w      *Writer
	r      *Reader
	closed bool
}

func argErr(op, name, format string, args ...any) error {
	return &fs.PathError{Op: op, Path: name, Err: fmt.Errorf(format+": %w", append(args, syscall.EINVAL)...)}
}

// Create makes a new ring of capacity data bytes in a new shared memory
// object called name (shm.Create: exclusive, mode 0600, pages reserved),
// whose size is the 512-byte header plus capacity. capacity must be a
// multiple of 8 from 64 to 1<<40; the largest message is capacity/2-8
// bytes. The caller unlinks the object (Unlink) when the ring is no
// longer wanted.
func Create(name string, capacity int) (*Ring, error) {
	if err := checkCapacity("create", name, capacity); err != nil {
		return nil, err
	}
	// The header is written before the name is published (Options.Init),
	// so no Go, C or Python peer ever opens this ring half-made, and a
	// failure leaves no object behind.
	s, err := shm.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600, headerSize+capacity,
		&shm.Options{Init: func(b []byte) error { writeHeader(b, capacity); return nil }})
	if err != nil {
		return nil, err
	}
	r, err := newSegment(s, name)
	if err != nil {
		s.Unlink() // ours: a failed Create leaves nothing
	}
	return r, err
}

// CreateMemfd makes a new ring as Create does, in an anonymous memfd
// (shm.CreateMemfd: sealed so that it can never shrink or grow) instead of
// a named object. Hand it to another process with File; it maps it with
// MapFile. name is only the memfd's label: the ring has no name (Name is
// "", Unlink an error), and is freed with its last descriptor and mapping.
func CreateMemfd(name string, capacity int) (*Ring, error) {
	if err := checkCapacity("creatememfd", name, capacity); err != nil {
		return nil, err
	}
	s, err := shm.CreateMemfd(name, headerSize+capacity)
	if err != nil {
		return nil, err
	}
	writeHeader(s.Bytes(), capacity)
	return newSegment(s, "")
}

func checkCapacity(op, name string, capacity int) error {
	if capacity < minCapacity || uint64(capacity) > maxCapacity || capacity%recordAlign != 0 {
		return argErr("ring "+op, name, "capacity %d: want a multiple of %d from %d to %d", capacity, recordAlign, minCapacity, uint64(maxCapacity))
	}
	return nil
}

// writeHeader writes the header of a new ring of capacity data bytes into
// b, the magic last (a release store: a peer that sees the magic sees the
// rest).
func writeHeader(b []byte, capacity int) {
	binary.LittleEndian.PutUint32(b[offVersion:], Version)
	binary.LittleEndian.PutUint32(b[offHeaderSize:], headerSize)
	binary.LittleEndian.PutUint64(b[offCapacity:], uint64(capacity))
	binary.LittleEndian.PutUint64(b[offMaxMessage:], maxMessage(uint64(capacity)))
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
		if err = checkHeader(s.Bytes()); errors.Is(err, errNoMagicYet) && time.Now().Before(deadline) {
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
// them, or that process's death would not free its end. f stays the
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
		if err = checkHeader(m.Bytes()); err != nil {
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
	if cerr != nil {
		return nil, cerr
	}
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: f.Name(), Err: err}
	}
	return os.NewFile(uintptr(nfd), f.Name()), nil
}

// unsafePointer is the address of b[off].
func unsafePointer(b []byte, off int) unsafe.Pointer { return unsafe.Pointer(&b[off]) }

var errNoMagicYet = fmt.Errorf("no magic yet (a creator still writing the header, or not a ring): %w", ErrNotRing)

// checkHeader checks the header of a ring mapped at b.
func checkHeader(b []byte) error {
	if len(b) < headerSize {
		if len(b) == 0 {
			return errNoMagicYet
		}
		return fmt.Errorf("%d bytes, less than a ring's header: %w", len(b), ErrNotRing)
	}
	le := binary.LittleEndian
	m := (*atomic.Uint64)(unsafePointer(b, offMagic)).Load() // acquire: the header after the magic
	switch {
	case m == 0:
		return errNoMagicYet
	case m != le.Uint64([]byte(magic)):
		return fmt.Errorf("magic %q, want %q: %w", le.AppendUint64(nil, m), magic, ErrNotRing)
	}
	v, hs, c, mm := le.Uint32(b[offVersion:]), le.Uint32(b[offHeaderSize:]), le.Uint64(b[offCapacity:]), le.Uint64(b[offMaxMessage:])
	switch {
	case v != Version:
		return fmt.Errorf("layout version %d, this package knows %d: %w", v, Version, ErrNotRing)
	case hs != headerSize:
		return fmt.Errorf("header size %d, version %d has %d: %w", hs, Version, headerSize, ErrNotRing)
	case c < minCapacity || c > maxCapacity || c%recordAlign != 0:
		return fmt.Errorf("capacity %d is not a multiple of %d from %d to %d: %w", c, recordAlign, minCapacity, uint64(maxCapacity), ErrNotRing)
	case c > uint64(len(b)-headerSize):
		return fmt.Errorf("capacity %d does not fit the %d-byte object: %w", c, len(b), ErrNotRing)
	case mm != maxMessage(c):
		return fmt.Errorf("max message %d, want %d for capacity %d: %w", mm, maxMessage(c), c, ErrNotRing)
	}
	return nil
}

func newRing(name string, mem memory, lockf *os.File) (*Ring, error) {
	b := mem.Bytes()
	if err := checkHeader(b); err != nil {
		return nil, &fs.PathError{Op: "ring open", Path: name, Err: err}
	}
	c := binary.LittleEndian.Uint64(b[offCapacity:])
	r := &Ring{name: name, mem: mem, lockf: lockf, capacity: c, max: maxMessage(c),
		base: uintptr(unsafe.Pointer(unsafe.SliceData(b))), size: uintptr(len(b)),
		data: b[headerSize : headerSize+c : headerSize+c]}
	r.spin.Store(int64(defaultSpin))
	var err error
	for _, w := range []struct {
		p   **atomic.Uint32
		off int64
	}{{&r.rsleep, offReaderSleep}, {&r.wsleep, offWriterSleep}, {&r.wstate, offWriterState}, {&r.rstate, offReaderState},
		{&r.wpid, offWriterPid}, {&r.rpid, offReaderPid}} {
		if *w.p, err = mem.Uint32(w.off); err != nil {
			return nil, err
		}
	}
	if r.head, err = mem.Uint64(offHead); err != nil {
		return nil, err
	}
	if r.tail, err = mem.Uint64(offTail); err != nil {
		return nil, err
	}
	if h, t := r.head.Load(), r.tail.Load(); h-t > c || h%recordAlign != 0 || t%recordAlign != 0 {
		return nil, &fs.PathError{Op: "ring open", Path: name, Err: fmt.Errorf("head %d and tail %d do not fit capacity %d: %w", h, t, c, ErrCorrupt)}
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
// capacity/2-8, at least a quarter of the capacity.
func (r *Ring) MaxMessage() int { return int(r.max) }

// Capacity returns the ring's data bytes.
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

// Close closes the ends this Ring handed out, as their own Close would
// (a writer's close ends the stream), then unmaps the ring. A second
// Close returns an error wrapping fs.ErrClosed.
func (r *Ring) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return r.errClosed("close")
	}
	r.closed = true
	w, rd := r.w, r.r
	r.mu.Unlock()
	if w != nil {
		w.Close()
	}
	if rd != nil {
		rd.Close()
	}
	err := r.lockf.Close()
	if err2 := r.mem.Close(); err == nil {
		err = err2
	}
	return err
}

// claim takes the end whose lock byte is at lock for this Ring.
func (r *Ring) claim(op string, lock int64, mine func() bool) error {
	if r.closed {
		return r.errClosed(op)
	}
	if mine() {
		return &fs.PathError{Op: "ring " + op, Path: r.name, Err: ErrBusy}
	}
	ok, err := tryLock(r.lockf, lock)
	if err != nil {
		return &fs.PathError{Op: "fcntl", Path: r.name, Err: err}
	}
	if !ok {
		return &fs.PathError{Op: "ring " + op, Path: r.name, Err: ErrBusy}
	}
	return nil
}

// Writer claims the writing end: ErrBusy if a live process (this one
// included) holds it. A writer that died left its end free; the new
// writer continues after the last message the old one committed. (The
// head it continues from is checked by each Send and Reserve, which
// refuse a corrupt one with ErrCorrupt.)
func (r *Ring) Writer() (*Writer, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.claim("writer", lockWriter, func() bool { return r.w != nil }); err != nil {
		return nil, err
	}
	var head uint64
	if err := r.safely("writer", func() {
		r.wpid.Store(uint32(os.Getpid())) // before the state: a Stat that sees open sees the pid
		r.wstate.Store(endOpen)
		head = r.head.Load()
	}); err != nil {
		unlock(r.lockf, lockWriter)
		return nil, err
	}
	r.w = &Writer{end: end{r: r, sleep: r.wsleep, sleepOff: offWriterSleep, peerState: r.rstate, peerLock: lockReader, lock: lockWriter, state: r.wstate}, head: head, resv: -1}
	return r.w, nil
}

// Reader claims the reading end: ErrBusy if a live process (this one
// included) holds it. A reader that died or closed left its end free; the
// new reader starts at the first message not yet released, which may be
// one the old reader had received (at least once). (The tail it starts
// from is checked by each Receive and Next, which refuse a corrupt one
// with ErrCorrupt.)
func (r *Ring) Reader() (*Reader, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.claim("reader", lockReader, func() bool { return r.r != nil }); err != nil {
		return nil, err
	}
	var tail uint64
	if err := r.safely("reader", func() {
		r.rpid.Store(uint32(os.Getpid()))
		r.rstate.Store(endOpen)
		tail = r.tail.Load()
	}); err != nil {
		unlock(r.lockf, lockReader)
		return nil, err
	}
	r.r = &Reader{end: end{r: r, sleep: r.rsleep, sleepOff: offReaderSleep, peerState: r.wstate, peerLock: lockWriter, lock: lockReader, state: r.rstate}, tail: tail, held: -1}
	return r.r, nil
}

// end is what Writer and Reader share: the sleep protocol and Close.
type end struct {
	r         *Ring
	mu        sync.Mutex // held by a call in progress
	closing   atomic.Bool
	closed    bool
	check     bool // test the peer's lock before sleeping (set after a sleep timed out)
	sleep     *atomic.Uint32
	sleepOff  int64
	state     *atomic.Uint32
	lock      int64
	peerState *atomic.Uint32
	peerLock  int64

	sleeps, wakes atomic.Int64 // sleeps announced, wakes made: for tests
	publishes     int64        // stores of head (writer) or tail (reader), under mu: for tests
	timeouts      atomic.Int64 // sleeps ended by pollPeer, not by a wake: for tests
}

// peerAlive reports whether the other end's holder still holds its lock.
func (e *end) peerAlive() bool {
	r := e.r
	r.mu.Lock()
	mine := (e.peerLock == lockWriter && r.w != nil) || (e.peerLock == lockReader && r.r != nil)
	r.mu.Unlock()
	if mine {
		return true // our own open file description's lock: GETLK cannot see it
	}
	held, err := locked(r.lockf, e.peerLock)
	return err != nil || held // never declare dead what we cannot judge
}

// wait blocks until ready() is true, spinning first, then sleeping on the
// end's futex word after announcing it there. peerErr decides, with the
// sleep announced, whether the peer's state ends the wait (nil: sleep).
func (e *end) wait(ctx context.Context, ready func() bool, peerErr func(state uint32) error) error {
	r := e.r
	if d := time.Duration(r.spin.Load()); d > 0 {
		start := time.Now()
		for i := 1; ; i++ {
			if ready() {
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
			e.check = false
			return nil
		}
		if testHookAnnounced != nil {
			testHookAnnounced()
		}
		if e.closing.Load() {
			e.sleep.Store(0)
			return r.errClosed("wait")
		}
		if st := e.peerState.Load(); st != endOpen || e.check {
			err := peerErr(st)
			if err == nil && st == endOpen && !e.peerAlive() {
				err = ErrPeerGone
			}
			if err != nil {
				e.sleep.Store(0)
				if ready() { // committed before it went: deliver first
					return nil
				}
				return err
			}
		}
		sub, cancel := context.WithTimeout(ctx, pollPeer)
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
		e.check = timedOut
	}
}

// testHookAnnounced, if set (by tests), runs in wait after the sleep is
// announced and the ring found unready, before the peer's state is read.
var testHookAnnounced func()

// wakePeer wakes the other side if it announced a sleep in word at off.
// Its caller has just stored a counter or state word the peer's wait
// loads after announcing (a Dekker handshake): fence.Full keeps that
// store before the load of word, in race builds too.
func (e *end) wakePeer(word *atomic.Uint32, off int64) {
	fence.Full()
	if word.Load() != 0 && word.Swap(0) != 0 {
		e.wakes.Add(1)
		e.r.mem.Wake(off, 1)
	}
}

// close ends the end: a call in progress returns fs.ErrClosed, the state
// word says closed, the peer is woken and the lock released. The end is
// closed and its lock released even where the ring's memory is gone (the
// object truncated): the error then wraps shm.ErrFault.
func (e *end) close(op string, peerSleep *atomic.Uint32, peerSleepOff int64, clear func()) error {
	r := e.r
	if e.closing.Swap(true) { // closed, or being closed: the memory may be gone
		e.mu.Lock() // returns once a Close in progress is done
		defer e.mu.Unlock()
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
	if err := r.safely(op, func() { e.state.Store(endClosed); e.wakePeer(peerSleep, peerSleepOff) }); ferr == nil {
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

// A Writer is the writing end of a ring, claimed by Ring.Writer. It is one
// producer: use it from one goroutine at a time; Close may be called from
// any goroutine and ends a blocked call.
type Writer struct {
	end
	head uint64 // our copy of the head: only the writer stores it
	resv int    // bytes reserved, -1 if none
	skip uint64 // bytes to the end of the data, skipped by the reservation
	pos  uint64 // offset of the reserved record in the data

	tailSeen uint64 // the tail reserve last loaded and found sound, if tailOK: the reader's at most
	tailOK   bool   // tailSeen was loaded (a new Writer loads the tail first)
	offHead  uint64 // the head whose data offset (head % capacity) offVal is
	offVal   uint64 // (kept as the head moves: a division a message saved)
}

// Send sends msg as one message, waiting while the ring is full. It
// returns ErrTooLarge (sending nothing) for more than MaxMessage bytes;
// while the ring is full, ErrPeerGone if the reader's process died,
// io.ErrClosedPipe if the reader closed its end, or the context's error.
// While there is room it succeeds, reader or not. Counters that break the
// layout are ErrCorrupt, sending nothing.
func (w *Writer) Send(ctx context.Context, msg []byte) (err error) {
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

// Reserve returns n writable bytes in the ring, waiting for room as Send
// does; Commit publishes them as a message. The slice is valid until
// Commit or Close. A second Reserve before Commit is an error. The slice
// is the shared memory itself, unguarded: if another process truncates
// the object, writing to it raises SIGBUS (see Ring).
func (w *Writer) Reserve(ctx context.Context, n int) (b []byte, err error) {
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
	bad := func() bool { return w.head-t > r.capacity || t%recordAlign != 0 }
	room := func() bool { t = r.tail.Load(); return bad() || r.capacity-(w.head-t) >= need }
	// The tail seen last, checked then, is the reader's at most (it only
	// grows): while it leaves room, Send does not read the shared tail's
	// cache line, which the reader writes. (Reserve always loads it: it
	// writes nothing itself, and so finds a truncated object.)
	if op != "reserve" && w.tailOK && r.capacity-(w.head-w.tailSeen) >= need {
		t = w.tailSeen
	} else if !room() {
		err := w.wait(ctx, room, func(st uint32) error {
			if st == endClosed {
				return io.ErrClosedPipe
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	if bad() {
		return nil, r.errCorrupt(op, "head %d, tail %d, capacity %d", w.head, t, r.capacity)
	}
	w.tailSeen, w.tailOK = t, true
	pos := off
	if skip > 0 {
		binary.LittleEndian.PutUint64(r.data[off:], wrapMarker)
		pos = 0
	}
	w.resv, w.skip, w.pos = n, skip, pos
	return r.data[pos+recordHdr : pos+recordHdr+uint64(n) : pos+recordHdr+uint64(n)], nil
}

// Commit publishes the first n bytes of the reservation as one message
// (n at most what Reserve returned) and wakes the reader if it sleeps.
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
	binary.LittleEndian.PutUint64(r.data[w.pos:], uint64(n)) // length, reserved word 0
	w.head += w.skip + recordSize(uint64(n))
	w.offHead, w.offVal = w.head, w.pos+recordSize(uint64(n)) // the record ends at or before the data's end
	if w.offVal == r.capacity {
		w.offVal = 0
	}
	w.resv = -1
	w.publishes++
	r.head.Store(w.head) // release: the record before the head
	w.wakePeer(r.rsleep, offReaderSleep)
	return nil
}

// Close releases the writing end and ends the stream: the reader
// receives what was sent, then io.EOF. A pending reservation is dropped.
// A blocked Send returns an error wrapping fs.ErrClosed. Close again:
// an error wrapping fs.ErrClosed.
func (w *Writer) Close() error {
	return w.close("writer close", w.r.rsleep, offReaderSleep, func() { w.r.w = nil })
}

// A Reader is the reading end of a ring, claimed by Ring.Reader. It is
// one consumer: use it from one goroutine at a time; Close may be called
// from any goroutine and ends a blocked call.
type Reader struct {
	end
	tail uint64 // our copy of the tail, past any wrap marker read
	held int    // length of the message Next returned, -1 if none
	at   uint64 // its offset in the data

	headSeen uint64 // the head next last loaded and found sound, if headOK
	headOK   bool   // headSeen was loaded (a new Reader loads the head first)
	offTail  uint64 // the tail whose data offset (tail % capacity) offVal is
	offVal   uint64 // (kept as the tail moves: a division a message saved)
}

// Receive copies the next message into buf and releases it, waiting while
// the ring is empty, and returns its length. A buf too small is
// io.ErrShortBuffer, and the message stays for the next call (Next tells
// its length). When the ring is empty it returns io.EOF if the writer
// closed its end, ErrPeerGone if the writer's process died (again on
// every call, until a new writer claims the end), or the context's error.
// A writer that never came is waited for. Counters or a record that break
// the layout are ErrCorrupt (again on every call: the reader does not skip
// what it cannot read).
func (rd *Reader) Receive(ctx context.Context, buf []byte) (n int, err error) {
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
// it to the next reader. The message is the shared memory itself,
// unguarded: if another process truncates the object, reading it raises
// SIGBUS (see Ring); a write(2) of it (os.File.Write) fails with EFAULT
// instead.
func (rd *Reader) Next(ctx context.Context) (msg []byte, err error) {
	defer rd.r.guard("next", debug.SetPanicOnFault(true), &err)
	if !rd.begin() {
		return nil, rd.r.errClosed("next")
	}
	defer rd.mu.Unlock()
	return rd.next(ctx, "next")
}

func (rd *Reader) next(ctx context.Context, op string) ([]byte, error) {
	r := rd.r
	if rd.held >= 0 {
		return r.data[rd.at+recordHdr : rd.at+recordHdr+uint64(rd.held) : rd.at+recordHdr+uint64(rd.held)], nil
	}
	for {
		if rd.tail%recordAlign != 0 { // loaded from the ring at the claim
			return nil, r.errCorrupt(op, "tail %d is not a multiple of %d", rd.tail, recordAlign)
		}
		// The head seen last, checked then, is the writer's at most, and
		// the records before it were published: while it is ahead of the
		// tail, the shared head's cache line, which the writer writes, is
		// not read. (Each record read is checked against it as ever.)
		h := rd.headSeen
		if !rd.headOK || h == rd.tail {
			h = r.head.Load() // acquire: the records before the head
		}
		if h == rd.tail {
			err := rd.wait(ctx, func() bool { return r.head.Load() != rd.tail }, func(st uint32) error {
				if st == endClosed {
					return io.EOF
				}
				return nil
			})
			if err != nil {
				return nil, err
			}
			continue
		}
		if h-rd.tail > r.capacity || h%recordAlign != 0 {
			return nil, r.errCorrupt(op, "head %d, tail %d, capacity %d", h, rd.tail, r.capacity)
		}
		rd.headSeen, rd.headOK = h, true
		off := rd.offVal
		if rd.tail != rd.offTail {
			off = rd.tail % r.capacity
		}
		n := binary.LittleEndian.Uint32(r.data[off:])
		if n == wrapMarker {
			if off == 0 || h-rd.tail < r.capacity-off {
				return nil, r.errCorrupt(op, "wrap marker at %d with head %d, tail %d", off, h, rd.tail)
			}
			rd.tail += r.capacity - off
			rd.offTail, rd.offVal = rd.tail, 0
			continue
		}
		if uint64(n) > r.max || recordSize(uint64(n)) > h-rd.tail || off+recordSize(uint64(n)) > r.capacity {
			return nil, r.errCorrupt(op, "record of %d bytes at %d with %d published", n, off, h-rd.tail)
		}
		rd.held, rd.at = int(n), off
		return r.data[off+recordHdr : off+recordHdr+uint64(n) : off+recordHdr+uint64(n)], nil
	}
}

// Release consumes the message Next returned and wakes the writer if it
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
	r := rd.r
	rd.tail += recordSize(uint64(rd.held))
	rd.offTail, rd.offVal = rd.tail, rd.at+recordSize(uint64(rd.held)) // the record ends at or before the data's end
	if rd.offVal == r.capacity {
		rd.offVal = 0
	}
	rd.held = -1
	rd.publishes++
	r.tail.Store(rd.tail) // release: done with the record before the tail moves
	rd.wakePeer(r.wsleep, offWriterSleep)
}

// Close releases the reading end. A message from Next not yet released
// stays in the ring for the next reader. A blocked call returns an error
// wrapping fs.ErrClosed; a writer blocked on a full ring gets
// io.ErrClosedPipe. Close again: an error wrapping fs.ErrClosed.
func (rd *Reader) Close() error {
	return rd.close("reader close", rd.r.wsleep, offWriterSleep, func() { rd.r.r = nil })
}
