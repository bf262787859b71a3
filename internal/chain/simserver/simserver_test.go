package simserver_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/computehorde/horde/internal/chain"
	"github.com/computehorde/horde/internal/chain/pylon/wire"
	"github.com/computehorde/horde/internal/chain/sim"
	"github.com/computehorde/horde/internal/chain/simserver"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const netuid chain.NetUID = 12

// The test subnet: two validators by stake (MaxValidators 2), two miners.
const (
	v1 chain.Hotkey = "5V1"
	v2 chain.Hotkey = "5V2"
	m1 chain.Hotkey = "5M1"
	m2 chain.Hotkey = "5M2"
)

// Identities: the validator v1, the miner m1 (no permit) and one whose hotkey is not
// registered.
const (
	valTok   = "validator-token"
	minerTok = "miner-token"
	ghostTok = "ghost-token"
)

type env struct {
	t   *testing.T
	sim *sim.Chain
	srv *simserver.Server
	ts  *httptest.Server
	// onRequest, when set, is told when a request for its path reaches the server.
	onRequest atomic.Pointer[requestHook]
}

// requestHook closes ch when the first request for path arrives.
type requestHook struct {
	path string
	ch   chan struct{}
	once sync.Once
}

func newEnv(t *testing.T, genesis func(*sim.Genesis), config func(*simserver.Config)) *env {
	t.Helper()
	hp := sim.DefaultHyperparams()
	hp.MaxValidators = 2
	g := sim.Genesis{
		NetUID:      netuid,
		Hyperparams: hp,
		Neurons: []sim.NeuronSpec{
			{Hotkey: v1, Coldkey: "5C1", Stake: 1000e9},
			{Hotkey: v2, Coldkey: "5C2", Stake: 500e9},
			{Hotkey: m1, Coldkey: "5C3", Stake: 10e9},
			{Hotkey: m2, Coldkey: "5C3", Stake: 5e9},
		},
	}
	if genesis != nil {
		genesis(&g)
	}
	c, err := sim.New(g)
	if err != nil {
		t.Fatalf("sim.New: %v", err)
	}
	cfg := simserver.Config{
		Chain: c,
		Identities: []simserver.Identity{
			{Name: "validator", Hotkey: v1, Token: valTok},
			{Name: "miner", Hotkey: m1, Token: minerTok},
			{Name: "ghost", Hotkey: "5GHOST", Token: ghostTok},
		},
	}
	if config != nil {
		config(&cfg)
	}
	srv, err := simserver.New(cfg)
	if err != nil {
		t.Fatalf("simserver.New: %v", err)
	}
	e := &env{t: t, sim: c, srv: srv}
	h := srv.Handler()
	e.ts = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hook := e.onRequest.Load(); hook != nil && hook.path == r.URL.Path {
			hook.once.Do(func() { close(hook.ch) })
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(e.ts.Close) // runs first: no request is in flight when the jobs stop
	return e
}

// base is a subnet base path: open access for identity "".
func base(identity string) string { return wire.SubnetBase(identity, netuid) }

// do sends a request with an optional bearer token and JSON body and returns the status
// and body.
func (e *env) do(method, path, token string, body any) (int, []byte) {
	e.t.Helper()
	return e.doCtx(e.t.Context(), method, path, token, body)
}

func (e *env) doCtx(ctx context.Context, method, path, token string, body any) (int, []byte) {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(ctx, method, e.ts.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := e.ts.Client().Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatalf("%s %s: reading the body: %v", method, path, err)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		e.t.Errorf("%s %s: Content-Type %q, want application/json", method, path, ct)
	}
	return resp.StatusCode, raw
}

// get expects 200 and decodes the answer strictly into T, so a field the wire types lack
// fails the test.
func get[T any](e *env, path, token string) T {
	e.t.Helper()
	return expect[T](e, http.MethodGet, path, token, nil, http.StatusOK)
}

func expect[T any](e *env, method, path, token string, body any, status int) T {
	e.t.Helper()
	code, raw := e.do(method, path, token, body)
	if code != status {
		e.t.Fatalf("%s %s: status %d, want %d: %s", method, path, code, status, raw)
	}
	var v T
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		e.t.Fatalf("%s %s: decoding %s: %v", method, path, raw, err)
	}
	return v
}

