package validator

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/computehorde/horde/internal/keys"
	"github.com/computehorde/horde/internal/protocol"
	"github.com/computehorde/horde/internal/store"
)

// runLong runs a job whose execution lasts `runs` on the fake clock and then ends as end
// says, and returns the work-interval receipts the miner received and the validator stored.
func runLong(t *testing.T, runs time.Duration, end func(p *minerPeer, job string)) ([]*protocol.V0WorkIntervalReceiptRequest, []store.Receipt) {
	t.Helper()
	e := newEnv(t, nil)
	m := e.startMiner(func(p *minerPeer, job string) {
		p.accept(job)
		p.ready(job)
		p.send(&protocol.V0VolumesReadyRequest{JobUUID: job})
		for left := runs; left > 0; {
			step := min(left, WorkInterval)
			if step == WorkInterval {
				p.expire(step) // the validator waits for the interval's end and signs it
				expect[protocol.V0WorkIntervalReceiptRequest](p)
			} else {
				p.e.clock.Advance(step)
			}
			left -= step
		}
		end(p, job)
	})
	spec := testSpec(protocol.ExecutorClassAlwaysOnTest)
	spec.ExecutionTimeLimit = 3600
	e.run(t.Context(), spec)
	p := m.wait()
	stored, err := e.db.ListReceipts(t.Context(), store.ReceiptFilter{Type: string(protocol.ReceiptTypeWorkInterval)})
	if err != nil {
		t.Fatal(err)
	}
	return sent[protocol.V0WorkIntervalReceiptRequest](p), stored
}

func checkIntervals(t *testing.T, got []*protocol.V0WorkIntervalReceiptRequest, stored []store.Receipt, want []int) {
	t.Helper()
	if len(got) != len(want) || len(stored) != len(want) {
		t.Fatalf("%d receipts sent and %d stored, want %d", len(got), len(stored), len(want))
	}
	var first time.Time
	for i, r := range got {
		p := r.Payload
		if i == 0 {
			first = p.IntervalStart.Time
		}
		if p.IntervalIndex != i || p.WorkedSeconds != want[i] || !p.IntervalStart.Equal(first.Add(time.Duration(i)*WorkInterval)) {
			t.Errorf("interval %d: %+v, want %d s from %v", i, p, want[i], first.Add(time.Duration(i)*WorkInterval))
		}
		if err := keys.Verify(p.ValidatorHotkey, p.BlobForSigning(), r.Signature); err != nil {
			t.Errorf("interval %d: signature: %v", i, err)
		}
		var sp protocol.WorkIntervalReceiptPayload
		if err := json.Unmarshal(stored[i].Payload, &sp); err != nil || stored[i].Seq != i || sp.WorkedSeconds != want[i] {
			t.Errorf("stored interval %d: seq %d, %+v, %v", i, stored[i].Seq, sp, err)
		}
	}
}

// TestLongJobAccountedInIntervals: a 35-minute execution is three full intervals and a
// final partial one of 5 minutes.
func TestLongJobAccountedInIntervals(t *testing.T) {
	got, stored := runLong(t, 35*time.Minute, func(p *minerPeer, job string) {
		p.send(&protocol.V0ExecutionDoneRequest{JobUUID: job})
		expect[protocol.V0WorkIntervalReceiptRequest](p) // the final partial interval
		p.send(&protocol.V0JobFinishedRequest{JobUUID: job, DockerProcessStdout: "done\n"})
	})
	checkIntervals(t, got, stored, []int{600, 600, 600, 300})
}

// TestCutOffJobPaidForCompletedIntervals: a job cut off after 25 minutes of execution is
// paid for its two completed intervals, and nothing for the cut-off part.
func TestCutOffJobPaidForCompletedIntervals(t *testing.T) {
	got, stored := runLong(t, 25*time.Minute, func(p *minerPeer, job string) {
		p.send(&protocol.V0HordeFailedRequest{JobUUID: job, ReportedBy: protocol.JobParticipantTypeMiner,
			Reason: protocol.HordeFailureReasonExecutorDisconnected, Message: "executor died"})
	})
	checkIntervals(t, got, stored, []int{600, 600})
}

// TestFailedJobPaidForItsPartialInterval: a job that fails by its own fault (it exits
// non-zero) after 25 minutes of execution is accounted like one that ended normally: two
// full intervals and the 5 minutes it ran of the third. The executor time was the user's.
func TestFailedJobPaidForItsPartialInterval(t *testing.T) {
	exit := 3
	got, stored := runLong(t, 25*time.Minute, func(p *minerPeer, job string) {
		p.send(&protocol.V0JobFailedRequest{JobUUID: job, Reason: protocol.JobFailureReasonNonzeroReturnCode,
			Stage: protocol.JobStageExecution, DockerProcessExitStatus: &exit})
		expect[protocol.V0WorkIntervalReceiptRequest](p) // the final partial interval
	})
	checkIntervals(t, got, stored, []int{600, 600, 300})
}
