// Package shmdir is the shm command's model of the C library's shared
// memory directory (shm.Dir, /dev/shm): its entries with their kind
// (object, glibc's named semaphore, or an object that is a message ring),
// a name's leftovers (NAME.~RANDOM), the processes that hold entries, and
// the removal of a stale entry (rm -stale) with a write lease and
// renameat2(RENAME_EXCHANGE). What a user of the module would want by name
// is exported by package shm (Stat, Lstat, Chmod, Chown, Objects,
// Semaphores, Holders); what only the command needs is here.
package shmdir

import (
	"errors"
	"io/fs"
	"os"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/posixshm/shm"
	"github.com/posixshm/shm/internal/kernel"
	"github.com/posixshm/shm/internal/tmpname"
	"github.com/posixshm/shm/ring"
)

// A Kind is what an entry of the directory is, as the command prints it.
type Kind string

const (
	Object    Kind = "shm"  // a shared memory object: the file NAME
	Semaphore Kind = "sem"  // glibc's named semaphore: the file sem.NAME
	Ring      Kind = "ring" // an object that is a message ring (Entry.Shown)
)

// An Entry is an object or a semaphore of the directory.
type Entry struct {
	Kind Kind            // Object or Semaphore
	Name string          // as shm.Open or shm.OpenSemaphore takes it: "/x"
	Path string          // its file: shm.Dir()+"/x" or shm.Dir()+"/sem.x"
	Stat *syscall.Stat_t // the file's lstat (or fstat), when the entry was made
}

// Changed is when the entry was last modified or its inode changed
// (created, linked under its name, chmod, chown): the later of its mtime
// and ctime. Writes through a mapping change neither, on tmpfs.
func (e Entry) Changed() time.Time {
	m := time.Unix(int64(e.Stat.Mtim.Sec), int64(e.Stat.Mtim.Nsec))
	c := time.Unix(int64(e.Stat.Ctim.Sec), int64(e.Stat.Ctim.Nsec))
	if c.After(m) {
		return c
	}
	return m
}

// Shown is the entry's kind as ls and stat show it: Ring for an object
// whose first bytes are a ring's magic (package ring's Is, reading 8
// bytes of the file, opened read-only, non-blocking and without following
// a symbolic link; never mapped), else Kind. An object this process may
// not read is shown as Object.
func (e Entry) Shown() Kind {
	if e.Kind != Object {
		return e.Kind
	}
	f, err := os.OpenFile(e.Path, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return e.Kind
	}
	defer f.Close()
	if ring.Is(f) {
		return Ring
	}
	return e.Kind
}

// All returns the host's objects (shm.Objects) and glibc's semaphores
// (shm.Semaphores), sorted by name, then an object before a semaphore:
// the directory read once per kind, each entry lstat'ed (no permission
// on it needed).
func All() ([]Entry, error) {
	var out []Entry
	for fi, err := range shm.Objects() {
		if err != nil {
			return nil, err
		}
		out = append(out, Entry{Object, "/" + fi.Name(), shm.Dir() + "/" + fi.Name(), fi.Sys().(*syscall.Stat_t)})
	}
	for fi, err := range shm.Semaphores() {
		if err != nil {
			return nil, err
		}
		out = append(out, Entry{Semaphore, "/" + strings.TrimPrefix(fi.Name(), "sem."), shm.Dir() + "/" + fi.Name(), fi.Sys().(*syscall.Stat_t)})
	}
	Sort(out)
	return out, nil
}

// Sort sorts es by name, then an object before a semaphore, as ls sorts.
func Sort(es []Entry) {
	slices.SortFunc(es, func(a, b Entry) int {
		if c := strings.Compare(a.Name, b.Name); c != 0 {
			return c
		}
		return strings.Compare(string(b.Kind), string(a.Kind)) // shm before sem
	})
}

// baseName is name as glibc and musl map it to a file name: leading
// slashes dropped, then one path element, or EINVAL.
func baseName(name string) (string, error) {
	base := strings.TrimLeft(name, "/")
	if base == "" || base == "." || base == ".." || strings.ContainsAny(base, "/\x00") || len(base) > kernel.NAME_MAX {
		return "", syscall.EINVAL
	}
	return base, nil
}

// semBase is the file name of glibc's semaphore name, sem.NAME, or ""
// where that is no valid file name. (musl keeps a semaphore as the file
// NAME: an object, as far as the directory shows.)
func semBase(name string) string {
	base, err := baseName(name)
	if err != nil || len(base) > kernel.NAME_MAX-len("sem.") {
		return ""
	}
	return "sem." + base
}

