package main

// The listing commands: ls and stat, with their output formats.

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/posixshm/shm"
)

var listCommands = []*command{
	{name: "stat", args: "[-json] NAME...", summary: "describe objects and semaphores: size, mode, owner, times, holders", setup: statCmd},
	{name: "ls", args: "[-l] [-n] [-json | -0] [NAME...]", summary: "list the host's objects and semaphores, or the NAMEs given", setup: lsCmd},
}

// entry is an object ("shm") or a semaphore ("sem") of /dev/shm.
type entry struct {
	kind string // "shm" or "sem"
	name string // as Open or OpenSemaphore takes it: "/x"
	path string // its file
	st   *syscall.Stat_t
}

// allEntries returns the host's objects (shm.Objects) and glibc's
// semaphores (shm.Semaphores), sorted by name, then type.
func allEntries() ([]entry, error) {
	var out []entry
	for fi, err := range shm.Objects() {
		if err != nil {
			return nil, err
		}
		out = append(out, entry{"shm", "/" + fi.Name(), shm.Dir() + "/" + fi.Name(), fi.Sys().(*syscall.Stat_t)})
	}
	for fi, err := range shm.Semaphores() {
		if err != nil {
			return nil, err
		}
		out = append(out, entry{"sem", "/" + strings.TrimPrefix(fi.Name(), "sem."), shm.Dir() + "/" + fi.Name(), fi.Sys().(*syscall.Stat_t)})
	}
	sortEntries(out)
	return out, nil
}

func sortEntries(es []entry) {
	slices.SortFunc(es, func(a, b entry) int {
		if c := strings.Compare(a.name, b.name); c != 0 {
			return c
		}
		return strings.Compare(b.kind, a.kind) // shm before sem
	})
}

// namedEntries returns the object and the semaphore called name, as far
// as they exist (lstat: no permission needed); an error wrapping
// fs.ErrNotExist if neither does. A symbolic link, directory or other
// non-regular file under the name is refused with ENODEV, as the package
// refuses it.
func namedEntries(name string) ([]entry, error) {
	var out []entry
	op, err := objectPath(name)
	if err != nil {
		return nil, err
	}
	sp, _ := semPath(name)
	for _, c := range []struct{ kind, path string }{{"shm", op}, {"sem", sp}} {
		if c.path == "" {
			continue
		}
		st, err := lstat(c.path)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if st.Mode&syscall.S_IFMT != syscall.S_IFREG {
			return nil, syscall.ENODEV
		}
		out = append(out, entry{c.kind, "/" + strings.TrimLeft(name, "/"), c.path, st})
	}
	if len(out) == 0 {
		return nil, syscall.ENOENT
	}
	return out, nil
}

// holderInfo is the holders of some entries, by path, and the processes
// that could not be inspected.
type holderInfo struct {
	pids   map[string][]int // by entry path; nil slice: none found
	failed map[string]error // by entry path: the holders are unknown
	denied []int
	hidden error // /proc hides some processes (hidepid)
}

// known reports whether the holders of e are known: found, and no process
// could have hidden one.
func (h *holderInfo) known(e entry) bool {
	return h.failed[e.path] == nil && len(h.denied) == 0 && h.hidden == nil
}

// findHolders looks for the processes that hold es: one scan of /proc for
// all objects (shm.HoldersAll), one per semaphore (shm.Holders of its
// file, which shm_open reaches as "/sem.NAME").
func findHolders(es []entry) *holderInfo {
	h := &holderInfo{pids: map[string][]int{}, failed: map[string]error{}}
	var hidden hiddenError
	if err := checkProc(); errors.As(err, &hidden) {
		h.hidden = err // some processes are invisible: every answer is partial
	} else if err != nil { // no holder found would mean nothing
		for _, e := range es {
			h.failed[e.path] = err
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
					h.denied = append(h.denied, p)
				}
			}
			return nil
		}
		return err
	}
	var all map[string][]int
	var allErr error
	for _, e := range es {
		switch e.kind {
		case "shm":
			if all == nil {
				all, allErr = shm.HoldersAll()
				allErr = addDenied(allErr)
			}
			h.pids[e.path] = all[e.name]
			if allErr != nil {
				h.failed[e.path] = allErr
			}
		case "sem":
			pids, err := shm.Holders("/" + filepath.Base(e.path))
			h.pids[e.path] = pids
			if err = addDenied(err); err != nil {
				h.failed[e.path] = err
			}
		}
	}
	slices.Sort(h.denied)
	return h
}

// holdersField is the HOLDERS column: pids joined by commas, "-" for none,
// "?" when unknown.
func (h *holderInfo) field(e entry) string {
	pids := h.pids[e.path]
	if len(pids) == 0 {
		if !h.known(e) {
			return "?"
		}
		return "-"
	}
	s := make([]string, len(pids))
	for i, p := range pids {
		s[i] = strconv.Itoa(p)
	}
	if !h.known(e) {
		s = append(s, "?")
	}
	return strings.Join(s, ",")
}

