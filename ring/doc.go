// Package ring streams messages between processes through a POSIX shared
// memory object: a ring of variable-size messages from 1 to 64 writers to
// 1 to 64 readers, that a Go, C (ring/c/shmring.h) or Python
// (ring/python/shmring.py) process can be any writer or reader of, 64-bit
// or 32-bit. LAYOUT.md specifies the memory layout (version 2) and the
// protocol; any implementation that follows it can take part.
//
// A ring is made once with Create (one writer, one reader), CreateWith
// (Options: how many writer and reader slots) or CreateMemfd (to hand it
// over as a descriptor), and opened by name with Open (or MapFile for a
// received descriptor). A process then claims a slot with Writer or
// Reader: one live process per slot, arbitrated by the kernel through an
// open-file-description lock on one byte per slot, so a claim is atomic
// in every language, and the slot of a process that dies is free again at
// once (the kernel drops the lock), whatever pid the next process gets
// and whatever pid namespace either lives in.
//
// Each writer slot has a lane of its own (capacity bytes): writers never
// contend, each writer's messages are delivered in its order, and a
// writer killed in the middle of a message (between Reserve and Commit)
// blocks nobody and never published it. Every reader receives every
// message (fan-out), taking the lanes in turn. With several reader slots
// the writer waits for the slowest live reader: a slow reader slows the
// others to its pace; one that closes stops holding the writer at once,
// one that dies within about 150-300 ms; a reader that joins starts at
// the next message published. With one reader slot, messages wait for a
// reader, and a reader that dies between Next and Release leaves the
// message for the next one (at least once).
//
// Messages are 0 to MaxMessage bytes, delivered whole. Send and Receive
// copy; Reserve and Commit, Next and Release work in place; SendBatch and
// ReceiveBatch move many messages with one store of a lane's counter and
// at most one wake-up. WaitReader and WaitWriter wait for a live process
// at the other end. Stat describes a ring without claiming anything. A
// blocked call spins briefly, then sleeps on a futex word in its slot
// after announcing it there, so the other side makes a system call to
// wake it only when it sleeps; while both sides run, a message costs no
// system call. A sleeping side checks its peers' locks every 150 ms, so a
// peer's death ends a blocked call within about 300 ms, and an idle ring
// costs (almost) no CPU.
//
// Guarantees: a Receive first delivers every message the writers
// committed, then returns io.EOF if every writer that claimed the ring
// closed its slot, ErrPeerGone if none lives and one died. A Send fails
// because of the reader (ErrPeerGone, io.ErrClosedPipe) only in a ring of
// one reader slot and only when it would otherwise block: while there is
// room, messages wait for a reader, and startup order does not matter. A
// ring of layout version 1 is refused (ErrNotRing, naming the version).
//
// The package is Go on the public API of github.com/posixshm/shm, with
// fcntl from package syscall for the locks (numbers from the module's
// internal/kernel) and, in -race builds, the module's store-load fence
// (internal/fence). It needs Linux and cgo, as shm does.
package ring
