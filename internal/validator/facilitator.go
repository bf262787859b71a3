package validator

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/computehorde/horde/internal/clock"
	"github.com/computehorde/horde/internal/keys"
	"github.com/computehorde/horde/internal/protocol"
	"github.com/computehorde/horde/internal/store"
	"github.com/computehorde/horde/internal/wsconn"
)

// The facilitator link (upstream's fv channel, reference/protocol.md §1): the validator
// connects to the facilitator, authenticates by signing its own public key, sends a heartbeat
// every minute, runs the signed V2JobRequests it receives through Route and reports each
// job's statuses in order. Beyond upstream it publishes the class values (V0ClassValuesUpdate,
// for pricing), reports cross-check mismatches of the facilitator's jobs (V0JobCheatDetected)
// and judges users' cheat reports (V0JobCheated) against the outputs it saw. Everything but
// the heartbeat waits in an outbox until the facilitator answers it (one Response each, as
// upstream's facilitator answers even what it cannot parse), so what is unanswered when a
// connection drops is sent again after the reconnect.
const (
	facilitatorHeartbeat  = time.Minute
	facilitatorBackoffMin = 2 * time.Second
	facilitatorBackoffMax = 10 * time.Second
	// organicJobWindow is how long a facilitator job may be retried on other miners.
	organicJobWindow = 10 * time.Minute
	// organicJobPatience is how long a facilitator job waits for a miner when all of them
	// declined it or none was free, before it is rejected. The facilitator hands out jobs by
	// each validator's free capacity, but a validator does not see the other validators'
	// jobs: when they compete for the same miners, a short wait turns a rejection into a
	// job done.
	organicJobPatience = time.Minute
	// classValuesCheck is how often changed class values are published.
	classValuesCheck = time.Minute
	// capacityCheck is how often a changed free capacity is published.
	capacityCheck = 2 * time.Second
	// facilitatorJobMemory is how long a facilitator job's outcome is kept for cheat
	// reports and cross-checks.
	facilitatorJobMemory = 24 * time.Hour
)

// ErrFacilitatorRefused reports a facilitator that answered the authentication with an
// error (an unknown validator, a bad signature).
var ErrFacilitatorRefused = errors.New("validator: the facilitator refused the authentication")

// facilitatorLink is the state that survives reconnects: the outbox, the running jobs and
// the recent jobs' outcomes.
type facilitatorLink struct {
	v  *Validator
	mu sync.Mutex
	// outbox holds the messages not answered yet, in order; sent counts those of them
	// written on the current connection.
	outbox []protocol.Message
	sent   int
	wake   chan struct{}
	jobs   sync.WaitGroup
	// values and capacity are the class values and free capacity last queued (encoded), to
	// publish changes only.
	values, capacity string
	// book holds the facilitator's jobs by the UUID it sent.
	book map[string]*facilitatorJob
	// running are the facilitator's jobs under way, also kept in the store (state
	// runningState) so that a validator killed while running them reports them when it
	// starts again; recovered are those of an earlier process, reported horde_failed and
	// kept until the facilitator answers.
	pmu       sync.Mutex
	running   map[string]bool
	recovered map[string]bool
}

// runningState names the stored list of a validator's facilitator jobs under way.
func (v *Validator) runningState() string { return "validator/" + v.hotkey + "/facilitator_jobs" }

