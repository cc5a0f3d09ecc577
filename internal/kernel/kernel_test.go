package kernel

import (
	"bytes"
	"os"
	"os/exec"
	"runtime"
	"testing"
)

// TestGenerated regenerates this GOARCH's file from the C headers and
// fails if it differs from the one committed: a number that drifted from
// the headers, or an edit by hand, fails here. It needs glibc's headers
// (the kernel's UAPI, which musl's toolchain lacks) and, for 386, gcc -m32.
func TestGenerated(t *testing.T) {
	if _, err := os.Stat("/usr/include/linux/futex.h"); err != nil {
		t.Skip("no kernel headers (/usr/include/linux/futex.h) to generate from")
	}
	cc := "gcc"
	if runtime.GOARCH == "386" {
		cc = "gcc -m32"
	}
	cmd := exec.Command("go", "tool", "cgo", "-objdir", t.TempDir(), "-godefs", "types_linux.go")
	cmd.Env = append(os.Environ(), "CC="+cc, "GOARCH="+runtime.GOARCH)
	out, err := cmd.Output()
	if err != nil {
		t.Skipf("cgo -godefs with CC=%q: %v", cc, err)
	}
	fmtd := exec.Command("gofmt")
	fmtd.Stdin = bytes.NewReader(out)
	want, err := fmtd.Output()
	if err != nil {
		t.Fatal(err)
	}
	have, err := os.ReadFile("zkernel_linux_" + runtime.GOARCH + ".go")
	if err != nil {
		t.Fatal(err)
	}
	// The second line records the command (with its temporary directory).
	if !bytes.Equal(dropLine2(have), dropLine2(want)) {
		t.Fatalf("zkernel_linux_%s.go differs from what cgo -godefs makes of the headers; run go generate ./internal/kernel\nhave:\n%s\nwant:\n%s", runtime.GOARCH, have, want)
	}
}

func dropLine2(b []byte) []byte {
	lines := bytes.SplitAfter(b, []byte("\n"))
	if len(lines) > 2 {
		lines = append(lines[:1], lines[2:]...)
	}
	return bytes.Join(lines, nil)
}
