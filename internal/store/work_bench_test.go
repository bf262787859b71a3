package store

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/computehorde/horde/internal/protocol"
	"github.com/computehorde/horde/internal/scoring"
)

// BenchmarkScoreMillionReceipts measures what a validator does once per tempo: sum the
// worked seconds of 1,000,000 stored, countersigned WorkInterval receipts (256 miners × 2
// classes, all in the window) and score them into u16 weights. Target: < 1 s per op on
// each engine. The table is filled once per sub-benchmark (b.Loop runs the body once), in
// one transaction; that setup takes a while and is not timed.
//
//	go test ./internal/store/ -run x -bench ScoreMillion -benchtime 3x
func BenchmarkScoreMillionReceipts(b *testing.B) {
	const (
		receipts = 1_000_000
		miners   = 256
	)
	classes := []protocol.ExecutorClass{protocol.ExecutorClassSpinUp4minGPU24GB, protocol.ExecutorClassAlwaysOnLLMA6000}
	relValues := map[protocol.ExecutorClass]float64{classes[0]: 98, classes[1]: 1}
	from := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	to := from.Add(7 * 24 * time.Hour)
	step := to.Sub(from) / receipts

	for _, be := range []backend{backends[0], backends[2]} { // file SQLite, PostgreSQL
		b.Run(be.name, func(b *testing.B) {
			db := openTest(b, be.dsn(b))
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute) // setup outlasts testContext
			defer cancel()
			start := time.Now()
			const batch = 50_000
			rs := make([]Receipt, 0, batch)
			for i := range receipts {
				job := i / 6 // 6 intervals a job
				miner := fmt.Sprintf("5Miner%042d", job%miners)
				class := classes[(job/miners)%len(classes)]
				uuid := fmt.Sprintf("%08x-0000-4000-8000-%012x", job, job)
				rs = append(rs, workReceipt(b, uuid, miner, class, i%6, 1+i%600, from.Add(time.Duration(i)*step), true))
				if len(rs) == batch {
					if err := insertReceiptsBulk(ctx, db, rs); err != nil {
						b.Fatal(err)
					}
					rs = rs[:0]
				}
			}
			if err := insertReceiptsBulk(ctx, db, rs); err != nil {
				b.Fatal(err)
			}
			if be.name == "postgres" {
				if _, err := db.w.ExecContext(ctx, `ANALYZE receipts`); err != nil {
					b.Fatal(err)
				}
			}
			b.Logf("%s: stored %d receipts in %v", be.name, receipts, time.Since(start).Round(time.Millisecond))

			var weights int
			for b.Loop() {
				totals, err := db.WorkedSeconds(ctx, from, to)
				if err != nil {
					b.Fatal(err)
				}
				work := make([]scoring.Work, len(totals))
				for i, t := range totals {
					work[i] = scoring.Work{Miner: t.MinerHotkey, Class: protocol.ExecutorClass(t.ExecutorClass), WorkedSeconds: t.WorkedSeconds}
				}
				factors, err := scoring.Assemble(work, scoring.Sources{RelativeValues: relValues})
				if err != nil {
					b.Fatal(err)
				}
				res, err := scoring.Score(scoring.Inputs{Factors: factors})
				if err != nil {
					b.Fatal(err)
				}
				weights = len(res.WeightsByHotkey())
			}
			if weights != miners {
				b.Fatalf("%d weights, want %d", weights, miners)
			}
		})
	}
}
