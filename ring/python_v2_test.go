//go:build linux && cgo

package ring_test

// Python-only tests of ring layout version 2 (many readers, many writers,
// stat, claims): every writer and reader is a testdata/peer.py process, on
// rings that Python creates, so that they prove ring/python/shmring.py's
// end by itself.

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/posixshm/shm"
)

// py3 returns python3's path, skipping t where it is missing.
func py3(t *testing.T) string {
	t.Helper()
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 is not installed")
	}
	return py
}

// pyRing makes a ring of readers x writers slots with capacity bytes per
// lane through Python (peer.py create) and returns its name, unlinked at
// the end of t.
func pyRing(t *testing.T, capacity, readers, writers int) string {
	t.Helper()
	name := ringName(t)
	out, err := exec.Command(py3(t), "testdata/peer.py", "create", name, strconv.Itoa(capacity), strconv.Itoa(readers), strconv.Itoa(writers)).CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "ok" {
		t.Fatalf("peer.py create %s: %v\n%s", name, err, out)
	}
	return name
}

// pyCmd is peer.py with args.
func pyCmd(t *testing.T, args ...string) *exec.Cmd {
	return exec.Command(py3(t), append([]string{"testdata/peer.py"}, args...)...)
}

// pyStdin gives cmd a pipe for its stdin and returns its writing end.
func pyStdin(t *testing.T, cmd *exec.Cmd) io.WriteCloser {
	t.Helper()
	w, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return w
}

// pyLine reads the peer's next line within d.
func pyLine(t *testing.T, p *peer, d time.Duration) string {
	t.Helper()
	type res struct {
		s   string
		err error
	}
	c := make(chan res, 1)
	go func() { s, err := p.out.ReadString('\n'); c <- res{s, err} }()
	select {
	case r := <-c:
		if r.err != nil {
			t.Fatalf("peer's output ended: %q %v\n%s", r.s, r.err, p.stderr)
		}
		return strings.TrimSpace(r.s)
	case <-time.After(d):
		t.Fatalf("no line from the peer within %v\n%s", d, p.stderr)
	}
	return ""
}

// pyExpect reads the peer's next line and fails t unless it starts with prefix.
func pyExpect(t *testing.T, p *peer, prefix string) string {
	t.Helper()
	l := pyLine(t, p, 60*time.Second)
	if !strings.HasPrefix(l, prefix) {
		t.Fatalf("peer said %q, want %q...\n%s", l, prefix, p.stderr)
	}
	return l
}

// seqDone is a seq-read peer's final line: "done EXC TOTAL MAXGAPMS ID:FIRST:LAST:COUNT ...".
type seqDone struct {
	end      string
	total    int
	maxGapMs int
	writers  map[int][3]int // id -> first, last, count
}

func (d seqDone) String() string {
	return fmt.Sprintf("end %s, %d messages, max gap %d ms, writers %v", d.end, d.total, d.maxGapMs, d.writers)
}

// pyDone waits for a seq-read peer's final line.
func pyDone(t *testing.T, p *peer) seqDone {
	t.Helper()
	l := pyExpect(t, p, "done ")
	f := strings.Fields(l)
	if len(f) < 4 {
		t.Fatalf("peer said %q", l)
	}
	d := seqDone{end: f[1], writers: map[int][3]int{}}
	d.total, _ = strconv.Atoi(f[2])
	d.maxGapMs, _ = strconv.Atoi(f[3])
	for _, w := range f[4:] {
		var id, a, b, c int
		if _, err := fmt.Sscanf(w, "%d:%d:%d:%d", &id, &a, &b, &c); err != nil {
			t.Fatalf("peer said %q: %v", l, err)
		}
		d.writers[id] = [3]int{a, b, c}
	}
	return d
}

// wantSeq fails t unless d ended with end and received, of each writer id
// in want, the messages want[id][0]..want[id][1] (each once, in order:
// seq-read checks the order itself), and nothing from any other writer.
func wantSeq(t *testing.T, who string, d seqDone, end string, want map[int][2]int) {
	t.Helper()
	total := 0
	for id, w := range want {
		got, ok := d.writers[id]
		if !ok || got != [3]int{w[0], w[1], w[1] - w[0] + 1} {
			t.Errorf("%s: writer %d: got first:last:count %v, want %d:%d:%d (%v)", who, id, got, w[0], w[1], w[1]-w[0]+1, d)
		}
		total += w[1] - w[0] + 1
	}
	if d.end != end || d.total != total || len(d.writers) != len(want) {
		t.Errorf("%s: %v; want end %s after %d messages from writers %v", who, d, end, total, want)
	}
}

