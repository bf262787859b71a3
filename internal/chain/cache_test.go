// The cache's tests run on the real simulator, which imports package chain, so they live in
// the external test package.
package chain_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"

	"github.com/computehorde/horde/internal/chain"
	"github.com/computehorde/horde/internal/chain/sim"
	"github.com/computehorde/horde/internal/syncbuf"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const netuid chain.NetUID = 12

func hotkey(i int) chain.Hotkey { return chain.Hotkey(fmt.Sprintf("5Hotkey%04d", i)) }

// newSim returns a simulated subnet of n neurons; the first quarter (at least one) hold
// validator permits by stake.
func newSim(tb testing.TB, n int, blockTime time.Duration) *sim.Chain {
	tb.Helper()
	g := sim.Genesis{NetUID: netuid, BlockTime: blockTime, MaxNeurons: max(n, 1)}
	hp := sim.DefaultHyperparams()
	hp.MaxValidators = uint16(max(n/4, 1))
	g.Hyperparams = hp
	for i := range n {
		g.Neurons = append(g.Neurons, sim.NeuronSpec{Hotkey: hotkey(i), Coldkey: "5Coldkey", Stake: uint64(n-i) * 1e9})
	}
	s, err := sim.New(g)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// fakeNow is a settable clock for the cache's status timestamps.
type fakeNow struct {
	mu sync.Mutex
	t  time.Time
}

func (f *fakeNow) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.t
}

func (f *fakeNow) Add(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.t = f.t.Add(d)
}

type fixture struct {
	sim   *sim.Chain
	cache *chain.MetagraphCache
	now   *fakeNow
	logs  *syncbuf.Buffer
}

func newFixture(t *testing.T, c chain.Chain, s *sim.Chain, tweak func(*chain.CacheConfig)) *fixture {
	t.Helper()
	f := &fixture{sim: s, now: &fakeNow{t: time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)}, logs: &syncbuf.Buffer{}}
	cfg := chain.CacheConfig{
		Chain: c, NetUID: netuid, Now: f.now.Now,
		Logger: slog.New(slog.NewTextHandler(f.logs, nil)),
	}
	if tweak != nil {
		tweak(&cfg)
	}
	var err error
	if f.cache, err = chain.NewMetagraphCache(cfg); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixture) refresh(t *testing.T) {
	t.Helper()
	if err := f.cache.Refresh(t.Context()); err != nil {
		t.Fatalf("Refresh: %v", err)
	}
}

func (f *fixture) wantBlock(t *testing.T, want uint64) {
	t.Helper()
	mg := f.cache.Latest()
	if mg == nil || mg.Block.Number != want {
		t.Fatalf("Latest() at block %v, want %d", blockOf(mg), want)
	}
	if st := f.cache.Status(); st.Block != want {
		t.Errorf("Status().Block = %d, want %d", st.Block, want)
	}
}

func blockOf(mg *chain.Metagraph) any {
	if mg == nil {
		return "nil"
	}
	return mg.Block.Number
}

func TestNewMetagraphCacheChecksConfig(t *testing.T) {
	s := newSim(t, 1, 0)
	for name, cfg := range map[string]chain.CacheConfig{
		"Chain is required":   {},
		"Interval":            {Chain: s, Interval: -time.Second},
		"History":             {Chain: s, History: -1},
		"StaleAfter":          {Chain: s, StaleAfter: -time.Second},
		"use 0 for the defau": {Chain: s, History: -5},
	} {
		if _, err := chain.NewMetagraphCache(cfg); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("NewMetagraphCache(%+v) = %v, want an error mentioning %q", cfg, err, name)
		}
	}
}

func TestCacheRefreshPerBlock(t *testing.T) {
	s := newSim(t, 8, 0)
	f := newFixture(t, s, s, nil)
	if f.cache.Latest() != nil || f.cache.Validators() != nil {
		t.Fatal("a new cache must be empty")
	}
	if _, ok := f.cache.Neuron(hotkey(0)); ok {
		t.Fatal("Neuron before the first refresh must report false")
	}
	if st := f.cache.Status(); !st.Stale || !st.RefreshedAt.IsZero() || st.LastError != nil {
		t.Fatalf("status before the first refresh = %+v, want stale with no error", st)
	}

	f.refresh(t)
	f.wantBlock(t, 0)
	n, ok := f.cache.Neuron(hotkey(3))
	if !ok || n.UID != 3 || n.Hotkey != hotkey(3) {
		t.Fatalf("Neuron(%s) = %+v, %v; want uid 3", hotkey(3), n, ok)
	}
	if _, ok := f.cache.Neuron("5Unknown"); ok {
		t.Error("Neuron of an unregistered hotkey must report false")
	}
	vs := f.cache.Validators()
	if len(vs) != 2 || vs[0].Hotkey != hotkey(0) || vs[1].Hotkey != hotkey(1) {
		t.Errorf("Validators() = %v, want the two top-staked neurons by stake", vs)
	}

	for want := uint64(1); want <= 3; want++ {
		s.Advance(1)
		f.refresh(t)
		f.wantBlock(t, want)
	}

	// The same block again changes nothing but confirms that the cache is current.
	before := f.cache.Latest()
	f.now.Add(time.Minute)
	f.refresh(t)
	if f.cache.Latest() != before {
		t.Error("a refresh that found the same block replaced the metagraph")
	}
	if st := f.cache.Status(); !st.RefreshedAt.Equal(f.now.Now()) || st.Stale {
		t.Errorf("status after a same-block refresh = %+v, want refreshed now and not stale", st)
	}
}

