package shmdir

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/posixshm/shm/internal/kernel"
)

// TestRenameNoReplace: the quarantine rename never replaces what exists
// under the new name, and moves the file when nothing does.
// Kills: os.Rename in renameNoReplace (the target is replaced), a wrong
// system call number or flag (EEXIST not returned, or the move fails).
func TestRenameNoReplace(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	os.WriteFile(a, []byte("a"), 0o600)
	os.WriteFile(b, []byte("b"), 0o600)
	if err := renameNoReplace(a, b); !errors.Is(err, syscall.EEXIST) {
		t.Fatalf("rename over an existing file = %v, want EEXIST", err)
	}
	if got, _ := os.ReadFile(b); string(got) != "b" {
		t.Fatalf("the existing file was replaced: it holds %q", got)
	}
	if err := renameat2(a, b, kernel.RENAME_NOREPLACE); errors.Is(err, syscall.ENOSYS) {
		t.Logf("no renameat2 here: the lstat fallback was tested")
	}
	c := filepath.Join(dir, "c")
	if err := renameNoReplace(a, c); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(c); err != nil || string(got) != "a" {
		t.Fatalf("after the rename: %q, %v", got, err)
	}
	if _, err := os.Stat(a); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the old name is still there: %v", err)
	}
}
