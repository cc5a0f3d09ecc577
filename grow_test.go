package shm_test

// Growing page by page (issue 21 item 8): stale views stay valid at a
// bounded cost.

import (
	"math/bits"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/posixshm/shm"
)

// growSteps is how many one-page grows TestGrowPageByPage makes of each
// Mapping: more than vm.max_map_count's default (65530) mappings, had each
// grow kept one.
const growSteps = 100_000

// TestGrowPageByPage (issue 21 item 8): 100,000 one-page grows of one
// object, by Truncate, by Remap following a peer that grew the object
// (ftruncate through a descriptor of its own), and by Truncate of a
// private Mapping, all complete in a 512 MiB private /dev/shm, while
// slices taken along the way stay mapped to the object and keep reaching
// its bytes (shared) or it (private). The object's mappings in
// /proc/self/maps stay O(log n) in number (at most 2·log2(n)+4) and within
// 4 times the object's final size in address space (each move maps twice
// the size, so the mappings kept sum to less than twice the last), and
// none is inaccessible (---p).
//
// Kills: 93dfd98, where each moving grow kept a mapping of the grown size
// and moved again on the next ("grow 65468: Truncate(268165120): mmap ...:
// cannot allocate memory" near vm.max_map_count, and for the private
// Mapping "1988 mappings of the object after 100000 one-page grows, want
// at most 38", 82.59x its size in address space); mapping only the new size
// instead of twice it (span returning size: "grow 65467: Truncate ...
// cannot allocate memory").
func TestGrowPageByPage(t *testing.T) {
	if !inSmallDevShm(t, "512m") {
		return
	}
	page := os.Getpagesize()
	final := (growSteps + 1) * page
	// keep reports whether the slice taken after grow i is kept as a
	// stale one.
	keep := func(i int) bool {
		switch i {
		case 0, 1, 2, 10, 1000, 30000, 70000, growSteps - 1:
			return true
		}
		return false
	}

	t.Run("Truncate", func(t *testing.T) {
		s := create(t, page)
		stale := [][]byte{s.Bytes()}
		start := time.Now()
		for i := range growSteps {
			if err := s.Truncate((i + 2) * page); err != nil {
				t.Fatalf("grow %d: Truncate(%d): %v", i, (i+2)*page, err)
			}
			if keep(i) {
				stale = append(stale, s.Bytes())
			}
		}
		t.Logf("%d one-page grows by Truncate: %v", growSteps, time.Since(start))
		checkStale(t, s, stale, "rw-s")
		checkGrowCost(t, s.Name(), final)
		s.Close()
		shm.Unlink(s.Name())
	})

	t.Run("Remap", func(t *testing.T) {
		s := create(t, page)
		peer, err := os.OpenFile(devPath(s.Name()), os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer peer.Close()
		stale := [][]byte{s.Bytes()}
		start := time.Now()
		for i := range growSteps {
			if err := peer.Truncate(int64((i + 2) * page)); err != nil {
				t.Fatal(err)
			}
			if err := s.Remap(); err != nil {
				t.Fatalf("grow %d: Remap: %v", i, err)
			}
			if s.Size() != (i+2)*page {
				t.Fatalf("grow %d: Size %d after Remap, want %d", i, s.Size(), (i+2)*page)
			}
			if keep(i) {
				stale = append(stale, s.Bytes())
			}
		}
		t.Logf("%d one-page grows by a peer, followed by Remap: %v", growSteps, time.Since(start))
		checkStale(t, s, stale, "rw-s")
		checkGrowCost(t, s.Name(), final)
		s.Close()
		shm.Unlink(s.Name())
	})

	t.Run("Private", func(t *testing.T) {
		a := create(t, page)
		p, err := shm.OpenFile(a.Name(), os.O_RDWR, 0, 0, &shm.Options{Private: true})
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		a.Close()
		copy(p.Bytes(), "private")
		var stale [][]byte
		start := time.Now()
		for i := range growSteps {
			if err := p.Truncate((i + 2) * page); err != nil {
				t.Fatalf("grow %d: Truncate(%d): %v", i, (i+2)*page, err)
			}
			if keep(i) {
				stale = append(stale, p.Bytes())
			}
			if i == 5000 {
				copy(p.Bytes()[(i+1)*page:], "later") // a private copy of a page made since
			}
		}
		t.Logf("%d one-page grows of a private Mapping by Truncate: %v", growSteps, time.Since(start))
		if b := p.Bytes(); string(b[:7]) != "private" || string(b[5001*page:][:5]) != "later" {
			t.Fatalf("the grows lost this process's private bytes: %q, %q", b[:7], b[5001*page:][:5])
		}
		for k, b := range stale {
			if line := mappingAt(t, uintptr(unsafe.Pointer(&b[len(b)-1]))); !strings.HasSuffix(line, devPath(a.Name())) {
				t.Fatalf("stale slice %d (%d bytes) ends in %q, not in the object", k, len(b), line)
			}
		}
		checkGrowCost(t, a.Name(), final)
	})
}

// checkStale checks that each stale slice still reaches s's object: a
// byte written through its last page is seen through s, and its pages are
// mapped to the object with perms.
func checkStale(t *testing.T, s *shm.Segment, stale [][]byte, perms string) {
	t.Helper()
	for k, b := range stale {
		i := len(b) - 1
		b[i] = byte(k + 1)
		b[0] = byte(k + 1)
		if got := s.Bytes(); got[i] != byte(k+1) || got[0] != byte(k+1) {
			t.Fatalf("stale slice %d (%d bytes) no longer reaches the object: %d, %d", k, len(b), got[0], got[i])
		}
		for _, off := range []int{0, i} {
			line := mappingAt(t, uintptr(unsafe.Pointer(&b[off])))
			if f := strings.Fields(line); len(f) < 6 || f[1] != perms || !strings.HasSuffix(line, devPath(s.Name())) {
				t.Fatalf("stale slice %d (%d bytes), byte %d, is in %q, not a %s mapping of the object", k, len(b), off, line, perms)
			}
		}
	}
}

// checkGrowCost checks the mappings of object name in /proc/self/maps
// after it grew page by page to final bytes: O(log n) of them, within 4
// times final in address space, none inaccessible.
func checkGrowCost(t *testing.T, name string, final int) {
	t.Helper()
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		t.Skipf("no /proc/self/maps: %v", err)
	}
	n, space := 0, uint64(0)
	for line := range strings.Lines(string(maps)) {
		if !strings.HasSuffix(strings.TrimSpace(line), devPath(name)) {
			continue
		}
		f := strings.Fields(line)
		lo, hi, _ := strings.Cut(f[0], "-")
		l, _ := strconv.ParseUint(lo, 16, 64)
		h, _ := strconv.ParseUint(hi, 16, 64)
		n++
		space += h - l
		if f[1] == "---p" {
			t.Errorf("an inaccessible mapping of the object: %s", line)
		}
	}
	maxN := 2*bits.Len(uint(growSteps)) + 4
	t.Logf("%d mappings of the object, %d MiB of address space for a %d MiB object (%.2fx)",
		n, space>>20, final>>20, float64(space)/float64(final))
	if n > maxN {
		t.Errorf("%d mappings of the object after %d one-page grows, want at most %d", n, growSteps, maxN)
	}
	if space > 4*uint64(final) {
		t.Errorf("%d bytes of address space map the %d-byte object, more than 4 times its size", space, final)
	}
}
