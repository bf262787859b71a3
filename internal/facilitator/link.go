package facilitator

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/computehorde/horde/internal/keys"
	"github.com/computehorde/horde/internal/protocol"
	"github.com/computehorde/horde/internal/store"
	"github.com/computehorde/horde/internal/wsconn"
)

// The validators' channel (upstream's fv protocol, /ws/v0/): a validator on the allow-list
// authenticates by signing its own public key, sends a heartbeat every minute, receives the
// jobs dispatched to it and reports their statuses, work intervals and class values; every
// message but the heartbeat is answered with one Response, in order.

// authReadLimit bounds what an unauthenticated validator may send: the auth frame is ~200 B.
const authReadLimit = 4 << 10

// hub tracks the connected validators and dispatches queued jobs to them.
type hub struct {
	f    *Facilitator
	wake chan struct{}
	// dispatching serialises dispatch rounds: two at once (the loop's and a kick's) would
	// each see a validator's room before the other took it, and overfill it.
	dispatching sync.Mutex

	mu     sync.Mutex
	conns  map[string]*validatorConn                     // by hotkey: the latest connection
	gone   map[string]time.Time                          // validators whose channel dropped, since when
	values map[string]map[protocol.ExecutorClass]float64 // each validator's demand multipliers
	// free is each validator's free executors per class as it last reported them, less the
	// jobs sent it since; a validator that never reported (upstream) has none here and
	// is bounded by JobsPerValidator only.
	free map[string]map[protocol.ExecutorClass]int
}

type validatorConn struct {
	hotkey string
	conn   *wsconn.Conn
	beat   time.Time // last heartbeat or message; guarded by hub.mu
}

func newHub(f *Facilitator) *hub {
	return &hub{f: f, wake: make(chan struct{}, 1), conns: map[string]*validatorConn{}, gone: map[string]time.Time{},
		values: map[string]map[protocol.ExecutorClass]float64{}, free: map[string]map[protocol.ExecutorClass]int{}}
}

func (h *hub) kick() {
	select {
	case h.wake <- struct{}{}:
	default:
	}
}

// multiplier is the mean demand multiplier the connected validators publish for class.
func (h *hub) multiplier(class protocol.ExecutorClass) float64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	sum, n := 0.0, 0
	for v, vals := range h.values {
		if m, ok := vals[class]; ok && h.conns[v] != nil {
			sum += m
			n++
		}
	}
	if n == 0 {
		return 1
	}
	return sum / float64(n)
}

func respond(ctx context.Context, c *wsconn.Conn, errType, msg string) error {
	if errType == "" {
		return c.Send(ctx, &protocol.Response{Status: protocol.ResponseStatusSuccess, Errors: []protocol.ResponseError{}})
	}
	return c.Send(ctx, &protocol.Response{Status: protocol.ResponseStatusError, Errors: []protocol.ResponseError{{Msg: msg, Type: errType}}})
}

