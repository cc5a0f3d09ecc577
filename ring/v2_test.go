//go:build linux && cgo

package ring_test

// Layout version 2 (issue 23) between Go processes: fan-out, many
// writers, both, joins, dead and slow readers, a writer killed holding a
// reservation, a kill -9 campaign, Stat's figures, claim races.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/posixshm/shm"
	"github.com/posixshm/shm/ring"
)

// stallBound is the longest a call may wait in these tests because of a
// dead peer (the promise: about 150-300 ms, LAYOUT.md §5).
const stallBound = 500 * time.Millisecond

// v2size is the payload length of message seq of writer id, below max.
func v2size(id, seq uint32, max int) int {
	if seq%7 == 3 {
		return max
	}
	return int((seq*37 + id*11) % uint32(max+1))
}

// v2order checks a reader's messages: whole (cseqCheck), and each
// writer's in its order with none lost: after a writer's first message,
// each next is the one after. fromZero: a writer's first must be 0.
type v2order struct {
	next     map[uint32]uint64
	got      map[uint32]int
	fromZero bool
	first    map[uint32]uint64
}

func newOrder(fromZero bool) *v2order {
	return &v2order{next: map[uint32]uint64{}, got: map[uint32]int{}, first: map[uint32]uint64{}, fromZero: fromZero}
}

func (o *v2order) see(m []byte) error {
	id, seq, err := cseqCheck(m)
	if err != nil {
		return fmt.Errorf("torn message: %w", err)
	}
	want, ok := o.next[id]
	switch {
	case !ok && o.fromZero && seq != 0:
		return fmt.Errorf("writer %d: first message %d, want 0", id, seq)
	case !ok:
		o.first[id] = seq
	case seq != want:
		return fmt.Errorf("writer %d: message %d after %d (lost, reordered or repeated)", id, seq, want-1)
	}
	o.next[id] = seq + 1
	o.got[id]++
	return nil
}

func (o *v2order) String() string {
	var ids []int
	for id := range o.got {
		ids = append(ids, int(id))
	}
	sort.Ints(ids)
	var b strings.Builder
	for _, id := range ids {
		fmt.Fprintf(&b, " %d:%d:%d", id, o.first[uint32(id)], o.got[uint32(id)])
	}
	return b.String()
}

