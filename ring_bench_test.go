//go:build linux && cgo

package shm_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
)

// BenchmarkTransfer moves the same stream of messages (256 MiB per op, 1 to
// 16 KiB-8 bytes each, every byte verified by the reader) from this process
// to another through
//
//	ring     the ring of ring_test.go (1 MiB: 64 slots of 16 KiB), Go to Go
//	ring-C   the same ring, testdata/ring.c writing to ring.c (timed by
//	         the C reader from its first message: not the processes' start)
//	unix     a Unix stream socket pair (default buffers), one write per message
//	pipe     a pipe grown to 1 MiB (F_SETPIPE_SZ), one write per message
//
// side by side in one run:
//
//	go test -run '^$' -bench '^BenchmarkTransfer$' -benchtime 4x .
//
// The stream readers read into a 64 KiB buffer and compare it; the ring
// reader compares the slot in place (the bytes are already there: that is
// the point of shared memory).
func BenchmarkTransfer(b *testing.B) {
	b.Run("ring", func(b *testing.B) {
		s := createRing(b, 64, 16<<10)
		r, err := openRing(b.Context(), s)
		if err != nil {
			b.Fatal(err)
		}
		cmd := childCmd(b, "sync-ring-read", s.Name())
		cmd.Env = append(cmd.Env, "SHM_TEST_N="+strconv.FormatInt(int64(b.N)*ringTotal, 10))
		out := startReader(b, cmd)
		b.SetBytes(ringTotal)
		b.ResetTimer()
		if err := r.write(int64(b.N)*ringTotal, ringSeed); err != nil {
			b.Fatal(err)
		}
		rest := finishReader(b, cmd, out)
		b.StopTimer()
		var sleeps, wakes int
		fmt.Sscan(rest, &sleeps, &wakes)
		b.ReportMetric(float64(r.sleeps)/float64(b.N), "writer-sleeps/op")
		b.ReportMetric(float64(sleeps)/float64(b.N), "reader-sleeps/op")
	})
	b.Run("ring-C", func(b *testing.B) {
		peer := buildC(b, "ring")
		s := createRing(b, 64, 16<<10)
		// One pair of processes moves all b.N × 256 MiB, as the Go pair does.
		total := strconv.FormatInt(int64(b.N)*ringTotal, 10)
		rd := exec.Command(peer, "read", s.Name(), total, strconv.Itoa(ringSeed))
		rd.Stderr = os.Stderr
		out := new(bytes.Buffer)
		rd.Stdout = out
		if err := rd.Start(); err != nil {
			b.Fatal(err)
		}
		if out, err := exec.Command(peer, "write", s.Name(), total, strconv.Itoa(ringSeed)).CombinedOutput(); err != nil {
			rd.Process.Kill()
			rd.Wait()
			b.Fatalf("C writer: %v %s", err, out)
		}
		if err := rd.Wait(); err != nil {
			b.Fatalf("C reader: %v", err)
		}
		var sleeps, wakes int
		var ns float64 // the C reader's clock: from its first message to its last
		if _, err := fmt.Sscan(out.String(), &sleeps, &wakes, &ns); err != nil {
			b.Fatalf("C reader said %q: %v", out, err)
		}
		// Process start-up is not the ring's: report the reader's own clock.
		b.ReportMetric(ns/float64(b.N), "ns/op")
		b.ReportMetric(float64(ringTotal)*float64(b.N)/ns*1e3, "MB/s")
		b.ReportMetric(float64(sleeps)/float64(b.N), "reader-sleeps/op")
	})
	stream := func(b *testing.B, mine, theirs *os.File) {
		cmd := childCmd(b, "sync-stream-read", "")
		cmd.Env = append(cmd.Env, "SHM_TEST_N="+strconv.FormatInt(int64(b.N)*ringTotal, 10))
		cmd.ExtraFiles = []*os.File{theirs} // fd 3
		out := startReader(b, cmd)
		theirs.Close()
		b.SetBytes(ringTotal)
		b.ResetTimer()
		if err := writeStream(mine, int64(b.N)*ringTotal, ringSeed, 16<<10-8); err != nil {
			b.Fatal(err)
		}
		mine.Close()
		finishReader(b, cmd, out)
	}
	b.Run("unix", func(b *testing.B) {
		fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
		if err != nil {
			b.Fatal(err)
		}
		stream(b, os.NewFile(uintptr(fds[0]), "mine"), os.NewFile(uintptr(fds[1]), "theirs"))
	})
	b.Run("pipe", func(b *testing.B) {
		rd, wr, err := os.Pipe()
		if err != nil {
			b.Fatal(err)
		}
		const fSetPipeSz = 1031 // F_SETPIPE_SZ
		if _, _, e := syscall.Syscall(syscall.SYS_FCNTL, wr.Fd(), fSetPipeSz, 1<<20); e != 0 {
			b.Logf("F_SETPIPE_SZ 1 MiB: %v (the default 64 KiB pipe then)", e)
		}
		stream(b, wr, rd)
	})
}

// startReader starts a reader child and waits for its "ready".
func startReader(b *testing.B, cmd *exec.Cmd) *bufio.Reader {
	b.Helper()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	out := bufio.NewReader(stdout)
	if line, err := out.ReadString('\n'); line != "ready\n" {
		b.Fatalf("reader said %q, %v %s", line, err, cmd.Stderr)
	}
	return out
}

// finishReader waits for the reader to have read everything and exit, and
// returns what it printed after "ready".
func finishReader(b *testing.B, cmd *exec.Cmd, out *bufio.Reader) string {
	b.Helper()
	rest, _ := io.ReadAll(out)
	if err := cmd.Wait(); err != nil {
		b.Fatalf("reader: %v %s", err, cmd.Stderr)
	}
	return string(rest)
}

// writeStream writes total bytes of the stream of seed to w, one write per
// message, as the ring's writer sends them.
func writeStream(w io.Writer, total int64, seed uint64, max uint32) error {
	pat, next := ringPattern(seed), ringLengths(seed, max)
	for p := int64(0); p < total; {
		n := next(total - p)
		if _, err := w.Write(pat[p%ringPatN:][:n]); err != nil {
			return err
		}
		p += int64(n)
	}
	return nil
}

// readStream reads total bytes of the stream of seed from r and verifies
// them.
func readStream(r io.Reader, total int64, seed uint64) error {
	pat := ringPattern(seed)
	buf := make([]byte, ringPatExt)
	for p := int64(0); p < total; {
		n, err := r.Read(buf[:min(int64(len(buf)), total-p)])
		if n > 0 && !bytes.Equal(buf[:n], pat[p%ringPatN:][:n]) {
			return fmt.Errorf("byte %d: wrong content", p)
		}
		p += int64(n)
		if err != nil {
			return fmt.Errorf("byte %d of %d: %w", p, total, err)
		}
	}
	return nil
}
