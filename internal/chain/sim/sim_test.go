package sim

import (
	"context"
	"encoding/binary"
	"errors"
	"net/netip"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/crypto/blake2b"

	"github.com/computehorde/horde/internal/chain"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const netuid chain.NetUID = 12

// Hotkeys of the test subnet: two validators by stake, two miners.
const (
	v1 chain.Hotkey = "5V1"
	v2 chain.Hotkey = "5V2"
	m1 chain.Hotkey = "5M1"
	m2 chain.Hotkey = "5M2"
)

func testGenesis() Genesis {
	hp := DefaultHyperparams()
	hp.MaxValidators = 2
	return Genesis{
		NetUID:      netuid,
		Hyperparams: hp,
		BlockTime:   time.Second,
		Neurons: []NeuronSpec{
			{Hotkey: v1, Coldkey: "5C1", Stake: 1000},
			{Hotkey: v2, Coldkey: "5C2", Stake: 500},
			{Hotkey: m1, Coldkey: "5C3", Stake: 10},
			{Hotkey: m2, Coldkey: "5C3", Stake: 5},
		},
	}
}

func newSim(t *testing.T, mutate func(*Genesis)) *Chain {
	t.Helper()
	g := testGenesis()
	if mutate != nil {
		mutate(&g)
	}
	s, err := New(g)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

func metagraph(t *testing.T, s *Chain, at uint64) *chain.Metagraph {
	t.Helper()
	m, err := s.Metagraph(t.Context(), netuid, at)
	if err != nil {
		t.Fatalf("Metagraph(%d): %v", at, err)
	}
	return m
}

func neuronOf(t *testing.T, s *Chain, h chain.Hotkey) chain.Neuron {
	t.Helper()
	n, ok := metagraph(t, s, 0).ByHotkey(h)
	if !ok {
		t.Fatalf("%s not in the metagraph", h)
	}
	return n
}

func ptr[T any](v T) *T { return &v }

func TestBlocksAreDeterministic(t *testing.T) {
	s := newSim(t, nil)
	head, err := s.Head(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	want := blake2b.Sum256(binary.BigEndian.AppendUint64([]byte("horde-sim"), 0))
	if head.Number != 0 || head.Hash != want || !head.Time.Equal(DefaultStart) {
		t.Errorf("genesis head = %+v, want block 0 with hash %x at %v", head, want, DefaultStart)
	}
	b := s.Advance(3)
	if b.Number != 3 || !b.Time.Equal(DefaultStart.Add(3*time.Second)) {
		t.Errorf("Advance(3) = block %d at %v, want 3 at start+3s", b.Number, b.Time)
	}
	if again := newSim(t, nil).Advance(3); again.Hash != b.Hash {
		t.Error("same genesis gave a different hash for block 3")
	}
	other := newSim(t, func(g *Genesis) { g.Seed = []byte("other") }).Advance(3)
	if other.Hash == b.Hash {
		t.Error("a different seed gave the same hash")
	}
	if m := metagraph(t, s, 2); m.Block.Number != 2 || m.Block.Hash == b.Hash {
		t.Errorf("metagraph at 2 has block %+v", m.Block)
	}
}

func TestGenesisErrors(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*Genesis)
	}{
		{"tempo 0", func(g *Genesis) { g.Hyperparams.Tempo = 0 }},
		{"duplicate hotkey", func(g *Genesis) { g.Neurons[1].Hotkey = v1 }},
		{"empty hotkey", func(g *Genesis) { g.Neurons[0].Hotkey = "" }},
		{"too many neurons", func(g *Genesis) { g.MaxNeurons = 3 }},
		{"MaxNeurons above u16", func(g *Genesis) { g.MaxNeurons = 1<<16 + 1 }},
		{"negative history", func(g *Genesis) { g.History = -1 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := testGenesis()
			tt.mutate(&g)
			if _, err := New(g); err == nil {
				t.Error("New succeeded, want an error")
			}
		})
	}
}

func TestZeroHyperparamsMeanFast(t *testing.T) {
	s := newSim(t, func(g *Genesis) { g.Hyperparams = chain.Hyperparams{} })
	if hp, _ := s.Hyperparams(t.Context(), netuid); hp != DefaultHyperparams() {
		t.Errorf("Hyperparams = %+v, want DefaultHyperparams()", hp)
	}
}

func TestPermits(t *testing.T) {
	s := newSim(t, func(g *Genesis) {
		g.Neurons = append(g.Neurons,
			NeuronSpec{Hotkey: "5PINNED", Stake: 1, ValidatorPermit: ptr(true)},
			NeuronSpec{Hotkey: "5DENIED", Stake: 1 << 40, ValidatorPermit: ptr(false)})
	})
	permits := func() map[chain.Hotkey]bool {
		got := map[chain.Hotkey]bool{}
		for _, n := range metagraph(t, s, 0).Neurons {
			got[n.Hotkey] = n.ValidatorPermit
		}
		return got
	}
	// Genesis: the top 2 by stake are 5DENIED (pinned off) and v1; then v2.
	want := map[chain.Hotkey]bool{v1: true, v2: false, m1: false, m2: false, "5PINNED": true, "5DENIED": false}
	if got := permits(); !mapsEqual(got, want) {
		t.Errorf("genesis permits = %v, want %v", got, want)
	}
	if err := s.SetStake(m1, 1<<30); err != nil {
		t.Fatal(err)
	}
	// netuid 12, tempo 10: epochs start where (b+14) % 11 == 0, so at 8, 19, ...
	s.Advance(7)
	if permits()[m1] {
		t.Error("permit changed before the epoch boundary")
	}
	s.Advance(1)
	want[m1], want[v1] = true, false
	if got := permits(); !mapsEqual(got, want) {
		t.Errorf("permits after epoch = %v, want %v", got, want)
	}
	vs := metagraph(t, s, 0).Validators()
	if len(vs) != 2 || vs[0].Hotkey != m1 || vs[1].Hotkey != "5PINNED" {
		t.Errorf("Validators() = %v, want m1 then 5PINNED", vs)
	}
}

func mapsEqual[K comparable, V comparable](a, b map[K]V) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func TestMetagraphHistory(t *testing.T) {
	s := newSim(t, func(g *Genesis) { g.History = 5 })
	ctx := t.Context()
	stakeAt := func(at uint64) uint64 {
		t.Helper()
		n, _ := metagraph(t, s, at).ByHotkey(m1)
		return n.Stake
	}
	s.Advance(1)
	if err := s.SetStake(m1, 77); err != nil {
		t.Fatal(err)
	}
	if got := stakeAt(0); got != 10 {
		t.Errorf("stake visible before the next block: %d", got)
	}
	s.Advance(2) // head 3; the change is in block 2
	if got := stakeAt(0); got != 77 {
		t.Errorf("stake at head = %d, want 77", got)
	}
	if got := stakeAt(1); got != 10 {
		t.Errorf("stake at block 1 = %d, want the old 10", got)
	}
	if got := stakeAt(2); got != 77 {
		t.Errorf("stake at block 2 = %d, want 77", got)
	}
	old := metagraph(t, s, 1)
	old.Neurons[0].Stake = 1 // the caller's copy; must not leak into the sim
	if n, _ := metagraph(t, s, 1).ByHotkey(v1); n.Stake != 1000 {
		t.Error("modifying a returned metagraph changed the simulator's history")
	}
	s.Advance(3) // head 6; blocks 2..6 kept
	if _, err := s.Metagraph(ctx, netuid, 1); !errors.Is(err, chain.ErrUnknownBlock) {
		t.Errorf("pruned block: err = %v, want ErrUnknownBlock", err)
	}
	if m := metagraph(t, s, 2); m.Block.Number != 2 || m.Neurons[2].Stake != 77 {
		t.Errorf("block 2 metagraph = block %d, stake %d", m.Block.Number, m.Neurons[2].Stake)
	}
	if _, err := s.Metagraph(ctx, netuid, 7); !errors.Is(err, chain.ErrUnknownBlock) {
		t.Errorf("future block: err = %v, want ErrUnknownBlock", err)
	}
	if _, err := s.Metagraph(ctx, netuid+1, 0); !errors.Is(err, chain.ErrSubnetNotExists) {
		t.Errorf("wrong netuid: err = %v, want ErrSubnetNotExists", err)
	}
	if _, err := s.Hyperparams(ctx, netuid+1); !errors.Is(err, chain.ErrSubnetNotExists) {
		t.Errorf("wrong netuid: err = %v, want ErrSubnetNotExists", err)
	}
}

func TestRegistration(t *testing.T) {
	s := newSim(t, func(g *Genesis) {
		g.MaxNeurons = 5
		g.Hyperparams.ImmunityPeriod = 10
	})
	if _, err := s.Register(v1, "x"); !errors.Is(err, ErrAlreadyRegistered) {
		t.Errorf("registering twice: err = %v, want ErrAlreadyRegistered", err)
	}
	uid, err := s.Register("5NEW", "5CNEW")
	if err != nil || uid != 4 {
		t.Fatalf("Register = %d, %v; want uid 4", uid, err)
	}
	// Full now, and every neuron is immune until block 10 (genesis ones) or
	// 11 (the new one).
	if _, err := s.Register("5LATE", ""); !errors.Is(err, ErrNoSlotAvailable) {
		t.Errorf("all immune: err = %v, want ErrNoSlotAvailable", err)
	}
	s.Advance(9) // the next block is 10: genesis neurons are no longer immune
	uid, err = s.Register("5LATE", "")
	if err != nil || uid != 3 {
		t.Fatalf("Register when full = %d, %v; want uid 3 (m2, lowest stake)", uid, err)
	}
	s.Advance(1)
	m := metagraph(t, s, 0)
	if _, ok := m.ByHotkey(m2); ok {
		t.Error("m2 still registered after being replaced")
	}
	if n, _ := m.ByUID(3); n.Hotkey != "5LATE" || n.RegisteredAt != 10 || n.ValidatorPermit || n.Stake != 0 {
		t.Errorf("uid 3 = %+v, want 5LATE registered at 10 without permit or stake", n)
	}
	if err := s.Deregister(m1); err != nil {
		t.Fatal(err)
	}
	if err := s.Deregister(m1); !errors.Is(err, chain.ErrNotRegistered) {
		t.Errorf("deregistering twice: err = %v, want ErrNotRegistered", err)
	}
	s.Advance(1)
	m = metagraph(t, s, 0)
	if _, ok := m.ByUID(2); ok || len(m.Neurons) != 4 {
		t.Errorf("uid 2 still present after Deregister: %v", m.Neurons)
	}
	if uid, err := s.Register("5REUSE", ""); err != nil || uid != 2 {
		t.Errorf("Register after Deregister = %d, %v; want the freed uid 2", uid, err)
	}
	if err := s.SetStake("5NOBODY", 1); !errors.Is(err, chain.ErrNotRegistered) {
		t.Errorf("SetStake unknown: err = %v", err)
	}
}

func TestFailNext(t *testing.T) {
	s := newSim(t, nil)
	ctx := t.Context()
	s.FailNext(KindMetagraph, 2, nil)
	for i := range 2 {
		if _, err := s.Metagraph(ctx, netuid, 0); !errors.Is(err, chain.ErrUnavailable) || !chain.Retryable(err) {
			t.Errorf("call %d: err = %v, want ErrUnavailable", i, err)
		}
	}
	if _, err := s.Metagraph(ctx, netuid, 0); err != nil {
		t.Errorf("third call: %v", err)
	}
	custom := errors.New("boom")
	s.FailNext(KindSetWeights, 1, custom)
	if _, err := s.SetWeights(ctx, v1, netuid, map[chain.Hotkey]float64{m1: 1}, 0); !errors.Is(err, custom) {
		t.Errorf("set_weights fault: err = %v, want boom", err)
	}
	s.Advance(1)
	if w, _ := s.Weights(netuid, v1); len(w) != 0 {
		t.Errorf("a failed write changed weights: %v", w)
	}
	s.FailNext(KindServeAxon, 5, nil)
	s.FailNext(KindServeAxon, 0, nil)
	if err := s.ServeAxon(ctx, m1, netuid, netip.MustParseAddr("10.0.0.1"), 8000); err != nil {
		t.Errorf("cleared fault still fails: %v", err)
	}
	for _, k := range []string{KindHead, KindHyperparams, KindCommitments, KindSetCommitment} {
		s.FailNext(k, 1, nil)
	}
	if _, err := s.Head(ctx); err == nil {
		t.Error("head fault not applied")
	}
	if _, err := s.Hyperparams(ctx, netuid); err == nil {
		t.Error("hyperparams fault not applied")
	}
	if _, err := s.Commitments(ctx, netuid); err == nil {
		t.Error("commitments fault not applied")
	}
	if err := s.SetCommitment(ctx, m1, netuid, []byte("x")); err == nil {
		t.Error("set_commitment fault not applied")
	}
	defer func() {
		if recover() == nil {
			t.Error("FailNext with an unknown kind did not panic")
		}
	}()
	s.FailNext("set_wieghts", 1, nil)
}

func TestCanceledContext(t *testing.T) {
	s := newSim(t, nil)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := s.Head(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Head with canceled ctx: %v", err)
	}
	if _, err := s.SetWeights(ctx, v1, netuid, nil, 0); !errors.Is(err, context.Canceled) {
		t.Errorf("SetWeights with canceled ctx: %v", err)
	}
}

func TestCommitments(t *testing.T) {
	s := newSim(t, nil)
	ctx := t.Context()
	tests := []struct {
		name    string
		hotkey  chain.Hotkey
		data    []byte
		wantErr error
	}{
		{"128 bytes", m1, make([]byte, 128), nil},
		{"129 bytes", m1, make([]byte, 129), chain.ErrCommitmentTooLarge},
		{"not registered", "5NOBODY", []byte("<M:A1>"), chain.ErrNotRegistered},
		{"manifest", m2, []byte("<M:A1;S2>"), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := s.SetCommitment(ctx, tt.hotkey, netuid, tt.data); !errors.Is(err, tt.wantErr) {
				t.Errorf("err = %v, want %v", err, tt.wantErr)
			}
		})
	}
	if c, _ := s.Commitments(ctx, netuid); len(c) != 0 {
		t.Errorf("commitments visible before the next block: %v", c)
	}
	s.Advance(1)
	c, err := s.Commitments(ctx, netuid)
	if err != nil || len(c) != 2 || string(c[m2]) != "<M:A1;S2>" || len(c[m1]) != 128 {
		t.Fatalf("Commitments = %q, %v", c, err)
	}
	c[m2][0] = 'X'
	if err := s.Deregister(m2); err != nil {
		t.Fatal(err)
	}
	s.Advance(1)
	if c, _ := s.Commitments(ctx, netuid); string(c[m2]) != "<M:A1;S2>" {
		t.Errorf("commitment after deregistration or caller edit = %q, want it kept unchanged", c[m2])
	}
}

