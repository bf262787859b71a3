// Package clock is the time source a role takes as a dependency where its logic has
// deadlines, so that tests move time instead of waiting for it.
package clock

import "time"

// Clock tells the time and waits for it: deadlines are computed from Now and waited for with
// After. Implementations must be safe for concurrent use.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

var _ Clock = Real{}

// Real is the system's clock.
type Real struct{}

// Now returns time.Now().
func (Real) Now() time.Time { return time.Now() }

// After returns time.After(d).
func (Real) After(d time.Duration) <-chan time.Time { return time.After(d) }
