//go:build linux && cgo

package ring_test

// Benchmarks across processes, payload written and read, each reporting
// the ring beside its baseline measured in the same run, alternated
// (rounds), and their ratio. Each does a fixed amount of work: run with
// -benchtime=1x, e.g.
//
//	go test -run '^$' -bench . -benchtime=1x ./ring

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/posixshm/shm/ring"
)

const rounds = 3

// benchChild is this test binary in a benchmark role (see benchRole).
func benchChild(b *testing.B, role string, args []string, extra ...*os.File) (*exec.Cmd, *bufio.Reader) {
	b.Helper()
	exe, _ := os.Executable()
	cmd := exec.Command(exe, append([]string{"-test.run=^$"}, args...)...)
	cmd.Env = append(os.Environ(), roleEnv+"=bench-"+role)
	cmd.ExtraFiles = extra
	br, _ := startReady(b, cmd)
	return cmd, br
}

// startReady starts a benchmark child (this test binary or a C peer),
// with pipes to its standard input and from its output, and waits for
// its "ready" line; a child that says anything else is killed and fails
// b.
func startReady(b *testing.B, cmd *exec.Cmd) (*bufio.Reader, io.WriteCloser) {
	b.Helper()
	cmd.Stderr = os.Stderr
	in, _ := cmd.StdinPipe()
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	br := bufio.NewReader(out)
	if line, _ := br.ReadString('\n'); !strings.HasPrefix(line, "ready") {
		cmd.Process.Kill()
		cmd.Wait()
		b.Fatalf("bench child %v said %q", cmd.Args, line)
	}
	return br, in
}

// finish waits for the child's "done" line and exit.
func finish(b *testing.B, cmd *exec.Cmd, br *bufio.Reader) {
	b.Helper()
	line, _ := br.ReadString('\n')
	io.Copy(io.Discard, br)
	if err := cmd.Wait(); err != nil || !strings.HasPrefix(line, "done") {
		b.Fatalf("bench child: %v %q", err, line)
	}
}

// benchRole runs a benchmark child's role; args are its arguments after
// the test flags: ring name (or "fd3"), message size, count, spin.
func benchRole(role string, args []string) error {
	size, _ := strconv.Atoi(args[1])
	count, _ := strconv.Atoi(args[2])
	ctx := context.Background()
	buf := make([]byte, max(size, 64<<10))
	switch role {
	case "bench-ring-read": // read count messages, copying each out
		r, err := ring.Open(args[0])
		if err != nil {
			return err
		}
		defer r.Close()
		rd, err := r.Reader()
		if err != nil {
			return err
		}
		fmt.Println("ready")
		var sum byte
		for range count {
			m, err := rd.Next(ctx)
			if err != nil {
				return err
			}
			copy(buf, m) // the payload read
			sum += buf[len(m)-1]
			rd.Release()
		}
		fmt.Println("done", sum)
	case "bench-ring-recv": // receive count messages, copied out by Receive (args[3]: 1) or ReceiveBatch of args[3]
		r, err := ring.Open(args[0])
		if err != nil {
			return err
		}
		defer r.Close()
		rd, err := r.Reader()
		if err != nil {
			return err
		}
		if sp := os.Getenv("SHMRING_BENCH_SPIN"); sp != "" {
			d, _ := time.ParseDuration(sp)
			r.SetSpin(d)
		}
		batch, _ := strconv.Atoi(args[3])
		bufs, lens := make([][]byte, batch), make([]int, batch)
		for i := range bufs {
			bufs[i] = make([]byte, size)
		}
		fmt.Println("ready")
		var sum byte
		for i := 0; i < count; {
			if batch == 1 {
				n, err := rd.Receive(ctx, buf)
				if err != nil {
					return err
				}
				sum += buf[n-1]
				i++
				continue
			}
			k, err := rd.ReceiveBatch(ctx, bufs[:min(batch, count-i)], lens)
			if err != nil {
				return err
			}
			sum += bufs[k-1][lens[k-1]-1]
			i += k
		}
		fmt.Println("done", sum)
	case "bench-ring-send": // claim a writer, say ready, wait for a line, send count messages by Send (args[3]: 1) or SendBatch of args[3], close
		r, err := ring.Open(args[0])
		if err != nil {
			return err
		}
		defer r.Close()
		w, err := r.Writer()
		if err != nil {
			return err
		}
		batch, _ := strconv.Atoi(args[3])
		msgs := make([][]byte, batch)
		for i := range msgs {
			msgs[i] = make([]byte, size)
		}
		fmt.Println("ready")
		bufio.NewReader(os.Stdin).ReadString('\n')
		for i := 0; i < count; {
			if batch == 1 {
				msgs[0][0] = byte(i) // the payload written
				if err := w.Send(ctx, msgs[0]); err != nil {
					return err
				}
				i++
				continue
			}
			n, err := w.SendBatch(ctx, msgs[:min(batch, count-i)])
			if err != nil {
				return err
			}
			i += n
		}
		if err := w.Close(); err != nil {
			return err
		}
		fmt.Println("done")
	case "bench-fd-read": // read count messages of size from fd 3
		f := os.NewFile(3, "stream")
		fmt.Println("ready")
		for range count {
			if _, err := io.ReadFull(f, buf[:size]); err != nil {
				return err
			}
		}
		fmt.Println("done")
	case "bench-echo": // ring args[0] to ring args[3], count times, spin args[4]
		in, err := ring.Open(args[0])
		if err != nil {
			return err
		}
		out, err := ring.Open(args[3])
		if err != nil {
			return err
		}
		spin, _ := time.ParseDuration(args[4])
		in.SetSpin(spin)
		out.SetSpin(spin)
		rd, err := in.Reader()
		if err != nil {
			return err
		}
		w, err := out.Writer()
		if err != nil {
			return err
		}
		fmt.Println("ready")
		for range count {
			n, err := rd.Receive(ctx, buf)
			if err != nil {
				return err
			}
			if err := w.Send(ctx, buf[:n]); err != nil {
				return err
			}
		}
		fmt.Println("done")
	default:
		return fmt.Errorf("unknown role %q", role)
	}
	return nil
}

