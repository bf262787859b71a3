package fairshare

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// c builds a claimant: id, weight, held, wants.
func c(id string, w float64, held, wants int) Claimant {
	return Claimant{ID: id, Weight: w, Held: held, Wants: wants}
}

func TestShares(t *testing.T) {
	tests := []struct {
		name  string
		units int
		cs    []Claimant
		want  map[string]int
	}{
		{"stake 3:1 both want all 4", 4, []Claimant{c("a", 3, 0, 4), c("b", 1, 0, 9)}, map[string]int{"a": 3, "b": 1}},
		{"one alone gets all 4", 4, []Claimant{c("a", 3, 0, 0), c("b", 1, 0, 9)}, map[string]int{"a": 0, "b": 4}},
		{"3:1 big wants 1, small gets 3", 4, []Claimant{c("a", 3, 0, 1), c("b", 1, 0, 9)}, map[string]int{"a": 1, "b": 3}},
		{"weights 1,1,2 and 10 units", 10, []Claimant{c("a", 1, 0, 10), c("b", 1, 0, 10), c("c", 2, 0, 10)}, map[string]int{"a": 3, "b": 2, "c": 5}},
		{"weights 1,1,2, b capped at 1", 10, []Claimant{c("a", 1, 0, 10), c("b", 1, 0, 1), c("c", 2, 0, 10)}, map[string]int{"a": 3, "b": 1, "c": 6}},
		{"equal weights round 4,3,3 by ID", 10, []Claimant{c("c", 5, 0, 10), c("b", 5, 0, 10), c("a", 5, 0, 10)}, map[string]int{"a": 4, "b": 3, "c": 3}},
		{"demand below pool: everyone gets Wants", 10, []Claimant{c("a", 1, 1, 2), c("b", 9, 0, 3)}, map[string]int{"a": 2, "b": 3}},
		{"zero weight gets idle units", 4, []Claimant{c("a", 1, 0, 3), c("z", 0, 0, 5)}, map[string]int{"a": 3, "z": 1}},
		{"zero weight gets nothing under contention", 4, []Claimant{c("a", 1, 0, 10), c("z", 0, 2, 5)}, map[string]int{"a": 4, "z": 0}},
		{"zero weights split idle equally", 5, []Claimant{c("a", 1, 0, 2), c("y", 0, 0, 9), c("z", 0, 0, 9)}, map[string]int{"a": 2, "y": 2, "z": 1}},
		{"all zero weights share equally", 3, []Claimant{c("y", 0, 0, 9), c("z", 0, 0, 9)}, map[string]int{"y": 2, "z": 1}},
		{"non-asking holder is capped at what it holds", 4, []Claimant{c("a", 1, 3, 3), c("b", 1, 0, 4)}, map[string]int{"a": 2, "b": 2}},
		{"held beyond a shrunken pool is allowed", 4, []Claimant{c("a", 1, 5, 5), c("b", 1, 0, 2)}, map[string]int{"a": 2, "b": 2}},
		{"empty pool", 0, []Claimant{c("a", 1, 0, 3)}, map[string]int{"a": 0}},
		{"huge stakes do not overflow", 4, []Claimant{c("a", 1e308, 0, 9), c("b", 1e308, 0, 9)}, map[string]int{"a": 2, "b": 2}},
		{"tiny stake still counts", 2, []Claimant{c("a", 1e-300, 0, 9), c("b", 5e-324, 0, 9)}, map[string]int{"a": 2, "b": 0}},
		{"no claimants", 4, nil, map[string]int{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Shares(tt.units, tt.cs)
			if err != nil {
				t.Fatal(err)
			}
			if !maps.Equal(got, tt.want) {
				t.Errorf("Shares(%d, %v) = %v, want %v", tt.units, tt.cs, got, tt.want)
			}
		})
	}
}

