package store

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

// submitArgs are the arguments of SubmitFacJob for job id of user, holding amount.
func submitArgs(id, user, idem string, amount int64) (FacJob, Transfer, FacJobEvent) {
	j := testFacJob(id)
	j.User, j.IdempotencyKey, j.MaxCost = user, idem, amount
	return j, Transfer{Key: "hold:" + id, Kind: "hold", From: UserAccount(user), To: HoldAccount(id), Amount: amount, JobUUID: id},
		FacJobEvent{Status: FacJobQueued}
}

// submit is SubmitFacJob(submitArgs(id, user, idem, amount)).
func submit(ctx context.Context, db *DB, id, user, idem string, amount int64) (FacJob, bool, error) {
	j, hold, ev := submitArgs(id, user, idem, amount)
	return db.SubmitFacJob(ctx, j, hold, ev)
}

// jobCount counts the facilitator jobs stored.
func jobCount(t *testing.T, db *DB) int {
	t.Helper()
	jobs, err := db.ListFacJobs(testContext(t), FacJobFilter{})
	if err != nil {
		t.Fatal(err)
	}
	return len(jobs)
}

// wantNothingOf fails unless job id left no trace: no job, no event, no ledger entry.
func wantNothingOf(t *testing.T, db *DB, id string) {
	t.Helper()
	ctx := testContext(t)
	if _, err := db.GetFacJob(ctx, id); !errors.Is(err, ErrNotFound) {
		t.Errorf("job %s: GetFacJob = %v; want not found", id, err)
	}
	if evs, err := db.FacJobEvents(ctx, id); err != nil || len(evs) != 0 {
		t.Errorf("job %s: events %+v, %v; want none", id, evs, err)
	}
	if es, err := db.JobLedger(ctx, id); err != nil || len(es) != 0 {
		t.Errorf("job %s: ledger entries %+v, %v; want none", id, es, err)
	}
}

