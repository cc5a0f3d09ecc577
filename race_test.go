//go:build linux && cgo && race

package shm_test

// raceEnabled: the race detector slows every goroutine several times, so
// bounds on the time a thousand goroutines take are not checked under it.
const raceEnabled = true
