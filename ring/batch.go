//go:build linux && cgo

package ring

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"io/fs"
	"runtime/debug"
	"time"

	"github.com/posixshm/shm"
	"github.com/posixshm/shm/internal/fence"
)

// testHookReload, if set (by tests), runs in SendBatch before it loads
// the tail again for a message the tail seen so far leaves no room for.
var testHookReload func()

// SendBatch sends the messages of msgs, in order, on the writer's lane,
// as many as the lane has room for, and returns how many it sent: the
// first n of msgs. It waits for room as Send does for the first message
// only, then writes the others while they fit, and publishes them all
// with one store of the head and at most one wake-up of each sleeping
// reader. A message longer than MaxMessage ends the batch before it: n
// messages are sent and err is ErrTooLarge (n is 0 if it is the first).
// While the lane is full for the first message its errors are Send's,
// with n 0. Counters that break the layout are ErrCorrupt: the n messages
// before (those that had room by the counters last seen sound) are sent.
// An empty msgs sends nothing and returns 0, nil.
func (w *Writer) SendBatch(ctx context.Context, msgs [][]byte) (n int, err error) {
	if ctx == nil {
		return 0, nilContext("sendbatch", w.r)
	}
	if len(msgs) == 0 {
		return 0, nil
	}
	r := w.r
	if len(msgs[0]) > int(r.max) {
		return 0, ErrTooLarge
	}
	if !w.begin() {
		return 0, r.errClosed("sendbatch")
	}
	defer w.leave("sendbatch", debug.SetPanicOnFault(true), &err)
	if w.resv >= 0 {
		return 0, argErr("ring sendbatch", r.name, "a reservation is pending: Commit it first")
	}
	// The first message: reserve waits for room and checks the head and
	// the tails; its record is written but not yet published.
	if _, err := w.reserve(ctx, "sendbatch", len(msgs[0])); err != nil {
		return 0, err
	}
	w.resv = -1
	data, capacity, maxm := w.lane, r.capacity, int(r.max)
	copy(data[w.pos+recordHdr:], msgs[0])
	binary.LittleEndian.PutUint64(data[w.pos:], uint64(len(msgs[0]))) // length, reserved word 0
	head := w.head + w.skip + recordSize(uint64(len(msgs[0])))
	off := head % capacity // kept equal to head % capacity below, without a division a message
	k := 1                 // n stays 0 until the return: a fault on the way publishes nothing
	t := w.tailSeen        // checked by reserve: head - t <= capacity, a multiple of 8
	for _, m := range msgs[1:] {
		if len(m) > maxm {
			err = ErrTooLarge
			break
		}
		rec := recordSize(uint64(len(m)))
		var skip uint64
		if rec > capacity-off {
			skip = capacity - off
		}
		need := skip + rec
		if capacity-(head-t) < need {
			if testHookReload != nil {
				testHookReload()
			}
			var bad string
			t, bad = w.least() // acquire: the readers are done with the bytes before it
			if bad != "" {
				err = r.errCorrupt("sendbatch", "%s", bad)
				break
			}
			if head-t > capacity || capacity-(head-t) < need { // (a reader joining counts as no room)
				break
			}
			w.tailSeen = t
		}
		if skip > 0 {
			binary.LittleEndian.PutUint64(data[off:], wrapMarker)
			off = 0
		}
		copy(data[off+recordHdr:], m)
		binary.LittleEndian.PutUint64(data[off:], uint64(len(m))) // length, reserved word 0
		head += need
		if off += rec; off == capacity {
			off = 0
		}
		k++
	}
	w.head = head
	w.offHead, w.offVal = head, off
	w.publishes++
	w.headp.Store(head) // release: every record of the batch before the head
	w.wakeReaders()
	return k, err
}

