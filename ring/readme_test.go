//go:build linux && cgo

package ring_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// readmeBlock returns the fenced block of ../docs/ring.md (the ring's
// page, where the README's readers moved) in lang whose first line is
// first.
func readmeBlock(t *testing.T, lang, first string) string {
	t.Helper()
	b, err := os.ReadFile("../docs/ring.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, part := range strings.Split(string(b), "```"+lang+"\n")[1:] {
		body, _, _ := strings.Cut(part, "```")
		if strings.HasPrefix(body, first) {
			return body
		}
	}
	t.Fatalf("docs/ring.md has no %s block starting with %q", lang, first)
	return ""
}

// TestReadmeReaders runs docs/ring.md's C and Python readers, as printed,
// against a Go writer sending three messages and closing: each prints the
// three lines and exits 0 (the end of stream).
//
// Kills: a docs example that no longer compiles or runs against the
// API (a renamed function, a changed errno for the end of stream).
func TestReadmeReaders(t *testing.T) {
	dir := t.TempDir()
	csrc := filepath.Join(dir, "reader.c")
	os.WriteFile(csrc, []byte(readmeBlock(t, "c", "// reader.c")), 0o644)
	pysrc := filepath.Join(dir, "ring_reader.py")
	os.WriteFile(pysrc, []byte(strings.Replace(readmeBlock(t, "python", "# ring_reader.py"), `"ring/python"`, `"python"`, 1)), 0o644)
	readers := map[string][]string{}
	if _, err := exec.LookPath("cc"); err == nil {
		bin := filepath.Join(dir, "reader")
		if out, err := exec.Command("cc", "-std=c11", "-Wall", "-Wextra", "-Werror", "-O2", "-I", "c", "-o", bin, csrc).CombinedOutput(); err != nil {
			t.Fatalf("docs/ring.md's reader.c: %v\n%s", err, out)
		}
		readers["C"] = []string{bin}
	}
	if py, err := exec.LookPath("python3"); err == nil {
		readers["Python"] = []string{py, pysrc}
	}
	if len(readers) == 0 {
		t.Skip("neither cc nor python3 is installed")
	}
	for lang, argv := range readers {
		t.Run(lang, func(t *testing.T) {
			r := newRing(t, 4096)
			w, _ := r.Writer()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			for _, m := range []string{"one", "two", "three"} {
				w.Send(ctx, []byte(m))
			}
			w.Close()
			out, err := exec.CommandContext(ctx, argv[0], append(argv[1:], r.Name())...).CombinedOutput()
			if err != nil || string(out) != "one\ntwo\nthree\n" {
				t.Fatalf("docs/ring.md's %s reader: %v %q", lang, err, out)
			}
		})
	}
}