// track records that a facilitator job started (running) or ended, in memory and in the
// store.
func (l *facilitatorLink) track(id string, running bool) {
	l.pmu.Lock()
	defer l.pmu.Unlock()
	if running {
		l.running[id] = true
	} else {
		delete(l.running, id)
	}
	ids := make([]string, 0, len(l.running))
	for id := range l.running {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	if err := l.v.cfg.Store.PutState(context.Background(), l.v.runningState(), ids); err != nil {
		l.v.log.Warn("cannot save the facilitator jobs under way", "err", err)
	}
}

// recover reports horde_failed each facilitator job an earlier process of this validator
// left under way (killed while running it: its Recover ended the attempt horde_failed
// too). The facilitator would otherwise wait for their end forever, since the validator is
// back within its requeue_after.
func (l *facilitatorLink) recover(ctx context.Context) {
	var left []string
	if err := l.v.cfg.Store.GetState(ctx, l.v.runningState(), &left); err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			l.v.log.Warn("cannot read the facilitator jobs an earlier run left under way", "err", err)
		}
		return
	}
	for _, id := range left {
		l.pmu.Lock()
		l.running[id], l.recovered[id] = true, true
		l.pmu.Unlock()
		res := hordeFailure(protocol.HordeFailureReasonUnhandledException, "validator restarted while the job was running")
		res.UUID = id
		l.v.log.Warn("facilitator job cut short by a validator restart: reported horde_failed", "job", id)
		l.report(&protocol.V0JobStatusUpdate{UUID: id, Status: res.Status, Metadata: resultMetadata(res)})
	}
}

// facilitatorJob is what the link remembers of a facilitator job, to judge cheat reports.
type facilitatorJob struct {
	signatory string // the user who signed it
	trusted   bool   // run on the trusted miner at the user's request
	at        time.Time
	done      bool
	status    protocol.JobStatus
	miner     string // the miner of the attempt that ended it
	minerUUID string // that attempt's UUID
	stdout    string
	cheated   bool
}

// RunFacilitatorLink keeps the link to the facilitator at url up until ctx ends,
// reconnecting with backoff; jobs it received are finished (or stopped by ctx) before it
// returns nil.
func (v *Validator) RunFacilitatorLink(ctx context.Context, url string) error {
	l := &facilitatorLink{v: v, wake: make(chan struct{}, 1), book: map[string]*facilitatorJob{},
		running: map[string]bool{}, recovered: map[string]bool{}}
	l.recover(ctx)
	v.facilitator.Store(l)
	defer v.facilitator.CompareAndSwap(l, nil)
	defer l.jobs.Wait()
	wait := facilitatorBackoffMin
	for ctx.Err() == nil {
		err := l.connectOnce(ctx, url)
		if ctx.Err() != nil {
			break
		}
		v.log.Warn("facilitator link down; reconnecting", "err", err, "in", wait)
		if clock.Sleep(ctx, wait/2+rand.N(wait/2+1)) != nil {
			break
		}
		wait = min(2*wait, facilitatorBackoffMax)
	}
	return nil
}

func (l *facilitatorLink) connectOnce(ctx context.Context, url string) error {
	v := l.v
	dialCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	conn, err := wsconn.Dial(dialCtx, url)
	cancel()
	if err != nil {
		return err
	}
	defer conn.CloseNow()
	// A signed timestamp first (it cannot be replayed); a facilitator that does not know it
	// (upstream's) answers with an error that is not about the authentication itself, and
	// gets upstream's V0AuthenticationRequest on the same connection.
	pub := v.cfg.Keypair.Public()
	pubHex := hex.EncodeToString(pub[:])
	ts := time.Now().Unix()
	authCtx, cancelAuth := context.WithTimeout(ctx, 10*time.Second) // a facilitator that never answers
	defer cancelAuth()
	r, frame, err := authenticate(authCtx, conn, &protocol.V1AuthenticationRequest{PublicKey: pubHex, Timestamp: ts,
		Signature: v.cfg.Keypair.Sign(protocol.V1AuthBlob(pubHex, ts)).Hex()})
	if err != nil {
		return err
	}
	if r.Status != protocol.ResponseStatusSuccess && !authRefusal(r) {
		r, frame, err = authenticate(authCtx, conn, &protocol.V0AuthenticationRequest{PublicKey: pubHex, Signature: v.cfg.Keypair.Sign(pub[:]).Hex()})
		if err != nil {
			return err
		}
	}
	if r.Status != protocol.ResponseStatusSuccess {
		return fmt.Errorf("%w: %s", ErrFacilitatorRefused, frame)
	}
	v.log.Info("facilitator link up", "url", url)

	cctx, stop := context.WithCancel(ctx)
	defer stop()
	l.mu.Lock()
	l.sent = 0 // everything unanswered goes again on this connection
	l.values, l.capacity = "", ""
	l.mu.Unlock()
	l.publishValues()
	l.publishCapacity()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer stop()
	wg.Go(func() { l.write(cctx, conn) })
	for {
		frame, err := conn.ReadFrame(cctx)
		if err != nil {
			return err
		}
		msg, err := protocol.DecodeFacilitatorToValidator(frame)
		if err != nil {
			v.log.Warn("malformed message from the facilitator", "err", err)
			continue
		}
		switch m := msg.(type) {
		case *protocol.Response:
			l.answered(m)
		case *protocol.V2JobRequest:
			job := *m
			l.jobs.Go(func() { l.runJob(ctx, job) })
		case *protocol.V0JobCheated:
			l.judgeCheatReport(m)
		}
	}
}

