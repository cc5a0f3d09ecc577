package shm_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/posixshm/shm"
)

// prefix starts every name the tests make; the examples' names start with
// "example-" and the pid instead. ourObjects tells both from other
// processes' objects.
var prefix = fmt.Sprintf("shmtest-%d-", os.Getpid())

// TestMain runs the suite, or a child's role, and then fails the run if any
// object of this process's tests or examples is left in /dev/shm (and
// removes it, so that a failed run does not litter the machine).
//
// Kills: a missing Unlink in any test or example (for example
// ExampleCreateTemp's), which the suite's own results cannot see.
func TestMain(m *testing.M) {
	if role := os.Getenv(childEnv); role != "" {
		play, ok := childRoles[role]
		if !ok {
			os.Exit(childFail(role, "unknown role"))
		}
		os.Exit(play(role, os.Getenv(nameEnv), bufio.NewReader(os.Stdin)))
	}
	before := ourObjects() // a dead earlier process of the same pid: not ours
	code := m.Run()
	for name := range ourObjects() {
		if before[name] {
			continue
		}
		fmt.Fprintf(os.Stderr, "left behind in /dev/shm: %s (removed now)\n", name)
		shm.Unlink("/" + name)
		code = 1
	}
	os.Exit(code)
}

// ourObjects returns the names in /dev/shm that this process's tests and
// examples make: those that hold "shmtest-" or "example-" followed by our
// pid and then no further digit, anywhere in the name (a temporary name
// the library derives from one of ours counts too).
func ourObjects() map[string]bool {
	pid := strconv.Itoa(os.Getpid())
	ours := make(map[string]bool)
	entries, _ := os.ReadDir("/dev/shm")
	for _, e := range entries {
		for _, mark := range []string{"shmtest-" + pid, "example-" + pid} {
			for rest := e.Name(); ; {
				i := strings.Index(rest, mark)
				if i < 0 {
					break
				}
				rest = rest[i+len(mark):]
				if rest == "" || rest[0] < '0' || rest[0] > '9' {
					ours[e.Name()] = true
				}
			}
		}
	}
	return ours
}

// uniqueName returns a fresh name for t: pid, test name and a random part.
func uniqueName(t testing.TB) string {
	n := strings.NewReplacer("/", "_", " ", "_").Replace(t.Name())
	if len(n) > 60 {
		n = n[:60]
	}
	return fmt.Sprintf("/%s%s-%x", prefix, n, rand.Uint64())
}

// cleanup unlinks name when t ends; it tolerates that it is already gone.
func cleanup(t testing.TB, name string) { cleanupWith(t, name, shm.Unlink) }

// cleanupWith removes name with unlink when t ends, tolerating that it is
// already gone.
func cleanupWith(t testing.TB, name string, unlink func(string) error) {
	t.Cleanup(func() {
		if err := unlink(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("cleanup: %v", err)
		}
	})
}

// create makes a fresh segment for t, closed and unlinked in t.Cleanup.
func create(t testing.TB, size int) *shm.Segment {
	t.Helper()
	name := uniqueName(t)
	s, err := shm.Create(name, size)
	if err != nil {
		t.Fatalf("Create(%q, %d): %v", name, size, err)
	}
	cleanup(t, name)
	t.Cleanup(func() { s.Close() })
	return s
}

// devPath is where Linux's libc keeps the object name (tests only).
func devPath(name string) string { return "/dev/shm/" + strings.TrimLeft(name, "/") }

func exists(name string) bool {
	_, err := os.Stat(devPath(name))
	return err == nil
}

// wantPathErr checks that err is an *fs.PathError with op and path that
// wraps errno (unless errno is nil).
func wantPathErr(t *testing.T, err error, op, path string, errno error) {
	t.Helper()
	var pe *fs.PathError
	if !errors.As(err, &pe) {
		t.Fatalf("error %v (%T) is not an *fs.PathError", err, err)
	}
	if pe.Op != op || pe.Path != path || (errno != nil && !errors.Is(err, errno)) {
		t.Fatalf("error %q: want op %q, path %q, errno %v", err, op, path, errno)
	}
}

