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

// EndState is the state of a ring's writing or reading end.
type EndState uint32

// The states of an end. A process that dies holding an end leaves its
// state word at open; the end is then dead: nobody holds its lock.
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

// EndStat describes one end of a ring.
type EndStat struct {
	State EndState `json:"state"`
	// Pid is the process id its last claimant recorded at its claim, in
	// that process's pid namespace; 0 if none was recorded (never
	// claimed, or claimed by a program that records none). It is only
	// informational: the claimant may have died and its pid been reused,
	// or live in another pid namespace. State is judged by the end's
	// lock, never by this pid.
	Pid int `json:"pid"`
}

// Stat describes a ring at one moment. Messages, Bytes and Used count
// what the writer published and the reader has not released (a message
// the reader holds from Next counts).
type Stat struct {
	Capacity   int     `json:"capacity"`    // data bytes
	MaxMessage int     `json:"max_message"` // the largest message
	Messages   int     `json:"messages"`    // messages not yet consumed
	Bytes      int     `json:"bytes"`       // their lengths' sum
	Used       int     `json:"used"`        // data bytes they take: Bytes plus record headers, padding and bytes skipped at a wrap
	Head       uint64  `json:"head"`        // bytes the writer published since the ring was made
	Tail       uint64  `json:"tail"`        // bytes the reader consumed since the ring was made
	Writer     EndStat `json:"writer"`
	Reader     EndStat `json:"reader"`
}

// statTries is how many times Stat starts its walk of the records again
// because the reader released a record it was about to read.
const statTries = 64

// Stat describes the ring: its sizes, the messages not yet consumed, and
// each end's state and recorded pid. It claims nothing and stores
// nothing: it loads the ring's words and walks the records from the tail
// to the head, checking each as a reader does, and tests a dead-looking
// end's lock (F_OFD_GETLK). Counters or records that break the layout are
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
	if st.Writer, err = r.endStat("writer", r.wstate, r.wpid, lockWriter, r.w != nil); err != nil {
		return Stat{}, err
	}
	if st.Reader, err = r.endStat("reader", r.rstate, r.rpid, lockReader, r.r != nil); err != nil {
		return Stat{}, err
	}
	if err = r.backlog(&st); err != nil {
		return Stat{}, err
	}
	return st, nil
}

// endStat is the state of the end whose words are state and pid and whose
// lock byte is lock; mine: this Ring holds it (our own open file
// description's lock is invisible to F_OFD_GETLK).
func (r *Ring) endStat(end string, state, pid *atomic.Uint32, lock int64, mine bool) (EndStat, error) {
	var es EndStat
	p := pid.Load()
	if p <= math.MaxInt32 { // a pid_t is an int: anything larger is not a pid
		es.Pid = int(p)
	}
	switch s := state.Load(); s {
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
		return es, r.errCorrupt("stat", "%s state %d", end, s)
	}
	return es, nil
}

// backlog counts the records between the tail and the head into st. A
// record is read only while the tail has not passed it (the writer may
// overwrite it after), and checked as the reader checks it.
func (r *Ring) backlog(st *Stat) error {
	c := r.capacity
	t := r.tail.Load()
	if testHookStatLoaded != nil {
		testHookStatLoaded()
	}
	h := r.head.Load()
	for try := 0; ; try++ {
		if try == statTries {
			return &fs.PathError{Op: "ring stat", Path: r.name, Err: fmt.Errorf("the reader released records faster than they could be counted: %w", syscall.EAGAIN)}
		}
		if h-t > c || h%recordAlign != 0 || t%recordAlign != 0 {
			// tail was loaded before head: the reader may have moved
			// in between; a tail that did not move judges the pair
			if t2 := r.tail.Load(); t2 != t {
				t, h = t2, r.head.Load()
				continue
			}
			return r.errCorrupt("stat", "head %d, tail %d, capacity %d", h, t, c)
		}
		var msgs, bytes uint64
		p, moved := t, false
		for p != h {
			if testHookStatRecord != nil {
				testHookStatRecord()
			}
			off := p % c
			n := (*atomic.Uint32)(unsafePointer(r.data, int(off))).Load()
			if t2 := r.tail.Load(); t2-t > p-t { // released (the record may be overwritten): count again from there
				t, h, moved = t2, r.head.Load(), true
				break
			}
			if n == wrapMarker {
				if off == 0 || h-p < c-off {
					return r.errCorrupt("stat", "wrap marker at %d with head %d, tail %d", off, h, p)
				}
				p += c - off
				continue
			}
			if uint64(n) > r.max || recordSize(uint64(n)) > h-p || off+recordSize(uint64(n)) > c {
				return r.errCorrupt("stat", "record of %d bytes at %d with %d published", n, off, h-p)
			}
			msgs++
			bytes += uint64(n)
			p += recordSize(uint64(n))
		}
		if moved {
			continue
		}
		st.Messages, st.Bytes, st.Used, st.Head, st.Tail = int(msgs), int(bytes), int(h-t), h, t
		return nil
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
