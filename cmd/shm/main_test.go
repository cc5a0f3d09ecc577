package main

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// bin is the shm command, built once for the tests.
var bin string

var prefix = fmt.Sprintf("shmtest-%d-cmd-", os.Getpid())

func TestMain(m *testing.M) {
	syscall.Umask(0o022) // the modes the tests expect
	dir, err := os.MkdirTemp("", "shmcmd")
	if err != nil {
		panic(err)
	}
	bin = filepath.Join(dir, "shm")
	gocmd := filepath.Join(runtime.GOROOT(), "bin", "go")
	if out, err := exec.Command(gocmd, "build", "-o", bin, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building shm: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	entries, _ := os.ReadDir("/dev/shm")
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix) {
			fmt.Fprintf(os.Stderr, "left behind in /dev/shm: %s\n", e.Name())
			code = 1
		}
	}
	os.Exit(code)
}

type result struct {
	stdout, stderr string
	code           int
}

// runShm runs the command with stdin (nil for none).
func runShm(t *testing.T, stdin io.Reader, args ...string) result {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Stdin = stdin
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return result{out.String(), errb.String(), code}
}

func ok(t *testing.T, r result) result {
	t.Helper()
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
	return r
}

func newName(t *testing.T) string {
	name := fmt.Sprintf("/%s%s-%x", prefix, t.Name(), randUint16())
	t.Cleanup(func() { os.Remove("/dev/shm" + name) })
	return name
}

func randUint16() uint16 {
	var b [2]byte
	rand.Read(b[:])
	return uint16(b[0])<<8 | uint16(b[1])
}

func TestCreateStatLsRm(t *testing.T) {
	a, b := newName(t), newName(t)+"x"
	t.Cleanup(func() { os.Remove("/dev/shm" + b) })
	ok(t, runShm(t, nil, "create", "-size", "8K", "-mode", "0640", a))
	ok(t, runShm(t, nil, "create", b))

	st := ok(t, runShm(t, nil, "stat", a)).stdout
	for _, want := range []string{"name:     " + a + "\n", "size:     8192\n", "mode:     -rw-r----- (0640)\n",
		"owner:    ", "group:    ", "modified: ", "path:     /dev/shm" + a + "\n"} {
		if !strings.Contains(st, want) {
			t.Errorf("stat output lacks %q:\n%s", want, st)
		}
	}

	ls := ok(t, runShm(t, nil, "ls")).stdout
	lines := strings.Split(strings.TrimSuffix(ls, "\n"), "\n")
	col := strings.Index(lines[0], " NAME")
	if !strings.HasPrefix(strings.TrimLeft(lines[0], " "), "TYPE") || col < 0 {
		t.Fatalf("ls header %q", lines[0])
	}
	seen := 0
	re := regexp.MustCompile(`^ *(?:shm|sem) +(\d+) +(-[rwx-]{9}) +(\S+) +(\d+[smhd]) (/\S+)$`)
	for _, l := range lines[1:] {
		m := re.FindStringSubmatch(l)
		if m == nil {
			t.Errorf("ls line %q is not TYPE SIZE MODE OWNER AGE NAME", l)
			continue
		}
		if strings.Index(l, " /") != col {
			t.Errorf("ls line %q: NAME not aligned at column %d", l, col)
		}
		switch m[5] {
		case a:
			seen++
			if m[1] != "8192" || m[2] != "-rw-r-----" {
				t.Errorf("ls line for %s: %q", a, l)
			}
		case b:
			seen++
			if m[1] != "4096" || m[2] != "-rw-------" {
				t.Errorf("ls line for %s: %q", b, l)
			}
		}
	}
	if seen != 2 {
		t.Fatalf("ls listed %d of our 2 objects:\n%s", seen, ls)
	}

	// rm: each failure reported, the rest removed, exit 1.
	missing := newName(t)
	r := runShm(t, nil, "rm", a, missing, b)
	if r.code != 1 || r.stderr != "shm: rm "+missing+": no such file or directory\n" {
		t.Fatalf("rm: exit %d, stderr %q", r.code, r.stderr)
	}
	for _, n := range []string{a, b} {
		if _, err := os.Stat("/dev/shm" + n); err == nil {
			t.Errorf("rm left %s", n)
		}
	}
	r = runShm(t, nil, "stat", a)
	if r.code != 1 || r.stderr != "shm: stat "+a+": no such file or directory\n" {
		t.Fatalf("stat of a removed object: %d %q", r.code, r.stderr)
	}
	if r := runShm(t, nil, "create", "-mode", "0600", a); r.code != 0 {
		t.Fatal(r.stderr)
	}
	if r := runShm(t, nil, "create", a); r.code != 1 || r.stderr != "shm: create "+a+": file exists\n" {
		t.Fatalf("create of an existing name: %d %q", r.code, r.stderr)
	}
	ok(t, runShm(t, nil, "rm", a))
}

