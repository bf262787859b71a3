// Package sdk is the Go client of a horde facilitator: sign in with a Bittensor hotkey or an
// API key, submit paid jobs, follow them to the end, read their output, and manage the
// account. Errors from the facilitator are *APIError; requests that can be repeated safely
// are retried on transient failures (network errors, 429 with Retry-After, 502–504).
package sdk

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Signer signs the facilitator's login nonce with a Bittensor (sr25519) hotkey.
type Signer interface {
	SS58() string                           // the hotkey's address
	SignMessage(msg []byte) ([]byte, error) // a 64-byte sr25519 signature of msg
}

// Client talks to one facilitator. It is safe for concurrent use.
type Client struct {
	base    string
	http    *http.Client
	apiKey  string
	signer  Signer
	retries int

	mu    sync.Mutex
	token string
}

// Option configures a Client.
type Option func(*Client)

// WithAPIKey authenticates with an API key (created with CreateKey or `horde account keys`).
func WithAPIKey(key string) Option { return func(c *Client) { c.apiKey = key } }

// WithSigner authenticates by signing a nonce with a hotkey; the client signs in again when
// its token expires.
func WithSigner(s Signer) Option { return func(c *Client) { c.signer = s } }

// WithHTTPClient replaces http.DefaultClient.
func WithHTTPClient(h *http.Client) Option { return func(c *Client) { c.http = h } }

// WithRetries sets how many times a failed request that is safe to repeat is retried
// (default 4).
func WithRetries(n int) Option { return func(c *Client) { c.retries = n } }

// New returns a client of the facilitator at baseURL (e.g. https://facilitator.example).
func New(baseURL string, opts ...Option) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("sdk: facilitator URL %q is not an http(s) URL", baseURL)
	}
	c := &Client{base: strings.TrimRight(baseURL, "/"), http: http.DefaultClient, retries: 4}
	for _, o := range opts {
		o(c)
	}
	if c.apiKey == "" && c.signer == nil {
		return nil, errors.New("sdk: no credentials: use WithAPIKey or WithSigner")
	}
	return c, nil
}

// APIError is an error answer of the facilitator.
type APIError struct {
	Status  int          // HTTP status
	Code    string       // stable code: invalid_job, insufficient_credits, not_found, rate_limited, …
	Message string       // for people
	Fields  []FieldError // the fields at fault of a refused job
	// RetryAfter is the wait the facilitator asked for (429), if any.
	RetryAfter time.Duration
}

// FieldError is one field of a refused job.
type FieldError struct {
	Field   string `json:"field"`
	Problem string `json:"problem"`
}

func (e *APIError) Error() string {
	return fmt.Sprintf("facilitator: %s (HTTP %d, %s)", e.Message, e.Status, e.Code)
}

// IsNotFound reports whether err is the facilitator's 404.
func IsNotFound(err error) bool {
	var e *APIError
	return errors.As(err, &e) && e.Status == http.StatusNotFound
}

// IsInsufficientCredits reports whether err refused a job the balance cannot cover.
func IsInsufficientCredits(err error) bool {
	var e *APIError
	return errors.As(err, &e) && e.Code == "insufficient_credits"
}

// Login signs in with the signer and keeps the token.
func (c *Client) Login(ctx context.Context) error {
	if c.signer == nil {
		return errors.New("sdk: Login needs WithSigner")
	}
	var n struct {
		Nonce string `json:"nonce"`
	}
	if err := c.do(ctx, http.MethodGet, "/auth/nonce", nil, nil, true, false, &n); err != nil {
		return err
	}
	sig, err := c.signer.SignMessage([]byte(n.Nonce))
	if err != nil {
		return fmt.Errorf("sdk: sign the nonce: %w", err)
	}
	var t struct {
		Token string `json:"token"`
	}
	body := map[string]string{"hotkey": c.signer.SS58(), "signature": hex.EncodeToString(sig), "nonce": n.Nonce}
	if err := c.do(ctx, http.MethodPost, "/auth/login", nil, body, false, false, &t); err != nil {
		return err
	}
	c.mu.Lock()
	c.token = t.Token
	c.mu.Unlock()
	return nil
}