func TestCacheChangesAppearAtTheNextRefresh(t *testing.T) {
	s := newSim(t, 8, 0)
	f := newFixture(t, s, s, nil)
	f.refresh(t)

	if err := s.Deregister(hotkey(5)); err != nil {
		t.Fatal(err)
	}
	if err := s.SetStake(hotkey(6), 42); err != nil {
		t.Fatal(err)
	}
	s.Advance(1)
	if _, ok := f.cache.Neuron(hotkey(5)); !ok {
		t.Fatal("the cache changed before a refresh")
	}
	f.refresh(t)
	if _, ok := f.cache.Neuron(hotkey(5)); ok {
		t.Error("a deregistered hotkey is still in the cache after a refresh")
	}
	if n, ok := f.cache.Neuron(hotkey(6)); !ok || n.Stake != 42 {
		t.Errorf("Neuron(%s) = %+v, %v; want the new stake 42", hotkey(6), n, ok)
	}
	if n, ok := f.cache.Neuron(hotkey(7)); !ok || n.UID != 7 {
		t.Errorf("Neuron(%s) = %+v, %v; want uid 7 after the gap at uid 5", hotkey(7), n, ok)
	}
	if mg, ok := f.cache.At(0); !ok || len(mg.Neurons) != 8 {
		t.Errorf("At(0) = %v, %v; want the 8 neurons of block 0", mg, ok)
	}
}

func TestCacheAt(t *testing.T) {
	s := newSim(t, 4, 0)
	f := newFixture(t, s, s, func(c *chain.CacheConfig) { c.History = 6 })
	if _, ok := f.cache.At(0); ok {
		t.Fatal("At before the first refresh must report false")
	}
	f.refresh(t) // block 0
	s.Advance(1)
	f.refresh(t) // block 1

	// Blocks 2..3 unseen, nothing changed: block 1's metagraph holds for them.
	s.Advance(3)
	f.refresh(t) // block 4
	// Blocks 5..6 unseen, and a stake changed at block 5: the cache cannot tell which.
	// (The new stake keeps the ranking, so the epoch step at block 8 changes no permit.)
	if err := s.SetStake(hotkey(2), 2e9+7); err != nil {
		t.Fatal(err)
	}
	s.Advance(3)
	f.refresh(t) // block 7
	// Block 8 unseen because the refresh failed; the neurons did not change, but the cache
	// does not vouch for a block it missed through a failure.
	s.Advance(1)
	s.FailNext(sim.KindMetagraph, 1, nil)
	if err := f.cache.Refresh(t.Context()); err == nil {
		t.Fatal("Refresh with a failing backend succeeded")
	}
	s.Advance(1)
	f.refresh(t) // block 9

	for _, tc := range []struct {
		block uint64
		want  any // the block of the metagraph returned, or false
	}{
		{0, uint64(0)}, {1, uint64(1)}, {2, uint64(1)}, {3, uint64(1)}, {4, uint64(4)},
		{5, false}, {6, false}, {7, uint64(7)}, {8, false}, {9, uint64(9)}, {10, false},
	} {
		mg, ok := f.cache.At(tc.block)
		got := any(false)
		if ok {
			got = mg.Block.Number
		}
		if got != tc.want {
			t.Errorf("At(%d) = %v, want %v", tc.block, got, tc.want)
		}
	}
	if mg, _ := f.cache.At(9); mg != f.cache.Latest() {
		t.Error("At(latest block) is not Latest()")
	}

	// History keeps 6 refreshed blocks: after 10, 11 and 12, blocks 0 and 1 are gone, and
	// with them the bridge to 2..3.
	for range 3 {
		s.Advance(1)
		f.refresh(t)
	}
	for _, b := range []uint64{0, 1, 2, 3} {
		if _, ok := f.cache.At(b); ok {
			t.Errorf("At(%d) still answers after the block left the history", b)
		}
	}
	if _, ok := f.cache.At(4); !ok {
		t.Error("At(4) is within the history but reports false")
	}
}

