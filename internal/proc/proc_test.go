package proc

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"unsafe"
)

// TestMaps: a file this process maps is found in /proc/self/maps at its
// address, with its device and inode as fstat gives them, and its path.
// Kills: swapped major and minor, a decimal inode, a path cut at its first
// space (the file's name has one).
func TestMaps(t *testing.T) {
	name := filepath.Join(t.TempDir(), "a file")
	if err := os.WriteFile(name, make([]byte, 4096), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	mem, err := syscall.Mmap(int(f.Fd()), 0, 4096, syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Munmap(mem)
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	maps, err := Maps("/proc/self/maps")
	if err != nil {
		t.Fatal(err)
	}
	addr := uint64(uintptr(unsafe.Pointer(&mem[0])))
	for _, m := range maps {
		if addr < m.Start || addr >= m.End {
			continue
		}
		major, minor := DevMajorMinor(uint64(st.Dev))
		if m.Major != major || m.Minor != minor || m.Inode != st.Ino || m.Path != name {
			t.Fatalf("the mapping reads %+v; want device %d:%d, inode %d, path %q", m, major, minor, st.Ino, name)
		}
		return
	}
	t.Fatalf("no line of /proc/self/maps holds address %#x", addr)
}
