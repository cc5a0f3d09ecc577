//go:build linux && cgo

package ring_test

// Layout version 2 (issue 23) across languages: Go, C (gcc, gcc -m32,
// musl-gcc where they build) and Python as the readers of one fan-out
// ring and the writers of one many-writer ring, with the first
// generation's peer modes (read, write: the seeded stream). These need
// the C and Python ends of version 2.

import (
	"bytes"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/posixshm/shm/ring"
)

// langPeers returns, for each language available here, a function that
// makes its peer command in mode on the ring name with count and seed.
func langPeers(t *testing.T) map[string]func(mode, name string, count int, seed uint64) *exec.Cmd {
	t.Helper()
	peers := map[string]func(mode, name string, count int, seed uint64) *exec.Cmd{
		"Go": func(mode, name string, count int, seed uint64) *exec.Cmd { return goPeer(mode, name, count, seed) },
	}
	for _, cc := range []string{"gcc", "gcc -m32", "musl-gcc"} {
		if bin, why := buildPeerOrWhy(t, cc); bin != "" {
			peers["C-"+strings.ReplaceAll(cc, " ", "")] = func(mode, name string, count int, seed uint64) *exec.Cmd {
				return exec.Command(bin, mode, name, strconv.Itoa(count), strconv.FormatUint(seed, 10))
			}
		} else {
			t.Logf("no %s peer: %s", cc, why)
		}
	}
	if py, err := exec.LookPath("python3"); err == nil {
		peers["Python"] = func(mode, name string, count int, seed uint64) *exec.Cmd {
			return exec.Command(py, "testdata/peer.py", mode, name, strconv.Itoa(count), strconv.FormatUint(seed, 10))
		}
	} else {
		t.Log("no Python peer: python3 is not installed")
	}
	return peers
}

// waitSlots waits until Stat shows n slots of a kind that are not
// "never" (claimed: open, or closed already).
func waitSlots(t *testing.T, r *ring.Ring, readers bool, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, err := r.Stat()
		if err != nil {
			t.Fatal(err)
		}
		slots := st.Writers
		if readers {
			slots = st.Readers
		}
		k := 0
		for _, s := range slots {
			if s.State != ring.EndNever {
				k++
			}
		}
		if k >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d slots claimed after 30 s: %+v", k, n, st)
		}
		time.Sleep(time.Millisecond) // polling Stat: the peers say nothing when they claim
	}
}

// TestFanOutLanguages: one Go writer, a reader in each language (Go, C,
// Python): each receives the whole stream, in order, then the end of
// stream.
func TestFanOutLanguages(t *testing.T) {
	peers := langPeers(t)
	const count, seed = 5000, 11
	r, err := ring.CreateWith(ringName(t), 64<<10, &ring.Options{Readers: len(peers)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	running := map[string]*peer{}
	for lang, cmd := range peers {
		running[lang], _ = startPeer(t, cmd("read", r.Name(), count, seed), false)
	}
	waitSlots(t, r, true, len(peers))
	w, err := r.Writer()
	if err != nil {
		t.Fatal(err)
	}
	if err := writeStream(within(t, 60*time.Second), w, r.MaxMessage(), count, seed); err != nil {
		t.Fatal(err)
	}
	w.Close()
	for lang, p := range running {
		if out, err := p.wait(); err != nil || !strings.HasPrefix(out, "ok") {
			t.Errorf("%s reader: %v %q\n%s", lang, err, out, p.stderr)
		}
	}
}

// TestManyWritersLanguages: a writer in each language (Go, C, Python),
// each sending its own seeded stream into its lane, one Go reader: every
// message is the next of some writer's stream (each writer's order kept),
// all of every stream arrives, then io.EOF.
func TestManyWritersLanguages(t *testing.T) {
	peers := langPeers(t)
	const count = 3000
	r, err := ring.CreateWith(ringName(t), 64<<10, &ring.Options{Writers: len(peers)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	rd, err := r.Reader()
	if err != nil {
		t.Fatal(err)
	}
	var langs []string
	var procs []*peer
	var start []stream
	seed := uint64(20)
	for lang, cmd := range peers {
		seed++
		p, _ := startPeer(t, cmd("write", r.Name(), count, seed), false)
		langs, procs, start = append(langs, lang), append(procs, p), append(start, *newStream(seed, r.MaxMessage()))
	}
	waitSlots(t, r, false, len(peers)) // the end of stream comes once every claimed writer closed
	// Messages of different writers can be equal (every stream has empty
	// messages, and short ones may match by chance), so which writer sent
	// one is not always known when it arrives: the check keeps every
	// assignment of the messages so far to writers that keeps each
	// writer's order (rarely more than one, never many), and fails when
	// none is left.
	type split struct {
		s   []stream
		got []int
	}
	splits := []split{{s: start, got: make([]int, len(start))}}
	ctx := within(t, 60*time.Second)
	buf := make([]byte, r.MaxMessage())
	for i := 0; ; i++ {
		n, err := rd.Receive(ctx, buf)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		var next []split
		seen := map[string]bool{}
		for _, sp := range splits {
			for w := range sp.s {
				c := sp.s[w]
				if sp.got[w] == count || !bytes.Equal(c.next(), buf[:n]) {
					continue
				}
				got := append([]int(nil), sp.got...)
				got[w]++
				if key := fmt.Sprint(got); !seen[key] {
					seen[key] = true
					s := append([]stream(nil), sp.s...)
					s[w] = c
					next = append(next, split{s: s, got: got})
				}
			}
		}
		if len(next) == 0 {
			var state []string
			for w, lang := range langs {
				state = append(state, fmt.Sprintf("%s at %d", lang, splits[0].got[w]))
			}
			t.Fatalf("message %d (%d bytes) is the next of no writer's stream (%s)", i, n, strings.Join(state, ", "))
		}
		splits = next
	}
	for w, lang := range langs {
		if got := splits[0].got[w]; got != count {
			t.Errorf("%s writer: %d messages, want %d", lang, got, count)
		}
		if out, err := procs[w].wait(); err != nil {
			t.Errorf("%s writer: %v %q\n%s", lang, err, out, procs[w].stderr)
		}
	}
}
