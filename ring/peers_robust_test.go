//go:build linux && cgo

package ring_test

// Robustness of the C and Python ends against what issue 21 found:
// periodic signals (item 2), corrupt counters and records (item 4), fork
// (item 5).

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/posixshm/shm"
	"github.com/posixshm/shm/ring"
)

// deathBound is how long a blocked call may take to report its peer's
// death in these tests: generous against a loaded machine; the promise
// (LAYOUT.md §5) is about 300 ms, and the tests log what they measure.
const deathBound = 5 * time.Second

// peerLine waits up to d for p to exit and returns what it printed; hung
// if it did not exit in time.
func peerLine(p *peer, d time.Duration) (out string, err error, hung bool) {
	type res struct {
		out string
		err error
	}
	ch := make(chan res, 1)
	go func() { o, e := p.wait(); ch <- res{o, e} }()
	select {
	case r := <-ch:
		return r.out, r.err, false
	case <-time.After(d):
		p.cmd.Process.Kill()
		r := <-ch
		return r.out, r.err, true
	}
}

// TestPeerDeathUnderSignals: a call blocked in a process that takes a
// SIGALRM every 100 ms (an ordinary watchdog, SA_RESTART handler) still
// reports its peer's kill -9: every sleep then ends early with EINTR, and
// the liveness test must run by elapsed time, not only after a sleep that
// timed out. Go, C (gcc, musl-gcc, gcc -m32 where it runs) and Python, the
// reader blocked in recv and the writer blocked in send.
//
// Kills: C's or Python's wait testing the peer only after a timed-out
// sleep (93dfd98: the C and Python calls never return; the test's bound
// ends them and fails).
func TestPeerDeathUnderSignals(t *testing.T) {
	t.Run("Go", func(t *testing.T) {
		r := newRing(t, 4096)
		rd, err := r.Reader()
		if err != nil {
			t.Fatal(err)
		}
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGALRM)
		stop := make(chan struct{})
		var alarms int
		ticked := make(chan struct{})
		go func() {
			defer close(ticked)
			tick := time.NewTicker(100 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
					syscall.Kill(os.Getpid(), syscall.SIGALRM)
				case <-sig:
					alarms++
				}
			}
		}()
		defer func() { close(stop); <-ticked; signal.Stop(sig) }()
		p, _ := startPeer(t, goPeer("hold-writer", r.Name(), 0, 0), true)
		ctx := within(t, deathBound)
		done := blocked(t, rd, func() error { _, err := rd.Receive(ctx, nil); return err })
		p.kill9(t)
		killed := time.Now()
		err = <-done
		d := time.Since(killed)
		if !errors.Is(err, ring.ErrPeerGone) {
			t.Fatalf("blocked Receive under SIGALRM after the writer's death: %v after %v, want ErrPeerGone", err, d)
		}
		t.Logf("Go Receive: ErrPeerGone %v after kill -9", d.Round(time.Millisecond))
	})
	type lang struct {
		name string
		cmd  func(t *testing.T, args ...string) *exec.Cmd
		dead string
	}
	var langs []lang
	for _, cc := range []string{"gcc", "gcc -m32", "musl-gcc"} {
		langs = append(langs, lang{"C-" + strings.ReplaceAll(cc, " ", ""), func(t *testing.T, args ...string) *exec.Cmd {
			return exec.Command(buildPeer(t, cc), args...)
		}, "EOWNERDEAD"})
	}
	langs = append(langs, lang{"Python", func(t *testing.T, args ...string) *exec.Cmd {
		py, script := python(t)
		return exec.Command(py, append([]string{script}, args...)...)
	}, "PeerGoneError"})
	for _, l := range langs {
		for _, mode := range []string{"recv-wait", "send-wait"} {
			t.Run(l.name+"/"+mode, func(t *testing.T) {
				l.cmd(t) // skips where the language is missing
				r := newRing(t, 64)
				holder := "hold-writer"
				if mode == "send-wait" {
					holder = "hold-reader"
				}
				gp, _ := startPeer(t, goPeer(holder, r.Name(), 0, 0), true)
				cmd := l.cmd(t, mode, r.Name(), "alarm")
				cp, _ := startPeer(t, cmd, true)
				if mode == "send-wait" { // the writer has filled the ring and sleeps
					waitFull(t, r)
				}
				// Three alarms while blocked: three sleeps ended by EINTR.
				for n := 0; n < 3; {
					line, err := cp.out.ReadString('\n')
					if strings.TrimSpace(line) != "alarm" {
						t.Fatalf("%s %s: said %q (%v) while blocked, want alarms\n%s", l.name, mode, line, err, cp.stderr)
					}
					n++
				}
				gp.kill9(t)
				killed := time.Now()
				out, err, hung := peerLine(cp, deathBound)
				d := time.Since(killed)
				if hung {
					t.Fatalf("%s %s under SIGALRM every 100 ms: no return %v after the peer's kill -9 (want %s)\n%s", l.name, mode, deathBound, l.dead, cp.stderr)
				}
				var f []string
				alarms := 3
				for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
					if line == "alarm" {
						alarms++
					} else {
						f = append(f, strings.Fields(line)...)
					}
				}
				if err != nil || len(f) != 3 || f[0] != l.dead || f[2] != "alarms="+strconv.Itoa(alarms) {
					t.Fatalf("%s %s: %q %v after %v, want %s after %d alarms\n%s", l.name, mode, out, err, d, l.dead, alarms, cp.stderr)
				}
				t.Logf("%s %s: %s %s after %v (kill -9 of the peer after 3 alarms)", l.name, mode, f[0], f[2], d.Round(time.Millisecond))
			})
		}
	}
}

