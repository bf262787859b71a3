package clock

import (
	"testing"
	"testing/synctest"
	"time"
)

// TestReal: After fires once d has passed on Now's time, not before. The time is a synctest
// bubble's, so the test waits for nothing.
func TestReal(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var c Clock = Real{}
		start := c.Now()
		fired := c.After(time.Minute)
		time.Sleep(time.Minute - time.Nanosecond)
		select {
		case <-fired:
			t.Fatal("After(1m) fired early")
		default:
		}
		if at := <-fired; at.Sub(start) != time.Minute {
			t.Errorf("After(1m) fired %v after Now", at.Sub(start))
		}
	})
}
