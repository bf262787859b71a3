package faults

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/computehorde/horde/internal/keys"
	"github.com/computehorde/horde/sdk"
)

// Fault kinds.
const (
	FaultKill      = "kill"      // docker kill -s KILL, then docker start after Hold
	FaultPartition = "partition" // docker network disconnect, then connect after Hold
	FaultChain     = "chain"     // the chain server killed, then started after Hold
	FaultCut       = "cut"       // two roles (Target, Peer) cut from each other only, joined after Hold
	FaultSlow      = "slow"      // a role's link slowed and lossy, restored after Hold
	FaultEngine    = "engine"    // EngineTarget's Docker engine unreachable, back after Hold
	// EngineTarget's Docker engine answering every request with an error, fixed after Hold.
	FaultEngineErrors = "engine-errors"
)

// BaseKinds are the fault kinds every engine allows; [Harness.FaultKinds] adds the link
// faults where the host can inject them.
var BaseKinds = []string{FaultKill, FaultPartition, FaultChain}

// Job kinds.
const (
	JobShort = "short" // sleeps 1 s, exits 0
	JobLong  = "long"  // sleeps 8 s, exits 0
	JobFail  = "fail"  // sleeps 1 s, exits 3: the user's failure, paid
)

// PlannedJob is one user job of a schedule.
type PlannedJob struct {
	At   time.Duration // after the schedule starts
	User int           // index into Harness.Users
	Kind string
}

// Args are the hello job's arguments for the job's kind.
func (j PlannedJob) Args() []string {
	switch j.Kind {
	case JobLong:
		return []string{"--sleep", "8s"}
	case JobFail:
		return []string{"--sleep", "1s", "--exit", "3"}
	}
	return []string{"--sleep", "1s"}
}

// PlannedFault is one fault of a schedule: injected At, healed Hold later.
type PlannedFault struct {
	At, Hold time.Duration
	Kind     string
	Target   string // role name
	Peer     string // the other role of a FaultCut
	// Overlaps marks a fault that fires while the one before it holds (on other roles);
	// both are healed together.
	Overlaps bool
}

// Schedule is a seeded random run: jobs and faults over Span. Faults do not overlap.
type Schedule struct {
	Seed   uint64
	Span   time.Duration
	Jobs   []PlannedJob
	Faults []PlannedFault
}

// NewSchedule draws jobs and faults over span from seed. targets are the roles faults may
// kill or cut off (the chain is struck by FaultChain faults only, and is a FaultCut's peer
// as any other role); kinds are the fault kinds to draw (none: BaseKinds), each used once
// before any repeats.
func NewSchedule(seed uint64, jobs, faults int, span time.Duration, targets []string, kinds ...string) Schedule {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	s := Schedule{Seed: seed, Span: span}
	for range jobs {
		kind := JobShort
		switch p := rng.IntN(4); {
		case p == 0:
			kind = JobLong
		case p == 1:
			kind = JobFail
		}
		s.Jobs = append(s.Jobs, PlannedJob{At: time.Duration(rng.Int64N(int64(span))), User: rng.IntN(2), Kind: kind})
	}
	slices.SortStableFunc(s.Jobs, func(a, b PlannedJob) int { return int(a.At - b.At) })
	if faults > 0 {
		if len(kinds) == 0 {
			kinds = BaseKinds
		}
		kinds = slices.Clone(kinds)
		rng.Shuffle(len(kinds), func(i, j int) { kinds[i], kinds[j] = kinds[j], kinds[i] })
		slot := span / time.Duration(faults)
		for i := range faults {
			kind := kinds[i%len(kinds)]
			if i >= len(kinds) {
				kind = kinds[rng.IntN(len(kinds))]
			}
			f := PlannedFault{Kind: kind, Target: "chain"}
			switch kind {
			case FaultChain:
			case FaultEngine, FaultEngineErrors:
				f.Target = EngineTarget
			default:
				f.Target = targets[rng.IntN(len(targets))]
			}
			if kind == FaultCut {
				peers := append([]string{"chain"}, slices.DeleteFunc(slices.Clone(targets), func(t string) bool { return t == f.Target })...)
				f.Peer = peers[rng.IntN(len(peers))]
			}
			// Injected in the slot's first half, healed within the slot.
			f.At = time.Duration(i)*slot + time.Duration(rng.Int64N(int64(slot/2)))
			f.Hold = slot/8 + time.Duration(rng.Int64N(int64(slot/4)))
			s.Faults = append(s.Faults, f)
			// Every fourth fault has a second one on other roles while it holds.
			if i%4 == 3 {
				if g, ok := overlapping(rng, f, targets); ok {
					s.Faults = append(s.Faults, g)
				}
			}
		}
	}
	return s
}