// writerAsleep waits until writer slot w of the ring name announced a
// sleep (its sleep word is 1: it waits for room), within 20 s.
func writerAsleep(t *testing.T, name string, w int) {
	t.Helper()
	asleep(t, name, 512+192*w+128, fmt.Sprintf("writer %d", w))
}

// readerAsleep waits until reader slot r of a ring of writers writer
// slots (and r+1 reader slots or more) announced a sleep (every lane is
// empty), within 20 s.
func readerAsleep(t *testing.T, name string, writers, r int) {
	t.Helper()
	rsz := 128 + 64*((writers+7)/8)
	asleep(t, name, 512+192*writers+rsz*r+64, fmt.Sprintf("reader %d", r))
}

// asleep polls the sleep word at off until it is 1.
func asleep(t *testing.T, name string, off int, who string) {
	t.Helper()
	s, err := shm.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	word, err := s.Uint32(int64(off))
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(20 * time.Second); word.Load() != 1; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s never went to sleep", who)
		}
	}
}

// TestPythonV2FanOut: one Python writer, three Python readers (one by
// next/release) on a 4 KiB fan-out ring: every reader receives all 3000
// messages whole, in order, then EOFError.
//
// Kills (watched): the writer's room counting only reader slot 0's tail
// (readers 1 and 2: "end ValueError, 39 messages", a corrupt record
// where the writer overwrote their place); the writer waking only reader
// slot 0 after publishing ("the stream took 20.8s").
func TestPythonV2FanOut(t *testing.T) {
	name := pyRing(t, 4096, 3, 1)
	var rds []*peer
	for i, zc := range []bool{false, true, false} {
		args := []string{"seq-read", name}
		if zc {
			args = append([]string{"--zc"}, args...)
		}
		p, l := startPeer(t, pyCmd(t, args...), true)
		if l != "ready "+strconv.Itoa(i) {
			t.Fatalf("reader %d: %q, want slot %d", i, l, i)
		}
		rds = append(rds, p)
	}
	const count = 3000
	start := time.Now()
	w, _ := startPeer(t, pyCmd(t, "seq-write", name, "5", strconv.Itoa(count), "200"), true)
	pyExpect(t, w, "ok 0")
	for i, p := range rds {
		wantSeq(t, fmt.Sprintf("reader %d", i), pyDone(t, p), "EOFError", map[int][2]int{5: {0, count - 1}})
	}
	// About 1 s here; a reader missing its wake-ups sleeps out 150 ms
	// each time it catches up: about 20 s.
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("the stream took %v", d)
	}
}

// TestPythonV2ManyWriters: three Python writers to one Python reader on a
// ring of 4 KiB lanes: the reader receives every writer's 1500 messages
// whole and in that writer's order, then EOFError once all three closed;
// while two have closed and the third pauses, the reader waits.
//
// Kills (watched): end of stream once any claimed writer slot is closed
// (the reader ends while writer 2 pauses; writer 2's send then fails:
// "BrokenPipeError: the reader closed its end").
func TestPythonV2ManyWriters(t *testing.T) {
	name := pyRing(t, 4096, 1, 3)
	rd, _ := startPeer(t, pyCmd(t, "seq-read", name), true)
	const count = 1500
	var ws []*peer
	var ins []io.WriteCloser
	for id := range 3 { // all claimed before any sends (else one may finish, close, and end the stream)
		pause := "0"
		if id == 2 {
			pause = "0,700"
		}
		cmd := pyCmd(t, "seq-write", name, strconv.Itoa(id), strconv.Itoa(count), strconv.Itoa(16+40*id), pause)
		ins = append(ins, pyStdin(t, cmd))
		p, _ := startPeer(t, cmd, true)
		pyExpect(t, p, "paused")
		ws = append(ws, p)
	}
	for _, in := range ins {
		io.WriteString(in, "go\n")
	}
	// Writers 0 and 1 finish and close while writer 2 pauses after 700:
	// the reader, every lane empty, waits for writer 2.
	pyExpect(t, ws[0], "ok ")
	pyExpect(t, ws[1], "ok ")
	pyExpect(t, ws[2], "paused")
	readerAsleep(t, name, 3, 0)
	io.WriteString(ins[2], "go\n")
	pyExpect(t, ws[2], "ok ")
	wantSeq(t, "reader", pyDone(t, rd), "EOFError", map[int][2]int{0: {0, count - 1}, 1: {0, count - 1}, 2: {0, count - 1}})
}

