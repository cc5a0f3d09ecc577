// Command shm inspects, fills and reads POSIX shared memory objects from the
// shell, and shows the package at work between two processes.
//
// Usage:
//
//	shm create [-size N] [-mode 0600] NAME
//	shm write [-size N] [-existing [-keep]] NAME < data
//	shm read [-offset N] [-length N] NAME
//	shm stat NAME
//	shm ls [-l [-n]]
//	shm rm [-stale [-age D] [-dry-run] [-ignore-denied]] NAME...
//	shm chmod MODE NAME
//	shm chown USER[:GROUP] NAME
//	shm truncate -size N NAME
//	shm sem create [-value N] [-mode 0600] NAME | post NAME | wait [-timeout D] NAME | value NAME
//	shm demo [-hold] [-memfd]
//	shm ring create -size N NAME | send NAME | recv NAME
//
// create makes a new object (exclusive, pages reserved), 4096 bytes unless
// -size says otherwise. write copies standard input into a new object sized
// to the input, or to -size with zeros after the input. With -existing it
// writes into an existing object from its start and never resizes it; the
// object's bytes after the input become zeros, so a reader sees exactly the
// input, unless -keep keeps them as they were. read copies an object's
// bytes, or -length bytes from -offset, to standard output. stat shows
// size, mode, owner and modification time; ls lists every object on the
// host and its semaphores, a line each, type (shm or sem) and name, and
// ls -l with size, mode, owner, modification time and the pids that hold
// it open or mapped (-n: how many); rm unlinks objects (and a semaphore
// where no object has the name), and rm -stale only those that no process
// holds and that were not changed for -age (1h), all of the host's or the
// NAMEs given. chmod sets the mode exactly, whatever the umask; chown the
// owner and group (names or numbers; "USER:" takes the user's login
// group); truncate the size, reserving the pages it grows by. sem creates,
// posts, waits on (up to -timeout) or reads a named POSIX semaphore, so
// that a shell script can coordinate with a Go or C program. demo has two
// processes share memory by name;
// with -hold the second waits for Enter, so that Ctrl-C can be tried; with
// -memfd they share a sealed memfd instead, which the second process
// inherits as a descriptor and cannot shrink. ring is a shared-memory
// pipe between two shells: ring create makes a message ring of N data
// bytes, ring send sends standard input into it and ends the stream, ring
// recv copies its messages to standard output until the stream ends.
//
// Names are given as libc takes them ("/name" is the portable form).
// A size or offset N is decimal digits, optionally followed by K, M, G or
// T (powers of 1024), which may also be written KB or KiB, MB or MiB, and so
// on, in upper or lower case: 4096, 64k, 1MiB, 2G. Nothing else is a size.
//
// Errors are one line on standard error and exit status 1; usage errors
// print the usage and exit with status 2. Stopped by SIGINT (Ctrl-C),
// SIGTERM or SIGHUP, write unlinks the new object it was filling and demo
// unlinks its object; they exit with 128 plus the signal's number, as a
// shell reports a killed program: 130, 143, 129.
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

// shmDir is where Linux's C libraries (glibc, musl) keep the objects:
// name "/x" is the file /dev/shm/x.
const shmDir = "/dev/shm"

type command struct {
	name, args, summary string
	run                 func(fl *flag.FlagSet, args []string) error
	flags               func(fl *flag.FlagSet)
}

var commands = []*command{
	{name: "create", args: "[-size N] [-mode 0600] NAME", summary: "create a new object (exclusive, pages reserved)", flags: createFlags, run: runCreate},
	{name: "write", args: "[-size N] [-existing [-keep]] NAME < data", summary: "copy standard input into an object, creating it sized to the input", flags: writeFlags, run: runWrite},
	{name: "read", args: "[-offset N] [-length N] NAME", summary: "copy an object's bytes to standard output", flags: readFlags, run: runRead},
	{name: "stat", args: "NAME", summary: "show size, mode, owner and modification time", run: runStat},
	{name: "ls", args: "[-l [-n]]", summary: "list the host's objects and semaphores", flags: lsFlags, run: runLs},
	{name: "rm", args: "[-stale [-age D] [-dry-run] [-ignore-denied]] NAME...", summary: "unlink objects; -stale: those no process holds", flags: rmFlags, run: runRm},
	{name: "chmod", args: "MODE NAME", summary: "set an object's permission bits exactly (no umask)", run: runChmod},
	{name: "chown", args: "USER[:GROUP] NAME", summary: "set an object's owner and group", run: runChown},
	{name: "truncate", args: "-size N NAME", summary: "resize an object, reserving the pages it grows by", flags: truncateFlags, run: runTruncate},
	{name: "sem", args: semArgs, summary: "create, post, wait on or read a named POSIX semaphore", run: runSem},
	{name: "ring", args: ringArgs, summary: "a shared-memory pipe: make a message ring, send stdin into it, receive from it", run: runRing},
	{name: "demo", args: "[-hold] [-memfd]", summary: "one process writes a fresh object, another reads it by name (or by descriptor: -memfd)", flags: demoFlags, run: runDemo},
}

