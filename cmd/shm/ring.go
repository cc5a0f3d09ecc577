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
	"syscall"
	"text/tabwriter"

	"github.com/posixshm/shm"
	"github.com/posixshm/shm/ring"
)

var ringCommands = []*command{
	{name: "create", args: "-size N NAME", summary: "make a message ring of N data bytes (a multiple of 8, at least 64; exclusive, pages reserved)", setup: ringCreateCmd},
	{name: "send", args: "NAME", summary: "send standard input into the ring as messages (each read, up to the largest message), then end the stream", setup: ringSendCmd},
	{name: "recv", args: "NAME", summary: "copy the ring's messages to standard output until the stream ends", setup: ringRecvCmd},
	{name: "stat", args: "[-json] NAME", summary: "describe the ring: sizes, messages not yet received, each end's state (never, open, closed, dead) and its claimant's pid; claims nothing", setup: ringStatCmd},
}

func ringCreateCmd(fl *flag.FlagSet) runner {
	size := sizeFlag{n: -1}
	fl.Var(&size, "size", "the ring's data `bytes`; the largest message is half, less 8")
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
		r, err := ring.Create(name, int(size.n))
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
				"bytes": st.Bytes, "used": st.Used, "head": st.Head, "tail": st.Tail, "writer": st.Writer, "reader": st.Reader}
			jsonName(rec, name)
			enc := json.NewEncoder(e.stdout)
			enc.SetIndent("", "  ")
			return enc.Encode(rec)
		}
		w := tabwriter.NewWriter(e.stdout, 0, 0, 1, ' ', 0)
		fmt.Fprintf(w, "name:\t%s\n", quoteName(name))
		fmt.Fprintf(w, "capacity:\t%d\n", st.Capacity)
		fmt.Fprintf(w, "max message:\t%d\n", st.MaxMessage)
		fmt.Fprintf(w, "messages:\t%d (%d bytes) not yet received\n", st.Messages, st.Bytes)
		fmt.Fprintf(w, "used:\t%d of %d bytes\n", st.Used, st.Capacity)
		fmt.Fprintf(w, "head:\t%d\n", st.Head)
		fmt.Fprintf(w, "tail:\t%d\n", st.Tail)
		fmt.Fprintf(w, "writer:\t%s\n", endText(st.Writer))
		fmt.Fprintf(w, "reader:\t%s\n", endText(st.Reader))
		return w.Flush()
	}
}

// endText is an end as ring stat prints it: its state, and the pid its
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

// isRing reports whether the object name (as ls shows it, "/x") is a
// ring (ring.Is: its magic), reading without mapping it.
func isRing(name string) bool {
	f, err := os.OpenFile(shm.Dir()+"/"+strings.TrimLeft(name, "/"), os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return false
	}
	defer f.Close()
	return ring.Is(f)
}

// shownKind is the type ls and stat print for en: "ring" for an object
// that is a ring, else en.kind.
func shownKind(en entry) string {
	if en.kind == "shm" && isRing(en.name) {
		return "ring"
	}
	return en.kind
}