// TestPythonV2JoinMidStream: a Python reader that joins a fan-out ring
// while the writer is paused after 150 of 400 messages receives exactly
// messages 150..399; the reader there from the start receives all 400.
//
// Kills (watched): the join keeping the slot's old tails instead of the
// heads (the joiner starts at tail 0, more than a lane behind: "the
// joining reader: end ValueError, 0 messages").
func TestPythonV2JoinMidStream(t *testing.T) {
	name := pyRing(t, 4096, 2, 1)
	a, _ := startPeer(t, pyCmd(t, "seq-read", name), true)
	wcmd := pyCmd(t, "seq-write", name, "9", "400", "80", "150")
	in := pyStdin(t, wcmd)
	w, _ := startPeer(t, wcmd, true)
	pyExpect(t, w, "paused")
	b, _ := startPeer(t, pyCmd(t, "seq-read", name), true)
	io.WriteString(in, "go\n")
	pyExpect(t, w, "ok 0")
	wantSeq(t, "the first reader", pyDone(t, a), "EOFError", map[int][2]int{9: {0, 399}})
	wantSeq(t, "the joining reader", pyDone(t, b), "EOFError", map[int][2]int{9: {150, 399}})
}

// TestPythonV2KillBlockedReader: a Python writer blocked for room by a
// fan-out reader that stopped consuming goes on within 500 ms of that
// reader's kill -9, and the other reader receives everything.
//
// Kills (watched): a fan-out writer that never tests its holding readers'
// locks ("no line from the peer within 500ms"). Seen: 152 ms.
func TestPythonV2KillBlockedReader(t *testing.T) {
	name := pyRing(t, 4096, 2, 1)
	a, _ := startPeer(t, pyCmd(t, "seq-read", name), true)
	b, _ := startPeer(t, pyCmd(t, "seq-read", name, "stop=10"), true)
	const count = 300
	w, _ := startPeer(t, pyCmd(t, "seq-write", name, "1", strconv.Itoa(count), "64"), true)
	pyExpect(t, b, "stopped")
	writerAsleep(t, name, 0)
	start := time.Now()
	b.kill9(t)
	pyLine(t, w, 500*time.Millisecond)
	t.Logf("the writer finished %v after the reader's kill", time.Since(start))
	wantSeq(t, "the live reader", pyDone(t, a), "EOFError", map[int][2]int{1: {0, count - 1}})
}

// TestPythonV2KillReservingWriter: a Python writer killed -9 while it
// holds a reservation (filled, never committed) on a three-writer ring:
// the two other writers' 1000 messages each all reach the reader, whole
// and in order, with no gap of 500 ms or more; the reservation is never
// delivered; the reader then reports PeerGoneError.
//
// Kills (watched): reserve publishing the head (the reader receives the
// reservation before its length is written: "message 0: 0 bytes, shorter
// than a seqmsg"); the reader reporting end of stream while a claimed
// writer slot is dead ("end EOFError ...; want end PeerGoneError").
func TestPythonV2KillReservingWriter(t *testing.T) {
	name := pyRing(t, 4096, 1, 3)
	rd, _ := startPeer(t, pyCmd(t, "seq-read", name), true)
	h, l := startPeer(t, pyCmd(t, "hold-reserve", name, "100"), true)
	if l != "ready 0" {
		t.Fatalf("holder: %q, want slot 0", l)
	}
	const count = 1000
	var ws []*peer
	var ins []io.WriteCloser
	for id := 1; id <= 2; id++ { // both claimed before either sends
		cmd := pyCmd(t, "seq-write", name, strconv.Itoa(id), strconv.Itoa(count), "48", "0")
		ins = append(ins, pyStdin(t, cmd))
		p, _ := startPeer(t, cmd, true)
		pyExpect(t, p, "paused")
		ws = append(ws, p)
	}
	for _, in := range ins {
		io.WriteString(in, "go\n")
	}
	h.kill9(t) // while they send
	d := pyDone(t, rd)
	for _, p := range ws {
		pyExpect(t, p, "ok ")
	}
	wantSeq(t, "reader", d, "PeerGoneError", map[int][2]int{1: {0, count - 1}, 2: {0, count - 1}})
	if d.maxGapMs >= 500 {
		t.Errorf("the reader waited %d ms between two messages", d.maxGapMs)
	}
}