// Named returns the object and the semaphore called name, as far as they
// exist (lstat: no permission needed); an error wrapping fs.ErrNotExist
// if neither does, syscall.EINVAL for a name that is no file name. A
// symbolic link, directory or other non-regular file under the name is
// refused with syscall.ENODEV, as package shm refuses it.
func Named(name string) ([]Entry, error) {
	base, err := baseName(name)
	if err != nil {
		return nil, err
	}
	var out []Entry
	for _, c := range []struct {
		kind Kind
		base string
	}{{Object, base}, {Semaphore, semBase(name)}} {
		if c.base == "" {
			continue
		}
		path := shm.Dir() + "/" + c.base
		st, err := lstat(path)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if st.Mode&syscall.S_IFMT != syscall.S_IFREG {
			return nil, syscall.ENODEV
		}
		out = append(out, Entry{c.kind, "/" + base, path, st})
	}
	if len(out) == 0 {
		return nil, syscall.ENOENT
	}
	return out, nil
}

// Stat describes name: the object (shm.Lstat: read permission is not
// needed, and what package shm refuses is refused), or, where there is
// no object of that name, glibc's semaphore (shm.Lstat of "/sem.NAME",
// the file that shm_open reaches as that name). With neither, the
// object's error.
func Stat(name string) (Entry, error) {
	fi, err := shm.Lstat(name)
	if err == nil {
		return Entry{Object, "/" + fi.Name(), shm.Dir() + "/" + fi.Name(), fi.Sys().(*syscall.Stat_t)}, nil
	}
	sem := semBase(name)
	if !errors.Is(err, fs.ErrNotExist) || sem == "" {
		return Entry{}, err
	}
	fi, serr := shm.Lstat("/" + sem)
	if errors.Is(serr, fs.ErrNotExist) {
		return Entry{}, err // neither: the object's error
	} else if serr != nil {
		return Entry{}, serr
	}
	return Entry{Semaphore, "/" + strings.TrimPrefix(fi.Name(), "sem."), shm.Dir() + "/" + fi.Name(), fi.Sys().(*syscall.Stat_t)}, nil
}

// Leftovers returns the NAME.~RANDOM objects and semaphores of the
// directory: what a Create of name leaves when it is killed before it
// publishes (or RemoveStale when its process is killed with the entry in
// quarantine). A long name is cut short to fit NAME_MAX, as the package
// cuts it (internal/tmpname). An invalid name, or a directory that cannot
// be read, has none. It reads the directory and lstats what matches.
func Leftovers(name string) []Entry {
	base, err := baseName(name)
	if err != nil {
		return nil
	}
	dir, err := os.ReadDir(shm.Dir())
	if err != nil {
		return nil
	}
	var out []Entry
	for _, d := range dir {
		f := d.Name()
		kind, prefix := Object, base
		if strings.HasPrefix(f, "sem.") && !strings.HasPrefix(base, "sem.") {
			kind, prefix = Semaphore, "sem."+base
		}
		if !d.Type().IsRegular() || !tmpname.Of(f, prefix) {
			continue
		}
		st, err := lstat(shm.Dir() + "/" + f)
		if err != nil {
			continue
		}
		out = append(out, Entry{kind, entryName(kind, f), shm.Dir() + "/" + f, st})
	}
	return out
}

// entryName is the name shm.Open (kind Object) or shm.OpenSemaphore
// (Semaphore) takes for the file base of the directory.
func entryName(kind Kind, base string) string {
	if kind == Semaphore {
		return "/" + strings.TrimPrefix(base, "sem.")
	}
	return "/" + base
}

// lstat is syscall.Lstat with a *fs.PathError.
func lstat(path string) (*syscall.Stat_t, error) {
	var st syscall.Stat_t
	if err := syscall.Lstat(path, &st); err != nil {
		return nil, &fs.PathError{Op: "lstat", Path: path, Err: err}
	}
	return &st, nil
}

// sameFile reports whether a and b are one inode.
func sameFile(a, b *syscall.Stat_t) bool { return a.Dev == b.Dev && a.Ino == b.Ino }

// Bare is err without the operation and paths of an *fs.PathError or
// *os.LinkError, which hold names raw: what is left names nothing.
func Bare(err error) error {
	var pe *fs.PathError
	var le *os.LinkError
	switch {
	case errors.As(err, &pe):
		return pe.Err
	case errors.As(err, &le):
		return le.Err
	}
	return err
}