// Token signs in with the signer when needed and returns the login token, which the
// facilitator's pages also accept.
func (c *Client) Token(ctx context.Context) (string, error) {
	if c.signer == nil {
		return "", errors.New("sdk: Token needs WithSigner (an API key is itself the credential)")
	}
	return c.credential(ctx)
}

// JobSpec is a job to submit.
type JobSpec struct {
	ExecutorClass      string            `json:"executor_class"`
	DockerImage        string            `json:"docker_image"`
	Args               []string          `json:"args,omitempty"`
	Env                map[string]string `json:"env,omitempty"`
	Volume             json.RawMessage   `json:"volume,omitempty"`        // upstream's Volume JSON
	OutputUpload       json.RawMessage   `json:"output_upload,omitempty"` // upstream's OutputUpload JSON
	ArtifactsDir       string            `json:"artifacts_dir,omitempty"`
	DownloadTimeLimit  int               `json:"download_time_limit"`
	ExecutionTimeLimit int               `json:"execution_time_limit"`
	UploadTimeLimit    int               `json:"upload_time_limit"`
	TargetValidator    string            `json:"target_validator_hotkey,omitempty"`
	OnTrustedMiner     bool              `json:"on_trusted_miner,omitempty"`
	JobNamespace       string            `json:"job_namespace,omitempty"`
}

// Job is a job as the facilitator shows it. Money is in micro-credits.
type Job struct {
	UUID           string          `json:"uuid"`
	Status         string          `json:"status"`
	ExecutorClass  string          `json:"executor_class"`
	DockerImage    string          `json:"docker_image"`
	Args           []string        `json:"args"`
	Validator      string          `json:"validator"`
	PricePerSecond int64           `json:"price_per_second"`
	MaxCost        int64           `json:"max_cost"`
	Charged        int64           `json:"charged"`
	Stdout         string          `json:"stdout"`
	Stderr         string          `json:"stderr"`
	Result         json.RawMessage `json:"result"`
	CreatedAt      time.Time       `json:"created_at"`
	UpdatedAt      time.Time       `json:"updated_at"`
	History        []struct {
		Status string          `json:"status"`
		At     time.Time       `json:"at"`
		Detail json.RawMessage `json:"detail"`
	} `json:"history"`
}

// Done reports whether the job has ended.
func (j *Job) Done() bool {
	switch j.Status {
	case "completed", "failed", "rejected", "horde_failed", "cancelled":
		return true
	}
	return false
}

// Submit submits spec; idempotencyKey (optional, and generated when empty) makes a retried
// submit return the first job rather than a second one.
func (c *Client) Submit(ctx context.Context, spec JobSpec, idempotencyKey string) (*Job, error) {
	if idempotencyKey == "" {
		var b [16]byte
		_, _ = rand.Read(b[:])
		idempotencyKey = hex.EncodeToString(b[:])
	}
	var j Job
	err := c.do(ctx, http.MethodPost, "/api/v1/jobs", http.Header{"Idempotency-Key": {idempotencyKey}}, spec, true, true, &j)
	if err != nil {
		return nil, err
	}
	return &j, nil
}

// Job returns one of the caller's jobs.
func (c *Client) Job(ctx context.Context, id string) (*Job, error) {
	var j Job
	if err := c.do(ctx, http.MethodGet, "/api/v1/jobs/"+url.PathEscape(id), nil, nil, true, true, &j); err != nil {
		return nil, err
	}
	return &j, nil
}

// JobPage is one page of the caller's jobs, newest first; NextCursor is empty on the last.
type JobPage struct {
	Jobs       []Job  `json:"jobs"`
	NextCursor string `json:"next_cursor"`
}

