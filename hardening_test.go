package shm_test

// Tests for defects that outside testing reproduced: each fails on the code
// before its fix. The mutation each one kills is named in its comment.

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/posixshm/shm"
)

const shmSizeEnv = "SHM_TEST_SHM_SIZE"

// inSmallDevShm reports whether this run of t is the one inside a private
// mount namespace with a tmpfs of size (as mount's size= takes it) on
// /dev/shm. When it is not, it runs t again there, alone, checks that it
// passed, and returns false; t skips where that needs what is missing.
func inSmallDevShm(t *testing.T, size string) bool {
	t.Helper()
	if os.Getenv(shmSizeEnv) == size {
		return true
	}
	if os.Geteuid() != 0 {
		t.Skip("mounting a small /dev/shm needs root")
	}
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("needs unshare(1) to mount a small /dev/shm")
	}
	if out, err := exec.Command("unshare", "--mount", "--ipc", "true").CombinedOutput(); err != nil {
		t.Skipf("unshare --mount --ipc is not permitted here: %v %s", err, out)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Skipf("cannot re-execute the test binary: %v", err)
	}
	cmd := exec.Command("unshare", "--mount", "--ipc", "--propagation", "private", "sh", "-c",
		`mount -t tmpfs -o size=`+size+` shmtest /dev/shm && exec "$0" -test.run="^$1\$" -test.v -test.count=1`,
		exe, t.Name())
	cmd.Env = append(os.Environ(), shmSizeEnv+"="+size)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: "+t.Name()) {
		t.Fatalf("in a %s /dev/shm: %v\n%s", size, err, out)
	}
	t.Logf("in a %s /dev/shm:\n%s", size, out)
	return false
}

// needFree skips t where /dev/shm has less than n bytes free: a small
// container's; the host run covers it.
func needFree(t *testing.T, n int64) {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs("/dev/shm", &st); err != nil || int64(st.Bavail)*int64(st.Bsize) < n {
		t.Skipf("/dev/shm has less than %d bytes free (a small container's); the host run covers this", n)
	}
}

// nonResident returns the number of pages of b that are not in memory.
func nonResident(t *testing.T, b []byte) int {
	t.Helper()
	page := os.Getpagesize()
	vec := make([]byte, (len(b)+page-1)/page)
	if _, _, e := syscall.Syscall(syscall.SYS_MINCORE, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)), uintptr(unsafe.Pointer(&vec[0]))); e != 0 {
		t.Fatalf("mincore: %v", e)
	}
	n := 0
	for _, v := range vec {
		if v&1 == 0 {
			n++
		}
	}
	return n
}

// populateCases are the three ways to ask for Populate of a sparse object
// of size bytes called name: a new object, an existing one, a file.
func populateCases(t *testing.T, name string, size int) map[string]func() (interface{ Bytes() []byte }, error) {
	opt := &shm.Options{Sparse: true, Populate: true}
	makeSparse := func() {
		s, err := shm.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600, size, &shm.Options{Sparse: true})
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
	}
	return map[string]func() (interface{ Bytes() []byte }, error){
		"Create": func() (interface{ Bytes() []byte }, error) {
			return shm.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600, size, opt)
		},
		"Open": func() (interface{ Bytes() []byte }, error) {
			makeSparse()
			return shm.OpenFile(name, os.O_RDWR, 0, 0, opt)
		},
		"MapFile": func() (interface{ Bytes() []byte }, error) {
			makeSparse()
			f, err := os.OpenFile(devPath(name), os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			return shm.MapFile(f, os.O_RDWR, 0, 0, opt)
		},
	}
}

// TestPopulateCoversEveryPage (item 1): a parallel Populate faults in the
// last page too, whatever the size and GOMAXPROCS. Kills: chunk size
// rounded before dividing (the workers stop short of the end).
func TestPopulateCoversEveryPage(t *testing.T) {
	needFree(t, 2*(70<<20+4096))
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	for _, c := range []struct{ procs, size int }{{2, 64<<20 + 1}, {8, 64<<20 + 7}, {3, 70<<20 + 4096}} {
		runtime.GOMAXPROCS(c.procs)
		for how, populate := range populateCases(t, "", 0) {
			_ = populate
			name := uniqueName(t)
			cleanup(t, name)
			m, err := populateCases(t, name, c.size)[how]()
			if err != nil {
				t.Fatalf("%s, GOMAXPROCS %d, %d bytes: %v", how, c.procs, c.size, err)
			}
			if n := nonResident(t, m.Bytes()); n != 0 {
				t.Errorf("%s, GOMAXPROCS %d, %d bytes: %d pages not populated", how, c.procs, c.size, n)
			}
			m.(interface{ Close() error }).Close()
			shm.Unlink(name)
		}
	}
}

