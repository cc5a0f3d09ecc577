package main

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strings"
	"testing"
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
	fset := token.NewFileSet()
	paths, _ := filepath.Glob("*.go")
	parsed := map[string]*ast.File{}
	declaredIn := map[string]string{}
	for _, p := range paths {
		if strings.HasSuffix(p, "_test.go") {
			continue
		}
		if _, ok := groupFiles[p]; !ok {
			t.Errorf("%s is in no group: place it in groupFiles", p)
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
		allowed := map[string]bool{p: true}
		for _, o := range groupFiles[p] {
			allowed[o] = true
		}
		if p != "output.go" {
			allowed["main.go"], allowed["output.go"] = true, true
		}
		selected := map[*ast.Ident]bool{}
		ast.Inspect(f, func(n ast.Node) bool {
			if s, ok := n.(*ast.SelectorExpr); ok {
				selected[s.Sel] = true
			}
			return true
		})
		seen := map[string]bool{}
		ast.Inspect(f, func(n ast.Node) bool {
			id, ok := n.(*ast.Ident)
			if !ok || selected[id] || id.Obj != nil || id == f.Name || id.Name == "_" {
				return true
			}
			other, ok := declaredIn[id.Name]
			if ok && !allowed[other] && !seen[other+id.Name] {
				seen[other+id.Name] = true
				t.Errorf("%s uses %s's %s: a command file uses only main.go, output.go and its own names", p, other, id.Name)
			}
			return true
		})
	}
}
