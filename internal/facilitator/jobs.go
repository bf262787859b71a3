package facilitator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/google/uuid"

	"github.com/computehorde/horde/internal/executor"
	"github.com/computehorde/horde/internal/keys"
	"github.com/computehorde/horde/internal/protocol"
	"github.com/computehorde/horde/internal/store"
)

// Facilitator-only job statuses of earlier versions, which created a job "new", then held
// its maximum cost and queued it, or marked it "refused" when the hold failed. A job is now
// written queued together with its hold, or not at all (store.SubmitFacJob), but a database
// may still hold such jobs: Recover settles "new" ones, and neither is shown to users.
const (
	statusNew     = "new"
	statusRefused = "refused"
)

// terminal are the statuses a job ends in.
var terminal = []string{string(protocol.JobStatusCompleted), string(protocol.JobStatusFailed),
	string(protocol.JobStatusRejected), string(protocol.JobStatusHordeFailed), store.FacJobCancelled}

// inFlight are the statuses of a job a validator holds.
var inFlight = []string{store.FacJobSent, string(protocol.JobStatusReceived), string(protocol.JobStatusAccepted),
	string(protocol.JobStatusExecutorReady), string(protocol.JobStatusStreamingReady), string(protocol.JobStatusVolumesReady),
	string(protocol.JobStatusExecutionDone)}

// maxJobBody bounds a submitted job (inline volumes included).
const maxJobBody = 1 << 20

// holdLeeway is added to the execution time limit in a job's hold: the validator's deadline
// allows a few seconds past the limit.
const holdLeeway = 10

// SubmitRequest is a job as a user submits it (POST /api/v1/jobs).
type SubmitRequest struct {
	ExecutorClass      string            `json:"executor_class"`
	DockerImage        string            `json:"docker_image"`
	Args               []string          `json:"args,omitempty"`
	Env                map[string]string `json:"env,omitempty"`
	Volume             json.RawMessage   `json:"volume,omitempty"`        // upstream's Volume (multi_volume for several)
	OutputUpload       json.RawMessage   `json:"output_upload,omitempty"` // upstream's OutputUpload
	ArtifactsDir       string            `json:"artifacts_dir,omitempty"`
	DownloadTimeLimit  int               `json:"download_time_limit"`
	ExecutionTimeLimit int               `json:"execution_time_limit"`
	UploadTimeLimit    int               `json:"upload_time_limit"`
	TargetValidator    string            `json:"target_validator_hotkey,omitempty"`
	OnTrustedMiner     bool              `json:"on_trusted_miner,omitempty"`
	JobNamespace       string            `json:"job_namespace,omitempty"`
}

