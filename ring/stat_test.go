//go:build linux && cgo

package ring_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"reflect"
	"syscall"
	"testing"
	"time"

	"github.com/posixshm/shm"
	"github.com/posixshm/shm/ring"
)

// backlogModel is LAYOUT.md §3's writer and reader, by hand: where each
// message's record ends, a wrap marker's skip included.
type backlogModel struct {
	c, head, tail uint64
	ends, lens    []uint64 // of the messages not yet received
}

func (m *backlogModel) send(n int) {
	rec := 8 + (uint64(n)+7)&^7
	if off := m.head % m.c; rec > m.c-off {
		m.head += m.c - off // the wrap marker's bytes
	}
	m.head += rec
	m.ends, m.lens = append(m.ends, m.head), append(m.lens, uint64(n))
}

func (m *backlogModel) receive() {
	m.tail = m.ends[0]
	m.ends, m.lens = m.ends[1:], m.lens[1:]
}

func (m *backlogModel) check(t *testing.T, what string, r *ring.Ring, mine bool) {
	t.Helper()
	st, err := r.Stat()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	var sum uint64
	for _, n := range m.lens {
		sum += n
	}
	want := ring.Stat{Capacity: int(m.c), MaxMessage: int(m.c/2 - 8), Messages: len(m.lens), Bytes: int(sum),
		Used:    int(m.head - m.tail),
		Lanes:   []ring.LaneStat{{Head: m.head, Tail: m.tail, Messages: len(m.lens), Bytes: int(sum), Used: int(m.head - m.tail)}},
		Writers: []ring.EndStat{{State: ring.EndOpen, Pid: os.Getpid()}}, Readers: []ring.EndStat{{State: ring.EndOpen, Pid: os.Getpid()}}}
	if !reflect.DeepEqual(st, want) {
		t.Fatalf("%s (seen from the Ring that holds the ends: %v):\n got %+v\nwant %+v", what, mine, st, want)
	}
}

// TestStatBacklog: Stat's figures against a known backlog: messages of
// known sizes sent and none received, then some received, then a wrap
// marker among the records; from the Ring holding both ends and from
// another Ring of the same object (whose Stat tests the ends' locks).
//
// Kills: Bytes summing record sizes instead of lengths (got Bytes 192,
// want 135); a wrap marker counted as a message (Messages 6, want 5);
// Stat testing its own ends' locks with F_OFD_GETLK (the Ring holding
// them says "dead").
func TestStatBacklog(t *testing.T) {
	const c = 256
	r := newRing(t, c)
	o := openRing(t, r)
	w, rd := ends(t, r)
	m := &backlogModel{c: c}
	check := func(what string) {
		t.Helper()
		m.check(t, what, r, true)
		m.check(t, what, o, false)
	}
	ctx := within(t, 10*time.Second)
	send := func(n int) {
		t.Helper()
		if err := w.Send(ctx, bytes.Repeat([]byte{byte(n)}, n)); err != nil {
			t.Fatal(err)
		}
		m.send(n)
	}
	receive := func() {
		t.Helper()
		if _, err := rd.Receive(ctx, make([]byte, c)); err != nil {
			t.Fatal(err)
		}
		m.receive()
	}
	check("empty")
	for _, n := range []int{0, 1, 7, 8, 9, 100} {
		send(n)
	}
	check("six messages sent, none received")
	for range 3 {
		receive()
	}
	check("three received")
	send(40) // to data offset 240: 16 bytes left
	send(10) // a 24-byte record: a wrap marker at 240, the record at 0
	if m.head != 280 || m.tail != 40 {
		t.Fatalf("the test's own arithmetic: head %d, tail %d, want 280 and 40", m.head, m.tail)
	}
	check("a wrap marker among the records")
	for range 4 {
		receive()
	}
	check("the wrap marker and one record left")
	receive()
	check("all received")
}

