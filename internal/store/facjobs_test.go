package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func testFacJob(uuid string) FacJob {
	return FacJob{
		UUID:    uuid,
		User:    "alice",
		Class:   "always_on.gpu-24gb",
		Status:  FacJobQueued,
		Spec:    json.RawMessage(`{"docker_image": "img",  "args": ["echo"], "env": {"B": "1", "A": "2"}}`),
		Price:   25,
		MaxCost: 25 * 600,
	}
}

func TestFacJobs(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, db *DB) {
		ctx := testContext(t)
		created := time.Date(2026, 1, 2, 3, 4, 5, 678912345, time.FixedZone("CET", 3600))
		j := testFacJob("fj-1")
		j.CreatedAt = created
		j.TargetValidator = "5Validator"
		stored, ok, err := db.CreateFacJob(ctx, j)
		if !ok || err != nil {
			t.Fatalf("CreateFacJob = %v, %v", ok, err)
		}
		want := j
		want.CreatedAt = created.UTC().Truncate(time.Microsecond)
		want.UpdatedAt = want.CreatedAt
		if !reflect.DeepEqual(stored, want) {
			t.Errorf("CreateFacJob returned\n%+v\nwant\n%+v", stored, want)
		}
		if got, err := db.GetFacJob(ctx, j.UUID); err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("GetFacJob = %v\n%+v\nwant\n%+v", err, got, want)
		}
		if _, err := db.GetFacJob(ctx, "nope"); !errors.Is(err, ErrNotFound) || err.Error() != "store: not found: facilitator job nope" {
			t.Errorf("GetFacJob(missing): %v", err)
		}
		dup := testFacJob(j.UUID)
		dup.Status = FacJobCancelled
		if _, ok, err := db.CreateFacJob(ctx, dup); ok || !errors.Is(err, ErrDuplicate) {
			t.Errorf("CreateFacJob with a taken UUID = %v, %v", ok, err)
		}
		if got, _ := db.GetFacJob(ctx, j.UUID); got.Status != FacJobQueued {
			t.Errorf("a duplicate overwrote the job: %+v", got)
		}

		// Claim: queued → sent, once.
		db.now = func() time.Time { return created.Add(time.Minute) }
		dispatched := created.Add(30 * time.Second)
		if ok, err := db.ClaimFacJob(ctx, j.UUID, "5Validator", "replica-a", dispatched); !ok || err != nil {
			t.Fatalf("ClaimFacJob = %v, %v", ok, err)
		}
		if ok, err := db.ClaimFacJob(ctx, j.UUID, "5Other", "replica-b", dispatched); ok || err != nil {
			t.Errorf("second ClaimFacJob = %v, %v; want false", ok, err)
		}
		got, _ := db.GetFacJob(ctx, j.UUID)
		if got.Status != FacJobSent || got.Validator != "5Validator" || got.Dispatcher != "replica-a" ||
			!got.DispatchedAt.Equal(dispatched.Truncate(time.Microsecond)) || !got.UpdatedAt.Equal(want.CreatedAt.Add(time.Minute)) || !got.CreatedAt.Equal(want.CreatedAt) {
			t.Errorf("after the claim: %+v", got)
		}
		if _, err := db.ClaimFacJob(ctx, "nope", "5Validator", "r", dispatched); !errors.Is(err, ErrNotFound) {
			t.Errorf("ClaimFacJob(missing): %v", err)
		}
		if _, err := db.ClaimFacJob(ctx, j.UUID, "", "r", dispatched); !errors.Is(err, ErrInvalid) {
			t.Errorf("ClaimFacJob without a validator: %v", err)
		}

		// Status compare-and-set.
		if err := db.UpdateFacJobStatus(ctx, j.UUID, []string{FacJobSent}, "accepted", nil); err != nil {
			t.Fatal(err)
		}
		err = db.UpdateFacJobStatus(ctx, j.UUID, []string{FacJobQueued, FacJobSent}, "failed", nil)
		if !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "facilitator job fj-1 is accepted, not queued or sent; not moved to failed") {
			t.Errorf("UpdateFacJobStatus from the wrong status: %v", err)
		}
		if err := db.UpdateFacJobStatus(ctx, "nope", []string{FacJobSent}, "accepted", nil); !errors.Is(err, ErrNotFound) {
			t.Errorf("UpdateFacJobStatus(missing): %v", err)
		}
		for name, call := range map[string]func() error{
			"no from": func() error { return db.UpdateFacJobStatus(ctx, j.UUID, nil, "x", nil) },
			"no to":   func() error { return db.UpdateFacJobStatus(ctx, j.UUID, []string{"accepted"}, "", nil) },
			"bad result": func() error {
				return db.UpdateFacJobStatus(ctx, j.UUID, []string{"accepted"}, "x", json.RawMessage(`{`))
			},
		} {
			if err := call(); !errors.Is(err, ErrInvalid) {
				t.Errorf("UpdateFacJobStatus(%s): %v", name, err)
			}
		}

		// Requeue: back to queued, dispatch fields cleared; from elsewhere, false.
		if ok, err := db.RequeueFacJob(ctx, j.UUID, []string{FacJobSent}); ok || err != nil {
			t.Errorf("RequeueFacJob from the wrong status = %v, %v", ok, err)
		}
		if ok, err := db.RequeueFacJob(ctx, j.UUID, []string{FacJobSent, "accepted"}); !ok || err != nil {
			t.Fatalf("RequeueFacJob = %v, %v", ok, err)
		}
		got, _ = db.GetFacJob(ctx, j.UUID)
		if got.Status != FacJobQueued || got.Validator != "" || got.Dispatcher != "" || !got.DispatchedAt.IsZero() || got.TargetValidator != "5Validator" {
			t.Errorf("after the requeue: %+v", got)
		}
		if _, err := db.RequeueFacJob(ctx, "nope", []string{FacJobSent}); !errors.Is(err, ErrNotFound) {
			t.Errorf("RequeueFacJob(missing): %v", err)
		}
		if _, err := db.RequeueFacJob(ctx, j.UUID, nil); !errors.Is(err, ErrInvalid) {
			t.Errorf("RequeueFacJob without from: %v", err)
		}

		// Claimed again, completed with a result; nil keeps it.
		if ok, err := db.ClaimFacJob(ctx, j.UUID, "5Validator", "replica-b", time.Time{}); !ok || err != nil {
			t.Fatalf("ClaimFacJob after requeue = %v, %v", ok, err)
		}
		if got, _ = db.GetFacJob(ctx, j.UUID); !got.DispatchedAt.Equal(want.CreatedAt.Add(time.Minute)) || got.Dispatcher != "replica-b" {
			t.Errorf("a claim at the zero time: %+v", got)
		}
		result := json.RawMessage(`{"stdout": "hi",  "exit": 0}`)
		if err := db.UpdateFacJobStatus(ctx, j.UUID, []string{FacJobSent}, "completed", result); err != nil {
			t.Fatal(err)
		}
		if err := db.UpdateFacJobStatus(ctx, j.UUID, []string{"completed"}, "completed", nil); err != nil {
			t.Fatal(err)
		}
		if got, _ = db.GetFacJob(ctx, j.UUID); got.Status != "completed" || string(got.Result) != string(result) {
			t.Errorf("after completion: %s %s", got.Status, got.Result)
		}

		// Charges add up and never go below zero.
		for _, a := range []int64{5, 7, 0} {
			if err := db.AddFacJobCharge(ctx, j.UUID, a); err != nil {
				t.Fatal(err)
			}
		}
		if err := db.AddFacJobCharge(ctx, j.UUID, -13); !errors.Is(err, ErrInvalid) {
			t.Errorf("AddFacJobCharge below zero: %v", err)
		}
		if err := db.AddFacJobCharge(ctx, j.UUID, -2); err != nil {
			t.Fatal(err)
		}
		if got, _ = db.GetFacJob(ctx, j.UUID); got.Charged != 10 {
			t.Errorf("Charged = %d, want 10", got.Charged)
		}
		if err := db.AddFacJobCharge(ctx, "nope", 1); !errors.Is(err, ErrNotFound) {
			t.Errorf("AddFacJobCharge(missing): %v", err)
		}

		// A cancelled job cannot be claimed.
		c := testFacJob("fj-cancel")
		if _, _, err := db.CreateFacJob(ctx, c); err != nil {
			t.Fatal(err)
		}
		if err := db.UpdateFacJobStatus(ctx, c.UUID, []string{FacJobQueued}, FacJobCancelled, nil); err != nil {
			t.Fatal(err)
		}
		if ok, err := db.ClaimFacJob(ctx, c.UUID, "5Validator", "r", time.Time{}); ok || err != nil {
			t.Errorf("ClaimFacJob of a cancelled job = %v, %v", ok, err)
		}

		for name, bad := range map[string]FacJob{
			"no uuid":        testFacJob(""),
			"no user":        func() FacJob { b := testFacJob("u"); b.User = ""; return b }(),
			"no status":      func() FacJob { b := testFacJob("s"); b.Status = ""; return b }(),
			"bad spec":       func() FacJob { b := testFacJob("x"); b.Spec = json.RawMessage(`{"a":`); return b }(),
			"nil spec":       func() FacJob { b := testFacJob("y"); b.Spec = nil; return b }(),
			"bad result":     func() FacJob { b := testFacJob("z"); b.Result = json.RawMessage(`no`); return b }(),
			"negative price": func() FacJob { b := testFacJob("p"); b.Price = -1; return b }(),
		} {
			if _, _, err := db.CreateFacJob(ctx, bad); !errors.Is(err, ErrInvalid) {
				t.Errorf("CreateFacJob(%s): %v", name, err)
			}
		}
	})
}

