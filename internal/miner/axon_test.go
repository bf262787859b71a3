package miner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"testing/synctest"

	"github.com/computehorde/horde/internal/chain"
	"github.com/computehorde/horde/internal/chain/sim"
	"github.com/computehorde/horde/internal/protocol"
	"github.com/computehorde/horde/internal/store"
)

var wantAxon = netip.MustParseAddrPort("10.0.0.5:8000")

// pylonLike is a backend that cannot serve axons, as Pylon; it counts the attempts.
type pylonLike struct {
	chain.Chain
	mu     sync.Mutex
	serves int
}

func (p *pylonLike) ServeAxon(context.Context, chain.Hotkey, chain.NetUID, netip.Addr, uint16) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.serves++
	return fmt.Errorf("%w (Pylon has no serve_axon endpoint)", chain.ErrServeAxonUnsupported)
}

func (p *pylonLike) attempts() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.serves
}

// axonEnv is a miner (//Bob) whose axon check runs against c, a view of s.
type axonEnv struct {
	sim   *sim.Chain
	cache *chain.MetagraphCache
	miner *Miner
	logs  *strings.Builder
	mu    *sync.Mutex
}

func (e *axonEnv) log() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.logs.String()
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// newAxonEnv builds the miner; db is opened by the caller, outside any synctest bubble.
func newAxonEnv(t *testing.T, db *store.DB, bobAxon chain.AxonInfo, wrap func(*sim.Chain) chain.Chain) *axonEnv {
	t.Helper()
	bob := mustKey(t, "//Bob")
	e := &axonEnv{logs: &strings.Builder{}, mu: &sync.Mutex{}}
	var err error
	e.sim, err = sim.New(sim.Genesis{
		NetUID: netuid,
		Neurons: []sim.NeuronSpec{
			{Hotkey: chain.Hotkey(mustKey(t, "//Alice").SS58()), Coldkey: "c1", Stake: 1e13},
			{Hotkey: chain.Hotkey(bob.SS58()), Coldkey: "c2", Axon: bobAxon},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	var c chain.Chain = e.sim
	if wrap != nil {
		c = wrap(e.sim)
	}
	logger := slog.New(slog.NewTextHandler(io.MultiWriter(t.Output(), lockedWriter{e.mu, e.logs}), nil))
	e.cache, err = chain.NewMetagraphCache(chain.CacheConfig{Chain: c, NetUID: netuid, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	e.miner, err = New(Config{
		Keypair: bob, Chain: c, Metagraph: e.cache, NetUID: netuid, Store: db, Executors: &scriptedExecutors{t: t},
		Manifest: protocol.Manifest{{Class: protocol.ExecutorClassAlwaysOnTest, Count: 1}},
		Axon:     wantAxon, WalletName: "miner", Logger: logger,
	})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func openDB(t *testing.T) *store.DB {
	t.Helper()
	db, err := store.Open(t.Context(), store.Config{DSN: "sqlite::memory:"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func (e *axonEnv) refresh(t *testing.T) {
	t.Helper()
	if err := e.cache.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
}

func TestCheckAxonMatches(t *testing.T) {
	served := chain.AxonInfo{IP: wantAxon.Addr(), Port: wantAxon.Port(), Protocol: 4}
	e := newAxonEnv(t, openDB(t), served, nil)
	if st := e.miner.AxonStatus(); st.OK || !errors.Is(st.Err, errAxonNotChecked) {
		t.Errorf("AxonStatus before any check = %+v, want not checked", st)
	}
	e.refresh(t)
	st := e.miner.CheckAxon(t.Context())
	if !st.OK || st.Served || st.Chain != wantAxon || st.Want != wantAxon || st.FixCommand != "" || st.Err != nil {
		t.Errorf("CheckAxon = %+v, want OK with nothing served", st)
	}
	if got := e.miner.AxonStatus(); got != st {
		t.Errorf("AxonStatus() = %+v, want the last check %+v", got, st)
	}
}

func TestCheckAxonServesWhenItDiffers(t *testing.T) {
	e := newAxonEnv(t, openDB(t), chain.AxonInfo{}, nil)
	e.refresh(t)
	st := e.miner.CheckAxon(t.Context())
	if !st.OK || !st.Served || st.Chain.Addr().IsValid() || st.Err != nil || st.FixCommand != "" {
		t.Fatalf("CheckAxon = %+v, want OK and served over an axon never served", st)
	}
	e.sim.Advance(1)
	e.refresh(t)
	if n, _ := e.cache.Neuron(chain.Hotkey(e.miner.Hotkey())); n.Axon.AddrPort() != wantAxon {
		t.Fatalf("axon on chain after serving = %v, want %v", n.Axon.AddrPort(), wantAxon)
	}
	if st := e.miner.CheckAxon(t.Context()); !st.OK || st.Served || st.Chain != wantAxon {
		t.Errorf("CheckAxon after the block = %+v, want OK with nothing more to serve", st)
	}
}

func TestCheckAxonTellsTheBtcliCommand(t *testing.T) {
	old := chain.AxonInfo{IP: netip.MustParseAddr("10.0.0.9"), Port: 8000, Protocol: 4}
	var p *pylonLike
	e := newAxonEnv(t, openDB(t), old, func(s *sim.Chain) chain.Chain { p = &pylonLike{Chain: s}; return p })
	e.refresh(t)
	st := e.miner.CheckAxon(t.Context())
	const cmd = "btcli axon set --netuid 12 --ip 10.0.0.5 --port 8000 --wallet-name miner --wallet-hotkey default"
	if st.OK || st.Served || st.Chain != old.AddrPort() || st.FixCommand != cmd || !errors.Is(st.Err, chain.ErrServeAxonUnsupported) {
		t.Fatalf("CheckAxon = %+v; want not OK, ErrServeAxonUnsupported and the command %q", st, cmd)
	}
	if !strings.Contains(st.Err.Error(), cmd) {
		t.Errorf("the error does not name the command: %v", st.Err)
	}
	if logs := e.log(); !strings.Contains(logs, "level=WARN") || !strings.Contains(logs, cmd) {
		t.Errorf("no warning with the command in the log:\n%s", logs)
	}
	if got := e.miner.AxonStatus(); got.FixCommand != cmd {
		t.Errorf("AxonStatus().FixCommand = %q, want %q", got.FixCommand, cmd)
	}
	if p.attempts() != 1 {
		t.Errorf("serve_axon tried %d times, want 1", p.attempts())
	}
}

func TestCheckAxonUnregisteredOrNotYetRead(t *testing.T) {
	e := newAxonEnv(t, openDB(t), chain.AxonInfo{}, nil)
	if st := e.miner.CheckAxon(t.Context()); st.OK || !errors.Is(st.Err, errAxonNotChecked) {
		t.Errorf("CheckAxon before the first metagraph = %+v, want not checked", st)
	}
	if err := e.sim.Deregister(chain.Hotkey(e.miner.Hotkey())); err != nil {
		t.Fatal(err)
	}
	e.sim.Advance(1)
	e.refresh(t)
	if st := e.miner.CheckAxon(t.Context()); st.OK || !errors.Is(st.Err, chain.ErrNotRegistered) || st.FixCommand != "" {
		t.Errorf("CheckAxon of an unregistered hotkey = %+v, want ErrNotRegistered", st)
	}
}

func TestAxonFixCommand(t *testing.T) {
	for _, tc := range []struct {
		axon           string
		wallet, hotkey string
		want           string
	}{
		{"1.2.3.4:8091", "", "", "btcli axon set --netuid 12 --ip 1.2.3.4 --port 8091 --wallet-name default --wallet-hotkey default"},
		{"[2001:db8::1]:8091", "cold", "hot_1", "btcli axon set --netuid 12 --ip 2001:db8::1 --port 8091 --wallet-name cold --wallet-hotkey hot_1"},
		{"[::ffff:1.2.3.4]:80", "my wallet", "it's", `btcli axon set --netuid 12 --ip 1.2.3.4 --port 80 --wallet-name 'my wallet' --wallet-hotkey 'it'\''s'`},
	} {
		if got := AxonFixCommand(netuid, netip.MustParseAddrPort(tc.axon), tc.wallet, tc.hotkey); got != tc.want {
			t.Errorf("AxonFixCommand(%s, %q, %q) =\n%s, want\n%s", tc.axon, tc.wallet, tc.hotkey, got, tc.want)
		}
	}
}

func TestAxonConfigRejectsUndialableAddresses(t *testing.T) {
	for _, a := range []string{"0.0.0.0:8000", "10.0.0.5:0"} {
		cfg := Config{
			Keypair: mustKey(t, "//Bob"), Chain: &pylonLike{}, Metagraph: &chain.MetagraphCache{}, Store: &store.DB{},
			Executors: &scriptedExecutors{}, Manifest: protocol.Manifest{{Class: protocol.ExecutorClassAlwaysOnTest, Count: 1}},
			Axon: netip.MustParseAddrPort(a),
		}
		if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), "Axon "+a) {
			t.Errorf("New with Axon %s: %v, want an error naming it", a, err)
		}
	}
}

// TestRunAxonCheckEveryTempo: the loop checks at start and again at the first block of each
// epoch (tempo 10 on netuid 12: epochs start at blocks 8, 19, 30, ...), on a backend that
// cannot serve, so every check tries serve_axon once.
func TestRunAxonCheckEveryTempo(t *testing.T) {
	db := openDB(t)
	synctest.Test(t, func(t *testing.T) {
		var p *pylonLike
		e := newAxonEnv(t, db, chain.AxonInfo{}, func(s *sim.Chain) chain.Chain { p = &pylonLike{Chain: s}; return p })
		ctx, cancel := context.WithCancel(t.Context())
		var wg sync.WaitGroup
		wg.Go(func() { _ = e.cache.Run(ctx) })
		wg.Go(func() { _ = e.miner.RunAxonCheck(ctx) })
		synctest.Wait()
		if p.attempts() != 1 {
			t.Fatalf("checks at start: %d, want 1", p.attempts())
		}
		for _, step := range []struct {
			advance int
			want    int
		}{{7, 1}, {1, 2}, {10, 2}, {1, 3}, {11, 4}} {
			e.sim.Advance(step.advance)
			synctest.Wait()
			if got := p.attempts(); got != step.want {
				t.Fatalf("at block %d: %d checks, want %d", e.sim.Advance(0).Number, got, step.want)
			}
		}
		if st := e.miner.AxonStatus(); st.OK || st.FixCommand == "" {
			t.Errorf("AxonStatus() = %+v, want the btcli command", st)
		}
		cancel()
		wg.Wait()
	})
}

// TestRunAxonCheckWithoutAxonReturns: nothing configured, nothing to watch.
func TestRunAxonCheckWithoutAxonReturns(t *testing.T) {
	m := &Miner{cfg: Config{}}
	if err := m.RunAxonCheck(t.Context()); err != nil {
		t.Fatal(err)
	}
	if st := m.AxonStatus(); !st.OK {
		t.Errorf("AxonStatus() without an axon configured = %+v, want OK", st)
	}
}

// TestAxonStatusJSON: the axon check's error survives the status socket (`horde miner status`
// failed to decode a status whose axon was wrong), as does the metagraph cache's.
func TestAxonStatusJSON(t *testing.T) {
	in := Status{
		Axon:      AxonStatus{Want: netip.MustParseAddrPort("203.0.113.7:8000"), Err: errors.New("the chain shows another axon")},
		Metagraph: chain.CacheStatus{Block: 7, LastError: errors.New("chain down")},
	}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	var out Status
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
	if out.Axon.Err == nil || out.Axon.Err.Error() != "the chain shows another axon" || out.Axon.Want != in.Axon.Want ||
		out.Metagraph.LastError == nil || out.Metagraph.LastError.Error() != "chain down" || out.Metagraph.Block != 7 {
		t.Errorf("round trip: %+v from %s", out, b)
	}
	b, _ = json.Marshal(Status{Axon: AxonStatus{OK: true}})
	if err := json.Unmarshal(b, &out); err != nil || out.Axon.Err != nil || out.Metagraph.LastError != nil {
		t.Errorf("no errors: %+v, %v", out, err)
	}
}
