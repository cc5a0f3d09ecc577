package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"syscall"

	"github.com/posixshm/shm"
)

// runDemoMemfd is demo -memfd: the same two-process story with no name at
// all. The writer creates a sealed memfd and hands its descriptor to the
// reader as fd 3 (exec.Cmd's ExtraFiles); the reader maps it, reads,
// answers, and finds that it cannot shrink it. Nothing is ever in
// /dev/shm, so nothing is left there, however the demo ends.
func runDemoMemfd(sigs chan os.Signal, w stepper) error {
	// label is what /proc, errors and File's name call the memfd: it has
	// no name, and a Mapping no Name or Unlink.
	const label = "memfd:shm-demo"
	s, err := shm.CreateMemfd("shm-demo", demoSize)
	if err != nil {
		return cmdErr("demo", label, err)
	}
	defer func() {
		s.Close()
		w.step("closed %s: munmap, close; it is freed with the last descriptor, nothing to unlink", label)
	}()
	seals, _ := s.Seals()
	w.step("created %s: memfd_create(MFD_CLOEXEC|MFD_ALLOW_SEALING), fallocate %d bytes, seals %v, mmap; nothing in /dev/shm", label, demoSize, seals)
	msg := fmt.Sprintf("hello from process %d", os.Getpid())
	if _, err := s.WriteAt(append([]byte(msg), 0), 0); err != nil {
		return cmdErr("demo", label, err)
	}
	w.step("wrote %q", msg)

	cmd, err := readerCmd(w, "reader-memfd", label)
	if err != nil {
		return cmdErr("demo", label, err)
	}
	f, err := s.File()
	if err != nil {
		return cmdErr("demo", label, err)
	}
	cmd.ExtraFiles = []*os.File{f} // fd 3 in the reader
	err = cmd.Start()
	f.Close() // the reader has its own copy now
	if err != nil {
		return cmdErr("demo", label, err)
	}
	w.step("started reader %d, handing it the descriptor as fd 3 (F_DUPFD_CLOEXEC, ExtraFiles)", cmd.Process.Pid)
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	var werr error
	select {
	case werr = <-waited:
	case sig := <-sigs:
		cmd.Process.Kill()
		<-waited
		w.step("interrupted: stopped the reader")
		return stoppedBy(sig, "demo")
	}
	if werr != nil {
		return cmdErr("demo", label, fmt.Errorf("reader: %w", werr))
	}
	reply := make([]byte, 128)
	if _, err := s.ReadAt(reply, replyOffset); err != nil {
		return cmdErr("demo", label, err)
	}
	reply, _, _ = bytes.Cut(reply, []byte{0})
	w.step("reader exited; it left the answer %q; still %d bytes", reply, s.Size())
	return nil
}

// demoMemfdChild is the reader of demo -memfd: it knows no name, only fd 3.
func demoMemfdChild(r stepper, role string, args []string) int {
	fail := func(err error) int {
		fmt.Fprintf(os.Stderr, "shm: %v\n", cmdErr("demo", "fd 3", err))
		return 1
	}
	if len(args) != 1 || (role != "reader-memfd" && role != "reader-memfd-hold") {
		fmt.Fprintf(os.Stderr, "shm: demo reader: bad invocation\n")
		return 2
	}
	f := os.NewFile(3, args[0])
	if f == nil {
		return fail(errors.New("no descriptor 3"))
	}
	defer f.Close()
	m, err := shm.MapFile(f, os.O_RDWR, 0, 0, nil)
	if err != nil {
		return fail(err)
	}
	defer m.Close()
	seals, _ := m.Seals()
	r.step("mapped fd 3 (%s): fstat (%d bytes), mmap; seals %v", args[0], m.Size(), seals)
	buf := make([]byte, replyOffset)
	if _, err := m.ReadAt(buf, 0); err != nil {
		return fail(err)
	}
	msg, _, _ := bytes.Cut(buf, []byte{0})
	r.step("read %q", msg)
	answer := fmt.Sprintf("process %d read it", os.Getpid())
	if _, err := m.WriteAt(append([]byte(answer), 0), replyOffset); err != nil {
		return fail(err)
	}
	r.step("wrote the answer %q", answer)
	terr := syscall.Ftruncate(int(f.Fd()), demoSize/2)
	if terr == nil {
		return fail(errors.New("ftruncate to a smaller size succeeded: the object is not sealed"))
	}
	r.step("ftruncate to %d bytes: %v (sealed: nobody can shrink it, so no mapping can fault)", demoSize/2, terr)
	if role == "reader-memfd-hold" {
		r.step("holding: press Enter to finish, or Ctrl-C to interrupt")
		bufio.NewReader(os.Stdin).ReadString('\n')
	}
	if err := m.Close(); err != nil {
		return fail(err)
	}
	r.step("closed: munmap, close")
	return 0
}
