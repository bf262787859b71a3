package sim

import (
	"errors"
	"math"
	"net/netip"
	"slices"
	"testing"

	"github.com/computehorde/horde/internal/chain"
)

// In testGenesis v1 (uid 0) and v2 (uid 1) hold permits; m1 (uid 2) and m2
// (uid 3) do not. MinAllowedWeights 1, WeightsRateLimit 2.
func TestSetWeightsRules(t *testing.T) {
	type call struct {
		hotkey chain.Hotkey
		uids   []chain.UID
		values []uint16
	}
	v1Miners := call{v1, []chain.UID{2, 3}, []uint16{65535, 100}}
	tests := []struct {
		name    string
		hp      func(*chain.Hyperparams)
		setup   func(t *testing.T, s *Chain)
		call    call
		version uint64
		wantErr error
	}{
		{name: "valid", call: v1Miners},
		{name: "not registered", call: call{"5NOBODY", []chain.UID{2}, []uint16{1}}, wantErr: chain.ErrNotRegistered},
		{name: "registration checked before the vector", call: call{"5NOBODY", []chain.UID{2, 2}, []uint16{1, 1}}, wantErr: chain.ErrNotRegistered},
		{name: "stake below threshold", hp: func(h *chain.Hyperparams) { h.StakeThreshold = 1001 }, call: v1Miners, wantErr: chain.ErrNotEnoughStake},
		{name: "stake at threshold", hp: func(h *chain.Hyperparams) { h.StakeThreshold = 1000 }, call: v1Miners},
		{name: "version key below subnet's", hp: func(h *chain.Hyperparams) { h.WeightsVersionKey = 5 }, version: 4, call: v1Miners, wantErr: chain.ErrIncorrectWeightVersionKey},
		{name: "version key equal", hp: func(h *chain.Hyperparams) { h.WeightsVersionKey = 5 }, version: 5, call: v1Miners},
		{name: "version key above", hp: func(h *chain.Hyperparams) { h.WeightsVersionKey = 5 }, version: 9, call: v1Miners},
		{name: "subnet key 0 accepts any", version: 0, call: v1Miners},
		{
			name:    "rate limit",
			setup:   func(t *testing.T, s *Chain) { mustSet(t, s, v1, 2); s.Advance(1) },
			call:    v1Miners,
			wantErr: chain.ErrSettingWeightsTooFast,
		},
		{
			name:    "rate limit within one block",
			setup:   func(t *testing.T, s *Chain) { mustSet(t, s, v1, 2) },
			call:    v1Miners,
			wantErr: chain.ErrSettingWeightsTooFast,
		},
		{
			name:  "rate limit passed",
			setup: func(t *testing.T, s *Chain) { mustSet(t, s, v1, 2); s.Advance(2) },
			call:  v1Miners,
		},
		{
			name:  "rate limit 0",
			hp:    func(h *chain.Hyperparams) { h.WeightsRateLimit = 0 },
			setup: func(t *testing.T, s *Chain) { mustSet(t, s, v1, 2) },
			call:  v1Miners,
		},
		{
			name:    "rate limit checked before permit",
			setup:   func(t *testing.T, s *Chain) { mustSet(t, s, m1, 2); s.Advance(1) },
			call:    call{m1, []chain.UID{0, 1}, []uint16{1, 1}},
			wantErr: chain.ErrSettingWeightsTooFast,
		},
		{name: "no permit", call: call{m1, []chain.UID{0, 1}, []uint16{1, 1}}, wantErr: chain.ErrNoValidatorPermit},
		{name: "self-weight needs no permit", call: call{m1, []chain.UID{2}, []uint16{65535}}},
		{name: "permit checked before duplicates", call: call{m1, []chain.UID{0, 0}, []uint16{1, 1}}, wantErr: chain.ErrNoValidatorPermit},
		{name: "duplicate uids", call: call{v1, []chain.UID{2, 2}, []uint16{1, 1}}, wantErr: chain.ErrDuplicateUIDs},
		{name: "uid out of range", call: call{v1, []chain.UID{2, 9}, []uint16{1, 1}}, wantErr: chain.ErrUIDVecContainInvalidOne},
		{
			name:    "deregistered uid",
			setup:   func(t *testing.T, s *Chain) { mustNoErr(t, s.Deregister(m2)) },
			call:    v1Miners,
			wantErr: chain.ErrUIDVecContainInvalidOne,
		},
		{name: "too few weights", hp: func(h *chain.Hyperparams) { h.MinAllowedWeights = 3 }, call: v1Miners, wantErr: chain.ErrWeightVecLengthIsLow},
		{name: "minimum capped by subnet size", hp: func(h *chain.Hyperparams) { h.MinAllowedWeights = 1024 },
			call: call{v1, []chain.UID{0, 1, 2, 3}, []uint16{1, 1, 1, 1}}},
		{name: "self-weight exempt from minimum", hp: func(h *chain.Hyperparams) { h.MinAllowedWeights = 3 }, call: call{v1, []chain.UID{0}, []uint16{7}}},
		{name: "max weight exceeded", hp: func(h *chain.Hyperparams) { h.MaxWeightsLimit = 40000 }, call: v1Miners, wantErr: chain.ErrMaxWeightExceeded},
		{name: "max weight respected", hp: func(h *chain.Hyperparams) { h.MaxWeightsLimit = 40000 }, call: call{v1, []chain.UID{2, 3}, []uint16{65535, 65535}}},
		{name: "self-weight exempt from max weight", hp: func(h *chain.Hyperparams) { h.MaxWeightsLimit = 1 }, call: call{v1, []chain.UID{0}, []uint16{65535}}},
		{name: "lengths differ", call: call{v1, []chain.UID{2, 3}, []uint16{1}}, wantErr: ErrWeightVecNotEqualSize},
		{name: "commit-reveal enabled", hp: func(h *chain.Hyperparams) { h.CommitRevealEnabled = true }, call: v1Miners, wantErr: chain.ErrCommitRevealEnabled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSim(t, func(g *Genesis) {
				if tt.hp != nil {
					tt.hp(&g.Hyperparams)
				}
			})
			if tt.setup != nil {
				tt.setup(t, s)
			}
			block, err := s.SetWeightsRaw(tt.call.hotkey, netuid, tt.call.uids, tt.call.values, tt.version)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			s.Advance(1)
			w, err := s.Weights(netuid, tt.call.hotkey)
			if err != nil {
				t.Fatal(err)
			}
			for i, u := range tt.call.uids {
				if w[u] != tt.call.values[i] {
					t.Errorf("weights at block %d = %v, want %v=%v", block, w, tt.call.uids, tt.call.values)
				}
			}
			if n := neuronOf(t, s, tt.call.hotkey); n.LastUpdate != block {
				t.Errorf("LastUpdate = %d, want %d", n.LastUpdate, block)
			}
		})
	}
}