// Child processes: the test binary re-executed with childEnv naming a role
// and nameEnv the object, as an unrelated second program.
const (
	childEnv = "SHM_TEST_CHILD"
	nameEnv  = "SHM_TEST_NAME"
)

// A childRole plays a child's side of a cross-process test: it knows only
// the object's name, reads the parent's lines from in, prints what the
// parent checks, and returns the exit status.
type childRole func(role, name string, in *bufio.Reader) int

// childRoles is the one registry of child roles: each role, and the
// function (in the test file that uses it) that plays it.
var childRoles = map[string]childRole{
	"read6":            childRead6,                      // shm_test.go
	"reply":            childReply,                      // shm_test.go
	"create":           childCreate,                     // shm_test.go
	"fault":            childFault,                      // shm_test.go
	"reserve":          childReserve,                    // shm_test.go
	"reserve-memfd":    childReserveMemfd,               // shm_test.go
	"denied":           childDenied,                     // shm_test.go
	"pong-shm":         childPongShm,                    // shm_test.go
	"pong-unix":        childPongUnix,                   // shm_test.go
	"sync-futex-fault": childSyncFutexFault,             // futex_test.go
	"sync-futex-pong":  childSyncFutexPong,              // futex_test.go
	"sync-sem-pong":    childSyncSemPong,                // futex_test.go
	"sync-ring-read":   childRingRead,                   // ring_test.go
	"sync-stream-read": childStreamRead,                 // ring_test.go
	"hold-fd":          childHoldFd,                     // lifecycle_test.go
	"hold-map":         childHoldMap,                    // lifecycle_test.go
	"remap":            childRemap,                      // lifecycle_test.go
	"nobody":           childNobody,                     // lifecycle_test.go
	"holders-denied":   childHoldersDenied,              // lifecycle_test.go
	"by-name":          childByName,                     // lifecycle_test.go
	"mutex-count":      mutexRole(0, childMutexCount),   // mutex_test.go
	"mutex-hold":       mutexRole(0, childMutexHold),    // mutex_test.go
	"mutex-hold8":      mutexRole(8, childMutexHold),    // mutex_test.go
	"mutex-trylock":    mutexRole(0, childMutexTryLock), // mutex_test.go
	"mutex-pass":       mutexRole(0, childMutexPass),    // mutex_test.go
	"signals":          childSignals,                    // wait_test.go
	"mutex-handoff":    mutexRole(0, childMutexHandoff), // mutex_test.go
	"map-limit":        childMapLimit,                   // mmap_test.go
}

// waitParent waits for the parent's next line: its go-ahead.
func waitParent(in *bufio.Reader) error {
	_, err := in.ReadString('\n')
	return err
}

// childFail reports a child's failure on its standard error and returns
// its exit status, 1.
func childFail(role, format string, args ...any) int {
	fmt.Fprintf(os.Stderr, "child %s: "+format+"\n", append([]any{role}, args...)...)
	return 1
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

// onMusl reports whether this binary runs on musl (see TestLinkedLibc).
var onMusl = func() bool {
	maps, _ := os.ReadFile("/proc/self/maps")
	return strings.Contains(string(maps), "ld-musl") || strings.Contains(string(maps), "-musl/")
}()

// waitBlocked returns once n goroutines are blocked in a system call or
// cgo call with fn on their stacks: polling the runtime's own view, so
// that a test knows a waiter is inside the kernel or libc, without sleeps.
func waitBlocked(t testing.TB, fn string, n int) { waitStacks(t, fn, n, true) }

// waitStacks is waitBlocked, counting goroutines in any state when
// inCall is false: of a thousand waiters, some are always between two
// slices.
func waitStacks(t testing.TB, fn string, n int, inCall bool) {
	t.Helper()
	buf := make([]byte, 1<<16)
	for deadline := time.Now().Add(20 * time.Second); ; {
		k := runtime.Stack(buf, true)
		if k == len(buf) {
			buf = make([]byte, 2*len(buf))
			continue
		}
		count := 0
		for _, g := range strings.Split(string(buf[:k]), "\n\n") {
			if (!inCall || strings.Contains(g, "[syscall")) && strings.Contains(g, fn) {
				count++
			}
		}
		if count >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d goroutines blocked in %s", count, n, fn)
		}
		runtime.Gosched()
	}
}

