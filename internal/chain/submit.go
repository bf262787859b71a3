package chain

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/computehorde/horde/internal/clock"
)

// ErrWindowClosed reports weights that did not land before the end of the window they were
// computed for; they are dropped, and the next window's weights replace them.
var ErrWindowClosed = errors.New("chain: the window for these weights closed before they landed; " +
	"they are dropped and the next epoch's weights replace them")

// WeightsTask is one window's weights owed to the chain.
type WeightsTask struct {
	Chain      Chain
	Hotkey     Hotkey
	NetUID     NetUID
	Weights    map[Hotkey]float64
	VersionKey uint64
	// Until is the first block at which these weights are no longer worth setting: the
	// end of the epoch they were computed for. 0 means no limit but ctx.
	Until uint64
	// Backoff is the first wait between tries, doubling up to MaxBackoff; zero means 1 s
	// and 12 s (a block).
	Backoff, MaxBackoff time.Duration
	Logger              *slog.Logger
}

// SubmitWeights sets the task's weights and keeps at it until they land, the chain refuses
// them for a reason time will not change, or the window closes ([ErrWindowClosed],
// wrapping the last failure). Transient failures (backend down, rate limits) are retried
// with backoff; on a backend that only schedules weights (a Pending receipt), it follows
// them through [WeightsStatuser] where the backend has it and sends them again if the
// backend lost them. The outcome is logged either way, so nothing owed is dropped
// silently.
func SubmitWeights(ctx context.Context, t WeightsTask) (WeightsReceipt, error) {
	log := t.Logger
	if log == nil {
		log = slog.Default()
	}
	log = log.With("hotkey", t.Hotkey, "netuid", t.NetUID, "until_block", t.Until, "weights", len(t.Weights))
	pause := newBackoff(t.Backoff, t.MaxBackoff).pause(ctx)
	var lastErr error
	fail := func(err error) (WeightsReceipt, error) {
		log.Error("weights not set", "err", err)
		return WeightsReceipt{}, err
	}
	open := func() (bool, error) { return windowOpen(ctx, t.Chain, t.Until) }
	warned := false
	retryLater := func(err error) {
		lastErr = err
		if !warned {
			log.Warn("weights not set yet; retrying until they land or the window closes", "err", err)
			warned = true
		}
	}
	for {
		if err := ctx.Err(); err != nil {
			return fail(fmt.Errorf("chain: weights abandoned: %w (last failure: %v)", context.Cause(ctx), lastErr))
		}
		if ok, err := open(); !ok {
			return fail(fmt.Errorf("%w (last failure: %v)", ErrWindowClosed, lastErr))
		} else if err != nil {
			retryLater(err)
			_ = pause() // a cancelled ctx ends the loop at the top
			continue
		}
		r, err := t.Chain.SetWeights(ctx, t.Hotkey, t.NetUID, t.Weights, t.VersionKey)
		if err != nil {
			if !Retryable(err) {
				return fail(err)
			}
			retryLater(err)
			_ = pause() // a cancelled ctx ends the loop at the top
			continue
		}
		if !r.Pending {
			log.Info("weights set", "block", r.Block, "commit_reveal", r.CommitReveal, "reveal_block", r.RevealBlock, "unknown_hotkeys", len(r.Unknown))
			return r, nil
		}
		sc, ok := t.Chain.(WeightsStatuser)
		if !ok {
			log.Info("weights scheduled with the backend, which cannot confirm them", "block", r.Block)
			return r, nil
		}
		resend, err := follow(ctx, sc, r, open, retryLater, pause)
		switch {
		case err == nil && !resend:
			log.Info("weights landed", "block", r.Block, "commit_reveal", r.CommitReveal, "reveal_block", r.RevealBlock, "unknown_hotkeys", len(r.Unknown))
			return r, nil
		case errors.Is(err, ErrNotSupported):
			log.Info("weights scheduled with the backend, whose version cannot confirm them", "block", r.Block)
			return r, nil
		case errors.Is(err, ErrWindowClosed) && lastErr != nil:
			return fail(fmt.Errorf("%w (last failure: %v)", err, lastErr))
		case err != nil:
			return fail(err)
		}
		log.Warn("the backend lost the scheduled weights; sending them again", "block", r.Block)
	}
}

