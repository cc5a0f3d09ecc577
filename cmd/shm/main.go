// Command shm inspects, fills, reads and cleans up POSIX shared memory
// objects and named semaphores from the shell, and shows the package at
// work between two processes: what ipcs and ipcrm do for System V.
//
// Usage:
//
//	shm create [-size N] [-mode 0600] NAME
//	shm write [-size N] [-existing [-keep]] NAME < data
//	shm read [-offset N] [-length N] NAME
//	shm truncate -size N NAME
//	shm chmod MODE NAME
//	shm chown USER[:GROUP] NAME
//	shm stat [-json] NAME...
//	shm ls [-l] [-n] [-json | -0] [NAME...]
//	shm rm [-f] [-stale [-age D] [-dry-run] [-ignore-denied]] [-json | -0] NAME...
//	shm sem create [-value N] [-mode 0600] NAME
//	shm sem post NAME
//	shm sem wait [-timeout D] NAME
//	shm sem value NAME
//	shm demo [-hold] [-memfd]
//	shm ring create -size N [-writers W] [-readers R] NAME
//	shm ring send NAME
//	shm ring recv NAME
//	shm ring stat [-json] NAME
//
// create makes a new object (exclusive, pages reserved), 4096 bytes unless
// -size says otherwise. write copies standard input into a new object sized
// to the input, or to -size with zeros after the input. With -existing it
// writes into an existing object from its start and never resizes it; the
// object's bytes after the input become zeros, so a reader sees exactly the
// input, unless -keep keeps them as they were. read copies an object's
// bytes, or -length bytes from -offset, to standard output. truncate sets
// the size, reserving the pages it grows by. chmod sets the mode exactly,
// whatever the umask; chown the owner and group (names or numbers; "USER:"
// takes the user's login group); the owner may do both without read
// permission on the object, as with chmod(1).
//
// stat describes objects and semaphores: type, size, mode, owner, group,
// times and the pids that hold them open or mapped. It refuses what the
// package refuses (a symbolic link, a directory, a FIFO, a device). ls lists
// the host's objects and semaphores, or the NAMEs given, a line each, type
// and name; ls -l adds mode, owner, group, size, modification time and
// holders. -n shows owner and group as numbers, as ls -n does.
//
// rm unlinks objects (and a semaphore where no object has the name); -f
// makes a NAME that does not exist no error. rm -stale removes only what
// no process holds and what was not changed for -age (1h): all of the
// host's objects and semaphores, or the NAMEs given, with the leftovers
// NAME.~RANDOM of a Create of NAME that was interrupted. See "Cleaning up"
// below.
//
// sem creates, posts, waits on or reads a named POSIX semaphore, so that a
// shell script can coordinate with a Go, C or Python program. sem wait
// -timeout 0 tries without blocking; a negative -timeout is a usage error.
//
// demo has two processes share memory by name; with -hold the second waits
// for Enter, so that Ctrl-C can be tried; with -memfd they share a sealed
// memfd instead, which the second process inherits as a descriptor and
// cannot shrink.
//
// ring is a shared-memory pipe between two shells (package
// github.com/posixshm/shm/ring): ring create makes a message ring of W
// writers (default 1), each with a lane of N data bytes, and R readers
// (default 1), each of which receives every message; ring send sends
// standard input into it as messages (claiming a free writer slot) and
// then ends its stream, ring recv copies the messages to standard output
// until the stream ends. Either may start first. ring stat describes a
// ring without claiming it: messages not yet received by the slowest
// reader, each lane's counters, and each writer and reader slot's state
// (never, open, closed, or dead: its process died holding it) and
// claimant's pid.
// shm ls and shm stat show a ring's type as ring.
//
// Flags may come before or after the NAMEs; "--" ends the flags, so that a
// NAME may begin with "-". Names are given as libc takes them ("/name" is
// the portable form). A size or offset N is decimal digits, optionally
// followed by K, M, G or T (powers of 1024), which may also be written KB
// or KiB, MB or MiB, and so on, in upper or lower case: 4096, 64k, 1MiB, 2G.
// Nothing else is a size.
//
// # Output
//
// Every name printed (ls, stat, rm and every message) is one field that no
// name can forge: a name of printable characters without spaces, quotes or
// backslashes is printed as it is; any other name is printed in double
// quotes with Go's (and C's) escapes, a space as \x20: "/a\x20b",
// "/x\nroot", "/\xff" (Go's strconv.Unquote reads it back; \xff is a
// byte). So one object is always one line, and its name is always the last
// space-separated field of the line. Owner and group names are printed the
// same way.
//
// ls prints "TYPE NAME" lines; ls -l's columns are TYPE MODE OWNER GROUP
// SIZE MODIFIED HOLDERS NAME, separated by spaces, after a header line;
// MODIFIED is "2006-01-02T15:04:05" in local time; HOLDERS is pids joined by
// commas, "-" for none, with "?" (alone or after the pids found) when some
// process could not be inspected, which standard error then explains. Both
// are sorted by name. With -0, ls and rm end each record with a NUL byte
// instead of a newline and print names exactly as they are, unquoted, and
// ls -l prints no header and separates its fields by one space each (no
// alignment, which would change a name's tabs). With -json, ls, stat and
// rm print one JSON array: for ls and stat, objects with fields type,
// name, path, size, mode, uid, gid, owner, group, modified, changed and
// holders (null when unknown, with holders_found); for rm, type, name,
// action ("removed", "would remove", "kept", "absent", "error") and
// reason. A name that is not valid UTF-8 also has name_base64, its exact
// bytes.
//
// # Cleaning up
//
// rm -stale judges an object stale when no process has it open or mapped,
// as fuser does: it reads every /proc/PID/fd and /proc/PID/maps. It refuses
// to remove anything when /proc does not show this process (not mounted, a
// chroot, another pid namespace's /proc). When some processes cannot be
// inspected (another user's; in a container, often pid 1, which has
// capabilities the shell lacks), any object might be theirs: it says which
// processes and why, and removes nothing unless -ignore-denied. Then it
// asks the kernel, for each object it would remove: it opens the object
// and takes a write lease on it (fcntl F_SETLEASE), which the kernel
// grants only while no other process, of any pid namespace, has the object
// open or mapped; refused, the object is kept. It then exchanges the
// object with an empty directory (renameat2 RENAME_EXCHANGE): the object
// is NAME.~RANDOM (a quarantine name) and the name is never absent, so no
// open-or-create can make a second object under it. If an open of the
// object began meanwhile (it breaks the lease), the object is exchanged
// back and that open gets it under its name; otherwise the object is
// unlinked, then the directory. Meanwhile, for a few system calls, an open
// of the name fails (EISDIR, or, read-only, gets a directory that cannot
// be mapped), and an open that found the object just before waits until
// it is back (libc's shm_open) or fails with EWOULDBLOCK (an O_NONBLOCK
// open, as this package's). Only an open(2) that had resolved the name
// before the exchange and reaches the object after the last look (within
// one system call, as for any shm_unlink racing an open) can still get it
// unlinked. Where no lease can be had (neither the object's owner nor
// CAP_LEASE, or leases disabled), a second scan of /proc stands in for it,
// the name is a directory for that scan, and processes /proc does not show
// (another pid namespace's) are not seen. Where the kernel refuses RENAME_EXCHANGE, the object is
// renamed away instead, the name is absent for the last look, and an
// open-or-create then can leave a holder alone on the object, which rm
// -stale reports as an error naming NAME.~RANDOM. If rm -stale is killed
// (SIGKILL) within those system calls, the object stays NAME.~RANDOM,
// which rm -stale NAME removes when nobody holds it, and the name may stay
// an empty directory: rmdir it.
//
// # Exit status
//
//	0    success; with rm -f (or rm -stale -f), also when a NAME does not
//	     exist; with rm -stale, also when it kept a NAME because it is held
//	     or young (said on standard error)
//	1    an error, said on standard error in one line ("shm: ..."); rm, ls
//	     and stat go on with the other NAMEs first
//	2    a usage error: the usage is printed to standard error
//	3    rm -stale removed nothing because it could not judge: /proc does not
//	     show this process, or some processes could not be inspected
//	124  sem wait: the -timeout passed (or, with -timeout 0, the count was
//	     0), as timeout(1) exits
//	129, 130, 143
//	     write or demo stopped by SIGHUP, SIGINT or SIGTERM, after
//	     unlinking what they were making: 128 plus the signal's number
//
// Install with go install github.com/posixshm/shm/cmd/shm@latest.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"unicode"
)

