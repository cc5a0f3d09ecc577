//go:build linux && cgo

package ring_test

// C-only tests of layout version 2 (LAYOUT.md): rings made, written and
// read by C processes (testdata/peer.c on c/shmring.h), so that they prove
// the C end by itself, 64-bit, -m32 and musl.

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/posixshm/shm"
)

var allCCs = []string{"gcc", "gcc -m32", "musl-gcc"}

// cBins builds peer.c with every compiler of allCCs that works here, in
// subtests (a missing compiler skips its own), and returns the binaries;
// t is skipped if none does.
func cBins(t *testing.T) (bins []string, names []string) {
	t.Helper()
	for _, cc := range allCCs {
		var bin string
		t.Run("build-"+strings.ReplaceAll(cc, " ", ""), func(t *testing.T) { bin = buildPeer(t, cc) })
		if bin != "" {
			bins, names = append(bins, bin), append(names, cc)
		}
	}
	if len(bins) == 0 {
		t.Skip("no C compiler builds peer.c here")
	}
	return bins, names
}

// forEachCC runs f in a subtest per compiler of allCCs, with peer.c built
// by it (a compiler missing here skips its subtest).
func forEachCC(t *testing.T, f func(t *testing.T, bin string)) {
	for _, cc := range allCCs {
		t.Run(strings.ReplaceAll(cc, " ", ""), func(t *testing.T) { f(t, buildPeer(t, cc)) })
	}
}

// cCreate makes a ring of r readers and w writers with C's
// shmring_create_with, unlinked at the end of t, and returns its name.
func cCreate(t *testing.T, bin string, capacity, r, w int) string {
	t.Helper()
	name := ringName(t)
	out, err := exec.Command(bin, "create-with", name, strconv.Itoa(capacity), strconv.Itoa(r), strconv.Itoa(w)).CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "ok" {
		t.Fatalf("create-with %s: %v: %s", name, err, out)
	}
	return name
}

// cStart starts the C peer bin with args and waits for its "ready SLOT"
// line; it returns the peer and its slot.
func cStart(t *testing.T, bin string, args ...string) (*peer, int) {
	t.Helper()
	p, line := startPeer(t, exec.Command(bin, args...), true)
	slot, err := strconv.Atoi(strings.TrimPrefix(line, "ready "))
	if err != nil {
		t.Fatalf("%v said %q", args, line)
	}
	return p, slot
}

// cStartIn is cStart with a pipe to the peer's stdin, not waiting for ready.
func cStartIn(t *testing.T, bin string, ready bool, args ...string) (*peer, io.WriteCloser, string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	p, line := startPeer(t, cmd, ready)
	return p, in, line
}

// cWriters starts C seq-write peers (args after the ring's name, one
// slice each, ID first) paused before their first message, so that every
// one has claimed its slot before any closes (a reader ends its stream
// once every writer slot ever claimed is closed), then lets them all go.
func cWriters(t *testing.T, bins []string, name string, args ...[]string) []*peer {
	t.Helper()
	var ps []*peer
	var ins []io.WriteCloser
	for i, a := range args {
		p, in, line := cStartIn(t, bins[i%len(bins)], true, append([]string{"seq-write", name}, append(a, "pause=0")...)...)
		if !strings.HasPrefix(line, "ready ") {
			t.Fatalf("writer %v: %q", a, line)
		}
		if l := nextLine(t, p, 10*time.Second); l != "paused 0" {
			t.Fatalf("writer %v: %q", a, l)
		}
		ps, ins = append(ps, p), append(ins, in)
	}
	for _, in := range ins {
		io.WriteString(in, "go\n")
	}
	return ps
}

// nextLine returns the peer's next line of output, failing t if none
// comes within d.
func nextLine(t *testing.T, p *peer, d time.Duration) string {
	t.Helper()
	ch := make(chan string, 1)
	go func() {
		line, err := p.out.ReadString('\n')
		if err != nil && line == "" {
			line = "(" + err.Error() + ")"
		}
		ch <- strings.TrimSpace(line)
	}()
	select {
	case line := <-ch:
		return line
	case <-time.After(d):
		t.Fatalf("no line from %v within %v\nstderr: %s", p.cmd.Args[1:], d, p.stderr)
		return ""
	}
}

// finish waits up to d for the peer to exit cleanly and returns its
// remaining output, trimmed.
func finishPeer(t *testing.T, p *peer, d time.Duration) string {
	t.Helper()
	type res struct {
		out string
		err error
	}
	ch := make(chan res, 1)
	go func() { out, err := p.wait(); ch <- res{out, err} }()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatalf("%v: %v\nstdout: %s\nstderr: %s", p.cmd.Args[1:], r.err, r.out, p.stderr)
		}
		return strings.TrimSpace(r.out)
	case <-time.After(d):
		p.cmd.Process.Kill()
		t.Fatalf("%v did not finish within %v\nstderr: %s", p.cmd.Args[1:], d, p.stderr)
		return ""
	}
}

// seqEnd is a seq-read peer's last line: "end ERR total=T ids=ID:FIRST:LAST,...".
type seqEnd struct {
	err   string
	total int
	ids   map[uint32][2]uint64
	order []uint32
}

var endRE = regexp.MustCompile(`^end (\S+) total=(\d+) ids=(\S*)$`)

func parseEnd(t *testing.T, out string) seqEnd {
	t.Helper()
	lines := strings.Split(out, "\n")
	m := endRE.FindStringSubmatch(lines[len(lines)-1])
	if m == nil {
		t.Fatalf("the reader ended with %q", out)
	}
	e := seqEnd{err: m[1], ids: map[uint32][2]uint64{}}
	e.total, _ = strconv.Atoi(m[2])
	for _, f := range strings.Split(m[3], ",") {
		if f == "" {
			continue
		}
		var id uint32
		var first, last uint64
		if _, err := fmt.Sscanf(f, "%d:%d:%d", &id, &first, &last); err != nil {
			t.Fatalf("bad ids field %q in %q", f, out)
		}
		e.ids[id] = [2]uint64{first, last}
		e.order = append(e.order, id)
	}
	return e
}

