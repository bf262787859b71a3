package devnet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/google/uuid"

	"github.com/computehorde/horde/internal/chain"
	"github.com/computehorde/horde/internal/clock/clocktest"
	"github.com/computehorde/horde/internal/executor/docker"
	"github.com/computehorde/horde/internal/miner"
	"github.com/computehorde/horde/internal/protocol"
	"github.com/computehorde/horde/internal/scoring"
	"github.com/computehorde/horde/internal/store"
	"github.com/computehorde/horde/internal/validator"
	"github.com/computehorde/horde/sdk"
)

// Scenarios of miners' behaviour on the whole devnet: declines, manifest changes, a miner
// killed mid-job, and profitability. Time is compressed with a fake clock that the validators
// and miners share; executors and Docker keep real time. The helpers are methods of
// minerScenario, so that they do not collide with those of the package's other scenarios.

// minerScenarioClass is the class the scenarios' miners offer (no GPU needed).
const minerScenarioClass = protocol.ExecutorClassAlwaysOnTest

// minerScenario is one scenario's devnet and its fake clock.
type minerScenario struct {
	t    *testing.T
	d    *Devnet
	fake *clocktest.Fake
}

// startMinerScenario starts a devnet whose validators and miners run on a fake clock.
func startMinerScenario(t *testing.T, opts ...func(*Config)) *minerScenario {
	t.Helper()
	fake := clocktest.NewFake(time.Now().Truncate(time.Second))
	d := startDevnet(t, append([]func(*Config){func(c *Config) { c.Clock = fake }}, opts...)...)
	return &minerScenario{t: t, d: d, fake: fake}
}

// eventually polls cond, which says what is still wrong ("" when nothing is), until it holds
// or within has passed. Only real events are waited for this way; the fake clock is moved by
// the tests.
func (s *minerScenario) eventually(within time.Duration, cond func() string) {
	s.t.Helper()
	for deadline := time.Now().Add(within); ; time.Sleep(20 * time.Millisecond) {
		why := cond()
		if why == "" {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("after %s: %s", within, why)
		}
	}
}

// advanceTo moves the fake clock to at, first waiting until something waits for exactly at
// (a driver's interval boundary, a miner's manifest window), so that it is not skipped.
func (s *minerScenario) advanceTo(at time.Time) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(s.t.Context(), 20*time.Second)
	defer cancel()
	if err := s.fake.AwaitTimer(ctx, at); err != nil {
		s.t.Fatalf("nothing waits for %s: %v", at.Format(time.TimeOnly), err)
	}
	s.fake.Advance(at.Sub(s.fake.Now()))
}

// awaitExecuting waits until the first validator's job id has started executing (volumes
// ready: its work is accounted from then on, at the fake clock's time); done, when it ends
// first, fails the test.
func (s *minerScenario) awaitExecuting(id string, done <-chan struct{}) {
	s.t.Helper()
	s.eventually(30*time.Second, func() string {
		select {
		case <-done:
			s.t.Fatalf("job %s ended before it executed", id)
		default:
		}
		j, err := s.d.ValidatorStore.GetJob(s.t.Context(), id)
		if err != nil {
			return fmt.Sprintf("job %s: %v", id, err)
		}
		if j.Status != string(protocol.JobStatusVolumesReady) {
			return fmt.Sprintf("job %s is %s, not executing", id, j.Status)
		}
		return ""
	})
}

// runAccounted runs a hello job from the first validator on minerHotkey and moves the fake
// clock through n work intervals of its execution (the container sleeps in real time
// meanwhile), so that the job ends with exactly n × 10 minutes accounted.
func (s *minerScenario) runAccounted(minerHotkey string, n int) {
	s.t.Helper()
	spec := s.d.HelloJob("--sleep", "4s")
	spec.UUID, spec.ExecutionTimeLimit = uuid.NewString(), 3600
	var res *validator.JobResult
	var err error
	done := make(chan struct{})
	go func() {
		defer close(done)
		res, err = s.d.Validator.RunJob(s.t.Context(), minerHotkey, spec)
	}()
	s.awaitExecuting(spec.UUID, done)
	start := s.fake.Now()
	for k := 1; k <= n; k++ {
		s.advanceTo(start.Add(time.Duration(k) * validator.WorkInterval))
	}
	<-done
	if err != nil {
		s.t.Fatal(err)
	}
	if res.Status != protocol.JobStatusCompleted {
		s.t.Fatalf("job on %s: %s (%s: %s)", minerHotkey[:8], res.Status, res.Reason, res.Message)
	}
}

