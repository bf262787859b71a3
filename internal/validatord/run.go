package validatord

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/computehorde/horde/internal/chain"
	"github.com/computehorde/horde/internal/chain/backend"
	"github.com/computehorde/horde/internal/clock"
	"github.com/computehorde/horde/internal/config"
	"github.com/computehorde/horde/internal/egress"
	"github.com/computehorde/horde/internal/keys"
	"github.com/computehorde/horde/internal/protocol"
	"github.com/computehorde/horde/internal/receiptsync"
	"github.com/computehorde/horde/internal/scoring"
	"github.com/computehorde/horde/internal/statussock"
	"github.com/computehorde/horde/internal/store"
	"github.com/computehorde/horde/internal/validator"
)

// maxJobBody bounds a job submitted to the API.
const maxJobBody = 1 << 20

// Options are what the command adds to the configuration.
type Options struct {
	Logger *slog.Logger
	// Ready is called once the API serves, with its address.
	Ready func(addr netip.AddrPort)
}

// Run runs the validator until ctx ends, then shuts it down: the API stops taking jobs,
// running ones get ShutdownGrace, and the database is closed.
func Run(ctx context.Context, cfg Config, o Options) error {
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	if abs, err := filepath.Abs(cfg.DataDir); err == nil {
		cfg.DataDir = abs
	}
	key, err := keys.LoadHotkey(cfg.Wallet.Path, cfg.Wallet.Name, cfg.Wallet.Hotkey)
	if err != nil {
		return fmt.Errorf("wallet %s hotkey %s: %w", cfg.Wallet.Name, cfg.Wallet.Hotkey, err)
	}
	log.Info("validator starting", "hotkey", key.SS58(), "config", strings.TrimSpace(config.Describe(&cfg)))
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("data_dir: %w", err)
	}
	op, err := backend.Open(ctx, cfg.Chain.Settings(), backend.Options{Hotkey: chain.Hotkey(key.SS58()), Logger: log, WaitForChain: true})
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	runCtx, stopBackground := context.WithCancel(context.WithoutCancel(ctx))
	defer func() { stopBackground(); wg.Wait() }()
	cache, err := op.Follow(ctx, runCtx, &wg, log)
	if err != nil {
		return err
	}
	if n, ok := cache.Neuron(chain.Hotkey(key.SS58())); !ok || !n.ValidatorPermit {
		log.Warn("this hotkey holds no validator permit on the subnet: miners will refuse it until it does",
			"hotkey", key.SS58(), "netuid", op.NetUID, "registered", ok)
	}
	db, err := store.Open(ctx, store.Config{DSN: cfg.DSN(), Logger: log})
	if err != nil {
		return err
	}
	// The store outlives the background work that writes to it (the books' last save).
	defer func() { stopBackground(); wg.Wait(); db.Close() }()
	var trusted *validator.TrustedMiner
	if cfg.TrustedMiner.Hotkey != "" {
		trusted = &validator.TrustedMiner{Hotkey: cfg.TrustedMiner.Hotkey, Addr: netip.MustParseAddrPort(cfg.TrustedMiner.Address)}
	}
	classes, err := cfg.Classes() // checked by Validate
	if err != nil {
		return err
	}
	v, err := validator.New(validator.Config{Keypair: key, Chain: op.Chain, Metagraph: cache, NetUID: op.NetUID, Store: db, Classes: classes,
		TrustedMiner: trusted, CrossCheckFraction: cfg.CrossCheckFraction,
		ScoreWindow: time.Duration(cfg.ScoreWindow), RewardRate: cfg.RewardRate, BenchImage: cfg.BenchmarkImage, Logger: log})
	if err != nil {
		return err
	}
	if n, err := v.Recover(ctx); err != nil {
		return err
	} else if n > 0 {
		log.Warn("jobs of an earlier run are horde_failed", "jobs", n)
	}
	if ok, err := v.LoadState(ctx); err != nil {
		return fmt.Errorf("%w (fix or delete the state row, or start on a fresh data_dir)", err)
	} else if !ok {
		log.Info("no books of an earlier run: every miner starts with factor 1 and is benchmarked")
	}
	wg.Go(func() { v.RunStateSaver(runCtx, stateSaveInterval) })
	allow, _ := egress.ParseAllow(strings.Join(cfg.AllowEgress, ",")) // checked by Validate
	syncer, err := receiptsync.New(receiptsync.Config{
		Store: db, Egress: egress.Policy{Allow: allow}, Logger: log,
		IsValidator: func(h string) bool {
			n, ok := cache.Neuron(chain.Hotkey(h))
			return ok && n.ValidatorPermit
		},
	})
	if err != nil {
		return err
	}
	// Every validator's receipts count, pulled from every miner, so that all validators agree
	// on each miner's worked seconds; weights follow once per tempo. The pages' checkpoints
	// are saved after every pull, so a restart reads on from where the last run was.
	var cps []receiptsync.PageCheckpoint
	if err := db.GetState(ctx, checkpointsState, &cps); err != nil && !errors.Is(err, store.ErrNotFound) {
		log.Warn("receipts checkpoints unreadable: reading every active page again", "err", err)
	}
	syncer.Restore(cps)
	wg.Go(func() {
		clock.Every(runCtx, time.Duration(cfg.ReceiptsInterval), func() {
			pullReceipts(runCtx, syncer, cache, key.SS58(), log)
			if err := db.PutState(runCtx, checkpointsState, syncer.Checkpoints()); err != nil && runCtx.Err() == nil {
				log.Warn("cannot save the receipts checkpoints", "err", err)
			}
		})
	})
	wg.Go(func() { _ = v.RunWeights(runCtx) })
	wg.Go(func() { _ = v.RunMinerLinks(runCtx) })
	if cfg.FacilitatorURL != "" {
		wg.Go(func() { _ = v.RunFacilitatorLink(runCtx, cfg.FacilitatorURL) })
	}
	if cfg.BenchmarkImage != "" {
		wg.Go(func() { _ = v.RunBenchmarks(runCtx, time.Duration(cfg.BenchmarkInterval)) })
	} else {
		log.Warn("benchmarks are off (no benchmark_image): every miner's efficiency factor stays 1")
	}

	stopStatus, err := statussock.Serve(runCtx, &wg, StatusSocket(cfg.DataDir), log, map[string]func(context.Context) (any, error){
		"/miners": func(context.Context) (any, error) { return v.Manifests(), nil },
		"/scores": func(ctx context.Context) (any, error) { return v.Scores(ctx, time.Now()) },
	})
	if err != nil {
		return err
	}
	defer stopStatus()

	api := &jobAPI{v: v, db: db, token: cfg.APIToken, log: log, jobs: map[string]*apiJob{}, slots: make(chan struct{}, cfg.MaxJobs), ctx: runCtx}
	ln, err := net.Listen("tcp", cfg.APIListen)
	if err != nil {
		return fmt.Errorf("api_listen %s: %w", cfg.APIListen, err)
	}
	addr := netip.MustParseAddrPort(ln.Addr().String())
	srv := &http.Server{Handler: api.handler(), ReadHeaderTimeout: 10 * time.Second, MaxHeaderBytes: 16 << 10}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	log.Info("validator serving its job API", "listen", addr, "hyperparameters_from", op.HyperparamsSource)
	if o.Ready != nil {
		o.Ready(addr)
	}

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-served:
		serveErr = fmt.Errorf("serving on %s: %w", addr, serveErr)
	}
	grace := time.Duration(cfg.ShutdownGrace)
	log.Info("validator stopping: no new jobs", "running_jobs", api.running(), "grace", grace)
	shCtx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	_ = srv.Shutdown(shCtx)
	if !api.wait(shCtx) {
		log.Warn("stopping with jobs still running; they end as horde failures", "running_jobs", api.running())
		stopBackground()
		api.wg.Wait()
	}
	return serveErr
}

