// Package kernel holds the Linux numbers the module uses (system calls,
// futex operations, fcntl commands, flags), generated from the C headers
// by cgo -godefs (types_linux.go), one file per GOARCH: so that none is
// typed in by hand, and so that a musl build, whose toolchain has no
// kernel headers, has them too.
package kernel

//go:generate sh -c "go tool cgo -objdir $(mktemp -d) -godefs types_linux.go | gofmt > zkernel_linux_amd64.go"
//go:generate sh -c "GOARCH=386 CC='gcc -m32' go tool cgo -objdir $(mktemp -d) -godefs types_linux.go | gofmt > zkernel_linux_386.go"
