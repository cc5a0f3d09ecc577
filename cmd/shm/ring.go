package main

// The ring commands: shm ring create, send and recv, a shared-memory pipe
// between two shells on package ring, and shm ring stat.

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"strings"
	"text/tabwriter"

	"github.com/posixshm/shm/ring"
)

var ringCommands = []*command{
	{name: "create", args: "-size N [-writers W] [-readers R] NAME", summary: "make a message ring of W writers (each a lane of N data bytes: a multiple of 8, at least 64) and R readers (each receives every message), 1 to 64, default 1; exclusive, pages reserved", setup: ringCreateCmd},
	{name: "send", args: "NAME", summary: "send standard input into the ring as messages (each read, up to the largest message), then end the stream", setup: ringSendCmd},
	{name: "recv", args: "NAME", summary: "copy the ring's messages to standard output until the stream ends", setup: ringRecvCmd},
	{name: "stat", args: "[-json] NAME", summary: "describe the ring: sizes, messages not yet received by the slowest reader, each lane's counters, each writer and reader slot's state (never, open, closed, dead) and its claimant's pid; claims nothing", setup: ringStatCmd},
}

func ringCreateCmd(fl *flag.FlagSet) runner {
	size := sizeFlag{n: -1}
	fl.Var(&size, "size", "the data `bytes` of each writer's lane; the largest message is half, less 8")
	writers := fl.Int("writers", 1, "writer slots, 1 to 64: each writes its own lane")
	readers := fl.Int("readers", 1, "reader slots, 1 to 64: each receives every message")
	return func(e *env, args []string) error {
		name, err := oneName(args)
		if err != nil {
			return err
		}
		if size.n < 0 {
			return usageError{"-size is required"}
		}
		if size.n > 1<<40 {
			return cmdErr("ring create", name, fmt.Errorf("size %d: at most 1T", size.n))
		}
		if *writers < 1 || *readers < 1 {
			return usageError{"-writers and -readers are at least 1"}
		}
		r, err := ring.CreateWith(name, int(size.n), &ring.Options{Writers: *writers, Readers: *readers})
		if err != nil {
			return cmdErr("ring create", name, unnamed(err, name))
		}
		if err := r.Close(); err != nil {
			return cmdErr("ring create", name, unnamed(err, name))
		}
		return nil
	}
}

// withRing opens the ring name and runs do with a context that SIGINT,
// SIGTERM and SIGHUP cancel; do's error, or a stop by a signal, is the
// command's.
func withRing(cmd string, args []string, do func(ctx context.Context, r *ring.Ring) error) error {
	name, err := oneName(args)
	if err != nil {
		return err
	}
	r, err := ring.Open(name)
	if err != nil {
		return cmdErr(cmd, name, unnamed(err, name))
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sigs := make(chan os.Signal, 1)
	notifyStop(sigs)
	defer signal.Stop(sigs)
	got := make(chan os.Signal, 1)
	go func() {
		var s os.Signal
		select {
		case s = <-sigs:
			cancel()
		case <-ctx.Done():
		}
		got <- s
	}()
	err = do(ctx, r)
	if cerr := r.Close(); err == nil && cerr != nil {
		err = cerr
	}
	cancel()
	if s := <-got; s != nil && err != nil {
		return stoppedBy(s, cmd+" "+quoteName(name))
	}
	if err != nil {
		return cmdErr(cmd, name, unnamed(err, name))
	}
	return nil
}

// unnamed is err as cmdErr prints it after the quoted name: without a
// *fs.PathError's Op and path (as cmdErr drops them) or the "ring NAME: "
// that package ring's errors of a corrupt ring begin with, and with any
// other occurrence of the raw name quoted (quoteName), so that a name
// cannot forge a line. errors.Is still sees err's cause.
func unnamed(err error, name string) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	msg := err.Error()
	rest := strings.TrimPrefix(msg, "ring "+name+": ")
	if q := quoteName(name); name != "" && q != name {
		rest = strings.ReplaceAll(rest, name, q)
	}
	if rest == msg {
		return err
	}
	return reworded{rest, err}
}

// reworded is an error with other words, wrapping the original.
type reworded struct {
	msg string
	err error
}