// spec checks req field by field and returns the V2JobRequest to send, unsigned.
func (f *Facilitator) spec(req *SubmitRequest, id string) (protocol.V2JobRequest, []fieldError) {
	var errs []fieldError
	bad := func(field, format string, args ...any) {
		errs = append(errs, fieldError{Field: field, Problem: fmt.Sprintf(format, args...)})
	}
	fromErr := func(err error) {
		var re *executor.RequestError
		for _, e := range unjoin(err) {
			if errors.As(e, &re) {
				bad(re.Field, "%s", re.Problem)
			} else if e != nil {
				bad("job", "%v", e)
			}
		}
	}
	spec := protocol.V2JobRequest{UUID: id, ExecutorClass: protocol.ExecutorClass(req.ExecutorClass), DockerImage: req.DockerImage,
		Args: req.Args, OnTrustedMiner: req.OnTrustedMiner, DownloadTimeLimit: req.DownloadTimeLimit,
		ExecutionTimeLimit: req.ExecutionTimeLimit, UploadTimeLimit: req.UploadTimeLimit}
	if spec.Args == nil {
		spec.Args = []string{}
	}
	if _, err := f.cfg.Classes.Lookup(spec.ExecutorClass); err != nil {
		bad("executor_class", "%v", err)
	}
	keysSorted := make([]string, 0, len(req.Env))
	for k := range req.Env {
		keysSorted = append(keysSorted, k)
	}
	slices.Sort(keysSorted)
	for _, k := range keysSorted {
		spec.Env.Set(k, req.Env[k])
	}
	var artifacts *string
	if req.ArtifactsDir != "" {
		artifacts = &req.ArtifactsDir
		spec.ArtifactsDir = artifacts
	}
	if req.DockerImage == "" {
		bad("docker_image", "empty; name the image to run, e.g. python:3.12-slim")
	} else {
		fromErr(executor.CheckImage("docker_image", req.DockerImage))
	}
	fromErr(executor.CheckJobRequest(&protocol.V0JobRequest{Env: spec.Env, DockerRunCmd: spec.Args, ArtifactsDir: artifacts}))
	fromErr(executor.CheckTiming(&protocol.ExecutorTiming{DownloadTimeLimit: req.DownloadTimeLimit,
		ExecutionTimeLimit: req.ExecutionTimeLimit, UploadTimeLimit: req.UploadTimeLimit}, nil))
	if req.ExecutionTimeLimit <= 0 {
		bad("execution_time_limit", "%d seconds; a job needs a positive execution time limit (it sets the most you pay)", req.ExecutionTimeLimit)
	}
	if len(req.Volume) > 0 && string(req.Volume) != "null" {
		var v protocol.Volume
		if err := json.Unmarshal(req.Volume, &v); err != nil {
			bad("volume", "%v", err)
		} else {
			spec.Volume = &v
		}
	}
	if len(req.OutputUpload) > 0 && string(req.OutputUpload) != "null" {
		var u protocol.OutputUpload
		if err := json.Unmarshal(req.OutputUpload, &u); err != nil {
			bad("output_upload", "%v", err)
		} else {
			spec.OutputUpload = &u
		}
	}
	if req.TargetValidator != "" {
		if _, err := keys.ParsePublicKey(req.TargetValidator); err != nil {
			bad("target_validator_hotkey", "not an ss58 address: %v", err)
		} else if !slices.Contains(f.cfg.Validators, req.TargetValidator) {
			bad("target_validator_hotkey", "%s is not a validator of this facilitator", req.TargetValidator)
		}
	}
	if len(req.JobNamespace) > 100 {
		bad("job_namespace", "longer than 100 characters")
	} else if req.JobNamespace != "" {
		spec.JobNamespace = &req.JobNamespace
	}
	return spec, errs
}

// unjoin flattens errors.Join trees.
func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, unjoin(e)...)
		}
		return out
	}
	if err == nil {
		return nil
	}
	return []error{err}
}

// Price returns the price of a second of class now, in micro-credits: the base price times
// the demand multiplier the connected validators publish (their mean; 1 without any).
func (f *Facilitator) Price(class protocol.ExecutorClass) int64 {
	base, ok := f.cfg.Prices[class]
	if !ok {
		c, err := f.cfg.Classes.Lookup(class)
		if err != nil {
			return 0
		}
		base = max(int64(math.Ceil(float64(f.cfg.PricePerValueSecond)*c.RelativeValue)), 1)
	}
	return max(int64(math.Ceil(float64(base)*f.hub.multiplier(class))), 1)
}

// signJob signs spec as the facilitator (scope SignedFields), as a user's SDK would.
func (f *Facilitator) signJob(spec *protocol.V2JobRequest) error {
	spec.Signature = &protocol.Signature{SignatureType: "bittensor", Signatory: f.cfg.Keypair.SS58(), TimestampNS: time.Now().UnixNano(),
		SignatureScope: protocol.SignatureScopeSignedFields}
	digest, err := spec.SignedPayloadDigest()
	if err != nil {
		return err
	}
	sig := f.cfg.Keypair.Sign(digest[:])
	spec.Signature.Signature = sig[:]
	return nil
}

