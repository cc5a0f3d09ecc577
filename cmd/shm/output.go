package main

// The shared output helper: how every command prints names, errors and
// pids, so that no name can forge a line; and what the listings and rm
// -stale say of processes /proc would not show them.

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/posixshm/shm/internal/shmdir"
)

// cmdErr words an error as "<command> <name>: <reason>", the libc call
// that failed being detail the user does not need.
func cmdErr(cmd, name string, err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	return fmt.Errorf("%s %s: %w", cmd, quoteName(name), err)
}

// quoteName is name as every output prints it, one field without spaces
// that no name can forge: as it is when it is not empty and every
// character is printable, not a space, not a quote or a backslash;
// otherwise double-quoted with Go's escapes (\n, \t, \", \\, \xff for a
// byte that is not UTF-8, \u202e for an invisible character), as GNU ls
// --quoting-style=c, and a space written \x20. strconv.Unquote reads it
// back.
func quoteName(name string) string {
	q := strconv.Quote(name)
	if name == "" || q[1:len(q)-1] != name || strings.ContainsFunc(name, unicode.IsSpace) {
		return strings.ReplaceAll(q, " ", `\x20`)
	}
	return name
}

// jsonName sets the name fields of a JSON record: name, and name_base64
// with the exact bytes when name is not valid UTF-8 (JSON cannot carry it).
func jsonName(rec map[string]any, name string) {
	rec["name"] = name
	if !utf8.ValidString(name) {
		rec["name_base64"] = base64.StdEncoding.EncodeToString([]byte(name))
	}
}

// errText is err without the *fs.PathError's or *os.LinkError's Op and
// paths, which hold names raw: what is left names nothing.
func errText(err error) string { return shmdir.Bare(err).Error() }

func joinPIDs(pids []int) string {
	s := make([]string, len(pids))
	for i, p := range pids {
		s[i] = strconv.Itoa(p)
	}
	return strings.Join(s, ",")
}

// procDir is the /proc that the listings' holders, rm -stale and
// explainDenied read; tests may point it elsewhere.
var procDir = "/proc"

// explainDenied says which processes could not be inspected and why, from
// their /proc/PID/status, which anyone may read (at most five of them).
func explainDenied(pids []int) string {
	var parts []string
	for _, p := range shmdir.Denied(procDir, pids[:min(len(pids), 5)]) {
		if p.Gone {
			parts = append(parts, fmt.Sprintf("pid %d (gone)", p.PID))
			continue
		}
		parts = append(parts, fmt.Sprintf("pid %d (%s, uid %s): %s", p.PID, quoteName(p.Name), p.UID, p.Why))
	}
	if len(pids) > 5 {
		parts = append(parts, fmt.Sprintf("and %d more", len(pids)-5))
	}
	return fmt.Sprintf("%d %s could not be inspected: %s", len(pids), map[bool]string{true: "process", false: "processes"}[len(pids) == 1], strings.Join(parts, "; "))
}

// closeErr closes c, an object or semaphore a command made or opened by
// name, and words its error as cmdErr does.
func closeErr(cmd, name string, c io.Closer) error {
	if err := c.Close(); err != nil {
		return cmdErr(cmd, name, err)
	}
	return nil
}
