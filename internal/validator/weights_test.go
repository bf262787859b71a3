package validator

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/computehorde/horde/internal/chain"
	"github.com/computehorde/horde/internal/protocol"
	"github.com/computehorde/horde/internal/store"
)

// countingChain counts the weights the validator sets.
type countingChain struct {
	chain.Chain
	sets atomic.Int32
}

func (c *countingChain) SetWeights(ctx context.Context, h chain.Hotkey, n chain.NetUID, w map[chain.Hotkey]float64, vk uint64) (chain.WeightsReceipt, error) {
	c.sets.Add(1)
	return c.Chain.SetWeights(ctx, h, n, w, vk)
}

// addWork stores countersigned work-interval receipts of Bob on the 8-core CPU class.
func (e *env) addWork(seconds ...int) {
	e.t.Helper()
	now := e.clock.Now()
	for i, s := range seconds {
		p := protocol.WorkIntervalReceiptPayload{
			JobUUID: "00000000-0000-4000-8000-00000000dddd", MinerHotkey: e.bob.SS58(), ValidatorHotkey: e.alice.SS58(),
			Timestamp: protocol.NewTimestamp(now.Add(-time.Duration(30-10*i) * time.Minute)), ExecutorClass: protocol.ExecutorClassAlwaysOnCPU8c16GB,
			IntervalIndex: i, IntervalStart: protocol.NewTimestamp(now.Add(-40 * time.Minute)), IntervalEnd: protocol.NewTimestamp(now.Add(-30 * time.Minute)),
			WorkedSeconds: s,
		}
		payload, err := json.Marshal(&p)
		if err != nil {
			e.t.Fatal(err)
		}
		if _, err := e.db.InsertReceipt(e.t.Context(), store.Receipt{
			Type: string(p.ReceiptType()), JobUUID: p.JobUUID, Seq: i, ValidatorHotkey: p.ValidatorHotkey, MinerHotkey: p.MinerHotkey,
			Timestamp: p.Timestamp.Time, Payload: payload,
			ValidatorSignature: e.alice.Sign(p.BlobForSigning()).Hex(), MinerSignature: e.bob.Sign(p.BlobForSigning()).Hex(),
		}); err != nil {
			e.t.Fatal(err)
		}
	}
}

func TestSetWeightsFromCountersignedWork(t *testing.T) {
	e := newEnv(t, nil)
	if _, _, err := e.v.SetWeights(t.Context(), 1000); !errors.Is(err, ErrNoWork) {
		t.Fatalf("no work: %v", err)
	}
	e.addWork(600, 600, 300)
	r, rec, err := e.v.SetWeights(t.Context(), 1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Miners) != 1 || r.Miners[0].Points != 1500 || r.Miners[0].Weight != chain.U16Max || rec.Block == 0 {
		t.Fatalf("result %+v, receipt %+v; want Bob with 1 × 1500 points", r, rec)
	}
	e.chain.Advance(1)
	if w, _ := e.chain.Weights(netuid, chain.Hotkey(e.alice.SS58())); w[1] != chain.U16Max {
		t.Errorf("weights on the simulated chain: %v", w)
	}
}

// TestWeightsOncePerTempo: RunWeights sets weights at the first head of each epoch and not
// again within it.
func TestWeightsOncePerTempo(t *testing.T) {
	var cc *countingChain
	e := newEnv(t, func(c *Config) {
		cc = &countingChain{Chain: c.Chain}
		c.Chain = cc
	})
	e.addWork(600)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- e.v.RunWeights(ctx) }()
	waitFor := func(n int32) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); cc.sets.Load() < n; time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%d weight settings, want %d", cc.sets.Load(), n)
			}
		}
	}
	waitFor(1) // the epoch the validator starts in
	hp, _ := e.chain.Hyperparams(t.Context(), netuid)
	head := e.chain.Advance(0).Number
	_, end := chain.EpochBounds(head, netuid, hp.Tempo)
	for e.chain.Advance(0).Number+1 < end { // the rest of this epoch: nothing more
		e.chain.Advance(1)
	}
	e.chain.Advance(1) // the next epoch
	waitFor(2)
	for range hp.Tempo { // its other blocks
		e.chain.Advance(1)
	}
	cancel()
	<-done
	if got := cc.sets.Load(); got != 2 {
		t.Errorf("%d weight settings over two epochs, want 2", got)
	}
	if w, _ := e.chain.Weights(netuid, chain.Hotkey(e.alice.SS58())); w[1] != chain.U16Max {
		t.Errorf("weights on the simulated chain: %v", w)
	}
}

// refusingChain refuses every weight setting as a chain refuses a validator without a
// permit, until allowed.
type refusingChain struct {
	chain.Chain
	allowed atomic.Bool
	tries   atomic.Int32
}

func (c *refusingChain) SetWeights(ctx context.Context, h chain.Hotkey, n chain.NetUID, w map[chain.Hotkey]float64, vk uint64) (chain.WeightsReceipt, error) {
	c.tries.Add(1)
	if !c.allowed.Load() {
		return chain.WeightsReceipt{}, chain.ErrNoValidatorPermit
	}
	return c.Chain.SetWeights(ctx, h, n, w, vk)
}

// TestWeightsRefusedByTheChain: a chain that refuses the weights (no permit) is logged with
// the cause and not retried within the tempo; the next tempo tries again and sets them once
// the chain takes them. Nothing is lost meanwhile: the work stays in the store.
func TestWeightsRefusedByTheChain(t *testing.T) {
	var rc *refusingChain
	e := newEnv(t, func(c *Config) {
		rc = &refusingChain{Chain: c.Chain}
		c.Chain = rc
	})
	e.addWork(600)
	if _, _, err := e.v.SetWeights(t.Context(), 1<<40); !errors.Is(err, chain.ErrNoValidatorPermit) {
		t.Fatalf("SetWeights on a refusing chain: %v", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- e.v.RunWeights(ctx) }()
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(e.logs.String(), "weights not set this tempo"); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no log line for the refusal:\n%s", e.logs.String())
		}
	}
	wantLog := "no validator permit"
	if !strings.Contains(strings.ToLower(e.logs.String()), wantLog) {
		t.Errorf("the refusal's log line does not name the cause (%q):\n%s", wantLog, e.logs.String())
	}
	tries := rc.tries.Load()
	rc.allowed.Store(true)
	hp, _ := e.chain.Hyperparams(t.Context(), netuid)
	_, end := chain.EpochBounds(e.chain.Advance(0).Number, netuid, hp.Tempo)
	for e.chain.Advance(0).Number < end {
		e.chain.Advance(1)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		if strings.Contains(e.logs.String(), "weights set for the tempo") {
			e.chain.Advance(1) // the block that includes them
			if w, _ := e.chain.Weights(netuid, chain.Hotkey(e.alice.SS58())); w[1] == chain.U16Max {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the next tempo did not set the weights")
		}
	}
	cancel()
	<-done
	if tries != 2 {
		t.Errorf("%d refused tries, want the direct one and one for the tempo (a refusal is not retried within it)", tries)
	}
}
