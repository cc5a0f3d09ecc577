package shm_test

// Comparisons: TestComparison* are reports, not speed checks. Each sets
// this package against the same work done another way (C calling libc,
// pure-Go syscalls, CPython), alternately, round after round, in one run,
// and logs medians and ratios; none fails because a contender is slow. Each
// fails when a contender fails to run or its measurement is not a positive
// number, so a broken peer or benchmark never reports a figure. In the
// normal suite each makes one short round; -args -compare runs the full
// comparison whose tables the README shows. The benchmarks of the same
// work (bench_test.go) are the go test -bench way to the same ratios.

import (
	"flag"
	"fmt"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

var compareFlag = flag.Bool("compare", false, "TestComparison*: run the full comparisons (many rounds) and print their tables")

// contender does n operations on the object name and returns ns per op.
type contender struct {
	name string
	run  func(op, name string, n int) (float64, error)
}

func goContender(label string, create func(string, int) error, open func(string) error) contender {
	return contender{label, func(op, name string, n int) (float64, error) {
		start := time.Now()
		for range n {
			var err error
			if op == "create" {
				err = create(name, 4096)
			} else {
				err = open(name)
			}
			if err != nil {
				return 0, err
			}
		}
		return float64(time.Since(start).Nanoseconds()) / float64(n), nil
	}}
}

func execContender(label string, argv ...string) contender {
	return contender{label, func(op, name string, n int) (float64, error) {
		args := append(argv[1:len(argv):len(argv)], op, name, strconv.Itoa(n))
		cmd := exec.Command(argv[0], args...)
		stderr := new(strings.Builder)
		cmd.Stderr = stderr
		out, err := cmd.Output()
		if err != nil {
			return 0, fmt.Errorf("%s: %v: %s", label, err, stderr)
		}
		return strconv.ParseFloat(strings.TrimSpace(string(out)), 64)
	}}
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

// TestComparisonCreateOpen is a comparison (see above): this package
// against C calling libc directly (the physical limit for these
// semantics), C doing the sequence Create makes (atomic publish: a
// temporary name, then renameat2), pure-Go syscalls (open on /dev/shm and
// syscall.Mmap, what other Go shared-memory packages do) and CPython's
// multiprocessing.shared_memory, each as a ratio of medians to C; with
// -compare also pre-faulting against the naive ftruncate + mmap + first
// touch:
//
//	go test -run '^TestComparisonCreateOpen$' -v . -args -compare
func TestComparisonCreateOpen(t *testing.T) {
	rounds, n := 1, 20
	if *compareFlag {
		rounds, n = 21, 2000
	}
	cbench := buildC(t, "bench")
	cpublish := execContender("C, atomic publish", cbench)
	cpublish.run = func(run func(string, string, int) (float64, error)) func(string, string, int) (float64, error) {
		return func(op, name string, n int) (float64, error) {
			if op == "create" {
				op = "rename" // the sequence shm.Create makes
			}
			return run(op, name, n)
		}
	}(cpublish.run)
	contenders := []contender{
		execContender("C (libc)", cbench),
		cpublish,
		goContender("shm (cgo)", shmCreateCycle, shmOpenCycle),
		goContender("pure-Go syscalls", pureGoCreateCycle, pureGoOpenCycle),
	}
	if py, err := exec.LookPath("python3"); err == nil {
		contenders = append(contenders, execContender("CPython shared_memory", py, "testdata/bench.py"))
	} else {
		t.Log("no python3: CPython left out of the comparison")
	}
	existing := create(t, 4096) // what the open cycles open
	fresh := uniqueName(t)      // what the create cycles create and unlink
	cleanup(t, fresh)

	var report strings.Builder
	fmt.Fprintf(&report, "%d rounds of %d operations, contenders alternating; median ns/op and ratio to C\n\n", rounds, n)
	fmt.Fprintf(&report, "| operation | %s |\n|---|%s\n", strings.Join(names(contenders), " | "), strings.Repeat("---|", len(contenders)))
	for _, op := range []string{"create", "open"} {
		name := fresh
		if op == "open" {
			name = existing.Name()
		}
		samples := make([][]float64, len(contenders))
		for r := range rounds {
			for i := range contenders {
				c := (i + r) % len(contenders) // rotate who goes first
				ns, err := contenders[c].run(op, name, n)
				if err != nil || !(ns > 0) {
					t.Fatalf("%s %s: %v (%v ns/op)", contenders[c].name, op, err, ns)
				}
				samples[c] = append(samples[c], ns)
			}
		}
		if exists(fresh) {
			t.Fatalf("a %s cycle left %s behind", op, fresh)
		}
		c0 := median(samples[0])
		fmt.Fprintf(&report, "| %s cycle, 4 KiB |", op)
		for i := range contenders {
			m := median(samples[i])
			fmt.Fprintf(&report, " %.2f× (%.1f µs) |", m/c0, m/1000)
		}
		report.WriteString("\n")
	}
	if *compareFlag {
		compareFill(t, &report)
	}
	t.Log("\n" + report.String())
	if *compareFlag {
		fmt.Print(report.String())
	}
}

func names(cs []contender) []string {
	var s []string
	for _, c := range cs {
		s = append(s, c.name)
	}
	return s
}

// compareFill: a fresh 256 MiB object created and completely written,
// each of the fillKinds, alternating; teardown not timed.
func compareFill(t *testing.T, report *strings.Builder) {
	const size = 256 << 20
	name := uniqueName(t)
	cleanup(t, name)
	samples := make([][]float64, len(fillKinds))
	for r := range 9 {
		for i := range fillKinds {
			k := (i + r) % len(fillKinds)
			start := time.Now()
			s, err := createFilled(name, size, &fillKinds[k].opt)
			if err != nil {
				t.Fatal(err)
			}
			ms := float64(time.Since(start).Microseconds()) / 1000
			if !(ms > 0) {
				t.Fatalf("%s: measured %v ms", fillKinds[k].name, ms)
			}
			samples[k] = append(samples[k], ms)
			s.Close()
			s.Unlink()
		}
	}
	naive := median(samples[0])
	fmt.Fprintf(report, "\n9 rounds, alternating: a fresh 256 MiB object created and completely written; median and ratio to naive\n\n")
	fmt.Fprintf(report, "| create + fill 256 MiB | time | ratio |\n|---|---|---|\n")
	for i, k := range fillKinds {
		fmt.Fprintf(report, "| %s | %.0f ms | %.2f× |\n", k.name, median(samples[i]), median(samples[i])/naive)
	}
}