// wantError expects a Pylon-shaped error with status and a detail containing want.
func (e *env) wantError(method, path, token string, body any, status int, want string) {
	e.t.Helper()
	d := expect[wire.DetailResponse](e, method, path, token, body, status)
	if d.StatusCode != status || !strings.Contains(d.Detail, want) {
		e.t.Errorf("%s %s: %+v, want status_code %d and a detail containing %q", method, path, d, status, want)
	}
}

// waitStatus polls the weights status of identity for block until ok accepts it.
func (e *env) waitStatus(identity, token string, block uint64, ok func(wire.WeightsStatusResponse) bool) wire.WeightsStatusResponse {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st := get[wire.WeightsStatusResponse](e, base(identity)+wire.PathWeightsStatus(block), token)
		if ok(st) {
			return st
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("weights status of %s for block %d: still %+v after 10 s", identity, block, st)
		}
		// A pause between polls only; the outcome never depends on its length.
		<-time.After(time.Millisecond)
	}
}

func TestChainSimReads(t *testing.T) {
	e := newEnv(t, nil, nil)
	e.sim.Advance(3)
	want, err := e.sim.Metagraph(t.Context(), netuid, 0)
	if err != nil {
		t.Fatal(err)
	}
	wantBlock := wire.FromBlock(want.Block)
	for _, b := range []string{base(""), base("validator")} {
		tok := ""
		if b == base("validator") {
			tok = valTok
		}
		for _, p := range []string{wire.PathLatestNeurons, wire.PathRecentNeurons, wire.PathNeuronsAt(3)} {
			got := get[wire.NeuronsResponse](e, b+p, tok)
			if got.Block != wantBlock || len(got.Neurons) != 4 {
				t.Fatalf("%s: block %+v with %d neurons, want %+v with 4", p, got.Block, len(got.Neurons), wantBlock)
			}
			mg, err := got.ToMetagraph(netuid)
			if err != nil {
				t.Fatal(err)
			}
			if n, _ := mg.ByHotkey(v1); n.Stake != 1000e9 || !n.ValidatorPermit || n.UID != 0 {
				t.Errorf("%s: v1 is %+v", p, n)
			}
		}
		old := get[wire.NeuronsResponse](e, b+wire.PathNeuronsAt(1), tok)
		if old.Block.Number != 1 {
			t.Errorf("neurons at 1: block %+v", old.Block)
		}
		for _, p := range []string{wire.PathLatestValidators, wire.PathValidatorsAt(2)} {
			got := get[wire.ValidatorsResponse](e, b+p, tok)
			if len(got.Validators) != 2 || got.Validators[0].Hotkey != string(v1) || got.Validators[1].Hotkey != string(v2) {
				t.Errorf("%s: %+v, want v1 then v2", p, got.Validators)
			}
		}
		hp := get[wire.Hyperparams](e, wire.HyperparamsPath(netuid), "")
		if hp.MaxValidators != 2 || hp.Tempo != 10 {
			t.Errorf("hyperparams: %+v", hp)
		}
	}
	lr := expect[wire.LoginResponse](e, http.MethodPost, wire.PathLogin("validator"), "", wire.LoginRequest{Token: valTok}, http.StatusOK)
	if lr != (wire.LoginResponse{NetUID: netuid, IdentityName: "validator"}) {
		t.Errorf("login: %+v", lr)
	}
	if e.srv.NetUID() != netuid {
		t.Errorf("NetUID() = %d", e.srv.NetUID())
	}
}

