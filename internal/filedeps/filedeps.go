// Package filedeps finds which files of a Go package use which of its
// other files' package-level names: what the compiler cannot keep apart
// within one package, for tests that keep a package's files in layers or
// groups (the root's TestLayers, the command's TestGroupFiles).
package filedeps

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strings"
)

// A Use is a file's use of a package-level name declared in another file.
type Use struct {
	File, Name, DeclaredIn string
}

// Files returns the package's non-test .go files in dir and, for each,
// every package-level name (function, type, variable, constant) it uses
// that another of those files declares, once per file and name. Methods
// and fields (x.Name) are not package-level names.
func Files(dir string) (files []string, uses []Use, err error) {
	paths, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		return nil, nil, err
	}
	fset := token.NewFileSet()
	parsed := map[string]*ast.File{}
	declaredIn := map[string]string{}
	for _, p := range paths {
		name := filepath.Base(p)
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, p, nil, 0)
		if err != nil {
			return nil, nil, err
		}
		files = append(files, name)
		parsed[name] = f
		for _, d := range f.Decls {
			switch d := d.(type) {
			case *ast.FuncDecl:
				if d.Recv == nil {
					declaredIn[d.Name.Name] = name
				}
			case *ast.GenDecl:
				for _, s := range d.Specs {
					switch s := s.(type) {
					case *ast.TypeSpec:
						declaredIn[s.Name.Name] = name
					case *ast.ValueSpec:
						for _, n := range s.Names {
							declaredIn[n.Name] = name
						}
					}
				}
			}
		}
	}
	for _, name := range files {
		f := parsed[name]
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
			if !ok || selected[id] || id.Obj != nil || id == f.Name || id.Name == "_" { // Obj: declared in this file
				return true
			}
			if other, ok := declaredIn[id.Name]; ok && other != name && !seen[id.Name] {
				seen[id.Name] = true
				uses = append(uses, Use{File: name, Name: id.Name, DeclaredIn: other})
			}
			return true
		})
	}
	return files, uses, nil
}
