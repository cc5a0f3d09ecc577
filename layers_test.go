package shm_test

import (
	"testing"

	"github.com/posixshm/shm/internal/filedeps"
)

// floors are the root package's files from the bottom up: a file may use
// what its own floor and the floors below declare, never what a floor
// above declares, and a capability never another capability (the files of
// floor 4 use only floors 0-3). Packages outside the root are kept in
// their place by the compiler (internal/...).
var floors = []struct {
	files    []string
	sideways bool // files of this floor may use each other
}{
	{[]string{"shm_cgo.go"}, true},  // 0: the cgo vocabulary
	{[]string{"memlimit.go"}, true}, // 1: room in memory (cgroup, /dev/shm)
	{[]string{"mmap.go"}, true},     // 2: the mapping of any descriptor
	{[]string{"shm.go"}, true},      // 3: objects by name, publish
	{[]string{"futex.go", "lifecycle.go", "memfd.go", "mutex.go", "semaphore.go"}, false}, // 4: capabilities
}

// TestLayers: no file of the root package uses a name declared in a file
// above its floor, or in a fellow capability. Kills: a field of the
// Mutex's registry in Mapping with a call into it at Close (mmap.go using
// mutex.go's releaseReg), shm.go using semaphore.go's nameMax, mutex.go
// using lifecycle.go's /proc types (each seen as "mmap.go uses
// mutex.go's releaseReg" and the like).
func TestLayers(t *testing.T) {
	floorOf := map[string]int{}
	for i, f := range floors {
		for _, name := range f.files {
			floorOf[name] = i
		}
	}
	files, uses, err := filedeps.Files(".")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range files {
		if _, ok := floorOf[p]; !ok && p != "doc.go" && p != "nocgo.go" && p != "nolinux.go" {
			t.Errorf("%s is on no floor: place it in floors", p)
		}
	}
	for _, u := range uses {
		mine, ok := floorOf[u.File]
		if !ok {
			continue
		}
		theirs := floorOf[u.DeclaredIn]
		if theirs > mine || theirs == mine && !floors[mine].sideways {
			t.Errorf("%s uses %s's %s: a file uses only the floors below it", u.File, u.DeclaredIn, u.Name)
		}
	}
}
