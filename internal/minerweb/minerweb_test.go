package minerweb

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/computehorde/horde/internal/chain"
	"github.com/computehorde/horde/internal/miner"
	"github.com/computehorde/horde/internal/protocol"
	"github.com/computehorde/horde/internal/store"
)

const (
	testUser       = "operator"
	testPassword   = "correct horse battery staple"
	minerHotkey    = "5FHneW46xGXgs5mUiveU4sbTyGBzmstUspZC92UhjJM694ty"
	validatorKey   = "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY"
	finishedJob    = "11111111-1111-4111-8111-111111111111"
	declinedJob    = "22222222-2222-4222-8222-222222222222"
	runningJob     = "33333333-3333-4333-8333-333333333333"
	declineMessage = "All executors of class always_on.gpu-24gb are busy <b>"
)

// fakeMiner is a StatusSource with a fixed status.
type fakeMiner struct {
	mu  sync.Mutex
	st  miner.Status
	err error
}

func (f *fakeMiner) Status(context.Context) (miner.Status, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	st := f.st
	st.At = time.Now()
	return st, f.err
}

func testStatus() miner.Status {
	return miner.Status{
		Hotkey:   minerHotkey,
		NetUID:   12,
		Manifest: protocol.Manifest{{Class: protocol.ExecutorClassAlwaysOnGPU24GB, Count: 2}, {Class: protocol.ExecutorClassAlwaysOnTest, Count: 1}},
		Jobs: []miner.JobStatus{{UUID: runningJob, Validator: validatorKey, Class: protocol.ExecutorClassAlwaysOnGPU24GB,
			Status: "running", Since: time.Now().Add(-time.Minute), Updated: time.Now().Add(-30 * time.Second)}},
		Axon:           miner.AxonStatus{OK: true},
		Metagraph:      chain.CacheStatus{Block: 4242, RefreshedAt: time.Now().Add(-12 * time.Second)},
		ValidatorConns: 3,
		Validators:     []string{validatorKey},
		Hosts: []miner.ExecutorHost{{Name: "gpu-box-2", Endpoint: "tcp://10.0.0.12:2376", Up: false, Err: "connection refused",
			Classes: map[protocol.ExecutorClass]int{protocol.ExecutorClassAlwaysOnGPU24GB: 4}}},
		Offer: miner.ManifestStatus{Offered: protocol.Manifest{{Class: protocol.ExecutorClassAlwaysOnTest, Count: 1}},
			NextChangeAllowed: time.Now().Add(time.Hour)},
		Declines: []miner.JobEvent{{At: time.Now(), JobUUID: declinedJob, Validator: validatorKey, Class: protocol.ExecutorClassAlwaysOnGPU24GB,
			Kind: miner.KindDeclined, Reason: "busy", Message: declineMessage}},
		Failures: []miner.JobEvent{{At: time.Now(), JobUUID: "44444444-4444-4444-8444-444444444444", Validator: validatorKey,
			Class: protocol.ExecutorClassAlwaysOnTest, Kind: miner.KindHordeFailed, Reason: "executor_spinup_failed", Message: "Executor failed to start"}},
		DeclineCounts: []miner.ReasonCount{{Kind: miner.KindDeclined, Reason: "busy", N: 7}},
		FailureCounts: []miner.ReasonCount{{Kind: miner.KindHordeFailed, Reason: "executor_spinup_failed", N: 1}, {Kind: miner.KindJobFailed, Reason: "timeout", N: 2}},
	}
}

// testHash is testPassword's hash at the lowest iteration count New accepts, to keep the
// tests quick.
var testHash = sync.OnceValue(func() string {
	h, err := hashPassword(testPassword, minHashIteration)
	if err != nil {
		panic(err)
	}
	return h
})

type env struct {
	t     *testing.T
	h     *Handler
	miner *fakeMiner
	db    *store.DB
	srv   *httptest.Server
}

