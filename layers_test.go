package shm_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strings"
	"testing"
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
	fset := token.NewFileSet()
	paths, _ := filepath.Glob("*.go")
	parsed := map[string]*ast.File{}
	declaredIn := map[string]string{}
	for _, p := range paths {
		if strings.HasSuffix(p, "_test.go") {
			continue
		}
		if _, ok := floorOf[p]; !ok && p != "doc.go" && p != "nocgo.go" && p != "nolinux.go" {
			t.Errorf("%s is on no floor: place it in floors", p)
		}
		f, err := parser.ParseFile(fset, p, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		parsed[p] = f
		for _, d := range f.Decls {
			switch d := d.(type) {
			case *ast.FuncDecl:
				if d.Recv == nil {
					declaredIn[d.Name.Name] = p
				}
			case *ast.GenDecl:
				for _, s := range d.Specs {
					switch s := s.(type) {
					case *ast.TypeSpec:
						declaredIn[s.Name.Name] = p
					case *ast.ValueSpec:
						for _, n := range s.Names {
							declaredIn[n.Name] = p
						}
					}
				}
			}
		}
	}
	for p, f := range parsed {
		mine, ok := floorOf[p]
		if !ok {
			continue
		}
		selected := map[*ast.Ident]bool{} // x.Name: a field or method, not a package-level name
		ast.Inspect(f, func(n ast.Node) bool {
			if s, ok := n.(*ast.SelectorExpr); ok {
				selected[s.Sel] = true
			}
			return true
		})
		seen := map[string]bool{}
		ast.Inspect(f, func(n ast.Node) bool {
			id, ok := n.(*ast.Ident)
			if !ok || selected[id] || id.Obj != nil { // Obj: declared in this file
				return true
			}
			other, ok := declaredIn[id.Name]
			if !ok || other == p || seen[other+id.Name] {
				return true
			}
			theirs := floorOf[other]
			if theirs > mine || theirs == mine && !floors[mine].sideways {
				seen[other+id.Name] = true
				t.Errorf("%s uses %s's %s: a file uses only the floors below it", p, other, id.Name)
			}
			return true
		})
	}
}
