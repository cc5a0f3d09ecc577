package main

// The removal command: rm, rm -f and rm -stale.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/posixshm/shm"
	"github.com/posixshm/shm/internal/kernel"
	"github.com/posixshm/shm/internal/tmpname"
)

var rmCommands = []*command{
	{name: "rm", args: "[-f] [-stale [-age D] [-dry-run] [-ignore-denied]] [-json | -0] NAME...", summary: "unlink objects and semaphores; -stale: only those no process holds", setup: rmCmd},
}

type rmOpts struct {
	force, stale, dryRun, ignoreDenied, json, nul bool
	age                                           time.Duration
}

func rmCmd(fl *flag.FlagSet) runner {
	o := new(rmOpts)
	fl.BoolVar(&o.force, "f", false, "a NAME that does not exist is no error (as rm -f)")
	fl.BoolVar(&o.stale, "stale", false, "remove only what no process holds and what is older than -age: all of the host's objects and semaphores, or the NAMEs given and their NAME.~RANDOM leftovers")
	fl.DurationVar(&o.age, "age", time.Hour, "with -stale: the `duration` since the object was last modified or changed (chmod, chown, created)")
	fl.BoolVar(&o.dryRun, "dry-run", false, "with -stale: print what would be removed, remove nothing")
	fl.BoolVar(&o.ignoreDenied, "ignore-denied", false, "with -stale: remove even when some processes could not be inspected (they might hold an object)")
	fl.BoolVar(&o.json, "json", false, "print a JSON array: one object per NAME or candidate, with its action and reason")
	fl.BoolVar(&o.nul, "0", false, "end each output line with a NUL byte instead of a newline, and print names unquoted")
	return func(e *env, args []string) error {
		if o.json && o.nul {
			return usageError{"-json and -0 exclude each other"}
		}
		out := &rmOutput{e: e, opts: o}
		var err error
		if o.stale {
			err = runRmStale(out, o, args)
		} else {
			set := map[string]bool{}
			fl.Visit(func(f *flag.Flag) { set[f.Name] = true })
			if set["age"] || set["dry-run"] || set["ignore-denied"] {
				return usageError{"-age, -dry-run and -ignore-denied go with -stale"}
			}
			err = runRm(out, o, args)
		}
		if ferr := out.flush(); err == nil {
			err = ferr
		}
		return err
	}
}

// rmOutput prints what rm did: a line per removal on standard output
// ("removed NAME"), the rest on standard error; or, with -json, one array
// of records at the end.
type rmOutput struct {
	e      *env
	opts   *rmOpts
	recs   []map[string]any
	failed bool
}

// note records what happened to kind name: action is "removed", "would
// remove", "kept", "absent" or "error".
func (o *rmOutput) note(kind, name, action, reason string) {
	if action == "error" {
		o.failed = true
	}
	if o.opts.json {
		rec := map[string]any{"type": kind, "action": action}
		jsonName(rec, name)
		if reason != "" {
			rec["reason"] = reason
		}
		o.recs = append(o.recs, rec)
		return
	}
	switch action {
	case "removed", "would remove":
		if action == "removed" && !o.opts.stale {
			return // rm is silent, as rm(1)
		}
		if o.opts.nul {
			fmt.Fprintf(o.e.stdout, "%s %s\x00", action, name)
		} else {
			fmt.Fprintf(o.e.stdout, "%s %s\n", action, quoteName(name))
		}
	case "kept":
		o.e.warn("rm %s: kept: %s", quoteName(name), reason)
	case "error":
		o.e.warn("rm %s: %s", quoteName(name), reason)
	}
}