// TestPopulateFullDevShm (items 1 and 8): in a 64 MiB /dev/shm a sparse
// object of 64 MiB and a byte cannot be populated: every way to ask is an
// error, never a mapping whose last page SIGBUSes; on kernels without
// MADV_POPULATE_* (simulated) too. Kills: the short chunk of item 1, and
// the unchecked MAP_POPULATE fallback of item 8.
func TestPopulateFullDevShm(t *testing.T) {
	if !inSmallDevShm(t, "64m") {
		return
	}
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	for _, procs := range []int{2, 8} {
		runtime.GOMAXPROCS(procs)
		for _, oldKernel := range []bool{false, true} {
			for how := range populateCases(t, "", 0) {
				name := uniqueName(t)
				cleanup(t, name)
				restore := func() {}
				if oldKernel {
					restore = shm.SetNoMadvPopulate()
				}
				m, err := populateCases(t, name, 64<<20+1)[how]()
				restore()
				if err == nil {
					n := nonResident(t, m.Bytes())
					m.(interface{ Close() error }).Close()
					t.Fatalf("%s, GOMAXPROCS %d, old kernel %v: no error, %d pages not populated", how, procs, oldKernel, n)
				}
				if !errors.Is(err, syscall.EFAULT) || !strings.Contains(err.Error(), "cannot be populated") {
					t.Errorf("%s, old kernel %v: error %v does not say a page cannot be populated", how, oldKernel, err)
				}
				if how == "Create" && exists(name) {
					t.Errorf("failed populate left %s", name)
				}
				shm.Unlink(name)
			}
		}
	}
	// The simulated old kernel still populates what fits.
	restore := shm.SetNoMadvPopulate()
	defer restore()
	name := uniqueName(t)
	cleanup(t, name)
	s, err := shm.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600, 8<<20, &shm.Options{Sparse: true, Populate: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if n := nonResident(t, s.Bytes()); n != 0 {
		t.Fatalf("MAP_POPULATE fallback: %d pages not populated", n)
	}
}

// TestFailedCreateNeverRemovesAnotherObject (item 2): a peer runs "remove
// stale, then create exclusively" on a name while this process's Creates of
// that name keep failing (ENOSPC in a 16 MiB /dev/shm); none of the
// failures may remove the peer's object. Kills: unlinking the real name on
// the failure path (the code before atomic publish removed the peer's
// object in about 1 % of failures).
func TestFailedCreateNeverRemovesAnotherObject(t *testing.T) {
	if !inSmallDevShm(t, "16m") {
		return
	}
	peer := buildC(t, "stalepeer")
	name := uniqueName(t)
	cleanup(t, name)
	cmd := exec.Command(peer, name, "20000")
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var failed, enospc int
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-done:
				return
			default:
			}
			s, err := shm.Create(name, 32<<20)
			if err == nil {
				s.Close()
				t.Error("a 32 MiB Create succeeded in a 16 MiB /dev/shm")
				return
			}
			failed++
			if errors.Is(err, syscall.ENOSPC) {
				enospc++
			}
		}
	})
	line, _ := bufio.NewReader(out).ReadString('\n')
	werr := cmd.Wait()
	close(done)
	wg.Wait()
	var created, foreign int
	if _, err := fmt.Sscanf(line, "created %d foreign %d", &created, &foreign); err != nil || werr != nil {
		t.Fatalf("peer: %q, %v", line, werr)
	}
	t.Logf("peer created %d objects; %d failed Creates here (%d ENOSPC); foreign removals: %d", created, failed, enospc, foreign)
	if enospc < 100 {
		t.Fatalf("only %d Creates failed with ENOSPC: the race was not exercised", enospc)
	}
	if foreign != 0 {
		t.Fatalf("failed Creates removed the peer's object %d times", foreign)
	}
}

