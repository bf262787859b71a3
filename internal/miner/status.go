package miner

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/computehorde/horde/internal/chain"
	"github.com/computehorde/horde/internal/protocol"
	"github.com/computehorde/horde/internal/store"
)

// Status is a snapshot of the miner for its operator: the admin panel, /metrics and
// `horde miner status` read it. It is a copy; holding it holds no lock.
type Status struct {
	At       time.Time // when the snapshot was taken
	Hotkey   string    // SS58
	NetUID   chain.NetUID
	Draining bool // new jobs are declined (Drain was called)

	// Manifest is the configured manifest (Config.Manifest), classes in announcement order;
	// Offer is what the miner offers validators now, per class, and when it may change.
	Manifest protocol.Manifest
	Offer    ManifestStatus
	// Jobs are the jobs in flight, oldest first.
	Jobs []JobStatus

	Axon      AxonStatus        // the last axon check (see [Miner.AxonStatus])
	Metagraph chain.CacheStatus // how fresh the metagraph cache is

	// Hosts are the executor manager's machines, when it runs executors on several (the
	// docker manager); empty for executors that are processes of this miner.
	Hosts []ExecutorHost

	// ValidatorConns counts the validator websockets open, authenticated or not. The miner
	// keeps no per-hotkey list of connected validators; Validators names those with a job
	// in flight, sorted.
	ValidatorConns int
	Validators     []string

	// Declines and Failures are the most recent declined and failed jobs (at most
	// [RecentEvents] of each since the miner started), newest first.
	Declines []JobEvent
	Failures []JobEvent
	// DeclineCounts and FailureCounts count every decline and failure since the miner
	// started, by kind and reason, sorted; they are counters, for /metrics.
	DeclineCounts []ReasonCount
	FailureCounts []ReasonCount
}

// JobStatus is one job in flight.
type JobStatus struct {
	UUID      string
	Validator string // SS58 hotkey
	Class     protocol.ExecutorClass
	Status    string // waiting_for_executor, waiting_for_payload or running
	// Since is when the miner accepted the job and Updated when its status last changed,
	// as the store has them; both are zero in the moment between admission and the job's
	// row being written.
	Since, Updated time.Time
}

// JobEvent is a declined or failed job, as the operator sees it.
type JobEvent struct {
	At        time.Time // set when the event is noted, if zero
	JobUUID   string
	Validator string // SS58 hotkey
	Class     protocol.ExecutorClass
	// Kind says who the failure is put down to: "horde" (the miner or its executor, a
	// protocol.HordeFailureReason) or "job" (the job itself, a protocol.JobFailureReason).
	// Declines have the kind "declined".
	Kind    string
	Reason  string // the protocol reason (a JobRejectionReason for declines)
	Message string // as told to the validator; cut to maxEventMessage bytes
}

// ReasonCount is how many declines or failures had one kind and reason.
type ReasonCount struct {
	Kind, Reason string
	N            uint64
}

// Event kinds.
const (
	KindDeclined    = "declined"
	KindHordeFailed = "horde"
	KindJobFailed   = "job"
)

// RecentEvents is how many declines, and how many failures, a Status lists at most.
const RecentEvents = 200

// maxEventMessage caps a noted message: executors' error texts can be long.
const maxEventMessage = 512

// Status returns a snapshot of the miner. It reads the store for the times of the jobs in
// flight (one row per job); an error means the store could not be read.
func (m *Miner) Status(ctx context.Context) (Status, error) {
	st := Status{
		At:        time.Now(),
		Hotkey:    m.hotkey,
		NetUID:    m.cfg.NetUID,
		Draining:  m.draining.Load(),
		Manifest:  slices.Clone(m.cfg.Manifest),
		Axon:      m.AxonStatus(),
		Metagraph: m.cfg.Metagraph.Status(),
	}
	st.ValidatorConns, _ = m.limits.counts(netip.Addr{})

	m.mu.Lock()
	jobs := make([]*job, 0, len(m.byUUID))
	for _, j := range m.byUUID {
		jobs = append(jobs, j)
	}
	m.mu.Unlock()

	validators := map[string]bool{}
	for _, j := range jobs { // j.mu is never taken under m.mu elsewhere; keep it that way here
		js := JobStatus{UUID: j.uuid, Validator: j.validator.hotkey, Class: j.class, Status: j.getStatus()}
		row, err := m.cfg.Store.GetJob(ctx, j.uuid)
		switch {
		case err == nil:
			js.Since, js.Updated = row.CreatedAt, row.UpdatedAt
		case !errors.Is(err, store.ErrNotFound): // not found: admitted, not yet recorded
			return Status{}, fmt.Errorf("miner: status: %w", err)
		}
		st.Jobs = append(st.Jobs, js)
		validators[js.Validator] = true
	}
	slices.SortFunc(st.Jobs, func(a, b JobStatus) int {
		return cmp.Or(a.Since.Compare(b.Since), cmp.Compare(a.UUID, b.UUID))
	})
	for v := range validators {
		st.Validators = append(st.Validators, v)
	}
	slices.Sort(st.Validators)

	st.Offer = m.ManifestStatus()
	if l, ok := m.cfg.Executors.(ExecutorHostLister); ok {
		st.Hosts = l.Hosts()
	}
	m.events.snapshot(&st)
	return st, nil
}