func mustSet(t *testing.T, s *Chain, h chain.Hotkey, uid chain.UID) {
	t.Helper()
	if _, err := s.SetWeightsRaw(h, netuid, []chain.UID{uid}, []uint16{65535}, 0); err != nil {
		t.Fatalf("setup SetWeightsRaw: %v", err)
	}
}

func mustNoErr(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestSetWeightsByHotkey(t *testing.T) {
	s := newSim(t, nil)
	ctx := t.Context()
	r, err := s.SetWeights(ctx, v1, netuid, map[chain.Hotkey]float64{m1: 2, m2: 1, "5GONE": 3, "5ALSO": 0}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if r.Block != 1 || r.RevealBlock != 1 || r.CommitReveal ||
		!slices.Equal(r.UIDs, []chain.UID{2, 3}) || !slices.Equal(r.Values, []uint16{65535, 32768}) ||
		!slices.Equal(r.Unknown, []chain.Hotkey{"5ALSO", "5GONE"}) {
		t.Errorf("receipt = %+v", r)
	}
	if w, _ := s.Weights(netuid, v1); len(w) != 0 {
		t.Errorf("weights in effect before the next block: %v", w)
	}
	s.Advance(1)
	if w, _ := s.Weights(netuid, v1); w[2] != 65535 || w[3] != 32768 || len(w) != 2 {
		t.Errorf("Weights = %v", w)
	}
	if _, err := s.Weights(netuid, "5GONE"); !errors.Is(err, chain.ErrNotRegistered) {
		t.Errorf("Weights of unknown hotkey: err = %v", err)
	}
	s.Advance(2)
	if _, err := s.SetWeights(ctx, v1, netuid, map[chain.Hotkey]float64{m1: math.NaN()}, 0); !errors.Is(err, chain.ErrInvalidWeights) {
		t.Errorf("NaN weight: err = %v, want ErrInvalidWeights", err)
	}
	if _, err := s.SetWeights(ctx, m1, netuid, map[chain.Hotkey]float64{v1: 1}, 0); !errors.Is(err, chain.ErrNoValidatorPermit) {
		t.Errorf("miner setting weights: err = %v, want ErrNoValidatorPermit", err)
	}
	if _, err := s.SetWeights(ctx, m1, netuid, map[chain.Hotkey]float64{m1: 1}, 0); err != nil {
		t.Errorf("miner self-weight: %v", err)
	}
}

func crSim(t *testing.T, mutate func(*chain.Hyperparams)) *Chain {
	return newSim(t, func(g *Genesis) {
		g.Hyperparams.CommitRevealEnabled = true
		if mutate != nil {
			mutate(&g.Hyperparams)
		}
	})
}

func TestCommitReveal(t *testing.T) {
	s := crSim(t, nil)
	ctx := t.Context()
	// netuid 12, tempo 10: epochs start at 8, 19, 30. A commit included in
	// block 1 (epoch 1) is revealed at the start of epoch 2, block 8.
	r, err := s.SetWeights(ctx, v1, netuid, map[chain.Hotkey]float64{m1: 1, m2: 1}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !r.CommitReveal || r.Block != 1 || r.RevealBlock != 8 {
		t.Errorf("receipt = %+v, want a commit in block 1 revealed at 8", r)
	}
	if got := s.PendingCommits(v1); got != 1 {
		t.Errorf("PendingCommits = %d, want 1", got)
	}
	if _, err := s.SetWeights(ctx, v1, netuid, map[chain.Hotkey]float64{m1: 1}, 0); !errors.Is(err, chain.ErrCommittingWeightsTooFast) {
		t.Errorf("second commit: err = %v, want ErrCommittingWeightsTooFast", err)
	}
	s.Advance(7)
	if w, _ := s.Weights(netuid, v1); len(w) != 0 {
		t.Errorf("weights at block 7, before the reveal: %v", w)
	}
	if n := neuronOf(t, s, v1); n.LastUpdate != 1 {
		t.Errorf("LastUpdate = %d, want the commit block 1", n.LastUpdate)
	}
	s.Advance(1)
	if w, _ := s.Weights(netuid, v1); w[2] != 65535 || w[3] != 65535 {
		t.Errorf("weights at the reveal block = %v", w)
	}
	if s.PendingCommits(v1) != 0 || s.RevealError(v1) != nil {
		t.Errorf("after reveal: %d pending, reveal error %v", s.PendingCommits(v1), s.RevealError(v1))
	}
	// Block 9 is in epoch 2; a commit there is revealed at 19.
	r, err = s.SetWeights(ctx, v1, netuid, map[chain.Hotkey]float64{m1: 1}, 0)
	if err != nil || r.RevealBlock != 19 {
		t.Errorf("commit in block 9 = %+v, %v; want reveal at 19", r, err)
	}
}

func TestCommitRevealRules(t *testing.T) {
	ctx := t.Context()
	t.Run("commit with commit-reveal disabled", func(t *testing.T) {
		s := newSim(t, nil)
		if _, err := s.CommitWeightsRaw(v1, netuid, []chain.UID{2}, []uint16{1}, 0); !errors.Is(err, chain.ErrCommitRevealDisabled) {
			t.Errorf("err = %v, want ErrCommitRevealDisabled", err)
		}
	})
	t.Run("too many unrevealed commits", func(t *testing.T) {
		s := crSim(t, func(h *chain.Hyperparams) { h.WeightsRateLimit = 0 })
		for i := range MaxUnrevealedCommits {
			if _, err := s.CommitWeightsRaw(v1, netuid, []chain.UID{2}, []uint16{1}, 0); err != nil {
				t.Fatalf("commit %d: %v", i, err)
			}
		}
		if _, err := s.CommitWeightsRaw(v1, netuid, []chain.UID{2}, []uint16{1}, 0); !errors.Is(err, chain.ErrTooManyUnrevealedCommits) {
			t.Errorf("11th commit: err = %v, want ErrTooManyUnrevealedCommits", err)
		}
	})
	t.Run("commit checked like set_weights", func(t *testing.T) {
		s := crSim(t, nil)
		if _, err := s.SetWeights(ctx, m1, netuid, map[chain.Hotkey]float64{v1: 1}, 0); !errors.Is(err, chain.ErrNoValidatorPermit) {
			t.Errorf("err = %v, want ErrNoValidatorPermit", err)
		}
		if _, err := s.SetWeights(ctx, "5NOBODY", netuid, map[chain.Hotkey]float64{v1: 1}, 0); !errors.Is(err, chain.ErrNotRegistered) {
			t.Errorf("err = %v, want ErrNotRegistered", err)
		}
	})
	t.Run("invalid reveal is dropped", func(t *testing.T) {
		s := crSim(t, nil)
		if _, err := s.CommitWeightsRaw(v1, netuid, []chain.UID{3}, []uint16{1}, 0); err != nil {
			t.Fatal(err)
		}
		mustNoErr(t, s.Deregister(m2))
		s.Advance(8)
		if w, _ := s.Weights(netuid, v1); len(w) != 0 {
			t.Errorf("weights for a deregistered uid revealed: %v", w)
		}
		if err := s.RevealError(v1); !errors.Is(err, chain.ErrUIDVecContainInvalidOne) {
			t.Errorf("RevealError = %v, want ErrUIDVecContainInvalidOne", err)
		}
		if s.PendingCommits(v1) != 0 {
			t.Error("dropped commit still pending")
		}
	})
}

func TestServeAxonRules(t *testing.T) {
	ip := netip.MustParseAddr
	tests := []struct {
		name    string
		mutate  func(*Genesis)
		setup   func(t *testing.T, s *Chain)
		hotkey  chain.Hotkey
		ip      netip.Addr
		port    uint16
		wantErr error
	}{
		{name: "valid", hotkey: m1, ip: ip("203.0.113.5"), port: 8000},
		{name: "private range", hotkey: m1, ip: ip("10.0.0.1"), port: 8000},
		{name: "0.0.0.0 is allowed", hotkey: m1, ip: ip("0.0.0.0"), port: 8000},
		{name: "ipv6", hotkey: m1, ip: ip("2001:db8::1"), port: 8000},
		{name: "127.0.0.2", hotkey: m1, ip: ip("127.0.0.2"), port: 8000},
		{name: "not registered", hotkey: "5NOBODY", ip: ip("10.0.0.1"), port: 8000, wantErr: chain.ErrNotRegistered},
		{name: "no ip", hotkey: m1, port: 8000, wantErr: chain.ErrInvalidIPAddress},
		{name: "127.0.0.1", hotkey: m1, ip: ip("127.0.0.1"), port: 8000, wantErr: chain.ErrInvalidIPAddress},
		{name: "::1", hotkey: m1, ip: ip("::1"), port: 8000, wantErr: chain.ErrInvalidIPAddress},
		{name: "4in6 loopback", hotkey: m1, ip: ip("::ffff:127.0.0.1"), port: 8000, wantErr: chain.ErrInvalidIPAddress},
		{name: "relaxed 127.0.0.1", mutate: func(g *Genesis) { g.RelaxedAxonIPs = true }, hotkey: m1, ip: ip("127.0.0.1"), port: 8000},
		{name: "relaxed ::1", mutate: func(g *Genesis) { g.RelaxedAxonIPs = true }, hotkey: m1, ip: ip("::1"), port: 8000},
		{name: "port 0", hotkey: m1, ip: ip("10.0.0.1"), port: 0, wantErr: chain.ErrInvalidPort},
		{
			name:   "rate limit",
			setup:  func(t *testing.T, s *Chain) { mustServe(t, s); s.Advance(1) },
			hotkey: m1, ip: ip("10.0.0.2"), port: 8000,
			wantErr: chain.ErrServingRateLimitExceeded,
		},
		{
			name:   "rate limit checked before port",
			setup:  func(t *testing.T, s *Chain) { mustServe(t, s); s.Advance(1) },
			hotkey: m1, ip: ip("10.0.0.2"), port: 0,
			wantErr: chain.ErrServingRateLimitExceeded,
		},
		{
			name:   "rate limit passed",
			setup:  func(t *testing.T, s *Chain) { mustServe(t, s); s.Advance(2) },
			hotkey: m1, ip: ip("10.0.0.2"), port: 8000,
		},
		{
			name:   "rate limit 0",
			mutate: func(g *Genesis) { g.Hyperparams.ServingRateLimit = 0 },
			setup:  func(t *testing.T, s *Chain) { mustServe(t, s) },
			hotkey: m1, ip: ip("10.0.0.2"), port: 8000,
		},
		{
			name:   "genesis axon counts as never served",
			mutate: func(g *Genesis) { g.Neurons[2].Axon = chain.AxonInfo{IP: ip("10.9.9.9"), Port: 1} },
			hotkey: m1, ip: ip("10.0.0.2"), port: 8000,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSim(t, tt.mutate)
			if tt.setup != nil {
				tt.setup(t, s)
			}
			err := s.ServeAxon(t.Context(), tt.hotkey, netuid, tt.ip, tt.port)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			b := s.Advance(1)
			a := neuronOf(t, s, tt.hotkey).Axon
			if a.IP != tt.ip.Unmap() || a.Port != tt.port || a.Block != b.Number || a.Protocol != 4 {
				t.Errorf("axon = %+v, want %v:%d at block %d", a, tt.ip, tt.port, b.Number)
			}
			if a.IsServing() == tt.ip.IsUnspecified() {
				t.Errorf("IsServing = %v for %v", a.IsServing(), tt.ip)
			}
		})
	}
}

func mustServe(t *testing.T, s *Chain) {
	t.Helper()
	if err := s.ServeAxon(t.Context(), m1, netuid, netip.MustParseAddr("10.0.0.1"), 8000); err != nil {
		t.Fatalf("setup ServeAxon: %v", err)
	}
}
