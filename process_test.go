package shm_test

// Tests that need a second process: the test binary re-executed with
// childEnv set, as an unrelated program that knows only the object's name.

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
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

// childRead6 plays "read6": print the first 6 bytes
func childRead6(role, name string, in *bufio.Reader) int {
	s, err := shm.Open(name)
	if err != nil {
		return childFail(role, "%v", err)
	}
	defer s.Close()
	fmt.Print(string(s.Bytes()[:6]))
	return 0
}

// childReply plays "reply": read the NUL-terminated message at 0, answer at
// 512
func childReply(role, name string, in *bufio.Reader) int {
	s, err := shm.Open(name)
	if err != nil {
		return childFail(role, "%v", err)
	}
	defer s.Close()
	msg, _, _ := bytes.Cut(s.Bytes(), []byte{0})
	if _, err := s.WriteAt([]byte("child got: "+string(msg)), 512); err != nil {
		return childFail(role, "%v", err)
	}
	return 0
}

// childCreate plays "create": create, write, wait for the parent, check its
// answer
func childCreate(role, name string, in *bufio.Reader) int {
	s, err := shm.Create(name, 4096)
	if err != nil {
		return childFail(role, "%v", err)
	}
	defer s.Close()
	copy(s.Bytes(), "from child")
	fmt.Println("ready")
	if err := waitParent(in); err != nil {
		return childFail(role, "waiting for parent: %v", err)
	}
	if got := string(s.Bytes()[100:111]); got != "from parent" {
		return childFail(role, "read %q", got)
	}
	fmt.Println("ok")
	return 0
}

// childFault plays "fault": map 2 pages, let the parent truncate to 1,
// touch page 2
func childFault(role, name string, in *bufio.Reader) int {
	s, err := shm.Open(name)
	if err != nil {
		return childFail(role, "%v", err)
	}
	defer s.Close()
	page := int64(os.Getpagesize())
	buf := make([]byte, 8)
	if _, err := s.ReadAt(buf, page); err != nil {
		return childFail(role, "before truncation: %v", err)
	}
	fmt.Println("mapped")
	if err := waitParent(in); err != nil {
		return childFail(role, "waiting for parent: %v", err)
	}
	if n, err := s.ReadAt(buf, page); n != 0 || !errors.Is(err, shm.ErrFault) {
		return childFail(role, "ReadAt of a truncated page = %d, %v; want ErrFault", n, err)
	}
	if n, err := s.WriteAt(buf, page+8); n != 0 || !errors.Is(err, shm.ErrFault) {
		return childFail(role, "WriteAt to a truncated page = %d, %v; want ErrFault", n, err)
	}
	if _, err := s.ReadAt(buf, 0); err != nil || string(buf) != "page one" {
		return childFail(role, "the page that remains: %q, %v", buf, err)
	}
	var pe *fs.PathError
	_, err = s.ReadAt(buf, page)
	if !errors.As(err, &pe) || pe.Op != "readat" || pe.Path != name {
		return childFail(role, "fault error %#v", err)
	}
	fmt.Println("ok")
	return 0
}

// childReserve plays "reserve": Create under testdata/eintr.c's fallocate
func childReserve(role, name string, in *bufio.Reader) int {
	s, err := shm.Create(name, 1<<20)
	if err != nil {
		return childFail(role, "%v", err)
	}
	s.Close()
	fmt.Print("reserved")
	return 0
}

// childReserveMemfd plays "reserve-memfd": CreateMemfd under
// testdata/eintr.c's fallocate
func childReserveMemfd(role, name string, in *bufio.Reader) int {
	s, err := shm.CreateMemfd("reserve", 1<<20)
	if err != nil {
		return childFail(role, "%v", err)
	}
	defer s.Close()
	f, err := s.File()
	if err != nil {
		return childFail(role, "%v", err)
	}
	defer f.Close()
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil || st.Blocks*512 != 1<<20 {
		return childFail(role, "not reserved: %d bytes allocated, %v", st.Blocks*512, err)
	}
	fmt.Print("reserved")
	return 0
}

// childDenied plays "denied": run as another user: opening must be EACCES
func childDenied(role, name string, in *bufio.Reader) int {
	s, err := shm.Open(name)
	if err == nil {
		s.Close()
		return childFail(role, "opened another user's 0600 object")
	}
	if !errors.Is(err, fs.ErrPermission) {
		return childFail(role, "%v; want permission denied", err)
	}
	fmt.Print(err)
	return 0
}

// childPongShm plays "pong-shm": BenchmarkRoundTrip's peer, through the
// segment
func childPongShm(role, name string, in *bufio.Reader) int {
	s, err := shm.Open(name)
	if err != nil {
		return childFail(role, "%v", err)
	}
	defer s.Close()
	pong((*atomic.Uint64)(unsafe.Pointer(&s.Bytes()[0])))
	return 0
}

