package main

// Tests of ls and stat. Each names the mutation it kills.

import (
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// lsLine returns the ls -l line of name, and ls -l's exit status.
func lsLine(t *testing.T, name string, args ...string) string {
	t.Helper()
	r := runShm(t, nil, append([]string{"ls", "-l"}, args...)...)
	if r.code != 0 {
		t.Fatalf("ls -l: exit %d, %s", r.code, r.stderr)
	}
	for _, l := range strings.Split(r.stdout, "\n") {
		if strings.HasSuffix(l, " "+name) {
			return l
		}
	}
	t.Fatalf("ls -l lacks %s:\n%s", name, r.stdout)
	return ""
}

// TestLsLongHolders: ls -l shows the pid of a process that holds the
// object, "-" for none ("?" joins them where some process could not be
// inspected, as pid 1 of a container); -n shows numeric ids, as ls -n.
//
// Kills: ls -l not asking HoldersAll (every HOLDERS "-"); -n ignored;
// holders keyed by a name without the leading slash.
func TestLsLongHolders(t *testing.T) {
	a, b := newName(t), newName(t)
	ok(t, runShm(t, nil, "create", a))
	ok(t, runShm(t, nil, "create", b))
	pid, _ := holder(t, a)
	holders := regexp.MustCompile(`^shm +-rw------- +(\S+) +(\S+) +4096 +\S+ +(\S+) +/`)
	// What HOLDERS may say: exactly, or with "?" where some process
	// could not be inspected.
	for name, want := range map[string][]string{a: {fmt.Sprint(pid), fmt.Sprint(pid) + ",?"}, b: {"-", "?"}} {
		l := lsLine(t, name)
		m := holders.FindStringSubmatch(l)
		if m == nil || !slices.Contains(want, m[3]) {
			t.Errorf("ls -l line %q: want holders %s", l, want)
		}
		if m != nil && m[1] != "root" && os.Geteuid() == 0 {
			t.Errorf("ls -l line %q: owner %s, want root", l, m[1])
		}
	}
	l := lsLine(t, a, "-n")
	if m := holders.FindStringSubmatch(l); m == nil || m[1] != fmt.Sprint(os.Geteuid()) || m[2] != fmt.Sprint(os.Getegid()) {
		t.Errorf("ls -l -n line %q: want owner %d, group %d", l, os.Geteuid(), os.Getegid())
	}
	ok(t, runShm(t, nil, "rm", a, b))
}
