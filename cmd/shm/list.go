package main

// The listing commands: ls and stat, with their output formats.

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os/user"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/posixshm/shm"
	"github.com/posixshm/shm/internal/shmdir"
)

var listCommands = []*command{
	{name: "stat", args: "[-json] NAME...", summary: "describe objects and semaphores: size, mode, owner, times, holders", setup: statCmd},
	{name: "ls", args: "[-l] [-n] [-json | -0] [NAME...]", summary: "list the host's objects and semaphores, or the NAMEs given", setup: lsCmd},
}

// holdersField is the HOLDERS column of en: pids joined by commas, "-"
// for none, "?" when unknown (alone or after the pids found).
func holdersField(h *shmdir.Holders, en shmdir.Entry) string {
	pids := h.PIDs[en.Path]
	switch {
	case h.Known(en) && len(pids) == 0:
		return "-"
	case h.Known(en):
		return joinPIDs(pids)
	case len(pids) == 0:
		return "?"
	}
	return joinPIDs(pids) + ",?"
}

// warnUnknown says on standard error why some holders are unknown.
func warnUnknown(e *env, h *shmdir.Holders, cmd string) {
	if h.Hidden != nil {
		e.warn("%s: %v: holders there are unknown (\"?\")", cmd, h.Hidden)
	}
	if len(h.Denied) > 0 {
		e.warn("%s: %s: holders there are unknown (\"?\")", cmd, explainDenied(h.Denied))
	}
	seen := map[string]bool{}
	for path, err := range h.Failed {
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
		var h *shmdir.Holders
		if long || *asJSON {
			h = shmdir.FindHolders(procDir, es)
			defer warnUnknown(e, h, "ls")
		}
		switch {
		case *asJSON:
			if err := writeJSON(e.stdout, es, h); err != nil {
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
				fmt.Fprint(w, strings.Join([]string{string(en.Shown()), modeString(en.Stat),
					owner(en.Stat.Uid, *numeric, userName), owner(en.Stat.Gid, *numeric, groupName),
					strconv.FormatInt(en.Stat.Size, 10), mtime(en.Stat).Format("2006-01-02T15:04:05"),
					holdersField(h, en), name(en.Name)}, sep), end)
			}
			if tw != nil {
				if err := tw.Flush(); err != nil {
					return err
				}
			}
		default:
			for _, en := range es {
				if *nul {
					fmt.Fprintf(e.stdout, "%s %s\x00", en.Shown(), en.Name)
				} else {
					fmt.Fprintf(e.stdout, "%s %s\n", en.Shown(), quoteName(en.Name))
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
func gather(e *env, cmd string, names []string) (es []shmdir.Entry, failed bool) {
	if len(names) == 0 {
		all, err := shmdir.All()
		if err != nil {
			e.warn("%v", cmdErr(cmd, shm.Dir(), err))
			return nil, true
		}
		return all, false
	}
	for _, n := range names {
		got, err := shmdir.Named(n)
		if err != nil {
			e.warn("%v", cmdErr(cmd, n, err))
			failed = true
			continue
		}
		es = append(es, got...)
	}
	shmdir.Sort(es) // as ls sorts its operands
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
func record(en shmdir.Entry, h *shmdir.Holders) map[string]any {
	rec := map[string]any{
		"type":     en.Shown(),
		"path":     en.Path,
		"size":     en.Stat.Size,
		"mode":     octal(en.Stat),
		"uid":      en.Stat.Uid,
		"gid":      en.Stat.Gid,
		"owner":    userName(en.Stat.Uid),
		"group":    groupName(en.Stat.Gid),
		"modified": mtime(en.Stat).Format(time.RFC3339Nano),
		"changed":  ctime(en.Stat).Format(time.RFC3339Nano),
	}
	jsonName(rec, en.Name)
	if h != nil {
		if h.Known(en) {
			rec["holders"] = append([]int{}, h.PIDs[en.Path]...)
		} else {
			rec["holders"] = nil // unknown
			rec["holders_found"] = append([]int{}, h.PIDs[en.Path]...)
		}
	}
	return rec
}

func writeJSON(w io.Writer, es []shmdir.Entry, h *shmdir.Holders) error {
	recs := make([]map[string]any, 0, len(es))
	for _, en := range es {
		recs = append(recs, record(en, h))
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(recs)
}

// statCmd describes objects and semaphores (shmdir.Stat): an object as
// package shm describes it (what it refuses, stat refuses), also one this
// user may not read, as stat(1) can; a NAME with no object but a
// semaphore describes the semaphore.
func statCmd(fl *flag.FlagSet) runner {
	asJSON := fl.Bool("json", false, "print a JSON array, one object per entry")
	return func(e *env, args []string) error {
		if len(args) == 0 {
			return usageError{"want at least one NAME"}
		}
		var es []shmdir.Entry
		failed := false
		for _, name := range args {
			en, err := shmdir.Stat(name)
			if err != nil {
				e.warn("%v", cmdErr("stat", name, err))
				failed = true
				continue
			}
			es = append(es, en)
		}
		h := shmdir.FindHolders(procDir, es)
		defer warnUnknown(e, h, "stat")
		if *asJSON {
			if err := writeJSON(e.stdout, es, h); err != nil {
				return err
			}
		} else {
			for i, en := range es {
				if i > 0 {
					fmt.Fprintln(e.stdout)
				}
				w := tabwriter.NewWriter(e.stdout, 0, 0, 1, ' ', 0)
				fmt.Fprintf(w, "type:\t%s\n", en.Shown())
				fmt.Fprintf(w, "name:\t%s\n", quoteName(en.Name))
				fmt.Fprintf(w, "path:\t%s\n", quoteName(en.Path))
				fmt.Fprintf(w, "size:\t%d\n", en.Stat.Size)
				fmt.Fprintf(w, "mode:\t%s (%s)\n", modeString(en.Stat), octal(en.Stat))
				fmt.Fprintf(w, "owner:\t%s (%d)\n", quoteName(userName(en.Stat.Uid)), en.Stat.Uid)
				fmt.Fprintf(w, "group:\t%s (%d)\n", quoteName(groupName(en.Stat.Gid)), en.Stat.Gid)
				fmt.Fprintf(w, "modified:\t%s (%s ago)\n", mtime(en.Stat).Format(time.RFC3339), age(mtime(en.Stat)))
				fmt.Fprintf(w, "changed:\t%s (%s ago)\n", ctime(en.Stat).Format(time.RFC3339), age(ctime(en.Stat)))
				fmt.Fprintf(w, "holders:\t%s\n", holdersField(h, en))
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

func mtime(st *syscall.Stat_t) time.Time {
	return time.Unix(int64(st.Mtim.Sec), int64(st.Mtim.Nsec))
}

func ctime(st *syscall.Stat_t) time.Time {
	return time.Unix(int64(st.Ctim.Sec), int64(st.Ctim.Nsec))
}

// modeString is st's mode as ls shows it: -rw-r-----.
func modeString(st *syscall.Stat_t) string {
	return fs.FileMode(st.Mode & 0o777).String()
}

func octal(st *syscall.Stat_t) string { return fmt.Sprintf("%#o", st.Mode&0o7777) }