// authenticate sends an authentication message and reads the facilitator's Response.
func authenticate(ctx context.Context, conn *wsconn.Conn, auth protocol.Message) (*protocol.Response, []byte, error) {
	if err := conn.Send(ctx, auth); err != nil {
		return nil, nil, err
	}
	frame, err := conn.ReadFrame(ctx)
	if err != nil {
		return nil, nil, err
	}
	msg, err := protocol.DecodeFacilitatorToValidator(frame)
	if err != nil {
		return nil, frame, fmt.Errorf("the facilitator's answer to the authentication: %w", err)
	}
	r, ok := msg.(*protocol.Response)
	if !ok {
		return nil, frame, fmt.Errorf("%w: %s", ErrFacilitatorRefused, frame)
	}
	return r, frame, nil
}

// authRefusal reports whether r refuses the validator itself (an unknown validator, a bad
// signature, a stale timestamp) rather than the message's form.
func authRefusal(r *protocol.Response) bool {
	for _, e := range r.Errors {
		if strings.HasPrefix(e.Type, "auth.") && e.Type != "auth.not_authenticated" {
			return true
		}
	}
	return false
}

// write sends heartbeats, changed class values and the outbox in order until ctx ends.
func (l *facilitatorLink) write(ctx context.Context, conn *wsconn.Conn) {
	beat := time.NewTicker(facilitatorHeartbeat)
	defer beat.Stop()
	values := time.NewTicker(classValuesCheck)
	defer values.Stop()
	capacity := time.NewTicker(capacityCheck)
	defer capacity.Stop()
	for {
		l.mu.Lock()
		var next protocol.Message
		if l.sent < len(l.outbox) {
			next = l.outbox[l.sent]
		}
		l.mu.Unlock()
		if next != nil {
			if err := conn.Send(ctx, next); err != nil {
				conn.CloseNow() // the reader sees it and the link reconnects
				return
			}
			l.mu.Lock()
			l.sent++
			l.mu.Unlock()
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-beat.C:
			if err := conn.Send(ctx, &protocol.V0Heartbeat{}); err != nil {
				conn.CloseNow()
				return
			}
		case <-values.C:
			l.publishValues()
		case <-capacity.C:
			l.publishCapacity()
		case <-l.wake:
		}
	}
}

// answered pops the oldest sent message: the facilitator answers each in order.
func (l *facilitatorLink) answered(r *protocol.Response) {
	l.mu.Lock()
	if l.sent == 0 || len(l.outbox) == 0 {
		l.mu.Unlock()
		return
	}
	done := l.outbox[0]
	if r.Status != protocol.ResponseStatusSuccess {
		id, _ := protocol.JobUUIDOf(done)
		l.v.log.Info("the facilitator answered with an error", "message", done.MessageType(), "job", id, "errors", fmt.Sprint(r.Errors))
	}
	l.outbox = l.outbox[1:]
	l.sent--
	l.mu.Unlock()
	if u, ok := done.(*protocol.V0JobStatusUpdate); ok {
		l.pmu.Lock()
		rec := l.recovered[u.UUID]
		delete(l.recovered, u.UUID)
		l.pmu.Unlock()
		if rec { // an earlier process's job, now reported
			l.track(u.UUID, false)
		}
	}
}

