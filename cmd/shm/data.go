package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"os/signal"
	"os/user"
	"strconv"
	"strings"

	"github.com/posixshm/shm"
)

// The data commands: create, write, read, truncate, chmod and chown.

var dataCommands = []*command{
	{name: "create", args: "[-size N] [-mode 0600] NAME", summary: "create a new object (exclusive, pages reserved)", setup: createCmd},
	{name: "write", args: "[-size N] [-existing [-keep]] NAME < data", summary: "copy standard input into an object, creating it sized to the input", setup: writeCmd},
	{name: "read", args: "[-offset N] [-length N] NAME", summary: "copy an object's bytes to standard output", setup: readCmd},
	{name: "truncate", args: "-size N NAME", summary: "resize an object, reserving the pages it grows by", setup: truncateCmd},
	{name: "chmod", args: "MODE NAME", summary: "set an object's permission bits exactly (no umask)", setup: chmodCmd},
	{name: "chown", args: "USER[:GROUP] NAME", summary: "set an object's owner and group", setup: chownCmd},
}

func createCmd(fl *flag.FlagSet) runner {
	size := sizeFlag{n: 4096}
	mode := modeFlag(0o600)
	fl.Var(&size, "size", "size in `bytes`")
	fl.Var(&mode, "mode", "permission `bits`, octal, less the umask")
	return func(e *env, args []string) error {
		name, err := oneName(args)
		if err != nil {
			return err
		}
		if size.n <= 0 || size.n > int64(math.MaxInt) {
			return usageError{"-size must be positive"}
		}
		s, err := shm.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, fs.FileMode(mode), int(size.n), nil)
		if err != nil {
			return cmdErr("create", name, err)
		}
		return closeErr("create", name, s)
	}
}

type writeOpts struct {
	size           sizeFlag
	existing, keep bool
}

func writeCmd(fl *flag.FlagSet) runner {
	o := new(writeOpts)
	fl.Var(&o.size, "size", "`size` of a new object (default: the input's); a shorter input leaves zeros")
	fl.BoolVar(&o.existing, "existing", false, "write into an existing object from its start, zeros after the input; never resizes it")
	fl.BoolVar(&o.keep, "keep", false, "with -existing: keep the object's old bytes after the input instead of zeroing them")
	return func(e *env, args []string) error { return runWrite(e, o, args) }
}

