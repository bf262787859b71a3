package validator

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/computehorde/horde/internal/protocol"
	"github.com/computehorde/horde/internal/store"
)

// Recover settles the jobs an earlier run of this validator left active (it was killed, or
// stopped with jobs running): each becomes horde_failed, reported by the validator. Nothing
// else is lost: the receipts the earlier run gave out were stored before they were sent,
// and are keyed so that pulling them again counts none twice. Call it before taking jobs.
func (v *Validator) Recover(ctx context.Context) (int, error) {
	n := 0
	for _, st := range activeStatuses {
		jobs, err := v.cfg.Store.ListJobs(ctx, store.JobFilter{Role: store.RoleValidator, Status: st})
		if err != nil {
			return n, fmt.Errorf("validator: recover: %w", err)
		}
		for _, j := range jobs {
			if j.ValidatorHotkey != v.hotkey {
				continue
			}
			res := hordeFailure(protocol.HordeFailureReasonUnhandledException, "validator restarted while the job was running")
			res.UUID = j.UUID
			data, err := json.Marshal(res)
			if err != nil {
				return n, err
			}
			if err := v.cfg.Store.UpdateJobStatus(ctx, j.UUID, activeStatuses, string(res.Status), data); err != nil {
				return n, fmt.Errorf("validator: recover job %s: %w", j.UUID, err)
			}
			v.log.Warn("job cut short by a validator restart: horde_failed", "job", j.UUID, "miner", j.MinerHotkey, "was", st)
			n++
		}
	}
	return n, nil
}
