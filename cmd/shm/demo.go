package main

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"time"

	"github.com/posixshm/shm"
)

// The demo's second process is this program again, with demoRoleEnv set
// and the object's name as its only argument, like an unrelated program
// that was told the name.
const (
	demoRoleEnv  = "SHM_DEMO_ROLE"
	demoStartEnv = "SHM_DEMO_START"
	demoSize     = 4096
	replyOffset  = 1024
	// handoffOffset is the futex word the reader sets to 1 and wakes
	// when its answer is in place.
	handoffOffset = 2048
)

var demoCommands = []*command{
	{name: "demo", args: "[-hold] [-memfd]", summary: "one process writes a fresh object, another reads it by name (or by descriptor: -memfd)", setup: demoCmd},
}

func demoCmd(fl *flag.FlagSet) runner {
	hold := fl.Bool("hold", false, "the reader waits for Enter before it finishes, so you can try Ctrl-C")
	memfd := fl.Bool("memfd", false, "share a sealed memfd, passed to the reader as a descriptor, instead of a name")
	return func(e *env, args []string) error { return runDemo(e, *hold, *memfd, args) }
}

// stepper prints one timestamped line per step.
type stepper struct {
	start time.Time
	who   string
	out   io.Writer
	hold  bool // the reader holds for Enter
}

func (s stepper) step(format string, args ...any) {
	fmt.Fprintf(s.out, "%9.3fms  %-16s %s\n", float64(time.Since(s.start).Microseconds())/1000, s.who, fmt.Sprintf(format, args...))
}

// runDemo is the classic POSIX two-program example: the writer creates a
// fresh object and writes a message; the reader, another process told only
// the name, opens it, prints the message and answers; the writer reads the
// answer and unlinks. The reader starts after the message is written; it
// hands the answer over through a futex word of the object (Uint32, Wake),
// on which the writer waits (Wait), so the writer reads the answer while
// the reader still runs. Ctrl-C at any point still unlinks.
func runDemo(e *env, hold, memfd bool, args []string) (err error) {
	if len(args) != 0 {
		return usageError{"demo takes no arguments"}
	}
	sigs := make(chan os.Signal, 1)
	notifyStop(sigs)
	defer signal.Stop(sigs)
	w := stepper{start: time.Now(), who: fmt.Sprintf("writer %d", os.Getpid()), out: e.stdout, hold: hold}
	if memfd {
		return runDemoMemfd(sigs, w)
	}

	s, err := shm.CreateTemp("shm-demo-*", demoSize)
	if err != nil {
		return cmdErr("demo", "/shm-demo-*", err)
	}
	w.step("created %s: shm_open(O_CREAT|O_EXCL|O_RDWR, 0600) under a temporary name, fallocate %d bytes, mmap, rename to the name", s.Name(), demoSize)
	defer func() {
		s.Close()
		if uerr := s.Unlink(); uerr != nil && err == nil {
			err = cmdErr("demo", s.Name(), uerr)
		} else if uerr == nil {
			w.step("unlinked %s: shm_unlink; nothing is left in /dev/shm", s.Name())
		}
	}()

	msg := fmt.Sprintf("hello from process %d", os.Getpid())
	if _, err := s.WriteAt(append([]byte(msg), 0), 0); err != nil {
		return cmdErr("demo", s.Name(), err)
	}
	w.step("wrote %q", msg)

	cmd, err := readerCmd(w, "reader", s.Name())
	if err != nil {
		return cmdErr("demo", s.Name(), err)
	}
	if err := cmd.Start(); err != nil {
		return cmdErr("demo", s.Name(), err)
	}
	w.step("started reader %d, telling it only the name %s", cmd.Process.Pid, s.Name())
	// The reader's exit also ends the wait: one that dies without
	// answering must not leave the writer waiting.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait(); cancel() }()
	answered := make(chan error, 1)
	go func() { answered <- awaitWord(ctx, s, handoffOffset) }()
	w.step("waiting for the answer: futex_waitv on the word at offset %d", handoffOffset)
	stop := func(sig os.Signal) error {
		cmd.Process.Kill()
		<-waited
		w.step("interrupted: stopped the reader, cleaning up")
		return stoppedBy(sig, "demo")
	}
	select {
	case err := <-answered:
		if err != nil {
			werr := <-waited
			return cmdErr("demo", s.Name(), fmt.Errorf("reader ended without answering: %v (%w)", werr, err))
		}
	case sig := <-sigs:
		return stop(sig)
	}
	reply := make([]byte, 128)
	if _, err := s.ReadAt(reply, replyOffset); err != nil {
		return cmdErr("demo", s.Name(), err)
	}
	reply, _, _ = bytes.Cut(reply, []byte{0})
	w.step("woken: the reader left the answer %q", reply)
	select {
	case werr := <-waited:
		if werr != nil {
			return cmdErr("demo", s.Name(), fmt.Errorf("reader: %w", werr))
		}
	case sig := <-sigs:
		return stop(sig)
	}
	w.step("reader exited")
	return nil
}