func (l *facilitatorLink) report(m protocol.Message) {
	l.mu.Lock()
	l.outbox = append(l.outbox, m)
	l.mu.Unlock()
	l.kick()
}

func (l *facilitatorLink) kick() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// publishValues queues the validator's class values when they differ from those last
// queued.
func (l *facilitatorLink) publishValues() {
	cv := l.v.ClassValues()
	l.publish(&protocol.V0ClassValuesUpdate{ClassValues: cv.ClassValues, RewardRate: cv.RewardRate}, &l.values)
}

// publishCapacity queues the validator's free capacity when it differs from the last queued.
func (l *facilitatorLink) publishCapacity() {
	l.publish(&protocol.V0ExecutorCapacityUpdate{FreeExecutors: l.v.FreeCapacity()}, &l.capacity)
}

// publish queues msg unless it encodes as *last; an unsent older message of its type is
// replaced rather than followed.
func (l *facilitatorLink) publish(msg protocol.Message, last *string) {
	enc, err := protocol.Encode(msg)
	if err != nil {
		l.v.log.Error("cannot encode an update for the facilitator", "message", msg.MessageType(), "err", err)
		return
	}
	l.mu.Lock()
	if string(enc) == *last {
		l.mu.Unlock()
		return
	}
	*last = string(enc)
	replaced := false
	for i := l.sent; i < len(l.outbox); i++ {
		if l.outbox[i].MessageType() == msg.MessageType() {
			l.outbox[i], replaced = msg, true
		}
	}
	if !replaced {
		l.outbox = append(l.outbox, msg)
	}
	l.mu.Unlock()
	l.kick()
}

// runJob checks the job's signature, routes it and reports every status.
func (l *facilitatorLink) runJob(ctx context.Context, spec protocol.V2JobRequest) {
	status := func(s protocol.JobStatus, md *protocol.JobStatusMetadata) {
		l.report(&protocol.V0JobStatusUpdate{UUID: spec.UUID, Status: s, Metadata: md})
	}
	if err := verifyJobSignature(&spec); err != nil {
		l.v.log.Warn("facilitator job with a bad signature rejected", "job", spec.UUID, "err", err)
		status(protocol.JobStatusRejected, &protocol.JobStatusMetadata{JobRejectionDetails: &protocol.JobRejectionDetails{
			RejectedBy: protocol.JobParticipantTypeValidator, Reason: protocol.JobRejectionReasonInvalidSignature, Message: err.Error()}})
		return
	}
	if !l.remember(spec) {
		l.v.log.Warn("facilitator job sent twice; the second is ignored", "job", spec.UUID)
		return
	}
	l.track(spec.UUID, true)
	defer l.track(spec.UUID, false) // its last status is queued by then
	status(protocol.JobStatusReceived, nil)
	res, attempts, err := l.v.RouteObserved(ctx, spec, l.v.cfg.Clock.Now().Add(organicJobWindow), RouteOptions{
		Observer: Observer{
			Status: func(s protocol.JobStatus) { status(s, nil) },
			Work: func(p protocol.WorkIntervalReceiptPayload) {
				l.report(&protocol.V0JobWorkReport{JobUUID: spec.UUID, AttemptUUID: p.JobUUID, ExecutorClass: p.ExecutorClass,
					IntervalIndex: p.IntervalIndex, WorkedSeconds: p.WorkedSeconds})
			},
		},
		WaitForMiner: organicJobPatience,
	})
	if err != nil {
		l.ended(spec.UUID, nil, nil)
		status(protocol.JobStatusRejected, &protocol.JobStatusMetadata{JobRejectionDetails: &protocol.JobRejectionDetails{
			RejectedBy: protocol.JobParticipantTypeValidator, Reason: protocol.JobRejectionReasonNoMinerForJob, Message: err.Error()}})
		return
	}
	l.ended(spec.UUID, res, attempts)
	md := resultMetadata(res)
	// Which attempt's work the user pays for (V0JobWorkReport).
	md.Extra.Set("attempt_uuid", json.RawMessage(strconv.Quote(res.UUID)))
	status(res.Status, md)
}

