package validator

import (
	"net/netip"
	"testing"

	"github.com/computehorde/horde/internal/chain"
	"github.com/computehorde/horde/internal/protocol"
	"github.com/computehorde/horde/internal/scoring"
)

func TestReliability(t *testing.T) {
	e := newEnv(t, nil)
	bob := e.bob.SS58()
	if r := e.v.Reliability(bob); r != 1 {
		t.Fatalf("a new miner: %v, want 1", r)
	}
	e.v.reliability.record(bob, false)
	if r := e.v.Reliability(bob); r != 0.5 {
		t.Errorf("after one failure: %v, want 0.5", r)
	}
	for range 20 {
		e.v.reliability.record(bob, true)
	}
	if r := e.v.Reliability(bob); r < 0.9 {
		t.Errorf("after many good jobs: %v", r)
	}
}

// TestRoutingPrefersEfficientReliableMiners: the weighted order puts the miner with the
// larger efficiency × reliability first most of the time, and never drops the other.
func TestRoutingPrefersEfficientReliableMiners(t *testing.T) {
	e := newEnv(t, nil)
	charlie := mustKey(t, "//Charlie")
	if _, err := e.chain.Register(chain.Hotkey(charlie.SS58()), "c3"); err != nil {
		t.Fatal(err)
	}
	for i, k := range []string{e.bob.SS58(), charlie.SS58()} {
		if err := e.chain.ServeAxon(t.Context(), chain.Hotkey(k), netuid, netip.MustParseAddr("127.0.0.1"), uint16(9000+i)); err != nil {
			t.Fatal(err)
		}
	}
	e.chain.Advance(1)
	e.refresh()
	const class = protocol.ExecutorClassAlwaysOnTest
	e.v.efficiency.update(scoring.MinerClass{Miner: charlie.SS58(), Class: class}, 3, false)
	e.v.efficiency.update(scoring.MinerClass{Miner: e.bob.SS58(), Class: class}, 0.3, false)
	first := 0
	for range 400 {
		c := e.v.candidates(class)
		if len(c) != 2 {
			t.Fatalf("candidates %v", c)
		}
		if c[0] == charlie.SS58() {
			first++
		}
	}
	if first < 320 { // expected 400 × 3/3.3 ≈ 364
		t.Errorf("the efficient miner came first %d times of 400", first)
	}
}
