package main

// The removal command: rm, rm -f and rm -stale.

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"os/signal"
	"time"

	"github.com/posixshm/shm"
	"github.com/posixshm/shm/internal/shmdir"
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
	shmdir.Entry
	given bool
}

// runRmStale removes what nobody holds and what is older than -age. See
// the package doc's "Cleaning up" for the protocol and what it cannot see.
func runRmStale(out *rmOutput, o *rmOpts, args []string) error {
	if o.age < 0 {
		return usageError{"-age must not be negative"}
	}
	if err := shmdir.CheckProc(procDir); err != nil {
		var hidden shmdir.HiddenError
		if !errors.As(err, &hidden) || !o.ignoreDenied {
			return exitCode{exitRefused, fmt.Sprintf("rm -stale: nothing was removed: %v", err)}
		}
		out.e.warn("rm -stale: %v; removing anyway (-ignore-denied)", err)
	}
	var cands []candidate
	if len(args) > 0 {
		for _, name := range args {
			es, err := shmdir.Named(name)
			left := shmdir.Leftovers(name)
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
		all, err := shmdir.All()
		if err != nil {
			return cmdErr("rm", shm.Dir(), err)
		}
		for _, en := range all {
			cands = append(cands, candidate{en, false})
		}
	}
	es := make([]shmdir.Entry, len(cands))
	for i, c := range cands {
		es[i] = c.Entry
	}
	h := shmdir.FindHolders(procDir, es)
	if len(h.Denied) > 0 {
		if !o.ignoreDenied {
			return exitCode{exitRefused, fmt.Sprintf("rm -stale: nothing was removed: %s; any of them might hold any object. %s", explainDenied(h.Denied), deniedAdvice)}
		}
		out.e.warn("rm -stale: %s; removing anyway (-ignore-denied)", explainDenied(h.Denied))
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
		kind := string(c.Kind)
		if err := h.Failed[c.Path]; err != nil {
			out.note(kind, c.Name, "error", "holders unknown: "+errText(err))
			continue
		}
		if pids := h.PIDs[c.Path]; len(pids) > 0 {
			if c.given {
				out.note(kind, c.Name, "kept", "held by "+joinPIDs(pids))
			}
			continue
		}
		if a := now.Sub(c.Changed()); a < o.age {
			if c.given {
				out.note(kind, c.Name, "kept", fmt.Sprintf("changed %s ago, less than -age %v", a.Round(time.Second), o.age))
			}
			continue
		}
		if o.dryRun {
			out.note(kind, c.Name, "would remove", "")
			continue
		}
		action, reason := removeStale(c.Entry, o.ignoreDenied)
		if action != "kept" || c.given {
			out.note(kind, c.Name, action, reason)
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

// removeStale removes en unless a process holds it or opens it by the
// time it would go (shmdir.RemoveStale: a write lease, then an exchange
// with a directory), and words the verdict.
func removeStale(en shmdir.Entry, ignoreDenied bool) (action, reason string) {
	v := shmdir.RemoveStale(en, shmdir.StaleOptions{IgnoreDenied: ignoreDenied, NoLease: !useLease, Quarantined: quarantined})
	if v.Left != "" {
		v.Reason += " " + quoteName(v.Left)
	}
	return v.Action, v.Reason
}

// deniedAdvice is what rm -stale suggests when it refuses.
const deniedAdvice = "If you know those processes use no shared memory (a container's init such as tini, dumb-init or a shell usually does not), " +
	"-ignore-denied removes anyway; an object one of them does hold is still kept where rm -stale can take a lease on it (it owns the object, or has CAP_LEASE), " +
	"and would otherwise lose its name under it: it keeps its memory, but whoever opens the name next gets another object or none. " +
	"Otherwise run with the privileges they have (in a container: docker exec --privileged, or --cap-add SYS_PTRACE)."
