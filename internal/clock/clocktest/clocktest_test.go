package clocktest_test

import (
	"context"
	"testing"
	"time"

	"github.com/computehorde/horde/internal/clock"
	"github.com/computehorde/horde/internal/clock/clocktest"
)

var _ clock.Clock = (*clocktest.Fake)(nil)

func TestFake(t *testing.T) {
	start := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	c := clocktest.NewFake(start)
	a, b := c.After(time.Second), c.After(time.Minute)
	if err := c.AwaitTimers(context.Background(), 2); err != nil {
		t.Fatal(err)
	}
	if err := c.AwaitTimer(context.Background(), start.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	c.Advance(time.Second)
	select {
	case at := <-a:
		if !at.Equal(start.Add(time.Second)) {
			t.Errorf("fired at %v", at)
		}
	default:
		t.Fatal("a due timer did not fire")
	}
	select {
	case <-b:
		t.Fatal("a timer fired early")
	default:
	}
	if at := <-c.After(0); !at.Equal(c.Now()) {
		t.Errorf("After(0) fired at %v, now %v", at, c.Now())
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := c.AwaitTimers(ctx, 5); err == nil {
		t.Error("AwaitTimers returned without the timers or the context ending")
	}
}