func TestCacheBackendFailure(t *testing.T) {
	s := newSim(t, 4, 0)
	f := newFixture(t, s, s, func(c *chain.CacheConfig) { c.StaleAfter = time.Minute })
	f.refresh(t)
	s.Advance(1)

	s.FailNext(sim.KindMetagraph, 3, nil)
	start := f.now.Now()
	for range 3 {
		err := f.cache.Refresh(t.Context())
		if !errors.Is(err, chain.ErrUnavailable) {
			t.Fatalf("Refresh = %v, want ErrUnavailable", err)
		}
		f.now.Add(30 * time.Second)
	}
	f.wantBlock(t, 0) // the last good metagraph is still served
	if _, ok := f.cache.Neuron(hotkey(1)); !ok {
		t.Error("Neuron stopped answering while the backend fails")
	}
	st := f.cache.Status()
	if !st.Stale || !errors.Is(st.LastError, chain.ErrUnavailable) || !st.FailingSince.Equal(start) {
		t.Errorf("status while failing = %+v; want stale, ErrUnavailable, failing since %v", st, start)
	}
	if n := strings.Count(f.logs.String(), "metagraph refresh failing"); n != 1 {
		t.Errorf("logged the failure %d times, want once per outage:\n%s", n, f.logs)
	}

	f.refresh(t)
	f.wantBlock(t, 1)
	st = f.cache.Status()
	if st.Stale || st.LastError != nil || !st.FailingSince.IsZero() {
		t.Errorf("status after recovery = %+v; want fresh with no error", st)
	}
	if logs := f.logs.String(); !strings.Contains(logs, "metagraph refresh recovered") || !strings.Contains(logs, "down_for=1m30s") {
		t.Errorf("the recovery is not logged with how long the refresh was down:\n%s", logs)
	}
}

func TestCacheWaitReportsWhyItHasNothing(t *testing.T) {
	s := newSim(t, 1, 0)
	f := newFixture(t, s, s, nil)
	s.FailNext(sim.KindMetagraph, 1, nil)
	_ = f.cache.Refresh(t.Context())
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := f.cache.Wait(ctx); !errors.Is(err, context.Canceled) || !errors.Is(err, chain.ErrUnavailable) {
		t.Errorf("Wait = %v; want the cancellation and the last refresh error", err)
	}
	if !strings.Contains(f.logs.String(), "no metagraph yet") {
		t.Errorf("a failure before the first metagraph does not say that readers are refused:\n%s", f.logs)
	}
	f.refresh(t)
	if err := f.cache.Wait(ctx); err != nil {
		t.Errorf("Wait after a good refresh = %v, want nil even on a done context", err)
	}
}

// rewinding serves the metagraph of an older block when rewind is set, like a load
// balancer that switched to a node behind the others.
type rewinding struct {
	chain.Chain
	mu     sync.Mutex
	rewind *chain.Metagraph
}

func (r *rewinding) Metagraph(ctx context.Context, netuid chain.NetUID, at uint64) (*chain.Metagraph, error) {
	r.mu.Lock()
	mg := r.rewind
	r.mu.Unlock()
	if mg != nil {
		return mg, nil
	}
	return r.Chain.Metagraph(ctx, netuid, at)
}

func TestCacheBlockWentBackwards(t *testing.T) {
	s := newSim(t, 4, 0)
	r := &rewinding{Chain: s}
	f := newFixture(t, r, s, nil)
	s.Advance(2)
	old, err := s.Metagraph(t.Context(), netuid, 1)
	if err != nil {
		t.Fatal(err)
	}
	s.Advance(3)
	f.refresh(t)
	kept := f.cache.Latest()

	r.mu.Lock()
	r.rewind = old
	r.mu.Unlock()
	err = f.cache.Refresh(t.Context())
	if !errors.Is(err, chain.ErrBlockWentBackwards) || !strings.Contains(err.Error(), "block 1 after block 5") {
		t.Fatalf("Refresh = %v; want ErrBlockWentBackwards naming blocks 1 and 5", err)
	}
	if f.cache.Latest() != kept {
		t.Error("the cache took the older block")
	}
	if st := f.cache.Status(); !errors.Is(st.LastError, chain.ErrBlockWentBackwards) {
		t.Errorf("Status().LastError = %v, want ErrBlockWentBackwards", st.LastError)
	}
	if !strings.Contains(f.logs.String(), "block went backwards") {
		t.Errorf("the refused block is not logged:\n%s", f.logs)
	}

	r.mu.Lock()
	r.rewind = nil
	r.mu.Unlock()
	s.Advance(1)
	f.refresh(t)
	f.wantBlock(t, 6)
}

