package main

// Tests of ls -l, rm -stale, chmod, chown and truncate. Each names the
// mutation it kills. None sweeps the whole host for real: other programs'
// objects are not the tests' to remove (host-wide runs are -dry-run).

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// holder starts a shell that holds name open (a descriptor, no mapping)
// until release, and returns its pid.
func holder(t *testing.T, name string) (pid int, release func()) {
	t.Helper()
	cmd := exec.Command("sh", "-c", `exec 3<"$1"; echo ready; read x`, "sh", "/dev/shm"+name)
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if line, err := bufio.NewReader(stdout).ReadString('\n'); line != "ready\n" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("holder: %q, %v", line, err)
	}
	done := false
	release = func() {
		if !done {
			done = true
			stdin.Close()
			io.Copy(io.Discard, stdout)
			cmd.Wait()
		}
	}
	t.Cleanup(release)
	return cmd.Process.Pid, release
}

// TestRmStale: rm -stale keeps what a process holds and what is younger
// than -age, removes the rest (a killed creator's NAME.~RANDOM too),
// -dry-run removes nothing, and a held object is removed once its holder
// has exited.
//
// Kills: rm -stale ignoring the holders; ignoring -age; -dry-run
// removing; host-wide mode skipping temporary names.
func TestRmStale(t *testing.T) {
	held, free, young := newName(t), newName(t), newName(t)
	tmp := newName(t) + ".~3xk2q9" // what a creator killed before publishing leaves
	for _, n := range []string{held, free, young} {
		ok(t, runShm(t, nil, "create", n))
	}
	if err := os.WriteFile("/dev/shm"+tmp, make([]byte, 4096), 0o600); err != nil {
		t.Fatal(err)
	}
	pid, release := holder(t, held)
	exists := func(n string) bool { _, err := os.Stat("/dev/shm" + n); return err == nil }
	// This environment may have processes even root cannot inspect (a
	// container's init with more capabilities): -ignore-denied.
	stale := []string{"rm", "-stale", "-ignore-denied"}

	// Host-wide, dry: ours that are stale are listed, the held one not.
	r := runShm(t, nil, append(stale, "-age", "0", "-dry-run")...)
	if r.code != 0 {
		t.Fatalf("dry run: %d %s", r.code, r.stderr)
	}
	for n, want := range map[string]bool{held: false, free: true, young: true, tmp: true} {
		if got := strings.Contains(r.stdout, "would remove "+n+"\n"); got != want {
			t.Errorf("host-wide dry run lists %s: %v, want %v:\n%s", n, got, want, r.stdout)
		}
		if !exists(n) {
			t.Fatalf("-dry-run removed %s", n)
		}
	}

	r = runShm(t, nil, append(stale, "-age", "0", held, free, tmp)...)
	if r.code != 0 || r.stdout != "removed "+free+"\nremoved "+tmp+"\n" {
		t.Fatalf("rm -stale -age 0: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stderr, fmt.Sprintf("shm: rm %s: kept: held by %d\n", held, pid)) {
		t.Errorf("rm -stale does not say why it kept %s: %q", held, r.stderr)
	}
	if !exists(held) || exists(free) || exists(tmp) {
		t.Fatalf("after rm -stale: held %v, free %v, tmp %v", exists(held), exists(free), exists(tmp))
	}

	// Default -age 1h: a fresh object stays.
	r = runShm(t, nil, append(stale, young)...)
	if r.code != 0 || r.stdout != "" || !strings.Contains(r.stderr, "kept: changed") || !exists(young) {
		t.Fatalf("rm -stale of a fresh object: exit %d, %q, %q", r.code, r.stdout, r.stderr)
	}

	release()
	r = runShm(t, nil, append(stale, "-age", "0", held, young)...)
	if r.code != 0 || r.stdout != "removed "+held+"\nremoved "+young+"\n" || exists(held) {
		t.Fatalf("rm -stale after the holder exited: exit %d, %q, %q", r.code, r.stdout, r.stderr)
	}

	// A NAME that is not there: reported, exit 1.
	r = runShm(t, nil, append(stale, "-age", "0", held)...)
	if r.code != 1 || !strings.Contains(r.stderr, "no such file or directory") {
		t.Fatalf("rm -stale of a missing name: %d %q", r.code, r.stderr)
	}
	if r := runShm(t, nil, "rm", "-age", "0", held); r.code != 2 {
		t.Fatalf("-age without -stale: %d %q", r.code, r.stderr)
	}
}

// TestRmStaleDenied: a user who cannot inspect every process removes
// nothing without -ignore-denied: any object might be held there.
//
// Kills: rm -stale treating processes it could not inspect as holding
// nothing.
func TestRmStaleDenied(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run the command as uid 65534")
	}
	name := newName(t)
	ok(t, runShm(t, nil, "create", name))
	ok(t, runShm(t, nil, "chmod", "0644", name)) // nobody may stat it
	dir := filepath.Dir(bin)
	os.Chmod(dir, 0o755)
	cmd := exec.Command(bin, "rm", "-stale", "-age", "0", name)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if ee, isExit := err.(*exec.ExitError); !isExit || ee.ExitCode() != 3 || len(out) != 0 ||
		!strings.Contains(stderr.String(), "could not be inspected") || !strings.Contains(stderr.String(), "nothing was removed") {
		t.Fatalf("rm -stale as nobody: %v, %q, %q", err, out, stderr.String())
	}
	if _, err := os.Stat("/dev/shm" + name); err != nil {
		t.Fatal("rm -stale removed an object although it could not inspect every process")
	}
	ok(t, runShm(t, nil, "rm", name))
}

