package main

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

func onMusl() bool {
	maps, _ := os.ReadFile("/proc/self/maps")
	return strings.Contains(string(maps), "ld-musl") || strings.Contains(string(maps), "-musl/")
}

// TestSem: a script's view of a semaphore: create with a count, post,
// value, wait, a wait that times out, ls with its type, rm. Kills: post or
// wait on the wrong semaphore; -timeout ignored (the wait would hang); ls
// leaving semaphores out or typing them "shm"; rm not reaching
// sem_unlink.
func TestSem(t *testing.T) {
	name := newName(t)
	t.Cleanup(func() { runShm(t, nil, "rm", name) })
	ok(t, runShm(t, nil, "sem", "create", "-value", "1", "-mode", "0640", name))
	ok(t, runShm(t, nil, "sem", "post", name))
	if v := ok(t, runShm(t, nil, "sem", "value", name)).stdout; v != "2\n" {
		t.Fatalf("value after a post = %q", v)
	}
	ok(t, runShm(t, nil, "sem", "wait", name))
	ok(t, runShm(t, nil, "sem", "wait", "-timeout", "5s", name))
	r := runShm(t, nil, "sem", "wait", "-timeout", "20ms", name)
	if r.code != 124 || !strings.Contains(r.stderr, "timed out after 20ms") {
		t.Fatalf("wait on 0: exit %d, %q", r.code, r.stderr)
	}
	if r := runShm(t, nil, "sem", "create", name); r.code != 1 || !strings.Contains(r.stderr, "file exists") {
		t.Fatalf("create again: exit %d, %q", r.code, r.stderr)
	}
	if r := runShm(t, nil, "sem", "post", "-value", "3", name); r.code != 2 {
		t.Fatalf("-value with post: exit %d, %q", r.code, r.stderr)
	}
	found := false
	for _, l := range strings.Split(ok(t, runShm(t, nil, "ls")).stdout, "\n") {
		if strings.HasSuffix(l, " "+name) {
			found = true
			// musl keeps semaphores as plain NAME: ls cannot tell them.
			if f := strings.Fields(l); f[0] != map[bool]string{false: "sem", true: "shm"}[onMusl()] {
				t.Errorf("ls line %q", l)
			}
		}
	}
	if !found {
		t.Fatal("ls does not show the semaphore")
	}
	file := "/dev/shm/" + map[bool]string{false: "sem.", true: ""}[onMusl()] + strings.TrimLeft(name, "/")
	if fi, err := os.Stat(file); err != nil || fi.Mode().Perm() != 0o640 {
		t.Errorf("the semaphore's file %s: %v, %v; want mode -rw-r-----", file, fi, err)
	}
	ok(t, runShm(t, nil, "rm", name))
	if r := runShm(t, nil, "sem", "value", name); r.code != 1 || !strings.Contains(r.stderr, "no such file") {
		t.Fatalf("after rm: exit %d, %q", r.code, r.stderr)
	}
}

// TestSemWaitTimeouts: -timeout 0 tries without waiting, a negative or
// unitless -timeout is a usage error that says why, a timeout exits 124
// and a missing semaphore 1.
//
// Kills: -timeout 0 meaning "forever" (the run hangs until the test's
// deadline), a negative one accepted, the timeout's status 1 (issue 18
// item 8).
func TestSemWaitTimeouts(t *testing.T) {
	name := newName(t)
	t.Cleanup(func() { runIn(t, nil, "rm", "-f", name) })
	ok(t, runIn(t, nil, "sem", "create", "-value", "1", name))
	wait := func(args ...string) result {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, append([]string{"sem", "wait"}, args...)...)
		var out, errb strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		if ctx.Err() != nil {
			t.Fatalf("sem wait %v did not return", args)
		}
		code := 0
		if ee, isExit := err.(*exec.ExitError); isExit {
			code = ee.ExitCode()
		}
		return result{out.String(), errb.String(), code}
	}
	for _, c := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"-timeout", "0", name}, 0, ""}, // the count was 1
		{[]string{"-timeout", "0", name}, 124, "the count is 0"},
		{[]string{name, "-timeout", "10ms"}, 124, "timed out after 10ms"},
		{[]string{"-timeout", "-1s", name}, 2, "negative"},
		{[]string{"-timeout", "5", name}, 2, "a unit is needed, such as 5s"},
		{[]string{"-timeout", "1s", name + "-missing"}, 1, "no such file"},
	} {
		r := wait(c.args...)
		if r.code != c.code || !strings.Contains(r.stderr, c.msg) {
			t.Errorf("sem wait %v: exit %d, %q; want %d, %q", c.args, r.code, r.stderr, c.code, c.msg)
		}
	}
}