// checkpointsState names the receipts pages' checkpoints in the store.
const checkpointsState = "receiptsync/checkpoints"

// stateSaveInterval is how often the validator's books are saved (and once at shutdown): a
// kill -9 loses at most this much of them.
const stateSaveInterval = time.Minute

// jobAPI is the local job API: POST /api/v1/jobs takes an upstream V2JobRequest and routes
// it to a miner in the background; GET /api/v1/jobs/{uuid} tells how it went.
type jobAPI struct {
	v     *validator.Validator
	db    *store.DB
	token string
	log   *slog.Logger
	ctx   context.Context // jobs run under it: the process's, not the request's
	slots chan struct{}
	wg    sync.WaitGroup

	mu   sync.Mutex
	jobs map[string]*apiJob // guarded by mu
}

// apiJob is a job submitted through the API, as GET shows it.
type apiJob struct {
	UUID     string               `json:"uuid"`
	Status   string               `json:"status"` // "routing" until it ends, then the result's status
	Result   *validator.JobResult `json:"result,omitempty"`
	Attempts []apiAttempt         `json:"attempts,omitempty"`
	Error    string               `json:"error,omitempty"`
}

type apiAttempt struct {
	Miner  string `json:"miner"`
	UUID   string `json:"uuid"`
	Status string `json:"status"`
	Reason string `json:"reason,omitempty"`
}

