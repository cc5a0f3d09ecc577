//go:build linux && cgo

package ring_test

// Edge cases of ring/python/shmring.py, run by testdata/pyedge.py: a
// Ring closed while a call on it is blocked (by a signal handler, by
// another thread), arguments that are not integers, timeouts that are
// NaN or negative.

import (
	"io"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// pyEdge is testdata/pyedge.py with args.
func pyEdge(t *testing.T, args ...string) *exec.Cmd {
	return exec.Command(py3(t), append([]string{"testdata/pyedge.py"}, args...)...)
}

// pyEdgeOut runs pyedge.py with args to its end and returns its output,
// the ring's name replaced by NAME; it fails t if the script failed.
func pyEdgeOut(t *testing.T, name string, args ...string) string {
	t.Helper()
	p, _ := startPeer(t, pyEdge(t, args...), false)
	out, err := p.wait()
	if err != nil {
		t.Fatalf("pyedge.py %v: %v\n%s%s", args, err, out, p.stderr)
	}
	return strings.ReplaceAll(out, name, "NAME")
}

// TestPythonCloseWhileBlocked: a Ring closed while a call on it is
// blocked (recv and next on an empty ring, send and reserve on a full
// lane, wait_peer with no peer; hold: wait_peer while a message from next()
// is held with a slice of its view alive), by a SIGUSR1 handler in the
// blocked thread or by another thread. The call ends with ValueError
// (closed); the slot reads closed (not dead); the Ring's descriptors and
// mapping are gone; a further call raises the same ValueError. From
// another thread, close() returns once the call has ended and the slot is
// released. hold: the slice reads zeros after the close, and the message
// stays for the next reader. The test sends the signal, or the line that
// makes the other thread close, only once the call is seen asleep (its
// sleep word is 1, or wait_peer said it sleeps): no sleeps.
//
// Kills (watched): the close unmapping under the blocked call (the
// module before this test, every case but hold: "pyedge.py ended:
// signal: segmentation fault", faulthandler naming _wait's ready();
// hold: "result BufferError"); close not waking the sleeper (the thread
// cases: "no line from the peer within 10s", the call asleep for its 10
// s); _wait not looking at closing (signal: "signal: alarm clock", the
// call never ends); close from another thread returning before the call
// ended ("after close: slot open descriptors 2 mappings 1"); the end of
// the call leaving a slice of a held view on the ring's memory (hold:
// "held slice reads b'el'").
func TestPythonCloseWhileBlocked(t *testing.T) {
	for _, op := range []string{"recv", "next", "send", "reserve", "wait_peer", "hold"} {
		for _, trigger := range []string{"signal", "thread"} {
			t.Run(op+"/"+trigger, func(t *testing.T) {
				name := pyRing(t, 4096, 1, 1)
				cmd := pyEdge(t, "close", op, trigger, name)
				in := pyStdin(t, cmd)
				p, _ := startPeer(t, cmd, true)
				switch op {
				case "recv", "next":
					readerAsleep(t, name, 1, 0)
				case "send", "reserve":
					writerAsleep(t, name, 0)
				default:
					pyExpect(t, p, "asleep")
				}
				start := time.Now()
				if trigger == "signal" {
					if err := p.cmd.Process.Signal(syscall.SIGUSR1); err != nil {
						t.Fatal(err)
					}
				} else {
					io.WriteString(in, "close\n")
					want := "after close: slot closed descriptors 0 mappings 0"
					if op == "hold" { // the slice keeps mmap's descriptor until it goes
						want = "after close: slot closed descriptors 1 mappings 0"
					}
					if l := pyLine(t, p, 10*time.Second); l != want {
						t.Fatalf("after close() returned: %q, want %q\n%s", l, want, p.stderr)
					}
				}
				res, err := p.out.ReadString('\n') // (startPeer kills it after 60 s, its alarm after 30 s)
				if err != nil {
					_, err := p.wait()
					t.Fatalf("pyedge.py ended: %v\n%s", err, p.stderr)
				}
				res = strings.TrimSpace(res)
				if d := time.Since(start); d > time.Second { // its sleeps last 10 s but for a wake-up
					t.Errorf("the call ended %v after close", d)
				}
				out, err := p.wait()
				if err != nil {
					t.Fatalf("pyedge.py: %v\n%s\n%s%s", err, res, out, p.stderr)
				}
				got := strings.ReplaceAll(res+"\n"+out, name, "NAME")
				want := "result ValueError: shmring NAME: closed\nslot closed\n"
				if op == "hold" {
					want += "held slice reads b'\\x00\\x00' message dropped ValueError\n"
				}
				want += "descriptors 0 mappings 0\nagain ValueError: shmring NAME: closed\n"
				if op == "hold" {
					want += "next reader OK b'held'\n"
				}
				want += "ok\n"
				if got != want {
					t.Errorf("pyedge.py said\n%s\nwant\n%s\n%s", got, want, p.stderr)
				}
			})
		}
	}
}

// TestPythonArguments: Reservation.commit(m) with an m that is not an
// integer (2.0, "2") raises TypeError, out of range ValueError, and in
// both cases leaves the reservation pending with its view usable: the
// later commit(2) sends "ab". reserve(n) and Ring.create(capacity, readers,
// writers) likewise, create making no object. A close whose wake of the
// peer fails raises that error and still releases the slot (closed), the
// descriptors and the mapping, and drops the reservation.
//
// Kills (watched): commit checking only the range (the module before
// this test: "commit(2.0) error: required argument is not an integer",
// then "commit('2') ValueError: ... the reservation was committed" and
// the view released); close stopping at the failing step ("slot closed
// descriptors 2 mappings 1", "close again OSError", "reclaim BusyError").
func TestPythonArguments(t *testing.T) {
	name := pyRing(t, 4096, 1, 1)
	got := pyEdgeOut(t, name, "args", name)
	want := `commit(2.0) TypeError: shmring NAME: commit: length 2.0 is not an integer
commit('2') TypeError: shmring NAME: commit: length '2' is not an integer
commit(-1) ValueError: shmring NAME: commit of -1 bytes with 4 reserved
commit(5) ValueError: shmring NAME: commit of 5 bytes with 4 reserved
view after b'abcd'
commit(2) OK
recv OK b'ab'
reserve(2.0) TypeError: shmring NAME: reserve: n 2.0 is not an integer
reserve('1') TypeError: shmring NAME: reserve: n '1' is not an integer
reserve(-1) ValueError: shmring NAME: reserve of -1 bytes
send OK
recv OK b'z'
create({'capacity': 4096.0}) TypeError nothing made
create({'capacity': 4096, 'readers': 1.0}) TypeError nothing made
create({'capacity': 4096, 'writers': '1'}) TypeError nothing made
create(capacity=60) ValueError
failing close OSError: [Errno 5] injected
slot closed descriptors 0 mappings 0
reservation ValueError: shmring NAME: closed
close again OK
reclaim OK 0
ok
`
	if got != want {
		t.Errorf("pyedge.py args said\n%s\nwant\n%s", got, want)
	}
}

// TestPythonTimeouts: a timeout that is NaN or negative is ValueError,
// one that is not a real number TypeError, in recv, next, send, reserve
// and wait_peer, raised before the call looks at the ring: with a message
// there (not consumed), with room (nothing sent or reserved), with the
// ring empty (no wait). inf waits like None; 0 and 10**400 are timeouts.
//
// Kills (watched): the module before this test ("recv nan OK b'm1'",
// the message consumed, "recv -1 TimeoutError", and a recv(timeout=nan)
// on the empty ring that never ends: "signal: alarm clock" after 30 s);
// recv without the check (the same for recv alone).
func TestPythonTimeouts(t *testing.T) {
	name := pyRing(t, 4096, 1, 1)
	got := pyEdgeOut(t, name, "timeouts", name)
	var want strings.Builder
	for _, op := range []string{"recv", "next", "wait_peer"} {
		want.WriteString(op + " nan ValueError\n" + op + " -1 ValueError\n" + op + " -0.0001 ValueError\n" +
			op + " '1' TypeError\n" + op + " 1j TypeError\n")
	}
	want.WriteString("recv inf OK b'm1'\nrecv nan, empty ValueError\nnext -1, empty ValueError\n")
	for _, op := range []string{"send", "reserve", "wait_peer"} {
		want.WriteString(op + " nan ValueError\n" + op + " -1 ValueError\n" + op + " '1' TypeError\n")
	}
	want.WriteString("within True\nmessages 0 send OK\nrecv 0 OK b'm2'\nrecv 10**400 OK b'm3'\nok\n")
	if got != want.String() {
		t.Errorf("pyedge.py timeouts said\n%s\nwant\n%s", got, want.String())
	}
}
