package facilitator

import (
	"encoding/json"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/computehorde/horde/internal/store"
	"github.com/computehorde/horde/internal/store/pgtest"
	"github.com/computehorde/horde/sdk"
)

// TestConcurrentSubmits: submissions arriving at once (committed together) hold exactly what
// the balance covers: the others are refused with the figures and leave nothing behind; on
// both engines.
func TestConcurrentSubmits(t *testing.T) {
	for _, engine := range []string{"sqlite", "postgres"} {
		t.Run(engine, func(t *testing.T) {
			dsn := ""
			if engine == "postgres" {
				dsn = pgtest.DSN(t)
			}
			e := newEnv(t, dsn, nil)
			maxCost := int64(testPrice * (helloSpec().ExecutionTimeLimit + holdLeeway))
			const affordable, n = 5, 16
			c, user := e.user("//Ferdie", affordable*maxCost)
			var mu sync.Mutex
			var created []string
			refused := 0
			var wg sync.WaitGroup
			for range n {
				wg.Go(func() {
					j, err := c.Submit(t.Context(), helloSpec(), "")
					mu.Lock()
					defer mu.Unlock()
					switch {
					case err == nil && j.Status == "queued" && j.MaxCost == maxCost:
						created = append(created, j.UUID)
					case sdk.IsInsufficientCredits(err) && strings.Contains(err.Error(), "your balance is"):
						refused++
					default:
						t.Errorf("Submit: %+v, %v", j, err)
					}
				})
			}
			wg.Wait()
			if len(created) != affordable || refused != n-affordable {
				t.Fatalf("%d jobs created and %d refused; want %d and %d", len(created), refused, affordable, n-affordable)
			}
			if b := e.balance(user); b != 0 {
				t.Errorf("balance %d, want all of it held", b)
			}
			page, err := c.Jobs(t.Context(), nil, 0, "")
			if err != nil || len(page.Jobs) != affordable {
				t.Errorf("jobs listed: %d, %v; want %d", len(page.Jobs), err, affordable)
			}
			for _, id := range created {
				if held, _ := e.db.Balance(t.Context(), store.HoldAccount(id)); held != maxCost {
					t.Errorf("job %s holds %d, want %d", id, held, maxCost)
				}
			}
		})
	}
}

// TestSubmitAnswer: the answer to a submission, built from what was written, is the job as
// reading it back shows it.
func TestSubmitAnswer(t *testing.T) {
	e := newEnv(t, "", nil)
	c, _ := e.user("//Ferdie", 100_000_000)
	for i, args := range [][]string{{"a", "b"}, nil} {
		spec := helloSpec()
		spec.Args = args
		key := strings.Repeat("k", i+1)
		submitted, err := c.Submit(t.Context(), spec, key)
		if err != nil {
			t.Fatal(err)
		}
		got, err := c.Job(t.Context(), submitted.UUID)
		if err != nil {
			t.Fatal(err)
		}
		a, _ := json.Marshal(submitted)
		b, _ := json.Marshal(got)
		if !reflect.DeepEqual(submitted, got) || string(a) != string(b) {
			t.Errorf("submit answered\n%s\nreading it back gives\n%s", a, b)
		}
		if len(got.History) != 1 || got.History[0].Status != "queued" || !got.History[0].At.Equal(got.CreatedAt) || got.DockerImage != spec.DockerImage ||
			len(got.Args) != len(args) {
			t.Errorf("job %s", b)
		}
		// The idempotent repeat answers the same job.
		again, err := c.Submit(t.Context(), spec, key)
		if err != nil || !reflect.DeepEqual(again, got) {
			t.Errorf("repeat: %+v, %v", again, err)
		}
	}
}

// TestRecoverLegacyJobs: Recover settles what an earlier version could leave half done: a
// job created "new" is queued when its hold was taken and refused (and hidden) otherwise; an
// ended job whose hold still holds credits gets them released.
func TestRecoverLegacyJobs(t *testing.T) {
	e := newEnv(t, "", nil)
	c, user := e.user("//Ferdie", 10_000_000)
	ctx := t.Context()
	spec := json.RawMessage(`{"uuid":"x","docker_image":"horde-jobs/hello:test","args":[]}`)
	newJob := func(id, status string, hold int64) {
		t.Helper()
		if _, _, err := e.db.CreateFacJob(ctx, store.FacJob{UUID: id, User: user, Class: "always_on.test", Status: status, Spec: spec,
			Price: testPrice, MaxCost: 1000}); err != nil {
			t.Fatal(err)
		}
		if hold > 0 {
			if _, err := e.db.Transfer(ctx, store.Transfer{Key: "hold:" + id, Kind: "hold", From: store.UserAccount(user),
				To: store.HoldAccount(id), Amount: hold, JobUUID: id}); err != nil {
				t.Fatal(err)
			}
		}
	}
	newJob("11111111-1111-4111-8111-111111111111", statusNew, 1000) // paid, not queued
	newJob("22222222-2222-4222-8222-222222222222", statusNew, 0)    // not paid
	newJob("33333333-3333-4333-8333-333333333333", "completed", 1000)
	if err := e.f.Recover(ctx); err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string]string{
		"11111111-1111-4111-8111-111111111111": store.FacJobQueued,
		"22222222-2222-4222-8222-222222222222": statusRefused,
		"33333333-3333-4333-8333-333333333333": "completed",
	} {
		if j, err := e.db.GetFacJob(ctx, id); err != nil || j.Status != want {
			t.Errorf("job %s: %+v, %v; want %s", id, j.Status, err, want)
		}
	}
	if _, err := c.Job(ctx, "22222222-2222-4222-8222-222222222222"); !sdk.IsNotFound(err) {
		t.Errorf("a refused job is shown: %v", err)
	}
	if b := e.balance(user); b != 10_000_000-1000 {
		t.Errorf("balance %d, want only the queued job's hold taken", b)
	}
}