func (f *Facilitator) handleSubmit(w http.ResponseWriter, r *http.Request) {
	ctx, user := r.Context(), userOf(r)
	var req SubmitRequest
	if !decodeBody(w, r, maxJobBody, &req) {
		return
	}
	id := newJobUUID()
	spec, ferrs := f.spec(&req, id)
	if len(ferrs) == 0 && f.cfg.Images != nil {
		if err := f.cfg.Images.Check(ctx, spec.DockerImage); err != nil {
			ferrs = append(ferrs, fieldError{Field: "docker_image", Problem: err.Error()})
		}
	}
	if len(ferrs) > 0 {
		writeFieldErrors(w, ferrs)
		return
	}
	if spec.OutputUpload == nil && f.cfg.Blobs != nil {
		u, err := f.cfg.Blobs.PutURL(ctx, outputsKey(id), outputsUploadTTL)
		if err != nil {
			f.internal(w, "presign the job's output upload", err)
			return
		}
		spec.OutputUpload = &protocol.OutputUpload{ZipAndHTTPPut: &protocol.ZipAndHTTPPutUpload{URL: u}}
	}
	// Stored unsigned: the dispatcher signs it as it sends it, off the request's path.
	specJSON, err := protocol.Encode(&spec)
	if err != nil {
		f.internal(w, "encode the job", err)
		return
	}
	price := f.Price(spec.ExecutorClass)
	maxCost := price * int64(spec.ExecutionTimeLimit+holdLeeway)
	idem := r.Header.Get("Idempotency-Key")
	if len(idem) > 200 {
		writeError(w, http.StatusBadRequest, "invalid_request", "Idempotency-Key is longer than 200 characters")
		return
	}
	// One transaction: the job, queued, with its hold and its first event, or nothing at all
	// (an unaffordable job leaves no row); a crash never leaves one without the other.
	job, created, err := f.db.SubmitFacJob(ctx, store.FacJob{UUID: id, User: user, Class: string(spec.ExecutorClass), Status: store.FacJobQueued,
		Spec: specJSON, TargetValidator: req.TargetValidator, IdempotencyKey: idem, Price: price, MaxCost: maxCost},
		store.Transfer{Key: "hold:" + id, Kind: "hold", From: store.UserAccount(user), To: store.HoldAccount(id), Amount: maxCost, JobUUID: id},
		store.FacJobEvent{Status: store.FacJobQueued})
	if errors.Is(err, store.ErrInsufficientFunds) {
		bal, _ := f.db.Balance(ctx, store.UserAccount(user))
		writeJSON(w, http.StatusPaymentRequired, map[string]apiError{"error": {Code: "insufficient_credits", Message: fmt.Sprintf(
			"the job may cost up to %s credits (%s per second × %d s); your balance is %s", credits(maxCost), credits(price),
			spec.ExecutionTimeLimit+holdLeeway, credits(bal))}})
		return
	}
	if err != nil {
		f.internal(w, "record the job", err)
		return
	}
	if !created {
		writeJSON(w, http.StatusOK, f.view(ctx, job))
		return
	}
	f.hub.kick()
	f.log.Info("job queued", "job", id, "user", user, "class", spec.ExecutorClass, "price", price, "hold", maxCost)
	// The answer is what was just written (its one event is at the job's creation time, as
	// stored): reading it back would cost two queries for nothing.
	writeJSON(w, http.StatusCreated, jobView(job, &spec, []store.FacJobEvent{{JobUUID: id, Status: store.FacJobQueued, At: job.CreatedAt}}))
}

// newJobUUID returns a new job's UUID: a version 7 UUID, which starts with the time, so that
// the jobs, ledger entries, hold accounts and events keyed by it are appended at the end of
// their indexes instead of landing on a random page each: a commit then writes a few pages
// instead of one per index per job.
func newJobUUID() string {
	if id, err := uuid.NewV7(); err == nil {
		return id.String()
	}
	return uuid.NewString()
}

// credits formats micro-credits as credits.
func credits(micro int64) string { return strconv.FormatFloat(float64(micro)/1e6, 'f', -1, 64) }

// JobView is a job as the API shows it.
type JobView struct {
	UUID           string          `json:"uuid"`
	Status         string          `json:"status"`
	ExecutorClass  string          `json:"executor_class"`
	DockerImage    string          `json:"docker_image"`
	Args           []string        `json:"args"`
	Validator      string          `json:"validator,omitempty"`
	PricePerSecond int64           `json:"price_per_second"` // micro-credits
	MaxCost        int64           `json:"max_cost"`         // micro-credits held at submit
	Charged        int64           `json:"charged"`          // micro-credits charged so far
	Stdout         string          `json:"stdout,omitempty"`
	Stderr         string          `json:"stderr,omitempty"`
	Result         json.RawMessage `json:"result,omitempty"` // the terminal status's metadata
	CreatedAt      time.Time       `json:"created_at"`
	UpdatedAt      time.Time       `json:"updated_at"`
	History        []HistoryEntry  `json:"history"`
}

