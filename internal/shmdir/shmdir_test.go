package shmdir

import (
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/posixshm/shm"
	"github.com/posixshm/shm/ring"
)

// newName is a unique object name for t, whose file and leftovers are
// removed when t ends.
func newName(t *testing.T) string {
	t.Helper()
	name := fmt.Sprintf("/shmdir-%d-%s-%x", os.Getpid(), strings.ReplaceAll(t.Name(), "/", "_"), rand.Uint32())
	t.Cleanup(func() {
		base := strings.TrimPrefix(name, "/")
		os.Remove(shm.Dir() + "/" + base)
		os.Remove(shm.Dir() + "/sem." + base)
		for _, l := range Leftovers(name) {
			os.Remove(l.Path)
		}
	})
	return name
}

func onMusl() bool {
	maps, _ := os.ReadFile("/proc/self/maps")
	return strings.Contains(string(maps), "ld-musl") || strings.Contains(string(maps), "-musl/")
}

func inode(t *testing.T, path string) uint64 {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Lstat(path, &st); err != nil {
		t.Fatal(err)
	}
	return uint64(st.Ino)
}

// TestEntries: All, Named and Stat find an object and glibc's semaphore
// of one name, each with its kind, name, file and inode, an object before
// a semaphore; Shown tells a ring from another object; Named and Stat
// refuse what package shm refuses.
//
// Kills: Named's semaphore file without "sem." (the semaphore is missed);
// Sort putting the semaphore first; All leaving out semaphores; Shown
// always Object (the ring is shown as "shm") or Ring for a semaphore;
// Named accepting a FIFO (no ENODEV); Stat not falling back to the
// semaphore; Stat's semaphore entry keeping "sem." in its Name.
func TestEntries(t *testing.T) {
	if onMusl() {
		t.Skip("musl keeps a semaphore as the file NAME: an object, as the directory shows it")
	}
	name, semOnly, rname := newName(t), newName(t), newName(t)
	s, err := shm.Create(name, 4096)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	for _, n := range []string{name, semOnly} {
		sem, err := shm.CreateSemaphore(n, 0)
		if err != nil {
			t.Fatal(err)
		}
		sem.Close()
	}
	r, err := ring.Create(rname, 64)
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	dir, base := shm.Dir(), strings.TrimPrefix(name, "/")

	es, err := Named(name)
	if err != nil || len(es) != 2 {
		t.Fatalf("Named = %v, %v; want the object and the semaphore", es, err)
	}
	want := []Entry{{Object, name, dir + "/" + base, nil}, {Semaphore, name, dir + "/sem." + base, nil}}
	for i, e := range es {
		if e.Kind != want[i].Kind || e.Name != want[i].Name || e.Path != want[i].Path || uint64(e.Stat.Ino) != inode(t, want[i].Path) {
			t.Errorf("Named[%d] = %+v; want %+v with the file's inode", i, e, want[i])
		}
	}
	if k := es[0].Shown(); k != Object {
		t.Errorf("Shown of a plain object = %q", k)
	}
	if k := es[1].Shown(); k != Semaphore {
		t.Errorf("Shown of a semaphore = %q", k)
	}

	all, err := All()
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(all, func(e Entry) bool { return e.Name == name })
	if i < 0 || i+1 >= len(all) || all[i].Kind != Object || all[i+1].Kind != Semaphore || all[i+1].Name != name {
		t.Errorf("All lacks the object then the semaphore %s: %v", name, all)
	}
	if !slices.IsSortedFunc(all, func(a, b Entry) int { return strings.Compare(a.Name, b.Name) }) {
		t.Errorf("All is not sorted by name")
	}
	ri := slices.IndexFunc(all, func(e Entry) bool { return e.Name == rname })
	if ri < 0 || all[ri].Shown() != Ring || all[ri].Kind != Object {
		t.Errorf("the ring %s in All: %v", rname, all)
	}

	e, err := Stat(semOnly)
	if err != nil || e.Kind != Semaphore || e.Name != semOnly || e.Path != dir+"/sem."+strings.TrimPrefix(semOnly, "/") {
		t.Errorf("Stat of a semaphore alone = %+v, %v", e, err)
	}
	if e, err := Stat(name); err != nil || e.Kind != Object || e.Name != name {
		t.Errorf("Stat of an object = %+v, %v", e, err)
	}
	missing := newName(t)
	var pe *fs.PathError
	if _, err := Stat(missing); !errors.As(err, &pe) || pe.Op != "shm_open" || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Stat of nothing = %v; want shm_open's ENOENT", err)
	}
	if _, err := Named(missing); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Named of nothing = %v", err)
	}
	if _, err := Named("/a/b"); !errors.Is(err, syscall.EINVAL) {
		t.Errorf("Named of a path = %v; want EINVAL", err)
	}
	fifo := newName(t)
	if err := syscall.Mkfifo(dir+fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Named(fifo); !errors.Is(err, syscall.ENODEV) {
		t.Errorf("Named of a FIFO = %v; want ENODEV", err)
	}
}

