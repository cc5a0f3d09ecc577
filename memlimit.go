//go:build linux && cgo

package shm

// The memory cgroup's room: tmpfs pages made resident (reserved by
// Create, CreateMemfd, OpenFile with os.O_TRUNC and Truncate; pre-faulted
// by Options.Populate, holes of a sparse object included) are charged to
// the memory cgroup of the process that touches them, and pages that do
// not fit are an OOM kill, not an error. So before each of those, whatever
// its size, the cgroup's limit and usage are read, along its hierarchy,
// and what cannot fit is refused with ENOMEM. Plain Go: files of /proc
// and /sys only.

import (
	"bufio"
	"bytes"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// Where the cgroup files are read; tests point them elsewhere.
var (
	procCgroup    = "/proc/self/cgroup"
	procMountinfo = "/proc/self/mountinfo"
	procMeminfo   = "/proc/meminfo"
)

// checkMemoryRoom returns an error wrapping syscall.ENOMEM, with op and
// name, when n more bytes of tmpfs pages cannot fit in this process's
// memory cgroup (see cgroupRoom) or in the host's memory (hostRoom); nil
// otherwise, and nil whenever the figures cannot be read. Every size is
// checked: a loop of small reservations is an OOM kill as surely as one
// large one. The cgroup check is cheap where there is room: a pread of
// the limit and of the usage per level of the hierarchy, from descriptors
// opened once (cgroupLevels); memory.stat and the swap figures are read
// only where the usage alone leaves less than n. The host's is one read
// of /proc/meminfo.
func checkMemoryRoom(op, name string, n int64) error {
	if n <= 0 {
		return nil
	}
	if !quickRoom(n) {
		if room, where, ok := cgroupRoom(); ok && n > room {
			return &fs.PathError{Op: op, Path: name, Err: fmt.Errorf(
				"%d bytes do not fit in the memory cgroup %s, which has %d bytes left (its pages would be an OOM kill, not an error): %w",
				n, where, max(room, 0), syscall.ENOMEM)}
		}
	}
	if room, ok := hostRoom(); ok && n > room {
		return &fs.PathError{Op: op, Path: name, Err: fmt.Errorf(
			"%d bytes do not fit in this host's memory, which has %d bytes available (%s: MemAvailable and SwapFree, less a sixteenth of MemTotal; its pages would be an OOM kill, not an error): %w",
			n, max(room, 0), procMeminfo, syscall.ENOMEM)}
	}
	return nil
}

// hostRoom returns how many bytes of tmpfs pages the host can still take
// (where no cgroup limit binds, a memfd's internal tmpfs has no size
// limit at all): MemAvailable plus SwapFree of /proc/meminfo, less a
// sixteenth of MemTotal kept for the host's processes, as cgroupReserve
// keeps for a cgroup's. ok is false where /proc/meminfo lacks a figure.
// One read of /proc/meminfo per reservation.
func hostRoom() (room int64, ok bool) {
	b, err := os.ReadFile(procMeminfo)
	if err != nil {
		return 0, false
	}
	var total, avail, swap int64 = -1, -1, 0
	for line := range strings.Lines(string(b)) {
		k, rest, found := strings.Cut(line, ":")
		if !found {
			continue
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			continue
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			continue
		}
		switch k {
		case "MemTotal":
			total = kb << 10
		case "MemAvailable":
			avail = kb << 10
		case "SwapFree":
			swap = kb << 10
		}
	}
	if total < 0 || avail < 0 {
		return 0, false
	}
	return avail + swap - total/16, true
}

// resident reports whether mapping with the shim's flags makes every page
// of the object resident: a reservation (not Sparse), or Populate.
func resident(flags int) bool {
	return flags&mapSparse == 0 || flags&mapPopulate != 0
}

// residentOp is the Op of a refusal by checkMemoryRoom, made before any
// call: fn, the refusing function's own (doc.go's rule: no call failed),
// where a reservation would make the pages resident; "madvise" where
// only Populate would, as Options.Populate says.
func residentOp(fn string, flags int) string {
	if flags&mapSparse == 0 {
		return fn
	}
	return "madvise"
}

// checkPopulate checks, before Options.Populate maps the existing object
// name (opened with flag's access mode), that its holes fit in the memory
// cgroup: pre-faulting a tmpfs object allocates every page it lacks, for
// reading too. Where some level of the memory cgroup has a limit, the
// object is opened first (shm_open, one more cgo crossing) for fstat (its size, and the blocks already allocated, which are
// charged already); nil where that fails, for the real open to report.
func checkPopulate(name string, flag int) error {
	if quickRoom(math.MaxInt64) { // no limit anywhere
		return nil
	}
	fd, err := shmOpenFD(name, flag&(os.O_RDONLY|os.O_RDWR), 0)
	if err != nil {
		return nil
	}
	defer closeFD(fd)
	return checkHoles("madvise", name, fd, math.MaxInt64)
}

// checkHoles checks that the holes of the file fd, at most length bytes
// of them, fit in the memory cgroup, where fd's file is tmpfs (a file on
// disk is read into reclaimable cache).
func checkHoles(op, name string, fd int, length int64) error {
	var st syscall.Stat_t
	if syscall.Fstat(fd, &st) != nil || !onTmpfs(fd) {
		return nil
	}
	return checkMemoryRoom(op, name, min(st.Size-st.Blocks*512, length))
}

// quickRoom reports whether every level of the hierarchy has n bytes
// between its usage and its limit (or no limit): then n fits, whatever
// cgroupRoom adds for file cache and swap.
func quickRoom(n int64) bool {
	for _, l := range cgroupLevels() {
		limit, err := l.limit.read()
		if err != nil || limit >= 1<<62 {
			continue
		}
		usage, err := l.usage.read()
		if err != nil {
			continue
		}
		if limit-usage-cgroupReserve(limit) < n {
			return false
		}
	}
	return true
}

// A cgroupLevel is a memory cgroup directory of this process's, or one of
// its ancestors, with its limit and usage files open.
type cgroupLevel struct {
	dir          string
	v2           bool
	limit, usage cgroupFile
}

// A cgroupFile is a cgroup file holding one number, kept open: each read
// is a pread at offset 0, which the kernel answers afresh.
type cgroupFile struct {
	fd  int // -1 where it could not be opened
	err error
}

func openCgroupFile(path string) cgroupFile {
	fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return cgroupFile{fd: -1, err: err}
	}
	return cgroupFile{fd: fd}
}