// waitFull returns once the ring's head is a whole capacity ahead of its
// tail (nothing is read while the reader holds on) and the writer has
// announced its sleep.
func waitFull(t *testing.T, r *ring.Ring) {
	t.Helper()
	b := shmBytes(t, r.Name())
	deadline := time.Now().Add(deathBound)
	for {
		head := binary.LittleEndian.Uint64(b[ring.OffHead:])
		tail := binary.LittleEndian.Uint64(b[ring.OffTail:])
		if int(head-tail) > r.Capacity()-16 && binary.LittleEndian.Uint32(b[ring.OffWriterSleep:]) == 1 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the writer did not fill the ring and sleep: head %d tail %d", head, tail)
		}
		time.Sleep(time.Millisecond) // polling shared memory the peer writes, not synchronizing with a sleep
	}
}

// TestForkChildHoldsNoClaim: a C or Python process claims the writer,
// sends "p0" and forks; the child's handle refuses send, claim and recv
// (ECHILD, ChildProcessError), so it can lose no message; the parent
// sends "p1". The parent is killed while the child lives on, idle: the
// reader gets "p0", "p1", then its peer-death error, and a new writer
// claims the end (no ErrBusy).
//
// Kills: no fork handling (93dfd98: the child's send succeeds, "c" is in
// the stream, and the child's inherited descriptor keeps the claim: the
// reader never sees the death, the new claim is ErrBusy); a fork handler
// that marks the handles but does not close the descriptors (no
// ErrPeerGone, ErrBusy).
func TestForkChildHoldsNoClaim(t *testing.T) {
	type lang struct {
		name string
		cmd  func(t *testing.T, args ...string) *exec.Cmd
		want string // the child's three outcomes
	}
	var langs []lang
	for _, cc := range []string{"gcc", "gcc -m32", "musl-gcc"} {
		langs = append(langs, lang{"C-" + strings.ReplaceAll(cc, " ", ""), func(t *testing.T, args ...string) *exec.Cmd {
			return exec.Command(buildPeer(t, cc), args...)
		}, "ECHILD ECHILD ECHILD"})
	}
	langs = append(langs, lang{"Python", func(t *testing.T, args ...string) *exec.Cmd {
		py, script := python(t)
		return exec.Command(py, append([]string{script}, args...)...)
	}, "ChildProcessError ChildProcessError ChildProcessError"})
	for _, l := range langs {
		t.Run(l.name, func(t *testing.T) {
			l.cmd(t) // skips where the language is missing
			r := newRing(t, 4096)
			rd, err := r.Reader()
			if err != nil {
				t.Fatal(err)
			}
			p, line := startPeer(t, l.cmd(t, "fork-writer", r.Name()), true)
			f := strings.Fields(line) // ready child PID SEND CLAIM RECV
			if len(f) != 6 || f[1] != "child" {
				t.Fatalf("fork-writer said %q", line)
			}
			pid, _ := strconv.Atoi(f[2])
			if pid <= 0 {
				t.Fatalf("fork-writer said %q: no child pid", line)
			}
			t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) })
			if got := strings.Join(f[3:], " "); got != l.want {
				t.Errorf("the fork's child: send, claim, recv: %s, want %s", got, l.want)
			}
			ctx := within(t, deathBound)
			buf := make([]byte, 64)
			var got []string
			for range 2 {
				n, err := rd.Receive(ctx, buf)
				if err != nil {
					t.Fatalf("after %q: %v", got, err)
				}
				got = append(got, string(buf[:n]))
			}
			if strings.Join(got, ",") != "p0,p1" {
				t.Fatalf("received %q, want the parent's p0, p1 only", got)
			}
			done := blocked(t, rd, func() error { _, err := rd.Receive(ctx, buf); return err })
			p.kill9(t)
			killed := time.Now()
			err = <-done
			d := time.Since(killed)
			if !alive(pid) {
				t.Fatalf("the fork's child %d died with its parent: the test proves nothing", pid)
			}
			if !errors.Is(err, ring.ErrPeerGone) {
				t.Fatalf("Receive after the parent's death, its child alive: %v after %v, want ErrPeerGone", err, d)
			}
			t.Logf("%s: ErrPeerGone %v after the parent's kill -9, its fork's child %d alive", l.name, d.Round(time.Millisecond), pid)
			w, err := openRing(t, r).Writer()
			if err != nil {
				t.Fatalf("a new writer while the dead writer's child lives: %v, want the claim", err)
			}
			if err := w.Send(ctx, []byte("new")); err != nil {
				t.Fatal(err)
			}
			if n, err := rd.Receive(ctx, buf); err != nil || string(buf[:n]) != "new" {
				t.Fatalf("from the new writer: %q, %v", buf[:n], err)
			}
		})
	}
}