// serve runs one validator's connection.
func (h *hub) serve(w http.ResponseWriter, r *http.Request) {
	conn, err := wsconn.AcceptWith(w, r, wsconn.AcceptOptions{ReadLimit: authReadLimit})
	if err != nil {
		return
	}
	defer conn.CloseNow()
	ctx := r.Context()
	log := h.f.log.With("remote", r.RemoteAddr)
	authCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	frame, err := conn.ReadFrame(authCtx)
	cancel()
	if err != nil {
		return
	}
	hotkey, errType, why := h.checkAuth(frame)
	if errType != "" {
		log.Warn("validator refused", "why", why)
		_ = respond(ctx, conn, errType, why)
		_ = conn.Close(why)
		return
	}
	conn.SetReadLimit(protocol.MaxFrameSize)
	if err := respond(ctx, conn, "", ""); err != nil {
		return
	}
	vc := &validatorConn{hotkey: hotkey, conn: conn, beat: time.Now()}
	h.mu.Lock()
	h.conns[hotkey] = vc
	delete(h.gone, hotkey)
	h.mu.Unlock()
	log = log.With("validator", hotkey[:min(10, len(hotkey))])
	log.Info("validator connected")
	h.resendUnanswered(ctx, vc)
	h.kick()
	defer func() {
		h.mu.Lock()
		if h.conns[hotkey] == vc {
			delete(h.conns, hotkey)
			delete(h.free, hotkey)
			h.gone[hotkey] = time.Now()
		}
		h.mu.Unlock()
		log.Info("validator disconnected")
	}()
	for {
		frame, err := conn.ReadFrame(ctx)
		if err != nil {
			return
		}
		h.mu.Lock()
		vc.beat = time.Now()
		h.mu.Unlock()
		msg, err := protocol.DecodeValidatorToFacilitator(frame)
		if err != nil {
			_ = respond(ctx, conn, "parse_error", err.Error())
			continue
		}
		errType, why := h.handle(ctx, vc, msg)
		if _, beat := msg.(*protocol.V0Heartbeat); beat {
			continue
		}
		if errType != "" {
			log.Info("validator message refused", "message", msg.MessageType(), "why", why)
		}
		if err := respond(ctx, conn, errType, why); err != nil {
			return
		}
	}
}

// checkAuth checks the first frame: a V1AuthenticationRequest (a signed timestamp, taken
// within a minute and once) or, unless RequireFreshAuth, upstream's replayable
// V0AuthenticationRequest (the validator signs its own public key), of an allowed validator.
func (h *hub) checkAuth(frame []byte) (hotkey, errType, why string) {
	msg, err := protocol.DecodeValidatorToFacilitator(frame)
	if err != nil {
		return "", "auth.not_authenticated", "authenticate first with V1AuthenticationRequest or V0AuthenticationRequest"
	}
	var pubHex, sigHex string
	var signed []byte
	var ts int64
	switch a := msg.(type) {
	case *protocol.V1AuthenticationRequest:
		pubHex, sigHex, ts, signed = a.PublicKey, a.Signature, a.Timestamp, protocol.V1AuthBlob(a.PublicKey, a.Timestamp)
	case *protocol.V0AuthenticationRequest:
		if h.f.cfg.RequireFreshAuth {
			return "", "auth.stale", "this facilitator takes only V1AuthenticationRequest (a signed timestamp): upgrade the validator"
		}
		pubHex, sigHex = a.PublicKey, a.Signature
	default:
		return "", "auth.not_authenticated", "authenticate first with V1AuthenticationRequest or V0AuthenticationRequest"
	}
	raw, err := hex.DecodeString(pubHex)
	if err != nil || len(raw) != 32 {
		return "", "auth.signature_invalid", "public_key is not 32 bytes of hex"
	}
	var pub keys.PublicKey
	copy(pub[:], raw)
	hotkey = pub.SS58()
	if !slices.Contains(h.f.cfg.Validators, hotkey) {
		return "", "auth.validator_not_found", "validator " + hotkey + " is not allowed on this facilitator"
	}
	if signed == nil {
		signed = raw // V0: the public key itself
	}
	sig, err := keys.ParseSignature(sigHex)
	if err != nil || !pub.Verify(signed, sig) {
		return "", "auth.signature_invalid", "the authentication signature does not verify"
	}
	if _, v1 := msg.(*protocol.V1AuthenticationRequest); v1 {
		now := time.Now()
		at := time.Unix(ts, 0)
		if at.Before(now.Add(-authFreshness)) || at.After(now.Add(authFreshness)) {
			return "", "auth.stale", "the authentication's timestamp is more than a minute from the facilitator's clock"
		}
		if !h.f.nonces.use("auth:"+sigHex, at.Add(authFreshness), now) {
			return "", "auth.stale", "this authentication was already used"
		}
	} else {
		h.f.log.Warn("validator authenticated with upstream's replayable V0AuthenticationRequest", "validator", hotkey)
	}
	return hotkey, "", ""
}