// TestCreatePublishesAtomically (item 2): while a Create is reserving a
// large object, its name does not exist: a peer's Open never sees a
// half-made object; afterwards no temporary name is left. Kills: creating
// under the real name (Open would see the object before it is sized).
func TestCreatePublishesAtomically(t *testing.T) {
	needFree(t, 2*256<<20)
	name := uniqueName(t)
	cleanup(t, name)
	before := listDevShm(t)
	done := make(chan error)
	go func() {
		s, err := shm.Create(name, 256<<20)
		if err == nil {
			err = s.Close()
		}
		done <- err
	}()
	opened := 0
	for finished := false; !finished; {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			finished = true
		default:
		}
		s, err := shm.Open(name)
		if err != nil {
			if !errors.Is(err, fs.ErrNotExist) {
				t.Fatal(err)
			}
			continue
		}
		opened++
		if s.Size() != 256<<20 {
			t.Fatalf("Open saw the object at size %d before Create returned", s.Size())
		}
		s.Close()
	}
	if fi, err := os.Stat(devPath(name)); err != nil || fi.Size() != 256<<20 || fi.Mode().Perm() != 0o600 {
		t.Fatalf("published object: %v, %v", fi, err)
	}
	for n := range listDevShm(t) {
		if !before[n] && "/"+n != name && strings.HasPrefix(n, strings.TrimLeft(name, "/")) {
			t.Errorf("left behind: %s", n)
		}
	}
	t.Logf("%d Opens saw the finished object, none a half-made one", opened)
}

func listDevShm(t *testing.T) map[string]bool {
	t.Helper()
	entries, err := os.ReadDir("/dev/shm")
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]bool{}
	for _, e := range entries {
		m[e.Name()] = true
	}
	return m
}

// TestCreateNamesAtLimits (item 2): names that cannot take a temporary
// suffix (NAME_MAX long) still create; names libc refuses are refused with
// libc's errno, and nothing is left. The differential TestNamesMatchLibc
// covers the rest against glibc and musl. Kills: deriving the temporary
// name without cutting it to NAME_MAX (ENAMETOOLONG for a valid name).
func TestCreateNamesAtLimits(t *testing.T) {
	base := strings.TrimLeft(uniqueName(t), "/")
	for _, n := range []int{255, 254, 250} {
		name := "/" + base + strings.Repeat("x", n-len(base))
		cleanup(t, name)
		s, err := shm.Create(name, 4096)
		if err != nil {
			t.Fatalf("%d-byte name: %v", n, err)
		}
		s.Close()
		if !exists(name) {
			t.Fatalf("%d-byte name not published", n)
		}
	}
	long := "/" + base + strings.Repeat("x", 256-len(base))
	_, err := shm.Create(long, 4096)
	wantPathErr(t, err, "shm_open", long, syscall.ENAMETOOLONG)
}

// TestOpenOrCreateCreated (item 2): OpenFile with os.O_CREATE tells truly
// whether it created the object, also when it populates in parallel (where
// publishing is a second step). Kills: reporting Created from the open-or-
// create path without checking which branch made it.
func TestOpenOrCreateCreated(t *testing.T) {
	needFree(t, 2*64<<20)
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	for _, size := range []int{4096, 64 << 20} {
		name := uniqueName(t)
		cleanup(t, name)
		opt := &shm.Options{Populate: true}
		a, err := shm.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o600, size, opt)
		if err != nil {
			t.Fatal(err)
		}
		b, err := shm.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o600, size, opt)
		if err != nil {
			t.Fatal(err)
		}
		if !a.Created() || b.Created() {
			t.Errorf("size %d: Created %v then %v, want true then false", size, a.Created(), b.Created())
		}
		a.Bytes()[size-1] = 7
		if b.Bytes()[size-1] != 7 {
			t.Error("the two do not share the object")
		}
		a.Close()
		b.Close()
	}
}