// TestLeftovers: Leftovers finds NAME.~RANDOM objects and semaphores of
// name, and nothing of another name or of another shape.
//
// Kills: Leftovers without the sem. prefix for semaphores (the
// semaphore's leftover missed, or typed as an object); a prefix match
// without tmpname.Of (NAMEx.~1 found).
func TestLeftovers(t *testing.T) {
	name := newName(t)
	dir, base := shm.Dir(), strings.TrimPrefix(name, "/")
	for _, f := range []string{base + ".~k3x", "sem." + base + ".~9z", base + "x.~1", base + ".~NOPE", base} {
		if err := os.WriteFile(dir+"/"+f, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Remove(dir + "/" + f) })
	}
	got := map[string]Kind{}
	for _, l := range Leftovers(name) {
		got[l.Path] = l.Kind
		if l.Stat == nil || uint64(l.Stat.Ino) != inode(t, l.Path) {
			t.Errorf("leftover %s without its own stat", l.Path)
		}
	}
	want := map[string]Kind{dir + "/" + base + ".~k3x": Object, dir + "/sem." + base + ".~9z": Semaphore}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Leftovers = %v; want %v", got, want)
	}
	for _, l := range Leftovers(name) {
		if l.Kind == Semaphore && l.Name != name+".~9z" {
			t.Errorf("the semaphore leftover is named %q", l.Name)
		}
	}
}

// TestFindHolders: this process, holding an object, is found as its
// holder; where /proc does not show this process, every holder is unknown.
//
// Kills: FindHolders keying objects by a name without the slash (none
// found); FindHolders without CheckProc (an empty /proc known to show no
// holder).
func TestFindHolders(t *testing.T) {
	name := newName(t)
	s, err := shm.Create(name, 4096)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	es, err := Named(name)
	if err != nil {
		t.Fatal(err)
	}
	h := FindHolders("/proc", es)
	if !slices.Contains(h.PIDs[es[0].Path], os.Getpid()) {
		t.Errorf("holders of an object this process maps: %v (failed %v)", h.PIDs, h.Failed)
	}
	h = FindHolders(t.TempDir(), es)
	if h.Known(es[0]) || h.Failed[es[0].Path] == nil {
		t.Errorf("without /proc the holders are known: %+v", h)
	}
}

// TestDenied: what Denied says of a process it could not inspect:
// another user's, or one with capabilities this one lacks, by name; an
// exited one is gone.
//
// Kills: capabilities misnamed (capNames off by one); an exited process
// not said to be gone.
func TestDenied(t *testing.T) {
	dir := t.TempDir()
	write := func(pid, name, uid, capEff string) {
		os.MkdirAll(dir+"/"+pid, 0o755)
		os.WriteFile(dir+"/"+pid+"/status", []byte("Name:\t"+name+"\nUid:\t"+uid+"\t"+uid+"\t"+uid+"\t"+uid+"\nCapEff:\t"+capEff+"\n"), 0o644)
	}
	me := strconv.Itoa(os.Geteuid())
	write("self", "shm", me, "000001fffeffffff")
	write("1", "tini", me, "000001ffffffffff")
	ps := Denied(dir, []int{1, 99})
	if len(ps) != 2 || ps[0].Name != "tini" || ps[0].UID != me || !strings.Contains(ps[0].Why, "(CAP_SYS_RESOURCE)") || !ps[1].Gone {
		t.Errorf("Denied = %+v", ps)
	}
}

// TestCheckProc: a /proc whose self is not this process (another pid
// namespace's) is refused; one mounted hidepid=2 is a HiddenError (refused
// unless -ignore-denied) for a process without CAP_SYS_PTRACE; a usable
// one passes.
//
// Kills: CheckProc trusting any /proc with a self link; hidepid ignored
// (other users' processes invisible, so none counted as denied).
func TestCheckProc(t *testing.T) {
	if err := CheckProc("/proc"); err != nil {
		t.Fatalf("the real /proc: %v", err)
	}
	fake := func(self, hidepid string) error {
		procDir := t.TempDir()
		pid := strconv.Itoa(os.Getpid())
		os.MkdirAll(procDir+"/"+pid+"/fd", 0o755)
		os.Symlink(self, procDir+"/self")
		os.WriteFile(procDir+"/"+pid+"/mountinfo", []byte("22 1 0:21 / /proc rw,nosuid - proc proc rw"+hidepid+"\n"), 0o644)
		os.WriteFile(procDir+"/"+pid+"/status", []byte("Name:\tshm\nCapEff:\t0000000000000000\n"), 0o644)
		return CheckProc(procDir)
	}
	pid := strconv.Itoa(os.Getpid())
	if err := fake(pid, ""); err != nil {
		t.Errorf("a usable /proc: %v", err)
	}
	if err := fake("1", ""); err == nil || !strings.Contains(err.Error(), "another pid namespace") {
		t.Errorf("a /proc whose self is pid 1: %v", err)
	}
	var hidden HiddenError
	if err := fake(pid, ",hidepid=invisible"); !errors.As(err, &hidden) {
		t.Errorf("a /proc mounted hidepid=invisible: %v", err)
	}
}
