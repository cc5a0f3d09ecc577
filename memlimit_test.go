package shm_test

// The memory cgroup check (memlimit.go): a reservation that cannot fit in
// the cgroup's limit is ENOMEM, not an OOM kill.

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/posixshm/shm"
)

const cgroupEnv = "SHM_TEST_CGROUP"

// TestCreateOverMemoryCgroup (issue 14 item 4): in a 64 MiB memory cgroup
// (v1, as root) with a 1 GiB private tmpfs on /dev/shm, Create, CreateMemfd
// and Truncate of 256 MiB fail with an error wrapping syscall.ENOMEM, and
// the process is not killed and leaves nothing in /dev/shm. The child runs
// in the cgroup; the parent removes the cgroup.
//
// Kills: no cgroup check (the child is OOM-killed, exit 137, and leaves
// NAME.~RANDOM behind in its /dev/shm).
func TestCreateOverMemoryCgroup(t *testing.T) {
	if os.Getenv(cgroupEnv) != "" {
		overMemoryCgroup(t)
		return
	}
	if os.Geteuid() != 0 {
		t.Skip("making a memory cgroup needs root")
	}
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("needs unshare(1) to mount a private /dev/shm")
	}
	root := "/sys/fs/cgroup/memory"
	if _, err := os.Stat(filepath.Join(root, "memory.limit_in_bytes")); err != nil {
		t.Skipf("no cgroup v1 memory hierarchy at %s: %v", root, err)
	}
	cg := filepath.Join(root, fmt.Sprintf("shmtest-%d-%x", os.Getpid(), rand.Uint64()))
	if err := os.Mkdir(cg, 0o755); err != nil {
		t.Skipf("cannot make a memory cgroup: %v", err)
	}
	t.Cleanup(func() {
		if err := os.Remove(cg); err != nil {
			t.Errorf("removing the cgroup: %v", err)
		}
	})
	if err := os.WriteFile(filepath.Join(cg, "memory.limit_in_bytes"), []byte("64M"), 0); err != nil {
		t.Skipf("cannot limit the cgroup: %v", err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Skipf("cannot re-execute the test binary: %v", err)
	}
	cmd := exec.Command("unshare", "--mount", "--ipc", "--propagation", "private", "sh", "-c",
		`echo $$ > "$1/cgroup.procs" && mount -t tmpfs -o size=1g shmtest /dev/shm && exec "$0" -test.run="^$2\$" -test.v -test.count=1`,
		exe, cg, t.Name())
	cmd.Env = append(os.Environ(), cgroupEnv+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: "+t.Name()) {
		t.Fatalf("in a 64 MiB memory cgroup: %v\n%s", err, out)
	}
	t.Logf("in a 64 MiB memory cgroup:\n%s", out)
}

// overMemoryCgroup is the child's side of TestCreateOverMemoryCgroup.
func overMemoryCgroup(t *testing.T) {
	const big = 256 << 20
	name := uniqueName(t)
	cleanup(t, name)
	// The refusal comes before any call, so its Op is the function's own
	// (doc.go's rule), never "fallocate", a call not made.
	_, err := shm.Create(name, big)
	if !errors.Is(err, syscall.ENOMEM) || opOf(err) != "openfile" {
		t.Fatalf("Create(%d) = %v, want ENOMEM with Op openfile", big, err)
	}
	t.Logf("Create: %v", err)
	if _, err := shm.CreateMemfd("big", big); !errors.Is(err, syscall.ENOMEM) || opOf(err) != "creatememfd" {
		t.Fatalf("CreateMemfd(%d) = %v, want ENOMEM with Op creatememfd", big, err)
	}
	s := create(t, 4096)
	if err := s.Truncate(big); !errors.Is(err, syscall.ENOMEM) || opOf(err) != "truncate" || s.Size() != 4096 {
		t.Fatalf("Truncate(%d) = %v, Size %d; want ENOMEM with Op truncate, 4096", big, err, s.Size())
	}
	// What fits still works.
	if err := s.Truncate(8 << 20); err != nil {
		t.Fatalf("Truncate(8 MiB): %v", err)
	}
	entries, _ := os.ReadDir("/dev/shm")
	for _, e := range entries {
		if "/"+e.Name() != s.Name() {
			t.Errorf("left in /dev/shm: %s", e.Name())
		}
	}
}

