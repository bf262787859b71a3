package validator

import (
	"errors"
	"testing"
	"time"

	"github.com/computehorde/horde/internal/protocol"
)

// TestManifestTwoHourRule: the first manifest is honoured; a change inside 2 hours is
// ignored and counted; after the window the next announcement is honoured.
func TestManifestTwoHourRule(t *testing.T) {
	var b manifestBook
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	one := protocol.Manifest{{Class: protocol.ExecutorClassAlwaysOnTest, Count: 1}}
	two := protocol.Manifest{{Class: protocol.ExecutorClassAlwaysOnTest, Count: 1}, {Class: protocol.ExecutorClassAlwaysOnGPU24GB, Count: 2}}
	three := protocol.Manifest{{Class: protocol.ExecutorClassAlwaysOnGPU24GB, Count: 3}}
	if b.announce("m", one, t0) {
		t.Fatal("the first manifest was ignored")
	}
	if b.announce("m", one, t0.Add(time.Minute)) {
		t.Error("the same manifest again counts as a change")
	}
	if !b.announce("m", two, t0.Add(30*time.Minute)) || !b.announce("m", three, t0.Add(119*time.Minute)) {
		t.Error("a change inside 2 hours was honoured")
	}
	if m, _ := b.honoured("m"); !sameManifest(m, one) {
		t.Errorf("honoured %v, want the first", m)
	}
	if b.announce("m", two, t0.Add(2*time.Hour)) {
		t.Error("a change after 2 hours was ignored")
	}
	all := b.all()
	if len(all) != 1 || !sameManifest(all[0].Honoured, two) || all[0].Ignored != 2 || !all[0].LastIgnored.Equal(t0.Add(119*time.Minute)) {
		t.Errorf("book %+v", all)
	}
}

// TestRouteSkipsMinersWithoutTheClass: a miner whose honoured manifest lacks the class is
// not tried.
func TestRouteSkipsMinersWithoutTheClass(t *testing.T) {
	e := newEnv(t, nil)
	e.serveAxon(9) // Bob serves an axon nobody should dial
	e.v.manifests.announce(e.bob.SS58(), protocol.Manifest{{Class: protocol.ExecutorClassAlwaysOnGPU24GB, Count: 1}}, e.clock.Now())
	if _, _, err := e.v.Route(t.Context(), testSpec(protocol.ExecutorClassAlwaysOnTest), e.clock.Now().Add(time.Hour)); !errors.Is(err, ErrNoMiner) {
		t.Errorf("Route to a class no honoured manifest offers: %v", err)
	}
}

// TestRouteSkipsMinersWithoutAFreeExecutor: a miner whose honoured manifest is filled by
// this validator's own jobs of the class is not offered another one.
func TestRouteSkipsMinersWithoutAFreeExecutor(t *testing.T) {
	e := newEnv(t, nil)
	e.serveAxon(9)
	bob := e.bob.SS58()
	e.v.manifests.announce(bob, protocol.Manifest{{Class: protocol.ExecutorClassAlwaysOnTest, Count: 2}}, e.clock.Now())
	if got := e.v.servingMiners(protocol.ExecutorClassAlwaysOnTest); len(got) != 1 {
		t.Fatalf("a miner with two free executors: candidates %v", got)
	}
	e.v.countInFlight(bob, protocol.ExecutorClassAlwaysOnTest, 1)
	if got := e.v.servingMiners(protocol.ExecutorClassAlwaysOnTest); len(got) != 1 {
		t.Fatalf("a miner with one free executor: candidates %v", got)
	}
	e.v.countInFlight(bob, protocol.ExecutorClassAlwaysOnTest, 1)
	if got := e.v.servingMiners(protocol.ExecutorClassAlwaysOnTest); len(got) != 0 {
		t.Errorf("a miner both of whose executors run this validator's jobs is still a candidate: %v", got)
	}
	if _, _, err := e.v.Route(t.Context(), testSpec(protocol.ExecutorClassAlwaysOnTest), e.clock.Now().Add(time.Hour)); !errors.Is(err, ErrNoMiner) {
		t.Errorf("Route with every executor busy: %v", err)
	}
	e.v.countInFlight(bob, protocol.ExecutorClassAlwaysOnTest, -1)
	if got := e.v.servingMiners(protocol.ExecutorClassAlwaysOnTest); len(got) != 1 {
		t.Errorf("after a job ended: candidates %v", got)
	}
}