func TestSubmitFacJob(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, db *DB) {
		ctx := testContext(t)
		now := time.Date(2026, 5, 6, 7, 8, 9, 123456789, time.UTC)
		db.now = func() time.Time { return now }
		alice := UserAccount("alice")
		mustTransfer(t, db, Transfer{Key: "grant", Kind: "grant", From: AccountGrants, To: alice, Amount: 100})

		j, hold, ev := submitArgs("job-a", "alice", "key-a", 30)
		got, created, err := db.SubmitFacJob(ctx, j, hold, ev)
		if !created || err != nil {
			t.Fatalf("SubmitFacJob = %v, %v", created, err)
		}
		want := j
		want.CreatedAt, want.UpdatedAt = now.Truncate(time.Microsecond), now.Truncate(time.Microsecond)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("SubmitFacJob returned\n%+v\nwant\n%+v", got, want)
		}
		if stored, err := db.GetFacJob(ctx, "job-a"); err != nil || !reflect.DeepEqual(stored, want) {
			t.Errorf("GetFacJob = %v\n%+v\nwant\n%+v", err, stored, want)
		}
		evs, err := db.FacJobEvents(ctx, "job-a")
		if wantEvs := []FacJobEvent{{JobUUID: "job-a", Seq: 0, Status: FacJobQueued, At: want.CreatedAt}}; err != nil || !reflect.DeepEqual(evs, wantEvs) {
			t.Errorf("FacJobEvents = %v\n%+v\nwant\n%+v", err, evs, wantEvs)
		}
		entries, err := db.JobLedger(ctx, "job-a")
		if err != nil || len(entries) != 2 || entries[0].Key != "hold:job-a" || entries[0].Account != alice || entries[0].Amount != -30 ||
			entries[1].Account != HoldAccount("job-a") || entries[1].Amount != 30 || entries[1].Kind != "hold" {
			t.Errorf("JobLedger = %+v, %v", entries, err)
		}
		wantBalances(t, db, map[string]int64{alice: 70, HoldAccount("job-a"): 30})

		// The same idempotency key again, with another UUID: the first job, nothing written.
		before, _ := db.LedgerEntries(ctx, "", 0)
		j2, hold2, ev2 := submitArgs("job-a2", "alice", "key-a", 30)
		if got, created, err := db.SubmitFacJob(ctx, j2, hold2, ev2); created || err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("repeated SubmitFacJob = %+v, %v, %v; want the first job", got, created, err)
		}
		wantNothingOf(t, db, "job-a2")
		// Another user may use the same key.
		mustTransfer(t, db, Transfer{Key: "grant-bob", Kind: "grant", From: AccountGrants, To: UserAccount("bob"), Amount: 5})
		if _, created, err := submit(ctx, db, "job-b", "bob", "key-a", 5); !created || err != nil {
			t.Errorf("bob's SubmitFacJob with alice's key = %v, %v", created, err)
		}

		// Not enough credits: refused with Transfer's error, nothing written, and the
		// idempotency key stays free.
		_, created, err = submit(ctx, db, "job-c", "alice", "key-c", 71)
		if created || !errors.Is(err, ErrInsufficientFunds) || err.Error() != "store: insufficient balance: user:alice has 70, hold hold:job-c needs 71" {
			t.Errorf("overdrawing SubmitFacJob = %v, %v", created, err)
		}
		wantNothingOf(t, db, "job-c")
		if after, _ := db.LedgerEntries(ctx, "", 0); len(after) != len(before)+4 {
			t.Errorf("%d ledger entries, want %d (bob's grant and hold only)", len(after), len(before)+4)
		}
		if _, created, err := submit(ctx, db, "job-c", "alice", "key-c", 70); !created || err != nil {
			t.Errorf("SubmitFacJob after a refusal = %v, %v", created, err)
		}
		wantBalances(t, db, map[string]int64{alice: 0, HoldAccount("job-c"): 70})
		// An account never credited has nothing to give.
		if _, _, err := submit(ctx, db, "job-d", "nobody", "", 1); !errors.Is(err, ErrInsufficientFunds) ||
			!strings.Contains(err.Error(), "user:nobody has 0") {
			t.Errorf("SubmitFacJob from an empty account: %v", err)
		}

		// A UUID taken, a hold key used: refused, nothing written.
		mustTransfer(t, db, Transfer{Key: "grant-2", Kind: "grant", From: AccountGrants, To: alice, Amount: 100})
		if _, created, err := submit(ctx, db, "job-a", "alice", "", 1); created || !errors.Is(err, ErrDuplicate) {
			t.Errorf("SubmitFacJob with a taken UUID = %v, %v", created, err)
		}
		mustTransfer(t, db, Transfer{Key: "hold:job-e", Kind: "grant", From: AccountGrants, To: alice, Amount: 1})
		if _, created, err := submit(ctx, db, "job-e", "alice", "", 1); created || !errors.Is(err, ErrConflict) {
			t.Errorf("SubmitFacJob with a used hold key = %v, %v", created, err)
		}
		if _, err := db.GetFacJob(ctx, "job-e"); !errors.Is(err, ErrNotFound) {
			t.Errorf("a job was left by a refused hold: %v", err)
		}
		wantBalances(t, db, map[string]int64{alice: 101, HoldAccount("job-a"): 30})

		j, hold, ev = submitArgs("job-f", "alice", "", 1)
		for name, bad := range map[string]func() (FacJob, Transfer, FacJobEvent){
			"no UUID":   func() (FacJob, Transfer, FacJobEvent) { j := j; j.UUID = ""; return j, hold, ev },
			"bad spec":  func() (FacJob, Transfer, FacJobEvent) { j := j; j.Spec = json.RawMessage(`{`); return j, hold, ev },
			"zero hold": func() (FacJob, Transfer, FacJobEvent) { h := hold; h.Amount = 0; return j, h, ev },
			"no event":  func() (FacJob, Transfer, FacJobEvent) { return j, hold, FacJobEvent{} },
			"another's": func() (FacJob, Transfer, FacJobEvent) {
				return j, hold, FacJobEvent{JobUUID: "job-a", Status: FacJobQueued}
			},
			"bad event JSON": func() (FacJob, Transfer, FacJobEvent) { e := ev; e.Detail = json.RawMessage(`{`); return j, hold, e },
		} {
			j, hold, ev := bad()
			if _, _, err := db.SubmitFacJob(ctx, j, hold, ev); !errors.Is(err, ErrInvalid) {
				t.Errorf("SubmitFacJob(%s): %v; want ErrInvalid", name, err)
			}
		}
		wantNothingOf(t, db, "job-f")
		if n := jobCount(t, db); n != 3 {
			t.Errorf("%d jobs stored, want 3", n)
		}
		if err := db.CheckLedger(ctx); err != nil {
			t.Errorf("CheckLedger: %v", err)
		}
	})
}