// TestCgroupRoomV2 (issue 14 item 4): the room the check finds in a
// cgroup v2 hierarchy laid out as the kernel does (memory.max,
// memory.current, memory.stat), from /proc/self/cgroup's "0::PATH" and a
// cgroup2 mount in mountinfo: the least along the hierarchy, less a
// sixteenth of the limit kept for the cgroup's processes, reclaimable file
// cache counted but not the mapped part of it, a level without a limit
// ("max") ignored, and no limit at all reported as such.
//
// Kills: reading only the process's own cgroup (the parent's tighter limit
// is missed); not counting file cache (a cgroup full of cache refuses
// what the kernel would fit); counting mapped file pages or the reserve
// as room; "max" read as a number.
func TestCgroupRoomV2(t *testing.T) {
	dir := t.TempDir()
	mnt := filepath.Join(dir, "cg")
	level := func(rel, max, current, stat string) {
		d := filepath.Join(mnt, rel)
		writeAll(t, filepath.Join(d, "cgroup.procs"), "")
		if max != "" {
			writeAll(t, filepath.Join(d, "memory.max"), max+"\n")
			writeAll(t, filepath.Join(d, "memory.current"), current+"\n")
			writeAll(t, filepath.Join(d, "memory.stat"), stat)
		}
	}
	level(".", "", "", "") // the root has no memory.max
	level("pod", "1000000000", "900000000", "anon 1\nactive_file 30000000\ninactive_file 20000000\nfile_mapped 4000000\nshmem 5\n")
	level("pod/app", "max", "800000000", "")
	writeAll(t, filepath.Join(dir, "cgroup"), "0::/pod/app\n")
	writeAll(t, filepath.Join(dir, "mountinfo"),
		"22 1 0:5 / /proc rw - proc proc rw\n"+
			"30 22 0:26 / "+strings.ReplaceAll(mnt, " ", `\040`)+" rw,nosuid - cgroup2 cgroup2 rw\n")
	writeAll(t, filepath.Join(dir, "meminfo"), "MemTotal: 1 kB\nSwapFree: 0 kB\n")

	room, restore := shm.SetCgroupFiles(filepath.Join(dir, "cgroup"), filepath.Join(dir, "mountinfo"), filepath.Join(dir, "meminfo"))
	defer restore()
	got, where, ok := room()
	if want := int64(1000000000 - 900000000 - 1000000000/16 + 30000000 + 20000000 - 4000000); !ok || got != want || where != filepath.Join(mnt, "pod") {
		t.Fatalf("room = %d at %q (%v); want %d at the pod", got, where, ok, want)
	}
	writeAll(t, filepath.Join(mnt, "pod", "memory.max"), "max\n")
	room, restore2 := shm.SetCgroupFiles(filepath.Join(dir, "cgroup"), filepath.Join(dir, "mountinfo"), filepath.Join(dir, "meminfo"))
	defer restore2()
	if got, where, ok := room(); ok {
		t.Fatalf("without limits: room %d at %q, want none", got, where)
	}
}

