package main

// Tests of what scripts rely on: output a name cannot forge, flags after
// operands, exit statuses (issue 18, items 1, 2 and 9).

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/posixshm/shm/internal/shmdir"
)

// forgers are names that try to look like other lines or fields: a
// newline and a fake line, a space and a fake name, quotes, a backslash,
// a byte that is not UTF-8, a right-to-left override, a tab.
func forgers(t *testing.T) []string {
	base := newName(t)
	var names []string
	for _, tail := range []string{"\nshm important", " important", `"q"`, `\n`, "\xff", "\u202eevil", "\tx"} {
		n := base + tail
		t.Cleanup(func() { os.Remove("/dev/shm" + n) })
		names = append(names, n)
	}
	slices.Sort(names) // the order of ls, by byte
	return names
}

// unquote reads a name as the output prints it.
func unquote(t *testing.T, field string) string {
	t.Helper()
	if strings.HasPrefix(field, `"`) {
		s, err := strconv.Unquote(field)
		if err != nil {
			t.Fatalf("printed name %s does not unquote: %v", field, err)
		}
		return s
	}
	return field
}

// TestNamesCannotForge: whatever its name, an object is one line of ls,
// ls -l, stat and rm -stale, its name the last field, which reads back as
// the exact name; -0 and -json carry the exact bytes.
//
// Kills: quoteName returning the name as it is (the newline name then
// prints a line "shm /important"; issue 18 item 1).
func TestNamesCannotForge(t *testing.T) {
	names := forgers(t)
	for _, n := range names { // as any program may: the package's Create refuses some of these
		if err := os.WriteFile("/dev/shm"+n, make([]byte, 4096), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	plain := ok(t, runIn(t, nil, append([]string{"ls"}, names...)...)).stdout
	long := runIn(t, nil, append([]string{"ls", "-l"}, names...)...)
	dry := runIn(t, nil, append([]string{"rm", "-stale", "-age", "0", "-ignore-denied", "-dry-run"}, names...)...)
	if long.code != 0 || dry.code != 0 {
		t.Fatalf("ls -l: %d %q; rm -stale -dry-run: %d %q", long.code, long.stderr, dry.code, dry.stderr)
	}
	for what, c := range map[string]struct {
		out    string
		header bool
		prefix string
	}{"ls": {plain, false, "shm "}, "ls -l": {long.stdout, true, "shm "}, "rm -stale -dry-run": {dry.stdout, false, "would remove "}} {
		lines := strings.Split(strings.TrimSuffix(c.out, "\n"), "\n")
		if c.header {
			lines = lines[1:]
		}
		if len(lines) != len(names) {
			t.Errorf("%s: %d lines for %d objects:\n%s", what, len(lines), len(names), c.out)
			continue
		}
		for i, l := range lines {
			if !strings.HasPrefix(l, c.prefix) {
				t.Errorf("%s: line %q does not start with %q", what, l, c.prefix)
			}
			f := strings.Fields(l)
			if got := unquote(t, f[len(f)-1]); got != names[i] {
				t.Errorf("%s: line %q: last field reads %q, want %q", what, l, got, names[i])
			}
		}
	}

	// -0: records end in NUL, names exact.
	raw := ok(t, runIn(t, nil, append([]string{"ls", "-0"}, names...)...)).stdout
	recs := strings.Split(strings.TrimSuffix(raw, "\x00"), "\x00")
	for i, r := range recs {
		if i >= len(names) || r != "shm "+names[i] {
			t.Errorf("ls -0 record %d %q", i, r)
		}
	}
	// -json: name, and name_base64 where it is not UTF-8.
	js := runIn(t, nil, append([]string{"ls", "-l", "-json"}, names...)...)
	var got []map[string]any
	if err := json.Unmarshal([]byte(js.stdout), &got); err != nil || len(got) != len(names) {
		t.Fatalf("ls -l -json: %v, %d records:\n%s", err, len(got), js.stdout)
	}
	for i, rec := range got {
		name, _ := rec["name"].(string)
		if b64, ok := rec["name_base64"].(string); ok {
			b, _ := base64.StdEncoding.DecodeString(b64)
			name = string(b)
		}
		if name != names[i] || rec["type"] != "shm" || rec["size"] != float64(4096) {
			t.Errorf("ls -json record %d: %v, want name %q", i, rec, names[i])
		}
	}
	// stat: the name line reads back; one stanza per NAME.
	st := runIn(t, nil, append([]string{"stat"}, names...)...)
	stanzas := strings.Split(strings.TrimSuffix(st.stdout, "\n"), "\n\n")
	if st.code != 0 || len(stanzas) != len(names) {
		t.Fatalf("stat: exit %d, %d stanzas for %d names:\n%s", st.code, len(stanzas), len(names), st.stdout)
	}
	for i, s := range stanzas {
		for _, l := range strings.Split(s, "\n") {
			if v, ok := strings.CutPrefix(l, "name:"); ok {
				if got := unquote(t, strings.TrimSpace(v)); got != names[i] {
					t.Errorf("stat name line %q reads %q, want %q", l, got, names[i])
				}
			}
		}
	}
	// Messages too: one line.
	r := runIn(t, nil, "read", names[0]+"-missing")
	if r.code != 1 || strings.Count(r.stderr, "\n") != 1 {
		t.Errorf("an error about a name with a newline: exit %d, %q", r.code, r.stderr)
	}
	ok(t, runIn(t, nil, append([]string{"rm"}, names...)...))
}

// TestErrorMessagesCannotForge: every message is one line whatever the
// names in the errors it carries: a failed rename or link (an
// *os.LinkError, which prints both paths raw) and a holders error of a
// semaphore (an *fs.PathError whose Path is the raw name).
//
// Kills: errText stripping only an *fs.PathError (a LinkError prints both
// paths raw); warnUnknown printing the holders error with %v (its raw
// Path).
func TestErrorMessagesCannotForge(t *testing.T) {
	evil := "/dev/shm/x\nshm: rm /important: removed"
	if s := errText(&os.LinkError{Op: "rename", Old: evil, New: evil + ".~q", Err: syscall.EPERM}); strings.Contains(s, "\n") {
		t.Errorf("errText of a LinkError: %q", s)
	}
	var out, errb bytes.Buffer
	e := &env{strings.NewReader(""), &out, &errb}
	h := &shmdir.Holders{PIDs: map[string][]int{}, Failed: map[string]error{
		evil: &fs.PathError{Op: "sem_open", Path: "/x\nshm: rm /important: removed", Err: syscall.EACCES},
	}}
	warnUnknown(e, h, "ls")
	if n := strings.Count(errb.String(), "\n"); n != 1 {
		t.Errorf("one holders warning printed as %d lines: %q", n, errb.String())
	}
}

// TestFlagsAfterOperands: a flag after a NAME is honoured, or is a usage
// error; never a NAME. "--" ends the flags.
//
// Kills: parseArgs stopping at the first operand, as flag.Parse does
// ("shm rm /x -dry-run" then removed /x and failed on "-dry-run"; issue 18
// item 2).
func TestFlagsAfterOperands(t *testing.T) {
	name := newName(t)
	ok(t, runIn(t, nil, "create", name, "-size", "8K"))
	if fi, err := os.Stat("/dev/shm" + name); err != nil || fi.Size() != 8192 {
		t.Fatalf("create NAME -size 8K: %v, %v", fi, err)
	}
	r := runIn(t, nil, "rm", name, "-dry-run")
	if r.code != 2 || !strings.Contains(r.stderr, "go with -stale") {
		t.Errorf("rm NAME -dry-run: exit %d, %q; want a usage error", r.code, r.stderr)
	}
	if _, err := os.Stat("/dev/shm" + name); err != nil {
		t.Fatalf("rm NAME -dry-run removed NAME")
	}
	r = runIn(t, nil, "rm", "-stale", name, "-age", "0", "-ignore-denied", "-dry-run")
	if r.code != 0 || r.stdout != "would remove "+name+"\n" {
		t.Errorf("rm -stale NAME -age 0 -ignore-denied -dry-run: exit %d, %q, %q", r.code, r.stdout, r.stderr)
	}
	if _, err := os.Stat("/dev/shm" + name); err != nil {
		t.Fatalf("a -dry-run after NAME removed NAME")
	}
	if r := runIn(t, nil, "rm", name, "-bogus"); r.code != 2 {
		t.Errorf("rm NAME -bogus: exit %d, %q", r.code, r.stderr)
	}
	// A NAME that begins with "-" comes after "--".
	dash := "-" + strings.TrimPrefix(newName(t), "/")
	t.Cleanup(func() { os.Remove("/dev/shm/" + dash) })
	ok(t, runIn(t, nil, "create", "-size", "1K", "--", dash))
	if _, err := os.Stat("/dev/shm/" + dash); err != nil {
		t.Fatalf("create -- -NAME: %v", err)
	}
	ok(t, runIn(t, nil, "rm", name, "--", dash))
	if _, err := os.Stat("/dev/shm/" + dash); err == nil {
		t.Fatal("rm -- -NAME left it")
	}
	// sem too.
	sem := newName(t)
	t.Cleanup(func() { runIn(t, nil, "rm", "-f", sem) })
	ok(t, runIn(t, nil, "sem", "create", sem, "-value", "2"))
	if v := ok(t, runIn(t, nil, "sem", "value", sem)).stdout; v != "2\n" {
		t.Errorf("sem create NAME -value 2: value %q", v)
	}
}

// TestExitCodesDocumented: the package doc's exit status table lists
// every status the command gives, with the value the code uses.
//
// Kills: a status constant changed without the table (issue 18 item 9).
func TestExitCodesDocumented(t *testing.T) {
	doc := packageDoc(t)
	_, table, ok := strings.Cut(doc, "Exit status\n")
	if !ok {
		t.Fatal("the package doc has no Exit status section")
	}
	for _, code := range []int{exitOK, exitError, exitUsage, exitRefused, exitTimedOut, 129, 130, 143} {
		if !regexp.MustCompile(`(?m)^\t[0-9, ]*\b` + strconv.Itoa(code) + `\b`).MatchString(table) {
			t.Errorf("the exit status table lacks %d:\n%s", code, table)
		}
	}
	if !bytes.Contains([]byte(doc), []byte("Output")) {
		t.Error("the package doc does not describe the output format")
	}
}

// TestRunReentrant: run keeps no state between or across calls: commands
// with different flags run at once in goroutines each get their own
// (under -race, a shared flag variable is also a reported race).
//
// Kills: a flag value kept in a package variable (issue 17: run could not
// be re-entered or tested in process).
func TestRunReentrant(t *testing.T) {
	const n = 8
	names := make([]string, n)
	for i := range names {
		names[i] = newName(t)
	}
	errs := make(chan string, n)
	for i, name := range names {
		go func() {
			size := strconv.Itoa((i + 1) * 4096)
			for range 20 {
				if r := runIn(t, nil, "create", "-size", size, name); r.code != 0 {
					errs <- r.stderr
					return
				}
				if r := runIn(t, nil, "read", name); len(r.stdout) != (i+1)*4096 {
					errs <- fmt.Sprintf("read %d bytes of %s, made with -size %s", len(r.stdout), name, size)
					return
				}
				if r := runIn(t, nil, "rm", name); r.code != 0 {
					errs <- r.stderr
					return
				}
			}
			errs <- ""
		}()
	}
	for range n {
		if e := <-errs; e != "" {
			t.Error(e)
		}
	}
}

// TestReadmeCommandLines: every command line in the synopsis of
// docs/command.md (the shm command's page), and in the README's "Two ways
// in", names a command and flags that exist.
//
// Kills: a page left behind by a renamed or removed flag (ls -l -n,
// which counted holders, is now -n for numeric ids).
func TestReadmeCommandLines(t *testing.T) {
	for _, src := range []struct {
		file, section string
		min           int
	}{
		{"docs/command.md", "\n## Synopsis\n", 10},
		{"README.md", "\n## Two ways in\n", 5},
	} {
		checkCommandLines(t, src.file, src.section, src.min)
	}
}

// checkCommandLines checks the command lines of the first ```sh block
// of file's section (from the heading to the next "## "), at least min.
func checkCommandLines(t *testing.T, file, section string, min int) {
	readme, err := os.ReadFile("../../" + file)
	if err != nil {
		t.Skipf("no %s: %v", file, err)
	}
	_, sec, _ := strings.Cut(string(readme), section)
	block, _, _ := strings.Cut(sec, "\n## ")
	_, block, _ = strings.Cut(block, "```sh\n")
	block, _, _ = strings.Cut(block, "```")
	n := 0
	for _, line := range strings.Split(block, "\n") {
		line, _, _ = strings.Cut(line, "#")
		for _, cmdline := range strings.Split(line, ";") {
			cmdline, _, _ = strings.Cut(cmdline, "<")
			words := strings.Fields(cmdline)
			if len(words) < 2 || words[0] != "shm" {
				continue
			}
			n++
			args := words[1:]
			var g *group
			var c *command
			for _, gr := range groups {
				if c != nil {
					break
				}
				if gr.name == "" {
					if found := gr.find(args[0]); found != nil {
						g, c, args = gr, found, args[1:]
					}
				} else if gr.name == args[0] && len(args) > 1 {
					if found := gr.find(args[1]); found != nil {
						g, c, args = gr, found, args[2:]
					}
				}
			}
			if c == nil {
				t.Errorf("%s: %q: no such command", file, cmdline)
				continue
			}
			fl := flag.NewFlagSet(c.name, flag.ContinueOnError)
			fl.SetOutput(io.Discard)
			c.setup(fl)
			if _, err := parseArgs(fl, args); err != nil {
				t.Errorf("%s: %q: %v (usage: %s)", file, cmdline, err, g.synopsis(c))
			}
		}
	}
	if n < min {
		t.Fatalf("found %d command lines in %s's section %q, want %d or more", n, file, strings.TrimSpace(section), min)
	}
}