// signedInterval is one WorkInterval receipt as a store holds it.
type signedInterval struct {
	protocol.WorkIntervalReceiptPayload
	countersigned bool
}

// intervals returns the WorkInterval receipts of db in interval order, of job when not empty.
func (s *minerScenario) intervals(db *store.DB, job string) []signedInterval {
	s.t.Helper()
	rs, err := db.ListReceipts(s.t.Context(), store.ReceiptFilter{Type: string(protocol.ReceiptTypeWorkInterval)})
	if err != nil {
		s.t.Fatal(err)
	}
	var out []signedInterval
	for _, r := range rs {
		var p protocol.WorkIntervalReceiptPayload
		if err := json.Unmarshal(r.Payload, &p); err != nil {
			s.t.Fatal(err)
		}
		if job == "" || p.JobUUID == job {
			out = append(out, signedInterval{p, r.MinerSignature != ""})
		}
	}
	slices.SortFunc(out, func(a, b signedInterval) int { return a.IntervalIndex - b.IntervalIndex })
	return out
}

// intervalSeconds lists the worked seconds of job's WorkInterval receipts in db.
func (s *minerScenario) intervalSeconds(db *store.DB, job string) []int {
	var out []int
	for _, w := range s.intervals(db, job) {
		out = append(out, w.WorkedSeconds)
	}
	return out
}

// workedSeconds is the sum of miner's countersigned intervals in db: what the points formula
// counts.
func (s *minerScenario) workedSeconds(db *store.DB, miner string) int64 {
	s.t.Helper()
	var sum int64
	for _, w := range s.intervals(db, "") {
		if w.countersigned && w.MinerHotkey == miner {
			sum += int64(w.WorkedSeconds)
		}
	}
	return sum
}

// TestDecliningMinerLosesWeight: two miners do the same work (one 10-minute interval each)
// and get the same weight; then one declines a job while its honoured manifest shows a free
// executor (it is draining, which declines every job as busy, without receipts of running
// jobs to excuse it), and at the next tempo the validator sets its weight to half the other's:
// its penalty multiplier for the class (DefaultPenaltyFactor), on chain.
func TestDecliningMinerLosesWeight(t *testing.T) {
	one := protocol.Manifest{{Class: minerScenarioClass, Count: 1}}
	s := startMinerScenario(t, func(c *Config) { c.MinerSpecs = []MinerSpec{{Manifest: one}, {Manifest: one}} })
	d, ctx := s.d, t.Context()
	honest, decliner := d.Miners[0], d.Miners[1]
	for _, m := range []*MinerNode{honest, decliner} {
		s.runAccounted(m.Hotkey, 1)
	}
	// The scoring window ends before now: the last receipt must be in the past.
	s.fake.Advance(time.Minute)
	uidH, uidD := neuronUID(t, d, honest.Hotkey), neuronUID(t, d, decliner.Hotkey)
	weights := func(want func(h, d uint16) bool) string {
		if err := d.SyncReceipts(ctx); err != nil {
			return err.Error()
		}
		w, err := d.Chain.Weights(NetUID, chain.Hotkey(d.Validators[0].Hotkey))
		if err != nil {
			return err.Error()
		}
		if !want(w[uidH], w[uidD]) {
			return fmt.Sprintf("weights on chain %v (honest uid %d, decliner uid %d)", w, uidH, uidD)
		}
		return ""
	}
	s.eventually(30*time.Second, func() string {
		return weights(func(h, d uint16) bool { return h == chain.U16Max && d == chain.U16Max })
	})

	// The decline, through the miner's own path: draining, it declines every job as busy.
	if n := decliner.Miner.Drain(ctx); n != 0 {
		t.Fatalf("%d jobs in flight on the decliner", n)
	}
	res, err := d.Validator.RunJob(ctx, decliner.Hotkey, d.HelloJob())
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != protocol.JobStatusRejected || res.Reason != string(protocol.JobRejectionReasonBusy) {
		t.Fatalf("the draining miner's answer: %s (%s: %s), want rejected busy", res.Status, res.Reason, res.Message)
	}
	// The other one takes a job and is not penalised; it runs no time on the fake clock, so
	// both miners' work stays the same.
	if res, err := d.Validator.RunJob(ctx, honest.Hotkey, d.HelloJob()); err != nil || res.Status != protocol.JobStatusCompleted {
		t.Fatalf("a job on the honest miner: %+v, %v", res, err)
	}
	if p := d.Validator.Penalty(decliner.Hotkey, minerScenarioClass); p != validator.DefaultPenaltyFactor {
		t.Errorf("the decliner's penalty multiplier %v, want %v", p, validator.DefaultPenaltyFactor)
	}
	if p := d.Validator.Penalty(honest.Hotkey, minerScenarioClass); p != 1 {
		t.Errorf("the honest miner's penalty multiplier %v, want 1", p)
	}
	want := uint16(math.RoundToEven(validator.DefaultPenaltyFactor * chain.U16Max))
	s.eventually(30*time.Second, func() string {
		return weights(func(h, d uint16) bool { return h == chain.U16Max && d == want })
	})
	r, err := d.Validator.Scores(ctx, s.fake.Now())
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range r.Miners {
		if len(m.Rows) != 1 || m.Rows[0].WorkedSeconds != 600 {
			t.Errorf("miner %s scored on %+v, want one row of 600 s", m.Hotkey[:8], m.Rows)
		}
	}
	waitNoContainers(t, d)
}