// remember records a facilitator job as it starts, and forgets those older than
// facilitatorJobMemory. It reports false for a UUID already known.
func (l *facilitatorLink) remember(spec protocol.V2JobRequest) bool {
	now := l.v.cfg.Clock.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, dup := l.book[spec.UUID]; dup {
		return false
	}
	for id, j := range l.book {
		if now.Sub(j.at) > facilitatorJobMemory {
			delete(l.book, id)
		}
	}
	l.book[spec.UUID] = &facilitatorJob{signatory: spec.Signature.Signatory, trusted: spec.OnTrustedMiner, at: now}
	return true
}

// ended records a facilitator job's outcome (nil when no miner took it).
func (l *facilitatorLink) ended(id string, res *JobResult, attempts []Attempt) {
	l.mu.Lock()
	defer l.mu.Unlock()
	j := l.book[id]
	if j == nil {
		return
	}
	j.done = true
	if res == nil {
		return
	}
	j.status, j.stdout, j.minerUUID = res.Status, res.Stdout, res.UUID
	if len(attempts) > 0 {
		j.miner = attempts[len(attempts)-1].Miner
	}
}

// cheatDetected reports a cross-check mismatch of one of the facilitator's jobs.
func (l *facilitatorLink) cheatDetected(c Cheat) {
	l.mu.Lock()
	j := l.book[c.RequestUUID]
	if j == nil || j.cheated {
		l.mu.Unlock()
		return
	}
	j.cheated = true
	l.mu.Unlock()
	l.report(&protocol.V0JobCheatDetected{JobUUID: c.RequestUUID, TrustedJobUUID: c.CheckUUID, MinerHotkey: c.Miner,
		Details: cheatDetails("cross_check", c.MinerStdout, c.TrustedStdout)})
}

// judgeCheatReport checks a user's report that a job's output differs from the same job run
// on the trusted miner at their request: signed by the user who signed both jobs, both
// completed here, the first on a miner and the second on the trusted miner, and not
// reported before. Unlike upstream, which takes the user's word, the outputs are compared:
// a report of identical outputs is unfounded. A confirmed report counts against the miner
// like a cross-check mismatch and is confirmed to the facilitator.
func (l *facilitatorLink) judgeCheatReport(m *protocol.V0JobCheated) {
	log := l.v.log.With("job", m.JobUUID, "trusted_job", m.TrustedJobUUID)
	if err := verifySignature(m.Signature, m.SignedPayloadDigest); err != nil {
		log.Warn("cheat report refused: bad signature", "err", err)
		return
	}
	l.mu.Lock()
	j, tj := l.book[m.JobUUID], l.book[m.TrustedJobUUID]
	var why string
	switch {
	case j == nil || tj == nil:
		why = "this validator did not run both jobs (or forgot them after 24 h)"
	case j.signatory != m.Signature.Signatory || tj.signatory != m.Signature.Signatory:
		why = "the report is not signed by the user of both jobs"
	case j.trusted || !tj.trusted:
		why = "the first job must have run on a miner and the second on the trusted miner"
	case j.status != protocol.JobStatusCompleted || tj.status != protocol.JobStatusCompleted:
		why = "both jobs must have completed"
	case j.cheated:
		why = "the job is already marked cheated"
	case j.stdout == tj.stdout:
		why = "unfounded: both jobs printed the same output"
	}
	if why != "" {
		l.mu.Unlock()
		log.Warn("cheat report refused", "why", why)
		return
	}
	j.cheated = true
	c := Cheat{At: l.v.cfg.Clock.Now(), Miner: j.miner, JobUUID: j.minerUUID, RequestUUID: m.JobUUID, CheckUUID: m.TrustedJobUUID,
		MinerStdout: truncate(j.stdout, 1024), TrustedStdout: truncate(tj.stdout, 1024)}
	l.mu.Unlock()
	l.v.recordCheat(c)
	log.Warn("cheat report confirmed: the miner's output differs from the trusted miner's", "miner", c.Miner[:min(10, len(c.Miner))])
	l.report(&protocol.V0JobCheatDetected{JobUUID: m.JobUUID, TrustedJobUUID: m.TrustedJobUUID, MinerHotkey: c.Miner,
		Details: cheatDetails("user_report", c.MinerStdout, c.TrustedStdout)})
}