// follow polls the backend's status of scheduled weights until they landed (false, nil),
// the backend has no record of them (true, nil), or it gave up or the window closed.
func follow(ctx context.Context, sc WeightsStatuser, r WeightsReceipt, open func() (bool, error),
	retryLater func(error), pause func() error) (resend bool, err error) {
	for {
		st, err := sc.WeightsStatus(ctx, r.Block)
		switch {
		case errors.Is(err, ErrNotSupported):
			return false, err
		case err != nil:
			retryLater(err)
		case st.Submitted:
			return false, nil
		case st.Done:
			why := st.Err
			if why == nil {
				why = errors.New("no reason given")
			}
			return false, fmt.Errorf("chain: the backend gave up on the weights scheduled at block %d: %w", r.Block, why)
		case !st.Scheduled:
			return true, nil
		case st.Err != nil:
			retryLater(st.Err) // the backend keeps trying; say why it has not landed yet
		}
		if err := pause(); err != nil {
			return false, fmt.Errorf("chain: weights abandoned while waiting for them to land: %w", err)
		}
		if ok, _ := open(); !ok {
			return false, fmt.Errorf("%w (scheduled at block %d, still not submitted)", ErrWindowClosed, r.Block)
		}
	}
}

// backoff is the wait between tries of a write owed to the chain: it doubles from the first
// wait (zero means 1 s) up to the cap (zero means 12 s, a block).
type backoff struct{ wait, max time.Duration }

func newBackoff(first, limit time.Duration) *backoff {
	if first <= 0 {
		first = time.Second
	}
	if limit <= 0 {
		limit = 12 * time.Second
	}
	return &backoff{wait: first, max: max(limit, first)}
}

// pause returns a function that waits the current wait, or until ctx ends, and doubles it.
func (b *backoff) pause(ctx context.Context) func() error {
	return func() error {
		err := clock.Sleep(ctx, b.wait)
		b.wait = min(b.wait*2, b.max)
		return err
	}
}

// windowOpen reports whether a write made now can still land before block until (0: no
// limit); when the head cannot be read it says open, with the error, so callers keep
// trying until the backend answers.
func windowOpen(ctx context.Context, c Chain, until uint64) (bool, error) {
	if until == 0 {
		return true, nil
	}
	head, err := c.Head(ctx)
	if err != nil {
		return true, err
	}
	return head.Number+1 < until, nil
}

// CommitmentTask is a commitment owed to the chain, such as a miner's manifest.
type CommitmentTask struct {
	Chain  Chain
	Hotkey Hotkey
	NetUID NetUID
	Data   []byte
	// Until is the first block at which the commitment is no longer worth setting; 0
	// means no limit but ctx.
	Until uint64
	// Backoff and MaxBackoff are as in WeightsTask.
	Backoff, MaxBackoff time.Duration
	Logger              *slog.Logger
}

// SubmitCommitment sets the task's commitment, retrying transient failures (backend down,
// rate limits) with backoff until it is accepted, the chain refuses it for a reason time
// will not change, ctx ends, or the window closes ([ErrWindowClosed]). The outcome is
// logged either way.
func SubmitCommitment(ctx context.Context, t CommitmentTask) error {
	log := t.Logger
	if log == nil {
		log = slog.Default()
	}
	log = log.With("hotkey", t.Hotkey, "netuid", t.NetUID, "bytes", len(t.Data))
	pause := newBackoff(t.Backoff, t.MaxBackoff).pause(ctx)
	var lastErr error
	fail := func(err error) error {
		log.Error("commitment not set", "err", err)
		return err
	}
	for {
		if err := ctx.Err(); err != nil {
			return fail(fmt.Errorf("chain: commitment abandoned: %w (last failure: %v)", context.Cause(ctx), lastErr))
		}
		ok, err := windowOpen(ctx, t.Chain, t.Until)
		if !ok {
			return fail(fmt.Errorf("%w (last failure: %v)", ErrWindowClosed, lastErr))
		}
		if err == nil {
			err = t.Chain.SetCommitment(ctx, t.Hotkey, t.NetUID, t.Data)
			if err == nil {
				log.Info("commitment set")
				return nil
			}
			if !Retryable(err) {
				return fail(err)
			}
		}
		if lastErr == nil {
			log.Warn("commitment not set yet; retrying until it lands", "err", err)
		}
		lastErr = err
		_ = pause() // a cancelled ctx ends the loop at the top
	}
}
