package chain

import (
	"errors"
	"math"
	"slices"
	"testing"
)

func TestQuantizeWeights(t *testing.T) {
	tests := []struct {
		name    string
		in      map[UID]float64
		uids    []UID
		vals    []uint16
		wantErr error
	}{
		{"empty", map[UID]float64{}, []UID{}, []uint16{}, nil},
		{"all zero", map[UID]float64{1: 0, 2: 0}, []UID{}, []uint16{}, nil},
		{"single", map[UID]float64{7: 0.3}, []UID{7}, []uint16{65535}, nil},
		{"max upscale and sort", map[UID]float64{5: 1, 2: 2, 9: 0.5}, []UID{2, 5, 9}, []uint16{65535, 32768, 16384}, nil},
		{"zeros dropped", map[UID]float64{0: 0, 1: 10, 3: 0}, []UID{1}, []uint16{65535}, nil},
		{"tiny rounds to zero and is dropped", map[UID]float64{1: 1, 2: 1e-6}, []UID{1}, []uint16{65535}, nil},
		// 0.5 exactly after scaling: Python's round gives the even neighbour.
		{"half to even down", map[UID]float64{1: 65535, 2: 0.5}, []UID{1}, []uint16{65535}, nil},
		{"half to even up", map[UID]float64{1: 65535, 2: 1.5}, []UID{1, 2}, []uint16{65535, 2}, nil},
		{"scale independent", map[UID]float64{1: 3e300, 2: 1.5e300}, []UID{1, 2}, []uint16{65535, 32768}, nil},
		{"negative", map[UID]float64{1: 1, 2: -1}, nil, nil, ErrInvalidWeights},
		{"NaN", map[UID]float64{1: math.NaN()}, nil, nil, ErrInvalidWeights},
		{"Inf", map[UID]float64{1: math.Inf(1)}, nil, nil, ErrInvalidWeights},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			uids, vals, err := QuantizeWeights(tt.in)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if !slices.Equal(uids, tt.uids) || !slices.Equal(vals, tt.vals) {
				t.Errorf("got %v %v, want %v %v", uids, vals, tt.uids, tt.vals)
			}
		})
	}
}

func TestWithinMaxWeight(t *testing.T) {
	tests := []struct {
		name  string
		vals  []uint16
		limit uint16
		want  bool
	}{
		{"no limit", []uint16{65535}, 65535, true},
		{"empty", nil, 1, true},
		{"single entry is 100%", []uint16{65535}, 65534, false},
		{"two equal, limit half", []uint16{65535, 65535}, 32768, true},
		{"two equal, limit just below half", []uint16{65535, 65535}, 32767, false},
		{"three, top share 50%", []uint16{65535, 32768, 32767}, 32768, true},
		{"zero limit", []uint16{1, 1}, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := WithinMaxWeight(tt.vals, tt.limit); got != tt.want {
				t.Errorf("WithinMaxWeight(%v, %d) = %v, want %v", tt.vals, tt.limit, got, tt.want)
			}
		})
	}
}

func TestNormalizeWeights(t *testing.T) {
	hp := DefaultHyperparams() // MinAllowedWeights 1024, no max limit
	tests := []struct {
		name    string
		in      map[UID]float64
		hp      func(*Hyperparams)
		n       int
		uids    []UID
		vals    []uint16
		wantErr error
	}{
		{"min capped by subnet size", map[UID]float64{0: 1, 1: 1, 2: 1}, nil, 3, []UID{0, 1, 2}, []uint16{65535, 65535, 65535}, nil},
		{"too few for subnet size", map[UID]float64{0: 1, 1: 1}, nil, 3, nil, nil, ErrWeightVecLengthIsLow},
		{"zeros do not count", map[UID]float64{0: 1, 1: 1, 2: 0}, nil, 3, nil, nil, ErrWeightVecLengthIsLow},
		{"explicit minimum", map[UID]float64{0: 1, 1: 1}, func(h *Hyperparams) { h.MinAllowedWeights = 2 }, 100, []UID{0, 1}, []uint16{65535, 65535}, nil},
		{"minimum zero allows empty", map[UID]float64{}, func(h *Hyperparams) { h.MinAllowedWeights = 0 }, 100, []UID{}, []uint16{}, nil},
		{"empty subnet allows empty", map[UID]float64{}, nil, 0, []UID{}, []uint16{}, nil},
		{"max weight exceeded", map[UID]float64{0: 1, 1: 0.1}, func(h *Hyperparams) { h.MinAllowedWeights = 1; h.MaxWeightsLimit = 32768 }, 2, nil, nil, ErrMaxWeightExceeded},
		{"max weight ok", map[UID]float64{0: 1, 1: 1}, func(h *Hyperparams) { h.MinAllowedWeights = 1; h.MaxWeightsLimit = 32768 }, 2, []UID{0, 1}, []uint16{65535, 65535}, nil},
		{"invalid input", map[UID]float64{0: -1}, nil, 1, nil, nil, ErrInvalidWeights},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := hp
			if tt.hp != nil {
				tt.hp(&h)
			}
			uids, vals, err := NormalizeWeights(tt.in, h, tt.n)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if !slices.Equal(uids, tt.uids) || !slices.Equal(vals, tt.vals) {
				t.Errorf("got %v %v, want %v %v", uids, vals, tt.uids, tt.vals)
			}
		})
	}
}