// honouredBy returns what validator v knows of miner's manifest.
func honouredBy(v *validator.Validator, miner string) (validator.MinerManifest, bool) {
	for _, mm := range v.Manifests() {
		if mm.Miner == miner {
			return mm, true
		}
	}
	return validator.MinerManifest{}, false
}

// awaitHonoured waits until every validator honours count executors of the class from miner,
// taken at at, and routes by them.
func (s *minerScenario) awaitHonoured(miner string, count int, at time.Time) {
	s.t.Helper()
	s.eventually(30*time.Second, func() string {
		for _, v := range s.d.Validators {
			mm, ok := honouredBy(v.Validator, miner)
			switch {
			case !ok:
				return v.URI + " has not heard of the miner"
			case mm.Honoured.Count(minerScenarioClass) != count || !mm.HonouredAt.Equal(at):
				return fmt.Sprintf("%s honours %v since %s, want %d executors since %s", v.URI, mm.Honoured,
					mm.HonouredAt.Format(time.TimeOnly), count, at.Format(time.TimeOnly))
			case v.Validator.FreeCapacity().Count(minerScenarioClass) != count:
				return fmt.Sprintf("%s routes to %v", v.URI, v.Validator.FreeCapacity())
			}
		}
		return ""
	})
}

// TestManifestChangedTwiceInTwoHoursKeepsTheFirst: a miner changes its manifest (3
// executors instead of 2) once its 2-hour window allows, and the validators honour that at
// once; a second change (to 1) half an hour later is held by the miner itself and made,
// and honoured, only when the window opens. Then a miner that announces a change inside the
// window anyway (restarted without its manifest state, as one ignoring the rule would) is
// not honoured: the validators keep routing by the manifest they honour, and take the new
// one when their own window has passed, without the miner announcing it again.
func TestManifestChangedTwiceInTwoHoursKeepsTheFirst(t *testing.T) {
	manifest := func(n int) protocol.Manifest { return protocol.Manifest{{Class: minerScenarioClass, Count: n}} }
	s := startMinerScenario(t, func(c *Config) {
		c.Validators, c.MinerSpecs = 2, []MinerSpec{{Manifest: manifest(2)}}
	})
	d, m := s.d, s.d.Miners[0]
	s.awaitHonoured(m.Hotkey, 2, s.fake.Now())

	// The first change, once the window since the miner's start has passed: honoured now.
	t1 := s.fake.Advance(miner.ManifestChangeInterval + time.Minute)
	m.Miner.SetCapacity(manifest(3))
	s.awaitHonoured(m.Hotkey, 3, t1)

	// The second, 30 minutes later: the miner holds it until its window opens…
	s.fake.Advance(30 * time.Minute)
	m.Miner.SetCapacity(manifest(1))
	t2 := t1.Add(miner.ManifestChangeInterval)
	st := m.Miner.ManifestStatus()
	if st.Offered.Count(minerScenarioClass) != 3 || st.Pending.Count(minerScenarioClass) != 1 || !st.NextChangeAllowed.Equal(t2) {
		t.Fatalf("the miner offers %v, holds %v until %s; want 3, and 1 held until %s", st.Offered, st.Pending,
			st.NextChangeAllowed.Format(time.TimeOnly), t2.Format(time.TimeOnly))
	}
	for _, v := range d.Validators {
		if mm, _ := honouredBy(v.Validator, m.Hotkey); mm.Honoured.Count(minerScenarioClass) != 3 || mm.Announced.Count(minerScenarioClass) != 3 {
			t.Errorf("%s honours %v (announced %v) while the change is held; want 3", v.URI, mm.Honoured, mm.Announced)
		}
	}
	// …and makes it when it opens; the validators honour it then.
	s.advanceTo(t2)
	s.awaitHonoured(m.Hotkey, 1, t2)

	// A miner announcing a change inside the window anyway: ignored.
	s.fake.Advance(20 * time.Minute)
	if err := d.KillMiner(0); err != nil {
		t.Fatal(err)
	}
	if err := d.RestartMiner(t.Context(), 0, &MinerSpec{Manifest: manifest(2)}); err != nil {
		t.Fatal(err)
	}
	s.eventually(30*time.Second, func() string {
		for _, v := range d.Validators {
			mm, _ := honouredBy(v.Validator, m.Hotkey)
			if mm.Announced.Count(minerScenarioClass) != 2 || mm.Ignored == 0 {
				return fmt.Sprintf("%s: announced %v, %d ignored; want the restarted miner's 2 heard and ignored", v.URI, mm.Announced, mm.Ignored)
			}
		}
		return ""
	})
	s.awaitHonoured(m.Hotkey, 1, t2)
	// Once the validators' window has passed, the announced manifest is honoured as of its
	// end, although the miner announced nothing since.
	s.fake.Advance(t2.Add(validator.ManifestChangeInterval + time.Second).Sub(s.fake.Now()))
	s.awaitHonoured(m.Hotkey, 2, t2.Add(validator.ManifestChangeInterval))
}

