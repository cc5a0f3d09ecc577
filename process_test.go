package shm_test

// Tests that need a second process: the test binary re-executed with
// childEnv set, as an unrelated program that knows only the object's name.

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"unsafe"

	"github.com/posixshm/shm"
)

// runChild is the second process's side: role says what to do with the
// object name. Its exit status and standard output are the parent's to check.
func runChild(role, name string) int {
	fail := func(format string, args ...any) int {
		fmt.Fprintf(os.Stderr, "child %s: "+format+"\n", append([]any{role}, args...)...)
		return 1
	}
	in := bufio.NewReader(os.Stdin)
	if strings.HasPrefix(role, "sync-") { // futex_test.go
		return syncChild(role, name, in)
	}
	if strings.HasPrefix(role, "mutex-") { // mutex_test.go
		return mutexChild(role, name, in)
	}
	switch role {
	case "read6": // print the first 6 bytes
		s, err := shm.Open(name)
		if err != nil {
			return fail("%v", err)
		}
		defer s.Close()
		fmt.Print(string(s.Bytes()[:6]))
	case "reply": // read the NUL-terminated message at 0, answer at 512
		s, err := shm.Open(name)
		if err != nil {
			return fail("%v", err)
		}
		defer s.Close()
		msg, _, _ := bytes.Cut(s.Bytes(), []byte{0})
		if _, err := s.WriteAt([]byte("child got: "+string(msg)), 512); err != nil {
			return fail("%v", err)
		}
	case "create": // create, write, wait for the parent, check its answer
		s, err := shm.Create(name, 4096)
		if err != nil {
			return fail("%v", err)
		}
		defer s.Close()
		copy(s.Bytes(), "from child")
		fmt.Println("ready")
		if _, err := in.ReadString('\n'); err != nil {
			return fail("waiting for parent: %v", err)
		}
		if got := string(s.Bytes()[100:111]); got != "from parent" {
			return fail("read %q", got)
		}
		fmt.Println("ok")
	case "fault": // map 2 pages, let the parent truncate to 1, touch page 2
		s, err := shm.Open(name)
		if err != nil {
			return fail("%v", err)
		}
		defer s.Close()
		page := int64(os.Getpagesize())
		buf := make([]byte, 8)
		if _, err := s.ReadAt(buf, page); err != nil {
			return fail("before truncation: %v", err)
		}
		fmt.Println("mapped")
		if _, err := in.ReadString('\n'); err != nil {
			return fail("waiting for parent: %v", err)
		}
		if n, err := s.ReadAt(buf, page); n != 0 || !errors.Is(err, shm.ErrFault) {
			return fail("ReadAt of a truncated page = %d, %v; want ErrFault", n, err)
		}
		if n, err := s.WriteAt(buf, page+8); n != 0 || !errors.Is(err, shm.ErrFault) {
			return fail("WriteAt to a truncated page = %d, %v; want ErrFault", n, err)
		}
		if _, err := s.ReadAt(buf, 0); err != nil || string(buf) != "page one" {
			return fail("the page that remains: %q, %v", buf, err)
		}
		var pe *fs.PathError
		_, err = s.ReadAt(buf, page)
		if !errors.As(err, &pe) || pe.Op != "readat" || pe.Path != name {
			return fail("fault error %#v", err)
		}
		fmt.Println("ok")
	case "reserve": // Create under testdata/eintr.c's fallocate
		s, err := shm.Create(name, 1<<20)
		if err != nil {
			return fail("%v", err)
		}
		s.Close()
		fmt.Print("reserved")
	case "reserve-memfd": // CreateMemfd under testdata/eintr.c's fallocate
		s, err := shm.CreateMemfd("reserve", 1<<20)
		if err != nil {
			return fail("%v", err)
		}
		defer s.Close()
		f, err := s.File()
		if err != nil {
			return fail("%v", err)
		}
		defer f.Close()
		var st syscall.Stat_t
		if err := syscall.Fstat(int(f.Fd()), &st); err != nil || st.Blocks*512 != 1<<20 {
			return fail("not reserved: %d bytes allocated, %v", st.Blocks*512, err)
		}
		fmt.Print("reserved")
	case "denied": // run as another user: opening must be EACCES
		s, err := shm.Open(name)
		if err == nil {
			s.Close()
			return fail("opened another user's 0600 object")
		}
		if !errors.Is(err, fs.ErrPermission) {
			return fail("%v; want permission denied", err)
		}
		fmt.Print(err)
	case "pong-shm": // BenchmarkRoundTrip's peer, through the segment
		s, err := shm.Open(name)
		if err != nil {
			return fail("%v", err)
		}
		defer s.Close()
		pong((*atomic.Uint64)(unsafe.Pointer(&s.Bytes()[0])))
	case "pong-unix": // BenchmarkRoundTrip's peer, through the socket at fd 3
		sock := os.NewFile(3, "socket")
		tok := make([]byte, 1)
		for {
			if _, err := sock.Read(tok); err != nil {
				return 0 // the parent closed its end
			}
			if _, err := sock.Write(tok); err != nil {
				return fail("%v", err)
			}
		}
	default:
		if code, ok := lifecycleChild(role, name, in); ok { // lifecycle_test.go
			return code
		}
		return fail("unknown role")
	}
	return 0
}

