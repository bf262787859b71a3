package facilitator

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/computehorde/horde/internal/blob"
	"github.com/computehorde/horde/internal/egress"
	"github.com/computehorde/horde/internal/keys"
	"github.com/computehorde/horde/internal/protocol"
	"github.com/computehorde/horde/internal/store"
	"github.com/computehorde/horde/internal/store/pgtest"
	"github.com/computehorde/horde/internal/syncbuf"
	"github.com/computehorde/horde/internal/wsconn"
	"github.com/computehorde/horde/sdk"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

const testPrice = 1000 // micro-credits per second of always_on.test

func mustKey(t testing.TB, uri string) *keys.Keypair {
	t.Helper()
	k, err := keys.FromURI(uri)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// signer adapts a keypair to the SDK.
type signer struct{ k *keys.Keypair }

func (s signer) SS58() string { return s.k.SS58() }
func (s signer) SignMessage(m []byte) ([]byte, error) {
	sig := s.k.Sign(m)
	return sig[:], nil
}

type env struct {
	t   *testing.T
	db  *store.DB
	f   *Facilitator
	srv *httptest.Server
}

// newEnv runs a facilitator on db (a fresh SQLite file when dsn is empty) behind a real HTTP
// server, its dispatcher running until the test ends; every test ends with the ledger's
// invariants checked.
func newEnv(t *testing.T, dsn string, tweak func(*Config)) *env {
	t.Helper()
	return newEnvAt(t, dsn, func(c *Config, _ string) {
		if tweak != nil {
			tweak(c)
		}
	})
}

// newEnvAt is newEnv with tweak told the server's URL (which the blob store signs).
func newEnvAt(t *testing.T, dsn string, tweak func(*Config, string)) *env {
	t.Helper()
	if dsn == "" {
		dsn = "sqlite:" + filepath.Join(t.TempDir(), "facilitator.db")
	}
	db, err := store.Open(t.Context(), store.Config{DSN: dsn})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var handler http.Handler
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { handler.ServeHTTP(w, r) }))
	srv.Config.BaseContext = func(_ net.Listener) context.Context { return ctx }
	srv.Start()
	cfg := Config{Store: db, Keypair: mustKey(t, "//Facilitator"), Validators: []string{mustKey(t, "//Alice").SS58(), mustKey(t, "//Charlie").SS58()},
		Prices: map[protocol.ExecutorClass]int64{protocol.ExecutorClassAlwaysOnTest: testPrice}, TokenSecret: []byte(strings.Repeat("s", 32)),
		Logger: slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))}
	tweak(&cfg, srv.URL)
	f, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	handler = f.Handler()
	done := make(chan struct{})
	go func() { defer close(done); _ = f.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
		srv.Close()
		if err := db.CheckLedger(context.Background()); err != nil {
			t.Errorf("ledger: %v", err)
		}
		db.Close()
	})
	return &env{t: t, db: db, f: f, srv: srv}
}

// user signs in as uri with the SDK, after a grant of credits (micro-credits).
func (e *env) user(uri string, grant int64) (*sdk.Client, string) {
	e.t.Helper()
	k := mustKey(e.t, uri)
	if grant > 0 {
		if _, err := e.f.Grant(e.t.Context(), k.SS58(), grant, ""); err != nil {
			e.t.Fatal(err)
		}
	}
	c, err := sdk.New(e.srv.URL, sdk.WithSigner(signer{k}), sdk.WithRetries(0))
	if err != nil {
		e.t.Fatal(err)
	}
	return c, k.SS58()
}

func (e *env) balance(user string) int64 {
	e.t.Helper()
	b, err := e.db.Balance(e.t.Context(), store.UserAccount(user))
	if err != nil {
		e.t.Fatal(err)
	}
	return b
}

func helloSpec() sdk.JobSpec {
	return sdk.JobSpec{ExecutorClass: string(protocol.ExecutorClassAlwaysOnTest), DockerImage: "horde-jobs/hello:test",
		Args: []string{"hi"}, DownloadTimeLimit: 60, ExecutionTimeLimit: 3600, UploadTimeLimit: 60}
}

// fakeValidator is a validator on the facilitator's channel, driven by the test.
type fakeValidator struct {
	t    *testing.T
	conn *wsconn.Conn
	jobs chan protocol.V2JobRequest
	resp chan *protocol.Response
}

func (e *env) validator(uri string) *fakeValidator {
	e.t.Helper()
	k := mustKey(e.t, uri)
	conn, err := wsconn.Dial(e.t.Context(), "ws"+strings.TrimPrefix(e.srv.URL, "http")+"/ws/v0/")
	if err != nil {
		e.t.Fatal(err)
	}
	pub := k.Public()
	if err := conn.Send(e.t.Context(), &protocol.V0AuthenticationRequest{PublicKey: hex.EncodeToString(pub[:]), Signature: k.Sign(pub[:]).Hex()}); err != nil {
		e.t.Fatal(err)
	}
	v := &fakeValidator{t: e.t, conn: conn, jobs: make(chan protocol.V2JobRequest, 100), resp: make(chan *protocol.Response, 100)}
	first := make(chan *protocol.Response, 1)
	go func() {
		for n := 0; ; n++ {
			frame, err := conn.ReadFrame(context.Background())
			if err != nil {
				return
			}
			m, err := protocol.DecodeFacilitatorToValidator(frame)
			if err != nil {
				e.t.Errorf("validator: %s: %v", frame, err)
				continue
			}
			switch m := m.(type) {
			case *protocol.Response:
				if n == 0 {
					first <- m
				} else {
					v.resp <- m
				}
			case *protocol.V2JobRequest:
				v.jobs <- *m
			}
		}
	}()
	select {
	case r := <-first:
		if r.Status != protocol.ResponseStatusSuccess {
			e.t.Fatalf("authentication refused: %+v", r)
		}
	case <-time.After(5 * time.Second):
		e.t.Fatal("no answer to the authentication")
	}
	e.t.Cleanup(func() { conn.CloseNow() })
	return v
}