// TestChmodChownTruncate: chmod sets the exact mode (the tests' umask is
// 022), chown the owner and group by name or number, truncate the size.
//
// Kills: chmod less the umask; chown's USER: not taking the login group;
// truncate not resizing, or -size optional.
func TestChmodChownTruncate(t *testing.T) {
	name := newName(t)
	ok(t, runShm(t, nil, "create", name))
	st := func() *syscall.Stat_t {
		var st syscall.Stat_t
		if err := syscall.Stat("/dev/shm"+name, &st); err != nil {
			t.Fatal(err)
		}
		return &st
	}
	ok(t, runShm(t, nil, "chmod", "0666", name))
	if m := st().Mode & 0o777; m != 0o666 {
		t.Errorf("chmod 0666 under umask 022: %#o", m)
	}
	ok(t, runShm(t, nil, "truncate", "-size", "12K", name))
	if s := st().Size; s != 12<<10 {
		t.Errorf("truncate -size 12K: %d", s)
	}
	ok(t, runShm(t, nil, "truncate", "-size", "1", name))
	if s := st().Size; s != 1 {
		t.Errorf("truncate -size 1: %d", s)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"chmod", "0999", name}, "bad mode"},
		{[]string{"chmod", name}, "want MODE and NAME"},
		{[]string{"chown", "no-such-user-xyz", name}, "unknown user"},
		{[]string{"chown", ":", name}, "bad owner"},
		{[]string{"truncate", name}, "-size is required"},
	} {
		if r := runShm(t, nil, c.args...); r.code != 2 || !strings.Contains(r.stderr, c.want) {
			t.Errorf("shm %v: exit %d, %q; want usage and %q", c.args, r.code, r.stderr, c.want)
		}
	}
	if os.Geteuid() == 0 {
		ok(t, runShm(t, nil, "chown", "65534:65533", name))
		if s := st(); s.Uid != 65534 || s.Gid != 65533 {
			t.Errorf("chown 65534:65533: %d:%d", s.Uid, s.Gid)
		}
		ok(t, runShm(t, nil, "chown", ":0", name))
		if s := st(); s.Uid != 65534 || s.Gid != 0 {
			t.Errorf("chown :0: %d:%d", s.Uid, s.Gid)
		}
		ok(t, runShm(t, nil, "chown", ":65533", name))
		ok(t, runShm(t, nil, "chown", "root:", name))
		if s := st(); s.Uid != 0 || s.Gid != 0 {
			t.Errorf("chown root: gave %d:%d", s.Uid, s.Gid)
		}
	}
	ok(t, runShm(t, nil, "rm", name))
}