// alive reports whether process pid exists and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && i+2 < len(s) && s[i+2] != 'Z'
}

// The corrupt-ring tests' geometry: a ring of one writer and one reader
// (header 896 bytes, LAYOUT.md §8) and corruptCap data bytes in an object
// of exactly 896 + corruptCap = one page (the C peer maps an inaccessible
// page right after it: any access past the data faults), or in one of two
// pages whose bytes past the data are guard bytes that must stay as they
// were.
const (
	corruptHdr   = 896
	corruptCap   = 4096 - corruptHdr
	corruptMax   = corruptCap/2 - 8
	guardByte    = 0xA5
	wrapMarker32 = 0xFFFFFFFF
)

// corruption is a ring state a buggy or hostile peer could leave.
type corruption struct {
	name             string
	head, tail       uint64
	wstate, rstate   uint32            // the slots' state words
	hdr              map[int]uint32    // object offset → u32 written over the header made (readers, writers, header_size, ...)
	words            map[uint64]uint32 // data offset → u32 written there (record lengths, markers)
	wantRecv, wantSn string            // C's outcome of try-recv and try-send ("" for any allowed one)
}

// image returns the object's bytes for c: a valid version-2 header of one
// writer, one reader and corruptCap bytes, with c's counters, states,
// header words and data words, guard bytes past the data.
func (c corruption) image(size int) []byte {
	b := make([]byte, size)
	le := binary.LittleEndian
	copy(b, "SHMRING\x00")
	le.PutUint32(b[8:], ring.Version)
	le.PutUint32(b[12:], corruptHdr)
	le.PutUint64(b[16:], corruptCap)
	le.PutUint64(b[24:], corruptMax)
	le.PutUint32(b[32:], 1) // readers
	le.PutUint32(b[36:], 1) // writers
	le.PutUint32(b[ring.OffWriterState:], c.wstate)
	le.PutUint32(b[ring.OffReaderState:], c.rstate)
	le.PutUint64(b[ring.OffHead:], c.head)
	le.PutUint64(b[ring.OffTail:], c.tail)
	for off, v := range c.hdr {
		le.PutUint32(b[off:], v)
	}
	for off, v := range c.words {
		le.PutUint32(b[corruptHdr+off:], v)
	}
	for i := corruptHdr + corruptCap; i < size; i++ {
		b[i] = guardByte
	}
	return b
}