func TestChainSimCommitments(t *testing.T) {
	e := newEnv(t, nil, nil)
	vb, mb := base("validator"), base("miner")
	e.wantError(http.MethodGet, vb+wire.PathOwnCommitment, valTok, nil, http.StatusNotFound, "Commitment not found.")

	d := expect[wire.DetailResponse](e, http.MethodPost, vb+wire.PathCommitments, valTok, wire.SetCommitmentRequest{Commitment: "0xc0ffee"}, http.StatusCreated)
	if d.Detail != wire.CommitmentSet {
		t.Errorf("set: %+v", d)
	}
	expect[wire.DetailResponse](e, http.MethodPost, mb+wire.PathCommitments, minerTok, wire.SetCommitmentRequest{Commitment: "beef"}, http.StatusCreated)
	e.sim.Advance(1)

	own := get[wire.CommitmentResponse](e, vb+wire.PathOwnCommitment, valTok)
	if own.Hotkey != string(v1) || own.Commitment != "0xc0ffee" || own.Block.Number != 1 {
		t.Errorf("own: %+v", own)
	}
	one := get[wire.CommitmentResponse](e, base("")+wire.PathCommitment(m1), "")
	if one.Commitment != "0xbeef" {
		t.Errorf("m1's: %+v", one)
	}
	all := get[wire.CommitmentsResponse](e, base("")+wire.PathLatestCommitments, "")
	if len(all.Commitments) != 2 || all.Commitments[string(v1)] != "0xc0ffee" || all.Block.Number != 1 {
		t.Errorf("all: %+v", all)
	}
	e.wantError(http.MethodGet, base("")+wire.PathCommitment(v2), "", nil, http.StatusNotFound, "Commitment not found.")
	// "self" is only the identity's own commitment under an identity base.
	e.wantError(http.MethodGet, base("")+wire.PathOwnCommitment, "", nil, http.StatusNotFound, "Commitment not found.")

	tooBig := wire.EncodeCommitment(make([]byte, chain.MaxCommitmentBytes+1))
	e.wantError(http.MethodPost, vb+wire.PathCommitments, valTok, wire.SetCommitmentRequest{Commitment: tooBig}, http.StatusBadRequest, "129 bytes")
	e.wantError(http.MethodPost, vb+wire.PathCommitments, valTok, wire.SetCommitmentRequest{Commitment: "0xzz"}, http.StatusBadRequest, "not hex")
	e.wantError(http.MethodPost, base("ghost")+wire.PathCommitments, ghostTok, wire.SetCommitmentRequest{Commitment: "01"}, http.StatusBadGateway, "HotKeyNotRegisteredInSubNet")
	e.sim.FailNext(sim.KindSetCommitment, 1, nil)
	e.wantError(http.MethodPost, vb+wire.PathCommitments, valTok, wire.SetCommitmentRequest{Commitment: "01"}, http.StatusBadGateway, "unavailable")
	// Writes exist only under an identity.
	e.wantError(http.MethodPost, base("")+wire.PathCommitments, "", wire.SetCommitmentRequest{Commitment: "01"}, http.StatusNotFound, "Not Found")
}

func TestChainSimAuth(t *testing.T) {
	e := newEnv(t, nil, func(c *simserver.Config) {
		c.OpenAccessToken = "open"
		c.AdminToken = "admin"
	})
	vb := base("validator")
	cases := []struct {
		name, path, token string
		status            int
		detail            string
	}{
		{"identity, no header", vb + wire.PathLatestNeurons, "", 401, "Missing Authorization"},
		{"identity, wrong token", vb + wire.PathLatestNeurons, minerTok, 403, "Invalid token"},
		{"identity, open token", vb + wire.PathLatestNeurons, "open", 403, "Invalid token"},
		{"unknown identity", base("nobody") + wire.PathLatestNeurons, valTok, 404, "Identity 'nobody' not found"},
		{"open, no header", base("") + wire.PathLatestNeurons, "", 401, "Missing Authorization"},
		{"open, wrong token", base("") + wire.PathLatestNeurons, valTok, 403, "Invalid token"},
		{"extension, no header", wire.HyperparamsPath(netuid), "", 401, "Missing Authorization"},
		{"admin, no header", "/sim/state", "", 401, "Missing Authorization"},
		{"admin, wrong token", "/sim/state", "open", 403, "Invalid token"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e.t = t
			e.wantError(http.MethodGet, c.path, c.token, nil, c.status, c.detail)
		})
	}
	e.t = t
	get[wire.NeuronsResponse](e, vb+wire.PathLatestNeurons, valTok)
	get[wire.NeuronsResponse](e, base("")+wire.PathLatestNeurons, "open")
	get[simserver.State](e, "/sim/state", "admin")

	// A header that is not a bearer token.
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, e.ts.URL+base("")+wire.PathLatestNeurons, nil)
	req.Header.Set("Authorization", "Basic b3Blbg==")
	resp, err := e.ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Errorf("basic auth: %d, want 401", resp.StatusCode)
	}

	e.wantError(http.MethodPost, wire.PathLogin("nobody"), "", wire.LoginRequest{Token: "x"}, 404, "Identity 'nobody' not found")
	e.wantError(http.MethodPost, wire.PathLogin("validator"), "", wire.LoginRequest{Token: minerTok}, 403, "Invalid token")
	e.wantError(http.MethodGet, wire.PathLogin("validator"), "", nil, 405, "Method Not Allowed")
}

