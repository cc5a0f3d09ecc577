//go:build linux && cgo

package shm_test

// Mutex: a lock between processes that survives its holder's death, in Go
// and in C (c/shmmutex.h, testdata/mutexpeer.c), against pid reuse and
// across pid namespaces.

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/posixshm/shm"
	"github.com/posixshm/shm/internal/kernel"
)

// counterOff is where the tests keep a plain counter the lock protects.
const counterOff = 64

// mutexRole makes a child role of these tests: it opens the object, makes
// the Mutex at off, and plays play with them.
func mutexRole(off int64, play func(role string, s *shm.Segment, mu *shm.Mutex, in *bufio.Reader) int) childRole {
	return func(role, name string, in *bufio.Reader) int {
		s, err := shm.Open(name)
		if err != nil {
			return childFail(role, "%v", err)
		}
		defer s.Close()
		mu, err := s.Mutex(off)
		if err != nil {
			return childFail(role, "%v", err)
		}
		return play(role, s, mu, in)
	}
}

// childMutexCount: SHM_TEST_N times lock, counter++, unlock; say "done";
// wait for stdin.
func childMutexCount(role string, s *shm.Segment, mu *shm.Mutex, in *bufio.Reader) int {
	n, _ := strconv.Atoi(os.Getenv("SHM_TEST_N"))
	ready, _ := s.Uint32(132)
	start, _ := s.Uint32(128)
	ready.Add(1)
	for start.Load() == 0 {
		runtime.Gosched()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := countUnder(ctx, mu, s.Bytes(), n); err != nil {
		return childFail(role, "%v", err)
	}
	fmt.Println("done")
	in.ReadString('\n') // stay alive (and registered) until told
	return 0
}

// childMutexHold: lock, say so, wait to be killed (or for stdin's end).
func childMutexHold(role string, s *shm.Segment, mu *shm.Mutex, in *bufio.Reader) int {
	err := mu.Lock(context.Background())
	fmt.Printf("locked %v\n", err)
	in.ReadString('\n')
	return 0
}

// childMutexPass: lock, say so; at the first line unlock, say so, and
// live on until stdin ends.
func childMutexPass(role string, s *shm.Segment, mu *shm.Mutex, in *bufio.Reader) int {
	err := mu.Lock(context.Background())
	fmt.Printf("locked %v\n", err)
	in.ReadString('\n')
	fmt.Printf("unlocked %v\n", mu.Unlock())
	in.ReadString('\n')
	return 0
}

// childMutexTryLock: say what TryLock says, and Unlock if it took the lock.
func childMutexTryLock(role string, s *shm.Segment, mu *shm.Mutex, in *bufio.Reader) int {
	took, err := mu.TryLock()
	fmt.Printf("%v %v\n", took, errors.Is(err, shm.ErrOwnerDead))
	if took {
		if err := mu.Unlock(); err != nil {
			return childFail(role, "%v", err)
		}
	}
	return 0
}

// childMutexHandoff: BenchmarkMutex's other side.
func childMutexHandoff(role string, s *shm.Segment, mu *shm.Mutex, in *bufio.Reader) int {
	if os.Getenv("SHM_TEST_KIND") != "mutex" {
		mu = nil
	}
	if err := handoff(mu, s, 1, -1); err != nil {
		return childFail(role, "%v", err)
	}
	return 0
}

// countUnder adds 1 to the plain counter in b n times, each under mu,
// slowly: the read and the write are apart, so that a lock that does not
// exclude loses counts.
func countUnder(ctx context.Context, mu *shm.Mutex, b []byte, n int) error {
	for range n {
		if err := mu.Lock(ctx); err != nil {
			return err
		}
		c := b[counterOff : counterOff+8]
		v, x := binary.LittleEndian.Uint64(c), 0
		for k := range 1000 { // about a microsecond: longer than a futex call takes to sleep
			x += int(b[k])
		}
		sink.Add(int64(x))
		binary.LittleEndian.PutUint64(c, v+1)
		if err := mu.Unlock(); err != nil {
			return err
		}
	}
	return nil
}

var sink atomic.Int64 // keeps countUnder's delay loop

func newMutex(t *testing.T) (*shm.Segment, *shm.Mutex) {
	t.Helper()
	s := create(t, 4096)
	mu, err := s.Mutex(0)
	if err != nil {
		t.Fatal(err)
	}
	return s, mu
}

// TestMutexSemantics: offsets, the zero value, not reentrant, process
// ownership across Segments of one object, Unlock misuse, Close.
//
// Kills: a reentrant lock (step treating our own token as free: the second
// TryLock says true); a Mutex in a private mapping (its writes never reach
// other processes: "Mutex of a private mapping"); Unlock without the holder check (Unlock of a free lock
// returns nil); a Mutex per Segment rather than per process (the second
// Segment's Unlock says EPERM).
func TestMutexSemantics(t *testing.T) {
	s, mu := newMutex(t)
	for _, off := range []int64{-8, 4, 4096 - 4, 4096} {
		if _, err := s.Mutex(off); !errors.Is(err, syscall.EINVAL) {
			t.Errorf("Mutex(%d) = %v; want EINVAL", off, err)
		}
	}
	if err := mu.Unlock(); !errors.Is(err, syscall.EPERM) {
		t.Errorf("Unlock of a free lock = %v; want EPERM", err)
	}
	if took, err := mu.TryLock(); !took || err != nil {
		t.Fatalf("TryLock of a zero lock = %v, %v", took, err)
	}
	if took, err := mu.TryLock(); took || err != nil {
		t.Fatalf("TryLock of a lock this process holds = %v, %v; want false: not reentrant", took, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := mu.Lock(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Lock of a lock this process holds = %v; want DeadlineExceeded", err)
	}
	// Another Segment of the same object: the same lock, held by this process.
	s2, err := shm.Open(s.Name())
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	mu2, err := s2.Mutex(0)
	if err != nil {
		t.Fatal(err)
	}
	if took, _ := mu2.TryLock(); took {
		t.Fatal("TryLock through a second Segment took a held lock")
	}
	done := make(chan error)
	go func() { done <- mu2.Unlock() }() // any goroutine of the holder may unlock
	if err := <-done; err != nil {
		t.Fatalf("Unlock through a second Segment of the same object: %v", err)
	}
	if err := mu.Unlock(); !errors.Is(err, syscall.EPERM) {
		t.Errorf("second Unlock = %v; want EPERM", err)
	}
	var pe *fs.PathError
	if err := mu.Unlock(); !errors.As(err, &pe) || pe.Op != "unlock" || pe.Path != s.Name() {
		t.Errorf("Unlock error %#v; want *fs.PathError unlock %s", err, s.Name())
	}
	ro, err := shm.OpenFile(s.Name(), os.O_RDONLY, 0, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ro.Mutex(0); !errors.Is(err, syscall.EINVAL) {
		t.Errorf("Mutex of a read-only mapping = %v; want EINVAL", err)
	}
	ro.Close()
	priv, err := shm.OpenFile(s.Name(), os.O_RDWR, 0, 0, &shm.Options{Private: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := priv.Mutex(0); !errors.Is(err, syscall.EINVAL) {
		t.Errorf("Mutex of a private mapping = %v; want EINVAL", err)
	}
	priv.Close()
	s2.Close()
	if _, err := s2.Mutex(0); !errors.Is(err, fs.ErrClosed) {
		t.Errorf("Mutex after Close = %v; want ErrClosed", err)
	}
	// A word of an unknown layout is refused, never taken.
	binary.LittleEndian.PutUint64(s.Bytes()[8:], 1<<63|5)
	mu8, err := s.Mutex(8)
	if err != nil {
		t.Fatal(err)
	}
	if took, err := mu8.TryLock(); took || !errors.Is(err, syscall.EPROTO) {
		t.Errorf("TryLock of a layout-2 word = %v, %v; want EPROTO", took, err)
	}
}

// TestMutexMapping: a Mapping of a file (no descriptor kept) has the same
// lock as a Segment of it.
//
// Kills: a registration keyed by anything but the object's device and
// inode (the Mapping's Unlock of the Segment's lock says EPERM); a
// reopenObject that cannot find a mapped file (Mutex fails).
func TestMutexMapping(t *testing.T) {
	s, mu := newMutex(t)
	f, err := os.OpenFile(devPath(s.Name()), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	m, err := shm.MapFile(f, os.O_RDWR, 0, 0, nil)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	mm, err := m.Mutex(0)
	if err != nil {
		t.Fatal(err)
	}
	if took, err := mu.TryLock(); !took || err != nil {
		t.Fatal(took, err)
	}
	if err := mm.Unlock(); err != nil {
		t.Fatalf("Mapping's Unlock of the Segment's lock: %v", err)
	}
}

// deletedObjects lists this process's descriptors and mappings (from
// /proc/self/fd and /proc/self/maps) of /dev/shm objects that are
// unlinked: what keeps their memory alive.
func deletedObjects(t *testing.T) []string {
	t.Helper()
	var found []string
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		l, err := os.Readlink("/proc/self/fd/" + e.Name())
		if err == nil && strings.HasPrefix(l, "/dev/shm/") && strings.HasSuffix(l, " (deleted)") {
			found = append(found, "fd "+e.Name()+" -> "+l)
		}
	}
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(maps), "\n") {
		if strings.Contains(line, "/dev/shm/") && strings.HasSuffix(line, " (deleted)") {
			found = append(found, "mapped "+line)
		}
	}
	return found
}

// TestMutexNoLeak: objects created, locked, unlocked, closed and unlinked
// over and over leave nothing behind: no descriptor, no mapping, no
// unlinked object kept alive (its memory freed).
//
// Kills: a registration kept for the life of the process (each cycle
// leaves a descriptor of the unlinked object: "(deleted)", and the
// descriptor count grows); a Close that does not release the Mapping's
// registration (likewise).
func TestMutexNoLeak(t *testing.T) {
	cycle := func() {
		name := uniqueName(t)
		s, err := shm.Create(name, 4096)
		if err != nil {
			t.Fatal(err)
		}
		cleanup(t, name)
		mu, err := s.Mutex(0)
		if err != nil {
			t.Fatal(err)
		}
		if err := mu.Lock(context.Background()); err != nil {
			t.Fatal(err)
		}
		if err := mu.Unlock(); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if err := shm.Unlink(name); err != nil {
			t.Fatal(err)
		}
	}
	cycle() // anything the first use sets up for good
	fds, maps := countFDs(t), countObjectMaps(t)
	const n = 50
	for range n {
		cycle()
	}
	if left := deletedObjects(t); len(left) > 0 {
		t.Errorf("%d cycles keep %d unlinked objects alive, such as:\n%s", n, len(left), strings.Join(left[:min(len(left), 3)], "\n"))
	}
	if got := countFDs(t); got != fds {
		t.Errorf("%d cycles: %d descriptors open, %d before", n, got, fds)
	}
	if got := countObjectMaps(t); got != maps {
		t.Errorf("%d cycles: %d object mappings in /proc/self/maps, %d before", n, got, maps)
	}
}

// TestMutexHeldAtLastClose: a lock stays this process's while any Mapping
// of the object from which it made a Mutex is open; when the last closes,
// a lock it still holds is taken with ErrOwnerDead, by another process and
// by this one through a new Mapping.
//
// Kills: a registration kept after the last Close (the child's TryLock
// finds a live holder: "false false"); a registration released by the
// Close of any Mapping rather than the last (the child takes the lock
// while the second Mapping is open: "true true" too early); a new Mutex
// reusing the closed registration (this process's TryLock of its old lock
// says false: its own token).
func TestMutexHeldAtLastClose(t *testing.T) {
	s, mu := newMutex(t)
	name := s.Name()
	mu8, err := s.Mutex(8)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []*shm.Mutex{mu, mu8} {
		if err := m.Lock(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	s2, err := shm.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if _, err := s2.Mutex(0); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if out := runChildOK(t, "mutex-trylock", name); out != "false false\n" {
		t.Fatalf("another process's TryLock while a second Mapping with a Mutex is open: %q; want false false (held by a live process)", out)
	}
	if err := s2.Close(); err != nil {
		t.Fatal(err)
	}
	if out := runChildOK(t, "mutex-trylock", name); out != "true true\n" {
		t.Fatalf("another process's TryLock of a lock held when this process's last Mapping closed: %q; want true true (ErrOwnerDead)", out)
	}
	s3, err := shm.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer s3.Close()
	mu3, err := s3.Mutex(8)
	if err != nil {
		t.Fatal(err)
	}
	if took, err := mu3.TryLock(); !took || !errors.Is(err, shm.ErrOwnerDead) {
		t.Fatalf("TryLock through a new Mapping of a lock held when the last Mapping closed = %v, %v; want true, ErrOwnerDead", took, err)
	}
	if err := mu3.Unlock(); err != nil {
		t.Fatal(err)
	}
}

// TestMutexAfterClose: a Mutex made after the process's last Mapping of
// the object closed makes a fresh registration, with a fresh token, that
// works: its Lock takes the free lock, another process sees it held by a
// live holder, and Unlock releases it.
//
// Kills: a registration kept after the last Close (the same token again:
// "not a fresh registration"); a registration whose descriptor Close
// closed but that the next Mutex reuses (nobody holds its byte lock: the
// child takes the lock, "true true").
func TestMutexAfterClose(t *testing.T) {
	s, mu := newMutex(t)
	name := s.Name()
	w, _ := s.Uint64(0)
	if err := mu.Lock(context.Background()); err != nil {
		t.Fatal(err)
	}
	old := w.Load() &^ (1 << 31)
	if err := mu.Unlock(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, err := shm.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	mu2, err := s2.Mutex(0)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := mu2.Lock(ctx); err != nil {
		t.Fatalf("Lock through a Mutex made after Close: %v", err)
	}
	w2, _ := s2.Uint64(0)
	if tok := w2.Load() &^ (1 << 31); tok == old {
		t.Errorf("token %#x after the last Close is the closed registration's: not a fresh registration", tok)
	}
	if out := runChildOK(t, "mutex-trylock", name); out != "false false\n" {
		t.Fatalf("another process's TryLock of the lock held through the new registration: %q; want false false (a live holder)", out)
	}
	if err := mu2.Unlock(); err != nil {
		t.Fatal(err)
	}
	if took, err := mu2.TryLock(); !took || err != nil {
		t.Fatalf("TryLock after Unlock = %v, %v", took, err)
	}
	mu2.Unlock()
}

// TestMutexCounter: Go goroutines, Go processes and C processes add to a
// plain counter under the lock, each language alone and then all
// together; the total is exact, and every phase ends within 30 s.
//
// Kills: a Lock that does not exclude (a blind store: the total comes out
// short, or an Unlock finds another's token: EPERM); a waiter that does
// not set the waiters bit, in Go (the Go phase: Locks sleep unwoken until
// their 30 s deadline) or in C (the C phase: each hand-off waits for C's
// 200 ms recheck: "did not finish"); an Unlock that does not wake
// (likewise).
func TestMutexCounter(t *testing.T) {
	peer := buildC(t, "mutexpeer")
	for _, ph := range []struct {
		name                string
		goroutines, goProcs int
		cProcs              int
	}{{"go", 2, 2, 0}, {"c", 0, 0, 3}, {"mixed", 2, 2, 2}} {
		t.Run(ph.name, func(t *testing.T) {
			s, mu := newMutex(t)
			const n = 20000
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			var procs []*exec.Cmd
			for range ph.goProcs {
				c := childCmd(t, "mutex-count", s.Name())
				c.Env = append(c.Env, "SHM_TEST_N="+strconv.Itoa(n))
				procs = append(procs, c)
			}
			for range ph.cProcs {
				procs = append(procs, exec.Command(peer, "count", s.Name(), strconv.Itoa(n)))
			}
			// Every process stays alive until all are done: a process that
			// exits is a dead holder, and the death watch's wake-up would
			// hide a lost one.
			var stdins []io.Closer
			var outs []*bufio.Reader
			for _, c := range procs {
				if c.Stderr == nil {
					c.Stderr = new(strings.Builder)
				}
				in, _ := c.StdinPipe()
				out, _ := c.StdoutPipe()
				if err := c.Start(); err != nil {
					t.Fatal(err)
				}
				stdins, outs = append(stdins, in), append(outs, bufio.NewReader(out))
				t.Cleanup(func() { c.Process.Kill(); c.Wait() })
			}
			ready, _ := s.Uint32(132)
			for int(ready.Load()) != len(procs) { // all processes are at the start line
				time.Sleep(time.Millisecond)
			}
			start, _ := s.Uint32(128)
			began := time.Now()
			start.Store(1)
			var wg sync.WaitGroup
			errs := make(chan error, ph.goroutines)
			for range ph.goroutines {
				wg.Go(func() { errs <- countUnder(ctx, mu, s.Bytes(), n) })
			}
			wg.Wait()
			for range ph.goroutines {
				if err := <-errs; err != nil {
					t.Fatal(err)
				}
			}
			for i, c := range procs {
				said := make(chan string, 1)
				go func() {
					var all string
					for {
						line, err := outs[i].ReadString('\n')
						all += line
						if line == "done\n" || err != nil {
							said <- all
							return
						}
					}
				}()
				select {
				case out := <-said:
					if !strings.HasSuffix(out, "done\n") {
						t.Fatalf("%s: %q %s", c.Args, out, c.Stderr)
					}
				case <-ctx.Done():
					t.Fatalf("%s did not finish within 30 s", c.Args)
				}
			}
			took := time.Since(began)
			for i, c := range procs {
				stdins[i].Close()
				if err := c.Wait(); err != nil {
					t.Fatalf("%s: %v %s", c.Args, err, c.Stderr)
				}
			}
			t.Logf("%d increments in %v", n*(ph.goroutines+len(procs)), took)
			if took > 10*time.Second {
				t.Errorf("%d increments took %v; want well under 10 s (a lost wake-up costs a 200 ms recheck in C)", n*(ph.goroutines+len(procs)), took)
			}
			want := uint64(n * (ph.goroutines + len(procs)))
			if got := binary.LittleEndian.Uint64(s.Bytes()[counterOff:]); got != want {
				t.Fatalf("counter = %d; want %d", got, want)
			}
			if w := binary.LittleEndian.Uint64(s.Bytes()); w != 0 {
				t.Fatalf("lock word after all unlocked = %#x; want 0", w)
			}
		})
	}
}

// holdIn starts cmd, which must print a line starting "locked", and
// returns a function that kills it with SIGKILL and reaps it.
func holdIn(t *testing.T, cmd *exec.Cmd) (kill func()) {
	t.Helper()
	if cmd.Stderr == nil {
		cmd.Stderr = new(strings.Builder)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdin, _ := cmd.StdinPipe()
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if !strings.HasPrefix(line, "locked") {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("%s: %q, %v %s", cmd.Args, line, err, cmd.Stderr)
	}
	var once sync.Once
	kill = func() {
		once.Do(func() {
			cmd.Process.Kill()
			stdin.Close()
			cmd.Wait()
		})
	}
	t.Cleanup(kill)
	return kill
}

// TestMutexOwnerDeadCHolder: a C process holds the lock and is killed
// with SIGKILL; a Go Lock already waiting gets the lock and ErrOwnerDead
// within the 250 ms test period (plus scheduling), and the lock is held.
//
// Kills: no death watch (the waiting Lock sleeps on: "Lock still waiting");
// alive() answering true for a dead holder (same); a takeover that does
// not report (err nil).
func TestMutexOwnerDeadCHolder(t *testing.T) {
	s, mu := newMutex(t)
	peer := buildC(t, "mutexpeer")
	kill := holdIn(t, exec.Command(peer, "hold", s.Name()))
	if took, err := mu.TryLock(); took || err != nil {
		t.Fatalf("TryLock of a lock a live C process holds = %v, %v", took, err)
	}
	done := make(chan error)
	go func() { done <- mu.Lock(context.Background()) }()
	waitSleeping(t, 1)
	kill()
	killed := time.Now()
	select {
	case err := <-done:
		if !errors.Is(err, shm.ErrOwnerDead) || !errors.Is(err, syscall.EOWNERDEAD) {
			t.Fatalf("Lock after the holder died = %v; want ErrOwnerDead", err)
		}
		t.Logf("waiting Lock learnt of the death after %v", time.Since(killed))
		if d := time.Since(killed); d > 2*time.Second {
			t.Errorf("took %v; want about 250 ms", d)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Lock still waiting 5 s after its holder was killed")
	}
	if out := runPeer(t, peer, "lock", s.Name(), "0"); out != "ETIMEDOUT 0\n" {
		t.Fatalf("C lock while Go holds it after the takeover: %q", out)
	}
	if err := mu.Unlock(); err != nil {
		t.Fatal(err)
	}
	if took, err := mu.TryLock(); !took || err != nil {
		t.Fatalf("TryLock after the repair = %v, %v; want a plain take", took, err)
	}
	mu.Unlock()
}

// waitSleeping waits until n goroutines of this process sleep in the
// futex of a Mutex or a Wait.
func waitSleeping(t *testing.T, n int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); countStacks(sleepFrame, true) < n; {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines never slept", n)
		}
		time.Sleep(time.Millisecond)
	}
}

func runPeer(t *testing.T, argv ...string) string {
	t.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stderr = new(strings.Builder)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v %s", argv, err, cmd.Stderr)
	}
	return string(out)
}

// TestMutexSecondHolderDies: a Go Lock sleeps while H holds the lock; H
// unlocks and its wake-up goes to W2, which was waiting first; W2 dies
// holding the lock while H lives on. The sleeping Lock must see W2's death
// (about 250 ms), though no wake-up reached it: its watcher reads who holds
// the lock at each test, not the holder it saw when it went to sleep.
//
// Kills: a watcher that tests the holder seen at the first sleep (the old
// death watch: H lives, so the Lock sleeps to its deadline, "Lock still
// waiting"); no watcher at all (likewise).
func TestMutexSecondHolderDies(t *testing.T) {
	s, mu := newMutex(t)
	h := childCmd(t, "mutex-pass", s.Name())
	h.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	hIn, hOut := startPeer(t, h, "locked <nil>\n")
	t.Cleanup(func() { hIn.Close(); h.Process.Kill(); h.Wait() })

	// W2 is a grandchild, through a shell that reaps it and then says so:
	// the SIGCHLD of its death goes to the shell, not to a thread of this
	// process, where it would restart the sleeping Lock's futex_waitv and
	// show it the new holder by chance.
	w2 := childCmd(t, "mutex-hold", s.Name())
	w2.Args = []string{"sh", "-c", `exec 3<&0; "$0" <&3 & echo "pid $!"; wait; echo reaped; read x`, w2.Path}
	w2.Path, _ = exec.LookPath("sh")
	w2.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	w2In, _ := w2.StdinPipe()
	w2Pipe, _ := w2.StdoutPipe()
	w2Out := bufio.NewReader(w2Pipe)
	if err := w2.Start(); err != nil {
		t.Fatal(err)
	}
	var w2Pid int
	if line, err := w2Out.ReadString('\n'); err != nil || func() bool { _, e := fmt.Sscanf(line, "pid %d", &w2Pid); return e != nil }() {
		t.Fatalf("W2's shell: %q %v", line, err)
	}
	t.Cleanup(func() { syscall.Kill(w2Pid, syscall.SIGKILL); w2In.Close(); w2.Process.Kill(); w2.Wait() })
	waitProcessSleeps(t, w2Pid) // W2 is first in the futex's queue

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan error)
	go func() { done <- mu.Lock(ctx) }()
	waitSleeping(t, 1)

	io.WriteString(hIn, "unlock\n")
	if line, err := hOut.ReadString('\n'); line != "unlocked <nil>\n" {
		t.Fatalf("H: %q %v", line, err)
	}
	if line, err := w2Out.ReadString('\n'); line != "locked <nil>\n" {
		t.Fatalf("W2 after H's unlock: %q %v %s", line, err, w2.Stderr)
	}
	select {
	case err := <-done:
		t.Fatalf("the Lock returned %v while W2 holds the lock", err)
	default:
	}
	syscall.Kill(w2Pid, syscall.SIGKILL)
	if line, err := w2Out.ReadString('\n'); line != "reaped\n" {
		t.Fatalf("W2's shell after the kill: %q %v", line, err)
	}
	killed := time.Now()
	err := <-done
	if !errors.Is(err, shm.ErrOwnerDead) {
		t.Fatalf("Lock after the second holder died (H alive) = %v after %v; want ErrOwnerDead", err, time.Since(killed))
	}
	d := time.Since(killed)
	t.Logf("the sleeping Lock learnt of the second holder's death after %v", d)
	if d > 2*time.Second && !raceEnabled {
		t.Errorf("took %v; want about 250 ms", d)
	}
	mu.Unlock()
}

// waitProcessSleeps waits until a thread of process pid sleeps in
// futex_waitv, the package's one wait.
func waitProcessSleeps(t *testing.T, pid int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; {
		tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/syscall", pid))
		for _, task := range tasks {
			b, _ := os.ReadFile(task)
			if f := strings.Fields(string(b)); len(f) > 0 && f[0] == strconv.Itoa(kernel.SYS_FUTEX_WAITV) {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("process %d never slept in futex_waitv", pid)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestMutexOwnerDeadGoHolder: a Go process holds the lock and is killed
// with SIGKILL; a C process already waiting in shmmutex_lock gets
// EOWNERDEAD with the lock held, and a Go TryLock afterwards a plain lock.
//
// Kills: C's step not testing the holder's byte (ETIMEDOUT); Go's slot()
// and C's shmmutex__slot disagreeing (the C waiter tests the wrong byte:
// EOWNERDEAD while the holder lives, seen as "C took a live holder's lock").
func TestMutexOwnerDeadGoHolder(t *testing.T) {
	s, mu := newMutex(t)
	peer := buildC(t, "mutexpeer")
	kill := holdIn(t, childCmd(t, "mutex-hold", s.Name()))
	if out := runPeer(t, peer, "lock", s.Name(), "300"); out != "ETIMEDOUT 0\n" {
		t.Fatalf("C took a live holder's lock: %q", out)
	}
	c := exec.Command(peer, "lock", s.Name(), "10000")
	c.Stderr = new(strings.Builder)
	out, _ := c.StdoutPipe()
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	kill()
	line, err := bufio.NewReader(out).ReadString('\n')
	c.Wait()
	if line != "EOWNERDEAD 0\n" {
		t.Fatalf("C waiter after the Go holder died: %q %v %s", line, err, c.Stderr)
	}
	if took, err := mu.TryLock(); !took || err != nil {
		t.Fatalf("TryLock after C repaired and unlocked = %v, %v", took, err)
	}
	if got := binary.LittleEndian.Uint64(s.Bytes()[counterOff:]); got != 1 {
		t.Fatalf("counter %d; want 1", got)
	}
	mu.Unlock()
}

// unshareCmd runs the test binary's role in a new pid namespace, where it
// is pid 1, as a container's process would be.
func unshareCmd(t *testing.T, role, name string) *exec.Cmd {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("unshare --pid needs root")
	}
	path, err := exec.LookPath("unshare")
	if err != nil {
		t.Skipf("no unshare: %v", err)
	}
	if out, err := exec.Command(path, "--pid", "--fork", "true").CombinedOutput(); err != nil {
		t.Skipf("unshare --pid is not permitted here (a container without CAP_SYS_ADMIN): %v %s", err, out)
	}
	exe, _ := os.Executable()
	cmd := exec.Command(path, "--pid", "--fork", "--kill-child", exe)
	cmd.Env = append(os.Environ(), childEnv+"="+role, nameEnv+"="+name)
	return cmd
}

// TestMutexPidNamespace: a holder in another pid namespace, alive, is
// never declared dead (its pid, 1 there, means nothing here); killed, it
// is. Then pid reuse: a second holder in a fresh namespace is pid 1 again,
// alive, holding the same slot range of the same object, while the first
// pid 1's lock at another offset is found dead.
//
// Kills: a token derived from the pid (the two pid 1s share a token: the
// dead holder's lock looks alive, "TryLock of the dead pid 1's lock");
// alive() testing another byte than the holder's slot (the live holder is
// declared dead: "took a live holder's lock").
func TestMutexPidNamespace(t *testing.T) {
	s, mu := newMutex(t)
	kill := holdIn(t, unshareCmd(t, "mutex-hold", s.Name()))
	ctx, cancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
	defer cancel()
	if err := mu.Lock(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Lock of a lock held by a live process in another pid namespace = %v; want DeadlineExceeded (never dead)", err)
	}
	if took, err := mu.TryLock(); took || err != nil {
		t.Fatalf("took a live holder's lock: %v, %v", took, err)
	}
	// Pid reuse: the holder was pid 1 in its namespace; so is the next,
	// alive and holding the lock at offset 8 (so it holds its byte lock on
	// the object). The dead pid 1's lock is still found dead.
	kill()
	kill2 := holdIn(t, unshareCmd(t, "mutex-hold8", s.Name()))
	defer kill2()
	mu8, err := s.Mutex(8)
	if err != nil {
		t.Fatal(err)
	}
	if took, err := mu8.TryLock(); took || err != nil {
		t.Fatalf("took the live second pid 1's lock: %v, %v", took, err)
	}
	took, err := mu.TryLock()
	if !took || !errors.Is(err, shm.ErrOwnerDead) {
		t.Fatalf("TryLock of the dead pid 1's lock = %v, %v; want ErrOwnerDead", took, err)
	}
	mu.Unlock()
}

// TestMutexMisuse: C's misuse answers, and Unlock across languages of a
// lock the other holds is EPERM in both.
//
// Kills: C unlock without the holder check ("ok" where EPERM is due); a
// C trylock that is reentrant (ok where EBUSY is due).
func TestMutexMisuse(t *testing.T) {
	s, mu := newMutex(t)
	peer := buildC(t, "mutexpeer")
	if out := runPeer(t, peer, "misuse", s.Name()); out != "EPERM ok EBUSY ok EPERM\n" {
		t.Errorf("C misuse: %q", out)
	}
	kill := holdIn(t, exec.Command(peer, "hold", s.Name()))
	if err := mu.Unlock(); !errors.Is(err, syscall.EPERM) {
		t.Errorf("Go Unlock of C's lock = %v; want EPERM", err)
	}
	kill()
	if took, err := mu.TryLock(); !took || !errors.Is(err, shm.ErrOwnerDead) {
		t.Fatal(took, err)
	}
	if out := runPeer(t, peer, "misuse", s.Name()); out != "EPERM EBUSY EBUSY EPERM EPERM\n" {
		t.Errorf("C misuse of a lock Go holds: %q", out)
	}
	mu.Unlock()
}

// handoff is one side of BenchmarkMutex/handoff, in words of s: turn
// (136) counts hand-offs, intent (140) says which turn the side now
// waiting waits for, t0 (144) is when the holder gave, sum (152) adds up
// the hand-off latencies (until the taker's wait returned), stop (128)
// ends the child. The side that holds waits until the other announced its
// wait and then 300 µs more, so that it sleeps in the kernel (untimed),
// and gives. Between turns the sides sleep in Wait, never spin (a spinner
// takes the CPU the woken side needs). Side 0 (the parent) takes rounds
// times. With mu, taking is Lock and giving Unlock; without, the baton is
// a futex word (160): giving stores k+1 and wakes, taking waits for it in
// Wait, the same hand-off as a plain futex.
func handoff(mu *shm.Mutex, s *shm.Segment, side uint32, rounds int) error {
	turn, _ := s.Uint32(136)
	intent, _ := s.Uint32(140)
	t0, _ := s.Uint64(144)
	sum, _ := s.Uint64(152)
	stop, _ := s.Uint32(128)
	baton, _ := s.Uint32(160)
	ctx := context.Background()
	sleepUntil := func(off int64, w *atomic.Uint32, want uint32) {
		for v := w.Load(); v != want; v = w.Load() {
			s.Wait(ctx, off, v)
		}
	}
	set := func(off int64, w *atomic.Uint32, v uint32) {
		w.Store(v)
		s.Wake(off, 1)
	}
	take := func(k uint32) error {
		if mu != nil {
			return mu.Lock(ctx)
		}
		for v := baton.Load(); v != k && stop.Load() == 0; v = baton.Load() {
			s.Wait(ctx, 160, v)
		}
		return nil
	}
	give := func(k uint32) error {
		if mu != nil {
			return mu.Unlock()
		}
		set(160, baton, k+1)
		return nil
	}
	if side == 0 {
		if err := take(0); err != nil {
			return err
		}
	}
	for k := side; ; k += 2 { // this side holds at turn k
		if k > 0 {
			sleepUntil(136, turn, k-1)
			set(140, intent, k)
			if err := take(k); err != nil {
				return err
			}
			if stop.Load() != 0 {
				return give(k)
			}
			sum.Add(uint64(time.Now().UnixNano()) - t0.Load())
			set(136, turn, k)
			if side == 0 && int(k/2) == rounds {
				stop.Store(1)
				return give(k)
			}
		}
		sleepUntil(140, intent, k+1)
		time.Sleep(300 * time.Microsecond)
		t0.Store(uint64(time.Now().UnixNano()))
		if err := give(k); err != nil {
			return err
		}
	}
}

// BenchmarkMutex: uncontended Lock+Unlock in Go and, in the same run,
// alternately with C through c/shmmutex.h (medians of 7 rounds, and their
// ratio Go/C); and the contended
// hand-off between two processes: from the holder's Unlock until the
// Lock sleeping in the other process returns (metric ns/handoff; ns/op
// includes untimed pauses), beside the futex round trip between the same
// two kinds of process (Wake, the peer's Wait returns, its Wake, our Wait
// returns: metric ns/roundtrip).
func BenchmarkMutex(b *testing.B) {
	b.Run("uncontended", func(b *testing.B) {
		s := create(b, 4096)
		mu, err := s.Mutex(0)
		if err != nil {
			b.Fatal(err)
		}
		ctx := context.Background()
		for b.Loop() {
			mu.Lock(ctx)
			mu.Unlock()
		}
		// Then Go and C alternately, 7 rounds of a million each, medians:
		// the machine's other work comes and goes between rounds.
		b.StopTimer()
		peer := buildC(b, "mutexpeer")
		var goNs, cNs []float64
		for range 7 {
			start := time.Now()
			for range 1000000 {
				mu.Lock(ctx)
				mu.Unlock()
			}
			goNs = append(goNs, float64(time.Since(start).Nanoseconds())/1e6)
			out, err := exec.Command(peer, "bench", s.Name(), "1000000").Output()
			if err != nil {
				b.Fatal(err)
			}
			c, _ := strconv.ParseFloat(strings.TrimSpace(string(out)), 64)
			cNs = append(cNs, c)
		}
		slices.Sort(goNs)
		slices.Sort(cNs)
		b.ReportMetric(goNs[3], "Go-median-ns/op")
		b.ReportMetric(cNs[3], "C-median-ns/op")
		b.ReportMetric(goNs[3]/cNs[3], "Go/C")
	})
	for _, kind := range []string{"mutex", "futex"} {
		b.Run("handoff-"+kind, func(b *testing.B) {
			s := create(b, 4096)
			var mu *shm.Mutex
			if kind == "mutex" {
				var err error
				if mu, err = s.Mutex(0); err != nil {
					b.Fatal(err)
				}
			}
			cmd := childCmd(b, "mutex-handoff", s.Name())
			cmd.Env = append(cmd.Env, "SHM_TEST_KIND="+kind)
			if err := cmd.Start(); err != nil {
				b.Fatal(err)
			}
			if err := handoff(mu, s, 0, b.N); err != nil {
				b.Fatal(err)
			}
			if err := cmd.Wait(); err != nil {
				b.Fatalf("child: %v %s", err, cmd.Stderr)
			}
			sum, _ := s.Uint64(152)
			b.ReportMetric(float64(sum.Load())/float64(2*b.N), "ns/handoff")
		})
	}
	b.Run("futex-roundtrip", func(b *testing.B) {
		s := create(b, 4096)
		cmd := childCmd(b, "sync-futex-pong", s.Name())
		cmd.Env = append(cmd.Env, "SHM_TEST_N="+strconv.Itoa(b.N), "SHM_TEST_SPIN=0")
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		d, err := futexPing(context.Background(), s, b.N, 0)
		if err != nil {
			b.Fatal(err)
		}
		if err := cmd.Wait(); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(d.Nanoseconds())/float64(b.N), "ns/roundtrip")
	})
}

// TestShmmutexHeader: c/shmmutex.h compiles without a warning as C11
// (strict, with POSIX declared) and as GNU C, with -Wall -Wextra
// -pedantic -Werror, under each compiler the suite knows: cc, cc -m32 and
// musl-gcc (each skipped with its reason where missing).
//
// Kills: a declaration only GNU C has (strict C11 fails); an unused
// parameter or a sign comparison (-Wextra); a 64-bit atomic that is not
// lock-free (the _Static_assert).
func TestShmmutexHeader(t *testing.T) {
	src := filepath.Join(t.TempDir(), "h.c")
	if err := os.WriteFile(src, []byte(`#include "shmmutex.h"
int main(void) {
	static _Alignas(8) unsigned char m[SHMMUTEX_SIZE];
	return shmmutex_trylock(m) + shmmutex_lock(m, 0) + shmmutex_unlock(m);
}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	inc, _ := filepath.Abs("c")
	for _, cc := range []string{"cc", "cc -m32", "musl-gcc"} {
		for _, std := range []string{"-std=c11 -D_DEFAULT_SOURCE", "-std=gnu11"} {
			t.Run(strings.ReplaceAll(cc+" "+std, " ", "_"), func(t *testing.T) {
				argv := strings.Fields(cc)
				if _, err := exec.LookPath(argv[0]); err != nil {
					t.Skipf("no %s: %v", argv[0], err)
				}
				args := append(argv[1:], strings.Fields(std)...)
				args = append(args, "-Wall", "-Wextra", "-pedantic", "-Werror", "-I", inc, "-c", "-o", filepath.Join(t.TempDir(), "h.o"), src)
				out, err := exec.Command(argv[0], args...).CombinedOutput()
				if err != nil && cc == "cc -m32" && strings.Contains(string(out), "No such file") {
					t.Skipf("no 32-bit C library: %s", out)
				}
				if err != nil {
					t.Fatalf("%s %s: %v\n%s", cc, strings.Join(args, " "), err, out)
				}
			})
		}
	}
}

// TestMutexWakesC: a C process waiting in shmmutex_lock on a lock Go holds
// announces itself (the waiters bit) and sleeps; Go's Unlock wakes it at
// once (within 100 ms), not its own 200 ms recheck of the holder.
//
// Kills: a C waiter that does not set the waiters bit ("never set the
// waiters bit"); a Go Unlock that does not wake ("woken after 200ms").
func TestMutexWakesC(t *testing.T) {
	s, mu := newMutex(t)
	peer := buildC(t, "mutexpeer")
	if err := mu.Lock(context.Background()); err != nil {
		t.Fatal(err)
	}
	c := exec.Command(peer, "lock", s.Name(), "5000")
	c.Stderr = new(strings.Builder)
	out, _ := c.StdoutPipe()
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	defer c.Wait()
	defer c.Process.Kill()
	w, _ := s.Uint64(0)
	stat := fmt.Sprintf("/proc/%d/stat", c.Process.Pid)
	asleep := func() bool { // announced, and sleeping (state S)
		b, _ := os.ReadFile(stat)
		_, rest, _ := strings.Cut(string(b), ") ")
		return w.Load()&(1<<31) != 0 && strings.HasPrefix(rest, "S")
	}
	for deadline := time.Now().Add(5 * time.Second); !asleep(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the C waiter never set the waiters bit and slept (word %#x)", w.Load())
		}
	}
	start := time.Now()
	if err := mu.Unlock(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	took := time.Since(start)
	if line != "ok 0\n" {
		t.Fatalf("C waiter: %q %v %s", line, err, c.Stderr)
	}
	t.Logf("C waiter took the lock %v after Go's Unlock", took)
	if took > 100*time.Millisecond {
		t.Errorf("C waiter woken after %v; want at once, not by its 200 ms recheck", took)
	}
}

// threadsInWaitv is how many threads of this process sleep in futex_waitv.
func threadsInWaitv() int {
	n := 0
	tasks, _ := filepath.Glob("/proc/self/task/*/syscall")
	for _, task := range tasks {
		b, _ := os.ReadFile(task)
		if f := strings.Fields(string(b)); len(f) > 0 && f[0] == strconv.Itoa(kernel.SYS_FUTEX_WAITV) {
			n++
		}
	}
	return n
}

// TestMutexCancelledWakeup: Locks A and B sleep, A first; the holder
// unlocks, which clears the waiters bit and wakes one sleeper, A, whose
// ctx is cancelled at that moment. A returns without the lock; the
// wake-up it took must go on to B, or B sleeps while the lock is free
// (and stays asleep while others take and release it by the fast path,
// which makes no wake-up).
//
// Kills: a cancelled Lock that leaves without passing the wake-up on (B
// "stranded": it sleeps to its deadline while the lock is free).
func TestMutexCancelledWakeup(t *testing.T) {
	_, mu := newMutex(t)
	for round := range 10 {
		if err := mu.Lock(context.Background()); err != nil {
			t.Fatal(err)
		}
		base := threadsInWaitv()
		sleepers := func(n int) {
			for deadline := time.Now().Add(10 * time.Second); threadsInWaitv() < base+n; {
				if time.Now().After(deadline) {
					t.Fatalf("%d Locks never slept in futex_waitv", n)
				}
				time.Sleep(time.Millisecond)
			}
		}
		ctxA, cancelA := context.WithCancel(context.Background())
		a := make(chan error, 1)
		go func() { a <- mu.Lock(ctxA) }()
		sleepers(1) // A is first in the futex's queue
		ctxB, cancelB := context.WithTimeout(context.Background(), 5*time.Second)
		b := make(chan error, 1)
		go func() { b <- mu.Lock(ctxB) }()
		sleepers(2)

		// One P: A's thread, woken by the Unlock, cannot run Go code before
		// the cancellation's goroutine has run.
		procs := runtime.GOMAXPROCS(1)
		if err := mu.Unlock(); err != nil {
			t.Fatal(err)
		}
		cancelA()
		errA := <-a
		runtime.GOMAXPROCS(procs)
		if errA == nil { // A took the free lock after all: it hands it to B
			mu.Unlock()
		} else if !errors.Is(errA, context.Canceled) {
			t.Fatalf("round %d: cancelled Lock: %v", round, errA)
		}
		t0 := time.Now()
		// B's deadline lets it out (its last look takes the free lock):
		// before that, it must have been woken.
		if err := <-b; err != nil || time.Since(t0) > 2*time.Second {
			t.Fatalf("round %d: B stranded: Lock = %v after %v with the lock free (A: %v)", round, err, time.Since(t0), errA)
		}
		cancelB()
		if err := mu.Unlock(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestLockSurvivesShrink: a Lock asleep on a word that a truncate (a
// peer's, in production) takes away ends with an error wrapping
// ErrFault, not a SIGBUS crash: the process's watcher goroutine and the
// Lock's own re-arm read the word under a fault guard.
//
// Kills (the third review): the watcher's unguarded word.Load() ("fatal
// error: fault [signal SIGBUS]", the test binary dies); the watcher waking
// the sleepers by the shared word's address, which the kernel cannot
// resolve once the page is gone (the Lock sleeps on to its 10 s deadline).
func TestLockSurvivesShrink(t *testing.T) {
	a := create(t, 8192)
	b, err := shm.Open(a.Name())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	held, err := a.Mutex(4096)
	if err != nil {
		t.Fatal(err)
	}
	if err := held.Lock(context.Background()); err != nil {
		t.Fatal(err)
	}
	before := binary.LittleEndian.Uint64(a.Bytes()[4096:])
	waiter, err := b.Mutex(4096)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- waiter.Lock(ctx) }()
	for binary.LittleEndian.Uint64(a.Bytes()[4096:]) == before { // until the waiter announced itself (the waiters bit)
		runtime.Gosched()
	}
	if err := a.Truncate(4096); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := <-done; !errors.Is(err, shm.ErrFault) || time.Since(start) > 2*time.Second {
		t.Fatalf("Lock asleep on a word truncated away: %v after %v, want an error wrapping ErrFault within 2 s (the watcher's period is 250 ms)", err, time.Since(start))
	}
}

// TestMutexCallsAfterClose: Lock, TryLock and Unlock of a Mutex whose
// Mapping was closed return errors wrapping fs.ErrClosed (the third
// review: each was a SIGSEGV, the lock word unmapped), also for a Mutex
// held when another goroutine closed the Mapping.
//
// Kills: any of the three fast paths without the closed check (the test
// binary dies: "unexpected fault address", SIGSEGV).
func TestMutexCallsAfterClose(t *testing.T) {
	s, mu := newMutex(t)
	if err := mu.Lock(context.Background()); err != nil {
		t.Fatal(err)
	}
	closed := make(chan error)
	go func() { closed <- s.Close() }() // another goroutine closes while the lock is held
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	for name, call := range map[string]func() error{
		"Unlock":  mu.Unlock,
		"Lock":    func() error { return mu.Lock(context.Background()) },
		"TryLock": func() error { _, err := mu.TryLock(); return err },
	} {
		var pe *fs.PathError
		if err := call(); !errors.Is(err, fs.ErrClosed) || !errors.As(err, &pe) {
			t.Errorf("%s after the mapping's Close: %v, want a *fs.PathError wrapping fs.ErrClosed", name, err)
		}
	}
}
