package store

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// mustTransfer applies t and fails the test unless it was applied.
func mustTransfer(t *testing.T, db *DB, tr Transfer) {
	t.Helper()
	if applied, err := db.Transfer(testContext(t), tr); !applied || err != nil {
		t.Fatalf("Transfer(%+v) = %v, %v", tr, applied, err)
	}
}

// wantBalances fails the test unless every account has the balance given.
func wantBalances(t *testing.T, db *DB, want map[string]int64) {
	t.Helper()
	for account, w := range want {
		if got, err := db.Balance(testContext(t), account); got != w || err != nil {
			t.Errorf("Balance(%s) = %d, %v; want %d", account, got, err, w)
		}
	}
}

func TestTransfer(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, db *DB) {
		ctx := testContext(t)
		now := time.Date(2026, 5, 6, 7, 8, 9, 123456789, time.UTC)
		db.now = func() time.Time { return now }
		alice, hold := UserAccount("alice"), HoldAccount("job-1")
		if alice != "user:alice" || hold != "hold:job-1" {
			t.Fatalf("account names %q %q", alice, hold)
		}
		wantBalances(t, db, map[string]int64{alice: 0, AccountGrants: 0})

		grant := Transfer{Key: "grant-1", Kind: "grant", From: AccountGrants, To: alice, Amount: 100, Note: "welcome"}
		mustTransfer(t, db, grant)
		wantBalances(t, db, map[string]int64{alice: 100, AccountGrants: -100})

		// Repeats: the same transfer is a no-op (a different note does not matter); another
		// transfer under the same key is a conflict.
		for _, again := range []Transfer{grant, func() Transfer { g := grant; g.Note = "retry"; return g }()} {
			if applied, err := db.Transfer(ctx, again); applied || err != nil {
				t.Errorf("repeated Transfer = %v, %v; want a no-op", applied, err)
			}
		}
		for name, bad := range map[string]Transfer{
			"amount": {Key: "grant-1", Kind: "grant", From: AccountGrants, To: alice, Amount: 101},
			"to":     {Key: "grant-1", Kind: "grant", From: AccountGrants, To: UserAccount("bob"), Amount: 100},
			"from":   {Key: "grant-1", Kind: "grant", From: AccountRevenue, To: alice, Amount: 100},
			"kind":   {Key: "grant-1", Kind: "refund", From: AccountGrants, To: alice, Amount: 100},
		} {
			applied, err := db.Transfer(ctx, bad)
			if applied || !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "transfer key grant-1 was already used for grant 100 from system:grants to user:alice") {
				t.Errorf("Transfer reusing the key with another %s = %v, %v; want a conflict", name, applied, err)
			}
		}
		wantBalances(t, db, map[string]int64{alice: 100, AccountGrants: -100, UserAccount("bob"): 0})

		// A job's life: hold, charge part of it, release the rest.
		mustTransfer(t, db, Transfer{Key: "hold-job-1", Kind: "hold", From: alice, To: hold, Amount: 30, JobUUID: "job-1"})
		mustTransfer(t, db, Transfer{Key: "charge-job-1", Kind: "charge", From: hold, To: AccountRevenue, Amount: 20, JobUUID: "job-1"})
		mustTransfer(t, db, Transfer{Key: "release-job-1", Kind: "release", From: hold, To: alice, Amount: 10, JobUUID: "job-1", Note: "unused"})
		wantBalances(t, db, map[string]int64{alice: 80, hold: 0, AccountRevenue: 20, AccountGrants: -100})

		// Not enough credits: refused with the balance and the amount, nothing written, and
		// the key stays free.
		before, _ := db.LedgerEntries(ctx, "", 0)
		applied, err := db.Transfer(ctx, Transfer{Key: "hold-job-2", Kind: "hold", From: alice, To: HoldAccount("job-2"), Amount: 81, JobUUID: "job-2"})
		if applied || !errors.Is(err, ErrInsufficientFunds) || err.Error() != "store: insufficient balance: user:alice has 80, hold hold-job-2 needs 81" {
			t.Errorf("overdrawing Transfer = %v, %v", applied, err)
		}
		if after, _ := db.LedgerEntries(ctx, "", 0); len(after) != len(before) {
			t.Errorf("a refused transfer wrote %d entries", len(after)-len(before))
		}
		wantBalances(t, db, map[string]int64{alice: 80, HoldAccount("job-2"): 0})
		mustTransfer(t, db, Transfer{Key: "hold-job-2", Kind: "hold", From: alice, To: HoldAccount("job-2"), Amount: 80, JobUUID: "job-2"})
		// An account never credited has nothing to give; a system account may go negative.
		if _, err := db.Transfer(ctx, Transfer{Key: "x", Kind: "hold", From: UserAccount("nobody"), To: hold, Amount: 1}); !errors.Is(err, ErrInsufficientFunds) ||
			!strings.Contains(err.Error(), "user:nobody has 0") {
			t.Errorf("Transfer from an empty account: %v", err)
		}
		mustTransfer(t, db, Transfer{Key: "refund-1", Kind: "refund", From: AccountRevenue, To: alice, Amount: 50})
		wantBalances(t, db, map[string]int64{alice: 50, AccountRevenue: -30})

		for name, bad := range map[string]Transfer{
			"no key":      {Kind: "grant", From: AccountGrants, To: alice, Amount: 1},
			"no kind":     {Key: "k", From: AccountGrants, To: alice, Amount: 1},
			"no from":     {Key: "k", Kind: "grant", To: alice, Amount: 1},
			"no to":       {Key: "k", Kind: "grant", From: AccountGrants, Amount: 1},
			"to itself":   {Key: "k", Kind: "grant", From: alice, To: alice, Amount: 1},
			"zero amount": {Key: "k", Kind: "grant", From: AccountGrants, To: alice},
			"negative":    {Key: "k", Kind: "grant", From: AccountGrants, To: alice, Amount: -5},
		} {
			if applied, err := db.Transfer(ctx, bad); applied || !errors.Is(err, ErrInvalid) {
				t.Errorf("Transfer(%s) = %v, %v; want ErrInvalid", name, applied, err)
			}
		}

		at := now.Truncate(time.Microsecond)
		entry := func(key, kind, account string, amount int64, job, note string) LedgerEntry {
			return LedgerEntry{Key: key, Kind: kind, Account: account, Amount: amount, JobUUID: job, Note: note, CreatedAt: at}
		}
		noIDs := func(es []LedgerEntry) []LedgerEntry {
			for i := range es {
				if es[i].ID == 0 {
					t.Errorf("entry %+v has no ID", es[i])
				}
				es[i].ID = 0
			}
			return es
		}
		got, err := db.JobLedger(ctx, "job-1")
		want := []LedgerEntry{
			entry("hold-job-1", "hold", alice, -30, "job-1", ""), entry("hold-job-1", "hold", hold, 30, "job-1", ""),
			entry("charge-job-1", "charge", hold, -20, "job-1", ""), entry("charge-job-1", "charge", AccountRevenue, 20, "job-1", ""),
			entry("release-job-1", "release", hold, -10, "job-1", "unused"), entry("release-job-1", "release", alice, 10, "job-1", "unused"),
		}
		if err != nil || !reflect.DeepEqual(noIDs(got), want) {
			t.Errorf("JobLedger(job-1) = %v\n%+v\nwant\n%+v", err, got, want)
		}
		if got, err := db.JobLedger(ctx, "job-9"); err != nil || len(got) != 0 {
			t.Errorf("JobLedger of a job without entries = %+v, %v", got, err)
		}
		if _, err := db.JobLedger(ctx, ""); !errors.Is(err, ErrInvalid) {
			t.Errorf("JobLedger(\"\"): %v", err)
		}

		got, err = db.LedgerEntries(ctx, alice, 0)
		want = []LedgerEntry{
			entry("refund-1", "refund", alice, 50, "", ""),
			entry("hold-job-2", "hold", alice, -80, "job-2", ""),
			entry("release-job-1", "release", alice, 10, "job-1", "unused"),
			entry("hold-job-1", "hold", alice, -30, "job-1", ""),
			entry("grant-1", "grant", alice, 100, "", "welcome"),
		}
		if err != nil || !reflect.DeepEqual(noIDs(got), want) {
			t.Errorf("LedgerEntries(alice) = %v\n%+v\nwant\n%+v", err, got, want)
		}
		all, err := db.LedgerEntries(ctx, "", 0)
		if err != nil || len(all) != 12 {
			t.Fatalf("LedgerEntries(all) = %d entries, %v; want 12", len(all), err)
		}
		for i := 1; i < len(all); i++ {
			if all[i].ID >= all[i-1].ID {
				t.Errorf("LedgerEntries(all) is not newest first: %+v", all)
			}
		}
		if top, err := db.LedgerEntries(ctx, "", 3); err != nil || !reflect.DeepEqual(top, all[:3]) {
			t.Errorf("LedgerEntries(all, 3) = %+v, %v; want %+v", top, err, all[:3])
		}
		if err := db.CheckLedger(ctx); err != nil {
			t.Errorf("CheckLedger: %v", err)
		}
	})
}