func TestChainSimErrors(t *testing.T) {
	e := newEnv(t, func(g *sim.Genesis) { g.History = 5 }, nil)
	e.sim.Advance(10)
	ob := base("")
	e.wantError(http.MethodGet, ob+wire.PathNeuronsAt(11), "", nil, 404, "Block 11 not found.")
	e.wantError(http.MethodGet, ob+wire.PathNeuronsAt(2), "", nil, 404, "Block 2 not found.")    // pruned
	e.wantError(http.MethodGet, ob+wire.PathNeuronsAt(0), "", nil, 404, "Block 0 not found.")    // pruned too
	e.wantError(http.MethodGet, ob+wire.PathValidatorsAt(3), "", nil, 404, "Block 3 not found.") // pruned
	get[wire.NeuronsResponse](e, ob+wire.PathNeuronsAt(6), "")

	litestar404 := `{"status_code":404,"detail":"Not Found"}`
	for _, p := range []string{
		ob + "/block/abc/neurons",
		ob + "/block/-1/neurons",
		ob + "/block/18446744073709551616/neurons",
		wire.Prefix + "/subnet/x/block/latest/neurons",
		ob + "/nothing",
		ob + wire.PathWeights, // identity only
		"/api/v2/whatever",
		"/",
	} {
		code, raw := e.do(http.MethodGet, p, "", nil)
		if code != 404 || string(raw) != litestar404 {
			t.Errorf("GET %s: %d %s, want 404 %s", p, code, raw, litestar404)
		}
	}
	e.wantError(http.MethodGet, wire.SubnetBase("", 7)+wire.PathLatestNeurons, "", nil, 404, "Subnet 7 not found")
	e.wantError(http.MethodGet, wire.HyperparamsPath(7), "", nil, 404, "Subnet 7 not found")
	e.wantError(http.MethodPost, ob+wire.PathLatestNeurons, "", nil, 405, "Method Not Allowed")

	e.sim.FailNext(sim.KindMetagraph, 1, nil)
	e.wantError(http.MethodGet, ob+wire.PathLatestNeurons, "", nil, 503, "unavailable")
	get[wire.NeuronsResponse](e, ob+wire.PathLatestNeurons, "")
	e.sim.FailNext(sim.KindCommitments, 1, nil)
	e.wantError(http.MethodGet, ob+wire.PathLatestCommitments, "", nil, 503, "unavailable")
}

func TestChainSimWeightsLandAtOnce(t *testing.T) {
	e := newEnv(t, nil, nil)
	vb := base("validator")
	e.sim.Advance(8) // the start of the epoch [8, 19) (netuid 12, tempo 10)
	req := wire.WeightsRequest{Weights: map[string]float64{string(m1): 1, string(m2): 0.5, "5UNKNOWN": 1}}
	r := expect[wire.WeightsResponse](e, http.MethodPut, vb+wire.PathWeights, valTok, req, http.StatusOK)
	if r != (wire.WeightsResponse{Detail: wire.WeightsScheduled, Count: 3}) {
		t.Errorf("PUT: %+v", r)
	}
	st := e.waitStatus("validator", valTok, 8, func(s wire.WeightsStatusResponse) bool { return s.Job != wire.JobRunning })
	if st != (wire.WeightsStatusResponse{WeightsSubmitted: true, Job: wire.JobCompleted}) {
		t.Fatalf("status: %+v", st)
	}
	// The status is per epoch: nothing for the next one.
	if st := get[wire.WeightsStatusResponse](e, vb+wire.PathWeightsStatus(19), valTok); st != (wire.WeightsStatusResponse{}) {
		t.Errorf("next epoch's status: %+v", st)
	}
	e.sim.Advance(1)
	got := expect[map[chain.UID]uint16](e, http.MethodGet, "/sim/weights/"+string(v1), "", nil, 200)
	if len(got) != 2 || got[2] != 65535 || got[3] != 32768 {
		t.Errorf("weights in effect: %v, want uid 2 → 65535, uid 3 → 32768", got)
	}
}