func TestCreateFacJobIdempotency(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, db *DB) {
		ctx := testContext(t)
		first := testFacJob("fj-1")
		first.IdempotencyKey = "submit-42"
		stored, ok, err := db.CreateFacJob(ctx, first)
		if !ok || err != nil {
			t.Fatalf("CreateFacJob = %v, %v", ok, err)
		}
		// A retry under another UUID gets the first job back.
		retry := testFacJob("fj-2")
		retry.IdempotencyKey = "submit-42"
		retry.Price = 99
		got, ok, err := db.CreateFacJob(ctx, retry)
		if ok || err != nil || !reflect.DeepEqual(got, stored) {
			t.Errorf("CreateFacJob retry = %+v, %v, %v; want the first job %+v", got, ok, err, stored)
		}
		if _, err := db.GetFacJob(ctx, "fj-2"); !errors.Is(err, ErrNotFound) {
			t.Errorf("the retry created a job: %v", err)
		}
		// The same UUID and key is a retry too.
		if got, ok, err := db.CreateFacJob(ctx, first); ok || err != nil || got.UUID != "fj-1" {
			t.Errorf("CreateFacJob of the very same job = %+v, %v, %v", got, ok, err)
		}
		// Keys are per user.
		bobs := testFacJob("fj-3")
		bobs.User, bobs.IdempotencyKey = "bob", "submit-42"
		if _, ok, err := db.CreateFacJob(ctx, bobs); !ok || err != nil {
			t.Errorf("another user's job with the same key = %v, %v", ok, err)
		}
		// No key: every submission is a new job, and a taken UUID is a duplicate.
		for _, id := range []string{"fj-4", "fj-5"} {
			if _, ok, err := db.CreateFacJob(ctx, testFacJob(id)); !ok || err != nil {
				t.Errorf("CreateFacJob(%s) without a key = %v, %v", id, ok, err)
			}
		}
		taken := testFacJob("fj-4")
		taken.IdempotencyKey = "fresh"
		if _, ok, err := db.CreateFacJob(ctx, taken); ok || !errors.Is(err, ErrDuplicate) {
			t.Errorf("a new key on a taken UUID = %v, %v; want ErrDuplicate", ok, err)
		}
	})
}

