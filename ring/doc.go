// Package ring streams messages between processes through a POSIX shared
// memory object: a single-producer single-consumer ring of variable-size
// messages that a Go, C (ring/c/shmring.h) or Python (ring/python/shmring.py)
// process can be either end of, 64-bit or 32-bit. LAYOUT.md specifies the
// memory layout and the protocol; any implementation that follows it can
// take part.
//
// A ring is made once with Create (or CreateMemfd, to hand it over as a
// descriptor) and opened by name with Open (or MapFile for a received
// descriptor). A process then claims an end with Writer or Reader: at most
// one live writer and one live reader, arbitrated by the kernel through an
// open-file-description lock on one byte per end, so a claim is atomic in
// every language, and the end of a process that dies is free again at once
// (the kernel drops the lock), whatever pid the next process gets and
// whatever pid namespace either lives in.
//
// Messages are 0 to MaxMessage bytes, delivered whole and in order. Send
// and Receive copy; Reserve and Commit, Next and Release work in place;
// SendBatch and ReceiveBatch move many messages with one store of the
// shared counter and at most one wake-up. WaitReader and WaitWriter wait
// for a live process at the other end. A
// blocked call spins briefly, then sleeps on a futex word in the object
// after announcing it there, so the other side makes a system call to wake
// it only when it sleeps; while both sides run, a message costs no system
// call. A sleeping side wakes every 150 ms to check that its peer still
// holds its lock, so a peer's death ends a blocked call within about
// 200 ms, and an idle ring costs (almost) no CPU.
//
// Guarantees: a Receive first delivers every message the writer committed,
// then returns io.EOF if the writer closed its end, ErrPeerGone if its
// process died; a message is consumed when it is released, so a reader
// that dies between Next and Release leaves the message for the next
// reader (at least once). A Send fails because of the reader (ErrPeerGone,
// io.ErrClosedPipe) only when it would otherwise block: while there is
// room, messages wait for a reader, and startup order does not matter.
//
// The package is Go on the public API of github.com/posixshm/shm, with
// fcntl from package syscall for the locks (numbers from the module's
// internal/kernel) and, in -race builds, the module's store-load fence
// (internal/fence). It needs Linux and cgo, as shm does.
package ring
