package shm_test

// Tests of the lifecycle calls: Stat, Chmod, Chown, List,
// Holders, Truncate and Remap. Each names the mutation it kills.

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/posixshm/shm"
)

// childHoldFd plays "hold-fd": hold a descriptor of the object, no mapping
func childHoldFd(role, name string, in *bufio.Reader) int {
	f, err := os.Open(devPath(name))
	if err != nil {
		return childFail(role, "%v", err)
	}
	defer f.Close()
	fmt.Println("ready")
	waitParent(in)
	return 0
}

// childHoldMap plays "hold-map": map the object, close the descriptor, hold
// the mapping
func childHoldMap(role, name string, in *bufio.Reader) int {
	f, err := os.Open(devPath(name))
	if err != nil {
		return childFail(role, "%v", err)
	}
	m, err := shm.MapFile(f, os.O_RDONLY, 0, 0, nil)
	f.Close()
	if err != nil {
		return childFail(role, "%v", err)
	}
	defer m.Close()
	fmt.Println("ready")
	waitParent(in)
	return 0
}

// childRemap plays "remap": map one page; after the parent grew it to 3,
// Remap and read
func childRemap(role, name string, in *bufio.Reader) int {
	page := os.Getpagesize()
	s, err := shm.Open(name)
	if err != nil {
		return childFail(role, "%v", err)
	}
	defer s.Close()
	if s.Size() != page {
		return childFail(role, "size %d", s.Size())
	}
	fmt.Println("mapped")
	if err := waitParent(in); err != nil {
		return childFail(role, "waiting for parent: %v", err)
	}
	if s.Size() != page {
		return childFail(role, "size %d before Remap", s.Size())
	}
	if err := s.Remap(); err != nil {
		return childFail(role, "Remap: %v", err)
	}
	buf := make([]byte, 5)
	if s.Size() != 3*page {
		return childFail(role, "size %d after Remap", s.Size())
	}
	if _, err := s.ReadAt(buf, int64(2*page)); err != nil || string(buf) != "grown" {
		return childFail(role, "read %q, %v after Remap", buf, err)
	}
	if string(s.Bytes()[:5]) != "first" {
		return childFail(role, "first page %q after Remap", s.Bytes()[:5])
	}
	fmt.Println("ok")
	return 0
}

// childNobody plays "nobody": run as uid 65534 after Chown: open, chmod as
// owner, chown refused
func childNobody(role, name string, in *bufio.Reader) int {
	s, err := shm.Open(name)
	if err != nil {
		return childFail(role, "%v", err)
	}
	defer s.Close()
	if err := s.Chmod(0o640); err != nil {
		return childFail(role, "Chmod as owner: %v", err)
	}
	err = s.Chown(0, -1)
	var pe *fs.PathError
	if !errors.As(err, &pe) || pe.Op != "fchown" || !errors.Is(err, fs.ErrPermission) {
		return childFail(role, "Chown to root as nobody = %v; want fchown: operation not permitted", err)
	}
	fmt.Print(string(s.Bytes()[:6]))
	return 0
}

// childHoldersDenied plays "holders-denied": run as uid 65534: the parent's
// process is root's
func childHoldersDenied(role, name string, in *bufio.Reader) int {
	pids, err := shm.Holders(name)
	var de *shm.DeniedError
	if !errors.Is(err, fs.ErrPermission) || !errors.As(err, &de) || len(de.PIDs) == 0 {
		return childFail(role, "Holders = %v, %v; want an error wrapping fs.ErrPermission", pids, err)
	}
	if !slices.Contains(de.PIDs, os.Getppid()) {
		return childFail(role, "denied pids %v lack the parent %d", de.PIDs, os.Getppid())
	}
	fmt.Print(err)
	return 0
}

