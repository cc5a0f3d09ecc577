package ring

// LAYOUT.md is the contract: these constants and it change together.

// The layout, version 2, as LAYOUT.md specifies it. Every field is
// little-endian, fixed-width and naturally aligned.
const (
	// Version is the layout version this package writes and reads.
	Version = 2

	magic       = "SHMRING\x00" // bytes 0..7
	fixedHeader = 512           // the fixed header; the writer slots follow it
	wrapMarker  = 0xFFFFFFFF    // a record length meaning "continue at data offset 0"
	recordAlign = 8             // records start at multiples of 8 from the lane's start
	recordHdr   = 8             // u32 length, u32 reserved (0)

	offMagic      = 0  // [8]byte magic
	offVersion    = 8  // u32 layout version
	offHeaderSize = 12 // u32 header size: lane 0's data offset
	offCapacity   = 16 // u64 data bytes of each lane
	offMaxMessage = 24 // u64 largest message
	offReaders    = 32 // u32 reader slots, 1 to 64
	offWriters    = 36 // u32 writer slots, 1 to 64
	lockWriter0   = 64 // byte offset of writer slot 0's OFD lock (advisory; the byte holds 0); slot w's is lockWriter0+w
	lockReader0   = 128

	writerSlotSize = 192 // a writer slot, at fixedHeader + writerSlotSize*w
	wsState        = 0   // u32 state word, in a slot of either kind
	wsPid          = 4   // u32 pid its last claimant recorded (0: unknown); informational only
	wsHead         = 64  // u64 bytes published on the slot's lane (monotonic), its own cache line
	wsSleep        = 128 // u32 futex word: 1 while the writer sleeps or is about to
	rsSleep        = 64  // in a reader slot: u32 futex word, 1 while the reader sleeps or is about to
	rsTails        = 128 // in a reader slot: u64 tail of each lane w at rsTails + 8*w

	maxEnds     = 64 // most writer slots, and most reader slots
	minCapacity = 64
	maxCapacity = 1 << 40 // of each lane; and of all lanes together
)

// The state in a slot's state word's low byte; its high 24 bits count the
// slot's claims.
const (
	endNone   = 0 // never claimed
	endOpen   = 1 // claimed: its holder's OFD lock tells whether it lives
	endClosed = 2 // closed cleanly
	stateMask = 0xff
)

// claimWord is the state word a claimant of a slot whose word was old
// stores: open, the claim count one more.
func claimWord(old uint32) uint32 { return ((old>>8)+1)&0xffffff<<8 | endOpen }

// readerSlotSize is the size of a reader slot of a ring of w writer slots.
func readerSlotSize(w int) int { return 128 + 64*((w+7)/8) }

// readerSlots is the offset of reader slot 0 of a ring of w writer slots.
func readerSlots(w int) int { return fixedHeader + writerSlotSize*w }

// headerSize is the offset of lane 0's data in a ring of w writers and r
// readers: the header_size field.
func headerSize(w, r int) int { return readerSlots(w) + readerSlotSize(w)*r }

// writerSlot and readerSlot are the offsets of a slot.
func writerSlot(w int) int         { return fixedHeader + writerSlotSize*w }
func readerSlot(nw, r int) int     { return readerSlots(nw) + readerSlotSize(nw)*r }
func tailOff(nw, r, w int) int     { return readerSlot(nw, r) + rsTails + 8*w }
func laneOff(nw, nr, w, c int) int { return headerSize(nw, nr) + c*w }

// maxMessage is the largest message of a ring of capacity data bytes:
// half the data less a record header, so that a record always fits once
// the ring is empty, wherever the writer stands.
func maxMessage(capacity uint64) uint64 { return capacity/2 - recordHdr }

// recordSize is the bytes a message of n bytes takes in the ring.
func recordSize(n uint64) uint64 { return recordHdr + (n+recordAlign-1)&^(recordAlign-1) }
