package shm_test

// Interop with unrelated programs that call libc themselves: the classic
// POSIX C writer and reader, CPython's multiprocessing.shared_memory, and a
// differential test of names against libc's own shm_open and shm_unlink.

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"unsafe"

	"github.com/posixshm/shm"
)

// TestCWriterGoReader: C writes the classic way, Go opens and reads.
func TestCWriterGoReader(t *testing.T) {
	writer := buildC(t, "writer")
	name := uniqueName(t)
	cleanup(t, name)
	if out, err := exec.Command(writer, name, "hello from C").CombinedOutput(); err != nil {
		t.Fatalf("writer: %v\n%s", err, out)
	}
	s, err := shm.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	buf := make([]byte, 13)
	if _, err := s.ReadAt(buf, 0); err != nil || string(buf) != "hello from C\x00" || s.Size() != 4096 {
		t.Fatalf("Go read %q (size %d), %v", buf, s.Size(), err)
	}
}

// TestGoWriterCReader: Go creates and writes; the C reader opens it with
// O_CREAT|O_RDWR, prints it and unlinks it.
func TestGoWriterCReader(t *testing.T) {
	reader := buildC(t, "reader")
	s := create(t, 4096)
	copy(s.Bytes(), "hello from Go\x00")
	out, err := exec.Command(reader, s.Name()).CombinedOutput()
	if err != nil || string(out) != "hello from Go" {
		t.Fatalf("reader: %v, %q", err, out)
	}
	if exists(s.Name()) {
		t.Fatal("the C reader's shm_unlink did not remove the object")
	}
}

// TestPythonCreatesGoOpens: CPython creates and owns (it unlinks); Go
// opens by name, reads and answers.
func TestPythonCreatesGoOpens(t *testing.T) {
	py := python(t)
	name := uniqueName(t)
	cleanup(t, name)
	cmd := exec.Command(py, "testdata/peer.py", "create", strings.TrimPrefix(name, "/"))
	stdin, out := startPeer(t, cmd, "ready\n")
	s, err := shm.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	buf := make([]byte, 18)
	if _, err := s.ReadAt(buf, 0); err != nil || string(buf) != "hello from python\x00" {
		t.Errorf("Go read %q, %v", buf, err)
	}
	s.WriteAt([]byte("hello back!"), 100)
	finishPeer(t, cmd, stdin, out, "ok\n")
	if exists(name) {
		t.Fatal("python created the object and should have unlinked it")
	}
}

// TestGoCreatesPythonAttaches: Go creates and owns; CPython attaches,
// reads, answers, and must not unlink the object on exit.
func TestGoCreatesPythonAttaches(t *testing.T) {
	py := python(t)
	s := create(t, 4096)
	copy(s.Bytes(), "hello from Go\x00")
	cmd := exec.Command(py, "testdata/peer.py", "attach", strings.TrimPrefix(s.Name(), "/"))
	stderr := new(strings.Builder)
	cmd.Stderr = stderr
	out, err := cmd.Output()
	if err != nil || string(out) != "hello from Go" {
		t.Fatalf("python: %v, %q\n%s", err, out, stderr)
	}
	if got := string(s.Bytes()[100:111]); got != "hello back!" {
		t.Errorf("Go read python's answer %q", got)
	}
	if !exists(s.Name()) || strings.Contains(stderr.String(), "leaked") {
		t.Fatalf("python's resource tracker took an object it does not own\n%s", stderr)
	}
}