// overlapping draws a fault that fires while f holds, on roles f does not touch: a kill, a
// cut-off, or (when f's kind is drawn, so the host can inject it) a slow link or a cut.
func overlapping(rng *rand.Rand, f PlannedFault, targets []string) (PlannedFault, bool) {
	busy := map[string]bool{f.Target: true, f.Peer: true}
	var free []string
	for _, t := range targets {
		if !busy[t] {
			free = append(free, t)
		}
	}
	kinds := []string{FaultKill, FaultPartition}
	if f.Kind == FaultSlow || f.Kind == FaultCut {
		kinds = append(kinds, f.Kind)
	}
	if len(free) < 2 {
		return PlannedFault{}, false
	}
	g := PlannedFault{Kind: kinds[rng.IntN(len(kinds))], Target: free[rng.IntN(len(free))], Overlaps: true}
	if g.Kind == FaultCut {
		peers := slices.DeleteFunc(slices.Clone(free), func(t string) bool { return t == g.Target })
		g.Peer = peers[rng.IntN(len(peers))]
	}
	g.At = f.At + f.Hold/4
	g.Hold = f.Hold / 2
	return g, true
}

// String is the schedule as a failing run prints it.
func (s Schedule) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "seed %d, span %s, %d jobs, %d faults\n", s.Seed, s.Span, len(s.Jobs), len(s.Faults))
	type line struct {
		at   time.Duration
		text string
	}
	var lines []line
	for i, j := range s.Jobs {
		lines = append(lines, line{j.At, fmt.Sprintf("job %d: user-%d %s %v", i, j.User+1, j.Kind, j.Args())})
	}
	for _, f := range s.Faults {
		target := f.Target
		if f.Peer != "" {
			target += " from " + f.Peer
		}
		with := ""
		if f.Overlaps {
			with = " (overlapping the one before)"
		}
		lines = append(lines, line{f.At, fmt.Sprintf("fault: %s %s for %s%s", f.Kind, target, f.Hold.Round(100*time.Millisecond), with)})
	}
	slices.SortStableFunc(lines, func(a, b line) int { return int(a.at - b.at) })
	for _, l := range lines {
		fmt.Fprintf(&b, "  %7s  %s\n", l.at.Round(100*time.Millisecond), l.text)
	}
	return b.String()
}

// Submitted is a job the facilitator accepted.
type Submitted struct {
	Plan PlannedJob
	UUID string
	User string // hotkey
}

// signer signs the facilitator's login nonce with a user's hotkey.
type signer struct{ k *keys.Keypair }

func (s signer) SS58() string { return s.k.SS58() }
func (s signer) SignMessage(m []byte) ([]byte, error) {
	sig := s.k.Sign(m)
	return sig[:], nil
}

// Outcome is what a run did.
type Outcome struct {
	Jobs       []Submitted
	Final      map[string]string // job UUID → final status as the API shows it
	FaultsDone int
	Took       time.Duration
}