// runWrite copies standard input into an object. The input goes straight
// into the mapping with read(2), so it is never held in memory twice; a
// page that vanishes is EFAULT from read, not SIGBUS. Only an input of
// unknown length (a pipe) with no -size is first spooled to a temporary
// file, to learn the size the new object must have.
func runWrite(e *env, o *writeOpts, args []string) error {
	name, err := oneName(args)
	if err != nil {
		return err
	}
	writeSize, writeExisting, writeKeep := o.size, o.existing, o.keep
	in := e.stdin
	known := int64(-1) // input length, if stdin is a regular file
	if f, ok := in.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
			if pos, err := f.Seek(0, io.SeekCurrent); err == nil {
				known = fi.Size() - pos
			}
		}
	}
	if writeKeep && !writeExisting {
		return usageError{"-keep goes with -existing: a new object has no old bytes"}
	}
	if writeExisting {
		if writeSize.set {
			return usageError{"-size and -existing exclude each other: an existing object keeps its size"}
		}
		s, err := shm.Open(name)
		if err != nil {
			return cmdErr("write", name, err)
		}
		defer s.Close()
		if known > int64(s.Size()) {
			return cmdErr("write", name, fmt.Errorf("input of %d bytes does not fit in the %d-byte object", known, s.Size()))
		}
		n, err := fill(in, s.Bytes(), true)
		if err == errTooLong {
			return cmdErr("write", name, fmt.Errorf("input longer than the %d-byte object, which keeps its size: the first %d bytes were written", s.Size(), s.Size()))
		} else if err != nil {
			return cmdErr("write", name, err)
		}
		if !writeKeep {
			if err := zeroFrom(s, n); err != nil {
				return cmdErr("write", name, err)
			}
		}
		return closeErr("write", name, s)
	}

	size := writeSize.n
	if !writeSize.set {
		size = known
	}
	if size < 0 {
		tmp, err := os.CreateTemp("", "shm-write-*")
		if err != nil {
			return cmdErr("write", name, err)
		}
		os.Remove(tmp.Name())
		defer tmp.Close()
		if size, err = io.Copy(tmp, in); err != nil {
			return cmdErr("write", name, err)
		}
		if _, err := tmp.Seek(0, io.SeekStart); err != nil {
			return cmdErr("write", name, err)
		}
		in = tmp
	}
	if known > size {
		return cmdErr("write", name, fmt.Errorf("input of %d bytes is longer than -size %d", known, size))
	}
	if size == 0 {
		return cmdErr("write", name, errors.New("empty input: an object needs at least one byte (give -size)"))
	}
	if size > int64(math.MaxInt) {
		return cmdErr("write", name, fmt.Errorf("size %d too large", size))
	}
	// A signal while the new object is being filled unlinks it, as a failed
	// fill does. The signals are caught before the name exists, so none is
	// lost; the fill runs aside, as a read(2) from a terminal or a pipe
	// cannot be cut short.
	sigs := make(chan os.Signal, 1)
	notifyStop(sigs)
	defer signal.Stop(sigs)
	s, err := shm.Create(name, int(size))
	if err != nil {
		return cmdErr("write", name, err)
	}
	filled := make(chan error, 1)
	go func() {
		_, err := fill(in, s.Bytes(), writeSize.set)
		filled <- err
	}()
	select {
	case err = <-filled:
	case sig := <-sigs:
		// The mapping stays: the fill may still be reading into it, and
		// exit unmaps it.
		s.Unlink() // ours: made by this call
		e := stoppedBy(sig, "write "+quoteName(name))
		e.msg += "; the unfinished object was unlinked"
		return e
	}
	if err != nil {
		s.Close()
		s.Unlink() // ours: made by this call
		if err == errTooLong {
			err = fmt.Errorf("input longer than -size %d; nothing was kept", size)
		}
		return cmdErr("write", name, err)
	}
	return closeErr("write", name, s)
}

var errTooLong = errors.New("input too long")

// fill reads r into b until b is full or r ends, and returns the bytes
// read; short says an input shorter than b is fine. An input longer than b
// is errTooLong.
func fill(r io.Reader, b []byte, short bool) (int, error) {
	n, err := io.ReadFull(r, b)
	switch {
	case err == io.ErrUnexpectedEOF || err == io.EOF:
		if !short {
			return n, fmt.Errorf("input ended after %d of %d bytes", n, len(b))
		}
		return n, nil
	case err != nil:
		return n, err
	}
	var one [1]byte
	if m, _ := io.ReadFull(r, one[:]); m > 0 {
		return n, errTooLong
	}
	return n, nil
}

// zeroFrom clears s from off to its end with WriteAt, so that a page that
// vanished is an error, not SIGBUS.
func zeroFrom(s *shm.Segment, off int) error {
	var zeros [64 << 10]byte
	for off < s.Size() {
		n, err := s.WriteAt(zeros[:min(len(zeros), s.Size()-off)], int64(off))
		if err != nil {
			return err
		}
		off += n
	}
	return nil
}

func readCmd(fl *flag.FlagSet) runner {
	var offset, length sizeFlag
	fl.Var(&offset, "offset", "first `byte` to read")
	fl.Var(&length, "length", "`bytes` to read (default: to the end)")
	return func(e *env, args []string) error { return runRead(e, offset, length, args) }
}

// runRead writes the bytes straight from the mapping with write(2): no
// copy, and a page that vanishes is EFAULT from write, not SIGBUS.
func runRead(e *env, readOffset, readLength sizeFlag, args []string) error {
	name, err := oneName(args)
	if err != nil {
		return err
	}
	s, err := shm.OpenFile(name, os.O_RDONLY, 0, 0, nil)
	if err != nil {
		return cmdErr("read", name, err)
	}
	defer s.Close()
	size := int64(s.Size())
	off, length := readOffset.n, size-readOffset.n
	if readLength.set {
		length = readLength.n
	}
	switch {
	case off > size:
		return cmdErr("read", name, fmt.Errorf("-offset %d is past the end of the %d-byte object", off, size))
	case length > size-off && readOffset.set:
		return cmdErr("read", name, fmt.Errorf("-offset %d -length %d goes past the end of the %d-byte object", off, length, size))
	case length > size-off:
		return cmdErr("read", name, fmt.Errorf("-length %d goes past the end of the %d-byte object", length, size))
	}
	if _, err := e.stdout.Write(s.Bytes()[off : off+length]); err != nil {
		return cmdErr("read", name, err)
	}
	return closeErr("read", name, s)
}