// ringSend times sending count messages of size bytes to a child reader.
func ringSend(b *testing.B, capacity, size, count int) time.Duration {
	r := newRing(b, capacity)
	w, err := r.Writer()
	if err != nil {
		b.Fatal(err)
	}
	cmd, br := benchChild(b, "ring-read", []string{r.Name(), strconv.Itoa(size), strconv.Itoa(count)})
	msg := make([]byte, size)
	for i := range msg {
		msg[i] = byte(i)
	}
	ctx := context.Background()
	start := time.Now()
	for range count {
		mb, err := w.Reserve(ctx, size)
		if err != nil {
			b.Fatal(err)
		}
		copy(mb, msg) // the payload written
		w.Commit(size)
	}
	finish(b, cmd, br)
	d := time.Since(start)
	w.Close()
	return d
}

// ringSendCopy times sending count messages of size bytes to a child
// that copies them out: Send and Receive one at a time (batch 1), or
// SendBatch and ReceiveBatch of up to batch messages.
func ringSendCopy(b *testing.B, capacity, size, count, batch int) time.Duration {
	r := newRing(b, capacity)
	w, err := r.Writer()
	if err != nil {
		b.Fatal(err)
	}
	if sp := os.Getenv("SHMRING_BENCH_SPIN"); sp != "" {
		d, _ := time.ParseDuration(sp)
		r.SetSpin(d)
	}
	cmd, br := benchChild(b, "ring-recv", []string{r.Name(), strconv.Itoa(size), strconv.Itoa(count), strconv.Itoa(batch)})
	msgs := make([][]byte, batch)
	for i := range msgs {
		msgs[i] = make([]byte, size)
		for j := range msgs[i] {
			msgs[i][j] = byte(i + j)
		}
	}
	ctx := context.Background()
	var ru0 syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	start := time.Now()
	for i := 0; i < count; {
		if batch == 1 {
			msgs[0][0] = byte(i) // the payload written
			if err := w.Send(ctx, msgs[0]); err != nil {
				b.Fatal(err)
			}
			i++
			continue
		}
		n, err := w.SendBatch(ctx, msgs[:min(batch, count-i)])
		if err != nil {
			b.Fatal(err)
		}
		i += n
	}
	finish(b, cmd, br)
	d := time.Since(start)
	if os.Getenv("SHMRING_BENCH_STATS") != "" {
		sl, wk := ring.Stats(w)
		var ru syscall.Rusage
		syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
		cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano() - ru0.Utime.Nano() - ru0.Stime.Nano())
		b.Logf("batch %d: %v; writer slept %d times, woke the reader %d times, CPU: writer %v, reader %v; context switches: writer %d voluntary %d involuntary",
			batch, d, sl, wk, cpu, cmd.ProcessState.UserTime()+cmd.ProcessState.SystemTime(), ru.Nvcsw-ru0.Nvcsw, ru.Nivcsw-ru0.Nivcsw)
	}
	w.Close()
	return d
}