// authFreshness is how far a V1AuthenticationRequest's timestamp may be from the clock.
const authFreshness = time.Minute

// handle applies one message of an authenticated validator; it returns the error to answer.
func (h *hub) handle(ctx context.Context, vc *validatorConn, msg protocol.Message) (errType, why string) {
	switch m := msg.(type) {
	case *protocol.V0Heartbeat:
	case *protocol.V0JobStatusUpdate:
		return h.f.statusUpdate(ctx, vc.hotkey, m)
	case *protocol.V0JobWorkReport:
		return h.f.workReport(ctx, vc.hotkey, m)
	case *protocol.V0ClassValuesUpdate:
		vals := map[protocol.ExecutorClass]float64{}
		for c, v := range m.ClassValues.All() {
			if v.Multiplier > 0 && v.Multiplier < 100 {
				vals[protocol.ExecutorClass(c)] = v.Multiplier
			}
		}
		h.mu.Lock()
		h.values[vc.hotkey] = vals
		h.mu.Unlock()
	case *protocol.V0ExecutorCapacityUpdate:
		free := map[protocol.ExecutorClass]int{}
		for _, e := range m.FreeExecutors {
			free[e.Class] = max(e.Count, 0)
		}
		h.mu.Lock()
		h.free[vc.hotkey] = free
		h.mu.Unlock()
		h.kick()
	case *protocol.V0JobCheatDetected:
		detail, _ := json.Marshal(map[string]any{"trusted_job_uuid": m.TrustedJobUUID, "miner": m.MinerHotkey, "details": m.Details})
		_, _ = h.f.db.AddFacJobEvent(ctx, store.FacJobEvent{JobUUID: m.JobUUID, Status: "cheat_detected", At: time.Now(), Detail: detail})
		h.f.log.Warn("a validator found a job's output differs from its trusted miner's", "job", m.JobUUID, "miner", m.MinerHotkey)
	case *protocol.V0MachineSpecsUpdate:
	default:
		return "unexpected_message", msg.MessageType() + " is not expected from a validator"
	}
	return "", ""
}

// statusUpdate records a job's status from the validator that runs it; a terminal one
// settles the job's money.
func (f *Facilitator) statusUpdate(ctx context.Context, validator string, u *protocol.V0JobStatusUpdate) (string, string) {
	j, err := f.db.GetFacJob(ctx, u.UUID)
	if errors.Is(err, store.ErrNotFound) {
		return "job.not_found", "no job " + u.UUID
	}
	if err != nil {
		f.log.Error("read a job for a status update", "job", u.UUID, "err", err)
		return "internal", "the facilitator could not read the job; send it again"
	}
	if j.Validator != validator || !slices.Contains(inFlight, j.Status) {
		// A requeued job's former validator, or an update after the end: nothing to do.
		f.log.Info("status update ignored", "job", u.UUID, "from", validator, "status", u.Status, "job_status", j.Status)
		return "", ""
	}
	var detail json.RawMessage
	if u.Metadata != nil {
		if detail, err = json.Marshal(u.Metadata); err != nil {
			detail = nil
		}
	}
	if _, err := f.db.AddFacJobEvent(ctx, store.FacJobEvent{JobUUID: u.UUID, Status: string(u.Status), At: time.Now(), Detail: detail}); err != nil {
		f.log.Error("record a job status", "job", u.UUID, "err", err)
		return "internal", "the facilitator could not record the status; send it again"
	}
	st := string(u.Status)
	if !slices.Contains(terminal, st) {
		if err := f.db.UpdateFacJobStatus(ctx, u.UUID, inFlight, st, nil); err != nil && !errors.Is(err, store.ErrConflict) {
			return "internal", "the facilitator could not record the status; send it again"
		}
		return "", ""
	}
	result := detail
	if result == nil {
		result = json.RawMessage("{}")
	}
	attempt := ""
	if u.Metadata != nil {
		if raw, ok := u.Metadata.Extra.Get("attempt_uuid"); ok {
			_ = json.Unmarshal(raw, &attempt)
		}
	}
	// The money first, then the status: a user who sees the job ended sees what it cost.
	// Settling is keyed, so the validator's resend after a crash in between settles nothing
	// twice.
	if err := f.settle(ctx, u.UUID, st, attempt); err != nil {
		f.log.Error("cannot settle a finished job; it is settled at the next start", "job", u.UUID, "err", err)
	}
	err = f.db.UpdateFacJobStatus(ctx, u.UUID, inFlight, st, result)
	if err != nil && !errors.Is(err, store.ErrConflict) {
		return "internal", "the facilitator could not record the status; send it again"
	}
	f.log.Info("job ended", "job", u.UUID, "status", st, "validator", validator[:min(10, len(validator))])
	if err == nil { // once per job: a resent final status gives back nothing more
		f.hub.giveBack(validator, j.Class)
	}
	f.hub.kick()
	return "", ""
}