// matchLibc runs argv (a C helper) with each name hex-encoded as a further
// argument; for each name the helper prints the errno (0 for success) of
// libc's unlink, create and unlink again (-1 when create failed). It checks
// that unlink and create, called on the same names here, give exactly
// those answers.
func matchLibc(t *testing.T, argv, names []string, unlink func(string) error, create func(string) (io.Closer, error)) {
	t.Helper()
	args := argv[1:len(argv):len(argv)]
	for _, n := range names {
		args = append(args, hex.EncodeToString([]byte(n)))
	}
	out, err := exec.Command(argv[0], args...).Output()
	if err != nil {
		t.Fatalf("%s: %v", argv[0], err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != len(names) {
		t.Fatalf("%s printed %d lines for %d names", argv[0], len(lines), len(names))
	}
	errnoOf := func(err error) int {
		var e syscall.Errno
		if err == nil {
			return 0
		}
		if !errors.As(err, &e) {
			t.Fatalf("error %v carries no errno", err)
		}
		return int(e)
	}
	for i, name := range names {
		var want [3]int
		for j, f := range strings.Fields(lines[i]) {
			want[j], _ = strconv.Atoi(f)
		}
		before := errnoOf(unlink(name))
		c, err := create(name)
		made, after := errnoOf(err), -1
		if err == nil {
			c.Close()
			after = errnoOf(unlink(name))
		}
		if got := [3]int{before, made, after}; got != want {
			t.Errorf("name %q (%d bytes): Go (unlink, create, unlink) = %v, libc = %v", name, len(name), got, want)
		}
	}
}

// TestNamesMatchLibc: for names of every awkward kind, Create fails with
// exactly the errno libc's shm_open gives (or succeeds where it does), and
// Unlink matches shm_unlink, as a C helper linked against the same libc
// reports at test time.
func TestNamesMatchLibc(t *testing.T) {
	helper := buildC(t, "names")
	u := fmt.Sprintf("%s%x", prefix, os.Getpid()) // unique part for names that may succeed
	pad := func(s string, n int) string { return s + strings.Repeat("p", n-len(s)) }
	names := []string{
		"", "/", "//", "///", ".", "..", "/.", "/..", "./", "/./", "/../",
		"/" + u, u, "//" + u, "///" + u, "/" + u + "/x", u + "/x", "/" + u + "/", u + "/",
		"/" + u + " with spaces", "/" + u + "\nnewline", "/" + u + "\ttab",
		"/" + u + "-ünïcödé-名前", "/" + u + "\xff\xfe-invalid-utf8", "/" + u + "\x01\x7f",
		"/." + u, "/.." + u, "/" + u + ".", "/" + u + "..",
		pad("/"+u, 255), pad(u, 255), pad("/"+u, 256), pad(u, 256), pad("//"+u, 257),
		pad("/"+u, 254), pad("/"+u, 4000), strings.Repeat("/", 300) + u,
	}
	matchLibc(t, []string{helper}, names, shm.Unlink, func(name string) (io.Closer, error) {
		return shm.Create(name, 4096)
	})
	// A NUL byte: refused before C, which would act on the name cut short.
	for _, name := range []string{"/" + u + "\x00", "/" + u + "\x00tail", "\x00"} {
		if _, err := shm.Create(name, 4096); !errors.Is(err, syscall.EINVAL) {
			t.Errorf("Create(%q) = %v, want EINVAL", name, err)
		}
		if err := shm.Unlink(name); !errors.Is(err, syscall.EINVAL) {
			t.Errorf("Unlink(%q) = %v, want EINVAL", name, err)
		}
	}
	if exists("/" + u) {
		t.Fatal("a NUL name reached libc cut short")
	}
}

// TestLinkedLibc: under CC=musl-gcc the package (and so this binary) runs
// on musl; otherwise on glibc. Proves which libc the suite tested.
func TestLinkedLibc(t *testing.T) {
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		t.Skip("no /proc")
	}
	musl := onMusl
	glibc := strings.Contains(string(maps), "libc.so.6")
	if wantMusl := strings.Contains(os.Getenv("CC"), "musl"); musl != wantMusl || glibc == wantMusl {
		t.Fatalf("CC=%q, but mapped: musl %v, glibc %v", os.Getenv("CC"), musl, glibc)
	}
	t.Logf("libc: musl %v, glibc %v", musl, glibc)
}

// mapsPath returns the path field of the /proc/self/maps line of the
// mapping that starts at addr ("" if it has none).
func mapsPath(t *testing.T, addr uintptr) string {
	t.Helper()
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		t.Skipf("no /proc/self/maps: %v", err)
	}
	for line := range strings.Lines(string(maps)) {
		f := strings.Fields(line)
		lo, _, ok := strings.Cut(f[0], "-")
		if a, err := strconv.ParseUint(lo, 16, 64); !ok || err != nil || uintptr(a) != addr {
			continue
		}
		// "start-end perms offset dev inode path": the path may hold spaces.
		if len(f) < 6 {
			return ""
		}
		rest := line
		for range 5 {
			rest = strings.TrimLeft(rest, " ")
			rest = rest[strings.IndexByte(rest, ' '):]
		}
		return strings.TrimSpace(rest)
	}
	t.Fatalf("no mapping at %#x in /proc/self/maps", addr)
	return ""
}

// TestCreateProcNamesMatchLibc (issue 14 item 1): after Create, the
// object's descriptor (/proc/self/fd/N) and its mapping (/proc/self/maps)
// name it exactly as after libc's shm_open(O_CREAT|O_EXCL) in a C peer:
// "/dev/shm/NAME", not the temporary name "(deleted)".
//
// Kills: publishing with link(2) + shm_unlink of the temporary name
// (both read "/dev/shm/NAME.~RANDOM (deleted)").
func TestCreateProcNamesMatchLibc(t *testing.T) {
	peer := buildC(t, "fdname")
	name := uniqueName(t)
	cleanup(t, name)
	out, err := exec.Command(peer, name).Output()
	if err != nil {
		t.Fatalf("fdname %s: %v", name, err)
	}
	want := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(want) != 2 {
		t.Fatalf("fdname printed %q", out)
	}
	t.Logf("libc's shm_open: fd %q, maps %q", want[0], want[1])

	s, err := shm.Create(name, 4096)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	f, err := s.File() // a dup: the same open file, the same path
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fdLink, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", f.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	mapLine := mapsPath(t, uintptr(unsafe.Pointer(&s.Bytes()[0])))
	if fdLink != want[0] || mapLine != want[1] {
		t.Fatalf("after Create: fd %q, maps %q; libc's shm_open shows fd %q, maps %q", fdLink, mapLine, want[0], want[1])
	}
}
