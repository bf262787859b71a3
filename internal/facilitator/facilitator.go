// Package facilitator is the subnet's front door for users: accounts (a Bittensor hotkey
// signing a nonce, or API keys), credits in a double-entry ledger, a JSON job API, and the
// validators' channel (upstream's fv protocol, /ws/v0/) that it dispatches paid jobs over.
//
// Money follows the validators' accounting: submitting holds the job's maximum cost (price ×
// execution time limit); every 10-minute interval a validator reports (V0JobWorkReport) moves
// its seconds × price from the hold to revenue; when the job ends the rest of the hold goes
// back to the user, and work the horde failed (a horde_failed or rejected job, an attempt
// that was not the one that ended the job) is refunded. Each movement is keyed, so a report
// that arrives twice is charged once.
package facilitator

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"sync"
	"time"

	"github.com/computehorde/horde/internal/blob"
	"github.com/computehorde/horde/internal/clock"
	"github.com/computehorde/horde/internal/hwclass"
	"github.com/computehorde/horde/internal/keys"
	"github.com/computehorde/horde/internal/protocol"
	"github.com/computehorde/horde/internal/store"
)

// Defaults of Config's zero fields.
const (
	DefaultTokenLifetime       = time.Hour
	DefaultNonceLifetime       = 5 * time.Minute
	DefaultJobsPerValidator    = 64
	DefaultRequeueAfter        = 2 * time.Minute
	DefaultRateLimit           = 20 // requests per second per user
	DefaultRateBurst           = 100
	DefaultHeartbeatFreshness  = 3 * time.Minute
	DefaultDispatchInterval    = 250 * time.Millisecond
	DefaultPricePerValueSecond = 1000 // micro-credits per second of a class of relative value 1
)

// Config assembles a facilitator from its dependencies.
type Config struct {
	Store *store.DB
	// Keypair signs the jobs the facilitator sends (scope SignedFields) when the user did
	// not sign them: the validator checks every job's signature.
	Keypair *keys.Keypair
	// Validators are the hotkeys allowed on the validator channel.
	Validators []string
	// Classes is the hardware class registry; nil means hwclass.Default().
	Classes *hwclass.Registry
	// Prices are the base prices in micro-credits per second by class; a class missing here
	// costs PricePerValueSecond × its relative value (at least 1 micro-credit).
	Prices              map[protocol.ExecutorClass]int64
	PricePerValueSecond int64
	// TokenSecret signs login tokens and nonces; replicas must share it. Empty means a random
	// one, valid for this process only.
	TokenSecret   []byte
	TokenLifetime time.Duration
	NonceLifetime time.Duration
	// JobsPerValidator bounds the jobs in flight on one validator.
	JobsPerValidator int
	// RequeueAfter is how long a validator that dropped its channel has to come back before
	// its unfinished jobs are queued again for another.
	RequeueAfter time.Duration
	// RateLimit and RateBurst bound each user's API requests (token bucket, per second).
	RateLimit float64
	RateBurst int
	// Stake returns a user's stake (any unit, the same for all); users share the validators'
	// capacity in proportion to it when they compete, and a user alone gets all of it. Nil,
	// or a stake below MinWeight, counts as MinWeight.
	Stake     func(user string) float64
	MinWeight float64
	// Blobs, when set, keeps the outputs of jobs that name no upload target: the facilitator
	// gives such a job a presigned upload of its /output (zipped), and the user downloads
	// it through a signed, expiring URL (GET /api/v1/jobs/{uuid}/outputs). BlobHandler
	// serves a local store's URLs under /blobs/ (nil for S3).
	Blobs       blob.Store
	BlobHandler http.Handler
	// RequireFreshAuth refuses upstream's replayable V0AuthenticationRequest: validators
	// must send V1AuthenticationRequest (a signed timestamp).
	RequireFreshAuth bool
	// Images, when set, asks each job's image registry whether the image exists, so a typo
	// is refused at submit time.
	Images *ImageChecker
	// Replica names this process among replicas sharing the database (dispatch records).
	Replica string
	Logger  *slog.Logger // nil means slog.Default()
}

// Facilitator serves users and validators. Build it with New, serve Handler, and run Run.
type Facilitator struct {
	cfg    Config
	db     *store.DB
	log    *slog.Logger
	secret []byte

	nonces  nonceBook
	limiter rateLimiter
	hub     *hub
	pages   pages
	market  marketHistory
}

