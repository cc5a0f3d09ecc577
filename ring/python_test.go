//go:build linux && cgo

package ring_test

import (
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// pyStream moves count messages of the stream seed between this process
// and testdata/peer.py run by py in mode ("read-zc" reads what Go writes,
// "write-zc" writes what Go reads), through an 8 KiB ring (many wraps),
// every byte checked by the reader, then the end of stream. env is added
// to the peer's environment, dir is its working directory ("" for ring/).
func pyStream(t *testing.T, py, mode, dir string, env []string) {
	t.Helper()
	const count, seed = 3000, 13
	script, _ := filepath.Abs("testdata/peer.py")
	r := newRing(t, 8192)
	ctx := within(t, 60*time.Second)
	cmd := exec.Command(py, script, mode, r.Name(), strconv.Itoa(count), strconv.Itoa(seed))
	cmd.Dir, cmd.Env = dir, append(cleanEnv(), env...)
	if mode == "read-zc" {
		w, _ := r.Writer()
		p, _ := startPeer(t, cmd, false)
		if err := writeStream(ctx, w, r.MaxMessage(), count, seed); err != nil {
			t.Fatalf("%v\nPython: %s", err, p.stderr)
		}
		w.Close()
		if out, err := p.wait(); err != nil || !strings.HasPrefix(out, "ok") {
			t.Fatalf("Python %s: %v %q\n%s", mode, err, out, p.stderr)
		}
		return
	}
	rd, _ := r.Reader()
	p, _ := startPeer(t, cmd, false)
	if err := readStream(ctx, rd, r.MaxMessage(), count, seed); err != nil {
		t.Fatalf("%v\nPython: %s", err, p.stderr)
	}
	if _, err := rd.Receive(ctx, nil); err != io.EOF {
		t.Fatalf("after the stream: %v, want io.EOF", err)
	}
	if out, err := p.wait(); err != nil || !strings.HasPrefix(out, "ok") {
		t.Fatalf("Python %s: %v %q\n%s", mode, err, out, p.stderr)
	}
}

// TestPythonZeroCopy moves 3000 messages of random sizes 0..MaxMessage
// through an 8 KiB ring between Go and Python's zero-copy calls: Python's
// next() views (read through bytes() and memoryview.cast("Q"), the buffer
// protocol numpy.frombuffer uses, and checked to raise ValueError once
// released) against Go's Send, and Python's reserve()/commit(m), reserving
// up to 16 bytes more than it commits, against Go's Receive.
//
// Kills (watched): next()'s view 8 bytes early (off instead of off+8:
// "message 1: wrong content"); commit(m) writing the reserved length
// instead of m (Go: wrong length); commit's head advanced by the reserved
// size instead of m's (Go: ErrCorrupt or wrong content); a released
// view left readable.
func TestPythonZeroCopy(t *testing.T) {
	py, _ := python(t)
	t.Run("Go-to-Python", func(t *testing.T) { pyStream(t, py, "read-zc", "", nil) })
	t.Run("Python-to-Go", func(t *testing.T) { pyStream(t, py, "write-zc", "", nil) })
}

// pyLifetimeReader is run by TestPythonViewLifetime against a Go writer
// that sent "first---", "m0".."m3" and "last": it checks, through a
// mapping of its own of the ring's header, when the tail moves.
const pyLifetimeReader = `import mmap, os, pickle, struct, sys
sys.path.insert(0, "python")
import shmring

name = sys.argv[1]
rs, _, d = shmring.layout(1, 1)
fd = os.open("/dev/shm/" + name.lstrip("/"), os.O_RDONLY)
raw = mmap.mmap(fd, d, mmap.MAP_SHARED, mmap.PROT_READ)  # the header and slots, seen independently
tail = lambda: struct.unpack_from("<Q", raw, rs + 128)[0]  # reader slot 0's tail[0]


def fails(exc, f, what):
    try:
        f()
    except exc:
        return
    sys.exit("%s: no %s" % (what, exc.__name__))


r = shmring.Ring.open(name).reader()
with r.next(timeout=5) as v:
    if bytes(v) != b"first---" or tail() != 0:
        sys.exit("first: %r, tail %d" % (bytes(v), tail()))
if tail() != 16:
    sys.exit("tail %d after the with block, want 16" % tail())
fails(ValueError, lambda: bytes(v), "bytes(view) after release")
fails(ValueError, lambda: v[0], "view[0] after release")
fails(ValueError, lambda: v.cast("B"), "view.cast after release")
makers = [("a slice", lambda v: v[1:2]), ("a cast", lambda v: v.cast("B")),
          ("an export (as numpy.frombuffer holds)", lambda v: pickle.PickleBuffer(v)),
          ("a memoryview of it", lambda v: memoryview(v))]
for i, (what, make) in enumerate(makers):
    m = r.next(timeout=5)
    keep, t0 = make(m.view), tail()
    fails(BufferError, m.release, "release with %s alive" % what)
    if tail() != t0:
        sys.exit("the tail moved from %d to %d with %s alive" % (t0, tail(), what))
    if r.next() is not m or bytes(m.view) != b"m%d" % i or bytes(keep)[:1] not in (b"m", b"%d" % i):
        sys.exit("after the refused release with %s alive: not the same message" % what)
    del keep
    m.release()
    if tail() != t0 + 16:
        sys.exit("the tail at %d after the release, want %d" % (tail(), t0 + 16))
    fails(ValueError, lambda: bytes(m.view), "the view after release (%s)" % what)
m = r.next(timeout=5)
r.close()  # the message stays for the next reader; its view is released
fails(ValueError, lambda: bytes(m.view), "the view after close")
fails(ValueError, m.release, "release after close")
print("ok", tail(), flush=True)
`

// pyLifetimeWriter is run by TestPythonViewLifetime against a Go reader.
const pyLifetimeWriter = `import mmap, os, struct, sys
sys.path.insert(0, "python")
import shmring

name = sys.argv[1]
_, _, d = shmring.layout(1, 1)
fd = os.open("/dev/shm/" + name.lstrip("/"), os.O_RDONLY)
raw = mmap.mmap(fd, d, mmap.MAP_SHARED, mmap.PROT_READ)
head = lambda: struct.unpack_from("<Q", raw, 512 + 64)[0]  # writer slot 0's head


def fails(exc, f, what):
    try:
        f()
    except exc:
        return
    sys.exit("%s: no %s" % (what, exc.__name__))


r = shmring.Ring.open(name).writer()
with r.reserve(5) as b:
    b[:] = b"one.."
    if head() != 0:
        sys.exit("head moved before the commit")
fails(ValueError, lambda: b.__setitem__(0, 1), "the view after commit")
res = r.reserve(10)
res.view[:3] = b"two"
res.commit(3)
fails(ValueError, res.commit, "commit again")
try:
    with r.reserve(4) as b:
        b[:] = b"lost"
        raise KeyError("the block fails")
except KeyError:
    pass
try:
    with r.reserve(4) as b:
        b[:] = b"kept"
        keep = b[1:]
        raise KeyError("the block fails, and a slice outlives it")
except BufferError:
    pass
except KeyError:
    sys.exit("a slice outliving a failed with block: no BufferError")
fails(ValueError, lambda: r.send(b"x"), "send while the failed block's reservation is pending")
del keep
r.abort()
res = r.reserve(5)
res.view[:] = b"three"
keep, h = res.view[1:], head()
fails(BufferError, res.commit, "commit with a slice alive")
if head() != h:
    sys.exit("head moved with a slice of the reservation alive")
fails(ValueError, lambda: r.send(b"x"), "send while a reservation is pending")
del keep
res.commit()
res = r.reserve(4)
fails(ValueError, lambda: res.commit(5), "commit beyond the reservation")
res.view[:] = b"four"
res.commit()
r.close()
print("ok", flush=True)
`

// TestPythonViewLifetime: Python's next() view is valid until release and
// raises ValueError after it (and after close); the tail moves only after
// the view is released, and not at all while a slice, a cast, an export
// (what numpy.frombuffer holds) or a memoryview of it lives (BufferError,
// the same message held); likewise reserve()'s view: commit publishes
// after releasing it, refuses while a slice of it lives, and a with block
// left by an exception sends nothing (and, if a slice of the view
// outlives it, raises BufferError and keeps the reservation pending until
// abort). Go checks what arrived.
//
// Kills (watched): Message.release moving the tail before releasing the
// views ("the tail moved from 24 to 40 with a slice alive"); the private
// slice not released ("release with a slice alive: no BufferError");
// the view never released ("bytes(view) after release: no ValueError");
// a with block's exception committing the reservation (Go receives
// "lost"); abort not releasing the views ("a slice outliving a failed
// with block: no BufferError").
func TestPythonViewLifetime(t *testing.T) {
	py, _ := python(t)
	t.Run("reader", func(t *testing.T) {
		r := newRing(t, 4096)
		w, _ := r.Writer()
		ctx := within(t, 30*time.Second)
		for _, m := range []string{"first---", "m0", "m1", "m2", "m3", "last"} {
			if err := w.Send(ctx, []byte(m)); err != nil {
				t.Fatal(err)
			}
		}
		out, err := exec.CommandContext(ctx, py, "-c", pyLifetimeReader, r.Name()).CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != "ok 80" {
			t.Fatalf("Python: %v\n%s", err, out)
		}
		rd, _ := openRing(t, r).Reader()
		if m, err := rd.Next(ctx); err != nil || string(m) != "last" {
			t.Fatalf("after the Python reader closed holding \"last\": %q %v", m, err)
		}
	})
	t.Run("writer", func(t *testing.T) {
		r := newRing(t, 4096)
		rd, _ := r.Reader()
		ctx := within(t, 30*time.Second)
		out, err := exec.CommandContext(ctx, py, "-c", pyLifetimeWriter, r.Name()).CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != "ok" {
			t.Fatalf("Python: %v\n%s", err, out)
		}
		var got []string
		buf := make([]byte, 64)
		for {
			n, err := rd.Receive(ctx, buf)
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("after %q: %v", got, err)
			}
			got = append(got, string(buf[:n]))
		}
		if want := []string{"one..", "two", "three", "four"}; !slices.Equal(got, want) {
			t.Fatalf("Go received %q, want %q", got, want)
		}
	})
}