// want checks that the reader got exactly the streams want (id → first,
// last) and ended with err.
func (e seqEnd) want(t *testing.T, who, err string, want map[uint32][2]uint64) {
	t.Helper()
	if e.err != err {
		t.Errorf("%s ended with %s, want %s", who, e.err, err)
	}
	total := 0
	for id, w := range want {
		total += int(w[1] - w[0] + 1)
		if g, ok := e.ids[id]; !ok || g != w {
			t.Errorf("%s: stream %d: got messages %v (present %v), want %d to %d", who, id, g, ok, w[0], w[1])
		}
	}
	if len(e.ids) != len(want) || e.total != total {
		t.Errorf("%s: got %d messages of streams %v, want %d of %d streams", who, e.total, e.order, total, len(want))
	}
}

// TestCV2FanOut: one C writer, four C readers (fan-out): each reader gets
// every message, whole, in order, then the end of stream; per compiler,
// and with the four readers built by different compilers.
func TestCV2FanOut(t *testing.T) {
	bins, names := cBins(t)
	const count = 4000
	run := func(t *testing.T, w string, rs []string) {
		name := cCreate(t, w, 4096, 4, 1)
		var readers []*peer
		slots := map[int]bool{}
		for i, b := range rs {
			args := []string{"seq-read", name, "from0"}
			if i%2 == 1 {
				args = append(args, "mix") // next/release and batches
			}
			p, slot := cStart(t, b, args...)
			readers = append(readers, p)
			slots[slot] = true
		}
		if len(slots) != 4 {
			t.Fatalf("the four readers claimed slots %v", slots)
		}
		wp, _ := cStart(t, w, "seq-write", name, "7", strconv.Itoa(count), "mix")
		if out := finishPeer(t, wp, 30*time.Second); !strings.HasPrefix(out, "ok 0 "+strconv.Itoa(count)) {
			t.Fatalf("writer: %q", out)
		}
		for i, p := range readers {
			parseEnd(t, finishPeer(t, p, 10*time.Second)).want(t, fmt.Sprintf("reader %d", i), "EPIPE", map[uint32][2]uint64{7: {0, count - 1}})
		}
	}
	for i, b := range bins {
		t.Run(strings.ReplaceAll(names[i], " ", ""), func(t *testing.T) { run(t, b, []string{b, b, b, b}) })
	}
	if len(bins) > 1 {
		t.Run("mixed", func(t *testing.T) {
			run(t, bins[len(bins)-1], []string{bins[0], bins[1%len(bins)], bins[2%len(bins)], bins[0]})
		})
	}
}

// TestCV2ManyWriters: four C writers to one C reader: every writer's
// messages arrive whole, in its order, none lost; the end of stream comes
// after the last writer closed.
func TestCV2ManyWriters(t *testing.T) {
	bins, names := cBins(t)
	const count = 3000
	for i, b := range bins {
		t.Run(strings.ReplaceAll(names[i], " ", ""), func(t *testing.T) {
			name := cCreate(t, b, 4096, 1, 4)
			rd, _ := cStart(t, b, "seq-read", name, "from0", "mix")
			var args [][]string
			want := map[uint32][2]uint64{}
			for id := 1; id <= 4; id++ {
				args = append(args, []string{strconv.Itoa(id), strconv.Itoa(count), []string{"plain", "mix"}[id%2]})
				want[uint32(id)] = [2]uint64{0, count - 1}
			}
			ws := cWriters(t, append(bins[i:], bins[:i]...), name, args...) // the other compilers' writers too
			for _, p := range ws {
				if out := finishPeer(t, p, 30*time.Second); !strings.HasPrefix(out, "ok ") {
					t.Fatalf("writer: %q", out)
				}
			}
			parseEnd(t, finishPeer(t, rd, 10*time.Second)).want(t, "reader", "EPIPE", want)
		})
	}
}

// TestCV2ThreeByThree: three C writers and three C readers (each built by
// another compiler where there are several) in one ring: every reader gets
// every writer's messages, in each writer's order.
func TestCV2ThreeByThree(t *testing.T) {
	bins, _ := cBins(t)
	const count = 2500
	name := cCreate(t, bins[0], 8192, 3, 3)
	var rs []*peer
	for i := range 3 {
		p, _ := cStart(t, bins[i%len(bins)], "seq-read", name, "from0", []string{"mix", "plain"}[i%2])
		rs = append(rs, p)
	}
	want := map[uint32][2]uint64{}
	var args [][]string
	for i := range 3 {
		id := 100 + i
		args = append(args, []string{strconv.Itoa(id), strconv.Itoa(count), []string{"mix", "plain"}[i%2]})
		want[uint32(id)] = [2]uint64{0, count - 1}
	}
	ws := cWriters(t, append(bins[1:], bins[0]), name, args...)
	for _, p := range ws {
		if out := finishPeer(t, p, 30*time.Second); !strings.HasPrefix(out, "ok ") {
			t.Fatalf("writer: %q", out)
		}
	}
	for i, p := range rs {
		parseEnd(t, finishPeer(t, p, 10*time.Second)).want(t, fmt.Sprintf("reader %d", i), "EPIPE", want)
	}
}