// TestSubmitFacJobConcurrent: many submissions at once (committed together) never overdraw,
// a refused one leaves nothing, and one idempotency key makes one job however many ask.
func TestSubmitFacJobConcurrent(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, db *DB) {
		ctx := testContext(t)
		mustTransfer(t, db, Transfer{Key: "grant-alice", Kind: "grant", From: AccountGrants, To: UserAccount("alice"), Amount: 100})
		mustTransfer(t, db, Transfer{Key: "grant-bob", Kind: "grant", From: AccountGrants, To: UserAccount("bob"), Amount: 1000})
		const n = 20
		var mu sync.Mutex
		created, refused := map[string]bool{}, map[string]bool{}
		byKey := map[string]map[string]int{} // key → job UUID returned → count
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				id := fmt.Sprintf("alice-%d", i)
				_, ok, err := submit(ctx, db, id, "alice", "", 10)
				mu.Lock()
				defer mu.Unlock()
				switch {
				case ok && err == nil:
					created[id] = true
				case errors.Is(err, ErrInsufficientFunds):
					refused[id] = true
				default:
					t.Errorf("SubmitFacJob(%s) = %v, %v", id, ok, err)
				}
			})
			for c := range 2 {
				wg.Go(func() {
					id, key := fmt.Sprintf("bob-%d-%d", i, c), fmt.Sprintf("key-%d", i)
					j, _, err := submit(ctx, db, id, "bob", key, 10)
					mu.Lock()
					defer mu.Unlock()
					if err != nil {
						t.Errorf("SubmitFacJob(%s) = %v", id, err)
						return
					}
					if byKey[key] == nil {
						byKey[key] = map[string]int{}
					}
					byKey[key][j.UUID]++
				})
			}
		}
		wg.Wait()
		if len(created) != 10 || len(refused) != n-10 {
			t.Errorf("%d of alice's jobs created, %d refused; want 10 and %d", len(created), len(refused), n-10)
		}
		for id := range refused {
			wantNothingOf(t, db, id)
		}
		for key, jobs := range byKey {
			if len(jobs) != 1 {
				t.Errorf("idempotency key %s gave jobs %v; want one job for both", key, jobs)
			}
		}
		wantBalances(t, db, map[string]int64{UserAccount("alice"): 0, UserAccount("bob"): 1000 - 10*n})
		if got := jobCount(t, db); got != 10+n {
			t.Errorf("%d jobs stored, want %d", got, 10+n)
		}
		if err := db.CheckLedger(ctx); err != nil {
			t.Errorf("CheckLedger: %v", err)
		}
	})
}