// TestPythonRefusesOtherMachines: where the module's memory ordering is
// not known correct (a machine other than x86-64, faked through
// platform.machine; a 32-bit Python, faked through sys.maxsize), create
// and open raise OSError(ENOSYS) naming the reason, and create makes no
// object.
//
// Kills (watched): create or open without the check (a ring made and
// opened on "aarch64": "create: no OSError").
func TestPythonRefusesOtherMachines(t *testing.T) {
	py, _ := python(t)
	r := newRing(t, 4096)
	prog := `import errno, os, platform, sys
sys.path.insert(0, "python")
fake, existing, fresh = sys.argv[1:4]
if fake == "machine":
    platform.machine = lambda: "aarch64"
else:
    sys.maxsize = (1 << 31) - 1
import shmring
for what, f in (("create", lambda: shmring.Ring.create(fresh, 4096)), ("open", lambda: shmring.Ring.open(existing))):
    try:
        f()
        sys.exit(what + ": no OSError")
    except OSError as e:
        if e.errno != errno.ENOSYS or "x86-64" not in str(e):
            sys.exit("%s: %r" % (what, e))
        print(e)
if os.path.exists("/dev/shm/" + fresh.lstrip("/")):
    shmring._shm_unlink(fresh)
    sys.exit("create made an object")
`
	for _, fake := range []string{"machine", "maxsize"} {
		out, err := exec.Command(py, "-c", prog, fake, r.Name(), ringName(t)).CombinedOutput()
		if err != nil {
			t.Fatalf("faking %s: %v\n%s", fake, err, out)
		}
		t.Logf("faking %s: %s", fake, out)
	}
}