// cRingSend times count messages of size bytes from a C writer to a C
// reader through a ring of capacity bytes (testdata/peer.c on shmring.h),
// from the writer's go to the reader's last message.
func cRingSend(b *testing.B, bin string, capacity, size, count int, batch ...int) time.Duration {
	return cRing(b, bin, capacity, size, count, 1, 1, batch...)
}

// cRing times count messages of size bytes from writers C processes
// (count/writers each) to readers C processes (each receives them all)
// through a ring of capacity-byte lanes, from the writers' start until
// every reader is done.
func cRing(b *testing.B, bin string, capacity, size, count, readers, writers int, batch ...int) time.Duration {
	r, err := ring.CreateWith(ringName(b), capacity, &ring.Options{Readers: readers, Writers: writers})
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	per := count / writers
	start := func(mode string, n int) (*exec.Cmd, *bufio.Reader, io.WriteCloser) {
		args := []string{mode, r.Name(), strconv.Itoa(size), strconv.Itoa(n)}
		if len(batch) > 0 { // shmring_send_batch and shmring_recv_batch of up to batch[0]
			args = append(args, strconv.Itoa(batch[0]))
		}
		cmd := exec.Command(bin, args...)
		br, in := startReady(b, cmd)
		return cmd, br, in
	}
	type proc struct {
		cmd *exec.Cmd
		out *bufio.Reader
		in  io.WriteCloser
	}
	var rs, ws []proc
	for range readers {
		cmd, out, in := start("bench-read", per*writers)
		rs = append(rs, proc{cmd, out, in})
	}
	for range writers {
		cmd, out, in := start("bench-write", per)
		ws = append(ws, proc{cmd, out, in})
	}
	t0 := time.Now()
	for _, w := range ws {
		io.WriteString(w.in, "go\n")
	}
	for _, rd := range rs {
		finish(b, rd.cmd, rd.out)
	}
	d := time.Since(t0)
	for _, w := range ws {
		finish(b, w.cmd, w.out)
	}
	return d
}

// cPeer builds testdata/peer.c for the benchmarks ("" without gcc).
func cPeer(b *testing.B) string {
	if _, err := exec.LookPath("gcc"); err != nil {
		return ""
	}
	bin := filepath.Join(b.TempDir(), "peer")
	if out, err := exec.Command("gcc", "-std=c11", "-O2", "-o", bin, "testdata/peer.c").CombinedOutput(); err != nil {
		b.Fatalf("%v\n%s", err, out)
	}
	return bin
}

// BenchmarkBulk: 64 KiB messages through a 1 MiB ring to another
// process, which copies each out, against one core copying the same bytes
// in 64 KiB pieces: within cache (one buffer to another, the best case)
// and from memory (through 64 MiB buffers, as a stream larger than the
// caches is copied).
func BenchmarkBulk(b *testing.B) {
	const size, count = 64 << 10, 16384 // 1 GiB
	var ringD, hotD, coldD, cD time.Duration
	src, dst := make([]byte, 64<<20), make([]byte, 64<<20)
	cbin := cPeer(b)
	for range rounds {
		ringD += ringSend(b, 1<<20, size, count)
		if cbin != "" {
			cD += cRingSend(b, cbin, 1<<20, size, count)
		}
		start := time.Now()
		for i := range count {
			src[i%size]++
			copy(dst[:size], src[:size])
		}
		hotD += time.Since(start)
		start = time.Now()
		for i := range count {
			off := i * size % len(src)
			copy(dst[off:off+size], src[off:off+size])
		}
		coldD += time.Since(start)
	}
	total := float64(rounds) * size * count
	b.ReportMetric(total/ringD.Seconds()/1e9, "ring-GB/s")
	b.ReportMetric(total/hotD.Seconds()/1e9, "memmove-cache-GB/s")
	b.ReportMetric(total/coldD.Seconds()/1e9, "memmove-memory-GB/s")
	b.ReportMetric(hotD.Seconds()/ringD.Seconds(), "ring/memmove-cache")
	b.ReportMetric(coldD.Seconds()/ringD.Seconds(), "ring/memmove-memory")
	if cD > 0 {
		b.ReportMetric(total/cD.Seconds()/1e9, "C-ring-GB/s")
		b.ReportMetric(cD.Seconds()/ringD.Seconds(), "ring/C-ring")
	}
}