// TestTransferConcurrent: many transfers at once from one account never overdraw it. On
// PostgreSQL the goroutines run on different connections of the pool, as several processes
// would.
func TestTransferConcurrent(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, db *DB) {
		ctx := testContext(t)
		alice := UserAccount("alice")
		mustTransfer(t, db, Transfer{Key: "grant", Kind: "grant", From: AccountGrants, To: alice, Amount: 100})
		const n = 20
		var ok, poor atomic.Int64
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				job := fmt.Sprintf("job-%d", i)
				applied, err := db.Transfer(ctx, Transfer{Key: "hold-" + job, Kind: "hold", From: alice, To: HoldAccount(job), Amount: 10, JobUUID: job})
				switch {
				case applied && err == nil:
					ok.Add(1)
				case !applied && errors.Is(err, ErrInsufficientFunds):
					poor.Add(1)
				default:
					t.Errorf("hold %s = %v, %v", job, applied, err)
				}
			})
		}
		wg.Wait()
		if ok.Load() != 10 || poor.Load() != n-10 {
			t.Errorf("%d holds succeeded and %d were refused; want 10 and %d", ok.Load(), poor.Load(), n-10)
		}
		wantBalances(t, db, map[string]int64{alice: 0})
		if err := db.CheckLedger(ctx); err != nil {
			t.Errorf("CheckLedger: %v", err)
		}

		// The same transfer sent by several callers at once is applied once.
		var applied atomic.Int64
		for range 8 {
			wg.Go(func() {
				ok, err := db.Transfer(ctx, Transfer{Key: "grant-2", Kind: "grant", From: AccountGrants, To: alice, Amount: 7})
				if err != nil {
					t.Errorf("concurrent repeat: %v", err)
				}
				if ok {
					applied.Add(1)
				}
			})
		}
		wg.Wait()
		if applied.Load() != 1 {
			t.Errorf("a transfer sent 8 times at once was applied %d times", applied.Load())
		}
		wantBalances(t, db, map[string]int64{alice: 7})

		// Transfers both ways between two accounts at once do not deadlock.
		bob := UserAccount("bob")
		mustTransfer(t, db, Transfer{Key: "grant-bob", Kind: "grant", From: AccountGrants, To: bob, Amount: 1000})
		mustTransfer(t, db, Transfer{Key: "grant-alice", Kind: "grant", From: AccountGrants, To: alice, Amount: 993})
		for g := range 10 {
			wg.Go(func() {
				for i := range 10 {
					from, to := alice, bob
					if (g+i)%2 == 1 {
						from, to = bob, alice
					}
					if _, err := db.Transfer(ctx, Transfer{Key: fmt.Sprintf("swap-%d-%d", g, i), Kind: "gift", From: from, To: to, Amount: 1}); err != nil {
						t.Errorf("swap %d-%d: %v", g, i, err)
					}
				}
			})
		}
		wg.Wait()
		wantBalances(t, db, map[string]int64{alice: 1000, bob: 1000})
		if err := db.CheckLedger(ctx); err != nil {
			t.Errorf("CheckLedger: %v", err)
		}
	})
}