// workReport charges one reported interval: its seconds × the job's price, from the job's
// hold (never more than is left of it), once per (job, attempt, interval).
func (f *Facilitator) workReport(ctx context.Context, validator string, r *protocol.V0JobWorkReport) (string, string) {
	j, err := f.db.GetFacJob(ctx, r.JobUUID)
	if errors.Is(err, store.ErrNotFound) {
		return "job.not_found", "no job " + r.JobUUID
	}
	if err != nil {
		return "internal", "the facilitator could not read the job; send it again"
	}
	if j.Validator != validator || !slices.Contains(inFlight, j.Status) {
		f.log.Info("work report ignored", "job", r.JobUUID, "from", validator, "job_status", j.Status)
		return "", ""
	}
	if r.WorkedSeconds < 0 || r.WorkedSeconds > int(10*time.Minute/time.Second)+5 || r.IntervalIndex < 0 {
		return "invalid_report", "worked_seconds must be within one 10-minute interval"
	}
	left, err := f.db.Balance(ctx, store.HoldAccount(j.UUID))
	if err != nil {
		return "internal", "the facilitator could not read the hold; send it again"
	}
	amount := min(int64(r.WorkedSeconds)*j.Price, left)
	if amount <= 0 {
		return "", ""
	}
	// Keyed by the dispatch too: a job queued again and re-run reports intervals anew.
	key := "charge:" + j.UUID + ":" + strconv.FormatInt(j.DispatchedAt.UnixMicro(), 36) + ":" + r.AttemptUUID + ":" + strconv.Itoa(r.IntervalIndex)
	applied, err := f.db.Transfer(ctx, store.Transfer{Key: key, Kind: "charge", From: store.HoldAccount(j.UUID), To: store.AccountRevenue,
		Amount: amount, JobUUID: j.UUID, Note: r.AttemptUUID})
	if errors.Is(err, store.ErrConflict) {
		return "", "" // the same interval reported again with other figures: the first counts
	}
	if err != nil {
		return "internal", "the facilitator could not charge the interval; send it again"
	}
	if applied {
		if err := f.db.AddFacJobCharge(ctx, j.UUID, amount); err != nil {
			f.log.Error("record a charge on the job", "job", j.UUID, "err", err)
		}
	}
	return "", ""
}