// Exit statuses; the package doc's table says when each is given.
const (
	exitOK       = 0
	exitError    = 1
	exitUsage    = 2
	exitRefused  = 3
	exitTimedOut = 124
)

// env is where a command reads and writes: the process's own standard
// streams, or a test's buffers.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
}

// warn prints one "shm: ..." line on standard error.
func (e *env) warn(format string, args ...any) {
	fmt.Fprintf(e.stderr, "shm: "+format+"\n", args...)
}

// runner runs a command with its operands, once its flags are parsed.
type runner func(e *env, args []string) error

// command is one subcommand: setup defines its flags on a fresh FlagSet,
// bound to variables of that one run, and returns what runs it, so run is
// re-entrant.
type command struct {
	name, args, summary string
	setup               func(fl *flag.FlagSet) runner
}

// group is a family of commands: name "" for the top-level ones, or a
// word that comes first ("shm sem wait").
type group struct {
	name, summary string
	commands      []*command
}

// groups is the command table, in the order usage shows it. A new command
// group (shm ring, say) is one more entry here, from its own file.
var groups = []*group{
	{commands: dataCommands},
	{commands: listCommands},
	{commands: rmCommands},
	{name: "sem", summary: "create, post, wait on or read a named POSIX semaphore", commands: semCommands},
	{commands: demoCommands},
	{name: "ring", summary: "a shared-memory pipe: make a message ring, send standard input into it, receive from it", commands: ringCommands},
}

