package shm_test

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/posixshm/shm"
)

// A writer creates an object and a reader, usually another process, opens
// it by name.
func Example() {
	name := fmt.Sprintf("/example-%d", os.Getpid())

	// The writer.
	w, err := shm.Create(name, 4096) // shm_open(O_RDWR|O_CREAT|O_EXCL, 0600), fallocate, mmap
	if err != nil {
		log.Fatal(err)
	}
	defer w.Close()  // munmap, close
	defer w.Unlink() // shm_unlink: the writer owns the name
	copy(w.Bytes(), "hello, shared memory")

	// The reader.
	r, err := shm.Open(name) // shm_open(O_RDWR), fstat, mmap
	if err != nil {
		log.Fatal(err)
	}
	defer r.Close()
	buf := make([]byte, 20)
	if _, err := r.ReadAt(buf, 0); err != nil { // fault-safe copy
		log.Fatal(err)
	}
	fmt.Println(string(buf), r.Size())
	// Output: hello, shared memory 4096
}

// CreateTemp replaces the "*" with a random string. (The pid in the
// pattern only lets the test suite tell its own objects in /dev/shm.)
func ExampleCreateTemp() {
	pattern := fmt.Sprintf("example-%d-*.buf", os.Getpid())
	s, err := shm.CreateTemp(pattern, 1<<16)
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	defer s.Unlink() // the name is the caller's to remove
	before, after, _ := strings.Cut(pattern, "*")
	name := s.Name()
	fmt.Println(s.Size(), strings.HasPrefix(name, "/"+before), strings.HasSuffix(name, after),
		len(name) > len("/"+before+after))
	// Output: 65536 true true true
}

// Open the object, or create it if nobody has: Created tells which.
func ExampleOpenFile() {
	name := fmt.Sprintf("/example-%d-oc", os.Getpid())
	defer shm.Unlink(name)
	for range 2 {
		s, err := shm.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o600, 4096, nil)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println("created:", s.Created())
		s.Close()
	}
	// Output:
	// created: true
	// created: false
}

// A read-only mapping refuses writes with EBADF, as os.File does, and
// writes nothing.
func ExampleOpenFile_readOnly() {
	name := fmt.Sprintf("/example-%d-ro", os.Getpid())
	w, err := shm.Create(name, 4096)
	if err != nil {
		log.Fatal(err)
	}
	defer w.Close()
	defer w.Unlink()
	r, err := shm.OpenFile(name, os.O_RDONLY, 0, 0, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer r.Close()
	n, err := r.WriteAt([]byte("x"), 0)
	var pe *fs.PathError
	if errors.As(err, &pe) {
		fmt.Println(n, pe.Op, pe.Err, errors.Is(err, syscall.EBADF), w.Bytes()[0])
	}
	// Output: 0 writeat bad file descriptor true 0
}

func ExampleMapFile() {
	path := filepath.Join(os.TempDir(), fmt.Sprintf("example-%d", os.Getpid()))
	defer os.Remove(path)
	if err := os.WriteFile(path, []byte("file contents"), 0o600); err != nil {
		log.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		log.Fatal(err)
	}
	m, err := shm.MapFile(f, os.O_RDONLY, 0, 0, nil) // whole file, read-only
	f.Close()                                        // the mapping stays
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	fmt.Printf("%s\n", m.Bytes())
	// Output: file contents
}

// A write that does not fit writes nothing: a mapping never grows.
func ExampleSegment_WriteAt() {
	s, err := shm.CreateTemp(fmt.Sprintf("example-%d-*", os.Getpid()), 16)
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	defer s.Unlink()
	n, err := s.WriteAt([]byte("does not fit"), 8)
	fmt.Println(n, errors.Is(err, io.ErrShortWrite), s.Bytes()[8])
	// Output: 0 true 0
}

// A peer that has not called Remap reads io.EOF past its old size, exactly
// as at the object's real end. To tell the two apart, compare the object's
// size (Stat, one fstat) with the mapping's (Size): larger means the object
// grew, and Remap maps the rest. To announce a resize instead of polling,
// the resizing process bumps a generation word after Truncate and wakes its
// waiters; a peer that sees the word change calls Remap.
func ExampleMapping_Remap() {
	name := fmt.Sprintf("/example-%d-remap", os.Getpid())
	w, err := shm.Create(name, 4096) // the writer, which will grow it
	if err != nil {
		log.Fatal(err)
	}
	defer w.Unlink()
	defer w.Close()
	r, err := shm.Open(name) // a peer, usually another process
	if err != nil {
		log.Fatal(err)
	}
	defer r.Close()
	gen, _ := r.Uint32(0) // the generation word: bumped after every resize
	seen := gen.Load()

	// The writer grows the object, writes past the old end, announces.
	if err := w.Truncate(8192); err != nil {
		log.Fatal(err)
	}
	w.WriteAt([]byte("new"), 4096)
	wgen, _ := w.Uint32(0)
	wgen.Add(1)
	w.Wake(0, math.MaxInt32)

	// The peer: EOF past its old size, but the object is larger.
	buf := make([]byte, 3)
	_, err = r.ReadAt(buf, 4096)
	fi, _ := r.Stat()
	fmt.Println(err == io.EOF, fi.Size() > int64(r.Size()), gen.Load() != seen)
	if err := r.Remap(); err != nil { // fstat, mremap
		log.Fatal(err)
	}
	_, err = r.ReadAt(buf, 4096)
	fmt.Println(r.Size(), string(buf), err)
	// Output:
	// true true true
	// 8192 new <nil>
}

// What exists and who holds it: List gives the names Open takes, Stat an
// object's fs.FileInfo, Holders the processes that have it open or mapped
// (as fuser finds them). Processes this one may not inspect are reported
// as an error wrapping fs.ErrPermission, beside the pids found. Chmod sets
// the exact mode, whatever the umask.
func ExampleHolders() {
	name := fmt.Sprintf("/example-%d-lifecycle", os.Getpid())
	s, err := shm.Create(name, 4096)
	if err != nil {
		log.Fatal(err)
	}
	defer s.Unlink()
	defer s.Close()
	if err := s.Chmod(0o640); err != nil { // fchmod
		log.Fatal(err)
	}

	names, err := shm.List()
	if err != nil {
		log.Fatal(err)
	}
	fi, err := shm.Stat(name)
	if err != nil {
		log.Fatal(err)
	}
	pids, err := shm.Holders(name)
	if err != nil && !errors.Is(err, fs.ErrPermission) {
		log.Fatal(err)
	}
	fmt.Println("listed:", slices.Contains(names, name))
	fmt.Println(fi.Mode(), fi.Size())
	fmt.Println("held by this process:", slices.Contains(pids, os.Getpid()))
	// Output:
	// listed: true
	// -rw-r----- 4096
	// held by this process: true
}
