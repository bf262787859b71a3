package main

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/computehorde/horde/internal/keys"
	"github.com/computehorde/horde/internal/protocol"
	"github.com/computehorde/horde/internal/store"
	"github.com/computehorde/horde/internal/validatord"
)

// TestCLIValidatorScoresByHand: three miners' countersigned work on two classes, and the
// books a stopped validator saved (a benchmark factor, a penalty, a demand multiplier).
// `horde validator scores` prints every factor; each product, each miner's points and each
// weight are recomputed here by hand from the printed factors, and the printed factors are
// those of the books.
func TestCLIValidatorScoresByHand(t *testing.T) {
	dir := t.TempDir()
	cfgPath := writeValidatorConfig(t, dir, "http://127.0.0.1:9")
	cfg, err := validatord.LoadLocal(cfgPath, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		t.Fatal(err)
	}
	db, err := store.Open(t.Context(), store.Config{DSN: cfg.DSN()})
	if err != nil {
		t.Fatal(err)
	}
	alice, _ := keys.FromURI("//Alice")
	var miners [3]string
	for i, uri := range []string{"//Bob", "//Charlie", "//Dave"} {
		k, _ := keys.FromURI(uri)
		miners[i] = k.SS58()
	}
	gpu, cpu := protocol.ExecutorClassSpinUp4minGPU24GB, protocol.ExecutorClassAlwaysOnCPU8c16GB
	now := time.Now()
	work := []struct {
		miner   string
		class   protocol.ExecutorClass
		seconds int
	}{
		{miners[0], gpu, 600}, {miners[0], gpu, 300}, {miners[0], cpu, 600},
		{miners[1], gpu, 450},
		{miners[2], cpu, 600}, {miners[2], cpu, 600}, {miners[2], gpu, 120},
	}
	for i, w := range work {
		ts := now.Add(-time.Duration(10+i) * time.Minute)
		p := protocol.WorkIntervalReceiptPayload{JobUUID: fmt.Sprintf("00000000-0000-4000-8000-%012d", i), MinerHotkey: w.miner,
			ValidatorHotkey: alice.SS58(), Timestamp: protocol.NewTimestamp(ts), ExecutorClass: w.class,
			IntervalStart: protocol.NewTimestamp(ts.Add(-10 * time.Minute)), IntervalEnd: protocol.NewTimestamp(ts), WorkedSeconds: w.seconds}
		payload, _ := json.Marshal(p)
		if _, err := db.InsertReceipt(t.Context(), store.Receipt{Type: string(p.ReceiptType()), JobUUID: p.JobUUID, Seq: protocol.ReceiptSeq(p),
			ValidatorHotkey: alice.SS58(), MinerHotkey: w.miner, Timestamp: ts, Payload: payload,
			ValidatorSignature: "0x" + strings.Repeat("ab", 64), MinerSignature: "0x" + strings.Repeat("cd", 64)}); err != nil {
			t.Fatal(err)
		}
	}
	books := map[string]any{
		"saved_at":   now,
		"efficiency": []map[string]any{{"miner": miners[0], "class": gpu, "factor": 2.0, "runs": 1}},
		"penalties":  []map[string]any{{"miner": miners[2], "class": cpu, "value": 0.5, "at": now}},
		"demand":     map[string]float64{string(cpu): 1.5},
	}
	if err := db.PutState(t.Context(), "validator/"+alice.SS58()+"/books", books); err != nil {
		t.Fatal(err)
	}
	db.Close()

	out := horde(t, runOpts{}, "validator", "scores", "--config", cfgPath).stdout
	wantContains(t, "scores", out, "the validator is not running", "factors from the books saved at")
	rows, scores := parseScores(t, out)
	if len(rows) != 5 || len(scores) != 3 {
		t.Fatalf("%d rows and %d miners printed, want 5 and 3:\n%s", len(rows), len(scores), out)
	}
	points := map[string]float64{}
	for _, r := range rows {
		product := r.f[0] * r.f[1] * r.f[2] * r.f[3] * r.f[4]
		if !nearlyEqual(product, r.f[5]) {
			t.Errorf("%s %s: %v × %v × %v × %v × %v = %v, printed %v", r.miner[:8], r.class, r.f[0], r.f[1], r.f[2], r.f[3], r.f[4], product, r.f[5])
		}
		points[r.miner] += product
		switch {
		case r.miner == miners[0] && r.class == string(gpu) && (r.f[2] != 2 || r.f[4] != 900):
			t.Errorf("Bob's GPU row: efficiency %v (want the saved 2), %v s (want 900)", r.f[2], r.f[4])
		case r.miner == miners[2] && r.class == string(cpu) && (r.f[1] != 1.5 || r.f[3] >= 0.51 || r.f[3] < 0.5 || r.f[4] != 1200):
			t.Errorf("Dave's CPU row: demand %v (want 1.5), penalty %v (want the saved 0.5, barely recovered), %v s", r.f[1], r.f[3], r.f[4])
		}
	}
	maxPoints := 0.0
	for _, p := range points {
		maxPoints = math.Max(maxPoints, p)
	}
	for miner, s := range scores {
		if !nearlyEqual(s.points, points[miner]) {
			t.Errorf("%s: points %v, by hand %v", miner[:8], s.points, points[miner])
		}
		if want := math.RoundToEven(points[miner] / maxPoints * 65535); float64(s.weight) != want {
			t.Errorf("%s: weight %d, by hand %v", miner[:8], s.weight, want)
		}
	}
}

type scoreRow struct {
	miner, class string
	f            [6]float64 // relative value, demand, efficiency, penalty, worked seconds, product
}

type minerScore struct {
	points float64
	weight int
}

// parseScores reads both tables of `horde validator scores`.
func parseScores(t *testing.T, out string) ([]scoreRow, map[string]minerScore) {
	t.Helper()
	var rows []scoreRow
	scores := map[string]minerScore{}
	table := 0
	for _, line := range strings.Split(out, "\n") {
		fields := strings.Fields(line)
		switch {
		case len(fields) > 0 && fields[0] == "miner":
			table++
			continue
		case table == 1 && len(fields) == 8:
			r := scoreRow{miner: fields[0], class: fields[1]}
			for i := range r.f {
				v, err := strconv.ParseFloat(fields[2+i], 64)
				if err != nil {
					t.Fatalf("row %q: %v", line, err)
				}
				r.f[i] = v
			}
			rows = append(rows, r)
		case table == 2 && len(fields) == 5:
			p, err1 := strconv.ParseFloat(fields[2], 64)
			w, err2 := strconv.Atoi(fields[4])
			if err1 != nil || err2 != nil {
				t.Fatalf("score %q: %v %v", line, err1, err2)
			}
			scores[fields[0]] = minerScore{points: p, weight: w}
		}
	}
	return rows, scores
}

func nearlyEqual(a, b float64) bool {
	return math.Abs(a-b) <= 1e-9*math.Max(1, math.Max(math.Abs(a), math.Abs(b)))
}
