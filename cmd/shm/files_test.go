package main

import (
	"slices"
	"testing"

	"github.com/posixshm/shm/internal/filedeps"
)

// groupFiles are the command's files: one group of commands each, which
// may use what main.go (the dispatch) and output.go (the shared output
// helper) declare, and its own file's names; never another group's.
// main.go may use the groups' command tables; output.go only itself.
var groupFiles = map[string][]string{
	"main.go":       {"output.go", "data.go", "list.go", "rm.go", "sem.go", "demo.go", "ring.go"},
	"output.go":     nil,
	"data.go":       nil,
	"list.go":       nil,
	"rm.go":         nil,
	"sem.go":        nil,
	"demo.go":       {"demo_memfd.go"},
	"demo_memfd.go": {"demo.go"},
	"ring.go":       nil,
}

// TestGroupFiles: no file of the command uses a name another group's
// file declares (a function, type, variable or constant), only main.go's,
// output.go's and its own.
//
// Kills: list.go calling rm.go's helpers (leftovers, findHolders,
// checkProc), as before issue 22; sem.go using data.go's closeErr.
func TestGroupFiles(t *testing.T) {
	files, uses, err := filedeps.Files(".")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range files {
		if _, ok := groupFiles[p]; !ok {
			t.Errorf("%s is in no group: place it in groupFiles", p)
		}
	}
	for _, u := range uses {
		allowed := u.DeclaredIn == "output.go" && u.File != "output.go" ||
			u.DeclaredIn == "main.go" && u.File != "output.go" ||
			slices.Contains(groupFiles[u.File], u.DeclaredIn)
		if !allowed {
			t.Errorf("%s uses %s's %s: a command file uses only main.go, output.go and its own names", u.File, u.DeclaredIn, u.Name)
		}
	}
}