// BenchmarkSmall: 64-byte messages to another process, through the ring,
// a SOCK_SEQPACKET socket pair and a pipe (one write and one read per
// message).
func BenchmarkSmall(b *testing.B) {
	const size, count = 64, 1 << 20
	var ringD, seqD, pipeD, cD time.Duration
	msg := make([]byte, size)
	cbin := cPeer(b)
	fdSend := func(w *os.File, r *os.File) time.Duration {
		cmd, br := benchChild(b, "fd-read", []string{"fd3", strconv.Itoa(size), strconv.Itoa(count)}, r)
		r.Close()
		start := time.Now()
		for range count {
			if _, err := w.Write(msg); err != nil {
				b.Fatal(err)
			}
		}
		finish(b, cmd, br)
		d := time.Since(start)
		w.Close()
		return d
	}
	for range rounds {
		ringD += ringSend(b, 1<<20, size, count)
		if cbin != "" {
			cD += cRingSend(b, cbin, 1<<20, size, count)
		}
		fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_SEQPACKET|syscall.SOCK_CLOEXEC, 0)
		if err != nil {
			b.Fatal(err)
		}
		seqD += fdSend(os.NewFile(uintptr(fds[0]), "seq0"), os.NewFile(uintptr(fds[1]), "seq1"))
		pr, pw, err := os.Pipe()
		if err != nil {
			b.Fatal(err)
		}
		pipeD += fdSend(pw, pr)
	}
	n := float64(rounds * count)
	b.ReportMetric(n/ringD.Seconds()/1e6, "ring-Mmsg/s")
	b.ReportMetric(n/seqD.Seconds()/1e6, "seqpacket-Mmsg/s")
	b.ReportMetric(n/pipeD.Seconds()/1e6, "pipe-Mmsg/s")
	b.ReportMetric(seqD.Seconds()/ringD.Seconds(), "ring/seqpacket")
	b.ReportMetric(pipeD.Seconds()/ringD.Seconds(), "ring/pipe")
	if cD > 0 {
		b.ReportMetric(n/cD.Seconds()/1e6, "C-ring-Mmsg/s")
		b.ReportMetric(cD.Seconds()/ringD.Seconds(), "ring/C-ring")
	}
}

// BenchmarkPingPong: round trips of an 8-byte message over two rings to
// an echoing process, spinning (both sides poll for up to a second) and
// blocking (no spin: every wait sleeps in the futex), beside the blocking
// futex round trip of two C processes (testdata/futexpp.c). Reports
// p50, p99 and p99.9 in µs.
func BenchmarkPingPong(b *testing.B) {
	const count = 20000
	cbin := ""
	if _, err := exec.LookPath("gcc"); err == nil {
		dir := b.TempDir()
		cbin = filepath.Join(dir, "futexpp")
		if out, err := exec.Command("gcc", "-O2", "-o", cbin, "testdata/futexpp.c").CombinedOutput(); err != nil {
			b.Fatalf("%v\n%s", err, out)
		}
	}
	pp := func(spin time.Duration) []time.Duration {
		a, c := newRing(b, 4096), newRing(b, 4096)
		ao, co := openRing(b, a), openRing(b, c)
		ao.SetSpin(spin)
		co.SetSpin(spin)
		w, _ := ao.Writer()
		rd, _ := co.Reader()
		cmd, br := benchChild(b, "echo", []string{a.Name(), "8", strconv.Itoa(count), c.Name(), spin.String()})
		ctx := context.Background()
		msg, buf := make([]byte, 8), make([]byte, 8)
		rt := make([]time.Duration, count)
		for i := range count {
			start := time.Now()
			if err := w.Send(ctx, msg); err != nil {
				b.Fatal(err)
			}
			if _, err := rd.Receive(ctx, buf); err != nil {
				b.Fatal(err)
			}
			rt[i] = time.Since(start)
		}
		finish(b, cmd, br)
		slices.Sort(rt)
		return rt
	}
	pct := func(rt []time.Duration, name string) {
		for _, p := range []struct {
			q    float64
			unit string
		}{{0.5, "p50"}, {0.99, "p99"}, {0.999, "p99.9"}} {
			b.ReportMetric(float64(rt[int(p.q*float64(len(rt)))].Nanoseconds())/1e3, name+"-"+p.unit+"-µs")
		}
	}
	pct(pp(time.Second), "spin")
	pct(pp(0), "block")
	if cbin != "" {
		out, err := exec.Command(cbin, strconv.Itoa(count)).Output()
		var p50, p99, p999 float64
		if _, serr := fmt.Sscan(string(out), &p50, &p99, &p999); err != nil || serr != nil {
			b.Fatalf("futexpp: %v %v %q", err, serr, out)
		}
		b.ReportMetric(p50/1e3, "Cfutex-p50-µs")
		b.ReportMetric(p99/1e3, "Cfutex-p99-µs")
		b.ReportMetric(p999/1e3, "Cfutex-p99.9-µs")
	}
}