// TestSubmitBatch writes batches directly: each submission gets the outcome it would have
// had alone, in batch order; a conflict the batch's checks cannot foresee sends it down the
// one-by-one path, with the same outcomes.
func TestSubmitBatch(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, db *DB) {
		ctx := testContext(t)
		mustTransfer(t, db, Transfer{Key: "grant-alice", Kind: "grant", From: AccountGrants, To: UserAccount("alice"), Amount: 100})
		mustTransfer(t, db, Transfer{Key: "grant-bob", Kind: "grant", From: AccountGrants, To: UserAccount("bob"), Amount: 100})
		stored, _, err := submit(ctx, db, "stored", "bob", "key-stored", 10)
		if err != nil {
			t.Fatal(err)
		}
		cancelled, cancel := context.WithCancel(ctx)
		cancel()

		type want struct {
			created bool
			job     string // the UUID of the job returned
			err     error
		}
		run := func(name string, subs []*submission, wants []want) {
			t.Helper()
			db.writeSubmissions(subs)
			for i, s := range subs {
				<-s.done
				w := wants[i]
				if s.created != w.created || s.job.UUID != w.job || !errors.Is(s.err, w.err) || (w.err == nil) != (s.err == nil) {
					t.Errorf("%s: submission %d (%s) = %v, %q, %v; want %v, %q, %v", name, i, s.j.UUID, s.created, s.job.UUID, s.err, w.created, w.job, w.err)
				}
			}
		}
		sub := func(id, user, idem string, amount int64) *submission {
			t.Helper()
			j, hold, ev := submitArgs(id, user, idem, amount)
			s, err := db.newSubmission(ctx, j, hold, ev)
			if err != nil {
				t.Fatal(err)
			}
			return s
		}
		withCtx := func(s *submission, ctx context.Context) *submission { s.ctx = ctx; return s }

		run("batch", []*submission{
			sub("a1", "alice", "", 40),
			sub("a2", "alice", "", 40),
			sub("a3", "alice", "", 40), // 20 left
			sub("a4", "alice", "", 20), // fits after the refusal
			sub("b1", "bob", "k", 10),
			sub("b2", "bob", "k", 10),          // b1's key: b1's job
			sub("a1", "bob", "", 10),           // a1's UUID
			sub("b3", "bob", "key-stored", 10), // a stored job's key
			withCtx(sub("b4", "bob", "", 10), cancelled),
		}, []want{
			{true, "a1", nil}, {true, "a2", nil}, {false, "", ErrInsufficientFunds}, {true, "a4", nil},
			{true, "b1", nil}, {false, "b1", nil}, {false, "", ErrDuplicate}, {false, stored.UUID, nil}, {false, "", context.Canceled},
		})
		wantBalances(t, db, map[string]int64{UserAccount("alice"): 0, UserAccount("bob"): 80, HoldAccount("a4"): 20, HoldAccount("b1"): 10})
		for _, id := range []string{"a3", "b2", "b3", "b4"} {
			wantNothingOf(t, db, id)
		}
		if evs, _ := db.FacJobEvents(ctx, "b1"); len(evs) != 1 || evs[0].Seq != 0 || evs[0].Status != FacJobQueued {
			t.Errorf("events of b1: %+v", evs)
		}

		// A UUID and a hold key already stored: only writing them tells, so the batch is
		// written again one by one.
		mustTransfer(t, db, Transfer{Key: "hold:c3", Kind: "grant", From: AccountGrants, To: UserAccount("carol"), Amount: 10})
		run("fallback", []*submission{
			sub("c1", "bob", "", 10),
			sub("a1", "bob", "", 10), // stored already
			sub("c2", "bob", "", 100),
			sub("c3", "bob", "", 10), // its hold key is used
			sub("c4", "bob", "k2", 10),
			sub("c5", "bob", "k2", 10),
		}, []want{
			{true, "c1", nil}, {false, "", ErrDuplicate}, {false, "", ErrInsufficientFunds}, {false, "", ErrConflict},
			{true, "c4", nil}, {false, "c4", nil},
		})
		wantBalances(t, db, map[string]int64{UserAccount("bob"): 60})
		for _, id := range []string{"c2", "c3", "c5"} {
			wantNothingOf(t, db, id)
		}
		if j, err := db.GetFacJob(ctx, "a1"); err != nil || j.User != "alice" {
			t.Errorf("job a1 = %+v, %v; want alice's, untouched", j, err)
		}
		if err := db.CheckLedger(ctx); err != nil {
			t.Errorf("CheckLedger: %v", err)
		}
	})
}

