// Package scoring is the points formula (mission rule 11) and the weights a validator sets
// from it once per tempo. It is pure: no I/O, no clock; the validator reads the worked
// seconds from its store (store.DB.WorkedSeconds), the other factors from where they live,
// and hands them to [Score].
//
// For each miner m and each executor class c it served in the scoring window:
//
//	product(m, c) = relative_value(c) × demand(c) × efficiency(m, c) × penalty(m, c) × worked_seconds(m, c)
//	points(m)     = Σ over c of product(m, c)          (summed over classes, in class-name order)
//	weight(m)     = round_half_even(points(m) / max_points × 65535)
//	share(m)      = points(m) / total_points
//
// where max_points and total_points are the largest and the sum of the points of the miners
// that get a weight (with a metagraph: the registered ones). The weight is what
// [chain.QuantizeWeights] computes, as the Bittensor SDK does (largest = 65535). The products
// are multiplied left to right in the order written above, so that anyone repeating the
// arithmetic in float64 gets the same bits; [WriteTable] prints every factor.
//
// Where each factor comes from:
//   - relative_value: the class's RelativeValue in the hardware class registry
//     (hwclass.Registry.RelativeValues; upstream's DYNAMIC_EXECUTOR_CLASS_WEIGHTS).
//   - demand: the validator's current demand multiplier of the class (mission rule 2:
//     rises with measured demand/supply, smoothed, bounded); 1 where none is measured.
//   - efficiency: locally_measured_efficiency_factor of the miner's class from the
//     validator's benchmarks (mission rules 8 and 9); 1 until the class is benchmarked.
//   - penalty: the miner's local class multiplier after declines it was not excused for
//     (mission rule 10; < 1 while a penalty decays); 1 without penalties.
//   - worked_seconds: the sum of worked_seconds of the countersigned WorkInterval receipts
//     (10-minute accounting, mission rule 4) of the miner and class whose timestamp is in
//     the scoring window.
package scoring

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/computehorde/horde/internal/chain"
	"github.com/computehorde/horde/internal/protocol"
)

// ErrBadFactor is wrapped by the errors of [Score] and [Assemble] for a factor that is
// NaN, infinite or negative, a missing relative value, or a row that names no miner or
// class or repeats one.
var ErrBadFactor = errors.New("scoring: bad factor")

// Factors are the inputs of the formula for one miner and one class.
type Factors struct {
	Miner string                 // the miner's hotkey (SS58)
	Class protocol.ExecutorClass // the executor class
	// RelativeValue is the class's relative value in the hardware class registry.
	RelativeValue float64
	// DemandMultiplier is the validator's demand multiplier of the class; 1 without one.
	DemandMultiplier float64
	// Efficiency is the miner's locally measured efficiency factor for the class; 1 until
	// the validator has benchmarked it.
	Efficiency float64
	// PenaltyMultiplier is the miner's penalty multiplier for the class; 1 without
	// penalties.
	PenaltyMultiplier float64
	// WorkedSeconds is the sum of worked_seconds of the miner's countersigned WorkInterval
	// receipts of the class in the scoring window.
	WorkedSeconds int64
}

// Product returns relative_value × demand × efficiency × penalty × worked_seconds,
// multiplied left to right in that order.
func (f Factors) Product() float64 {
	return f.RelativeValue * f.DemandMultiplier * f.Efficiency * f.PenaltyMultiplier * float64(f.WorkedSeconds)
}

