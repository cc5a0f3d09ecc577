//go:build !linux

package shm

// github.com/posixshm/shm is Linux's POSIX shared memory through glibc or
// musl. On any other system the next line fails to compile, and the
// compiler's message says why.
var _ = shm_is_linux_only__build_with_GOOS_linux