// TestTransferTwoProcesses: two DBs on one database (two processes, or two facilitator
// replicas) together never overdraw an account.
func TestTransferTwoProcesses(t *testing.T) {
	t.Parallel()
	forEachReopenable(t, func(t *testing.T, dsn string) {
		ctx := testContext(t)
		dbs := []*DB{openTest(t, dsn), openTest(t, dsn)}
		alice := UserAccount("alice")
		mustTransfer(t, dbs[0], Transfer{Key: "grant", Kind: "grant", From: AccountGrants, To: alice, Amount: 100})
		var ok atomic.Int64
		var wg sync.WaitGroup
		for i := range 20 {
			wg.Go(func() {
				job := fmt.Sprintf("job-%d", i)
				applied, err := dbs[i%2].Transfer(ctx, Transfer{Key: "hold-" + job, Kind: "hold", From: alice, To: HoldAccount(job), Amount: 10})
				if applied {
					ok.Add(1)
				} else if !errors.Is(err, ErrInsufficientFunds) {
					t.Errorf("hold %s = %v, %v", job, applied, err)
				}
			})
		}
		wg.Wait()
		if ok.Load() != 10 {
			t.Errorf("%d holds succeeded, want 10", ok.Load())
		}
		wantBalances(t, dbs[1], map[string]int64{alice: 0})
		if err := dbs[1].CheckLedger(ctx); err != nil {
			t.Errorf("CheckLedger: %v", err)
		}
	})
}

