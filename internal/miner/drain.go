package miner

import (
	"context"
	"time"
)

// drainPoll is how often Drain looks at the jobs in flight.
const drainPoll = 100 * time.Millisecond

// Drain makes the miner decline new jobs ("shutting down", as busy) and waits until no job
// is in flight or ctx ends. It returns the number of jobs still in flight. Close afterwards
// drops the connections; jobs still running are then settled by their executors' reports
// (if the miner comes back) or by the validators' own deadlines.
func (m *Miner) Drain(ctx context.Context) int {
	m.draining.Store(true)
	t := time.NewTicker(drainPoll)
	defer t.Stop()
	for {
		n := m.InFlight()
		if n == 0 {
			return 0
		}
		select {
		case <-ctx.Done():
			return n
		case <-t.C:
		}
	}
}

// InFlight returns the number of jobs the miner has accepted and not yet settled.
func (m *Miner) InFlight() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.byUUID)
}