func (o *rmOutput) flush() error {
	if o.opts.json {
		if o.recs == nil {
			o.recs = []map[string]any{}
		}
		enc := json.NewEncoder(o.e.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(o.recs); err != nil {
			return err
		}
	}
	if o.failed {
		return errReported
	}
	return nil
}

// errText is err without the *fs.PathError's or *os.LinkError's Op and
// paths, which hold names raw: what is left names nothing.
func errText(err error) string {
	var pe *fs.PathError
	var le *os.LinkError
	switch {
	case errors.As(err, &pe):
		err = pe.Err
	case errors.As(err, &le):
		err = le.Err
	}
	return err.Error()
}

// runRm unlinks each NAME's object, or its semaphore where there is no
// object of that name (through libc: shm_unlink, sem_unlink).
func runRm(out *rmOutput, o *rmOpts, args []string) error {
	if len(args) == 0 {
		return usageError{"want at least one NAME"}
	}
	for _, name := range args {
		kind := "shm"
		err := shm.Unlink(name)
		if errors.Is(err, fs.ErrNotExist) {
			if serr := shm.UnlinkSemaphore(name); serr == nil {
				kind, err = "sem", nil
			}
		}
		switch {
		case err == nil:
			out.note(kind, name, "removed", "")
		case o.force && errors.Is(err, fs.ErrNotExist):
			out.note(kind, name, "absent", errText(err))
		default:
			out.note(kind, name, "error", errText(err))
		}
	}
	return nil
}

// candidate is an entry rm -stale may remove; given says it was named on
// the command line (or is a leftover of a name that was), so that keeping
// it is said.
type candidate struct {
	entry
	given bool
}

// runRmStale removes what nobody holds and what is older than -age. See
// the package doc's "Cleaning up" for the protocol and what it cannot see.
func runRmStale(out *rmOutput, o *rmOpts, args []string) error {
	if o.age < 0 {
		return usageError{"-age must not be negative"}
	}
	if err := checkProc(); err != nil {
		var hidden hiddenError
		if !errors.As(err, &hidden) || !o.ignoreDenied {
			return exitCode{exitRefused, fmt.Sprintf("rm -stale: nothing was removed: %v", err)}
		}
		out.e.warn("rm -stale: %v; removing anyway (-ignore-denied)", err)
	}
	var cands []candidate
	if len(args) > 0 {
		for _, name := range args {
			es, err := namedEntries(name)
			left := leftovers(name)
			switch {
			case err == nil:
			case errors.Is(err, fs.ErrNotExist) && (o.force || len(left) > 0):
				out.note("shm", name, "absent", errText(err)) // as rm -f says it
			default:
				out.note("shm", name, "error", errText(err))
			}
			for _, en := range append(es, left...) {
				cands = append(cands, candidate{en, true})
			}
		}
	} else {
		all, err := allEntries()
		if err != nil {
			return cmdErr("rm", shm.Dir(), err)
		}
		for _, en := range all {
			cands = append(cands, candidate{en, false})
		}
	}
	es := make([]entry, len(cands))
	for i, c := range cands {
		es[i] = c.entry
	}
	h := findHolders(es)
	if len(h.denied) > 0 {
		if !o.ignoreDenied {
			return exitCode{exitRefused, fmt.Sprintf("rm -stale: nothing was removed: %s; any of them might hold any object. %s", explainDenied(h.denied), deniedAdvice)}
		}
		out.e.warn("rm -stale: %s; removing anyway (-ignore-denied)", explainDenied(h.denied))
	}
	sigs := make(chan os.Signal, 1)
	notifyStop(sigs)
	defer signal.Stop(sigs)
	now := time.Now()
	for _, c := range cands {
		select {
		case sig := <-sigs: // between removals: nothing is quarantined now
			return stoppedBy(sig, "rm -stale")
		default:
		}
		if err := h.failed[c.path]; err != nil {
			out.note(c.kind, c.name, "error", "holders unknown: "+errText(err))
			continue
		}
		if pids := h.pids[c.path]; len(pids) > 0 {
			if c.given {
				out.note(c.kind, c.name, "kept", "held by "+joinPIDs(pids))
			}
			continue
		}
		if a := now.Sub(changed(c.st)); a < o.age {
			if c.given {
				out.note(c.kind, c.name, "kept", fmt.Sprintf("changed %s ago, less than -age %v", a.Round(time.Second), o.age))
			}
			continue
		}
		if o.dryRun {
			out.note(c.kind, c.name, "would remove", "")
			continue
		}
		action, reason := removeStale(c.entry, o.ignoreDenied)
		if action != "kept" || c.given {
			out.note(c.kind, c.name, action, reason)
		}
	}
	return nil
}

// Test hooks: useLease false takes the path of a system or user without
// leases; quarantined, when set, runs once the object is under its
// quarantine name q, before the last look for holders.
var (
	useLease    = true
	quarantined func(q string)
)

// removeStale removes en, which the first scan found held by nobody,
// unless a process holds it or opens it by the time it would go, and
// never so that two objects end up used under one name (issue 21 item 11):
//
//  1. A descriptor of en of its own, and a write lease on it (fcntl
//     F_SETLEASE F_WRLCK): the kernel grants it only while no other open
//     file description of the object exists, in any process of any pid
//     namespace, a mapping's included; so it is the check for holders,
//     exact at that instant. EAGAIN: kept. From then on, an open of the
//     object, however it found it, breaks the lease (F_GETLEASE tells) and
//     waits until the lease is dropped, or fails with EWOULDBLOCK if it is
//     O_NONBLOCK. Where no lease can be had (not the owner and without
//     CAP_LEASE, leases disabled), a second scan of /proc at step 3 stands
//     in for it.
//  2. An empty directory made under a quarantine name (NAME.~RANDOM, as an
//     unfinished Create leaves, so that rm -stale NAME finds the object if
//     this process is killed in between) is exchanged with the object
//     (renameat2 RENAME_EXCHANGE): atomically, the name is the directory
//     and the object is NAME.~RANDOM. The name is never absent, so no
//     open-or-create can make a new object under it meanwhile; an open of
//     it fails (EISDIR; a read-only one gets a directory, which cannot be
//     mapped).
//  3. The lease is looked at (or /proc scanned for holders of
//     NAME.~RANDOM). Opened or held: the object is exchanged back, which
//     cannot fail for want of a free name, and a waiting open then gets it
//     under its name: kept.
//  4. Otherwise the object is unlinked (shm_unlink, sem_unlink), then the
//     directory; the lease goes with the descriptor.
//
// What no protocol can see is an open(2) that had resolved the name before
// step 2 and reaches the object after step 3 (within one system call, as
// for any shm_unlink racing an open). Where the kernel refuses
// RENAME_EXCHANGE, step 2 renames the object away (RENAME_NOREPLACE) and
// step 3 puts it back with link(2), as before: the name is then absent
// meanwhile, and an open-or-create in that window can leave a holder alone
// on NAME.~RANDOM (said as an error naming it).
func removeStale(en entry, ignoreDenied bool) (action, reason string) {
	dir, base := filepath.Split(en.path)
	qbase := tempBase(base)
	q := dir + qbase
	if st, err := lstat(en.path); err != nil || !sameFile(st, en.st) {
		return "kept", "replaced by another object meanwhile"
	}
	fd := -1
	if useLease {
		f, err := syscall.Open(en.path, syscall.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0)
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return "kept", "another process holds a lease on it (another rm -stale?)"
		}
		if err == nil {
			var st syscall.Stat_t
			if err := syscall.Fstat(f, &st); err != nil || !sameFile(&st, en.st) {
				syscall.Close(f)
				return "kept", "replaced by another object meanwhile"
			}
			switch err := setLease(f, leaseWrite); {
			case err == nil:
				fd = f
				defer syscall.Close(fd) // drops the lease, after the object is back or gone
			case errors.Is(err, syscall.EAGAIN):
				syscall.Close(f)
				return "kept", heldSince(base)
			default: // EACCES, EINVAL: no lease here; /proc stands in
				syscall.Close(f)
			}
		}
	}
	if err := os.Mkdir(q, 0); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return "error", "no free quarantine name; try again"
		}
		return "error", errText(err)
	}
	if err := renameat2(q, en.path, flagExchange); err != nil {
		syscall.Rmdir(q)
		if errors.Is(err, syscall.EINVAL) || errors.Is(err, syscall.ENOSYS) {
			return removeRenamed(en, q, qbase, fd, ignoreDenied)
		}
		return "error", errText(err)
	}
	putBack := func(why string) (string, string) {
		if err := renameat2(q, en.path, flagExchange); err != nil {
			return "error", fmt.Sprintf("%s, but it could not be put back (%s): it is now %s", why, errText(err), quoteName(entryName(en.kind, qbase)))
		}
		syscall.Rmdir(q) // the directory; never an object
		return "kept", why
	}
	if action, reason, ok := judge(en, q, qbase, fd, ignoreDenied, putBack); !ok {
		return action, reason
	}
	if err := syscall.Rmdir(en.path); err != nil {
		return "error", fmt.Sprintf("removed, but the directory that stood in for it under its name could not be removed (%s)", errText(err))
	}
	return "removed", ""
}