func TestChainSimWeightsRateLimited(t *testing.T) {
	e := newEnv(t, nil, nil)
	vb := base("validator")
	e.sim.Advance(8)
	put := func(w map[string]float64) {
		expect[wire.WeightsResponse](e, http.MethodPut, vb+wire.PathWeights, valTok, wire.WeightsRequest{Weights: w}, http.StatusOK)
	}
	put(map[string]float64{string(m1): 1})
	e.waitStatus("validator", valTok, 8, func(s wire.WeightsStatusResponse) bool { return s.Job == wire.JobCompleted })

	// Set in block 9; the rate limit of 2 blocks refuses block 9 and 10.
	put(map[string]float64{string(m2): 1})
	st := e.waitStatus("validator", valTok, 8, func(s wire.WeightsStatusResponse) bool { return s.Error != "" })
	if st.Job != wire.JobRunning || !strings.Contains(st.Error, "SettingWeightsTooFast") || !st.WeightsSubmitted {
		t.Fatalf("status while rate limited: %+v", st)
	}
	e.sim.Advance(2)
	e.waitStatus("validator", valTok, 8, func(s wire.WeightsStatusResponse) bool { return s.Job == wire.JobCompleted && s.Error == "" })
	e.sim.Advance(1)
	ws, err := e.sim.Weights(netuid, v1)
	if err != nil {
		t.Fatal(err)
	}
	if len(ws) != 1 || ws[3] != 65535 {
		t.Errorf("weights in effect: %v, want the second PUT's (uid 3)", ws)
	}
	mg, _ := e.sim.Metagraph(t.Context(), netuid, 0)
	if n, _ := mg.ByHotkey(v1); n.LastUpdate != 11 {
		t.Errorf("last update %d, want 11 (rate limit 2 after block 9)", n.LastUpdate)
	}
}

func TestChainSimWeightsTempoExpired(t *testing.T) {
	e := newEnv(t, nil, nil)
	mb := base("miner")
	e.sim.Advance(8)
	expect[wire.WeightsResponse](e, http.MethodPut, mb+wire.PathWeights, minerTok,
		wire.WeightsRequest{Weights: map[string]float64{string(v1): 1, string(m2): 1}}, http.StatusOK)
	st := e.waitStatus("miner", minerTok, 8, func(s wire.WeightsStatusResponse) bool { return s.Error != "" })
	if st.Job != wire.JobRunning || !strings.Contains(st.Error, "NeuronNoValidatorPermit") {
		t.Fatalf("status while refused: %+v", st)
	}
	e.sim.Advance(5)
	if st := get[wire.WeightsStatusResponse](e, mb+wire.PathWeightsStatus(10), minerTok); st.Job != wire.JobRunning {
		t.Errorf("mid-epoch: %+v", st)
	}
	e.sim.Advance(6) // block 19 starts the next epoch
	st = e.waitStatus("miner", minerTok, 18, func(s wire.WeightsStatusResponse) bool { return s.Job != wire.JobRunning })
	if st.Job != wire.JobTempoExpired || st.WeightsSubmitted || !strings.Contains(st.Error, "NeuronNoValidatorPermit") {
		t.Errorf("after the epoch: %+v", st)
	}
}

func TestChainSimWeightsReplaced(t *testing.T) {
	e := newEnv(t, nil, nil)
	mb := base("miner")
	for range 3 {
		expect[wire.WeightsResponse](e, http.MethodPut, mb+wire.PathWeights, minerTok,
			wire.WeightsRequest{Weights: map[string]float64{string(v1): 1}}, http.StatusOK)
	}
	st := e.waitStatus("miner", minerTok, 0, func(s wire.WeightsStatusResponse) bool { return s.Error != "" })
	if st.Job != wire.JobRunning {
		t.Errorf("the newest job: %+v", st)
	}
	// Close stops the running job; later PUTs are refused.
	e.srv.Close()
	st = get[wire.WeightsStatusResponse](e, mb+wire.PathWeightsStatus(0), minerTok)
	if st.Job != wire.JobFailed || !strings.Contains(st.Error, "closed") {
		t.Errorf("after Close: %+v", st)
	}
	e.wantError(http.MethodPut, mb+wire.PathWeights, minerTok, wire.WeightsRequest{Weights: map[string]float64{string(v1): 1}}, 503, "shutting down")
}

