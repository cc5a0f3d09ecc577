//go:build linux && cgo

package shm_test

// TestComparisonSync is a comparison (compare_test.go): it sets Semaphore
// and futex Wait/Wake against the same
// primitives driven from C, between two processes, alternately round after
// round in one run, and prints medians and Go/C ratios:
//
//	go test -run '^TestComparisonSync$' -v . -args -compare
//
// In the normal suite it makes one short round, checking every contender
// runs.

import (
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/posixshm/shm"
)

func TestComparisonSync(t *testing.T) {
	rounds, n := 1, 50
	if *compareFlag {
		rounds, n = 9, 5000
	}
	sempeer, futexpeer := buildC(t, "sempeer"), buildC(t, "futexpeer")
	runC := func(argv ...string) (float64, error) {
		out, err := exec.Command(argv[0], argv[1:]...).Output()
		if err != nil {
			return 0, fmt.Errorf("%v: %v", argv, err)
		}
		return strconv.ParseFloat(strings.TrimSpace(string(out)), 64)
	}
	// withPong runs pong (a process) and then ping, which returns ns per
	// round trip.
	withPong := func(pong *exec.Cmd, ping func() (float64, error)) (float64, error) {
		if err := pong.Start(); err != nil {
			return 0, err
		}
		defer pong.Process.Kill()
		ns, err := ping()
		if err != nil {
			return 0, err
		}
		if err := pong.Wait(); err != nil {
			return 0, fmt.Errorf("pong: %v %s", err, pong.Stderr)
		}
		return ns, nil
	}
	type contender struct {
		name string
		run  func() (float64, error)
	}
	var semA, semB *shm.Semaphore
	var seg *shm.Segment
	reset := func() {
		w, _ := seg.Uint32(0)
		w.Store(0)
	}
	// goFutex: the Go pinger and a Go ponger child, each spinning spin
	// loads before every Wait (as futexpeer's SPIN).
	goFutex := func(n, spin int) (float64, error) {
		reset()
		cmd := childCmd(t, "sync-futex-pong", seg.Name())
		cmd.Env = append(cmd.Env, "SHM_TEST_N="+strconv.Itoa(n), "SHM_TEST_SPIN="+strconv.Itoa(spin))
		return withPong(cmd, func() (float64, error) {
			d, err := futexPing(context.Background(), seg, n, spin)
			return float64(d.Nanoseconds()) / float64(n), err
		})
	}
	// A spinning round trip takes well under a microsecond when it works:
	// 20 times the rounds, so that the run is not over before the starting
	// processes settle (with n rounds the C pair measured 2-6 µs under a Go
	// parent, 0.6 µs under a quiet one).
	nSpin := 20 * n
	contenders := []contender{
		{"semaphore round trip: C", func() (float64, error) {
			return withPong(exec.Command(sempeer, "pong", semA.Name(), semB.Name(), strconv.Itoa(n)),
				func() (float64, error) { return runC(sempeer, "ping", semA.Name(), semB.Name(), strconv.Itoa(n)) })
		}},
		{"semaphore round trip: Go", func() (float64, error) {
			cmd := childCmd(t, "sync-sem-pong", semA.Name())
			cmd.Env = append(cmd.Env, "SHM_TEST_N="+strconv.Itoa(n))
			return withPong(cmd, func() (float64, error) {
				start := time.Now()
				for i := range n + 1 { // the first round waits for the child to start
					if i == 1 {
						start = time.Now()
					}
					if err := semA.Post(); err != nil {
						return 0, err
					}
					if err := semB.Wait(context.Background()); err != nil {
						return 0, err
					}
				}
				return float64(time.Since(start).Nanoseconds()) / float64(n), nil
			})
		}},
		{"futex round trip: C", func() (float64, error) {
			reset()
			return withPong(exec.Command(futexpeer, "pong", seg.Name(), strconv.Itoa(n), "0"),
				func() (float64, error) { return runC(futexpeer, "ping", seg.Name(), strconv.Itoa(n), "0") })
		}},
		{"futex round trip: Go", func() (float64, error) { return goFutex(n, 0) }},
		{"futex round trip, spinning 2000 loads first: C", func() (float64, error) {
			reset()
			return withPong(exec.Command(futexpeer, "pong", seg.Name(), strconv.Itoa(nSpin), "2000"),
				func() (float64, error) { return runC(futexpeer, "ping", seg.Name(), strconv.Itoa(nSpin), "2000") })
		}},
		{"futex round trip, spinning 2000 loads first: Go", func() (float64, error) { return goFutex(nSpin, 2000) }},
		{"uncontended post+wait: C", func() (float64, error) {
			return runC(sempeer, "uncontended", semA.Name(), strconv.Itoa(100*n))
		}},
		{"uncontended post+wait: Go", func() (float64, error) {
			start := time.Now()
			for range 100 * n {
				semA.Post()
				semA.Wait(context.Background())
			}
			return float64(time.Since(start).Nanoseconds()) / float64(100*n), nil
		}},
	}
	semA, semB = createSem(t, 0), createSem(t, 0)
	// The Go pong child opens name+"-b" as its second semaphore.
	semB.Close()
	var err error
	semB, err = shm.CreateSemaphore(semA.Name()+"-b", 0)
	if err != nil {
		t.Fatal(err)
	}
	semCleanup(t, semB.Name())
	t.Cleanup(func() { semB.Close() })
	seg = create(t, 4096)

	results := make([][]float64, len(contenders))
	for range rounds {
		for i, c := range contenders {
			ns, err := c.run()
			if err != nil || !(ns > 0) {
				t.Fatalf("%s: %v (%v ns per round trip)", c.name, err, ns)
			}
			results[i] = append(results[i], ns)
		}
	}
	for i := 0; i < len(contenders); i++ {
		m := median(results[i])
		line := fmt.Sprintf("%-48s %9.2f µs", contenders[i].name, m/1000)
		if strings.HasSuffix(contenders[i].name, ": Go") {
			line += fmt.Sprintf("   Go/C %.2f", m/median(results[i-1]))
		}
		t.Log(line)
	}
}