func TestDecide(t *testing.T) {
	tests := []struct {
		name  string
		units int
		cs    []Claimant
		id    string
		want  Decision
	}{
		// The case: stake 3:1 competing for 4 executors.
		{"3:1 big at share, small starved: big refused", 4, []Claimant{c("a", 3, 3, 5), c("b", 1, 0, 2)}, "a",
			Decision{Take: false, Share: 3, Free: 1, OverShare: true, Starved: []string{"b"}}},
		{"3:1 small below share takes", 4, []Claimant{c("a", 3, 3, 5), c("b", 1, 0, 2)}, "b",
			Decision{Take: true, Share: 1, Free: 1}},
		{"3:1 at 3 and 1, full: big not over share", 4, []Claimant{c("a", 3, 3, 5), c("b", 1, 1, 3)}, "a",
			Decision{Share: 3}},
		{"3:1 at 3 and 1, full: small not over share", 4, []Claimant{c("a", 3, 3, 5), c("b", 1, 1, 3)}, "b",
			Decision{Share: 1}},
		{"small took idle 2, full, big asks: small over share", 4, []Claimant{c("a", 3, 2, 5), c("b", 1, 2, 3)}, "b",
			Decision{Share: 1, OverShare: true, Starved: []string{"a"}}},
		{"small took idle 2, full: big below share but no unit", 4, []Claimant{c("a", 3, 2, 5), c("b", 1, 2, 3)}, "a",
			Decision{Share: 3}},
		{"one alone takes the 4th unit", 4, []Claimant{c("a", 3, 3, 4), c("b", 1, 0, 0)}, "a",
			Decision{Take: true, Share: 4, Free: 1}},
		{"small alone takes every unit", 4, []Claimant{c("a", 3, 0, 0), c("b", 1, 3, 4)}, "b",
			Decision{Take: true, Share: 4, Free: 1}},
		{"over share refused while another is starved", 4, []Claimant{c("a", 3, 0, 3), c("b", 1, 3, 4)}, "b",
			Decision{Share: 1, Free: 1, OverShare: true, Starved: []string{"a"}}},
		{"over share accepted when nobody else asks", 4, []Claimant{c("a", 3, 0, 0), c("b", 1, 3, 4)}, "b",
			Decision{Take: true, Share: 4, Free: 1}},
		{"over share accepted when the other holds but does not ask", 5, []Claimant{c("a", 3, 1, 1), c("b", 1, 3, 4)}, "b",
			Decision{Take: true, Share: 4, Free: 1}},
		{"zero weight refused while a staked claimant asks", 4, []Claimant{c("a", 1, 0, 4), c("z", 0, 0, 1)}, "z",
			Decision{Share: 0, Free: 4, OverShare: true, Starved: []string{"a"}}},
		{"zero weight takes an idle unit", 4, []Claimant{c("a", 1, 0, 2), c("z", 0, 0, 1)}, "z",
			Decision{Take: true, Share: 1, Free: 4, Starved: []string{"a"}}},
		{"empty pool: nothing can be taken", 0, []Claimant{c("a", 1, 0, 1)}, "a",
			Decision{}},
		{"the request counts even if Wants omits it", 4, []Claimant{c("a", 1, 2, 2)}, "a",
			Decision{Take: true, Share: 3, Free: 2}},
		{"held beyond a shrunken pool: no free unit", 4, []Claimant{c("a", 1, 5, 6)}, "a",
			Decision{Share: 4}},
		{"starved list sorted and excludes the asker", 10, []Claimant{c("d", 1, 5, 9), c("c", 1, 0, 9), c("b", 1, 0, 9)}, "d",
			Decision{Share: 3, Free: 5, OverShare: true, Starved: []string{"b", "c"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Decide(tt.units, tt.cs, tt.id)
			if err != nil {
				t.Fatal(err)
			}
			if got.Take != tt.want.Take || got.Share != tt.want.Share || got.Free != tt.want.Free ||
				got.OverShare != tt.want.OverShare || !slices.Equal(got.Starved, tt.want.Starved) {
				t.Errorf("Decide(%d, %v, %q) = %+v, want %+v", tt.units, tt.cs, tt.id, got, tt.want)
			}
		})
	}
}

func TestInvalid(t *testing.T) {
	tests := []struct {
		name  string
		units int
		cs    []Claimant
		id    string // for Decide
		msg   string // the error names this
	}{
		{"negative weight", 4, []Claimant{c("a", 1, 0, 1), c("bad", -1, 0, 1)}, "a", `"bad"`},
		{"NaN weight", 4, []Claimant{c("nan", math.NaN(), 0, 1)}, "nan", `"nan"`},
		{"infinite weight", 4, []Claimant{c("inf", math.Inf(1), 0, 1)}, "inf", `"inf"`},
		{"duplicate IDs", 4, []Claimant{c("v", 1, 0, 1), c("w", 1, 0, 1), c("v", 2, 0, 1)}, "w", `"v"`},
		{"empty ID", 4, []Claimant{c("a", 1, 0, 1), c("", 1, 0, 1)}, "a", "#1"},
		{"negative Held", 4, []Claimant{c("neg", 1, -1, 1)}, "neg", `"neg"`},
		{"negative Wants", 4, []Claimant{c("neg", 1, 0, -1)}, "neg", `"neg"`},
		{"Held > Wants", 4, []Claimant{c("hw", 1, 3, 2)}, "hw", `"hw"`},
		{"negative pool", -1, []Claimant{c("a", 1, 0, 1)}, "a", "-1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Shares(tt.units, tt.cs); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("Shares: err = %v, want ErrInvalid naming %s", err, tt.msg)
			}
			if _, err := Decide(tt.units, tt.cs, tt.id); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("Decide: err = %v, want ErrInvalid naming %s", err, tt.msg)
			}
		})
	}
	if _, err := Decide(4, []Claimant{c("a", 1, 0, 1)}, "ghost"); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), `"ghost"`) {
		t.Errorf("Decide(unknown id): err = %v, want ErrInvalid naming \"ghost\"", err)
	}
}