// childPongUnix plays "pong-unix": BenchmarkRoundTrip's peer, through the
// socket at fd 3
func childPongUnix(role, name string, in *bufio.Reader) int {
	sock := os.NewFile(3, "socket")
	tok := make([]byte, 1)
	for {
		if _, err := sock.Read(tok); err != nil {
			return 0 // the parent closed its end
		}
		if _, err := sock.Write(tok); err != nil {
			return childFail(role, "%v", err)
		}
	}
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
// Create and CreateMemfd (both through shm.c's reserve) retry with signals
// blocked, and so complete, every page allocated. The child runs with
// testdata/eintr.c preloaded, a fallocate that fails with EINTR unless
// signals are blocked. Kills: a plain fallocate in goshm_size or
// goshm_memfd (EINTR, or EIO after 100 tries).
func TestReserveRetriesEINTR(t *testing.T) {
	lib := buildC(t, "eintr", "-shared", "-fPIC")
	for _, c := range []struct{ role, name string }{{"reserve", uniqueName(t)}, {"reserve-memfd", ""}} {
		t.Run(c.role, func(t *testing.T) {
			if c.name != "" {
				cleanup(t, c.name)
			}
			cmd := childCmd(t, c.role, c.name)
			cmd.Env = append(cmd.Env, "LD_PRELOAD="+lib)
			out, err := cmd.Output()
			if err != nil || string(out) != "reserved" {
				t.Fatalf("child: %v, %q\n%s", err, out, cmd.Stderr)
			}
			if !strings.Contains(fmt.Sprint(cmd.Stderr), "eintr.so: fallocate interrupted") {
				t.Fatalf("the preloaded fallocate was not used:\n%s", cmd.Stderr)
			}
			if c.name == "" {
				return // the memfd child checked its own reservation
			}
			if fi, err := os.Stat(devPath(c.name)); err != nil || fi.Sys().(*syscall.Stat_t).Blocks*512 != 1<<20 {
				t.Fatalf("the child's object is not reserved: %v", err)
			}
		})
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
	needUnshare(t, "/dev/shm is large and mounting a small one needs root")
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

// TestFullDevShmEveryCall: in a full 1 MiB /dev/shm every failing call is an
// error, nothing crashes, and nothing is left but what was there.
//
// Kills: a call that crashes instead of failing (a page it did not
// reserve touched: SIGBUS in the child); a failed call that leaves its
// object or temporary name; a failed Truncate that changes Size or unmaps
// the words already handed out (the Store faults).
func TestFullDevShmEveryCall(t *testing.T) {
	if !inSmallDevShm(t, "1m") {
		return
	}
	filler := uniqueName(t)
	cleanup(t, filler)
	f, err := shm.Create(filler, 900<<10)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	before, _ := os.ReadDir("/dev/shm")
	if _, err := shm.Create(uniqueName(t), 512<<10); !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("Create: %v, want ENOSPC", err)
	}
	if _, err := shm.CreateTemp("rv-*", 512<<10); !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("CreateTemp: %v, want ENOSPC", err)
	}
	if _, err := shm.OpenFile(uniqueName(t), os.O_RDWR|os.O_CREATE, 0o600, 512<<10, &shm.Options{Sparse: true, Populate: true}); err == nil {
		t.Errorf("sparse populate on a full /dev/shm: no error")
	}
	small := uniqueName(t)
	cleanup(t, small)
	s, err := shm.Create(small, 4096)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	w, _ := s.Uint32(0)
	if err := s.Truncate(512 << 10); !errors.Is(err, syscall.ENOSPC) || s.Size() != 4096 {
		t.Errorf("Truncate: %v, Size %d", err, s.Size())
	}
	w.Store(1)
	for i := 0; ; i++ {
		sem, err := shm.CreateSemaphore(uniqueName(t)+"-sem", 0)
		if err != nil {
			t.Logf("CreateSemaphore %d on a full /dev/shm: %v", i, err)
			break
		}
		defer sem.Close()
		defer sem.Unlink()
		if i > 1000 {
			t.Fatal("never full")
		}
	}
	after, _ := os.ReadDir("/dev/shm")
	names := map[string]bool{}
	for _, e := range before {
		names[e.Name()] = true
	}
	names[strings.TrimPrefix(small, "/")] = true
	for _, e := range after {
		if !names[e.Name()] && !strings.HasPrefix(e.Name(), "sem.") && !strings.HasSuffix(e.Name(), "-sem") { // the semaphores go at return
			t.Errorf("left in /dev/shm: %q", e.Name())
		}
	}
}
