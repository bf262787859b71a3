package miner

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/computehorde/horde/internal/protocol"
	"github.com/computehorde/horde/internal/store"
)

// WorkInterval is the length of one accounted interval of a job's execution.
const WorkInterval = 10 * time.Minute

// workSlack tolerates clocks and rounding at an interval's ends.
const workSlack = 5 * time.Second

// storeWorkInterval checks a validator's work-interval receipt against what the miner
// knows, then countersigns and stores it like the other receipts. A receipt for a job this
// validator did not give the miner, or with impossible times, is logged and dropped.
func (m *Miner) storeWorkInterval(ctx context.Context, s *validatorSession, r *protocol.V0WorkIntervalReceiptRequest) {
	if err := m.checkWorkInterval(ctx, s.hotkey, &r.Payload); err != nil {
		s.log.Warn("work-interval receipt rejected", "job", r.Payload.JobUUID, "interval", r.Payload.IntervalIndex, "err", err)
		return
	}
	m.storeReceipt(ctx, s, &r.Payload, r.Signature)
}

func (m *Miner) checkWorkInterval(ctx context.Context, validator string, p *protocol.WorkIntervalReceiptPayload) error {
	length := p.IntervalEnd.Sub(p.IntervalStart.Time)
	switch {
	case p.IntervalIndex < 0:
		return errors.New("negative interval index")
	case length < 0 || length > WorkInterval+workSlack:
		return fmt.Errorf("interval of %v; intervals are at most %v", length, WorkInterval)
	case p.WorkedSeconds < 0 || time.Duration(p.WorkedSeconds)*time.Second > length+workSlack:
		return fmt.Errorf("%d worked seconds in an interval of %v", p.WorkedSeconds, length)
	case p.IntervalEnd.After(m.now().Add(workSlack)):
		return errors.New("the interval ends in the future")
	}
	j, err := m.cfg.Store.GetJob(ctx, p.JobUUID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return errors.New("no such job on this miner")
	case err != nil:
		return fmt.Errorf("reading the job: %w", err)
	case j.Role != store.RoleMiner || j.ValidatorHotkey != validator:
		return errors.New("the job is another validator's")
	case string(p.ExecutorClass) != j.ExecutorClass:
		return fmt.Errorf("class %s, but the job is %s", p.ExecutorClass, j.ExecutorClass)
	}
	return nil
}