// warnUnknown says on standard error why some holders are unknown.
func (h *holderInfo) warnUnknown(e *env, cmd string) {
	if h.hidden != nil {
		e.warn("%s: %v: holders there are unknown (\"?\")", cmd, h.hidden)
	}
	if len(h.denied) > 0 {
		e.warn("%s: %s: holders there are unknown (\"?\")", cmd, explainDenied(h.denied))
	}
	seen := map[string]bool{}
	for path, err := range h.failed {
		if !seen[err.Error()] {
			seen[err.Error()] = true
			e.warn("%s: holders of %s: %s", cmd, quoteName(path), errText(err))
		}
	}
}

func lsCmd(fl *flag.FlagSet) runner {
	long := fl.Bool("l", false, "long listing: type, mode, owner, group, size, modification time, holders (pids), name")
	numeric := fl.Bool("n", false, "like -l, with owner and group as numbers (as ls -n)")
	asJSON := fl.Bool("json", false, "print a JSON array, one object per entry (see go doc for the fields)")
	nul := fl.Bool("0", false, "end each line with a NUL byte instead of a newline, and print names unquoted")
	return func(e *env, args []string) error {
		if *asJSON && *nul {
			return usageError{"-json and -0 exclude each other"}
		}
		long := *long || *numeric
		es, failed := gather(e, "ls", args)
		var h *holderInfo
		if long || *asJSON {
			h = findHolders(es)
			defer h.warnUnknown(e, "ls")
		}
		switch {
		case *asJSON:
			if err := writeJSON(e.stdout, es, h, long); err != nil {
				return err
			}
		case long:
			// With -0 the names are raw bytes, which a tabwriter would
			// change (a tab, \v or \f in a name is a cell or line
			// break to it): single spaces between fields, no alignment.
			var w io.Writer = e.stdout
			var tw *tabwriter.Writer
			sep, end, name := " ", "\x00", func(s string) string { return s }
			if !*nul {
				tw = tabwriter.NewWriter(e.stdout, 0, 0, 1, ' ', 0)
				w, sep, end, name = tw, "\t", "\n", quoteName
				fmt.Fprintf(w, "TYPE\tMODE\tOWNER\tGROUP\tSIZE\tMODIFIED\tHOLDERS\tNAME\n")
			}
			for _, en := range es {
				fmt.Fprint(w, strings.Join([]string{shownKind(en), modeString(en.st),
					owner(en.st.Uid, *numeric, userName), owner(en.st.Gid, *numeric, groupName),
					strconv.FormatInt(en.st.Size, 10), mtime(en.st).Format("2006-01-02T15:04:05"),
					h.field(en), name(en.name)}, sep), end)
			}
			if tw != nil {
				if err := tw.Flush(); err != nil {
					return err
				}
			}
		default:
			for _, en := range es {
				if *nul {
					fmt.Fprintf(e.stdout, "%s %s\x00", shownKind(en), en.name)
				} else {
					fmt.Fprintf(e.stdout, "%s %s\n", shownKind(en), quoteName(en.name))
				}
			}
		}
		if failed {
			return errReported
		}
		return nil
	}
}

// gather returns the entries of the NAMEs given, or all, reporting each
// NAME that has none.
func gather(e *env, cmd string, names []string) (es []entry, failed bool) {
	if len(names) == 0 {
		all, err := allEntries()
		if err != nil {
			e.warn("%v", cmdErr(cmd, shm.Dir(), err))
			return nil, true
		}
		return all, false
	}
	for _, n := range names {
		got, err := namedEntries(n)
		if err != nil {
			e.warn("%v", cmdErr(cmd, n, err))
			failed = true
			continue
		}
		es = append(es, got...)
	}
	sortEntries(es) // as ls sorts its operands
	return es, failed
}

// owner is a uid or gid as ls shows it: its name (quoted as names are, a
// name from /etc/passwd being anyone's), or the number.
func owner(id uint32, numeric bool, lookup func(uint32) string) string {
	if numeric {
		return strconv.FormatUint(uint64(id), 10)
	}
	return quoteName(lookup(id))
}

// record is the JSON form of an entry.
func record(en entry, h *holderInfo) map[string]any {
	rec := map[string]any{
		"type":     shownKind(en),
		"path":     en.path,
		"size":     en.st.Size,
		"mode":     octal(en.st),
		"uid":      en.st.Uid,
		"gid":      en.st.Gid,
		"owner":    userName(en.st.Uid),
		"group":    groupName(en.st.Gid),
		"modified": mtime(en.st).Format(time.RFC3339Nano),
		"changed":  ctime(en.st).Format(time.RFC3339Nano),
	}
	jsonName(rec, en.name)
	if h != nil {
		if h.known(en) {
			rec["holders"] = append([]int{}, h.pids[en.path]...)
		} else {
			rec["holders"] = nil // unknown
			rec["holders_found"] = append([]int{}, h.pids[en.path]...)
		}
	}
	return rec
}