// Jobs lists the caller's jobs: statuses filters (none means all), limit ≤ 200 (0 means
// 50), cursor continues a listing.
func (c *Client) Jobs(ctx context.Context, statuses []string, limit int, cursor string) (*JobPage, error) {
	q := url.Values{}
	if len(statuses) > 0 {
		q.Set("status", strings.Join(statuses, ","))
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	if cursor != "" {
		q.Set("cursor", cursor)
	}
	var p JobPage
	if err := c.do(ctx, http.MethodGet, "/api/v1/jobs?"+q.Encode(), nil, nil, true, true, &p); err != nil {
		return nil, err
	}
	return &p, nil
}

// Cancel cancels a queued job (a running one cannot be recalled).
func (c *Client) Cancel(ctx context.Context, id string) (*Job, error) {
	var j Job
	if err := c.do(ctx, http.MethodPost, "/api/v1/jobs/"+url.PathEscape(id)+"/cancel", nil, nil, true, true, &j); err != nil {
		return nil, err
	}
	return &j, nil
}

// Wait polls the job until it ends, calling progress (when not nil) whenever its status
// changes, and returns it.
func (c *Client) Wait(ctx context.Context, id string, progress func(*Job)) (*Job, error) {
	last := ""
	for delay := 200 * time.Millisecond; ; delay = min(delay*3/2, 2*time.Second) {
		j, err := c.Job(ctx, id)
		if err != nil {
			return nil, err
		}
		if j.Status != last {
			last = j.Status
			if progress != nil {
				progress(j)
			}
		}
		if j.Done() {
			return j, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(delay):
		}
	}
}

// Logs returns a job's standard output, or its standard error when stderr is set.
func (c *Client) Logs(ctx context.Context, id string, stderr bool) (string, error) {
	path := "/api/v1/jobs/" + url.PathEscape(id) + "/logs"
	if stderr {
		path += "?stream=stderr"
	}
	var out rawText
	if err := c.do(ctx, http.MethodGet, path, nil, nil, true, true, &out); err != nil {
		return "", err
	}
	return string(out), nil
}

// OutputsURL returns a signed, expiring URL of a finished job's zipped /output, for jobs
// that named no upload target of their own.
func (c *Client) OutputsURL(ctx context.Context, id string) (string, error) {
	var out struct {
		URL string `json:"url"`
	}
	if err := c.do(ctx, http.MethodGet, "/api/v1/jobs/"+url.PathEscape(id)+"/outputs", nil, nil, true, true, &out); err != nil {
		return "", err
	}
	return out.URL, nil
}

// rawText receives a text body.
type rawText []byte

// Artifacts returns the files a completed job left in its artifacts directory, by path.
func (j *Job) Artifacts() (map[string][]byte, error) {
	var md struct {
		MinerResponse *struct {
			Artifacts map[string]string `json:"artifacts"`
		} `json:"miner_response"`
	}
	if len(j.Result) == 0 {
		return nil, nil
	}
	if err := json.Unmarshal(j.Result, &md); err != nil {
		return nil, fmt.Errorf("sdk: job %s: result: %w", j.UUID, err)
	}
	if md.MinerResponse == nil {
		return nil, nil
	}
	out := make(map[string][]byte, len(md.MinerResponse.Artifacts))
	for p, b64 := range md.MinerResponse.Artifacts {
		data, err := base64.StdEncoding.DecodeString(b64)
		if err != nil {
			return nil, fmt.Errorf("sdk: job %s: artifact %s: %w", j.UUID, p, err)
		}
		out[p] = data
	}
	return out, nil
}

// Account is the caller's account.
type Account struct {
	User    string `json:"user"`
	Balance int64  `json:"balance"` // micro-credits
}

// Account returns the caller's account and balance.
func (c *Client) Account(ctx context.Context) (*Account, error) {
	var a Account
	if err := c.do(ctx, http.MethodGet, "/api/v1/account", nil, nil, true, true, &a); err != nil {
		return nil, err
	}
	return &a, nil
}

// APIKey is one of the caller's API keys; Key (the secret) is set only when created.
type APIKey struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Key       string    `json:"key,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	RevokedAt time.Time `json:"revoked_at"`
}

// CreateKey creates an API key; its secret is in the result only.
func (c *Client) CreateKey(ctx context.Context, name string) (*APIKey, error) {
	var k APIKey
	if err := c.do(ctx, http.MethodPost, "/api/v1/keys", nil, map[string]string{"name": name}, false, true, &k); err != nil {
		return nil, err
	}
	return &k, nil
}

// Keys lists the caller's API keys.
func (c *Client) Keys(ctx context.Context) ([]APIKey, error) {
	var out struct {
		Keys []APIKey `json:"keys"`
	}
	if err := c.do(ctx, http.MethodGet, "/api/v1/keys", nil, nil, true, true, &out); err != nil {
		return nil, err
	}
	return out.Keys, nil
}

// RevokeKey revokes one of the caller's API keys.
func (c *Client) RevokeKey(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, "/api/v1/keys/"+url.PathEscape(id), nil, nil, true, true, nil)
}

// credential returns the bearer credential, signing in first when needed.
func (c *Client) credential(ctx context.Context) (string, error) {
	if c.apiKey != "" {
		return c.apiKey, nil
	}
	c.mu.Lock()
	tok := c.token
	c.mu.Unlock()
	if tok != "" {
		return tok, nil
	}
	if err := c.Login(ctx); err != nil {
		return "", err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.token, nil
}

// maxResponse bounds a response body.
const maxResponse = 16 << 20

// do sends one request; repeatable says it may be retried, authed that it carries the
// credential (and, with a signer, signs in again once on an expired token).
func (c *Client) do(ctx context.Context, method, path string, hdr http.Header, body any, repeatable, authed bool, out any) error {
	var payload []byte
	if body != nil {
		var err error
		if payload, err = json.Marshal(body); err != nil {
			return fmt.Errorf("sdk: encode the request: %w", err)
		}
	}
	relogged := false
	for attempt := 0; ; attempt++ {
		req, err := http.NewRequestWithContext(ctx, method, c.base+path, bytes.NewReader(payload))
		if err != nil {
			return fmt.Errorf("sdk: %w", err)
		}
		for k, vs := range hdr {
			req.Header[k] = vs
		}
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		if authed {
			cred, err := c.credential(ctx)
			if err != nil {
				return err
			}
			req.Header.Set("Authorization", "Bearer "+cred)
		}
		resp, err := c.http.Do(req)
		var wait time.Duration
		if err == nil {
			data, rerr := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
			resp.Body.Close()
			if rerr != nil {
				err = fmt.Errorf("sdk: read the answer: %w", rerr)
			} else if resp.StatusCode < 300 {
				if out == nil || resp.StatusCode == http.StatusNoContent {
					return nil
				}
				if t, ok := out.(*rawText); ok {
					*t = data
					return nil
				}
				if err := json.Unmarshal(data, out); err != nil {
					return fmt.Errorf("sdk: decode the answer of %s %s: %w", method, path, err)
				}
				return nil
			} else {
				apiErr := &APIError{Status: resp.StatusCode, Code: "http_" + strconv.Itoa(resp.StatusCode), Message: http.StatusText(resp.StatusCode)}
				var e struct {
					Error struct {
						Code    string       `json:"code"`
						Message string       `json:"message"`
						Fields  []FieldError `json:"fields"`
					} `json:"error"`
				}
				if json.Unmarshal(data, &e) == nil && e.Error.Code != "" {
					apiErr.Code, apiErr.Message, apiErr.Fields = e.Error.Code, e.Error.Message, e.Error.Fields
				}
				if s, perr := strconv.Atoi(resp.Header.Get("Retry-After")); perr == nil {
					apiErr.RetryAfter = time.Duration(s) * time.Second
				}
				if resp.StatusCode == http.StatusUnauthorized && authed && c.signer != nil && c.apiKey == "" && !relogged &&
					(apiErr.Code == "invalid_token") {
					relogged = true
					c.mu.Lock()
					c.token = ""
					c.mu.Unlock()
					continue
				}
				switch resp.StatusCode {
				case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
					wait = apiErr.RetryAfter
					err = apiErr
				default:
					return apiErr
				}
			}
		} else {
			err = fmt.Errorf("sdk: %s %s: %w", method, path, err)
		}
		if !repeatable || attempt >= c.retries || ctx.Err() != nil {
			return err
		}
		if wait == 0 {
			wait = time.Duration(100*math.Pow(2, float64(attempt))) * time.Millisecond
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
	}
}
