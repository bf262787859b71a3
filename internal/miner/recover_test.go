package miner

import (
	"testing"
	"time"

	"github.com/computehorde/horde/internal/protocol"
	"github.com/computehorde/horde/internal/store"
)

// TestRecoverSettlesJobsOfAnEarlierRun: jobs an earlier run left active are failed in the
// store and reported to their validator when it connects, once.
func TestRecoverSettlesJobsOfAnEarlierRun(t *testing.T) {
	h := newHarness(t, happyExecutor)
	ctx := t.Context()
	const running, waiting, done = "11111111-1111-4111-8111-111111111111", "22222222-2222-4222-8222-222222222222", "33333333-3333-4333-8333-333333333333"
	for id, status := range map[string]string{running: statusRunning, waiting: statusWaitingForPayload, done: statusFinished} {
		if err := h.db.CreateJob(ctx, store.Job{
			UUID: id, Role: store.RoleMiner, ValidatorHotkey: h.alice.SS58(), MinerHotkey: h.bob.SS58(),
			ExecutorClass: string(protocol.ExecutorClassAlwaysOnTest), Status: status, Spec: []byte(`{}`),
			CreatedAt: time.Now(), UpdatedAt: time.Now(),
		}); err != nil {
			t.Fatal(err)
		}
	}
	n, err := h.miner.Recover(ctx)
	if err != nil || n != 2 {
		t.Fatalf("recovered %d, %v; want the 2 active jobs", n, err)
	}
	for id, want := range map[string]string{running: statusFailed, waiting: statusFailed, done: statusFinished} {
		if j, err := h.db.GetJob(ctx, id); err != nil || j.Status != want {
			t.Errorf("job %s: %+v, %v; want %s", id, j.Status, err, want)
		}
	}
	c := h.authed()
	got := map[string]bool{}
	for range 2 {
		f, ok := h.read(c).(*protocol.V0HordeFailedRequest)
		if !ok || f.ReportedBy != protocol.JobParticipantTypeMiner || f.Reason != protocol.HordeFailureReasonExecutorDisconnected {
			t.Fatalf("want the miner's horde failure report, got %#v", f)
		}
		got[f.JobUUID] = true
	}
	if !got[running] || !got[waiting] {
		t.Errorf("reports for %v", got)
	}
	// Reported once: a second connection gets only the manifest.
	if n, _ := h.miner.Recover(ctx); n != 0 {
		t.Errorf("a second Recover found %d", n)
	}
}