// TestCV2JoinMidStream: a C reader that claims a fan-out slot while the
// writer has published 1,000 messages (and the other reader has not
// necessarily read them) starts at the next one published: it gets
// exactly messages 1,000 to the end, the first reader all of them.
func TestCV2JoinMidStream(t *testing.T) {
	forEachCC(t, func(t *testing.T, bin string) {
		const count, half = 2000, 1000
		name := cCreate(t, bin, 4096, 2, 1)
		a, _ := cStart(t, bin, "seq-read", name, "from0")
		w, win, line := cStartIn(t, bin, true, "seq-write", name, "5", strconv.Itoa(count), "pause="+strconv.Itoa(half))
		if line != "ready 0" {
			t.Fatalf("writer: %q", line)
		}
		if l := nextLine(t, w, 10*time.Second); l != "paused 1000" {
			t.Fatalf("writer: %q", l)
		}
		b, _ := cStart(t, bin, "seq-read", name)
		io.WriteString(win, "go\n")
		if out := finishPeer(t, w, 30*time.Second); !strings.HasPrefix(out, "ok 0 2000") {
			t.Fatalf("writer: %q", out)
		}
		parseEnd(t, finishPeer(t, a, 10*time.Second)).want(t, "the first reader", "EPIPE", map[uint32][2]uint64{5: {0, count - 1}})
		parseEnd(t, finishPeer(t, b, 10*time.Second)).want(t, "the reader that joined", "EPIPE", map[uint32][2]uint64{5: {half, count - 1}})
	})
}

// TestCV2KillBlockedReader: a C writer blocked for room by a C reader
// that reads nothing goes on within 500 ms of that reader's kill -9 in a
// fan-out ring (the other reader still gets everything), and gets
// EOWNERDEAD within 500 ms with one reader slot.
func TestCV2KillBlockedReader(t *testing.T) {
	forEachCC(t, func(t *testing.T, bin string) {
		t.Run("fan-out", func(t *testing.T) {
			name := cCreate(t, bin, 4096, 2, 1)
			hold, _ := startPeer(t, exec.Command(bin, "hold-reader", name), true)
			f, _ := cStart(t, bin, "seq-read", name, "from0")
			w, _ := cStart(t, bin, "seq-write", name, "9", "3000", "report")
			if l := nextLine(t, w, 10*time.Second); !strings.HasPrefix(l, "blocked ") {
				t.Fatalf("writer: %q", l)
			}
			hold.kill9(t)
			t0 := time.Now()
			l := nextLine(t, w, 5*time.Second)
			if d := time.Since(t0); !strings.HasPrefix(l, "unblocked ") || d > 500*time.Millisecond {
				t.Fatalf("writer said %q %v after the blocking reader's death, want unblocked within 500 ms", l, d)
			} else {
				t.Logf("writer went on %v after the kill", d)
			}
			if out := finishPeer(t, w, 30*time.Second); !strings.HasPrefix(out, "ok 0 3000") {
				t.Fatalf("writer: %q", out)
			}
			parseEnd(t, finishPeer(t, f, 10*time.Second)).want(t, "the live reader", "EPIPE", map[uint32][2]uint64{9: {0, 2999}})
		})
		t.Run("one-reader", func(t *testing.T) {
			name := cCreate(t, bin, 4096, 1, 1)
			hold, _ := startPeer(t, exec.Command(bin, "hold-reader", name), true)
			w, _ := cStart(t, bin, "seq-write", name, "9", "3000", "report")
			if l := nextLine(t, w, 10*time.Second); !strings.HasPrefix(l, "blocked ") {
				t.Fatalf("writer: %q", l)
			}
			hold.kill9(t)
			t0 := time.Now()
			l := nextLine(t, w, 5*time.Second)
			if d := time.Since(t0); !strings.HasPrefix(l, "error EOWNERDEAD ") || d > 500*time.Millisecond {
				t.Fatalf("writer said %q %v after its reader's death, want EOWNERDEAD within 500 ms", l, d)
			}
		})
	})
}

// TestCV2KillReservingWriter: a C writer killed -9 between shmring_reserve
// and shmring_commit (its message filled in place) never has that message
// delivered; the other writer's sends never wait over 500 ms, a new
// writer continues the dead one's lane, and the reader gets everything
// committed, in order.
func TestCV2KillReservingWriter(t *testing.T) {
	forEachCC(t, func(t *testing.T, bin string) {
		name := cCreate(t, bin, 4096, 1, 2)
		rd, _ := cStart(t, bin, "seq-read", name, "from0")
		a, ain, line := cStartIn(t, bin, true, "seq-write", name, "1", "6000", "pause=3000", "stall=500")
		if line != "ready 0" {
			t.Fatalf("writer A: %q", line)
		}
		b, bslot := cStart(t, bin, "hold-reserve", name, "100", "5")
		if bslot != 1 {
			t.Fatalf("the reserving writer claimed slot %d, want 1", bslot)
		}
		if l := nextLine(t, a, 10*time.Second); l != "paused 3000" {
			t.Fatalf("writer A: %q", l)
		}
		b.kill9(t)
		// The reader's lanes are empty, one writer slot is dead and the other
		// writer lives (paused): the reader must go on waiting, past the
		// 150-300 ms in which it finds the dead one.
		time.Sleep(400 * time.Millisecond)
		select {
		case <-rd.done:
			t.Fatalf("the reader ended while a writer lives: %v\n%s", rd.err, rd.stderr)
		default:
		}
		c, cslot := cStart(t, bin, "seq-write", name, "101", "300")
		if cslot != 1 {
			t.Fatalf("the next writer claimed slot %d, want the dead one's, 1", cslot)
		}
		if out := finishPeer(t, c, 30*time.Second); !strings.HasPrefix(out, "ok 1 300") {
			t.Fatalf("writer C: %q", out)
		}
		io.WriteString(ain, "go\n")
		out := finishPeer(t, a, 30*time.Second)
		if !strings.HasPrefix(out, "ok 0 6000") {
			t.Fatalf("writer A: %q", out)
		}
		t.Logf("writer A: %s", out)
		parseEnd(t, finishPeer(t, rd, 10*time.Second)).want(t, "reader", "EPIPE", map[uint32][2]uint64{1: {0, 5999}, 100: {0, 4}, 101: {0, 299}})
	})
}

