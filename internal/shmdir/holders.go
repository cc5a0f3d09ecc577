package shmdir

// Who holds entries, and whether /proc can tell.

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/posixshm/shm"
	"github.com/posixshm/shm/internal/kernel"
)

// Holders is what FindHolders learnt of some entries' holders.
type Holders struct {
	PIDs   map[string][]int // by entry path, sorted; nil: none found
	Failed map[string]error // by entry path: the holders are unknown
	Denied []int            // processes that could not be inspected, sorted
	Hidden error            // a HiddenError: /proc hides some processes (hidepid)
}

// Known reports whether the holders of e are known: found, and no process
// could have hidden one.
func (h *Holders) Known(e Entry) bool {
	return h.Failed[e.Path] == nil && len(h.Denied) == 0 && h.Hidden == nil
}

// FindHolders looks for the processes that hold es, first making sure
// that procDir (/proc) shows processes at all (CheckProc): one scan of
// /proc for all objects (shm.HoldersAll), one per semaphore (shm.Holders
// of its file, which shm_open reaches as "/sem.NAME").
func FindHolders(procDir string, es []Entry) *Holders {
	h := &Holders{PIDs: map[string][]int{}, Failed: map[string]error{}}
	var hidden HiddenError
	if err := CheckProc(procDir); errors.As(err, &hidden) {
		h.Hidden = err // some processes are invisible: every answer is partial
	} else if err != nil { // no holder found would mean nothing
		for _, e := range es {
			h.Failed[e.Path] = err
		}
		return h
	}
	deniedSet := map[int]bool{}
	addDenied := func(err error) error {
		var de *shm.DeniedError
		if errors.As(err, &de) {
			for _, p := range de.PIDs {
				if !deniedSet[p] {
					deniedSet[p] = true
					h.Denied = append(h.Denied, p)
				}
			}
			return nil
		}
		return err
	}
	var all map[string][]int
	var allErr error
	for _, e := range es {
		switch e.Kind {
		case Object:
			if all == nil {
				all, allErr = shm.HoldersAll()
				allErr = addDenied(allErr)
			}
			h.PIDs[e.Path] = all[e.Name]
			if allErr != nil {
				h.Failed[e.Path] = allErr
			}
		case Semaphore:
			pids, err := shm.Holders("/" + filepath.Base(e.Path))
			h.PIDs[e.Path] = pids
			if err = addDenied(err); err != nil {
				h.Failed[e.Path] = err
			}
		}
	}
	slices.Sort(h.Denied)
	return h
}

// HiddenError is a /proc mounted with hidepid, where this process may not
// see every other.
type HiddenError struct{ msg string }

func (e HiddenError) Error() string { return e.msg }

// CheckProc makes sure that procDir (/proc) shows processes at all, so
// that "no holder found" means something: this process must be there as
// itself (not mounted, a chroot, or the /proc of another pid namespace
// all fail), with its descriptors readable. A /proc mounted with
// hidepid=2 (invisible), where this process lacks CAP_SYS_PTRACE, is a
// HiddenError.
func CheckProc(procDir string) error {
	self, err := os.Readlink(procDir + "/self")
	if err != nil {
		return fmt.Errorf("%s/self: %s: /proc is not mounted here (a chroot or a sandbox?), so no process that holds an object can be seen", procDir, Bare(err))
	}
	if self != strconv.Itoa(os.Getpid()) {
		return fmt.Errorf("%s/self is pid %s but this process is %d: this /proc is another pid namespace's, and this one's processes cannot be seen", procDir, self, os.Getpid())
	}
	if _, err := os.ReadDir(procDir + "/self/fd"); err != nil {
		return fmt.Errorf("%s/self/fd: %s: no process's descriptors can be read", procDir, Bare(err))
	}
	info, err := os.ReadFile(procDir + "/self/mountinfo")
	if err != nil {
		return nil // the checks above passed: processes are visible
	}
	sc := bufio.NewScanner(bytes.NewReader(info))
	for sc.Scan() {
		// id parent major:minor root mountpoint options ... - fstype source superoptions
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		f, g := strings.Fields(pre), strings.Fields(post)
		if !ok || len(f) < 5 || len(g) < 3 || f[4] != "/proc" || g[0] != "proc" {
			continue
		}
		for _, opt := range strings.Split(g[2], ",") {
			if (opt == "hidepid=2" || opt == "hidepid=invisible") && caps(status(procDir+"/self/status"))&(1<<kernel.CAP_SYS_PTRACE) == 0 {
				return HiddenError{"/proc is mounted with " + opt + ": other users' processes are invisible to this one, which lacks CAP_SYS_PTRACE, and might hold any object"}
			}
		}
	}
	return nil
}

