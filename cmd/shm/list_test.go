package main

// Tests of ls and stat. Each names the mutation it kills.

import (
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"syscall"
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

// TestStatRefusesLikePackage: stat describes what shm.Stat describes and
// refuses what it refuses, as read does: a symbolic link (not followed), a
// FIFO, a directory; and it shows the holders.
//
// Kills: stat by os.Stat of the path (it followed the link and described
// the FIFO and the directory with exit 0; issue 18 item 6); stat without
// holders.
func TestStatRefusesLikePackage(t *testing.T) {
	obj, link, fifo, dir := newName(t), newName(t), newName(t), newName(t)
	ok(t, runIn(t, nil, "create", obj))
	if err := os.Symlink("/dev/shm"+obj, "/dev/shm"+link); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo("/dev/shm"+fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir("/dev/shm"+dir, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{link, fifo, dir} {
		st := runIn(t, nil, "stat", n)
		rd := runIn(t, nil, "read", n)
		_, stWhy, _ := strings.Cut(st.stderr, n+": ")
		_, rdWhy, _ := strings.Cut(rd.stderr, n+": ")
		if st.code != 1 || st.stdout != "" || stWhy == "" || stWhy != rdWhy {
			t.Errorf("stat %s: exit %d, %q, %q; read says %q", n, st.code, st.stdout, st.stderr, rd.stderr)
		}
		if ls := runIn(t, nil, "ls", n); ls.code != 1 {
			t.Errorf("ls %s: exit %d, %q", n, ls.code, ls.stdout)
		}
	}
	pid, _ := holder(t, obj)
	st := runIn(t, nil, "stat", obj)
	if st.code != 0 || !regexp.MustCompile(`(?m)^holders: +`+fmt.Sprint(pid)+`(,\?)?$`).MatchString(st.stdout) {
		t.Errorf("stat of a held object: exit %d:\n%s%s", st.code, st.stdout, st.stderr)
	}
}

// TestListingsAgree: ls, ls -l, ls -json and stat show the same objects
// and semaphores, typed; ls takes NAMEs and shows only theirs.
//
// Kills: ls -l listing objects only (issue 18 item 9).
func TestListingsAgree(t *testing.T) {
	if onMusl() {
		t.Skip("musl keeps a semaphore as a plain file NAME: ls cannot tell it from an object")
	}
	obj, sem := newName(t), newName(t)
	t.Cleanup(func() { os.Remove("/dev/shm/sem." + strings.TrimPrefix(sem, "/")) })
	ok(t, runIn(t, nil, "create", obj))
	ok(t, runIn(t, nil, "sem", "create", sem))
	want := map[string]string{obj: "shm", sem: "sem"}
	for _, args := range [][]string{{"ls"}, {"ls", "-l"}, {"ls", obj, sem}, {"ls", "-l", sem, obj}} {
		r := runIn(t, nil, args...)
		found := map[string]string{}
		for _, l := range strings.Split(r.stdout, "\n") {
			f := strings.Fields(l)
			if len(f) > 1 && want[f[len(f)-1]] != "" {
				found[f[len(f)-1]] = f[0]
			}
		}
		if r.code != 0 || len(found) != 2 || found[obj] != "shm" || found[sem] != "sem" {
			t.Errorf("shm %v: exit %d, found %v:\n%s", args, r.code, found, r.stdout)
		}
		names := slices.DeleteFunc(slices.Clone(args[1:]), func(a string) bool { return a == "-l" })
		if header := slices.Contains(args, "-l"); len(names) > 0 && strings.Count(r.stdout, "\n") != len(names)+map[bool]int{true: 1}[header] {
			t.Errorf("shm %v lists more than the NAMEs given:\n%s", args, r.stdout)
		}
	}
	var recs []map[string]any
	r := runIn(t, nil, "stat", "-json", obj, sem)
	if err := json.Unmarshal([]byte(r.stdout), &recs); err != nil || len(recs) != 2 || recs[0]["type"] != "shm" || recs[1]["type"] != "sem" {
		t.Errorf("stat -json: %v %v", err, recs)
	}
	ok(t, runIn(t, nil, "rm", obj, sem))
}

// TestLsWithoutProc: where /proc does not show this process, ls -l and
// stat show the holders as unknown ("?") and say why, never "-".
//
// Kills: listings trusting an empty /proc (every object shown as held by
// nobody).
func TestLsWithoutProc(t *testing.T) {
	name := newName(t)
	ok(t, runIn(t, nil, "create", name))
	old := procDir
	procDir = t.TempDir()
	defer func() { procDir = old }()
	r := runIn(t, nil, "ls", "-l", name)
	if f := strings.Fields(strings.Split(r.stdout, "\n")[1]); r.code != 0 || f[len(f)-2] != "?" || !strings.Contains(r.stderr, "/proc is not mounted") {
		t.Errorf("ls -l without /proc: exit %d, %q, %q", r.code, r.stdout, r.stderr)
	}
	r = runIn(t, nil, "stat", name)
	if !strings.Contains(r.stdout, "holders:  ?\n") {
		t.Errorf("stat without /proc: %q", r.stdout)
	}
}

// TestLsLongNulExactNames: "ls -l -0 prints names exactly as they
// are" (package doc), whatever bytes they hold: a tab, a vertical tab, a
// form feed or a 0xff byte in a name must reach the record unchanged.
//
// Kills: ls -l -0 writing through a tabwriter (a tab or \v in a name
// becomes spaces, \f a line break).
func TestLsLongNulExactNames(t *testing.T) {
	base := newName(t)
	var names []string
	for _, tail := range []string{"\tx", "\vy", "\fz", "\xffw", "\nv"} {
		n := base + tail
		t.Cleanup(func() { os.Remove("/dev/shm" + n) })
		if err := os.WriteFile("/dev/shm"+n, make([]byte, 4096), 0o600); err != nil {
			t.Fatal(err)
		}
		names = append(names, n)
	}
	for _, args := range [][]string{{"ls", "-l", "-0"}, {"ls", "-n", "-0"}} {
		r := runIn(t, nil, append(args, names...)...)
		if r.code != 0 {
			t.Fatalf("%v: exit %d: %s", args, r.code, r.stderr)
		}
		raw := r.stdout
		recs := strings.Split(strings.TrimSuffix(raw, "\x00"), "\x00")
		if len(recs) != len(names) {
			t.Errorf("%v: %d records for %d names: %q", args, len(recs), len(names), raw)
			continue
		}
		got := map[string]bool{}
		for _, r := range recs {
			for _, n := range names {
				if strings.HasSuffix(r, " "+n) {
					got[n] = true
				}
			}
		}
		for _, n := range names {
			if !got[n] {
				t.Errorf("%v: no record ends with the exact name %q:\n%q", args, n, raw)
			}
		}
	}
}