// removeRenamed is removeStale's steps 2 to 4 where the kernel refuses
// RENAME_EXCHANGE: the object is renamed to q (renameat2
// RENAME_NOREPLACE, never over an object made there meanwhile), looked at
// as in step 3, and unlinked, or else put back under its name with
// link(2), never over an object created there meanwhile.
func removeRenamed(en entry, q, qbase string, fd int, ignoreDenied bool) (action, reason string) {
	if err := renameNoReplace(en.path, q); err != nil {
		return "error", errText(err)
	}
	putBack := func(why string) (string, string) {
		if err := os.Link(q, en.path); err != nil {
			return "error", fmt.Sprintf("%s, but it could not be put back (%s): it is now %s", why, errText(err), quoteName(entryName(en.kind, qbase)))
		}
		os.Remove(q)
		return "kept", why
	}
	if action, reason, ok := judge(en, q, qbase, fd, ignoreDenied, putBack); !ok {
		return action, reason
	}
	return "removed", ""
}

// judge is step 3 of both ways of removing: it looks at the object now
// under the quarantine name q (qbase) and unlinks it (ok), or else puts it
// back under its name with putBack, whose verdict it returns.
func judge(en entry, q, qbase string, fd int, ignoreDenied bool, putBack func(why string) (string, string)) (action, reason string, ok bool) {
	why := ""
	if st, err := lstat(q); err != nil || !sameFile(st, en.st) {
		why = "replaced by another object meanwhile"
	} else {
		if quarantined != nil {
			quarantined(q)
		}
		if why = opened(fd, qbase, ignoreDenied); why == "" {
			if err := unlinkEntry(en.kind, qbase); err != nil {
				why = "unlink: " + errText(err)
			}
		}
	}
	if why != "" {
		action, reason = putBack(why)
		return action, reason, false
	}
	return "", "", true
}