// TestStatReleasedUnderWalk: a record the reader releases while Stat
// walks towards it may be overwritten by the writer at once (here: its
// length scribbled over); Stat must not read it as the ring's state, but
// count again from the new tail.
//
// Kills: no tail check before trusting a record in the walk (Stat says
// ErrCorrupt: "record of 4294967280 bytes at 0").
func TestStatReleasedUnderWalk(t *testing.T) {
	r := newRing(t, 256)
	w, rd := ends(t, r)
	s, err := shm.Open(r.Name())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := within(t, 10*time.Second)
	for _, n := range []int{10, 20, 30} {
		if err := w.Send(ctx, make([]byte, n)); err != nil {
			t.Fatal(err)
		}
	}
	calls := 0
	ring.SetHookStatRecord(func() {
		if calls++; calls == 1 { // before the walk reads the first record
			if _, err := rd.Receive(ctx, make([]byte, 256)); err != nil {
				t.Error(err)
			}
			binary.LittleEndian.PutUint32(s.Bytes()[ring.HeaderSize:], 0xFFFFFFF0) // the writer's, now
		}
	})
	defer ring.SetHookStatRecord(nil)
	st, err := r.Stat()
	if err != nil {
		t.Fatal(err)
	}
	if st.Messages != 2 || st.Bytes != 50 || st.Lanes[0].Tail != 24 {
		t.Fatalf("after the first of three messages was released under the walk: %+v, want 2 messages, 50 bytes, tail 24", st)
	}
}

// TestStatEnds: each end's state and pid through its life: never claimed
// (pid 0); claimed by a Go, C (gcc, gcc -m32, musl-gcc) or Python process
// (open, its pid); that process killed with SIGKILL (dead: the state word
// still says open, nobody holds the lock; the pid stays); claimed by this
// process and closed (closed, this pid).
//
// Kills: Stat not testing the lock (a killed claimant stays "open");
// the C, Python or Go claim not recording its pid (pid 0); F_OFD_GETLK
// answered for the Ring's own ends (this process's writer is "dead").
func TestStatEnds(t *testing.T) {
	claimants := []struct {
		name string
		cmd  func(t *testing.T, role, name string) *exec.Cmd
	}{
		{"Go", func(t *testing.T, role, name string) *exec.Cmd { return goPeer(role, name, 0, 0) }},
	}
	for _, cc := range []string{"gcc", "gcc -m32", "musl-gcc"} {
		claimants = append(claimants, struct {
			name string
			cmd  func(t *testing.T, role, name string) *exec.Cmd
		}{"C-" + cc, func(t *testing.T, role, name string) *exec.Cmd { return exec.Command(buildPeer(t, cc), role, name) }})
	}
	claimants = append(claimants, struct {
		name string
		cmd  func(t *testing.T, role, name string) *exec.Cmd
	}{"Python", func(t *testing.T, role, name string) *exec.Cmd {
		py, err := exec.LookPath("python3")
		if err != nil {
			t.Skip("python3 is not installed")
		}
		return exec.Command(py, "testdata/peer.py", role, name)
	}})
	for _, cl := range claimants {
		for _, role := range []string{"writer", "reader"} {
			t.Run(cl.name+"-"+role, func(t *testing.T) {
				r := newRing(t, 4096)
				end := func() ring.EndStat {
					t.Helper()
					st, err := r.Stat()
					if err != nil {
						t.Fatal(err)
					}
					if role == "writer" {
						return st.Writers[0]
					}
					return st.Readers[0]
				}
				expect := func(what string, want ring.EndStat) {
					t.Helper()
					if got := end(); got != want {
						t.Fatalf("%s: %s is %v (pid %d), want %v (pid %d)", what, role, got.State, got.Pid, want.State, want.Pid)
					}
				}
				expect("new ring", ring.EndStat{State: ring.EndNever})
				p, _ := startPeer(t, cl.cmd(t, "hold-"+role, r.Name()), true)
				pid := p.cmd.Process.Pid
				expect("claimed by "+cl.name, ring.EndStat{State: ring.EndOpen, Pid: pid})
				p.kill9(t)
				expect("claimant killed", ring.EndStat{State: ring.EndDead, Pid: pid})
				var closer interface{ Close() error }
				var err error
				if role == "writer" {
					closer, err = r.Writer()
				} else {
					closer, err = r.Reader()
				}
				if err != nil {
					t.Fatal(err)
				}
				expect("claimed by this Ring", ring.EndStat{State: ring.EndOpen, Pid: os.Getpid()})
				if err := closer.Close(); err != nil {
					t.Fatal(err)
				}
				expect("closed", ring.EndStat{State: ring.EndClosed, Pid: os.Getpid()})
			})
		}
	}
}