// check returns an error wrapping ErrBadFactor for the first bad factor of f.
func (f Factors) check() error {
	if f.Miner == "" || f.Class == "" {
		return fmt.Errorf("%w: a row names no miner or no class (miner %q, class %q)", ErrBadFactor, f.Miner, f.Class)
	}
	for _, v := range []struct {
		name, source string
		v            float64
	}{
		{"relative_value", "the hardware class registry", f.RelativeValue},
		{"demand multiplier", "the class's demand measurement", f.DemandMultiplier},
		{"efficiency", "the miner's benchmarks", f.Efficiency},
		{"penalty multiplier", "the miner's penalties", f.PenaltyMultiplier},
	} {
		if math.IsNaN(v.v) || math.IsInf(v.v, 0) || v.v < 0 {
			return fmt.Errorf("%w: miner %s class %s: %s is %v; it must be a finite number >= 0 (check %s)",
				ErrBadFactor, f.Miner, f.Class, v.name, v.v, v.source)
		}
	}
	if f.WorkedSeconds < 0 {
		return fmt.Errorf("%w: miner %s class %s: worked_seconds is %d; it must be >= 0 (check the stored WorkInterval receipts)",
			ErrBadFactor, f.Miner, f.Class, f.WorkedSeconds)
	}
	if p := f.Product(); math.IsInf(p, 0) {
		return fmt.Errorf("%w: miner %s class %s: the product of the factors overflows float64", ErrBadFactor, f.Miner, f.Class)
	}
	return nil
}

// Inputs are what [Score] scores.
type Inputs struct {
	// Factors holds one row per (miner, class), in any order.
	Factors []Factors
	// Metagraph, when set, maps hotkeys to uids: only miners registered in it get a weight
	// (and count in max_points and total_points), and the Result carries the chain vector.
	// Without it every miner gets a weight keyed by its hotkey.
	Metagraph *chain.Metagraph
}

// Row is one (miner, class) line of the formula.
type Row struct {
	Factors
	Product float64 // Factors.Product()
}

// MinerScore is one miner's points and weight.
type MinerScore struct {
	Hotkey string
	Rows   []Row   // one per class, by class name
	Points float64 // Σ Rows[i].Product, in Rows order
	// Weighted is false for a miner that is not registered in the metagraph: it gets no
	// weight and does not count in max_points or total_points.
	Weighted bool
	// UID is the miner's uid; meaningful only when the Result has a metagraph and
	// Weighted is true.
	UID chain.UID
	// Share is Points / TotalPoints (0 without a weight or when TotalPoints is 0).
	Share float64
	// Weight is round_half_even(Points / MaxPoints × 65535): the u16 set on chain.
	Weight uint16
}

// Result is the scores of one window.
type Result struct {
	Miners []MinerScore // by hotkey
	// TotalPoints and MaxPoints are the sum and the largest of the points of the miners
	// with Weighted set.
	TotalPoints float64
	MaxPoints   float64
	// HasMetagraph is true when uids come from a metagraph; UIDs and Weights are then
	// the vector to set on chain (uid order, zero weights dropped), as chain.QuantizeWeights
	// returns it.
	HasMetagraph bool
	Block        uint64 // the metagraph's block, when HasMetagraph
	UIDs         []chain.UID
	Weights      []uint16
}

// WeightsByHotkey returns the non-zero weights keyed by miner hotkey.
func (r Result) WeightsByHotkey() map[string]uint16 {
	out := make(map[string]uint16, len(r.Miners))
	for _, m := range r.Miners {
		if m.Weight > 0 {
			out[m.Hotkey] = m.Weight
		}
	}
	return out
}

