package miner

import (
	"context"
	"fmt"

	"github.com/computehorde/horde/internal/protocol"
	"github.com/computehorde/horde/internal/store"
)

// restartMessage is what the validator of a job cut short by a miner restart is told.
const restartMessage = "Miner restarted while the job was running; the job was stopped and its executor removed"

// Recover settles the jobs a previous run of this miner left active (it was killed, or
// stopped with jobs still running): each is marked failed in the store, and its validator
// is sent a V0HordeFailedRequest (executor_disconnected, reported by the miner) when it next
// connects to this process. Call it before serving. The executors of those jobs were removed
// by then: their processes die with the miner and their containers are swept by the
// executor ID the miner gives them.
func (m *Miner) Recover(ctx context.Context) (int, error) {
	n := 0
	for _, st := range activeStatuses {
		jobs, err := m.cfg.Store.ListJobs(ctx, store.JobFilter{Role: store.RoleMiner, Status: st})
		if err != nil {
			return n, fmt.Errorf("miner: recover: %w", err)
		}
		for _, j := range jobs {
			if j.MinerHotkey != m.hotkey {
				continue
			}
			report := &protocol.V0HordeFailedRequest{
				JobUUID: j.UUID, ReportedBy: protocol.JobParticipantTypeMiner,
				Reason: protocol.HordeFailureReasonExecutorDisconnected, Message: restartMessage,
			}
			result, _ := protocol.Encode(report)
			if err := m.cfg.Store.UpdateJobStatus(ctx, j.UUID, activeStatuses, statusFailed, result); err != nil {
				return n, fmt.Errorf("miner: recover job %s: %w", j.UUID, err)
			}
			m.noteFailure(JobEvent{JobUUID: j.UUID, Validator: j.ValidatorHotkey, Class: protocol.ExecutorClass(j.ExecutorClass),
				Kind: KindHordeFailed, Reason: string(report.Reason), Message: restartMessage})
			m.mu.Lock()
			if m.owed == nil {
				m.owed = map[string][]protocol.Message{}
			}
			m.owed[j.ValidatorHotkey] = append(m.owed[j.ValidatorHotkey], report)
			m.mu.Unlock()
			m.log.Warn("job cut short by a miner restart: failed, its validator is told when it connects",
				"job", j.UUID, "validator", shortKey(j.ValidatorHotkey), "was", st)
			n++
		}
	}
	return n, nil
}

// sendOwed sends validator s the reports this process owes it from Recover.
func (m *Miner) sendOwed(ctx context.Context, s *validatorSession) {
	m.mu.Lock()
	owed := m.owed[s.hotkey]
	delete(m.owed, s.hotkey)
	m.mu.Unlock()
	for _, msg := range owed {
		s.send(ctx, msg)
	}
}