// writeAll writes s to path, making its directories first.
func writeAll(t *testing.T, path, s string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

// fakeCgroupRoom points the memory cgroup check at a v2 hierarchy made up
// in a temporary directory whose only cgroup has room bytes left, until t
// ends.
func fakeCgroupRoom(t *testing.T, room int64) {
	t.Helper()
	dir := t.TempDir()
	mnt := filepath.Join(dir, "cg")
	d := filepath.Join(mnt, "pod")
	writeAll(t, filepath.Join(mnt, "cgroup.procs"), "")
	writeAll(t, filepath.Join(d, "cgroup.procs"), "")
	writeAll(t, filepath.Join(d, "memory.max"), "1000000000\n")
	writeAll(t, filepath.Join(d, "memory.current"), strconv.FormatInt(1000000000-1000000000/16-room, 10)+"\n")
	writeAll(t, filepath.Join(d, "memory.stat"), "")
	writeAll(t, filepath.Join(dir, "cgroup"), "0::/pod\n")
	writeAll(t, filepath.Join(dir, "mountinfo"), "30 22 0:26 / "+mnt+" rw - cgroup2 cgroup2 rw\n")
	writeAll(t, filepath.Join(dir, "meminfo"), "SwapFree: 0 kB\n")
	got, restore := shm.SetCgroupFiles(filepath.Join(dir, "cgroup"), filepath.Join(dir, "mountinfo"), filepath.Join(dir, "meminfo"))
	t.Cleanup(restore)
	if r, _, ok := got(); !ok || r != room {
		t.Fatalf("fake cgroup room = %d, %v; want %d", r, ok, room)
	}
}

// TestOpenFileTruncOverMemoryCgroup: OpenFile with os.O_TRUNC reserves size
// bytes exactly as Create does (fallocate of every page), so a size beyond
// the memory cgroup's room must be ENOMEM too, not an OOM kill. So must
// os.O_CREATE without os.O_EXCL of an existing object with os.O_TRUNC.
//
// Kills: open not checking the cgroup before an os.O_TRUNC reservation
// (no error: 16 MiB reserved with 2 MiB of room).
func TestOpenFileTruncOverMemoryCgroup(t *testing.T) {
	const room, big = 2 << 20, 16 << 20
	name := uniqueName(t)
	cleanup(t, name)
	s, err := shm.Create(name, 4096)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	fakeCgroupRoom(t, room)
	if _, err := shm.Create(uniqueName(t), big); !errors.Is(err, syscall.ENOMEM) {
		t.Fatalf("Create(%d) with %d bytes of room: %v, want ENOMEM", big, room, err)
	}
	for _, flag := range []int{os.O_RDWR | os.O_TRUNC, os.O_RDWR | os.O_CREATE | os.O_TRUNC} {
		s, err := shm.OpenFile(name, flag, 0o600, big, nil)
		if err == nil {
			s.Close()
		}
		if !errors.Is(err, syscall.ENOMEM) {
			t.Errorf("OpenFile(%#x, %d) with %d bytes of room: %v, want ENOMEM", flag, big, room, err)
		}
	}
}

// TestOpenFileTruncMissingIsENOENT: the cgroup check of os.O_TRUNC must not
// hide shm_open's own verdict: a missing object is ENOENT, whatever the
// room.
//
// Kills: answering the cgroup check's ENOMEM before asking shm_open
// (a missing name says ENOMEM).
func TestOpenFileTruncMissingIsENOENT(t *testing.T) {
	fakeCgroupRoom(t, 2<<20)
	name := uniqueName(t)
	if _, err := shm.OpenFile(name, os.O_RDWR|os.O_TRUNC, 0, 16<<20, nil); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("OpenFile(missing, O_TRUNC, 16 MiB) with 2 MiB of room: %v, want ENOENT", err)
	}
}

// TestTruncateChecksObjectGrowth: Truncate reserves only what the
// object grows by (fallocate of [current size, size)), so the memory cgroup
// check must count that, not the growth of this Mapping: after a peer grew
// the object to its final size, Truncate to that size reserves nothing
// and must not be refused with ENOMEM.
//
// Kills: checking what this Mapping grows by (size - len(data)) instead
// of what the object grows by (size - fstat's size): ENOMEM.
func TestTruncateChecksObjectGrowth(t *testing.T) {
	needFree(t, 20<<20)
	const big = 16 << 20
	s := create(t, 4096)
	peer, err := shm.Open(s.Name())
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	if err := peer.Truncate(big); err != nil {
		t.Fatal(err)
	}
	fakeCgroupRoom(t, 2<<20)
	if err := s.Truncate(big); err != nil {
		t.Fatalf("Truncate(%d) of a %d-byte object, nothing to reserve: %v", big, big, err)
	}
	if s.Size() != big {
		t.Fatalf("Size %d", s.Size())
	}
}