// TestStat: Stat and Segment.Stat describe the object as fstat does, never
// create, and refuse what is not an object.
//
// Kills: Name keeping the slash; Mode with the file type bits; shim Stat
// with O_CREAT (a missing name would appear); Segment.Stat after Close
// not ErrClosed; the C stat fields copied into the wrong Stat_t fields
// (Uid/Gid, Ino, Size).
func TestStat(t *testing.T) {
	s := create(t, 8192)
	fi, err := shm.Stat(s.Name())
	if err != nil {
		t.Fatal(err)
	}
	var want syscall.Stat_t
	if err := syscall.Stat(devPath(s.Name()), &want); err != nil {
		t.Fatal(err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	switch {
	case !ok:
		t.Fatalf("Sys() is %T", fi.Sys())
	case fi.Name() != strings.TrimPrefix(s.Name(), "/"):
		t.Errorf("Name() = %q", fi.Name())
	case fi.Size() != 8192 || fi.Mode() != 0o600 || fi.IsDir():
		t.Errorf("Size %d Mode %v IsDir %v", fi.Size(), fi.Mode(), fi.IsDir())
	case time.Since(fi.ModTime()) > time.Minute || time.Since(fi.ModTime()) < 0:
		t.Errorf("ModTime %v", fi.ModTime())
	case st.Uid != want.Uid || st.Gid != want.Gid || st.Ino != want.Ino || st.Dev != want.Dev ||
		st.Size != want.Size || st.Blocks != want.Blocks || st.Nlink != want.Nlink || st.Mtim != want.Mtim:
		t.Errorf("Stat_t %+v, want %+v", *st, want)
	}

	sfi, err := s.Stat()
	if err != nil || sfi.Size() != 8192 || sfi.Name() != fi.Name() || sfi.Sys().(*syscall.Stat_t).Ino != want.Ino {
		t.Fatalf("Segment.Stat = %v, %v", sfi, err)
	}

	missing := uniqueName(t)
	cleanup(t, missing)
	_, err = shm.Stat(missing)
	wantPathErr(t, err, "shm_open", missing, fs.ErrNotExist)
	if exists(missing) {
		t.Fatal("Stat created the object")
	}

	fifo := uniqueName(t)
	if err := syscall.Mkfifo(devPath(fifo), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(devPath(fifo)) })
	_, err = shm.Stat(fifo) // O_NONBLOCK: never waits for a writer
	wantPathErr(t, err, "shm_open", fifo, syscall.ENODEV)

	s.Close()
	if _, err := s.Stat(); !errors.Is(err, fs.ErrClosed) {
		t.Fatalf("Stat after Close = %v", err)
	}
	for name, err := range map[string]error{"Chmod": s.Chmod(0o600), "Chown": s.Chown(-1, -1),
		"Truncate": s.Truncate(4096), "Remap": s.Remap()} {
		if !errors.Is(err, fs.ErrClosed) {
			t.Errorf("%s after Close = %v", name, err)
		}
	}
}

// TestChmodExactUnderUmask: under a umask of 077, Chmod gives exactly the
// mode asked for.
//
// Kills: Chmod that applies the umask (mode &^ umask), or that goes
// through shm_open's create mode.
func TestChmodExactUnderUmask(t *testing.T) {
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	name := uniqueName(t)
	s, err := shm.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o666, 4096, nil)
	if err != nil {
		t.Fatal(err)
	}
	cleanup(t, name)
	defer s.Close()
	if fi, _ := s.Stat(); fi.Mode() != 0o600 {
		t.Fatalf("created 0666 under umask 077: %v", fi.Mode())
	}
	for _, mode := range []fs.FileMode{0o664, 0o444, 0o000, 0o640} {
		if err := s.Chmod(mode); err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(devPath(name))
		if err != nil || fi.Mode().Perm() != mode {
			t.Fatalf("Chmod(%v): the file has %v, %v", mode, fi.Mode(), err)
		}
	}
	err = s.Chmod(fs.ModeSetuid | 0o600)
	wantPathErr(t, err, "fchmod", name, syscall.EINVAL)
	err = s.Chown(-2, 0)
	wantPathErr(t, err, "fchown", name, syscall.EINVAL)
}

// nobodyCmd returns a child of role for name that runs as uid and gid
// 65534, from a copy of the test binary that user can run.
func nobodyCmd(t *testing.T, role, name string) *exec.Cmd {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to run a child as uid 65534")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Skip(err)
	}
	data, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "shmtest") // t.TempDir's parent is private
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	bin := filepath.Join(dir, "shm.test")
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := childCmd(t, role, name)
	cmd.Path, cmd.Dir = bin, dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	return cmd
}

// TestChownNobody: as root, Chown to uid 65534 hands the object over: that
// user can then open it (mode 0600), chmod it as its owner, but not give
// it back to root.
//
// Kills: Chown a no-op or with uid and gid swapped in the shim (the child
// cannot open a root-owned 0600 object); an EPERM not wrapped as
// fs.ErrPermission with Op "fchown".
func TestChownNobody(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to chown")
	}
	s := create(t, 4096)
	copy(s.Bytes(), "hello!")
	if err := s.Chown(65534, 65533); err != nil {
		t.Fatal(err)
	}
	fi, err := shm.Stat(s.Name())
	if err != nil {
		t.Fatal(err)
	}
	if st := fi.Sys().(*syscall.Stat_t); st.Uid != 65534 || st.Gid != 65533 {
		t.Fatalf("owner %d:%d after Chown(65534, 65533)", st.Uid, st.Gid)
	}
	if err := s.Chown(-1, 65534); err != nil { // -1: the owner stays
		t.Fatal(err)
	}
	cmd := nobodyCmd(t, "nobody", s.Name())
	out, err := cmd.Output()
	if err != nil || string(out) != "hello!" {
		t.Fatalf("child as nobody: %v, %q\n%s", err, out, cmd.Stderr)
	}
	if fi, _ := s.Stat(); fi.Mode() != 0o640 || fi.Sys().(*syscall.Stat_t).Uid != 65534 {
		t.Fatalf("after the child's Chmod: %v uid %d", fi.Mode(), fi.Sys().(*syscall.Stat_t).Uid)
	}
}

