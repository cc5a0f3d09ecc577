package ring

// LAYOUT.md is the contract: these constants and it change together.

// The layout, version 1, as LAYOUT.md specifies it. Every field is
// little-endian, fixed-width and naturally aligned.
const (
	// Version is the layout version this package writes and reads.
	Version = 1

	magic       = "SHMRING\x00" // bytes 0..7
	headerSize  = 512           // bytes before the data; also the data's offset
	wrapMarker  = 0xFFFFFFFF    // a record length meaning "continue at data offset 0"
	recordAlign = 8             // records start at multiples of 8 from the data's start
	recordHdr   = 8             // u32 length, u32 reserved (0)

	offMagic       = 0   // [8]byte magic
	offVersion     = 8   // u32 layout version
	offHeaderSize  = 12  // u32 header size (data offset)
	offCapacity    = 16  // u64 data bytes
	offMaxMessage  = 24  // u64 largest message
	offWriterState = 32  // u32 endNone, endOpen or endClosed
	offReaderState = 36  // u32
	offWriterPid   = 40  // u32 pid its last claimant recorded (0: unknown); informational only
	offReaderPid   = 44  // u32
	offHead        = 64  // u64 bytes written (monotonic), its own cache line
	offTail        = 128 // u64 bytes consumed (monotonic), its own cache line
	offReaderSleep = 192 // u32 futex word: 1 while the reader sleeps or is about to
	offWriterSleep = 256 // u32 futex word: 1 while the writer sleeps or is about to
	lockWriter     = 448 // byte offset of the writer's OFD lock (advisory; the byte holds 0)
	lockReader     = 449 // the reader's

	minCapacity = 64
	maxCapacity = 1 << 40
)

// End states, in offWriterState and offReaderState.
const (
	endNone   = 0 // never claimed
	endOpen   = 1 // claimed: its holder's OFD lock tells whether it lives
	endClosed = 2 // closed cleanly
)

// maxMessage is the largest message of a ring of capacity data bytes:
// half the data less a record header, so that a record always fits once
// the ring is empty, wherever the writer stands.
func maxMessage(capacity uint64) uint64 { return capacity/2 - recordHdr }

// recordSize is the bytes a message of n bytes takes in the ring.
func recordSize(n uint64) uint64 { return recordHdr + (n+recordAlign-1)&^(recordAlign-1) }
