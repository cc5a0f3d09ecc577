package main

// shm ring: a shared-memory pipe between two shells, on package ring.

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/posixshm/shm/ring"
)

const ringArgs = "create -size N NAME | send NAME | recv NAME"

const ringHelp = `create makes a ring of N data bytes (a multiple of 8, at least 64; the
largest message is N/2-8 bytes). send claims the writing end and sends
standard input as messages (each read, up to the largest message), then
ends the stream; recv claims the reading end and copies the messages to
standard output until the stream ends. Either may start first. recv fails
if the writer's process dies, send if the reader's dies while the ring is
full; a new send or recv can then take over the ring.`

// ringMain runs "shm ring SUBCOMMAND ARGS" and returns the exit status:
// 0, 1 after an error (one line on stderr), 2 after a usage error, 130
// when SIGINT or SIGTERM stopped it (send still ends the stream).
func ringMain(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	usage := func(w io.Writer) {
		fmt.Fprintf(w, "usage: shm ring %s\n\n%s\n\n%s\n", ringArgs, ringHelp, sizeGrammar)
	}
	bad := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "shm ring: "+format+"\n", a...)
		usage(stderr)
		return 2
	}
	if len(args) == 0 {
		return bad("want a subcommand: %s", ringArgs)
	}
	sub := args[0]
	switch sub {
	case "-h", "-help", "--help", "help":
		usage(stdout)
		return 0
	case "create", "send", "recv":
	default:
		return bad("unknown subcommand %q: want %s", sub, ringArgs)
	}
	fl := flag.NewFlagSet("shm ring "+sub, flag.ContinueOnError)
	fl.SetOutput(io.Discard)
	var size int64 = -1
	if sub == "create" {
		fl.Func("size", "the ring's data `bytes` (N)", func(v string) (err error) { size, err = parseSize(v); return })
	}
	if err := fl.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			usage(stdout)
			return 0
		}
		return bad("%s: %v", sub, err)
	}
	if fl.NArg() != 1 {
		return bad("%s: want exactly one NAME", sub)
	}
	name := fl.Arg(0)
	fail := func(err error) int {
		fmt.Fprintf(stderr, "shm: ring %s %s: %v\n", sub, showName(name), err)
		return 1
	}
	if sub == "create" {
		if size < 0 {
			return bad("create: -size is required")
		}
		if size > 1<<40 {
			return fail(fmt.Errorf("size %d: at most 1T", size))
		}
		r, err := ring.Create(name, int(size))
		if err != nil {
			return fail(err)
		}
		return closeWith(r, 0, fail)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	r, err := ring.Open(name)
	if err != nil {
		return fail(err)
	}
	code := 0
	if sub == "send" {
		code = ringSend(ctx, r, stdin, fail)
	} else {
		code = ringRecv(ctx, r, stdout, fail)
	}
	if ctx.Err() != nil && code != 0 {
		code = 130
		fmt.Fprintf(stderr, "shm: ring %s %s: stopped by a signal\n", sub, showName(name))
	}
	return closeWith(r, code, fail)
}

func closeWith(r *ring.Ring, code int, fail func(error) int) int {
	if err := r.Close(); err != nil && code == 0 {
		return fail(err)
	}
	return code
}

// ringSend sends stdin as messages, then ends the stream (Close).
func ringSend(ctx context.Context, r *ring.Ring, stdin io.Reader, fail func(error) int) int {
	w, err := r.Writer()
	if err != nil {
		return fail(err)
	}
	defer w.Close()
	buf := make([]byte, min(r.MaxMessage(), 256<<10))
	for {
		n, rerr := stdin.Read(buf)
		if n > 0 {
			if err := w.Send(ctx, buf[:n]); err != nil {
				return fail(err)
			}
		}
		if rerr == io.EOF {
			if err := w.Close(); err != nil {
				return fail(err)
			}
			return 0
		}
		if rerr != nil {
			return fail(rerr)
		}
	}
}

// ringRecv copies messages to stdout, from the ring itself, until the end
// of the stream.
func ringRecv(ctx context.Context, r *ring.Ring, stdout io.Writer, fail func(error) int) int {
	rd, err := r.Reader()
	if err != nil {
		return fail(err)
	}
	defer rd.Close()
	for {
		msg, err := rd.Next(ctx)
		if err == io.EOF {
			return 0
		}
		if err != nil {
			return fail(err)
		}
		if _, err := stdout.Write(msg); err != nil {
			return fail(err) // the message stays in the ring for the next reader
		}
		if err := rd.Release(); err != nil {
			return fail(err)
		}
	}
}

// isRing reports whether the object name (as /dev/shm lists it, with or
// without a leading slash) starts with a ring's magic (ring/LAYOUT.md),
// reading 8 bytes without mapping it.
func isRing(name string) bool {
	f, err := os.OpenFile(shmDir+"/"+strings.TrimLeft(name, "/"), os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return false
	}
	defer f.Close()
	var b [8]byte
	_, err = f.ReadAt(b[:], 0)
	return err == nil && string(b[:]) == "SHMRING\x00"
}

// runRing is the command table's entry for "shm ring".
func runRing(_ *flag.FlagSet, args []string) error {
	if code := ringMain(args, os.Stdin, os.Stdout, os.Stderr); code != 0 {
		return exitCode{code, "ring: exit status " + fmt.Sprint(code)}
	}
	return nil
}
