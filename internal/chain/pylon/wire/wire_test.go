package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/computehorde/horde/internal/chain"
)

const (
	alice   = "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY"
	bob     = "5FHneW46xGXgs5mUiveU4sbTyGBzmstUspZC92UhjJM694ty"
	charlie = "5FLSigC9HGRKVhB9FiEo4Y3koPsNmBmLJbpXg2mp1hXcS59Y"
)

// decodeGolden decodes a fixture strictly: a field Pylon serializes that the type lacks
// fails the test, so the types cover all of Pylon's answer.
func decodeGolden(t *testing.T, name string, v any) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return data
}

func TestGoldenNeurons(t *testing.T) {
	var r NeuronsResponse
	decodeGolden(t, "neurons.json", &r)
	mg, err := r.ToMetagraph(12)
	if err != nil {
		t.Fatal(err)
	}
	if mg.Block.Number != 4920118 || mg.Block.Hash[0] != 0x9a || mg.Block.Hash[31] != 0x7f {
		t.Errorf("block = %d %x", mg.Block.Number, mg.Block.Hash)
	}
	if len(mg.Neurons) != 3 || mg.Neurons[0].UID != 0 || mg.Neurons[2].UID != 2 {
		t.Fatalf("neurons not sorted by uid: %+v", mg.Neurons)
	}
	a, b, c := mg.Neurons[0], mg.Neurons[1], mg.Neurons[2]
	// stakes.total, not stake, and in rao.
	if a.Stake != 1234567123456789 || !a.ValidatorPermit || a.LastUpdate != 4920001 || a.Hotkey != alice || a.Coldkey != bob {
		t.Errorf("alice = %+v", a)
	}
	if a.Axon.IsServing() {
		t.Errorf("0.0.0.0 axon is serving: %+v", a.Axon)
	}
	if !b.Axon.IsServing() || b.Axon.AddrPort() != netip.MustParseAddrPort("203.0.113.7:8000") || b.Axon.Protocol != 4 || b.Stake != 0 {
		t.Errorf("bob = %+v", b)
	}
	if !c.Axon.IsServing() || c.Axon.IP != netip.MustParseAddr("2001:db8::12") || c.Active || c.Stake != 500_000_000 {
		t.Errorf("charlie = %+v", c)
	}
	if vs := mg.Validators(); len(vs) != 1 || vs[0].Hotkey != alice {
		t.Errorf("validators = %+v", vs)
	}
}

func TestGoldenValidators(t *testing.T) {
	var r ValidatorsResponse
	decodeGolden(t, "validators.json", &r)
	n, err := r.Validators[0].ToNeuron()
	if err != nil || n.Hotkey != alice || !n.ValidatorPermit {
		t.Fatalf("validator = %+v, %v", n, err)
	}
}

func TestGoldenCommitments(t *testing.T) {
	var all CommitmentsResponse
	decodeGolden(t, "commitments.json", &all)
	got, err := DecodeCommitment(all.Commitments[bob])
	if err != nil || string(got) != `<M>{"always":2}</M>` {
		t.Errorf("bob's commitment = %q, %v", got, err)
	}
	if got, err := DecodeCommitment(all.Commitments[charlie]); err != nil || len(got) != 0 {
		t.Errorf("empty commitment = %q, %v", got, err)
	}
	var one CommitmentResponse
	decodeGolden(t, "commitment.json", &one)
	if one.Hotkey != bob || one.Block.Number != 4920118 || one.Commitment != all.Commitments[bob] {
		t.Errorf("commitment = %+v", one)
	}
	if EncodeCommitment([]byte(`<M>{"always":2}</M>`)) != one.Commitment {
		t.Errorf("EncodeCommitment differs from Pylon's form")
	}
	if _, err := DecodeCommitment("0xzz"); err == nil {
		t.Error("bad hex accepted")
	}
}

func TestGoldenWrites(t *testing.T) {
	var login LoginResponse
	decodeGolden(t, "login.json", &login)
	if login.NetUID != 12 || login.IdentityName != "validator" {
		t.Errorf("login = %+v", login)
	}
	var w WeightsResponse
	decodeGolden(t, "weights.json", &w)
	if w.Detail != WeightsScheduled || w.Count != 3 {
		t.Errorf("weights = %+v", w)
	}
	var st WeightsStatusResponse
	decodeGolden(t, "weights_status.json", &st)
	if !st.WeightsSubmitted {
		t.Errorf("status = %+v", st)
	}
	var set DetailResponse
	decodeGolden(t, "set_commitment.json", &set)
	if set.Detail != CommitmentSet {
		t.Errorf("set commitment = %+v", set)
	}
}

