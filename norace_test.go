//go:build linux && cgo && !race

package shm_test

// raceEnabled: see race_test.go.
const raceEnabled = false