func TestChainSimWeightsValidation(t *testing.T) {
	e := newEnv(t, nil, nil)
	vb := base("validator") + wire.PathWeights
	e.wantError(http.MethodPut, vb, valTok, `{"weights":`, 400, "Invalid JSON")
	e.wantError(http.MethodPut, vb, valTok, `{"weights": {}}`, 400, "No weights provided")
	e.wantError(http.MethodPut, vb, valTok, `{}`, 400, "No weights provided")
	e.wantError(http.MethodPut, vb, valTok, `{"weights": {"": 1}}`, 400, "empty")
	e.wantError(http.MethodPut, vb, valTok, `{"weights": {"5M1": "x"}}`, 400, "Invalid JSON")
	big := `{"weights": {"5M1": 1}, "pad": "` + strings.Repeat("x", simserver.MaxBodyBytes) + `"}`
	e.wantError(http.MethodPut, vb, valTok, big, 413, "larger than")
	// Unknown fields are ignored, as Pylon's models do.
	expect[wire.WeightsResponse](e, http.MethodPut, vb, valTok, `{"weights": {"5M1": 1}, "extra": true}`, http.StatusOK)
	e.wantError(http.MethodGet, vb, valTok, nil, 405, "Method Not Allowed")
}

func TestChainSimAdmin(t *testing.T) {
	e := newEnv(t, func(g *sim.Genesis) { g.RelaxedAxonIPs = true }, nil)
	st := get[simserver.State](e, "/sim/state", "")
	if st.Head.Number != 0 || st.NetUID != netuid || st.Neurons != 4 || st.Hyperparams.MaxValidators != 2 {
		t.Errorf("state: %+v", st)
	}

	reg := expect[simserver.RegisterResponse](e, http.MethodPost, "/sim/neurons", "", simserver.RegisterRequest{Hotkey: "5NEW", Coldkey: "5CN", Stake: 7e9}, 200)
	if reg.UID != 4 {
		t.Errorf("register: uid %d, want 4", reg.UID)
	}
	e.wantError(http.MethodPost, "/sim/neurons", "", simserver.RegisterRequest{Hotkey: "5NEW"}, 409, "HotKeyAlreadyRegisteredInSubNet")
	e.wantError(http.MethodPost, "/sim/neurons", "", `{"hotkey": "5X", "stak": 1}`, 400, `unknown field "stak"`)
	expect[wire.DetailResponse](e, http.MethodPut, "/sim/neurons/"+string(m2)+"/stake", "", simserver.StakeRequest{Stake: 2e9}, 200)
	e.wantError(http.MethodPut, "/sim/neurons/5NOPE/stake", "", simserver.StakeRequest{Stake: 1}, 404, "HotKeyNotRegisteredInSubNet")
	expect[wire.DetailResponse](e, http.MethodPut, "/sim/neurons/"+string(m1)+"/axon", "", simserver.AxonRequest{IP: "127.0.0.1", Port: 8091}, 200)
	e.wantError(http.MethodPut, "/sim/neurons/"+string(m2)+"/axon", "", simserver.AxonRequest{IP: "10.0.0.1"}, 400, "InvalidPort")
	e.wantError(http.MethodPut, "/sim/neurons/"+string(m2)+"/axon", "", simserver.AxonRequest{IP: "nowhere", Port: 1}, 400, "not an IPv4")
	// A second serve_axon within the serving rate limit is refused as the chain does.
	e.wantError(http.MethodPut, "/sim/neurons/"+string(m1)+"/axon", "", simserver.AxonRequest{IP: "10.0.0.2", Port: 1}, 429, "ServingRateLimitExceeded")

	adv := expect[simserver.AdvanceResponse](e, http.MethodPost, "/sim/advance", "", simserver.AdvanceRequest{Blocks: 2}, 200)
	if adv.Head != wire.FromBlock(e.sim.Advance(0)) || adv.Head.Number != 2 {
		t.Errorf("advance: %+v", adv)
	}
	e.wantError(http.MethodPost, "/sim/advance", "", simserver.AdvanceRequest{Blocks: 0}, 400, "outside 1..10000")
	e.wantError(http.MethodPost, "/sim/advance", "", simserver.AdvanceRequest{Blocks: 10001}, 400, "outside 1..10000")

	mg := get[wire.NeuronsResponse](e, base("")+wire.PathLatestNeurons, "")
	if n := mg.Neurons["5NEW"]; n.UID != 4 || n.Stakes.Total != 7 {
		t.Errorf("registered neuron: %+v", n)
	}
	if n := mg.Neurons[string(m2)]; n.Stake != 2 {
		t.Errorf("m2's stake: %+v", n)
	}
	if a := mg.Neurons[string(m1)].AxonInfo; a != (wire.AxonInfo{IP: "127.0.0.1", Port: 8091, Protocol: 4}) {
		t.Errorf("m1's axon: %+v", a)
	}

	expect[wire.DetailResponse](e, http.MethodDelete, "/sim/neurons/5NEW", "", nil, 200)
	e.wantError(http.MethodDelete, "/sim/neurons/5NEW", "", nil, 404, "HotKeyNotRegisteredInSubNet")
	e.sim.Advance(1)
	if st := get[simserver.State](e, "/sim/state", ""); st.Neurons != 4 || st.Head.Number != 3 {
		t.Errorf("state after deregistering: %+v", st)
	}

	// PUT /sim/hyperparams keeps the fields it leaves out.
	expect[wire.Hyperparams](e, http.MethodPut, "/sim/hyperparams", "", `{"tempo": 20}`, 200)
	hp := expect[wire.Hyperparams](e, http.MethodPut, "/sim/hyperparams", "", `{"weights_rate_limit": 5}`, 200)
	if hp.Tempo != 20 || hp.WeightsRateLimit != 5 || hp.MaxValidators != 2 {
		t.Errorf("PUT hyperparams: %+v", hp)
	}
	e.wantError(http.MethodPut, "/sim/hyperparams", "", `{"tempo": 0}`, 400, "Tempo is 0")
	e.wantError(http.MethodPut, "/sim/hyperparams", "", `{"tmpo": 3}`, 400, `unknown field "tmpo"`)
	e.sim.Advance(1)
	if hp := get[wire.Hyperparams](e, "/sim/hyperparams", ""); hp.Tempo != 20 || hp.WeightsRateLimit != 5 {
		t.Errorf("GET hyperparams: %+v", hp)
	}
	if hp := get[wire.Hyperparams](e, wire.HyperparamsPath(netuid), ""); hp.Tempo != 20 {
		t.Errorf("hyperparams extension: %+v", hp)
	}

	if w := get[map[string]uint16](e, "/sim/weights/"+string(v1), ""); len(w) != 0 {
		t.Errorf("weights of v1: %v", w)
	}
	e.wantError(http.MethodGet, "/sim/weights/5NOPE", "", nil, 404, "HotKeyNotRegisteredInSubNet")
	e.wantError(http.MethodGet, "/sim/nothing", "", nil, 404, "Not Found")
	e.wantError(http.MethodGet, "/sim/advance", "", nil, 405, "Method Not Allowed")
}