// TestPythonInstalled installs ring/python with pip into a fresh venv,
// offline (--no-index, no pip configuration: only the stdlib build
// backend beside the module can build it), then the sdist that backend
// builds the same way, and runs the zero-copy
// exchange both ways through the installed module, from a directory
// outside the source tree (peer.py refuses to import ring/python's copy).
// pip must leave ring/python as it found it.
//
// Kills (watched): a setuptools build backend ("Could not find a version
// that satisfies the requirement setuptools>=40.8.0"); the wheel without
// shmring.py ("No module named 'shmring'"); pyproject.toml without
// backend-path (pip cannot import the backend); the sdist without
// shmring.py (its pip install fails).
func TestPythonInstalled(t *testing.T) {
	py, _ := python(t)
	if out, err := exec.Command(py, "-c", "import venv, ensurepip").CombinedOutput(); err != nil {
		t.Skipf("python3 cannot make a venv with pip (Debian: apt-get install python3-venv): %v %s", err, out)
	}
	dir := t.TempDir()
	venv := filepath.Join(dir, "venv")
	if out, err := exec.Command(py, "-m", "venv", venv).CombinedOutput(); err != nil {
		t.Fatalf("python3 -m venv: %v\n%s", err, out)
	}
	vpy := filepath.Join(venv, "bin", "python")
	env := []string{"PIP_CONFIG_FILE=" + os.DevNull, "PIP_NO_CACHE_DIR=1", "PIP_DISABLE_PIP_VERSION_CHECK=1",
		"PYTHONDONTWRITEBYTECODE=1", "PYTHONNOUSERSITE=1"}
	before := dirList(t, "python")
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	pip := exec.CommandContext(ctx, vpy, "-m", "pip", "install", "--no-index", "./python")
	pip.Env = append(cleanEnv(), env...)
	if out, err := pip.CombinedOutput(); err != nil {
		t.Fatalf("pip install --no-index ./python: %v\n%s", err, out)
	}
	if after := dirList(t, "python"); !slices.Equal(before, after) {
		t.Fatalf("pip changed ring/python: %q, then %q", before, after)
	}
	where := exec.Command(vpy, "-c", "import shmring; print(shmring.__file__)")
	where.Dir, where.Env = dir, append(cleanEnv(), env...)
	out, err := where.CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), venv) {
		t.Fatalf("import shmring from %s: %v %q, want the venv's", dir, err, out)
	}
	t.Logf("installed: %s", strings.TrimSpace(string(out)))
	// The sdist the backend builds installs the same way.
	build := exec.CommandContext(ctx, vpy, "-c", "import sys, shmring_build; print(shmring_build.build_sdist(sys.argv[1]))", dir)
	build.Dir, build.Env = "python", append(cleanEnv(), env...)
	sdist, err := build.Output()
	if err != nil {
		t.Fatalf("build_sdist: %v", err)
	}
	pip = exec.CommandContext(ctx, vpy, "-m", "pip", "install", "--no-index", "--force-reinstall", filepath.Join(dir, strings.TrimSpace(string(sdist))))
	pip.Env = append(cleanEnv(), env...)
	if out, err := pip.CombinedOutput(); err != nil {
		t.Fatalf("pip install --no-index of the sdist %s: %v\n%s", sdist, err, out)
	}
	if after := dirList(t, "python"); !slices.Equal(before, after) {
		t.Fatalf("building the sdist changed ring/python: %q, then %q", before, after)
	}
	env = append(env, "SHMRING_INSTALLED=1")
	t.Run("Go-to-Python", func(t *testing.T) { pyStream(t, vpy, "read-zc", dir, env) })
	t.Run("Python-to-Go", func(t *testing.T) { pyStream(t, vpy, "write-zc", dir, env) })
}

