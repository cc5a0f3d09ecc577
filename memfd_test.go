package shm_test

// Tests of descriptors and memfds: File, CreateMemfd and CreateMemfdWith,
// seals, MapFile of a received descriptor, and peers in C and Python that
// are handed the descriptor as real processes. The mutation each test
// kills is named in its comment.

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"log"
	"math"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/posixshm/shm"
)

// fdPath is what /proc/self/fd says f is.
func fdPath(t *testing.T, f *os.File) string {
	t.Helper()
	p, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", f.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func fdCloexec(t *testing.T, f *os.File) bool {
	t.Helper()
	r, _, e := syscall.Syscall(syscall.SYS_FCNTL, f.Fd(), syscall.F_GETFD, 0)
	if e != 0 {
		t.Fatal(e)
	}
	return r&syscall.FD_CLOEXEC != 0
}

// memfd makes a sealed memfd for t, closed in t.Cleanup.
func memfd(t testing.TB, size int) *shm.Mapping {
	t.Helper()
	s, err := shm.CreateMemfd("shmtest-"+t.Name(), size)
	if err != nil {
		t.Fatalf("CreateMemfd: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestCreateMemfd: the object is anonymous (nothing in /dev/shm, /proc
// shows "/memfd:NAME (deleted)", File's name is "memfd:NAME"), reserved,
// sealed against shrinking, growing and new seals before anyone sees it.
// Kills: no F_ADD_SEALS (ftruncate succeeds), the seals without
// F_SEAL_SEAL, no reservation (blocks 0), a label without "memfd:".
func TestCreateMemfd(t *testing.T) {
	before := listDevShm(t)
	size := 3 * os.Getpagesize()
	s := memfd(t, size)
	for name := range listDevShm(t) { // other packages' tests run meanwhile: look for ours
		if !before[name] && strings.Contains(name, t.Name()) {
			t.Errorf("CreateMemfd added %s to /dev/shm", name)
		}
	}
	want := "memfd:shmtest-" + t.Name()
	if s.Size() != size || !s.ShrinkSealed() {
		t.Fatalf("Size %d, Sealed %v", s.Size(), s.ShrinkSealed())
	}
	seals, err := s.Seals()
	if err != nil || seals&^shm.SealExec != shm.MemfdSeals {
		t.Fatalf("Seals = %v, %v; want %v (and exec on Linux 6.3+)", seals, err, shm.MemfdSeals)
	}
	f, err := s.File()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if p := fdPath(t, f); p != "/"+want+" (deleted)" || f.Name() != want {
		t.Errorf("/proc/self/fd shows %q, File's name is %q; want the label %q", p, f.Name(), want)
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil || st.Size != int64(size) || st.Blocks*512 != int64(size) {
		t.Errorf("fstat: size %d, %d bytes allocated (%v); want %d reserved", st.Size, st.Blocks*512, err, size)
	}
	copy(s.Bytes(), "through the mapping")
	buf := make([]byte, 19)
	if _, err := f.ReadAt(buf, 0); err != nil || string(buf) != "through the mapping" {
		t.Errorf("pread of the descriptor: %q, %v", buf, err)
	}
	fd := int(f.Fd())
	for what, err := range map[string]error{
		"shrink":     syscall.Ftruncate(fd, int64(size/2)),
		"grow":       syscall.Ftruncate(fd, int64(2*size)),
		"fallocate":  syscall.Fallocate(fd, 0, 0, int64(2*size)),
		"punch hole": syscall.Fallocate(fd, 0x01|0x02, 0, int64(size)), // PUNCH_HOLE|KEEP_SIZE: F_SEAL_WRITE only
	} {
		wantErr := syscall.EPERM
		if what == "punch hole" {
			wantErr = 0 // not a size change: the pages come back as zeros, never SIGBUS
		}
		if !errors.Is(err, wantErr) && !(err == nil && wantErr == 0) {
			t.Errorf("%s: %v, want %v", what, err, wantErr)
		}
	}
	if err := s.AddSeals(shm.SealFutureWrite); !errors.Is(err, syscall.EPERM) {
		t.Errorf("a seal added after F_SEAL_SEAL: %v", err)
	}
	if st.Size = 0; syscall.Fstat(fd, &st) != nil || st.Size != int64(size) {
		t.Errorf("size %d after the attempts, want %d", st.Size, size)
	}
	s.Bytes()[size-1] = 1 // the last page is there
}

// TestMemfdHasNoName: what CreateMemfd and CreateMemfdWith return has no
// Name and no Unlink, so nothing can take the memfd's label for an
// object's name and remove another program's object "/memfd:LABEL" (the
// label stays in /proc, File's name and Stat's Name). Kills: returning a
// *Segment, the type of named objects, whose Name is the label and whose
// Unlink takes a name.
func TestMemfdHasNoName(t *testing.T) {
	m := memfd(t, 4096)
	w, err := shm.CreateMemfdWith("shmtest-"+t.Name(), 4096, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for what, v := range map[string]any{"CreateMemfd": m, "CreateMemfdWith": w} {
		if _, ok := v.(interface{ Unlink() error }); ok {
			t.Errorf("%s returns a %T, which has Unlink", what, v)
		}
		if _, ok := v.(interface{ Name() string }); ok {
			t.Errorf("%s returns a %T, which has Name", what, v)
		}
	}
	fi, err := m.Stat()
	if want := "memfd:shmtest-" + t.Name(); err != nil || fi.Name() != want {
		t.Errorf("Stat: %v, %v; want the label %q as Name", fi, err, want)
	}
}

// TestMemfdErrors: bad arguments wrap EINVAL with Op "creatememfd"; a NUL
// in the name and a name the kernel refuses are memfd_create's EINVAL; a C
// library without memfd_create is ENOSYS that says which versions have it.
// Kills: a missing size check, the unchecked seal mask, a Private memfd
// accepted, the missing NUL check, the ENOSYS message.
func TestMemfdErrors(t *testing.T) {
	fds := countFDs(t)
	for _, c := range []struct {
		name  string
		size  int
		seals shm.Seal
		opt   *shm.Options
		op    string
		says  string
	}{
		{"zero", 0, shm.MemfdSeals, nil, "creatememfd", "positive"},
		{"negative", -1, shm.MemfdSeals, nil, "creatememfd", "positive"},
		{"write seal", 4096, shm.SealWrite, nil, "creatememfd", "AddSeals"},
		{"unknown seal", 4096, 0x400, nil, "creatememfd", "0x400"},
		{"private", 4096, 0, &shm.Options{Private: true}, "creatememfd", "private"},
		{"nul\x00", 4096, 0, nil, "memfd_create", ""},
		{strings.Repeat("n", 250), 4096, 0, nil, "memfd_create", "249 bytes"},
	} {
		s, err := shm.CreateMemfdWith(c.name, c.size, c.seals, c.opt)
		if err == nil {
			s.Close()
			t.Errorf("CreateMemfdWith(%.20q, %d, %v) succeeded", c.name, c.size, c.seals)
			continue
		}
		var pe *fs.PathError
		if !errors.As(err, &pe) || pe.Op != c.op || pe.Path != "memfd:"+c.name || !errors.Is(err, syscall.EINVAL) || !strings.Contains(err.Error(), c.says) {
			t.Errorf("CreateMemfdWith(%.20q, %d, %v): %v; want op %s, EINVAL, saying %q", c.name, c.size, c.seals, err, c.op, c.says)
		}
	}
	if s, err := shm.CreateMemfdWith(strings.Repeat("n", 249), 4096, 0, nil); err != nil {
		t.Errorf("a 249-byte name: %v", err)
	} else {
		s.Close()
	}
	restore := shm.SetNoMemfd()
	_, err := shm.CreateMemfd("x", 4096)
	restore()
	if !errors.Is(err, syscall.ENOSYS) || !strings.Contains(err.Error(), "glibc 2.27") || !strings.HasPrefix(err.Error(), "memfd_create memfd:x: ") {
		t.Errorf("without memfd_create: %v", err)
	}
	if n := countFDs(t); n != fds {
		t.Errorf("%d descriptors open, %d before", n, fds)
	}
}

// TestSegmentFile: File is a close-on-exec duplicate, of a named Segment
// or a memfd, that the caller closes without harm to the Mapping; after
// Close it is fs.ErrClosed. Kills: F_DUPFD without CLOEXEC, File returning
// the Segment's own descriptor (closing it breaks the Segment), File
// without the closed check.
func TestSegmentFile(t *testing.T) {
	fds := countFDs(t)
	named := create(t, 4096)
	for _, c := range []struct {
		name string // what File's name must be
		s    *shm.Mapping
	}{{named.Name(), &named.Mapping}, {"memfd:shmtest-" + t.Name(), memfd(t, 4096)}} {
		s := c.s
		f1, err := s.File()
		if err != nil {
			t.Fatal(err)
		}
		f2, err := s.File()
		if err != nil {
			t.Fatal(err)
		}
		if f1.Fd() == f2.Fd() || !fdCloexec(t, f1) || f1.Name() != c.name {
			t.Errorf("%s: fds %d, %d, close-on-exec %v, name %q", c.name, f1.Fd(), f2.Fd(), fdCloexec(t, f1), f1.Name())
		}
		copy(s.Bytes(), "shared")
		f1.Close()
		f2.Close()
		if _, err := s.Seals(); err != nil {
			t.Errorf("%s: after closing its Files: %v", c.name, err)
		}
		if _, err := s.WriteAt([]byte("still"), 0); err != nil {
			t.Error(err)
		}
		s.Close()
		if _, err := s.File(); !errors.Is(err, fs.ErrClosed) {
			t.Errorf("File after Close: %v", err)
		}
		if _, err := s.Seals(); !errors.Is(err, fs.ErrClosed) || s.ShrinkSealed() {
			t.Errorf("Seals after Close: %v", err)
		}
		if err := s.AddSeals(shm.SealGrow); !errors.Is(err, fs.ErrClosed) {
			t.Errorf("AddSeals after Close: %v", err)
		}
	}
	if seals, err := named.Seals(); !errors.Is(err, fs.ErrClosed) {
		t.Errorf("named Seals after Close: %v, %v", seals, err)
	}
	if n := countFDs(t); n != fds {
		t.Errorf("%d descriptors open, %d before", n, fds)
	}
}

// TestFileCloseRace: File racing with Close returns a duplicate of the
// memfd or fs.ErrClosed, never another file's descriptor nor EBADF.
// Kills (under -race, as the suite runs): File that reads the descriptor
// without the lock (it dups a closed, or reused, descriptor number).
func TestFileCloseRace(t *testing.T) {
	for range 200 {
		s, err := shm.CreateMemfd("race", 4096)
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for range 3 {
			wg.Go(func() {
				for range 5 {
					f, err := s.File()
					if err != nil {
						if !errors.Is(err, fs.ErrClosed) {
							t.Errorf("File racing Close: %v", err)
						}
						return
					}
					if p := fdPath(t, f); p != "/memfd:race (deleted)" {
						t.Errorf("File racing Close gave %q", p)
					}
					f.Close()
				}
			})
		}
		var reuse *os.File // likely takes the number of the descriptor Close frees
		wg.Go(func() { s.Close(); reuse, _ = os.Open(os.DevNull) })
		wg.Wait()
		reuse.Close()
	}
}

// TestAddSeals: the read-only hand-off seals the creator's own mapping
// read-only in place (F_SEAL_WRITE is refused while it is writable); a
// writable mapping elsewhere makes it EBUSY and the Mapping stays
// writable; F_SEAL_FUTURE_WRITE keeps the creator writing and refuses
// everyone else. Kills: no in-place read-only remap (EBUSY), no remap back
// after a refused seal (the Mapping read-only for nothing), readOnly not
// set (WriteAt would fault), the ro descriptor not closed.
func TestAddSeals(t *testing.T) {
	fds := countFDs(t)
	s, err := shm.CreateMemfdWith("seal-write", 4096, shm.SealShrink|shm.SealGrow, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	copy(s.Bytes(), "v1")
	f, _ := s.File()
	defer f.Close()

	// Another writable mapping: EBUSY, and nothing changes here.
	other, err := shm.MapFile(f, os.O_RDWR, 0, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.AddSeals(shm.SealWrite); !errors.Is(err, syscall.EBUSY) {
		t.Fatalf("AddSeals(write) with a writable mapping elsewhere: %v, want EBUSY", err)
	}
	if _, err := s.WriteAt([]byte("v2"), 0); err != nil || other.Bytes()[1] != '2' {
		t.Fatalf("after the refused seal the Mapping must still write: %v", err)
	}
	other.Close()

	if err := s.AddSeals(shm.SealWrite); err != nil {
		t.Fatal(err)
	}
	if _, err := s.WriteAt([]byte("v3"), 0); !errors.Is(err, syscall.EPERM) {
		t.Errorf("WriteAt after SealWrite: %v, want EPERM", err)
	}
	if got := string(s.Bytes()[:2]); got != "v2" {
		t.Errorf("the mapping reads %q after the remap", got)
	}
	if _, err := f.WriteAt([]byte("x"), 0); !errors.Is(err, syscall.EPERM) {
		t.Errorf("pwrite to a write-sealed memfd: %v", err)
	}
	if seals, _ := s.Seals(); seals&(shm.SealWrite|shm.SealSeal) != shm.SealWrite {
		t.Errorf("seals %v", seals)
	}

	// Future-write: the creator keeps writing; nobody else can.
	fw, err := shm.CreateMemfdWith("seal-future", 4096, shm.SealShrink|shm.SealGrow, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer fw.Close()
	if err := fw.AddSeals(shm.SealFutureWrite | shm.SealSeal); err != nil {
		t.Fatal(err)
	}
	if _, err := fw.WriteAt([]byte("still mine"), 0); err != nil {
		t.Errorf("the creator's WriteAt after SealFutureWrite: %v", err)
	}
	ff, _ := fw.File()
	defer ff.Close()
	if _, err := shm.MapFile(ff, os.O_RDWR, 0, 0, nil); !errors.Is(err, syscall.EPERM) {
		t.Errorf("MapFile read-write after SealFutureWrite: %v", err)
	}
	if m, err := shm.MapFile(ff, os.O_RDONLY, 0, 0, nil); err != nil || string(m.Bytes()[:10]) != "still mine" {
		t.Errorf("MapFile read-only after SealFutureWrite: %v", err)
	} else {
		m.Close()
	}
	if err := fw.AddSeals(shm.SealWrite); !errors.Is(err, fs.ErrPermission) {
		t.Errorf("AddSeals after SealSeal: %v", err)
	}
	named := create(t, 4096)
	if err := named.AddSeals(shm.SealWrite); !errors.Is(err, syscall.EPERM) {
		t.Errorf("AddSeals on a named object: %v", err)
	}
	if _, err := named.WriteAt([]byte("x"), 0); err != nil {
		t.Errorf("a refused seal made the named Segment read-only: %v", err)
	}
	if err := s.AddSeals(0); !errors.Is(err, syscall.EINVAL) {
		t.Errorf("AddSeals(0): %v", err)
	}
	f.Close()
	ff.Close()
	s.Close()
	fw.Close()
	named.Close()
	if n := countFDs(t); n != fds {
		t.Errorf("%d descriptors open, %d before", n, fds)
	}
}

// socketPair returns this process's end of a Unix socket pair as a
// *net.UnixConn and the other end as an *os.File for a child's ExtraFiles.
func socketPair(t *testing.T) (*net.UnixConn, *os.File) {
	t.Helper()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	mine := os.NewFile(uintptr(fds[0]), "mine")
	defer mine.Close()
	c, err := net.FileConn(mine) // a duplicate
	if err != nil {
		t.Fatal(err)
	}
	theirs := os.NewFile(uintptr(fds[1]), "theirs")
	t.Cleanup(func() { c.Close(); theirs.Close() })
	return c.(*net.UnixConn), theirs
}

// sendFile sends f over c with SCM_RIGHTS, as Example_unixSocket shows.
func sendFile(c *net.UnixConn, f *os.File) error {
	_, _, err := c.WriteMsgUnix([]byte("fd"), syscall.UnixRights(int(f.Fd())), nil)
	return err
}

// recvFile receives one descriptor from c, as Example_unixSocket shows.
func recvFile(c *net.UnixConn) (*os.File, error) {
	oob := make([]byte, syscall.CmsgSpace(4))
	_, oobn, _, _, err := c.ReadMsgUnix(make([]byte, 64), oob)
	if err != nil {
		return nil, err
	}
	msgs, err := syscall.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) != 1 {
		return nil, fmt.Errorf("control messages %v: %v", msgs, err)
	}
	fds, err := syscall.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) != 1 {
		return nil, fmt.Errorf("descriptors %v: %v", fds, err)
	}
	return os.NewFile(uintptr(fds[0]), "received"), nil
}

// TestMemfdCChild: a C child inherits a sealed memfd at fd 3 (ExtraFiles),
// maps it, reads, answers; its ftruncate to half the size, and to twice,
// fails with EPERM, so the size stays and this side's Bytes cannot fault.
// A named Segment's File works the same way (without the shrink, which
// would succeed there). Kills: CreateMemfd without seals (the C child's
// ftruncate says ok, and the size halves).
func TestMemfdCChild(t *testing.T) {
	peer := buildC(t, "memfdpeer")
	fds := countFDs(t)
	size := 4 * os.Getpagesize()
	for _, c := range []struct {
		s    *shm.Mapping
		args []string
		want string
	}{
		{memfd(t, size), []string{"shrink"}, fmt.Sprintf("ftruncate %d: EPERM\nftruncate %d: EPERM\nsize after %d\n", size/2, size*2, size)},
		{&create(t, size).Mapping, nil, "seals 0x1\n"},
	} {
		copy(c.s.Bytes(), "hello from Go\x00")
		f, err := c.s.File()
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(peer, c.args...)
		cmd.ExtraFiles = []*os.File{f} // fd 3, close-on-exec cleared in the child
		out, err := cmd.CombinedOutput()
		f.Close()
		t.Logf("%s: C child said:\n%s", f.Name(), out)
		if err != nil || !strings.HasPrefix(string(out), fmt.Sprintf("size %d read \"hello from Go\"\n", size)) || !strings.HasSuffix(string(out), c.want) {
			t.Fatalf("C child: %v\n%s\nwant it to end with %q", err, out, c.want)
		}
		answer := make([]byte, 64)
		if _, err := c.s.ReadAt(answer, 512); err != nil || !bytes.Contains(answer, []byte(" got: hello from Go\x00")) {
			t.Errorf("the child's answer: %q, %v", answer, err)
		}
		c.s.Bytes()[size-1] = 1 // every page still there
		c.s.Close()
	}
	if n := countFDs(t); n != fds {
		t.Errorf("%d descriptors open, %d before", n, fds)
	}
}

// TestMemfdPython: descriptors over a Unix socket both ways with CPython's
// standard library. Go sends a sealed memfd; Python receives it
// (socket.recv_fds), maps it (mmap.mmap), reads, answers, and its
// os.ftruncate fails with EPERM. Python sends its own os.memfd_create
// descriptor, sealed; Go receives it, maps it with MapFile (size from
// fstat), reads it, sees it Sealed, answers. Kills: CreateMemfd without
// seals (Python's ftruncate says ok), MapFile's seals not read (Sealed
// false), a received descriptor left open (the descriptor count).
func TestMemfdPython(t *testing.T) {
	py := python(t)
	fds := countFDs(t)
	t.Run("GoSends", func(t *testing.T) {
		s := memfd(t, 8192)
		copy(s.Bytes(), "hello from Go\x00")
		conn, theirs := socketPair(t)
		cmd := exec.Command(py, "testdata/memfdpeer.py", "recv")
		cmd.ExtraFiles = []*os.File{theirs}
		cmd.Stderr = new(strings.Builder)
		out := new(strings.Builder)
		cmd.Stdout = out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		theirs.Close()
		f, err := s.File()
		if err != nil {
			t.Fatal(err)
		}
		err = sendFile(conn, f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		done := make([]byte, 4)
		n, rerr := conn.Read(done)
		if err := cmd.Wait(); err != nil || rerr != nil || string(done[:n]) != "done" {
			t.Fatalf("python: %v, %v, %q\n%s", err, rerr, done[:n], cmd.Stderr)
		}
		if want := "size 8192 read 'hello from Go'\nftruncate: EPERM\n"; out.String() != want {
			t.Errorf("python said %q, want %q", out, want)
		}
		answer := make([]byte, 64)
		if _, err := s.ReadAt(answer, 512); err != nil || !bytes.Contains(answer, []byte(" got: hello from Go\x00")) {
			t.Errorf("python's answer: %q, %v", answer, err)
		}
	})
	t.Run("PythonSends", func(t *testing.T) {
		conn, theirs := socketPair(t)
		cmd := exec.Command(py, "testdata/memfdpeer.py", "send")
		cmd.ExtraFiles = []*os.File{theirs}
		cmd.Stderr = new(strings.Builder)
		out := new(strings.Builder)
		cmd.Stdout = out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		theirs.Close()
		f, err := recvFile(conn)
		if err != nil {
			cmd.Wait()
			t.Fatalf("%v\n%s", err, cmd.Stderr)
		}
		m, err := shm.MapFile(f, os.O_RDWR, 0, 0, nil)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		msg, _, _ := bytes.Cut(m.Bytes(), []byte{0})
		if string(msg) != "hello from python" || m.Size() != 8192 || !m.ShrinkSealed() {
			t.Errorf("Go read %q, size %d, Sealed %v", msg, m.Size(), m.ShrinkSealed())
		}
		if _, err := m.WriteAt([]byte("hello back from Go\x00"), 512); err != nil {
			t.Error(err)
		}
		m.Close()
		if _, err := conn.Write([]byte("done")); err != nil {
			t.Fatal(err)
		}
		if err := cmd.Wait(); err != nil || out.String() != "python read 'hello back from Go'\n" {
			t.Fatalf("python: %v, %q\n%s", err, out, cmd.Stderr)
		}
	})
	if n := countFDs(t); n != fds {
		t.Errorf("%d descriptors open, %d before", n, fds)
	}
}

// TestMemfdNoLeaks: descriptors and mappings stay constant over many
// memfd cycles, failing ones included (refused seals, refused mappings, a
// C library without memfd_create, an mmap that fails after memfd_create).
// Kills: goshm_add_seals not closing its read-only descriptor,
// goshm_memfd not closing on failure.
func TestMemfdNoLeaks(t *testing.T) {
	n := 1000
	if testing.Short() {
		n = 100
	}
	cycle := func() {
		s, err := shm.CreateMemfdWith("leak", 8192, shm.SealShrink, &shm.Options{Populate: true})
		if err != nil {
			t.Fatal(err)
		}
		f, err := s.File()
		if err != nil {
			t.Fatal(err)
		}
		m, err := shm.MapFile(f, os.O_RDWR, 0, 0, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.AddSeals(shm.SealWrite); !errors.Is(err, syscall.EBUSY) {
			t.Fatal(err)
		}
		m.Close()
		if err := s.AddSeals(shm.SealWrite); err != nil {
			t.Fatal(err)
		}
		if _, err := shm.MapFile(f, os.O_RDWR, 0, 0, nil); !errors.Is(err, syscall.EPERM) {
			t.Fatal(err)
		}
		f.Close()
		s.Close()
		if _, err := shm.CreateMemfd(strings.Repeat("n", 250), 4096); err == nil {
			t.Fatal("a 250-byte memfd name")
		}
		restore := shm.SetNoMemfd()
		_, err = shm.CreateMemfd("x", 4096)
		restore()
		if err == nil {
			t.Fatal("no memfd_create, no error")
		}
		if strconv.IntSize == 64 { // mmap of 2⁶³-1 bytes fails after memfd_create and ftruncate
			if _, err := shm.CreateMemfdWith("huge", math.MaxInt, 0, &shm.Options{Sparse: true}); !errors.Is(err, syscall.ENOMEM) {
				t.Fatalf("a sparse memfd of 2⁶³-1 bytes: %v", err)
			}
		}
	}
	for range 20 {
		cycle()
	}
	fds0, _, maps0 := resources(t)
	for range n {
		cycle()
	}
	fds1, _, maps1 := resources(t)
	if fds1 != fds0 || maps1 > maps0+16 {
		t.Fatalf("after %d cycles: fds %d -> %d, mappings %d -> %d", n, fds0, fds1, maps0, maps1)
	}
}

// A sealed memfd handed to another process over a Unix socket: the sender
// passes File's descriptor with SCM_RIGHTS (syscall.UnixRights and
// WriteMsgUnix), the receiver takes it with ReadMsgUnix and maps it with
// MapFile. Here both ends live in one process, over a socket pair; across
// processes the code is the same, with a net.UnixListener between them.
func ExampleCreateMemfd() {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		log.Fatal(err)
	}
	conn := func(fd int) *net.UnixConn {
		f := os.NewFile(uintptr(fd), "socket")
		defer f.Close()
		c, err := net.FileConn(f)
		if err != nil {
			log.Fatal(err)
		}
		return c.(*net.UnixConn)
	}
	sender, receiver := conn(fds[0]), conn(fds[1])
	defer sender.Close()
	defer receiver.Close()

	// The sender: memfd_create, fallocate, seals, mmap.
	s, err := shm.CreateMemfd("frames", 1<<16)
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close() // nothing to unlink: there is no name
	copy(s.Bytes(), "frame 1")
	f, err := s.File() // a duplicate, F_DUPFD_CLOEXEC
	if err != nil {
		log.Fatal(err)
	}
	_, _, err = sender.WriteMsgUnix([]byte("memfd"), syscall.UnixRights(int(f.Fd())), nil)
	f.Close() // the receiver has its own descriptor now
	if err != nil {
		log.Fatal(err)
	}

	// The receiver.
	oob := make([]byte, syscall.CmsgSpace(4)) // room for one descriptor
	_, oobn, _, _, err := receiver.ReadMsgUnix(make([]byte, 16), oob)
	if err != nil {
		log.Fatal(err)
	}
	msgs, err := syscall.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) != 1 {
		log.Fatal("no control message: ", err)
	}
	rfds, err := syscall.ParseUnixRights(&msgs[0])
	if err != nil || len(rfds) != 1 {
		log.Fatal("no descriptor: ", err)
	}
	rf := os.NewFile(uintptr(rfds[0]), "received")
	m, err := shm.MapFile(rf, os.O_RDWR, 0, 0, nil) // size from fstat
	rf.Close()                                      // the mapping stays
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	fmt.Printf("%s, %d bytes, sealed: %v\n", m.Bytes()[:7], m.Size(), m.ShrinkSealed())
	// Output: frame 1, 65536 bytes, sealed: true
}

// A read-only hand-off: create without SealSeal, fill, then seal against
// writing. The creator's own mapping turns read-only in place, and every
// receiver can map it only read-only.
func ExampleMapping_AddSeals() {
	s, err := shm.CreateMemfdWith("config", 4096, shm.SealShrink|shm.SealGrow, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	copy(s.Bytes(), "answer=42")
	if err := s.AddSeals(shm.SealWrite | shm.SealSeal); err != nil {
		log.Fatal(err)
	}
	f, err := s.File() // what a receiver gets
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	_, err = shm.MapFile(f, os.O_RDWR, 0, 0, nil)
	fmt.Println(errors.Is(err, fs.ErrPermission))
	seals, _ := s.Seals()
	fmt.Println(seals &^ shm.SealExec) // SealExec too on Linux 6.3 and later
	// Output:
	// true
	// seal|shrink|grow|write
}

// BenchmarkCreateMemfd: the CreateMemfd cycle (create, touch a byte,
// close) beside Create's (create, touch, close, unlink), 4 KiB each.
// TestComparisonMemfd sets both against the same libc calls from C.
func BenchmarkCreateMemfd(b *testing.B) {
	benchCycles(b, []cycle{{"memfd", shmMemfdCycle}, {"create", shmCreateCycle}})
}

func shmMemfdCycle(name string, size int) error {
	s, err := shm.CreateMemfd("bench", size)
	if err != nil {
		return err
	}
	s.Bytes()[0] = 1
	return s.Close()
}

// TestComparisonMemfd is a comparison (compare_test.go): it sets the
// CreateMemfd cycle against Create's and against
// the same libc calls from C (testdata/memfdbench.c: memfd_create,
// fallocate, F_ADD_SEALS, mmap, touch, munmap, close; and bench.c's
// atomic-publish create cycle), alternating, in one run, and prints medians
// and ratios. One short round in the normal suite; the README's figures:
//
//	go test -run '^TestComparisonMemfd$' -v . -args -compare
func TestComparisonMemfd(t *testing.T) {
	rounds, n := 1, 20
	if *compareFlag {
		rounds, n = 21, 2000
	}
	cmemfd := buildC(t, "memfdbench")
	cbench := buildC(t, "bench")
	contenders := []contender{
		execContender("C memfd", cmemfd),
		execContender("C create (publish)", cbench),
		goContender("CreateMemfd", shmMemfdCycle, nil),
		goContender("Create", shmCreateCycle, nil),
	}
	ops := []string{"memfd", "publish", "create", "create"} // the op each contender runs
	name := uniqueName(t)
	cleanup(t, name)
	samples := make([][]float64, len(contenders))
	for r := range rounds {
		for i := range contenders {
			c := (i + r) % len(contenders)
			ns, err := contenders[c].run(ops[c], name, n)
			if err != nil || !(ns > 0) {
				t.Fatalf("%s: %v (%v ns/op)", contenders[c].name, err, ns)
			}
			samples[c] = append(samples[c], ns)
		}
	}
	if exists(name) {
		t.Fatalf("a create cycle left %s behind", name)
	}
	med := make([]float64, len(contenders))
	for i := range contenders {
		med[i] = median(samples[i])
	}
	var report strings.Builder
	fmt.Fprintf(&report, "%d rounds of %d cycles of 4 KiB, alternating; median µs per cycle\n\n", rounds, n)
	fmt.Fprintf(&report, "| cycle | C | Go (shm) | Go / C |\n|---|---|---|---|\n")
	fmt.Fprintf(&report, "| memfd: CreateMemfd, touch, Close | %.1f | %.1f | %.2f× |\n", med[0]/1000, med[2]/1000, med[2]/med[0])
	fmt.Fprintf(&report, "| named: Create, touch, Close, Unlink | %.1f | %.1f | %.2f× |\n", med[1]/1000, med[3]/1000, med[3]/med[1])
	fmt.Fprintf(&report, "\nmemfd / named: C %.2f×, Go %.2f×\n", med[0]/med[1], med[2]/med[3])
	t.Log("\n" + report.String())
	if *compareFlag {
		fmt.Print(report.String())
	}
}

// TestAddSealsWriteAfterFutureWrite: once the object has SealFutureWrite,
// a refused SealWrite (EBUSY: a peer's writable mapping) cannot give the
// Mapping its writable mapping back; it is then read-only (WriteAt EPERM,
// not a fault) and the error says so. Kills: a Mapping left marked
// read-write over a read-only mapping, or an error that does not tell.
func TestAddSealsWriteAfterFutureWrite(t *testing.T) {
	s, err := shm.CreateMemfdWith("futurewrite", 4096, shm.SealShrink|shm.SealGrow, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	f, err := s.File()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	peer, err := shm.MapFile(f, os.O_RDWR, 0, 0, nil) // a peer's writable mapping
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	if err := s.AddSeals(shm.SealFutureWrite); err != nil {
		t.Fatal(err)
	}
	err = s.AddSeals(shm.SealWrite)
	if !errors.Is(err, syscall.EBUSY) || !strings.Contains(fmt.Sprint(err), "read-only now") {
		t.Fatalf("AddSeals(SealWrite) beside a writable peer = %v; want EBUSY saying the Mapping is read-only", err)
	}
	if _, err := s.WriteAt([]byte("x"), 0); !errors.Is(err, syscall.EPERM) {
		t.Fatalf("WriteAt after = %v; want EPERM", err)
	}
}

// TestAddSealsWriteEmptyThenRemap: SealWrite on a memfd whose mapping is
// empty still makes the Mapping read-only, so that Remap after a peer grew
// the object maps it read-only instead of failing with EPERM. Kills:
// marking read-only only when a mapping was replaced.
func TestAddSealsWriteEmptyThenRemap(t *testing.T) {
	s, err := shm.CreateMemfdWith("emptyseal", 4096, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Truncate(0); err != nil {
		t.Fatal(err)
	}
	if err := s.AddSeals(shm.SealWrite); err != nil {
		t.Fatal(err)
	}
	f, err := s.File()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(4096); err != nil { // a peer grows it: SealWrite allows that
		t.Fatal(err)
	}
	if err := s.Remap(); err != nil || s.Size() != 4096 {
		t.Fatalf("Remap of a write-sealed memfd: %v, Size %d; want nil, 4096", err, s.Size())
	}
}

// TestWriteAtAfterSealWrite (issue 14 item 10): after AddSeals(SealWrite)
// WriteAt and Truncate say that the memfd is sealed against writing
// (wrapping syscall.EPERM, what write(2) says), not "bad file
// descriptor"; a Segment opened read-only still says EBADF.
//
// Kills: the read-only check not telling a sealed memfd from a read-only
// Segment (WriteAt: "bad file descriptor").
func TestWriteAtAfterSealWrite(t *testing.T) {
	s, err := shm.CreateMemfdWith("sealed", 4096, shm.SealShrink|shm.SealGrow, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.AddSeals(shm.SealWrite); err != nil {
		t.Fatal(err)
	}
	_, err = s.WriteAt([]byte("x"), 0)
	if !errors.Is(err, syscall.EPERM) || !strings.Contains(err.Error(), "sealed against writing") {
		t.Fatalf("WriteAt after SealWrite = %v; want EPERM saying the memfd is sealed against writing", err)
	}
	if err := s.Truncate(4096); !errors.Is(err, syscall.EPERM) || !strings.Contains(err.Error(), "sealed against writing") {
		t.Fatalf("Truncate after SealWrite = %v; want EPERM saying so", err)
	}
	ro, err := shm.OpenFile(create(t, 4096).Name(), os.O_RDONLY, 0, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if _, err := ro.WriteAt([]byte("x"), 0); !errors.Is(err, syscall.EBADF) {
		t.Fatalf("WriteAt of a read-only Segment = %v; want EBADF", err)
	}
}

// TestAddSealsAfterMovingGrow (issue 14 item 2): after a Truncate that had
// to move the mapping, the old mapping kept for stale slices does not
// make AddSeals(SealWrite) fail with EBUSY: it is made read-only too.
//
// Kills: leaving the kept mappings writable (the kernel refuses the seal:
// "device or resource busy").
func TestAddSealsAfterMovingGrow(t *testing.T) {
	s, err := shm.CreateMemfdWith("grown", 4096, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	old := &s.Bytes()[0]
	create(t, 4096) // most likely mapped right below: the grow must move
	if err := s.Truncate(16 << 20); err != nil {
		t.Fatal(err)
	}
	if err := s.AddSeals(shm.SealWrite); err != nil {
		t.Fatalf("AddSeals(SealWrite) after a grow (moved: %v): %v", old != &s.Bytes()[0], err)
	}
	t.Logf("the grow moved the mapping: %v", old != &s.Bytes()[0])
}