func (v *fakeValidator) job() protocol.V2JobRequest {
	v.t.Helper()
	select {
	case j := <-v.jobs:
		return j
	case <-time.After(10 * time.Second):
		v.t.Fatal("no job dispatched to the validator")
	}
	return protocol.V2JobRequest{}
}

// send sends m and waits for its Response.
func (v *fakeValidator) send(m protocol.Message) {
	v.t.Helper()
	if err := v.conn.Send(v.t.Context(), m); err != nil {
		v.t.Fatal(err)
	}
	select {
	case r := <-v.resp:
		if r.Status != protocol.ResponseStatusSuccess {
			v.t.Fatalf("%s answered %+v", m.MessageType(), r)
		}
	case <-time.After(5 * time.Second):
		v.t.Fatalf("no answer to %s", m.MessageType())
	}
}

func (v *fakeValidator) status(id string, s protocol.JobStatus, md *protocol.JobStatusMetadata) {
	v.send(&protocol.V0JobStatusUpdate{UUID: id, Status: s, Metadata: md})
}

func (v *fakeValidator) work(id, attempt string, idx, seconds int) {
	v.send(&protocol.V0JobWorkReport{JobUUID: id, AttemptUUID: attempt, ExecutorClass: protocol.ExecutorClassAlwaysOnTest,
		IntervalIndex: idx, WorkedSeconds: seconds})
}

func completed(stdout, attempt string) *protocol.JobStatusMetadata {
	md := &protocol.JobStatusMetadata{MinerResponse: &protocol.JobResultDetails{DockerProcessStdout: stdout}}
	if attempt != "" {
		md.Extra.Set("attempt_uuid", json.RawMessage(strconv.Quote(attempt)))
	}
	return md
}

// engines runs fn on a fresh SQLite file and on a fresh PostgreSQL database.
func engines(t *testing.T, fn func(t *testing.T, dsn string)) {
	t.Run("sqlite", func(t *testing.T) { fn(t, "") })
	t.Run("postgres", func(t *testing.T) { fn(t, pgtest.DSN(t)) })
}

// TestPaidJob: a user signs in with a hotkey, submits through the SDK, watches the stages
// and gets the output; the job is signed for the validator, and the user is charged exactly
// the reported seconds × price (three intervals and a partial one), the rest refunded. On
// SQLite and PostgreSQL.
func TestPaidJob(t *testing.T) { engines(t, testPaidJob) }

func testPaidJob(t *testing.T, dsn string) {
	e := newEnv(t, dsn, nil)
	v := e.validator("//Alice")
	c, user := e.user("//Ferdie", 10_000_000)
	job, err := c.Submit(t.Context(), helloSpec(), "")
	if err != nil {
		t.Fatal(err)
	}
	if job.Status != "queued" || job.PricePerSecond != testPrice || job.MaxCost != testPrice*(3600+holdLeeway) {
		t.Fatalf("submitted %+v", job)
	}
	if b := e.balance(user); b != 10_000_000-job.MaxCost {
		t.Errorf("balance after submit %d, want the max cost held", b)
	}
	sent := v.job()
	if sent.UUID != job.UUID || verifyJobSignature(&sent) != nil || sent.Signature.Signatory != e.f.cfg.Keypair.SS58() {
		t.Fatalf("dispatched %+v (signature %v)", sent, verifyJobSignature(&sent))
	}
	var seen []string
	var mu sync.Mutex
	waited := make(chan *sdk.Job, 1)
	go func() {
		j, err := c.Wait(t.Context(), job.UUID, func(j *sdk.Job) { mu.Lock(); seen = append(seen, j.Status); mu.Unlock() })
		if err != nil {
			t.Error(err)
		}
		waited <- j
	}()
	for _, s := range []protocol.JobStatus{"received", "accepted", "executor_ready", "volumes_ready"} {
		v.status(job.UUID, s, nil)
	}
	v.work(job.UUID, job.UUID, 0, 600)
	v.work(job.UUID, job.UUID, 1, 600)
	v.work(job.UUID, job.UUID, 1, 600) // a repeat is charged once
	v.work(job.UUID, job.UUID, 2, 600)
	v.status(job.UUID, "execution_done", nil)
	v.work(job.UUID, job.UUID, 3, 300)
	v.status(job.UUID, "completed", completed("hello horde\n", job.UUID))
	got := <-waited
	if got.Status != "completed" || got.Stdout != "hello horde\n" {
		t.Fatalf("job %+v", got)
	}
	if got.Charged != 2100*testPrice {
		t.Errorf("charged %d, want 2100 s × %d", got.Charged, testPrice)
	}
	if b := e.balance(user); b != 10_000_000-2100*testPrice {
		t.Errorf("balance %d, want %d", b, 10_000_000-2100*testPrice)
	}
	if len(got.History) < 7 || got.History[0].Status != "queued" {
		t.Errorf("history %+v", got.History)
	}
	mu.Lock()
	if len(seen) == 0 || seen[len(seen)-1] != "completed" {
		t.Errorf("progress %v", seen)
	}
	mu.Unlock()
}

