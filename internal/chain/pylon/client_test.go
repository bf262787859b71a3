package pylon_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/computehorde/horde/internal/chain"
	"github.com/computehorde/horde/internal/chain/pylon"
	"github.com/computehorde/horde/internal/chain/pylon/wire"
	"github.com/computehorde/horde/internal/chain/sim"
	"github.com/computehorde/horde/internal/chain/simserver"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	netuid  = chain.NetUID(12)
	alice   = chain.Hotkey("5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY")
	bob     = chain.Hotkey("5FHneW46xGXgs5mUiveU4sbTyGBzmstUspZC92UhjJM694ty")
	charlie = chain.Hotkey("5FLSigC9HGRKVhB9FiEo4Y3koPsNmBmLJbpXg2mp1hXcS59Y")

	validatorToken = "validator-token"
	minerToken     = "miner-token"
)

// env is a simulated chain served by simserver on loopback.
type env struct {
	sim *sim.Chain
	srv *simserver.Server
	hs  *httptest.Server
}

func newEnv(t testing.TB, extra int) *env {
	t.Helper()
	permit, none := true, false
	neurons := []sim.NeuronSpec{
		{Hotkey: alice, Coldkey: "5DAAnrj7VHTznn2AWBemMuyBwZWs6FNFjdyVXUeYum3PTXFy", Stake: 1_000_500_000_000, ValidatorPermit: &permit},
		{Hotkey: bob, Coldkey: "5DAAnrj7VHTznn2AWBemMuyBwZWs6FNFjdyVXUeYum3PTXFy", ValidatorPermit: &none,
			Axon: chain.AxonInfo{IP: netip.MustParseAddr("203.0.113.7"), Port: 8000, Protocol: 4}},
		{Hotkey: charlie, ValidatorPermit: &none},
	}
	for i := range extra {
		neurons = append(neurons, sim.NeuronSpec{Hotkey: chain.Hotkey(fmt.Sprintf("5Extra%04d", i)), Stake: uint64(i) * 1e9,
			Axon: chain.AxonInfo{IP: netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), Port: 8000, Protocol: 4}})
	}
	s, err := sim.New(sim.Genesis{NetUID: netuid, Neurons: neurons})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := simserver.New(simserver.Config{Chain: s, Identities: []simserver.Identity{
		{Name: "validator", Hotkey: alice, Token: validatorToken},
		{Name: "miner", Hotkey: bob, Token: minerToken},
	}})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(func() { hs.Close(); srv.Close() })
	s.Advance(1)
	return &env{sim: s, srv: srv, hs: hs}
}