// TestStatCorrupt: Stat on the corrupt rings of corruptionTable (the
// peers' table) is an error wrapping ErrCorrupt exactly where a reader
// refuses the ring (C: EPROTO), figures elsewhere; likewise a state word
// that is no state. It reads outside nothing and writes nothing.
//
// Kills: the walk's length check against MaxMessage dropped
// ("length-beyond-max": figures, want ErrCorrupt); the marker's check
// against the head dropped ("wrap-marker-beyond-head"); the counters'
// check dropped ("head-behind-tail": a walk of 2^64 bytes, caught as a
// record past the head); states beyond 2 taken as "never".
func TestStatCorrupt(t *testing.T) {
	size := corruptSizes[1]
	name := ringName(t)
	s, err := shm.Create(name, size)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	mem := s.Bytes()
	copy(mem, corruption{}.image(size))
	r, err := ring.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	table := append([]corruption{
		{name: "writer-state-3", wstate: 3, wantRecv: "EPROTO"},
		{name: "reader-state-2^32-1", rstate: 1<<32 - 1, wantRecv: "EPROTO"},
		{name: "sane-wrapped", head: corruptCap + 40, tail: corruptCap - 16, wstate: 2, rstate: 2,
			words: map[uint64]uint32{corruptCap - 16: wrapMarker32, 0: 20, 32: 0}, wantRecv: "OK"},
	}, corruptionTable...)
	for _, c := range table {
		if c.hdr != nil {
			continue // a header refused at open: TestBadHeader's
		}
		img := c.image(size)
		copy(mem, img)
		st, err := r.Stat()
		switch {
		case c.wantRecv == "EPROTO" || c.wstate&0xff > 2 || c.rstate&0xff > 2:
			var pe *fs.PathError
			if !errors.Is(err, ring.ErrCorrupt) || !errors.Is(err, syscall.EPROTO) || !errors.As(err, &pe) {
				t.Errorf("%s: Stat %+v, %v; want a *fs.PathError wrapping ErrCorrupt", c.name, st, err)
			} else {
				t.Logf("%s: %v", c.name, err)
			}
		case err != nil:
			t.Errorf("%s: %v, want figures (a reader does not refuse this ring)", c.name, err)
		case st.Used != int(c.head-c.tail) || st.Messages*8 > st.Used || st.Bytes > st.Used:
			t.Errorf("%s: %+v: figures that do not fit head %d, tail %d", c.name, st, c.head, c.tail)
		}
		if !bytes.Equal(mem, img) {
			t.Fatalf("%s: Stat changed the object", c.name)
		}
	}
	copy(mem, table[2].image(size)) // sane-wrapped, exactly
	if st, err := r.Stat(); err != nil || st.Messages != 2 || st.Bytes != 20 || st.Used != 56 || st.Writers[0].State != ring.EndClosed {
		t.Fatalf("sane-wrapped: %+v, %v; want 2 messages, 20 bytes, 56 used, writer closed", st, err)
	}
}

// TestIs: Is tells a ring's object from another by the magic alone.
//
// Kills: Is comparing anything but the 8 bytes of magic (a plain object
// or a short one taken for a ring, or a ring not).
func TestIs(t *testing.T) {
	r := newRing(t, 64)
	plain := ringName(t)
	s, err := shm.Create(plain, 4096)
	if err != nil {
		t.Fatal(err)
	}
	copy(s.Bytes(), "SHMRINGX")
	s.Close()
	short := ringName(t)
	s, err = shm.Create(short, 4) // shorter than the magic
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	for _, c := range []struct {
		name string
		want bool
	}{{r.Name(), true}, {plain, false}, {short, false}} {
		f, err := os.Open(shm.Dir() + c.name)
		if err != nil {
			t.Fatal(err)
		}
		if got := ring.Is(f); got != c.want {
			t.Errorf("Is(%s) = %v, want %v", c.name, got, c.want)
		}
		f.Close()
	}
}

