package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

func testJob(uuid string) Job {
	return Job{
		UUID:            uuid,
		Role:            RoleValidator,
		ValidatorHotkey: "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY",
		MinerHotkey:     "5FHneW46xGXgs5mUiveU4sbTyGBzmstUspZC92UhjJM694ty",
		ExecutorClass:   "always_on.gpu-24gb",
		DockerImage:     "backenddevelopersltd/compute-horde-job-echo:v0-latest",
		Status:          "PENDING",
		Spec:            json.RawMessage(`{"args": ["echo", "hi"], "env": {"B": "1", "A": "2"}}`),
	}
}

func TestJobs(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, db *DB) {
		ctx := testContext(t)
		created := time.Date(2025, 3, 4, 5, 6, 7, 891234567, time.FixedZone("CET", 3600))
		j := testJob("6f0c1b2e-8d44-4c1e-9a53-0b7c2f6f1a11")
		j.CreatedAt = created
		if err := db.CreateJob(ctx, j); err != nil {
			t.Fatalf("CreateJob: %v", err)
		}
		got, err := db.GetJob(ctx, j.UUID)
		if err != nil {
			t.Fatalf("GetJob: %v", err)
		}
		want := j
		want.CreatedAt = created.UTC().Truncate(time.Microsecond)
		want.UpdatedAt = want.CreatedAt
		if !reflect.DeepEqual(got, want) {
			t.Errorf("GetJob =\n%+v\nwant\n%+v", got, want)
		}

		// Duplicate: refused, first copy kept.
		dup := testJob(j.UUID)
		dup.Status = "COMPLETED"
		err = db.CreateJob(ctx, dup)
		if !errors.Is(err, ErrDuplicate) || !strings.Contains(err.Error(), "store: duplicate: job "+j.UUID+" already exists") {
			t.Errorf("duplicate CreateJob: %v", err)
		}
		if got, _ := db.GetJob(ctx, j.UUID); got.Status != "PENDING" {
			t.Errorf("duplicate overwrote the job: %+v", got)
		}

		if _, err := db.GetJob(ctx, "nope"); !errors.Is(err, ErrNotFound) || err.Error() != "store: not found: job nope" {
			t.Errorf("GetJob(missing): %v", err)
		}

		// Compare-and-set.
		db.now = func() time.Time { return created.Add(time.Minute) }
		if err := db.UpdateJobStatus(ctx, j.UUID, []string{"PENDING"}, "RUNNING", nil); err != nil {
			t.Fatalf("UpdateJobStatus: %v", err)
		}
		got, _ = db.GetJob(ctx, j.UUID)
		if got.Status != "RUNNING" || got.Result != nil || !got.UpdatedAt.Equal(want.CreatedAt.Add(time.Minute)) || !got.CreatedAt.Equal(want.CreatedAt) {
			t.Errorf("after update: %+v", got)
		}
		err = db.UpdateJobStatus(ctx, j.UUID, []string{"PENDING", "ACCEPTED"}, "FAILED", nil)
		if !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "is RUNNING, not PENDING or ACCEPTED; not moved to FAILED") {
			t.Errorf("UpdateJobStatus from the wrong status: %v", err)
		}
		if err := db.UpdateJobStatus(ctx, "nope", []string{"PENDING"}, "RUNNING", nil); !errors.Is(err, ErrNotFound) {
			t.Errorf("UpdateJobStatus(missing): %v", err)
		}
		result := json.RawMessage(`{"stdout": "hi\n",  "exit": 0}`)
		if err := db.UpdateJobStatus(ctx, j.UUID, []string{"RUNNING"}, "COMPLETED", result); err != nil {
			t.Fatal(err)
		}
		// nil result keeps the stored one.
		if err := db.UpdateJobStatus(ctx, j.UUID, []string{"COMPLETED"}, "COMPLETED", nil); err != nil {
			t.Fatal(err)
		}
		got, _ = db.GetJob(ctx, j.UUID)
		if got.Status != "COMPLETED" || string(got.Result) != string(result) {
			t.Errorf("after completion: status %s result %s", got.Status, got.Result)
		}

		// Invalid input.
		for name, bad := range map[string]Job{
			"no uuid":   func() Job { b := testJob(""); return b }(),
			"bad role":  func() Job { b := testJob("r"); b.Role = "facilitator"; return b }(),
			"no status": func() Job { b := testJob("s"); b.Status = ""; return b }(),
			"bad spec":  func() Job { b := testJob("x"); b.Spec = json.RawMessage(`{"a":`); return b }(),
			"nil spec":  func() Job { b := testJob("y"); b.Spec = nil; return b }(),
			"bad result": func() Job {
				b := testJob("z")
				b.Result = json.RawMessage(`nope`)
				return b
			}(),
		} {
			if err := db.CreateJob(ctx, bad); !errors.Is(err, ErrInvalid) {
				t.Errorf("CreateJob(%s): %v", name, err)
			}
		}
		if err := db.UpdateJobStatus(ctx, j.UUID, nil, "X", nil); !errors.Is(err, ErrInvalid) {
			t.Errorf("UpdateJobStatus without from: %v", err)
		}
		if err := db.UpdateJobStatus(ctx, j.UUID, []string{"COMPLETED"}, "X", json.RawMessage(`{`)); !errors.Is(err, ErrInvalid) {
			t.Errorf("UpdateJobStatus with a bad result: %v", err)
		}
	})
}