// TestNonRegularNames (item 3): a FIFO, directory or socket under a name
// is refused at once with a clear error, nothing mapped, no descriptor
// left; opening never blocks. Kills: shm_open without O_NONBLOCK (the
// FIFO hangs) and the missing S_ISREG check (the socket and directory
// "open" as empty objects).
func TestNonRegularNames(t *testing.T) {
	fifo := uniqueName(t)
	if err := syscall.Mkfifo(devPath(fifo), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(devPath(fifo)) })
	dir := uniqueName(t)
	if err := os.Mkdir(devPath(dir), 0o700); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(devPath(dir)) })
	sock := uniqueName(t)
	l, err := net.Listen("unix", devPath(sock))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })

	fds := countFDs(t)
	for _, c := range []struct {
		name string
		flag int
		want error // nil: EISDIR or EINVAL
	}{
		{fifo, os.O_RDONLY, syscall.ENODEV},
		{fifo, os.O_RDWR, syscall.ENODEV},
		{fifo, os.O_RDWR | os.O_CREATE, syscall.ENODEV},
		{fifo, os.O_RDWR | os.O_CREATE | os.O_EXCL, fs.ErrExist},
		{dir, os.O_RDONLY, syscall.ENODEV},
		{dir, os.O_RDWR, nil}, // the kernel's EISDIR, which glibc makes EINVAL
		{sock, os.O_RDONLY, syscall.ENXIO},
	} {
		size := 0
		if c.flag&os.O_CREATE != 0 {
			size = 4096
		}
		done := make(chan error, 1)
		go func() {
			s, err := shm.OpenFile(c.name, c.flag, 0o600, size, nil)
			if err == nil {
				s.Close()
			}
			done <- err
		}()
		select {
		case err := <-done:
			wantPathErr(t, err, "shm_open", c.name, c.want)
			if c.want == nil && !errors.Is(err, syscall.EISDIR) && !errors.Is(err, syscall.EINVAL) {
				t.Errorf("directory opened read-write: %v", err)
			}
			if errors.Is(c.want, syscall.ENODEV) && !strings.Contains(err.Error(), "not a regular file") {
				t.Errorf("error %q does not say why", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("OpenFile(%s, %#x) blocks", c.name, c.flag)
		}
	}
	if n := countFDs(t); n != fds {
		t.Fatalf("%d descriptors open, %d before", n, fds)
	}
}

func countFDs(t *testing.T) int {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(fds)
}

// TestMapFileNonRegular (item 4): MapFile of a pipe, socket, directory,
// /proc file or character device is an error wrapping ENODEV, not an empty
// Mapping. Kills: the missing regular-file check, and the missing probe
// of empty regular files (/proc's).
func TestMapFileNonRegular(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	sock := os.NewFile(uintptr(fds[0]), "socket")
	defer sock.Close()
	syscall.Close(fds[1])
	dir, err := os.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer dir.Close()
	proc, err := os.Open("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	defer proc.Close()
	zero, err := os.Open("/dev/zero")
	if err != nil {
		t.Fatal(err)
	}
	defer zero.Close()
	for _, f := range []*os.File{r, sock, dir, proc, zero} {
		m, err := shm.MapFile(f, os.O_RDONLY, 0, 0, nil)
		if err == nil {
			m.Close()
			t.Errorf("MapFile(%s) = %d-byte mapping, no error", f.Name(), m.Size())
			continue
		}
		wantPathErr(t, err, "mmap", f.Name(), syscall.ENODEV)
		if f != proc && !strings.Contains(err.Error(), "not a regular file") {
			t.Errorf("error %q does not say why", err)
		}
	}
	// An empty regular file is still an empty Mapping.
	empty, err := os.Create(filepath.Join(t.TempDir(), "empty"))
	if err != nil {
		t.Fatal(err)
	}
	defer empty.Close()
	m, err := shm.MapFile(empty, os.O_RDONLY, 0, 0, nil)
	if err != nil || m.Size() != 0 {
		t.Fatalf("empty file: %v", err)
	}
	m.Close()
}

// TestMapFileLargeOffset (item 5): an offset past 4 GiB maps that offset,
// on 32-bit systems too. Kills: the shim built without
// _FILE_OFFSET_BITS=64 (on GOARCH=386 it mapped offset 0).
func TestMapFileLargeOffset(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "big"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	const off = 4<<30 + 8192
	if _, err := f.WriteAt([]byte("at zero"), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("past 4 GiB"), off); err != nil || f.Truncate(off+4096) != nil {
		t.Skipf("no sparse file past 4 GiB here: %v", err)
	}
	m, err := shm.MapFile(f, os.O_RDONLY, off, 4096, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if got := string(m.Bytes()[:10]); got != "past 4 GiB" {
		t.Fatalf("mapped %q at offset %d", got, int64(off))
	}
}

// TestMapFilePopulateReadOnly (item 6): Populate of a read-write file
// mapping neither dirties nor allocates the file. Kills: populating file
// mappings with MADV_POPULATE_WRITE (32 MiB allocated).
func TestMapFilePopulateReadOnly(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "sparse"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(32 << 20); err != nil {
		t.Fatal(err)
	}
	m, err := shm.MapFile(f, os.O_RDWR, 0, 0, &shm.Options{Populate: true})
	if err != nil {
		t.Fatal(err)
	}
	if n := nonResident(t, m.Bytes()); n != 0 {
		t.Errorf("%d pages not populated", n)
	}
	m.Close()
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	if st.Blocks != 0 {
		t.Fatalf("Populate allocated %d bytes of the file", st.Blocks*512)
	}
}

// TestFaultInCallersBuffer (item 7): a fault in the caller's buffer is not
// the Segment's: ReadAt into a read-only mapping, and WriteAt from a
// truncated one, fault as a plain copy would (here, with the goroutine's
// SetPanicOnFault, a panic whose address is in the caller's buffer), not
// ErrFault. Kills: turning every fault during the copy into ErrFault.
func TestFaultInCallersBuffer(t *testing.T) {
	page := os.Getpagesize()
	a := create(t, 2*page)
	ro, err := shm.OpenFile(a.Name(), os.O_RDONLY, 0, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	b := create(t, 2*page)
	bfull := b.Bytes()
	if err := os.Truncate(devPath(b.Name()), int64(page)); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		what string
		call func() (int, error)
		buf  []byte
	}{
		{"ReadAt into a read-only mapping", func() (int, error) { return a.ReadAt(ro.Bytes(), 0) }, ro.Bytes()},
		{"WriteAt from a truncated mapping", func() (int, error) { return a.WriteAt(bfull[page:], 0) }, bfull},
	} {
		addr, n, err := panicAddr(c.call)
		if err != nil || n != 0 {
			t.Errorf("%s: returned %d, %v; want the fault of a plain copy", c.what, n, err)
			continue
		}
		base := uintptr(unsafe.Pointer(&c.buf[0]))
		if addr < base || addr >= base+uintptr(len(c.buf)) {
			t.Errorf("%s: fault at %#x, outside the caller's buffer", c.what, addr)
		}
	}
	// The Segment's own faults are still ErrFault.
	if _, err := b.ReadAt(make([]byte, 8), int64(page)); !errors.Is(err, shm.ErrFault) {
		t.Fatalf("ReadAt of b's truncated page: %v", err)
	}
}

// panicAddr runs call in a goroutine that panics on faults and returns the
// address of the fault, or call's results if it did not fault.
func panicAddr(call func() (int, error)) (addr uintptr, n int, err error) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		debug.SetPanicOnFault(true)
		defer func() {
			if r := recover(); r != nil {
				if f, ok := r.(interface{ Addr() uintptr }); ok {
					addr = f.Addr()
					return
				}
				panic(r)
			}
		}()
		n, err = call()
	}()
	<-done
	return addr, n, err
}

// TestBadArgumentsWrapEINVAL (item 9): every bad argument wraps
// syscall.EINVAL, with a path and an Op that names the call. Kills: a
// negative offset or a nil file error without EINVAL.
func TestBadArgumentsWrapEINVAL(t *testing.T) {
	s := create(t, 4096)
	errs := map[string]error{}
	_, errs["ReadAt(-1)"] = s.ReadAt(make([]byte, 1), -1)
	_, errs["WriteAt(-1)"] = s.WriteAt(make([]byte, 1), -1)
	_, errs["MapFile(nil)"] = shm.MapFile(nil, os.O_RDONLY, 0, 0, nil)
	_, errs["OpenFile(size -1)"] = shm.OpenFile(s.Name(), os.O_RDWR|os.O_CREATE, 0o600, -1, nil)
	errs["SyncRange(-1)"] = s.SyncRange(-1, 1, syscall.MS_SYNC)
	_, errs["CreateTemp(a/b)"] = shm.CreateTemp("a/b*", 4096)
	_, errs["Create(NUL)"] = shm.Create("/a\x00b", 4096)
	for call, err := range errs {
		var pe *fs.PathError
		if !errors.Is(err, syscall.EINVAL) || !errors.As(err, &pe) || pe.Path == "" || pe.Op == "" {
			t.Errorf("%s: %v (%T); want an *fs.PathError wrapping EINVAL", call, err, err)
		}
		if strings.Contains(fmt.Sprint(err), "  ") || strings.Contains(fmt.Sprint(err), " :") {
			t.Errorf("%s: message %q has an empty part", call, err)
		}
	}
}

// TestBuildOtherSystems (item 10): other systems get a compile error that
// names Linux; go doc works with CGO_ENABLED=0. Kills: a cgo-only build
// constraint (darwin said "build with cgo"), and the package doc in a
// tagged file (go doc printed no package doc).
func TestBuildOtherSystems(t *testing.T) {
	gocmd := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(gocmd); err != nil {
		t.Skipf("no go command at %s", gocmd)
	}
	for _, env := range [][]string{{"GOOS=darwin", "GOARCH=arm64", "CGO_ENABLED=1"}, {"GOOS=windows", "GOARCH=amd64", "CGO_ENABLED=0"}, {"GOOS=freebsd", "GOARCH=amd64"}} {
		cmd := exec.Command(gocmd, "build", "-o", os.DevNull, ".")
		cmd.Env = append(os.Environ(), env...)
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), "shm_is_linux_only") || strings.Contains(string(out), "shm_requires_cgo") {
			t.Errorf("%v: want only the Linux message: %v\n%s", env, err, out)
		}
	}
	cmd := exec.Command(gocmd, "doc", ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "POSIX shared memory") {
		t.Fatalf("CGO_ENABLED=0 go doc: %v\n%s", err, out)
	}
	// One receiver name for Segment's methods, own and promoted.
	out, err = exec.Command(gocmd, "doc", "-all", ".").CombinedOutput()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "func (s *Segment)") {
		t.Errorf("go doc shows two receiver names for Segment")
	}
	_ = strconv.Itoa
}

