//go:build !race

package fence

// Full is a no-op: without -race, Go's atomics are sequentially consistent.
func Full() {}