func TestGoldenErrors(t *testing.T) {
	for name, want := range map[string]string{
		"error_block_not_found.json":      "Block 123 not found.",
		"error_commitment_not_found.json": "Commitment not found.",
		"error_identity_not_found.json":   "Identity 'validator' not found",
		"error_route_not_found.json":      "Not Found",
		"error_validation.json":           "Validation failed for PUT /api/v1/identity/validator/subnet/12/weights",
	} {
		var d DetailResponse
		decodeGolden(t, name, &d)
		if d.Detail != want || (d.StatusCode != 404 && d.StatusCode != 400) {
			t.Errorf("%s = %+v", name, d)
		}
	}
	var v DetailResponse
	decodeGolden(t, "error_validation.json", &v)
	if len(v.Extra) != 1 || v.Extra[0].Key != "weights" {
		t.Errorf("extra = %+v", v.Extra)
	}
}

// TestServedShapeIsPylons holds what horde serves (FromMetagraph) to exactly the fields, and
// JSON kinds, of Pylon's answer.
func TestServedShapeIsPylons(t *testing.T) {
	raw := decodeGolden(t, "neurons.json", &NeuronsResponse{})
	var golden map[string]any
	if err := json.Unmarshal(raw, &golden); err != nil {
		t.Fatal(err)
	}
	var r NeuronsResponse
	decodeGolden(t, "neurons.json", &r)
	mg, err := r.ToMetagraph(12)
	if err != nil {
		t.Fatal(err)
	}
	served, err := json.Marshal(FromMetagraph(mg))
	if err != nil {
		t.Fatal(err)
	}
	var ours map[string]any
	if err := json.Unmarshal(served, &ours); err != nil {
		t.Fatal(err)
	}
	sameShape(t, "$", golden, ours)

	// The conversion keeps what chain.Neuron holds.
	back, err := FromMetagraph(mg).ToMetagraph(12)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(back.Neurons, mg.Neurons) || back.Block != mg.Block {
		t.Errorf("round trip changed the metagraph:\n%+v\n%+v", back, mg)
	}
}

func sameShape(t *testing.T, at string, want, got any) {
	t.Helper()
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			t.Errorf("%s: got %T, want an object", at, got)
			return
		}
		if wk, gk := slices.Sorted(maps.Keys(w)), slices.Sorted(maps.Keys(g)); !slices.Equal(wk, gk) {
			t.Errorf("%s: keys %v, want %v", at, gk, wk)
			return
		}
		for k := range w {
			sameShape(t, at+"."+k, w[k], g[k])
		}
	default:
		if jsonKind(want) != jsonKind(got) {
			t.Errorf("%s: %T, want %T", at, got, want)
		}
	}
}

func jsonKind(v any) string {
	switch v.(type) {
	case string:
		return "string"
	case float64:
		return "number"
	case bool:
		return "bool"
	case nil:
		return "null"
	}
	return "other"
}

func TestBadAnswers(t *testing.T) {
	good := func() NeuronsResponse {
		var r NeuronsResponse
		decodeGolden(t, "neurons.json", &r)
		return r
	}
	cases := map[string]func(r *NeuronsResponse){
		"short hash": func(r *NeuronsResponse) { r.Block.Hash = "0x123abc" },
		"bad ip": func(r *NeuronsResponse) {
			n := r.Neurons[bob]
			n.AxonInfo.IP = "not-an-ip"
			r.Neurons[bob] = n
		},
		"negative stake": func(r *NeuronsResponse) {
			n := r.Neurons[bob]
			n.Stakes.Total = -1
			r.Neurons[bob] = n
		},
		"protocol out of range": func(r *NeuronsResponse) {
			n := r.Neurons[bob]
			n.AxonInfo.Protocol = 300
			r.Neurons[bob] = n
		},
		"keyed under another hotkey": func(r *NeuronsResponse) {
			r.Neurons["5DAAnrj7VHTznn2AWBemMuyBwZWs6FNFjdyVXUeYum3PTXFy"] = r.Neurons[bob]
		},
		"duplicate uid": func(r *NeuronsResponse) {
			n := r.Neurons[charlie]
			n.UID = 1
			r.Neurons[charlie] = n
		},
	}
	for name, mutate := range cases {
		r := good()
		mutate(&r)
		if _, err := r.ToMetagraph(12); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	r := good()
	n := r.Neurons[charlie]
	n.UID = 1
	r.Neurons[charlie] = n
	if _, err := r.ToMetagraph(12); !errors.Is(err, ErrDuplicateUID) {
		t.Errorf("duplicate uid: %v", err)
	}
}

func TestRao(t *testing.T) {
	for tao, want := range map[float64]uint64{0: 0, 0.5: 500_000_000, 1234567.123456789: 1234567123456789, 1e-9: 1} {
		if got, err := Rao(tao); err != nil || got != want {
			t.Errorf("Rao(%v) = %d, %v; want %d", tao, got, err, want)
		}
	}
	for _, bad := range []float64{-1, 1e12} {
		if _, err := Rao(bad); err == nil {
			t.Errorf("Rao(%v) accepted", bad)
		}
	}
	if TAO(1_500_000_000) != 1.5 {
		t.Error("TAO")
	}
}

func TestHyperparamsRoundTrip(t *testing.T) {
	hp := chain.DefaultHyperparams()
	hp.StakeThreshold = 7
	if got := FromHyperparams(hp).ToHyperparams(); got != hp {
		t.Errorf("round trip: %+v != %+v", got, hp)
	}
}