// synopsis is the command line of c, as usage and the package doc show it.
func (c *command) synopsis() string {
	return strings.TrimSuffix("shm "+c.name+" "+c.args, " ")
}

func usage(w io.Writer) {
	fmt.Fprintf(w, "usage: shm <command> [flags] [args]\n\nCommands:\n")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, "\nNames are given as libc takes them (\"/name\" is the portable form).\n%s\nRun 'shm <command> -h' for its flags.\n", sizeGrammar)
}

// usageError is a mistake in the command line: usage and exit status 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	if role := os.Getenv(demoRoleEnv); role != "" {
		return demoChild(role, args)
	}
	if len(args) == 0 {
		usage(os.Stderr)
		return 2
	}
	if args[0] == "ring" { // its own flags per subcommand: ring.go
		return ringMain(args[1:], os.Stdin, os.Stdout, os.Stderr)
	}
	if args[0] == "-h" || args[0] == "-help" || args[0] == "--help" || args[0] == "help" {
		usage(os.Stdout)
		return 0
	}
	var cmd *command
	for _, c := range commands {
		if c.name == args[0] {
			cmd = c
		}
	}
	if cmd == nil {
		fmt.Fprintf(os.Stderr, "shm: unknown command %q\n", args[0])
		usage(os.Stderr)
		return 2
	}
	fl := flag.NewFlagSet("shm "+cmd.name, flag.ContinueOnError)
	fl.SetOutput(io.Discard)
	fl.Usage = func() {}
	printUsage := func(w io.Writer) {
		fmt.Fprintf(w, "usage: %s\n\n%s.\n", cmd.synopsis(), cmd.summary)
		fl.SetOutput(w)
		fl.PrintDefaults()
		fl.SetOutput(io.Discard)
		sizes := false
		fl.VisitAll(func(f *flag.Flag) { _, ok := f.Value.(*sizeFlag); sizes = sizes || ok })
		if sizes {
			fmt.Fprintf(w, "\n%s\n", sizeGrammar)
		}
	}
	if cmd.flags != nil {
		cmd.flags(fl)
	}
	if err := fl.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printUsage(os.Stdout)
			return 0
		}
		fmt.Fprintf(os.Stderr, "shm %s: %v\n", cmd.name, err)
		printUsage(os.Stderr)
		return 2
	}
	err := cmd.run(fl, fl.Args())
	var ue usageError
	var ec exitCode
	switch {
	case err == nil:
		return 0
	case errors.Is(err, errReported):
		return 1
	case errors.As(err, &ec):
		fmt.Fprintf(os.Stderr, "shm: %v\n", err)
		return ec.code
	case errors.As(err, &ue):
		fmt.Fprintf(os.Stderr, "shm %s: %s\n", cmd.name, ue.msg)
		printUsage(os.Stderr)
		return 2
	default:
		fmt.Fprintf(os.Stderr, "shm: %v\n", err)
		return 1
	}
}

// exitCode ends the program with a status other than 1 after a message.
type exitCode struct {
	code int
	msg  string
}

func (e exitCode) Error() string { return e.msg }

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

// cmdErr words an error as "<command> <name>: <reason>", the libc call
// that failed being detail the user does not need.
func cmdErr(cmd, name string, err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	return fmt.Errorf("%s %s: %w", cmd, showName(name), err)
}

// showName is name as messages print it: quoted when it is empty or holds
// spaces or unprintable characters, which would make the message unclear
// or more than one line.
func showName(name string) string {
	if name == "" || strings.ContainsFunc(name, func(r rune) bool { return unicode.IsSpace(r) || !unicode.IsPrint(r) }) {
		return strconv.Quote(name)
	}
	return name
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