func (a *jobAPI) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/v1/jobs", a.auth(a.submit))
	mux.HandleFunc("GET /api/v1/jobs/{uuid}", a.auth(a.get))
	return mux
}

func (a *jobAPI) auth(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if a.token != "" {
			got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
			if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(a.token)) != 1 {
				writeJSON(w, http.StatusUnauthorized, map[string]string{"detail": "a valid bearer token (api_token) is required"})
				return
			}
		}
		next(w, r)
	}
}

func (a *jobAPI) submit(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxJobBody))
	if err != nil {
		writeJSON(w, http.StatusRequestEntityTooLarge, map[string]string{"detail": fmt.Sprintf("the job is larger than %d bytes", maxJobBody)})
		return
	}
	msg, err := protocol.DecodeFacilitatorToValidator(body)
	spec, ok := msg.(*protocol.V2JobRequest)
	if err != nil || !ok {
		detail := "the body must be an upstream V2JobRequest"
		if err != nil {
			detail += ": " + err.Error()
		}
		writeJSON(w, http.StatusBadRequest, map[string]string{"detail": detail})
		return
	}
	if spec.UUID == "" {
		spec.UUID = uuid.NewString()
	}
	select {
	case a.slots <- struct{}{}:
	default:
		w.Header().Set("Retry-After", "10")
		writeJSON(w, http.StatusTooManyRequests, map[string]string{"detail": "the validator runs max_jobs jobs already; retry later"})
		return
	}
	a.mu.Lock()
	if _, dup := a.jobs[spec.UUID]; dup {
		a.mu.Unlock()
		<-a.slots
		writeJSON(w, http.StatusConflict, map[string]string{"detail": "a job with this uuid was already submitted"})
		return
	}
	j := &apiJob{UUID: spec.UUID, Status: "routing"}
	a.jobs[spec.UUID] = j
	a.mu.Unlock()
	a.wg.Go(func() {
		defer func() { <-a.slots }()
		a.run(j, *spec)
	})
	writeJSON(w, http.StatusAccepted, map[string]string{"uuid": spec.UUID, "status": "routing"})
}

