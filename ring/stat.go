//go:build linux && cgo

package ring

import (
	"encoding/binary"
	"fmt"
	"io/fs"
	"math"
	"os"
	"runtime/debug"
	"sync/atomic"
	"syscall"
)

// EndState is the state of a ring's writer or reader slot.
type EndState uint32

// The states of a slot. A process that dies holding a slot leaves its
// state word at open; the slot is then dead: nobody holds its lock.
const (
	EndNever  EndState = iota // never claimed
	EndOpen                   // claimed by a live process (its lock is held)
	EndClosed                 // closed cleanly (a writer's close ends the stream)
	EndDead                   // claimed, but its process died without closing
)

var endStateNames = [...]string{"never", "open", "closed", "dead"}

// String returns "never", "open", "closed" or "dead".
func (s EndState) String() string {
	if int(s) < len(endStateNames) {
		return endStateNames[s]
	}
	return fmt.Sprintf("EndState(%d)", uint32(s))
}

// MarshalText returns String's word, so that JSON shows the state by name.
func (s EndState) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// EndStat describes a writer or reader slot of a ring.
type EndStat struct {
	State EndState `json:"state"`
	// Pid is the process id its last claimant recorded at its claim, in
	// that process's pid namespace; 0 if none was recorded (never
	// claimed, or claimed by a program that records none). It is only
	// informational: the claimant may have died and its pid been reused,
	// or live in another pid namespace. State is judged by the slot's
	// lock, never by this pid.
	Pid int `json:"pid"`
}

// LaneStat describes one writer's lane.
type LaneStat struct {
	Head     uint64 `json:"head"`     // bytes its writers published since the ring was made
	Tail     uint64 `json:"tail"`     // the least tail of the readers that hold the lane (Head if none does)
	Messages int    `json:"messages"` // messages between Tail and Head
	Bytes    int    `json:"bytes"`    // their lengths' sum
	Used     int    `json:"used"`     // Head - Tail: Bytes plus record headers, padding and bytes skipped at a wrap
}

// Stat describes a ring at one moment. Messages, Bytes and Used count,
// summed over the lanes, what the writers published and the slowest
// holding reader has not released (a message a reader holds from Next
// counts). In a ring of one reader slot that slot always holds (messages
// wait for a reader, dead or closed); in a ring of several, a reader
// slot holds while it is open and its process lives: what no live reader
// waits for is not counted.
type Stat struct {
	Capacity   int        `json:"capacity"`    // data bytes of each lane
	MaxMessage int        `json:"max_message"` // the largest message
	Messages   int        `json:"messages"`    // messages not yet consumed
	Bytes      int        `json:"bytes"`       // their lengths' sum
	Used       int        `json:"used"`        // data bytes they take: Bytes plus record headers, padding and bytes skipped at a wrap
	Lanes      []LaneStat `json:"lanes"`       // by writer slot
	Writers    []EndStat  `json:"writers"`     // by writer slot
	Readers    []EndStat  `json:"readers"`     // by reader slot
}

// statTries is how many times Stat starts its walk of a lane's records
// again because the slowest reader released a record it was about to
// read.
const statTries = 64

// Stat describes the ring: its sizes, the messages not yet consumed, and
// each writer and reader slot's state and recorded pid. It claims nothing
// and stores nothing: it loads the ring's words, tests the locks of the
// slots whose state says open (F_OFD_GETLK), and walks each lane's
// records from the least holding tail to the head, checking each as a
// reader does. Counters, records or state words that break the layout are
// an error wrapping ErrCorrupt. A reader that keeps releasing records
// under the walk (a ring too busy to count, 64 times over) is an error
// wrapping syscall.EAGAIN; try again. The walk takes a time proportional
// to the number of messages.
func (r *Ring) Stat() (st Stat, err error) {
	r.mu.Lock() // Close waits: the mapping and the lock's descriptor stay
	defer r.mu.Unlock()
	if r.closed {
		return Stat{}, r.errClosed("stat")
	}
	defer r.guard("stat", debug.SetPanicOnFault(true), &err)
	st.Capacity, st.MaxMessage = int(r.capacity), int(r.max)
	st.Writers, st.Readers = make([]EndStat, len(r.ws)), make([]EndStat, len(r.rs))
	for i := range r.ws {
		if st.Writers[i], err = r.endStat("writer", i, r.ws[i].state, r.ws[i].pid, lockWriter0+int64(i), r.writers[i] != nil); err != nil {
			return Stat{}, err
		}
	}
	for i := range r.rs {
		if st.Readers[i], err = r.endStat("reader", i, r.rs[i].state, r.rs[i].pid, lockReader0+int64(i), r.readers[i] != nil); err != nil {
			return Stat{}, err
		}
	}
	st.Lanes = make([]LaneStat, len(r.ws))
	for w := range r.ws {
		var tails []*atomic.Uint64 // the holding readers' (LAYOUT.md §6)
		for i := range r.rs {
			if len(r.rs) == 1 || st.Readers[i].State == EndOpen {
				tails = append(tails, r.rs[i].tails[w])
			}
		}
		if st.Lanes[w], err = r.backlog(w, tails); err != nil {
			return Stat{}, err
		}
		st.Messages += st.Lanes[w].Messages
		st.Bytes += st.Lanes[w].Bytes
		st.Used += st.Lanes[w].Used
	}
	return st, nil
}