// BenchmarkSmallVsC (issue 23): 64-byte messages from one process to
// another, Go to Go (Send, Receive: one call a message, the payload copied
// in and out) against C to C through shmring.h (shmring_send,
// shmring_recv: the same), in alternated rounds of one run; then Go to Go
// in batches of benchBatch (SendBatch, ReceiveBatch) against C
// (shmring_send_batch, shmring_recv_batch). Set
// SHMRING_BENCH_STATS=1 to log, per Go run, the writer's sleeps and
// wake-ups, both processes' CPU time and the writer's context switches;
// SHMRING_BENCH_SPIN (a duration) sets both Go ends' SetSpin.
func BenchmarkSmallVsC(b *testing.B) {
	const size, count, rounds = 64, 1 << 21, 5
	cbin := cPeer(b)
	if cbin == "" {
		b.Skip("gcc is not installed: no C to compare with")
	}
	var goD, cD, batchD, cbatchD time.Duration
	for i := range rounds {
		g := ringSendCopy(b, 1<<20, size, count, 1)
		c := cRingSend(b, cbin, 1<<20, size, count)
		bt := ringSendCopy(b, 1<<20, size, count, benchBatch)
		cbt := cRingSend(b, cbin, 1<<20, size, count, benchBatch)
		b.Logf("round %d: Go %.1f, C %.1f M msg/s (Go/C %.2f); batched: Go %.1f, C %.1f M msg/s (Go/C %.2f)", i,
			count/g.Seconds()/1e6, count/c.Seconds()/1e6, c.Seconds()/g.Seconds(),
			count/bt.Seconds()/1e6, count/cbt.Seconds()/1e6, cbt.Seconds()/bt.Seconds())
		goD, cD, batchD, cbatchD = goD+g, cD+c, batchD+bt, cbatchD+cbt
	}
	n := float64(rounds * count)
	b.ReportMetric(n/goD.Seconds()/1e6, "Go-Mmsg/s")
	b.ReportMetric(n/cD.Seconds()/1e6, "C-Mmsg/s")
	b.ReportMetric(cD.Seconds()/goD.Seconds(), "Go/C")
	b.ReportMetric(n/batchD.Seconds()/1e6, "Go-batch-Mmsg/s")
	b.ReportMetric(n/cbatchD.Seconds()/1e6, "C-batch-Mmsg/s")
	b.ReportMetric(cbatchD.Seconds()/batchD.Seconds(), "Go/C-batch")
}

// benchBatch is BenchmarkSmallVsC's batch: messages per SendBatch and
// ReceiveBatch.
const benchBatch = 1024

// fanOut times count messages of size bytes from this process (Send) to
// readers child processes (Receive) through a ring of capacity bytes and
// readers reader slots, until every reader has received them all.
func fanOut(b *testing.B, capacity, size, count, readers int) time.Duration {
	r, err := ring.CreateWith(ringName(b), capacity, &ring.Options{Readers: readers})
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	w, err := r.Writer()
	if err != nil {
		b.Fatal(err)
	}
	type child struct {
		cmd *exec.Cmd
		br  *bufio.Reader
	}
	var cs []child
	for range readers {
		cmd, br := benchChild(b, "ring-recv", []string{r.Name(), strconv.Itoa(size), strconv.Itoa(count), "1"})
		cs = append(cs, child{cmd, br})
	}
	msg := make([]byte, size)
	ctx := context.Background()
	start := time.Now()
	for i := range count {
		msg[0] = byte(i)
		if err := w.Send(ctx, msg); err != nil {
			b.Fatal(err)
		}
	}
	for _, c := range cs {
		finish(b, c.cmd, c.br)
	}
	d := time.Since(start)
	w.Close()
	return d
}

