package validator

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/computehorde/horde/internal/chain"
	"github.com/computehorde/horde/internal/hwclass"
	"github.com/computehorde/horde/internal/protocol"
	"github.com/computehorde/horde/internal/scoring"
	"github.com/computehorde/horde/internal/store"
)

// DefaultScoreWindow is the stretch of countersigned work each tempo's weights reward: one
// mainnet tempo (360 blocks of 12 s).
const DefaultScoreWindow = 72 * time.Minute

// ErrNoWork reports a scoring window in which no registered miner has countersigned work:
// there are no weights to set.
var ErrNoWork = errors.New("validator: no countersigned work in the scoring window; no weights to set")

// Scores applies the points formula to the countersigned work of the window ending at now.
// Penalties come from the declines the validator judged, demand multipliers from the jobs
// asked of it, efficiency factors from its benchmarks (1 until a miner is benchmarked).
func (v *Validator) Scores(ctx context.Context, now time.Time) (scoring.Result, error) {
	return scoreWork(ctx, v.cfg.Store, now.Add(-v.scoreWindow()), now, scoring.Sources{
		RelativeValues: v.cfg.Classes.RelativeValues(),
		Demand:         v.demand.multipliers(now, v.supply),
		Efficiency:     v.efficiency.snapshot(),
		Penalty:        v.penalties.snapshot(now, v.penaltyHalfLife()),
	}, v.cfg.Metagraph.Latest())
}

// scoreWork applies the points formula to the countersigned work stored between from and to.
func scoreWork(ctx context.Context, db *store.DB, from, to time.Time, src scoring.Sources, mg *chain.Metagraph) (scoring.Result, error) {
	totals, err := db.WorkedSeconds(ctx, from, to)
	if err != nil {
		return scoring.Result{}, err
	}
	work := make([]scoring.Work, 0, len(totals))
	for _, t := range totals {
		work = append(work, scoring.Work{Miner: t.MinerHotkey, Class: protocol.ExecutorClass(t.ExecutorClass), WorkedSeconds: t.WorkedSeconds})
	}
	factors, err := scoring.Assemble(work, src)
	if err != nil {
		return scoring.Result{}, err
	}
	return scoring.Score(scoring.Inputs{Factors: factors, Metagraph: mg})
}

// StoredScores is Scores from the store alone, for when the validator is not running: the
// countersigned work of the window ending at now, with the factors of the books the
// validator with hotkey last saved (penalties recovered to now at halfLife; zero means
// DefaultPenaltyHalfLife). savedAt is when they were saved, zero when there were none (every
// factor but the relative value is then 1). Weights are keyed by hotkey: no metagraph.
func StoredScores(ctx context.Context, db *store.DB, classes *hwclass.Registry, hotkey string, window, halfLife time.Duration, now time.Time) (r scoring.Result, savedAt time.Time, err error) {
	if classes == nil {
		classes = hwclass.Default()
	}
	if halfLife <= 0 {
		halfLife = DefaultPenaltyHalfLife
	}
	var b books
	switch err := db.GetState(ctx, (&Validator{hotkey: hotkey}).stateName(), &b); {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		return scoring.Result{}, time.Time{}, err
	default:
		if err := b.check(); err != nil {
			return scoring.Result{}, time.Time{}, fmt.Errorf("validator: books saved at %s: %w", b.SavedAt.Format(time.RFC3339), err)
		}
	}
	src := scoring.Sources{RelativeValues: classes.RelativeValues(), Demand: b.Demand,
		Efficiency: map[scoring.MinerClass]float64{}, Penalty: map[scoring.MinerClass]float64{}}
	for _, e := range b.Efficiency {
		src.Efficiency[scoring.MinerClass{Miner: e.Miner, Class: e.Class}] = e.Factor
	}
	for _, p := range b.Penalties {
		if v := (penalty{value: p.Value, at: p.At}).current(now, halfLife); v < 1-1e-9 {
			src.Penalty[scoring.MinerClass{Miner: p.Miner, Class: p.Class}] = v
		}
	}
	r, err = scoreWork(ctx, db, now.Add(-window), now, src, nil)
	return r, b.SavedAt, err
}

func (v *Validator) scoreWindow() time.Duration {
	if v.cfg.ScoreWindow > 0 {
		return v.cfg.ScoreWindow
	}
	return DefaultScoreWindow
}

// SetWeights scores the window ending now and sets the weights on chain, retrying
// transient failures until block until (the end of the epoch).
func (v *Validator) SetWeights(ctx context.Context, until uint64) (scoring.Result, chain.WeightsReceipt, error) {
	r, err := v.Scores(ctx, v.cfg.Clock.Now())
	if err != nil {
		return r, chain.WeightsReceipt{}, err
	}
	weights := map[chain.Hotkey]float64{}
	for h, w := range r.WeightsByHotkey() {
		weights[chain.Hotkey(h)] = float64(w)
	}
	if len(weights) == 0 {
		return r, chain.WeightsReceipt{}, ErrNoWork
	}
	rec, err := chain.SubmitWeights(ctx, chain.WeightsTask{
		Chain: v.cfg.Chain, Hotkey: chain.Hotkey(v.hotkey), NetUID: v.cfg.NetUID, Weights: weights, Until: until,
		Logger: v.log,
	})
	return r, rec, err
}

// RunWeights sets weights once per tempo until ctx ends: at the first head of every epoch
// it scores the window and sets the weights, retrying until that epoch ends. It returns nil
// when ctx ends.
func (v *Validator) RunWeights(ctx context.Context) error {
	last := uint64(0)
	first := true
	for h := range v.cfg.Chain.WatchHeads(ctx) {
		hp, err := v.cfg.Chain.Hyperparams(ctx, v.cfg.NetUID)
		if err != nil {
			v.log.Warn("cannot read the tempo; weights wait for the next head", "err", err)
			continue
		}
		idx := chain.EpochIndex(h.Number, v.cfg.NetUID, hp.Tempo)
		if !first && idx == last {
			continue
		}
		first, last = false, idx
		_, end := chain.EpochBounds(h.Number, v.cfg.NetUID, hp.Tempo)
		r, rec, err := v.SetWeights(ctx, end)
		switch {
		case errors.Is(err, ErrNoWork):
			v.log.Info("no weights this tempo: no countersigned work in the window", "block", h.Number)
		case err != nil:
			v.log.Warn("weights not set this tempo", "block", h.Number, "epoch_end", end, "err", err)
		default:
			v.log.Info("weights set for the tempo", "block", rec.Block, "miners", len(r.WeightsByHotkey()),
				"total_points", fmt.Sprint(r.TotalPoints))
		}
	}
	return nil
}