// randClaimants returns n claimants with small random weights, holdings and demands.
func randClaimants(r *rand.Rand, n int) []Claimant {
	cs := make([]Claimant, n)
	for i := range cs {
		var w float64
		switch r.IntN(4) {
		case 0:
			w = 0
		case 1:
			w = float64(1 + r.IntN(4)) // ties are common
		default:
			w = r.Float64() * 100
		}
		held := r.IntN(5)
		cs[i] = Claimant{ID: fmt.Sprintf("v%02d", r.IntN(100)*100+i), Weight: w, Held: held, Wants: held + r.IntN(7)}
	}
	return cs
}

func TestSharesProperties(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for iter := range 5000 {
		cs := randClaimants(r, 1+r.IntN(7))
		units := r.IntN(16)
		sh, err := Shares(units, cs)
		if err != nil {
			t.Fatal(err)
		}
		wants, sum := 0, 0
		for _, c := range cs {
			wants += c.Wants
			s := sh[c.ID]
			sum += s
			if s < 0 || s > c.Wants {
				t.Fatalf("#%d units %d %v: share of %s is %d, outside [0, Wants %d]", iter, units, cs, c.ID, s, c.Wants)
			}
		}
		if sum != min(units, wants) {
			t.Fatalf("#%d units %d %v: shares %v sum to %d, want %d", iter, units, cs, sh, sum, min(units, wants))
		}
		for _, a := range cs {
			for _, b := range cs {
				if a.Weight > b.Weight && sh[a.ID] < a.Wants && sh[a.ID] < sh[b.ID]-1 {
					t.Fatalf("#%d units %d %v: %s (weight %v, unmet demand) gets %d < %s (weight %v) gets %d",
						iter, units, cs, a.ID, a.Weight, sh[a.ID], b.ID, b.Weight, sh[b.ID])
				}
				if a.Weight > 0 && b.Weight == 0 && sh[a.ID] < a.Wants && sh[b.ID] > 0 {
					t.Fatalf("#%d units %d %v: weight-0 %s gets %d while %s has unmet demand", iter, units, cs, b.ID, sh[b.ID], a.ID)
				}
			}
		}
		// Deterministic: input order does not matter.
		shuffled := slices.Clone(cs)
		r.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		if sh2, _ := Shares(units, shuffled); !maps.Equal(sh, sh2) {
			t.Fatalf("#%d units %d: shares depend on input order: %v vs %v", iter, units, sh, sh2)
		}
		// Decide agrees with its own definition.
		x := cs[r.IntN(len(cs))]
		d, err := Decide(units, cs, x.ID)
		if err != nil {
			t.Fatal(err)
		}
		held := 0
		for _, c := range cs {
			held += c.Held
		}
		if d.Free != max(0, units-held) || d.OverShare != (x.Held >= d.Share && len(d.Starved) > 0) || d.Take != (d.Free > 0 && !d.OverShare) {
			t.Fatalf("#%d units %d %v: Decide(%s) = %+v is inconsistent", iter, units, cs, x.ID, d)
		}
		if !slices.IsSorted(d.Starved) || slices.Contains(d.Starved, x.ID) {
			t.Fatalf("#%d: Starved %v not sorted or contains the asker %s", iter, d.Starved, x.ID)
		}
	}
}

// Granting requests one by one through Decide, in any order, from an empty pool with fixed
// demands, ends exactly at Shares: nobody overshoots, nothing stays idle.
func TestDecideConvergesToShares(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for iter := range 2000 {
		cs := randClaimants(r, 1+r.IntN(6))
		for i := range cs {
			cs[i].Held = 0
		}
		units := r.IntN(16)
		want, err := Shares(units, cs)
		if err != nil {
			t.Fatal(err)
		}
		for {
			var asking []int
			for i, c := range cs {
				if c.Asking() {
					asking = append(asking, i)
				}
			}
			r.Shuffle(len(asking), func(i, j int) { asking[i], asking[j] = asking[j], asking[i] })
			took := false
			for _, i := range asking {
				d, err := Decide(units, cs, cs[i].ID)
				if err != nil {
					t.Fatal(err)
				}
				if d.Take {
					cs[i].Held++
					took = true
					break
				}
			}
			if !took {
				break
			}
		}
		for _, c := range cs {
			if c.Held != want[c.ID] {
				t.Fatalf("#%d units %d: granting via Decide ended at %v, Shares say %v", iter, units, cs, want)
			}
		}
	}
}

func BenchmarkDecide(b *testing.B) {
	r := rand.New(rand.NewPCG(5, 6))
	cs := make([]Claimant, 64)
	held := 0
	for i := range cs {
		h := r.IntN(4)
		held += h
		cs[i] = Claimant{ID: fmt.Sprintf("5F%046d", r.Uint64()), Weight: r.Float64() * 1e6, Held: h, Wants: h + r.IntN(4)}
	}
	units := held + 8
	id := cs[17].ID
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decide(units, cs, id); err != nil {
			b.Fatal(err)
		}
	}
}