// TestStatLive: Stat from a third Ring while a writer and a reader
// stream through a small ring never calls the ring corrupt, and its
// figures always fit the ring (EAGAIN, a ring too busy to count, is
// allowed).
//
// It is a smoke test (and a -race run): the windows it covers are too
// narrow to hit reliably here; TestStatReleasedUnderWalk and
// TestStatMovedBetweenLoads open them on purpose, and kill the
// mutations of those windows deterministically.
func TestStatLive(t *testing.T) {
	const c = 128
	r := newRing(t, c)
	wr, rr, sr := openRing(t, r), openRing(t, r), openRing(t, r)
	w, err := wr.Writer()
	if err != nil {
		t.Fatal(err)
	}
	rd, err := rr.Reader()
	if err != nil {
		t.Fatal(err)
	}
	ctx := within(t, 30*time.Second)
	const count = 200000
	done := make(chan error, 2)
	go func() {
		msg := bytes.Repeat([]byte{0xAB}, 56) // over a released record's length: no length at all
		for i := range count {
			if err := w.Send(ctx, msg[:i%57]); err != nil {
				done <- err
				return
			}
		}
		done <- w.Close()
	}()
	go func() {
		buf := make([]byte, c)
		for range count {
			if _, err := rd.Receive(ctx, buf); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	stats, busy := 0, 0
	for finished := 0; finished < 2; {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			finished++
			continue
		default:
		}
		st, err := sr.Stat()
		stats++
		switch {
		case errors.Is(err, syscall.EAGAIN):
			busy++
		case err != nil:
			t.Fatalf("Stat %d during the stream: %v", stats, err)
		case st.Used > c || st.Bytes > st.Used || st.Messages*8 > st.Used || st.Lanes[0].Head-st.Lanes[0].Tail != uint64(st.Used):
			t.Fatalf("Stat %d during the stream: %+v does not fit the ring", stats, st)
		}
	}
	t.Logf("%d Stats during %d messages, %d too busy to count", stats, count, busy)
}

// TestStatMovedBetweenLoads: Stat loads the tail, then the head; if the
// reader releases and the writer sends in between, head - tail exceeds
// the capacity with no corruption at all. Stat must load the tail again
// and count, not call the ring corrupt.
//
// Kills: the pair judged without loading the tail again (ErrCorrupt:
// "head 288, tail 0, capacity 256").
func TestStatMovedBetweenLoads(t *testing.T) {
	r := newRing(t, 256)
	w, rd := ends(t, r)
	ctx := within(t, 10*time.Second)
	for range 8 { // 8 records of 32 bytes: the ring is full
		if err := w.Send(ctx, make([]byte, 24)); err != nil {
			t.Fatal(err)
		}
	}
	calls := 0
	ring.SetHookStatLoaded(func() {
		if calls++; calls == 1 { // tail 0 loaded: move both ends on
			for range 2 {
				if _, err := rd.Receive(ctx, make([]byte, 256)); err != nil {
					t.Error(err)
				}
			}
			if err := w.Send(ctx, make([]byte, 24)); err != nil {
				t.Error(err)
			}
		}
	})
	defer ring.SetHookStatLoaded(nil)
	st, err := r.Stat()
	if err != nil {
		t.Fatal(err)
	}
	if st.Messages != 7 || st.Lanes[0].Tail != 64 || st.Lanes[0].Head != 288 || st.Used != 224 {
		t.Fatalf("after 2 received and 1 sent between Stat's loads: %+v, want 7 messages, tail 64, head 288", st)
	}
}

// TestStatTruncated: Stat on a ring whose object another process
// truncated returns an error wrapping shm.ErrFault; the process lives.
//
// Kills: Stat without the fault guard (the test binary dies: "unexpected
// fault address", SIGBUS).
func TestStatTruncated(t *testing.T) {
	r := newRing(t, 4096)
	w, err := r.Writer()
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Send(within(t, 10*time.Second), []byte("hello")); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(shm.Dir()+r.Name(), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Stat(); !errors.Is(err, shm.ErrFault) {
		t.Fatalf("Stat of a truncated ring: %v, want shm.ErrFault", err)
	}
}