// userJob submits the hello job sleeping sleep (real time) with an execution limit of an
// hour, as the dev user, and waits until the validator has it executing. It returns the job
// and a channel that receives the job as the user's wait for its end returns it.
func (s *minerScenario) userJob(c *sdk.Client, sleep string) (*sdk.Job, <-chan *sdk.Job) {
	s.t.Helper()
	spec := s.d.HelloUserJob("--sleep", sleep)
	spec.ExecutionTimeLimit = 3600
	j, err := c.Submit(s.t.Context(), spec, "")
	if err != nil {
		s.t.Fatal(err)
	}
	ended := make(chan *sdk.Job, 1)
	go func() {
		ctx, cancel := context.WithTimeout(s.t.Context(), 2*time.Minute)
		defer cancel()
		done, err := c.Wait(ctx, j.UUID, nil)
		if err != nil {
			s.t.Errorf("waiting for job %s: %v", j.UUID, err)
		}
		ended <- done
	}()
	// One validator and one miner: the first attempt keeps the facilitator's UUID.
	s.awaitExecuting(j.UUID, nil)
	return j, ended
}

// awaitCharged waits until the facilitator has charged job want micro-credits while it
// still runs.
func (s *minerScenario) awaitCharged(job string, want int64) {
	s.t.Helper()
	s.eventually(20*time.Second, func() string {
		j, err := s.d.FacilitatorStore.GetFacJob(s.t.Context(), job)
		if err != nil {
			return err.Error()
		}
		if j.Charged != want || j.Status != string(protocol.JobStatusVolumesReady) {
			return fmt.Sprintf("job %s charged %d, want %d while it runs (status %s)", job, j.Charged, want, j.Status)
		}
		return ""
	})
}

