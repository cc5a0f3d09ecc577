package shm_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
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

// TestMapFile: MapFile maps the requested part of a file, shared,
// read-only or private; ReadAt and WriteAt are fault-safe when the file
// shrinks; bad arguments are refused.
//
// Kills (among others): a read-write mapping made MAP_PRIVATE (the write
// never reaches the file); the file offset ignored.
func TestMapFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "data")
	page := os.Getpagesize()
	content := bytes.Repeat([]byte("0123456789abcdef"), 3*page/16)
	if err := os.WriteFile(path, content, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	m, err := shm.MapFile(f, os.O_RDWR, int64(page), 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	f.Close() // the mapping does not need the file open
	if m.Size() != 2*page || !bytes.Equal(m.Bytes(), content[page:]) {
		t.Fatalf("mapped %d bytes, want the last two pages", m.Size())
	}
	// A shared mapping: read(2) sees a write through it at once. (Whether
	// msync writes it back to the disk, reading cannot tell: that is
	// TestMapFileSync's.)
	if _, err := m.WriteAt([]byte("XYZ"), 10); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(path)
	if string(got[page+10:page+13]) != "XYZ" {
		t.Fatal("write through the mapping did not reach the file")
	}
	buf := make([]byte, 5)
	if n, err := m.ReadAt(buf, int64(2*page-3)); n != 3 || err != io.EOF || string(buf[:3]) != string(content[3*page-3:]) {
		t.Fatalf("ReadAt at the end = %d, %v", n, err)
	}
	// The file shrinks under the mapping: fault-safe, like a segment.
	if err := os.Truncate(path, int64(2*page)); err != nil {
		t.Fatal(err)
	}
	if _, err := m.ReadAt(buf, int64(page)); !errors.Is(err, shm.ErrFault) {
		t.Fatalf("ReadAt of a truncated page = %v, want ErrFault", err)
	}
	if _, err := m.WriteAt(buf, int64(page)); !errors.Is(err, shm.ErrFault) {
		t.Fatalf("WriteAt to a truncated page = %v, want ErrFault", err)
	}
	if err := os.Truncate(path, int64(3*page)); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(path, content, 0o600)
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	wantPathErr(t, m.Close(), "close", path, fs.ErrClosed)

	// Read-only and private mappings.
	f, _ = os.Open(path)
	defer f.Close()
	ro, err := shm.MapFile(f, os.O_RDONLY, 0, page, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	_, err = ro.WriteAt([]byte("x"), 0)
	wantPathErr(t, err, "writeat", path, syscall.EBADF)
	priv, err := shm.MapFile(f, os.O_RDWR, 0, page, &shm.Options{Private: true, Populate: true})
	if err != nil {
		t.Fatal(err)
	}
	defer priv.Close()
	if _, err := priv.WriteAt([]byte("private"), 0); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(path); string(got[:7]) == "private" || string(ro.Bytes()[:7]) != "0123456" {
		t.Fatal("private write reached the file")
	}

	// Errors.
	for _, c := range []struct {
		flag int
		off  int64
		n    int
		say  string
	}{
		{os.O_RDONLY, 1, 1, "page size"},
		{os.O_RDONLY, -int64(page), 1, "page size"},
		{os.O_RDONLY, 0, -1, "negative length"},
		{os.O_RDONLY, 0, 3*page + 1, "past the end"},
		{os.O_RDONLY, 4 * int64(page), 0, "past the end"},
		{os.O_WRONLY, 0, 1, "flag"},
	} {
		_, err := shm.MapFile(f, c.flag, c.off, c.n, nil)
		wantPathErr(t, err, "mapfile", path, syscall.EINVAL)
		if !strings.Contains(err.Error(), c.say) {
			t.Errorf("error %q does not say %q", err, c.say)
		}
	}
	// libc's verdict: a read-write mapping of a read-only descriptor.
	_, err = shm.MapFile(f, os.O_RDWR, 0, page, nil)
	wantPathErr(t, err, "mmap", path, fs.ErrPermission)
	if _, err := shm.MapFile(nil, os.O_RDONLY, 0, 0, nil); !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("nil file: %v", err)
	}
	// An empty range maps nothing.
	e, err := shm.MapFile(f, os.O_RDONLY, 3*int64(page), 0, nil)
	if err != nil || e.Size() != 0 || e.Bytes() == nil {
		t.Fatalf("empty range: %v", err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestMapFileSync: msync writes the dirty pages of a file mapping back to
// the file, and SyncRange only the pages of its range. Reading the file
// cannot tell (the page cache shows the bytes either way); cachestat(2),
// Linux 6.5, counts the dirty pages of a file range exactly. The file is on
// disk: tmpfs has no write-back.
//
// Kills: Sync or SyncRange that does not call msync, or with a range that
// misses the pages (TestMapFile passes without any msync at all);
// SyncRange syncing the whole mapping; Sync covering less than the
// mapping.
func TestMapFileSync(t *testing.T) {
	dir := t.TempDir()
	var fsst syscall.Statfs_t
	if err := syscall.Statfs(dir, &fsst); err != nil {
		t.Fatal(err)
	}
	switch fsType := uint32(fsst.Type); fsType {
	case 0x01021994, 0x858458f6: // tmpfs, ramfs
		t.Skipf("%s is in memory (file system %#x): nothing to write back", dir, fsType)
	}
	page := os.Getpagesize()
	f, err := os.OpenFile(filepath.Join(dir, "data"), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// One write per page, so that each page has a page-sized folio of its
	// own (a large folio is dirty and clean as a whole): the file's blocks
	// are allocated, and each try below starts by fsync of it all.
	for i := range 3 {
		if _, err := f.WriteAt(bytes.Repeat([]byte{'a' + byte(i)}, page), int64(i*page)); err != nil {
			t.Fatal(err)
		}
	}
	// dirty is the number of dirty pages among the file's pages [lo, hi).
	dirty := func(lo, hi int) uint64 {
		t.Helper()
		cs, err := cachestat(f, int64(lo*page), int64((hi-lo)*page))
		if errors.Is(err, syscall.ENOSYS) || errors.Is(err, syscall.EPERM) {
			t.Skipf("cachestat(2), Linux 6.5, not available: %v", err)
		}
		if err != nil {
			t.Fatalf("cachestat: %v", err)
		}
		return cs.Dirty
	}

	// The file's pages 1 and 2, at the mapping's offsets 0 and page.
	m, err := shm.MapFile(f, os.O_RDWR, int64(page), 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	// Something else may write our pages back meanwhile (sync(2) from
	// another process, the kernel's flusher after 30 s), which looks like
	// SyncRange syncing beyond its range: that must show in 3 of 3 tries.
	for try := 1; ; try++ {
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
		if d := dirty(0, 3); d != 0 {
			t.Fatalf("%d pages dirty after fsync", d)
		}
		m.WriteAt([]byte("one"), 10)
		if d := dirty(0, 3); d != 1 {
			if d > 1 {
				t.Skipf("writing one byte dirtied %d pages: this file system caches in large folios", d)
			}
			if try < 3 {
				continue
			}
			t.Skipf("cachestat sees no dirty page after a write through the mapping: the file system (%#x) does not account them", uint32(fsst.Type))
		}
		m.WriteAt([]byte("two"), int64(page+10))
		if d := dirty(0, 3); d != 2 {
			if try < 3 {
				continue
			}
			t.Fatalf("%d dirty pages after writing to two", d)
		}
		if err := m.SyncRange(10, 3, syscall.MS_SYNC); err != nil {
			t.Fatal(err)
		}
		if d := dirty(1, 2); d != 0 {
			t.Fatalf("SyncRange(10, 3) left the file's page 1, the mapping's page 0, dirty: not written back")
		}
		if dirty(2, 3) == 1 {
			break
		}
		if try == 3 {
			t.Fatalf("SyncRange(10, 3) also wrote back the file's page 2, beyond its range (in %d of %d tries)", try, try)
		}
	}
	if err := m.Sync(); err != nil {
		t.Fatal(err)
	}
	if d := dirty(0, 3); d != 0 {
		t.Fatalf("Sync left %d of the mapping's pages dirty", d)
	}
}

// cacheStat is struct cachestat of cachestat(2).
type cacheStat struct {
	Cache, Dirty, Writeback, Evicted, RecentlyEvicted uint64
}

// cachestat is cachestat(2), Linux 6.5: the page cache state of n bytes of
// f from off. Its number is 451 on every architecture.
func cachestat(f *os.File, off, n int64) (cacheStat, error) {
	rng := struct{ Off, Len uint64 }{uint64(off), uint64(n)}
	var cs cacheStat
	_, _, e := syscall.Syscall6(451, f.Fd(), uintptr(unsafe.Pointer(&rng)), uintptr(unsafe.Pointer(&cs)), 0, 0, 0)
	if e != 0 {
		return cs, os.NewSyscallError("cachestat", e)
	}
	return cs, nil
}

// roFile reopens f read-only through /proc, as a peer that was given a
// read-only descriptor holds it.
func roFile(t *testing.T, f *os.File) *os.File {
	t.Helper()
	r, err := os.Open(fmt.Sprintf("/proc/self/fd/%d", f.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// TestMapFileReceived: MapFile of descriptors as another process hands
// them over: sizes from fstat, seals reported, a read-only descriptor and
// a write-sealed object refused read-write with a clear error and mapped
// read-only (Populate too); a named object's descriptor and an ordinary
// file's are not Sealed. Kills: the read-only-descriptor check and the
// write-seal check in MapFile's writable (bare "permission denied" /
// "operation not permitted" from mmap), Mapping.Seals without its closed
// check, AddSeals(SealWrite) without the read-only remap.
func TestMapFileReceived(t *testing.T) {
	fds := countFDs(t)
	s, err := shm.CreateMemfdWith("handoff", 2*os.Getpagesize(), shm.SealShrink|shm.SealGrow, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	copy(s.Bytes(), "filled before the seal")
	f, err := s.File()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()

	// A read-only descriptor.
	ro := roFile(t, f)
	_, err = shm.MapFile(ro, os.O_RDWR, 0, 0, nil)
	wantPathErr(t, err, "mmap", ro.Name(), syscall.EACCES)
	if !strings.Contains(err.Error(), "open read-only: map it with os.O_RDONLY") {
		t.Errorf("unclear error: %v", err)
	}
	m, err := shm.MapFile(ro, os.O_RDONLY, 0, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if seals, _ := m.Seals(); m.Size() != s.Size() || !m.ShrinkSealed() || seals&^shm.SealExec != shm.SealShrink|shm.SealGrow {
		t.Errorf("read-only Mapping: size %d, Sealed %v, seals %v", m.Size(), m.ShrinkSealed(), seals)
	}
	m.Close()
	if _, err := m.Seals(); !errors.Is(err, fs.ErrClosed) || m.ShrinkSealed() {
		t.Errorf("Mapping.Seals after Close: %v", err)
	}

	// The read-only hand-off: sealed against writing.
	if err := s.AddSeals(shm.SealWrite | shm.SealSeal); err != nil {
		t.Fatal(err)
	}
	_, err = shm.MapFile(f, os.O_RDWR, 0, 0, nil)
	wantPathErr(t, err, "mmap", f.Name(), syscall.EPERM)
	if !strings.Contains(err.Error(), "sealed against writing") {
		t.Errorf("unclear error: %v", err)
	}
	m, err = shm.MapFile(f, os.O_RDONLY, 0, 0, &shm.Options{Populate: true})
	if err != nil {
		t.Fatal(err)
	}
	if n := nonResident(t, m.Bytes()); n != 0 || !bytes.HasPrefix(m.Bytes(), []byte("filled before the seal")) {
		t.Errorf("populated read-only mapping: %d pages not resident, %q", n, m.Bytes()[:22])
	}
	if seals, _ := m.Seals(); seals&shm.SealWrite == 0 {
		t.Errorf("Mapping seals %v lack write", seals)
	}
	m.Close()
	// Private copy-on-write is no write to the object: allowed.
	if m, err = shm.MapFile(f, os.O_RDWR, 0, 0, &shm.Options{Private: true}); err != nil {
		t.Fatalf("private mapping of a write-sealed memfd: %v", err)
	}
	m.Bytes()[0] = 'F'
	if s.Bytes()[0] != 'f' {
		t.Error("a private write reached the object")
	}
	m.Close()

	// A named object's descriptor: shm_open objects cannot be sealed.
	named := create(t, 4096)
	nf, err := named.File()
	if err != nil {
		t.Fatal(err)
	}
	nm, err := shm.MapFile(nf, os.O_RDWR, 0, 0, nil)
	nf.Close()
	if err != nil {
		t.Fatal(err)
	}
	if seals, _ := nm.Seals(); nm.ShrinkSealed() || seals != shm.SealSeal || named.ShrinkSealed() {
		t.Errorf("named object: Mapping seals %v, Sealed %v %v", seals, nm.ShrinkSealed(), named.ShrinkSealed())
	}
	nm.Close()
	// An ordinary file: no seals at all.
	path := t.TempDir() + "/f"
	os.WriteFile(path, make([]byte, 4096), 0o600)
	of, _ := os.Open(path)
	om, err := shm.MapFile(of, os.O_RDONLY, 0, 0, nil)
	of.Close()
	if err != nil {
		t.Fatal(err)
	}
	if seals, err := om.Seals(); seals != 0 || err != nil || om.ShrinkSealed() {
		t.Errorf("ordinary file: seals %v, %v", seals, err)
	}
	om.Close()
	ro.Close()
	f.Close()
	named.Close()
	s.Close()
	if n := countFDs(t); n != fds {
		t.Errorf("%d descriptors open, %d before", n, fds)
	}
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
			return shm.OpenFile(name, os.O_RDWR, 0, 0, &shm.Options{Populate: true}) // sparse already; Sparse is for sizing
		},
		"MapFile": func() (interface{ Bytes() []byte }, error) {
			makeSparse()
			f, err := os.OpenFile(devPath(name), os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			return shm.MapFile(f, os.O_RDWR, 0, 0, &shm.Options{Populate: true}) // the file is sparse already
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

// TestMapFileComplete: a Mapping of a received descriptor can do what the
// sender's Segment can (Stat, Chmod, Truncate, Remap, File, Seals, futex
// words), through a descriptor of its own: the *os.File is closed first.
// A Mapping from an offset cannot resize. Kills: a Mapping that borrows
// the caller's descriptor (EBADF once it is closed) or leaks its own, and
// Truncate or Remap of an offset mapping (they map from 0).
func TestMapFileComplete(t *testing.T) {
	page := os.Getpagesize()
	fds := countFDs(t)
	s := create(t, 2*page)
	f, err := s.File()
	if err != nil {
		t.Fatal(err)
	}
	m, err := shm.MapFile(f, os.O_RDWR, 0, 0, nil)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := m.Stat(); err != nil || fi.Size() != int64(2*page) || fi.Name() != strings.TrimLeft(s.Name(), "/") {
		t.Fatalf("Stat: %v, %v", fi, err)
	}
	if err := m.Chmod(0o640); err != nil {
		t.Fatal(err)
	}
	if fi, _ := s.Stat(); fi.Mode() != 0o640 {
		t.Errorf("Chmod through the Mapping: mode %v", fi.Mode())
	}
	if err := m.Truncate(3 * page); err != nil || m.Size() != 3*page {
		t.Fatalf("Truncate: %v, size %d", err, m.Size())
	}
	if err := s.Remap(); err != nil || s.Size() != 3*page {
		t.Fatalf("the Segment's Remap after the Mapping's Truncate: %v, size %d", err, s.Size())
	}
	if _, err := s.WriteAt([]byte("grown"), int64(2*page)); err != nil {
		t.Fatal(err)
	}
	if err := s.Truncate(page); err != nil {
		t.Fatal(err)
	}
	if err := m.Remap(); err != nil || m.Size() != page {
		t.Fatalf("Remap: %v, size %d", err, m.Size())
	}
	if seals, err := m.Seals(); err != nil || seals != shm.SealSeal {
		t.Errorf("Seals of a named object's Mapping: %v, %v", seals, err)
	}
	w, err := m.Uint32(0)
	if err != nil {
		t.Fatal(err)
	}
	w.Store(7)
	if n, err := m.Wake(0, 1); n != 0 || err != nil {
		t.Errorf("Wake: %d, %v", n, err)
	}
	g, err := m.File()
	if err != nil {
		t.Fatal(err)
	}
	g.Close()
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Stat(); !errors.Is(err, fs.ErrClosed) {
		t.Errorf("Stat after Close: %v", err)
	}

	// From an offset: no resizing.
	if err := s.Truncate(2 * page); err != nil {
		t.Fatal(err)
	}
	f, err = s.File()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	o, err := shm.MapFile(f, os.O_RDWR, int64(page), 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	wantPathErr(t, o.Truncate(page), "truncate", f.Name(), syscall.EINVAL)
	wantPathErr(t, o.Remap(), "remap", f.Name(), syscall.EINVAL)
	if fi, err := o.Stat(); err != nil || fi.Size() != int64(2*page) {
		t.Errorf("Stat from an offset: %v, %v", fi, err)
	}
	o.Close()
	f.Close()
	s.Close()
	if n := countFDs(t); n != fds {
		t.Errorf("%d descriptors open, %d before", n, fds)
	}
}

// TestMapFileReadOnlyAllowsSealWrite: a Mapping made by
// MapFile(os.O_RDONLY) is read-only (PROT_READ), and must not count as a
// writable mapping of the object even when made from a read-write
// descriptor (what File returns): AddSeals(SealWrite) must succeed with
// only read-only Mappings left (the receiver's own call), beside the
// receiver's read-only Mapping (the creator's call), and after that
// Mapping followed a grow with Remap (a new mapping where it moved).
//
// Kills: MapFile or Remap mapping the read-write descriptor itself for a
// read-only Mapping (no mapFD): the kernel counts that shared mapping as
// writable (VM_SHARED|VM_MAYWRITE) and every AddSeals(SealWrite) fails
// with EBUSY, the creator's own included. Before the fix (the review's
// open finding) all three parts failed so; reverting mapFD's use in
// MapFile fails all three, reverting it in resize the third (where the
// Mapping moved to grow, as it logs: above it is the creator's mapping).
func TestMapFileReadOnlyAllowsSealWrite(t *testing.T) {
	// receive maps m's memfd as a receiver of File does.
	receive := func(t *testing.T, m *shm.Mapping) *shm.Mapping {
		t.Helper()
		f, err := m.File()
		if err != nil {
			t.Fatal(err)
		}
		mm, err := shm.MapFile(f, os.O_RDONLY, 0, 0, nil)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { mm.Close() })
		return mm
	}
	t.Run("receiver", func(t *testing.T) {
		m, err := shm.CreateMemfdWith("rv", 4096, shm.SealShrink|shm.SealGrow, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		mm := receive(t, m)
		if err := m.Close(); err != nil {
			t.Fatal(err)
		}
		// Only a read-only mapping of the object is left, the receiver's own.
		if err := mm.AddSeals(shm.SealWrite); err != nil {
			t.Errorf("AddSeals(SealWrite) with only a read-only Mapping left: %v", err)
		}
	})
	t.Run("creator", func(t *testing.T) {
		m, err := shm.CreateMemfdWith("rv", 4096, shm.SealShrink|shm.SealGrow, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		mm := receive(t, m)
		if err := m.AddSeals(shm.SealWrite); err != nil {
			t.Errorf("the creator's AddSeals(SealWrite) beside a read-only Mapping: %v", err)
		}
		if mm.Size() != 4096 {
			t.Errorf("read-only Mapping: Size %d", mm.Size())
		}
	})
	t.Run("remap", func(t *testing.T) {
		m, err := shm.CreateMemfdWith("rv", 4096, 0, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		mm := receive(t, m)
		old := &mm.Bytes()[0]
		if err := m.Truncate(1 << 20); err != nil {
			t.Fatal(err)
		}
		if err := mm.Remap(); err != nil || mm.Size() != 1<<20 {
			t.Fatalf("Remap: %v, Size %d", err, mm.Size())
		}
		t.Logf("the read-only Mapping moved to grow: %v", old != &mm.Bytes()[0])
		if err := m.AddSeals(shm.SealWrite); err != nil {
			t.Errorf("AddSeals(SealWrite) beside a read-only Mapping that grew: %v", err)
		}
	})
}

// mapLimitFDs is the descriptor limit (RLIMIT_NOFILE) under which the
// "map-limit" child maps: fewer than the kernel's limit on mappings.
const mapLimitFDs = 20000

// TestMapFileManyMappings is LTP's mmap/24-1 in Go: a child process, with
// at most 20,000 descriptors, maps one page of one object with MapFile
// over and over, as C maps one descriptor, until mmap refuses at the
// kernel's limit on mappings (vm.max_map_count, less the runtime's own).
// The limit must show as mmap's ENOMEM, after more mappings than the
// process may have descriptors, and closing them all must leave the
// descriptors as they were.
//
// Kills: a descriptor per Mapping (fcntl's EMFILE after about 19,990
// mappings); a shared descriptor closed with the first Mapping that
// closes (the rest hold none; Stat on them fails with EBADF), or never (a
// descriptor left over).
func TestMapFileManyMappings(t *testing.T) {
	b, err := os.ReadFile("/proc/sys/vm/max_map_count")
	if err != nil {
		t.Skipf("no vm.max_map_count: %v", err)
	}
	maxMaps, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("vm.max_map_count %q: %v", b, err)
	}
	if maxMaps <= mapLimitFDs || maxMaps > 1<<18 {
		t.Skipf("vm.max_map_count is %d: the test needs more than %d and, to be quick, at most %d", maxMaps, mapLimitFDs, 1<<18)
	}
	name := uniqueName(t)
	s, err := shm.Create(name, os.Getpagesize())
	if err != nil {
		t.Fatal(err)
	}
	cleanup(t, name)
	s.Close()
	start := time.Now()
	out := runChildOK(t, "map-limit", name)
	t.Logf("%s(%v)", out, time.Since(start).Round(time.Millisecond))
	var n int
	if _, err := fmt.Sscanf(out, "%d mappings,", &n); err != nil {
		t.Fatalf("child said %q: %v", out, err)
	}
	// The runtime and the C library have some mappings of their own, fewer
	// than a thousand.
	if n <= mapLimitFDs || n < maxMaps-1000 || n > maxMaps {
		t.Errorf("%d mappings before mmap said ENOMEM: want more than %d (the descriptor limit), and at most 1,000 fewer than %d (vm.max_map_count)", n, mapLimitFDs, maxMaps)
	}
}

// childMapLimit plays "map-limit" (TestMapFileManyMappings): map the object
// until an error, check it, close everything, and print how many mappings
// and how many descriptors were open at the limit.
func childMapLimit(role, name string, _ *bufio.Reader) int {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return childFail(role, "getrlimit: %v", err)
	}
	lim.Cur = min(lim.Max, mapLimitFDs)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return childFail(role, "setrlimit: %v", err)
	}
	s, err := shm.Open(name)
	if err != nil {
		return childFail(role, "%v", err)
	}
	f, err := s.File()
	s.Close()
	if err != nil {
		return childFail(role, "%v", err)
	}
	fds0 := len(openFDs())
	ms := make([]*shm.Mapping, 0, 1<<18) // no allocation at the limit
	var mapErr error
	for len(ms) < cap(ms) {
		m, err := shm.MapFile(f, os.O_RDWR, 0, 0, nil)
		if err != nil {
			var pe *fs.PathError
			if !errors.As(err, &pe) || pe.Op != "mmap" || !errors.Is(err, syscall.ENOMEM) {
				return childFail(role, "after %d mappings: %v, want mmap's ENOMEM", len(ms), err)
			}
			mapErr = err
			break
		}
		ms = append(ms, m)
	}
	if len(ms) <= 100 {
		return childFail(role, "only %d mappings: %v", len(ms), mapErr)
	}
	// Unmap a little first: the runtime needs room to read /proc.
	for _, m := range ms[len(ms)-100:] {
		if err := m.Close(); err != nil {
			return childFail(role, "close: %v", err)
		}
	}
	if fds := openFDs(); len(fds) != fds0+1 {
		return childFail(role, "%d mappings hold %d descriptors, want 1: %v", len(ms)-100, len(fds)-fds0, fds)
	}
	// The first Mapping made is closed first: the others keep working.
	for i, m := range ms[:len(ms)-100] {
		if i == len(ms)-101 {
			if _, err := m.Stat(); err != nil {
				return childFail(role, "Stat of the last open Mapping: %v", err)
			}
		}
		if err := m.Close(); err != nil {
			return childFail(role, "close: %v", err)
		}
	}
	f.Close()
	if fds := openFDs(); len(fds) != fds0-1 {
		return childFail(role, "%d descriptors open before, %d after closing every Mapping and the file: %v", fds0-1, len(fds), fds)
	}
	fmt.Printf("%d mappings, then mmap: %v\n", len(ms), mapErr)
	return 0
}

// openFDs lists /proc/self/fd, with what each descriptor is.
func openFDs() []string {
	ents, _ := os.ReadDir("/proc/self/fd")
	var fds []string
	for _, e := range ents {
		p, _ := os.Readlink("/proc/self/fd/" + e.Name())
		fds = append(fds, e.Name()+"="+p)
	}
	return fds
}

// TestMapFileSharesDescriptor: the Mappings MapFile makes from one
// *os.File hold one duplicate of its descriptor between them, the same
// open file description as the file's (File's descriptor shares its
// offset), which stays open until the last of them closes (Stat, File,
// Truncate, AddSeals and Seals of the others work), and which a
// descriptor replaced under the file (dup2) does not get; concurrent
// MapFile and Close calls leave no descriptor behind.
//
// Kills: a duplicate per Mapping (three descriptors, not one); the shared
// descriptor closed by the first Close (Stat fails with EBADF) or by none
// (one left over); sharing without checking that the file's descriptor is
// still the same file (the Mapping of the second file stats the first);
// the count of holders unguarded (-race, or a descriptor closed twice or
// never).
func TestMapFileSharesDescriptor(t *testing.T) {
	page := os.Getpagesize()
	dir := t.TempDir()
	open := func(name string) *os.File {
		f, err := os.OpenFile(filepath.Join(dir, name), os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		if err := f.Truncate(int64(2 * page)); err != nil {
			t.Fatal(err)
		}
		return f
	}
	ino := func(fi fs.FileInfo, err error) uint64 {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return fi.Sys().(*syscall.Stat_t).Ino
	}
	f, g := open("f"), open("g")
	fIno, gIno := ino(f.Stat()), ino(g.Stat())
	mf, err := shm.CreateMemfdWith("shmtest-"+t.Name(), page, shm.SealShrink|shm.SealGrow, nil)
	if err != nil {
		t.Fatal(err)
	}
	mfd, err := mf.File()
	mf.Close()
	if err != nil {
		t.Fatal(err)
	}
	defer mfd.Close()
	fds0 := countFDs(t) // after CreateMemfdWith: it keeps the memory cgroup's files open
	var ms []*shm.Mapping
	for _, c := range []struct {
		flag int
		opt  *shm.Options
	}{{os.O_RDWR, nil}, {os.O_RDONLY, nil}, {os.O_RDWR, &shm.Options{Private: true}}} {
		m, err := shm.MapFile(f, c.flag, 0, 0, c.opt)
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		ms = append(ms, m)
	}
	if n := countFDs(t) - fds0; n != 1 {
		t.Fatalf("3 Mappings of one file hold %d descriptors, want 1", n)
	}
	if err := ms[0].Close(); err != nil {
		t.Fatal(err)
	}
	if got := ino(ms[1].Stat()); got != fIno {
		t.Errorf("after the first Mapping closed, Stat of the second says inode %d, want %d", got, fIno)
	}
	if _, err := f.Seek(123, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	h, err := ms[2].File()
	if err != nil {
		t.Fatal(err)
	}
	if pos, err := h.Seek(0, io.SeekCurrent); err != nil || pos != 123 {
		t.Errorf("File's offset is %d, %v: want 123, the offset of f's open file description", pos, err)
	}
	h.Close()
	if err := ms[2].Truncate(3 * page); err != nil {
		t.Errorf("Truncate of a Mapping sharing the descriptor: %v", err)
	}

	// f's descriptor now refers to g's file: a new Mapping of f maps g
	// and must not take the duplicate of f's old file.
	if err := syscall.Dup3(int(g.Fd()), int(f.Fd()), syscall.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	m, err := shm.MapFile(f, os.O_RDWR, 0, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := ino(m.Stat()); got != gIno {
		t.Errorf("a Mapping of f after dup2 of g over it: Stat says inode %d, want g's %d (f's was %d)", got, gIno, fIno)
	}
	if got := ino(ms[1].Stat()); got != fIno {
		t.Errorf("an earlier Mapping of f: Stat says inode %d, want %d", got, fIno)
	}
	for _, m := range append(ms[1:], m) {
		if err := m.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if n := countFDs(t) - fds0; n != 0 {
		t.Fatalf("%d descriptors left after closing every Mapping", n)
	}

	// A received memfd: the read-only Mapping, once the read-write one
	// sharing its descriptor is closed, seals the memfd against writing
	// through that descriptor (F_ADD_SEALS needs mfd's writable one).
	rw, err := shm.MapFile(mfd, os.O_RDWR, 0, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	ro, err := shm.MapFile(mfd, os.O_RDONLY, 0, 0, nil)
	if err != nil {
		rw.Close()
		t.Fatal(err)
	}
	rw.Close()
	if err := ro.AddSeals(shm.SealWrite); err != nil {
		t.Errorf("AddSeals(SealWrite) of the read-only Mapping: %v", err)
	}
	if seals, err := ro.Seals(); err != nil || seals&shm.SealWrite == 0 {
		t.Errorf("Seals: %v, %v: want SealWrite", seals, err)
	}
	ro.Close()
	if n := countFDs(t) - fds0; n != 0 {
		t.Fatalf("%d descriptors left after closing the memfd's Mappings", n)
	}

	// Mappings of one file made and closed concurrently.
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 200 {
				m, err := shm.MapFile(g, os.O_RDWR, 0, page, nil)
				if err != nil {
					t.Error(err)
					return
				}
				if got := ino(m.Stat()); got != gIno {
					t.Errorf("Stat says inode %d, want %d", got, gIno)
				}
				if err := m.Close(); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	if n := countFDs(t) - fds0; n != 0 {
		t.Fatalf("%d descriptors left after concurrent MapFile and Close", n)
	}
}

// TestOptionsUnusedFieldRefused: a field of Options that the call has no
// use for is an error wrapping syscall.EINVAL, never silently ignored:
// Sparse and Init with MapFile, Init (and Private) with CreateMemfdWith,
// Sparse with an OpenFile that neither creates nor truncates, Init with
// one that does not create.
// Kills: MapFile masking Sparse away and ignoring Init, CreateMemfdWith
// ignoring Init, OpenFile ignoring Sparse or Init where it opens only
// (each call then succeeds).
func TestOptionsUnusedFieldRefused(t *testing.T) {
	s := create(t, 4096)
	f, err := s.File()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	init := func([]byte) error { return nil }
	for _, c := range []struct {
		what string
		call func() (*shm.Mapping, error)
		op   string
	}{
		{"MapFile Sparse", func() (*shm.Mapping, error) { return shm.MapFile(f, os.O_RDWR, 0, 0, &shm.Options{Sparse: true}) }, "mapfile"},
		{"MapFile Init", func() (*shm.Mapping, error) { return shm.MapFile(f, os.O_RDWR, 0, 0, &shm.Options{Init: init}) }, "mapfile"},
		{"CreateMemfdWith Init", func() (*shm.Mapping, error) {
			return shm.CreateMemfdWith("init", 4096, 0, &shm.Options{Init: init})
		}, "creatememfd"},
		{"CreateMemfdWith Private", func() (*shm.Mapping, error) {
			return shm.CreateMemfdWith("private", 4096, 0, &shm.Options{Private: true})
		}, "creatememfd"},
		// OpenFile without os.O_CREATE or os.O_TRUNC sizes nothing, so
		// reserves nothing; without os.O_CREATE it creates nothing to
		// initialise.
		{"OpenFile Sparse without O_CREATE or O_TRUNC", func() (*shm.Mapping, error) {
			return openMapping(s.Name(), os.O_RDWR, &shm.Options{Sparse: true})
		}, "openfile"},
		{"OpenFile Init without O_CREATE", func() (*shm.Mapping, error) {
			return openMapping(s.Name(), os.O_RDWR, &shm.Options{Init: init})
		}, "openfile"},
	} {
		m, err := c.call()
		if err == nil {
			m.Close()
			t.Errorf("%s succeeded; want an error wrapping EINVAL", c.what)
			continue
		}
		var pe *fs.PathError
		if !errors.Is(err, syscall.EINVAL) || !errors.As(err, &pe) || pe.Op != c.op {
			t.Errorf("%s: %v; want a *fs.PathError with Op %q wrapping EINVAL", c.what, err, c.op)
		}
	}
}

// openMapping is OpenFile(name, flag, 0, 0, opt) as a *shm.Mapping.
func openMapping(name string, flag int, opt *shm.Options) (*shm.Mapping, error) {
	s, err := shm.OpenFile(name, flag, 0, 0, opt)
	if err != nil {
		return nil, err
	}
	return &s.Mapping, nil
}