// settle ends a job's money: charges the user does not owe are refunded (all of them for a
// job the horde failed, rejected or cancelled; those of attempts other than the one that
// ended it otherwise) and what is left of the hold goes back to the user. Every transfer is
// keyed, so settling twice moves nothing more.
func (f *Facilitator) settle(ctx context.Context, id, final, attempt string) error {
	j, err := f.db.GetFacJob(ctx, id)
	if err != nil {
		return err
	}
	entries, err := f.db.JobLedger(ctx, id)
	if err != nil {
		return err
	}
	refundAll := final == string(protocol.JobStatusHordeFailed) || final == string(protocol.JobStatusRejected) || final == store.FacJobCancelled
	for _, e := range entries {
		if e.Kind != "charge" || e.Account != store.HoldAccount(id) || !(refundAll || attempt != "" && e.Note != attempt) {
			continue
		}
		applied, err := f.db.Transfer(ctx, store.Transfer{Key: "refund:" + e.Key, Kind: "refund", From: store.AccountRevenue,
			To: store.UserAccount(j.User), Amount: -e.Amount, JobUUID: id, Note: e.Note})
		if err != nil {
			return err
		}
		if applied {
			if err := f.db.AddFacJobCharge(ctx, id, e.Amount); err != nil {
				return err
			}
		}
	}
	left, err := f.db.Balance(ctx, store.HoldAccount(id))
	if err != nil || left <= 0 {
		return err
	}
	_, err = f.db.Transfer(ctx, store.Transfer{Key: "release:" + id, Kind: "release", From: store.HoldAccount(id),
		To: store.UserAccount(j.User), Amount: left, JobUUID: id})
	return err
}

// dispatchLoop sends queued jobs to validators with room, and queues again the jobs of
// validators gone longer than RequeueAfter, until ctx ends.
func (h *hub) dispatchLoop(ctx context.Context) {
	t := time.NewTicker(DefaultDispatchInterval)
	defer t.Stop()
	// Requeueing is a matter of time (RequeueAfter), so it runs on the ticker only, not on
	// every wake: a wake comes with every job that ends and every report of free capacity.
	for tick := true; ; {
		if tick {
			h.requeueGone(ctx)
		}
		h.dispatch(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			tick = true
		case <-h.wake:
			tick = false
		}
	}
}

// hasRoom reports whether validator v can take a job of class, by the capacity it reported
// (true when it never reported any: upstream validators do not).
func (h *hub) hasRoom(v, class string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	free, reported := h.free[v]
	return !reported || free[protocol.ExecutorClass(class)] > 0
}

// take counts a job of class sent to v against its reported capacity.
func (h *hub) take(v, class string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if free, reported := h.free[v]; reported {
		free[protocol.ExecutorClass(class)]--
	}
}

// giveBack returns the executor a job of class took on v when it ends. The validator's own
// reports come every few seconds and only when its capacity changed: without this, a freed
// executor idles until the next one, and one freed by a job that began and ended between
// two reports would count as taken until the capacity changed for another reason. A class
// the last report left out is not offered there any more and gets nothing back.
func (h *hub) giveBack(v, class string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if free, reported := h.free[v]; reported {
		if n, offered := free[protocol.ExecutorClass(class)]; offered {
			free[protocol.ExecutorClass(class)] = n + 1
		}
	}
}

// live returns the validators with a fresh heartbeat.
func (h *hub) live() map[string]*validatorConn {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := map[string]*validatorConn{}
	for k, c := range h.conns {
		if time.Since(c.beat) < DefaultHeartbeatFreshness {
			out[k] = c
		}
	}
	return out
}