// TestWriteReadRoundTrip: 1 MiB of random bytes, from a file and from a
// pipe, comes back exactly.
func TestWriteReadRoundTrip(t *testing.T) {
	var st syscall.Statfs_t
	if err := syscall.Statfs("/dev/shm", &st); err == nil && int64(st.Bavail)*st.Bsize < 2<<20 {
		t.Skipf("/dev/shm has %d bytes free, too few for 1 MiB with room to spare (a tiny container's); the host run covers this", int64(st.Bavail)*st.Bsize)
	}
	data := make([]byte, 1<<20)
	rand.Read(data)
	file := filepath.Join(t.TempDir(), "in")
	os.WriteFile(file, data, 0o600)

	for _, how := range []string{"file", "pipe"} {
		name := newName(t) + how
		t.Cleanup(func() { os.Remove("/dev/shm" + name) })
		var in io.Reader = bytes.NewReader(data) // a pipe: length unknown
		if how == "file" {
			f, _ := os.Open(file)
			defer f.Close()
			in = f
		}
		ok(t, runShm(t, in, "write", name))
		got := ok(t, runShm(t, nil, "read", name)).stdout
		if got != string(data) {
			t.Fatalf("%s: read back %d bytes, not what was written", how, len(got))
		}
		part := ok(t, runShm(t, nil, "read", "-offset", "1000", "-length", "24", name)).stdout
		if part != string(data[1000:1024]) {
			t.Fatalf("%s: -offset -length read the wrong bytes", how)
		}
		ok(t, runShm(t, nil, "rm", name))
	}
}

func TestWriteSizes(t *testing.T) {
	name := newName(t)
	// -size larger than the input: zeros after it.
	ok(t, runShm(t, strings.NewReader("abc"), "write", "-size", "1K", name))
	got := ok(t, runShm(t, nil, "read", name)).stdout
	if len(got) != 1024 || got[:3] != "abc" || strings.Trim(got[3:], "\x00") != "" {
		t.Fatalf("read %d bytes %q...", len(got), got[:8])
	}
	// An existing object needs -existing, and keeps its size.
	r := runShm(t, strings.NewReader("xyz"), "write", name)
	if r.code != 1 || r.stderr != "shm: write "+name+": file exists\n" {
		t.Fatalf("write to an existing object: %d %q", r.code, r.stderr)
	}
	ok(t, runShm(t, strings.NewReader("XY"), "write", "-existing", name))
	if got := ok(t, runShm(t, nil, "read", "-length", "4", name)).stdout; got != "XYc\x00" {
		t.Fatalf("after -existing: %q", got)
	}
	if fi, _ := os.Stat("/dev/shm" + name); fi.Size() != 1024 {
		t.Fatalf("-existing resized the object to %d", fi.Size())
	}
	r = runShm(t, strings.NewReader(strings.Repeat("z", 2000)), "write", "-existing", name)
	if r.code != 1 || !strings.Contains(r.stderr, "longer than the 1024-byte object") {
		t.Fatalf("too long for -existing: %d %q", r.code, r.stderr)
	}
	r = runShm(t, strings.NewReader("x"), "write", "-existing", "-size", "10", name)
	if r.code != 2 || !strings.Contains(r.stderr, "usage: shm write") {
		t.Fatalf("-existing with -size: %d %q", r.code, r.stderr)
	}
	ok(t, runShm(t, nil, "rm", name))

	// Longer than -size: an error, and nothing left.
	r = runShm(t, strings.NewReader("0123456789"), "write", "-size", "4", name)
	if r.code != 1 || !strings.Contains(r.stderr, "longer than -size 4") {
		t.Fatalf("input longer than -size: %d %q", r.code, r.stderr)
	}
	// Empty input.
	r = runShm(t, strings.NewReader(""), "write", name)
	if r.code != 1 || !strings.Contains(r.stderr, "empty input") {
		t.Fatalf("empty input: %d %q", r.code, r.stderr)
	}
	if _, err := os.Stat("/dev/shm" + name); err == nil {
		t.Fatal("a failed write left the object")
	}
}

