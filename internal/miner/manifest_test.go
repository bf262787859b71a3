package miner

import (
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/computehorde/horde/internal/chain"
	"github.com/computehorde/horde/internal/clock/clocktest"
	"github.com/computehorde/horde/internal/protocol"
)

const (
	classGPU  = protocol.ExecutorClassAlwaysOnGPU24GB // short code A
	classTest = protocol.ExecutorClassAlwaysOnTest    // short code T
)

var manifestStart = time.Date(2030, 6, 1, 12, 0, 0, 0, time.UTC)

func TestOfferFor(t *testing.T) {
	capacity := protocol.Manifest{{Class: classTest, Count: 2}, {Class: classGPU, Count: 3}}
	tests := []struct {
		name  string
		costs map[protocol.ExecutorClass]float64
		best  map[protocol.ExecutorClass]float64
		want  protocol.Manifest
	}{
		{"no costs: everything offered", nil, map[protocol.ExecutorClass]float64{classGPU: 0.1}, capacity},
		{"cost but no rate yet: offered", map[protocol.ExecutorClass]float64{classGPU: 5}, nil, capacity},
		{"rate below cost: left out", map[protocol.ExecutorClass]float64{classGPU: 5}, map[protocol.ExecutorClass]float64{classGPU: 4.99},
			protocol.Manifest{{Class: classTest, Count: 2}}},
		{"rate equal to cost: offered", map[protocol.ExecutorClass]float64{classGPU: 5}, map[protocol.ExecutorClass]float64{classGPU: 5}, capacity},
		{"all unprofitable: empty (pause)", map[protocol.ExecutorClass]float64{classGPU: 5, classTest: 1},
			map[protocol.ExecutorClass]float64{classGPU: 1, classTest: 0.5}, protocol.Manifest{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := offerFor(capacity, tt.costs, tt.best)
			if !sameManifest(got, tt.want) {
				t.Errorf("offerFor = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestCommitmentUpdate: upstream's test_manifest_commitment.py cases (reference
// miner_executor.md §2.4, protocol.md §8.3): the envelope is written, an empty manifest
// commits "<M:>", other data is kept, and an unchanged commitment is not written again.
func TestCommitmentUpdate(t *testing.T) {
	a3 := protocol.Manifest{{Class: classGPU, Count: 3}}
	tests := []struct {
		name      string
		current   string
		offered   protocol.Manifest
		want      string
		wantWrite bool
		wantErr   bool
	}{
		{"success", "", a3, "<M:A3>", true, false},
		{"empty manifest", "", protocol.Manifest{}, "<M:>", true, false},
		{"merged with other data", "foo<M:A1>bar", a3, "foobar<M:A3>", true, false},
		{"other data, no envelope yet", "https://example.com", a3, "https://example.com<M:A3>", true, false},
		{"unchanged", "<M:A3>", a3, "<M:A3>", false, false},
		{"unchanged with other data", "https://example.com<M:A3>", a3, "https://example.com<M:A3>", false, false},
		{"too long for the chain", strings.Repeat("x", 123), a3, "", false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data, write, err := commitmentUpdate([]byte(tt.current), tt.offered)
			if (err != nil) != tt.wantErr || string(data) != tt.want || write != tt.wantWrite {
				t.Errorf("commitmentUpdate(%q) = %q, %v, %v; want %q, %v, err %v", tt.current, data, write, err, tt.want, tt.wantWrite, tt.wantErr)
			}
		})
	}
}

func classValues(rate float64, classes ...protocol.ExecutorClass) *protocol.V0ClassValuesMessage {
	m := &protocol.V0ClassValuesMessage{RewardRate: rate}
	for _, c := range classes {
		m.ClassValues.Set(string(c), protocol.ClassValue{RelativeValue: 1, Multiplier: 1})
	}
	return m
}

// newTestManager is a manifest manager alone, for the rules without sockets.
func newTestManager(t *testing.T, fake *clocktest.Fake, statePath string) *manifestManager {
	t.Helper()
	return newManifestManager(&Config{
		Manifest:          protocol.Manifest{{Class: classTest, Count: 1}, {Class: classGPU, Count: 2}},
		ClassCosts:        map[protocol.ExecutorClass]float64{classGPU: 2},
		ManifestStatePath: statePath,
		Clock:             fake,
	}, slog.New(slog.NewTextHandler(t.Output(), nil)))
}

// TestManifestRates: the best rate among validators decides, and a validator's rates stop
// counting ClassValuesMaxAge after it was last heard from.
func TestManifestRates(t *testing.T) {
	fake := clocktest.NewFake(manifestStart)
	o := newTestManager(t, fake, "")
	log := slog.New(slog.NewTextHandler(t.Output(), nil))
	v1, v2 := &validatorSession{hotkey: "v1", log: log}, &validatorSession{hotkey: "v2", log: log}
	fake.Advance(ManifestChangeInterval)

	o.classValues(v1, classValues(1, classGPU))
	if got := o.offered.Load().Manifest; hasClass(got, classGPU) {
		t.Fatalf("offered %v after a rate of 1 < cost 2, want the GPU class left out", got)
	}
	fake.Advance(ManifestChangeInterval)
	o.classValues(v2, classValues(2.5, classGPU))
	if got := o.offered.Load().Manifest; !hasClass(got, classGPU) {
		t.Fatalf("offered %v once another validator pays 2.5 >= cost 2, want the GPU class back", got)
	}
	st := o.status()
	if c := st.Classes[1]; c.Class != classGPU || !c.HasRate || c.BestRate != 2.5 || c.BestValidator != "v2" || c.Cost != 2 || !c.Offered {
		t.Errorf("status of the GPU class = %+v", c)
	}

	// v2's rate drops below cost (v1's expired long ago); once v2's rate is stale too,
	// nothing shows the class loses money and it is offered again.
	fake.Advance(ManifestChangeInterval)
	o.classValues(v2, classValues(1, classGPU))
	if got := o.offered.Load().Manifest; hasClass(got, classGPU) {
		t.Fatalf("offered %v with every rate below cost", got)
	}
	fake.Advance(ClassValuesMaxAge + time.Second)
	o.settle()
	if got := o.offered.Load().Manifest; !hasClass(got, classGPU) {
		t.Errorf("offered %v once every rate is stale, want the GPU class back", got)
	}
}

// TestManifestStatePersists: a restart keeps the offered manifest and its 2-hour window.
func TestManifestStatePersists(t *testing.T) {
	fake := clocktest.NewFake(manifestStart)
	path := filepath.Join(t.TempDir(), "manifest.json")
	o := newTestManager(t, fake, path)
	if next := o.status().NextChangeAllowed; !next.Equal(manifestStart.Add(ManifestChangeInterval)) {
		t.Fatalf("first run: next change allowed %v, want start + 2h", next)
	}
	changedAt := fake.Advance(ManifestChangeInterval + time.Minute)
	o.classValues(&validatorSession{hotkey: "v1", log: o.log}, classValues(1, classGPU))
	fake.Advance(10 * time.Minute)

	restarted := newTestManager(t, fake, path)
	st := restarted.status()
	if !sameManifest(st.Offered, protocol.Manifest{{Class: classTest, Count: 1}}) || !st.LastChange.Equal(changedAt) {
		t.Errorf("after a restart: offered %v, last change %v; want the GPU class still left out since %v", st.Offered, st.LastChange, changedAt)
	}
	if c := st.Classes[1]; !c.HasRate || c.BestRate != 1 {
		t.Errorf("after a restart the validator's rate is lost: %+v", c)
	}

	fresh := newTestManager(t, fake, "")
	if st := fresh.status(); !st.LastChange.Equal(fake.Now()) || len(st.Offered) != 2 {
		t.Errorf("without state: last change %v, offered %v; want now and the whole capacity", st.LastChange, st.Offered)
	}
}

// TestManifestFollowsProfitability drives the miner over its websocket: a validator's
// published rate below the GPU class's cost takes the class out of the manifest (the
// validator is told, and a job for the class is declined class_not_offered); making it
// profitable again within 2 hours is held, and applied once the window opens; each
// manifest lands in the miner's commitment beside its other data.
func TestManifestFollowsProfitability(t *testing.T) {
	h := newHarness(t, readyThenHold, protocol.ManifestEntry{Class: classTest, Count: 1}, protocol.ManifestEntry{Class: classGPU, Count: 1})
	ctx := t.Context()
	fake := clocktest.NewFake(manifestStart)
	h.miner.cfg.ClassCosts = map[protocol.ExecutorClass]float64{classGPU: 2, classTest: 1}
	// Only the manifest rules run on the fake clock: the test's validator signs its auth
	// with the real time.
	rules := h.miner.cfg
	rules.Clock = fake
	h.miner.offer = newManifestManager(&rules, h.miner.log)
	commits := make(chan string, 16)
	h.miner.offer.onCommit = func(data string) { commits <- data }

	bob := chain.Hotkey(h.bob.SS58())
	if err := h.chain.SetCommitment(ctx, bob, netuid, []byte("https://example.com")); err != nil {
		t.Fatal(err)
	}
	h.chain.Advance(1)
	onChain := func(want string) {
		t.Helper()
		for {
			select {
			case got := <-commits:
				if got != want {
					continue
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("commitment %q never written", want)
			}
			break
		}
		h.chain.Advance(1)
		all, err := h.chain.Commitments(ctx, netuid)
		if err != nil || string(all[bob]) != want {
			t.Fatalf("commitment on chain = %q, %v; want %q", all[bob], err, want)
		}
	}
	runCtx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = h.miner.RunManifest(runCtx) }()
	t.Cleanup(func() { cancel(); <-done })
	onChain("https://example.com<M:A1;T1>")

	c := h.authed()
	fake.Advance(ManifestChangeInterval + time.Minute) // the start's window is over
	send(ctx, t, c, classValues(1.5, classGPU, classTest))
	m, ok := h.read(c).(*protocol.V0ExecutorManifestRequest)
	if !ok || !sameManifest(m.Manifest, protocol.Manifest{{Class: classTest, Count: 1}}) {
		t.Fatalf("after a rate of 1.5 < cost 2 for the GPU class: got %#v, want a manifest of always_on.test only", m)
	}
	dropped := fake.Now()
	send(ctx, t, c, h.initialRequest("00000000-0000-4000-8000-0000000000a1", classGPU))
	if d, ok := h.read(c).(*protocol.V0DeclineJobRequest); !ok || d.Reason != protocol.JobRejectionReasonClassNotOffered {
		t.Fatalf("job for the dropped class: got %#v, want decline class_not_offered", d)
	}
	onChain("https://example.com<M:T1>")

	// Profitable again 10 minutes later: the change is held until 2 hours after the drop.
	fake.Advance(10 * time.Minute)
	send(ctx, t, c, classValues(3, classGPU, classTest))
	send(ctx, t, c, &protocol.V0MainHotkeyMessage{})
	if got, ok := h.read(c).(*protocol.V0MainHotkeyMessage); !ok {
		t.Fatalf("got %#v, want no manifest inside the 2-hour window", got)
	}
	next := dropped.Add(ManifestChangeInterval)
	st := h.miner.ManifestStatus()
	if !h.miner.NextChangeAllowed().Equal(next) || !st.NextChangeAllowed.Equal(next) ||
		!sameManifest(st.Pending, protocol.Manifest{{Class: classTest, Count: 1}, {Class: classGPU, Count: 1}}) || hasClass(st.Offered, classGPU) {
		t.Fatalf("status inside the window = %+v; want the GPU class pending until %v", st, next)
	}
	if n := h.miner.capacity(classGPU); n != 0 {
		t.Errorf("capacity of the held class = %d, want 0 until the window opens", n)
	}

	if err := fake.AwaitTimer(ctx, next); err != nil {
		t.Fatal(err)
	}
	fake.Advance(next.Sub(fake.Now()))
	m, ok = h.read(c).(*protocol.V0ExecutorManifestRequest)
	if !ok || !sameManifest(m.Manifest, protocol.Manifest{{Class: classTest, Count: 1}, {Class: classGPU, Count: 1}}) {
		t.Fatalf("once the window opened: got %#v, want both classes", m)
	}
	onChain("https://example.com<M:A1;T1>")
	if st := h.miner.ManifestStatus(); st.Pending != nil || !st.LastChange.Equal(next) {
		t.Errorf("after the held change: pending %v, last change %v; want none, %v", st.Pending, st.LastChange, next)
	}
}