// pyStatScript claims writer slots 0 and 1 and reader slot 1 of a 2x2
// ring whose reader slot 0 another process holds: writer 0 sends five
// 10-byte messages and closes, writer 1 sends three 100-byte messages,
// the reader receives two; it prints stat() as JSON, then again after a
// line on stdin.
const pyStatScript = `import json, sys
sys.path.insert(0, "python")
import shmring

name = sys.argv[1]
w0 = shmring.Ring.open(name).writer()
w1 = shmring.Ring.open(name).writer()
rd = shmring.Ring.open(name).reader()
for i in range(5):
    w0.send(b"0123456789")
w0.close()
for i in range(3):
    w1.send(bytes(100))
if [len(rd.recv(timeout=5)) for i in range(2)] != [10, 100]:
    sys.exit("not one message of each lane in turn")
print(json.dumps(rd.stat()), flush=True)
sys.stdin.readline()
print(json.dumps(w1.stat()), flush=True)
sys.stdin.readline()
`

type pyEnd struct {
	State string `json:"state"`
	Pid   int    `json:"pid"`
}

type pyLane struct {
	Head     uint64 `json:"head"`
	Tail     uint64 `json:"tail"`
	Messages int    `json:"messages"`
	Bytes    int    `json:"bytes"`
	Used     int    `json:"used"`
}

type pyStat struct {
	Lanes      []pyLane `json:"lanes"`
	Capacity   int      `json:"capacity"`
	MaxMessage int      `json:"max_message"`
	Messages   int      `json:"messages"`
	Bytes      int      `json:"bytes"`
	Used       int      `json:"used"`
	Writers    []pyEnd  `json:"writers"`
	Readers    []pyEnd  `json:"readers"`
}