// noteDecline records a declined job for Status (the recent list and the counters). Kind
// is set to KindDeclined.
func (m *Miner) noteDecline(e JobEvent) {
	e.Kind = KindDeclined
	l := &m.events
	l.add(&l.declines, e)
}

// noteFailure records a failed job for Status; e.Kind should be KindHordeFailed or
// KindJobFailed ([outcomeFailure] tells them apart for an executor's report).
func (m *Miner) noteFailure(e JobEvent) {
	l := &m.events
	l.add(&l.failures, e)
}

// outcomeFailure returns the kind, reason and message of a failed job's outcome as relayed
// to the validator; ok is false for an outcome that is no failure.
func outcomeFailure(outcome protocol.Message) (kind, reason, message string, ok bool) {
	switch o := outcome.(type) {
	case *protocol.V0HordeFailedRequest:
		return KindHordeFailed, string(o.Reason), o.Message, true
	case *protocol.V0JobFailedRequest:
		return KindJobFailed, string(o.Reason), o.Message, true
	}
	return "", "", "", false
}

// eventLog keeps the recent declines and failures and counts them by reason. The zero
// value is ready to use; it is safe for concurrent use.
type eventLog struct {
	mu       sync.Mutex
	declines eventRing // guarded by mu
	failures eventRing // guarded by mu
}

// eventRing holds the last RecentEvents events.
type eventRing struct {
	buf  [RecentEvents]JobEvent
	next int // where the next event goes
	n    int // events held, up to len(buf)
	// counts counts every event added, keyed by kind and reason (N zero).
	counts map[ReasonCount]uint64
}

func (l *eventLog) add(r *eventRing, e JobEvent) {
	if e.At.IsZero() {
		e.At = time.Now()
	}
	e.Message = truncate(e.Message, maxEventMessage)
	l.mu.Lock()
	defer l.mu.Unlock()
	r.buf[r.next] = e
	r.next = (r.next + 1) % len(r.buf)
	r.n = min(r.n+1, len(r.buf))
	if r.counts == nil {
		r.counts = make(map[ReasonCount]uint64)
	}
	r.counts[ReasonCount{Kind: e.Kind, Reason: e.Reason}]++
}

func (l *eventLog) snapshot(st *Status) {
	l.mu.Lock()
	defer l.mu.Unlock()
	st.Declines, st.DeclineCounts = l.declines.snapshot()
	st.Failures, st.FailureCounts = l.failures.snapshot()
}

// snapshot returns the events newest first and the counts sorted by kind and reason.
func (r *eventRing) snapshot() ([]JobEvent, []ReasonCount) {
	events := make([]JobEvent, 0, r.n)
	for i := 1; i <= r.n; i++ {
		events = append(events, r.buf[(r.next-i+len(r.buf))%len(r.buf)])
	}
	counts := make([]ReasonCount, 0, len(r.counts))
	for k, n := range r.counts {
		k.N = n
		counts = append(counts, k)
	}
	slices.SortFunc(counts, func(a, b ReasonCount) int {
		return cmp.Or(cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Reason, b.Reason))
	})
	return events, counts
}

// truncate cuts s to at most n bytes on a rune boundary, marking the cut with "…".
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n - len("…")
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// ExecutorHost is one machine executors run on, as the executor manager sees it.
type ExecutorHost struct {
	Name     string
	Endpoint string
	// Up is true while the host answers and can start executors: its classes count.
	Up bool
	// Answering is true while the host answers at all (Up may still wait, e.g. for an
	// image).
	Answering bool
	// Since is when Up last changed.
	Since time.Time
	// Err is the host's last error, empty when none.
	Err string
	// Classes are the executors the host offers per class; Running those taken now.
	Classes map[protocol.ExecutorClass]int
	Running map[protocol.ExecutorClass]int
}

// ExecutorHostLister is implemented by executor managers that run executors on several
// hosts.
type ExecutorHostLister interface {
	Hosts() []ExecutorHost
}
