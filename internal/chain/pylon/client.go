// Package pylon is a [chain.Chain] backed by Pylon, the REST service upstream ComputeHorde
// uses for all chain access (reference/chain.md §2): it holds the hotkey in its own
// container, reads the metagraph and commitments, and sets weights, commit-reveal included.
// The API is pinned to one release ([wire.Release]); `horde chain sim` serves the same API
// from the simulated chain, so this client is what roles in separate processes use in
// tests too.
//
// Pylon cannot do everything a role needs: it has no serve_axon ([Client.ServeAxon] says
// how to announce with btcli instead), and release 0.3.0 serves no hyperparameters (they
// come from configuration unless the server has horde's extension, see
// [Client.HyperparamsSource]). Its PUT /weights only schedules the weights, so a receipt
// is Pending and [Client.WeightsStatus] tells later whether they landed, on servers that
// have the status endpoint.
package pylon

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/computehorde/horde/internal/chain"
	"github.com/computehorde/horde/internal/chain/pylon/wire"
	"github.com/computehorde/horde/internal/clock"
)

// Defaults for zero Config fields.
const (
	DefaultAttempts         = 4
	DefaultBackoff          = 250 * time.Millisecond
	DefaultRequestTimeout   = 30 * time.Second
	DefaultPollInterval     = 12 * time.Second
	DefaultMaxResponseBytes = 32 << 20
)

// Config configures a [Client].
type Config struct {
	// URL is the server's base URL, e.g. http://pylon:8000.
	URL string
	// Identity is the Pylon identity writes go through (and reads, when set); empty means
	// open access, which can only read.
	Identity string
	// Token is the identity's token; OpenAccessToken the open access one (empty when the
	// server checks none).
	Token           string
	OpenAccessToken string
	// NetUID is the subnet. With an identity, login tells it: a different non-zero NetUID
	// here is an error. Open access needs it.
	NetUID chain.NetUID
	// Hotkey is the identity's hotkey (the role's own): writes for another hotkey are
	// refused instead of being signed with the wrong key. Empty skips the check.
	Hotkey chain.Hotkey
	// Hyperparams are used when the server does not serve them (Pylon does not); zero
	// means chain.DefaultHyperparams(), subtensor's defaults.
	Hyperparams chain.Hyperparams
	// HTTPClient makes the requests; nil means a client with no overall timeout (each
	// attempt is bounded by RequestTimeout).
	HTTPClient *http.Client
	// Attempts bounds the tries of one call on transient failures (transport errors, 5xx,
	// 429, truncated answers); 0 means 4. Backoff is the first wait, doubling up to 8×,
	// with jitter; 0 means 250 ms.
	Attempts int
	Backoff  time.Duration
	// RequestTimeout bounds one attempt; 0 means 30 s.
	RequestTimeout time.Duration
	// PollInterval is how often WatchHeads asks for the head; 0 means 12 s (a block).
	PollInterval time.Duration
	// MaxResponseBytes bounds an answer; 0 means 32 MiB.
	MaxResponseBytes int64
	Logger           *slog.Logger
}

// Client is a Pylon client. It is safe for concurrent use.
type Client struct {
	cfg    Config
	base   *url.URL
	subnet string // path of the subnet's endpoints, identity or open access
	hc     *http.Client
	log    *slog.Logger
	// hpServed is true when the server serves horde's hyperparameters extension.
	hpServed bool
}

var (
	_ chain.Chain           = (*Client)(nil)
	_ chain.WeightsStatuser = (*Client)(nil)
)