// read returns the number in the file; v2's "max" is no limit.
func (f cgroupFile) read() (int64, error) {
	if f.fd < 0 {
		return 0, f.err
	}
	var buf [64]byte
	n, err := syscall.Pread(f.fd, buf[:], 0)
	if err != nil {
		return 0, err
	}
	return parseCgroupInt(buf[:max(n, 0)])
}

// cgroupLevels are this process's memory cgroups and their ancestors, v2
// and v1, learnt once per process (a process is rarely moved between
// cgroups), with their limit and usage files opened then and kept open
// for the life of the process; the limits themselves are read on every
// check.
var cgroupLevels = sync.OnceValue(learnCgroupLevels)

func learnCgroupLevels() []cgroupLevel {
	cg, err := os.ReadFile(procCgroup)
	if err != nil {
		return nil
	}
	mounts, err := os.ReadFile(procMountinfo)
	if err != nil {
		return nil
	}
	var levels []cgroupLevel
	for line := range strings.Lines(string(cg)) {
		// "hierarchy-ID:controllers:path"; v2 is "0::path".
		f := strings.SplitN(strings.TrimSpace(line), ":", 3)
		if len(f) != 3 {
			continue
		}
		v2 := f[0] == "0" && f[1] == ""
		if !v2 && !hasField(f[1], "memory") {
			continue
		}
		dir := cgroupDir(mounts, v2, f[2])
		// From dir up to the hierarchy's root: the directories that
		// are cgroups (have cgroup.procs).
		for d := dir; d != ""; d = filepath.Dir(d) {
			if _, err := os.Stat(filepath.Join(d, "cgroup.procs")); err != nil {
				break
			}
			limitF, usageF := "memory.limit_in_bytes", "memory.usage_in_bytes"
			if v2 {
				limitF, usageF = "memory.max", "memory.current"
			}
			levels = append(levels, cgroupLevel{dir: d, v2: v2,
				limit: openCgroupFile(filepath.Join(d, limitF)), usage: openCgroupFile(filepath.Join(d, usageF))})
			if d == filepath.Dir(d) {
				break
			}
		}
	}
	return levels
}

// cgroupRoom returns how many bytes this process's memory cgroup can still
// be charged, the least along its hierarchy, and the cgroup that limits it
// most; ok is false where no limit can be read (no cgroup, not mounted,
// no limit). Per cgroup: the limit (v2 memory.max, v1
// memory.limit_in_bytes) less the usage (memory.current,
// memory.usage_in_bytes) and less a sixteenth of the limit (cgroupReserve),
// plus the file cache the kernel can reclaim (reclaimable), plus the free
// swap the cgroup may use where the system has swap. Best effort: other
// processes allocate meanwhile, and the kernel may reclaim more or less.
func cgroupRoom() (room int64, where string, ok bool) {
	room = math.MaxInt64
	var swapFree int64 = -1
	for _, l := range cgroupLevels() {
		swapLimitF, swapUsageF := "memory.memsw.limit_in_bytes", "memory.memsw.usage_in_bytes"
		if l.v2 {
			swapLimitF, swapUsageF = "memory.swap.max", "memory.swap.current"
		}
		limit, err := l.limit.read()
		if err != nil || limit >= 1<<62 { // no limit (v1 says so with a huge number)
			continue
		}
		usage, err := l.usage.read()
		if err != nil {
			continue
		}
		r := limit - usage - cgroupReserve(limit) + reclaimable(filepath.Join(l.dir, "memory.stat"), l.v2)
		if swapFree < 0 {
			swapFree = meminfo("SwapFree:")
		}
		if swapFree > 0 {
			swap := swapFree
			if sl, err := readInt(filepath.Join(l.dir, swapLimitF)); err == nil {
				su, _ := readInt(filepath.Join(l.dir, swapUsageF))
				if !l.v2 { // memsw counts memory and swap together
					sl, su = sl-limit, su-usage
				}
				swap = min(swap, max(sl-su, 0))
			}
			r += swap
		}
		if r < room {
			room, where, ok = r, l.dir, true
		}
	}
	return room, where, ok
}

