package validator

import (
	"context"
	"encoding/json"
	"time"

	"github.com/computehorde/horde/internal/protocol"
	"github.com/computehorde/horde/internal/store"
)

// WorkInterval is the length of one accounted interval of a job's execution: a job is paid
// for every interval it completed, with a final partial one when it ends normally or fails
// by its own fault (not the horde's), each
// proven by a work-interval receipt the validator signs and the miner countersigns.
const WorkInterval = 10 * time.Minute

// workAccount follows one job's execution for interval accounting.
type workAccount struct {
	began bool
	from  time.Time // execution start
	next  int       // index of the next interval to sign
	done  bool      // the final interval is signed
}

func (w *workAccount) start(t time.Time) { *w = workAccount{began: true, from: t} }

// running reports whether the execution is being accounted.
func (w *workAccount) running() bool { return w.began && !w.done }

// boundary is when the next full interval ends.
func (w *workAccount) boundary() time.Time {
	return w.from.Add(time.Duration(w.next+1) * WorkInterval)
}

// accountWork signs every interval that ended by t and, when final (the execution ended at t,
// normally or by the job's own failure), the partial interval up to t. Each receipt is stored before it is sent, so a
// validator that dies loses none it gave away.
func (d *driver) accountWork(ctx context.Context, t time.Time, final bool) {
	w := &d.work
	if !w.running() {
		return
	}
	for !w.boundary().After(t) {
		start := w.from.Add(time.Duration(w.next) * WorkInterval)
		d.signInterval(ctx, w.next, start, start.Add(WorkInterval))
		w.next++
	}
	if final {
		start := w.from.Add(time.Duration(w.next) * WorkInterval)
		if t.After(start) {
			d.signInterval(ctx, w.next, start, t)
			w.next++
		}
		w.done = true
	}
}

func (d *driver) signInterval(ctx context.Context, index int, start, end time.Time) {
	v := d.v
	p := protocol.WorkIntervalReceiptPayload{
		JobUUID: d.spec.UUID, MinerHotkey: d.miner, ValidatorHotkey: v.hotkey,
		Timestamp: protocol.NewTimestamp(v.cfg.Clock.Now()), ExecutorClass: d.spec.ExecutorClass,
		IntervalIndex: index, IntervalStart: protocol.NewTimestamp(start), IntervalEnd: protocol.NewTimestamp(end),
		WorkedSeconds: int(end.Sub(start) / time.Second),
	}
	sig := v.cfg.Keypair.Sign(p.BlobForSigning()).Hex()
	payload, err := json.Marshal(&p)
	if err == nil {
		_, err = v.cfg.Store.InsertReceipt(context.WithoutCancel(ctx), store.Receipt{
			Type: string(p.ReceiptType()), JobUUID: p.JobUUID, Seq: index,
			ValidatorHotkey: v.hotkey, MinerHotkey: d.miner, Timestamp: p.Timestamp.Time,
			Payload: payload, ValidatorSignature: sig,
		})
	}
	if err != nil {
		// Not sent either: the miner would hold a receipt the validator cannot account.
		d.log.Error("cannot store a work-interval receipt; not sent", "interval", index, "err", err)
		return
	}
	d.log.Info("work interval signed", "interval", index, "worked_seconds", p.WorkedSeconds)
	if d.obs.Work != nil {
		d.obs.Work(p)
	}
	if err := d.conn.Send(ctx, &protocol.V0WorkIntervalReceiptRequest{Payload: p, Signature: sig}); err != nil {
		d.log.Warn("cannot send a work-interval receipt; the miner can pull it from no one else", "interval", index, "err", err)
	}
}