// New checks cfg, logs in when an identity is set (learning its netuid) and finds out
// where hyperparameters come from. It fails when the server cannot be reached within the
// configured attempts.
func New(ctx context.Context, cfg Config) (*Client, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("pylon: URL %q is not an http:// or https:// base URL such as http://pylon:8000", cfg.URL)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	if cfg.Identity != "" && (strings.ContainsAny(cfg.Identity, "/?#%") || cfg.Identity != strings.TrimSpace(cfg.Identity)) {
		return nil, fmt.Errorf("pylon: identity name %q has characters a URL path cannot carry; use the name from PYLON_IDENTITIES", cfg.Identity)
	}
	if cfg.Identity == "" && cfg.NetUID == 0 {
		return nil, errors.New("pylon: open access needs the netuid (ComputeHorde is 12 on finney); set --netuid or an identity")
	}
	if cfg.Hyperparams == (chain.Hyperparams{}) {
		cfg.Hyperparams = chain.DefaultHyperparams()
	}
	cfg.Attempts = max(cfg.Attempts, 0)
	if cfg.Attempts == 0 {
		cfg.Attempts = DefaultAttempts
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = DefaultBackoff
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = DefaultRequestTimeout
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = DefaultPollInterval
	}
	if cfg.MaxResponseBytes <= 0 {
		cfg.MaxResponseBytes = DefaultMaxResponseBytes
	}
	c := &Client{cfg: cfg, base: u, hc: cfg.HTTPClient, log: cfg.Logger}
	if c.hc == nil {
		c.hc = &http.Client{}
	}
	if c.log == nil {
		c.log = slog.Default()
	}
	if cfg.Identity != "" {
		var lr wire.LoginResponse
		if err := c.do(ctx, http.MethodPost, wire.PathLogin(cfg.Identity), wire.LoginRequest{Token: cfg.Token}, &lr); err != nil {
			return nil, fmt.Errorf("pylon: logging in as identity %q: %w", cfg.Identity, err)
		}
		if cfg.NetUID != 0 && lr.NetUID != cfg.NetUID {
			return nil, fmt.Errorf("pylon: identity %q is on netuid %d but netuid %d is configured; fix one of them", cfg.Identity, lr.NetUID, cfg.NetUID)
		}
		c.cfg.NetUID = lr.NetUID
	}
	c.subnet = wire.SubnetBase(cfg.Identity, c.cfg.NetUID)
	var hp wire.Hyperparams
	switch err := c.do(ctx, http.MethodGet, wire.HyperparamsPath(c.cfg.NetUID), nil, &hp); {
	case err == nil:
		c.hpServed = true
	case errors.Is(err, chain.ErrNotSupported):
	default:
		return nil, fmt.Errorf("pylon: reading hyperparameters: %w", err)
	}
	return c, nil
}

// NetUID is the subnet the client reads and writes.
func (c *Client) NetUID() chain.NetUID { return c.cfg.NetUID }

// HyperparamsSource says where Hyperparams come from, for the role's start-up log.
func (c *Client) HyperparamsSource() string {
	if c.hpServed {
		return "the chain server (horde's hyperparameters endpoint)"
	}
	return "configuration (" + wire.Release + " does not serve them)"
}

func (c *Client) checkNetUID(netuid chain.NetUID) error {
	if netuid != c.cfg.NetUID {
		return fmt.Errorf("%w (netuid %d; this Pylon client is for netuid %d)", chain.ErrSubnetNotExists, netuid, c.cfg.NetUID)
	}
	return nil
}

// checkWriter refuses writes that Pylon would sign with another hotkey than the caller's.
// An empty hotkey means "the identity's, whichever it is".
func (c *Client) checkWriter(hotkey chain.Hotkey, netuid chain.NetUID) error {
	if c.cfg.Identity == "" {
		return ErrNoIdentity
	}
	if c.cfg.Hotkey != "" && hotkey != "" && hotkey != c.cfg.Hotkey {
		return fmt.Errorf("pylon: identity %q signs as %s, not %s; configure the identity of this hotkey", c.cfg.Identity, c.cfg.Hotkey, hotkey)
	}
	return c.checkNetUID(netuid)
}

// Head returns the newest block, from the (short) validators answer: Pylon 0.3.0 has no
// head endpoint.
func (c *Client) Head(ctx context.Context) (chain.Block, error) {
	var r wire.ValidatorsResponse
	if err := c.do(ctx, http.MethodGet, c.subnet+wire.PathLatestValidators, nil, &r); err != nil {
		return chain.Block{}, err
	}
	return c.block(r.Block, wire.PathLatestValidators)
}

