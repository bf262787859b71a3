package chain

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// ErrBlockWentBackwards reports a refresh that returned an older block than the cache
// already holds: the node fell behind or a load balancer switched to a node at a lower
// height. The cache keeps the newer metagraph and takes the backend's answers again once
// they pass its block.
var ErrBlockWentBackwards = errors.New("chain: block went backwards: the backend returned an older block than it did before; " +
	"check that the node is synced and that requests do not alternate between nodes at different heights")

// Defaults of [CacheConfig].
const (
	DefaultCacheHistory = 64
	// defaultBlockTime is the chain's 12 s block time, used for staleness until the cache
	// has seen two blocks.
	defaultBlockTime = 12 * time.Second
	// staleBlocks is how many refresh periods may pass without a good refresh before the
	// cache calls itself stale.
	staleBlocks = 3
	// maxResubscribeDelay caps the pause before watching heads again when a backend closed
	// the stream on its own.
	maxResubscribeDelay = 30 * time.Second
)

// CacheConfig configures a [MetagraphCache].
type CacheConfig struct {
	Chain  Chain // required
	NetUID NetUID
	// Interval selects how the cache refreshes. 0: once per head from Chain.WatchHeads
	// (the embedded simulator, direct node access). > 0: poll Chain.Metagraph for the newest
	// block every Interval (remote backends such as Pylon, where one request returns the
	// head and its metagraph together).
	Interval time.Duration
	// History is the number of past blocks kept for At; 0 means DefaultCacheHistory.
	History int
	// StaleAfter is how old the last good refresh may get before Status reports the cache
	// stale. 0 means 3×Interval, or in WatchHeads mode 3× the block time observed between
	// refreshes (36 s until two blocks have been seen).
	StaleAfter time.Duration
	Logger     *slog.Logger     // nil means slog.Default()
	Now        func() time.Time // status timestamps; nil means time.Now
}

// MetagraphCache holds the newest metagraph of one subnet for every reader in a process, so
// that no job waits on a chain call: reads are lock-free loads of an immutable snapshot
// built at refresh time, and a failing backend leaves the last good snapshot in place.
//
// Create it with [NewMetagraphCache], keep it fresh with [MetagraphCache.Run] (or
// [MetagraphCache.Refresh]) and read it from any goroutine. Everything it returns is shared
// with every other reader and must not be modified; use slices.Clone for a private copy.
type MetagraphCache struct {
	cfg     CacheConfig
	log     *slog.Logger
	now     func() time.Time
	history int

	cur       atomic.Pointer[cacheState] // nil until the first good refresh
	ready     chan struct{}              // closed at the first good refresh
	readyOnce sync.Once

	refreshMu sync.Mutex // one refresh at a time; guards failedSinceEntry
	// failedSinceEntry records a failed refresh since the newest history entry: the chain
	// may have changed in that time without the cache seeing it.
	failedSinceEntry bool

	mu sync.Mutex // guards st
	st statusFields
}

// cacheState is one published refresh; never modified once stored.
type cacheState struct {
	mg  *Metagraph
	idx *neuronIndex
	// history holds the refreshed blocks, oldest first; the last entry is mg.
	history []cacheEntry
}

// neuronIndex is what reads need precomputed; shared by consecutive states whose neurons
// are equal.
type neuronIndex struct {
	byHotkey   map[Hotkey]int // position in Metagraph.Neurons
	validators []Neuron
}

type cacheEntry struct {
	mg *Metagraph
	// bridged means the previous entry's metagraph also holds for every block between the
	// two: the neurons are equal and no refresh failed in between.
	bridged bool
}

type statusFields struct {
	refreshedAt  time.Time
	lastErr      error
	failingSince time.Time
	blockTime    time.Duration // observed between the last two blocks; 0 until then
}

// CacheStatus says how fresh a [MetagraphCache] is.
type CacheStatus struct {
	// Block is the newest block the cache holds; 0 before the first good refresh.
	Block uint64
	// RefreshedAt is when a refresh last succeeded (a refresh that found the same block
	// counts: the backend confirmed the cache is current); zero before the first.
	RefreshedAt time.Time
	// Stale is true when RefreshedAt is older than CacheConfig.StaleAfter, or there has
	// been no good refresh yet.
	Stale bool
	// LastError is the error of the latest refresh; nil when it succeeded.
	LastError error
	// FailingSince is when the current run of failed refreshes began; zero when the latest
	// refresh succeeded.
	FailingSince time.Time
}

