package miner

import (
	"testing"
	"time"

	"github.com/computehorde/horde/internal/protocol"
	"github.com/computehorde/horde/internal/store"
)

// TestWorkIntervalsCountersigned: every interval of a running job is verified,
// countersigned and stored under its own index; a receipt for a job the validator did not
// give the miner, or with impossible times, is dropped.
func TestWorkIntervalsCountersigned(t *testing.T) {
	h := newHarness(t, readyThenHold)
	c := h.authed()
	ctx := t.Context()
	const id = "00000000-0000-4000-8000-0000000000bb"
	send(ctx, t, c, h.initialRequest(id, protocol.ExecutorClassAlwaysOnTest))
	if _, ok := h.read(c).(*protocol.V0AcceptJobRequest); !ok {
		t.Fatal("want accept")
	}
	if _, ok := h.read(c).(*protocol.V0ExecutorReadyRequest); !ok {
		t.Fatal("want executor ready")
	}
	start := time.Now().Add(-25 * time.Minute)
	interval := func(job string, i int, worked int, length time.Duration) *protocol.V0WorkIntervalReceiptRequest {
		p := protocol.WorkIntervalReceiptPayload{
			JobUUID: job, MinerHotkey: h.bob.SS58(), ValidatorHotkey: h.alice.SS58(), Timestamp: protocol.NewTimestamp(time.Now()),
			ExecutorClass: protocol.ExecutorClassAlwaysOnTest, IntervalIndex: i,
			IntervalStart: protocol.NewTimestamp(start.Add(time.Duration(i) * WorkInterval)),
			IntervalEnd:   protocol.NewTimestamp(start.Add(time.Duration(i)*WorkInterval + length)), WorkedSeconds: worked,
		}
		return &protocol.V0WorkIntervalReceiptRequest{Payload: p, Signature: h.alice.Sign(p.BlobForSigning()).Hex()}
	}
	send(ctx, t, c, interval(id, 0, 600, WorkInterval))
	send(ctx, t, c, interval(id, 1, 600, WorkInterval))
	send(ctx, t, c, interval("00000000-0000-4000-8000-0000000000cc", 0, 600, WorkInterval)) // not this miner's job
	send(ctx, t, c, interval(id, 2, 900, WorkInterval))                                     // more seconds than the interval
	// A round trip, so that the miner has handled everything above.
	send(ctx, t, c, &protocol.V0MainHotkeyMessage{})
	h.read(c)

	rows, err := h.db.ListReceipts(ctx, store.ReceiptFilter{Type: string(protocol.ReceiptTypeWorkInterval)})
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 || rows[0].Seq != 0 || rows[1].Seq != 1 || rows[0].JobUUID != id {
		t.Fatalf("stored %+v, want intervals 0 and 1 of the job", rows)
	}
	for _, r := range rows {
		rec, err := protocol.DecodeReceipt([]byte(`{"payload":` + string(r.Payload) + `,"validator_signature":"` + r.ValidatorSignature + `","miner_signature":"` + r.MinerSignature + `"}`))
		if err != nil {
			t.Fatal(err)
		}
		if err := rec.VerifyMinerSignature(); err != nil {
			t.Errorf("interval %d: countersignature: %v", r.Seq, err)
		}
	}
}
