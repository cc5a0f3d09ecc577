// Command shm inspects, fills and reads POSIX shared memory objects from the
// shell, and shows the package at work between two processes.
//
// Usage:
//
//	shm create [-size N] [-mode 0600] NAME   create a new object (exclusive, reserved)
//	shm write [-size N] [-existing] NAME     copy standard input into an object
//	shm read [-offset N] [-length N] NAME    copy an object's bytes to standard output
//	shm stat NAME                            size, mode, owner, modification time
//	shm ls                                   every object on the host
//	shm rm NAME...                           unlink objects
//	shm sem create|post|wait|value NAME      a named POSIX semaphore, for scripts
//	shm demo                                 two processes share memory by name
//
// Names are given as libc takes them ("/name" is the portable form). Sizes
// and offsets take an optional K, M or G suffix (powers of 1024).
//
// Errors are one line on standard error and exit status 1; usage errors
// print the usage and exit with status 2.
//
// Install with go install github.com/posixshm/shm/cmd/shm@latest.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"strings"
)

// shmDir is where Linux's C libraries (glibc, musl) keep the objects:
// name "/x" is the file /dev/shm/x.
const shmDir = "/dev/shm"

type command struct {
	name, args, summary string
	run                 func(fl *flag.FlagSet, args []string) error
	flags               func(fl *flag.FlagSet)
}

var commands []*command

func init() {
	commands = []*command{
		{name: "create", args: "[-size N] [-mode 0600] NAME", summary: "create a new object (exclusive, pages reserved)", flags: createFlags, run: runCreate},
		{name: "write", args: "[-size N] [-existing] NAME < data", summary: "copy standard input into an object, creating it sized to the input", flags: writeFlags, run: runWrite},
		{name: "read", args: "[-offset N] [-length N] NAME", summary: "copy an object's bytes to standard output", flags: readFlags, run: runRead},
		{name: "stat", args: "NAME", summary: "show size, mode, owner and modification time", run: runStat},
		{name: "ls", args: "", summary: "list every POSIX shared memory object on the host", run: runLs},
		{name: "rm", args: "NAME...", summary: "unlink objects", run: runRm},
		{name: "sem", args: semArgs, summary: "create, post, wait on or read a named POSIX semaphore", run: runSem},
		{name: "demo", args: "", summary: "one process writes a fresh object, another reads it by name", flags: demoFlags, run: runDemo},
	}
}

func usage(w io.Writer) {
	fmt.Fprintf(w, "usage: shm <command> [flags] [args]\n\nCommands:\n")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-7s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, "\nNames are given as libc takes them (\"/name\" is the portable form).\nSizes take a K, M or G suffix. Run 'shm <command> -h' for its flags.\n")
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
		fmt.Fprintf(w, "usage: shm %s %s\n\n%s.\n", cmd.name, cmd.args, cmd.summary)
		fl.SetOutput(w)
		fl.PrintDefaults()
		fl.SetOutput(io.Discard)
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

// cmdErr words an error as "<command> <name>: <reason>", the libc call
// that failed being detail the user does not need.
func cmdErr(cmd, name string, err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	return fmt.Errorf("%s %s: %w", cmd, name, err)
}

// oneName returns the single NAME argument.
func oneName(args []string) (string, error) {
	if len(args) != 1 {
		return "", usageError{"want exactly one NAME"}
	}
	return args[0], nil
}

// sizeFlag is a byte count with an optional K, M or G suffix.
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

func parseSize(v string) (int64, error) {
	mult := int64(1)
	t := strings.TrimSuffix(strings.TrimSuffix(strings.ToUpper(v), "B"), "I")
	if t != "" {
		switch t[len(t)-1] {
		case 'K':
			mult = 1 << 10
		case 'M':
			mult = 1 << 20
		case 'G':
			mult = 1 << 30
		}
		if mult != 1 {
			t = t[:len(t)-1]
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("bad size %q: want a non-negative number of bytes, optionally with K, M or G", v)
	}
	return n * mult, nil
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