// TestPythonV2Stat: Python's stat() against a known backlog on a 2x2
// ring: reader slot 0 (another process) consumed nothing, reader slot 1
// two messages; lane 0 holds five 10-byte messages (its writer closed),
// lane 1 three of 100 bytes. Stat counts from the slowest holding reader:
// 8 messages, 350 bytes, 456 lane bytes; once reader 0 is killed, it is
// "dead" and holds nothing: 6 messages, 240 bytes, 336 lane bytes. The
// looking process's own slots are "open", pids are the claimants'; a
// peer.py stat process (claiming nothing) sees the same.
//
// Kills (watched): a dead reader still holding (after the kill:
// "Messages:8 ...; want ... messages 6"); the backlog from the fastest
// reader ("Messages:6 ...; want ... messages 8"); the looker's own slot
// judged by its lock (its reader slot "dead").
func TestPythonV2Stat(t *testing.T) {
	name := pyRing(t, 4096, 2, 2)
	hold, _ := startPeer(t, pyCmd(t, "hold-reader", name), true)
	cmd := exec.Command(py3(t), "-c", pyStatScript, name)
	in := pyStdin(t, cmd)
	sp, _ := startPeer(t, cmd, false)
	me, them := cmd, hold.cmd
	parse := func(l string) pyStat {
		var s pyStat
		if err := json.Unmarshal([]byte(l), &s); err != nil {
			t.Fatalf("stat printed %q: %v\n%s", l, err, sp.stderr)
		}
		return s
	}
	check := func(what string, s pyStat, msgs, bytes, used int, r0 string) {
		t.Helper()
		// lane 0: five 10-byte records of 24 bytes, reader 1 consumed one;
		// lane 1: three 100-byte records of 112 bytes, reader 1 consumed one
		lanes := []pyLane{{120, 0, 5, 50, 120}, {336, 0, 3, 300, 336}}
		if r0 == "dead" {
			lanes = []pyLane{{120, 24, 4, 40, 96}, {336, 112, 2, 200, 224}}
		}
		if fmt.Sprint(s.Lanes) != fmt.Sprint(lanes) {
			t.Errorf("%s: lanes %+v, want %+v", what, s.Lanes, lanes)
		}
		if s.Capacity != 4096 || s.MaxMessage != 2040 || s.Messages != msgs || s.Bytes != bytes || s.Used != used {
			t.Errorf("%s: %+v; want capacity 4096, max message 2040, messages %d, bytes %d, used %d", what, s, msgs, bytes, used)
		}
		wantW := []pyEnd{{"closed", me.Process.Pid}, {"open", me.Process.Pid}}
		wantR := []pyEnd{{r0, them.Process.Pid}, {"open", me.Process.Pid}}
		if fmt.Sprint(s.Writers) != fmt.Sprint(wantW) || fmt.Sprint(s.Readers) != fmt.Sprint(wantR) {
			t.Errorf("%s: writers %v readers %v; want %v %v", what, s.Writers, s.Readers, wantW, wantR)
		}
	}
	looker := func() pyStat {
		out, err := pyCmd(t, "stat", name).CombinedOutput()
		if err != nil {
			t.Fatalf("peer.py stat: %v\n%s", err, out)
		}
		return parse(string(out))
	}
	check("the reader's stat", parse(pyLine(t, sp, 30*time.Second)), 8, 350, 5*24+3*112, "open")
	check("a looker's stat", looker(), 8, 350, 5*24+3*112, "open")
	hold.kill9(t)
	io.WriteString(in, "\n")
	check("the writer's stat after reader 0's death", parse(pyLine(t, sp, 30*time.Second)), 6, 240, 4*24+2*112, "dead")
	check("a looker's stat after reader 0's death", looker(), 6, 240, 4*24+2*112, "dead")
}

// TestPythonV2ClaimRace: six Python processes race for the three reader
// slots, then six for the three writer slots, of a 3x3 ring: exactly
// three win each time, one per slot, and the others get BusyError.
//
// Kills (watched): a claim that takes EAGAIN from F_OFD_SETLK as slot 0
// won ("map[won 0:6] won, 0 busy").
func TestPythonV2ClaimRace(t *testing.T) {
	name := pyRing(t, 4096, 3, 3)
	for _, kind := range []string{"reader", "writer"} {
		var ps []*peer
		for range 6 {
			p, _ := startPeer(t, pyCmd(t, "claim-hold", name, kind), false)
			ps = append(ps, p)
		}
		won := map[string]int{}
		busy := 0
		for _, p := range ps {
			switch l := pyLine(t, p, 30*time.Second); {
			case strings.HasPrefix(l, "won "):
				won[l]++
			case l == "busy":
				busy++
			default:
				t.Fatalf("claim of a %s: %q", kind, l)
			}
		}
		if len(won) != 3 || busy != 3 || won["won 0"] != 1 || won["won 1"] != 1 || won["won 2"] != 1 {
			t.Errorf("%s slots: %v won, %d busy; want won 0, 1 and 2 once each, 3 busy", kind, won, busy)
		}
		for _, p := range ps {
			p.kill9(t)
		}
	}
}

// TestPythonV2RefusesVersion1: a version-1 ring's header (the first
// generation's: magic, version 1, header size 512, capacity 4096) is
// refused by Ring.open with ValueError naming the version found.
//
// Kills (watched): open without the version check ("0 readers, 0
// writers: want 1 to 64 of each", not naming version 1).
func TestPythonV2RefusesVersion1(t *testing.T) {
	name := ringName(t)
	s, err := shm.Create(name, 512+4096)
	if err != nil {
		t.Fatal(err)
	}
	b := s.Bytes()
	binary.LittleEndian.PutUint32(b[8:], 1)
	binary.LittleEndian.PutUint32(b[12:], 512)
	binary.LittleEndian.PutUint64(b[16:], 4096)
	binary.LittleEndian.PutUint64(b[24:], 4096/2-8)
	copy(b, "SHMRING\x00")
	s.Close()
	out, err := exec.Command(py3(t), "-c", `import sys
sys.path.insert(0, "python")
import shmring
try:
    shmring.Ring.open(sys.argv[1])
except ValueError as e:
    print(e)
`, name).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "version 1") {
		t.Fatalf("Ring.open of a version-1 ring: %v %q; want ValueError naming version 1", err, out)
	}
	t.Logf("%s", out)
}

