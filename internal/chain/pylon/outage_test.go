package pylon_test

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/computehorde/horde/internal/chain"
	"github.com/computehorde/horde/internal/chain/pylon"
)

// serveOn serves h on addr until the returned function stops it (connections included).
func serveOn(t *testing.T, addr string, h http.Handler) (string, func()) {
	t.Helper()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(l) }()
	return l.Addr().String(), func() { _ = srv.Close(); <-done }
}

// logWatch is a slog handler that reports when a record's message contains a phrase.
type logWatch struct {
	phrase string
	seen   chan struct{}
	once   sync.Once
}

func (w *logWatch) Enabled(context.Context, slog.Level) bool { return true }
func (w *logWatch) Handle(_ context.Context, r slog.Record) error {
	if strings.Contains(r.Message, w.phrase) {
		w.once.Do(func() { close(w.seen) })
	}
	return nil
}
func (w *logWatch) WithAttrs([]slog.Attr) slog.Handler { return w }
func (w *logWatch) WithGroup(string) slog.Handler      { return w }

// TestChainServerOutage stops the chain server mid-run: the metagraph cache keeps its last
// good metagraph and reports staleness, and weights owed for this tempo are retried until
// the server is back, then land.
func TestChainServerOutage(t *testing.T) {
	e := newEnv(t, 0)
	e.hs.Close() // this test serves the same handler on an address it can stop and reopen
	ctx := context.Background()
	addr, stop := serveOn(t, "127.0.0.1:0", e.srv.Handler())
	c, err := pylon.New(ctx, pylon.Config{
		URL: "http://" + addr, Identity: "validator", Token: validatorToken, Hotkey: alice,
		Attempts: 2, Backoff: time.Millisecond, RequestTimeout: time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)
	var nowMu sync.Mutex
	cache, err := chain.NewMetagraphCache(chain.CacheConfig{
		Chain: c, NetUID: netuid, Interval: 12 * time.Second,
		Logger: slog.New(slog.DiscardHandler),
		Now:    func() time.Time { nowMu.Lock(); defer nowMu.Unlock(); return now },
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := cache.Refresh(ctx); err != nil {
		t.Fatal(err)
	}

	stop()
	nowMu.Lock()
	now = now.Add(time.Minute) // more than 3 polls of 12 s
	nowMu.Unlock()
	if err := cache.Refresh(ctx); !errors.Is(err, chain.ErrUnavailable) {
		t.Fatalf("refresh with the server down: %v", err)
	}
	st := cache.Status()
	if !st.Stale || !errors.Is(st.LastError, chain.ErrUnavailable) || st.Block != 1 {
		t.Errorf("status while down: %+v", st)
	}
	if n, ok := cache.Neuron(alice); !ok || !n.ValidatorPermit || cache.Latest().Block.Number != 1 {
		t.Errorf("the cache stopped serving its last metagraph: %+v %v", n, ok)
	}

	hp, _ := e.sim.Hyperparams(ctx, netuid)
	_, until := chain.EpochBounds(1, netuid, hp.Tempo)
	watch := &logWatch{phrase: "retrying", seen: make(chan struct{})}
	type result struct {
		r   chain.WeightsReceipt
		err error
	}
	done := make(chan result, 1)
	go func() {
		r, err := chain.SubmitWeights(ctx, chain.WeightsTask{
			Chain: c, Hotkey: alice, NetUID: netuid, Weights: map[chain.Hotkey]float64{bob: 1, charlie: 1},
			Until: until, Backoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond, Logger: slog.New(watch),
		})
		done <- result{r, err}
	}()
	<-watch.seen // the weights failed at least once while the server was down

	_, stop = serveOn(t, addr, e.srv.Handler())
	defer stop()
	res := <-done
	if res.err != nil {
		t.Fatalf("weights after the server came back: %v", res.err)
	}
	if res.r.Block >= until || !res.r.Pending {
		t.Errorf("receipt %+v (window ends at %d)", res.r, until)
	}
	e.sim.Advance(1)
	if w, _ := e.sim.Weights(netuid, alice); w[1] != chain.U16Max || w[2] != chain.U16Max {
		t.Errorf("weights on chain: %v", w)
	}
	if err := cache.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if st := cache.Status(); st.Stale || st.LastError != nil || st.Block != 2 {
		t.Errorf("status after recovery: %+v", st)
	}
	if n, _ := cache.Neuron(alice); n.LastUpdate != res.r.Block {
		t.Errorf("alice's last_update %d, want %d", n.LastUpdate, res.r.Block)
	}
}
