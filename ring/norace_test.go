//go:build !race

package ring_test

// raceBuild: this test binary was built with -race.
const raceBuild = false