// HistoryEntry is one status a job went through.
type HistoryEntry struct {
	Status string          `json:"status"`
	At     time.Time       `json:"at"`
	Detail json.RawMessage `json:"detail,omitempty"`
}

func (f *Facilitator) view(ctx context.Context, j store.FacJob) JobView {
	evs, _ := f.db.FacJobEvents(ctx, j.UUID)
	return jobView(j, nil, evs)
}

// jobView is j as the API shows it, with its history evs; spec is j's spec already decoded,
// or nil to decode it from j.
func jobView(j store.FacJob, spec *protocol.V2JobRequest, evs []store.FacJobEvent) JobView {
	v := JobView{UUID: j.UUID, Status: j.Status, ExecutorClass: j.Class, Validator: j.Validator, PricePerSecond: j.Price,
		MaxCost: j.MaxCost, Charged: j.Charged, Result: j.Result, CreatedAt: j.CreatedAt, UpdatedAt: j.UpdatedAt,
		History: make([]HistoryEntry, 0, len(evs))}
	if spec == nil {
		var decoded protocol.V2JobRequest
		if err := json.Unmarshal(j.Spec, &decoded); err == nil {
			spec = &decoded
		}
	}
	if spec != nil {
		v.DockerImage, v.Args = spec.DockerImage, spec.Args
	}
	if len(j.Result) > 0 {
		var md protocol.JobStatusMetadata
		if err := json.Unmarshal(j.Result, &md); err == nil {
			switch {
			case md.MinerResponse != nil:
				v.Stdout, v.Stderr = md.MinerResponse.DockerProcessStdout, md.MinerResponse.DockerProcessStderr
			case md.JobFailureDetails != nil:
				if p := md.JobFailureDetails.DockerProcessStdout; p != nil {
					v.Stdout = *p
				}
				if p := md.JobFailureDetails.DockerProcessStderr; p != nil {
					v.Stderr = *p
				}
			}
		}
	}
	for _, e := range evs {
		v.History = append(v.History, HistoryEntry{Status: e.Status, At: e.At, Detail: e.Detail})
	}
	return v
}

// ownJob returns the caller's job, answering 404 for another user's as for none.
func (f *Facilitator) ownJob(w http.ResponseWriter, r *http.Request) (store.FacJob, bool) {
	j, err := f.db.GetFacJob(r.Context(), r.PathValue("uuid"))
	if errors.Is(err, store.ErrNotFound) || err == nil && (j.User != userOf(r) || j.Status == statusNew || j.Status == statusRefused) {
		writeError(w, http.StatusNotFound, "not_found", "no such job")
		return store.FacJob{}, false
	}
	if err != nil {
		f.internal(w, "read the job", err)
		return store.FacJob{}, false
	}
	return j, true
}

func (f *Facilitator) handleGet(w http.ResponseWriter, r *http.Request) {
	if j, ok := f.ownJob(w, r); ok {
		writeJSON(w, http.StatusOK, f.view(r.Context(), j))
	}
}

// handleList lists the caller's jobs, newest first: ?status=a,b &limit=N (≤ 200) &cursor=C.
func (f *Facilitator) handleList(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit := 50
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 200 {
			writeError(w, http.StatusBadRequest, "invalid_request", "limit: a number from 1 to 200")
			return
		}
		limit = n
	}
	filter := store.FacJobFilter{User: userOf(r), Limit: limit + 1}
	if s := q.Get("status"); s != "" {
		filter.Statuses = splitComma(s)
	} else {
		filter.Statuses = append(append([]string{store.FacJobQueued}, inFlight...), terminal...)
	}
	if c := q.Get("cursor"); c != "" {
		at, id, err := decodeCursor(c)
		if err != nil {
			writeError(w, http.StatusBadRequest, "invalid_request", "cursor: not one this API returned")
			return
		}
		filter.BeforeCreated, filter.BeforeUUID = at, id
	}
	jobs, err := f.db.ListFacJobs(r.Context(), filter)
	if err != nil {
		f.internal(w, "list jobs", err)
		return
	}
	out := map[string]any{}
	if len(jobs) > limit {
		last := jobs[limit-1]
		out["next_cursor"] = encodeCursor(last.CreatedAt, last.UUID)
		jobs = jobs[:limit]
	}
	views := make([]JobView, 0, len(jobs))
	for _, j := range jobs {
		views = append(views, f.view(r.Context(), j))
	}
	out["jobs"] = views
	writeJSON(w, http.StatusOK, out)
}

