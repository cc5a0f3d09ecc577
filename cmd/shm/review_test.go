package main

// Reproductions from the hostile review of issues 14, 17 and 18.

import (
	"os"
	"strings"
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