// cgroupDir returns the directory of cgroup path in the mounted hierarchy
// (v2, or v1's with the memory controller), from mountinfo: mount point
// plus path less the mount's root; "" where it is not mounted.
func cgroupDir(mountinfo []byte, v2 bool, path string) string {
	sc := bufio.NewScanner(bytes.NewReader(mountinfo))
	for sc.Scan() {
		// "id parent major:minor root mountpoint options [optional...] - fstype source superoptions"
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		if !ok {
			continue
		}
		f, g := strings.Fields(pre), strings.Fields(post)
		if len(f) < 5 || len(g) < 3 {
			continue
		}
		if v2 && g[0] != "cgroup2" || !v2 && (g[0] != "cgroup" || !hasField(g[2], "memory")) {
			continue
		}
		root, mnt := unescape(f[3]), unescape(f[4])
		rel, ok := strings.CutPrefix(path, root)
		if !ok || rel != "" && root != "/" && rel[0] != '/' {
			continue // a cgroup outside what this mount shows
		}
		return filepath.Join(mnt, rel)
	}
	return ""
}

// unescape undoes mountinfo's octal escapes (\040 for a space).
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// hasField reports whether the comma-separated list has f.
func hasField(list, f string) bool {
	for x := range strings.SplitSeq(list, ",") {
		if x == f {
			return true
		}
	}
	return false
}

// readInt reads a cgroup file holding one number; v2's "max" is no limit.
// One open, read and close: these files are short.
func readInt(path string) (int64, error) {
	f := openCgroupFile(path)
	if f.fd < 0 {
		return 0, f.err
	}
	defer syscall.Close(f.fd)
	return f.read()
}

// parseCgroupInt parses what a cgroup file holding one number says.
func parseCgroupInt(b []byte) (int64, error) {
	s := strings.TrimSpace(string(b))
	if s == "max" {
		return math.MaxInt64, nil
	}
	return strconv.ParseInt(s, 10, 64)
}

// cgroupReserve is what the check leaves free of a cgroup's limit for the
// processes in it: a sixteenth. tmpfs pages cannot be reclaimed (without
// swap), so a cgroup filled to its limit with them leaves its processes
// only the room their programs' pages are evicted from and faulted back
// into, until the OOM killer ends them: a race-built test binary in a
// 64 MiB cgroup, growing an object 768 KiB at a time up to the last byte
// of room, thrashed for minutes and was killed.
func cgroupReserve(limit int64) int64 { return limit / 16 }

// reclaimable is the file cache of a cgroup (memory.stat) that the
// kernel can reclaim before it kills: active_file and inactive_file (tmpfs
// pages are not among them) less the file pages some process maps
// (mapped_file, v2's file_mapped): those are programs' text and mapped
// files in use, which reclaim only pages out to fault back in (a test
// binary read in by a fresh 64 MiB cgroup is most of its file cache, and
// counting it as room let a grow through to the OOM killer). v1's
// hierarchical total_ figures where present.
func reclaimable(stat string, v2 bool) int64 {
	b, err := os.ReadFile(stat)
	if err != nil {
		return 0
	}
	add, sub := []string{"active_file", "inactive_file"}, "mapped_file"
	if v2 {
		sub = "file_mapped"
	} else if bytes.Contains(b, []byte("total_active_file")) {
		add, sub = []string{"total_active_file", "total_inactive_file"}, "total_mapped_file"
	}
	var n int64
	for line := range strings.Lines(string(b)) {
		k, v, ok := strings.Cut(strings.TrimSpace(line), " ")
		if !ok {
			continue
		}
		x, _ := strconv.ParseInt(v, 10, 64)
		switch {
		case slices.Contains(add, k):
			n += x
		case k == sub:
			n -= x
		}
	}
	return max(n, 0)
}

// meminfo returns a /proc/meminfo figure (key with its colon) in bytes, 0
// where it is missing.
func meminfo(key string) int64 {
	b, err := os.ReadFile(procMeminfo)
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, key); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				kb, _ := strconv.ParseInt(f[0], 10, 64)
				return kb << 10
			}
		}
	}
	return 0
}