func truncateCmd(fl *flag.FlagSet) runner {
	var size sizeFlag
	fl.Var(&size, "size", "the new size in `bytes`; growing reserves the new pages (ENOSPC, not SIGBUS later)")
	return func(e *env, args []string) error {
		name, err := oneName(args)
		if err != nil {
			return err
		}
		if !size.set {
			return usageError{"-size is required"}
		}
		if size.n > int64(math.MaxInt) {
			return cmdErr("truncate", name, fmt.Errorf("size %d too large", size.n))
		}
		// Processes that have it mapped keep their mapping's size until
		// they remap; after a shrink, touching the lost pages faults.
		s, err := shm.Open(name)
		if err != nil {
			return cmdErr("truncate", name, err)
		}
		defer s.Close()
		if err := s.Truncate(int(size.n)); err != nil {
			return cmdErr("truncate", name, err)
		}
		return closeErr("truncate", name, s)
	}
}

// chmodCmd sets an object's mode exactly (shm.Chmod: no umask, and no
// read permission needed, as chmod(1)).
func chmodCmd(fl *flag.FlagSet) runner {
	return func(e *env, args []string) error {
		if len(args) != 2 {
			return usageError{"want MODE and NAME"}
		}
		var mode modeFlag
		if err := mode.Set(args[0]); err != nil {
			return usageError{err.Error()}
		}
		name := args[1]
		if err := shm.Chmod(name, fs.FileMode(mode)); err != nil {
			return cmdErr("chmod", name, err)
		}
		return nil
	}
}

// chownCmd sets an object's owner and group (shm.Chown: no read
// permission needed, as chown(1)): USER, USER:GROUP, USER: (the user's
// login group) or :GROUP, each a name or a number.
func chownCmd(fl *flag.FlagSet) runner {
	return func(e *env, args []string) error {
		if len(args) != 2 {
			return usageError{"want USER[:GROUP] and NAME"}
		}
		uid, gid, err := parseOwner(args[0])
		if err != nil {
			return usageError{err.Error()}
		}
		name := args[1]
		if err := shm.Chown(name, uid, gid); err != nil {
			return cmdErr("chown", name, err)
		}
		return nil
	}
}

// parseOwner reads USER[:GROUP] as chown(1) does: names or numbers;
// "USER:" is the user's login group; -1 is "unchanged".
func parseOwner(spec string) (uid, gid int, err error) {
	u, g, hasColon := strings.Cut(spec, ":")
	uid, gid = -1, -1
	if u == "" && g == "" {
		return 0, 0, fmt.Errorf("bad owner %q: want USER[:GROUP]", spec)
	}
	if u != "" {
		usr, lerr := user.Lookup(u)
		if n, err := strconv.ParseUint(u, 10, 32); err == nil && n < math.MaxUint32 {
			uid = int(n)
			usr, lerr = user.LookupId(u)
		} else if lerr != nil {
			return 0, 0, fmt.Errorf("unknown user %q", u)
		} else {
			uid, _ = strconv.Atoi(usr.Uid)
		}
		if hasColon && g == "" {
			if lerr != nil {
				return 0, 0, fmt.Errorf("user %q has no login group to take: give USER:GROUP", u)
			}
			gid, _ = strconv.Atoi(usr.Gid)
		}
	}
	if g != "" {
		if n, err := strconv.ParseUint(g, 10, 32); err == nil && n < math.MaxUint32 {
			gid = int(n)
		} else if grp, err := user.LookupGroup(g); err == nil {
			gid, _ = strconv.Atoi(grp.Gid)
		} else {
			return 0, 0, fmt.Errorf("unknown group %q", g)
		}
	}
	return uid, gid, nil
}