// opened says why the object now under the quarantine name qbase must be
// kept, or "" if it may go: its lease (fd, when not -1) was broken by an
// open, or (without a lease) /proc shows holders, or cannot say.
func opened(fd int, qbase string, ignoreDenied bool) string {
	if fd >= 0 {
		l, err := leaseOf(fd)
		switch {
		case err != nil:
			return "holders unknown: " + errText(err)
		case l != leaseWrite:
			return "opened by a process meanwhile"
		}
		return ""
	}
	// shm_open reaches every file of /dev/shm, a semaphore's too.
	pids, err := shm.Holders("/" + qbase)
	var de *shm.DeniedError
	if errors.As(err, &de) && ignoreDenied {
		err = nil
	}
	switch {
	case err != nil:
		return "holders unknown: " + errText(err)
	case len(pids) > 0:
		return "held by " + joinPIDs(pids) + " (since the first look)"
	}
	return ""
}

// heldSince is why an object that the first scan found free but whose
// lease was refused is kept: the holders /proc shows now, if any.
func heldSince(base string) string {
	if pids, _ := shm.Holders("/" + base); len(pids) > 0 {
		return "held by " + joinPIDs(pids) + " (since the first look)"
	}
	return "held by a process that /proc does not show (another pid namespace's?)"
}

// unlinkEntry unlinks the file base of /dev/shm through libc, as kind.
func unlinkEntry(kind, base string) error {
	if kind == "sem" {
		return shm.UnlinkSemaphore(entryName("sem", base))
	}
	return shm.Unlink("/" + base)
}

// tempBase is a fresh name beside base in the shape of the package's
// temporary names (internal/tmpname).
func tempBase(base string) string { return tmpname.New(base) }