// MarshalJSON writes LastError as its text: an error value has no JSON form of its own, and
// the status travels over the roles' status sockets.
func (s CacheStatus) MarshalJSON() ([]byte, error) {
	type plain CacheStatus
	return json.Marshal(struct {
		plain
		LastError string `json:",omitempty"`
	}{plain(s), ErrorText(s.LastError)})
}

// UnmarshalJSON reads what MarshalJSON writes; LastError comes back as an error with the
// same text.
func (s *CacheStatus) UnmarshalJSON(b []byte) error {
	type plain CacheStatus
	var v struct {
		plain
		LastError string
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*s = CacheStatus(v.plain)
	s.LastError = TextError(v.LastError)
	return nil
}

// ErrorText is err's text, "" for nil.
func ErrorText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// TextError is an error with text s, nil for "": the inverse of ErrorText, for errors that
// crossed a process boundary as text.
func TextError(s string) error {
	if s == "" {
		return nil
	}
	return errors.New(s)
}

// NewMetagraphCache returns an empty cache; it reads nothing until Refresh or Run.
func NewMetagraphCache(cfg CacheConfig) (*MetagraphCache, error) {
	switch {
	case cfg.Chain == nil:
		return nil, errors.New("chain: metagraph cache: Chain is required")
	case cfg.Interval < 0:
		return nil, fmt.Errorf("chain: metagraph cache: Interval %v is negative; use 0 to refresh on every head or a positive poll interval", cfg.Interval)
	case cfg.History < 0:
		return nil, fmt.Errorf("chain: metagraph cache: History %d is negative; use 0 for the default of %d blocks", cfg.History, DefaultCacheHistory)
	case cfg.StaleAfter < 0:
		return nil, fmt.Errorf("chain: metagraph cache: StaleAfter %v is negative; use 0 for the default", cfg.StaleAfter)
	}
	c := &MetagraphCache{
		cfg:     cfg,
		log:     cmp.Or(cfg.Logger, slog.Default()).With("netuid", cfg.NetUID),
		now:     cfg.Now,
		history: cmp.Or(cfg.History, DefaultCacheHistory),
		ready:   make(chan struct{}),
	}
	if c.now == nil {
		c.now = time.Now
	}
	return c, nil
}

// Latest returns the newest good metagraph, or nil before the first refresh. It is shared
// by every reader: do not modify it.
func (c *MetagraphCache) Latest() *Metagraph {
	if s := c.cur.Load(); s != nil {
		return s.mg
	}
	return nil
}

// Neuron returns the neuron registered with hotkey h in the newest metagraph. It reports
// false for an unregistered hotkey and before the first refresh; Latest() == nil tells the
// two apart.
func (c *MetagraphCache) Neuron(h Hotkey) (Neuron, bool) {
	s := c.cur.Load()
	if s == nil {
		return Neuron{}, false
	}
	i, ok := s.idx.byHotkey[h]
	if !ok {
		return Neuron{}, false
	}
	return s.mg.Neurons[i], true
}

// Validators returns the newest metagraph's validators as [Metagraph.Validators] orders
// them; nil before the first refresh. The slice is shared: do not modify it.
func (c *MetagraphCache) Validators() []Neuron {
	if s := c.cur.Load(); s != nil {
		return s.idx.validators
	}
	return nil
}

// At returns the metagraph in effect at block, as far as the cache can vouch for it:
//   - a block a refresh returned: that refresh's metagraph;
//   - a block between two consecutive refreshes (blocks the cache did not see, because it
//     polls or fell behind): the earlier refresh's metagraph, whose Block is then earlier
//     than block, but only when the later refresh found the very same neurons and no
//     refresh failed in between. Otherwise the neurons changed at some block the cache
//     cannot name, and At reports false rather than guess.
//
// Blocks older than the history, newer than the latest refresh or before the first one
// report false; read those from the Chain (Metagraph with a block number), off the hot
// path. The bridge misses a change that was undone between two refreshes (stake up and down
// again); with refreshes every block there is nothing to bridge.
func (c *MetagraphCache) At(block uint64) (*Metagraph, bool) {
	s := c.cur.Load()
	if s == nil {
		return nil, false
	}
	h := s.history
	i, found := slices.BinarySearchFunc(h, block, func(e cacheEntry, b uint64) int { return cmp.Compare(e.mg.Block.Number, b) })
	switch {
	case found:
		return h[i].mg, true
	case i > 0 && i < len(h) && h[i].bridged:
		return h[i-1].mg, true
	}
	return nil, false
}

// Status reports how fresh the cache is.
func (c *MetagraphCache) Status() CacheStatus {
	var block uint64
	if mg := c.Latest(); mg != nil {
		block = mg.Block.Number
	}
	c.mu.Lock()
	st := c.st
	c.mu.Unlock()
	return CacheStatus{
		Block:        block,
		RefreshedAt:  st.refreshedAt,
		Stale:        st.refreshedAt.IsZero() || c.now().Sub(st.refreshedAt) > c.staleAfter(st.blockTime),
		LastError:    st.lastErr,
		FailingSince: st.failingSince,
	}
}

func (c *MetagraphCache) staleAfter(blockTime time.Duration) time.Duration {
	switch {
	case c.cfg.StaleAfter > 0:
		return c.cfg.StaleAfter
	case c.cfg.Interval > 0:
		return staleBlocks * c.cfg.Interval
	}
	return staleBlocks * cmp.Or(blockTime, defaultBlockTime)
}

// Wait blocks until the cache holds its first metagraph, for a role's start-up, or until
// ctx is done.
func (c *MetagraphCache) Wait(ctx context.Context) error {
	select {
	case <-c.ready:
		return nil
	default: // a ready cache answers even on a done ctx, which select alone would not promise
	}
	select {
	case <-c.ready:
		return nil
	case <-ctx.Done():
		err := fmt.Errorf("chain: no metagraph of netuid %d yet: %w", c.cfg.NetUID, context.Cause(ctx))
		if last := c.Status().LastError; last != nil {
			err = fmt.Errorf("%w; last refresh: %w", err, last)
		}
		return err
	}
}

// Refresh reads the newest metagraph from the Chain now. On failure the cache keeps serving
// what it has, records the error in Status and logs the first failure of a run (and the
// recovery); the error is also returned. Refreshes are serialised; reads never wait for one.
func (c *MetagraphCache) Refresh(ctx context.Context) error {
	c.refreshMu.Lock()
	defer c.refreshMu.Unlock()
	mg, err := c.cfg.Chain.Metagraph(ctx, c.cfg.NetUID, 0)
	if err == nil && mg == nil {
		err = errors.New("chain: the backend returned no metagraph and no error; this is a bug in the backend")
	}
	if err != nil {
		if ctx.Err() != nil {
			return err // the caller gave up; the backend is not to blame
		}
		err = fmt.Errorf("chain: metagraph refresh of netuid %d: %w", c.cfg.NetUID, err)
		c.failed(err)
		return err
	}
	return c.accept(mg)
}

// accept publishes mg unless it is the block the cache already holds or an older one.
// Called with refreshMu held.
func (c *MetagraphCache) accept(mg *Metagraph) error {
	old := c.cur.Load()
	if old != nil {
		have, got := old.mg.Block.Number, mg.Block.Number
		if got < have {
			err := fmt.Errorf("%w (block %d after block %d; keeping block %d)", ErrBlockWentBackwards, got, have, have)
			c.failed(err)
			return err
		}
		if got == have {
			c.succeeded(old, nil)
			return nil
		}
	}
	next := &cacheState{mg: mg}
	bridged := false
	if old != nil && slices.Equal(old.mg.Neurons, mg.Neurons) {
		// Unchanged neurons (the common case between epochs) share the older copy and its
		// index, so a quiet chain costs one comparison per block.
		mg.Neurons = old.mg.Neurons
		next.idx = old.idx
		bridged = !c.failedSinceEntry
	} else {
		next.idx = buildIndex(mg)
	}
	var prev []cacheEntry
	if old != nil {
		prev = old.history[max(0, len(old.history)-(c.history-1)):]
	}
	next.history = append(append(make([]cacheEntry, 0, len(prev)+1), prev...), cacheEntry{mg: mg, bridged: bridged})
	c.cur.Store(next)
	c.failedSinceEntry = false
	c.succeeded(old, mg)
	c.readyOnce.Do(func() { close(c.ready) })
	return nil
}

func buildIndex(mg *Metagraph) *neuronIndex {
	idx := &neuronIndex{byHotkey: make(map[Hotkey]int, len(mg.Neurons)), validators: mg.Validators()}
	for i, n := range mg.Neurons {
		if _, dup := idx.byHotkey[n.Hotkey]; !dup { // as ByHotkey: the first wins
			idx.byHotkey[n.Hotkey] = i
		}
	}
	return idx
}

// succeeded records a good refresh; mg is the new block's metagraph, nil when the block was
// the one the cache already held.
func (c *MetagraphCache) succeeded(old *cacheState, mg *Metagraph) {
	now := c.now()
	c.mu.Lock()
	down := c.st.failingSince
	c.st.refreshedAt, c.st.lastErr, c.st.failingSince = now, nil, time.Time{}
	if mg != nil && old != nil {
		if dt := mg.Block.Time.Sub(old.mg.Block.Time); dt > 0 && !old.mg.Block.Time.IsZero() {
			c.st.blockTime = dt / time.Duration(mg.Block.Number-old.mg.Block.Number)
		}
	}
	c.mu.Unlock()
	if !down.IsZero() {
		c.log.Info("metagraph refresh recovered", "block", c.Latest().Block.Number, "down_for", now.Sub(down).Round(time.Millisecond))
	}
}

// failed records a failed refresh and logs it when it starts a run of failures.
func (c *MetagraphCache) failed(err error) {
	c.failedSinceEntry = true
	now := c.now()
	c.mu.Lock()
	first := c.st.failingSince.IsZero()
	if first {
		c.st.failingSince = now
	}
	c.st.lastErr = err
	c.mu.Unlock()
	if !first {
		c.log.Debug("metagraph refresh still failing", "err", err)
		return
	}
	if mg := c.Latest(); mg != nil {
		c.log.Warn("metagraph refresh failing; serving the last good metagraph until it recovers",
			"serving_block", mg.Block.Number, "err", err)
	} else {
		c.log.Warn("metagraph refresh failing; no metagraph yet, so readers are refused until it recovers", "err", err)
	}
}

// Run keeps the cache fresh until ctx is done, then returns nil. It refreshes at once, then
// on every new head (Interval 0) or every Interval. Failures are logged and kept in Status;
// they never stop Run.
func (c *MetagraphCache) Run(ctx context.Context) error {
	if c.cfg.Interval > 0 {
		c.poll(ctx)
	} else {
		c.watch(ctx)
	}
	return nil
}

func (c *MetagraphCache) poll(ctx context.Context) {
	t := time.NewTicker(c.cfg.Interval)
	defer t.Stop()
	for {
		_ = c.Refresh(ctx) // logged and kept in Status
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (c *MetagraphCache) watch(ctx context.Context) {
	_ = c.Refresh(ctx)
	delay := time.Second
	for {
		heads := c.cfg.Chain.WatchHeads(ctx)
		for h := range heads {
			if ctx.Err() != nil {
				break
			}
			delay = time.Second
			h = newest(heads, h)
			if c.holds(h.Number) {
				continue // the initial refresh already read this head
			}
			_ = c.Refresh(ctx)
		}
		if ctx.Err() != nil {
			return
		}
		// The interface closes the stream only when ctx is done; a backend that dropped it
		// anyway is watched again after a pause, so the cache does not go silently stale.
		c.log.Warn("the chain backend closed its head stream; watching again", "after", delay)
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		delay = min(2*delay, maxResubscribeDelay)
	}
}

// newest drains heads that queued up while a refresh ran: one refresh reads them all.
func newest(heads <-chan Block, h Block) Block {
	for {
		select {
		case next, ok := <-heads:
			if !ok {
				return h
			}
			h = next
		default:
			return h
		}
	}
}

// holds reports whether the cache already has block n and its last refresh succeeded.
func (c *MetagraphCache) holds(n uint64) bool {
	s := c.cur.Load()
	if s == nil || s.mg.Block.Number != n {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.st.lastErr == nil
}
