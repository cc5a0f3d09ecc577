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
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/posixshm/shm"
)

// errReported: the command has printed its errors; exit 1 quietly.
var errReported = errors.New("reported")

var (
	createSize sizeFlag = sizeFlag{n: 4096}
	createMode          = modeFlag(0o600)
)

func createFlags(fl *flag.FlagSet) {
	fl.Var(&createSize, "size", "size in `bytes`")
	fl.Var(&createMode, "mode", "permission `bits`, octal, less the umask")
}

func runCreate(fl *flag.FlagSet, args []string) error {
	name, err := oneName(args)
	if err != nil {
		return err
	}
	if createSize.n <= 0 || createSize.n > int64(math.MaxInt) {
		return usageError{"-size must be positive"}
	}
	s, err := shm.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, fs.FileMode(createMode), int(createSize.n), nil)
	if err != nil {
		return cmdErr("create", name, err)
	}
	return closeErr("create", name, s)
}

func closeErr(cmd, name string, c io.Closer) error {
	if err := c.Close(); err != nil {
		return cmdErr(cmd, name, err)
	}
	return nil
}

var (
	writeSize     sizeFlag
	writeExisting bool
	writeKeep     bool
)

func writeFlags(fl *flag.FlagSet) {
	fl.Var(&writeSize, "size", "`size` of a new object (default: the input's); a shorter input leaves zeros")
	fl.BoolVar(&writeExisting, "existing", false, "write into an existing object from its start, zeros after the input; never resizes it")
	fl.BoolVar(&writeKeep, "keep", false, "with -existing: keep the object's old bytes after the input instead of zeroing them")
}

// runWrite copies standard input into an object. The input goes straight
// into the mapping with read(2), so it is never held in memory twice; a
// page that vanishes is EFAULT from read, not SIGBUS. Only an input of
// unknown length (a pipe) with no -size is first spooled to a temporary
// file, to learn the size the new object must have.
func runWrite(fl *flag.FlagSet, args []string) error {
	name, err := oneName(args)
	if err != nil {
		return err
	}
	in := os.Stdin
	known := int64(-1) // input length, if stdin is a regular file
	if fi, err := in.Stat(); err == nil && fi.Mode().IsRegular() {
		if pos, err := in.Seek(0, io.SeekCurrent); err == nil {
			known = fi.Size() - pos
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
		e := stoppedBy(sig, "write "+showName(name))
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

var (
	readOffset sizeFlag
	readLength sizeFlag
)

func readFlags(fl *flag.FlagSet) {
	fl.Var(&readOffset, "offset", "first `byte` to read")
	fl.Var(&readLength, "length", "`bytes` to read (default: to the end)")
}

// runRead writes the bytes straight from the mapping with write(2): no
// copy, and a page that vanishes is EFAULT from write, not SIGBUS.
func runRead(fl *flag.FlagSet, args []string) error {
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
	if _, err := os.Stdout.Write(s.Bytes()[off : off+length]); err != nil {
		return cmdErr("read", name, err)
	}
	return closeErr("read", name, s)
}

// objectPath is the file behind name, as glibc and musl map it: leading
// slashes dropped, then one path element below /dev/shm.
func objectPath(name string) (string, error) {
	base := strings.TrimLeft(name, "/")
	if base == "" || base == "." || base == ".." || strings.ContainsAny(base, "/\x00") || len(base) > 255 {
		return "", syscall.EINVAL
	}
	return shmDir + "/" + base, nil
}

func runStat(fl *flag.FlagSet, args []string) error {
	name, err := oneName(args)
	if err != nil {
		return err
	}
	path, err := objectPath(name)
	if err != nil {
		return cmdErr("stat", name, err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return cmdErr("stat", name, err)
	}
	uid, gid := owner(fi)
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 1, ' ', 0)
	fmt.Fprintf(w, "name:\t%s\n", name)
	fmt.Fprintf(w, "path:\t%s\n", path)
	fmt.Fprintf(w, "size:\t%d\n", fi.Size())
	fmt.Fprintf(w, "mode:\t%v (%#o)\n", fi.Mode(), uint32(fi.Mode().Perm()))
	fmt.Fprintf(w, "owner:\t%s (%d)\n", userName(uid), uid)
	fmt.Fprintf(w, "group:\t%s (%d)\n", groupName(gid), gid)
	fmt.Fprintf(w, "modified:\t%s (%s ago)\n", fi.ModTime().Format(time.RFC3339), age(fi.ModTime()))
	return w.Flush()
}

// runLs prints one name per line, as Open takes it, in name order: what
// a script reads. -l is the long listing (runLsLong).
func runLs(fl *flag.FlagSet, args []string) error {
	if len(args) != 0 {
		return usageError{"ls takes no arguments"}
	}
	if lsCount && !lsLong {
		return usageError{"-n goes with -l"}
	}
	if lsLong {
		return runLsLong()
	}
	entries, err := os.ReadDir(shmDir)
	if err != nil {
		return cmdErr("ls", shmDir, err)
	}
	var lines []string
	for _, e := range entries {
		// Regular files are the objects; glibc's named semaphores live
		// beside them as sem.NAME (musl's as plain NAME: objects here).
		if !e.Type().IsRegular() {
			continue
		}
		kind, name := "shm", "/"+e.Name()
		if rest, ok := strings.CutPrefix(e.Name(), "sem."); ok {
			kind, name = "sem", "/"+rest
		} else if isRing(name) {
			kind = "ring"
		}
		lines = append(lines, kind+" "+name)
	}
	slices.SortFunc(lines, func(a, b string) int {
		return strings.Compare(a[strings.IndexByte(a, ' '):], b[strings.IndexByte(b, ' '):])
	})
	for _, l := range lines {
		fmt.Println(l)
	}
	return nil
}

func runRm(fl *flag.FlagSet, args []string) error {
	if rmStale {
		return runRmStale(args)
	}
	if rmAge != time.Hour || rmDryRun || rmIgnoreDenied {
		return usageError{"-age, -dry-run and -ignore-denied go with -stale"}
	}
	if len(args) == 0 {
		return usageError{"want at least one NAME"}
	}
	failed := false
	for _, name := range args {
		err := shm.Unlink(name)
		if errors.Is(err, fs.ErrNotExist) && shm.UnlinkSemaphore(name) == nil {
			err = nil // no object, but a semaphore of that name
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "shm: %v\n", cmdErr("rm", name, err))
			failed = true
		}
	}
	if failed {
		return errReported
	}
	return nil
}

func owner(fi fs.FileInfo) (uid, gid uint32) {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Uid, st.Gid
	}
	return 0, 0
}

var userNames = map[uint32]string{}

func userName(uid uint32) string {
	if n, ok := userNames[uid]; ok {
		return n
	}
	n := strconv.FormatUint(uint64(uid), 10)
	if u, err := user.LookupId(n); err == nil {
		n = u.Username
	}
	userNames[uid] = n
	return n
}

func groupName(gid uint32) string {
	n := strconv.FormatUint(uint64(gid), 10)
	if g, err := user.LookupGroupId(n); err == nil {
		return g.Name
	}
	return n
}

// age is a short human duration: 42s, 5m, 3h, 12d.
func age(t time.Time) string {
	d := time.Since(t)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}