// charges returns the amounts of job's charges in order, and the sum of the entries on the
// dev user's account for it.
func (s *minerScenario) charges(job string) (charged []int64, userNet int64) {
	s.t.Helper()
	es, err := s.d.FacilitatorStore.JobLedger(s.t.Context(), job)
	if err != nil {
		s.t.Fatal(err)
	}
	for _, e := range es {
		switch {
		case e.Kind == "charge" && e.Account == store.HoldAccount(job):
			charged = append(charged, -e.Amount)
		case e.Account == store.UserAccount(s.d.User.Hotkey):
			userNet += e.Amount
		}
	}
	return charged, userNet
}

// TestLongPaidJobChargedPerInterval: a job of 35 minutes (on the validators' clock) through
// the facilitator is charged one interval at a time as the validator reports them: 10, 20,
// 30 minutes' worth while it runs, and the final 5 at the end, nothing twice; the user pays
// exactly that, and the miner's countersigned seconds in the validator's books are the same.
func TestLongPaidJobChargedPerInterval(t *testing.T) {
	s := startMinerScenario(t, func(c *Config) { c.Facilitator = true })
	d, ctx := s.d, t.Context()
	c, err := d.UserClient()
	if err != nil {
		t.Fatal(err)
	}
	j, ended := s.userJob(c, "12s")
	price := j.PricePerSecond
	start := s.fake.Now()
	for k := 1; k <= 3; k++ {
		s.advanceTo(start.Add(time.Duration(k) * validator.WorkInterval))
		s.awaitCharged(j.UUID, int64(k)*600*price)
	}
	s.fake.Advance(start.Add(35 * time.Minute).Sub(s.fake.Now()))
	done := <-ended
	if done == nil || done.Status != string(protocol.JobStatusCompleted) {
		t.Fatalf("the job: %+v", done)
	}
	if done.Charged != 2100*price {
		t.Errorf("charged %d, want 35 minutes × %d", done.Charged, price)
	}
	got, userNet := s.charges(j.UUID)
	if !slices.Equal(got, []int64{600 * price, 600 * price, 600 * price, 300 * price}) || userNet != -done.Charged {
		t.Errorf("charges %v and %d off the user's account; want the 4 intervals, paid once: %d", got, -userNet, done.Charged)
	}
	if acct, err := c.Account(ctx); err != nil || acct.Balance != DefaultUserCredits-done.Charged {
		t.Errorf("balance %+v (%v), want %d less %d", acct, err, int64(DefaultUserCredits), done.Charged)
	}
	// The miner countersigned the four intervals the user paid for; the validator counts
	// them once it has pulled them.
	if got := s.intervalSeconds(d.MinerStore, j.UUID); !slices.Equal(got, []int{600, 600, 600, 300}) {
		t.Errorf("the miner countersigned %v", got)
	}
	s.eventually(20*time.Second, func() string {
		if err := d.SyncReceipts(ctx); err != nil {
			return err.Error()
		}
		if got := s.workedSeconds(d.ValidatorStore, d.Miner.Hotkey()); got != 2100 {
			return fmt.Sprintf("the validator counts %d countersigned seconds, want 2100", got)
		}
		return ""
	})
	waitNoContainers(t, d)
}