var corruptionTable = []corruption{
	// issue 21 item 4: the wrap marker went 5 bytes past the data, the length read 1 byte past it
	{name: "head-misaligned-3-before-end", head: corruptCap - 3, tail: corruptCap - 3, wantRecv: "EPROTO", wantSn: "EPROTO"},
	{name: "tail-misaligned-5-before-end", head: corruptCap + 8, tail: corruptCap - 5, wantRecv: "EPROTO", wantSn: "EPROTO"},
	{name: "tail-misaligned-2-before-end", head: corruptCap + 8, tail: corruptCap - 2, wantRecv: "EPROTO", wantSn: "EPROTO"},
	{name: "head-misaligned-1-before-end", head: 2*corruptCap - 1, tail: 2*corruptCap - 1, wantRecv: "EPROTO", wantSn: "EPROTO"},
	{name: "head-misaligned-mid", head: 100, tail: 96, wantRecv: "EPROTO", wantSn: "EPROTO"},
	{name: "head-behind-tail", head: 0, tail: 64, wantRecv: "EPROTO", wantSn: "EPROTO"},
	{name: "head-capacity-ahead-plus-8", head: corruptCap + 8, tail: 0, wantRecv: "EPROTO", wantSn: "EPROTO"},
	{name: "head-2^63-ahead", head: 1 << 63, tail: 0, wantRecv: "EPROTO", wantSn: "EPROTO"},
	{name: "length-past-end-of-data", head: corruptCap - 16 + 1024, tail: corruptCap - 16,
		words: map[uint64]uint32{corruptCap - 16: 1000}, wantRecv: "EPROTO", wantSn: "ETIMEDOUT"},
	{name: "length-beyond-published", head: 16, tail: 0, words: map[uint64]uint32{0: 100}, wantRecv: "EPROTO"},
	{name: "length-beyond-max", head: corruptCap, tail: 0, words: map[uint64]uint32{0: corruptMax + 1}, wantRecv: "EPROTO"},
	{name: "length-2^31", head: corruptCap, tail: 0, words: map[uint64]uint32{0: 1 << 31}, wantRecv: "EPROTO"},
	{name: "wrap-marker-at-0", head: 64, tail: 0, words: map[uint64]uint32{0: wrapMarker32}, wantRecv: "EPROTO"},
	{name: "wrap-marker-beyond-head", head: corruptCap - 32, tail: corruptCap - 64,
		words: map[uint64]uint32{corruptCap - 64: wrapMarker32}, wantRecv: "EPROTO"},
	{name: "wrap-marker-in-last-8-bytes", head: corruptCap + 16, tail: corruptCap - 8,
		words: map[uint64]uint32{corruptCap - 8: wrapMarker32, 0: 3}, wantRecv: "ETIMEDOUT"},
	// the counters are u64: a ring 2^64 bytes old wraps them, as C's and Go's arithmetic does
	{name: "counters-wrap-2^64", head: 8, tail: 1<<64 - 8, wantRecv: "ETIMEDOUT"},
	// version 2's new header fields (issue 23): refused at open, EPROTO
	{name: "readers-0", hdr: map[int]uint32{32: 0}, wantRecv: "EPROTO", wantSn: "EPROTO"},
	{name: "readers-65", hdr: map[int]uint32{32: 65}, wantRecv: "EPROTO", wantSn: "EPROTO"},
	{name: "writers-0", hdr: map[int]uint32{36: 0}, wantRecv: "EPROTO", wantSn: "EPROTO"},
	{name: "writers-2^31", hdr: map[int]uint32{36: 1 << 31}, wantRecv: "EPROTO", wantSn: "EPROTO"},
	{name: "writers-2", hdr: map[int]uint32{36: 2, 12: 512 + 2*192 + 192}}, // lanes past the one-page object (EPROTO); a 2x1 ring in two pages
	{name: "readers-2-header-size-kept", hdr: map[int]uint32{32: 2}, wantRecv: "EPROTO", wantSn: "EPROTO"},
	{name: "header-size-off-by-8", hdr: map[int]uint32{12: corruptHdr + 8}, wantRecv: "EPROTO", wantSn: "EPROTO"},
	{name: "header-size-0", hdr: map[int]uint32{12: 0}, wantRecv: "EPROTO", wantSn: "EPROTO"},
	{name: "version-1", hdr: map[int]uint32{8: 1}, wantRecv: "EPROTO", wantSn: "EPROTO"},
	// state words: a claim count in the high 24 bits is ordinary; an unknown state is corrupt or ignored, never a crash
	{name: "states-claim-count-max", wstate: 0xFFFFFF02, rstate: 0xFFFFFF02, head: 16, tail: 0, words: map[uint64]uint32{0: 3}},
	{name: "writer-state-unknown", wstate: 7, head: 0, tail: 0},
	{name: "reader-state-unknown", rstate: 0x1FF, head: 0, tail: 0},
	{name: "pids-garbage", hdr: map[int]uint32{ring.OffWriterPid: 0xFFFFFFFF, ring.OffReaderPid: 0x80000000}, head: 16, tail: 0, words: map[uint64]uint32{0: 3}},
}

