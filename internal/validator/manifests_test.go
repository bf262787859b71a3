package validator

import (
	"errors"
	"testing"
	"time"

	"github.com/computehorde/horde/internal/clock/clocktest"
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

// TestManifestIgnoredChangeHonouredAfterWindow: a change ignored inside the window is
// honoured once the window has passed, without the miner announcing it again (it announces
// only on connect and on change), as of the window's end; the next window runs from there.
func TestManifestIgnoredChangeHonouredAfterWindow(t *testing.T) {
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	fake := clocktest.NewFake(t0)
	b := manifestBook{clock: fake}
	one := protocol.Manifest{{Class: protocol.ExecutorClassAlwaysOnTest, Count: 1}}
	two := protocol.Manifest{{Class: protocol.ExecutorClassAlwaysOnTest, Count: 2}}
	three := protocol.Manifest{{Class: protocol.ExecutorClassAlwaysOnTest, Count: 3}}
	b.announce("m", one, t0)
	if !b.announce("m", two, t0.Add(30*time.Minute)) {
		t.Fatal("a change inside 2 hours was honoured")
	}
	fake.Advance(2 * time.Hour)
	if m, _ := b.honoured("m"); !sameManifest(m, one) {
		t.Errorf("at the window's end: honoured %v, want the first still", m)
	}
	fake.Advance(time.Second)
	if m, _ := b.honoured("m"); !sameManifest(m, two) {
		t.Errorf("after the window: honoured %v, want the change announced inside it", m)
	}
	if all := b.all(); len(all) != 1 || !all[0].HonouredAt.Equal(t0.Add(2*time.Hour)) {
		t.Errorf("book %+v, want the change honoured as of the window's end", all)
	}
	// The next window runs from the catch-up: another change an hour later is ignored.
	if !b.announce("m", three, t0.Add(3*time.Hour)) {
		t.Error("a change an hour after the caught-up one was honoured")
	}

	// Without reading in between, announce catches up first: same outcome.
	var c manifestBook
	c.announce("m", one, t0)
	c.announce("m", two, t0.Add(30*time.Minute))
	if !c.announce("m", three, t0.Add(3*time.Hour)) {
		t.Error("announce did not catch up on the change ignored inside the first window")
	}
	if m, _ := c.honoured("m"); !sameManifest(m, two) {
		t.Errorf("honoured %v, want the change caught up at the window's end", m)
	}
}

// TestSetRewardRate: the rate set at runtime is what the class values publish, and 0
// restores the configured one.
func TestSetRewardRate(t *testing.T) {
	e := newEnv(t, nil)
	want := e.v.rewardRate()
	changed := e.v.valuesChanged.wait()
	e.v.SetRewardRate(0.25)
	select {
	case <-changed:
	default:
		t.Error("SetRewardRate did not wake the miner links")
	}
	if r := e.v.ClassValues().RewardRate; r != 0.25 {
		t.Errorf("published reward rate %v, want 0.25", r)
	}
	e.v.SetRewardRate(0)
	if r := e.v.ClassValues().RewardRate; r != want {
		t.Errorf("after SetRewardRate(0): %v, want the configured %v", r, want)
	}
}