// TestClaimFacJobRace: replicas racing for one queued job dispatch it once.
func TestClaimFacJobRace(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, db *DB) {
		ctx := testContext(t)
		if _, _, err := db.CreateFacJob(ctx, testFacJob("fj-race")); err != nil {
			t.Fatal(err)
		}
		var wins atomic.Int64
		var winner atomic.Value
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Go(func() {
				v := fmt.Sprintf("validator-%d", i)
				ok, err := db.ClaimFacJob(ctx, "fj-race", v, fmt.Sprintf("replica-%d", i), time.Now())
				if err != nil {
					t.Errorf("ClaimFacJob %d: %v", i, err)
				}
				if ok {
					wins.Add(1)
					winner.Store(v)
				}
			})
		}
		wg.Wait()
		if wins.Load() != 1 {
			t.Fatalf("%d claims succeeded, want 1", wins.Load())
		}
		if got, _ := db.GetFacJob(ctx, "fj-race"); got.Status != FacJobSent || got.Validator != winner.Load() {
			t.Errorf("claimed job %+v, winner %v", got, winner.Load())
		}
	})
}

func TestListFacJobs(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, db *DB) {
		ctx := testContext(t)
		base := time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
		var jobs []FacJob
		for i := range 25 {
			j := testFacJob(fmt.Sprintf("fj-%02d", (i*7)%25))        // UUID order differs from creation order
			j.CreatedAt = base.Add(time.Duration(i/2) * time.Second) // pairs share a time: UUID breaks the tie
			if i%2 == 1 {
				j.User = "bob"
			}
			if i%3 == 0 {
				j.Class = "always_on.llm.a6000"
			}
			if i%5 == 0 {
				j.Status = "completed"
			}
			stored, _, err := db.CreateFacJob(ctx, j)
			if err != nil {
				t.Fatal(err)
			}
			jobs = append(jobs, stored)
		}
		newest := slices.Clone(jobs)
		slices.SortFunc(newest, func(a, b FacJob) int {
			if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
				return c
			}
			return strings.Compare(b.UUID, a.UUID)
		})
		uuids := func(js []FacJob) []string {
			var out []string
			for _, j := range js {
				out = append(out, j.UUID)
			}
			return out
		}
		filter := func(keep func(FacJob) bool) []FacJob {
			var out []FacJob
			for _, j := range newest {
				if keep(j) {
					out = append(out, j)
				}
			}
			return out
		}

		// Pages of 7, each starting after the previous page's last job.
		var paged []FacJob
		f := FacJobFilter{Limit: 7}
		for pages := 0; ; pages++ {
			page, err := db.ListFacJobs(ctx, f)
			if err != nil {
				t.Fatal(err)
			}
			if len(page) == 0 {
				if pages != 4 {
					t.Errorf("%d pages, want 4", pages)
				}
				break
			}
			paged = append(paged, page...)
			last := page[len(page)-1]
			f.BeforeCreated, f.BeforeUUID = last.CreatedAt, last.UUID
		}
		if !reflect.DeepEqual(paged, newest) {
			t.Errorf("paged listing\n%v\nwant\n%v", uuids(paged), uuids(newest))
		}

		for name, tc := range map[string]struct {
			f    FacJobFilter
			want []FacJob
		}{
			"all":  {FacJobFilter{}, newest},
			"user": {FacJobFilter{User: "bob"}, filter(func(j FacJob) bool { return j.User == "bob" })},
			"statuses": {FacJobFilter{Statuses: []string{"completed", FacJobCancelled}},
				filter(func(j FacJob) bool { return j.Status == "completed" })},
			"class and user": {FacJobFilter{User: "alice", Class: "always_on.llm.a6000"},
				filter(func(j FacJob) bool { return j.User == "alice" && j.Class == "always_on.llm.a6000" })},
			"user page": {FacJobFilter{User: "alice", BeforeCreated: newest[4].CreatedAt, BeforeUUID: newest[4].UUID, Limit: 3},
				filter(func(j FacJob) bool {
					return j.User == "alice" && (j.CreatedAt.Before(newest[4].CreatedAt) || j.CreatedAt.Equal(newest[4].CreatedAt) && j.UUID < newest[4].UUID)
				})[:3]},
			"queue": {FacJobFilter{Statuses: []string{FacJobQueued}, OldestFirst: true, Limit: 5, BeforeCreated: base.Add(time.Hour)},
				func() []FacJob {
					q := filter(func(j FacJob) bool { return j.Status == FacJobQueued })
					slices.Reverse(q)
					return q[:5]
				}()},
			"none": {FacJobFilter{User: "carol"}, nil},
		} {
			got, err := db.ListFacJobs(ctx, tc.f)
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Errorf("ListFacJobs(%s) = %v\n%v\nwant\n%v", name, err, uuids(got), uuids(tc.want))
			}
		}
	})
}