func childCmd(t testing.TB, role, name string) *exec.Cmd {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Skipf("cannot re-execute the test binary: %v", err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), childEnv+"="+role, nameEnv+"="+name)
	cmd.Stderr = new(strings.Builder)
	return cmd
}

// startPeer starts cmd, a peer process that talks in lines, and waits for
// its first line, which must be want. finishPeer then tells it to go on and
// checks what it prints after that and that it exits cleanly.
func startPeer(t *testing.T, cmd *exec.Cmd, want string) (io.WriteCloser, *bufio.Reader) {
	t.Helper()
	if cmd.Stderr == nil {
		cmd.Stderr = new(strings.Builder)
	}
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	out := bufio.NewReader(stdout)
	if line, err := out.ReadString('\n'); line != want {
		cmd.Wait()
		t.Fatalf("%s said %q, %v\n%s", cmd.Path, line, err, cmd.Stderr)
	}
	return stdin, out
}

func finishPeer(t *testing.T, cmd *exec.Cmd, stdin io.Writer, out *bufio.Reader, want string) {
	t.Helper()
	io.WriteString(stdin, "go\n")
	rest, _ := io.ReadAll(out)
	if err := cmd.Wait(); err != nil || string(rest) != want {
		t.Fatalf("%s: %v, %q\n%s", cmd.Path, err, rest, cmd.Stderr)
	}
}

// runChildOK runs a child to its end and returns its standard output.
func runChildOK(t *testing.T, role, name string) string {
	t.Helper()
	cmd := childCmd(t, role, name)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("child %s: %v\n%s", role, err, cmd.Stderr)
	}
	return string(out)
}

// TestCrossProcessGoCreates: this process creates and writes, another
// opens by name, reads and answers.
func TestCrossProcessGoCreates(t *testing.T) {
	s := create(t, 4096)
	copy(s.Bytes(), "hello from parent\x00")
	runChildOK(t, "reply", s.Name())
	want := "child got: hello from parent"
	if got := string(s.Bytes()[512 : 512+len(want)]); got != want {
		t.Fatalf("parent read %q", got)
	}
}

// TestCrossProcessChildCreates: the other process creates; this one opens
// by name, reads, and writes an answer that the other checks.
func TestCrossProcessChildCreates(t *testing.T) {
	name := uniqueName(t)
	cleanup(t, name)
	cmd := childCmd(t, "create", name)
	stdin, out := startPeer(t, cmd, "ready\n")
	s, err := shm.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := string(s.Bytes()[:10]); got != "from child" {
		t.Errorf("parent read %q", got)
	}
	s.WriteAt([]byte("from parent"), 100)
	finishPeer(t, cmd, stdin, out, "ok\n")
}

// TestTruncatedByAnotherProcess: the child maps two pages; this process
// shrinks the object to one; the child's ReadAt and WriteAt of the lost
// page return ErrFault and it lives. A crash would be the child's, and
// fail this test.
func TestTruncatedByAnotherProcess(t *testing.T) {
	page := os.Getpagesize()
	s := create(t, 2*page)
	copy(s.Bytes(), "page one")
	cmd := childCmd(t, "fault", s.Name())
	stdin, out := startPeer(t, cmd, "mapped\n")
	if err := os.Truncate(devPath(s.Name()), int64(page)); err != nil {
		t.Fatal(err)
	}
	finishPeer(t, cmd, stdin, out, "ok\n")
	// This process is protected the same way.
	if _, err := s.ReadAt(make([]byte, 1), int64(page)); !errors.Is(err, shm.ErrFault) {
		t.Fatalf("ReadAt here = %v", err)
	}
}

// TestReserveRetriesEINTR: where tmpfs abandons fallocate with EINTR on
// every pending signal (kernels before 6.x; Go's runtime signals often),
// Create retries with signals blocked, and so completes. The child runs
// with testdata/eintr.c preloaded, a fallocate that fails with EINTR
// unless signals are blocked.
func TestReserveRetriesEINTR(t *testing.T) {
	lib := buildC(t, "eintr", "-shared", "-fPIC")
	name := uniqueName(t)
	cleanup(t, name)
	cmd := childCmd(t, "reserve", name)
	cmd.Env = append(cmd.Env, "LD_PRELOAD="+lib)
	out, err := cmd.Output()
	if err != nil || string(out) != "reserved" {
		t.Fatalf("child: %v, %q\n%s", err, out, cmd.Stderr)
	}
	if !strings.Contains(fmt.Sprint(cmd.Stderr), "eintr.so: fallocate interrupted") {
		t.Fatalf("the preloaded fallocate was not used:\n%s", cmd.Stderr)
	}
	if fi, err := os.Stat(devPath(name)); err != nil || fi.Sys().(*syscall.Stat_t).Blocks*512 != 1<<20 {
		t.Fatalf("the child's object is not reserved: %v", err)
	}
}