// childByName plays "by-name": run as uid 65534, which owns the object
// name but may not read it (mode 0): Stat is refused, Lstat describes it,
// Chmod and Chown by name change it, and Chown to root is refused.
func childByName(role, name string, in *bufio.Reader) int {
	if _, err := shm.Stat(name); !errors.Is(err, fs.ErrPermission) {
		return childFail(role, "Stat of an unreadable object = %v; want EACCES", err)
	}
	fi, err := shm.Lstat(name)
	if err != nil {
		return childFail(role, "Lstat: %v", err)
	}
	if st := fi.Sys().(*syscall.Stat_t); fi.Name() != strings.TrimLeft(name, "/") || fi.Mode() != 0 || fi.Size() != 4096 || st.Uid != 65534 {
		return childFail(role, "Lstat: name %q mode %v size %d uid %d", fi.Name(), fi.Mode(), fi.Size(), st.Uid)
	}
	if err := shm.Chown(name, -1, 65534); err != nil {
		return childFail(role, "Chown(-1, 65534) as owner: %v", err)
	}
	err = shm.Chown(name, 0, -1)
	var pe *fs.PathError
	if !errors.As(err, &pe) || pe.Op != "fchownat" || pe.Path != name || !errors.Is(err, fs.ErrPermission) {
		return childFail(role, "Chown to root as nobody = %v; want fchownat: operation not permitted", err)
	}
	if err := shm.Chmod(name, 0o604); err != nil { // last: it makes the object readable
		return childFail(role, "Chmod as owner: %v", err)
	}
	fmt.Print("ok")
	return 0
}

// TestByNameWithoutRead: Lstat, Chmod and Chown by name work for the
// object's owner without read permission (as lstat, chmod(1) and chown(1)
// do), and as Stat, fchmod and fchown otherwise, refusing what Stat
// refuses.
//
// Kills: byName without its O_PATH fallback (the child's Lstat and Chmod
// fail with EACCES); Chown by name passing gid as uid (with and without
// read permission); Lstat's Name with the slash; the ENODEV check dropped (the FIFO is described); checkMode
// skipped in Chmod (setuid accepted).
func TestByNameWithoutRead(t *testing.T) {
	s := create(t, 4096)
	name := s.Name()
	s.Close()
	fi, err := shm.Lstat(name)
	want, _ := shm.Stat(name)
	if err != nil || fi.Name() != want.Name() || fi.Sys().(*syscall.Stat_t).Ino != want.Sys().(*syscall.Stat_t).Ino {
		t.Fatalf("Lstat = %v, %v; Stat = %v", fi, err, want)
	}
	if err := shm.Chmod(name, 0o640); err != nil {
		t.Fatal(err)
	}
	if fi, _ := shm.Stat(name); fi.Mode() != 0o640 {
		t.Fatalf("Chmod(0640) by name: mode %v", fi.Mode())
	}
	wantPathErr(t, shm.Chmod(name, fs.ModeSetuid|0o600), "chmod", name, syscall.EINVAL)
	wantPathErr(t, shm.Chown(name, -2, 0), "chown", name, syscall.EINVAL)
	missing := uniqueName(t)
	cleanup(t, missing)
	for _, err := range []error{shm.Chmod(missing, 0o600), shm.Chown(missing, -1, -1), func() error { _, err := shm.Lstat(missing); return err }()} {
		wantPathErr(t, err, "shm_open", missing, fs.ErrNotExist)
	}
	if exists(missing) {
		t.Fatal("a call by name created the object")
	}
	fifo := uniqueName(t)
	if err := syscall.Mkfifo(devPath(fifo), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(devPath(fifo)) })
	_, err = shm.Lstat(fifo)
	wantPathErr(t, err, "shm_open", fifo, syscall.ENODEV)
	wantPathErr(t, shm.Chmod(fifo, 0o644), "shm_open", fifo, syscall.ENODEV)

	if os.Geteuid() != 0 {
		t.Skip("needs root to hand the object to uid 65534")
	}
	if err := shm.Chown(name, 65534, 0); err != nil {
		t.Fatal(err)
	}
	if err := shm.Chmod(name, 0); err != nil {
		t.Fatal(err)
	}
	if out := runNobody(t, "by-name", name); out != "ok" {
		t.Fatalf("child as nobody said %q", out)
	}
	fi, err = shm.Stat(name)
	if st := fi.Sys().(*syscall.Stat_t); err != nil || fi.Mode() != 0o604 || st.Uid != 65534 || st.Gid != 65534 {
		t.Fatalf("after the child's Chmod and Chown: %v, mode %v, %d:%d", err, fi.Mode(), st.Uid, st.Gid)
	}
}

// runNobody runs a child of role for name as uid 65534 to its end and
// returns its standard output.
func runNobody(t *testing.T, role, name string) string {
	t.Helper()
	cmd := nobodyCmd(t, role, name)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("child %s as nobody: %v, %q\n%s", role, err, out, cmd.Stderr)
	}
	return string(out)
}

// holdingChild starts a child that holds name as role says, and returns
// its pid and a func that lets it exit and waits for it.
func holdingChild(t *testing.T, role, name string) (pid int, release func()) {
	t.Helper()
	cmd := childCmd(t, role, name)
	stdin, out := startPeer(t, cmd, "ready\n")
	done := false
	release = func() {
		if done {
			return
		}
		done = true
		stdin.Close()
		io.ReadAll(out)
		if err := cmd.Wait(); err != nil {
			t.Errorf("holder %s: %v\n%s", role, err, cmd.Stderr)
		}
	}
	t.Cleanup(release)
	return cmd.Process.Pid, release
}