// cleanEnv is this process's environment without pip's and Python's
// settings (PIP_FIND_LINKS, PYTHONPATH, ...), which would let pip find
// packages elsewhere or Python import another shmring.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PIP_") && !strings.HasPrefix(kv, "PYTHON") {
			env = append(env, kv)
		}
	}
	return env
}

// dirList is the names in dir, sorted.
func dirList(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

// pyForkHolding claims the reader, holds the first message's view with an
// export of it alive (as a numpy array would be), and forks; the child
// reports what it sees through a pipe and lives on idle.
const pyForkHolding = `import os, pickle, signal, sys
sys.path.insert(0, "python")
import shmring

if os.environ.get("SHMRING_TEST_NO_KCMP"):
    shmring._kcmp_usable = False  # as under Docker's default seccomp profile
name = sys.argv[1]
r = shmring.Ring.open(name).reader()
m = r.next(timeout=5)
exp = pickle.PickleBuffer(m.view)
rd, wr = os.pipe()
sys.stdout.flush()
pid = os.fork()
if pid == 0:
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 1)
    os.dup2(null, 2)
    rep = []
    try:
        m.release()
        rep.append("release:OK")
    except Exception as e:
        rep.append("release:" + type(e).__name__)
    rep.append("export:" + ("zeros" if bytes(exp) == bytes(len(m)) else repr(bytes(exp))))
    base = name.lstrip("/")
    fds = 0
    for f in os.listdir("/proc/self/fd"):
        try:
            fds += base in os.readlink("/proc/self/fd/" + f)
        except OSError:
            pass
    maps = sum(base in l for l in open("/proc/self/maps"))
    rep.append("fds:%d maps:%d" % (fds, maps))
    os.write(wr, " ".join(rep).encode())
    os.close(wr)
    while True:
        signal.pause()
os.close(wr)
print("ready", pid, os.read(rd, 256).decode(), flush=True)
while True:
    signal.pause()
`

// TestPythonForkHoldingView: a Python reader forks while it holds a
// message whose view has an export alive (which pins the mapping, so the
// child cannot unmap it): the child's release is ChildProcessError, the
// export reads zeros there (anonymous memory in the ring's place), and
// the child keeps no descriptor or mapping of the ring; so once the
// parent is killed, Go claims the reader while the child lives, and
// receives the message the parent never released.
//
// It runs with kcmp and without it (as under Docker's default seccomp
// profile, which refuses kcmp: the child then finds mmap's duplicate by
// the number noted when the ring was mapped).
//
// Kills (watched): the child keeping mmap's duplicate descriptor
// (_replace_sharers dropped: "fds:1", and Go's claim is ErrBusy); the
// noted number not used ("no-kcmp": "fds:1", as CI's container saw); the
// anonymous remap dropped (the export reads "hello", "maps:1").
func TestPythonForkHoldingView(t *testing.T) {
	for _, kcmp := range []bool{true, false} {
		t.Run(map[bool]string{true: "kcmp", false: "no-kcmp"}[kcmp], func(t *testing.T) { testPythonForkHoldingView(t, kcmp) })
	}
}

func testPythonForkHoldingView(t *testing.T, kcmp bool) {
	py, _ := python(t)
	r := newRing(t, 4096)
	w, _ := r.Writer()
	ctx := within(t, 30*time.Second)
	if err := w.Send(ctx, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(py, "-c", pyForkHolding, r.Name())
	if !kcmp {
		cmd.Env = append(os.Environ(), "SHMRING_TEST_NO_KCMP=1")
	}
	p, line := startPeer(t, cmd, true)
	f := strings.Fields(line)
	if len(f) < 2 {
		t.Fatalf("parent said %q", line)
	}
	child, _ := strconv.Atoi(f[1])
	t.Cleanup(func() { syscall.Kill(child, syscall.SIGKILL) })
	if got := strings.Join(f[2:], " "); got != "release:ChildProcessError export:zeros fds:0 maps:0" {
		t.Errorf("the child (pid %d) reports %q, want release:ChildProcessError export:zeros fds:0 maps:0", child, got)
	}
	p.kill9(t)
	if syscall.Kill(child, 0) != nil {
		t.Fatal("the child died with its parent: the test tests nothing")
	}
	rd, err := openRing(t, r).Reader()
	if err != nil {
		t.Fatalf("claim of the reader after the parent's death, its child alive: %v", err)
	}
	if m, err := rd.Next(ctx); err != nil || string(m) != "hello" {
		t.Fatalf("the message the dead reader held: %q %v", m, err)
	}
}

// pySendItems sends bytes-like objects whose items are wider than a byte
// (array.array("Q"), a 2-D memoryview cast): send takes their bytes.
const pySendItems = `import array, sys
sys.path.insert(0, "python")
import shmring

r = shmring.Ring.open(sys.argv[1])
r.writer()
r.send(array.array("Q", [0x0807060504030201, 0x100F0E0D0C0B0A09]))
r.send(memoryview(bytes(range(6))).cast("B", (2, 3)))
try:
    r.send(array.array("Q", [0] * (r.max_message // 8 + 1)))
    sys.exit("a message of max_message+8 bytes: no TooLargeError")
except shmring.TooLargeError:
    pass
r.close()
print("ok")
`

// TestPythonSendItems: Python's send of a bytes-like object whose items
// are wider than a byte sends its bytes, and refuses one of more than
// max_message bytes with TooLargeError.
//
// Kills (watched): send sizing the message by len() (items, not bytes):
// "IndexError: mmap slice assignment is wrong size".
func TestPythonSendItems(t *testing.T) {
	py, _ := python(t)
	r := newRing(t, 4096)
	rd, _ := r.Reader()
	ctx := within(t, 30*time.Second)
	out, err := exec.CommandContext(ctx, py, "-c", pySendItems, r.Name()).CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "ok" {
		t.Fatalf("Python: %v\n%s", err, out)
	}
	buf := make([]byte, 64)
	for _, want := range []string{"\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f\x10", "\x00\x01\x02\x03\x04\x05"} {
		n, err := rd.Receive(ctx, buf)
		if err != nil || string(buf[:n]) != want {
			t.Fatalf("received %q %v, want %q", buf[:n], err, want)
		}
	}
	if _, err := rd.Receive(ctx, buf); err != io.EOF {
		t.Fatalf("after the messages: %v, want io.EOF", err)
	}
}

// pyViewObj reaches the ring's memory through view.obj (what a library
// may do to find a buffer's exporter) and keeps a view of it.
const pyViewObj = `import sys
sys.path.insert(0, "python")
import shmring

r = shmring.Ring.open(sys.argv[1])
r.reader()
m = r.next(timeout=10)
escaped = memoryview(m.view.obj)
try:
    m.release()
    sys.exit("release with a view of view.obj alive: no BufferError (it reads %r after)" % bytes(escaped[:4]))
except BufferError:
    pass
escaped.release()
del escaped
m.release()
r.close()
w = shmring.Ring.open(sys.argv[2])
w.writer()
res = w.reserve(4, timeout=10)
res.view[:] = b"good"
escaped = memoryview(res.view.obj)
try:
    res.commit()
    escaped[:] = b"BAD!"
    sys.exit("commit with a view of view.obj alive: no BufferError")
except BufferError:
    pass
escaped.release()
del escaped
res.commit()
w.close()
print("ok")
`

// TestPythonViewObj: a view made from a Message's or Reservation's
// view.obj holds the message as a slice of the view does: release and
// commit raise BufferError while it lives.
//
// Kills (watched): the views' innermost buffer a slice of the whole
// mapping (memoryview(view.obj) shared the mapping's buffer, unseen):
// "release with a view of view.obj alive: no BufferError (it reads
// b'aaaa' after)".
func TestPythonViewObj(t *testing.T) {
	py, _ := python(t)
	r := newRing(t, 128)
	w, _ := r.Writer()
	ctx := within(t, 30*time.Second)
	if err := w.Send(ctx, []byte("aaaa")); err != nil {
		t.Fatal(err)
	}
	r2 := newRing(t, 4096)
	rd, _ := r2.Reader()
	out, err := exec.CommandContext(ctx, py, "-c", pyViewObj, r.Name(), r2.Name()).CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "ok" {
		t.Fatalf("Python: %v\n%s", err, out)
	}
	buf := make([]byte, 64)
	if n, err := rd.Receive(ctx, buf); err != nil || string(buf[:n]) != "good" {
		t.Fatalf("received %q %v, want \"good\"", buf[:n], err)
	}
}