func (e *env) client(t testing.TB, identity, token string) *pylon.Client {
	t.Helper()
	hotkeys := map[string]chain.Hotkey{"validator": alice, "miner": bob}
	c, err := pylon.New(context.Background(), pylon.Config{
		URL: e.hs.URL, Identity: identity, Token: token, NetUID: netuid, Hotkey: hotkeys[identity],
		Backoff: time.Millisecond, PollInterval: 5 * time.Millisecond, RequestTimeout: 5 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// admin calls the simserver's admin API.
func (e *env) admin(t testing.TB, method, path string, body any) {
	t.Helper()
	var rd *bytes.Reader
	b, _ := json.Marshal(body)
	rd = bytes.NewReader(b)
	req, _ := http.NewRequest(method, e.hs.URL+path, rd)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode >= 300 {
		t.Fatalf("%s %s: %s", method, path, resp.Status)
	}
}

func TestClientReadsWhatTheSimHas(t *testing.T) {
	e := newEnv(t, 0)
	ctx := context.Background()
	c := e.client(t, "miner", minerToken)
	if c.NetUID() != netuid || !strings.Contains(c.HyperparamsSource(), "chain server") {
		t.Errorf("netuid %d, hyperparameters from %s", c.NetUID(), c.HyperparamsSource())
	}
	head, err := c.Head(ctx)
	if err != nil || head.Number != 1 {
		t.Fatalf("head %+v, %v", head, err)
	}
	want, _ := e.sim.Metagraph(ctx, netuid, 0)
	got, err := c.Metagraph(ctx, netuid, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got.Block.Number != want.Block.Number || got.Block.Hash != want.Block.Hash || len(got.Neurons) != 3 {
		t.Fatalf("metagraph %+v, want %+v", got, want)
	}
	for i, n := range got.Neurons {
		w := want.Neurons[i]
		w.RegisteredAt = 0 // Pylon does not serve it
		if !w.Axon.IP.IsValid() {
			w.Axon.IP = netip.IPv4Unspecified() // the chain's never-served axon
		}
		if n != w {
			t.Errorf("neuron %d = %+v, want %+v", i, n, w)
		}
	}
	if !got.Neurons[1].Axon.IsServing() || got.Neurons[2].Axon.IsServing() {
		t.Errorf("is_serving: %+v", got.Neurons)
	}
	hp, err := c.Hyperparams(ctx, netuid)
	if simHP, _ := e.sim.Hyperparams(ctx, netuid); err != nil || hp != simHP {
		t.Errorf("hyperparams %+v, %v", hp, err)
	}
	vs, b, err := c.Validators(ctx, 0)
	if err != nil || len(vs) != 1 || vs[0].Hotkey != alice || b.Number != 1 {
		t.Errorf("validators %+v at %d, %v", vs, b.Number, err)
	}

	e.sim.Advance(3)
	old, err := c.Metagraph(ctx, netuid, 2)
	if err != nil || old.Block.Number != 2 {
		t.Errorf("metagraph at 2: %+v, %v", old, err)
	}
	if _, err := c.Metagraph(ctx, netuid, 99); !errors.Is(err, chain.ErrUnknownBlock) {
		t.Errorf("future block: %v", err)
	}
	if _, err := c.Metagraph(ctx, 13, 0); !errors.Is(err, chain.ErrSubnetNotExists) {
		t.Errorf("other netuid: %v", err)
	}
}

func TestClientCommitments(t *testing.T) {
	e := newEnv(t, 0)
	ctx := context.Background()
	m := e.client(t, "miner", minerToken)
	if _, err := m.Commitment(ctx, bob); !errors.Is(err, pylon.ErrNoCommitment) {
		t.Errorf("no commitment yet: %v", err)
	}
	data := []byte(`<M>{"always":2}</M>`)
	if err := m.SetCommitment(ctx, bob, netuid, data); err != nil {
		t.Fatal(err)
	}
	if err := m.SetCommitment(ctx, bob, netuid, make([]byte, 129)); !errors.Is(err, chain.ErrCommitmentTooLarge) {
		t.Errorf("too large: %v", err)
	}
	e.sim.Advance(1)
	all, err := m.Commitments(ctx, netuid)
	if err != nil || string(all[bob]) != string(data) {
		t.Errorf("commitments %q, %v", all, err)
	}
	v := e.client(t, "validator", validatorToken)
	if got, err := v.Commitment(ctx, bob); err != nil || string(got) != string(data) {
		t.Errorf("bob's commitment seen by the validator: %q, %v", got, err)
	}
	if got, who, err := m.OwnCommitment(ctx); err != nil || who != bob || string(got) != string(data) {
		t.Errorf("own commitment %q of %s, %v", got, who, err)
	}
	if _, _, err := v.OwnCommitment(ctx); !errors.Is(err, pylon.ErrNoCommitment) {
		t.Errorf("validator's own commitment: %v", err)
	}
}

func TestClientWeights(t *testing.T) {
	e := newEnv(t, 0)
	ctx := context.Background()
	v := e.client(t, "validator", validatorToken)
	r, err := v.SetWeights(ctx, alice, netuid, map[chain.Hotkey]float64{bob: 3, charlie: 1, "5NotRegistered": 2}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !r.Pending || r.Block != 2 || len(r.Unknown) != 1 || len(r.UIDs) != 2 || r.Values[0] != chain.U16Max {
		t.Errorf("receipt %+v", r)
	}
	st := waitStatus(t, v, r.Block, func(st chain.WeightsStatus) bool { return st.Submitted })
	if !st.Done || st.Err != nil {
		t.Errorf("status %+v", st)
	}
	e.sim.Advance(1)
	if w, _ := e.sim.Weights(netuid, alice); w[1] != chain.U16Max || w[2] == 0 {
		t.Errorf("weights on chain %v", w)
	}
	// The miner sees the validator's weights at the next block, in its last_update.
	mg, err := e.client(t, "miner", minerToken).Metagraph(ctx, netuid, 0)
	if n, _ := mg.ByHotkey(alice); err != nil || n.LastUpdate != r.Block {
		t.Errorf("alice's last_update %d, want %d (%v)", n.LastUpdate, r.Block, err)
	}

	if _, err := v.SetWeights(ctx, bob, netuid, map[chain.Hotkey]float64{bob: 1}, 0); err == nil {
		t.Error("the validator identity set weights for the miner's hotkey")
	}
	if _, err := v.SetWeights(ctx, "", netuid, map[chain.Hotkey]float64{"5Nobody": 1}, 0); !errors.Is(err, chain.ErrWeightVecLengthIsLow) {
		t.Errorf("no registered hotkey: %v", err)
	}
	if _, err := v.SetWeights(ctx, "", netuid, map[chain.Hotkey]float64{bob: -1}, 0); !errors.Is(err, chain.ErrInvalidWeights) {
		t.Errorf("negative weight: %v", err)
	}
	// The miner holds no permit: Pylon accepts, the chain refuses until the epoch ends.
	m := e.client(t, "miner", minerToken)
	r, err = m.SetWeights(ctx, bob, netuid, map[chain.Hotkey]float64{charlie: 1}, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, end := chain.EpochBounds(r.Block, netuid, sim.DefaultHyperparams().Tempo)
	e.sim.Advance(int(end - e.sim.Advance(0).Number))
	st = waitStatus(t, m, r.Block, func(st chain.WeightsStatus) bool { return st.Done })
	if st.Submitted || st.Err == nil || !strings.Contains(fmt.Sprint(st.Err), "NeuronNoValidatorPermit") {
		t.Errorf("refused weights: %+v", st)
	}
}

// waitStatus polls the weights status until done says so; the simserver's job reacts to
// blocks in its own goroutine.
func waitStatus(t *testing.T, c *pylon.Client, block uint64, done func(chain.WeightsStatus) bool) chain.WeightsStatus {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := c.WeightsStatus(context.Background(), block)
		if err != nil {
			t.Fatal(err)
		}
		if done(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("weights status never settled: %+v", st)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestClientAuthErrors(t *testing.T) {
	e := newEnv(t, 0)
	ctx := context.Background()
	for _, tc := range []struct {
		identity, token string
		want            error
	}{
		{"validator", "wrong", pylon.ErrForbidden},
		{"validator", "", pylon.ErrForbidden},
		{"nobody", "x", pylon.ErrUnknownIdentity},
	} {
		_, err := pylon.New(ctx, pylon.Config{URL: e.hs.URL, Identity: tc.identity, Token: tc.token})
		if !errors.Is(err, tc.want) {
			t.Errorf("identity %q token %q: %v, want %v", tc.identity, tc.token, err, tc.want)
		}
		if tc.token != "" && strings.Contains(fmt.Sprint(err), tc.token) {
			t.Errorf("the error shows the token: %v", err)
		}
	}
	for _, cfg := range []pylon.Config{
		{URL: e.hs.URL},                       // open access without a netuid
		{URL: "ftp://pylon:8000", NetUID: 12}, // not http
		{URL: e.hs.URL, Identity: "a/b", Token: "x"},
	} {
		if _, err := pylon.New(ctx, cfg); err == nil {
			t.Errorf("%+v accepted", cfg)
		}
	}
	open, err := pylon.New(ctx, pylon.Config{URL: e.hs.URL, NetUID: netuid})
	if err != nil {
		t.Fatal(err)
	}
	if mg, err := open.Metagraph(ctx, netuid, 0); err != nil || len(mg.Neurons) != 3 {
		t.Errorf("open access read: %v", err)
	}
	if err := open.SetCommitment(ctx, "", netuid, nil); !errors.Is(err, pylon.ErrNoIdentity) {
		t.Errorf("open access write: %v", err)
	}

	// A server that checks an open access token.
	guarded, err := simserver.New(simserver.Config{Chain: e.sim, OpenAccessToken: "open-sesame"})
	if err != nil {
		t.Fatal(err)
	}
	defer guarded.Close()
	hs := httptest.NewServer(guarded.Handler())
	defer hs.Close()
	for token, want := range map[string]error{"": pylon.ErrUnauthorized, "wrong": pylon.ErrForbidden, "open-sesame": nil} {
		c, err := pylon.New(ctx, pylon.Config{URL: hs.URL, NetUID: netuid, OpenAccessToken: token})
		if err == nil {
			_, err = c.Metagraph(ctx, netuid, 0)
		}
		if !errors.Is(err, want) && (want != nil || err != nil) {
			t.Errorf("open access token %q: %v, want %v", token, err, want)
		}
	}
}

func TestClientFaults(t *testing.T) {
	e := newEnv(t, 0)
	ctx := context.Background()
	c := e.client(t, "validator", validatorToken)
	fault := func(f map[string]any) {
		t.Helper()
		e.admin(t, http.MethodDelete, "/sim/faults", nil)
		e.admin(t, http.MethodPost, "/sim/faults", f)
	}
	neurons := wire.SubnetBase("validator", netuid) + wire.PathLatestNeurons

	fault(map[string]any{"path_prefix": neurons, "count": 3, "status": 503})
	if _, err := c.Metagraph(ctx, netuid, 0); err != nil {
		t.Errorf("3 × 503 then an answer, within 4 attempts: %v", err)
	}
	fault(map[string]any{"path_prefix": neurons, "count": 4, "status": 503})
	if _, err := c.Metagraph(ctx, netuid, 0); !errors.Is(err, pylon.ErrCacheNotReady) || !errors.Is(err, chain.ErrUnavailable) {
		t.Errorf("4 × 503: %v", err)
	}
	fault(map[string]any{"path_prefix": neurons, "count": 4, "status": 500})
	if _, err := c.Metagraph(ctx, netuid, 0); !errors.Is(err, pylon.ErrServer) || !chain.Retryable(err) {
		t.Errorf("4 × 500: %v", err)
	}
	fault(map[string]any{"path_prefix": neurons, "count": 1, "body": "truncated"})
	if _, err := c.Metagraph(ctx, netuid, 0); err != nil {
		t.Errorf("a truncated answer is retried: %v", err)
	}
	fault(map[string]any{"path_prefix": neurons, "count": 4, "body": "malformed"})
	if _, err := c.Metagraph(ctx, netuid, 0); !errors.Is(err, pylon.ErrBadResponse) {
		t.Errorf("malformed answers: %v", err)
	}
	fault(map[string]any{"path_prefix": neurons, "count": 4, "delay_ms": 60_000})
	slow, err := pylon.New(ctx, pylon.Config{URL: e.hs.URL, Identity: "validator", Token: validatorToken,
		Backoff: time.Millisecond, RequestTimeout: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := slow.Metagraph(ctx, netuid, 0); !errors.Is(err, chain.ErrUnavailable) {
		t.Errorf("a server slower than the request timeout: %v", err)
	}
	e.admin(t, http.MethodDelete, "/sim/faults", nil)
	e.admin(t, http.MethodPost, "/sim/faults", map[string]any{"chain_kind": sim.KindMetagraph, "count": 4})
	if _, err := c.Metagraph(ctx, netuid, 0); !errors.Is(err, chain.ErrUnavailable) {
		t.Errorf("the node behind Pylon failing: %v", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := c.Metagraph(cctx, netuid, 0); !errors.Is(err, context.Canceled) || chain.Retryable(err) {
		t.Errorf("cancelled call: %v", err)
	}
}

func TestClientWatchHeads(t *testing.T) {
	e := newEnv(t, 0)
	c := e.client(t, "miner", minerToken)
	ctx, cancel := context.WithCancel(context.Background())
	heads := c.WatchHeads(ctx)
	if b := <-heads; b.Number != 1 {
		t.Fatalf("first head %d", b.Number)
	}
	e.sim.Advance(2)
	for b := range heads {
		if b.Number == 3 {
			break
		}
		if b.Number < 1 || b.Number > 3 {
			t.Fatalf("head %d", b.Number)
		}
	}
	cancel()
	for range heads {
	}
}
