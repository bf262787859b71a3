package miner

import (
	"context"
	"errors"
	"log/slog"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"go.uber.org/goleak"

	"github.com/computehorde/horde/internal/chain"
	"github.com/computehorde/horde/internal/chain/sim"
	"github.com/computehorde/horde/internal/keys"
	"github.com/computehorde/horde/internal/protocol"
	"github.com/computehorde/horde/internal/store"
	"github.com/computehorde/horde/internal/wsconn"
)

const netuid chain.NetUID = 12

func mustKey(t *testing.T, uri string) *keys.Keypair {
	t.Helper()
	k, err := keys.FromURI(uri)
	if err != nil {
		t.Fatalf("keys.FromURI(%q): %v", uri, err)
	}
	return k
}

// executorScript plays an executor over the real executor endpoint.
type executorScript func(ctx context.Context, t *testing.T, conn *wsconn.Conn, initial *protocol.V0InitialJobRequest)

// scriptedExecutors is an ExecutorManager whose executors run a script in-process.
type scriptedExecutors struct {
	t      *testing.T
	url    string
	script executorScript
	fail   error
	wg     sync.WaitGroup
}

func (s *scriptedExecutors) Start(ctx context.Context, req ExecutorRequest) error {
	if s.fail != nil {
		return s.fail
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		conn, err := wsconn.Dial(ctx, s.url+ExecutorPathPrefix+req.Token)
		if err != nil {
			s.t.Errorf("executor dial: %v", err)
			return
		}
		defer conn.CloseNow()
		initial, ok := tryRead(ctx, s.t, conn, protocol.DecodeMinerToExecutor).(*protocol.V0InitialJobRequest)
		if !ok {
			s.t.Errorf("executor: want V0InitialJobRequest first")
			return
		}
		s.script(ctx, s.t, conn, initial)
	}()
	return nil
}

// happyExecutor reports every stage and finishes with stdout "ok".
func happyExecutor(ctx context.Context, t *testing.T, conn *wsconn.Conn, initial *protocol.V0InitialJobRequest) {
	id := initial.JobUUID
	send(ctx, t, conn, &protocol.V0ExecutorReadyRequest{JobUUID: id})
	if _, ok := tryRead(ctx, t, conn, protocol.DecodeMinerToExecutor).(*protocol.V0JobRequest); !ok {
		t.Errorf("executor: want V0JobRequest")
		return
	}
	send(ctx, t, conn, &protocol.V0VolumesReadyRequest{JobUUID: id})
	send(ctx, t, conn, &protocol.V0ExecutionDoneRequest{JobUUID: id})
	send(ctx, t, conn, &protocol.V0JobFinishedRequest{JobUUID: id, DockerProcessStdout: "ok"})
}

// readyThenHold reports ready and then holds its executor until the miner goes away.
func readyThenHold(ctx context.Context, t *testing.T, conn *wsconn.Conn, initial *protocol.V0InitialJobRequest) {
	send(ctx, t, conn, &protocol.V0ExecutorReadyRequest{JobUUID: initial.JobUUID})
	_, _ = conn.ReadFrame(ctx)
}

type harness struct {
	t         *testing.T
	chain     *sim.Chain
	metagraph *chain.MetagraphCache // refreshed once, at block 0
	miner     *Miner
	db        *store.DB
	url       string
	execs     *scriptedExecutors
	alice     *keys.Keypair // validator with permit and stake
	bob       *keys.Keypair // the miner
	dave      *keys.Keypair // registered, no permit
}

