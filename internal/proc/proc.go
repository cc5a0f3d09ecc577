// Package proc reads what the module needs of Linux's /proc: a
// descriptor's path, and the lines of a process's maps.
package proc

import (
	"bytes"
	"os"
	"strconv"
)

// FD is the path of this process's descriptor fd in /proc, which opens
// the file anew (a new open file description), also when it is unlinked
// or a memfd.
func FD(fd int) string { return "/proc/self/fd/" + strconv.Itoa(fd) }

// A Map is one line of /proc/PID/maps: an address range and the file
// mapped there (Inode 0 for anonymous memory).
type Map struct {
	Start, End   uint64
	Major, Minor uint64 // the file's device
	Inode        uint64
	Range        string // "start-end" as printed, a name in /proc/PID/map_files
	Path         string // as printed, perhaps with " (deleted)"; "" if none
}

// Maps reads the maps file at path (such as "/proc/self/maps") and
// returns its lines that parse; a line that does not is left out.
func Maps(path string) ([]Map, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var maps []Map
	for line := range bytes.Lines(data) {
		f := bytes.Fields(line)
		if len(f) < 5 {
			continue
		}
		lo, hi, ok1 := bytes.Cut(f[0], []byte{'-'})
		majS, minS, ok2 := bytes.Cut(f[3], []byte{':'})
		if !ok1 || !ok2 {
			continue
		}
		var m Map
		var errs [5]error
		m.Start, errs[0] = strconv.ParseUint(string(lo), 16, 64)
		m.End, errs[1] = strconv.ParseUint(string(hi), 16, 64)
		m.Major, errs[2] = strconv.ParseUint(string(majS), 16, 64)
		m.Minor, errs[3] = strconv.ParseUint(string(minS), 16, 64)
		m.Inode, errs[4] = strconv.ParseUint(string(f[4]), 10, 64)
		if errs != [5]error{} {
			continue
		}
		m.Range = string(f[0])
		if len(f) > 5 {
			m.Path = string(bytes.Join(f[5:], []byte{' '}))
		}
		maps = append(maps, m)
	}
	return maps, nil
}

// DevMajorMinor splits a stat device number as glibc's major and minor
// do, to compare with a Map's.
func DevMajorMinor(dev uint64) (major, minor uint64) {
	return (dev>>8)&0xfff | (dev>>32)&^0xfff, dev&0xff | (dev>>12)&^0xff
}

// A FileID is what identifies a file whatever its name: its device and
// inode, as stat gives them.
type FileID struct{ Dev, Ino uint64 }

// A MapID is a file as /proc/PID/maps shows it: the device as major and
// minor numbers, and the inode.
type MapID struct{ Major, Minor, Inode uint64 }

// MapID is id as maps shows it.
func (id FileID) MapID() MapID {
	major, minor := DevMajorMinor(id.Dev)
	return MapID{major, minor, id.Ino}
}

// ID is the file of m.
func (m Map) ID() MapID { return MapID{m.Major, m.Minor, m.Inode} }
