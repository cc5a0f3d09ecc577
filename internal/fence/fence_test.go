//go:build linux

package fence_test

import (
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"unsafe"

	"github.com/posixshm/shm/internal/fence"
)

// TestStoreBuffer is the store-buffer litmus test on words of a shared
// mapping (memory outside the Go heap, where -race weakens atomics): in
// each round two goroutines each store 1 to their own fresh word, call
// Full, and load the other's word. Both loading 0 is the outcome
// sequential consistency forbids. Without Full (the mutation), a -race
// build sees it in about a tenth of the rounds.
func TestStoreBuffer(t *testing.T) {
	if runtime.GOMAXPROCS(0) < 2 {
		t.Skip("needs two CPUs for the two sides to overlap")
	}
	rounds := 200000
	if testing.Short() {
		rounds = 20000
	}
	// Round i uses the words at 8i (x) and 8i+4 (y): no reset between rounds.
	size := (rounds*8 + 4095) &^ 4095
	mem, err := syscall.Mmap(-1, 0, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED|syscall.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Munmap(mem) })
	word := func(off int) *atomic.Uint32 { return (*atomic.Uint32)(unsafe.Pointer(&mem[off])) }
	seen := [2][]uint32{make([]uint32, rounds), make([]uint32, rounds)}
	var progress [2]atomic.Int64 // rounds each side has started
	var wg sync.WaitGroup
	for side := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range rounds {
				progress[side].Store(int64(i + 1))
				for progress[1-side].Load() < int64(i+1) { // start each round together
				}
				mine, other := word(8*i+4*side), word(8*i+4*(1-side))
				mine.Store(1)
				fence.Full()
				seen[side][i] = other.Load()
			}
		}()
	}
	wg.Wait()
	forbidden := 0
	for i := range rounds {
		if seen[0][i] == 0 && seen[1][i] == 0 {
			forbidden++
		}
	}
	if forbidden != 0 {
		t.Fatalf("store-buffer litmus: both loads missed both stores in %d of %d rounds", forbidden, rounds)
	}
}
