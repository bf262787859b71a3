package clock

import (
	"context"
	"errors"
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

// TestEvery: fn runs once per period and not after ctx ends; Sleep returns early with ctx's
// cause.
func TestEvery(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		calls := 0
		done := make(chan struct{})
		go func() {
			Every(ctx, time.Second, func() { calls++ })
			close(done)
		}()
		time.Sleep(3*time.Second + time.Millisecond)
		cancel()
		<-done
		if calls != 3 {
			t.Errorf("%d calls in 3 periods", calls)
		}
		if err := Sleep(ctx, time.Hour); !errors.Is(err, context.Canceled) {
			t.Errorf("Sleep on an ended context: %v", err)
		}
		if err := Sleep(context.Background(), time.Minute); err != nil {
			t.Errorf("Sleep: %v", err)
		}
	})
}