// BenchmarkFanOut (issue 23): 64 KiB messages through a 1 MiB lane to one
// reader process, and to four (each receives every message): each
// reader's rate, and its ratio to the single reader's, in alternated
// rounds, Go processes and C processes (testdata/peer.c) alike. On two
// vCPUs five processes share two cores: the ratio is bounded by that, not
// by the ring.
func BenchmarkFanOut(b *testing.B) {
	const size, count = 64 << 10, 4096 // 256 MiB to each reader
	cbin := cPeer(b)
	var oneD, fourD, cOneD, cFourD time.Duration
	for range rounds {
		oneD += fanOut(b, 1<<20, size, count, 1)
		fourD += fanOut(b, 1<<20, size, count, 4)
		if cbin != "" {
			cOneD += cRing(b, cbin, 1<<20, size, count, 1, 1)
			cFourD += cRing(b, cbin, 1<<20, size, count, 4, 1)
		}
	}
	total := float64(rounds) * size * count
	b.ReportMetric(total/oneD.Seconds()/1e9, "1-reader-GB/s")
	b.ReportMetric(total/fourD.Seconds()/1e9, "each-of-4-GB/s")
	b.ReportMetric(oneD.Seconds()/fourD.Seconds(), "each-of-4/1-reader")
	if cbin != "" {
		b.ReportMetric(total/cOneD.Seconds()/1e9, "C-1-reader-GB/s")
		b.ReportMetric(total/cFourD.Seconds()/1e9, "C-each-of-4-GB/s")
		b.ReportMetric(cOneD.Seconds()/cFourD.Seconds(), "C-each-of-4/1-reader")
	}
}

// manyWriters times count messages of size bytes in all from writers
// child processes (Send, count/writers each) to this process (Receive)
// through a ring of one lane of capacity bytes per writer.
func manyWriters(b *testing.B, capacity, size, count, writers int) time.Duration {
	r, err := ring.CreateWith(ringName(b), capacity, &ring.Options{Writers: writers})
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	rd, err := r.Reader()
	if err != nil {
		b.Fatal(err)
	}
	type child struct {
		cmd *exec.Cmd
		br  *bufio.Reader
		in  io.WriteCloser
	}
	var cs []child
	exe, _ := os.Executable()
	for range writers {
		cmd := exec.Command(exe, "-test.run=^$", r.Name(), strconv.Itoa(size), strconv.Itoa(count/writers), "1")
		cmd.Env = append(os.Environ(), roleEnv+"=bench-ring-send")
		br, in := startReady(b, cmd)
		cs = append(cs, child{cmd, br, in})
	}
	buf := make([]byte, size)
	ctx := context.Background()
	start := time.Now()
	for _, c := range cs {
		io.WriteString(c.in, "go\n")
	}
	for range count / writers * writers {
		if _, err := rd.Receive(ctx, buf); err != nil {
			b.Fatal(err)
		}
	}
	d := time.Since(start)
	for _, c := range cs {
		finish(b, c.cmd, c.br)
	}
	return d
}

// BenchmarkManyWriters (issue 23): 64-byte messages from one writer
// process, and from four (a quarter each), to one reader, 1 MiB lanes:
// the total rate and its ratio to the single writer's, in alternated
// rounds, Go processes and C processes alike.
func BenchmarkManyWriters(b *testing.B) {
	const size, count = 64, 1 << 21
	cbin := cPeer(b)
	var oneD, fourD, cOneD, cFourD time.Duration
	for range rounds {
		oneD += manyWriters(b, 1<<20, size, count, 1)
		fourD += manyWriters(b, 1<<20, size, count, 4)
		if cbin != "" {
			cOneD += cRing(b, cbin, 1<<20, size, count, 1, 1)
			cFourD += cRing(b, cbin, 1<<20, size, count, 1, 4)
		}
	}
	n := float64(rounds * count)
	b.ReportMetric(n/oneD.Seconds()/1e6, "1-writer-Mmsg/s")
	b.ReportMetric(n/fourD.Seconds()/1e6, "4-writers-Mmsg/s")
	b.ReportMetric(oneD.Seconds()/fourD.Seconds(), "4/1-writer")
	if cbin != "" {
		b.ReportMetric(n/cOneD.Seconds()/1e6, "C-1-writer-Mmsg/s")
		b.ReportMetric(n/cFourD.Seconds()/1e6, "C-4-writers-Mmsg/s")
		b.ReportMetric(cOneD.Seconds()/cFourD.Seconds(), "C-4/1-writer")
	}
}