// TestHordeFailureRefunded: work reported for a job the horde then failed is not charged.
func TestHordeFailureRefunded(t *testing.T) { engines(t, testHordeFailureRefunded) }

func testHordeFailureRefunded(t *testing.T, dsn string) {
	e := newEnv(t, dsn, nil)
	v := e.validator("//Alice")
	c, user := e.user("//Ferdie", 10_000_000)
	job, err := c.Submit(t.Context(), helloSpec(), "")
	if err != nil {
		t.Fatal(err)
	}
	v.job()
	v.status(job.UUID, "received", nil)
	v.work(job.UUID, job.UUID, 0, 600)
	v.status(job.UUID, "horde_failed", &protocol.JobStatusMetadata{HordeFailureDetails: &protocol.HordeFailureDetails{
		ReportedBy: protocol.JobParticipantTypeMiner, Reason: protocol.HordeFailureReasonExecutorDisconnected, Message: "gone"}})
	got, err := c.Wait(t.Context(), job.UUID, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != "horde_failed" || got.Charged != 0 || e.balance(user) != 10_000_000 {
		t.Errorf("job %s charged %d, balance %d; want nothing charged", got.Status, got.Charged, e.balance(user))
	}
}

// TestOnlyTheFinalAttemptIsCharged: work of an attempt the horde failed (the validator then
// ran the job on another miner) is refunded; the final attempt's is charged.
func TestOnlyTheFinalAttemptIsCharged(t *testing.T) {
	e := newEnv(t, "", nil)
	v := e.validator("//Alice")
	c, user := e.user("//Ferdie", 10_000_000)
	job, _ := c.Submit(t.Context(), helloSpec(), "")
	v.job()
	v.status(job.UUID, "received", nil)
	v.work(job.UUID, job.UUID, 0, 600)
	v.work(job.UUID, "second-attempt", 0, 300)
	v.status(job.UUID, "completed", completed("ok\n", "second-attempt"))
	got, _ := c.Wait(t.Context(), job.UUID, nil)
	if got.Charged != 300*testPrice || e.balance(user) != 10_000_000-300*testPrice {
		t.Errorf("charged %d, balance %d; want only the final attempt's 300 s", got.Charged, e.balance(user))
	}
}

// TestUnaffordableJobRefused: a job whose maximum cost the balance cannot cover is refused
// before anything runs, with the figures; nothing is held or listed.
func TestUnaffordableJobRefused(t *testing.T) { engines(t, testUnaffordableJobRefused) }

func testUnaffordableJobRefused(t *testing.T, dsn string) {
	e := newEnv(t, dsn, nil)
	c, user := e.user("//Ferdie", 1_000_000)
	_, err := c.Submit(t.Context(), helloSpec(), "")
	if !sdk.IsInsufficientCredits(err) || !strings.Contains(err.Error(), "your balance is 1") {
		t.Fatalf("Submit: %v", err)
	}
	if b := e.balance(user); b != 1_000_000 {
		t.Errorf("balance %d after a refused job", b)
	}
	page, err := c.Jobs(t.Context(), nil, 0, "")
	if err != nil || len(page.Jobs) != 0 {
		t.Errorf("jobs listed: %+v, %v", page, err)
	}
}

// TestBadSpecsRefused: malformed or out-of-bounds jobs are refused with field-level errors
// and cost nothing.
func TestBadSpecsRefused(t *testing.T) {
	e := newEnv(t, "", nil)
	c, user := e.user("//Ferdie", 10_000_000)
	for _, tc := range []struct {
		name  string
		edit  func(*sdk.JobSpec)
		field string
	}{
		{"bad image", func(s *sdk.JobSpec) { s.DockerImage = "Not A:valid image" }, "docker_image"},
		{"no image", func(s *sdk.JobSpec) { s.DockerImage = "" }, "docker_image"},
		{"unknown class", func(s *sdk.JobSpec) { s.ExecutorClass = "no.such.class" }, "executor_class"},
		{"negative limit", func(s *sdk.JobSpec) { s.DownloadTimeLimit = -1 }, "download_time_limit"},
		{"absurd limit", func(s *sdk.JobSpec) { s.ExecutionTimeLimit = 100 * 24 * 3600 }, "execution_time_limit"},
		{"zero execution", func(s *sdk.JobSpec) { s.ExecutionTimeLimit = 0 }, "execution_time_limit"},
		{"bad env", func(s *sdk.JobSpec) { s.Env = map[string]string{"1BAD": "x"} }, "env"},
		{"bad volume", func(s *sdk.JobSpec) { s.Volume = json.RawMessage(`{"volume_type":"nope"}`) }, "volume"},
		{"unknown validator", func(s *sdk.JobSpec) { s.TargetValidator = mustKey(t, "//Eve").SS58() }, "target_validator_hotkey"},
	} {
		spec := helloSpec()
		tc.edit(&spec)
		_, err := c.Submit(t.Context(), spec, "")
		var apiErr *sdk.APIError
		if !errors.As(err, &apiErr) || apiErr.Status != http.StatusBadRequest || len(apiErr.Fields) == 0 || apiErr.Fields[0].Field != tc.field {
			t.Errorf("%s: %v (fields %+v), want a 400 naming %s", tc.name, err, apiErrFields(err), tc.field)
		}
	}
	// Unknown fields, malformed and oversized JSON.
	tok := e.token("//Ferdie")
	for name, body := range map[string]string{
		"unknown field": `{"docker_image":"x","surprise":1}`,
		"malformed":     `{"docker_image":`,
		"trailing":      `{} {}`,
		"oversized":     `{"docker_image":"` + strings.Repeat("a", maxJobBody) + `"}`,
	} {
		resp := e.post(tok, "/api/v1/jobs", body)
		if resp.StatusCode != http.StatusBadRequest && resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Errorf("%s: HTTP %d", name, resp.StatusCode)
		}
	}
	if b := e.balance(user); b != 10_000_000 {
		t.Errorf("balance %d after refused jobs", b)
	}
}