// TestPythonV2ZeroCopyFanOut: on a fan-out ring, reader 0 holds its
// first message's view from next() (not released) while reader 1 reads
// on by next/release and the writer fills the lane and blocks: the held
// view still reads the first message; once released (and refused after),
// both readers receive all 500 messages through their views.
//
// Kills (watched): the writer's room not counting reader slot 0 (the
// held view is overwritten: "the held view changed under it").
func TestPythonV2ZeroCopyFanOut(t *testing.T) {
	name := pyRing(t, 4096, 2, 1)
	acmd := pyCmd(t, "--zc", "seq-read", name, "hold")
	in := pyStdin(t, acmd)
	a, _ := startPeer(t, acmd, true)
	b, _ := startPeer(t, pyCmd(t, "--zc", "seq-read", name), true)
	const count = 500
	w, _ := startPeer(t, pyCmd(t, "seq-write", name, "3", strconv.Itoa(count), "200"), true)
	pyExpect(t, a, "holding")
	// Until the writer waits for room, or (wrongly) published past the lane's
	// end, over the held message at offset 0.
	seg, err := shm.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer seg.Close()
	sleep, _ := seg.Uint32(512 + 128)
	head, _ := seg.Uint64(512 + 64)
	for deadline := time.Now().Add(20 * time.Second); sleep.Load() != 1 && head.Load() <= 4096; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the writer neither waited for room nor passed the lane's end")
		}
	}
	io.WriteString(in, "\n")
	pyExpect(t, w, "ok 0")
	wantSeq(t, "the holding reader", pyDone(t, a), "EOFError", map[int][2]int{3: {0, count - 1}})
	wantSeq(t, "the other reader", pyDone(t, b), "EOFError", map[int][2]int{3: {0, count - 1}})
}

// pyWaitPeer claims a slot of kind argv[2] and waits for a peer of the
// other kind: none (TimeoutError), one that a process claims, then (after
// a line on stdin) one that was killed (TimeoutError again).
const pyWaitPeer = `import sys
sys.path.insert(0, "python")
import shmring

r = shmring.Ring.open(sys.argv[1])
(r.writer if sys.argv[2] == "writer" else r.reader)()
try:
    r.wait_peer(timeout=0.2)
    sys.exit("wait_peer with no peer returned")
except TimeoutError:
    pass
print("waiting", flush=True)
r.wait_peer(timeout=30)
print("peer", flush=True)
sys.stdin.readline()
try:
    r.wait_peer(timeout=0.3)
    sys.exit("wait_peer with only a dead peer returned")
except TimeoutError:
    pass
print("ok", flush=True)
`

// TestPythonV2WaitPeer: Python's wait_peer, for a writer on a fan-out
// ring and for a reader on a many-writer ring, times out with no peer,
// returns once another process claims a slot of the other kind, and
// times out again once that process was killed -9.
//
// Kills (watched): wait_peer judging by the state word alone ("wait_peer
// with only a dead peer returned").
func TestPythonV2WaitPeer(t *testing.T) {
	for _, kind := range []string{"writer", "reader"} {
		t.Run(kind, func(t *testing.T) {
			name := pyRing(t, 4096, 2, 2)
			cmd := exec.Command(py3(t), "-c", pyWaitPeer, name, kind)
			in := pyStdin(t, cmd)
			w, _ := startPeer(t, cmd, false)
			pyExpect(t, w, "waiting")
			other := map[string]string{"writer": "hold-reader", "reader": "hold-writer"}[kind]
			p, _ := startPeer(t, pyCmd(t, other, name), true)
			pyExpect(t, w, "peer")
			p.kill9(t)
			io.WriteString(in, "\n")
			pyExpect(t, w, "ok")
		})
	}
}

