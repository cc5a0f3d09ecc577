// Package tmpname is the one format of the module's temporary names: a
// new object is made as "NAME.~RANDOM" before it is published as NAME, and
// shm rm -stale quarantines an object under such a name. The package makes
// them and the command recognises them.
package tmpname

import (
	"math/rand/v2"
	"strconv"
	"strings"

	"github.com/posixshm/shm/internal/kernel"
)

const sep = ".~"

// New returns a fresh temporary name beside base (a file name, without
// slashes): base, cut short to leave room within NAME_MAX, ".~" and a
// random part in base 36.
func New(base string) string {
	suffix := sep + strconv.FormatUint(rand.Uint64(), 36)
	if len(base) > kernel.NAME_MAX-len(suffix) {
		base = base[:kernel.NAME_MAX-len(suffix)]
	}
	return base + suffix
}

// Of reports whether file (a file name) is a temporary name New could
// have made for base: base itself, or base cut short in a name of
// NAME_MAX bytes, then ".~" and 1 to 13 base-36 digits.
func Of(file, base string) bool {
	i := strings.LastIndex(file, sep)
	if i < 0 {
		return false
	}
	stem, rnd := file[:i], file[i+len(sep):]
	if rnd == "" || len(rnd) > 13 || strings.Trim(rnd, "0123456789abcdefghijklmnopqrstuvwxyz") != "" {
		return false
	}
	return stem == base || len(file) == kernel.NAME_MAX && strings.HasPrefix(base, stem)
}
