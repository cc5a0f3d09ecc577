//go:build linux && cgo

package shm

// SetNoMemfd makes CreateMemfdWith behave as with a C library that lacks
// memfd_create until restore is called.
func SetNoMemfd() (restore func()) {
	testNoMemfd = true
	return func() { testNoMemfd = false }
}
