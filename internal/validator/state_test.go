package validator

import (
	"strings"
	"testing"
	"time"

	"github.com/computehorde/horde/internal/protocol"
	"github.com/computehorde/horde/internal/scoring"
)

// TestStateSurvivesRestart: the books a validator saved are those a new one on the same
// store starts with: benchmark factors, honoured manifests (and their 2-hour windows),
// penalties, reliability and demand multipliers.
func TestStateSurvivesRestart(t *testing.T) {
	e := newEnv(t, nil)
	ctx := t.Context()
	bob, class := e.bob.SS58(), protocol.ExecutorClassAlwaysOnTest
	now := e.clock.Now()
	e.v.efficiency.update(scoring.MinerClass{Miner: bob, Class: class}, 2.5, false)
	e.v.manifests.announce(bob, protocol.Manifest{{Class: class, Count: 3}}, now)
	e.v.manifests.announce(bob, protocol.Manifest{{Class: class, Count: 5}}, now.Add(time.Minute)) // ignored: inside 2 h
	e.v.penalties.penalize(scoring.MinerClass{Miner: bob, Class: class}, now, 0.5, time.Hour)
	e.v.reliability.record(bob, false)
	e.v.demand.mu.Lock()
	e.v.demand.mult = map[protocol.ExecutorClass]float64{class: 1.5}
	e.v.demand.mu.Unlock()
	if err := e.v.SaveState(ctx); err != nil {
		t.Fatal(err)
	}

	again, err := New(e.v.cfg)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := again.LoadState(ctx); !ok || err != nil {
		t.Fatalf("LoadState = %v, %v", ok, err)
	}
	if f := again.Efficiency(bob, class); f != 2.5 {
		t.Errorf("efficiency after the restart: %v, want 2.5", f)
	}
	if m, ok := again.manifests.honoured(bob); !ok || m.Count(class) != 3 {
		t.Errorf("honoured manifest after the restart: %v, %v", m, ok)
	}
	if again.manifests.announce(bob, protocol.Manifest{{Class: class, Count: 5}}, now.Add(time.Hour)) != true {
		t.Error("a change inside the 2-hour window that began before the restart was honoured")
	}
	if p, want := again.Penalty(bob, class), e.v.Penalty(bob, class); p != want || p >= 1 {
		t.Errorf("penalty after the restart: %v, want %v", p, want)
	}
	if r, want := again.Reliability(bob), e.v.Reliability(bob); r != want || r >= 1 {
		t.Errorf("reliability after the restart: %v, want %v", r, want)
	}
	if d := again.DemandMultipliers()[class]; d <= 1 {
		t.Errorf("demand multiplier after the restart: %v", d)
	}

	// A damaged state is refused whole, with the cause named.
	if err := e.db.PutState(ctx, e.v.stateName(), map[string]any{"efficiency": []map[string]any{{"miner": bob, "class": class, "factor": 99}}}); err != nil {
		t.Fatal(err)
	}
	fresh, err := New(e.v.cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fresh.LoadState(ctx); err == nil || !strings.Contains(err.Error(), "out of bounds") {
		t.Errorf("LoadState of a damaged state: %v", err)
	}
	if f := fresh.Efficiency(bob, class); f != 1 {
		t.Errorf("a refused state still set an efficiency of %v", f)
	}
}

// TestNoStateIsAFreshStart: a validator on a store without books starts empty.
func TestNoStateIsAFreshStart(t *testing.T) {
	e := newEnv(t, nil)
	if ok, err := e.v.LoadState(t.Context()); ok || err != nil {
		t.Errorf("LoadState on a new store = %v, %v", ok, err)
	}
}
