package shm_test

// Benchmarks. Each comparison runs side by side in one process run, as
// sub-benchmarks; the machines are noisy, so read ratios, not times:
//
//	go test -run '^$' -bench . -benchmem
//
// TestComparisonCreateOpen (compare_test.go) sets the same work against C and CPython.

import (
	"os"
	"runtime"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"unsafe"

	"github.com/posixshm/shm"
)

// The "pure Go" way other Go shared-memory packages take: open(2) on
// /dev/shm and syscall.Mmap, one Go syscall per step.
func pureGoCreateCycle(name string, size int) error {
	path := devPath(name)
	fd, err := syscall.Open(path, syscall.O_RDWR|syscall.O_CREAT|syscall.O_EXCL|syscall.O_CLOEXEC|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return err
	}
	if err := syscall.Fallocate(fd, 0, 0, int64(size)); err != nil {
		return err
	}
	b, err := syscall.Mmap(fd, 0, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED)
	if err != nil {
		return err
	}
	b[0] = 1
	syscall.Munmap(b)
	syscall.Close(fd)
	return syscall.Unlink(path)
}

func pureGoOpenCycle(name string) error {
	fd, err := syscall.Open(devPath(name), syscall.O_RDWR|syscall.O_CLOEXEC|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return err
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil {
		return err
	}
	b, err := syscall.Mmap(fd, 0, int(st.Size), syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED)
	if err != nil {
		return err
	}
	b[0]++
	syscall.Munmap(b)
	return syscall.Close(fd)
}

func shmCreateCycle(name string, size int) error {
	s, err := shm.Create(name, size)
	if err != nil {
		return err
	}
	s.Bytes()[0] = 1
	s.Close()
	return shm.Unlink(name)
}

func shmOpenCycle(name string) error {
	s, err := shm.Open(name)
	if err != nil {
		return err
	}
	s.Bytes()[0]++
	return s.Close()
}

// BenchmarkCreate: create + touch + close + unlink of 4 KiB.
func BenchmarkCreate(b *testing.B) {
	benchCycles(b, []cycle{{"shm", shmCreateCycle}, {"purego", pureGoCreateCycle}})
}

// A cycle is one way to create, touch and let go of a 4 KiB object named
// name.
type cycle struct {
	name string
	f    func(name string, size int) error
}

// benchCycles runs each cycle as a sub-benchmark, on a name of its own.
func benchCycles(b *testing.B, cycles []cycle) {
	for _, c := range cycles {
		b.Run(c.name, func(b *testing.B) {
			name := uniqueName(b)
			cleanup(b, name)
			b.ReportAllocs()
			for b.Loop() {
				if err := c.f(name, 4096); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkOpen: open + touch + close of an existing 4 KiB object.
func BenchmarkOpen(b *testing.B) {
	s := create(b, 4096)
	for _, impl := range []struct {
		name string
		f    func(string) error
	}{{"shm", shmOpenCycle}, {"purego", pureGoOpenCycle}} {
		b.Run(impl.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := impl.f(s.Name()); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkAccess: ReadAt and WriteAt side by side with a plain copy on
// the same mapping, the price of bounds checks, close-safety and fault
// safety.
func BenchmarkAccess(b *testing.B) {
	s := create(b, 2<<20)
	for _, c := range []struct {
		name string
		f    func(buf []byte) error
	}{
		{"ReadAt", func(buf []byte) error { _, err := s.ReadAt(buf, 4096); return err }},
		{"copy-read", func(buf []byte) error { copy(buf, s.Bytes()[4096:]); return nil }},
		{"WriteAt", func(buf []byte) error { _, err := s.WriteAt(buf, 4096); return err }},
		{"copy-write", func(buf []byte) error { copy(s.Bytes()[4096:], buf); return nil }},
	} {
		for _, n := range []int{64, 4096, 1 << 20} {
			b.Run(c.name+"/"+strconv.Itoa(n), func(b *testing.B) {
				buf := make([]byte, n)
				b.SetBytes(int64(n))
				b.ReportAllocs()
				for b.Loop() {
					if err := c.f(buf); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

func BenchmarkSync(b *testing.B) {
	s := create(b, 1<<20)
	b.ReportAllocs()
	for b.Loop() {
		s.Bytes()[0]++
		if err := s.Sync(); err != nil {
			b.Fatal(err)
		}
	}
}

// fillKinds are the ways a fresh object is made before it is filled:
// naive is ftruncate + mmap + first touch (Sparse); reserved is Create's
// default (fallocate); populate adds MADV_POPULATE_WRITE.
var fillKinds = []struct {
	name string
	opt  shm.Options
}{{"naive", shm.Options{Sparse: true}}, {"reserved", shm.Options{}}, {"populate", shm.Options{Populate: true}}}

var fillPattern = func() []byte {
	p := make([]byte, 1<<20)
	for i := range p {
		p[i] = byte(i)
	}
	return p
}()

// createFilled creates name with size bytes the given way and writes
// every byte of it (size is a multiple of len(fillPattern)).
func createFilled(name string, size int, opt *shm.Options) (*shm.Segment, error) {
	s, err := shm.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600, size, opt)
	if err != nil {
		return nil, err
	}
	m := s.Bytes()
	for off := 0; off < size; off += len(fillPattern) {
		copy(m[off:], fillPattern)
	}
	return s, nil
}

// BenchmarkFill256MiB: a fresh 256 MiB object created and completely
// written, each of the fillKinds (closing and unlinking it is not timed).
func BenchmarkFill256MiB(b *testing.B) {
	const size = 256 << 20
	for _, c := range fillKinds {
		b.Run(c.name, func(b *testing.B) {
			name := uniqueName(b)
			cleanup(b, name)
			b.SetBytes(size)
			for range b.N {
				s, err := createFilled(name, size, &c.opt)
				if err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				s.Close()
				s.Unlink()
				b.StartTimer()
			}
		})
	}
}

// BenchmarkRoundTrip: two processes pass a token back and forth, through
// an aligned word of a shared segment (sync/atomic, spinning) and through
// a Unix domain socket pair between the same two processes.
func BenchmarkRoundTrip(b *testing.B) {
	if runtime.NumCPU() < 2 {
		b.Skip("a spinning round trip needs two CPUs")
	}
	b.Run("shm", func(b *testing.B) {
		s := create(b, 4096)
		word := (*atomic.Uint64)(unsafe.Pointer(&s.Bytes()[0])) // page-aligned
		cmd := childCmd(b, "pong-shm", s.Name())
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { word.Store(stopToken); cmd.Wait() })
		ping(word, 1) // the child is up
		b.ResetTimer()
		t := uint64(3)
		for b.Loop() {
			ping(word, t)
			t += 2
		}
	})
	b.Run("unix", func(b *testing.B) {
		fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
		if err != nil {
			b.Fatal(err)
		}
		mine, theirs := os.NewFile(uintptr(fds[0]), "mine"), os.NewFile(uintptr(fds[1]), "theirs")
		defer mine.Close()
		cmd := childCmd(b, "pong-unix", "")
		cmd.ExtraFiles = []*os.File{theirs} // fd 3
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		theirs.Close()
		b.Cleanup(func() { mine.Close(); cmd.Wait() })
		tok := []byte{1}
		b.ResetTimer()
		for b.Loop() {
			if _, err := mine.Write(tok); err != nil {
				b.Fatal(err)
			}
			if _, err := mine.Read(tok); err != nil {
				b.Fatal(err)
			}
		}
	})
}

const stopToken = ^uint64(0)

// ping stores the odd token t and spins until the peer answers t+1.
func ping(word *atomic.Uint64, t uint64) {
	word.Store(t)
	for i := 0; word.Load() != t+1; i++ {
		if i%1000 == 999 {
			runtime.Gosched()
		}
	}
}

// pong is the child's side: answer every odd token t with t+1.
func pong(word *atomic.Uint64) {
	for i := 0; ; i++ {
		t := word.Load()
		if t == stopToken {
			return
		}
		if t%2 == 1 {
			word.Store(t + 1)
		} else if i%1000 == 999 {
			runtime.Gosched()
		}
	}
}