// fakeClock hands out one ticker whose ticks the test sends.
type fakeClock struct{ t *fakeTicker }

type fakeTicker struct {
	ch      chan time.Time
	stopped chan struct{}
}

func (f *fakeClock) NewTicker(time.Duration) Ticker { return f.t }
func (f *fakeTicker) C() <-chan time.Time           { return f.ch }
func (f *fakeTicker) Stop()                         { close(f.stopped) }

func TestRunAndWatchHeads(t *testing.T) {
	tick := &fakeTicker{ch: make(chan time.Time), stopped: make(chan struct{})}
	s := newSim(t, func(g *Genesis) { g.Clock = &fakeClock{tick} })
	ctx, cancel := context.WithCancel(t.Context())
	heads := s.WatchHeads(ctx)
	if b := <-heads; b.Number != 0 {
		t.Fatalf("first head = %d, want the current head 0", b.Number)
	}
	done := make(chan error)
	go func() { done <- s.Run(ctx) }()
	for want := uint64(1); want <= 3; want++ {
		tick.ch <- time.Time{}
		if b := <-heads; b.Number != want {
			t.Fatalf("head = %d, want %d", b.Number, want)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run returned %v, want nil on cancel", err)
	}
	<-tick.stopped
	for range heads { // drained and closed after cancel
	}
	if h, _ := s.Head(t.Context()); h.Number != 3 {
		t.Errorf("head after Run = %d, want 3", h.Number)
	}
}

func TestRunTwice(t *testing.T) {
	tick := &fakeTicker{ch: make(chan time.Time), stopped: make(chan struct{})}
	s := newSim(t, func(g *Genesis) { g.Clock = &fakeClock{tick} })
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error)
	go func() { done <- s.Run(ctx) }()
	tick.ch <- time.Time{} // Run is now certainly running
	if err := s.Run(ctx); err == nil {
		t.Error("a second Run succeeded")
	}
	cancel()
	<-done
}