func writeJSON(w io.Writer, es []entry, h *holderInfo, _ bool) error {
	recs := make([]map[string]any, 0, len(es))
	for _, en := range es {
		recs = append(recs, record(en, h))
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(recs)
}

// statCmd describes objects and semaphores. An object goes through the
// package (shm.Stat: what it refuses, stat refuses); one this user may not
// read is described from its file, opened without access (O_PATH), as
// stat(1) can; a NAME with no object but a semaphore describes the
// semaphore.
func statCmd(fl *flag.FlagSet) runner {
	asJSON := fl.Bool("json", false, "print a JSON array, one object per entry")
	return func(e *env, args []string) error {
		if len(args) == 0 {
			return usageError{"want at least one NAME"}
		}
		var es []entry
		failed := false
		for _, name := range args {
			en, err := statEntry(name)
			if err != nil {
				e.warn("%v", cmdErr("stat", name, err))
				failed = true
				continue
			}
			es = append(es, en)
		}
		h := findHolders(es)
		defer h.warnUnknown(e, "stat")
		if *asJSON {
			if err := writeJSON(e.stdout, es, h, true); err != nil {
				return err
			}
		} else {
			for i, en := range es {
				if i > 0 {
					fmt.Fprintln(e.stdout)
				}
				w := tabwriter.NewWriter(e.stdout, 0, 0, 1, ' ', 0)
				fmt.Fprintf(w, "type:\t%s\n", shownKind(en))
				fmt.Fprintf(w, "name:\t%s\n", quoteName(en.name))
				fmt.Fprintf(w, "path:\t%s\n", quoteName(en.path))
				fmt.Fprintf(w, "size:\t%d\n", en.st.Size)
				fmt.Fprintf(w, "mode:\t%s (%s)\n", modeString(en.st), octal(en.st))
				fmt.Fprintf(w, "owner:\t%s (%d)\n", quoteName(userName(en.st.Uid)), en.st.Uid)
				fmt.Fprintf(w, "group:\t%s (%d)\n", quoteName(groupName(en.st.Gid)), en.st.Gid)
				fmt.Fprintf(w, "modified:\t%s (%s ago)\n", mtime(en.st).Format(time.RFC3339), age(mtime(en.st)))
				fmt.Fprintf(w, "changed:\t%s (%s ago)\n", ctime(en.st).Format(time.RFC3339), age(ctime(en.st)))
				fmt.Fprintf(w, "holders:\t%s\n", h.field(en))
				if err := w.Flush(); err != nil {
					return err
				}
			}
		}
		if failed {
			return errReported
		}
		return nil
	}
}

// statEntry describes name: the object through shm.Stat, else (no read
// permission) its file; with no object, the semaphore.
func statEntry(name string) (entry, error) {
	path, perr := objectPath(name)
	fi, err := shm.Stat(name)
	switch {
	case err == nil:
		return entry{"shm", "/" + fi.Name(), path, fi.Sys().(*syscall.Stat_t)}, nil
	case errors.Is(err, fs.ErrPermission) && perr == nil:
		p, err := openPath(path)
		if err != nil {
			return entry{}, err
		}
		defer p.close()
		return entry{"shm", "/" + filepath.Base(path), path, &p.st}, nil
	case errors.Is(err, fs.ErrNotExist):
		sp, serr := semPath(name)
		if serr != nil {
			return entry{}, err
		}
		p, serr := openPath(sp)
		if errors.Is(serr, fs.ErrNotExist) {
			return entry{}, err // neither: the object's error
		} else if serr != nil {
			return entry{}, serr
		}
		defer p.close()
		return entry{"sem", "/" + strings.TrimPrefix(filepath.Base(sp), "sem."), sp, &p.st}, nil
	}
	return entry{}, err
}

var userNames sync.Map // uint32 → string

func userName(uid uint32) string {
	if n, ok := userNames.Load(uid); ok {
		return n.(string)
	}
	n := strconv.FormatUint(uint64(uid), 10)
	if u, err := user.LookupId(n); err == nil {
		n = u.Username
	}
	userNames.Store(uid, n)
	return n
}

func groupName(gid uint32) string {
	n := strconv.FormatUint(uint64(gid), 10)
	if g, err := user.LookupGroupId(n); err == nil {
		return g.Name
	}
	return n
}

// age is a short human duration: 42s, 5m, 3h, 12d.
func age(t time.Time) string {
	d := time.Since(t)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}
