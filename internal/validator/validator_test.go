package validator

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.uber.org/goleak"

	"github.com/computehorde/horde/internal/chain"
	"github.com/computehorde/horde/internal/chain/sim"
	"github.com/computehorde/horde/internal/clock/clocktest"
	"github.com/computehorde/horde/internal/keys"
	"github.com/computehorde/horde/internal/protocol"
	"github.com/computehorde/horde/internal/store"
	"github.com/computehorde/horde/internal/syncbuf"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const netuid chain.NetUID = 12

func mustKey(t *testing.T, uri string) *keys.Keypair {
	t.Helper()
	k, err := keys.FromURI(uri)
	if err != nil {
		t.Fatalf("keys.FromURI(%q): %v", uri, err)
	}
	return k
}

// env is one validator (//Alice) on a simulated subnet where //Bob is registered as a miner.
type env struct {
	t          *testing.T
	alice, bob *keys.Keypair
	chain      *sim.Chain
	metagraph  *chain.MetagraphCache // refreshed at start and by serveAxon
	db         *store.DB
	clock      *clocktest.Fake
	logs       *syncbuf.Buffer
	v          *Validator
}

func newEnv(t *testing.T, tweak func(*Config)) *env {
	t.Helper()
	e := &env{t: t, alice: mustKey(t, "//Alice"), bob: mustKey(t, "//Bob"), clock: clocktest.NewFake(time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)), logs: &syncbuf.Buffer{}}
	permit := true
	var err error
	e.chain, err = sim.New(sim.Genesis{
		NetUID:         netuid,
		RelaxedAxonIPs: true,
		Neurons: []sim.NeuronSpec{
			{Hotkey: chain.Hotkey(e.alice.SS58()), Coldkey: "c1", Stake: 1e13, ValidatorPermit: &permit},
			{Hotkey: chain.Hotkey(e.bob.SS58()), Coldkey: "c2"},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	e.db, err = store.Open(t.Context(), store.Config{DSN: "sqlite::memory:"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.db.Close() })
	logger := slog.New(slog.NewTextHandler(io.MultiWriter(t.Output(), e.logs), nil))
	if e.metagraph, err = chain.NewMetagraphCache(chain.CacheConfig{Chain: e.chain, NetUID: netuid, Logger: logger}); err != nil {
		t.Fatal(err)
	}
	e.refresh()
	cfg := Config{
		Keypair: e.alice, Chain: e.chain, Metagraph: e.metagraph, NetUID: netuid, Store: e.db, Clock: e.clock,
		Logger: logger,
	}
	if tweak != nil {
		tweak(&cfg)
	}
	e.v, err = New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// serveAxon announces the miner's axon on 127.0.0.1:port and publishes it in a block.
func (e *env) serveAxon(port int) {
	e.t.Helper()
	err := e.chain.ServeAxon(e.t.Context(), chain.Hotkey(e.bob.SS58()), netuid, netip.MustParseAddr("127.0.0.1"), uint16(port))
	if err != nil {
		e.t.Fatal(err)
	}
	e.chain.Advance(1)
	e.refresh()
}

// refresh brings the validator's metagraph cache to the chain's head.
func (e *env) refresh() {
	e.t.Helper()
	if err := e.metagraph.Refresh(e.t.Context()); err != nil {
		e.t.Fatal(err)
	}
}

// run runs spec on Bob and checks that RunJob records the outcome.
func (e *env) run(ctx context.Context, spec protocol.V2JobRequest) *JobResult {
	e.t.Helper()
	res, err := e.v.RunJob(ctx, e.bob.SS58(), spec)
	if err != nil {
		e.t.Fatalf("RunJob: %v", err)
	}
	if res.UUID != spec.UUID {
		e.t.Errorf("result UUID = %q, want %q", res.UUID, spec.UUID)
	}
	return res
}

// checkStored checks that the job's row holds spec as upstream's JSON and ends in the
// result's status with the result stored.
func (e *env) checkStored(spec protocol.V2JobRequest, res *JobResult) {
	e.t.Helper()
	j, err := e.db.GetJob(e.t.Context(), res.UUID)
	if err != nil {
		e.t.Fatalf("GetJob: %v", err)
	}
	if want, err := protocol.Encode(&spec); err != nil || !bytes.Equal(j.Spec, want) {
		e.t.Errorf("stored spec = %s, want upstream's V2JobRequest JSON %s (%v)", j.Spec, want, err)
	}
	if j.Status != string(res.Status) || j.Role != store.RoleValidator ||
		j.ValidatorHotkey != e.alice.SS58() {
		e.t.Errorf("job row: status %q role %q validator %q; want %q, validator, %s",
			j.Status, j.Role, j.ValidatorHotkey, res.Status, e.alice.SS58())
	}
	var stored JobResult
	if err := json.Unmarshal(j.Result, &stored); err != nil {
		e.t.Fatalf("stored result %s: %v", j.Result, err)
	}
	if stored.Status != res.Status || stored.Reason != res.Reason || stored.Stdout != res.Stdout {
		e.t.Errorf("stored result = %+v, want %+v", stored, *res)
	}
}

// testSpec is a job with every field the validator forwards set.
func testSpec(class protocol.ExecutorClass) protocol.V2JobRequest {
	return protocol.V2JobRequest{
		UUID:          uuid.NewString(),
		ExecutorClass: class,
		DockerImage:   "backenddevelopersltd/compute-horde-job-echo:v0-latest",
		Args:          []string{"echo", "hello horde"},
		Env:           protocol.OrderedMapOf(protocol.Entry[string]{Key: "GREETING", Value: "hi"}),
		Volume: &protocol.Volume{Inline: &protocol.InlineVolume{
			Contents: "UEsFBgAAAAAAAAAAAAAAAAAAAAAAAA==", // an empty zip
		}},
		DownloadTimeLimit:  1,
		ExecutionTimeLimit: 2,
		UploadTimeLimit:    3,
	}
}

func TestNewRequiresDependencies(t *testing.T) {
	e := newEnv(t, nil)
	for name, cfg := range map[string]Config{
		"Keypair":   {Chain: e.chain, Metagraph: e.metagraph, Store: e.db},
		"Chain":     {Keypair: e.alice, Metagraph: e.metagraph, Store: e.db},
		"Metagraph": {Keypair: e.alice, Chain: e.chain, Store: e.db},
		"Store":     {Keypair: e.alice, Chain: e.chain, Metagraph: e.metagraph},
	} {
		if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), name+" is required") {
			t.Errorf("New without %s: err = %v", name, err)
		}
	}
	if e.v.Hotkey() != e.alice.SS58() {
		t.Errorf("Hotkey() = %s, want %s", e.v.Hotkey(), e.alice.SS58())
	}
}
