package chain_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/computehorde/horde/internal/chain"
	"github.com/computehorde/horde/internal/chain/sim"
)

const submitNetUID = 12

func submitSim(t *testing.T, permit bool) (*sim.Chain, chain.Hotkey, chain.Hotkey) {
	t.Helper()
	const v, m = chain.Hotkey("5Validator"), chain.Hotkey("5Miner")
	s, err := sim.New(sim.Genesis{NetUID: submitNetUID, Neurons: []sim.NeuronSpec{
		{Hotkey: v, Stake: 1000, ValidatorPermit: &permit},
		{Hotkey: m},
	}})
	if err != nil {
		t.Fatal(err)
	}
	s.Advance(1)
	return s, v, m
}

func task(c chain.Chain, v, m chain.Hotkey, until uint64) chain.WeightsTask {
	return chain.WeightsTask{
		Chain: c, Hotkey: v, NetUID: submitNetUID, Weights: map[chain.Hotkey]float64{m: 1},
		Until: until, Backoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond,
	}
}

func TestSubmitWeightsRetriesTransientFailures(t *testing.T) {
	s, v, m := submitSim(t, true)
	s.FailNext(sim.KindSetWeights, 3, nil)
	s.FailNext(sim.KindHead, 2, nil)
	r, err := chain.SubmitWeights(context.Background(), task(s, v, m, 100))
	if err != nil {
		t.Fatal(err)
	}
	s.Advance(1)
	if w, _ := s.Weights(submitNetUID, v); w[1] != chain.U16Max || r.Block != 2 {
		t.Errorf("weights %v, receipt %+v", w, r)
	}
}

func TestSubmitWeightsStopsOnRefusal(t *testing.T) {
	s, v, m := submitSim(t, false)
	_, err := chain.SubmitWeights(context.Background(), task(s, v, m, 100))
	if !errors.Is(err, chain.ErrNoValidatorPermit) {
		t.Fatalf("err = %v, want NeuronNoValidatorPermit at once", err)
	}
}

// advancingChain produces a block at every failed SetWeights, so the window closes.
type advancingChain struct{ *sim.Chain }

func (a advancingChain) SetWeights(ctx context.Context, h chain.Hotkey, n chain.NetUID, w map[chain.Hotkey]float64, vk uint64) (chain.WeightsReceipt, error) {
	a.Advance(1)
	return chain.WeightsReceipt{}, chain.ErrSettingWeightsTooFast
}

func TestSubmitWeightsWindowCloses(t *testing.T) {
	s, v, m := submitSim(t, true)
	_, err := chain.SubmitWeights(context.Background(), task(advancingChain{s}, v, m, 6))
	if !errors.Is(err, chain.ErrWindowClosed) || s.Advance(0).Number != 5 {
		t.Fatalf("err = %v at head %d, want the window closed at block 5", err, s.Advance(0).Number)
	}
}

func TestSubmitWeightsCancelled(t *testing.T) {
	s, v, m := submitSim(t, true)
	s.FailNext(sim.KindSetWeights, 1<<30, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := chain.SubmitWeights(ctx, task(s, v, m, 100)); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
}

func TestSubmitCommitment(t *testing.T) {
	s, v, _ := submitSim(t, true)
	ctx := context.Background()
	task := chain.CommitmentTask{Chain: s, Hotkey: v, NetUID: submitNetUID, Data: []byte("manifest"),
		Backoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond}

	s.FailNext(sim.KindSetCommitment, 3, nil)
	if err := chain.SubmitCommitment(ctx, task); err != nil {
		t.Fatal(err)
	}
	s.Advance(1)
	if all, _ := s.Commitments(ctx, submitNetUID); string(all[v]) != "manifest" {
		t.Errorf("commitments %q", all)
	}

	big := task
	big.Data = make([]byte, chain.MaxCommitmentBytes+1)
	if err := chain.SubmitCommitment(ctx, big); !errors.Is(err, chain.ErrCommitmentTooLarge) {
		t.Errorf("too large: %v", err)
	}
	stranger := task
	stranger.Hotkey = "5Stranger"
	if err := chain.SubmitCommitment(ctx, stranger); !errors.Is(err, chain.ErrNotRegistered) {
		t.Errorf("not registered: %v", err)
	}
	late := task
	late.Until = s.Advance(0).Number + 1
	s.FailNext(sim.KindSetCommitment, 1, nil)
	if err := chain.SubmitCommitment(ctx, late); !errors.Is(err, chain.ErrWindowClosed) {
		t.Errorf("closed window: %v", err)
	}
}
