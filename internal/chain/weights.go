package chain

import (
	"cmp"
	"fmt"
	"math"
	"slices"
)

// U16Max is the largest weight value on chain.
const U16Max = math.MaxUint16

// QuantizeWeights converts scores to the chain's vector the way the Python
// SDK does: divide by the largest score, scale to 65535 and round half to
// even (Python's round), drop the entries that become 0, sort by uid.
// All-zero or empty scores give empty slices. A negative, NaN or infinite
// score is an error wrapping [ErrInvalidWeights].
func QuantizeWeights(weights map[UID]float64) ([]UID, []uint16, error) {
	var maxW float64
	for uid, w := range weights {
		if math.IsNaN(w) || math.IsInf(w, 0) || w < 0 {
			return nil, nil, fmt.Errorf("%w (uid %d has %v)", ErrInvalidWeights, uid, w)
		}
		maxW = max(maxW, w)
	}
	if maxW == 0 {
		return []UID{}, []uint16{}, nil
	}
	type pair struct {
		uid UID
		v   uint16
	}
	pairs := make([]pair, 0, len(weights))
	for uid, w := range weights {
		v := math.RoundToEven(w / maxW * U16Max)
		if v <= 0 {
			continue
		}
		pairs = append(pairs, pair{uid, uint16(min(v, U16Max))})
	}
	slices.SortFunc(pairs, func(a, b pair) int { return cmp.Compare(a.uid, b.uid) })
	uids := make([]UID, len(pairs))
	vals := make([]uint16, len(pairs))
	for i, p := range pairs {
		uids[i], vals[i] = p.uid, p.v
	}
	return uids, vals, nil
}

// MinWeights returns how many non-zero weights the chain requires from a
// validator on a subnet of subnetN neurons: min(MinAllowedWeights, subnetN).
// (A pure self-weight is exempt on chain.)
func MinWeights(hp Hyperparams, subnetN int) int {
	return max(0, min(int(hp.MinAllowedWeights), subnetN))
}

// WithinMaxWeight reports whether the largest value's share of the sum is at
// most limit/65535: the chain's max_weight_limited check, done in exact
// integer arithmetic where the chain uses 32.32 fixed point (the two can
// differ only on the boundary). A limit of 65535 and an empty vector always
// pass. (A pure self-weight is exempt on chain.)
func WithinMaxWeight(values []uint16, limit uint16) bool {
	if limit == U16Max || len(values) == 0 {
		return true
	}
	var sum, top uint64
	for _, v := range values {
		sum += uint64(v)
		top = max(top, uint64(v))
	}
	if sum == 0 {
		return true
	}
	return top*U16Max <= uint64(limit)*sum
}

// NormalizeWeights quantises scores with [QuantizeWeights] and checks the
// result against the chain's rules for a subnet of subnetN neurons, so a
// backend fails before sending what the chain would reject: at least
// [MinWeights] entries ([ErrWeightVecLengthIsLow]) and the largest share
// within MaxWeightsLimit ([ErrMaxWeightExceeded]). It does not apply the
// chain's self-weight exemption; every backend uses it, so all agree.
func NormalizeWeights(weights map[UID]float64, hp Hyperparams, subnetN int) ([]UID, []uint16, error) {
	uids, vals, err := QuantizeWeights(weights)
	if err != nil {
		return nil, nil, err
	}
	if need := MinWeights(hp, subnetN); len(uids) < need {
		return nil, nil, fmt.Errorf("%w (%d non-zero weights, need %d)", ErrWeightVecLengthIsLow, len(uids), need)
	}
	if !WithinMaxWeight(vals, hp.MaxWeightsLimit) {
		return nil, nil, fmt.Errorf("%w (limit %d/65535)", ErrMaxWeightExceeded, hp.MaxWeightsLimit)
	}
	return uids, vals, nil
}