// A DeniedProcess is a process that could not be inspected, as its
// /proc/PID/status (which anyone may read) tells.
type DeniedProcess struct {
	PID  int
	Gone bool   // it has exited: nothing else is known
	Name string // its command name, as the process set it
	UID  string // its real uid
	Why  string // why it could not be inspected
}

// Denied describes the processes pids, from procDir/PID/status.
func Denied(procDir string, pids []int) []DeniedProcess {
	me := status(procDir + "/self/status")
	myUID := strconv.Itoa(os.Geteuid())
	var out []DeniedProcess
	for _, pid := range pids {
		st := status(fmt.Sprintf("%s/%d/status", procDir, pid))
		if st == nil {
			out = append(out, DeniedProcess{PID: pid, Gone: true})
			continue
		}
		uid := strings.Fields(st["Uid"] + " ? ?")[1] // real, effective, ...
		why := "the kernel's ptrace access check refused (another user namespace, or Yama's ptrace_scope)"
		switch extra := caps(st) &^ caps(me); {
		case uid != myUID && myUID != "0":
			why = "another user's process, which only root may inspect"
		case extra != 0:
			why = fmt.Sprintf("it has capabilities this process lacks (%s), so even root without them may not read its descriptors", capNames(extra))
		}
		out = append(out, DeniedProcess{PID: pid, Name: st["Name"], UID: uid, Why: why})
	}
	return out
}

// status returns the fields of a /proc/PID/status file.
func status(path string) map[string]string {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	m := map[string]string{}
	for _, l := range strings.Split(string(data), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok {
			m[k] = strings.TrimSpace(v)
		}
	}
	return m
}

func caps(st map[string]string) uint64 {
	c, _ := strconv.ParseUint(st["CapEff"], 16, 64)
	return c
}

// capNames names the capabilities in the mask c, as capabilities(7) does.
func capNames(c uint64) string {
	names := strings.Fields(`CHOWN DAC_OVERRIDE DAC_READ_SEARCH FOWNER FSETID KILL SETGID SETUID SETPCAP
		LINUX_IMMUTABLE NET_BIND_SERVICE NET_BROADCAST NET_ADMIN NET_RAW IPC_LOCK IPC_OWNER SYS_MODULE
		SYS_RAWIO SYS_CHROOT SYS_PTRACE SYS_PACCT SYS_ADMIN SYS_BOOT SYS_NICE SYS_RESOURCE SYS_TIME
		SYS_TTY_CONFIG MKNOD LEASE AUDIT_WRITE AUDIT_CONTROL SETFCAP MAC_OVERRIDE MAC_ADMIN SYSLOG
		WAKE_ALARM BLOCK_SUSPEND AUDIT_READ PERFMON BPF CHECKPOINT_RESTORE`)
	var out []string
	for i := range 64 {
		if c&(1<<i) == 0 {
			continue
		}
		if i < len(names) {
			out = append(out, "CAP_"+names[i])
		} else {
			out = append(out, fmt.Sprintf("capability %d", i))
		}
	}
	return strings.Join(out, ", ")
}
