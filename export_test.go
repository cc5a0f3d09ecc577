//go:build cgo

package shm

// SetRandName makes CreateTemp draw the random part of its names from f
// until restore is called, so that a test can make the names it draws
// collide. Not safe while CreateTemp runs concurrently.
func SetRandName(f func() string) (restore func()) {
	old := randName
	randName = f
	return func() { randName = old }
}