func apiErrFields(err error) []sdk.FieldError {
	var apiErr *sdk.APIError
	if errors.As(err, &apiErr) {
		return apiErr.Fields
	}
	return nil
}

// token signs in as uri over plain HTTP and returns the token.
func (e *env) token(uri string) string {
	e.t.Helper()
	k := mustKey(e.t, uri)
	var n struct{ Nonce string }
	getJSON(e.t, e.srv.URL+"/auth/nonce", &n)
	sig := k.Sign([]byte(n.Nonce))
	resp := e.post("", "/auth/login", `{"hotkey":"`+k.SS58()+`","signature":"`+hex.EncodeToString(sig[:])+`","nonce":"`+n.Nonce+`"}`)
	var t struct{ Token string }
	_ = json.NewDecoder(resp.Body).Decode(&t)
	resp.Body.Close()
	if t.Token == "" {
		e.t.Fatalf("login: HTTP %d", resp.StatusCode)
	}
	return t.Token
}

func (e *env) post(token, path, body string) *http.Response {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.srv.URL+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
}

// TestUsersSeeOnlyTheirJobs: another user's job answers 404, to get and to cancel.
func TestUsersSeeOnlyTheirJobs(t *testing.T) { engines(t, testUsersSeeOnlyTheirJobs) }

func testUsersSeeOnlyTheirJobs(t *testing.T, dsn string) {
	e := newEnv(t, dsn, nil)
	a, _ := e.user("//Ferdie", 10_000_000)
	b, _ := e.user("//Dave", 10_000_000)
	job, err := a.Submit(t.Context(), helloSpec(), "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Job(t.Context(), job.UUID); !sdk.IsNotFound(err) {
		t.Errorf("B reading A's job: %v", err)
	}
	if _, err := b.Cancel(t.Context(), job.UUID); !sdk.IsNotFound(err) {
		t.Errorf("B cancelling A's job: %v", err)
	}
	if page, _ := b.Jobs(t.Context(), nil, 0, ""); len(page.Jobs) != 0 {
		t.Errorf("B lists %d jobs", len(page.Jobs))
	}
	// A cancels it (queued: no validator is connected) and gets the hold back.
	got, err := a.Cancel(t.Context(), job.UUID)
	if err != nil || got.Status != "cancelled" {
		t.Fatalf("cancel: %+v, %v", got, err)
	}
	acct, _ := a.Account(t.Context())
	if acct.Balance != 10_000_000 {
		t.Errorf("balance after cancel %d", acct.Balance)
	}
}

// TestIdempotentSubmit: the same idempotency key twice is one job, held once.
func TestIdempotentSubmit(t *testing.T) {
	e := newEnv(t, "", nil)
	c, user := e.user("//Ferdie", 10_000_000)
	j1, err1 := c.Submit(t.Context(), helloSpec(), "key-1")
	j2, err2 := c.Submit(t.Context(), helloSpec(), "key-1")
	if err1 != nil || err2 != nil || j1.UUID != j2.UUID {
		t.Fatalf("two submits: %v %v, %s %s", err1, err2, j1.UUID, j2.UUID)
	}
	if b := e.balance(user); b != 10_000_000-j1.MaxCost {
		t.Errorf("balance %d: held more than once", b)
	}
}