// endStat is the state of slot i of a kind (end: "writer" or "reader"),
// whose words are state and pid and whose lock byte is lock; mine: this
// Ring holds it (our own open file description's lock is invisible to
// F_OFD_GETLK).
func (r *Ring) endStat(end string, i int, state, pid *atomic.Uint32, lock int64, mine bool) (EndStat, error) {
	var es EndStat
	p := pid.Load()
	if p <= math.MaxInt32 { // a pid_t is an int: anything larger is not a pid
		es.Pid = int(p)
	}
	switch s := state.Load() & stateMask; s {
	case endNone:
		es.State = EndNever
	case endClosed:
		es.State = EndClosed
	case endOpen:
		es.State = EndOpen
		if !mine {
			held, err := locked(r.lockf, lock)
			if err != nil { // never declare dead what we cannot judge
				return es, &fs.PathError{Op: "fcntl", Path: r.name, Err: err}
			}
			if !held {
				es.State = EndDead
			}
		}
	default:
		return es, r.errCorrupt("stat", "%s slot %d state %d", end, i, s)
	}
	return es, nil
}

// backlog counts the records of lane w between the least of tails (the
// holding readers') and the head. A record is read only while that least
// tail has not passed it (the writer may overwrite it after), and checked
// as a reader checks it.
func (r *Ring) backlog(w int, tails []*atomic.Uint64) (LaneStat, error) {
	c, s := r.capacity, &r.ws[w]
	if len(tails) == 0 {
		h := s.head.Load()
		return LaneStat{Head: h, Tail: h}, nil
	}
	// least loads the tails, then the head, and returns the tail furthest
	// behind the head and whose it is.
	least := func() (t, h uint64, who *atomic.Uint64) {
		ts := make([]uint64, len(tails))
		for i, tp := range tails {
			ts[i] = tp.Load()
		}
		if testHookStatLoaded != nil {
			testHookStatLoaded()
		}
		h = s.head.Load()
		t = h
		for i, ti := range ts {
			if len(r.rs) > 1 && ti%recordAlign == 0 && h-ti > c && h-ti < 1<<63 {
				continue // a reader joining (its state stored, its tails not yet): it holds nothing yet (LAYOUT.md §5, Room)
			}
			if who == nil || h-ti > h-t {
				t, who = ti, tails[i]
			}
		}
		return t, h, who
	}
	t, h, who := least()
	for try := 0; ; try++ {
		if who == nil { // every holding reader is joining
			return LaneStat{Head: h, Tail: h}, nil
		}
		if try == statTries {
			return LaneStat{}, &fs.PathError{Op: "ring stat", Path: r.name, Err: fmt.Errorf("the readers released records faster than they could be counted: %w", syscall.EAGAIN)}
		}
		if h-t > c || h%recordAlign != 0 || t%recordAlign != 0 {
			// the tails were loaded before the head: a reader may have
			// moved in between; a tail that did not move judges the pair
			if who.Load() != t {
				t, h, who = least()
				continue
			}
			return LaneStat{}, r.errCorrupt("stat", "lane %d: head %d, tail %d, capacity %d", w, h, t, c)
		}
		var msgs, bytes uint64
		p, moved := t, false
		for p != h {
			if testHookStatRecord != nil {
				testHookStatRecord()
			}
			off := p % c
			n := (*atomic.Uint32)(unsafePointer(s.data, int(off))).Load()
			if t2 := who.Load(); t2-t > p-t { // released (the record may be overwritten): count again from there
				t, h, who = least()
				moved = true
				break
			}
			if n == wrapMarker {
				if off == 0 || h-p < c-off {
					return LaneStat{}, r.errCorrupt("stat", "lane %d: wrap marker at %d with head %d, tail %d", w, off, h, p)
				}
				p += c - off
				continue
			}
			if uint64(n) > r.max || recordSize(uint64(n)) > h-p || off+recordSize(uint64(n)) > c {
				return LaneStat{}, r.errCorrupt("stat", "lane %d: record of %d bytes at %d with %d published", w, n, off, h-p)
			}
			msgs++
			bytes += uint64(n)
			p += recordSize(uint64(n))
		}
		if moved {
			continue
		}
		return LaneStat{Head: h, Tail: t, Messages: int(msgs), Bytes: int(bytes), Used: int(h - t)}, nil
	}
}

// testHookStatLoaded, if set (by tests), runs in Stat between its loads
// of the tail and the head.
var testHookStatLoaded func()

// testHookStatRecord, if set (by tests), runs in Stat's walk before each
// record is read.
var testHookStatRecord func()

// Is reports whether the object or file f starts with a ring's magic (of
// any layout version: Open tells whether this package can use it). It
// reads 8 bytes at offset 0 and maps nothing; f needs read access.
func Is(f *os.File) bool {
	var b [8]byte
	_, err := f.ReadAt(b[:], 0)
	return err == nil && binary.LittleEndian.Uint64(b[:]) == binary.LittleEndian.Uint64([]byte(magic))
}
