package fairshare

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
)

// ErrInvalid is wrapped by every error this package returns: the input was malformed
// (a caller bug, not a scheduling outcome).
var ErrInvalid = errors.New("fairshare: invalid input")

// Claimant is one party competing for a pool: a validator at a miner, a user at the facilitator.
type Claimant struct {
	ID     string  // unique, non-empty; ties are broken by ID ascending
	Weight float64 // stake; finite and ≥ 0; weight 0 gets only idle units
	Held   int     // units it holds (running) now; ≥ 0
	Wants  int     // units it would use now: Held + pending requests; ≥ Held
}

// Asking reports whether c wants more units than it holds.
func (c Claimant) Asking() bool { return c.Wants > c.Held }

// Decision is the answer to "may this claimant take one more unit now?".
type Decision struct {
	Take      bool     // a unit is free and taking it is fair (or nobody else needs it)
	Share     int      // the claimant's fair share of the pool
	Free      int      // units not held by anyone: max(0, units − Σ Held)
	OverShare bool     // it holds ≥ its share while another asking claimant is below theirs: may be declined busy (with Held 0 it has no running jobs to show as the excuse)
	Starved   []string // other asking claimants holding less than their share, by ID ascending
}

// Shares returns each claimant's fair share of units: weighted max-min fair, each capped by its
// Wants, integer (largest remainder, ties by ID), summing to min(units, Σ Wants). Every claimant
// has an entry. Σ Held may exceed units (a pool that shrank); it is not an error.
func Shares(units int, cs []Claimant) (map[string]int, error) {
	sh, _, err := compute(units, cs, -1)
	if err != nil {
		return nil, err
	}
	m := make(map[string]int, len(cs))
	for i, c := range cs {
		m[c.ID] = sh[i]
	}
	return m, nil
}

// Decide says whether claimant id may take one more unit of a pool of units now. The request
// being decided counts as pending: if id's Wants ≤ Held it is taken as Held+1. It is an error
// when id is not among cs.
func Decide(units int, cs []Claimant, id string) (Decision, error) {
	x := slices.IndexFunc(cs, func(c Claimant) bool { return c.ID == id })
	if x < 0 {
		return Decision{}, fmt.Errorf("%w: claimant %q is not in the list of %d claimants; pass every claimant of the pool, including the one asking", ErrInvalid, id, len(cs))
	}
	sh, order, err := compute(units, cs, x)
	if err != nil {
		return Decision{}, err
	}
	held := 0
	for _, c := range cs {
		held += c.Held
	}
	d := Decision{Share: sh[x], Free: max(0, units-held)}
	for _, i := range order {
		if c := cs[i]; i != x && c.Asking() && c.Held < sh[i] {
			d.Starved = append(d.Starved, c.ID)
		}
	}
	d.OverShare = cs[x].Held >= sh[x] && len(d.Starved) > 0
	d.Take = d.Free > 0 && !d.OverShare
	return d, nil
}

// entry is one claimant during water-filling.
type entry struct {
	idx   int     // index in the caller's slice
	id    string  // for tie-breaks
	w     float64 // weight, scaled to ≤ 1
	want  int     // cap
	share int     // result
	frac  float64 // fractional part of the real share; also the suffix weight sum while filling
}