func splitComma(s string) []string {
	var out []string
	for len(s) > 0 {
		i := 0
		for i < len(s) && s[i] != ',' {
			i++
		}
		if i > 0 {
			out = append(out, s[:i])
		}
		if i < len(s) {
			i++
		}
		s = s[i:]
	}
	return out
}

func encodeCursor(at time.Time, id string) string {
	return strconv.FormatInt(at.UnixMicro(), 36) + "." + id
}

func decodeCursor(c string) (time.Time, string, error) {
	for i := range len(c) {
		if c[i] == '.' {
			us, err := strconv.ParseInt(c[:i], 36, 64)
			if err != nil || c[i+1:] == "" {
				break
			}
			return time.UnixMicro(us).UTC(), c[i+1:], nil
		}
	}
	return time.Time{}, "", errors.New("bad cursor")
}

// handleCancel cancels a job still queued; one a validator runs cannot be recalled (the
// channel has no such message) and ends by its time limits.
func (f *Facilitator) handleCancel(w http.ResponseWriter, r *http.Request) {
	j, ok := f.ownJob(w, r)
	if !ok {
		return
	}
	err := f.db.UpdateFacJobStatus(r.Context(), j.UUID, []string{store.FacJobQueued}, store.FacJobCancelled, nil)
	if errors.Is(err, store.ErrConflict) {
		writeError(w, http.StatusConflict, "not_cancellable", fmt.Sprintf(
			"the job is %s: only a queued job can be cancelled; a running one ends by its time limits", j.Status))
		return
	}
	if err != nil {
		f.internal(w, "cancel the job", err)
		return
	}
	_, _ = f.db.AddFacJobEvent(r.Context(), store.FacJobEvent{JobUUID: j.UUID, Status: store.FacJobCancelled, At: time.Now()})
	if err := f.settle(r.Context(), j.UUID, store.FacJobCancelled, ""); err != nil {
		f.log.Error("cannot release a cancelled job's hold; it is released at the next start", "job", j.UUID, "err", err)
	}
	j, _ = f.db.GetFacJob(r.Context(), j.UUID)
	writeJSON(w, http.StatusOK, f.view(r.Context(), j))
}

func (f *Facilitator) handleAccount(w http.ResponseWriter, r *http.Request) {
	user := userOf(r)
	bal, err := f.db.Balance(r.Context(), store.UserAccount(user))
	if err != nil {
		f.internal(w, "read the balance", err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"user": user, "balance": bal, "balance_credits": credits(bal)})
}

func (f *Facilitator) handleLedger(w http.ResponseWriter, r *http.Request) {
	es, err := f.db.LedgerEntries(r.Context(), store.UserAccount(userOf(r)), 200)
	if err != nil {
		f.internal(w, "read the ledger", err)
		return
	}
	out := make([]map[string]any, 0, len(es))
	for _, e := range es {
		out = append(out, map[string]any{"kind": e.Kind, "amount": e.Amount, "job": e.JobUUID, "at": e.CreatedAt, "note": e.Note})
	}
	writeJSON(w, http.StatusOK, map[string]any{"entries": out})
}

// handlePrices is public: each class's price per second now and its demand multiplier.
func (f *Facilitator) handlePrices(w http.ResponseWriter, r *http.Request) {
	out := map[string]any{}
	for _, c := range f.cfg.Classes.Classes() {
		out[string(c.Name)] = map[string]any{"price_per_second": f.Price(c.Name), "multiplier": f.hub.multiplier(c.Name)}
	}
	writeJSON(w, http.StatusOK, map[string]any{"classes": out, "unit": "micro-credits"})
}
