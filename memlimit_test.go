package shm_test

// The memory cgroup check (memlimit.go): a reservation that cannot fit in
// the cgroup's limit is ENOMEM, not an OOM kill.

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
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
	_, err := shm.Create(name, big)
	if !errors.Is(err, syscall.ENOMEM) {
		t.Fatalf("Create(%d) = %v, want ENOMEM", big, err)
	}
	t.Logf("Create: %v", err)
	if _, err := shm.CreateMemfd("big", big); !errors.Is(err, syscall.ENOMEM) {
		t.Fatalf("CreateMemfd(%d) = %v, want ENOMEM", big, err)
	}
	s := create(t, 4096)
	if err := s.Truncate(big); !errors.Is(err, syscall.ENOMEM) || s.Size() != 4096 {
		t.Fatalf("Truncate(%d) = %v, Size %d; want ENOMEM, 4096", big, err, s.Size())
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
// cgroup2 mount in mountinfo: the least along the hierarchy, reclaimable
// file cache counted, a level without a limit ("max") ignored, and no
// limit at all reported as such.
//
// Kills: reading only the process's own cgroup (the parent's tighter limit
// is missed); not counting file cache (a cgroup full of cache refuses
// what the kernel would fit); "max" read as a number.
func TestCgroupRoomV2(t *testing.T) {
	dir := t.TempDir()
	mnt := filepath.Join(dir, "cg")
	write := func(path, s string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	level := func(rel, max, current, stat string) {
		d := filepath.Join(mnt, rel)
		write(filepath.Join(d, "cgroup.procs"), "")
		if max != "" {
			write(filepath.Join(d, "memory.max"), max+"\n")
			write(filepath.Join(d, "memory.current"), current+"\n")
			write(filepath.Join(d, "memory.stat"), stat)
		}
	}
	level(".", "", "", "") // the root has no memory.max
	level("pod", "1000000000", "900000000", "anon 1\nactive_file 30000000\ninactive_file 20000000\nshmem 5\n")
	level("pod/app", "max", "800000000", "")
	write(filepath.Join(dir, "cgroup"), "0::/pod/app\n")
	write(filepath.Join(dir, "mountinfo"),
		"22 1 0:5 / /proc rw - proc proc rw\n"+
			"30 22 0:26 / "+strings.ReplaceAll(mnt, " ", `\040`)+" rw,nosuid - cgroup2 cgroup2 rw\n")
	write(filepath.Join(dir, "meminfo"), "MemTotal: 1 kB\nSwapFree: 0 kB\n")

	room, restore := shm.SetCgroupFiles(filepath.Join(dir, "cgroup"), filepath.Join(dir, "mountinfo"), filepath.Join(dir, "meminfo"))
	defer restore()
	got, where, ok := room()
	if want := int64(1000000000 - 900000000 + 30000000 + 20000000); !ok || got != want || where != filepath.Join(mnt, "pod") {
		t.Fatalf("room = %d at %q (%v); want %d at the pod", got, where, ok, want)
	}
	write(filepath.Join(mnt, "pod", "memory.max"), "max\n")
	room, restore2 := shm.SetCgroupFiles(filepath.Join(dir, "cgroup"), filepath.Join(dir, "mountinfo"), filepath.Join(dir, "meminfo"))
	defer restore2()
	if got, where, ok := room(); ok {
		t.Fatalf("without limits: room %d at %q, want none", got, where)
	}
}