// TestSubmitWithdrawn: a submission whose context ends while it waits for its turn is
// withdrawn, and nothing of it is written.
func TestSubmitWithdrawn(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, db *DB) {
		ctx := testContext(t)
		mustTransfer(t, db, Transfer{Key: "grant", Kind: "grant", From: AccountGrants, To: UserAccount("alice"), Amount: 100})
		// Hold every turn, as batches being written would.
		for range cap(db.submits.turn) {
			db.submits.turn <- struct{}{}
		}
		cancelled, cancel := context.WithCancel(ctx)
		cancel()
		if _, _, err := submit(cancelled, db, "w1", "alice", "", 10); !errors.Is(err, context.Canceled) {
			t.Errorf("SubmitFacJob with an ended context = %v", err)
		}
		db.submits.mu.Lock()
		pending := len(db.submits.pending)
		db.submits.mu.Unlock()
		for range cap(db.submits.turn) {
			<-db.submits.turn
		}
		if pending != 0 {
			t.Errorf("%d submissions left waiting", pending)
		}
		wantNothingOf(t, db, "w1")
		if _, created, err := submit(ctx, db, "w2", "alice", "", 10); !created || err != nil {
			t.Errorf("SubmitFacJob after a withdrawal = %v, %v", created, err)
		}
	})
}

// TestAPIKeyByHashCached: a cached key is refused at once when revoked through the same DB.
func TestAPIKeyByHashCached(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, db *DB) {
		ctx := testContext(t)
		h := sha256.Sum256([]byte("secret"))
		k, err := db.CreateAPIKey(ctx, "alice", "one", h[:])
		if err != nil {
			t.Fatal(err)
		}
		for range 2 { // looked up, then cached
			if got, err := db.APIKeyByHashCached(ctx, h[:], time.Hour); err != nil || got != k {
				t.Fatalf("APIKeyByHashCached = %+v, %v; want %+v", got, err, k)
			}
		}
		if _, err := db.APIKeyByHashCached(ctx, []byte("unknown"), time.Hour); !errors.Is(err, ErrNotFound) {
			t.Errorf("unknown key: %v", err)
		}
		// Lookups at once (maxAge 0: none is answered from the cache) share queries.
		var wg sync.WaitGroup
		for range 16 {
			wg.Go(func() {
				if got, err := db.APIKeyByHashCached(ctx, h[:], 0); err != nil || got != k {
					t.Errorf("concurrent APIKeyByHashCached = %+v, %v", got, err)
				}
			})
		}
		wg.Wait()
		if err := db.RevokeAPIKey(ctx, "alice", k.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := db.APIKeyByHashCached(ctx, h[:], time.Hour); !errors.Is(err, ErrNotFound) {
			t.Errorf("key revoked through the same DB: %v; want not found at once", err)
		}
	})
}

// TestAPIKeyByHashCachedElsewhere: a key revoked by another process is refused once its
// cached lookup is older than maxAge, and not before.
func TestAPIKeyByHashCachedElsewhere(t *testing.T) {
	t.Parallel()
	forEachReopenable(t, func(t *testing.T, dsn string) {
		ctx := testContext(t)
		here, there := openTest(t, dsn), openTest(t, dsn)
		h := sha256.Sum256([]byte("secret"))
		k, err := here.CreateAPIKey(ctx, "alice", "one", h[:])
		if err != nil {
			t.Fatal(err)
		}
		if _, err := here.APIKeyByHashCached(ctx, h[:], time.Hour); err != nil {
			t.Fatal(err)
		}
		if err := there.RevokeAPIKey(ctx, "alice", k.ID); err != nil {
			t.Fatal(err)
		}
		if got, err := here.APIKeyByHashCached(ctx, h[:], time.Hour); err != nil || got.ID != k.ID {
			t.Errorf("key revoked elsewhere, within maxAge: %+v, %v; want the cached key", got, err)
		}
		if _, err := here.APIKeyByHashCached(ctx, h[:], 0); !errors.Is(err, ErrNotFound) {
			t.Errorf("key revoked elsewhere, past maxAge: %v; want not found", err)
		}
		if _, err := here.APIKeyByHashCached(ctx, h[:], time.Hour); !errors.Is(err, ErrNotFound) {
			t.Errorf("key revoked elsewhere, once looked up again: %v; want not found", err)
		}
	})
}