// TestConcurrentCreateOneWinner (item 2): goroutines racing to Create one
// name, with a parallel populate (so publishing is OpenFile's second step):
// exactly one wins, the others get EEXIST, and no temporary name is left.
// Kills: a publish failure on that path that does not remove the
// temporary name (three 64 MiB objects leaked per round).
func TestConcurrentCreateOneWinner(t *testing.T) {
	const size, racers = 64 << 20, 4
	needFree(t, (racers+1)*size)
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	for round := range 10 {
		name := uniqueName(t)
		cleanup(t, name)
		var wg sync.WaitGroup
		errs := make([]error, racers)
		for i := range racers {
			wg.Go(func() {
				s, err := shm.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600, size, &shm.Options{Populate: true})
				if err == nil {
					err = s.Close()
				}
				errs[i] = err
			})
		}
		wg.Wait()
		won := 0
		for _, err := range errs {
			switch {
			case err == nil:
				won++
			case !errors.Is(err, fs.ErrExist):
				t.Errorf("round %d: a loser got %v, want EEXIST", round, err)
			}
		}
		if won != 1 {
			t.Errorf("round %d: %d winners", round, won)
		}
		for n := range listDevShm(t) {
			if strings.HasPrefix(n, strings.TrimLeft(name, "/")+".~") {
				t.Errorf("round %d: left behind: %s", round, n)
			}
		}
	}
}

// TestCreateOverUnopenable (item 2): a name held by something the probe
// cannot open (a dangling symlink, a socket) is EEXIST, as
// shm_open(O_CREAT|O_EXCL) says, even when the reservation fails first.
// Kills: reporting the failed reservation (ENOSPC) without looking at the
// name again.
func TestCreateOverUnopenable(t *testing.T) {
	sym := uniqueName(t)
	if err := os.Symlink("/nonexistent", devPath(sym)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(devPath(sym)) })
	sock := uniqueName(t)
	l, err := net.Listen("unix", devPath(sock))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	before := listDevShm(t)
	for _, name := range []string{sym, sock} {
		_, err := shm.Create(name, hugeSize)
		wantPathErr(t, err, "shm_open", name, fs.ErrExist)
	}
	for n := range listDevShm(t) {
		if !before[n] {
			t.Errorf("left behind: %s", n)
		}
	}
}