func TestFacJobEvents(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, db *DB) {
		ctx := testContext(t)
		if _, _, err := db.CreateFacJob(ctx, testFacJob("fj-1")); err != nil {
			t.Fatal(err)
		}
		at := time.Date(2026, 3, 4, 5, 6, 7, 890123456, time.UTC)
		now := at.Add(time.Hour)
		db.now = func() time.Time { return now }
		detail := json.RawMessage(`{"comment": "ok",  "miner": "5Miner"}`)
		for _, e := range []FacJobEvent{
			{JobUUID: "fj-1", Status: FacJobSent, At: at, Seq: 7},
			{JobUUID: "fj-1", Status: "received", At: at.Add(time.Second), Detail: detail},
			{JobUUID: "fj-1", Status: "accepted"},
		} {
			if ok, err := db.AddFacJobEvent(ctx, e); !ok || err != nil {
				t.Fatalf("AddFacJobEvent(%s) = %v, %v", e.Status, ok, err)
			}
		}
		// Upstream's UNIQUE(job, status): the second "received" is dropped.
		if ok, err := db.AddFacJobEvent(ctx, FacJobEvent{JobUUID: "fj-1", Status: "received", Detail: json.RawMessage(`{}`)}); ok || err != nil {
			t.Errorf("a repeated status = %v, %v; want a no-op", ok, err)
		}
		got, err := db.FacJobEvents(ctx, "fj-1")
		want := []FacJobEvent{
			{JobUUID: "fj-1", Seq: 0, Status: FacJobSent, At: at.Truncate(time.Microsecond)},
			{JobUUID: "fj-1", Seq: 1, Status: "received", At: at.Add(time.Second).Truncate(time.Microsecond), Detail: detail},
			{JobUUID: "fj-1", Seq: 2, Status: "accepted", At: now.Truncate(time.Microsecond)},
		}
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("FacJobEvents = %v\n%+v\nwant\n%+v", err, got, want)
		}
		if ok, err := db.AddFacJobEvent(ctx, FacJobEvent{JobUUID: "nope", Status: "received"}); ok || !errors.Is(err, ErrNotFound) {
			t.Errorf("AddFacJobEvent of an unknown job = %v, %v", ok, err)
		}
		if got, err := db.FacJobEvents(ctx, "nope"); err != nil || len(got) != 0 {
			t.Errorf("FacJobEvents of an unknown job = %+v, %v", got, err)
		}
		for name, bad := range map[string]FacJobEvent{
			"no job":     {Status: "received"},
			"no status":  {JobUUID: "fj-1"},
			"bad detail": {JobUUID: "fj-1", Status: "failed", Detail: json.RawMessage(`{`)},
		} {
			if _, err := db.AddFacJobEvent(ctx, bad); !errors.Is(err, ErrInvalid) {
				t.Errorf("AddFacJobEvent(%s): %v", name, err)
			}
		}

		// Statuses arriving at once get distinct, gapless seqs.
		if _, _, err := db.CreateFacJob(ctx, testFacJob("fj-2")); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Go(func() {
				if ok, err := db.AddFacJobEvent(ctx, FacJobEvent{JobUUID: "fj-2", Status: fmt.Sprintf("s%d", i)}); !ok || err != nil {
					t.Errorf("concurrent AddFacJobEvent %d = %v, %v", i, ok, err)
				}
			})
		}
		wg.Wait()
		got, err = db.FacJobEvents(ctx, "fj-2")
		if err != nil || len(got) != 8 {
			t.Fatalf("FacJobEvents = %+v, %v", got, err)
		}
		for i, e := range got {
			if e.Seq != i {
				t.Errorf("event %d has seq %d", i, e.Seq)
			}
		}
	})
}