// compute validates cs and returns shares indexed like cs plus the indices of cs in ID order.
// bump ≥ 0 names a claimant whose Wants is raised to at least Held+1.
func compute(units int, cs []Claimant, bump int) ([]int, []int, error) {
	if units < 0 {
		return nil, nil, fmt.Errorf("%w: pool size %d is negative", ErrInvalid, units)
	}
	maxW := 0.0
	for i, c := range cs {
		if err := validate(i, c); err != nil {
			return nil, nil, err
		}
		maxW = max(maxW, c.Weight)
	}
	order := make([]int, len(cs))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return strings.Compare(cs[a].ID, cs[b].ID) })
	for k := 1; k < len(order); k++ {
		if cs[order[k]].ID == cs[order[k-1]].ID {
			return nil, nil, fmt.Errorf("%w: claimant %q appears twice; IDs must be unique", ErrInvalid, cs[order[k]].ID)
		}
	}

	// Positive weights first (ID order), then weight 0; only claimants that want something.
	es := make([]entry, 0, len(cs))
	for _, i := range order {
		c := cs[i]
		want := c.Wants
		if i == bump {
			want = max(want, c.Held+1)
		}
		if want > 0 && c.Weight > 0 {
			es = append(es, entry{idx: i, id: c.ID, w: c.Weight / maxW, want: want})
		}
	}
	nPos := len(es)
	for _, i := range order {
		c := cs[i]
		want := c.Wants
		if i == bump {
			want = max(want, c.Held+1)
		}
		if want > 0 && c.Weight == 0 {
			es = append(es, entry{idx: i, id: c.ID, w: 1, want: want})
		}
	}
	left := give(units, es[:nPos])
	give(left, es[nPos:])

	sh := make([]int, len(cs))
	for _, e := range es {
		sh[e.idx] = e.share
	}
	return sh, order, nil
}

func validate(i int, c Claimant) error {
	if c.ID != "" && c.Weight >= 0 && !math.IsInf(c.Weight, 1) && c.Held >= 0 && c.Wants >= c.Held {
		return nil // NaN fails Weight >= 0
	}
	name := fmt.Sprintf("claimant %q", c.ID)
	switch {
	case c.ID == "":
		return fmt.Errorf("%w: claimant #%d has an empty ID", ErrInvalid, i)
	case math.IsNaN(c.Weight) || math.IsInf(c.Weight, 0):
		return fmt.Errorf("%w: %s: weight %v is not a finite number; pass its stake", ErrInvalid, name, c.Weight)
	case c.Weight < 0:
		return fmt.Errorf("%w: %s: weight %v is negative; stakes are ≥ 0", ErrInvalid, name, c.Weight)
	case c.Held < 0:
		return fmt.Errorf("%w: %s: holds %d units, a negative count", ErrInvalid, name, c.Held)
	case c.Wants < c.Held:
		return fmt.Errorf("%w: %s: wants %d units but holds %d; Wants is Held plus pending requests", ErrInvalid, name, c.Wants, c.Held)
	}
	return nil
}

// give hands out up to r units among es (in ID order, positive weights, want > 0) by weighted
// max-min fairness and returns the units left over. es ends up in an unspecified order.
func give(r int, es []entry) int {
	total := 0
	for _, e := range es {
		total += e.want
	}
	if total <= r {
		for k := range es {
			es[k].share = es[k].want
		}
		return r - total
	}
	// Water-filling: in order of want/weight, a claimant whose want fits under the current
	// level r/W gets all of it; the level only rises as they leave.
	slices.SortStableFunc(es, func(a, b entry) int {
		return cmp.Compare(float64(a.want)/a.w, float64(b.want)/b.w)
	})
	sum := 0.0
	for k := len(es) - 1; k >= 0; k-- {
		sum += es[k].w
		es[k].frac = sum // weight of es[k:], summed without cancellation
	}
	k := 0
	for ; k < len(es) && float64(es[k].want)*es[k].frac <= float64(r)*es[k].w; k++ {
		es[k].share = es[k].want
		r -= es[k].want
	}
	rest := es[k:]
	if len(rest) == 0 {
		return r // unreachable: Σ want > r
	}
	level := float64(r) / rest[0].frac
	for j := range rest {
		e := &rest[j]
		x := level * e.w
		fl := min(int(math.Floor(x)), e.want)
		e.share, e.frac = fl, x-float64(fl)
		r -= fl
	}
	// Largest remainder, ties by ID; then (only after float error) anyone still below its want.
	slices.SortFunc(rest, func(a, b entry) int {
		return cmp.Or(cmp.Compare(b.frac, a.frac), strings.Compare(a.id, b.id))
	})
	// Σ want over rest exceeds r (each wants more than the level), so this ends.
	for r > 0 {
		for j := range rest {
			if r > 0 && rest[j].share < rest[j].want {
				rest[j].share++
				r--
			}
		}
	}
	return 0
}
