//go:build linux && cgo

package shm

// SetRandName makes CreateTemp draw the random part of its names from f
// until restore is called, so that a test can make the names it draws
// collide. Not safe while CreateTemp runs concurrently.
func SetRandName(f func() string) (restore func()) {
	old := randName
	randName = f
	return func() { randName = old }
}

// SetNoMadvPopulate makes every mapping (OpenFile, MapFile,
// CreateMemfdWith) behave as on a kernel without MADV_POPULATE_* (before
// 5.14) until restore is called.
func SetNoMadvPopulate() (restore func()) {
	testNoMadvPopulate = true
	return func() { testNoMadvPopulate = false }
}