func TestCacheStaleAfterDefaults(t *testing.T) {
	t.Run("poll", func(t *testing.T) {
		s := newSim(t, 1, 0)
		f := newFixture(t, s, s, func(c *chain.CacheConfig) { c.Interval = 5 * time.Second })
		f.refresh(t)
		f.now.Add(15 * time.Second)
		if f.cache.Status().Stale {
			t.Error("stale at 3×Interval")
		}
		f.now.Add(time.Millisecond)
		if !f.cache.Status().Stale {
			t.Error("not stale after 3×Interval")
		}
	})
	t.Run("heads", func(t *testing.T) {
		s := newSim(t, 1, 2*time.Second)
		f := newFixture(t, s, s, nil)
		f.refresh(t)
		f.now.Add(30 * time.Second)
		if f.cache.Status().Stale {
			t.Error("stale before 36 s with no block time observed yet")
		}
		s.Advance(1)
		f.refresh(t) // observes the 2 s block time
		f.now.Add(6 * time.Second)
		if f.cache.Status().Stale {
			t.Error("stale at 3 observed block times")
		}
		f.now.Add(time.Millisecond)
		if !f.cache.Status().Stale {
			t.Error("not stale after 3 observed block times")
		}
	})
}

// runCache starts Run in the synctest bubble and returns a function that stops it and
// checks that it returned nil.
func runCache(t *testing.T, c *chain.MetagraphCache) (stop func()) {
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	return func() {
		t.Helper()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v, want nil after cancel", err)
		}
	}
}

func TestCacheRunOnHeads(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newSim(t, 4, 0)
		f := newFixture(t, s, s, nil)
		stop := runCache(t, f.cache)
		if err := f.cache.Wait(t.Context()); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		f.wantBlock(t, 0)
		for want := uint64(1); want <= 3; want++ {
			s.Advance(1)
			synctest.Wait()
			f.wantBlock(t, want)
		}
		s.Advance(20) // more than the head stream buffers: the cache reads the newest
		synctest.Wait()
		f.wantBlock(t, 23)
		stop()
	})
}

func TestCacheRunPolls(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newSim(t, 4, 0)
		f := newFixture(t, s, s, func(c *chain.CacheConfig) { c.Interval = time.Second })
		stop := runCache(t, f.cache)
		synctest.Wait()
		f.wantBlock(t, 0)
		s.Advance(2)
		synctest.Wait()
		f.wantBlock(t, 0) // nothing read before the next tick
		time.Sleep(time.Second)
		synctest.Wait()
		f.wantBlock(t, 2)
		stop()
	})
}

// droppingHeads closes its first head stream at once, like a backend whose subscription
// broke.
type droppingHeads struct {
	chain.Chain
	mu      sync.Mutex
	dropped bool
}

func (d *droppingHeads) WatchHeads(ctx context.Context) <-chan chain.Block {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.dropped {
		d.dropped = true
		ch := make(chan chain.Block)
		close(ch)
		return ch
	}
	return d.Chain.WatchHeads(ctx)
}

func TestCacheRunWatchesAgainAfterTheStreamCloses(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newSim(t, 4, 0)
		f := newFixture(t, &droppingHeads{Chain: s}, s, nil)
		stop := runCache(t, f.cache)
		synctest.Wait()
		if !strings.Contains(f.logs.String(), "closed its head stream") {
			t.Errorf("the closed stream is not logged:\n%s", f.logs)
		}
		time.Sleep(time.Second)
		synctest.Wait()
		s.Advance(1)
		synctest.Wait()
		f.wantBlock(t, 1)
		stop()
	})
}

// TestCacheConcurrentReads is for the race detector: reads while refreshes swap snapshots.
func TestCacheConcurrentReads(t *testing.T) {
	s := newSim(t, 16, 0)
	f := newFixture(t, s, s, nil)
	f.refresh(t)
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for ctx.Err() == nil {
				if n, ok := f.cache.Neuron(hotkey(3)); !ok || n.Hotkey != hotkey(3) {
					t.Errorf("Neuron = %+v, %v", n, ok)
					return
				}
				_ = f.cache.Validators()
				_, _ = f.cache.At(f.cache.Latest().Block.Number)
				_ = f.cache.Status()
			}
		})
	}
	for i := range 50 {
		if err := s.SetStake(hotkey(i%16), uint64(i)); err != nil {
			t.Fatal(err)
		}
		s.Advance(1)
		f.refresh(t)
	}
	cancel()
	wg.Wait()
}
