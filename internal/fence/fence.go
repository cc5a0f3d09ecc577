// Package fence orders a store before a later load on memory that other
// processes share, in race builds too.
//
// Go's sync/atomic operations are sequentially consistent, which the
// announce-then-recheck handshakes of the lock and the ring rely on: a
// sleeper stores "I sleep" and then loads the data, a waker stores the
// data and then loads "someone sleeps", and at least one of them must see
// the other's store. Under -race, atomics on memory outside the Go heap (a
// shared mapping) are performed by the race runtime as a release store
// and an acquire load (golang/go#58020), which lets both loads miss both
// stores. Full, called between the store and the load, restores the
// order: a no-op without -race, a C11 seq_cst fence through cgo with it.
package fence