func (c *Client) block(b wire.Block, path string) (chain.Block, error) {
	out, err := b.ToBlock()
	if err != nil {
		return chain.Block{}, c.badResponse(http.MethodGet, path, err)
	}
	return out, nil
}

func (c *Client) badResponse(method, path string, err error) error {
	return &APIError{Method: method, Path: path, Status: http.StatusOK, Detail: err.Error(), kinds: []error{ErrBadResponse}}
}

// Metagraph returns the neurons at block at (0 = the newest).
func (c *Client) Metagraph(ctx context.Context, netuid chain.NetUID, at uint64) (*chain.Metagraph, error) {
	if err := c.checkNetUID(netuid); err != nil {
		return nil, err
	}
	path := wire.PathLatestNeurons
	if at != 0 {
		path = wire.PathNeuronsAt(at)
	}
	var r wire.NeuronsResponse
	if err := c.do(ctx, http.MethodGet, c.subnet+path, nil, &r); err != nil {
		return nil, err
	}
	mg, err := r.ToMetagraph(netuid)
	if err != nil {
		return nil, c.badResponse(http.MethodGet, c.subnet+path, err)
	}
	if at != 0 && mg.Block.Number != at {
		return nil, c.badResponse(http.MethodGet, c.subnet+path, fmt.Errorf("asked for block %d, got block %d", at, mg.Block.Number))
	}
	return mg, nil
}

// Validators returns the neurons holding a validator permit at block at (0 = the newest),
// by total stake, highest first, and the block.
func (c *Client) Validators(ctx context.Context, at uint64) ([]chain.Neuron, chain.Block, error) {
	path := wire.PathLatestValidators
	if at != 0 {
		path = wire.PathValidatorsAt(at)
	}
	var r wire.ValidatorsResponse
	if err := c.do(ctx, http.MethodGet, c.subnet+path, nil, &r); err != nil {
		return nil, chain.Block{}, err
	}
	b, err := c.block(r.Block, c.subnet+path)
	if err != nil {
		return nil, chain.Block{}, err
	}
	out := make([]chain.Neuron, 0, len(r.Validators))
	for _, wn := range r.Validators {
		n, err := wn.ToNeuron()
		if err != nil {
			return nil, chain.Block{}, c.badResponse(http.MethodGet, c.subnet+path, err)
		}
		out = append(out, n)
	}
	return out, b, nil
}

// Hyperparams returns the subnet's hyperparameters: the server's where it serves horde's
// extension, else the configured ones (see HyperparamsSource).
func (c *Client) Hyperparams(ctx context.Context, netuid chain.NetUID) (chain.Hyperparams, error) {
	if err := c.checkNetUID(netuid); err != nil {
		return chain.Hyperparams{}, err
	}
	if !c.hpServed {
		return c.cfg.Hyperparams, nil
	}
	var hp wire.Hyperparams
	if err := c.do(ctx, http.MethodGet, wire.HyperparamsPath(netuid), nil, &hp); err != nil {
		return chain.Hyperparams{}, err
	}
	return hp.ToHyperparams(), nil
}

