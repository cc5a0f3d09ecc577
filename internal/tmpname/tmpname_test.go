package tmpname

import (
	"strings"
	"testing"
)

// TestNewOf: every name New makes is recognised by Of as base's, for short
// bases and for bases too long to keep whole, and never as another base's.
// Kills: New not cutting a long base (a name beyond NAME_MAX), Of taking
// any ".~" suffix (uppercase, empty, too long) or another base's name.
func TestNewOf(t *testing.T) {
	for _, base := range []string{"x", "a.b", strings.Repeat("L", 255), strings.Repeat("m", 250)} {
		for range 100 {
			n := New(base)
			if len(n) > 255 {
				t.Fatalf("New(%d bytes) = %d bytes, beyond NAME_MAX", len(base), len(n))
			}
			if !Of(n, base) {
				t.Fatalf("Of(%q, %q) = false for New's own name", n, base)
			}
			// A cut name is every longer base's with that start too: only a
			// whole base is told from others.
			if len(base) < 200 && Of(n, base+"z") || Of(n, "y") {
				t.Fatalf("Of takes %q for another base", n)
			}
		}
	}
	for _, bad := range []string{"x", "x.~", "x.~ABC", "x.~" + strings.Repeat("1", 14), "x.~12-3", "y.~12"} {
		if Of(bad, "x") {
			t.Errorf("Of(%q, \"x\") = true", bad)
		}
	}
}