// cheatDetails says how a cheat was found and what each side printed.
func cheatDetails(how, minerStdout, trustedStdout string) json.RawMessage {
	d, _ := json.Marshal(map[string]string{"found_by": how, "miner_stdout": minerStdout, "trusted_stdout": trustedStdout})
	return d
}

// resultMetadata is a terminal status's details. Failures the validator detected itself are
// the horde's and are reported as horde_failed (upstream mislabels them failed).
func resultMetadata(res *JobResult) *protocol.JobStatusMetadata {
	switch res.Status {
	case protocol.JobStatusCompleted:
		return &protocol.JobStatusMetadata{MinerResponse: &protocol.JobResultDetails{DockerProcessStdout: res.Stdout, DockerProcessStderr: res.Stderr}}
	case protocol.JobStatusRejected:
		return &protocol.JobStatusMetadata{JobRejectionDetails: &protocol.JobRejectionDetails{
			RejectedBy: res.ReportedBy, Reason: protocol.JobRejectionReason(res.Reason), Message: res.Message}}
	case protocol.JobStatusFailed:
		return &protocol.JobStatusMetadata{JobFailureDetails: &protocol.JobFailureDetails{
			Reason: protocol.JobFailureReason(res.Reason), Stage: res.Stage, Message: res.Message,
			DockerProcessExitStatus: res.ExitStatus, DockerProcessStdout: new(res.Stdout), DockerProcessStderr: new(res.Stderr)}}
	}
	return &protocol.JobStatusMetadata{HordeFailureDetails: &protocol.HordeFailureDetails{
		ReportedBy: res.ReportedBy, Reason: protocol.HordeFailureReason(res.Reason), Message: res.Message}}
}

// verifyJobSignature checks the facilitator job's signature (scope SignedFields) by its
// signatory.
func verifyJobSignature(spec *protocol.V2JobRequest) error {
	return verifySignature(spec.Signature, spec.SignedPayloadDigest)
}

// verifySignature checks a user's signature over the digest by its signatory.
func verifySignature(sig *protocol.Signature, payloadDigest func() ([64]byte, error)) error {
	if sig == nil || len(sig.Signature) != 64 || sig.Signatory == "" {
		return errors.New("the job carries no signature")
	}
	if sig.SignatureType != "" && !strings.EqualFold(sig.SignatureType, "bittensor") {
		return fmt.Errorf("signature type %q is not bittensor", sig.SignatureType)
	}
	digest, err := payloadDigest()
	if err != nil {
		return err
	}
	pub, err := keys.ParsePublicKey(sig.Signatory)
	if err != nil {
		return fmt.Errorf("signatory: %w", err)
	}
	var s keys.Signature
	copy(s[:], sig.Signature)
	if !pub.Verify(digest[:], s) {
		return errors.New("the signature does not verify")
	}
	return nil
}