// SetWeights hands the weights to Pylon, which sets or commits them in the background and
// retries until the epoch ends. Hotkeys not registered at the newest block are left out and
// listed in the receipt (Pylon would drop them silently). The receipt is Pending: use
// WeightsStatus to learn whether the weights landed. Pylon applies its own version key
// (turbobt's); versionKey is not sent.
func (c *Client) SetWeights(ctx context.Context, hotkey chain.Hotkey, netuid chain.NetUID, weights map[chain.Hotkey]float64, versionKey uint64) (chain.WeightsReceipt, error) {
	if err := c.checkWriter(hotkey, netuid); err != nil {
		return chain.WeightsReceipt{}, err
	}
	mg, err := c.Metagraph(ctx, netuid, 0)
	if err != nil {
		return chain.WeightsReceipt{}, err
	}
	byUID := make(map[chain.UID]float64, len(weights))
	body := wire.WeightsRequest{Weights: make(map[string]float64, len(weights))}
	var unknown []chain.Hotkey
	for h, w := range weights {
		n, ok := mg.ByHotkey(h)
		if !ok {
			unknown = append(unknown, h)
			continue
		}
		byUID[n.UID] = w
		body.Weights[string(h)] = w
	}
	slices.Sort(unknown)
	uids, values, err := chain.QuantizeWeights(byUID)
	if err != nil {
		return chain.WeightsReceipt{}, err
	}
	if len(uids) == 0 {
		return chain.WeightsReceipt{}, fmt.Errorf("%w (no registered hotkey has a non-zero weight; %d unknown hotkeys)", chain.ErrWeightVecLengthIsLow, len(unknown))
	}
	hp, err := c.Hyperparams(ctx, netuid)
	if err != nil {
		return chain.WeightsReceipt{}, err
	}
	var resp wire.WeightsResponse
	if err := c.do(ctx, http.MethodPut, c.subnet+wire.PathWeights, body, &resp); err != nil {
		return chain.WeightsReceipt{}, err
	}
	r := chain.WeightsReceipt{
		Block: mg.Block.Number + 1, CommitReveal: hp.CommitRevealEnabled,
		UIDs: uids, Values: values, Unknown: unknown, Pending: true,
	}
	r.RevealBlock = r.Block
	if hp.CommitRevealEnabled {
		r.RevealBlock = chain.EpochStart(chain.EpochIndex(r.Block, netuid, hp.Tempo)+hp.RevealPeriodEpochs, netuid, hp.Tempo)
	}
	return r, nil
}

// WeightsStatus asks whether the identity's weights for the epoch holding block landed.
// Pylon 0.3.0 has no such endpoint: the error then wraps chain.ErrNotSupported.
func (c *Client) WeightsStatus(ctx context.Context, block uint64) (chain.WeightsStatus, error) {
	if c.cfg.Identity == "" {
		return chain.WeightsStatus{}, ErrNoIdentity
	}
	var r wire.WeightsStatusResponse
	if err := c.do(ctx, http.MethodGet, c.subnet+wire.PathWeightsStatus(block), nil, &r); err != nil {
		return chain.WeightsStatus{}, err
	}
	// Pylon itself serves only weights_submitted: without horde's job field, a submitted
	// epoch is the only one known to be scheduled.
	st := chain.WeightsStatus{Submitted: r.WeightsSubmitted, Scheduled: r.WeightsSubmitted || r.Job != ""}
	switch r.Job {
	case wire.JobCompleted, wire.JobTempoExpired, wire.JobFailed:
		st.Done = true
	}
	switch {
	case r.WeightsSubmitted:
	case st.Done:
		st.Err = fmt.Errorf("pylon: weights job %s: %s", r.Job, cmp.Or(r.Error, "no reason given"))
	case r.Error != "":
		st.Err = fmt.Errorf("pylon: weights job still trying; the chain's last answer: %s", r.Error)
	}
	return st, nil
}

// ServeAxon cannot be done through Pylon, which has no serve_axon: the error wraps
// chain.ErrServeAxonUnsupported, and the operator announces the axon with btcli.
func (c *Client) ServeAxon(ctx context.Context, hotkey chain.Hotkey, netuid chain.NetUID, ip netip.Addr, port uint16) error {
	return fmt.Errorf("%w (%s; hotkey %s wants %s on netuid %d)", chain.ErrServeAxonUnsupported, wire.Release, hotkey, netip.AddrPortFrom(ip, port), netuid)
}

// SetCommitment replaces the identity's commitment. Pylon retries on the chain's side and
// answers 502 when it gives up.
func (c *Client) SetCommitment(ctx context.Context, hotkey chain.Hotkey, netuid chain.NetUID, data []byte) error {
	if len(data) > chain.MaxCommitmentBytes {
		return fmt.Errorf("%w (%d bytes)", chain.ErrCommitmentTooLarge, len(data))
	}
	if err := c.checkWriter(hotkey, netuid); err != nil {
		return err
	}
	var r wire.DetailResponse
	return c.do(ctx, http.MethodPost, c.subnet+wire.PathCommitments, wire.SetCommitmentRequest{Commitment: wire.EncodeCommitment(data)}, &r)
}

