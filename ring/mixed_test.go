//go:build linux && cgo

package ring_test

// Go, C and Python in one ring at once (issue 23): writers and readers of
// all three languages in one 3x3 ring, in a fan-out ring and in a
// many-writer ring; claims raced between the three; kills of any of them.
// The messages are peer.c's sequenced streams, which peer.py writes and
// checks too, and cseq below for the Go ends.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/posixshm/shm/ring"
)

// cseqHash is peer.c's seq_hash.
func cseqHash(id uint32, seq uint64) uint32 {
	h := id*0x9E3779B1 ^ uint32(seq*0x85EBCA6B) ^ uint32(seq>>32)
	h ^= h >> 15
	h *= 0x2C1B3C6D
	h ^= h >> 12
	return h
}

// cseq writes message seq of stream id, n bytes (at least 16), into buf,
// as peer.c's seq_fill does: u32 id, u32 n, u64 seq, then bytes from the
// hash of (id, seq).
func cseq(buf []byte, id uint32, seq uint64, n int) []byte {
	m := buf[:n]
	le := binary.LittleEndian
	le.PutUint32(m[0:], id)
	le.PutUint32(m[4:], uint32(n))
	le.PutUint64(m[8:], seq)
	h := cseqHash(id, seq)
	for k := 16; k < n; k++ {
		m[k] = byte(h + uint32(k)*31)
	}
	return m
}

// cseqCheck checks m as peer.c's seq_check does and returns its stream
// and number.
func cseqCheck(m []byte) (id uint32, seq uint64, err error) {
	le := binary.LittleEndian
	if len(m) < 16 {
		return 0, 0, fmt.Errorf("a message of %d bytes", len(m))
	}
	id, seq = le.Uint32(m[0:]), le.Uint64(m[8:])
	if int(le.Uint32(m[4:])) != len(m) {
		return id, seq, fmt.Errorf("stream %d message %d: length %d, it says %d", id, seq, len(m), le.Uint32(m[4:]))
	}
	h := cseqHash(id, seq)
	for k := 16; k < len(m); k++ {
		if m[k] != byte(h+uint32(k)*31) {
			return id, seq, fmt.Errorf("stream %d message %d: byte %d torn", id, seq, k)
		}
	}
	return id, seq, nil
}

// cseqStreams counts, per stream, the first and last message a reader
// got, failing on a message out of its stream's order.
type cseqStreams map[uint32][2]uint64

func (s cseqStreams) see(m []byte) error {
	id, seq, err := cseqCheck(m)
	if err != nil {
		return err
	}
	if g, ok := s[id]; ok {
		if seq != g[1]+1 {
			return fmt.Errorf("stream %d: message %d after %d", id, seq, g[1])
		}
		s[id] = [2]uint64{g[0], seq}
		return nil
	}
	s[id] = [2]uint64{seq, seq}
	return nil
}

// goSeqWrite sends count messages of stream id through w (lengths 16 to
// 300, every 61st the ring's largest, as peer.c's), every third by
// Reserve/Commit, then closes w.
func goSeqWrite(ctx context.Context, w *ring.Writer, max int, id uint32, count int) error {
	buf := make([]byte, max)
	for i := range count {
		n := 16 + int(cseqHash(id, uint64(i))%285)
		if i%61 == 60 {
			n = max
		}
		m := cseq(buf, id, uint64(i), n)
		if i%3 == 2 {
			b, err := w.Reserve(ctx, n)
			if err != nil {
				return fmt.Errorf("stream %d message %d: %w", id, i, err)
			}
			copy(b, m)
			if err := w.Commit(n); err != nil {
				return err
			}
			continue
		}
		if err := w.Send(ctx, m); err != nil {
			return fmt.Errorf("stream %d message %d: %w", id, i, err)
		}
	}
	return w.Close()
}

// goSeqRead receives until the end of the stream, checking each message.
func goSeqRead(ctx context.Context, rd *ring.Reader, max int) (cseqStreams, error) {
	s := cseqStreams{}
	buf := make([]byte, max)
	for i := 0; ; i++ {
		var err error
		if i%2 == 0 {
			var n int
			if n, err = rd.Receive(ctx, buf); err == nil {
				err = s.see(buf[:n])
			}
		} else {
			var m []byte
			if m, err = rd.Next(ctx); err == nil {
				if err = s.see(m); err == nil {
					err = rd.Release()
				}
			}
		}
		if errors.Is(err, io.EOF) {
			return s, rd.Close()
		}
		if err != nil {
			rd.Close()
			return s, err
		}
	}
}

