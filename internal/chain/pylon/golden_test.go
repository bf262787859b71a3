package pylon_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/computehorde/horde/internal/chain"
	"github.com/computehorde/horde/internal/chain/pylon"
	"github.com/computehorde/horde/internal/chain/pylon/wire"
)

// goldenPylon answers like Pylon 0.3.0, from the fixtures written from Pylon's own models
// (wire/testdata): every endpoint the client uses, and the 0.3.0 answers to the endpoints
// it does not have.
func goldenPylon(t *testing.T) *httptest.Server {
	t.Helper()
	base := wire.SubnetBase("validator", netuid)
	routes := map[string]struct {
		status  int
		fixture string
	}{
		"POST " + wire.PathLogin("validator"):           {200, "login.json"},
		"POST " + wire.PathLogin("nobody"):              {404, "error_identity_not_found.json"},
		"GET " + wire.HyperparamsPath(netuid):           {404, "error_route_not_found.json"},
		"GET " + base + wire.PathLatestNeurons:          {200, "neurons.json"},
		"GET " + base + wire.PathNeuronsAt(4920118):     {200, "neurons.json"},
		"GET " + base + wire.PathNeuronsAt(123):         {404, "error_block_not_found.json"},
		"GET " + base + wire.PathLatestValidators:       {200, "validators.json"},
		"GET " + base + wire.PathValidatorsAt(4920118):  {200, "validators.json"},
		"GET " + base + wire.PathLatestCommitments:      {200, "commitments.json"},
		"GET " + base + wire.PathCommitment(bob):        {200, "commitment.json"},
		"GET " + base + wire.PathCommitment(alice):      {404, "error_commitment_not_found.json"},
		"GET " + base + wire.PathOwnCommitment:          {200, "commitment.json"},
		"PUT " + base + wire.PathWeights:                {200, "weights.json"},
		"GET " + base + wire.PathWeightsStatus(4920119): {404, "error_route_not_found.json"},
		"POST " + base + wire.PathCommitments:           {201, "set_commitment.json"},
	}
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rt, ok := routes[r.Method+" "+r.URL.Path]
		if !ok {
			rt.status, rt.fixture = 404, "error_route_not_found.json"
		}
		data, err := os.ReadFile(filepath.Join("wire", "testdata", rt.fixture))
		if err != nil {
			t.Error(err)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(rt.status)
		w.Write(data)
	}))
	t.Cleanup(hs.Close)
	return hs
}

func TestClientDecodesPylonGoldenAnswers(t *testing.T) {
	hs := goldenPylon(t)
	ctx := context.Background()
	c, err := pylon.New(ctx, pylon.Config{URL: hs.URL, Identity: "validator", Token: "t"})
	if err != nil {
		t.Fatal(err)
	}
	if c.NetUID() != 12 || !strings.Contains(c.HyperparamsSource(), "configuration") {
		t.Errorf("netuid %d, hyperparameters from %s", c.NetUID(), c.HyperparamsSource())
	}
	if hp, err := c.Hyperparams(ctx, netuid); err != nil || hp != chain.DefaultHyperparams() {
		t.Errorf("hyperparams from configuration: %+v, %v", hp, err)
	}
	head, err := c.Head(ctx)
	if err != nil || head.Number != 4920118 {
		t.Fatalf("head %+v, %v", head, err)
	}
	for _, at := range []uint64{0, 4920118} {
		mg, err := c.Metagraph(ctx, netuid, at)
		if err != nil || len(mg.Neurons) != 3 || mg.Neurons[0].Stake != 1234567123456789 {
			t.Fatalf("metagraph at %d: %+v, %v", at, mg, err)
		}
		vs, _, err := c.Validators(ctx, at)
		if err != nil || len(vs) != 1 || vs[0].Hotkey != alice {
			t.Errorf("validators at %d: %+v, %v", at, vs, err)
		}
	}
	if _, err := c.Metagraph(ctx, netuid, 123); !errors.Is(err, chain.ErrUnknownBlock) || !strings.Contains(err.Error(), "Block 123 not found.") {
		t.Errorf("unknown block: %v", err)
	}
	all, err := c.Commitments(ctx, netuid)
	if err != nil || string(all[bob]) != `<M>{"always":2}</M>` || len(all) != 2 {
		t.Errorf("commitments %q, %v", all, err)
	}
	if got, err := c.Commitment(ctx, bob); err != nil || string(got) != `<M>{"always":2}</M>` {
		t.Errorf("commitment %q, %v", got, err)
	}
	if _, err := c.Commitment(ctx, alice); !errors.Is(err, pylon.ErrNoCommitment) {
		t.Errorf("no commitment: %v", err)
	}
	if _, who, err := c.OwnCommitment(ctx); err != nil || who != bob {
		t.Errorf("own commitment of %s, %v", who, err)
	}
	r, err := c.SetWeights(ctx, "", netuid, map[chain.Hotkey]float64{bob: 1, charlie: 0.5}, 0)
	if err != nil || !r.Pending || r.Block != 4920119 || !r.CommitReveal {
		t.Errorf("set weights %+v, %v", r, err)
	}
	if _, err := c.WeightsStatus(ctx, r.Block); !errors.Is(err, chain.ErrNotSupported) {
		t.Errorf("weights status on 0.3.0: %v", err)
	}
	if err := c.SetCommitment(ctx, "", netuid, []byte("x")); err != nil {
		t.Errorf("set commitment: %v", err)
	}
	if err := c.ServeAxon(ctx, alice, netuid, netip.MustParseAddr("203.0.113.7"), 8000); !errors.Is(err, chain.ErrServeAxonUnsupported) {
		t.Errorf("serve axon: %v", err)
	}
	if _, err := pylon.New(ctx, pylon.Config{URL: hs.URL, Identity: "nobody", Token: "t"}); !errors.Is(err, pylon.ErrUnknownIdentity) {
		t.Errorf("unknown identity: %v", err)
	}
	if _, err := pylon.New(ctx, pylon.Config{URL: hs.URL, Identity: "validator", Token: "t", NetUID: 13}); err == nil {
		t.Error("a netuid other than the identity's was accepted")
	}
}
