//go:build linux && cgo

package ring_test

import (
	"testing"
	"time"
)

// BenchmarkGo1x1: a one-writer one-reader ring between two Go processes,
// the calls layout version 1 had too (this file runs unchanged on a tree
// of either version, for a before/after in one sitting): 64-byte messages
// by Send and Receive, the same in batches of benchBatch, and 64 KiB
// messages by Reserve/Commit and Next/Release through 1 MiB, in
// alternated rounds.
func BenchmarkGo1x1(b *testing.B) {
	const small, big, rounds = 1 << 21, 8192, 5
	var smallD, batchD, bulkD time.Duration
	for range rounds {
		smallD += ringSendCopy(b, 1<<20, 64, small, 1)
		batchD += ringSendCopy(b, 1<<20, 64, small, benchBatch)
		bulkD += ringSend(b, 1<<20, 64<<10, big)
	}
	b.ReportMetric(float64(rounds*small)/smallD.Seconds()/1e6, "64B-Mmsg/s")
	b.ReportMetric(float64(rounds*small)/batchD.Seconds()/1e6, "64B-batch-Mmsg/s")
	b.ReportMetric(float64(rounds*big)*(64<<10)/bulkD.Seconds()/1e9, "64KiB-GB/s")
}