// TestCV2KillCampaign: hundreds of kill -9s of random C writers and readers
// of a 3x3 ring (each replaced at once, but every 50th, a reader, after
// 700 ms), at random points of their
// streams (reserve/commit, batches, next/release included): no reader ever
// gets a torn, reordered or duplicated message or a gap in a stream (each
// checks its own), no writer's send waits over 500 ms, and at the end
// three last writers' streams reach every reader whole.
func TestCV2KillCampaign(t *testing.T) {
	bins, _ := cBins(t)
	kills := 500
	if testing.Short() {
		kills = 100
	}
	name := cCreate(t, bins[0], 8192, 3, 3)
	type proc struct {
		p      *peer
		writer bool
	}
	nextID := 1
	start := func(writer bool, i int) *peer {
		b := bins[rand.IntN(len(bins))]
		if writer {
			nextID++
			p, _ := cStart(t, b, "seq-write", name, strconv.Itoa(nextID), "1000000000000", "mix", "stall=500")
			return p
		}
		p, _ := cStart(t, b, "seq-read", name, "mix")
		return p
	}
	var procs []proc
	for i := range 6 {
		procs = append(procs, proc{start(i < 3, i), i < 3})
	}
	t0 := time.Now()
	for k := range kills {
		i := rand.IntN(len(procs))
		if k%50 == 49 {
			i = 3 + rand.IntN(3) // a reader, whose slot stays dead a while (below)
		}
		// Let the ring run a moment: this picks the kill's point in the
		// victim's stream, it synchronizes nothing.
		time.Sleep(time.Duration(rand.IntN(8000)) * time.Microsecond)
		procs[i].p.kill9(t)
		if k%50 == 49 {
			// The writers must go past a dead reader that nobody
			// replaces, within 500 ms (stall=500), not only past one
			// whose slot is claimed again at once.
			time.Sleep(700 * time.Millisecond)
		}
		procs[i].p = start(procs[i].writer, i)
		if t.Failed() {
			t.Fatalf("after %d kills", k)
		}
	}
	// The last writers: each writer killed and replaced by one paused
	// before its first message (the other two live meanwhile, so the
	// readers wait), then all three go: three streams sent whole and
	// closed, which every reader (all claimed before) gets.
	want := map[uint32][2]uint64{}
	var last []*peer
	var ins []io.WriteCloser
	for i := range procs {
		if !procs[i].writer {
			continue
		}
		procs[i].p.kill9(t)
		id := 9001 + len(last)
		p, in, _ := cStartIn(t, bins[i%len(bins)], true, "seq-write", name, strconv.Itoa(id), "500", "mix", "stall=500", "pause=0")
		if l := nextLine(t, p, 10*time.Second); l != "paused 0" {
			t.Fatalf("last writer: %q", l)
		}
		last, ins = append(last, p), append(ins, in)
		want[uint32(id)] = [2]uint64{0, 499}
	}
	for _, in := range ins {
		io.WriteString(in, "go\n")
	}
	for _, p := range last {
		if out := finishPeer(t, p, 30*time.Second); !strings.HasPrefix(out, "ok ") {
			t.Fatalf("last writer: %q", out)
		}
	}
	for i, pr := range procs {
		if pr.writer {
			continue
		}
		e := parseEnd(t, finishPeer(t, pr.p, 10*time.Second))
		if e.err != "EPIPE" {
			t.Errorf("reader %d ended with %s, want EPIPE", i, e.err)
		}
		for id, w := range want {
			if g := e.ids[id]; g != w {
				t.Errorf("reader %d: last stream %d: got messages %v, want %v", i, id, g, w)
			}
		}
	}
	t.Logf("%d kills in %v (writers started: %d)", kills+3, time.Since(t0), nextID-1)
}

// TestCV2KillWritersOneReader: hundreds of kill -9s of random C writers of
// a ring of three writer slots and one reader slot, each replaced at once
// by a writer that continues the dead one's lane (over what it had
// reserved and not committed); one C reader lives throughout and gets
// every writer's stream from its first message, in order, whole, without
// a gap, and the three last writers' streams to their end.
func TestCV2KillWritersOneReader(t *testing.T) {
	bins, _ := cBins(t)
	kills := 200
	if testing.Short() {
		kills = 50
	}
	name := cCreate(t, bins[0], 8192, 1, 3)
	rd, _ := cStart(t, bins[len(bins)-1], "seq-read", name, "from0", "mix")
	nextID := 1
	start := func(extra ...string) (*peer, io.WriteCloser) {
		nextID++
		p, in, line := cStartIn(t, bins[rand.IntN(len(bins))], true, append([]string{"seq-write", name, strconv.Itoa(nextID)}, extra...)...)
		if !strings.HasPrefix(line, "ready ") {
			t.Fatalf("writer: %q", line)
		}
		return p, in
	}
	var ws []*peer
	for range 3 {
		p, _ := start("1000000000000", "mix", "stall=500")
		ws = append(ws, p)
	}
	for k := range kills {
		i := rand.IntN(len(ws))
		// Let the ring run a moment: this picks the kill's point in the
		// victim's stream, it synchronizes nothing.
		time.Sleep(time.Duration(rand.IntN(5000)) * time.Microsecond)
		ws[i].kill9(t)
		ws[i], _ = start("1000000000000", "mix", "stall=500")
		if t.Failed() {
			t.Fatalf("after %d kills", k)
		}
	}
	// The last writers, paused until all three claimed (the others live
	// meanwhile), then sent whole and closed.
	want := map[uint32][2]uint64{}
	var ins []io.WriteCloser
	for i := range ws {
		ws[i].kill9(t)
		var in io.WriteCloser
		ws[i], in = start("300", "mix", "stall=500", "pause=0")
		if l := nextLine(t, ws[i], 10*time.Second); l != "paused 0" {
			t.Fatalf("last writer: %q", l)
		}
		ins = append(ins, in)
		want[uint32(nextID)] = [2]uint64{0, 299}
	}
	for _, in := range ins {
		io.WriteString(in, "go\n")
	}
	for _, p := range ws {
		if out := finishPeer(t, p, 30*time.Second); !strings.HasPrefix(out, "ok ") {
			t.Fatalf("last writer: %q", out)
		}
	}
	e := parseEnd(t, finishPeer(t, rd, 10*time.Second))
	if e.err != "EPIPE" {
		t.Errorf("the reader ended with %s, want EPIPE", e.err)
	}
	for id, w := range want {
		if g := e.ids[id]; g != w {
			t.Errorf("last stream %d: got messages %v, want %v", id, g, w)
		}
	}
	t.Logf("%d writers killed; the reader got %d messages of %d streams", kills+3, e.total, len(e.ids))
}