// TestAuth: replayed nonces, forged signatures, bad and expired tokens, API keys (created,
// used, revoked) and the rate limit.
func TestAuth(t *testing.T) {
	e := newEnv(t, "", func(c *Config) { c.TokenLifetime = time.Second; c.RateLimit, c.RateBurst = 1, 5 })
	k := mustKey(t, "//Ferdie")
	var n struct{ Nonce string }
	getJSON(t, e.srv.URL+"/auth/nonce", &n)
	sig := k.Sign([]byte(n.Nonce))
	login := `{"hotkey":"` + k.SS58() + `","signature":"` + hex.EncodeToString(sig[:]) + `","nonce":"` + n.Nonce + `"}`
	if r := e.post("", "/auth/login", login); r.StatusCode != http.StatusOK {
		t.Fatalf("login: HTTP %d", r.StatusCode)
	}
	if r := e.post("", "/auth/login", login); r.StatusCode != http.StatusUnauthorized {
		t.Errorf("replayed nonce: HTTP %d", r.StatusCode)
	}
	forged := strings.Replace(login, hex.EncodeToString(sig[:4]), "00000000", 1)
	getJSON(t, e.srv.URL+"/auth/nonce", &n)
	if r := e.post("", "/auth/login", forged); r.StatusCode != http.StatusUnauthorized {
		t.Errorf("forged signature: HTTP %d", r.StatusCode)
	}
	if r := e.post("hft1.bogus.token", "/api/v1/keys", `{}`); r.StatusCode != http.StatusUnauthorized {
		t.Errorf("bad token: HTTP %d", r.StatusCode)
	}
	expired := e.f.issueToken(k.SS58(), time.Now().Add(-time.Second))
	if r := e.post(expired, "/api/v1/keys", `{}`); r.StatusCode != http.StatusUnauthorized {
		t.Errorf("expired token: HTTP %d", r.StatusCode)
	}
	c, _ := e.user("//Ferdie", 0)
	key, err := c.CreateKey(t.Context(), "ci")
	if err != nil || !strings.HasPrefix(key.Key, apiKeyPrefix) {
		t.Fatalf("CreateKey: %+v, %v", key, err)
	}
	byKey, _ := sdk.New(e.srv.URL, sdk.WithAPIKey(key.Key), sdk.WithRetries(0))
	if a, err := byKey.Account(t.Context()); err != nil || a.User != k.SS58() {
		t.Fatalf("API key: %+v, %v", a, err)
	}
	if err := c.RevokeKey(t.Context(), key.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := byKey.Account(t.Context()); err == nil || !strings.Contains(err.Error(), "revoked") {
		t.Errorf("revoked key: %v", err)
	}
	// The rate limit: a burst of 5, then 429 with Retry-After.
	var limited *http.Response
	for range 10 {
		req, _ := http.NewRequest(http.MethodGet, e.srv.URL+"/api/v1/account", nil)
		req.Header.Set("Authorization", "Bearer "+e.f.issueToken(mustKey(t, "//Dave").SS58(), time.Now().Add(time.Hour)))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusTooManyRequests {
			limited = resp
			break
		}
	}
	if limited == nil || limited.Header.Get("Retry-After") == "" {
		t.Errorf("no 429 with Retry-After past the burst: %v", limited)
	}
}

// TestValidatorGoneJobRequeued: a job whose validator dropped and did not come back within
// RequeueAfter goes to another validator; the work the first reported is refunded.
func TestValidatorGoneJobRequeued(t *testing.T) {
	e := newEnv(t, "", func(c *Config) { c.RequeueAfter = 200 * time.Millisecond })
	first := e.validator("//Alice")
	c, user := e.user("//Ferdie", 10_000_000)
	job, _ := c.Submit(t.Context(), helloSpec(), "")
	first.job()
	first.status(job.UUID, "received", nil)
	first.work(job.UUID, job.UUID, 0, 600)
	first.conn.CloseNow()
	second := e.validator("//Charlie")
	again := second.job()
	if again.UUID != job.UUID {
		t.Fatalf("requeued job %s, want %s", again.UUID, job.UUID)
	}
	second.status(job.UUID, "received", nil)
	second.work(job.UUID, job.UUID, 0, 100)
	second.status(job.UUID, "completed", completed("ok\n", job.UUID))
	got, _ := c.Wait(t.Context(), job.UUID, nil)
	if got.Status != "completed" || got.Charged != 100*testPrice || e.balance(user) != 10_000_000-100*testPrice {
		t.Errorf("job %s charged %d, balance %d; want only the second run's 100 s", got.Status, got.Charged, e.balance(user))
	}
}

// TestTwoReplicasDispatchOnce: two facilitators on one PostgreSQL database, each with a
// validator connected, never send a job twice.
func TestTwoReplicasDispatchOnce(t *testing.T) {
	dsn := pgtest.DSN(t)
	a := newEnv(t, dsn, func(c *Config) { c.Replica = "a" })
	b := newEnv(t, dsn, func(c *Config) { c.Replica = "b" })
	va, vb := a.validator("//Alice"), b.validator("//Charlie")
	c, _ := a.user("//Ferdie", 1_000_000_000)
	const n = 40
	submitted := map[string]bool{}
	for range n {
		j, err := c.Submit(t.Context(), helloSpec(), "")
		if err != nil {
			t.Fatal(err)
		}
		submitted[j.UUID] = true
	}
	got := map[string]int{}
	for deadline := time.After(20 * time.Second); len(got) < n; {
		select {
		case j := <-va.jobs:
			got[j.UUID]++
		case j := <-vb.jobs:
			got[j.UUID]++
		case <-deadline:
			t.Fatalf("%d of %d jobs dispatched", len(got), n)
		}
	}
	// Both dispatchers go round once more: a job claimed twice would be sent now. The
	// validators read their frames in order, so a ping answered after it proves it arrived.
	a.f.hub.dispatch(t.Context())
	b.f.hub.dispatch(t.Context())
	va.send(&protocol.V0MachineSpecsUpdate{Specs: json.RawMessage(`{}`)})
	vb.send(&protocol.V0MachineSpecsUpdate{Specs: json.RawMessage(`{}`)})
	for {
		select {
		case j := <-va.jobs:
			got[j.UUID]++
			continue
		case j := <-vb.jobs:
			got[j.UUID]++
			continue
		default:
		}
		break
	}
	for id, k := range got {
		if k != 1 || !submitted[id] {
			t.Errorf("job %s dispatched %d times (submitted: %v)", id, k, submitted[id])
		}
	}
}

// verifyJobSignature checks a dispatched job's signature as the validator does.
func verifyJobSignature(spec *protocol.V2JobRequest) error {
	if spec.Signature == nil || len(spec.Signature.Signature) != 64 {
		return errors.New("no signature")
	}
	digest, err := spec.SignedPayloadDigest()
	if err != nil {
		return err
	}
	pub, err := keys.ParsePublicKey(spec.Signature.Signatory)
	if err != nil {
		return err
	}
	var sig keys.Signature
	copy(sig[:], spec.Signature.Signature)
	if !pub.Verify(digest[:], sig) {
		return errors.New("the signature does not verify")
	}
	return nil
}

// TestStakeShares: two users with stake 3:1 competing for a validator with room for 4 jobs
// get 3:1 of the completions; one alone gets all of them.
func TestStakeShares(t *testing.T) {
	stakes := map[string]float64{mustKey(t, "//Ferdie").SS58(): 3000, mustKey(t, "//Dave").SS58(): 1000}
	e := newEnv(t, "", func(c *Config) {
		c.JobsPerValidator = 4
		c.Stake = func(u string) float64 { return stakes[u] }
	})
	heavy, hu := e.user("//Ferdie", 1_000_000_000)
	light, lu := e.user("//Dave", 1_000_000_000)
	for range 20 {
		for _, c := range []*sdk.Client{light, heavy} { // the light user always asks first
			if _, err := c.Submit(t.Context(), helloSpec(), ""); err != nil {
				t.Fatal(err)
			}
		}
	}
	owner := map[string]string{}
	for _, pair := range []struct {
		c *sdk.Client
		u string
	}{{heavy, hu}, {light, lu}} {
		p, err := pair.c.Jobs(t.Context(), nil, 200, "")
		if err != nil {
			t.Fatal(err)
		}
		for _, j := range p.Jobs {
			owner[j.UUID] = pair.u
		}
	}
	v := e.validator("//Alice")
	// The validator completes its oldest job whenever it holds 4; count the first 16.
	completions := map[string]int{}
	var held []string
	for len(held) < 4 {
		held = append(held, v.job().UUID)
	}
	for range 16 {
		id := held[0]
		held = held[1:]
		v.status(id, "received", nil)
		v.status(id, "completed", completed("ok\n", id))
		completions[owner[id]]++
		held = append(held, v.job().UUID)
	}
	if completions[hu] != 12 || completions[lu] != 4 {
		t.Errorf("completions heavy %d, light %d; want 12 and 4 (stake 3:1)", completions[hu], completions[lu])
	}

	// Alone, the light user takes every slot.
	alone := newEnv(t, "", func(c *Config) {
		c.JobsPerValidator = 4
		c.Stake = func(u string) float64 { return stakes[u] }
	})
	solo, _ := alone.user("//Dave", 1_000_000_000)
	for range 6 {
		if _, err := solo.Submit(t.Context(), helloSpec(), ""); err != nil {
			t.Fatal(err)
		}
	}
	va := alone.validator("//Alice")
	for range 4 {
		va.job()
	}
	// One more round of dispatch, then a round trip on the channel: a fifth job would have
	// arrived before the answer.
	alone.f.hub.dispatch(t.Context())
	va.send(&protocol.V0MachineSpecsUpdate{Specs: json.RawMessage(`{}`)})
	select {
	case j := <-va.jobs:
		t.Errorf("a fifth job %s was sent to a validator with room for 4", j.UUID)
	default:
	}
}

// TestOutputsToBlobStore: a job that names no upload target gets a presigned upload of its
// zipped /output to the facilitator's blob store, signed into the job; the executor's PUT
// lands there, and the owner downloads it through a signed, expiring URL; another user
// cannot get that URL.
func TestOutputsToBlobStore(t *testing.T) {
	e := newEnvAt(t, "", func(c *Config, url string) {
		l, err := blob.NewLocal(t.TempDir(), url, []byte("blob-secret"), 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		c.Blobs, c.BlobHandler = l, l.Handler()
	})
	v := e.validator("//Alice")
	c, _ := e.user("//Ferdie", 10_000_000)
	job, err := c.Submit(t.Context(), helloSpec(), "")
	if err != nil {
		t.Fatal(err)
	}
	sent := v.job()
	up := sent.OutputUpload
	if up == nil || up.ZipAndHTTPPut == nil || !strings.Contains(up.ZipAndHTTPPut.URL, "/blobs/jobs/"+job.UUID+"/output.zip") || verifyJobSignature(&sent) != nil {
		t.Fatalf("dispatched output upload %+v (signature %v)", up, verifyJobSignature(&sent))
	}
	if _, err := c.OutputsURL(t.Context(), job.UUID); err == nil || !strings.Contains(err.Error(), "uploaded when it ends") {
		t.Errorf("outputs of a running job: %v", err)
	}
	// The executor's upload.
	req, _ := http.NewRequest(http.MethodPut, up.ZipAndHTTPPut.URL, strings.NewReader("PK zip of /output"))
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("upload: %v %v", resp, err)
	}
	resp.Body.Close()
	v.status(job.UUID, "received", nil)
	v.status(job.UUID, "completed", completed("ok\n", job.UUID))
	u, err := c.OutputsURL(t.Context(), job.UUID)
	if err != nil {
		t.Fatal(err)
	}
	resp, err = http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "PK zip of /output" {
		t.Errorf("downloaded %q", body)
	}
	other, _ := e.user("//Dave", 0)
	if _, err := other.OutputsURL(t.Context(), job.UUID); !sdk.IsNotFound(err) {
		t.Errorf("another user's outputs: %v", err)
	}
}

// fakeRegistry answers manifests like a registry behind anonymous bearer tokens: "good"
// exists, anything else does not.
func fakeRegistry(t *testing.T) *httptest.Server {
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/token":
			if r.URL.Query().Get("scope") != "repository:library/app:pull" {
				http.Error(w, "bad scope", http.StatusBadRequest)
				return
			}
			_, _ = w.Write([]byte(`{"token":"anon"}`))
		case r.Header.Get("Authorization") != "Bearer anon":
			w.Header().Set("WWW-Authenticate", `Bearer realm="`+srv.URL+`/token",service="fake"`)
			w.WriteHeader(http.StatusUnauthorized)
		case r.URL.Path == "/v2/library/app/manifests/good":
			w.WriteHeader(http.StatusOK)
		default:
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

// TestImageChecked: an image its registry says does not exist is refused at submit with the
// field named and nothing charged; one that exists, and one whose registry does not answer,
// are taken.
func TestImageChecked(t *testing.T) {
	reg := fakeRegistry(t)
	host := strings.TrimPrefix(reg.URL, "http://")
	gone := httptest.NewServer(http.NotFoundHandler())
	goneHost := strings.TrimPrefix(gone.URL, "http://")
	gone.Close()
	e := newEnv(t, "", func(c *Config) {
		c.Images = NewImageChecker(egress.Policy{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}, []string{host, goneHost})
	})
	c, user := e.user("//Ferdie", 10_000_000)
	spec := helloSpec()
	spec.DockerImage = host + "/library/app:typo"
	_, err := c.Submit(t.Context(), spec, "")
	if f := apiErrFields(err); len(f) != 1 || f[0].Field != "docker_image" || !strings.Contains(f[0].Problem, "has no typo") {
		t.Fatalf("a missing image: %v (%+v)", err, f)
	}
	if b := e.balance(user); b != 10_000_000 {
		t.Errorf("balance %d after a refused image", b)
	}
	for _, img := range []string{host + "/library/app:good", goneHost + "/library/app:any"} {
		spec.DockerImage = img
		if _, err := c.Submit(t.Context(), spec, ""); err != nil {
			t.Errorf("%s: %v", img, err)
		}
	}
	// Without an allowance the checker never reaches loopback: the registry's answer is
	// unknown, so the job is taken.
	blind := NewImageChecker(egress.Policy{}, []string{host})
	if err := blind.Check(t.Context(), host+"/library/app:typo"); err != nil {
		t.Errorf("a checker refused by the egress policy: %v", err)
	}
}

// TestDispatchFollowsCapacity: a validator that reports its free executors gets no more
// jobs of a class than it has room for; the rest wait in the queue until it reports more.
func TestDispatchFollowsCapacity(t *testing.T) {
	e := newEnv(t, "", nil)
	v := e.validator("//Alice")
	v.send(&protocol.V0ExecutorCapacityUpdate{FreeExecutors: protocol.Manifest{{Class: protocol.ExecutorClassAlwaysOnTest, Count: 2}}})
	c, _ := e.user("//Ferdie", 1_000_000_000)
	for range 4 {
		if _, err := c.Submit(t.Context(), helloSpec(), ""); err != nil {
			t.Fatal(err)
		}
	}
	v.job()
	v.job()
	e.f.hub.dispatch(t.Context())
	v.send(&protocol.V0MachineSpecsUpdate{Specs: json.RawMessage(`{}`)}) // a round trip: a third job would be here
	select {
	case j := <-v.jobs:
		t.Fatalf("a third job %s went to a validator with room for 2", j.UUID)
	default:
	}
	page, _ := c.Jobs(t.Context(), []string{"queued"}, 0, "")
	if len(page.Jobs) != 2 {
		t.Errorf("%d jobs queued, want 2 waiting for room", len(page.Jobs))
	}
	v.send(&protocol.V0ExecutorCapacityUpdate{FreeExecutors: protocol.Manifest{{Class: protocol.ExecutorClassAlwaysOnTest, Count: 1}}})
	v.job()
}

// TestValidatorAuth: a V1AuthenticationRequest (a signed timestamp) is taken once and
// within a minute; upstream's replayable V0AuthenticationRequest is taken unless the
// facilitator requires fresh authentication; an unknown validator is refused.
func TestValidatorAuth(t *testing.T) {
	e := newEnv(t, "", nil)
	strict := newEnv(t, "", func(c *Config) { c.RequireFreshAuth = true })
	alice := mustKey(t, "//Alice")
	pub := alice.Public()
	pubHex := hex.EncodeToString(pub[:])
	v1 := func(k *keys.Keypair, ts int64) *protocol.V1AuthenticationRequest {
		p := k.Public()
		h := hex.EncodeToString(p[:])
		return &protocol.V1AuthenticationRequest{PublicKey: h, Timestamp: ts, Signature: k.Sign(protocol.V1AuthBlob(h, ts)).Hex()}
	}
	try := func(env *env, m protocol.Message) *protocol.Response {
		t.Helper()
		conn, err := wsconn.Dial(t.Context(), "ws"+strings.TrimPrefix(env.srv.URL, "http")+"/ws/v0/")
		if err != nil {
			t.Fatal(err)
		}
		defer conn.CloseNow()
		if err := conn.Send(t.Context(), m); err != nil {
			t.Fatal(err)
		}
		frame, err := conn.ReadFrame(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		r, err := protocol.DecodeResponse(frame)
		if err != nil {
			t.Fatal(err)
		}
		return &r
	}
	errType := func(r *protocol.Response) string {
		if r.Status == protocol.ResponseStatusSuccess {
			return "success"
		}
		return r.Errors[0].Type
	}
	fresh := v1(alice, time.Now().Unix())
	for name, tc := range map[string]struct {
		env  *env
		msg  protocol.Message
		want string
	}{
		"v1":            {e, fresh, "success"},
		"v1 stale":      {e, v1(alice, time.Now().Add(-5*time.Minute).Unix()), "auth.stale"},
		"v1 unknown":    {e, v1(mustKey(t, "//Eve"), time.Now().Unix()), "auth.validator_not_found"},
		"v0":            {e, &protocol.V0AuthenticationRequest{PublicKey: pubHex, Signature: alice.Sign(pub[:]).Hex()}, "success"},
		"v0 forged":     {e, &protocol.V0AuthenticationRequest{PublicKey: pubHex, Signature: alice.Sign([]byte("x")).Hex()}, "auth.signature_invalid"},
		"v0 when fresh": {strict, &protocol.V0AuthenticationRequest{PublicKey: pubHex, Signature: alice.Sign(pub[:]).Hex()}, "auth.stale"},
	} {
		if got := errType(try(tc.env, tc.msg)); got != tc.want {
			t.Errorf("%s: %s, want %s", name, got, tc.want)
		}
	}
	if got := errType(try(e, fresh)); got != "auth.stale" {
		t.Errorf("a replayed V1 authentication: %s, want auth.stale", got)
	}
}

// TestRefusalLogged: a refused request is logged once with its reason and its user, so an
// operator can answer "why was my job refused?" from the log alone.
func TestRefusalLogged(t *testing.T) {
	var logs lockedBuffer
	e := newEnv(t, "", func(c *Config) {
		c.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	})
	c, user := e.user("//Ferdie", 1_000_000)
	if _, err := c.Submit(t.Context(), helloSpec(), ""); !sdk.IsInsufficientCredits(err) {
		t.Fatalf("Submit: %v", err)
	}
	got := logs.String()
	for _, want := range []string{`msg="request refused"`, "path=/api/v1/jobs", "status=402", "code=insufficient_credits", "user=" + user, `why="`} {
		if !strings.Contains(got, want) {
			t.Errorf("log lacks %s:\n%s", want, got)
		}
	}
}

// lockedBuffer is a buffer the test may read while another goroutine still writes to it.
type lockedBuffer = syncbuf.Buffer

// TestUnansweredJobSentAgainOnConnect: a job claimed for a validator that never got it (the
// facilitator died between the claim and the send, or the connection died with the send) is
// sent again when that validator connects, instead of waiting in "sent" forever.
func TestUnansweredJobSentAgainOnConnect(t *testing.T) {
	e := newEnv(t, "", nil)
	c, _ := e.user("//Ferdie", 1_000_000_000)
	id, err := c.Submit(t.Context(), helloSpec(), "")
	if err != nil {
		t.Fatal(err)
	}
	alice := mustKey(t, "//Alice").SS58()
	if ok, err := e.f.db.ClaimFacJob(t.Context(), id.UUID, alice, "dead-replica", time.Now()); err != nil || !ok {
		t.Fatalf("claim: %v %v", ok, err)
	}
	v := e.validator("//Alice")
	if got := v.job(); got.UUID != id.UUID || got.Signature == nil {
		t.Fatalf("got %+v, want job %s signed", got, id.UUID)
	}
}
