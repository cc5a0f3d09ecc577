package shm_test

// The documentation's snippets (README.md and docs/*.md), run as printed,
// against Go, and its claims checked against the code.

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/posixshm/shm"
)

// readmeSnippet returns the ```python block of docs/coordination.md (where
// the README's Python snippets moved) whose first line is "# FILE ...",
// written to a file of that name, so that the tests run exactly what a
// reader copies.
func readmeSnippet(t *testing.T, file string) string {
	t.Helper()
	readme, err := os.ReadFile("docs/coordination.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, block := range strings.Split(string(readme), "```python\n")[1:] {
		code, _, ok := strings.Cut(block, "```")
		if ok && strings.HasPrefix(code, "# "+file+" ") {
			path := filepath.Join(t.TempDir(), file)
			if err := os.WriteFile(path, []byte(code), 0o600); err != nil {
				t.Fatal(err)
			}
			return path
		}
	}
	t.Fatalf("docs/coordination.md has no python block starting with %q", "# "+file)
	return ""
}

// TestReadmePythonSemaphore runs the docs' consumer.py: Go writes a line
// and posts NAME; Python waits for it (ctypes sem_open/sem_wait), prints the
// line from the object and posts NAME-done, which Go waits for.
// Kills: a snippet that opens the semaphore wrongly (SEM_FAILED not
// checked, wrong argument types), reads before the post, or unlinks Go's
// object through the resource tracker.
func TestReadmePythonSemaphore(t *testing.T) {
	py := pythonSem(t) // skips where Python's glibc semaphores cannot meet ours (musl, 386)
	script := readmeSnippet(t, "consumer.py")
	s := create(t, 4096)
	copy(s.Bytes(), "hello from Go\n")
	ready, err := shm.CreateSemaphore(s.Name(), 0)
	if err != nil {
		t.Fatal(err)
	}
	cleanupWith(t, s.Name(), shm.UnlinkSemaphore)
	defer ready.Close()
	done, err := shm.CreateSemaphore(s.Name()+"-done", 0)
	if err != nil {
		t.Fatal(err)
	}
	cleanupWith(t, s.Name()+"-done", shm.UnlinkSemaphore)
	defer done.Close()

	var stdout, stderr bytes.Buffer
	cmd := exec.Command(py, script, s.Name())
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if err := ready.Post(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := done.Wait(ctx); err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("waiting for consumer.py: %v\n%s", err, &stderr)
	}
	if err := cmd.Wait(); err != nil || stdout.String() != "hello from Go\n" {
		t.Fatalf("consumer.py: %v, printed %q\n%s", err, &stdout, &stderr)
	}
	if !exists(s.Name()) {
		t.Fatal("consumer.py unlinked Go's object")
	}
}

// TestReadmePythonFutex runs the docs' waiter.py: it sleeps in
// FUTEX_WAIT on the word at offset 0 until Go stores and wakes it, prints
// the word, then stores 1 at offset 4 and wakes Go's Wait there.
// Kills: a private futex in the snippet (FUTEX_PRIVATE_FLAG: Go's Wake
// never reaches it and the test times out), waking the wrong word, or a
// snippet that does not wait (checked: the process is asleep in a futex
// before Go stores).
func TestReadmePythonFutex(t *testing.T) {
	py := python(t)
	script := readmeSnippet(t, "waiter.py")
	s := create(t, 4096)
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(py, script, s.Name())
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
	}()
	// Wait until Python sleeps in the kernel on a futex (polling the
	// process's state, not sleeping for a guess).
	for deadline := time.Now().Add(30 * time.Second); !inFutexWait(cmd.Process.Pid); {
		if time.Now().After(deadline) {
			t.Fatalf("waiter.py never slept in a futex\n%s", &stderr)
		}
		time.Sleep(5 * time.Millisecond)
	}
	w, err := s.Uint32(0)
	if err != nil {
		t.Fatal(err)
	}
	w.Store(42)
	if _, err := s.Wake(0, 1); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ack, _ := s.Uint32(4)
	for ack.Load() == 0 {
		if err := s.Wait(ctx, 4, 0); err != nil {
			t.Fatalf("waiting for waiter.py's answer: %v\n%s", err, &stderr)
		}
	}
	if err := cmd.Wait(); err != nil || stdout.String() != "42\n" {
		t.Fatalf("waiter.py: %v, printed %q\n%s", err, &stdout, &stderr)
	}
}

// inFutexWait reports whether the process's main thread sleeps in a futex.
func inFutexWait(pid int) bool {
	wchan, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "wchan"))
	return err == nil && strings.Contains(string(wchan), "futex")
}

// TestLocalCloneRecipe runs the README's "go mod edit" line for a local
// clone in a fresh module beside a copy of the path, then builds a program
// that uses the package, with the module proxy off. Kills: a replace
// that points elsewhere than the clone (checked: "../shmx" fails), a
// recipe that needs the network, or a package that grew a dependency.
func TestLocalCloneRecipe(t *testing.T) {
	gocmd, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("no go command in PATH: %v", err)
	}
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	var line string
	for l := range strings.Lines(string(readme)) {
		if strings.HasPrefix(l, "go mod edit -require=github.com/posixshm/shm") {
			line = strings.TrimSpace(l)
		}
	}
	if line == "" {
		t.Fatal("README.md has no go mod edit line for a local clone")
	}
	root, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.Symlink(root, filepath.Join(dir, "shm")); err != nil {
		t.Fatal(err)
	}
	app := filepath.Join(dir, "myapp")
	os.Mkdir(app, 0o755)
	main := "package main\n\nimport \"github.com/posixshm/shm\"\n\nfunc main() { _ = shm.Dir }\n"
	if err := os.WriteFile(filepath.Join(app, "main.go"), []byte(main), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, argv := range [][]string{
		{gocmd, "mod", "init", "example.com/myapp"},
		append([]string{gocmd}, strings.Fields(line)[1:]...),
		{gocmd, "build", "-o", os.DevNull, "."},
	} {
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Dir = app
		cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOPROXY=off", "GOWORK=off")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(argv, " "), err, out)
		}
	}
}

