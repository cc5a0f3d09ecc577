package filedeps_test

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/posixshm/shm/internal/filedeps"
)

// TestFiles: a package of three files, where b.go calls a.go's function
// and uses its type and constant, c.go uses only its own type, whose
// method and fields (one named as a.go's constant K) are no package-level
// names, and a test file uses everything: exactly b.go's three uses are
// reported. Kills: selectors counted as names (c.go "uses" K); test files
// parsed; names declared in the using file reported.
func TestFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, src string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("package p\n"+src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("a.go", "type T struct{ F int }\nfunc (T) M() {}\nfunc Fa() {}\nconst K = 1\n")
	write("b.go", "var v T\nfunc fb() { Fa(); _ = K }\n")
	write("c.go", "func fc(x T2) { x.M(); _ = x.F; _ = x.K }\ntype T2 struct{ F, K int }\nfunc (T2) M() {}\n")
	write("x_test.go", "func tx() { Fa(); fb(); fc(T2{}) }\n")
	files, uses, err := filedeps.Files(dir)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"a.go", "b.go", "c.go"}; !slices.Equal(files, want) {
		t.Errorf("files %v, want %v", files, want)
	}
	want := []filedeps.Use{{"b.go", "T", "a.go"}, {"b.go", "Fa", "a.go"}, {"b.go", "K", "a.go"}}
	if !slices.Equal(uses, want) {
		t.Errorf("uses %v, want %v", uses, want)
	}
}