// Commitments returns every hotkey's commitment at the newest block.
func (c *Client) Commitments(ctx context.Context, netuid chain.NetUID) (map[chain.Hotkey][]byte, error) {
	if err := c.checkNetUID(netuid); err != nil {
		return nil, err
	}
	var r wire.CommitmentsResponse
	path := c.subnet + wire.PathLatestCommitments
	if err := c.do(ctx, http.MethodGet, path, nil, &r); err != nil {
		return nil, err
	}
	out := make(map[chain.Hotkey][]byte, len(r.Commitments))
	for h, s := range r.Commitments {
		b, err := wire.DecodeCommitment(s)
		if err != nil {
			return nil, c.badResponse(http.MethodGet, path, fmt.Errorf("hotkey %s: %v", h, err))
		}
		out[chain.Hotkey(h)] = b
	}
	return out, nil
}

// Commitment returns hotkey's commitment at the newest block; an error wrapping
// ErrNoCommitment when it has none.
func (c *Client) Commitment(ctx context.Context, hotkey chain.Hotkey) ([]byte, error) {
	b, _, err := c.commitment(ctx, wire.PathCommitment(hotkey))
	return b, err
}

// OwnCommitment returns the identity's own commitment and hotkey (which Pylon reveals
// nowhere else); an error wrapping ErrNoCommitment when it has none.
func (c *Client) OwnCommitment(ctx context.Context) ([]byte, chain.Hotkey, error) {
	if c.cfg.Identity == "" {
		return nil, "", ErrNoIdentity
	}
	return c.commitment(ctx, wire.PathOwnCommitment)
}

func (c *Client) commitment(ctx context.Context, rel string) ([]byte, chain.Hotkey, error) {
	var r wire.CommitmentResponse
	path := c.subnet + rel
	if err := c.do(ctx, http.MethodGet, path, nil, &r); err != nil {
		return nil, "", err
	}
	b, err := wire.DecodeCommitment(r.Commitment)
	if err != nil {
		return nil, "", c.badResponse(http.MethodGet, path, err)
	}
	return b, chain.Hotkey(r.Hotkey), nil
}

// WatchHeads polls the head every PollInterval and sends each new one; the channel keeps
// only the newest unread head and is closed when ctx is done. Failed polls are retried at
// the next tick (Metagraph callers see the errors).
func (c *Client) WatchHeads(ctx context.Context) <-chan chain.Block {
	ch := make(chan chain.Block, 1)
	go func() {
		defer close(ch)
		var last chain.Block
		seen := false
		poll := func() {
			b, err := c.Head(ctx)
			if err != nil || (seen && b.Number <= last.Number) {
				return
			}
			last, seen = b, true
			select {
			case <-ch:
			default:
			}
			ch <- b
		}
		poll()
		clock.Every(ctx, c.cfg.PollInterval, poll)
	}()
	return ch
}

// do makes one call, retrying transient failures with backoff, and decodes the answer
// into out.
func (c *Client) do(ctx context.Context, method, path string, body, out any) error {
	var payload []byte
	if body != nil {
		var err error
		if payload, err = json.Marshal(body); err != nil {
			return fmt.Errorf("pylon: encoding %s %s: %w", method, path, err)
		}
	}
	wait := c.cfg.Backoff
	for attempt := 1; ; attempt++ {
		err := c.once(ctx, method, path, payload, out)
		var ae *APIError
		if err == nil || !errors.As(err, &ae) || !ae.retryable() || attempt >= c.cfg.Attempts || ctx.Err() != nil {
			return err
		}
		c.log.Debug("pylon call failed; retrying", "attempt", attempt, "err", err)
		// Full jitter between half and all of the wait, so clients restarted together
		// do not retry in step.
		d := wait/2 + rand.N(wait/2+1)
		if err := clock.Sleep(ctx, d); err != nil {
			return errors.Join(ae, err)
		}
		wait = min(wait*2, 8*c.cfg.Backoff)
	}
}

