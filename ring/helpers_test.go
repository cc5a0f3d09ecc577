//go:build linux && cgo

package ring_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/posixshm/shm"
	"github.com/posixshm/shm/ring"
)

const roleEnv = "SHMRING_TEST_ROLE"

func TestMain(m *testing.M) {
	if role := os.Getenv(roleEnv); role != "" {
		run := func() error { return child(role, os.Args[len(os.Args)-1]) }
		if strings.HasPrefix(role, "bench-") {
			run = func() error { return benchRole(role, os.Args[2:]) }
		}
		if strings.HasPrefix(role, "try-") {
			run = func() error { return tryRole(role, os.Args[3:]) } // after the mode
		}
		if strings.HasPrefix(role, "v2-") {
			run = func() error { return v2Role(role, os.Args[2:]) }
		}
		if err := run(); err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	code := m.Run()
	for _, d := range buildDirs {
		os.RemoveAll(d)
	}
	os.Exit(code)
}

var buildDirs []string // the peers' build directories, removed at the end

// child runs the Go peer's role on the ring called name.
func child(role, name string) error {
	ctx := context.Background()
	var r *ring.Ring
	var err error
	if name == "fd3" {
		f := os.NewFile(3, "ring")
		r, err = ring.MapFile(f)
		f.Close()
	} else {
		r, err = ring.Open(name)
	}
	if err != nil {
		return err
	}
	defer r.Close()
	count, _ := strconv.Atoi(os.Getenv("SHMRING_TEST_COUNT"))
	seed, _ := strconv.ParseUint(os.Getenv("SHMRING_TEST_SEED"), 10, 64)
	switch role {
	case "read": // verify count messages of the stream, then io.EOF
		rd, err := r.Reader()
		if err != nil {
			return err
		}
		if err := readStream(ctx, rd, r.MaxMessage(), count, seed); err != nil {
			return err
		}
		if _, err := rd.Receive(ctx, nil); err != io.EOF {
			return fmt.Errorf("after the stream: %v, want io.EOF", err)
		}
		fmt.Println("ok")
		return nil
	case "write":
		w, err := r.Writer()
		if err != nil {
			return err
		}
		if err := writeStream(ctx, w, r.MaxMessage(), count, seed); err != nil {
			return err
		}
		return w.Close()
	case "hold-writer", "hold-reader": // claim, send count messages if writer, say ready, wait to be killed
		if role == "hold-writer" {
			w, err := r.Writer()
			if err != nil {
				return err
			}
			for i := range count {
				if err := w.Send(ctx, []byte(strconv.Itoa(i))); err != nil {
					return err
				}
			}
		} else if _, err := r.Reader(); err != nil {
			return err
		}
		fmt.Println("ready")
		time.Sleep(time.Hour) // until killed (select{} would be a deadlock the runtime ends)
	case "next-hold": // Next, print the message, wait to be killed before Release
		rd, err := r.Reader()
		if err != nil {
			return err
		}
		msg, err := rd.Next(ctx)
		if err != nil {
			return err
		}
		fmt.Printf("ready %q\n", msg)
		time.Sleep(time.Hour) // until killed (select{} would be a deadlock the runtime ends)
	}
	return fmt.Errorf("unknown role %q", role)
}

// tryRole is peer.c's try-send, try-recv, try-send-batch and try-recv-batch
// for the Go end (the corrupt-ring runner's third language): args are
// NAME [guard]; it claims its end, moves up to 8 messages (20 ms timeout
// each) and prints "RESULT COUNT" with C's name for the first error.
func tryRole(role string, args []string) error {
	name := args[0]
	outcome := func(err error) string {
		switch {
		case err == nil:
			return "OK"
		case errors.Is(err, ring.ErrCorrupt), errors.Is(err, ring.ErrNotRing):
			return "EPROTO"
		case errors.Is(err, context.DeadlineExceeded):
			return "ETIMEDOUT"
		case errors.Is(err, io.EOF), errors.Is(err, io.ErrClosedPipe):
			return "EPIPE"
		case errors.Is(err, ring.ErrPeerGone):
			return "EOWNERDEAD"
		}
		return strings.ReplaceAll(err.Error(), " ", "_")
	}
	r, err := ring.Open(name)
	if err != nil {
		fmt.Println(outcome(err), "open")
		return nil
	}
	defer r.Close()
	rd := strings.HasPrefix(role, "try-recv")
	batch := strings.HasSuffix(role, "-batch")
	max := r.MaxMessage()
	lens := []int{0, max, 1, 13, max / 2, 7, max - 1, 64}
	buf := make([]byte, max+1)
	var w *ring.Writer
	var rdr *ring.Reader
	if rd {
		rdr, err = r.Reader()
	} else {
		w, err = r.Writer()
	}
	if err != nil {
		fmt.Println(outcome(err), "claim")
		return nil
	}
	i := 0
	for i < 8 {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		var n int
		switch {
		case rd && batch:
			bufs, got := make([][]byte, 8-i), make([]int, 8-i)
			for j := range bufs {
				bufs[j] = make([]byte, max+1)
			}
			n, err = rdr.ReceiveBatch(ctx, bufs, got)
			for _, l := range got[:n] {
				if l > max {
					fmt.Println("TOOBIG", i)
					cancel()
					return nil
				}
			}
		case rd:
			var l int
			l, err = rdr.Receive(ctx, buf)
			if err == nil {
				n = 1
			}
			if l > max {
				fmt.Println("TOOBIG", i)
				cancel()
				return nil
			}
		case batch:
			msgs := make([][]byte, 8-i)
			for j := range msgs {
				msgs[j] = buf[:lens[i+j]]
			}
			n, err = w.SendBatch(ctx, msgs)
		default:
			err = w.Send(ctx, buf[:lens[i]])
			if err == nil {
				n = 1
			}
		}
		cancel()
		i += n
		if err != nil || n == 0 {
			break
		}
	}
	fmt.Println(outcome(err), i)
	return nil
}

// ringName returns a unique object name for t, unlinked at its end.
func ringName(t testing.TB) string {
	t.Helper()
	base := regexp.MustCompile(`[^A-Za-z0-9]+`).ReplaceAllString(t.Name(), "-")
	name := fmt.Sprintf("/ringtest-%d-%s-%x", os.Getpid(), base, rand.Uint32())
	t.Cleanup(func() {
		if err := shm.Unlink(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("unlink %s: %v", name, err)
		}
	})
	return name
}

// newRing creates a ring of capacity bytes for t, closed at its end.
func newRing(t testing.TB, capacity int) *ring.Ring {
	t.Helper()
	r, err := ring.Create(ringName(t), capacity)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// openRing opens r's object again: another open file description, so its
// claims conflict with r's as another process's would.
func openRing(t testing.TB, r *ring.Ring) *ring.Ring {
	t.Helper()
	o, err := ring.Open(r.Name())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { o.Close() })
	return o
}

const patN = 1<<20 + 4093 // the pattern's period, as in testdata/peer.c

// stream is the message stream of peer.c: lengths and bytes from seed.
type stream struct {
	pat []byte
	y   uint32
	max int
	i   int
	p   int
}

func newStream(seed uint64, max int) *stream {
	p := make([]byte, patN+max)
	x := 2*seed + 1
	for i := range patN {
		x ^= x >> 12
		x ^= x << 25
		x ^= x >> 27
		p[i] = byte((x * 0x2545F4914F6CDD1D) >> 56)
	}
	copy(p[patN:], p)
	return &stream{pat: p, y: uint32(seed) | 1, max: max}
}

// next returns the next message of the stream.
func (s *stream) next() []byte {
	y := s.y
	y ^= y << 13
	y ^= y >> 17
	y ^= y << 5
	s.y = y
	var n int
	switch {
	case s.i == 0:
		n = 0
	case s.i == 1:
		n = s.max
	case y&1 != 0:
		n = min(int((y>>1)%64), s.max)
	default:
		n = int((y >> 1) % uint32(s.max+1))
	}
	s.i++
	m := s.pat[s.p%patN:][:n]
	s.p += n
	return m
}

func writeStream(ctx context.Context, w *ring.Writer, max, count int, seed uint64) error {
	s := newStream(seed, max)
	for i := range count {
		m := s.next()
		if i%3 == 2 { // zero-copy every third message
			b, err := w.Reserve(ctx, len(m))
			if err != nil {
				return fmt.Errorf("message %d: %w", i, err)
			}
			copy(b, m)
			if err := w.Commit(len(m)); err != nil {
				return err
			}
			continue
		}
		if err := w.Send(ctx, m); err != nil {
			return fmt.Errorf("message %d: %w", i, err)
		}
	}
	return nil
}

func readStream(ctx context.Context, rd *ring.Reader, max, count int, seed uint64) error {
	s := newStream(seed, max)
	buf := make([]byte, max)
	for i := range count {
		want := s.next()
		var got []byte
		if i%3 == 1 {
			m, err := rd.Next(ctx)
			if err != nil {
				return fmt.Errorf("message %d at byte %d: %w", i, s.p-len(want), err)
			}
			got = bytes.Clone(m)
			if err := rd.Release(); err != nil {
				return err
			}
		} else {
			if len(want) > 0 { // a buffer one byte short leaves the message
				if _, err := rd.Receive(ctx, buf[:len(want)-1]); err != io.ErrShortBuffer {
					return fmt.Errorf("message %d of %d bytes into %d: %v, want io.ErrShortBuffer", i, len(want), len(want)-1, err)
				}
			}
			n, err := rd.Receive(ctx, buf)
			if err != nil {
				return fmt.Errorf("message %d at byte %d: %w", i, s.p-len(want), err)
			}
			got = buf[:n]
		}
		if len(got) != len(want) {
			return fmt.Errorf("message %d at byte %d has length %d, want %d", i, s.p-len(want), len(got), len(want))
		}
		if !bytes.Equal(got, want) {
			return fmt.Errorf("message %d at byte %d: wrong content", i, s.p-len(want))
		}
	}
	return nil
}

var builds sync.Map // cc → binary or skip reason

// buildPeer compiles testdata/peer.c with cc (a command line such as
// "gcc -m32"), skipping t where that compiler is missing.
func buildPeer(t testing.TB, cc string) string {
	t.Helper()
	type built struct{ path, skip string }
	if b, ok := builds.Load(cc); ok {
		if b.(built).skip != "" {
			t.Skip(b.(built).skip)
		}
		return b.(built).path
	}
	args := strings.Fields(cc)
	if _, err := exec.LookPath(args[0]); err != nil {
		builds.Store(cc, built{skip: cc + " is not installed"})
		t.Skipf("%s is not installed", cc)
	}
	dir, err := os.MkdirTemp("", "shmring-peer")
	if err != nil {
		t.Fatal(err)
	}
	buildDirs = append(buildDirs, dir)
	out := filepath.Join(dir, "peer")
	cmd := exec.Command(args[0], append(args[1:], "-std=c11", "-Wall", "-Wextra", "-Werror", "-O2", "-o", out, "testdata/peer.c")...)
	if msg, err := cmd.CombinedOutput(); err != nil {
		if len(args) > 1 && strings.Contains(string(msg), "cannot find") || strings.Contains(string(msg), "No such file") {
			reason := fmt.Sprintf("%s cannot build here (no 32-bit libraries?): %s", cc, msg)
			builds.Store(cc, built{skip: reason})
			t.Skip(reason)
		}
		t.Fatalf("%s: %v\n%s", cc, err, msg)
	}
	if err := exec.Command(out).Run(); errors.Is(err, syscall.ENOEXEC) {
		reason := fmt.Sprintf("this kernel cannot run what %s builds (no IA32 emulation?): %v", cc, err)
		builds.Store(cc, built{skip: reason})
		t.Skip(reason)
	}
	builds.Store(cc, built{path: out})
	return out
}

// peer is a running child: C peer or this test binary in a role.
type peer struct {
	cmd    *exec.Cmd
	out    *bufio.Reader
	stderr *bytes.Buffer
	done   chan struct{}
	err    error // cmd.Wait's, once done is closed
}

// wait waits for the peer to exit and returns what it printed after the
// lines already read.
func (p *peer) wait() (string, error) {
	rest, _ := io.ReadAll(p.out)
	<-p.done
	return string(rest), p.err
}

// startPeer starts cmd, returns when it printed a line starting with
// "ready" if ready is true, and kills it at the end of t.
func startPeer(t testing.TB, cmd *exec.Cmd, ready bool) (*peer, string) {
	t.Helper()
	p := &peer{cmd: cmd, stderr: new(bytes.Buffer), done: make(chan struct{})}
	cmd.Stderr = p.stderr
	pr, pw := io.Pipe()
	cmd.Stdout = pw
	p.out = bufio.NewReader(pr)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = cmd.Wait(); pw.Close(); close(p.done) }()
	guard := time.AfterFunc(60*time.Second, func() { cmd.Process.Kill() }) // a hung peer fails the test, not the run
	t.Cleanup(func() { guard.Stop(); cmd.Process.Kill() })
	if !ready {
		return p, ""
	}
	line, err := p.out.ReadString('\n')
	if !strings.HasPrefix(line, "ready") {
		t.Fatalf("peer said %q (%v), not ready\n%s", line, err, p.stderr)
	}
	return p, strings.TrimSpace(line)
}