func (h *hub) dispatch(ctx context.Context) {
	h.dispatching.Lock()
	defer h.dispatching.Unlock()
	f := h.f
	live := h.live()
	if len(live) == 0 {
		return
	}
	queued, err := f.db.ListFacJobs(ctx, store.FacJobFilter{Statuses: []string{store.FacJobQueued}, OldestFirst: true, Limit: 1000})
	if err != nil || len(queued) == 0 {
		return
	}
	running, err := f.db.ListFacJobs(ctx, store.FacJobFilter{Statuses: inFlight})
	if err != nil {
		return
	}
	perValidator, perUser := map[string]int{}, map[string]int{}
	for _, j := range running {
		perValidator[j.Validator]++
		perUser[j.User]++
	}
	validators := make([]string, 0, len(live))
	for k := range live {
		validators = append(validators, k)
	}
	slices.Sort(validators)
	taken, weights := map[string]bool{}, map[string]float64{}
	for progress := true; progress; {
		progress = false
		for _, v := range validators {
			if perValidator[v] >= f.cfg.JobsPerValidator {
				continue
			}
			// The next job: stake-weighted fair queuing. It goes to the user whose running jobs
			// are fewest for its weight (after taking this one), the heavier user first on a
			// tie, its oldest job first; so competing users share the validators' capacity in
			// proportion to stake, and a user alone takes all of it.
			best, bestLoad, bestWeight := -1, 0.0, 0.0
			for i, j := range queued {
				if taken[j.UUID] || j.TargetValidator != "" && j.TargetValidator != v || !h.hasRoom(v, j.Class) {
					continue
				}
				w := weights[j.User]
				if w == 0 {
					w = f.weight(j.User)
					weights[j.User] = w
				}
				load := float64(perUser[j.User]+1) / w
				if best < 0 || load < bestLoad || load == bestLoad && w > bestWeight {
					best, bestLoad, bestWeight = i, load, w
				}
			}
			if best < 0 {
				continue
			}
			j := queued[best]
			taken[j.UUID] = true
			ok, err := f.db.ClaimFacJob(ctx, j.UUID, v, f.cfg.Replica, time.Now())
			if err != nil || !ok {
				continue // another replica took it, or it was cancelled
			}
			// Recorded before the send: the validator's first status may come back at once.
			_, _ = f.db.AddFacJobEvent(ctx, store.FacJobEvent{JobUUID: j.UUID, Status: store.FacJobSent, At: time.Now()})
			spec, err := f.jobRequest(j)
			if err == nil {
				err = live[v].conn.Send(ctx, spec)
			}
			if err != nil {
				f.log.Warn("cannot send a job to its validator; queued again", "job", j.UUID, "err", err)
				_, _ = f.db.RequeueFacJob(ctx, j.UUID, []string{store.FacJobSent})
				continue
			}
			h.take(v, j.Class)
			f.log.Info("job dispatched", "job", j.UUID, "validator", v[:min(10, len(v))], "user", j.User[:min(10, len(j.User))])
			perValidator[v]++
			perUser[j.User]++
			progress = true
		}
	}
}

// jobRequest is the signed V2JobRequest of a stored job.
func (f *Facilitator) jobRequest(j store.FacJob) (*protocol.V2JobRequest, error) {
	var spec protocol.V2JobRequest
	if err := json.Unmarshal(j.Spec, &spec); err != nil {
		return nil, err
	}
	if spec.Signature == nil {
		if err := f.signJob(&spec); err != nil { // the validator checks every job's signature
			return nil, err
		}
	}
	return &spec, nil
}

// resendUnanswered sends a validator that connects the jobs dispatched to it that it never
// answered (still "sent"): the send may have died with its previous connection, or with a
// facilitator killed between claiming a job and sending it. Such a job would otherwise wait
// forever, since its validator is back and requeueGone leaves it alone. A validator ignores
// a job it already runs.
func (h *hub) resendUnanswered(ctx context.Context, vc *validatorConn) {
	f := h.f
	jobs, err := f.db.ListFacJobs(ctx, store.FacJobFilter{Statuses: []string{store.FacJobSent}})
	if err != nil {
		f.log.Warn("cannot list the jobs a validator never answered", "err", err)
		return
	}
	for _, j := range jobs {
		if j.Validator != vc.hotkey {
			continue
		}
		spec, err := f.jobRequest(j)
		if err == nil {
			err = vc.conn.Send(ctx, spec)
		}
		if err != nil {
			f.log.Warn("cannot send a job again to its validator", "job", j.UUID, "err", err)
			return
		}
		f.log.Info("job sent again: its validator never answered it", "job", j.UUID, "validator", vc.hotkey[:min(10, len(vc.hotkey))])
	}
}