// TestTruncateDiskFileNotChecked: the memory cgroup check is about
// tmpfs pages, which are memory; growing a Mapping of an ordinary file on
// a disk file system reserves disk blocks, not memory, and must not be
// refused with ENOMEM because the cgroup has little memory left.
//
// Kills: checking every grow, whatever the file system (no onTmpfs
// test): ENOMEM for a file on disk.
func TestTruncateDiskFileNotChecked(t *testing.T) {
	dir := t.TempDir()
	var sfs syscall.Statfs_t
	if err := syscall.Statfs(dir, &sfs); err != nil || sfs.Type == 0x01021994 {
		t.Skipf("%s is tmpfs (or unknown): %v", dir, err)
	}
	f, err := os.OpenFile(filepath.Join(dir, "f"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(4096); err != nil {
		t.Fatal(err)
	}
	m, err := shm.MapFile(f, os.O_RDWR, 0, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	fakeCgroupRoom(t, 2<<20)
	if err := m.Truncate(16 << 20); err != nil {
		t.Fatalf("Truncate(16 MiB) of a file on disk with 2 MiB of cgroup memory left: %v", err)
	}
}

// TestTruncateMemfdOverMemoryCgroup: a memfd is memory (shmem), so its grow
// stays checked against the cgroup.
//
// Kills: exempting a memfd along with files on disk (onTmpfs not
// recognising shmem's TMPFS_MAGIC): Truncate reserves 16 MiB and
// succeeds.
func TestTruncateMemfdOverMemoryCgroup(t *testing.T) {
	m, err := shm.CreateMemfdWith("rv", 4096, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	fakeCgroupRoom(t, 2<<20)
	if err := m.Truncate(16 << 20); !errors.Is(err, syscall.ENOMEM) {
		t.Fatalf("memfd Truncate(16 MiB) with 2 MiB of room: %v, want ENOMEM", err)
	}
}

// inMemoryCgroup reports whether this run of t is the one inside a memory
// cgroup (v1, made by the parent as root) limited to limit bytes, with a
// private tmpfs of tmpfs (mount's size=) on /dev/shm. When it is not, it
// makes the cgroup, runs t again there, alone, and checks that it passed:
// a child the kernel killed (exit 137, the OOM killer) fails t; it returns
// false. t skips where that needs what is missing.
func inMemoryCgroup(t *testing.T, limit, tmpfs string) bool {
	t.Helper()
	if os.Getenv(cgroupEnv) != "" {
		return true
	}
	needUnshare(t, "making a memory cgroup needs root")
	root := "/sys/fs/cgroup/memory"
	if _, err := os.Stat(filepath.Join(root, "memory.limit_in_bytes")); err != nil {
		t.Skipf("no cgroup v1 memory hierarchy at %s: %v", root, err)
	}
	cg := filepath.Join(root, fmt.Sprintf("shmtest-%d-%x", os.Getpid(), rand.Uint64()))
	if err := os.Mkdir(cg, 0o755); err != nil {
		t.Skipf("cannot make a memory cgroup: %v", err)
	}
	t.Cleanup(func() {
		if err := os.Remove(cg); err != nil {
			t.Errorf("removing the cgroup: %v", err)
		}
	})
	if err := os.WriteFile(filepath.Join(cg, "memory.limit_in_bytes"), []byte(limit), 0); err != nil {
		t.Skipf("cannot limit the cgroup: %v", err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Skipf("cannot re-execute the test binary: %v", err)
	}
	run := "^" + strings.ReplaceAll(t.Name(), "/", "$/^") + "$"
	// The child runs a copy of the test binary that it writes itself, so
	// that the program's pages are file cache charged to its cgroup, as
	// a binary read in cold is (and counted as room if the check took
	// them for reclaimable).
	cmd := exec.Command("unshare", "--mount", "--ipc", "--propagation", "private", "sh", "-c",
		`echo $$ > "$1/cgroup.procs" && mount -t tmpfs -o size=$3 shmtest /dev/shm && cp "$0" "$4" && exec "$4" -test.run="$2" -test.v -test.count=1`,
		exe, cg, run, tmpfs, filepath.Join(t.TempDir(), "child.test"))
	cmd.Env = append(os.Environ(), cgroupEnv+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: "+t.Name()) {
		t.Fatalf("in a %s memory cgroup: %v\n%s", limit, err, out)
	}
	t.Logf("in a %s memory cgroup:\n%s", limit, out)
	return false
}

// TestPopulateOverMemoryCgroup (issue 21 item 9): every path that makes
// tmpfs pages resident is checked against the memory cgroup, whatever the
// size: in a 64 MiB memory cgroup (a race build's runtime alone needs more
// than 16) with a 1 GiB private /dev/shm, each of
// these returns an error wrapping syscall.ENOMEM (and leaves nothing in
// /dev/shm) instead of the child's OOM kill (exit 137), each in a child
// of its own:
//   - OpenFile with Options.Populate of an existing sparse object (shared,
//     private and read-only: reading a tmpfs hole allocates it too);
//   - OpenFile creating with Sparse and Populate;
//   - CreateMemfdWith with Sparse and Populate;
//   - MapFile with Populate of a sparse memfd's descriptor;
//   - a loop of 768 KiB Creates, and of 768 KiB Truncate grows (each
//     under the 1 MiB that 93dfd98 left unchecked).
//
// Kills (each subtest, "signal: killed" with exit 137 on 93dfd98): no
// check of Populate of an existing object; none of Sparse with Populate
// (create, memfd); none in MapFile; a size threshold for the check.
func TestPopulateOverMemoryCgroup(t *testing.T) {
	const big = 256 << 20
	cases := []struct {
		name string
		run  func(t *testing.T) error
	}{
		{"OpenPopulate", func(t *testing.T) error {
			name := uniqueName(t)
			cleanup(t, name)
			s, err := shm.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600, big, &shm.Options{Sparse: true})
			if err != nil {
				t.Fatal(err)
			}
			s.Close()
			var last error
			for _, o := range []struct {
				flag int
				opt  shm.Options
			}{
				{os.O_RDONLY, shm.Options{Populate: true}},
				{os.O_RDWR, shm.Options{Populate: true, Private: true}},
				{os.O_RDWR, shm.Options{Populate: true}},
			} {
				s, err := shm.OpenFile(name, o.flag, 0, 0, &o.opt)
				if err == nil {
					s.Close()
				}
				if !errors.Is(err, syscall.ENOMEM) {
					return fmt.Errorf("OpenFile(%#x, %+v) of a %d-byte sparse object: %v", o.flag, o.opt, big, err)
				}
				t.Logf("OpenFile(%#x, %+v): %v", o.flag, o.opt, err)
				last = err
			}
			return last
		}},
		{"CreateSparsePopulate", func(t *testing.T) error {
			name := uniqueName(t)
			cleanup(t, name)
			s, err := shm.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600, big, &shm.Options{Sparse: true, Populate: true})
			if err == nil {
				s.Close()
			}
			t.Logf("OpenFile(create, Sparse+Populate): %v", err)
			return err
		}},
		{"MemfdSparsePopulate", func(t *testing.T) error {
			s, err := shm.CreateMemfdWith("big", big, 0, &shm.Options{Sparse: true, Populate: true})
			if err == nil {
				s.Close()
			}
			t.Logf("CreateMemfdWith(Sparse+Populate): %v", err)
			return err
		}},
		{"MapFilePopulate", func(t *testing.T) error {
			s, err := shm.CreateMemfdWith("big", big, 0, &shm.Options{Sparse: true})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			f, err := s.File()
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			m, err := shm.MapFile(f, os.O_RDONLY, 0, 0, &shm.Options{Populate: true})
			if err == nil {
				m.Close()
			}
			t.Logf("MapFile(Populate): %v", err)
			return err
		}},
		{"SmallCreates", func(t *testing.T) error {
			for i := range big / (768 << 10) {
				name := uniqueName(t)
				s, err := shm.Create(name, 768<<10)
				if err != nil {
					t.Logf("Create %d of 768 KiB: %v", i, err)
					return err
				}
				cleanup(t, name)
				t.Cleanup(func() { s.Close() })
			}
			return nil
		}},
		{"SmallTruncates", func(t *testing.T) error {
			s := create(t, 4096)
			for i := 1; i <= big/(768<<10); i++ {
				if err := s.Truncate(i * 768 << 10); err != nil {
					t.Logf("Truncate %d by 768 KiB: %v", i, err)
					return err
				}
			}
			return nil
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if !inMemoryCgroup(t, "64M", "1g") {
				return
			}
			if err := c.run(t); !errors.Is(err, syscall.ENOMEM) {
				t.Fatalf("%v, want an error wrapping ENOMEM", err)
			}
			for _, e := range listDir(t, "/dev/shm") {
				if strings.Contains(e, "~") || strings.Contains(e, "big") {
					t.Errorf("left in /dev/shm: %s", e)
				}
			}
		})
	}
}

// listDir lists the names in dir.
func listDir(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// opOf is the Op of err's *fs.PathError, or "" if it has none.
func opOf(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Op
	}
	return ""
}

// TestHostRoom: where no cgroup limit binds, a reservation beyond the
// host's memory (MemAvailable and SwapFree, less a sixteenth of MemTotal)
// is ENOMEM before any page is reserved: a memfd's internal tmpfs has no
// size limit, and CreateMemfd("huge", math.MaxInt) filled the host's RAM
// until the OOM killer came (the third review). A size that fits is made.
//
// Kills: no host check (the fake host's 200 MB memfd is made, and the
// MaxInt one is an OOM kill); SwapFree or the reserve left out (the
// 50 MB one, which fits only with both counted right, fails or the 60 MB
// one is made).
func TestHostRoom(t *testing.T) {
	dir := t.TempDir()
	writeAll(t, filepath.Join(dir, "cgroup"), "0::/\n") // no cgroup mounted: no cgroup limit
	writeAll(t, filepath.Join(dir, "mountinfo"), "22 1 0:5 / /proc rw - proc proc rw\n")
	// 160 MB of RAM, 40 MB available and 20 MB of free swap: 60 - 10 = 50 MB of room
	writeAll(t, filepath.Join(dir, "meminfo"), "MemTotal: 156250 kB\nMemFree: 1000 kB\nMemAvailable: 39063 kB\nSwapFree: 19532 kB\n")
	_, restore := shm.SetCgroupFiles(filepath.Join(dir, "cgroup"), filepath.Join(dir, "mountinfo"), filepath.Join(dir, "meminfo"))
	t.Cleanup(restore)
	for _, c := range []struct {
		size int
		fits bool
	}{{200 << 20, false}, {60_000_000, false}, {49_000_000, true}, {math.MaxInt, false}} { // MaxInt last: only once the check is seen working
		m, err := shm.CreateMemfd("host-room", c.size)
		if err == nil {
			m.Close()
		}
		if c.fits && err != nil || !c.fits && !errors.Is(err, syscall.ENOMEM) {
			t.Fatalf("CreateMemfd of %d bytes on a host with 50 MB of room: %v, want fits=%v (else ENOMEM)", c.size, err, c.fits)
		}
	}
}