type cStat struct {
	Capacity   uint64 `json:"capacity"`
	MaxMessage uint64 `json:"max_message"`
	Messages   uint64 `json:"messages"`
	Bytes      uint64 `json:"bytes"`
	Used       uint64 `json:"used"`
	Readers    int    `json:"readers"`
	Writers    int    `json:"writers"`
	Reader     []struct {
		State string `json:"state"`
		Pid   int    `json:"pid"`
	} `json:"reader"`
	Writer []struct {
		State string `json:"state"`
		Pid   int    `json:"pid"`
	} `json:"writer"`
}

func runStat(t *testing.T, bin, name string) cStat {
	t.Helper()
	out, err := exec.Command(bin, "stat", name).CombinedOutput()
	var st cStat
	if err != nil || json.Unmarshal(out, &st) != nil {
		t.Fatalf("stat: %v: %s", err, out)
	}
	return st
}

// slots is "state/pid ..." of the stat's slots, pid as "P" for want's
// pid, for comparison.
func slots(ss []struct {
	State string `json:"state"`
	Pid   int    `json:"pid"`
}) string {
	var b []string
	for _, s := range ss {
		b = append(b, s.State+"/"+strconv.Itoa(s.Pid))
	}
	return strings.Join(b, " ")
}

// TestCV2Stat: C's shmring_stat against a known backlog: with two reader
// slots, the slowest holding reader's (nothing consumed: 8 messages of 16
// bytes, 24 lane bytes each), after its kill -9 the other's (3 consumed:
// 5 left), after both died nothing; each slot's state and pid as it
// changes (open, closed, dead). With one reader slot, that slot holds
// messages whether its reader never came or died.
func TestCV2Stat(t *testing.T) {
	forEachCC(t, func(t *testing.T, bin string) {
		t.Run("fan-out", func(t *testing.T) {
			name := cCreate(t, bin, 4096, 2, 2)
			st := runStat(t, bin, name)
			if st.Capacity != 4096 || st.MaxMessage != 2040 || st.Readers != 2 || st.Writers != 2 || st.Messages != 0 ||
				slots(st.Reader) != "never/0 never/0" || slots(st.Writer) != "never/0 never/0" {
				t.Fatalf("new ring: %+v", st)
			}
			a, _ := startPeer(t, exec.Command(bin, "hold-reader", name), true)
			b, _ := cStart(t, bin, "seq-read", name, "count=3", "hold")
			w0, w0in, _ := cStartIn(t, bin, true, "seq-write", name, "1", "5", "maxlen=16", "pause=0")
			w1, _ := cStart(t, bin, "seq-write", name, "2", "3", "maxlen=16", "hold")
			io.WriteString(w0in, "go\n") // both hold a slot: writer 0 closes after writer 1 claimed
			if out := finishPeer(t, w0, 10*time.Second); !strings.HasPrefix(out, "paused 0\nok 0 5") {
				t.Fatalf("writer 0: %q", out)
			}
			if l := nextLine(t, w1, 10*time.Second); !strings.HasPrefix(l, "ok 1 3") {
				t.Fatalf("writer 1: %q", l)
			}
			if l := nextLine(t, b, 10*time.Second); l != "held 3" {
				t.Fatalf("reader 1: %q", l)
			}
			pid := func(p *peer) string { return strconv.Itoa(p.cmd.Process.Pid) }
			check := func(when string, msgs uint64, rs, ws string) {
				t.Helper()
				st := runStat(t, bin, name)
				if st.Messages != msgs || st.Bytes != 16*msgs || st.Used != 24*msgs || slots(st.Reader) != rs || slots(st.Writer) != ws {
					t.Errorf("%s: messages %d, bytes %d, used %d, readers %q, writers %q; want %d, %d, %d, %q, %q",
						when, st.Messages, st.Bytes, st.Used, slots(st.Reader), slots(st.Writer), msgs, 16*msgs, 24*msgs, rs, ws)
				}
			}
			check("both readers open", 8, "open/"+pid(a)+" open/"+pid(b), "closed/"+pid(w0)+" open/"+pid(w1))
			a.kill9(t)
			check("the slowest reader dead", 5, "dead/"+pid(a)+" open/"+pid(b), "closed/"+pid(w0)+" open/"+pid(w1))
			b.kill9(t)
			w1.kill9(t)
			check("both readers dead", 0, "dead/"+pid(a)+" dead/"+pid(b), "closed/"+pid(w0)+" dead/"+pid(w1))
		})
		t.Run("under-traffic", func(t *testing.T) {
			// Two writers stream to two readers while stat walks the
			// lanes: it never judges the ring corrupt (a tail that
			// moved under the walk makes it count again), and never
			// counts more than the lanes hold.
			name := cCreate(t, bin, 4096, 2, 2)
			var rs []*peer
			for range 2 {
				p, _ := cStart(t, bin, "seq-read", name, "from0", "mix")
				rs = append(rs, p)
			}
			ws := cWriters(t, []string{bin}, name, []string{"1", "1000000000000", "mix"}, []string{"2", "1000000000000"})
			out, err := exec.Command(bin, "stat", name, "100000").CombinedOutput()
			var ok, again, other, most int
			if _, e := fmt.Sscanf(string(out), "stats ok=%d eagain=%d other=%d mostused=%d", &ok, &again, &other, &most); err != nil || e != nil {
				t.Fatalf("stat: %v: %s", err, out)
			}
			t.Logf("%s", out)
			if other != 0 || ok == 0 || most > 2*4096 {
				t.Errorf("stat under traffic: %s", out)
			}
			for _, p := range ws {
				p.kill9(t) // still streaming
			}
			for _, p := range rs {
				if e := parseEnd(t, finishPeer(t, p, 10*time.Second)); e.err != "EOWNERDEAD" || len(e.ids) != 2 || e.ids[1][0] != 0 || e.ids[2][0] != 0 {
					t.Errorf("reader: %+v, want both streams from 0, then EOWNERDEAD", e)
				}
			}
		})
		t.Run("one-reader", func(t *testing.T) {
			name := cCreate(t, bin, 4096, 1, 1)
			w, _ := cStart(t, bin, "seq-write", name, "1", "4", "maxlen=16")
			finishPeer(t, w, 10*time.Second)
			if st := runStat(t, bin, name); st.Messages != 4 || st.Bytes != 64 || slots(st.Reader) != "never/0" {
				t.Errorf("no reader yet: %+v", st)
			}
			r, _ := cStart(t, bin, "seq-read", name, "count=1", "hold")
			if l := nextLine(t, r, 10*time.Second); l != "held 1" {
				t.Fatalf("reader: %q", l)
			}
			r.kill9(t)
			if st := runStat(t, bin, name); st.Messages != 3 || st.Bytes != 48 || slots(st.Reader) != "dead/"+strconv.Itoa(r.cmd.Process.Pid) {
				t.Errorf("the reader dead: %+v", st)
			}
		})
	})
}