func TestErrorsAndUsage(t *testing.T) {
	missing := newName(t)
	for _, c := range []struct {
		args   []string
		code   int
		stderr string // exact, or a prefix ending in "..."
	}{
		{[]string{"read", missing}, 1, "shm: read " + missing + ": no such file or directory\n"},
		{[]string{"stat", missing}, 1, "shm: stat " + missing + ": no such file or directory\n"},
		{[]string{"rm", missing}, 1, "shm: rm " + missing + ": no such file or directory\n"},
		{[]string{"write", "-existing", missing}, 1, "shm: write " + missing + ": no such file or directory\n"},
		{[]string{"read", "/a/b"}, 1, "shm: read /a/b: invalid argument\n"},
		{[]string{"stat", "/a/b"}, 1, "shm: stat /a/b: invalid argument\n"},
		{[]string{"create", "-size", "0", missing}, 2, "shm create: -size must be positive\nusage: shm create..."},
		{[]string{"create", "-size", "lots", missing}, 2, "shm create: invalid value \"lots\" for flag -size: bad size..."},
		{[]string{"create", "-mode", "999", missing}, 2, "shm create: invalid value \"999\" for flag -mode..."},
		{[]string{"read"}, 2, "shm read: want exactly one NAME\nusage: shm read..."},
		{[]string{"read", "a", "b"}, 2, "shm read: want exactly one NAME..."},
		{[]string{"rm"}, 2, "shm rm: want at least one NAME..."},
		{[]string{"ls", "x"}, 2, "shm ls: ls takes no arguments..."},
		{[]string{"demo", "x"}, 2, "shm demo: demo takes no arguments..."},
		{[]string{"frobnicate"}, 2, "shm: unknown command \"frobnicate\"\nusage: shm <command>..."},
		{nil, 2, "usage: shm <command>..."},
	} {
		r := runShm(t, nil, c.args...)
		match := r.stderr == c.stderr
		if p, ok := strings.CutSuffix(c.stderr, "..."); ok {
			match = strings.HasPrefix(r.stderr, p)
		}
		if r.code != c.code || !match {
			t.Errorf("shm %q: exit %d, stderr %q; want %d, %q", c.args, r.code, r.stderr, c.code, c.stderr)
		}
	}
	// A range outside the object.
	name := newName(t)
	ok(t, runShm(t, nil, "create", "-size", "100", name))
	for _, args := range [][]string{{"-offset", "101"}, {"-length", "101"}, {"-offset", "50", "-length", "51"}} {
		r := runShm(t, nil, append(append([]string{"read"}, args...), name)...)
		if r.code != 1 || !strings.Contains(r.stderr, "outside the 100-byte object") {
			t.Errorf("read %v: %d %q", args, r.code, r.stderr)
		}
	}
	ok(t, runShm(t, nil, "rm", name))
}

func TestHelp(t *testing.T) {
	for _, c := range commands {
		r := ok(t, runShm(t, nil, c.name, "-h"))
		if !strings.HasPrefix(r.stdout, "usage: shm "+c.name) {
			t.Errorf("shm %s -h: %q", c.name, r.stdout)
		}
	}
	if r := ok(t, runShm(t, nil, "-h")); !strings.Contains(r.stdout, "demo") {
		t.Errorf("shm -h: %q", r.stdout)
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"0": 0, "4096": 4096, "4k": 4096, "64K": 65536, "1M": 1 << 20, "1MiB": 1 << 20, "2G": 2 << 30, "3GB": 3 << 30} {
		if got, err := parseSize(in); got != want || err != nil {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "-1", "K", "1T", "1.5M", "99999999999G"} {
		if _, err := parseSize(in); err == nil {
			t.Errorf("parseSize(%q) accepted", in)
		}
	}
}

var createdRe = regexp.MustCompile(`created (/shm-demo-\S+):`)

func TestDemo(t *testing.T) {
	r := ok(t, runShm(t, nil, "demo"))
	m := createdRe.FindStringSubmatch(r.stdout)
	if m == nil {
		t.Fatalf("no object named in:\n%s", r.stdout)
	}
	for _, want := range []string{"writer ", "reader ", `read "hello from process `, "answer", "unlinked " + m[1]} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("demo output lacks %q:\n%s", want, r.stdout)
		}
	}
	// Each line carries its time, in order.
	last := -1.0
	for _, l := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		f, _, _ := strings.Cut(strings.TrimSpace(l), "ms")
		ms, err := strconv.ParseFloat(f, 64)
		if err != nil || ms < last {
			t.Errorf("line %q: time %v after %v", l, ms, last)
		}
		last = ms
	}
	if _, err := os.Stat("/dev/shm" + m[1]); err == nil {
		t.Fatalf("demo left %s", m[1])
	}
}

// TestDemoInterrupted: Ctrl-C (SIGINT) while the reader holds the object
// still leaves nothing behind.
func TestDemoInterrupted(t *testing.T) {
	cmd := exec.Command(bin, "demo", "-hold")
	stdin, _ := cmd.StdinPipe() // kept open: the reader holds
	defer stdin.Close()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stdout)
	var name string
	for sc.Scan() {
		if m := createdRe.FindStringSubmatch(sc.Text()); m != nil {
			name = m[1]
		}
		if strings.Contains(sc.Text(), "holding") {
			break
		}
	}
	if name == "" {
		cmd.Wait()
		t.Fatal("demo did not reach the holding step")
	}
	if _, err := os.Stat("/dev/shm" + name); err != nil {
		t.Fatalf("while holding, the object should exist: %v", err)
	}
	cmd.Process.Signal(os.Interrupt)
	rest, _ := io.ReadAll(stdout)
	err := cmd.Wait()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 130 {
		t.Fatalf("demo after SIGINT: %v\n%s", err, rest)
	}
	if _, err := os.Stat("/dev/shm" + name); err == nil {
		os.Remove("/dev/shm" + name)
		t.Fatalf("interrupted demo left %s", name)
	}
}