// leftovers returns the NAME.~RANDOM objects of /dev/shm: what a Create of
// name leaves when it is killed before it publishes (or rm -stale when it
// is killed with the object in quarantine). A long name is cut short to
// fit NAME_MAX, as the package cuts it.
func leftovers(name string) []entry {
	base, err := baseName(name)
	if err != nil {
		return nil
	}
	dir, err := os.ReadDir(shm.Dir())
	if err != nil {
		return nil
	}
	var out []entry
	for _, d := range dir {
		f := d.Name()
		kind, prefix := "shm", base
		if strings.HasPrefix(f, "sem.") && !strings.HasPrefix(base, "sem.") {
			kind, prefix = "sem", "sem."+base
		}
		if !d.Type().IsRegular() || !tmpname.Of(f, prefix) {
			continue
		}
		st, err := lstat(shm.Dir() + "/" + f)
		if err != nil {
			continue
		}
		out = append(out, entry{kind, entryName(kind, f), shm.Dir() + "/" + f, st})
	}
	return out
}

// entryName is the name Open (kind "shm") or OpenSemaphore ("sem") takes
// for the file base of /dev/shm.
func entryName(kind, base string) string {
	if kind == "sem" {
		return "/" + strings.TrimPrefix(base, "sem.")
	}
	return "/" + base
}

func joinPIDs(pids []int) string {
	s := make([]string, len(pids))
	for i, p := range pids {
		s[i] = strconv.Itoa(p)
	}
	return strings.Join(s, ",")
}

// procDir is the /proc that checkProc and explainDenied read; tests may
// point it elsewhere.
var procDir = "/proc"

// hiddenError is a /proc that hides other users' processes (hidepid).
type hiddenError struct{ msg string }

func (e hiddenError) Error() string { return e.msg }

// checkProc makes sure that /proc shows processes at all, so that "no
// holder found" means something: this process must be there as itself (not
// mounted, a chroot, or the /proc of another pid namespace all fail), with
// its descriptors readable. A /proc mounted with hidepid=2 (invisible),
// where this process may not see every other, is a hiddenError.
func checkProc() error {
	self, err := os.Readlink(procDir + "/self")
	if err != nil {
		return fmt.Errorf("%s/self: %s: /proc is not mounted here (a chroot or a sandbox?), so no process that holds an object can be seen", procDir, errText(err))
	}
	if self != strconv.Itoa(os.Getpid()) {
		return fmt.Errorf("%s/self is pid %s but this process is %d: this /proc is another pid namespace's, and this one's processes cannot be seen", procDir, self, os.Getpid())
	}
	if _, err := os.ReadDir(procDir + "/self/fd"); err != nil {
		return fmt.Errorf("%s/self/fd: %s: no process's descriptors can be read", procDir, errText(err))
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
			if (opt == "hidepid=2" || opt == "hidepid=invisible") && !hasCap(procDir+"/self/status", kernel.CAP_SYS_PTRACE) {
				return hiddenError{"/proc is mounted with " + opt + ": other users' processes are invisible to this one, which lacks CAP_SYS_PTRACE, and might hold any object"}
			}
		}
	}
	return nil
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

func hasCap(statusPath string, c uint) bool { return caps(status(statusPath))&(1<<c) != 0 }

// explainDenied says which processes could not be inspected and why, from
// their /proc/PID/status, which anyone may read.
func explainDenied(pids []int) string {
	me := status(procDir + "/self/status")
	myUID := strconv.Itoa(os.Geteuid())
	var parts []string
	for i, pid := range pids {
		if i == 5 {
			parts = append(parts, fmt.Sprintf("and %d more", len(pids)-i))
			break
		}
		st := status(fmt.Sprintf("%s/%d/status", procDir, pid))
		if st == nil {
			parts = append(parts, fmt.Sprintf("pid %d (gone)", pid))
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
		parts = append(parts, fmt.Sprintf("pid %d (%s, uid %s): %s", pid, quoteName(st["Name"]), uid, why))
	}
	return fmt.Sprintf("%d %s could not be inspected: %s", len(pids), map[bool]string{true: "process", false: "processes"}[len(pids) == 1], strings.Join(parts, "; "))
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

// deniedAdvice is what rm -stale suggests when it refuses.
const deniedAdvice = "If you know those processes use no shared memory (a container's init such as tini, dumb-init or a shell usually does not), " +
	"-ignore-denied removes anyway; an object one of them does hold is still kept where rm -stale can take a lease on it (it owns the object, or has CAP_LEASE), " +
	"and would otherwise lose its name under it: it keeps its memory, but whoever opens the name next gets another object or none. " +
	"Otherwise run with the privileges they have (in a container: docker exec --privileged, or --cap-add SYS_PTRACE)."