// run routes the job, leaving it time for a few attempts.
func (a *jobAPI) run(j *apiJob, spec protocol.V2JobRequest) {
	limits := time.Duration(spec.DownloadTimeLimit+spec.ExecutionTimeLimit+spec.UploadTimeLimit) * time.Second
	deadline := time.Now().Add(max(10*time.Minute, 3*limits))
	res, attempts, err := a.v.Route(a.ctx, spec, deadline)
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, at := range attempts {
		j.Attempts = append(j.Attempts, apiAttempt{Miner: at.Miner, UUID: at.Result.UUID, Status: string(at.Result.Status), Reason: at.Result.Reason})
	}
	switch {
	case err != nil:
		j.Status, j.Error = string(protocol.JobStatusHordeFailed), err.Error()
		a.log.Warn("job could not be routed", "job", j.UUID, "err", err)
	default:
		j.Status, j.Result = string(res.Status), res
	}
}

func (a *jobAPI) get(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("uuid")
	a.mu.Lock()
	j, ok := a.jobs[id]
	var out apiJob
	if ok {
		out = *j
		out.Attempts = append([]apiAttempt(nil), j.Attempts...)
	}
	a.mu.Unlock()
	if ok {
		writeJSON(w, http.StatusOK, out)
		return
	}
	// Jobs of an earlier run of this process are in the database.
	sj, err := a.db.GetJob(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) || (err == nil && sj.Role != store.RoleValidator) {
		writeJSON(w, http.StatusNotFound, map[string]string{"detail": "no job with this uuid"})
		return
	}
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, map[string]string{"detail": "cannot read the job"})
		return
	}
	resp := map[string]any{"uuid": sj.UUID, "status": sj.Status, "miner": sj.MinerHotkey}
	if len(sj.Result) > 0 {
		resp["result"] = json.RawMessage(sj.Result)
	}
	writeJSON(w, http.StatusOK, resp)
}

func (a *jobAPI) running() int { return len(a.slots) }

// wait waits for the running jobs until ctx ends; it reports whether they all ended.
func (a *jobAPI) wait(ctx context.Context) bool {
	done := make(chan struct{})
	go func() { a.wg.Wait(); close(done) }()
	select {
	case <-done:
		return true
	case <-ctx.Done():
		return false
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// pullReceipts pulls the active receipts pages of every miner serving an axon.
func pullReceipts(ctx context.Context, s *receiptsync.Syncer, cache *chain.MetagraphCache, self string, log *slog.Logger) {
	mg := cache.Latest()
	if mg == nil {
		return
	}
	var miners []receiptsync.Miner
	for _, n := range mg.Neurons {
		if n.Axon.IsServing() && string(n.Hotkey) != self {
			miners = append(miners, receiptsync.Miner{Hotkey: string(n.Hotkey), Base: "http://" + n.Axon.AddrPort().String()})
		}
	}
	st, err := s.SyncAll(ctx, miners)
	if err != nil && ctx.Err() == nil {
		// Miners that are down are normal; the stats say how many pages failed.
		log.Debug("receipts pull incomplete", "err", err)
	}
	if st.Imported > 0 {
		log.Info("receipts imported", "receipts", st.Imported, "duplicates", st.Duplicates, "miners", len(miners))
	}
}

// StatusSocket is where a running validator answers `horde validator miners`.
func StatusSocket(dataDir string) string { return filepath.Join(dataDir, "validator.sock") }

// ReadScores asks the validator running on dataDir for its current scores: the points
// formula over its score window with the factors it holds now, as its next weights use them.
func ReadScores(ctx context.Context, dataDir string) (scoring.Result, error) {
	var out scoring.Result
	err := statussock.Get(ctx, StatusSocket(dataDir), "/scores", &out)
	return out, err
}

// ReadMiners asks the validator running on dataDir for its miners' manifests.
func ReadMiners(ctx context.Context, dataDir string) ([]validator.MinerManifest, error) {
	var out []validator.MinerManifest
	err := statussock.Get(ctx, StatusSocket(dataDir), "/miners", &out)
	return out, err
}