// requeueGone queues again the unfinished jobs of validators that are not connected and
// have not come back within RequeueAfter (or that this process never saw); work they
// reported is refunded, since the job runs again elsewhere.
func (h *hub) requeueGone(ctx context.Context) {
	f := h.f
	running, err := f.db.ListFacJobs(ctx, store.FacJobFilter{Statuses: inFlight})
	if err != nil || len(running) == 0 {
		return
	}
	now := time.Now()
	h.mu.Lock()
	stale := map[string]bool{}
	for _, j := range running {
		if _, up := h.conns[j.Validator]; up {
			continue
		}
		since, seen := h.gone[j.Validator]
		if !seen {
			h.gone[j.Validator] = now // not seen by this process: the grace starts now
			continue
		}
		if now.Sub(since) >= f.cfg.RequeueAfter {
			stale[j.UUID] = true
		}
	}
	h.mu.Unlock()
	for _, j := range running {
		if !stale[j.UUID] {
			continue
		}
		if err := f.refundCharges(ctx, j); err != nil {
			f.log.Error("cannot refund a requeued job's charges", "job", j.UUID, "err", err)
			continue
		}
		ok, err := f.db.RequeueFacJob(ctx, j.UUID, inFlight)
		if err == nil && ok {
			_, _ = f.db.AddFacJobEvent(ctx, store.FacJobEvent{JobUUID: j.UUID, Status: "requeued", At: now})
			f.log.Warn("validator gone; job queued again", "job", j.UUID, "validator", j.Validator[:min(10, len(j.Validator))])
		}
	}
}

// refundCharges gives back the charges of a job that will run again (they go back to its
// hold, which the next run charges from).
func (f *Facilitator) refundCharges(ctx context.Context, j store.FacJob) error {
	entries, err := f.db.JobLedger(ctx, j.UUID)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.Kind != "charge" || e.Account != store.HoldAccount(j.UUID) {
			continue
		}
		applied, err := f.db.Transfer(ctx, store.Transfer{Key: "uncharge:" + e.Key, Kind: "refund", From: store.AccountRevenue,
			To: store.HoldAccount(j.UUID), Amount: -e.Amount, JobUUID: j.UUID, Note: e.Note})
		if err != nil {
			return err
		}
		if applied {
			if err := f.db.AddFacJobCharge(ctx, j.UUID, e.Amount); err != nil {
				return err
			}
		}
	}
	return nil
}

// Recover settles what a killed facilitator left half done: a finished job whose hold still
// holds credits is settled again. A submission cannot be left half done (its job, hold and
// event are one transaction), but earlier versions wrote a job "new" before its hold: such a
// job is queued when its hold was taken and refused otherwise.
func (f *Facilitator) Recover(ctx context.Context) error {
	fresh, err := f.db.ListFacJobs(ctx, store.FacJobFilter{Statuses: []string{statusNew}})
	if err != nil {
		return err
	}
	for _, j := range fresh {
		held, err := f.db.Balance(ctx, store.HoldAccount(j.UUID))
		if err != nil {
			return err
		}
		to := statusRefused
		if held > 0 {
			to = store.FacJobQueued
		}
		if err := f.db.UpdateFacJobStatus(ctx, j.UUID, []string{statusNew}, to, nil); err != nil && !errors.Is(err, store.ErrConflict) {
			return err
		}
	}
	ended, err := f.db.ListFacJobs(ctx, store.FacJobFilter{Statuses: terminal})
	if err != nil {
		return err
	}
	for _, j := range ended {
		held, err := f.db.Balance(ctx, store.HoldAccount(j.UUID))
		if err != nil {
			return err
		}
		if held > 0 {
			if err := f.settle(ctx, j.UUID, j.Status, ""); err != nil {
				return err
			}
		}
	}
	return nil
}
