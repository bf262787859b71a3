package validator

import (
	"testing"
	"time"

	"github.com/computehorde/horde/internal/protocol"
)

// TestDemandMultiplier: the multiplier follows requests per executor, boosted by unserved
// requests, smoothed, bounded, and falls back once demand is gone.
func TestDemandMultiplier(t *testing.T) {
	var b demandBook
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	const class = protocol.ExecutorClassAlwaysOnTest
	supply := func(protocol.ExecutorClass) int { return 2 }
	for i := range 8 { // 8 requests on 2 executors, half unserved: target 4 × 1.5, bounded to 2
		b.record(class, t0, i%2 == 0)
	}
	m := b.multipliers(t0, supply)[class]
	if want := 1 + DemandSmoothing*(DemandMax-1); m != want {
		t.Fatalf("first step: %v, want %v", m, want)
	}
	if again := b.multipliers(t0.Add(time.Second), supply)[class]; again != m {
		t.Errorf("moved within a step: %v", again)
	}
	for i := 1; i <= 30; i++ {
		m = b.multipliers(t0.Add(time.Duration(i)*demandStep), supply)[class]
	}
	if m > DemandMax || m < DemandMax-0.01 {
		t.Errorf("after many steps under heavy demand: %v, want about %v", m, DemandMax)
	}
	later := t0.Add(DemandWindow + time.Hour) // no requests any more: towards the floor
	for i := range 40 {
		m = b.multipliers(later.Add(time.Duration(i)*demandStep), supply)[class]
	}
	if m < DemandMin || m > DemandMin+0.01 {
		t.Errorf("without demand: %v, want about %v", m, DemandMin)
	}
}

// TestClassValuesSentAfterAuth: the validator tells the miner its classes' values and its
// reward rate, with the demand multipliers.
func TestClassValuesSentAfterAuth(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.RewardRate = 3 })
	m := e.startMiner(happyMiner)
	e.run(t.Context(), testSpec(protocol.ExecutorClassAlwaysOnTest))
	p := m.wait()
	cv := p.classValues
	if cv == nil || cv.RewardRate != 3 {
		t.Fatalf("class values %+v", cv)
	}
	v, ok := cv.ClassValues.Get(string(protocol.ExecutorClassAlwaysOnCPU8c16GB))
	if !ok || v.RelativeValue != 1 || v.Multiplier != 1 {
		t.Errorf("cpu class value %+v, %v", v, ok)
	}
	if r, _ := cv.RewardPerHour(protocol.ExecutorClassAlwaysOnCPU8c16GB); r != 3 {
		t.Errorf("reward per hour %v", r)
	}
}