// synopsis is the command line of c in group g, as usage and the package
// doc show it.
func (g *group) synopsis(c *command) string {
	return strings.TrimSuffix(strings.Join(strings.Fields("shm "+g.name+" "+c.name), " ")+" "+c.args, " ")
}

func (g *group) find(name string) *command {
	for _, c := range g.commands {
		if c.name == name {
			return c
		}
	}
	return nil
}

func usage(w io.Writer) {
	fmt.Fprintf(w, "usage: shm <command> [flags] [args]\n\nCommands:\n")
	for _, g := range groups {
		if g.name != "" {
			fmt.Fprintf(w, "  %-8s %s\n", g.name, g.summary)
			continue
		}
		for _, c := range g.commands {
			fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
		}
	}
	fmt.Fprintf(w, "\nFlags may follow NAMEs; -- ends them.\nNames are given as libc takes them (\"/name\" is the portable form).\n%s\nRun 'shm <command> -h' for its flags; 'go doc github.com/posixshm/shm/cmd/shm'\nfor the output format and the exit statuses.\n", sizeGrammar)
}

func groupUsage(w io.Writer, g *group) {
	fmt.Fprintf(w, "usage:\n")
	for _, c := range g.commands {
		fmt.Fprintf(w, "  %s\n", g.synopsis(c))
	}
	fmt.Fprintf(w, "\n%s.\nRun 'shm %s <command> -h' for its flags.\n", g.summary, g.name)
}

// usageError is a mistake in the command line: usage and exit status 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// exitCode ends the program with a status other than 1 after a message
// (none if msg is empty).
type exitCode struct {
	code int
	msg  string
}

