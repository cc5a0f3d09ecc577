//go:build linux && cgo

package ring_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"os"
	"time"

	"github.com/posixshm/shm/ring"
)

// A writer sends three messages and closes its end; the reader receives
// them whole and in order, then io.EOF. Here both ends are in one process;
// in practice each is its own process, in Go, C (ring/c/shmring.h) or
// Python (ring/python/shmring.py), knowing only the name.
func Example() {
	name := fmt.Sprintf("/example-%d-ring", os.Getpid())
	r, err := ring.Create(name, 1<<16) // 64 KiB of data
	if err != nil {
		log.Fatal(err)
	}
	defer r.Close()
	defer r.Unlink()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	w, err := r.Writer() // ring.ErrBusy while another live process writes
	if err != nil {
		log.Fatal(err)
	}
	for _, m := range []string{"one", "two", "three"} {
		if err := w.Send(ctx, []byte(m)); err != nil { // waits while the ring is full
			log.Fatal(err)
		}
	}
	w.Close() // the end of the stream

	rd, err := r.Reader()
	if err != nil {
		log.Fatal(err)
	}
	defer rd.Close()
	buf := make([]byte, r.MaxMessage())
	for {
		n, err := rd.Receive(ctx, buf) // waits while the ring is empty
		if err == io.EOF {
			break
		}
		if err != nil {
			log.Fatal(err) // ring.ErrPeerGone: the writer died
		}
		fmt.Println(string(buf[:n]))
	}
	// Output:
	// one
	// two
	// three
}