// readerCmd is the demo's second process: this program again, with the
// role (and "-hold" with -hold) in demoRoleEnv and name as its argument.
func readerCmd(w stepper, role, name string) (*exec.Cmd, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	if w.hold {
		role += "-hold"
	}
	cmd := exec.Command(exe, name)
	cmd.Env = append(os.Environ(), demoRoleEnv+"="+role, demoStartEnv+"="+strconv.FormatInt(w.start.UnixNano(), 10))
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, w.out, os.Stderr
	return cmd, nil
}

// awaitWord waits until the futex word at off of s is not 0.
func awaitWord(ctx context.Context, s *shm.Segment, off int64) error {
	word, err := s.Uint32(off)
	if err != nil {
		return err
	}
	for word.Load() == 0 {
		if err := s.Wait(ctx, off, 0); err != nil {
			return err
		}
	}
	return nil
}

// demoChild is the reader: the second, unrelated process.
func demoChild(role string, args []string) int {
	start := time.Now()
	if ns, err := strconv.ParseInt(os.Getenv(demoStartEnv), 10, 64); err == nil {
		start = time.Unix(0, ns)
	}
	r := stepper{start: start, who: fmt.Sprintf("reader %d", os.Getpid()), out: os.Stdout}
	if strings.HasPrefix(role, "reader-memfd") {
		return demoMemfdChild(r, role, args)
	}
	if len(args) != 1 || (role != "reader" && role != "reader-hold") {
		fmt.Fprintf(os.Stderr, "shm: demo reader: bad invocation\n")
		return 2
	}
	name := args[0]
	s, err := shm.Open(name)
	if err != nil {
		fmt.Fprintf(os.Stderr, "shm: %v\n", cmdErr("demo", name, err))
		return 1
	}
	defer s.Close()
	r.step("opened %s by name: shm_open(O_RDWR), fstat (%d bytes), mmap", name, s.Size())
	buf := make([]byte, replyOffset)
	if _, err := s.ReadAt(buf, 0); err != nil {
		fmt.Fprintf(os.Stderr, "shm: %v\n", cmdErr("demo", name, err))
		return 1
	}
	msg, _, _ := bytes.Cut(buf, []byte{0})
	r.step("read %q", msg)
	answer := fmt.Sprintf("process %d read it", os.Getpid())
	if _, err := s.WriteAt(append([]byte(answer), 0), replyOffset); err != nil {
		fmt.Fprintf(os.Stderr, "shm: %v\n", cmdErr("demo", name, err))
		return 1
	}
	r.step("wrote the answer %q", answer)
	r.step("waking the writer: 1 into the word at offset %d, futex(FUTEX_WAKE)", handoffOffset)
	word, err := s.Uint32(handoffOffset)
	if err == nil {
		word.Store(1)
		_, err = s.Wake(handoffOffset, 1)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "shm: %v\n", cmdErr("demo", name, err))
		return 1
	}
	if role == "reader-hold" {
		r.step("holding: press Enter to finish, or Ctrl-C to interrupt")
		bufio.NewReader(os.Stdin).ReadString('\n') // a line or the end of input
	}
	if err := s.Close(); err != nil {
		fmt.Fprintf(os.Stderr, "shm: %v\n", cmdErr("demo", name, err))
		return 1
	}
	r.step("closed: munmap, close; the name is the writer's to unlink")
	return 0
}
