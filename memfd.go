//go:build linux && cgo

package shm

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"syscall"

	"github.com/posixshm/shm/internal/kernel"
	"github.com/posixshm/shm/internal/proc"
)

// A Seal is a set of memfd seals, as fcntl(F_ADD_SEALS) and
// fcntl(F_GET_SEALS) take and give them. A seal, once added, stays for the
// life of the object, for every process that holds it.
type Seal int

// The seals, with the kernel's values (F_SEAL_*).
const (
	SealSeal        Seal = kernel.F_SEAL_SEAL         // no seal can be added any more
	SealShrink      Seal = kernel.F_SEAL_SHRINK       // the size can never go down, so no page of a mapping can vanish
	SealGrow        Seal = kernel.F_SEAL_GROW         // the size can never go up
	SealWrite       Seal = kernel.F_SEAL_WRITE        // the contents can never change; no writable shared mapping may exist
	SealFutureWrite Seal = kernel.F_SEAL_FUTURE_WRITE // no new write (write(2), writable mapping); existing writable mappings stay
	// SealExec is F_SEAL_EXEC (Linux 6.3): the mode's execute bits can
	// never change. The C headers of Debian 12 (Linux 6.1) lack it, so it
	// is the next seal bit after SealFutureWrite, as the kernel has it.
	SealExec = SealFutureWrite << 1

	// MemfdSeals are the seals of CreateMemfd: the size is fixed for
	// good, so a mapping can never fault from truncation, and nobody can
	// add a seal later.
	MemfdSeals = SealShrink | SealGrow | SealSeal
)

// The build fails if a Seal's value ever differs from the C headers'
// (shm_cgo.go's fSeal*).
var _ = [1]struct{}{}[SealSeal^fSealSeal|SealShrink^fSealShrink|SealGrow^fSealGrow|
	SealWrite^fSealWrite|SealFutureWrite^fSealFutureWrite|SealExec^fSealExec]

var sealNames = []struct {
	s    Seal
	name string
}{{SealSeal, "seal"}, {SealShrink, "shrink"}, {SealGrow, "grow"}, {SealWrite, "write"},
	{SealFutureWrite, "future-write"}, {SealExec, "exec"}}

// String names the seals, "shrink|grow|seal" style; "none" for 0.
func (s Seal) String() string {
	var parts []string
	for _, n := range sealNames {
		if s&n.s != 0 {
			parts = append(parts, n.name)
			s &^= n.s
		}
	}
	if s != 0 {
		parts = append(parts, "0x"+strconv.FormatUint(uint64(s), 16))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, "|")
}

const allSeals = SealSeal | SealShrink | SealGrow | SealWrite | SealFutureWrite | SealExec

// CreateMemfd creates an anonymous shared memory object of size bytes,
// sealed so that nobody can ever change its size, and maps it read-write:
// memfd_create(name, MFD_CLOEXEC|MFD_ALLOW_SEALING|MFD_NOEXEC_SEAL) (without
// MFD_NOEXEC_SEAL on kernels before 6.3), fallocate to reserve every page
// (ENOSPC, not SIGBUS; EINTR retried with signals blocked, as Create does),
// fcntl(F_ADD_SEALS, F_SEAL_SHRINK|F_SEAL_GROW|F_SEAL_SEAL) before anyone
// else can see the descriptor, and mmap(MAP_SHARED), in one cgo crossing.
//
// The object has no name in /dev/shm: nothing can be left behind, and it
// is freed when its last descriptor and mapping go. So the result is a
// Mapping, with no Name and no Unlink, not a Segment. Hand it to another
// process with File: as an exec.Cmd's ExtraFiles, or over a Unix socket
// (see the example). name is only a label (at most 249 bytes, no NUL),
// which need not be unique: /proc/PID/fd shows "/memfd:NAME (deleted)",
// and errors, File's name and Stat's Name say "memfd:NAME". It is never
// the name of an object: Open, Unlink and the like given it would find an
// unrelated object of that name, if any.
//
// Since the object can never shrink, ShrinkSealed is true and Bytes can never
// fault from truncation, whatever another process does with the
// descriptor. CreateMemfdWith chooses other seals. size must be positive.
// A reservation (or, with Options.Sparse and Options.Populate, the pages
// populated) that cannot fit in the memory cgroup's limit or in the
// host's memory is ENOMEM, as for Create: a memfd's tmpfs has no size
// limit of its own.
// Where the C library lacks memfd_create (glibc before 2.27, musl before
// 1.1.20) the error, with Op "memfd_create", wraps syscall.ENOSYS.
func CreateMemfd(name string, size int) (*Mapping, error) {
	return CreateMemfdWith(name, size, MemfdSeals, nil)
}

