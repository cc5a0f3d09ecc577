package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"

	"github.com/posixshm/shm"
)

const semArgs = "create [-value N] [-mode 0600] NAME | post NAME | wait [-timeout D] NAME | value NAME"

// runSem is "shm sem SUBCOMMAND": named POSIX semaphores from the shell,
// so that a script can hand over to or from a Go or C program.
func runSem(_ *flag.FlagSet, args []string) error {
	if len(args) == 0 {
		return usageError{"want a subcommand: " + semArgs}
	}
	sub := flag.NewFlagSet("shm sem "+args[0], flag.ContinueOnError)
	sub.SetOutput(io.Discard)
	value := sub.Uint("value", 0, "initial `count` of a new semaphore")
	mode := modeFlag(0o600)
	sub.Var(&mode, "mode", "permission `bits`, octal, less the umask")
	timeout := sub.Duration("timeout", 0, "give up after this `duration` (default: wait forever)")
	if err := sub.Parse(args[1:]); err != nil {
		return usageError{err.Error()}
	}
	name, err := oneName(sub.Args())
	if err != nil {
		return err
	}
	flagSet := map[string]bool{}
	sub.Visit(func(f *flag.Flag) { flagSet[f.Name] = true })
	allowed := map[string]map[string]bool{"create": {"value": true, "mode": true}, "wait": {"timeout": true}, "post": {}, "value": {}}
	ok, known := allowed[args[0]]
	if !known {
		return usageError{fmt.Sprintf("unknown subcommand %q: want %s", args[0], semArgs)}
	}
	for f := range flagSet {
		if !ok[f] {
			return usageError{fmt.Sprintf("-%s does not apply to sem %s", f, args[0])}
		}
	}
	cmd := "sem " + args[0]
	if args[0] == "create" {
		s, err := shm.OpenSemaphoreWith(name, os.O_CREATE|os.O_EXCL, fs.FileMode(mode), int(*value))
		if err != nil {
			return cmdErr(cmd, name, err)
		}
		return closeErr(cmd, name, s)
	}
	s, err := shm.OpenSemaphore(name)
	if err != nil {
		return cmdErr(cmd, name, err)
	}
	defer s.Close()
	switch args[0] {
	case "post":
		err = s.Post()
	case "value":
		var v int
		if v, err = s.Value(); err == nil {
			fmt.Println(v)
		}
	case "wait":
		ctx := context.Background()
		if *timeout > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, *timeout)
			defer cancel()
		}
		if err = s.Wait(ctx); errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("timed out after %v", *timeout)
		}
	}
	if err != nil {
		return cmdErr(cmd, name, err)
	}
	return closeErr(cmd, name, s)
}