// Score applies the formula to in. The result is deterministic: miners by hotkey, rows by
// class name, sums in that order. A bad factor (NaN, infinite, negative), a row without a
// miner or class, or a (miner, class) given twice is an error wrapping [ErrBadFactor]
// that names the miner and the class.
func Score(in Inputs) (Result, error) {
	rows := make([]Row, len(in.Factors))
	for i, f := range in.Factors {
		if err := f.check(); err != nil {
			return Result{}, err
		}
		rows[i] = Row{Factors: f, Product: f.Product()}
	}
	slices.SortFunc(rows, func(a, b Row) int {
		return cmp.Or(cmp.Compare(a.Miner, b.Miner), cmp.Compare(a.Class, b.Class))
	})
	var res Result
	for i, r := range rows {
		if i > 0 && rows[i-1].Miner == r.Miner && rows[i-1].Class == r.Class {
			return Result{}, fmt.Errorf("%w: miner %s class %s is given twice; give one row per miner and class", ErrBadFactor, r.Miner, r.Class)
		}
		if i == 0 || rows[i-1].Miner != r.Miner {
			res.Miners = append(res.Miners, MinerScore{Hotkey: r.Miner})
		}
		m := &res.Miners[len(res.Miners)-1]
		m.Rows = append(m.Rows, r)
		m.Points += r.Product
	}

	var uidOf map[string]chain.UID
	if in.Metagraph != nil {
		res.HasMetagraph, res.Block = true, in.Metagraph.Block.Number
		uidOf = make(map[string]chain.UID, len(in.Metagraph.Neurons))
		for _, n := range in.Metagraph.Neurons {
			uidOf[string(n.Hotkey)] = n.UID
		}
	} else if len(res.Miners) > chain.U16Max+1 {
		return Result{}, fmt.Errorf("scoring: %d miners, more than a subnet's %d uids", len(res.Miners), chain.U16Max+1)
	}

	// Quantize with the chain's own function, over uids: the metagraph's, or the miners'
	// places in hotkey order.
	points := make(map[chain.UID]float64, len(res.Miners))
	byUID := make(map[chain.UID]*MinerScore, len(res.Miners))
	for i := range res.Miners {
		m := &res.Miners[i]
		uid := chain.UID(i)
		if uidOf != nil {
			var ok bool
			if uid, ok = uidOf[m.Hotkey]; !ok {
				continue
			}
			m.UID = uid
		}
		m.Weighted = true
		points[uid] = m.Points
		byUID[uid] = m
		res.TotalPoints += m.Points
		res.MaxPoints = max(res.MaxPoints, m.Points)
	}
	uids, weights, err := chain.QuantizeWeights(points)
	if err != nil {
		return Result{}, fmt.Errorf("scoring: %w", err)
	}
	for i, uid := range uids {
		byUID[uid].Weight = weights[i]
	}
	if res.TotalPoints > 0 {
		for i := range res.Miners {
			if res.Miners[i].Weighted {
				res.Miners[i].Share = res.Miners[i].Points / res.TotalPoints
			}
		}
	}
	if res.HasMetagraph {
		res.UIDs, res.Weights = uids, weights
	}
	return res, nil
}

// Work is one miner's worked seconds on one class in the window, as the store sums them.
type Work struct {
	Miner         string
	Class         protocol.ExecutorClass
	WorkedSeconds int64
}

// MinerClass keys the per-miner factors of [Sources].
type MinerClass struct {
	Miner string
	Class protocol.ExecutorClass
}

// Sources are the factors other than worked seconds, for [Assemble].
type Sources struct {
	// RelativeValues is each class's relative value (hwclass.Registry.RelativeValues). A
	// class worked on but missing here is an error.
	RelativeValues map[protocol.ExecutorClass]float64
	// Demand is each class's demand multiplier; a class missing here gets 1.
	Demand map[protocol.ExecutorClass]float64
	// Efficiency is each benchmarked (miner, class)'s efficiency factor; missing gets 1.
	Efficiency map[MinerClass]float64
	// Penalty is each penalised (miner, class)'s multiplier; missing gets 1.
	Penalty map[MinerClass]float64
}

// Assemble joins the worked seconds with the other factors into the rows of [Inputs], in
// the order of work. A class without a relative value is an error wrapping [ErrBadFactor].
func Assemble(work []Work, src Sources) ([]Factors, error) {
	out := make([]Factors, 0, len(work))
	for _, w := range work {
		rv, ok := src.RelativeValues[w.Class]
		if !ok {
			return nil, fmt.Errorf("%w: miner %s class %s: the class has no relative value; add it to the hardware class registry",
				ErrBadFactor, w.Miner, w.Class)
		}
		k := MinerClass{w.Miner, w.Class}
		out = append(out, Factors{
			Miner: w.Miner, Class: w.Class, WorkedSeconds: w.WorkedSeconds,
			RelativeValue:     rv,
			DemandMultiplier:  orOne(src.Demand, w.Class),
			Efficiency:        orOne(src.Efficiency, k),
			PenaltyMultiplier: orOne(src.Penalty, k),
		})
	}
	return out, nil
}

func orOne[K comparable](m map[K]float64, k K) float64 {
	if v, ok := m[k]; ok {
		return v
	}
	return 1
}
