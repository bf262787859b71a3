//go:build unix

package receiptsync

import (
	"context"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/computehorde/horde/internal/protocol"
	"github.com/computehorde/horde/internal/store"
)

// benchReceipts is the number of receipts in the page each op imports.
const benchReceipts = 1000

// nopStore takes every receipt as new, so that the verify-only figure has no store in it.
type nopStore struct{}

func (nopStore) InsertReceipt(context.Context, store.Receipt) (bool, error) { return true, nil }

// BenchmarkImport measures the import of one page body held in memory: split, decode, check,
// verify both signatures of every receipt and store it. The target is 12,000
// receipts per second per core.
//
//   - verify: decode + checks + batch verification on GOMAXPROCS workers, no store;
//   - verify-1-worker: the same on one core;
//   - sqlite: verify + InsertReceipt into a SQLite file (new receipts every op);
//   - parse-receipt-line: protocol.ParseReceiptLine per line, one core (the plain
//     verification path, for comparison).
//
// Metrics: receipts/s (wall clock), receipts/s/core (receipts/s over the cores the import
// may use: GOMAXPROCS, or 1 for the one-worker cases) and receipts/cpu-s (receipts per
// second of CPU time the process used while importing, GC included), which does not depend
// on how busy the machine is; waiting on fsync costs wall time but no CPU.
func BenchmarkImport(b *testing.B) {
	f := newFixture(b)
	body := f.good(benchReceipts)
	var cpu time.Duration
	timed := func(fn func()) {
		before := cpuTime()
		fn()
		cpu += cpuTime() - before
	}
	report := func(b *testing.B, cores int) {
		n := float64(benchReceipts) * float64(b.N)
		perSec := n / b.Elapsed().Seconds()
		b.ReportMetric(perSec, "receipts/s")
		b.ReportMetric(perSec/float64(cores), "receipts/s/core")
		b.ReportMetric(n/cpu.Seconds(), "receipts/cpu-s")
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/n, "ns/receipt")
	}
	run := func(b *testing.B, s *Syncer, body func() []byte) {
		m := pull{s: s, miner: f.bob.SS58(), minerKey: f.bob.Public(), base: "http://bench"}
		cpu = 0
		for b.Loop() {
			data := body()
			var st Stats
			timed(func() {
				if err := m.importLines(b.Context(), 1, data, &st); err != nil {
					b.Fatal(err)
				}
			})
			if st.Imported != benchReceipts {
				b.Fatalf("stats %+v", st)
			}
		}
	}
	b.Run("verify", func(b *testing.B) {
		run(b, f.syncer(func(c *Config) { c.Store = nopStore{} }), func() []byte { return body })
		report(b, runtime.GOMAXPROCS(0))
	})
	b.Run("verify-1-worker", func(b *testing.B) {
		run(b, f.syncer(func(c *Config) { c.Store = nopStore{}; c.VerifyWorkers = 1 }), func() []byte { return body })
		report(b, 1)
	})
	b.Run("sqlite", func(b *testing.B) {
		// Every op imports receipts the store has not seen; signing them is not timed.
		next := func() []byte {
			b.StopTimer()
			defer b.StartTimer()
			return f.good(benchReceipts)
		}
		run(b, f.syncer(), next)
		report(b, runtime.GOMAXPROCS(0))
	})
	b.Run("parse-receipt-line", func(b *testing.B) {
		lines := splitLines(body)
		cpu = 0
		for b.Loop() {
			timed(func() {
				for _, l := range lines {
					if _, err := protocol.ParseReceiptLine(l); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
		report(b, 1)
	})
}

// cpuTime is the user and system CPU time the process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func splitLines(body []byte) [][]byte {
	var out [][]byte
	for len(body) > 0 {
		i := 0
		for i < len(body) && body[i] != '\n' {
			i++
		}
		out = append(out, body[:i])
		if i < len(body) {
			i++
		}
		body = body[i:]
	}
	return out
}
