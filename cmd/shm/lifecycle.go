package main

// The lifecycle commands: ls -l, rm -stale, chmod, chown and
// truncate.

import (
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"math"
	"os"
	"os/user"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/posixshm/shm"
)

var (
	lsLong  bool
	lsCount bool
)

func lsFlags(fl *flag.FlagSet) {
	fl.BoolVar(&lsLong, "l", false, "long listing: size, mode, owner, modification time, holders (pids) and name")
	fl.BoolVar(&lsCount, "n", false, "with -l: the number of holders instead of their pids")
}

// runLsLong prints the long listing: one line per object, the name last
// (a name may hold spaces). HOLDERS are the pids that have the object open
// or mapped, "-" for none. A process this user may not inspect is
// reported on standard error; the listing is still printed.
func runLsLong() error {
	holders, herr := shm.HoldersAll()
	var de *shm.DeniedError
	if herr != nil && !errors.As(herr, &de) {
		return cmdErr("ls", shmDir, herr)
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintf(w, "SIZE\tMODE\tOWNER\tMODIFIED\tHOLDERS\tNAME\n")
	var objects []fs.FileInfo
	for fi, err := range shm.Objects() {
		if err != nil {
			return cmdErr("ls", shmDir, err)
		}
		objects = append(objects, fi)
	}
	slices.SortFunc(objects, func(a, b fs.FileInfo) int { return strings.Compare(a.Name(), b.Name()) })
	for _, fi := range objects {
		name := "/" + fi.Name()
		uid, _ := owner(fi)
		fmt.Fprintf(w, "%d\t%v\t%s\t%s\t%s\t%s\n", fi.Size(), fi.Mode().Perm(), userName(uid),
			fi.ModTime().Format("2006-01-02 15:04:05"), showHolders(holders[name], lsCount), name)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if de != nil {
		fmt.Fprintf(os.Stderr, "shm: ls: %v: holders in those processes are not shown\n", de)
	}
	return nil
}

// showHolders is the HOLDERS column: pids joined by commas ("-" for none),
// or their count.
func showHolders(pids []int, count bool) string {
	if count {
		return strconv.Itoa(len(pids))
	}
	if len(pids) == 0 {
		return "-"
	}
	s := make([]string, len(pids))
	for i, p := range pids {
		s[i] = strconv.Itoa(p)
	}
	return strings.Join(s, ",")
}

var (
	rmStale        bool
	rmAge          time.Duration
	rmDryRun       bool
	rmIgnoreDenied bool
)

func rmFlags(fl *flag.FlagSet) {
	fl.BoolVar(&rmStale, "stale", false, "remove only objects that no process holds and that are older than -age: all of the host's, or the NAMEs given")
	fl.DurationVar(&rmAge, "age", time.Hour, "with -stale: the `duration` since the object was last modified or changed (chmod, chown, created)")
	fl.BoolVar(&rmDryRun, "dry-run", false, "with -stale: print what would be removed, remove nothing")
	fl.BoolVar(&rmIgnoreDenied, "ignore-denied", false, "with -stale: remove even when some processes could not be inspected (they might hold an object)")
}

// runRmStale removes the objects that nobody holds and that are older than
// rmAge. It prints "removed NAME" for each (or "would remove NAME" with
// -dry-run); a NAME given that is kept is said on standard error. If some
// processes cannot be inspected, any object might be theirs: nothing is
// removed unless -ignore-denied. Exit status 1 if any removal failed.
//
// Between the look and the removal another process may open the object:
// the window is narrowed by checking, just before shm_unlink, that the
// name still refers to the same object, but no tool can close it.
func runRmStale(args []string) error {
	if rmAge < 0 {
		return usageError{"-age must not be negative"}
	}
	type candidate struct {
		name     string
		fi       fs.FileInfo
		explicit bool
	}
	var cands []candidate
	failed := false
	report := func(name string, err error) {
		fmt.Fprintf(os.Stderr, "shm: %v\n", cmdErr("rm", name, err))
		failed = true
	}
	if len(args) > 0 {
		for _, name := range args {
			fi, err := shm.Stat(name)
			if err != nil {
				report(name, err)
				continue
			}
			cands = append(cands, candidate{"/" + fi.Name(), fi, true})
		}
	} else {
		for fi, err := range shm.Objects() {
			if err != nil {
				return cmdErr("rm", shmDir, err)
			}
			cands = append(cands, candidate{"/" + fi.Name(), fi, false})
		}
	}
	holders, err := shm.HoldersAll()
	var de *shm.DeniedError
	switch {
	case errors.As(err, &de) && rmIgnoreDenied:
		fmt.Fprintf(os.Stderr, "shm: rm: %v; removing anyway (-ignore-denied)\n", de)
	case de != nil:
		return fmt.Errorf("rm -stale: %v: they might hold any object, so nothing was removed (run as root, or give -ignore-denied)", de)
	case err != nil:
		return cmdErr("rm", shmDir, err)
	}
	now := time.Now()
	for _, c := range cands {
		if pids := holders[c.name]; len(pids) > 0 {
			if c.explicit {
				fmt.Fprintf(os.Stderr, "shm: rm %s: kept: held by %s\n", showName(c.name), showHolders(pids, false))
			}
			continue
		}
		if age := now.Sub(changed(c.fi)); age < rmAge {
			if c.explicit {
				fmt.Fprintf(os.Stderr, "shm: rm %s: kept: changed %s ago, less than -age %v\n", showName(c.name), age.Round(time.Second), rmAge)
			}
			continue
		}
		if rmDryRun {
			fmt.Printf("would remove %s\n", c.name)
			continue
		}
		// The same object still? A new one under the name is not stale.
		if fi, err := os.Lstat(shmDir + c.name); err != nil || !sameFile(fi, c.fi) {
			continue
		}
		if err := shm.Unlink(c.name); err != nil {
			report(c.name, err)
			continue
		}
		fmt.Printf("removed %s\n", c.name)
	}
	if failed {
		return errReported
	}
	return nil
}

// changed is when the object was last modified or its inode changed
// (created, linked under its name, chmod, chown): the later of mtime and
// ctime. Writes through a mapping change neither, on tmpfs.
func changed(fi fs.FileInfo) time.Time {
	t := fi.ModTime()
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		if c := time.Unix(int64(st.Ctim.Sec), int64(st.Ctim.Nsec)); c.After(t) {
			t = c
		}
	}
	return t
}

func sameFile(a, b fs.FileInfo) bool {
	sa, ok1 := a.Sys().(*syscall.Stat_t)
	sb, ok2 := b.Sys().(*syscall.Stat_t)
	return ok1 && ok2 && sa.Dev == sb.Dev && sa.Ino == sb.Ino
}

// runChmod sets an object's mode exactly (fchmod, no umask).
func runChmod(fl *flag.FlagSet, args []string) error {
	if len(args) != 2 {
		return usageError{"want MODE and NAME"}
	}
	var mode modeFlag
	if err := mode.Set(args[0]); err != nil {
		return usageError{err.Error()}
	}
	name := args[1]
	s, err := shm.OpenFile(name, os.O_RDONLY, 0, 0, nil)
	if err != nil {
		return cmdErr("chmod", name, err)
	}
	defer s.Close()
	if err := s.Chmod(fs.FileMode(mode)); err != nil {
		return cmdErr("chmod", name, err)
	}
	return closeErr("chmod", name, s)
}

// runChown sets an object's owner and group: USER, USER:GROUP, USER: (the
// user's login group) or :GROUP, each a name or a number.
func runChown(fl *flag.FlagSet, args []string) error {
	if len(args) != 2 {
		return usageError{"want USER[:GROUP] and NAME"}
	}
	uid, gid, err := parseOwner(args[0])
	if err != nil {
		return usageError{err.Error()}
	}
	name := args[1]
	s, err := shm.OpenFile(name, os.O_RDONLY, 0, 0, nil)
	if err != nil {
		return cmdErr("chown", name, err)
	}
	defer s.Close()
	if err := s.Chown(uid, gid); err != nil {
		return cmdErr("chown", name, err)
	}
	return closeErr("chown", name, s)
}

// parseOwner reads USER[:GROUP] as chown(1) does: names or numbers;
// "USER:" is the user's login group; -1 is "unchanged".
func parseOwner(spec string) (uid, gid int, err error) {
	u, g, hasColon := strings.Cut(spec, ":")
	uid, gid = -1, -1
	if u == "" && g == "" {
		return 0, 0, fmt.Errorf("bad owner %q: want USER[:GROUP]", spec)
	}
	if u != "" {
		usr, lerr := user.Lookup(u)
		if n, err := strconv.ParseUint(u, 10, 32); err == nil && n < math.MaxUint32 {
			uid = int(n)
			usr, lerr = user.LookupId(u)
		} else if lerr != nil {
			return 0, 0, fmt.Errorf("unknown user %q", u)
		} else {
			uid, _ = strconv.Atoi(usr.Uid)
		}
		if hasColon && g == "" {
			if lerr != nil {
				return 0, 0, fmt.Errorf("user %q has no login group to take: give USER:GROUP", u)
			}
			gid, _ = strconv.Atoi(usr.Gid)
		}
	}
	if g != "" {
		if n, err := strconv.ParseUint(g, 10, 32); err == nil && n < math.MaxUint32 {
			gid = int(n)
		} else if grp, err := user.LookupGroup(g); err == nil {
			gid, _ = strconv.Atoi(grp.Gid)
		} else {
			return 0, 0, fmt.Errorf("unknown group %q", g)
		}
	}
	return uid, gid, nil
}

var truncateSize sizeFlag

func truncateFlags(fl *flag.FlagSet) {
	fl.Var(&truncateSize, "size", "the new size in `bytes`; growing reserves the new pages (ENOSPC, not SIGBUS later)")
}

// runTruncate resizes an object. Processes that have it mapped keep their
// mapping's size until they remap; after a shrink, touching the lost pages
// faults in them.
func runTruncate(fl *flag.FlagSet, args []string) error {
	name, err := oneName(args)
	if err != nil {
		return err
	}
	if !truncateSize.set {
		return usageError{"-size is required"}
	}
	if truncateSize.n > int64(math.MaxInt) {
		return cmdErr("truncate", name, fmt.Errorf("size %d too large", truncateSize.n))
	}
	s, err := shm.Open(name)
	if err != nil {
		return cmdErr("truncate", name, err)
	}
	defer s.Close()
	if err := s.Truncate(int(truncateSize.n)); err != nil {
		return cmdErr("truncate", name, err)
	}
	return closeErr("truncate", name, s)
}