// pyName is Python's name for C's outcome of mode.
func pyName(c, mode string) string {
	switch c {
	case "EPROTO":
		return "ValueError"
	case "ETIMEDOUT":
		return "TimeoutError"
	case "EOWNERDEAD":
		return "PeerGoneError"
	case "EPIPE":
		if mode == "try-recv" {
			return "EOFError"
		}
		return "BrokenPipeError"
	}
	return c
}

// corruptRunner runs the C and Python peers' try-send and try-recv on
// corrupt rings in two objects: one exactly a page (C maps a fault page
// after it) and one with guard bytes past the data.
type corruptRunner struct {
	t      *testing.T
	names  [2]string
	mems   [2][]byte
	peers  []corruptPeer
	checks int
}

type corruptPeer struct {
	name string
	argv []string // the command before MODE NAME
	py   bool
	gor  bool // this test binary, its role the mode
}

var corruptSizes = [2]int{corruptHdr + corruptCap, 2 * (corruptHdr + corruptCap)}

func newCorruptRunner(t *testing.T) *corruptRunner {
	cr := &corruptRunner{t: t}
	for i, size := range corruptSizes {
		cr.names[i] = ringName(t)
		s, err := shm.Create(cr.names[i], size)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		cr.mems[i] = s.Bytes()
	}
	if raceBuild {
		// A race-built test binary per case (hundreds) takes minutes here;
		// the Go peer runs in the other builds' suites, and the Go end's
		// checks are tested in process under -race (TestCorruptCounters,
		// FuzzCorruptRing, FuzzCorruptSlots, TestBatchCorrupt).
		t.Log("race build: the Go peer is not run (it runs in the suites built without -race)")
	} else {
		exe, _ := os.Executable()
		cr.peers = append(cr.peers, corruptPeer{name: "Go", argv: []string{exe, "-test.run=^$"}, gor: true})
	}
	for _, cc := range []string{"gcc", "gcc -m32", "musl-gcc"} {
		if bin, why := buildPeerOrWhy(t, cc); bin != "" {
			cr.peers = append(cr.peers, corruptPeer{name: "C-" + strings.ReplaceAll(cc, " ", ""), argv: []string{bin}})
		} else {
			t.Logf("the %s peer is not run: %s", cc, why)
		}
	}
	if py, err := exec.LookPath("python3"); err == nil {
		cr.peers = append(cr.peers, corruptPeer{name: "Python", argv: []string{py, "testdata/peer.py"}, py: true},
			corruptPeer{name: "Python-zero-copy", argv: []string{py, "testdata/peer.py", "--zc"}, py: true})
	} else {
		t.Log("python3 is not installed: the Python peer is not run")
	}
	return cr
}

// buildPeerOrWhy compiles testdata/peer.c with cc into t's temporary
// directory, or says why it cannot (no compiler, no 32-bit libraries, a
// kernel that cannot run what it builds); unlike buildPeer it never skips
// t, so that one missing compiler leaves the other peers to run.
func buildPeerOrWhy(t *testing.T, cc string) (bin, why string) {
	args := strings.Fields(cc)
	if _, err := exec.LookPath(args[0]); err != nil {
		return "", cc + " is not installed"
	}
	out := t.TempDir() + "/peer"
	cmd := exec.Command(args[0], append(args[1:], "-std=c11", "-Wall", "-Wextra", "-Werror", "-O2", "-o", out, "testdata/peer.c")...)
	if msg, err := cmd.CombinedOutput(); err != nil {
		if len(args) > 1 { // gcc -m32 without its libraries
			return "", fmt.Sprintf("%s cannot build here: %v\n%s", cc, err, msg)
		}
		t.Fatalf("%s: %v\n%s", cc, err, msg)
	}
	if err := exec.Command(out).Run(); errors.Is(err, syscall.ENOEXEC) {
		return "", fmt.Sprintf("this kernel cannot run what %s builds: %v", cc, err)
	}
	return out, ""
}