// countStacks is how many goroutines have fn on their stacks and, if
// inCall, are in a system call or cgo call.
func countStacks(fn string, inCall bool) int {
	buf := make([]byte, 1<<20)
	k := runtime_Stack(buf)
	n := 0
	for _, g := range strings.Split(string(buf[:k]), "\n\n") {
		if (!inCall || strings.Contains(g, "[syscall")) && strings.Contains(g, fn) {
			n++
		}
	}
	return n
}

func runtime_Stack(buf []byte) int { return runtime.Stack(buf, true) }

// buildC compiles testdata/<prog>.c with $CC (default cc), the compiler
// cgo uses, so that the peer links against the same libc as the package;
// flags go to the compiler ("-shared", "-fPIC" for a library).
func buildC(t testing.TB, prog string, flags ...string) string {
	t.Helper()
	cc := os.Getenv("CC")
	if cc == "" {
		cc = "cc"
	}
	if _, err := exec.LookPath(strings.Fields(cc)[0]); err != nil {
		t.Skipf("no C compiler %q: %v", cc, err)
	}
	bin := filepath.Join(t.TempDir(), prog)
	args := append(strings.Fields(cc)[1:], flags...)
	args = append(args, "-O", "-Wall", "-o", bin, filepath.Join("testdata", prog+".c"), "-lrt")
	if out, err := exec.Command(strings.Fields(cc)[0], args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", cc, strings.Join(args, " "), err, out)
	}
	return bin
}

func python(t *testing.T) string {
	t.Helper()
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("no python3")
	}
	if out, err := exec.Command(py, "-c", "import multiprocessing.shared_memory").CombinedOutput(); err != nil {
		t.Skipf("python3 has no multiprocessing.shared_memory: %v %s", err, out)
	}
	return py
}

// inSmallDevShm reports whether this run of t is the one inside a private
// mount namespace with a tmpfs of size (as mount's size= takes it) on
// /dev/shm. When it is not, it runs t again there, alone, checks that it
// passed, and returns false; t skips where that needs what is missing.
func inSmallDevShm(t *testing.T, size string) bool {
	t.Helper()
	if os.Getenv(shmSizeEnv) == size {
		return true
	}
	needUnshare(t, "mounting a small /dev/shm needs root")
	exe, err := os.Executable()
	if err != nil {
		t.Skipf("cannot re-execute the test binary: %v", err)
	}
	cmd := exec.Command("unshare", "--mount", "--ipc", "--propagation", "private", "sh", "-c",
		`mount -t tmpfs -o size=`+size+` shmtest /dev/shm && exec "$0" -test.run="^$1\$" -test.v -test.count=1`,
		exe, t.Name())
	cmd.Env = append(os.Environ(), shmSizeEnv+"="+size)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: "+t.Name()) {
		t.Fatalf("in a %s /dev/shm: %v\n%s", size, err, out)
	}
	t.Logf("in a %s /dev/shm:\n%s", size, out)
	return false
}

// needFree skips t where /dev/shm has less than n bytes free: a small
// container's; the host run covers it.
func needFree(t *testing.T, n int64) {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs("/dev/shm", &st); err != nil || int64(st.Bavail)*int64(st.Bsize) < n {
		t.Skipf("/dev/shm has less than %d bytes free (a small container's); the host run covers this", n)
	}
}

// nonResident returns the number of pages of b that are not in memory.
func nonResident(t *testing.T, b []byte) int {
	t.Helper()
	page := os.Getpagesize()
	vec := make([]byte, (len(b)+page-1)/page)
	if _, _, e := syscall.Syscall(syscall.SYS_MINCORE, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)), uintptr(unsafe.Pointer(&vec[0]))); e != 0 {
		t.Fatalf("mincore: %v", e)
	}
	n := 0
	for _, v := range vec {
		if v&1 == 0 {
			n++
		}
	}
	return n
}