func TestWatchHeadsSlowReader(t *testing.T) {
	s := newSim(t, nil)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	heads := s.WatchHeads(ctx)
	s.Advance(100)
	var last chain.Block
	for range watchBuffer {
		last = <-heads
	}
	if last.Number != 100 {
		t.Errorf("newest queued head = %d, want 100", last.Number)
	}
	select {
	case b := <-heads:
		t.Errorf("more than %d heads queued: got %d", watchBuffer, b.Number)
	default:
	}
}

func TestSetHyperparams(t *testing.T) {
	s := newSim(t, nil)
	hp := DefaultHyperparams()
	hp.Tempo = 0
	if err := s.SetHyperparams(hp); err == nil {
		t.Error("SetHyperparams accepted tempo 0")
	}
	hp.Tempo, hp.CommitRevealEnabled = 99, true
	mustNoErr(t, s.SetHyperparams(hp))
	if got, _ := s.Hyperparams(t.Context(), netuid); got.Tempo == 99 {
		t.Error("hyperparams changed before the next block")
	}
	s.Advance(1)
	if got, _ := s.Hyperparams(t.Context(), netuid); got != hp {
		t.Errorf("Hyperparams = %+v, want %+v", got, hp)
	}
}

// TestConcurrentUse is for the race detector.
func TestConcurrentUse(t *testing.T) {
	s := newSim(t, func(g *Genesis) { g.Hyperparams.WeightsRateLimit = 0 })
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	heads := s.WatchHeads(ctx)
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			for j := range 100 {
				switch i {
				case 0:
					s.Advance(1)
				case 1:
					_, _ = s.SetWeights(ctx, v1, netuid, map[chain.Hotkey]float64{m1: float64(j)}, 0)
				case 2:
					_, _ = s.Metagraph(ctx, netuid, 0)
					_, _ = s.Commitments(ctx, netuid)
				case 3:
					_ = s.SetCommitment(ctx, m1, netuid, []byte{byte(j)})
					_ = s.SetStake(m2, uint64(j))
				}
			}
		})
	}
	var reader sync.WaitGroup
	reader.Go(func() {
		for range heads {
		}
	})
	wg.Wait()
	cancel()
	reader.Wait()
}