// CreateMemfdWith is the general form of CreateMemfd: seals are the seals the
// new object gets before anyone else can see it (any of SealShrink,
// SealGrow, SealSeal, SealExec; 0 for none). Leave SealSeal out to add
// seals later with AddSeals: for a read-only hand-off, create with
// SealShrink|SealGrow, fill the object, then AddSeals(SealWrite|SealSeal)
// before passing it on. Of opt, Sparse (ftruncate only, no reservation)
// and Populate apply; Private is refused, as a private mapping of a new
// memfd would keep its writes from everyone, and so is Init, as a memfd
// has no name to be published under. Argument errors have Op
// "creatememfd".
func CreateMemfdWith(name string, size int, seals Seal, opt *Options) (*Mapping, error) {
	path := "memfd:" + name
	switch {
	case size <= 0:
		return nil, argErr("creatememfd", path, "size %d must be positive", size)
	case seals&^(SealShrink|SealGrow|SealSeal|SealExec) != 0:
		return nil, argErr("creatememfd", path, "seals %v: a new memfd takes only shrink, grow, seal and exec; add write seals with AddSeals once it is filled", seals)
	case opt != nil && opt.Private:
		return nil, argErr("creatememfd", path, "a private mapping of a new memfd would keep its writes from everyone")
	case opt != nil && opt.Init != nil:
		return nil, argErr("creatememfd", path, "Options.Init: a memfd has no name to publish under, so nobody can see it before it returns: fill it after (OpenFile only)")
	}
	flags := opt.mapFlags()
	if testNoMemfd {
		flags |= mapNoMemfd
	}
	if resident(flags) {
		if err := checkMemoryRoom(residentOp("creatememfd", flags), path, int64(size)); err != nil {
			return nil, err
		}
	}
	r, err := memfdCreate(name, path, int64(size), int(seals), flags)
	if err == nil {
		err = finishPopulate(path, r)
	}
	if err != nil {
		return nil, explainMemfd(err)
	}
	m := &Mapping{}
	m.init(path, r, false)
	return m, nil
}

// testNoMemfd makes CreateMemfdWith behave as with a C library without
// memfd_create; set by tests only.
var testNoMemfd bool

// explainMemfd adds to err what memfd_create's bare errno means.
func explainMemfd(err error) error {
	var pe *fs.PathError
	if !errors.As(err, &pe) || pe.Op != "memfd_create" {
		return explain(err)
	}
	switch pe.Err {
	case syscall.ENOSYS:
		return because(pe, "no memfd_create in this C library or kernel (glibc 2.27, musl 1.1.20 and Linux 3.17 have it)")
	case syscall.EINVAL:
		return because(pe, "name longer than 249 bytes, or flags the kernel does not know")
	}
	return err
}

// File returns a duplicate of the Mapping's descriptor,
// fcntl(F_DUPFD_CLOEXEC), as an *os.File named as the Mapping: the
// caller's to close, and closing it never affects the Mapping. It is
// close-on-exec; exec.Cmd's ExtraFiles hands it to a child all the same,
// and syscall.UnixRights over a Unix socket to any process. Works on every
// Mapping: a named object's, a memfd's, a file's; safe for concurrent use;
// after Close it returns an error wrapping fs.ErrClosed. The receiver maps
// it with MapFile.
func (m *Mapping) File() (*os.File, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.data == nil {
		return nil, m.errClosed("fcntl")
	}
	fd, err := fcntl(m.name, m.fd, fDupFDCloexec, 0)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), m.name), nil
}

