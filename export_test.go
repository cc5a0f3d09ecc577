//go:build linux && cgo

package shm

import (
	"sync"
	"syscall"
)

// SetRandName makes CreateTemp draw the random part of its names from f
// until restore is called, so that a test can make the names it draws
// collide. Not safe while CreateTemp runs concurrently.
func SetRandName(f func() string) (restore func()) {
	old := randName
	randName = f
	return func() { randName = old }
}

// SetNoMadvPopulate makes every mapping (OpenFile, MapFile,
// CreateMemfdWith) behave as on a kernel without MADV_POPULATE_* (before
// 5.14) until restore is called.
func SetNoMadvPopulate() (restore func()) {
	testNoMadvPopulate = true
	return func() { testNoMadvPopulate = false }
}

// SetCgroupFiles points the memory cgroup check at other /proc files
// (the cgroup hierarchy is where their mountinfo says) and returns
// CgroupRoom, which reports the room it finds there.
func SetCgroupFiles(cgroup, mountinfo, meminfo string) (room func() (int64, string, bool), restore func()) {
	oldC, oldM, oldI, oldL := procCgroup, procMountinfo, procMeminfo, cgroupLevels
	procCgroup, procMountinfo, procMeminfo = cgroup, mountinfo, meminfo
	learnt := sync.OnceValue(learnCgroupLevels)
	cgroupLevels = learnt
	return cgroupRoom, func() {
		procCgroup, procMountinfo, procMeminfo, cgroupLevels = oldC, oldM, oldI, oldL
		for _, l := range learnt() { // the descriptors the fake levels keep open
			for _, f := range []cgroupFile{l.limit, l.usage} {
				if f.fd >= 0 {
					syscall.Close(f.fd)
				}
			}
		}
	}
}

// OpenCgroupFiles opens the memory cgroup files that the room check keeps
// open for the life of the process (it opens them at its first check), so
// that a test counting descriptors before its first check counts them
// before as after.
func OpenCgroupFiles() { cgroupLevels() }

// SetNoDontunmap makes Truncate and Remap behave as on a kernel without
// MREMAP_DONTUNMAP for file mappings (before 5.13) until restore is
// called.
func SetNoDontunmap() (restore func()) {
	testNoDontunmap = true
	return func() { testNoDontunmap = false }
}

// SetNoMemfd makes CreateMemfdWith behave as with a C library that lacks
// memfd_create until restore is called.
func SetNoMemfd() (restore func()) {
	testNoMemfd = true
	return func() { testNoMemfd = false }
}