// TestPaidJobOnKilledMinerRefundedAndAccounted: the miner is killed 25 minutes into a paid
// job. The user was charged the two completed intervals as they were reported, and gets
// them back when the job ends as the horde's failure (mission rule 3: a horde failure costs
// the user nothing); the miner is paid, in the validator's books, for exactly the two
// intervals it countersigned (rule 4), not for the 5 minutes after them. Started again, it
// serves those receipts; pulling them twice counts them once.
func TestPaidJobOnKilledMinerRefundedAndAccounted(t *testing.T) {
	s := startMinerScenario(t, func(c *Config) { c.Facilitator = true })
	d, ctx := s.d, t.Context()
	c, err := d.UserClient()
	if err != nil {
		t.Fatal(err)
	}
	j, ended := s.userJob(c, "60s")
	price := j.PricePerSecond
	start := s.fake.Now()
	for k := 1; k <= 2; k++ {
		s.advanceTo(start.Add(time.Duration(k) * validator.WorkInterval))
		s.awaitCharged(j.UUID, int64(k)*600*price)
	}
	// Both intervals countersigned before the kill, 5 minutes into the third, with the job's
	// container running.
	s.eventually(10*time.Second, func() string {
		if got := s.intervals(d.MinerStore, j.UUID); len(got) != 2 {
			return fmt.Sprintf("the miner countersigned %d intervals, want 2", len(got))
		}
		running, err := d.runtime.Client().ContainerList(ctx, container.ListOptions{Filters: filters.NewArgs(
			filters.Arg("label", docker.LabelExecutor+"="+d.ExecutorID), filters.Arg("status", "running"))})
		if err != nil || len(running) != 1 {
			return fmt.Sprintf("%d job containers running (%v), want 1", len(running), err)
		}
		return ""
	})
	s.fake.Advance(5 * time.Minute)
	if err := d.KillMiner(0); err != nil {
		t.Fatal(err)
	}
	done := <-ended
	if done == nil || done.Status != string(protocol.JobStatusHordeFailed) {
		t.Fatalf("the job on the killed miner: %+v", done)
	}
	got, userNet := s.charges(j.UUID)
	if !slices.Equal(got, []int64{600 * price, 600 * price}) || done.Charged != 0 || userNet != 0 {
		t.Errorf("charged %v during the run, %d in the end, %d net off the user's account; want the 2 intervals, then all refunded",
			got, done.Charged, -userNet)
	}
	if acct, err := c.Account(ctx); err != nil || acct.Balance != DefaultUserCredits {
		t.Errorf("balance %+v (%v), want the whole grant back", acct, err)
	}
	// The validator signed no interval past the kill.
	if got := s.intervalSeconds(d.ValidatorStore, j.UUID); !slices.Equal(got, []int{600, 600}) {
		t.Errorf("the validator signed %v for the job, want the 2 completed intervals", got)
	}
	waitNoContainers(t, d)

	if err := d.RestartMiner(ctx, 0, nil); err != nil {
		t.Fatal(err)
	}
	if mj, err := d.MinerStore.GetJob(ctx, j.UUID); err != nil || mj.Status != "failed" {
		t.Errorf("the restarted miner's record of the job: %+v, %v; want failed", mj, err)
	}
	minerHotkey := d.Miner.Hotkey()
	countersigned := s.workedSeconds(d.MinerStore, minerHotkey)
	if countersigned != 1200 {
		t.Fatalf("the miner holds %d countersigned seconds, want 1200", countersigned)
	}
	// Its receipts pages hold back the receipts of the last second; pulled again, they count
	// once.
	for range 2 {
		s.eventually(20*time.Second, func() string {
			if err := d.SyncReceipts(ctx); err != nil {
				return err.Error()
			}
			if got := s.workedSeconds(d.ValidatorStore, minerHotkey); got != countersigned {
				return fmt.Sprintf("the validator's books count %d s of the miner, want its %d countersigned", got, countersigned)
			}
			return ""
		})
	}
	r, err := d.Validator.Scores(ctx, s.fake.Now())
	if err != nil {
		t.Fatal(err)
	}
	if i := slices.IndexFunc(r.Miners, func(m scoring.MinerScore) bool { return m.Hotkey == minerHotkey }); i < 0 ||
		len(r.Miners[i].Rows) != 1 || r.Miners[i].Rows[0].WorkedSeconds != countersigned {
		t.Errorf("scores %+v, want the miner's %d countersigned seconds", r.Miners, countersigned)
	}
}

