package shm

// SetNoMadvPopulate makes OpenFile behave as on a kernel without
// MADV_POPULATE_* (before 5.14) until restore is called; tests only.
func SetNoMadvPopulate() (restore func()) {
	testNoMadvPopulate = true
	return func() { testNoMadvPopulate = false }
}