// TestCV2ClaimRace: eight C processes race for the four reader slots, and
// eight for the four writer slots: exactly four of each win, one slot
// each; the others get EBUSY.
func TestCV2ClaimRace(t *testing.T) {
	forEachCC(t, func(t *testing.T, bin string) {
		name := cCreate(t, bin, 4096, 4, 4)
		for _, kind := range []string{"reader", "writer"} {
			var ps []*peer
			var ins []io.WriteCloser
			for range 8 {
				p, in, _ := cStartIn(t, bin, false, "claim", name, kind)
				ps, ins = append(ps, p), append(ins, in)
			}
			for _, in := range ins { // as close together as the pipes go
				io.WriteString(in, "go\n")
			}
			won := map[string]int{}
			busy := 0
			for _, p := range ps {
				switch l := nextLine(t, p, 10*time.Second); {
				case strings.HasPrefix(l, "ready "):
					won[l]++
				case l == "EBUSY":
					busy++
				default:
					t.Fatalf("%s claim: %q\n%s", kind, l, p.stderr)
				}
			}
			if len(won) != 4 || busy != 4 || won["ready 0"] != 1 || won["ready 1"] != 1 || won["ready 2"] != 1 || won["ready 3"] != 1 {
				t.Errorf("%s slots: won %v, EBUSY %d; want slots 0-3 once each and 4 EBUSY", kind, won, busy)
			}
		}
	})
}

// TestCV2RefusesOtherLayouts: C's shmring_open refuses a version-1 ring
// and version-2 headers that break LAYOUT.md §2 with EPROTO, and opens
// the valid one.
func TestCV2RefusesOtherLayouts(t *testing.T) {
	forEachCC(t, func(t *testing.T, bin string) {
		open := func(name string) string {
			out, _ := exec.Command(bin, "open", name).CombinedOutput()
			return strings.TrimSpace(string(out))
		}
		// A version-1 ring as the first generation made it: 512-byte header,
		// 64 bytes of data, both ends claimed once.
		v1 := ringName(t)
		img := make([]byte, 512+64)
		copy(img, "SHMRING\x00")
		binary.LittleEndian.PutUint32(img[8:], 1)
		binary.LittleEndian.PutUint32(img[12:], 512)
		binary.LittleEndian.PutUint64(img[16:], 64)
		binary.LittleEndian.PutUint64(img[24:], 24)
		binary.LittleEndian.PutUint32(img[32:], 1)
		binary.LittleEndian.PutUint32(img[36:], 1)
		writeObject(t, v1, img)
		if got := open(v1); got != "EPROTO" {
			t.Errorf("a version-1 ring: %s, want EPROTO", got)
		}
		// A valid 2x3 ring, then one field broken at a time.
		good := cCreate(t, bin, 4096, 2, 3)
		seg, err := shm.Open(good)
		if err != nil {
			t.Fatal(err)
		}
		valid := append([]byte(nil), seg.Bytes()...)
		seg.Close()
		if got := open(good); got != "OK" {
			t.Fatalf("the valid ring: %s", got)
		}
		put32 := func(off int, v uint32) func([]byte) []byte {
			return func(b []byte) []byte { binary.LittleEndian.PutUint32(b[off:], v); return b }
		}
		put64 := func(off int, v uint64) func([]byte) []byte {
			return func(b []byte) []byte { binary.LittleEndian.PutUint64(b[off:], v); return b }
		}
		for _, c := range []struct {
			name string
			edit func([]byte) []byte
		}{
			{"version 1", put32(8, 1)},
			{"version 3", put32(8, 3)},
			{"readers 0", put32(32, 0)},
			{"readers 65", put32(32, 65)},
			{"writers 0", put32(36, 0)},
			{"writers 2 (header_size for 3)", put32(36, 2)},
			{"header_size", put32(12, 1088+256)},
			{"capacity not a multiple of 8", put64(16, 4092)},
			{"capacity 2^41", put64(16, 1<<41)},
			{"max_message", put64(24, 2048)},
			{"magic", put64(0, 0x00474E49524D4854)},
			{"object one byte short", func(b []byte) []byte { return b[:len(b)-1] }},
			{"object of 511 bytes", func(b []byte) []byte { return b[:511] }},
		} {
			n := ringName(t)
			writeObject(t, n, c.edit(append([]byte(nil), valid...)))
			if got := open(n); got != "EPROTO" {
				t.Errorf("%s: %s, want EPROTO", c.name, got)
			}
		}
	})
}