// TestHolders: Holders finds a process that has the object open but not
// mapped, one that has it mapped after closing the descriptor, and this
// process (which created it); and none once they let go. HoldersAll agrees.
//
// Kills: no /proc/PID/fd scan (hold-fd is missed); no /proc/PID/maps scan
// (hold-map is missed); major:minor decoded wrongly; the list not sorted.
func TestHolders(t *testing.T) {
	s := create(t, 4096)
	name := s.Name()
	fdPid, releaseFD := holdingChild(t, "hold-fd", name)
	mapPid, releaseMap := holdingChild(t, "hold-map", name)

	pids, err := shm.Holders(name)
	want := []int{os.Getpid(), fdPid, mapPid}
	slices.Sort(want)
	if !inspected(t, err, want) || !slices.Equal(pids, want) {
		t.Fatalf("Holders = %v, %v; want %v", pids, err, want)
	}
	all, err := shm.HoldersAll()
	if !inspected(t, err, want) || !slices.Equal(all[name], want) {
		t.Fatalf("HoldersAll[%s] = %v, %v; want %v", name, all[name], err, want)
	}

	releaseFD()
	releaseMap()
	s.Close()
	if pids, err := shm.Holders(name); !inspected(t, err, want) || len(pids) != 0 {
		t.Fatalf("Holders after all let go = %v, %v", pids, err)
	}
	all, err = shm.HoldersAll()
	if _, held := all[name]; !inspected(t, err, want) || held {
		t.Fatalf("HoldersAll after all let go: %v, %v", all[name], err)
	}
	_, err = shm.Holders(uniqueName(t))
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Holders of a missing name = %v", err)
	}
}

// inspected reports whether err from Holders is nil, or says only that
// processes other than pids (ours) could not be inspected: a process with
// more capabilities than this one (a container's init) is, even to root.
func inspected(t *testing.T, err error, pids []int) bool {
	t.Helper()
	if err == nil {
		return true
	}
	var de *shm.DeniedError
	if !errors.As(err, &de) || !errors.Is(err, fs.ErrPermission) {
		t.Errorf("Holders error %v", err)
		return false
	}
	for _, p := range pids {
		if slices.Contains(de.PIDs, p) {
			t.Errorf("our process %d could not be inspected: %v", p, err)
			return false
		}
	}
	return true
}

// TestHoldersDenied: a user who may not inspect another's processes gets
// the pids it found and an error that wraps fs.ErrPermission and counts
// the others.
//
// Kills: skipping processes whose /proc/PID/fd or maps cannot be read
// without saying so.
func TestHoldersDenied(t *testing.T) {
	s := create(t, 4096)
	if err := s.Chmod(0o644); err != nil { // nobody may Stat it
		t.Fatal(err)
	}
	cmd := nobodyCmd(t, "holders-denied", s.Name())
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, cmd.Stderr)
	}
	if !strings.Contains(string(out), "could not be inspected") {
		t.Fatalf("error %q does not say how many processes were not inspected", out)
	}
	t.Log(string(out))
}