// TestUnprofitableClassLeavesManifest: a miner offers two classes and costs one of them at
// 0.4 α per executor-hour. Validators publish, per executor-hour too, reward_rate ×
// relative_value × demand multiplier: 1 × 1 × 1 for the test class at first. When one
// validator lowers its rate below the cost, the best rate (the other's) still pays; when
// both do, the miner wants the class out, holds the change until its 2-hour window opens,
// then drops it, and the validators stop routing that class to it.
func TestUnprofitableClassLeavesManifest(t *testing.T) {
	other := protocol.ExecutorClassAlwaysOnCPU8c16GB
	const cost = 0.4
	s := startMinerScenario(t, func(c *Config) {
		c.Validators = 2
		c.MinerSpecs = []MinerSpec{{
			Manifest: protocol.Manifest{{Class: minerScenarioClass, Count: 2}, {Class: other, Count: 1}},
			Costs:    map[protocol.ExecutorClass]float64{minerScenarioClass: cost},
		}}
	})
	d, m := s.d, s.d.Miners[0]
	t0 := s.fake.Now()
	offer := func() (miner.ClassOffer, miner.ManifestStatus) {
		st := m.Miner.ManifestStatus()
		for _, c := range st.Classes {
			if c.Class == minerScenarioClass {
				return c, st
			}
		}
		t.Fatalf("no class %s in the miner's status %+v", minerScenarioClass, st)
		return miner.ClassOffer{}, st
	}
	// Like with like: the rate the miner compares with its cost per executor-hour is the
	// validators' published reward per executor-hour of the class.
	cv := d.Validator.ClassValues()
	published, _ := cv.RewardPerHour(minerScenarioClass)
	if cls, _ := d.Classes.Lookup(minerScenarioClass); published != cv.RewardRate*cls.RelativeValue || published < cost {
		t.Fatalf("published %v for %s (rate %v × value %v × multiplier 1), want that, above the cost %v", published,
			minerScenarioClass, cv.RewardRate, cls.RelativeValue, cost)
	}
	s.eventually(10*time.Second, func() string {
		if o, _ := offer(); !o.Offered || !o.HasRate || o.BestRate != published || !o.HasCost || o.Cost != cost {
			return fmt.Sprintf("the class's offer %+v, want offered at best rate %v against cost %v", o, published, cost)
		}
		return ""
	})

	// One validator below the cost: the other's rate still pays.
	d.Validators[0].Validator.SetRewardRate(0.3)
	s.eventually(10*time.Second, func() string {
		if o, st := offer(); o.BestRate != published || o.BestValidator != d.Validators[1].Hotkey || !o.Wanted || st.Pending != nil {
			return fmt.Sprintf("the class's offer %+v, pending %v; want it still wanted at %s's rate", o, st.Pending, d.Validators[1].URI)
		}
		return ""
	})
	// Both: the class no longer pays; its removal waits for the window of the miner's start.
	d.Validators[1].Validator.SetRewardRate(0.3)
	s.eventually(10*time.Second, func() string {
		if o, st := offer(); o.BestRate != 0.3 || o.Wanted || !o.Offered || !offersOnly(st.Pending, other) {
			return fmt.Sprintf("the class's offer %+v, pending %v; want it unwanted at 0.3, still offered, its removal held", o, st.Pending)
		}
		return ""
	})
	for _, v := range d.Validators {
		if mm, _ := honouredBy(v.Validator, m.Hotkey); mm.Honoured.Count(minerScenarioClass) != 2 {
			t.Errorf("%s honours %v while the change is held, want the class still", v.URI, mm.Honoured)
		}
	}
	// The window opens: the class leaves the offered manifest and the validators' views.
	s.advanceTo(t0.Add(miner.ManifestChangeInterval))
	s.eventually(10*time.Second, func() string {
		for _, v := range d.Validators {
			mm, _ := honouredBy(v.Validator, m.Hotkey)
			if !offersOnly(mm.Honoured, other) || v.Validator.FreeCapacity().Count(minerScenarioClass) != 0 {
				return fmt.Sprintf("%s honours %v, routes to %v; want only %s", v.URI, mm.Honoured, v.Validator.FreeCapacity(), other)
			}
		}
		return ""
	})
	if _, st := offer(); !offersOnly(st.Offered, other) || st.Pending != nil {
		t.Errorf("the miner offers %v (pending %v), want only %s", st.Offered, st.Pending, other)
	}
	if _, _, err := d.Validator.Route(t.Context(), d.HelloJob(), s.fake.Now().Add(time.Hour)); !errors.Is(err, validator.ErrNoMiner) {
		t.Errorf("a job of the dropped class: %v, want %v", err, validator.ErrNoMiner)
	}
}

// offersOnly reports whether m offers exactly the given classes.
func offersOnly(m protocol.Manifest, classes ...protocol.ExecutorClass) bool {
	if len(m) != len(classes) {
		return false
	}
	for _, c := range classes {
		if m.Count(c) == 0 {
			return false
		}
	}
	return true
}