func (e exitCode) Error() string { return e.msg }

// errReported: the command has printed its errors; exit 1 quietly.
var errReported = exitCode{exitError, ""}

func main() {
	os.Exit(run(os.Args[1:], &env{os.Stdin, os.Stdout, os.Stderr}))
}

func isHelp(a string) bool { return a == "-h" || a == "-help" || a == "--help" || a == "help" }

// run runs the command line args (without the program's name) and returns
// the exit status. It keeps no state between calls.
func run(args []string, e *env) int {
	if role := os.Getenv(demoRoleEnv); role != "" {
		return demoChild(role, args)
	}
	if len(args) == 0 {
		usage(e.stderr)
		return exitUsage
	}
	if isHelp(args[0]) {
		usage(e.stdout)
		return exitOK
	}
	var g *group
	var cmd *command
	for _, gr := range groups {
		if gr.name == "" {
			if c := gr.find(args[0]); c != nil {
				g, cmd, args = gr, c, args[1:]
			}
		} else if gr.name == args[0] {
			g, args = gr, args[1:]
			if len(args) == 0 {
				fmt.Fprintf(e.stderr, "shm %s: want a command\n", g.name)
				groupUsage(e.stderr, g)
				return exitUsage
			}
			if isHelp(args[0]) {
				groupUsage(e.stdout, g)
				return exitOK
			}
			if cmd = g.find(args[0]); cmd == nil {
				fmt.Fprintf(e.stderr, "shm %s: unknown command %s\n", g.name, quoteName(args[0]))
				groupUsage(e.stderr, g)
				return exitUsage
			}
			args = args[1:]
		}
		if cmd != nil {
			break
		}
	}
	if cmd == nil {
		fmt.Fprintf(e.stderr, "shm: unknown command %s\n", quoteName(args[0]))
		usage(e.stderr)
		return exitUsage
	}
	return runCommand(e, g, cmd, args)
}

func runCommand(e *env, g *group, cmd *command, args []string) int {
	label := strings.TrimPrefix(g.synopsis(cmd), "shm ")
	label = strings.TrimSuffix(label, " "+cmd.args)
	fl := flag.NewFlagSet("shm "+label, flag.ContinueOnError)
	fl.SetOutput(io.Discard)
	fl.Usage = func() {}
	runIt := cmd.setup(fl)
	printUsage := func(w io.Writer) {
		fmt.Fprintf(w, "usage: %s\n\n%s.\n", g.synopsis(cmd), cmd.summary)
		fl.SetOutput(w)
		fl.PrintDefaults()
		fl.SetOutput(io.Discard)
		sizes := false
		fl.VisitAll(func(f *flag.Flag) { _, ok := f.Value.(*sizeFlag); sizes = sizes || ok })
		if sizes {
			fmt.Fprintf(w, "\n%s\n", sizeGrammar)
		}
	}
	operands, err := parseArgs(fl, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printUsage(e.stdout)
			return exitOK
		}
		fmt.Fprintf(e.stderr, "shm %s: %v\n", label, err)
		printUsage(e.stderr)
		return exitUsage
	}
	err = runIt(e, operands)
	var ue usageError
	var ec exitCode
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ec):
		if ec.msg != "" {
			e.warn("%s", ec.msg)
		}
		return ec.code
	case errors.As(err, &ue):
		fmt.Fprintf(e.stderr, "shm %s: %s\n", label, ue.msg)
		printUsage(e.stderr)
		return exitUsage
	default:
		e.warn("%v", err)
		return exitError
	}
}