// TestOtherUserDenied: an object made with the default mode cannot be
// opened by uid 65534.
func TestOtherUserDenied(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run a child as uid 65534")
	}
	s := create(t, 4096)
	// The go test build directory is private; give nobody a copy to run.
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "shmtest")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	data, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "shm.test")
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := childCmd(t, "denied", s.Name())
	cmd.Path = bin
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, cmd.Stderr)
	}
	if want := "shm_open " + s.Name() + ": permission denied"; string(out) != want {
		t.Fatalf("child got %q, want %q", out, want)
	}
}

// TestFullDevShm: a /dev/shm that cannot hold the object gives ENOSPC from
// Create and leaves nothing; every byte Create reserved is writable. Where
// /dev/shm is small (a container's), it uses the real one; otherwise, as
// root, it re-runs itself in a private mount namespace with a 1 MiB tmpfs
// on /dev/shm.
func TestFullDevShm(t *testing.T) {
	var st syscall.Statfs_t
	if err := syscall.Statfs("/dev/shm", &st); err != nil {
		t.Skipf("no /dev/shm: %v", err)
	}
	total := int64(st.Blocks) * int64(st.Bsize)
	if st.Blocks != 0 && total <= 256<<20 {
		fillDevShm(t, total, int64(st.Bavail)*int64(st.Bsize))
		return
	}
	if os.Getenv("SHM_TEST_SMALL_SHM") != "" {
		t.Fatalf("inside the namespace /dev/shm is still %d bytes", total)
	}
	if os.Geteuid() != 0 {
		t.Skip("/dev/shm is large and mounting a small one needs root")
	}
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("needs unshare(1) to mount a small /dev/shm")
	}
	if out, err := exec.Command("unshare", "--mount", "--ipc", "true").CombinedOutput(); err != nil {
		t.Skipf("unshare --mount --ipc is not permitted here: %v %s", err, out)
	}
	// 1 MiB, a container-sized /dev/shm; 80 MiB so that the pre-faulting that fails
	// is the parallel one (64 MiB and more).
	exe, _ := os.Executable()
	for _, size := range []string{"1m", "80m"} {
		cmd := exec.Command("unshare", "--mount", "--ipc", "--propagation", "private", "sh", "-c",
			`mount -t tmpfs -o size=`+size+` shmtest /dev/shm && exec "$0" -test.run='^TestFullDevShm$' -test.v -test.count=1`, exe)
		cmd.Env = append(os.Environ(), "SHM_TEST_SMALL_SHM=1")
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "--- PASS: TestFullDevShm") {
			t.Fatalf("in a %s /dev/shm: %v\n%s", size, err, out)
		}
	}
}

func fillDevShm(t *testing.T, total, free int64) {
	page := int64(os.Getpagesize())
	t.Logf("/dev/shm: %d bytes, %d free", total, free)

	// More than the whole file system: ENOSPC, nothing left.
	name := uniqueName(t)
	cleanup(t, name)
	_, err := shm.Create(name, int(total+page))
	wantPathErr(t, err, "fallocate", name, syscall.ENOSPC)
	if exists(name) {
		t.Fatal("ENOSPC left the object behind")
	}

	// Sparse and over-committed: writing runs out of pages, and WriteAt
	// reports the SIGBUS as ErrFault.
	sp, err := shm.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600, int(total+page), &shm.Options{Sparse: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sp.WriteAt(make([]byte, total+page), 0); !errors.Is(err, shm.ErrFault) {
		t.Fatalf("WriteAt past a full /dev/shm = %v, want ErrFault", err)
	}
	sp.Close()
	if err := sp.Unlink(); err != nil {
		t.Fatal(err)
	}

	// Sparse and pre-faulted: the shortage is the call's error.
	_, err = shm.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600, int(total+page), &shm.Options{Sparse: true, Populate: true})
	wantPathErr(t, err, "madvise", name, syscall.EFAULT)
	if !strings.Contains(err.Error(), "/dev/shm full") {
		t.Errorf("populate error %q does not say why", err)
	}
	if exists(name) {
		t.Fatal("failed populate left the object behind")
	}

	// Nearly everything that is free: reserved, so every byte is writable.
	var st syscall.Statfs_t
	syscall.Statfs("/dev/shm", &st)
	free = int64(st.Bavail) * int64(st.Bsize)
	size := free - 4*page
	s, err := shm.Create(name, int(size))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if n, err := s.WriteAt(bytes.Repeat([]byte{0xa5}, int(size)), 0); n != int(size) || err != nil {
		t.Fatalf("writing every reserved byte: %d, %v", n, err)
	}
	for i := int64(0); i < size; i += page {
		s.Bytes()[i] = 0x5a // through the unguarded path too
	}

	// The rest plus a page does not fit.
	other := uniqueName(t)
	cleanup(t, other)
	_, err = shm.Create(other, int(5*page))
	wantPathErr(t, err, "fallocate", other, syscall.ENOSPC)
	if exists(other) {
		t.Fatal("ENOSPC left the object behind")
	}
}