// TestReadmeOpsMatchCode: the list of the Op a refused argument carries
// (docs/semantics.md, moved there from the README) must be what the code
// returns (doc.go's rule): SyncRange says "msync", Chmod "fchmod", Chown
// "fchown", Unlink of a name with a NUL "shm_unlink", OpenSemaphoreWith
// "opensemaphorewith". And neither README.md nor any page of docs/ may
// promise that Post makes no system call without waiters (glibc's count
// outlives a killed waiter; see Post).
//
// Kills: docs naming an Op the code does not return (`syncrange`,
// `opensemaphorefile`) or leaving out one it does; README or docs
// promising that Post makes no system call without waiters.
func TestReadmeOpsMatchCode(t *testing.T) {
	b, err := os.ReadFile("docs/semantics.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := strings.Join(strings.Fields(string(b)), " ")
	pages, err := filepath.Glob("docs/*.md")
	if err != nil || len(pages) == 0 {
		t.Fatalf("no docs/*.md: %v", err)
	}
	var all []string
	for _, page := range append([]string{"README.md"}, pages...) {
		b, err := os.ReadFile(page)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, strings.Fields(string(b))...)
	}
	everything := strings.Join(all, " ")
	s := create(t, 4096)
	_, semErr := shm.OpenSemaphoreWith(uniqueName(t), 0, 0o600, 0)
	for _, c := range []struct {
		what string
		err  error
	}{
		{"SyncRange", s.SyncRange(-1, 1, syscall.MS_SYNC)},
		{"Chmod", s.Chmod(fs.ModeDir)},
		{"Chown", s.Chown(-2, 0)},
		{"Unlink", shm.Unlink("nul\x00")},
		{"OpenSemaphoreWith", semErr},
	} {
		var pe *fs.PathError
		if !errors.As(c.err, &pe) || !errors.Is(c.err, syscall.EINVAL) {
			t.Fatalf("%s: %v", c.what, c.err)
		}
		if !strings.Contains(readme, "`"+pe.Op+"`") {
			t.Errorf("%s refuses an argument with Op %q, which docs/semantics.md's list of Ops does not name", c.what, pe.Op)
		}
	}
	for _, stale := range []string{"`opensemaphorefile`", "`syncrange`", "no system call unless someone waits", "no system call without waiters"} {
		if strings.Contains(everything, stale) {
			t.Errorf("README.md or docs/ still says %s", stale)
		}
	}
}

// TestDocsLinks: every relative link of README.md and docs/*.md names a
// file of the repository and, with a #fragment, a heading of that page
// (GitHub's anchors: lower case, punctuation dropped, spaces as "-"), so
// that the front page's links to the depth, and the pages' links to each
// other, hold as text moves.
//
// Kills: a link to a page or section that was renamed or never made
// (performance.md pointed at "a-ring-between-processes", a heading that
// no longer exists).
func TestDocsLinks(t *testing.T) {
	pages, err := filepath.Glob("docs/*.md")
	if err != nil || len(pages) == 0 {
		t.Fatalf("no docs/*.md: %v", err)
	}
	anchors := func(file string) map[string]bool {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil
		}
		set := map[string]bool{}
		fenced := false
		for l := range strings.Lines(string(b)) {
			if strings.HasPrefix(l, "```") {
				fenced = !fenced
			}
			if fenced || !strings.HasPrefix(l, "#") {
				continue
			}
			h := strings.ToLower(strings.TrimSpace(strings.TrimLeft(l, "#")))
			var a strings.Builder
			for _, r := range h {
				switch {
				case r == ' ':
					a.WriteRune('-')
				case r == '-' || r == '_' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9':
					a.WriteRune(r)
				}
			}
			set[a.String()] = true
		}
		return set
	}
	n := 0
	for _, page := range append([]string{"README.md"}, pages...) {
		b, err := os.ReadFile(page)
		if err != nil {
			t.Fatal(err)
		}
		for _, part := range strings.Split(string(b), "](")[1:] {
			target, _, ok := strings.Cut(part, ")")
			if !ok || strings.Contains(target, "://") || strings.ContainsAny(target, " `") {
				continue
			}
			n++
			file, frag, _ := strings.Cut(target, "#")
			path := page
			if file != "" {
				path = filepath.Join(filepath.Dir(page), file)
			}
			if _, err := os.Stat(path); err != nil {
				t.Errorf("%s links to %s: %v", page, target, err)
				continue
			}
			if frag != "" && !anchors(path)[frag] {
				t.Errorf("%s links to %s: %s has no heading with that anchor", page, target, path)
			}
		}
	}
	if n < 20 {
		t.Fatalf("found %d relative links, want the front page's and the pages'", n)
	}
}
