package main

// Reproductions from the hostile review of issues 14, 17 and 18.

import (
	"bytes"
	"io/fs"
	"os"
	"strings"
	"syscall"
	"testing"
)

// TestReviewLsLongNulExactNames: "ls -l -0 prints names exactly as they
// are" (package doc), whatever bytes they hold: a tab, a vertical tab, a
// form feed or a 0xff byte in a name must reach the record unchanged.
func TestReviewLsLongNulExactNames(t *testing.T) {
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

// TestReviewMessagesCannotForge: every message is one line whatever the
// names in the errors it carries: a failed rename or link (an
// *os.LinkError, which prints both paths raw) and a holders error of a
// semaphore (an *fs.PathError whose Path is the raw name).
func TestReviewMessagesCannotForge(t *testing.T) {
	evil := "/dev/shm/x\nshm: rm /important: removed"
	if s := errText(&os.LinkError{Op: "rename", Old: evil, New: evil + ".~q", Err: syscall.EPERM}); strings.Contains(s, "\n") {
		t.Errorf("errText of a LinkError: %q", s)
	}
	var out, errb bytes.Buffer
	e := &env{strings.NewReader(""), &out, &errb}
	h := &holderInfo{pids: map[string][]int{}, failed: map[string]error{
		evil: &fs.PathError{Op: "sem_open", Path: "/x\nshm: rm /important: removed", Err: syscall.EACCES},
	}}
	h.warnUnknown(e, "ls")
	if n := strings.Count(errb.String(), "\n"); n != 1 {
		t.Errorf("one holders warning printed as %d lines: %q", n, errb.String())
	}
}