func listDevShm(t *testing.T) map[string]bool {
	t.Helper()
	entries, err := os.ReadDir("/dev/shm")
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]bool{}
	for _, e := range entries {
		m[e.Name()] = true
	}
	return m
}

func countFDs(t *testing.T) int {
	t.Helper()
	shm.OpenCgroupFiles() // kept open for good once opened: not a leak
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(fds)
}

// countObjectMaps counts the lines of /proc/self/maps that map objects
// (/dev/shm) or memfds: the Go runtime's own mappings come and go.
func countObjectMaps(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, "/dev/shm/") || strings.Contains(l, "/memfd:") {
			n++
		}
	}
	return n
}

const shmSizeEnv = "SHM_TEST_SHM_SIZE"

// needUnshare skips t, saying why (notRoot when not root), unless this
// process may run unshare --mount --ipc to mount a small /dev/shm.
func needUnshare(t *testing.T, notRoot string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip(notRoot)
	}
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("needs unshare(1) to mount a small /dev/shm")
	}
	if out, err := exec.Command("unshare", "--mount", "--ipc", "true").CombinedOutput(); err != nil {
		t.Skipf("unshare --mount --ipc is not permitted here: %v %s", err, out)
	}
}

// inChildEnv names the test that a re-executed test binary runs as a child
// (inChild).
const inChildEnv = "SHM_TEST_IN_CHILD"

// inChild reports whether this run of t is the child process that runs it
// alone. When it is not, it runs t again in a child (the test binary
// re-executed with -test.run), returns the child's combined output and
// error, and returns false: a crash in the child (SIGBUS, an OOM kill)
// shows there, not as a dead test binary. The caller checks the outcome;
// check, if not nil, does, else the child must pass.
func inChild(t *testing.T, check func(out string, err error)) bool {
	t.Helper()
	if os.Getenv(inChildEnv) == t.Name() {
		return true
	}
	exe, err := os.Executable()
	if err != nil {
		t.Skipf("cannot re-execute the test binary: %v", err)
	}
	cmd := exec.Command(exe, "-test.run=^"+t.Name()+"$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), inChildEnv+"="+t.Name())
	out, err := cmd.CombinedOutput()
	if check != nil {
		check(string(out), err)
		return false
	}
	if err != nil || !strings.Contains(string(out), "--- PASS: "+t.Name()) {
		t.Fatalf("in a child process: %v\n%s", err, out)
	}
	t.Logf("in a child process:\n%s", out)
	return false
}

// liveName is the name a test run by inChild and its parent (of pid
// parent) agree on, so that the parent removes what a child that dies
// leaves.
func liveName(t *testing.T, parent int) string {
	return fmt.Sprintf("/shmtest-%d-%s", parent, t.Name())
}

// Semaphores.

// semPath is where libc keeps the semaphore name (tests only): glibc
// prefixes "sem.", musl puts semaphores beside the objects, so that a
// semaphore and an object of the same name collide there.
func semPath(name string) string {
	if onMusl {
		return "/dev/shm/" + strings.TrimLeft(name, "/")
	}
	return "/dev/shm/sem." + strings.TrimLeft(name, "/")
}

// semName returns a fresh semaphore name for t, unlinked when t ends.
func semName(t testing.TB) string {
	name := uniqueName(t)
	semCleanup(t, name)
	return name
}

// semCleanup unlinks the semaphore name when t ends, if it exists.
func semCleanup(t testing.TB, name string) { cleanupWith(t, name, shm.UnlinkSemaphore) }

// createSem makes a fresh semaphore for t, closed and unlinked when t ends.
func createSem(t testing.TB, value int) *shm.Semaphore {
	t.Helper()
	s, err := shm.CreateSemaphore(semName(t), value)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

const semWaitFrame = sleepFrame

// semWaitOp is the Op of Wait's errors.
const semWaitOp = "sem_wait"

// sleepFrame is the function every blocking call sleeps in.
const sleepFrame = "wait.(*waiter).sleep"
