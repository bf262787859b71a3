// Package fairshare is the stake-proportional, work-conserving sharing rule (mission rule 6):
// the miner uses it to share the executors of one hardware class among validators by stake,
// the facilitator to share capacity among users by stake.
//
// Model. A pool has units (executors). Each [Claimant] has a weight (its stake), the units it
// Held (running) and the units it Wants now (Held plus pending requests); it is asking when
// Wants > Held. Its share is the weighted max-min fair allocation (water-filling) of the pool
// among all claimants, each capped by its Wants: capacity a claimant does not want is handed to
// the others in proportion to their weights, so idle capacity is never wasted (work-conserving).
// A claimant with weight 0 gets only what the positive-weight claimants leave over (split equally
// among weight-0 claimants). Shares are integers (largest remainder, ties by ID ascending) and
// sum to min(units, Σ Wants). A claimant that is not asking is capped at what it holds; nothing
// is ever preempted, so Σ Held may exceed the pool (it shrank) and a claimant may hold more than
// its share.
//
// [Decide] answers the miner's question for one new request: may claimant X take one more unit
// now? Yes when a unit is free and X is below its share or no other asking claimant is below
// theirs. Otherwise, when X already holds its share while others are starved, OverShare is set:
// the miner may decline X as busy, X's own running jobs being the excuse.
//
// Everything here is pure and deterministic: no I/O, no goroutines, no clock, no logging.
package fairshare
