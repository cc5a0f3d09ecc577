//go:build linux && cgo

package ring_test

import (
	"errors"
	"io/fs"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/posixshm/shm"
	"github.com/posixshm/shm/ring"
)

// TestUnlinkNamelessRing: a ring in a memfd (CreateMemfd), and a ring
// mapped from a received descriptor of it (MapFile), have no object name:
// Name is "" and Unlink is an error wrapping syscall.EINVAL that removes
// nothing, not even another program's object "/memfd:LABEL", named as
// /proc shows the memfd. A named ring's Name is its name and its Unlink
// removes it. The errors of a ring with no name still say the memfd's
// label.
//
// Kills: Unlink passing the memfd's label (or the descriptor's name) to
// shm_unlink, the data loss of issue 22 item 1 (the other program's
// object is gone and Unlink returns nil); Name returning that label; a
// named ring whose Name is "" or whose Unlink removes nothing; a memfd
// ring whose errors name nothing.
func TestUnlinkNamelessRing(t *testing.T) {
	label := strings.TrimPrefix(ringName(t), "/") // unique; ringName's cleanup unlinks nothing of ours
	other := "/memfd:" + label                    // what /proc/self/fd shows for the memfd, "/memfd:LABEL (deleted)"
	t.Cleanup(func() { shm.Unlink(other) })
	// made is another program's object under the memfd's label; survives
	// checks that it is still there, whole.
	made := func() {
		t.Helper()
		s, err := shm.OpenFile(other, os.O_RDWR|os.O_CREATE, 0o600, 4096, nil)
		if err != nil {
			t.Fatal(err)
		}
		copy(s.Bytes(), "another program's data")
		s.Close()
	}
	survives := func(what string) {
		t.Helper()
		o, err := shm.Open(other)
		if err != nil {
			t.Errorf("after %s: another program's object %s: %v", what, other, err)
			return
		}
		defer o.Close()
		if !strings.HasPrefix(string(o.Bytes()), "another program's data") {
			t.Errorf("after %s: %s holds %q", what, other, o.Bytes()[:22])
		}
	}

	r, err := ring.CreateMemfd(label, 64)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	f, err := r.File()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := ring.MapFile(f)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	for _, c := range []struct {
		what string
		r    *ring.Ring
	}{{"CreateMemfd", r}, {"MapFile", m}} {
		made()
		err := c.r.Unlink()
		if !errors.Is(err, syscall.EINVAL) || !strings.Contains(err.Error(), "no name") || !strings.Contains(err.Error(), "memfd:"+label) {
			t.Errorf("Unlink of a ring from %s: %v, want an error wrapping EINVAL that names the memfd's label and says it has no name", c.what, err)
		}
		survives("Unlink of a ring from " + c.what)
		if n := c.r.Name(); n != "" {
			t.Errorf("Name of a ring from %s: %q, want \"\"", c.what, n)
		}
	}

	name := ringName(t)
	n, err := ring.Create(name, 64)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if n.Name() != name {
		t.Errorf("Name of a named ring: %q, want %q", n.Name(), name)
	}
	made()
	if err := n.Unlink(); err != nil {
		t.Errorf("Unlink of a named ring: %v", err)
	}
	if o, err := shm.Open(name); !errors.Is(err, fs.ErrNotExist) {
		if err == nil {
			o.Close()
		}
		t.Errorf("open after Unlink of a named ring: %v, want an error wrapping fs.ErrNotExist", err)
	}
	survives("Unlink of a named ring")
}
