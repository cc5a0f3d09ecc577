//go:build linux && cgo

package ring_test

import (
	"strings"
	"testing"

	"github.com/posixshm/shm/ring"
)

// TestErrorsSayRing: every error the package exports reads as its
// siblings do, "ring: ...", so that a message names where it comes from.
//
// Kills: an error without the prefix (ErrNotRing said "not a ring of
// layout version 1").
func TestErrorsSayRing(t *testing.T) {
	for name, err := range map[string]error{
		"ErrPeerGone": ring.ErrPeerGone,
		"ErrBusy":     ring.ErrBusy,
		"ErrTooLarge": ring.ErrTooLarge,
		"ErrNotRing":  ring.ErrNotRing,
		"ErrCorrupt":  ring.ErrCorrupt,
	} {
		if !strings.HasPrefix(err.Error(), "ring: ") {
			t.Errorf("%s is %q, want \"ring: ...\"", name, err)
		}
	}
}