// TestTruncate: growing keeps the bytes, zero-fills and reserves the new
// range and maps it; shrinking cuts the object and the mapping; 0 and back.
// Read-only Segments and negative sizes are refused.
//
// Kills: growing with ftruncate only (the new pages unreserved: Blocks
// short); the mapping not replaced (Size unchanged); shrinking the mapping
// but not the object; a read-only Segment resized.
func TestTruncate(t *testing.T) {
	page := os.Getpagesize()
	s := create(t, page)
	copy(s.Bytes(), "first")
	blocks := func() int64 {
		fi, err := s.Stat()
		if err != nil {
			t.Fatal(err)
		}
		return fi.Sys().(*syscall.Stat_t).Blocks * 512
	}
	for _, size := range []int{3 * page, 5*page + 100, page / 2, 0, 2 * page} {
		if err := s.Truncate(size); err != nil {
			t.Fatalf("Truncate(%d): %v", size, err)
		}
		fi, err := os.Stat(devPath(s.Name()))
		if err != nil || fi.Size() != int64(size) || s.Size() != size || len(s.Bytes()) != size {
			t.Fatalf("Truncate(%d): object %v, Size %d, Bytes %d", size, fi.Size(), s.Size(), len(s.Bytes()))
		}
		if b := blocks(); b < int64(size) {
			t.Fatalf("Truncate(%d): only %d bytes reserved", size, b)
		}
		if size > 0 {
			b := s.Bytes()
			b[len(b)-1] = 1 // the whole mapping is usable
			if n, err := s.WriteAt([]byte{2}, int64(size-1)); n != 1 || err != nil {
				t.Fatal(err)
			}
		}
		if size >= 5 && fi.Size() != 2*int64(page) && string(s.Bytes()[:5]) != "first" { // not after 0
			t.Fatalf("Truncate(%d) lost the bytes: %q", size, s.Bytes()[:5])
		}
	}
	// Grown from 0: the first page is zeros now.
	if !bytes.Equal(s.Bytes()[:page-1], make([]byte, page-1)) {
		t.Fatal("bytes regrown from size 0 are not zero")
	}
	wantPathErr(t, s.Truncate(-1), "truncate", s.Name(), syscall.EINVAL)

	ro, err := shm.OpenFile(s.Name(), os.O_RDONLY, 0, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	wantPathErr(t, ro.Truncate(page), "truncate", s.Name(), syscall.EBADF)
	if fi, _ := ro.Stat(); fi.Size() != int64(2*page) {
		t.Fatalf("a read-only Truncate changed the size to %d", fi.Size())
	}
	// A read-only Segment may Remap.
	if err := s.Truncate(4 * page); err != nil {
		t.Fatal(err)
	}
	if err := ro.Remap(); err != nil || ro.Size() != 4*page {
		t.Fatalf("read-only Remap: %v, Size %d", err, ro.Size())
	}
}

// TestTruncatePrivate: a private Segment stays private after Truncate.
//
// Kills: resize remapping MAP_SHARED regardless of how the Segment was
// mapped (from nothing: size 0, then grown).
func TestTruncatePrivate(t *testing.T) {
	page := os.Getpagesize()
	s := create(t, page)
	p, err := shm.OpenFile(s.Name(), os.O_RDWR, 0, 0, &shm.Options{Private: true})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for _, size := range []int{0, 2 * page} {
		if err := p.Truncate(size); err != nil {
			t.Fatal(err)
		}
	}
	copy(p.Bytes(), "private")
	if err := s.Remap(); err != nil || s.Size() != 2*page {
		t.Fatalf("Remap: %v, %d", err, s.Size())
	}
	if string(s.Bytes()[:7]) == "private" {
		t.Fatal("a private Segment's write reached the object after Truncate")
	}
}

// TestTruncateENOSPC: in a 1 MiB /dev/shm, growing past what fits is
// ENOSPC from fallocate and leaves the object, its reservation and the
// mapping as they were.
//
// Kills: growing with ftruncate only (no error: SIGBUS later); ftruncate
// before fallocate (the size changes although the call fails); the
// mapping left grown after the failure.
func TestTruncateENOSPC(t *testing.T) {
	if !inSmallDevShm(t, "1m") {
		return
	}
	s := create(t, 256<<10)
	copy(s.Bytes(), "kept")
	err := s.Truncate(2 << 20)
	wantPathErr(t, err, "fallocate", s.Name(), syscall.ENOSPC)
	fi, err := os.Stat(devPath(s.Name()))
	if err != nil || fi.Size() != 256<<10 || fi.Sys().(*syscall.Stat_t).Blocks*512 != 256<<10 {
		t.Fatalf("after ENOSPC: size %d, %d bytes reserved, %v", fi.Size(), fi.Sys().(*syscall.Stat_t).Blocks*512, err)
	}
	if s.Size() != 256<<10 || string(s.Bytes()[:4]) != "kept" {
		t.Fatalf("after ENOSPC the mapping is %d bytes, %q", s.Size(), s.Bytes()[:4])
	}
	if err := s.Truncate(512 << 10); err != nil {
		t.Fatalf("what fits: %v", err)
	}
	if _, err := s.WriteAt(make([]byte, 256<<10), 256<<10); err != nil {
		t.Fatal(err)
	}
}

// TestRemapAfterGrow: a peer that maps one page, then Remaps after this
// process grew the object to three, reads the new bytes.
//
// Kills: Remap that does nothing, or maps the old size.
func TestRemapAfterGrow(t *testing.T) {
	page := os.Getpagesize()
	s := create(t, page)
	copy(s.Bytes(), "first")
	cmd := childCmd(t, "remap", s.Name())
	stdin, out := startPeer(t, cmd, "mapped\n")
	if err := s.Truncate(3 * page); err != nil {
		t.Fatal(err)
	}
	copy(s.Bytes()[2*page:], "grown")
	finishPeer(t, cmd, stdin, out, "ok\n")
}

// TestRemapTooLargeKeepsMapping: a 32-bit process whose peer grew the
// object past what it can map (2 GiB) gets an error wrapping
// syscall.EFBIG from Remap, and keeps the Mapping it had: its Size and
// bytes, not an empty one. (A sparse file on disk: nothing is allocated.)
//
// Kills: goshm_resize reporting size 0 when fstat refuses the object
// (Remap then left Size 0 and Bytes empty).
func TestRemapTooLargeKeepsMapping(t *testing.T) {
	if unsafe.Sizeof(uintptr(0)) != 4 {
		t.Skip("needs a 32-bit process (GOARCH=386): a 64-bit one maps any file")
	}
	page := os.Getpagesize()
	f, err := os.Create(filepath.Join(t.TempDir(), "big"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(int64(page)); err != nil {
		t.Fatal(err)
	}
	m, err := shm.MapFile(f, os.O_RDWR, 0, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	copy(m.Bytes(), "kept")
	if err := f.Truncate(3 << 30); err != nil {
		t.Skip("the file system cannot hold a sparse 3 GiB file:", err)
	}
	if err := m.Remap(); !errors.Is(err, syscall.EFBIG) {
		t.Fatalf("Remap of a 3 GiB file in a 32-bit process: %v, want an error wrapping EFBIG", err)
	}
	if m.Size() != page || string(m.Bytes()[:4]) != "kept" {
		t.Fatalf("after the failed Remap the Mapping has Size %d (want %d, as it was)", m.Size(), page)
	}
	var b [4]byte
	if _, err := m.ReadAt(b[:], 0); err != nil || string(b[:]) != "kept" {
		t.Fatalf("ReadAt after the failed Remap: %q, %v", b[:], err)
	}
}

// TestPeerAfterShrink: a peer that does not Remap after Truncate shrank
// the object gets ErrFault from ReadAt and WriteAt of the lost page, never
// a crash (the child would die, and fail the test).
//
// Kills: Truncate that shrinks only this process's mapping, not the
// object.
func TestPeerAfterShrink(t *testing.T) {
	page := os.Getpagesize()
	s := create(t, 2*page)
	copy(s.Bytes(), "page one")
	cmd := childCmd(t, "fault", s.Name())
	stdin, out := startPeer(t, cmd, "mapped\n")
	if err := s.Truncate(page); err != nil {
		t.Fatal(err)
	}
	finishPeer(t, cmd, stdin, out, "ok\n")
}

// TestTruncateRace: ReadAt and WriteAt running while Truncate moves and
// resizes the mapping always see a whole mapping: no fault, no race.
//
// Kills: Truncate or Remap under the read lock (ReadAt copies from a
// mapping mremap moved away: ErrFault, or the race detector).
func TestTruncateRace(t *testing.T) {
	page := os.Getpagesize()
	s := create(t, page)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	errs := make(chan error, 4)
	for range 2 {
		wg.Go(func() {
			buf := make([]byte, page)
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := s.ReadAt(buf, 0); err != nil {
					errs <- err
					return
				}
				if _, err := s.WriteAt(buf[:64], int64(page-64)); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	for i := range 2000 {
		size := page * (1 + i%7*32) // moves: big steps
		var err error
		if i%5 == 0 {
			err = s.Remap()
		} else {
			err = s.Truncate(size)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("ReadAt/WriteAt during Truncate: %v", err)
	}
}

// TestList: List and Objects show our objects as "/name", which Open
// takes, and leave out semaphores, FIFOs and directories.
//
// Kills: the sem.* filter dropped; the regular-file filter dropped; names
// without the leading slash; Objects not stopping when the loop breaks.
func TestList(t *testing.T) {
	a, b := create(t, 4096), create(t, 8192)
	sem := "/sem." + strings.TrimPrefix(uniqueName(t), "/")
	if err := os.WriteFile(devPath(sem), make([]byte, 32), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(devPath(sem)) })
	fifo, dir := uniqueName(t), uniqueName(t)
	if err := syscall.Mkfifo(devPath(fifo), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(devPath(fifo)) })
	if err := os.Mkdir(devPath(dir), 0o700); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(devPath(dir)) })

	names, err := shm.List()
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{a.Name(), b.Name()} {
		if !slices.Contains(names, n) {
			t.Errorf("List lacks %s", n)
		}
	}
	for _, n := range names {
		if !strings.HasPrefix(n, "/") || strings.HasPrefix(n, "/sem.") || n == fifo || n == dir {
			t.Errorf("List has %q", n)
		}
		if strings.HasPrefix(n, prefix) || strings.HasPrefix(n, "/"+prefix) {
			s, err := shm.OpenFile(n, os.O_RDONLY, 0, 0, nil)
			if err != nil {
				t.Errorf("Open(%q) of a listed name: %v", n, err)
				continue
			}
			s.Close()
		}
	}
	sizes := map[string]int64{}
	for fi, err := range shm.Objects() {
		if err != nil {
			t.Fatal(err)
		}
		sizes["/"+fi.Name()] = fi.Size()
		if _, ok := fi.Sys().(*syscall.Stat_t); !ok || !fi.Mode().IsRegular() {
			t.Errorf("Objects: %s: %v, %T", fi.Name(), fi.Mode(), fi.Sys())
		}
	}
	if sizes[a.Name()] != 4096 || sizes[b.Name()] != 8192 {
		t.Errorf("Objects sizes: %d, %d", sizes[a.Name()], sizes[b.Name()])
	}
	n := 0
	for range shm.Objects() {
		n++
		break
	}
	if n != 1 {
		t.Fatal("Objects went on after break")
	}
}

// TestLifecycleNoLeaks: Stat, Segment.Stat, List, Objects, Holders and
// HoldersAll, many times over, leave no descriptor open.
//
// Kills: Stat without close(fd); scanFDs or scanHolders
// without closing its directory.
func TestLifecycleNoLeaks(t *testing.T) {
	s := create(t, 4096)
	before := countFDs(t)
	for range 20 {
		if _, err := shm.Stat(s.Name()); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Stat(); err != nil {
			t.Fatal(err)
		}
		if _, err := shm.List(); err != nil {
			t.Fatal(err)
		}
		for range shm.Objects() {
			break
		}
		pids, err := shm.Holders(s.Name())
		if !inspected(t, err, []int{os.Getpid()}) || !slices.Equal(pids, []int{os.Getpid()}) {
			t.Fatalf("Holders = %v, %v", pids, err)
		}
		if _, err := shm.HoldersAll(); !inspected(t, err, []int{os.Getpid()}) {
			t.Fatal(err)
		}
	}
	if after := countFDs(t); after != before {
		t.Fatalf("%d descriptors open before, %d after", before, after)
	}
}

// TestStaleWordAfterResize (issue 14 item 2): a word from Uint32 and a
// slice from Bytes kept across a Truncate that grows (to 64 MiB, so the
// mapping most likely cannot grow in place) keep reaching the same object,
// never one mapped later; across a shrink, a stale word past the new end
// faults (recoverably here) and never reaches an object mapped later.
// Runs in a 128 MiB private /dev/shm, a child process: a crash fails the
// test.
//
// Kills: mremap(MREMAP_MAYMOVE) that unmaps the old range (the next
// Create is mapped there and the stale Store changes it); a shrink that
// unmaps the tail (the same).
func TestStaleWordAfterResize(t *testing.T) {
	if !inSmallDevShm(t, "128m") {
		return
	}
	page := os.Getpagesize()
	a := create(t, page)
	w, err := a.Uint32(0)
	if err != nil {
		t.Fatal(err)
	}
	stale := a.Bytes()
	if err := a.Truncate(64 << 20); err != nil {
		t.Fatal(err)
	}
	moved := &a.Bytes()[0] != &stale[0]
	b := create(t, page)
	w.Store(0xdeadbeef)
	stale[100] = 7
	if v := binary.LittleEndian.Uint32(b.Bytes()); v != 0 || b.Bytes()[100] != 0 {
		t.Fatalf("a stale word or slice of a (mapping moved: %v) wrote into b: %#x, %d", moved, v, b.Bytes()[100])
	}
	if v := binary.LittleEndian.Uint32(a.Bytes()); v != 0xdeadbeef || a.Bytes()[100] != 7 {
		t.Fatalf("the stale word and slice no longer reach a: %#x, %d", v, a.Bytes()[100])
	}
	t.Logf("grow: the mapping moved: %v; stale word and slice still reach a", moved)

	// Shrink: a word on the third page, which goes away.
	if err := a.Truncate(3 * page); err != nil {
		t.Fatal(err)
	}
	w3, err := a.Uint32(int64(2 * page))
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Truncate(page); err != nil {
		t.Fatal(err)
	}
	// The stale word's page is still mapped, to a, so nothing else can be
	// mapped there.
	if line := mappingAt(t, uintptr(unsafe.Pointer(w3))); !strings.HasSuffix(line, devPath(a.Name())) {
		t.Fatalf("after the shrink the stale word's page is mapped as %q, not to a", line)
	}
	var cs []*shm.Segment
	for range 8 { // whatever the kernel maps next: in the old tail, if it is free
		cs = append(cs, create(t, page))
	}
	faulted := func() (faulted bool) {
		defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
		defer func() { faulted = recover() != nil }()
		w3.Store(0xfeedface)
		return false
	}()
	for i, c := range cs {
		if v := binary.LittleEndian.Uint32(c.Bytes()); v != 0 {
			t.Fatalf("a stale word past the shrunk end wrote into object %d mapped later: %#x", i, v)
		}
	}
	t.Logf("shrink: the stale word past the end faulted: %v", faulted)

	// Private: a moving grow keeps this process's private bytes in the new
	// mapping (MREMAP_DONTUNMAP), and the old range still maps a.
	p, err := shm.OpenFile(a.Name(), os.O_RDWR, 0, 0, &shm.Options{Private: true})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	copy(p.Bytes(), "private")
	pstale := p.Bytes()
	if err := p.Truncate(64 << 20); err != nil {
		t.Fatal(err)
	}
	if string(p.Bytes()[:7]) != "private" {
		t.Fatalf("a private grow lost this process's bytes: %q", p.Bytes()[:7])
	}
	if line := mappingAt(t, uintptr(unsafe.Pointer(&pstale[0]))); !strings.HasSuffix(line, devPath(a.Name())) {
		t.Fatalf("after a private grow the stale slice's page is mapped as %q, not to a", line)
	}
	t.Logf("private grow: the mapping moved: %v", &p.Bytes()[0] != &pstale[0])
}

// mappingAt returns the /proc/self/maps line of the mapping that holds
// addr, "" if none does.
func mappingAt(t *testing.T, addr uintptr) string {
	t.Helper()
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		t.Skipf("no /proc/self/maps: %v", err)
	}
	for line := range strings.Lines(string(maps)) {
		lo, hi, _ := strings.Cut(strings.Fields(line)[0], "-")
		l, err1 := strconv.ParseUint(lo, 16, 64)
		h, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 == nil && err2 == nil && uint64(addr) >= l && uint64(addr) < h {
			return strings.TrimSpace(line)
		}
	}
	return ""
}

// TestSyncDuringTruncate (issue 14 item 5): Sync racing Truncate never
// fails: it syncs the mapping as it is under the lock.
//
// Kills: Sync reading Size outside the lock (a shrink in between makes the
// range too long: a spurious EINVAL; 6 of 6 runs of 10000 rounds).
func TestSyncDuringTruncate(t *testing.T) {
	page := os.Getpagesize()
	s := create(t, page)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if err := s.Truncate(page * (1 + i%2*15)); err != nil {
				t.Error(err)
				return
			}
		}
	})
	for range 10000 {
		if err := s.Sync(); err != nil {
			close(stop)
			wg.Wait()
			t.Fatalf("Sync during Truncate: %v", err)
		}
	}
	close(stop)
	wg.Wait()
}