// v2read receives until io.EOF, in turn by Receive, Next/Release and
// ReceiveBatch, checking each message with o. gap > 0: a call that takes
// longer (after the first message) is an error. It returns the messages
// received.
func v2read(ctx context.Context, rd *ring.Reader, o *v2order, max int, gap time.Duration) (int, error) {
	buf := make([]byte, max)
	bufs := make([][]byte, 16)
	for i := range bufs {
		bufs[i] = make([]byte, max)
	}
	lens := make([]int, 16)
	total := 0
	for i := 0; ; i++ {
		start := time.Now()
		var err error
		switch i % 3 {
		case 0:
			var n int
			if n, err = rd.Receive(ctx, buf); err == nil {
				err = o.see(buf[:n])
				total++
			}
		case 1:
			var m []byte
			if m, err = rd.Next(ctx); err == nil {
				if err = o.see(m); err == nil {
					err = rd.Release()
				}
				total++
			}
		default:
			var n int
			if n, err = rd.ReceiveBatch(ctx, bufs, lens); err == nil {
				for j := range n {
					if err = o.see(bufs[j][:lens[j]]); err != nil {
						break
					}
				}
				total += n
			}
		}
		if d := time.Since(start); gap > 0 && total > 1 && d > gap && err == nil {
			return total, fmt.Errorf("a receive took %v (after %d messages)", d, total)
		}
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

// v2write sends count messages of writer id (count < 0: until stop), in
// turn by Send, Reserve/Commit and SendBatch. gap > 0: a call that takes
// longer is an error.
func v2write(ctx context.Context, w *ring.Writer, id uint32, count, max int, gap time.Duration, stop *atomic.Bool) (int, error) {
	pl := max - 16 - 8 // room for Reserve's 5 bytes more
	buf := make([]byte, max)
	batch := make([][]byte, 4)
	for i := range batch {
		batch[i] = make([]byte, max)
	}
	seq := uint32(0)
	for i := 0; count < 0 || int(seq) < count; i++ {
		if stop != nil && stop.Load() {
			break
		}
		start := time.Now()
		var err error
		switch i % 3 {
		case 0:
			err = w.Send(ctx, cseq(buf, id, uint64(seq), 16+v2size(id, seq, pl)))
			seq++
		case 1:
			n := v2size(id, seq, pl)
			var b []byte
			if b, err = w.Reserve(ctx, 16+n+5); err == nil { // more reserved than committed
				cseq(b, id, uint64(seq), 16+n)
				err = w.Commit(16 + n)
			}
			seq++
		default:
			k := 4
			if count >= 0 {
				k = min(k, count-int(seq))
			}
			msgs := make([][]byte, k)
			for j := range msgs {
				msgs[j] = cseq(batch[j], id, uint64(seq)+uint64(j), 16+v2size(id, seq+uint32(j), pl))
			}
			var n int
			n, err = w.SendBatch(ctx, msgs)
			seq += uint32(n)
		}
		if d := time.Since(start); gap > 0 && d > gap && err == nil {
			return int(seq), fmt.Errorf("a send took %v (message %d)", d, seq)
		}
		if err != nil {
			return int(seq), fmt.Errorf("message %d: %w", seq, err)
		}
	}
	return int(seq), nil
}

// v2Role runs a Go child of these tests; args[0] is the ring's name.
// Environment: SHMRING_TEST_COUNT (messages; < 0 until stdin ends),
// SHMRING_V2_FROMZERO, SHMRING_V2_GAP (ms; 0: no bound), SHMRING_V2_KIND.
func v2Role(role string, args []string) error {
	name := args[0]
	count, _ := strconv.Atoi(os.Getenv("SHMRING_TEST_COUNT"))
	gapMS, _ := strconv.Atoi(os.Getenv("SHMRING_V2_GAP"))
	gap := time.Duration(gapMS) * time.Millisecond
	ctx := context.Background()
	r, err := ring.Open(name)
	if err != nil {
		return err
	}
	defer r.Close()
	switch role {
	case "v2-read":
		rd, err := r.Reader()
		if err != nil {
			return err
		}
		fmt.Println("ready", rd.Slot())
		o := newOrder(os.Getenv("SHMRING_V2_FROMZERO") != "")
		n, err := v2read(ctx, rd, o, r.MaxMessage(), gap)
		if err != nil {
			return fmt.Errorf("reader %d after %d messages (%v): %w", rd.Slot(), n, o, err)
		}
		fmt.Printf("ok %d%v\n", n, o)
		return nil
	case "v2-write":
		w, err := r.Writer()
		if err != nil {
			return err
		}
		fmt.Println("ready", w.Slot())
		var stop atomic.Bool
		if count < 0 {
			go func() { io.Copy(io.Discard, os.Stdin); stop.Store(true) }()
		} else if os.Getenv("SHMRING_V2_WAITGO") != "" {
			bufio.NewReader(os.Stdin).ReadString('\n')
		}
		id := uint32(os.Getpid())
		if count >= 0 {
			id = uint32(w.Slot())
		}
		n, err := v2write(ctx, w, id, count, r.MaxMessage(), gap, &stop)
		if err != nil {
			return fmt.Errorf("writer %d: %w", w.Slot(), err)
		}
		if err := w.Close(); err != nil {
			return err
		}
		fmt.Println("ok", n)
		return nil
	case "v2-hold-reserve": // send count messages of writer id slot, reserve one and fill it, say ready, wait to be killed
		w, err := r.Writer()
		if err != nil {
			return err
		}
		buf := make([]byte, r.MaxMessage())
		for seq := range uint32(count) {
			if err := w.Send(ctx, cseq(buf, uint32(w.Slot()), uint64(seq), 16+10)); err != nil {
				return err
			}
		}
		b, err := w.Reserve(ctx, 64)
		if err != nil {
			return err
		}
		copy(b, "TORN: never to be delivered: TORN: never to be delivered: TORN!!")
		fmt.Println("ready", w.Slot())
		time.Sleep(time.Hour) // until killed
	case "v2-claim": // wait for a line, claim a slot of kind, say "won SLOT" or "busy", hold until stdin ends
		in := bufio.NewReader(os.Stdin)
		fmt.Println("ready")
		in.ReadString('\n')
		var slot int
		if os.Getenv("SHMRING_V2_KIND") == "writer" {
			var w *ring.Writer
			if w, err = r.Writer(); err == nil {
				slot = w.Slot()
			}
		} else {
			var rd *ring.Reader
			if rd, err = r.Reader(); err == nil {
				slot = rd.Slot()
			}
		}
		switch {
		case errors.Is(err, ring.ErrBusy):
			fmt.Println("busy")
		case err != nil:
			return err
		default:
			fmt.Println("won", slot)
		}
		io.Copy(io.Discard, in)
		return nil
	}
	return fmt.Errorf("unknown role %q", role)
}

// v2Peer is this test binary as a child in role on the ring name.
func v2Peer(role, name string, count int, env ...string) *exec.Cmd {
	exe, _ := os.Executable()
	cmd := exec.Command(exe, "-test.run=^$", name)
	cmd.Env = append(append(os.Environ(), roleEnv+"="+role, "SHMRING_TEST_COUNT="+strconv.Itoa(count)), env...)
	return cmd
}

// okLine waits for p to exit and returns its last line, failing t unless
// it exited 0 saying "ok".
func okLine(t *testing.T, p *peer, what string) string {
	t.Helper()
	out, err := p.wait()
	out = strings.TrimSpace(out)
	if err != nil || !strings.HasPrefix(out, "ok") {
		t.Fatalf("%s: %q, %v\n%s", what, out, err, p.stderr)
	}
	return out
}

// startWriters starts n writer processes sending count messages each,
// once all n hold their slots (a reader reports the end of stream when
// every writer that claimed a slot closed).
func startWriters(t *testing.T, r *ring.Ring, n, count int) {
	t.Helper()
	var ins []io.WriteCloser
	for range n {
		cmd := v2Peer("v2-write", r.Name(), count, "SHMRING_V2_WAITGO=1")
		in, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		startPeer(t, cmd, true)
		ins = append(ins, in)
	}
	for _, in := range ins {
		io.WriteString(in, "go\n")
		in.Close()
	}
}

// v2Ring makes a ring of nw writers and nr readers for t.
func v2Ring(t *testing.T, capacity, nw, nr int) *ring.Ring {
	t.Helper()
	r, err := ring.CreateWith(ringName(t), capacity, &ring.Options{Writers: nw, Readers: nr})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// TestFanOut: one writer, four reader processes: each receives every
// message of the stream, whole and in order, then io.EOF.
//
// Kills: the writer's room counting only reader slot 0's tail (readers
// 1-3 find torn, lost or repeated messages); the writer waking only
// reader slot 0 (the stream slows a hundredfold: the 60 s deadline).
func TestFanOut(t *testing.T) {
	const count = 3000
	r := v2Ring(t, 4096, 1, 4)
	var readers []*peer
	for range 4 {
		p, _ := startPeer(t, v2Peer("v2-read", r.Name(), 0, "SHMRING_V2_FROMZERO=1"), true)
		readers = append(readers, p)
	}
	w, err := r.Writer()
	if err != nil {
		t.Fatal(err)
	}
	ctx := within(t, 60*time.Second)
	if _, err := v2write(ctx, w, 0, count, r.MaxMessage(), 0, nil); err != nil {
		t.Fatal(err)
	}
	w.Close()
	for i, p := range readers {
		if out := okLine(t, p, fmt.Sprintf("reader %d", i)); out != fmt.Sprintf("ok %d 0:0:%d", count, count) {
			t.Fatalf("reader %d: %q, want all %d messages of writer 0", i, out, count)
		}
	}
}

// TestManyWriters: four writer processes, one reader: each writer's
// messages arrive whole, in its order, none lost; io.EOF once all four
// closed.
//
// Kills: the reader reporting the end of stream once any writer closed
// (instead of every claimed one: messages of the others lost).
func TestManyWriters(t *testing.T) {
	const count = 2000
	r := v2Ring(t, 4096, 4, 1)
	rd, err := r.Reader()
	if err != nil {
		t.Fatal(err)
	}
	startWriters(t, r, 4, count)
	o := newOrder(true)
	n, err := v2read(within(t, 60*time.Second), rd, o, r.MaxMessage(), 0)
	if err != nil {
		t.Fatalf("after %d messages (%v): %v", n, o, err)
	}
	if want := " 0:0:2000 1:0:2000 2:0:2000 3:0:2000"; n != 4*count || o.String() != want {
		t.Fatalf("%d messages (writer:first:count%v), want %d (%s)", n, o, 4*count, want)
	}
}

// TestManyToMany: three writer processes and three reader processes at
// once: every reader receives every writer's messages, whole and in each
// writer's order.
//
// Kills: the writer's room counting only reader slot 0's tail (a reader
// child fails: torn or lost messages); the writer waking only reader slot
// 0 (readers 1 and 2 sleep until their 150 ms peer check each time: the
// stream slows a hundredfold and the peers' 60 s deadline fails it).
func TestManyToMany(t *testing.T) {
	const count = 1500
	r := v2Ring(t, 8192, 3, 3)
	var readers []*peer
	for range 3 {
		p, _ := startPeer(t, v2Peer("v2-read", r.Name(), 0, "SHMRING_V2_FROMZERO=1"), true)
		readers = append(readers, p)
	}
	startWriters(t, r, 3, count)
	for i, p := range readers {
		if out, want := okLine(t, p, fmt.Sprintf("reader %d", i)), "ok 4500 0:0:1500 1:0:1500 2:0:1500"; out != want {
			t.Fatalf("reader %d: %q, want %q", i, out, want)
		}
	}
}

// TestJoin: a reader that claims a fan-out ring mid-stream starts at a
// message published after its claim began and receives every message
// from there on, in order.
//
// Kills: a joining reader keeping its slot's old tails (it starts at
// message 0, or at whatever the slot's last reader left).
func TestJoin(t *testing.T) {
	r := v2Ring(t, 4096, 1, 2)
	first, err := r.Reader()
	if err != nil {
		t.Fatal(err)
	}
	w, err := openRing(t, r).Writer()
	if err != nil {
		t.Fatal(err)
	}
	ctx := within(t, 60*time.Second)
	var sent, stopAt atomic.Int64 // messages committed; where the writer stops (0: not yet known)
	werr := make(chan error, 1)
	go func() {
		buf := make([]byte, 64)
		for seq := uint32(0); stopAt.Load() == 0 || int64(seq) < stopAt.Load(); seq++ {
			if err := w.Send(ctx, cseq(buf, 0, uint64(seq), 16+int(seq%40))); err != nil {
				werr <- err
				return
			}
			sent.Store(int64(seq) + 1)
		}
		werr <- w.Close()
	}()
	ferr := make(chan error, 1)
	go func() {
		_, err := v2read(ctx, first, newOrder(true), r.MaxMessage(), 0)
		ferr <- err
	}()
	for sent.Load() < 1000 {
		time.Sleep(time.Millisecond) // the stream under way (not synchronisation: any point will do)
	}
	o := openRing(t, r)
	before := sent.Load()
	rd, err := o.Reader()
	after := sent.Load()
	if err != nil {
		t.Fatal(err)
	}
	stopAt.Store(after + 5000)
	jo := newOrder(false)
	n, err := v2read(ctx, rd, jo, r.MaxMessage(), 0)
	if err != nil {
		t.Fatalf("the joined reader after %d messages: %v", n, err)
	}
	end := sent.Load()
	firstSeq := int64(jo.first[0])
	// (sent lags a commit by a moment: the message after "after" may
	// have been published before the claim's look at the head)
	if firstSeq < before || firstSeq > after+1 || int64(n) != end-firstSeq {
		t.Fatalf("joined while messages %d..%d were committed: received %d from message %d, want from one in %d..%d on to %d", before, after, n, firstSeq, before, after+1, end)
	}
	t.Logf("joined with %d..%d committed: received from message %d, %d messages to %d", before, after, firstSeq, n, end)
	if err := <-werr; err != nil {
		t.Fatal(err)
	}
	if err := <-ferr; err != nil {
		t.Fatal(err)
	}
}

// TestSlowReaderGone: the writer of a fan-out ring, blocked on a full
// lane for a reader that does not read while another reads, goes on
// within 500 ms of that reader's kill -9, and of its Close.
//
// Kills: a writer that never tests the readers that keep it from room
// (the Send waits for the dead reader forever: the bound fails it); one
// that counts closed readers as holding.
func TestSlowReaderGone(t *testing.T) {
	for _, how := range []string{"kill", "close"} {
		t.Run(how, func(t *testing.T) {
			r := v2Ring(t, 1024, 1, 2)
			fast, err := r.Reader()
			if err != nil {
				t.Fatal(err)
			}
			var p *peer
			var slow *ring.Reader
			if how == "kill" {
				p, _ = startPeer(t, goPeer("hold-reader", r.Name(), 0, 0), true)
			} else if slow, err = openRing(t, r).Reader(); err != nil {
				t.Fatal(err)
			}
			w, err := openRing(t, r).Writer()
			if err != nil {
				t.Fatal(err)
			}
			ctx := within(t, 10*time.Second)
			go func() { // the fast reader drains what it can
				buf := make([]byte, 1024)
				for {
					if _, err := fast.Receive(ctx, buf); err != nil {
						return
					}
				}
			}()
			msg := make([]byte, 100)
			for i := 0; i < 100 && !full(t, r); i++ {
				if err := w.Send(ctx, msg); err != nil {
					t.Fatal(err)
				}
			}
			if !full(t, r) {
				t.Fatal("the lane never filled: the slow reader does not hold it")
			}
			done := blocked(t, w, func() error { return w.Send(ctx, msg) })
			time.Sleep(pollPeer / 2) // blocked a while: the dead reader is not found at once
			start := time.Now()
			if how == "kill" {
				p.kill9(t)
			} else if err := slow.Close(); err != nil {
				t.Fatal(err)
			}
			err = <-done
			d := time.Since(start)
			if err != nil || d > stallBound {
				t.Fatalf("Send blocked on a slow reader: %v after its %s took %v, want nil within %v", err, how, d, stallBound)
			}
			t.Logf("Send went on %v after the slow reader's %s", d.Round(time.Millisecond), how)
			for range 50 { // and goes on: the gone reader no longer holds the lane
				if err := w.Send(ctx, msg); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

const pollPeer = ring.PollPeer

// full reports whether the least holding reader's tail of lane 0 leaves
// less room than a 100-byte message needs.
func full(t *testing.T, r *ring.Ring) bool {
	st, err := r.Stat()
	if err != nil {
		t.Fatal(err)
	}
	return st.Capacity-st.Lanes[0].Used < 8+104
}

// TestWriterKilledHoldingReservation: a writer killed between Reserve and
// Commit never blocks the other writer or the reader for more than 500
// ms, and its half-written message is never delivered; the next writer of
// its slot continues its lane.
//
// Kills: the reader ending the stream (ErrPeerGone) when one writer is
// dead while another lives (the live one idles 300 ms after the kill).
func TestWriterKilledHoldingReservation(t *testing.T) {
	const count = 3000
	r := v2Ring(t, 4096, 2, 1)
	rd, err := r.Reader()
	if err != nil {
		t.Fatal(err)
	}
	p, line := startPeer(t, v2Peer("v2-hold-reserve", r.Name(), 5), true)
	if line != "ready 0" {
		t.Fatalf("the reserving writer: %q, want slot 0", line)
	}
	w, err := openRing(t, r).Writer()
	if err != nil {
		t.Fatal(err)
	}
	ctx := within(t, 60*time.Second)
	werr := make(chan error, 1)
	killedCh := make(chan struct{})
	go func() {
		if _, err := v2write(ctx, w, 1, count/3, r.MaxMessage(), stallBound, nil); err != nil {
			werr <- err
			return
		}
		// The live writer idles while the reader waits, past two peer
		// checks (the reader finds writer 0 dead meanwhile), then goes on.
		<-killedCh
		time.Sleep(2 * pollPeer)
		buf := make([]byte, r.MaxMessage())
		for seq := uint32(count / 3); seq < count; seq++ {
			if err := w.Send(ctx, cseq(buf, 1, uint64(seq), 16+v2size(1, seq, 100))); err != nil {
				werr <- err
				return
			}
		}
		werr <- nil
	}()
	o := newOrder(true)
	buf := make([]byte, r.MaxMessage())
	killed := false
	var worst time.Duration
	for o.got[1] < count {
		start := time.Now()
		n, err := rd.Receive(ctx, buf)
		if d := time.Since(start); d > worst {
			worst = d
		}
		if err != nil {
			t.Fatalf("after %d messages (%v), the reserving writer killed: %v: %v", o.got[0]+o.got[1], o, killed, err)
		}
		if err := o.see(buf[:n]); err != nil {
			t.Fatal(err)
		}
		if !killed && o.got[1] == count/3 {
			p.kill9(t)
			killed = true
			close(killedCh)
		}
	}
	if err := <-werr; err != nil {
		t.Fatal(err)
	}
	if worst > stallBound {
		t.Fatalf("a Receive took %v", worst)
	}
	if o.got[0] != 5 {
		t.Fatalf("the killed writer's messages: %d, want the 5 it committed (%v)", o.got[0], o)
	}
	w.Close()
	// Every writer gone, one dead: ErrPeerGone, the reservation undelivered.
	if _, err := rd.Receive(within(t, 5*time.Second), buf); !errors.Is(err, ring.ErrPeerGone) {
		t.Fatalf("after the stream, one writer dead and one closed: %v, want ErrPeerGone", err)
	}
	// The next writer of slot 0 continues lane 0 after message 4.
	nw, err := openRing(t, r).Writer()
	if err != nil || nw.Slot() != 0 {
		t.Fatalf("a new writer: slot %v, %v; want the dead one's slot 0", nw, err)
	}
	if err := nw.Send(ctx, cseq(buf, 0, 5, 16+3)); err != nil {
		t.Fatal(err)
	}
	n, err := rd.Receive(ctx, buf)
	if err != nil {
		t.Fatal(err)
	}
	if err := o.see(buf[:n]); err != nil {
		t.Fatalf("the new writer's first message: %v", err)
	}
	t.Logf("worst Receive %v; %v", worst.Round(time.Millisecond), o)
}

// TestKillCampaign: a 3x3 ring whose writer and reader processes are
// killed with SIGKILL at random moments and replaced, hundreds of times:
// no reader ever sees a torn message or a writer's messages out of
// order or lost (each process is a writer of its own; a replaced reader
// joins afresh), no call waits more than 500 ms, and at the end every
// reader gets the end of stream.
//
// Kills: a writer that never tests the readers that keep it from room
// (a Send waits forever on a killed reader: the gap bound or the
// deadline); a joining reader keeping its old tails (repeated messages).
func TestKillCampaign(t *testing.T) {
	kills := 300
	if testing.Short() {
		kills = 40
	}
	r := v2Ring(t, 16384, 3, 3)
	gap := "SHMRING_V2_GAP=" + strconv.Itoa(int(stallBound/time.Millisecond))
	type child struct {
		p     *peer
		stdin io.WriteCloser
	}
	start := func(role string) child {
		cmd := v2Peer(role, r.Name(), -1, gap)
		in, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		p, _ := startPeer(t, cmd, true)
		return child{p, in}
	}
	var ws, rs [3]child
	for i := range 3 {
		rs[i] = start("v2-read")
		ws[i] = start("v2-write")
	}
	rng := rand.New(rand.NewPCG(23, uint64(time.Now().UnixNano())))
	check := func(c child, what string) {
		t.Helper()
		<-c.p.done
		if ee, ok := c.p.err.(*exec.ExitError); !ok || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Fatalf("%s was not alive until its kill: %v\n%s", what, c.p.err, c.p.stderr)
		}
	}
	begin := time.Now()
	for k := range kills {
		time.Sleep(time.Duration(rng.IntN(30)) * time.Millisecond) // a random point in the children's work
		i := rng.IntN(3)
		if rng.IntN(2) == 0 {
			ws[i].p.cmd.Process.Signal(syscall.SIGKILL)
			go io.Copy(io.Discard, ws[i].p.out)
			check(ws[i], fmt.Sprintf("writer (kill %d)", k))
			ws[i] = start("v2-write")
		} else {
			rs[i].p.cmd.Process.Signal(syscall.SIGKILL)
			go io.Copy(io.Discard, rs[i].p.out)
			check(rs[i], fmt.Sprintf("reader (kill %d)", k))
			rs[i] = start("v2-read")
		}
	}
	t.Logf("%d kills in %v", kills, time.Since(begin).Round(time.Millisecond))
	for _, c := range ws {
		c.stdin.Close() // the writers stop and close
	}
	for i, c := range ws {
		okLine(t, c.p, fmt.Sprintf("writer %d", i))
	}
	for i, c := range rs {
		t.Logf("reader %d: %s", i, okLine(t, c.p, fmt.Sprintf("reader %d", i)))
	}
}

// TestStatFanOut: Stat's figures against a known backlog in a ring of two
// writers and three readers: each lane's backlog is counted from the
// least tail of the live readers; a dead reader is excluded (its slot
// holds nothing when R > 1); in a one-reader ring a dead reader's backlog
// counts (messages wait for the next reader). Every slot's state is
// shown.
//
// Kills: Stat counting a dead reader's tail in a fan-out ring (Used and
// Messages from the dead reader's tail 0); Stat taking the most advanced
// tail instead of the least.
func TestStatFanOut(t *testing.T) {
	r := v2Ring(t, 4096, 2, 3)
	ctx := within(t, 10*time.Second)
	dead, _ := startPeer(t, goPeer("hold-reader", r.Name(), 0, 0), true) // reader slot 0, tails 0
	w0, err := r.Writer()
	if err != nil {
		t.Fatal(err)
	}
	w1, err := r.Writer()
	if err != nil {
		t.Fatal(err)
	}
	r1, err := openRing(t, r).Reader()
	if err != nil {
		t.Fatal(err)
	}
	r2, err := openRing(t, r).Reader()
	if err != nil || r1.Slot() != 1 || r2.Slot() != 2 || w0.Slot() != 0 || w1.Slot() != 1 {
		t.Fatalf("slots %d %d %d %d, %v", w0.Slot(), w1.Slot(), r1.Slot(), r2.Slot(), err)
	}
	for i := range 10 { // lane 0: ten 20-byte messages (28 bytes a record: 32)
		if err := w0.Send(ctx, make([]byte, 20)); err != nil {
			t.Fatal(err)
		}
		if i < 4 { // lane 1: four 1-byte messages (16 bytes a record)
			if err := w1.Send(ctx, []byte{byte(i)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	dead.kill9(t)
	buf := make([]byte, 64)
	recv := func(rd *ring.Reader, n int) {
		for range n {
			if _, err := rd.Receive(ctx, buf); err != nil {
				t.Fatal(err)
			}
		}
	}
	recv(r1, 8) // lanes in turn: 4 of lane 0, 4 of lane 1... taking what is there
	recv(r2, 3)
	st, err := r.Stat()
	if err != nil {
		t.Fatal(err)
	}
	// r1 took lane 0: 4, lane 1: 4 (round robin); r2 took lane 0: 2, lane 1: 1.
	// Least tails: lane 0 at 2 records (64), lane 1 at 1 record (16).
	want := ring.Stat{Capacity: 4096, MaxMessage: 2040, Messages: 8 + 3, Bytes: 8*20 + 3, Used: 8*32 + 3*16,
		Lanes:   []ring.LaneStat{{Head: 320, Tail: 64, Messages: 8, Bytes: 160, Used: 256}, {Head: 64, Tail: 16, Messages: 3, Bytes: 3, Used: 48}},
		Writers: []ring.EndStat{{State: ring.EndOpen, Pid: os.Getpid()}, {State: ring.EndOpen, Pid: os.Getpid()}},
		Readers: []ring.EndStat{{State: ring.EndDead, Pid: dead.cmd.Process.Pid}, {State: ring.EndOpen, Pid: os.Getpid()}, {State: ring.EndOpen, Pid: os.Getpid()}}}
	if got := fmt.Sprintf("%+v", st); got != fmt.Sprintf("%+v", want) {
		t.Fatalf("Stat:\n got %s\nwant %+v", got, want)
	}
	r2.Close()
	if st, err = r.Stat(); err != nil || st.Messages != 6 || st.Readers[2].State != ring.EndClosed {
		t.Fatalf("reader 2 closed: %+v, %v; want the backlog behind reader 1 only (6 messages of lane 0)", st, err)
	}

	// One reader slot: a dead reader's backlog counts.
	one := newRing(t, 4096)
	ow, err := one.Writer()
	if err != nil {
		t.Fatal(err)
	}
	p, _ := startPeer(t, goPeer("hold-reader", one.Name(), 0, 0), true)
	for range 3 {
		if err := ow.Send(ctx, make([]byte, 8)); err != nil {
			t.Fatal(err)
		}
	}
	p.kill9(t)
	if st, err := one.Stat(); err != nil || st.Messages != 3 || st.Used != 48 || st.Readers[0].State != ring.EndDead {
		t.Fatalf("one-reader ring, its reader dead: %+v, %v; want its 3 messages counted", st, err)
	}
}

// TestWaitReaderFanOut: WaitReader of a fan-out ring's writer across its
// reader's restart: it returns while the reader lives, waits while it is
// dead, and returns once a new reader claims.
//
// Kills: WaitReader taking a dead reader slot (state open, lock free) as
// live.
func TestWaitReaderFanOut(t *testing.T) {
	r := v2Ring(t, 4096, 1, 3)
	w, err := r.Writer()
	if err != nil {
		t.Fatal(err)
	}
	old, _ := startPeer(t, goPeer("hold-reader", r.Name(), 0, 0), true)
	if err := w.WaitReader(within(t, 10*time.Second)); err != nil {
		t.Fatalf("WaitReader with a live reader: %v", err)
	}
	old.kill9(t)
	if err := w.WaitReader(within(t, 200*time.Millisecond)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitReader with the reader dead: %v, want context.DeadlineExceeded", err)
	}
	done := make(chan error, 1)
	go func() { done <- w.WaitReader(within(t, 10*time.Second)) }()
	select {
	case err := <-done:
		t.Fatalf("WaitReader returned %v before a reader came", err)
	case <-time.After(50 * time.Millisecond):
	}
	startPeer(t, goPeer("hold-reader", r.Name(), 0, 0), true)
	if err := <-done; err != nil {
		t.Fatalf("WaitReader as a new reader claims: %v", err)
	}
}

// TestClaimRace: eight processes claim the four reader slots (and, in a
// second ring, the four writer slots) at once: exactly four win, each a
// different slot, and the others get ErrBusy; likewise eight goroutines
// with a Ring each; and one Ring hands out four Writers and then ErrBusy.
//
// Kills: a claim that stops at the first held slot instead of trying the
// next (one winner); a claim that skips the lock (eight winners).
func TestClaimRace(t *testing.T) {
	for _, kind := range []string{"reader", "writer"} {
		t.Run("processes-"+kind, func(t *testing.T) {
			r := v2Ring(t, 1024, 4, 4)
			var ps []*peer
			var ins []io.WriteCloser
			for range 8 {
				cmd := v2Peer("v2-claim", r.Name(), 0, "SHMRING_V2_KIND="+kind)
				in, err := cmd.StdinPipe()
				if err != nil {
					t.Fatal(err)
				}
				p, _ := startPeer(t, cmd, true)
				ps, ins = append(ps, p), append(ins, in)
			}
			for _, in := range ins {
				io.WriteString(in, "go\n")
			}
			won := map[string]int{}
			for _, p := range ps {
				line, err := p.out.ReadString('\n')
				if err != nil {
					t.Fatalf("%q %v\n%s", line, err, p.stderr)
				}
				won[strings.TrimSpace(line)]++
			}
			for _, in := range ins {
				in.Close()
			}
			if len(won) != 5 || won["busy"] != 4 || won["won 0"] != 1 || won["won 1"] != 1 || won["won 2"] != 1 || won["won 3"] != 1 {
				t.Fatalf("claims: %v, want slots 0-3 won once each and 4 busy", won)
			}
		})
	}
	t.Run("goroutines", func(t *testing.T) {
		r := v2Ring(t, 1024, 4, 4)
		var wg sync.WaitGroup
		var mu sync.Mutex
		won := map[int]int{}
		busy := 0
		rings := make([]*ring.Ring, 8)
		for i := range rings {
			rings[i] = openRing(t, r)
		}
		for i := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				w, err := rings[i].Writer()
				mu.Lock()
				defer mu.Unlock()
				switch {
				case errors.Is(err, ring.ErrBusy):
					busy++
				case err != nil:
					t.Error(err)
				default:
					won[w.Slot()]++
				}
			}()
		}
		wg.Wait()
		if busy != 4 || len(won) != 4 {
			t.Fatalf("claims: %v won, %d busy; want slots 0-3 once each, 4 busy", won, busy)
		}
	})
	t.Run("one-ring", func(t *testing.T) {
		r := v2Ring(t, 1024, 4, 1)
		for i := range 4 {
			w, err := r.Writer()
			if err != nil || w.Slot() != i {
				t.Fatalf("writer %d: %v", i, err)
			}
		}
		if _, err := r.Writer(); !errors.Is(err, ring.ErrBusy) {
			t.Fatalf("a fifth writer: %v, want ErrBusy", err)
		}
	})
}

// TestVersion1Refused: a ring of layout version 1 (the first generation's
// header) is refused with ErrNotRing, the error naming version 1.
//
// Kills: the version check dropped (the header then fails a later check
// with an error that does not name the version, or opens).
func TestVersion1Refused(t *testing.T) {
	name := ringName(t)
	s, err := shm.Create(name, 512+4096)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	b := s.Bytes()
	le := binary.LittleEndian
	le.PutUint32(b[8:], 1)     // version 1
	le.PutUint32(b[12:], 512)  // its header size
	le.PutUint64(b[16:], 4096) // capacity
	le.PutUint64(b[24:], 2040) // max message
	copy(b, "SHMRING\x00")
	_, err = ring.Open(name)
	if !errors.Is(err, ring.ErrNotRing) || !strings.Contains(err.Error(), "version 1,") {
		t.Fatalf("Open of a version-1 ring: %v, want ErrNotRing naming version 1", err)
	}
	t.Log(err)
}

// TestOptions: CreateWith's slot counts: 0 means 1, 1 to 64 make that
// many slots (Readers, Writers), negative or more than 64 is EINVAL; the
// lanes together at most 1<<40 bytes.
//
// Kills: accepting 65 slots (the header then refused by every peer).
func TestOptions(t *testing.T) {
	for _, o := range []ring.Options{{Readers: -1}, {Writers: -1}, {Readers: 65}, {Writers: 65}} {
		if r, err := ring.CreateWith(ringName(t), 64, &o); !errors.Is(err, syscall.EINVAL) {
			if err == nil {
				r.Close()
			}
			t.Errorf("%+v: %v, want EINVAL", o, err)
		}
	}
	if shift := 35; strconv.IntSize == 64 { // 64 lanes of 2^35 bytes: more than 2^40
		if _, err := ring.CreateWith(ringName(t), 1<<shift, &ring.Options{Writers: 64}); !errors.Is(err, syscall.EINVAL) {
			t.Errorf("64 lanes of 2^35 bytes: %v, want EINVAL", err)
		}
	}
	for _, c := range []struct {
		o    *ring.Options
		w, r int
	}{{nil, 1, 1}, {&ring.Options{}, 1, 1}, {&ring.Options{Readers: 64, Writers: 3}, 3, 64}} {
		r := func() *ring.Ring {
			r, err := ring.CreateWith(ringName(t), 64, c.o)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { r.Close() })
			return r
		}()
		if r.Writers() != c.w || r.Readers() != c.r {
			t.Errorf("%+v: %d writers, %d readers; want %d, %d", c.o, r.Writers(), r.Readers(), c.w, c.r)
		}
		if st, err := os.Stat(shm.Dir() + r.Name()); err != nil || st.Size() != int64(ring.DataOff(c.w, c.r)+64*c.w) {
			t.Errorf("%+v: object %v, %v; want %d bytes", c.o, st.Size(), err, ring.DataOff(c.w, c.r)+64*c.w)
		}
	}
}

// FuzzCorruptSlots (issue 23): the new fields of version 2 corrupt in a
// ring of 2 writers and 3 readers (capacity 128 a lane, in an object with
// guard bytes past the lanes): each lane's head, each reader slot's
// tails, the slots' state words (claim counts, unknown states), and the
// lanes' record bytes, as a hostile peer could leave them; then two
// Writers and two Readers (another Ring's, so that the slots it holds are
// live to the first) drive Send, SendBatch, Receive, ReceiveBatch and
// more counter writes with 2 ms deadlines, and Stat after each. Nothing
// may panic or hang; every error is ErrCorrupt or the deadline; no
// message is longer than MaxMessage; Stat's figures fit the lanes; no
// byte past the lanes and no header byte but the slots' own words (state,
// pid, head, sleep, tails) changes.
//
// Kills: the reader's check of a lane's head against its tail dropped
// (a slice out of range, or a message past the lane, on the seeds).
func FuzzCorruptSlots(f *testing.F) {
	const nw, nr, capacity = 2, 3, 128
	d := ring.DataOff(nw, nr)
	size := d + nw*capacity + 256
	name := ringName(f)
	s, err := shm.Create(name, size)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { s.Close() })
	b := s.Bytes()
	le := binary.LittleEndian
	mutable := func(i int) bool {
		for w := range nw {
			o := ring.WriterSlotOff(w)
			if i >= o && i < o+8 || i >= o+64 && i < o+72 || i >= o+128 && i < o+132 {
				return true
			}
		}
		for r := range nr {
			o := ring.ReaderSlotOff(nw, r)
			if i >= o && i < o+8 || i >= o+64 && i < o+68 || i >= o+128 && i < o+128+8*nw {
				return true
			}
		}
		return false
	}
	f.Add([]byte{}, []byte{0, 1, 2, 3})
	f.Add([]byte{1, 0x80, 0, 0, 0, 0, 0, 0, 0}, []byte{0, 1, 0, 1, 2, 3, 2, 3})          // a head 128 ahead: full lane
	f.Add([]byte{1, 0x88, 0, 0, 0, 0, 0, 0, 0}, []byte{1, 3})                            // a head beyond the capacity
	f.Add([]byte{3, 0x10, 0, 0, 0, 0, 0, 0, 0, 4, 0x10, 0, 0, 0, 0, 0, 0, 0}, []byte{1}) // a tail ahead of its head
	f.Add([]byte{1, 0x10, 0, 0, 0, 0, 0, 0, 0, 20, 0x60, 0, 0, 0}, []byte{1, 3})         // a length beyond what was published
	f.Add([]byte{10, 0x01, 0, 0, 0x07, 11, 0xff, 0xff, 0xff, 0xff}, []byte{0, 1, 2, 3})  // state words: writer 0 open dead, reader 0 garbage
	f.Add([]byte{1, 0x7b, 0, 0, 0, 0, 0, 0, 0}, []byte{0, 2, 1, 3})                      // a misaligned head
	// three 31-byte messages (tails at data offset 120), the head 64 further, a 50-byte length at 120: past the lane's end
	f.Add([]byte{}, []byte{248, 248, 248, 3, 3, 3, 4, 4, 4, 134, 207, 3, 5})
	// the same with a wrap marker at 120 and a head only 8 further
	f.Add([]byte{}, []byte{248, 248, 248, 3, 3, 3, 4, 4, 4, 14, 255, 3, 5})
	f.Fuzz(func(t *testing.T, pokes, ops []byte) {
		if len(ops) > 24 {
			ops = ops[:24]
		}
		clear(b)
		le.PutUint32(b[8:], ring.Version)
		le.PutUint32(b[12:], uint32(d))
		le.PutUint64(b[16:], capacity)
		le.PutUint64(b[24:], capacity/2-8)
		le.PutUint32(b[32:], nr)
		le.PutUint32(b[36:], nw)
		copy(b, "SHMRING\x00")
		for i := d + nw*capacity; i < size; i++ {
			b[i] = byte(0xA5 ^ i)
		}
		// pokes: [what, value...]: 0-1 a head (u64), 2-7 a tail (u64: reader (k-2)/2, lane (k-2)%2),
		// 8-9 a writer state, 10-12 a reader state (u32), 13+ a record word in a lane (u32)
		poke := func(p []byte) []byte {
			k := int(p[0]) % 20
			p = p[1:]
			u64 := func() uint64 { var x [8]byte; copy(x[:], p); return le.Uint64(x[:]) }
			u32 := func() uint32 { var x [4]byte; copy(x[:], p); return le.Uint32(x[:]) }
			switch {
			case k < 2:
				le.PutUint64(b[ring.HeadOff(k):], u64())
				return p[min(8, len(p)):]
			case k < 8:
				le.PutUint64(b[ring.TailOff(nw, (k-2)/2, (k-2)%2):], u64())
				return p[min(8, len(p)):]
			case k < 10:
				le.PutUint32(b[ring.WriterSlotOff(k-8):], u32())
			case k < 13:
				le.PutUint32(b[ring.ReaderSlotOff(nw, k-10):], u32())
			default:
				lane := k % 2
				le.PutUint32(b[ring.LaneOff(nw, nr, lane, capacity)+int(u32()>>24)%capacity&^7:], u32()&0xffffff|(u32()&0x80)<<24)
			}
			return p[min(4, len(p)):]
		}
		for p := pokes; len(p) > 0; {
			p = poke(p)
		}
		hdr := bytes.Clone(b[:d])
		check := func(what string) {
			t.Helper()
			for i := d + nw*capacity; i < size; i++ {
				if b[i] != byte(0xA5^i) {
					t.Fatalf("%s: byte %d past the lanes written", what, i)
				}
			}
			for i := range d {
				if b[i] != hdr[i] && !mutable(i) {
					t.Fatalf("%s: header byte %d changed from %#x to %#x", what, i, hdr[i], b[i])
				}
			}
		}
		wr, err := ring.Open(name)
		if err != nil {
			return // refused at open: fine
		}
		defer wr.Close()
		rr, err := ring.Open(name)
		if err != nil {
			return
		}
		defer rr.Close()
		wr.SetSpin(0)
		rr.SetSpin(0)
		var ws []*ring.Writer
		var rs []*ring.Reader
		for range 2 {
			if w, err := wr.Writer(); err == nil {
				ws = append(ws, w)
			}
			if rd, err := rr.Reader(); err == nil {
				rs = append(rs, rd)
			}
		}
		check("claims")
		max := wr.MaxMessage()
		bufs := [][]byte{make([]byte, max), make([]byte, max), make([]byte, max)}
		lens := make([]int, 3)
		for i, op := range ops {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Millisecond)
			var err error
			var desc string
			n := int(op>>3) % (max + 1)
			switch op % 8 {
			case 0, 1:
				if len(ws) > int(op%2) {
					desc = fmt.Sprintf("writer %d Send(%d)", op%2, n)
					err = ws[op%2].Send(ctx, bytes.Repeat([]byte{op}, n))
				}
			case 2:
				if len(ws) > 0 {
					desc = "SendBatch"
					_, err = ws[0].SendBatch(ctx, [][]byte{make([]byte, n), make([]byte, max-n), nil})
				}
			case 3, 4:
				if len(rs) > int(op%2^1) {
					desc = fmt.Sprintf("reader %d Receive", op%2^1)
					var k int
					k, err = rs[op%2^1].Receive(ctx, bufs[0])
					if k > max {
						t.Fatalf("op %d: a message of %d bytes", i, k)
					}
				}
			case 5:
				if len(rs) > 0 {
					desc = "ReceiveBatch"
					var k int
					k, err = rs[0].ReceiveBatch(ctx, bufs, lens)
					for _, l := range lens[:k] {
						if l > max {
							t.Fatalf("op %d: a message of %d bytes", i, l)
						}
					}
				}
			case 6: // a peer moves lane (op>>3)&1's head by 8 * (op>>4)
				lane := int(op>>3) & 1
				v := le.Uint64(b[ring.HeadOff(lane):]) + 8*uint64(op>>4)
				desc = fmt.Sprintf("lane %d's head := %d", lane, v)
				le.PutUint64(b[ring.HeadOff(lane):], v)
			case 7: // a peer writes a length (2 * (op>>3), or a wrap marker for 31) at reader 0's tail of lane 0
				if len(rs) > 0 {
					v := 2 * uint32(op>>3)
					if op>>3 == 31 {
						v = 0xFFFFFFFF
					}
					off := int(le.Uint64(b[ring.TailOff(nw, rs[0].Slot(), 0):]) % capacity)
					desc = fmt.Sprintf("length %#x at lane 0's offset %d", v, off)
					le.PutUint32(b[ring.LaneOff(nw, nr, 0, capacity)+off&^7:], v)
				}
			}
			cancel()
			if err != nil && !errors.Is(err, ring.ErrCorrupt) && !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("op %d, %s: %v", i, desc, err)
			}
			check(fmt.Sprintf("op %d, %s", i, desc))
			if st, err := wr.Stat(); err != nil && !errors.Is(err, ring.ErrCorrupt) {
				t.Fatalf("Stat after op %d, %s: %v", i, desc, err)
			} else if err == nil && (st.Used > nw*capacity || st.Bytes > st.Used || st.Messages*8 > st.Used) {
				t.Fatalf("Stat after op %d, %s: %+v does not fit the lanes", i, desc, st)
			}
		}
	})
}