func TestChainSimFaults(t *testing.T) {
	e := newEnv(t, nil, nil)
	latest := base("") + wire.PathLatestNeurons
	arm := func(body any) {
		t.Helper()
		expect[wire.DetailResponse](e, http.MethodPost, "/sim/faults", "", body, 200)
	}

	arm(map[string]any{"path_prefix": base("") + "/block", "count": 2, "status": 503})
	e.wantError(http.MethodGet, latest, "", nil, 503, "Fault injected")
	get[wire.Hyperparams](e, wire.HyperparamsPath(netuid), "") // another prefix
	e.wantError(http.MethodGet, latest, "", nil, 503, "Fault injected")
	get[wire.NeuronsResponse](e, latest, "")

	arm(map[string]any{"count": 1, "body": "malformed"})
	code, raw := e.do(http.MethodGet, latest, "", nil)
	if code != 200 || string(raw) != `{"block":` {
		t.Errorf("malformed: %d %s", code, raw)
	}

	arm(map[string]any{"count": 1, "body": "truncated"})
	resp, err := e.ts.Client().Get(e.ts.URL + latest)
	if err != nil {
		t.Fatal(err)
	}
	raw, err = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !errors.Is(err, io.ErrUnexpectedEOF) || len(raw) == 0 || json.Valid(raw) {
		t.Errorf("truncated: %d, %d bytes, err %v; want 200 and a body cut short", resp.StatusCode, len(raw), err)
	}

	arm(map[string]any{"count": 1, "delay_ms": 1})
	get[wire.NeuronsResponse](e, latest, "")

	// A delay of ten minutes ends with the client's context; ts.Close in the cleanup
	// would hang on a handler that kept sleeping. The context is cancelled once the
	// handler runs, so the request has taken the fault.
	arm(map[string]any{"count": 1, "delay_ms": 600_000, "status": 500})
	ctx, cancel := context.WithCancel(t.Context())
	entered := make(chan struct{})
	e.onRequest.Store(&requestHook{path: latest, ch: entered})
	go func() {
		<-entered
		cancel()
	}()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, e.ts.URL+latest, nil)
	if resp, err := e.ts.Client().Do(req); !errors.Is(err, context.Canceled) {
		if err == nil {
			resp.Body.Close()
		}
		t.Errorf("delayed request: %v, want context.Canceled", err)
	}
	e.onRequest.Store(nil)
	get[wire.NeuronsResponse](e, latest, "") // the fault was used up

	arm(map[string]any{"chain_kind": sim.KindMetagraph, "count": 1})
	e.wantError(http.MethodGet, latest, "", nil, 503, "fault injected into metagraph")
	get[wire.NeuronsResponse](e, latest, "")

	arm(map[string]any{"count": 5, "status": 502})
	arm(map[string]any{"chain_kind": sim.KindHead, "count": 5})
	expect[wire.DetailResponse](e, http.MethodDelete, "/sim/faults", "", nil, 200)
	get[wire.NeuronsResponse](e, latest, "")
	get[wire.CommitmentsResponse](e, base("")+wire.PathLatestCommitments, "")

	for _, bad := range []struct {
		body any
		want string
	}{
		{map[string]any{"count": 1, "status": 200}, "not an error status"},
		{map[string]any{"count": 0, "status": 503}, "count 0"},
		{map[string]any{"count": 1}, "does nothing"},
		{map[string]any{"count": 1, "body": "garbage"}, `body "garbage"`},
		{map[string]any{"count": 1, "body": "malformed", "status": 503}, "alternatives"},
		{map[string]any{"count": 1, "status": 503, "path_prefix": "/sim"}, "matches no API path"},
		{map[string]any{"chain_kind": "nope", "count": 1}, `chain_kind "nope" is unknown`},
		{map[string]any{"chain_kind": sim.KindHead, "count": 1, "status": 503}, "takes only count"},
		{map[string]any{"count": 1, "status": 503, "colour": "red"}, `unknown field "colour"`},
	} {
		e.wantError(http.MethodPost, "/sim/faults", "", bad.body, 400, bad.want)
	}
}

