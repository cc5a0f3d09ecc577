//go:build linux && cgo

package ring

// Stats returns how often an end announced a sleep and how often it woke
// the other side.
func Stats(e interface{ stats() (int64, int64) }) (sleeps, wakes int64) { return e.stats() }

func (e *end) stats() (int64, int64) { return e.sleeps.Load(), e.wakes.Load() }

// Timeouts returns how many of an end's sleeps ended by the PollPeer
// timeout rather than by a wake-up.
func Timeouts(e interface{ timedOut() int64 }) int64 { return e.timedOut() }

func (e *end) timedOut() int64 { return e.timeouts.Load() }

// PollPeer is how long a sleeping call waits before testing its peer.
const PollPeer = pollPeer

// HeaderSize is the data's offset in a ring of one writer and one reader.
var HeaderSize = headerSize(1, 1)

// Offsets in a ring of one writer and one reader.
var (
	OffHead        = writerSlot(0) + wsHead
	OffTail        = tailOff(1, 0, 0)
	OffWriterState = writerSlot(0) + wsState
	OffWriterPid   = writerSlot(0) + wsPid
	OffWriterSleep = writerSlot(0) + wsSleep
	OffReaderState = readerSlot(1, 0) + wsState
	OffReaderPid   = readerSlot(1, 0) + wsPid
	OffReaderSleep = readerSlot(1, 0) + rsSleep
)

// Offsets in a ring of nw writers and nr readers.
func DataOff(nw, nr int) int              { return headerSize(nw, nr) }
func WriterSlotOff(w int) int             { return writerSlot(w) }
func ReaderSlotOff(nw, r int) int         { return readerSlot(nw, r) }
func TailOff(nw, r, w int) int            { return tailOff(nw, r, w) }
func LaneOff(nw, nr, w, capacity int) int { return laneOff(nw, nr, w, capacity) }
func HeadOff(w int) int                   { return writerSlot(w) + wsHead }
func ClaimWord(old uint32) uint32         { return claimWord(old) }

// SetHookAnnounced sets a function wait calls after announcing a sleep
// and finding the ring unready, before it reads the peer's state.
func SetHookAnnounced(f func()) { testHookAnnounced = f }

// SetHookStatRecord sets a function Stat's walk calls before it reads
// each record.
func SetHookStatRecord(f func()) { testHookStatRecord = f }

// SetHookStatLoaded sets a function Stat calls between its loads of the
// tail and the head.
func SetHookStatLoaded(f func()) { testHookStatLoaded = f }

// Publishes returns how many times a writer stored the head or a reader
// the tail.
func Publishes(e interface{ published() int64 }) int64 { return e.published() }

func (e *end) published() int64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.publishes
}

// SetHookReload sets a function SendBatch calls before it loads the tail
// again in the middle of a batch.
func SetHookReload(f func()) { testHookReload = f }