// writeObject makes the shared memory object name holding b.
func writeObject(t *testing.T, name string, b []byte) {
	t.Helper()
	seg, err := shm.Create(name, len(b))
	if err != nil {
		t.Fatal(err)
	}
	copy(seg.Bytes(), b)
	if err := seg.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestCV2CorruptRing: C readers and writers of version-2 rings whose
// counters, records and state words were overwritten under them (chosen
// fields, then random words of the slots and the data) answer EPROTO or
// another error, never crash nor touch memory past the object (mapped
// with an inaccessible page right after it, where the last lane ends).
// The reader claims its slot before the ring is filled (a fan-out reader
// starts at the head), beside another that reads nothing when there are
// two reader slots; only the last lane is filled (5 messages), and
// corrupted before the reader tries; the writer claims lane 0 after it,
// corrupted before the writer tries.
func TestCV2CorruptRing(t *testing.T) {
	forEachCC(t, func(t *testing.T, bin string) {
		type shape struct{ capacity, r, w, d int } // d: header_size
		shapes := []shape{{8192 - 896, 1, 1, 896}, {(8192 - 1280) / 2, 2, 2, 1280}}
		resultRE := regexp.MustCompile(`^(OK|EPROTO|ETIMEDOUT|EPIPE|EOWNERDEAD|EMSGSIZE) \d$`)
		type edit func(b []byte)
		// try makes a ring of shape sh, claims a reader (try-recv or
		// try-recv-batch, and a holding reader beside it if sh.r > 1), fills
		// the last lane, applies re, lets the reader try, applies we, then
		// lets a writer try (try-send or try-send-batch); it returns the
		// reader's and the writer's results.
		try := func(what string, sh shape, batch bool, re, we edit) (string, string) {
			t.Helper()
			name := cCreate(t, bin, sh.capacity, sh.r, sh.w)
			suffix := ""
			if batch {
				suffix = "-batch"
			}
			if sh.r > 1 {
				startPeer(t, exec.Command(bin, "hold-reader", name), true)
			}
			rd, in, line := cStartIn(t, bin, true, "try-recv"+suffix, name, "guard", "wait")
			if !strings.HasPrefix(line, "ready") {
				t.Fatalf("%s: reader: %q", what, line)
			}
			var args [][]string
			for i := range sh.w {
				n := 0
				if i == sh.w-1 {
					n = 5 // in the last lane only
				}
				args = append(args, []string{strconv.Itoa(i + 1), strconv.Itoa(n)})
			}
			for _, p := range cWriters(t, []string{bin}, name, args...) {
				finishPeer(t, p, 10*time.Second)
			}
			change := func(e edit) {
				seg, err := shm.Open(name)
				if err != nil {
					t.Fatal(err)
				}
				if e != nil {
					e(seg.Bytes())
				}
				seg.Close()
			}
			change(re)
			io.WriteString(in, "go\n")
			got := []string{finishPeer(t, rd, 10*time.Second)}
			change(we)
			out, err := exec.Command(bin, "try-send"+suffix, name, "guard").CombinedOutput()
			if err != nil {
				t.Errorf("%s: try-send%s: %v: %s", what, suffix, err, out)
			}
			got = append(got, strings.TrimSpace(string(out)))
			for _, g := range got {
				if !resultRE.MatchString(g) {
					t.Errorf("%s: %q", what, got)
				}
			}
			return got[0], got[1]
		}
		put32 := func(b []byte, off int, v uint32) { binary.LittleEndian.PutUint32(b[off:], v) }
		put64 := func(b []byte, off int, v uint64) { binary.LittleEndian.PutUint64(b[off:], v) }
		get64 := func(b []byte, off int) uint64 { return binary.LittleEndian.Uint64(b[off:]) }
		// With one reader slot the reader takes over the tail at its
		// claim: a tail that is not a multiple of 8 is corrupt even
		// where the head equals it (LAYOUT.md §5, Receive step 1).
		{
			name := cCreate(t, bin, 8192-896, 1, 1)
			seg, err := shm.Open(name)
			if err != nil {
				t.Fatal(err)
			}
			put64(seg.Bytes(), 576, 3197) // head
			put64(seg.Bytes(), 832, 3197) // reader 0's tail
			seg.Close()
			for _, mode := range []string{"try-recv", "try-recv-batch", "try-send", "try-send-batch"} {
				if out, _ := exec.Command(bin, mode, name, "guard").CombinedOutput(); strings.TrimSpace(string(out)) != "EPROTO 0" {
					t.Errorf("head = tail = 3197: %s said %q, want EPROTO 0", mode, out)
				}
			}
		}
		for _, sh := range shapes {
			rs := 512 + 192*sh.w
			headOf := func(w int) int { return 512 + 192*w + 64 }
			lastLane := sh.d + sh.capacity*(sh.w-1)
			heads := func(f func(h uint64) uint64) edit { // every lane's head
				return func(b []byte) {
					for w := range sh.w {
						put64(b, headOf(w), f(get64(b, headOf(w))))
					}
				}
			}
			hold0 := rs + 128 // reader 0's tail of lane 0: the writer's holding reader
			cap := uint64(sh.capacity)
			for _, c := range []struct {
				name         string
				re, we       edit
				recv, sendTo string // what the reader and the writer say (a prefix; "" anything)
			}{
				{"none", nil, nil, "EPIPE 5", ""},
				{"heads not multiples of 8", heads(func(h uint64) uint64 { return h + 4 }), nil, "EPROTO 0", ""},
				{"heads more than capacity ahead", heads(func(h uint64) uint64 { return h + cap + 8 }), nil, "EPROTO 0", ""},
				{"length over max_message", func(b []byte) { put32(b, lastLane, uint32(cap/2-7)) }, nil, "EPROTO 0", ""},
				{"length past the head", func(b []byte) { put32(b, lastLane, uint32(get64(b, headOf(sh.w-1)))) }, nil, "EPROTO 0", ""},
				{"length 2^32-2", func(b []byte) { put32(b, lastLane, 0xFFFFFFFE) }, nil, "EPROTO 0", ""},
				{"wrap marker at offset 0", func(b []byte) { put32(b, lastLane, 0xFFFFFFFF) }, nil, "EPROTO 0", ""},
				{"writer states 7", func(b []byte) {
					for w := range sh.w {
						put32(b, 512+192*w, 0x107)
					}
				}, nil, "EPROTO 5", ""},
				{"writer's head not a multiple of 8", nil, func(b []byte) { put64(b, headOf(0), get64(b, headOf(0))+4) }, "", "EPROTO 0"},
				{"holding tail not a multiple of 8", nil, func(b []byte) { put64(b, hold0, get64(b, headOf(0))-4) }, "", "EPROTO 0"},
				{"holding tail ahead of the head", nil, func(b []byte) { put64(b, hold0, get64(b, headOf(0))+8) }, "", "EPROTO 0"},
				{"holding tail more than capacity behind", nil, func(b []byte) { put64(b, headOf(0), cap+64); put64(b, hold0, 0) },
					"", map[bool]string{true: "EPROTO 0", false: "ETIMEDOUT 0"}[sh.r == 1]}, // R > 1: a reader joining, waited for
				{"holding reader's state 9", nil, func(b []byte) { put32(b, rs, 0x109) }, "", "EPROTO"},
			} {
				for _, batch := range []bool{false, true} {
					what := fmt.Sprintf("%dx%d batch=%v: %s", sh.r, sh.w, batch, c.name)
					recv, send := try(what, sh, batch, c.re, c.we)
					if !strings.HasPrefix(recv, c.recv) || !strings.HasPrefix(send, c.sendTo) {
						t.Errorf("%s: reader said %s, writer %s; want %q, %q", what, recv, send, c.recv, c.sendTo)
					}
				}
			}
			n := 30
			if testing.Short() {
				n = 8
			}
			for i := range n {
				random := func(b []byte) {
					h := get64(b, headOf(sh.w-1))
					words := []uint64{0, 4, 8, 0xFFFFFFFF, 0xFFFFFFF8, cap, cap - 8, cap / 2, h, h + 8, h - 8, 1 << 63, ^uint64(0)}
					for range 1 + rand.IntN(4) {
						off := 512 + 4*rand.IntN((len(b)-512)/4) // anywhere past the fixed header
						if rand.IntN(2) == 0 {
							off = 512 + 8*rand.IntN((sh.d-512)/8) // a slot's word
						}
						v := words[rand.IntN(len(words))]
						if off%8 == 0 && rand.IntN(2) == 0 {
							put64(b, off, v)
						} else {
							put32(b, off, uint32(v))
						}
					}
				}
				try(fmt.Sprintf("%dx%d: random %d", sh.r, sh.w, i), sh, i%2 == 1, random, random)
			}
		}
	})
}

// TestCV2BatchNobodyHolds: a C batch where no reader holds the lane (R =
// 2) writes at most the capacity beyond the published head, as Go's
// SendBatch does (the room is measured from the published head, not from
// the batch's unpublished position), and a reader that joins then reads
// the next batch intact.
func TestCV2BatchNobodyHolds(t *testing.T) {
	forEachCC(t, func(t *testing.T, bin string) {
		const capacity = 4096
		name := cCreate(t, bin, capacity, 2, 1)
		out, err := exec.Command(bin, "batch-nobody", name).CombinedOutput()
		if err != nil {
			t.Fatalf("batch-nobody: %v: %s", err, out)
		}
		var n1, n2, got int
		var res string
		if _, err := fmt.Sscanf(string(out), "%d %d %d %s", &n1, &n2, &got, &res); err != nil {
			t.Fatalf("batch-nobody said %q: %v", out, err)
		}
		if n1 < 1 || n1*16 > capacity {
			t.Errorf("a batch with no reader holding sent %d 16-byte records: want 1 to %d (the capacity beyond the published head)", n1, capacity/16)
		}
		if n2 < 1 || n2*16 > capacity || got != n2 || res != "OK" {
			t.Errorf("after a reader joined: sent %d, received %d, %s; want 1 to %d sent, all received, OK", n2, got, res, capacity/16)
		}
	})
}

// TestCV2TimedWaitIdle: a timed wait of the C end sleeps in the kernel
// for its whole timeout, also on i386 built with -D_TIME_BITS=64 (where
// the C library's struct timespec is not the one SYS_futex reads): a
// 1-second wait costs well under 100 ms of CPU.
func TestCV2TimedWaitIdle(t *testing.T) {
	for _, cc := range append(allCCs, "gcc -m32 -D_TIME_BITS=64 -D_FILE_OFFSET_BITS=64") {
		t.Run(strings.ReplaceAll(cc, " ", ""), func(t *testing.T) {
			bin := buildPeer(t, cc)
			name := cCreate(t, bin, 4096, 1, 1)
			out, err := exec.Command(bin, "idle-wait", name, "1000").CombinedOutput()
			if err != nil {
				t.Fatalf("idle-wait: %v: %s", err, out)
			}
			var res string
			var ms, cpu int
			if _, err := fmt.Sscanf(string(out), "%s ms=%d cpu=%d", &res, &ms, &cpu); err != nil {
				t.Fatalf("idle-wait said %q: %v", out, err)
			}
			if res != "ETIMEDOUT" || ms < 990 || cpu >= 100 {
				t.Errorf("a 1 s wait on an idle ring: %s after %d ms, %d ms of CPU; want ETIMEDOUT after 1 s with under 100 ms of CPU", res, ms, cpu)
			}
		})
	}
}