// TestCheckLedger: each invariant, broken by writing rows behind the store's back, is named.
func TestCheckLedger(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, db *DB) {
		ctx := testContext(t)
		if err := db.CheckLedger(ctx); err != nil {
			t.Fatalf("CheckLedger of an empty ledger: %v", err)
		}
		mustTransfer(t, db, Transfer{Key: "grant", Kind: "grant", From: AccountGrants, To: UserAccount("alice"), Amount: 100})
		mustTransfer(t, db, Transfer{Key: "hold", Kind: "hold", From: UserAccount("alice"), To: HoldAccount("j"), Amount: 40})
		exec := func(stmt string, args ...any) {
			t.Helper()
			if _, err := db.w.ExecContext(ctx, db.dialect.rebind(stmt), args...); err != nil {
				t.Fatalf("%s: %v", stmt, err)
			}
		}
		entry := func(key, account string, amount int64) {
			t.Helper()
			exec(`INSERT INTO ledger_entries (tx_key, kind, account, amount, job_uuid, note, created_at) VALUES (?, 'grant', ?, ?, '', '', ?)`,
				key, account, amount, db.dialect.timeArg(time.Now()))
		}
		for _, tc := range []struct {
			name         string
			tamper, undo func()
			want         string
		}{
			{"unbalanced entry", func() { entry("tamper", "user:mallory", 5) }, func() { exec(`DELETE FROM ledger_entries WHERE tx_key = 'tamper'`) },
				"store: ledger is broken: its 5 entries sum to 5, not 0"},
			{"one-sided transfers", func() { entry("t1", "user:mallory", 5); entry("t2", "user:eve", -5) },
				func() { exec(`DELETE FROM ledger_entries WHERE tx_key IN ('t1', 't2')`) },
				"store: ledger is broken: transfer t1 has 1 entries summing to 5, not 2 summing to 0"},
			{"edited balance", func() { exec(`UPDATE ledger_balances SET balance = 99 WHERE account = 'user:alice'`) },
				func() { exec(`UPDATE ledger_balances SET balance = 60 WHERE account = 'user:alice'`) },
				"store: ledger is broken: user:alice has a stored balance of 99 but its entries sum to 60"},
			{"balance without entries", func() {
				exec(`INSERT INTO ledger_balances (account, balance, updated_at) VALUES ('user:ghost', 3, ?)`, db.dialect.timeArg(time.Now()))
			},
				func() { exec(`DELETE FROM ledger_balances WHERE account = 'user:ghost'`) },
				"store: ledger is broken: user:ghost has a stored balance of 3 but its entries sum to 0"},
			{"negative user balance", func() {
				entry("t3", "user:eve", -5)
				entry("t3", "SYSTEM:eve", 5)
				exec(`INSERT INTO ledger_balances (account, balance, updated_at) VALUES ('user:eve', -5, ?), ('SYSTEM:eve', 5, ?)`,
					db.dialect.timeArg(time.Now()), db.dialect.timeArg(time.Now()))
			}, func() {
				exec(`DELETE FROM ledger_entries WHERE tx_key = 't3'`)
				exec(`DELETE FROM ledger_balances WHERE account IN ('user:eve', 'SYSTEM:eve')`)
			}, "store: ledger is broken: user:eve has a negative balance, -5"},
		} {
			tc.tamper()
			if err := db.CheckLedger(ctx); err == nil || err.Error() != tc.want {
				t.Errorf("%s: CheckLedger = %v, want %q", tc.name, err, tc.want)
			}
			tc.undo()
			if err := db.CheckLedger(ctx); err != nil {
				t.Errorf("%s undone: CheckLedger: %v", tc.name, err)
			}
		}
	})
}

// TestFacilitatorMigration: 0007 exists for both engines, and applying it again to a database
// that already has its tables (as tests that roll the schema back do) keeps their rows.
func TestFacilitatorMigration(t *testing.T) {
	t.Parallel()
	for _, d := range []dialect{dialectSQLite, dialectPostgres} {
		migs, err := loadMigrations(migrationFiles, d)
		if err != nil || len(migs) < 7 || migs[6].name != "facilitator" {
			t.Errorf("%s: migration 0007 = %+v, %v", d, migs, err)
		}
	}
	forEachReopenable(t, func(t *testing.T, dsn string) {
		ctx := testContext(t)
		db := openTest(t, dsn)
		mustTransfer(t, db, Transfer{Key: "grant", Kind: "grant", From: AccountGrants, To: UserAccount("alice"), Amount: 5})
		if _, err := db.w.ExecContext(ctx, `DELETE FROM schema_migrations WHERE version >= 7`); err != nil {
			t.Fatal(err)
		}
		db = openTest(t, dsn)
		if v, err := db.schemaVersion(ctx); err != nil || v < 7 {
			t.Errorf("schema version %d, %v", v, err)
		}
		wantBalances(t, db, map[string]int64{UserAccount("alice"): 5})
		if err := db.CheckLedger(ctx); err != nil {
			t.Errorf("CheckLedger: %v", err)
		}
	})
}