// mixedRing makes a ring by Go's CreateWith, unlinked at the end of t.
func mixedRing(t *testing.T, capacity, readers, writers int) (*ring.Ring, string) {
	t.Helper()
	name := ringName(t)
	r, err := ring.CreateWith(name, capacity, &ring.Options{Readers: readers, Writers: writers})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(); r.Unlink() })
	return r, name
}

// mixed runs one ring with the given languages as readers and writers
// ("go", "c", "py"), every writer sending count messages of its own stream
// (ids 1, 2, ...), every reader claimed before any writer sends; each
// reader must get every stream whole, in order, from its first message to
// its last, then the end of the stream.
func mixed(t *testing.T, capacity int, readers, writers []string, count int) {
	bin := buildPeer(t, "gcc")
	py3(t)
	r, name := mixedRing(t, capacity, len(readers), len(writers))
	max := r.MaxMessage()
	ctx := within(t, 120*time.Second)
	want := map[uint32][2]uint64{}
	for i := range writers {
		want[uint32(i+1)] = [2]uint64{0, uint64(count - 1)}
	}

	type goRes struct {
		s   cseqStreams
		err error
	}
	var cReaders, pyReaders []*peer
	var goReads []chan goRes
	for _, lang := range readers {
		switch lang {
		case "c":
			p, _ := cStart(t, bin, "seq-read", name, "from0", "mix")
			cReaders = append(cReaders, p)
		case "py":
			p, line := startPeer(t, pyCmd(t, "seq-read", name), true)
			if !strings.HasPrefix(line, "ready ") {
				t.Fatalf("Python reader said %q", line)
			}
			pyReaders = append(pyReaders, p)
		case "go":
			o := openRing(t, r)
			rd, err := o.Reader()
			if err != nil {
				t.Fatal(err)
			}
			ch := make(chan goRes, 1)
			go func() { s, err := goSeqRead(ctx, rd, max); ch <- goRes{s, err} }()
			goReads = append(goReads, ch)
		}
	}

	// Claim every writer slot before any writer sends (a reader ends its
	// stream once every writer slot ever claimed is closed).
	var gos []func() error
	var release []func()
	var waits []func()
	for i, lang := range writers {
		id := strconv.Itoa(i + 1)
		switch lang {
		case "c":
			p, in, line := cStartIn(t, bin, true, "seq-write", name, id, strconv.Itoa(count), "pause=0", "mix")
			if !strings.HasPrefix(line, "ready ") {
				t.Fatalf("C writer said %q", line)
			}
			if l := nextLine(t, p, 10*time.Second); l != "paused 0" {
				t.Fatalf("C writer said %q", l)
			}
			release = append(release, func() { io.WriteString(in, "go\n") })
			waits = append(waits, func() {
				if out := finishPeer(t, p, 100*time.Second); !strings.HasPrefix(out, "ok ") {
					t.Errorf("C writer %s: %q", id, out)
				}
			})
		case "py":
			cmd := pyCmd(t, "seq-write", name, id, strconv.Itoa(count), "64", "0")
			in := pyStdin(t, cmd)
			p, line := startPeer(t, cmd, true)
			if !strings.HasPrefix(line, "ready ") {
				t.Fatalf("Python writer said %q", line)
			}
			pyExpect(t, p, "paused")
			release = append(release, func() { io.WriteString(in, "go\n") })
			waits = append(waits, func() {
				pyExpect(t, p, "ok ")
				p.wait()
			})
		case "go":
			o := openRing(t, r)
			w, err := o.Writer()
			if err != nil {
				t.Fatal(err)
			}
			sid := uint32(i + 1)
			gos = append(gos, func() error { return goSeqWrite(ctx, w, max, sid, count) })
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(gos))
	for _, f := range gos {
		wg.Add(1)
		go func() { defer wg.Done(); errs <- f() }()
	}
	for _, f := range release {
		f()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("Go writer: %v", err)
		}
	}
	for _, f := range waits {
		f()
	}
	for i, ch := range goReads {
		res := <-ch
		if res.err != nil {
			t.Errorf("Go reader %d: %v", i, res.err)
		}
		if fmt.Sprint(map[uint32][2]uint64(res.s)) != fmt.Sprint(want) {
			t.Errorf("Go reader %d got streams %v, want %v", i, res.s, want)
		}
	}
	for i, p := range cReaders {
		parseEnd(t, finishPeer(t, p, 60*time.Second)).want(t, "C reader "+strconv.Itoa(i), "EPIPE", want)
	}
	wantPy := map[int][2]int{}
	for id, w := range want {
		wantPy[int(id)] = [2]int{int(w[0]), int(w[1])}
	}
	for i, p := range pyReaders {
		wantSeq(t, "Python reader "+strconv.Itoa(i), pyDone(t, p), "EOFError", wantPy)
	}
}