func TestChainSimNewValidates(t *testing.T) {
	c, err := sim.New(sim.Genesis{NetUID: 3})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		cfg  simserver.Config
		want string
	}{
		{simserver.Config{}, "Config.Chain is nil"},
		{simserver.Config{Chain: c, Identities: []simserver.Identity{{Name: "a/b", Hotkey: "5A", Token: "t"}}}, "not URL-path safe"},
		{simserver.Config{Chain: c, Identities: []simserver.Identity{{Name: "..", Hotkey: "5A", Token: "t"}}}, "not URL-path safe"},
		{simserver.Config{Chain: c, Identities: []simserver.Identity{{Name: "a", Hotkey: "5A", Token: "t"}, {Name: "a", Hotkey: "5B", Token: "u"}}}, "appears twice"},
		{simserver.Config{Chain: c, Identities: []simserver.Identity{{Name: "a", Token: "t"}}}, "no hotkey"},
		{simserver.Config{Chain: c, Identities: []simserver.Identity{{Name: "a", Hotkey: "5A"}}}, "no token"},
	} {
		if _, err := simserver.New(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%+v): %v, want an error containing %q", tc.cfg, err, tc.want)
		}
	}
	s, err := simserver.New(simserver.Config{Chain: c})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.NetUID() != 3 {
		t.Errorf("NetUID() = %d, want 3", s.NetUID())
	}
}

// TestChainSimCloseLeaksNothing stops a server with a job waiting for blocks that never
// come.
func TestChainSimCloseLeaksNothing(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	e := newEnv(t, nil, nil)
	expect[wire.WeightsResponse](e, http.MethodPut, base("miner")+wire.PathWeights, minerTok,
		wire.WeightsRequest{Weights: map[string]float64{string(v1): 1}}, http.StatusOK)
	e.waitStatus("miner", minerTok, 0, func(s wire.WeightsStatusResponse) bool { return s.Error != "" })
	e.ts.Close()
	e.ts.Client().CloseIdleConnections()
	e.srv.Close()
}
