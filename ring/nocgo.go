//go:build linux && !cgo

package ring

// github.com/posixshm/shm/ring is built on github.com/posixshm/shm, which
// calls libc through cgo. Built with CGO_ENABLED=0 the next line fails to
// compile, and the compiler's message names the fix.
var _ = ring_requires_cgo__build_with_CGO_ENABLED_1_and_a_C_compiler