// TestMixedLanguages: Go, C and Python as writers and readers of one ring
// at once: a 3x3 ring (every reader gets every writer's stream), a fan-out
// ring written by each language in turn to readers of all three, and a
// many-writer ring of all three read by each language in turn. A small
// ring (4 KiB lanes), so writers wait for the slowest reader, across
// languages, many times.
func TestMixedLanguages(t *testing.T) {
	all := []string{"go", "c", "py"}
	t.Run("3x3", func(t *testing.T) { mixed(t, 4096, all, all, 3000) })
	for _, lang := range all {
		t.Run("fan-out-from-"+lang, func(t *testing.T) { mixed(t, 4096, all, []string{lang}, 3000) })
		t.Run("many-writers-to-"+lang, func(t *testing.T) { mixed(t, 4096, []string{lang}, all, 3000) })
	}
}

// TestMixedClaimRace: three Go handles, three C processes and three Python
// processes claim the four writer slots of one ring at once: exactly four
// win, each a different slot; the others get EBUSY (ErrBusy, BusyError).
func TestMixedClaimRace(t *testing.T) {
	bin := buildPeer(t, "gcc")
	py3(t)
	for round := range 5 {
		r, name := mixedRing(t, 4096, 1, 4)
		var mu sync.Mutex
		var won []int
		busy := 0
		note := func(slot int, isBusy bool) {
			mu.Lock()
			defer mu.Unlock()
			if isBusy {
				busy++
			} else {
				won = append(won, slot)
			}
		}
		var cs []*peer
		var ins []io.WriteCloser
		for range 3 {
			p, in, _ := cStartIn(t, bin, false, "claim", name, "writer")
			cs, ins = append(cs, p), append(ins, in)
		}
		var gos []*ring.Ring
		for range 3 {
			gos = append(gos, openRing(t, r))
		}
		start := make(chan struct{})
		var wg sync.WaitGroup
		for _, o := range gos {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				w, err := o.Writer()
				switch {
				case err == nil:
					note(w.Slot(), false)
				case errors.Is(err, ring.ErrBusy):
					note(-1, true)
				default:
					t.Errorf("Go claim: %v", err)
				}
			}()
		}
		var pys []*exec.Cmd
		for range 3 {
			pys = append(pys, pyCmd(t, "claim-hold", name, "writer"))
		}
		var pps []*peer
		for _, c := range pys {
			p, _ := startPeer(t, c, false)
			pps = append(pps, p)
		}
		close(start)
		for _, in := range ins {
			io.WriteString(in, "go\n")
		}
		wg.Wait()
		var holding []*peer // C peers that lost exit by themselves
		for _, p := range cs {
			l := nextLine(t, p, 20*time.Second)
			if s, ok := strings.CutPrefix(l, "ready "); ok {
				n, _ := strconv.Atoi(s)
				note(n, false)
				holding = append(holding, p)
			} else if l == "EBUSY" {
				note(-1, true)
				p.wait()
			} else {
				t.Errorf("C claim said %q", l)
			}
		}
		for _, p := range pps {
			l := pyLine(t, p, 20*time.Second)
			if s, ok := strings.CutPrefix(l, "won "); ok {
				n, _ := strconv.Atoi(s)
				note(n, false)
			} else if l == "busy" {
				note(-1, true)
			} else {
				t.Errorf("Python claim said %q", l)
			}
		}
		sort.Ints(won)
		if fmt.Sprint(won) != "[0 1 2 3]" || busy != 5 {
			t.Fatalf("round %d: slots won %v, %d busy; want [0 1 2 3] and 5", round, won, busy)
		}
		for _, p := range append(holding, pps...) {
			p.kill9(t)
		}
		for _, o := range gos {
			o.Close()
		}
	}
}

