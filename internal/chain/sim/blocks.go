package sim

import (
	"cmp"
	"context"
	"errors"
	"maps"
	"slices"
	"time"

	"github.com/computehorde/horde/internal/chain"
)

// Advance produces n blocks, running the epoch step at each epoch boundary,
// and returns the new head. Subscribers of WatchHeads receive each block.
func (s *Chain) Advance(n int) chain.Block {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		num := s.head.Number + 1
		start, _ := chain.EpochBounds(num, s.netuid, s.hp.Tempo)
		if start == num {
			s.epochStepLocked(num)
		}
		s.publishLocked(num)
	}
	return s.head
}

// epochStepLocked runs what the chain does at the epoch step of block num:
// reveal the commits that are due and hand out validator permits.
func (s *Chain) epochStepLocked(num uint64) {
	s.revealLocked(num)
	s.updatePermitsLocked()
}

// revealLocked applies the commits whose reveal block has come, in the order
// they were made. A commit that no longer passes the weight checks is
// dropped, as on chain; the reason is kept for RevealError.
func (s *Chain) revealLocked(num uint64) {
	kept := s.commits[:0]
	for _, c := range s.commits {
		if c.revealBlock > num {
			kept = append(kept, c)
			continue
		}
		s.dirty = true
		n, err := s.checkWeightsLocked(c.hotkey, c.uids, c.values, c.versionKey)
		if err != nil {
			s.revealErrs[c.hotkey] = err
			continue
		}
		delete(s.revealErrs, c.hotkey)
		n.weights = weightMap(c.uids, c.values)
	}
	clear(s.commits[len(kept):])
	s.commits = kept
}

// updatePermitsLocked gives permits to the top MaxValidators neurons by
// stake (ties to the lower uid), then applies pinned permits.
func (s *Chain) updatePermitsLocked() {
	var ranked []chain.UID
	for uid, n := range s.neurons {
		if n != nil {
			ranked = append(ranked, chain.UID(uid))
		}
	}
	slices.SortStableFunc(ranked, func(a, b chain.UID) int {
		return cmp.Compare(s.neurons[b].stake, s.neurons[a].stake)
	})
	for i, uid := range ranked {
		n := s.neurons[uid]
		permit := i < int(s.hp.MaxValidators)
		if n.permitOverride != nil {
			permit = *n.permitOverride
		}
		if n.permit != permit {
			n.permit = permit
			s.dirty = true
		}
	}
}

// publishLocked makes the pending state block num's state, records its
// snapshot and notifies subscribers.
func (s *Chain) publishLocked(num uint64) {
	s.head = s.blockAt(num)
	if s.dirty {
		s.pub = s.buildPublishedLocked()
		s.dirty = false
	}
	s.ring[num%uint64(len(s.ring))] = snapshot{block: s.head, neurons: s.pub.neurons}
	for sub := range s.subs {
		sub.push(s.head)
	}
}

func (s *Chain) buildPublishedLocked() published {
	p := published{
		hp:          s.hp,
		weights:     map[chain.Hotkey]map[chain.UID]uint16{},
		commitments: make(map[chain.Hotkey][]byte, len(s.commitments)),
	}
	for uid, n := range s.neurons {
		if n == nil {
			continue
		}
		p.neurons = append(p.neurons, chain.Neuron{
			UID:             chain.UID(uid),
			Hotkey:          n.hotkey,
			Coldkey:         n.coldkey,
			Active:          true,
			Axon:            n.axon,
			ValidatorPermit: n.permit,
			Stake:           n.stake,
			LastUpdate:      n.lastUpdate,
			RegisteredAt:    n.registeredAt,
		})
		if n.weights != nil {
			p.weights[n.hotkey] = maps.Clone(n.weights)
		}
	}
	for h, d := range s.commitments {
		p.commitments[h] = slices.Clone(d)
	}
	return p
}

// pendingBlockLocked is the block that the next write is included in.
func (s *Chain) pendingBlockLocked() uint64 { return s.head.Number + 1 }

// Clock makes the ticker that drives [Chain.Run]; tests pass one they tick by
// hand.
type Clock interface {
	NewTicker(d time.Duration) Ticker
}

// Ticker delivers ticks on C until stopped, like time.Ticker.
type Ticker interface {
	C() <-chan time.Time
	Stop()
}

type realClock struct{}

func (realClock) NewTicker(d time.Duration) Ticker { return realTicker{time.NewTicker(d)} }

type realTicker struct{ t *time.Ticker }

func (r realTicker) C() <-chan time.Time { return r.t.C }
func (r realTicker) Stop()               { r.t.Stop() }

// Run produces one block per BlockTime, on the genesis Clock, until ctx is
// done; then it returns nil. Only one Run may be active at a time.
func (s *Chain) Run(ctx context.Context) error {
	s.mu.Lock()
	if s.running {
		s.mu.Unlock()
		return errors.New("sim: Run is already running on this simulator; call it once")
	}
	s.running = true
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.running = false
		s.mu.Unlock()
	}()
	t := s.clock.NewTicker(s.blockTime)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C():
			s.Advance(1)
		}
	}
}

// subscriber is one WatchHeads channel.
type subscriber struct{ ch chan chain.Block }

// push sends b without blocking, dropping the oldest queued block when the
// reader is behind. Called with s.mu held, which also guards close.
func (sub *subscriber) push(b chain.Block) {
	for {
		select {
		case sub.ch <- b:
			return
		default:
		}
		select {
		case <-sub.ch:
		default:
		}
	}
}

// watchBuffer is the number of heads a slow WatchHeads reader may fall
// behind before it misses blocks.
const watchBuffer = 16

// WatchHeads returns a channel that receives the current head at once and
// then every new block; it is closed when ctx is done. A reader more than 16
// blocks behind misses the oldest ones but always gets the newest.
func (s *Chain) WatchHeads(ctx context.Context) <-chan chain.Block {
	sub := &subscriber{ch: make(chan chain.Block, watchBuffer)}
	s.mu.Lock()
	sub.push(s.head)
	s.subs[sub] = struct{}{}
	s.mu.Unlock()
	context.AfterFunc(ctx, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		delete(s.subs, sub)
		close(sub.ch)
	})
	return sub.ch
}