func (e reworded) Error() string { return e.msg }
func (e reworded) Unwrap() error { return e.err }

func ringSendCmd(fl *flag.FlagSet) runner {
	return func(e *env, args []string) error {
		return withRing("ring send", args, func(ctx context.Context, r *ring.Ring) error {
			w, err := r.Writer()
			if err != nil {
				return err
			}
			buf := make([]byte, min(r.MaxMessage(), 256<<10))
			for {
				n, rerr := e.stdin.Read(buf)
				if n > 0 {
					if err := w.Send(ctx, buf[:n]); err != nil {
						return err
					}
				}
				if rerr == io.EOF {
					return w.Close() // the end of the stream
				}
				if rerr != nil {
					return rerr
				}
			}
		})
	}
}

func ringRecvCmd(fl *flag.FlagSet) runner {
	return func(e *env, args []string) error {
		return withRing("ring recv", args, func(ctx context.Context, r *ring.Ring) error {
			rd, err := r.Reader()
			if err != nil {
				return err
			}
			for {
				msg, err := rd.Next(ctx) // in place: written to stdout from the ring itself
				if err == io.EOF {
					return nil
				}
				if err != nil {
					return err
				}
				if _, err := e.stdout.Write(msg); err != nil {
					return err // the message stays in the ring for the next reader
				}
				if err := rd.Release(); err != nil {
					return err
				}
			}
		})
	}
}

func ringStatCmd(fl *flag.FlagSet) runner {
	asJSON := fl.Bool("json", false, "print a JSON object (fields as package ring's Stat, plus name)")
	return func(e *env, args []string) error {
		name, err := oneName(args)
		if err != nil {
			return err
		}
		r, err := ring.Open(name)
		if err != nil {
			return cmdErr("ring stat", name, unnamed(err, name))
		}
		st, err := r.Stat()
		if cerr := r.Close(); err == nil && cerr != nil {
			err = cerr
		}
		if err != nil {
			return cmdErr("ring stat", name, unnamed(err, name))
		}
		if *asJSON {
			rec := map[string]any{"capacity": st.Capacity, "max_message": st.MaxMessage, "messages": st.Messages,
				"bytes": st.Bytes, "used": st.Used, "lanes": st.Lanes, "writers": st.Writers, "readers": st.Readers}
			jsonName(rec, name)
			enc := json.NewEncoder(e.stdout)
			enc.SetIndent("", "  ")
			return enc.Encode(rec)
		}
		w := tabwriter.NewWriter(e.stdout, 0, 0, 1, ' ', 0)
		fmt.Fprintf(w, "name:\t%s\n", quoteName(name))
		fmt.Fprintf(w, "capacity:\t%d per lane\n", st.Capacity)
		fmt.Fprintf(w, "max message:\t%d\n", st.MaxMessage)
		fmt.Fprintf(w, "slots:\t%d %s, %d %s\n", len(st.Writers), plural(len(st.Writers), "writer"), len(st.Readers), plural(len(st.Readers), "reader"))
		fmt.Fprintf(w, "messages:\t%d (%d bytes) not yet received\n", st.Messages, st.Bytes)
		fmt.Fprintf(w, "used:\t%d of %d bytes\n", st.Used, st.Capacity*len(st.Lanes))
		for i, l := range st.Lanes {
			fmt.Fprintf(w, "lane %d:\thead %d, tail %d: %d %s (%d bytes)\n", i, l.Head, l.Tail, l.Messages, plural(l.Messages, "message"), l.Bytes)
		}
		for i, es := range st.Writers {
			fmt.Fprintf(w, "writer %d:\t%s\n", i, endText(es))
		}
		for i, es := range st.Readers {
			fmt.Fprintf(w, "reader %d:\t%s\n", i, endText(es))
		}
		return w.Flush()
	}
}

// plural is word, with an s unless n is 1.
func plural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}

// endText is a slot as ring stat prints it: its state, and the pid its
// claimant recorded (only a hint: pids are reused).
func endText(es ring.EndStat) string {
	switch {
	case es.State == ring.EndNever:
		return "never claimed"
	case es.Pid == 0:
		return es.State.String() + " (pid unknown)"
	}
	return fmt.Sprintf("%s (pid %d)", es.State, es.Pid)
}