// TestPythonV2DroppedRing: a Ring dropped without close() gives up its
// descriptor when collected, and so its claim's lock: three writers
// claimed and dropped in turn each get the one writer slot, no
// descriptor is left behind, and the slot reads dead (as a dead process's:
// its state word untouched), so that a reader sees PeerGoneError. A Ring
// inherited through fork and dropped in the child leaves the parent's
// claim alone.
func TestPythonV2DroppedRing(t *testing.T) {
	name := pyRing(t, 4096, 1, 1)
	out, err := exec.Command(py3(t), "-c", `import gc, os, sys
sys.path.insert(0, "python")
import shmring
name = sys.argv[1]
def fds():
    return len(os.listdir("/proc/self/fd"))
before = fds()
def claim():
    shmring.Ring.open(name).writer()  # dropped without close
for i in range(3):
    try:
        claim()
        print("claim", i, "ok")
    except Exception as e:
        print("claim", i, type(e).__name__)
gc.collect()
print("fds", fds() - before)
rd = shmring.Ring.open(name).reader()
print("state", rd.stat()["writers"][0]["state"])
try:
    rd.recv(timeout=5)
    print("recv ok")
except Exception as e:
    print("recv", type(e).__name__)
rd.close()
w = shmring.Ring.open(name).writer()
pid = os.fork()
if pid == 0:
    del w
    gc.collect()
    os._exit(0)
os.waitpid(pid, 0)
try:
    shmring.Ring.open(name).writer()
    print("after fork: claimed")
except Exception as e:
    print("after fork:", type(e).__name__, shmring.Ring.open(name).stat()["writers"][0]["state"])
w.close()
`, name).CombinedOutput()
	if err != nil {
		t.Fatalf("python: %v\n%s", err, out)
	}
	want := "claim 0 ok\nclaim 1 ok\nclaim 2 ok\nfds 0\nstate dead\nrecv PeerGoneError\nafter fork: BusyError open\n"
	if string(out) != want {
		t.Errorf("dropped Rings said\n%s\nwant\n%s", out, want)
	}
}

// TestPythonV2CorruptReaderState: a reader state word whose low byte is
// beyond 2 (LAYOUT.md §2) is a corrupt ring to a writer computing its
// room, ValueError as C's EPROTO: in a fan-out ring (where the word
// decides whether the slot holds) and in a one-reader ring whose full lane
// blocks the writer.
func TestPythonV2CorruptReaderState(t *testing.T) {
	for _, readers := range []int{2, 1} {
		t.Run(strconv.Itoa(readers), func(t *testing.T) {
			name := pyRing(t, 4096, readers, 1)
			out, err := exec.Command(py3(t), "-c", `import mmap, os, struct, sys
sys.path.insert(0, "python")
import shmring
name, readers = sys.argv[1], int(sys.argv[2])
rd = shmring.Ring.open(name).reader()  # reader slot 0, holding
w = shmring.Ring.open(name).writer()
if readers == 1:  # fill the lane: the next send waits for room
    while True:
        try:
            w.send(b"x" * 100, timeout=0)
        except TimeoutError:
            break
rs, rsz, d = shmring.layout(readers, 1)
fd = os.open("/dev/shm" + name, os.O_RDWR)
mm = mmap.mmap(fd, d)
off = rs + rsz * (readers - 1) + shmring.R_STATE  # the last reader slot's state word
word = struct.unpack_from("<I", mm, off)[0]
struct.pack_into("<I", mm, off, (word & ~0xFF) | 3)
try:
    w.send(b"y" * 100, timeout=1)
    print("sent")
except Exception as e:
    print(type(e).__name__, e)
struct.pack_into("<I", mm, off, word)
mm.close()
os.close(fd)
w.close()
rd.close()
`, name, strconv.Itoa(readers)).CombinedOutput()
			if err != nil {
				t.Fatalf("python: %v\n%s", err, out)
			}
			t.Logf("%s", out)
			if !strings.HasPrefix(string(out), "ValueError") || !strings.Contains(string(out), "corrupt") {
				t.Errorf("a send with reader state word 3: %q; want ValueError naming a corrupt ring", out)
			}
		})
	}
}