// TestMixedKills: a ring of three readers (Go, C, Python, living
// throughout) and three writers (C and Python) that are killed with
// SIGKILL at random points of their streams (after a random number of
// messages reached the Go reader; C writers die anywhere in send,
// reserve/commit or a batch) and each replaced by a writer of the other
// language continuing the dead one's lane with a new stream: every reader
// gets every message of every stream whole, each stream in order from its
// first message (nothing half-written is delivered, no stream is
// reordered or loses a message between its first and last), then
// ErrPeerGone once the last writers are killed.
func TestMixedKills(t *testing.T) {
	bin := buildPeer(t, "gcc")
	py3(t)
	kills := 40
	if testing.Short() {
		kills = 10
	}
	r, name := mixedRing(t, 4096, 3, 3)
	max := r.MaxMessage()
	ctx := within(t, 180*time.Second)
	rd, err := openRing(t, r).Reader()
	if err != nil {
		t.Fatal(err)
	}
	cr, _ := cStart(t, bin, "seq-read", name, "from0")
	pr, line := startPeer(t, pyCmd(t, "seq-read", name), true)
	if !strings.HasPrefix(line, "ready ") {
		t.Fatalf("Python reader said %q", line)
	}

	var mu sync.Mutex
	cond := sync.NewCond(&mu)
	s := cseqStreams{}
	var end error
	go func() {
		buf := make([]byte, max)
		for {
			n, err := rd.Receive(ctx, buf)
			if err == nil {
				mu.Lock()
				err = s.see(buf[:n])
				mu.Unlock()
			}
			if err != nil {
				mu.Lock()
				end = err
				cond.Broadcast()
				mu.Unlock()
				return
			}
			cond.Broadcast()
		}
	}()
	// reached waits until the Go reader got message seq of stream id (or ended).
	reached := func(id uint32, seq uint64) error {
		mu.Lock()
		defer mu.Unlock()
		for end == nil {
			if g, ok := s[id]; ok && g[1] >= seq {
				return nil
			}
			cond.Wait()
		}
		return end
	}

	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	type writer struct {
		p  *peer
		id uint32
	}
	id := uint32(0)
	start := func(lang string) writer {
		id++
		sid := strconv.Itoa(int(id))
		if lang == "c" {
			p, _ := cStart(t, bin, "seq-write", name, sid, "1000000000", "mix")
			return writer{p, id}
		}
		p, line := startPeer(t, pyCmd(t, "seq-write", name, sid, "1000000000", "64"), true)
		if !strings.HasPrefix(line, "ready ") {
			t.Fatalf("Python writer said %q", line)
		}
		return writer{p, id}
	}
	ws := []writer{start("c"), start("py"), start("c")}
	for range kills {
		i := rng.IntN(len(ws))
		if err := reached(ws[i].id, uint64(rng.IntN(300))); err != nil {
			t.Fatalf("the Go reader ended: %v", err)
		}
		lang := "c"
		if ws[i].p.cmd.Path == bin {
			lang = "py"
		}
		ws[i].p.kill9(t)
		ws[i] = start(lang)
	}
	for _, w := range ws {
		w.p.kill9(t)
	}
	mu.Lock()
	for end == nil {
		cond.Wait()
	}
	goStreams, goEnd := s, end
	mu.Unlock()
	if !errors.Is(goEnd, ring.ErrPeerGone) {
		t.Fatalf("the Go reader ended with %v, want ErrPeerGone (every writer killed)", goEnd)
	}
	for sid := uint32(1); sid <= id; sid++ {
		if g, ok := goStreams[sid]; ok && g[0] != 0 {
			t.Errorf("Go reader: stream %d: first message %d, want 0", sid, g[0])
		}
	}
	// The C and Python readers check order and wholeness themselves; they
	// must have seen the streams the Go reader saw, each from 0.
	ce := parseEnd(t, finishPeer(t, cr, 60*time.Second))
	if ce.err != "EOWNERDEAD" {
		t.Errorf("the C reader ended with %s, want EOWNERDEAD", ce.err)
	}
	pd := pyDone(t, pr)
	if pd.end != "PeerGoneError" {
		t.Errorf("the Python reader ended with %s, want PeerGoneError", pd.end)
	}
	for sid, g := range goStreams {
		if c, ok := ce.ids[sid]; !ok || c != g {
			t.Errorf("stream %d: the C reader got %v (%v), the Go reader %v", sid, c, ok, g)
		}
		if p, ok := pd.writers[int(sid)]; !ok || p != [3]int{0, int(g[1]), int(g[1]) + 1} {
			t.Errorf("stream %d: the Python reader got %v (%v), the Go reader %v", sid, p, ok, g)
		}
	}
}