func (c *Client) once(parent context.Context, method, path string, payload []byte, out any) error {
	ctx, cancel := context.WithTimeout(parent, c.cfg.RequestTimeout)
	defer cancel()
	u := *c.base
	u.Path += path
	var rd io.Reader
	if payload != nil {
		rd = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return fmt.Errorf("pylon: %s %s: %w", method, path, err)
	}
	req.Header.Set("Accept", "application/json")
	if payload != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if tok := c.token(path); tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if parent.Err() != nil {
			return fmt.Errorf("pylon: %s %s: %w", method, path, context.Cause(parent))
		}
		// Refused connections and per-attempt timeouts pass with time.
		return &APIError{Method: method, Path: path, Detail: err.Error(), kinds: []error{chain.ErrUnavailable}}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, c.cfg.MaxResponseBytes+1))
	if err != nil {
		return &APIError{Method: method, Path: path, Status: resp.StatusCode, Detail: "reading the answer: " + err.Error(), kinds: []error{chain.ErrUnavailable}}
	}
	if int64(len(data)) > c.cfg.MaxResponseBytes {
		return &APIError{Method: method, Path: path, Status: resp.StatusCode,
			Detail: fmt.Sprintf("answer larger than %d bytes", c.cfg.MaxResponseBytes), kinds: []error{ErrBadResponse}}
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		if err := json.Unmarshal(data, out); err != nil {
			// A cut or garbled answer is usually a proxy or a restart in the middle;
			// another try is worth it.
			return &APIError{Method: method, Path: path, Status: resp.StatusCode, Detail: "decoding: " + err.Error(),
				kinds: []error{ErrBadResponse, chain.ErrUnavailable}}
		}
		return nil
	}
	return &APIError{Method: method, Path: path, Status: resp.StatusCode, Detail: detail(data), kinds: classify(resp.StatusCode, detail(data))}
}

// token is the bearer token for path: the identity's on login and identity paths, the open
// access one elsewhere.
func (c *Client) token(path string) string {
	if c.cfg.Identity != "" && (strings.HasPrefix(path, wire.Prefix+"/identity/") || strings.HasPrefix(path, wire.Prefix+"/login/")) {
		return c.cfg.Token
	}
	return cmp.Or(c.cfg.OpenAccessToken, c.cfg.Token)
}

// detail is Pylon's error detail, or the start of a body that is not Pylon's.
func detail(body []byte) string {
	var d wire.DetailResponse
	if json.Unmarshal(body, &d) == nil && d.Detail != "" {
		for _, x := range d.Extra {
			d.Detail += "; " + x.Key + ": " + x.Message
		}
		return d.Detail
	}
	s := strings.TrimSpace(string(body))
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return cmp.Or(s, "(empty body)")
}

// classify maps an error status and Pylon's detail to sentinels. Pylon's 404s differ only
// in their detail.
func classify(status int, detail string) []error {
	switch {
	case status == http.StatusUnauthorized:
		return []error{ErrUnauthorized}
	case status == http.StatusForbidden:
		return []error{ErrForbidden}
	case status == http.StatusNotFound:
		switch {
		case strings.HasPrefix(detail, "Identity "):
			return []error{ErrUnknownIdentity}
		case strings.HasPrefix(detail, "Block "):
			return []error{chain.ErrUnknownBlock}
		case strings.HasPrefix(detail, "Commitment not found"):
			return []error{ErrNoCommitment}
		case detail == "Not Found":
			// Litestar's answer for a route it does not have: an older release.
			return []error{chain.ErrNotSupported}
		}
		return []error{ErrNotFound}
	case status == http.StatusBadRequest || status == http.StatusRequestEntityTooLarge || status == http.StatusUnprocessableEntity:
		return []error{ErrRejected}
	case status == http.StatusBadGateway:
		return []error{ErrChainRefused}
	case status == http.StatusServiceUnavailable:
		return []error{ErrCacheNotReady, chain.ErrUnavailable}
	case status == http.StatusTooManyRequests || status >= 500:
		return []error{ErrServer, chain.ErrUnavailable}
	}
	return []error{ErrServer}
}
