// Package clocktest is the clock.Clock of tests whose code waits on real sockets, where a
// testing/synctest bubble cannot fake time: it stands still until the test moves it.
package clocktest

import (
	"context"
	"sync"
	"time"
)

// Fake stands still until Advance moves it, then fires the After channels that have come
// due, so no test waits for a deadline in real time. Start it far from the real time, so that
// code mixing the real clock in (time.Until on one of its deadlines) fails at once.
type Fake struct {
	mu     sync.Mutex
	now    time.Time
	timers map[int64][]chan time.Time // After channels by due time (Unix ns) until they fire
	armed  chan struct{}              // closed and replaced whenever After adds a timer
}

// NewFake returns a clock standing at start.
func NewFake(start time.Time) *Fake {
	return &Fake{now: start, timers: map[int64][]chan time.Time{}, armed: make(chan struct{})}
}

// Now returns the clock's time.
func (c *Fake) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// After returns a channel that receives the time once the clock reaches now+d.
func (c *Fake) After(d time.Duration) <-chan time.Time {
	timer := make(chan time.Time, 1)
	c.mu.Lock()
	due := c.now.Add(d).UnixNano()
	c.timers[due] = append(c.timers[due], timer)
	close(c.armed)
	c.armed = make(chan struct{})
	c.mu.Unlock()
	c.Advance(0) // fires it at once if it is due
	return timer
}

// Advance moves the clock forward by d, fires the timers that have come due and returns the
// new time.
func (c *Fake) Advance(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	for due, timers := range c.timers {
		if due > c.now.UnixNano() {
			continue
		}
		for _, timer := range timers {
			timer <- c.now
		}
		delete(c.timers, due)
	}
	return c.now
}

// AwaitTimer returns once something waits for exactly the time due, or with ctx's error.
func (c *Fake) AwaitTimer(ctx context.Context, due time.Time) error {
	return c.await(ctx, func() bool { return len(c.timers[due.UnixNano()]) > 0 })
}

// AwaitTimers returns once at least n timers are pending, or with ctx's error.
func (c *Fake) AwaitTimers(ctx context.Context, n int) error {
	return c.await(ctx, func() bool {
		pending := 0
		for _, timers := range c.timers {
			pending += len(timers)
		}
		return pending >= n
	})
}

// await waits until cond, evaluated under the lock, holds.
func (c *Fake) await(ctx context.Context, cond func() bool) error {
	for {
		c.mu.Lock()
		armed, ok := c.armed, cond()
		c.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-armed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