// Run plays schedule s on h: it submits the jobs at their times (retrying a submit the
// facilitator does not answer, with the same idempotency key) while the faults fire, heals
// everything, and waits up to settle for every job to end.
func Run(ctx context.Context, h *Harness, s Schedule, settle time.Duration) (*Outcome, error) {
	start := time.Now()
	out := &Outcome{Final: map[string]string{}}
	var clients []*sdk.Client
	for _, u := range h.Users {
		c, err := sdk.New(h.FacilitatorURL(), sdk.WithSigner(signer{u}), sdk.WithRetries(0),
			sdk.WithHTTPClient(&http.Client{Timeout: 5 * time.Second}))
		if err != nil {
			return nil, err
		}
		clients = append(clients, c)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	submitBy := start.Add(s.Span + settle/2)
	image := h.cfg.JobImage
	if image == "" {
		image = h.Image
	}

	var mu sync.Mutex
	var wg sync.WaitGroup
	var errs []error
	for i, j := range s.Jobs {
		wg.Go(func() {
			if !sleepUntil(ctx, start.Add(j.At)) {
				return
			}
			spec := sdk.JobSpec{ExecutorClass: Class, DockerImage: image, Args: append(slices.Clone(h.cfg.JobArgs), j.Args()...),
				DownloadTimeLimit: 30, ExecutionTimeLimit: 30, UploadTimeLimit: 30}
			key := fmt.Sprintf("faults-%d-%d", s.Seed, i)
			for {
				job, err := clients[j.User].Submit(ctx, spec, key)
				if err == nil {
					mu.Lock()
					out.Jobs = append(out.Jobs, Submitted{Plan: j, UUID: job.UUID, User: h.Users[j.User].SS58()})
					mu.Unlock()
					return
				}
				var api *sdk.APIError
				if errors.As(err, &api) && api.Status < 500 && api.Status != http.StatusTooManyRequests {
					mu.Lock()
					errs = append(errs, fmt.Errorf("job %d refused: %w", i, err))
					mu.Unlock()
					return
				}
				if time.Now().After(submitBy) || !sleepUntil(ctx, time.Now().Add(500*time.Millisecond)) {
					mu.Lock()
					errs = append(errs, fmt.Errorf("job %d: the facilitator never took it: %w", i, err))
					mu.Unlock()
					return
				}
			}
		})
	}
	var faultErr error
	wg.Go(func() {
		for i := 0; i < len(s.Faults); {
			// A fault and those that overlap it fire together and are healed together.
			n := 1
			for i+n < len(s.Faults) && s.Faults[i+n].Overlaps {
				n++
			}
			group := s.Faults[i : i+n]
			i += n
			var until time.Time
			for _, f := range group {
				if !sleepUntil(ctx, start.Add(f.At)) {
					return
				}
				err := h.inject(ctx, f)
				peer := ""
				if f.Peer != "" {
					peer = " from " + f.Peer
				}
				h.logf("%7s fault: %s %s%s (%v)", time.Since(start).Round(100*time.Millisecond), f.Kind, f.Target, peer, err)
				if err != nil {
					faultErr = fmt.Errorf("fault %s %s: %w", f.Kind, f.Target, err)
					return
				}
				if end := time.Now().Add(f.Hold); end.After(until) {
					until = end
				}
			}
			sleepUntil(ctx, until)
			err := h.HealAll(context.WithoutCancel(ctx))
			h.logf("%7s healed %d fault(s) (%v)", time.Since(start).Round(100*time.Millisecond), len(group), err)
			if err != nil {
				faultErr = fmt.Errorf("healing: %w", err)
				return
			}
			out.FaultsDone += len(group)
		}
	})
	wg.Wait()
	if err := h.HealAll(context.WithoutCancel(ctx)); err != nil {
		return out, err
	}
	if faultErr != nil {
		return out, faultErr
	}
	if len(errs) > 0 {
		return out, errors.Join(errs...)
	}

	// Every job to an end, as users see it.
	deadline := time.Now().Add(settle)
	for _, j := range out.Jobs {
		c := clients[slices.IndexFunc(h.Users, func(k *keys.Keypair) bool { return k.SS58() == j.User })]
		for {
			job, err := c.Job(ctx, j.UUID)
			if err == nil && job.Done() {
				out.Final[j.UUID] = job.Status
				break
			}
			if time.Now().After(deadline) {
				status := "?"
				if job != nil {
					status = job.Status
				}
				out.Took = time.Since(start)
				return out, fmt.Errorf("job %s (%s) did not end within %s of the schedule's end: %s (%v)", j.UUID, j.Plan.Kind, settle, status, err)
			}
			if !sleepUntil(ctx, time.Now().Add(500*time.Millisecond)) {
				return out, ctx.Err()
			}
		}
	}
	out.Took = time.Since(start)
	return out, nil
}

func sleepUntil(ctx context.Context, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err() == nil
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-timer.C:
		return true
	}
}

// inject fires one fault.
func (h *Harness) inject(ctx context.Context, f PlannedFault) error {
	r := h.Role(f.Target)
	switch f.Kind {
	case FaultKill, FaultChain:
		return h.Kill(ctx, r)
	case FaultPartition:
		return h.Partition(ctx, r)
	case FaultCut:
		return h.Cut(ctx, r, h.Role(f.Peer))
	case FaultSlow:
		return h.Slow(ctx, r)
	case FaultEngine:
		return h.EngineCut()
	case FaultEngineErrors:
		return h.EngineFail()
	}
	return fmt.Errorf("unknown fault kind %q", f.Kind)
}