func newHarness(t *testing.T, script executorScript, manifest ...protocol.ManifestEntry) *harness {
	t.Helper()
	h := &harness{t: t, alice: mustKey(t, "//Alice"), bob: mustKey(t, "//Bob"), dave: mustKey(t, "//Dave")}
	permit, noPermit := true, false
	var err error
	h.chain, err = sim.New(sim.Genesis{
		NetUID: netuid,
		Neurons: []sim.NeuronSpec{
			{Hotkey: chain.Hotkey(h.alice.SS58()), Coldkey: "c1", Stake: 1e13, ValidatorPermit: &permit},
			{Hotkey: chain.Hotkey(h.bob.SS58()), Coldkey: "c2"},
			{Hotkey: chain.Hotkey(h.dave.SS58()), Coldkey: "c3", Stake: 1e13, ValidatorPermit: &noPermit},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	h.db, err = store.Open(t.Context(), store.Config{DSN: "sqlite::memory:"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.db.Close() })
	if len(manifest) == 0 {
		manifest = []protocol.ManifestEntry{{Class: protocol.ExecutorClassAlwaysOnTest, Count: 1}}
	}
	h.execs = &scriptedExecutors{t: t, script: script}
	h.metagraph = newMetagraphCache(t, h.chain)
	if err := h.metagraph.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	h.miner, err = New(Config{
		Keypair: h.bob, Chain: h.chain, Metagraph: h.metagraph, NetUID: netuid, Store: h.db, Executors: h.execs,
		Manifest: manifest, MinValidatorStake: 1000, ExecutorStartTimeout: 5 * time.Second,
		Logger: slog.New(slog.NewTextHandler(t.Output(), nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h.miner.Handler())
	h.url = "ws" + strings.TrimPrefix(srv.URL, "http")
	h.execs.url = h.url
	t.Cleanup(func() {
		h.miner.Close()
		srv.Close()
		h.execs.wg.Wait()
	})
	return h
}

// newMetagraphCache returns an empty cache over c, logging to the test's output; tests drive
// it with Refresh.
func newMetagraphCache(t *testing.T, c chain.Chain) *chain.MetagraphCache {
	t.Helper()
	mc, err := chain.NewMetagraphCache(chain.CacheConfig{Chain: c, NetUID: netuid, Logger: slog.New(slog.NewTextHandler(t.Output(), nil))})
	if err != nil {
		t.Fatal(err)
	}
	return mc
}

func send(ctx context.Context, t *testing.T, c *wsconn.Conn, m protocol.Message) {
	t.Helper()
	if err := c.Send(ctx, m); err != nil {
		t.Errorf("send %s: %v", m.MessageType(), err)
	}
}

// tryRead reads and decodes one frame, reporting failures with t.Errorf so that executor
// goroutines can use it; it returns nil on failure.
func tryRead(ctx context.Context, t *testing.T, c *wsconn.Conn, decode func([]byte) (protocol.Message, error)) protocol.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	frame, err := c.ReadFrame(ctx)
	if err != nil {
		t.Errorf("read: %v", err)
		return nil
	}
	m, err := decode(frame)
	if err != nil {
		t.Errorf("decode %s: %v", frame, err)
		return nil
	}
	return m
}

// readMsg is tryRead for the test goroutine: it stops the test on failure.
func readMsg(ctx context.Context, t *testing.T, c *wsconn.Conn, decode func([]byte) (protocol.Message, error)) protocol.Message {
	t.Helper()
	m := tryRead(ctx, t, c, decode)
	if m == nil {
		t.FailNow()
	}
	return m
}

func (h *harness) authMsg(k *keys.Keypair, ts time.Time) *protocol.ValidatorAuthForMiner {
	a := &protocol.ValidatorAuthForMiner{ValidatorHotkey: k.SS58(), MinerHotkey: h.bob.SS58(), Timestamp: ts.Unix()}
	a.Signature = k.Sign(a.BlobForSigning()).Hex()
	return a
}

// connect dials as validator k and sends auth.
func (h *harness) connect(k *keys.Keypair, auth *protocol.ValidatorAuthForMiner) *wsconn.Conn {
	h.t.Helper()
	c, err := wsconn.Dial(h.t.Context(), h.url+ValidatorPathPrefix+k.SS58())
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { c.CloseNow() })
	send(h.t.Context(), h.t, c, auth)
	return c
}

func (h *harness) read(c *wsconn.Conn) protocol.Message {
	h.t.Helper()
	return readMsg(h.t.Context(), h.t, c, protocol.DecodeMinerToValidator)
}

// authed connects as Alice and consumes the manifest.
func (h *harness) authed() *wsconn.Conn {
	h.t.Helper()
	c := h.connect(h.alice, h.authMsg(h.alice, time.Now()))
	m, ok := h.read(c).(*protocol.V0ExecutorManifestRequest)
	if !ok {
		h.t.Fatalf("want the manifest right after auth")
	}
	if n := m.Manifest.Count(protocol.ExecutorClassAlwaysOnTest); n != 1 {
		h.t.Errorf("manifest = %v, want always_on.test: 1", m.Manifest)
	}
	return c
}

func (h *harness) initialRequest(id string, class protocol.ExecutorClass) *protocol.V0InitialJobRequest {
	p := protocol.JobStartedReceiptPayload{
		JobUUID: id, MinerHotkey: h.bob.SS58(), ValidatorHotkey: h.alice.SS58(),
		Timestamp: protocol.NewTimestamp(time.Now()), ExecutorClass: class, IsOrganic: true, TTL: 7,
	}
	return &protocol.V0InitialJobRequest{
		JobUUID: id, ExecutorClass: class, DockerImage: new("img"),
		JobStartedReceiptPayload: p, JobStartedReceiptSignature: h.alice.Sign(p.BlobForSigning()).Hex(),
		ExecutorTiming: &protocol.ExecutorTiming{AllowedLeeway: 5, DownloadTimeLimit: 5, ExecutionTimeLimit: 5, UploadTimeLimit: 5},
	}
}

func TestAuthRefusals(t *testing.T) {
	h := newHarness(t, happyExecutor)
	charlie := mustKey(t, "//Charlie") // not registered
	stale := h.authMsg(h.alice, time.Now().Add(-time.Minute))
	badSig := h.authMsg(h.alice, time.Now())
	badSig.Signature = h.dave.Sign(badSig.BlobForSigning()).Hex()
	wrongMiner := h.authMsg(h.alice, time.Now())
	wrongMiner.MinerHotkey = h.dave.SS58()
	wrongMiner.Signature = h.alice.Sign(wrongMiner.BlobForSigning()).Hex()

	tests := []struct {
		name string
		key  *keys.Keypair
		auth *protocol.ValidatorAuthForMiner
		want string
	}{
		{"unregistered", charlie, h.authMsg(charlie, time.Now()), "unknown validator"},
		{"no permit", h.dave, h.authMsg(h.dave, time.Now()), "no validator permit"},
		{"stale timestamp", h.alice, stale, "msg too old"},
		{"future timestamp", h.alice, h.authMsg(h.alice, time.Now().Add(time.Minute)), "msg too old"},
		{"bad signature", h.alice, badSig, "signature mismatches"},
		{"wrong miner", h.alice, wrongMiner, "wrong miner hotkey"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := h.connect(tt.key, tt.auth)
			e, ok := h.read(c).(*protocol.GenericError)
			if !ok || e.Details == nil || !strings.Contains(*e.Details, tt.want) {
				t.Fatalf("got %#v, want GenericError containing %q", e, tt.want)
			}
			if _, err := c.ReadFrame(t.Context()); err == nil {
				t.Errorf("connection still open after refusal")
			}
		})
	}
}

// TestRefusedBeforeTheFirstMetagraph: until the miner's cache has read the chain once, it
// cannot tell validators apart and refuses them all, asking them to retry.
func TestRefusedBeforeTheFirstMetagraph(t *testing.T) {
	h := newHarness(t, happyExecutor)
	h.miner.cfg.Metagraph = newMetagraphCache(t, h.chain) // never refreshed
	c := h.connect(h.alice, h.authMsg(h.alice, time.Now()))
	e, ok := h.read(c).(*protocol.GenericError)
	if !ok || e.Details == nil || *e.Details != "Miner cannot check validators right now; retry later" {
		t.Fatalf("got %#v, want the retry-later GenericError", e)
	}
}

func TestAuthReplayRefused(t *testing.T) {
	h := newHarness(t, happyExecutor)
	auth := h.authMsg(h.alice, time.Now())
	c := h.connect(h.alice, auth)
	if _, ok := h.read(c).(*protocol.V0ExecutorManifestRequest); !ok {
		t.Fatal("first connection: want manifest")
	}
	c2 := h.connect(h.alice, auth)
	e, ok := h.read(c2).(*protocol.GenericError)
	if !ok || !strings.Contains(*e.Details, "replayed") {
		t.Fatalf("replayed auth: got %#v, want GenericError about replay", e)
	}
}

func TestMalformedMessageKeepsConnection(t *testing.T) {
	h := newHarness(t, happyExecutor)
	c := h.authed()
	send(t.Context(), t, c, &protocol.V0ExecutionDoneRequest{JobUUID: "x"}) // a miner->validator message
	e, ok := h.read(c).(*protocol.GenericError)
	if !ok || !strings.Contains(*e.Details, "Malformed message") {
		t.Fatalf("got %#v, want Malformed message error", e)
	}
	send(t.Context(), t, c, &protocol.V0MainHotkeyMessage{})
	if m, ok := h.read(c).(*protocol.V0MainHotkeyMessage); !ok || *m.MainHotkey != h.bob.SS58() {
		t.Fatalf("after a malformed message the connection must still serve; got %#v", m)
	}
}

func TestJobFlowRelaysAndCountersigns(t *testing.T) {
	h := newHarness(t, happyExecutor)
	c := h.authed()
	ctx := t.Context()
	id := "7a4c0f5e-2d3b-4e8a-9c61-0b5f3e2d1a94"
	send(ctx, t, c, h.initialRequest(id, protocol.ExecutorClassAlwaysOnTest))
	if _, ok := h.read(c).(*protocol.V0AcceptJobRequest); !ok {
		t.Fatal("want V0AcceptJobRequest")
	}
	if _, ok := h.read(c).(*protocol.V0ExecutorReadyRequest); !ok {
		t.Fatal("want V0ExecutorReadyRequest")
	}
	send(ctx, t, c, &protocol.V0JobRequest{JobUUID: id, ExecutorClass: protocol.ExecutorClassAlwaysOnTest,
		DockerImage: "img", DockerRunOptionsPreset: protocol.DockerRunOptionsPresetNone, DockerRunCmd: []string{}})
	for _, want := range []string{"V0VolumesReadyRequest", "V0ExecutionDoneRequest", "V0JobFinishedRequest"} {
		if got := h.read(c).MessageType(); got != want {
			t.Fatalf("got %s, want %s", got, want)
		}
	}
	h.execs.wg.Wait()

	r, err := h.db.GetReceipt(ctx, string(protocol.ReceiptTypeJobStarted), id)
	if err != nil {
		t.Fatalf("JobStarted receipt not stored: %v", err)
	}
	rec, err := protocol.DecodeReceipt([]byte(`{"payload":` + string(r.Payload) + `,"validator_signature":"` + r.ValidatorSignature + `","miner_signature":"` + r.MinerSignature + `"}`))
	if err != nil {
		t.Fatalf("stored receipt does not decode: %v", err)
	}
	if err := keys.Verify(h.bob.SS58(), rec.Payload.BlobForSigning(), r.MinerSignature); err != nil {
		t.Errorf("miner countersignature does not verify: %v", err)
	}
	j, err := h.db.GetJob(ctx, id)
	if err != nil || j.Status != statusFinished {
		t.Errorf("job = %+v, %v; want status finished", j, err)
	}
}

func TestDeclines(t *testing.T) {
	h := newHarness(t, readyThenHold)
	c := h.authed()
	ctx := t.Context()

	send(ctx, t, c, h.initialRequest("00000000-0000-4000-8000-000000000001", protocol.ExecutorClassAlwaysOnGPU24GB))
	d, ok := h.read(c).(*protocol.V0DeclineJobRequest)
	if !ok || d.Reason != protocol.JobRejectionReasonClassNotOffered {
		t.Fatalf("class not in manifest: got %#v, want decline class_not_offered", d)
	}

	send(ctx, t, c, h.initialRequest("00000000-0000-4000-8000-000000000002", protocol.ExecutorClassAlwaysOnTest))
	if _, ok := h.read(c).(*protocol.V0AcceptJobRequest); !ok {
		t.Fatal("first job: want accept")
	}
	if _, ok := h.read(c).(*protocol.V0ExecutorReadyRequest); !ok {
		t.Fatal("first job: want executor ready")
	}
	send(ctx, t, c, h.initialRequest("00000000-0000-4000-8000-000000000003", protocol.ExecutorClassAlwaysOnTest))
	d, ok = h.read(c).(*protocol.V0DeclineJobRequest)
	if !ok || d.Reason != protocol.JobRejectionReasonBusy {
		t.Fatalf("all executors busy: got %#v, want decline busy", d)
	}
	// The decline carries the running job's countersigned JobStarted receipt as its excuse.
	if len(d.Receipts) != 1 || d.Receipts[0].Payload.Header().JobUUID != "00000000-0000-4000-8000-000000000002" {
		t.Fatalf("busy decline excuses = %+v, want the running job's JobStarted receipt", d.Receipts)
	}
	if err := d.Receipts[0].VerifyMinerSignature(); err != nil {
		t.Errorf("excuse receipt's miner signature: %v", err)
	}
	if err := d.Receipts[0].VerifyValidatorSignature(); err != nil {
		t.Errorf("excuse receipt's validator signature: %v", err)
	}
}

func TestInitialRequestChecks(t *testing.T) {
	h := newHarness(t, readyThenHold)
	c := h.authed()
	ctx := t.Context()

	bad := h.initialRequest("not-a-uuid/../x", protocol.ExecutorClassAlwaysOnTest)
	send(ctx, t, c, bad)
	if e, ok := h.read(c).(*protocol.GenericError); !ok || !strings.Contains(*e.Details, "job_uuid must be") {
		t.Fatalf("non-UUID job_uuid: got %#v, want a GenericError", e)
	}

	// A receipt for another job is not stored; the job itself goes on, as upstream's does.
	id := "00000000-0000-4000-8000-000000000007"
	req := h.initialRequest(id, protocol.ExecutorClassAlwaysOnTest)
	other := h.initialRequest("00000000-0000-4000-8000-000000000008", protocol.ExecutorClassAlwaysOnTest)
	req.JobStartedReceiptPayload, req.JobStartedReceiptSignature = other.JobStartedReceiptPayload, other.JobStartedReceiptSignature
	send(ctx, t, c, req)
	if _, ok := h.read(c).(*protocol.V0AcceptJobRequest); !ok {
		t.Fatal("want accept")
	}
	if _, ok := h.read(c).(*protocol.V0ExecutorReadyRequest); !ok {
		t.Fatal("want executor ready")
	}
	rs, err := h.db.ListReceipts(ctx, store.ReceiptFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 0 {
		t.Errorf("stored %d receipts for a mismatched JobStarted receipt, want 0", len(rs))
	}
}

func TestExecutorDisconnectIsHordeFailure(t *testing.T) {
	quit := func(ctx context.Context, t *testing.T, conn *wsconn.Conn, initial *protocol.V0InitialJobRequest) {
		send(ctx, t, conn, &protocol.V0ExecutorReadyRequest{JobUUID: initial.JobUUID})
		conn.CloseNow()
	}
	h := newHarness(t, quit)
	c := h.authed()
	send(t.Context(), t, c, h.initialRequest("00000000-0000-4000-8000-000000000004", protocol.ExecutorClassAlwaysOnTest))
	for _, want := range []string{"V0AcceptJobRequest", "V0ExecutorReadyRequest"} {
		if got := h.read(c).MessageType(); got != want {
			t.Fatalf("got %s, want %s", got, want)
		}
	}
	f, ok := h.read(c).(*protocol.V0HordeFailedRequest)
	if !ok || f.Reason != protocol.HordeFailureReasonExecutorDisconnected || f.ReportedBy != protocol.JobParticipantTypeMiner {
		t.Fatalf("got %#v, want horde failure executor_disconnected reported by miner", f)
	}
}

func TestExecutorSpinupFailure(t *testing.T) {
	h := newHarness(t, happyExecutor)
	h.execs.fail = errors.New("no capacity on the host")
	c := h.authed()
	send(t.Context(), t, c, h.initialRequest("00000000-0000-4000-8000-000000000005", protocol.ExecutorClassAlwaysOnTest))
	if _, ok := h.read(c).(*protocol.V0AcceptJobRequest); !ok {
		t.Fatal("want accept before spin-up")
	}
	f, ok := h.read(c).(*protocol.V0HordeFailedRequest)
	if !ok || f.Reason != protocol.HordeFailureReasonExecutorSpinupFailed {
		t.Fatalf("got %#v, want executor_spinup_failed", f)
	}
}

func TestExecutorTokenSingleUse(t *testing.T) {
	tokens := make(chan string, 1)
	h := newHarness(t, readyThenHold)
	c := h.authed()
	send(t.Context(), t, c, h.initialRequest("00000000-0000-4000-8000-000000000006", protocol.ExecutorClassAlwaysOnTest))
	h.read(c) // accept
	h.read(c) // executor ready: the token is now used
	h.miner.mu.Lock()
	for tok := range h.miner.byToken {
		tokens <- tok
	}
	h.miner.mu.Unlock()
	conn, err := wsconn.Dial(t.Context(), h.url+ExecutorPathPrefix+<-tokens)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseNow()
	e, ok := readMsg(t.Context(), t, conn, protocol.DecodeMinerToExecutor).(*protocol.GenericError)
	if !ok || !strings.Contains(*e.Details, "not waiting for an executor") {
		t.Fatalf("second use of a token: got %#v", e)
	}
	conn2, err := wsconn.Dial(t.Context(), h.url+ExecutorPathPrefix+"made-up-token")
	if err != nil {
		t.Fatal(err)
	}
	defer conn2.CloseNow()
	if e, ok := readMsg(t.Context(), t, conn2, protocol.DecodeMinerToExecutor).(*protocol.GenericError); !ok || !strings.Contains(*e.Details, "No job waiting") {
		t.Fatalf("unknown token: got %#v", e)
	}
}

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestOversizedFrameClosesConnection(t *testing.T) {
	h := newHarness(t, happyExecutor)
	c, err := wsconn.Dial(t.Context(), h.url+ValidatorPathPrefix+h.alice.SS58())
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	huge := &protocol.GenericError{Details: new(strings.Repeat("x", protocol.MaxFrameSize))}
	_ = c.Send(t.Context(), huge) // the miner may drop the connection mid-write
	_, err = c.ReadFrame(t.Context())
	if got := websocket.CloseStatus(err); got != websocket.StatusMessageTooBig {
		t.Fatalf("read after oversized frame: %v (close status %d), want close status %d", err, got, websocket.StatusMessageTooBig)
	}
}