// TestPrivateGrowWithoutDontunmap (issue 14 item 2, issue 21 item 10):
// where the kernel has no MREMAP_DONTUNMAP for files (before 5.13;
// simulated), a private Mapping that must move to grow keeps its private
// bytes, and the old range maps the object again (a private mapping of it,
// as MREMAP_DONTUNMAP leaves it): a stale slice reads the object and
// writes only its own copy, never faulting and never reaching whatever the
// kernel maps next. (The 386 suite ran where 32-bit programs run and found
// the old range inaccessible, ---p, in TestStaleWordAfterResize: only this
// path made it so.)
//
// Kills: failing the grow where MREMAP_DONTUNMAP is refused (EINVAL from
// mremap); reserving the old range inaccessible (PROT_NONE, as 93dfd98
// did: "the old range is ... ---p"); moving without mapping the old range
// again (it shows unmapped).
func TestPrivateGrowWithoutDontunmap(t *testing.T) {
	needFree(t, 20<<20)
	defer shm.SetNoDontunmap()()
	page := os.Getpagesize()
	a := create(t, page)
	p, err := shm.OpenFile(a.Name(), os.O_RDWR, 0, 0, &shm.Options{Private: true})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	copy(p.Bytes(), "private")
	stale := p.Bytes()
	create(t, page) // most likely mapped right below: the grow must move
	if err := p.Truncate(16 << 20); err != nil {
		t.Fatalf("private grow without MREMAP_DONTUNMAP: %v", err)
	}
	if string(p.Bytes()[:7]) != "private" {
		t.Fatalf("the grow lost this process's private bytes: %q", p.Bytes()[:7])
	}
	if &p.Bytes()[0] == &stale[0] {
		t.Skip("the mapping grew in place: nothing to reserve")
	}
	line := mappingAt(t, uintptr(unsafe.Pointer(&stale[0])))
	if f := strings.Fields(line); len(f) < 6 || f[1] != "rw-p" || !strings.HasSuffix(line, devPath(a.Name())) {
		t.Fatalf("the old range is %q, not a private mapping of the object", line)
	}
	copy(a.Bytes(), "object!")
	if string(stale[:7]) != "object!" {
		t.Fatalf("the stale slice reads %q, not the object", stale[:7])
	}
	faulted := func() (faulted bool) {
		defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
		defer func() { faulted = recover() != nil }()
		stale[0] = 1
		return false
	}()
	if faulted {
		t.Fatal("a write through the stale slice faulted")
	}
	if a.Bytes()[0] != 'o' || string(p.Bytes()[:7]) != "private" {
		t.Fatalf("a private write through the stale slice reached the object (%q) or the new mapping (%q)", a.Bytes()[:7], p.Bytes()[:7])
	}
}