var allowedC = map[string]bool{"OK": true, "EPROTO": true, "ETIMEDOUT": true, "EPIPE": true, "EOWNERDEAD": true}
var allowedPy = map[string]bool{"OK": true, "ValueError": true, "TimeoutError": true, "EOFError": true, "BrokenPipeError": true, "PeerGoneError": true}

// run runs every peer's try-send and try-recv on c in both objects and
// checks: an allowed outcome (c's own where it names one), no death by a
// signal, no hang, no byte changed outside what the end may write.
func (cr *corruptRunner) run(c corruption) {
	t := cr.t
	t.Helper()
	for i, size := range corruptSizes {
		img := c.image(size)
		for _, p := range cr.peers {
			modes := []string{"try-recv", "try-send"}
			if !p.py {
				modes = append(modes, "try-recv-batch", "try-send-batch") // the batch calls (issue 23)
			}
			for _, mode := range modes {
				mem := cr.mems[i]
				copy(mem, img)
				args := append(append([]string{}, p.argv...), mode, cr.names[i], "guard")
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				cmd := exec.CommandContext(ctx, args[0], args[1:]...)
				if p.gor {
					cmd.Env = append(os.Environ(), roleEnv+"="+mode)
				}
				var stderr bytes.Buffer
				cmd.Stderr = &stderr
				out, err := cmd.Output()
				hung := ctx.Err() != nil
				cancel()
				cr.checks++
				where := fmt.Sprintf("%s: %s %s in a %d-byte object (head %d, tail %d, states %d/%d, words %v)",
					c.name, p.name, mode, size, c.head, c.tail, c.wstate, c.rstate, c.words)
				if hung {
					t.Errorf("%s: hung (killed after 10 s)\n%s", where, stderr.Bytes())
					continue
				}
				var ee *exec.ExitError
				if errors.As(err, &ee) {
					if ws := ee.Sys().(syscall.WaitStatus); ws.Signaled() {
						t.Errorf("%s: died of %v (an access outside the data?)\n%s", where, ws.Signal(), stderr.Bytes())
						continue
					}
				}
				f := strings.Fields(string(out))
				if err != nil && len(f) == 0 { // refused at open (a broken header): the error on stderr
					for _, e := range []string{"EPROTO", "ValueError"} {
						if strings.Contains(stderr.String(), e) {
							f, err = []string{e, "open"}, nil
						}
					}
				}
				if err != nil || len(f) != 2 {
					t.Errorf("%s: %q %v\n%s", where, out, err, stderr.Bytes())
					continue
				}
				allowed, want := allowedC, c.wantRecv
				if strings.HasPrefix(mode, "try-send") {
					want = c.wantSn
				}
				if p.py {
					allowed, want = allowedPy, pyName(want, mode)
				}
				if want != "" && f[0] != want || !allowed[f[0]] {
					t.Errorf("%s: %s after %s, want %s", where, f[0], f[1], map[bool]string{true: want, false: "an allowed outcome"}[want != ""])
				}
				cr.checkBytes(where, mode, img, mem)
			}
		}
	}
}

// checkBytes fails if the peer changed a byte it may not: the header
// beyond its end's state, pid, counter and sleep words, and the guard bytes
// past the data.
func (cr *corruptRunner) checkBytes(where, mode string, img, mem []byte) {
	t := cr.t
	t.Helper()
	mutable := [][2]int{ // states, pids, sleep words
		{ring.OffWriterState, ring.OffWriterState + 8}, {ring.OffReaderState, ring.OffReaderState + 8},
		{ring.OffWriterSleep, ring.OffWriterSleep + 4}, {ring.OffReaderSleep, ring.OffReaderSleep + 4}}
	if strings.HasPrefix(mode, "try-recv") {
		mutable = append(mutable, [2]int{ring.OffTail, ring.OffTail + 8})
	} else {
		mutable = append(mutable, [2]int{ring.OffHead, ring.OffHead + 8})
	}
	may := func(i int) bool {
		for _, m := range mutable {
			if i >= m[0] && i < m[1] {
				return true
			}
		}
		return false
	}
	for i := 0; i < corruptHdr; i++ {
		if mem[i] != img[i] && !may(i) {
			t.Errorf("%s: header byte %d changed from %#x to %#x", where, i, img[i], mem[i])
			return
		}
	}
	if end := corruptHdr + corruptCap; !bytes.Equal(mem[end:], img[end:]) {
		i := end
		for mem[i] == img[i] {
			i++
		}
		t.Errorf("%s: wrote past the data: byte %d (data offset %d) changed from %#x to %#x", where, i, i-corruptHdr, img[i], mem[i])
	}
}

