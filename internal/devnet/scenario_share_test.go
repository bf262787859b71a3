package devnet

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/computehorde/horde/internal/protocol"
	"github.com/computehorde/horde/internal/store"
	"github.com/computehorde/horde/sdk"
)

// Rule 6 end to end: the facilitator shares the devnet's executors among users in proportion
// to their stake on chain while they compete, and a user alone gets all of them.

const (
	shareExecutors = 4  // two on each of two miners
	shareJobs      = 12 // each competing user's: three times the capacity
	// shareTolerance bounds A's measured share around its stake share, 3/4. The scheduler
	// gives exactly 3 of 4 executors to A whenever both have jobs queued; what strays is the
	// start, the end and the few milliseconds between a job's end and the next dispatch.
	shareTolerance = 0.1
	// shareBusy is the least part of the executor-seconds of the contended period that A's
	// and B's jobs hold: a freed executor gets the next job within a dispatch round trip
	// (tens of milliseconds; the validators' periodic capacity checks alone leave ~25% idle).
	shareBusy = 0.9
)

// TestStakeSharesCapacity: users A (stake 300) and B (stake 100) each submit 12 hello jobs
// (sleeping 2 s) at once onto a devnet of 4 executors that the dev user's blockers hold, so
// that both queues are full when the executors free up. From the facilitator's database
// (each job's sent and completed events): while both have jobs queued, A holds 3/4 of the
// executor-seconds and, at every moment all 4 executors are taken, 3 of them, and no
// executor idles for long; once A's queue is empty, B, the small user, holds all 4 at once.
func TestStakeSharesCapacity(t *testing.T) {
	d := startDevnet(t, func(c *Config) {
		c.Facilitator, c.Validators, c.Miners = true, 1, 2
		spec := MinerSpec{Manifest: protocol.Manifest{{Class: protocol.ExecutorClassAlwaysOnTest, Count: shareExecutors / 2}}}
		c.MinerSpecs = []MinerSpec{spec, spec}
	})
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	// Each user's credits cover the holds of all its jobs at once (price × all time limits).
	j := d.HelloUserJob()
	credits := 2 * shareJobs * int64(j.DownloadTimeLimit+j.ExecutionTimeLimit+j.UploadTimeLimit) * d.Facilitator.Price(protocol.ExecutorClassAlwaysOnTest)
	a, ca, err := d.AddUser(ctx, "//UserA", 300*raoPerTAO, credits)
	if err != nil {
		t.Fatal(err)
	}
	b, cb, err := d.AddUser(ctx, "//UserB", 100*raoPerTAO, credits)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []*sdk.Client{ca, cb} {
		if err := c.Login(ctx); err != nil { // signed in before the race: the submissions land together
			t.Fatal(err)
		}
	}
	dev, err := d.UserClient()
	if err != nil {
		t.Fatal(err)
	}

	// The dev user's blockers take every executor, so that all of A's and B's jobs are queued
	// before the first of them is dispatched.
	for range shareExecutors {
		if _, err := dev.Submit(ctx, d.HelloUserJob("--sleep", "2s"), ""); err != nil {
			t.Fatal(err)
		}
	}
	waitFacJobs(ctx, t, d, "the blockers dispatched", func(js []store.FacJob) bool {
		return !slices.ContainsFunc(js, func(j store.FacJob) bool { return j.Status == store.FacJobQueued })
	})
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, c := range []*sdk.Client{ca, cb} {
		wg.Go(func() {
			for range shareJobs {
				if _, err := c.Submit(ctx, d.HelloUserJob("--sleep", "2s"), ""); err != nil {
					errs[i] = err
					return
				}
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	all := waitFacJobs(ctx, t, d, "every job ended", func(js []store.FacJob) bool {
		return !slices.ContainsFunc(js, func(j store.FacJob) bool { return !slices.Contains(facJobEndStatuses, j.Status) })
	})

	// Each job held its executor from its dispatch to its end, as the facilitator recorded them.
	runs := map[string][]heldSpan{}
	var lastQueued time.Time
	for _, j := range all {
		if j.Status != string(protocol.JobStatusCompleted) {
			t.Fatalf("job %s of %s: %s %s, want completed", j.UUID, shareUserName(j.User, a, b), j.Status, j.Result)
		}
		evs, err := d.FacilitatorStore.FacJobEvents(ctx, j.UUID)
		if err != nil {
			t.Fatal(err)
		}
		var h heldSpan
		for _, e := range evs {
			switch e.Status {
			case store.FacJobQueued:
				lastQueued = laterOf(lastQueued, e.At)
			case store.FacJobSent:
				h.from = e.At
			case string(protocol.JobStatusCompleted):
				h.to = e.At
			}
		}
		if h.from.IsZero() || h.to.IsZero() {
			t.Fatalf("job %s: events %s; want sent and completed", j.UUID, facEventList(evs))
		}
		runs[j.User] = append(runs[j.User], h)
		t.Logf("%-5s %s held %s–%s; %s", shareUserName(j.User, a, b), j.UUID[len(j.UUID)-6:], h.from.Format("05.000"), h.to.Format("05.000"), facEventList(evs))
	}
	ra, rb := runs[a.Hotkey], runs[b.Hotkey]

	// The contended period: from the moment both users hold executors to A's last dispatch,
	// after which A has nothing queued. All jobs were queued before it.
	t0 := laterOf(firstDispatch(ra), firstDispatch(rb))
	t1 := earlierOf(lastDispatch(ra), lastDispatch(rb))
	if !lastQueued.Before(t0) || t1.Sub(t0) < 5*time.Second {
		t.Fatalf("contended period %s–%s (last job queued %s): the blockers did not keep the queues full, or the period is too short to measure",
			t0.Format("05.000"), t1.Format("05.000"), lastQueued.Format("05.000"))
	}
	sa, sb := heldSecondsWithin(ra, t0, t1), heldSecondsWithin(rb, t0, t1)
	busy, momentShare := fullCapacityShare(ra, rb, t0, t1)
	contended := t1.Sub(t0)
	t.Logf("contended for %s: A held %.1f executor-seconds, B %.1f (%.0f%% of the capacity): A's share %.3f; all %d executors taken by A and B for %s, A's share of them then %.3f",
		contended.Round(time.Millisecond), sa, sb, 100*(sa+sb)/(shareExecutors*contended.Seconds()), sa/(sa+sb), shareExecutors, busy.Round(time.Millisecond), momentShare)
	if share := sa / (sa + sb); share < 0.75-shareTolerance || share > 0.75+shareTolerance {
		t.Errorf("A's share of the executor-seconds while both competed: %.3f, want 0.75 ± %.2f (stakes 3:1)", share, shareTolerance)
	}
	if momentShare < 0.75-shareTolerance || momentShare > 0.75+shareTolerance {
		t.Errorf("A's share of the executors while all were taken: %.3f, want 0.75 ± %.2f (3 of 4)", momentShare, shareTolerance)
	}
	if used := (sa + sb) / (shareExecutors * contended.Seconds()); used < shareBusy {
		t.Errorf("A and B held %.0f%% of the executor-seconds while both competed, want at least %.0f%%: capacity idle while jobs were queued",
			100*used, 100*shareBusy)
	}

	// Alone, B holds every executor at once (work-conserving: its small stake does not matter).
	if n := mostHeldAtOnce(rb, t1); n < shareExecutors {
		t.Errorf("B alone after A's queue ran empty held at most %d executors at once, want all %d", n, shareExecutors)
	}
	t.Logf("most jobs in flight at once: %d of all users, %d of B alone", mostHeldAtOnce(slices.Concat(ra, rb, runs[d.User.Hotkey]), time.Time{}), mostHeldAtOnce(rb, t1))
	waitNoContainers(t, d)
}

// facJobEndStatuses are a facilitator job's final statuses.
var facJobEndStatuses = []string{string(protocol.JobStatusCompleted), string(protocol.JobStatusFailed),
	string(protocol.JobStatusRejected), string(protocol.JobStatusHordeFailed), store.FacJobCancelled}

// heldSpan is the time one job held an executor: from the facilitator's dispatch to its end.
type heldSpan struct{ from, to time.Time }

func firstDispatch(hs []heldSpan) time.Time {
	t := hs[0].from
	for _, h := range hs {
		t = earlierOf(t, h.from)
	}
	return t
}

func lastDispatch(hs []heldSpan) time.Time {
	t := hs[0].from
	for _, h := range hs {
		t = laterOf(t, h.from)
	}
	return t
}

// heldSecondsWithin is the executor-seconds hs held within [t0, t1].
func heldSecondsWithin(hs []heldSpan, t0, t1 time.Time) float64 {
	var s float64
	for _, h := range hs {
		if from, to := laterOf(h.from, t0), earlierOf(h.to, t1); to.After(from) {
			s += to.Sub(from).Seconds()
		}
	}
	return s
}

// fullCapacityShare returns how long within [t0, t1] A's and B's jobs held every executor,
// and A's mean share of them over that time.
func fullCapacityShare(ra, rb []heldSpan, t0, t1 time.Time) (time.Duration, float64) {
	type edge struct {
		at     time.Time
		da, db int
	}
	var es []edge
	for _, h := range ra {
		es = append(es, edge{h.from, 1, 0}, edge{h.to, -1, 0})
	}
	for _, h := range rb {
		es = append(es, edge{h.from, 0, 1}, edge{h.to, 0, -1})
	}
	slices.SortFunc(es, func(x, y edge) int { return x.at.Compare(y.at) })
	na, nb := 0, 0
	var total time.Duration
	var weighted float64
	for i, e := range es[:len(es)-1] {
		na, nb = na+e.da, nb+e.db
		if na+nb < shareExecutors {
			continue
		}
		if from, to := laterOf(e.at, t0), earlierOf(es[i+1].at, t1); to.After(from) {
			total += to.Sub(from)
			weighted += to.Sub(from).Seconds() * float64(na) / float64(na+nb)
		}
	}
	if total == 0 {
		return 0, 0
	}
	return total, weighted / total.Seconds()
}

// mostHeldAtOnce is the most of hs holding executors at once from after on.
func mostHeldAtOnce(hs []heldSpan, after time.Time) int {
	type edge struct {
		at time.Time
		d  int
	}
	var es []edge
	for _, h := range hs {
		if h.to.After(after) {
			es = append(es, edge{laterOf(h.from, after), 1}, edge{h.to, -1})
		}
	}
	// An end before a dispatch at the same instant: an executor handed on is not held twice.
	slices.SortFunc(es, func(x, y edge) int {
		if c := x.at.Compare(y.at); c != 0 {
			return c
		}
		return x.d - y.d
	})
	n, most := 0, 0
	for _, e := range es {
		n += e.d
		most = max(most, n)
	}
	return most
}

func laterOf(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func earlierOf(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func shareUserName(hotkey string, users ...User) string {
	for _, u := range users {
		if u.Hotkey == hotkey {
			return strings.TrimLeft(u.URI, "/")
		}
	}
	return "dev"
}

func facEventList(evs []store.FacJobEvent) string {
	s := make([]string, 0, len(evs))
	for _, e := range evs {
		s = append(s, fmt.Sprintf("%s@%s", e.Status, e.At.Format("05.000")))
	}
	return strings.Join(s, " ")
}

// waitFacJobs polls the facilitator's jobs until done holds for them, and returns them.
func waitFacJobs(ctx context.Context, t *testing.T, d *Devnet, what string, done func([]store.FacJob) bool) []store.FacJob {
	t.Helper()
	for {
		js, err := d.FacilitatorStore.ListFacJobs(ctx, store.FacJobFilter{OldestFirst: true})
		if err != nil {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		if done(js) {
			return js
		}
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v", what, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}