// goPeer is this test binary as a child in role on the ring name.
func goPeer(role, name string, count int, seed uint64) *exec.Cmd {
	exe, _ := os.Executable()
	cmd := exec.Command(exe, "-test.run=^$", name)
	cmd.Env = append(os.Environ(), roleEnv+"="+role, "SHMRING_TEST_COUNT="+strconv.Itoa(count), "SHMRING_TEST_SEED="+strconv.FormatUint(seed, 10))
	return cmd
}

// kill9 kills the peer with SIGKILL and waits for it.
func (p *peer) kill9(t testing.TB) {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGKILL)
	go io.Copy(io.Discard, p.out)
	<-p.done
	if ee, ok := p.err.(*exec.ExitError); !ok || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("the peer was not alive until the kill: %v\n%s", p.err, p.stderr)
	}
}

// within returns a context that ends after d, canceled at the end of t.
func within(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// ends claims r's first free writer and reader slots, for a test that is
// both ends of a ring in one process.
func ends(t testing.TB, r *ring.Ring) (*ring.Writer, *ring.Reader) {
	t.Helper()
	w, err := r.Writer()
	if err != nil {
		t.Fatal(err)
	}
	rd, err := r.Reader()
	if err != nil {
		t.Fatal(err)
	}
	return w, rd
}