// Seals returns the object's seals as the kernel has them now:
// fcntl(F_GET_SEALS), 0 for a file that cannot be sealed. A named object
// (shm_open) cannot be sealed and reports SealSeal alone. Safe for
// concurrent use; after Close, an error wrapping fs.ErrClosed.
func (m *Mapping) Seals() (Seal, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.data == nil {
		return 0, m.errClosed("fcntl")
	}
	s, err := getSeals(m.name, m.fd)
	return Seal(s), err
}

// ShrinkSealed reports whether the object is sealed against shrinking
// (SealShrink; fcntl(F_GET_SEALS)). Then no process can ever truncate it,
// so Bytes is safe from truncation faults: no page of the mapping can
// vanish. False after Close. Safe for concurrent use.
func (m *Mapping) ShrinkSealed() bool {
	s, err := m.Seals()
	return err == nil && s&SealShrink != 0
}

// AddSeals adds seals to the object: fcntl(F_ADD_SEALS), refused with an
// error wrapping syscall.EPERM (fs.ErrPermission) once SealSeal is set,
// and always for named objects. With SealWrite a shared writable mapping
// of the Mapping's own is first replaced, in place, by a read-only one
// made from a read-only descriptor of the object (open of
// /proc/self/fd/N), since a writable shared mapping would make the kernel
// refuse the seal with EBUSY: the Mapping is read-only from then on
// (WriteAt and Truncate return an error wrapping syscall.EPERM that says
// the memfd is sealed against writing; a write through a slice from Bytes
// faults), and it
// stays read-write if the seal is refused. The earlier mappings that
// Truncate and Remap keep for stale slices (see Truncate) are made
// read-only too, and stay so even if the seal is refused. Another
// process's writable
// mapping still makes it EBUSY. The one exception: once the object has
// SealFutureWrite, no writable mapping can be made again, so a refused
// SealWrite leaves the Mapping read-only, and its error says so.
// SealFutureWrite keeps this Mapping writable and refuses new writable
// mappings and write(2) to everyone. Safe for concurrent use: it waits for
// ReadAt, WriteAt and Sync in flight. After Close, an error wrapping
// fs.ErrClosed.
func (m *Mapping) AddSeals(seals Seal) error {
	m.lockOut()
	defer m.unlockIn()
	if m.data == nil {
		return m.errClosed("addseals")
	}
	if seals&^allSeals != 0 || seals == 0 {
		return argErr("addseals", m.name, "seals %v: want some of the Seal constants", seals)
	}
	ro := -1
	if seals&SealWrite != 0 && len(m.whole) > 0 && !m.readOnly && !m.private {
		f, err := os.OpenFile(proc.FD(m.fd), os.O_RDONLY|syscall.O_CLOEXEC, 0)
		if err != nil {
			return &fs.PathError{Op: "open", Path: m.name, Err: errors.Unwrap(err)}
		}
		defer f.Close()
		ro = int(f.Fd())
	}
	data := m.whole // a shrink keeps the mapping's tail: all of it must be read-only
	if ro < 0 {
		data = nil
	} else {
		// The mappings a moving grow kept for stale slices are writable
		// mappings of the object too: read-only first, with no seal yet
		// (they stay read-only should the seal be refused).
		for _, r := range m.retired {
			if _, err := addSeals(m.name, m.fd, ro, r, 0); err != nil {
				return err
			}
		}
	}
	rdonly, err := addSeals(m.name, m.fd, ro, data, int(seals))
	if rdonly || (err == nil && seals&SealWrite != 0) {
		// Sealed against writing (an empty mapping too: Truncate and
		// Remap must map it read-only), or the mapping could not be
		// made writable again.
		m.readOnly, m.sealed = true, true
	}
	var pe *fs.PathError
	if err != nil && rdonly && errors.As(err, &pe) {
		pe.Err = fmt.Errorf("%w (the mapping, made read-only for the seal, cannot be made writable again once the object has SealFutureWrite: the Mapping is read-only now)", pe.Err)
	}
	return err
}
