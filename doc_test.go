package shm_test

// Tests of the package as a whole: its documentation and its build
// refusals (doc.go, nocgo.go, nolinux.go).

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestBuildRefusals: other systems get a compile error that names Linux,
// and CGO_ENABLED=0 one that names cgo; go doc works with CGO_ENABLED=0.
// Kills: a cgo-only build constraint (darwin said "build with cgo"), the
// package doc in a tagged file (go doc printed no package doc), a
// CGO_ENABLED=0 build that succeeds or fails without naming cgo (the
// ring's too: before ring/nocgo.go it built to an empty package).
func TestBuildRefusals(t *testing.T) {
	gocmd, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("no go command in PATH: %v", err)
	}
	for _, env := range [][]string{{"GOOS=darwin", "GOARCH=arm64", "CGO_ENABLED=1"}, {"GOOS=windows", "GOARCH=amd64", "CGO_ENABLED=0"}, {"GOOS=freebsd", "GOARCH=amd64"}} {
		cmd := exec.Command(gocmd, "build", "-o", os.DevNull, ".")
		cmd.Env = append(os.Environ(), env...)
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), "shm_is_linux_only") || strings.Contains(string(out), "shm_requires_cgo") {
			t.Errorf("%v: want only the Linux message: %v\n%s", env, err, out)
		}
	}
	for pkg, want := range map[string]string{".": "shm_requires_cgo", "./ring": "ring_requires_cgo"} {
		cmd := exec.Command(gocmd, "build", "-o", os.DevNull, pkg)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		out, err := cmd.CombinedOutput()
		if err == nil {
			t.Fatalf("CGO_ENABLED=0 build of %s succeeded", pkg)
		}
		if !strings.Contains(string(out), want) {
			t.Fatalf("CGO_ENABLED=0 build of %s failed without naming cgo:\n%s", pkg, out)
		}
	}
	cmd := exec.Command(gocmd, "doc", ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "POSIX shared memory") {
		t.Fatalf("CGO_ENABLED=0 go doc: %v\n%s", err, out)
	}
	// One receiver name for Segment's methods, own and promoted.
	out, err = exec.Command(gocmd, "doc", "-all", ".").CombinedOutput()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "func (s *Segment)") {
		t.Errorf("go doc shows two receiver names for Segment")
	}
}