// parseArgs parses the flags in args wherever they are, before or after
// the operands, as GNU tools do, and returns the operands in order.
// Everything after "--" is an operand.
func parseArgs(fl *flag.FlagSet, args []string) ([]string, error) {
	var operands []string
	for {
		if err := fl.Parse(args); err != nil {
			return nil, err
		}
		rest := fl.Args()
		if len(rest) == 0 {
			return operands, nil
		}
		if used := len(args) - len(rest); used > 0 && args[used-1] == "--" {
			return append(operands, rest...), nil
		}
		operands = append(operands, rest[0])
		args = rest[1:]
	}
}

// notifyStop relays to c the signals that ask a program to stop: SIGINT
// (Ctrl-C), SIGTERM (kill) and SIGHUP (the terminal went away). A signal the
// program was started ignoring (nohup, a background job of a script) stays
// ignored.
func notifyStop(c chan<- os.Signal) {
	for _, sig := range []os.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP} {
		if !signal.Ignored(sig) {
			signal.Notify(c, sig)
		}
	}
}

// stoppedBy is the exit of a command that cleaned up after sig: status
// 128 plus the signal's number, as a shell reports a program the signal
// killed (130 for SIGINT, 143 for SIGTERM, 129 for SIGHUP).
func stoppedBy(sig os.Signal, what string) exitCode {
	n := int(sig.(syscall.Signal))
	return exitCode{128 + n, fmt.Sprintf("%s: %v (signal %d)", what, sig, n)}
}

// oneName returns the single NAME argument.
func oneName(args []string) (string, error) {
	if len(args) != 1 {
		return "", usageError{"want exactly one NAME"}
	}
	return args[0], nil
}

// sizeFlag is a byte count written as parseSize reads it.
type sizeFlag struct {
	n   int64
	set bool
}

func (s *sizeFlag) String() string { return strconv.FormatInt(s.n, 10) }

func (s *sizeFlag) Set(v string) error {
	n, err := parseSize(v)
	if err != nil {
		return err
	}
	s.n, s.set = n, true
	return nil
}

// sizeGrammar is what usage says of sizes; the package doc says the same.
const sizeGrammar = `A size or offset N is decimal digits, optionally followed by K, M, G or
T (powers of 1024), which may also be written KB or KiB, MB or MiB, and so
on, in upper or lower case: 4096, 64k, 1MiB, 2G. Nothing else is a size.`

// unitShift is the power of two of each unit parseSize takes, upper-cased.
var unitShift = map[string]uint{
	"":  0,
	"K": 10, "KB": 10, "KIB": 10,
	"M": 20, "MB": 20, "MIB": 20,
	"G": 30, "GB": 30, "GIB": 30,
	"T": 40, "TB": 40, "TIB": 40,
}

// parseSize reads a byte count as sizeGrammar says: decimal digits, then
// an optional unit from unitShift in any case. The unit must be ASCII:
// strings.ToUpper turns a dotless ı into I.
func parseSize(v string) (int64, error) {
	digits := len(v) - len(strings.TrimLeft(v, "0123456789"))
	unit := v[digits:]
	shift, ok := unitShift[strings.ToUpper(unit)]
	if digits == 0 || !ok || strings.ContainsFunc(unit, func(r rune) bool { return r > unicode.MaxASCII }) {
		return 0, fmt.Errorf("bad size %q: want decimal digits, optionally followed by K, M, G or T (also written KB, KiB, ...)", v)
	}
	n, err := strconv.ParseInt(v[:digits], 10, 64)
	if err != nil || n > math.MaxInt64>>shift {
		return 0, fmt.Errorf("bad size %q: too large, overflows a 64-bit byte count", v)
	}
	return n << shift, nil
}

// modeFlag is an octal permission mode.
type modeFlag fs.FileMode

func (m *modeFlag) String() string { return fmt.Sprintf("%#o", uint32(*m)) }

func (m *modeFlag) Set(v string) error {
	n, err := strconv.ParseUint(v, 8, 32)
	if err != nil || n&^0o777 != 0 {
		return fmt.Errorf("bad mode %q: want octal permission bits such as 0600", v)
	}
	*m = modeFlag(n)
	return nil
}