// TestCorruptRingPeers: the C (gcc, gcc -m32, musl-gcc) and Python ends' send and
// recv (Python's also by reserve/commit and next/release) on rings whose counters and records a buggy or hostile peer left
// corrupt (a table, then a seeded random loop of 16) end with EPROTO /
// ValueError where the corruption is in their way (else a timeout, the
// end of stream, the peer's death or success), never a death by a signal,
// a hang, another exception (struct.error, IndexError) or a byte written
// outside the data (a fault page after it for C, guard bytes in a larger
// object for both).
//
// Kills (93dfd98): C's send with a head 1-7 bytes before the end of the
// data writes its wrap marker past it (SIGSEGV on the fault page, guard
// bytes changed); C's recv with such a tail reads past it (SIGSEGV);
// Python raises struct.error; Python's send with a tail ahead of its head
// overwrites unread records (a wrong outcome); dropping any one of the new
// checks (the head's or tail's alignment, head - tail <= capacity in send
// or recv) brings one of these back.
func TestCorruptRingPeers(t *testing.T) {
	cr := newCorruptRunner(t)
	t.Run("table", func(t *testing.T) {
		cr.t = t
		for _, c := range corruptionTable {
			cr.run(c)
		}
	})
	t.Run("random", func(t *testing.T) {
		cr.t = t
		rng := rand.New(rand.NewPCG(21, 4))
		n := 16
		if testing.Short() {
			n = 4
		}
		for i := range n {
			cr.run(randomCorruption(rng, i))
		}
	})
	t.Logf("%d peer runs", cr.checks)
}

// randomCorruption makes a ring state from rng: counters aligned or not,
// near the end of the data, near 2^64 or anywhere; states; record lengths
// and wrap markers at the tail and elsewhere.
func randomCorruption(rng *rand.Rand, i int) corruption {
	counter := func() uint64 {
		switch rng.IntN(6) {
		case 0:
			return uint64(rng.IntN(4*corruptCap)) &^ 7
		case 1:
			return uint64(corruptCap*(1+rng.IntN(3)) - 1 - rng.IntN(8)) // 1..8 before an end
		case 2:
			return uint64(rng.IntN(4 * corruptCap)) // anything, aligned or not
		case 3:
			return -uint64(8 * (1 + rng.IntN(64))) // near 2^64
		case 4:
			return rng.Uint64()
		}
		return uint64(rng.IntN(corruptCap/8)) * 8
	}
	c := corruption{name: fmt.Sprintf("random-%d", i)}
	c.tail = counter()
	switch rng.IntN(3) {
	case 0:
		c.head = counter()
	default:
		c.head = c.tail + uint64(rng.IntN(corruptCap+64)) // mostly plausible, sometimes not
	}
	state := func() uint32 { // a state, a claim count, sometimes garbage
		switch rng.IntN(8) {
		case 0:
			return rng.Uint32()
		case 1, 2:
			return rng.Uint32()&^0xff | uint32(rng.IntN(3))
		}
		return uint32(rng.IntN(3)) * uint32(rng.IntN(2))
	}
	c.wstate, c.rstate = state(), state()
	if rng.IntN(4) == 0 { // a header field of version 2 broken
		c.hdr = map[int]uint32{[]int{12, 32, 36}[rng.IntN(3)]: []uint32{0, 2, 64, 65, rng.Uint32(), corruptHdr + 64}[rng.IntN(6)]}
	}
	c.words = map[uint64]uint32{}
	for range 1 + rng.IntN(6) {
		off := c.tail % corruptCap &^ 7
		if rng.IntN(2) == 0 {
			off = uint64(rng.IntN(corruptCap/8)) * 8
		}
		var v uint32
		switch rng.IntN(5) {
		case 0:
			v = wrapMarker32
		case 1:
			v = uint32(rng.IntN(corruptMax + 16))
		case 2:
			v = uint32(corruptCap - off%corruptCap + uint64(rng.IntN(16)) - 8)
		case 3:
			v = rng.Uint32()
		default:
			v = uint32(rng.IntN(64))
		}
		c.words[off] = v
	}
	return c
}
