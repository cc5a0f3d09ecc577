//go:build linux && cgo

package ring_test

import (
	"bytes"
	"context"
	"fmt"
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
	os.WriteFile(pysrc, []byte(readmeBlock(t, "python", "# ring_reader.py")), 0o644)
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
			cmd := exec.CommandContext(ctx, argv[0], append(argv[1:], r.Name())...)
			cmd.Env = append(cleanEnv(), "PYTHONPATH="+pythonDir(t), "PYTHONDONTWRITEBYTECODE=1") // as pip install ./ring/python would
			out, err := cmd.CombinedOutput()
			if err != nil || string(out) != "one\ntwo\nthree\n" {
				t.Fatalf("docs/ring.md's %s reader: %v %q", lang, err, out)
			}
		})
	}
}

// pythonDir is ring/python's absolute path.
func pythonDir(t *testing.T) string {
	d, err := filepath.Abs("python")
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// numpyStub stands in for numpy where it is not installed: frombuffer
// holds an export of the buffer while the array lives, as numpy's does,
// and mean, reshape and uint8 are what docs/ring.md's frames.py uses.
const numpyStub = `import pickle
uint8 = "B"


class ndarray:
    def __init__(self, buf):
        self._pb = pickle.PickleBuffer(buf)  # an export of buf, as numpy holds
        self._mv = memoryview(self._pb)

    def reshape(self, *shape):
        n = 1
        for d in shape:
            n *= d
        if n != len(self._mv):
            raise ValueError("cannot reshape %d bytes into %r" % (len(self._mv), shape))
        return self

    def mean(self):
        return sum(self._mv) / len(self._mv)


def frombuffer(buf, dtype):
    return ndarray(buf)
`

// TestReadmePythonFrames runs docs/ring.md's frames.py, as printed,
// against a Go writer sending three 640x480 frames of bytes 1, 2 and 3
// and closing: it prints 1.0, 2.0, 3.0 and exits 0. With numpy where it is
// installed, else with a stub that, like numpy, holds an export of the
// view while the array lives.
//
// Kills (watched): the example without "del frame" (BufferError on
// leaving the block); next()'s with block not releasing the message (the
// same frame again: 1.0 three times, then a hang to the deadline).
func TestReadmePythonFrames(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 is not installed")
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "frames.py")
	os.WriteFile(src, []byte(readmeBlock(t, "python", "# frames.py")), 0o644)
	path := pythonDir(t)
	if exec.Command(py, "-c", "import numpy").Run() != nil {
		stub := filepath.Join(dir, "stub")
		os.Mkdir(stub, 0o755)
		os.WriteFile(filepath.Join(stub, "numpy.py"), []byte(numpyStub), 0o644)
		path += ":" + stub
		t.Log("numpy is not installed: a stub that holds an export as numpy does stands in")
	}
	r := newRing(t, 640<<10) // 640x480 frames fit (max message 320 KiB), and the object fits a 1 MiB /dev/shm
	w, _ := r.Writer()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, py, src, r.Name())
	cmd.Env = append(cleanEnv(), "PYTHONPATH="+path, "PYTHONDONTWRITEBYTECODE=1")
	out := make(chan []byte, 1)
	go func() { b, err := cmd.CombinedOutput(); out <- append(b, []byte(fmt.Sprint(err))...) }()
	for v := byte(1); v <= 3; v++ {
		frame := bytes.Repeat([]byte{v}, 640*480)
		if err := w.Send(ctx, frame); err != nil {
			t.Fatal(err)
		}
	}
	w.Close()
	if got := string(<-out); got != "1.0\n2.0\n3.0\n<nil>" {
		if len(got) > 400 {
			got = got[:200] + " ... " + got[len(got)-200:]
		}
		t.Fatalf("docs/ring.md's frames.py printed %q, want 1.0, 2.0, 3.0 and exit 0", got)
	}
}
