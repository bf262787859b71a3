package validator

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/computehorde/horde/internal/protocol"
	"github.com/computehorde/horde/internal/store"
)

// TestRecoverSettlesJobsOfAnEarlierRun: jobs an earlier run left active become horde_failed
// once; finished ones are left alone.
func TestRecoverSettlesJobsOfAnEarlierRun(t *testing.T) {
	e := newEnv(t, nil)
	ctx := t.Context()
	for id, status := range map[string]protocol.JobStatus{
		"11111111-1111-4111-8111-111111111111": protocol.JobStatusExecutorReady,
		"22222222-2222-4222-8222-222222222222": protocol.JobStatusCompleted,
	} {
		if err := e.db.CreateJob(ctx, store.Job{UUID: id, Role: store.RoleValidator, ValidatorHotkey: e.alice.SS58(), MinerHotkey: e.bob.SS58(),
			ExecutorClass: string(protocol.ExecutorClassAlwaysOnTest), Status: string(status), Spec: []byte(`{}`),
			CreatedAt: time.Now(), UpdatedAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := e.v.Recover(ctx); err != nil || n != 1 {
		t.Fatalf("Recover = %d, %v; want the one active job", n, err)
	}
	j, err := e.db.GetJob(ctx, "11111111-1111-4111-8111-111111111111")
	var res JobResult
	if err != nil || j.Status != string(protocol.JobStatusHordeFailed) || json.Unmarshal(j.Result, &res) != nil || res.ReportedBy != protocol.JobParticipantTypeValidator {
		t.Errorf("recovered job %+v, %v", j, err)
	}
	if j, _ := e.db.GetJob(ctx, "22222222-2222-4222-8222-222222222222"); j.Status != string(protocol.JobStatusCompleted) {
		t.Errorf("a finished job was touched: %s", j.Status)
	}
	if n, _ := e.v.Recover(ctx); n != 0 {
		t.Errorf("a second Recover settled %d", n)
	}
}