func newEnv(t *testing.T, withCredentials bool) *env {
	t.Helper()
	db, err := store.Open(t.Context(), store.Config{DSN: "sqlite::memory:"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	seedStore(t, db)
	e := &env{t: t, miner: &fakeMiner{st: testStatus()}, db: db}
	cfg := Config{Miner: e.miner, Store: db, Logger: slog.New(slog.NewTextHandler(t.Output(), nil))}
	if withCredentials {
		cfg.Username, cfg.PasswordHash = testUser, testHash()
	}
	e.h, err = New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.srv = httptest.NewServer(e.h)
	t.Cleanup(e.srv.Close)
	return e
}

// seedStore stores a finished job with its three receipts and the JobStarted receipt of a
// job the miner declined.
func seedStore(t *testing.T, db *store.DB) {
	t.Helper()
	ctx := t.Context()
	now := time.Now()
	created := now.Add(-10 * time.Minute)
	result, err := protocol.Encode(&protocol.V0JobFinishedRequest{JobUUID: finishedJob, DockerProcessStdout: "ok"})
	if err != nil {
		t.Fatal(err)
	}
	err = db.CreateJob(ctx, store.Job{
		UUID: finishedJob, Role: store.RoleMiner, ValidatorHotkey: validatorKey, MinerHotkey: minerHotkey,
		ExecutorClass: string(protocol.ExecutorClassAlwaysOnGPU24GB), DockerImage: "backenddevelopersltd/compute-horde-job-echo:v0-latest",
		Status: "finished", Spec: json.RawMessage(`{"message_type":"V0InitialJobRequest"}`), Result: result,
		CreatedAt: created, UpdatedAt: created.Add(time.Minute),
	})
	if err != nil {
		t.Fatal(err)
	}
	ts := func(t time.Time) protocol.Timestamp { return protocol.NewTimestamp(t) }
	payloads := []protocol.ReceiptPayload{
		protocol.JobStartedReceiptPayload{JobUUID: finishedJob, MinerHotkey: minerHotkey, ValidatorHotkey: validatorKey,
			Timestamp: ts(created), ExecutorClass: protocol.ExecutorClassAlwaysOnGPU24GB, IsOrganic: true, TTL: 30},
		protocol.JobAcceptedReceiptPayload{JobUUID: finishedJob, MinerHotkey: minerHotkey, ValidatorHotkey: validatorKey,
			Timestamp: ts(created.Add(time.Second)), TimeAccepted: ts(created.Add(time.Second)), TTL: 300},
		protocol.JobFinishedReceiptPayload{JobUUID: finishedJob, MinerHotkey: minerHotkey, ValidatorHotkey: validatorKey,
			Timestamp: ts(created.Add(time.Minute)), TimeStarted: ts(created.Add(2 * time.Second)), TimeTookUS: 42_000_000, ScoreStr: "1.500000"},
		protocol.JobStartedReceiptPayload{JobUUID: declinedJob, MinerHotkey: minerHotkey, ValidatorHotkey: validatorKey,
			Timestamp: ts(now.Add(-time.Minute)), ExecutorClass: protocol.ExecutorClassAlwaysOnGPU24GB, TTL: 30},
		// Another miner's receipt in the same database is not this miner's work.
		protocol.JobFinishedReceiptPayload{JobUUID: "55555555-5555-4555-8555-555555555555", MinerHotkey: validatorKey, ValidatorHotkey: validatorKey,
			Timestamp: ts(now.Add(-time.Minute)), TimeStarted: ts(now.Add(-2 * time.Minute)), TimeTookUS: 1e9, ScoreStr: "9.000000"},
	}
	for _, p := range payloads {
		data, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		c := p.Header()
		_, err = db.InsertReceipt(ctx, store.Receipt{Type: string(p.ReceiptType()), JobUUID: c.JobUUID, ValidatorHotkey: c.ValidatorHotkey,
			MinerHotkey: c.MinerHotkey, Timestamp: c.Timestamp.Time, Payload: data, ValidatorSignature: "0xva1", MinerSignature: "0xm1"})
		if err != nil {
			t.Fatal(err)
		}
	}
}

type response struct {
	status int
	header http.Header
	body   string
}

// do sends one request without following redirects; cookie may be nil.
func (e *env) do(method, path string, form url.Values, cookie *http.Cookie, hdr ...string) response {
	e.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(e.t.Context(), method, e.srv.URL+path, body)
	if err != nil {
		e.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	if cookie != nil {
		req.AddCookie(cookie)
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return response{resp.StatusCode, resp.Header, string(b)}
}

func (e *env) login() *http.Cookie {
	e.t.Helper()
	r := e.do("POST", "/admin/login/", url.Values{"username": {testUser}, "password": {testPassword}}, nil)
	if r.status != http.StatusSeeOther || r.header.Get("Location") != "/admin/" {
		e.t.Fatalf("login: %d to %q, want 303 to /admin/; body:\n%s", r.status, r.header.Get("Location"), r.body)
	}
	for _, c := range (&http.Response{Header: r.header}).Cookies() {
		if c.Name == sessionCookie {
			return c
		}
	}
	e.t.Fatalf("login set no %s cookie: %v", sessionCookie, r.header["Set-Cookie"])
	return nil
}

func wantContains(t *testing.T, what, body string, subs ...string) {
	t.Helper()
	for _, s := range subs {
		if !strings.Contains(body, s) {
			t.Errorf("%s does not contain %q; body:\n%s", what, s, body)
		}
	}
}

func TestLoginPageWithoutSession(t *testing.T) {
	e := newEnv(t, true)
	r := e.do("GET", "/admin/login/", nil, nil)
	if r.status != http.StatusOK {
		t.Fatalf("GET /admin/login/ = %d, want 200", r.status)
	}
	wantContains(t, "login page", r.body, `<form class="login" method="post" action="/admin/login/">`, `name="password" id="password" type="password"`)
	if strings.Contains(r.body, "<script") {
		t.Error("the login page has a script")
	}
	csp := r.header.Get("Content-Security-Policy")
	nonce := regexp.MustCompile(`style-src 'nonce-([A-Za-z0-9_-]+)'`).FindStringSubmatch(csp)
	if !strings.Contains(csp, "default-src 'self'") || !strings.Contains(csp, "script-src 'none'") || nonce == nil {
		t.Errorf("Content-Security-Policy = %q", csp)
	} else {
		wantContains(t, "login page", r.body, `<style nonce="`+nonce[1]+`">`)
	}
	for k, v := range map[string]string{"X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer", "X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"} {
		if got := r.header.Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	// Every page of the panel needs a session; without one it is the login page.
	for _, path := range []string{"/admin/", "/admin/jobs/", "/admin/jobs/" + finishedJob + "/"} {
		if r := e.do("GET", path, nil, nil); r.status != http.StatusSeeOther || r.header.Get("Location") != "/admin/login/" {
			t.Errorf("GET %s without a session = %d to %q, want 303 to /admin/login/", path, r.status, r.header.Get("Location"))
		}
	}
	bogus := &http.Cookie{Name: sessionCookie, Value: "bm90IGEgc2Vzc2lvbg"}
	if r := e.do("GET", "/admin/", nil, bogus); r.status != http.StatusSeeOther {
		t.Errorf("GET /admin/ with a made-up session = %d, want 303", r.status)
	}
}

func TestDisabledPanel(t *testing.T) {
	e := newEnv(t, false)
	r := e.do("GET", "/admin/login/", nil, nil)
	if r.status != http.StatusOK {
		t.Fatalf("GET /admin/login/ = %d, want 200 even with the panel disabled", r.status)
	}
	wantContains(t, "disabled login page", r.body, "<strong>disabled</strong>", "horde miner hash-password", "password_hash")
	if strings.Contains(r.body, "<form") {
		t.Error("the disabled panel shows a login form")
	}
	if r := e.do("POST", "/admin/login/", url.Values{"username": {""}, "password": {""}}, nil); r.status != http.StatusForbidden {
		t.Errorf("POST /admin/login/ to a disabled panel = %d, want 403", r.status)
	}
	if r := e.do("GET", "/admin/", nil, nil); r.status != http.StatusSeeOther {
		t.Errorf("GET /admin/ on a disabled panel = %d, want 303 to the login page", r.status)
	}
	if r := e.do("GET", "/metrics", nil, nil); r.status != http.StatusOK {
		t.Errorf("GET /metrics on a disabled panel = %d, want 200", r.status)
	}
}

func TestNewRefusesHalfOrBadCredentials(t *testing.T) {
	db, err := store.Open(t.Context(), store.Config{DSN: "sqlite::memory:"})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	weak, err := hashPassword("pw", 1000)
	if err != nil {
		t.Fatal(err)
	}
	for name, cfg := range map[string]Config{
		"no miner":      {Store: db},
		"no store":      {Miner: &fakeMiner{}},
		"user only":     {Miner: &fakeMiner{}, Store: db, Username: "u"},
		"hash only":     {Miner: &fakeMiner{}, Store: db, PasswordHash: testHash()},
		"plain text":    {Miner: &fakeMiner{}, Store: db, Username: "u", PasswordHash: "hunter2"},
		"weak hash":     {Miner: &fakeMiner{}, Store: db, Username: "u", PasswordHash: weak},
		"bad base64":    {Miner: &fakeMiner{}, Store: db, Username: "u", PasswordHash: "pbkdf2-sha256$600000$!!!$!!!"},
		"other schemes": {Miner: &fakeMiner{}, Store: db, Username: "u", PasswordHash: "$2a$10$abcdefghijklmnopqrstuv"},
	} {
		_, err := New(cfg)
		if err == nil {
			t.Errorf("%s: New accepted the config", name)
		} else if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%s: the error quotes the secret: %v", name, err)
		}
	}
}

func TestHashPassword(t *testing.T) {
	h1, err := HashPassword(testPassword)
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^pbkdf2-sha256\$600000\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$`).MatchString(h1) {
		t.Errorf("HashPassword = %q, want pbkdf2-sha256$600000$SALT$HASH in unpadded base64", h1)
	}
	h2, _ := HashPassword(testPassword)
	if h1 == h2 {
		t.Error("two hashes of one password are equal: no salt?")
	}
	p, err := parsePasswordHash(h1)
	if err != nil {
		t.Fatal(err)
	}
	if !p.matches(testPassword) || p.matches(testPassword+" ") || p.matches("") {
		t.Error("the hash matches the wrong passwords")
	}
	if _, err := HashPassword(""); err == nil {
		t.Error("HashPassword accepted an empty password")
	}
}

func TestLoginLogout(t *testing.T) {
	e := newEnv(t, true)
	r := e.do("POST", "/admin/login/", url.Values{"username": {testUser}, "password": {"wrong"}}, nil)
	if r.status != http.StatusUnauthorized {
		t.Fatalf("wrong password: %d, want 401", r.status)
	}
	wantContains(t, "failed login page", r.body, "Wrong username or password.", `value="operator"`)
	if len(r.header["Set-Cookie"]) != 0 {
		t.Errorf("a failed login set cookies: %v", r.header["Set-Cookie"])
	}
	if r := e.do("POST", "/admin/login/", url.Values{"username": {"root"}, "password": {testPassword}}, nil); r.status != http.StatusUnauthorized {
		t.Errorf("wrong username: %d, want 401", r.status)
	}

	c := e.login()
	set := e.loginCookieHeader()
	for _, attr := range []string{"Path=/admin/", "HttpOnly", "SameSite=Strict", "Max-Age=43200"} {
		if !strings.Contains(set, attr) {
			t.Errorf("session cookie %q lacks %s", set, attr)
		}
	}
	if strings.Contains(set, "Secure") {
		t.Errorf("session cookie %q is Secure over plain HTTP", set)
	}
	if len(c.Value) != 43 {
		t.Errorf("session token %q is not 32 bytes in base64url", c.Value)
	}
	if r := e.do("GET", "/admin/login/", nil, c); r.status != http.StatusSeeOther {
		t.Errorf("login page with a session = %d, want 303 to the overview", r.status)
	}

	// Overview: live state from the miner, work from the store.
	r = e.do("GET", "/admin/", nil, c)
	if r.status != http.StatusOK {
		t.Fatalf("GET /admin/ = %d; body:\n%s", r.status, r.body)
	}
	wantContains(t, "overview", r.body, "gpu-box-2", "connection refused", "Offered to validators now: always_on.test × 1")
	wantContains(t, "overview", r.body, minerHotkey, runningJob, "running", "4242", declinedJob,
		"All executors of class always_on.gpu-24gb are busy &lt;b&gt;", // escaped
		"executor_spinup_failed", "always_on.test",
		`<td>always_on.gpu-24gb</td><td class="n">1</td><td class="n">42</td><td class="n">1.500000</td>`, // the work of the finished job only
	)
	if strings.Contains(r.body, "busy <b>") {
		t.Error("the overview does not escape a decline message")
	}
	csrf := regexp.MustCompile(`name="csrf" value="([A-Za-z0-9_-]+)"`).FindStringSubmatch(r.body)
	if csrf == nil {
		t.Fatalf("the overview has no logout form with a CSRF token; body:\n%s", r.body)
	}

	// Jobs: the finished job and the declined one, from their receipts.
	r = e.do("GET", "/admin/jobs/", nil, c)
	if r.status != http.StatusOK {
		t.Fatalf("GET /admin/jobs/ = %d; body:\n%s", r.status, r.body)
	}
	wantContains(t, "jobs page", r.body, `href="/admin/jobs/`+finishedJob+`/"`, "finished", "V0JobFinishedRequest", "42s",
		"JobStartedReceipt, JobAcceptedReceipt, JobFinishedReceipt", declinedJob, "not stored", "(synthetic)")
	if strings.Contains(r.body, "55555555-") {
		t.Error("the jobs page lists another miner's job")
	}
	if r := e.do("GET", "/admin/jobs/?hours=0", nil, c); r.status != http.StatusBadRequest {
		t.Errorf("hours=0: %d, want 400", r.status)
	}

	// One job with its receipts.
	r = e.do("GET", "/admin/jobs/"+finishedJob+"/", nil, c)
	if r.status != http.StatusOK {
		t.Fatalf("GET the job = %d; body:\n%s", r.status, r.body)
	}
	wantContains(t, "job page", r.body, "compute-horde-job-echo", "Receipts (3)", "<h3>JobFinishedReceipt</h3>", "&#34;time_took_us&#34;: 42000000",
		"1.500000", "V0JobFinishedRequest")
	if r := e.do("GET", "/admin/jobs/"+declinedJob+"/", nil, c); r.status != http.StatusOK || !strings.Contains(r.body, "no record of this job") {
		t.Errorf("the declined job's page: %d", r.status)
	}
	if r := e.do("GET", "/admin/jobs/00000000-0000-4000-8000-000000000000/", nil, c); r.status != http.StatusNotFound {
		t.Errorf("an unknown job: %d, want 404", r.status)
	}
	if r := e.do("GET", "/admin/nothing-here", nil, c); r.status != http.StatusNotFound {
		t.Errorf("an unknown admin page: %d, want 404", r.status)
	}

	// Logout needs the session's CSRF token.
	for name, form := range map[string]url.Values{"no token": {}, "wrong token": {"csrf": {"AAAA" + csrf[1][4:]}}} {
		if r := e.do("POST", "/admin/logout/", form, c); r.status != http.StatusForbidden {
			t.Errorf("logout with %s: %d, want 403", name, r.status)
		}
	}
	if r := e.do("POST", "/admin/logout/", url.Values{"csrf": {csrf[1]}}, c, "Sec-Fetch-Site", "cross-site"); r.status != http.StatusForbidden {
		t.Errorf("cross-site logout: %d, want 403", r.status)
	}
	if r := e.do("GET", "/admin/", nil, c); r.status != http.StatusOK {
		t.Fatalf("the session ended without a valid logout: %d", r.status)
	}
	r = e.do("POST", "/admin/logout/", url.Values{"csrf": {csrf[1]}}, c)
	if r.status != http.StatusSeeOther || r.header.Get("Location") != "/admin/login/" {
		t.Fatalf("logout: %d to %q, want 303 to the login page", r.status, r.header.Get("Location"))
	}
	if r := e.do("GET", "/admin/", nil, c); r.status != http.StatusSeeOther {
		t.Errorf("GET /admin/ after logout = %d, want 303", r.status)
	}
}

// loginCookieHeader logs in and returns the raw Set-Cookie header of the session.
func (e *env) loginCookieHeader() string {
	r := e.do("POST", "/admin/login/", url.Values{"username": {testUser}, "password": {testPassword}}, nil)
	for _, s := range r.header["Set-Cookie"] {
		if strings.HasPrefix(s, sessionCookie+"=") {
			return s
		}
	}
	e.t.Fatal("no session cookie")
	return ""
}

func TestCrossOriginLoginRefused(t *testing.T) {
	e := newEnv(t, true)
	form := url.Values{"username": {testUser}, "password": {testPassword}}
	if r := e.do("POST", "/admin/login/", form, nil, "Origin", "https://evil.example"); r.status != http.StatusForbidden {
		t.Errorf("login from another origin: %d, want 403", r.status)
	}
	if r := e.do("POST", "/admin/login/", form, nil, "Origin", e.srv.URL, "Sec-Fetch-Site", "same-origin"); r.status != http.StatusSeeOther {
		t.Errorf("login from the panel's origin: %d, want 303", r.status)
	}
}

func TestLoginRateLimit(t *testing.T) {
	e := newEnv(t, true)
	post := func(remote, pw string) *httptest.ResponseRecorder {
		req := httptest.NewRequestWithContext(t.Context(), "POST", "/admin/login/",
			strings.NewReader(url.Values{"username": {testUser}, "password": {pw}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.RemoteAddr = remote
		w := httptest.NewRecorder()
		e.h.ServeHTTP(w, req)
		return w
	}
	for i := range maxLoginFails {
		if w := post("198.51.100.7:4000", "wrong"); w.Code != http.StatusUnauthorized {
			t.Fatalf("failed login %d: %d, want 401", i+1, w.Code)
		}
	}
	w := post("198.51.100.7:4001", testPassword)
	if w.Code != http.StatusTooManyRequests {
		t.Fatalf("login after %d failures: %d, want 429", maxLoginFails, w.Code)
	}
	if ra := w.Header().Get("Retry-After"); ra == "" || ra == "0" {
		t.Errorf("Retry-After = %q", ra)
	}
	if w := post("198.51.100.8:4000", testPassword); w.Code != http.StatusSeeOther {
		t.Errorf("login from another address: %d, want 303", w.Code)
	}
	// IPv6 peers are counted by /64.
	for range maxLoginFails {
		post("[2001:db8:1:2::1]:4000", "wrong")
	}
	if w := post("[2001:db8:1:2::99]:4000", testPassword); w.Code != http.StatusTooManyRequests {
		t.Errorf("login from the same /64: %d, want 429", w.Code)
	}
	if w := post("[2001:db8:1:3::1]:4000", testPassword); w.Code != http.StatusSeeOther {
		t.Errorf("login from another /64: %d, want 303", w.Code)
	}
}

func TestLoginThrottleWindowAndSessions(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	a := newAuthenticator(func() time.Time { return now })
	addr := clientPrefix(&http.Request{RemoteAddr: "192.0.2.1:1"})
	for range maxLoginFails {
		a.failed(addr)
		now = now.Add(time.Second)
	}
	if wait, ok := a.throttled(addr); !ok || wait != loginFailWindow-maxLoginFails*time.Second {
		t.Errorf("throttled = %v, %v; want true, %v", wait, ok, loginFailWindow-maxLoginFails*time.Second)
	}
	now = now.Add(loginFailWindow)
	if _, ok := a.throttled(addr); ok {
		t.Error("still throttled after the window")
	}
	if len(a.failures) != 0 {
		t.Errorf("%d addresses still tracked after their window", len(a.failures))
	}

	first := a.start("u")
	if a.lookup(first) == nil {
		t.Fatal("a new session is not found")
	}
	for range maxSessions {
		now = now.Add(time.Second)
		a.start("u")
	}
	if a.lookup(first) != nil || len(a.sessions) != maxSessions {
		t.Errorf("over the cap: the oldest session is kept (%d sessions)", len(a.sessions))
	}
	last := a.start("u")
	now = now.Add(sessionTTL)
	if a.lookup(last) != nil {
		t.Error("a session outlives its 12 h")
	}
}

// metricLine is one sample line of the Prometheus text format.
var metricLine = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*"(?:,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*")*)\})? (-?[0-9.eE+-]+|NaN|[+-]Inf)$`)

func TestMetrics(t *testing.T) {
	e := newEnv(t, true)
	r := e.do("GET", "/metrics", nil, nil)
	if r.status != http.StatusOK || !strings.HasPrefix(r.header.Get("Content-Type"), "text/plain; version=0.0.4") {
		t.Fatalf("GET /metrics = %d, %q", r.status, r.header.Get("Content-Type"))
	}
	samples := map[string]string{}
	typed := map[string]bool{}
	for line := range strings.SplitSeq(strings.TrimSuffix(r.body, "\n"), "\n") {
		if rest, ok := strings.CutPrefix(line, "# TYPE "); ok {
			f := strings.Fields(rest)
			if len(f) != 2 || (f[1] != "gauge" && f[1] != "counter") {
				t.Errorf("bad TYPE line %q", line)
			}
			typed[f[0]] = true
			continue
		}
		if strings.HasPrefix(line, "# HELP ") {
			continue
		}
		m := metricLine.FindStringSubmatch(line)
		if m == nil {
			t.Errorf("not a Prometheus sample line: %q", line)
			continue
		}
		if !typed[m[1]] {
			t.Errorf("sample %q before its TYPE line", line)
		}
		samples[m[1]+m[2]] = m[4]
	}
	for k, want := range map[string]string{
		`horde_miner_jobs_in_flight{class="always_on.gpu-24gb"}`:     "1",
		`horde_miner_jobs_in_flight{class="always_on.test"}`:         "0",
		`horde_miner_manifest_executors{class="always_on.gpu-24gb"}`: "2",
		`horde_miner_axon_ok`:                                                          "1",
		`horde_miner_metagraph_block`:                                                  "4242",
		`horde_miner_metagraph_stale`:                                                  "0",
		`horde_miner_validator_connections`:                                            "3",
		`horde_miner_job_declines_total{reason="busy"}`:                                "7",
		`horde_miner_job_failures_total{kind="job",reason="timeout"}`:                  "2",
		`horde_miner_job_failures_total{kind="horde",reason="executor_spinup_failed"}`: "1",
		`horde_miner_draining`:                                                         "0",
	} {
		if got, ok := samples[k]; !ok || got != want {
			t.Errorf("%s = %q (present %v), want %s", k, got, ok, want)
		}
	}
	if age := samples["horde_miner_metagraph_age_seconds"]; !strings.HasPrefix(age, "12") {
		t.Errorf("metagraph age = %q, want about 12 s", age)
	}

	// A label value with quotes, a backslash and a newline is escaped.
	e.miner.mu.Lock()
	e.miner.st.DeclineCounts = []miner.ReasonCount{{Kind: miner.KindDeclined, Reason: "a\"b\\c\nd", N: 1}}
	e.miner.mu.Unlock()
	r = e.do("GET", "/metrics", nil, nil)
	wantContains(t, "metrics", r.body, `horde_miner_job_declines_total{reason="a\"b\\c\nd"} 1`+"\n")

	e.miner.mu.Lock()
	e.miner.err = errors.New("store down")
	e.miner.mu.Unlock()
	if r := e.do("GET", "/metrics", nil, nil); r.status != http.StatusServiceUnavailable || strings.Contains(r.body, "store down") {
		t.Errorf("metrics with the status failing: %d %q, want 503 without the cause", r.status, r.body)
	}
}

// TestRegisterNextToMinerHandler mounts the panel as minerd does, beside a catch-all
// handler standing for the miner's own.
func TestRegisterNextToMinerHandler(t *testing.T) {
	e := newEnv(t, false)
	mux := http.NewServeMux()
	mux.Handle("/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "miner:"+r.URL.Path) }))
	e.h.Register(mux)
	get := func(path string) (int, string) {
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, httptest.NewRequestWithContext(t.Context(), "GET", path, nil))
		return w.Code, w.Body.String()
	}
	if code, body := get("/admin/login/"); code != http.StatusOK || !strings.Contains(body, "disabled") {
		t.Errorf("/admin/login/: %d", code)
	}
	if code, body := get("/metrics"); code != http.StatusOK || !strings.Contains(body, "horde_miner_axon_ok") {
		t.Errorf("/metrics: %d", code)
	}
	if code, body := get("/v0.1/validator_interface/x"); code != http.StatusOK || body != "miner:/v0.1/validator_interface/x" {
		t.Errorf("the miner's path: %d %q", code, body)
	}
	if code, _ := get("/admin/whatever"); code != http.StatusNotFound {
		t.Errorf("/admin/whatever: %d, want the panel's 404", code)
	}
}
