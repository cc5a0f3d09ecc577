package main

// The semaphore commands: shm sem create, post, wait and value. Named
// POSIX semaphores from the shell, so that a script can hand over to or
// from a Go, C or Python program.

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"time"

	"github.com/posixshm/shm"
)

var semCommands = []*command{
	{name: "create", args: "[-value N] [-mode 0600] NAME", summary: "create a named semaphore (sem_open O_CREAT|O_EXCL)", setup: semCreateCmd},
	{name: "post", args: "NAME", summary: "add one to the count (sem_post)", setup: semPostCmd},
	{name: "wait", args: "[-timeout D] NAME", summary: "take one from the count, waiting while it is 0 (sem_wait)", setup: semWaitCmd},
	{name: "value", args: "NAME", summary: "print the count (sem_getvalue)", setup: semValueCmd},
}

func semCreateCmd(fl *flag.FlagSet) runner {
	value := fl.Uint("value", 0, "initial `count` of the new semaphore")
	mode := modeFlag(0o600)
	fl.Var(&mode, "mode", "permission `bits`, octal, less the umask")
	return func(e *env, args []string) error {
		name, err := oneName(args)
		if err != nil {
			return err
		}
		if *value > 1<<31-1 {
			return usageError{fmt.Sprintf("-value %d is larger than SEM_VALUE_MAX", *value)}
		}
		s, err := shm.OpenSemaphoreWith(name, os.O_CREATE|os.O_EXCL, fs.FileMode(mode), int(*value))
		if err != nil {
			return cmdErr("sem create", name, err)
		}
		return closeErr("sem create", name, s)
	}
}

// withSem runs do on the existing semaphore name.
func withSem(cmd string, args []string, do func(s *shm.Semaphore) error) error {
	name, err := oneName(args)
	if err != nil {
		return err
	}
	s, err := shm.OpenSemaphore(name)
	if err != nil {
		return cmdErr(cmd, name, err)
	}
	defer s.Close()
	if err := do(s); err != nil {
		var ec exitCode
		if errors.As(err, &ec) {
			return err
		}
		return cmdErr(cmd, name, err)
	}
	return closeErr(cmd, name, s)
}

func semPostCmd(fl *flag.FlagSet) runner {
	return func(e *env, args []string) error {
		return withSem("sem post", args, func(s *shm.Semaphore) error { return s.Post() })
	}
}

func semValueCmd(fl *flag.FlagSet) runner {
	return func(e *env, args []string) error {
		return withSem("sem value", args, func(s *shm.Semaphore) error {
			v, err := s.Value()
			if err == nil {
				fmt.Fprintln(e.stdout, v)
			}
			return err
		})
	}
}

// durationFlag is a time.Duration that says what is wrong with a bad one.
type durationFlag struct {
	d   time.Duration
	set bool
}

func (d *durationFlag) String() string { return d.d.String() }

func (d *durationFlag) Set(v string) error {
	t, err := time.ParseDuration(v)
	if err != nil {
		if _, nerr := strconv.ParseFloat(v, 64); nerr == nil {
			return fmt.Errorf("bad duration %q: a unit is needed, such as %ss or %sms", v, v, v)
		}
		return fmt.Errorf("bad duration %q: want a number with a unit, such as 500ms, 5s or 2m", v)
	}
	d.d, d.set = t, true
	return nil
}

func semWaitCmd(fl *flag.FlagSet) runner {
	var timeout durationFlag
	fl.Var(&timeout, "timeout", "give up after this `duration` with exit status 124 (default: wait forever; 0: do not wait)")
	return func(e *env, args []string) error {
		if timeout.set && timeout.d < 0 {
			return usageError{fmt.Sprintf("-timeout %v is negative: give 0 not to wait, or leave it out to wait forever", timeout.d)}
		}
		name := ""
		if len(args) == 1 {
			name = args[0]
		}
		timedOut := func() error {
			return exitCode{exitTimedOut, fmt.Sprintf("sem wait %s: timed out after %v", quoteName(name), timeout.d)}
		}
		return withSem("sem wait", args, func(s *shm.Semaphore) error {
			if timeout.set && timeout.d == 0 {
				ok, err := s.TryWait()
				if err == nil && !ok {
					return exitCode{exitTimedOut, fmt.Sprintf("sem wait %s: the count is 0 (-timeout 0 does not wait)", quoteName(name))}
				}
				return err
			}
			ctx := context.Background()
			if timeout.set {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, timeout.d)
				defer cancel()
			}
			err := s.Wait(ctx)
			if errors.Is(err, context.DeadlineExceeded) {
				return timedOut()
			}
			return err
		})
	}
}
