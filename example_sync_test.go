//go:build linux && cgo

package shm_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/posixshm/shm"
)

// A named semaphore tells another process when to look: the writer posts
// once the bytes are in place, the reader waits for the post. Here both
// sides are goroutines; in practice they are separate programs, in any
// language, that know the name.
func ExampleSemaphore() {
	name := fmt.Sprintf("/example-%d-ready", os.Getpid())
	ready, err := shm.CreateSemaphore(name, 0) // sem_open(O_CREAT|O_EXCL, 0600, 0)
	if err != nil {
		log.Fatal(err)
	}
	defer ready.Close()  // sem_close
	defer ready.Unlink() // sem_unlink

	go func() {
		// The writer: fill the shared memory, then post.
		if err := ready.Post(); err != nil { // sem_post
			log.Fatal(err)
		}
	}()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := ready.Wait(ctx); err != nil { // sem_trywait, then libc's own wait protocol
		log.Fatal(err) // context.DeadlineExceeded if nobody posted in time
	}
	fmt.Println("the writer is done")
	// Output: the writer is done
}

// A single-producer single-consumer ring in one segment: word 0 counts the
// messages written, word 64 the messages read (on separate cache lines),
// and each side sleeps in Wait on the other's word when the ring is full or
// empty. The consumer here is a goroutine; it could as well be a C program
// using futex(2) on the same words (see testdata/futexpeer.c).
func ExampleSegment_Wait() {
	const slots, slotSize, data = 8, 64, 128
	s, err := shm.CreateTemp("example-ring-*", data+slots*slotSize)
	if err != nil {
		log.Fatal(err)
	}
	defer s.Unlink()
	defer s.Close()
	head, _ := s.Uint32(0)  // written
	tail, _ := s.Uint32(64) // read

	done := make(chan int)
	go func() { // the consumer
		sum := 0
		for {
			h := head.Load()
			for h == tail.Load() { // empty: sleep until head moves
				s.Wait(context.Background(), 0, h) // spurious returns are fine: load again
				h = head.Load()
			}
			t := tail.Load()
			msg := make([]byte, 1)
			s.ReadAt(msg, data+int64(t%slots)*slotSize)
			if msg[0] == 0 {
				done <- sum
				return
			}
			sum += int(msg[0])
			tail.Store(t + 1)
			s.Wake(64, 1)
		}
	}()

	for i := 1; i <= 101; i++ { // the producer; 101 is the end mark
		h := head.Load()
		for t := tail.Load(); h-t == slots; t = tail.Load() { // full: sleep until tail moves
			s.Wait(context.Background(), 64, t)
		}
		s.WriteAt([]byte{byte(i % 101)}, data+int64(h%slots)*slotSize)
		head.Store(h + 1)
		s.Wake(0, 1)
	}
	fmt.Println("sum of 1..100:", <-done)
	// Output: sum of 1..100: 5050
}

// A lock between processes in 8 bytes of an object: all-zero bytes are an
// unlocked Mutex, so a new object needs no setup. A C process locks the
// same bytes with c/shmmutex.h. When a holder dies holding it, the next
// Lock takes it and returns ErrOwnerDead: the data it guards may be
// half-updated.
func ExampleMapping_Mutex() {
	s, err := shm.CreateTemp(fmt.Sprintf("example-%d-lock-*", os.Getpid()), 4096)
	if err != nil {
		log.Fatal(err)
	}
	defer s.Unlink()
	defer s.Close()
	mu, err := s.Mutex(0) // MutexSize bytes at offset 0, a multiple of 8
	if err != nil {
		log.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err = mu.Lock(ctx)
	if errors.Is(err, shm.ErrOwnerDead) {
		// The lock is ours; check and repair what it guards, then go on.
	} else if err != nil {
		log.Fatal(err)
	}
	copy(s.Bytes()[shm.MutexSize:], "updated under the lock")
	ok, _ := mu.TryLock() // not reentrant: this process holds it already
	fmt.Println("locked again:", ok)
	if err := mu.Unlock(); err != nil {
		log.Fatal(err)
	}
	ok, _ = mu.TryLock()
	fmt.Println("locked after Unlock:", ok)
	mu.Unlock()
	// Output:
	// locked again: false
	// locked after Unlock: true
}