// New checks cfg and returns a facilitator.
func New(cfg Config) (*Facilitator, error) {
	switch {
	case cfg.Store == nil:
		return nil, errors.New("facilitator: config: Store is required")
	case cfg.Keypair == nil:
		return nil, errors.New("facilitator: config: Keypair is required (it signs the jobs of users who did not)")
	}
	if cfg.Classes == nil {
		cfg.Classes = hwclass.Default()
	}
	if cfg.PricePerValueSecond <= 0 {
		cfg.PricePerValueSecond = DefaultPricePerValueSecond
	}
	cfg.Prices = maps.Clone(cfg.Prices)
	for c, p := range cfg.Prices {
		if p <= 0 {
			return nil, fmt.Errorf("facilitator: config: price of %s is %d; prices are positive micro-credits per second", c, p)
		}
	}
	if cfg.TokenLifetime <= 0 {
		cfg.TokenLifetime = DefaultTokenLifetime
	}
	if cfg.NonceLifetime <= 0 {
		cfg.NonceLifetime = DefaultNonceLifetime
	}
	if cfg.JobsPerValidator <= 0 {
		cfg.JobsPerValidator = DefaultJobsPerValidator
	}
	if cfg.RequeueAfter <= 0 {
		cfg.RequeueAfter = DefaultRequeueAfter
	}
	if cfg.RateLimit <= 0 {
		cfg.RateLimit = DefaultRateLimit
	}
	if cfg.RateBurst <= 0 {
		cfg.RateBurst = DefaultRateBurst
	}
	if cfg.MinWeight <= 0 {
		cfg.MinWeight = 1
	}
	if cfg.Replica == "" {
		cfg.Replica = "replica-" + rand.Text()[:8]
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	f := &Facilitator{cfg: cfg, db: cfg.Store, log: cfg.Logger.With("role", "facilitator"), secret: cfg.TokenSecret}
	if len(f.secret) == 0 {
		f.secret = []byte(rand.Text() + rand.Text())
		f.log.Warn("no token_secret: login tokens are valid for this process only (replicas must share one)")
	}
	f.nonces = nonceBook{seen: map[string]time.Time{}}
	f.limiter = rateLimiter{rate: cfg.RateLimit, burst: float64(cfg.RateBurst), buckets: map[string]*bucket{}}
	f.hub = newHub(f)
	var err error
	if f.pages, err = parsePages(); err != nil {
		return nil, fmt.Errorf("facilitator: pages: %w", err)
	}
	return f, nil
}

// Handler serves the user API, the login endpoints and the validators' channel.
func (f *Facilitator) Handler() http.Handler {
	mux := http.NewServeMux()
	for _, rt := range f.routes() {
		h := rt.handler
		if rt.authed {
			h = f.authed(h)
		}
		mux.HandleFunc(rt.method+" "+rt.path, f.logRefusals(h))
	}
	mux.HandleFunc("GET /ws/v0/", f.hub.serve)
	if f.cfg.BlobHandler != nil {
		mux.Handle("/blobs/", f.cfg.BlobHandler)
	}
	f.registerPages(mux)
	mux.HandleFunc("/api/", f.logRefusals(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "not_found", "no such endpoint: "+r.Method+" "+r.URL.Path)
	}))
	return mux
}

// route is one endpoint of the API; openapi.json describes each (TestOpenAPI).
type route struct {
	method, path string
	authed       bool
	handler      http.HandlerFunc
}

func (f *Facilitator) routes() []route {
	return []route{
		{"GET", "/auth/nonce", false, f.handleNonce},
		{"POST", "/auth/login", false, f.handleLogin},
		{"POST", "/api/v1/jobs", true, f.handleSubmit},
		{"GET", "/api/v1/jobs", true, f.handleList},
		{"GET", "/api/v1/jobs/{uuid}", true, f.handleGet},
		{"POST", "/api/v1/jobs/{uuid}/cancel", true, f.handleCancel},
		{"GET", "/api/v1/jobs/{uuid}/events", true, f.handleEvents},
		{"GET", "/api/v1/jobs/{uuid}/logs", true, f.handleLogs},
		{"GET", "/api/v1/jobs/{uuid}/outputs", true, f.handleOutputs},
		{"GET", "/api/v1/account", true, f.handleAccount},
		{"GET", "/api/v1/account/ledger", true, f.handleLedger},
		{"POST", "/api/v1/keys", true, f.handleCreateKey},
		{"GET", "/api/v1/keys", true, f.handleListKeys},
		{"DELETE", "/api/v1/keys/{id}", true, f.handleRevokeKey},
		{"GET", "/api/v1/prices", false, f.handlePrices},
		{"GET", "/api/v1/openapi.json", false, handleOpenAPI},
	}
}

// Run dispatches queued jobs to connected validators and requeues those of validators that
// went away, until ctx ends.
func (f *Facilitator) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Go(func() { f.hub.dispatchLoop(ctx) })
	wg.Go(func() {
		f.sampleMarket(time.Now())
		clock.Every(ctx, time.Minute, func() { f.sampleMarket(time.Now()) })
	})
	wg.Wait()
	return nil
}

// weight is user's share weight: its stake, at least MinWeight.
func (f *Facilitator) weight(user string) float64 {
	if f.cfg.Stake == nil {
		return f.cfg.MinWeight
	}
	return max(f.cfg.Stake(user), f.cfg.MinWeight)
}

// Grant adds credits to user's balance (an operator's grant); key makes it idempotent.
func (f *Facilitator) Grant(ctx context.Context, user string, amount int64, key string) (bool, error) {
	return grant(ctx, f.db, user, amount, key)
}

func grant(ctx context.Context, db *store.DB, user string, amount int64, key string) (bool, error) {
	if _, err := keys.ParsePublicKey(user); err != nil {
		return false, fmt.Errorf("facilitator: grant: user %q is not an ss58 hotkey: %w", user, err)
	}
	if amount <= 0 {
		return false, fmt.Errorf("facilitator: grant: amount %d must be positive (micro-credits)", amount)
	}
	if key == "" {
		key = "grant:" + rand.Text()
	}
	return db.Transfer(ctx, store.Transfer{Key: key, Kind: "grant", From: store.AccountGrants, To: store.UserAccount(user), Amount: amount})
}

// Grant adds credits to user's balance in the facilitator database db, without a running
// facilitator (`horde facilitator grant`).
func Grant(ctx context.Context, db *store.DB, user string, amount int64, key string) (bool, error) {
	return grant(ctx, db, user, amount, key)
}