// ReceiveBatch copies the next messages into bufs, message i into
// bufs[i] with its length in lens[i], releases them, and returns how many
// it received. It waits as Receive does for the first message only
// (returning Receive's errors, with n 0), then takes the others the
// writers have published, lane after lane (looking at a lane's head again
// when it has taken all it saw there), up to len(bufs), and stops before
// a message its buffer is too small for (io.ErrShortBuffer if that is the
// first: the message stays). Each lane's part of the batch is released
// with one store of the tail and at most one wake-up of its writer. A
// record or counter that breaks the layout is ErrCorrupt: the n messages
// before it are received. lens must be at least as long as bufs. A
// message from Next not yet released is the batch's first.
func (rd *Reader) ReceiveBatch(ctx context.Context, bufs [][]byte, lens []int) (n int, err error) {
	if ctx == nil {
		return 0, nilContext("receivebatch", rd.r)
	}
	r := rd.r
	if len(lens) < len(bufs) {
		return 0, argErr("ring receivebatch", r.name, "%d lengths for %d buffers", len(lens), len(bufs))
	}
	if len(bufs) == 0 {
		return 0, nil
	}
	if !rd.begin() {
		return 0, r.errClosed("receivebatch")
	}
	defer rd.leave("receivebatch", debug.SetPanicOnFault(true), &err)
	// The first message: next waits for it and checks it.
	msg, err := rd.next(ctx, "receivebatch")
	if err != nil {
		return 0, err
	}
	if len(bufs[0]) < len(msg) {
		return 0, io.ErrShortBuffer
	}
	lens[0] = copy(bufs[0], msg)
	i := rd.hl
	l := &rd.lanes[i]
	capacity, maxm := r.capacity, r.max
	tail := l.tail + recordSize(uint64(len(msg)))
	off := rd.at + recordSize(uint64(len(msg))) // kept equal to tail % capacity below, without a division a message
	if off == capacity {
		off = 0
	}
	rd.held = -1
	k := 1 // n stays 0 until the return: a fault on the way publishes nothing
	full := false
	for visited := 0; ; {
		h := l.headSeen // checked: tail <= h, h - tail <= capacity, a multiple of 8
		data := l.data
		got := false
		for k < len(bufs) {
			if tail == h { // look once more: the writer may have published more
				if h = l.headp.Load(); h == tail { // acquire: the records before the head
					break
				}
				if h-tail > capacity || h%recordAlign != 0 {
					err = r.errCorrupt("receivebatch", "lane %d: head %d, tail %d, capacity %d", i, h, tail, capacity)
					break
				}
				l.headSeen = h
			}
			m := binary.LittleEndian.Uint32(data[off:]) // tail < h: a record or marker was published here
			if m == wrapMarker {
				if off == 0 || h-tail < capacity-off {
					err = r.errCorrupt("receivebatch", "lane %d: wrap marker at %d with head %d, tail %d", i, off, h, tail)
					break
				}
				tail += capacity - off
				off = 0
				continue
			}
			rec := recordSize(uint64(m))
			if uint64(m) > maxm || rec > h-tail || off+rec > capacity {
				err = r.errCorrupt("receivebatch", "lane %d: record of %d bytes at %d with %d published", i, m, off, h-tail)
				break
			}
			b := bufs[k]
			if len(b) < int(m) {
				full = true
				break
			}
			lens[k] = copy(b, data[off+recordHdr:off+recordHdr+uint64(m)])
			tail += rec
			if off += rec; off == capacity {
				off = 0
			}
			k++
			got = true
		}
		if tail != l.tail {
			l.tail = tail
			l.offTail, l.offVal = tail, off
			rd.publishes++
			l.tailp.Store(tail) // release: done with the batch's records before the tail moves
			fence.Full()
			rd.wakeWord(l.wsleep, l.wsleepOff)
		}
		if got {
			rd.last = i
		}
		if visited++; err != nil || full || k == len(bufs) || visited == len(rd.lanes) {
			break
		}
		if i++; i == len(rd.lanes) {
			i = 0
		}
		l = &rd.lanes[i]
		if tail = l.tail; tail%recordAlign != 0 {
			err = r.errCorrupt("receivebatch", "lane %d: tail %d is not a multiple of %d", i, tail, recordAlign)
			break
		}
		off = l.offVal
		if tail != l.offTail {
			off = tail % capacity
		}
	}
	return k, err
}

// WaitReader returns nil once a live reader holds the ring: a reader slot
// is open and its claim is held by a live process (this one included). A
// reader that closed, died or never came is waited for, by polling (every
// few milliseconds, at most every 50 ms), so that a writer whose reader
// died can wait for the next one. It returns the context's error, or an
// error wrapping fs.ErrClosed if the Writer is closed (Close ends a
// WaitReader in progress).
func (w *Writer) WaitReader(ctx context.Context) (err error) {
	if ctx == nil {
		return nilContext("waitreader", w.r)
	}
	defer w.r.guard("waitreader", debug.SetPanicOnFault(true), &err)
	r := w.r
	return w.waitPeer(ctx, "waitreader", func() bool {
		for i := range r.rs {
			if r.rs[i].state.Load()&stateMask == endOpen && r.alive(lockReader0+int64(i)) {
				return true
			}
		}
		return false
	})
}

// WaitWriter returns nil once a live writer holds the ring, as WaitReader
// does for a reader: so that a reader can learn that a writer is
// attached (Receive's io.EOF and ErrPeerGone say the last one went).
func (rd *Reader) WaitWriter(ctx context.Context) (err error) {
	if ctx == nil {
		return nilContext("waitwriter", rd.r)
	}
	defer rd.r.guard("waitwriter", debug.SetPanicOnFault(true), &err)
	r := rd.r
	return rd.waitPeer(ctx, "waitwriter", func() bool {
		for i := range r.ws {
			if r.ws[i].state.Load()&stateMask == endOpen && r.alive(lockWriter0+int64(i)) {
				return true
			}
		}
		return false
	})
}

// waitPeerMax is the longest a waitPeer sleeps between two looks.
const waitPeerMax = 50 * time.Millisecond

// waitPeer polls until live() says a live peer holds a slot. It sleeps on
// the end's own futex word, so that Close (which wakes it) ends the wait
// at once; a wake from a peer only makes it look again.
func (e *end) waitPeer(ctx context.Context, op string, live func() bool) error {
	r := e.r
	if !e.begin() {
		return r.errClosed(op)
	}
	defer e.mu.Unlock()
	d := time.Millisecond
	for {
		if live() {
			return nil
		}
		if e.closing.Load() {
			return r.errClosed(op)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		e.sleep.Store(1) // Close swaps it to 0 and wakes us
		if e.closing.Load() {
			e.sleep.Store(0)
			return r.errClosed(op)
		}
		sub, cancel := context.WithTimeout(ctx, d)
		err := r.mem.Wait(sub, e.sleepOff, 1)
		cancel()
		e.sleep.Store(0)
		if err != nil && ctx.Err() == nil && sub.Err() == nil && !errors.Is(err, context.DeadlineExceeded) {
			if errors.Is(err, shm.ErrFault) { // the futex word's page is gone
				return &fs.PathError{Op: "ring " + op, Path: r.name, Err: shm.ErrFault}
			}
			return err
		}
		d = min(2*d, waitPeerMax)
	}
}
