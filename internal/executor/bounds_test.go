package executor

import (
	"math"
	"testing"
	"time"

	"github.com/computehorde/horde/internal/protocol"
)

// TestSecondsSaturates: the conversion that turned 9223372036854775807 seconds into a negative
// duration (a job "timed out" at 0 ms) saturates instead.
func TestSecondsSaturates(t *testing.T) {
	for n, want := range map[int]time.Duration{
		0: 0, 60: time.Minute, math.MaxInt: math.MaxInt64, 1_000_000_000_000: math.MaxInt64,
		math.MinInt: math.MinInt64, -1: -time.Second,
	} {
		if got := seconds(n); got != want {
			t.Errorf("seconds(%d) = %v, want %v", n, got, want)
		}
	}
}

// TestTimeAfterStartup: the job's remaining lifetime never overflows, whatever it asks for
// (CheckTiming refuses such requests first; this is the second line).
func TestTimeAfterStartup(t *testing.T) {
	week := int(MaxTimeLimit / time.Second)
	got := timeAfterStartup(&protocol.V0InitialJobRequest{ExecutorTiming: &protocol.ExecutorTiming{
		AllowedLeeway: week, DownloadTimeLimit: week, ExecutionTimeLimit: week, UploadTimeLimit: week}})
	if got != 4*MaxTimeLimit {
		t.Errorf("4 limits of a week: %v", got)
	}
	if err := CheckTiming(&protocol.ExecutorTiming{ExecutionTimeLimit: week}, nil); err != nil {
		t.Errorf("a week is allowed: %v", err)
	}
	if err := CheckTiming(&protocol.ExecutorTiming{ExecutionTimeLimit: week + 1}, nil); err == nil {
		t.Error("more than a week is allowed")
	}
}
