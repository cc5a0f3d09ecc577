//go:build linux && !cgo

package shm

// github.com/posixshm/shm calls libc's shm_open, mmap and friends through
// cgo. Built with CGO_ENABLED=0 the next line fails to compile, and the
// compiler's message names the fix.
var _ = shm_requires_cgo__build_with_CGO_ENABLED_1_and_a_C_compiler