func TestListJobs(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, db *DB) {
		ctx := testContext(t)
		base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
		// Created out of order; fractions of different lengths test the sort.
		offsets := []time.Duration{1200 * time.Millisecond, 100 * time.Millisecond, 120 * time.Millisecond, 2 * time.Second, time.Microsecond}
		for i, off := range offsets {
			j := testJob(fmt.Sprintf("job-%d", i))
			j.CreatedAt = base.Add(off)
			if i%2 == 1 {
				j.Role = RoleMiner
			}
			if i == 3 {
				j.Status = "COMPLETED"
			}
			if err := db.CreateJob(ctx, j); err != nil {
				t.Fatal(err)
			}
		}
		ids := func(f JobFilter) string {
			jobs, err := db.ListJobs(ctx, f)
			if err != nil {
				t.Fatalf("ListJobs(%+v): %v", f, err)
			}
			var s []string
			for _, j := range jobs {
				s = append(s, strings.TrimPrefix(j.UUID, "job-"))
			}
			return strings.Join(s, ",")
		}
		for _, tc := range []struct {
			f    JobFilter
			want string
		}{
			{JobFilter{}, "4,1,2,0,3"},
			{JobFilter{Limit: 2}, "4,1"},
			{JobFilter{Role: RoleMiner}, "1,3"},
			{JobFilter{Role: RoleValidator, Status: "PENDING"}, "4,2,0"},
			{JobFilter{Status: "COMPLETED"}, "3"},
			{JobFilter{Status: "NOPE"}, ""},
			{JobFilter{Since: base.Add(110 * time.Millisecond)}, "2,0,3"},
			{JobFilter{Since: base.Add(1200 * time.Millisecond)}, "0,3"},
			{JobFilter{Role: RoleMiner, Since: base.Add(time.Second)}, "3"},
		} {
			if got := ids(tc.f); got != tc.want {
				t.Errorf("ListJobs(%+v) = %q, want %q", tc.f, got, tc.want)
			}
		}
	})
}

// Of eight concurrent moves out of the same status, exactly one wins.
func TestUpdateJobStatusConcurrent(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, db *DB) {
		ctx := testContext(t)
		if err := db.CreateJob(ctx, testJob("race")); err != nil {
			t.Fatal(err)
		}
		const n = 8
		errs := make([]error, n)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range n {
			wg.Go(func() {
				<-start
				errs[i] = db.UpdateJobStatus(ctx, "race", []string{"PENDING"}, fmt.Sprintf("TAKEN-%d", i), nil)
			})
		}
		close(start)
		wg.Wait()
		winners := 0
		for i, err := range errs {
			switch {
			case err == nil:
				winners++
			case !errors.Is(err, ErrConflict):
				t.Errorf("goroutine %d: %v", i, err)
			}
		}
		if winners != 1 {
			t.Errorf("%d winners, want 1 (%v)", winners, errs)
		}
		got, _ := db.GetJob(ctx, "race")
		if !strings.HasPrefix(got.Status, "TAKEN-") {
			t.Errorf("final status %q", got.Status)
		}
	})
}