// TestSemaphores: Semaphores shows glibc's semaphore files (sem.NAME), a
// real one and a planted file alike, and leaves out objects, FIFOs named
// sem.*, and the bare "sem.".
//
// Kills: the regular-file filter dropped (the FIFO is listed), the prefix
// test dropped (the object is listed), "sem." itself taken (it is listed).
func TestSemaphores(t *testing.T) {
	if onMusl {
		t.Skip("musl keeps a semaphore as a file like an object: Semaphores yields only glibc's")
	}
	obj := create(t, 4096)
	real := createSem(t, 0)
	planted := "sem." + strings.TrimPrefix(uniqueName(t), "/")
	fifo := "sem." + strings.TrimPrefix(uniqueName(t), "/")
	for _, f := range []struct {
		name string
		make func(string) error
	}{
		{planted, func(p string) error { return os.WriteFile(p, make([]byte, 32), 0o600) }},
		{fifo, func(p string) error { return syscall.Mkfifo(p, 0o600) }},
		{"sem.", func(p string) error { return os.WriteFile(p, nil, 0o600) }},
	} {
		p := shm.Dir() + "/" + f.name
		if err := f.make(p); err != nil {
			if f.name == "sem." && errors.Is(err, fs.ErrExist) {
				continue
			}
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Remove(p) })
	}
	seen := map[string]bool{}
	for fi, err := range shm.Semaphores() {
		if err != nil {
			t.Fatal(err)
		}
		seen[fi.Name()] = true
		if _, ok := fi.Sys().(*syscall.Stat_t); !ok || !fi.Mode().IsRegular() {
			t.Errorf("Semaphores: %s: %v, %T", fi.Name(), fi.Mode(), fi.Sys())
		}
	}
	realFile := "sem." + strings.TrimPrefix(real.Name(), "/")
	if !seen[realFile] || !seen[planted] {
		t.Errorf("Semaphores lacks %s or %s: %v", realFile, planted, seen)
	}
	for _, bad := range []string{fifo, "sem.", strings.TrimPrefix(obj.Name(), "/")} {
		if seen[bad] {
			t.Errorf("Semaphores has %q", bad)
		}
	}
}
