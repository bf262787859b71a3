package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// The facilitator's credit ledger is double-entry and append-only: every [DB.Transfer] writes
// two entries under one idempotency key, −Amount on the source account and +Amount on the
// destination, so all entries always sum to zero. Amounts are int64 micro-credits. Beside the
// entries, ledger_balances keeps each account's running sum: reading a balance is then one
// row, and the rule that a user's balance never goes negative is one guarded UPDATE that
// PostgreSQL's row lock makes safe across processes. [DB.CheckLedger] verifies that the two
// agree.

// System accounts. An account whose name starts with "system:" may go negative; any other
// may not.
const (
	AccountGrants  = "system:grants"  // source of granted credits; a system account may go negative
	AccountRevenue = "system:revenue" // where charges go
)

const systemAccountPrefix = "system:"

// UserAccount is the ledger account of a user's spendable credits.
func UserAccount(user string) string { return "user:" + user }

// HoldAccount is the ledger account holding credits reserved for a job until it is charged
// or released.
func HoldAccount(job string) string { return "hold:" + job }

func isSystemAccount(account string) bool { return strings.HasPrefix(account, systemAccountPrefix) }

// ErrInsufficientFunds: a transfer would take a non-system account below zero.
var ErrInsufficientFunds = errors.New("store: insufficient balance")

// Transfer is one movement of credits between two accounts.
type Transfer struct {
	Key      string // idempotency key, unique across the ledger (required)
	Kind     string // grant, hold, charge, release, refund (required, free text but non-empty)
	From, To string // accounts (required, different)
	Amount   int64  // > 0
	JobUUID  string // optional
	Note     string // optional
}

func (t Transfer) check() error {
	switch {
	case t.Key == "":
		return fmt.Errorf("%w: transfer without a key", ErrInvalid)
	case t.Kind == "":
		return fmt.Errorf("%w: transfer %s has no kind", ErrInvalid, t.Key)
	case t.From == "" || t.To == "":
		return fmt.Errorf("%w: transfer %s needs a source and a destination account", ErrInvalid, t.Key)
	case t.From == t.To:
		return fmt.Errorf("%w: transfer %s moves %s to itself", ErrInvalid, t.Key, t.From)
	case t.Amount <= 0:
		return fmt.Errorf("%w: transfer %s: amount %d is not positive", ErrInvalid, t.Key, t.Amount)
	}
	return nil
}

// LedgerEntry is one side of a transfer: Amount is negative on the source account and
// positive on the destination.
type LedgerEntry struct {
	ID                 int64
	Key, Kind, Account string
	Amount             int64 // signed
	JobUUID, Note      string
	CreatedAt          time.Time
}

const ledgerColumns = `id, tx_key, kind, account, amount, job_uuid, note, created_at`

// insertEntrySQL appends one ledger entry. The partial unique indexes of migration 0007 allow
// one debit and one credit per key; DO NOTHING turns a repeated debit into "already applied"
// (on PostgreSQL it first waits for a concurrent transfer with the same key to finish).
const insertEntrySQL = `INSERT INTO ledger_entries (tx_key, kind, account, amount, job_uuid, note, created_at)
	VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`

// Transfer applies t atomically in one transaction: two append-only entries (−Amount on
// From, +Amount on To, both carrying Key, Kind, JobUUID and Note) and the two balances. A
// non-system account may never go below zero: that gives an error wrapping
// [ErrInsufficientFunds] that says the balance and the amount, and nothing is written. A
// repeat of a Key already applied with the same From, To, Amount and Kind is a no-op
// (applied is false, err nil); with different fields, an error wrapping [ErrConflict].
//
// It is safe for concurrent use by several processes on one PostgreSQL database: the debit is
// an UPDATE … WHERE balance >= amount, which re-checks the balance under the row lock, and
// the two balances are updated in account-name order so that opposite transfers between two
// accounts cannot deadlock. On SQLite the single writer connection serialises transfers.
func (db *DB) Transfer(ctx context.Context, t Transfer) (applied bool, err error) {
	if err := t.check(); err != nil {
		return false, err
	}
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("store: %s: %w", t.what(), err)
	}
	defer tx.Rollback()
	applied, err = db.applyTransfer(ctx, tx, t, db.dialect.timeArg(db.now()))
	if err != nil || !applied {
		return false, err
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("store: %s: commit: %w", t.what(), err)
	}
	return true, nil
}

func (t Transfer) what() string {
	return fmt.Sprintf("transfer %s (%s %d from %s to %s)", t.Key, t.Kind, t.Amount, t.From, t.To)
}

// applyTransfer writes the checked transfer t in tx, as Transfer describes: false and a nil
// error for a repeat of a transfer already applied, an error wrapping ErrInsufficientFunds
// (the caller rolls back) when the source cannot pay. It writes both entries first and the
// balances last: for a hold ("hold:…" sorts before "user:…") the user's debit is then its
// last write, and on PostgreSQL the row lock that serialises a user's transfers is held only
// from there to the commit.
func (db *DB) applyTransfer(ctx context.Context, tx *sql.Tx, t Transfer, now any) (bool, error) {
	what := t.what()
	res, err := db.txExec(ctx, tx, insertEntrySQL, t.Key, t.Kind, t.From, -t.Amount, t.JobUUID, t.Note, now)
	if err != nil {
		return false, fmt.Errorf("store: %s: %w", what, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return false, fmt.Errorf("store: %s: %w", what, err)
	} else if n == 0 {
		return false, db.checkRepeat(ctx, tx, t)
	}
	if _, err := db.txExec(ctx, tx, insertCreditSQL, t.Key, t.Kind, t.To, t.Amount, t.JobUUID, t.Note, now); err != nil {
		return false, fmt.Errorf("store: %s: %w", what, err)
	}

	// The balances in account-name order, so that opposite transfers between two accounts
	// cannot deadlock.
	legs := [2]struct {
		account string
		delta   int64
	}{{t.From, -t.Amount}, {t.To, t.Amount}}
	if t.To < t.From {
		legs[0], legs[1] = legs[1], legs[0]
	}
	for _, l := range legs {
		if l.delta < 0 && !isSystemAccount(l.account) {
			err = db.debit(ctx, tx, t, now)
		} else {
			_, err = db.txExec(ctx, tx, creditBalanceSQL, l.account, l.delta, now)
		}
		if err != nil {
			if errors.Is(err, ErrInsufficientFunds) {
				return false, err
			}
			return false, fmt.Errorf("store: %s: update the balance of %s: %w", what, l.account, err)
		}
	}
	return true, nil
}

const (
	insertCreditSQL = `INSERT INTO ledger_entries (tx_key, kind, account, amount, job_uuid, note, created_at)
	VALUES (?, ?, ?, ?, ?, ?, ?)`
	creditBalanceSQL = `INSERT INTO ledger_balances (account, balance, updated_at) VALUES (?, ?, ?)
	ON CONFLICT (account) DO UPDATE SET balance = ledger_balances.balance + excluded.balance, updated_at = excluded.updated_at`
	debitBalanceSQL = `UPDATE ledger_balances SET balance = balance - ?, updated_at = ? WHERE account = ? AND balance >= ?`
)

// debit takes t.Amount from the non-system account t.From, or fails with
// ErrInsufficientFunds. The balance condition is part of the UPDATE, so PostgreSQL evaluates
// it on the latest committed balance after waiting for the row lock: two concurrent debits
// can never both pass on the same credits.
func (db *DB) debit(ctx context.Context, tx *sql.Tx, t Transfer, now any) error {
	res, err := db.txExec(ctx, tx, debitBalanceSQL, t.Amount, now, t.From, t.Amount)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil || n == 1 {
		return err
	}
	var balance int64
	err = db.txQueryRow(ctx, tx, balanceSQL, t.From).Scan(&balance)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return err
	}
	return insufficientFunds(t, balance)
}

const balanceSQL = `SELECT balance FROM ledger_balances WHERE account = ?`

// insufficientFunds is the error of transfer t refused for a balance of its source too low.
func insufficientFunds(t Transfer, balance int64) error {
	return fmt.Errorf("%w: %s has %d, %s %s needs %d", ErrInsufficientFunds, t.From, balance, t.Kind, t.Key, t.Amount)
}

// checkRepeat compares t with the transfer already stored under its key: nil when they are
// the same transfer, an error wrapping ErrConflict when the key was used for another one.
func (db *DB) checkRepeat(ctx context.Context, tx *sql.Tx, t Transfer) error {
	rows, err := tx.QueryContext(ctx, db.dialect.rebind(`SELECT kind, account, amount FROM ledger_entries WHERE tx_key = ? ORDER BY amount`), t.Key)
	if err != nil {
		return fmt.Errorf("store: transfer %s: read the stored transfer: %w", t.Key, err)
	}
	defer rows.Close()
	var prev Transfer
	for rows.Next() {
		var kind, account string
		var amount int64
		if err := rows.Scan(&kind, &account, &amount); err != nil {
			return fmt.Errorf("store: transfer %s: read the stored transfer: %w", t.Key, err)
		}
		prev.Kind = kind
		if amount < 0 {
			prev.From, prev.Amount = account, -amount
		} else {
			prev.To = account
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("store: transfer %s: read the stored transfer: %w", t.Key, err)
	}
	if prev.Kind != t.Kind || prev.From != t.From || prev.To != t.To || prev.Amount != t.Amount {
		return fmt.Errorf("%w: transfer key %s was already used for %s %d from %s to %s, not %s %d from %s to %s",
			ErrConflict, t.Key, prev.Kind, prev.Amount, prev.From, prev.To, t.Kind, t.Amount, t.From, t.To)
	}
	return nil
}

// Balance returns the balance of account; 0 for an account never used.
func (db *DB) Balance(ctx context.Context, account string) (int64, error) {
	var balance int64
	err := db.r.QueryRowContext(ctx, db.dialect.rebind(`SELECT balance FROM ledger_balances WHERE account = ?`), account).Scan(&balance)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("store: balance of %s: %w", account, err)
	}
	return balance, nil
}

// LedgerEntries returns the entries of account ("" means all accounts), newest first (in
// the order they were written), at most limit of them (0 means no limit).
func (db *DB) LedgerEntries(ctx context.Context, account string, limit int) ([]LedgerEntry, error) {
	var q listQuery
	if account != "" {
		q.add(`account = ?`, account)
	}
	return list(ctx, db, "ledger entries", `SELECT `+ledgerColumns+` FROM ledger_entries`, `id DESC`, q, limit, scanLedgerEntry)
}

// JobLedger returns the entries tied to job (their JobUUID), oldest first.
func (db *DB) JobLedger(ctx context.Context, job string) ([]LedgerEntry, error) {
	if job == "" {
		return nil, fmt.Errorf("%w: job ledger without a job UUID", ErrInvalid)
	}
	var q listQuery
	q.add(`job_uuid = ?`, job)
	return list(ctx, db, "ledger entries of job "+job, `SELECT `+ledgerColumns+` FROM ledger_entries`, `id`, q, 0, scanLedgerEntry)
}

func scanLedgerEntry(s scanner) (LedgerEntry, error) {
	var e LedgerEntry
	err := s.Scan(&e.ID, &e.Key, &e.Kind, &e.Account, &e.Amount, &e.JobUUID, &e.Note, timeCol{&e.CreatedAt})
	return e, err
}

// CheckLedger verifies the ledger's invariants, in this order: all entries sum to zero; every
// transfer key has exactly two entries that sum to zero; every account's stored balance equals
// the sum of its entries; no non-system balance is negative. It returns nil when they hold,
// and otherwise an error naming the first broken one. The checks read one snapshot (a
// repeatable-read transaction on PostgreSQL), so transfers committed meanwhile cannot make a
// sound ledger look broken.
func (db *DB) CheckLedger(ctx context.Context) error {
	opts := &sql.TxOptions{ReadOnly: true}
	if db.dialect == dialectPostgres {
		opts.Isolation = sql.LevelRepeatableRead
	}
	tx, err := db.r.BeginTx(ctx, opts)
	if err != nil {
		return fmt.Errorf("store: check ledger: %w", err)
	}
	defer tx.Rollback()

	var total, entries int64
	if err := tx.QueryRowContext(ctx, `SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT), COUNT(*) FROM ledger_entries`).Scan(&total, &entries); err != nil {
		return fmt.Errorf("store: check ledger: sum the entries: %w", err)
	}
	if total != 0 {
		return fmt.Errorf("store: ledger is broken: its %d entries sum to %d, not 0", entries, total)
	}

	var key string
	var sum, count int64
	err = tx.QueryRowContext(ctx, `SELECT tx_key, CAST(SUM(amount) AS BIGINT), COUNT(*) FROM ledger_entries
		GROUP BY tx_key HAVING SUM(amount) <> 0 OR COUNT(*) <> 2 ORDER BY tx_key LIMIT 1`).Scan(&key, &sum, &count)
	switch {
	case err == nil:
		return fmt.Errorf("store: ledger is broken: transfer %s has %d entries summing to %d, not 2 summing to 0", key, count, sum)
	case !errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("store: check ledger: sum each transfer: %w", err)
	}

	// An account may have a balance row and no entries (tampering) or entries and no balance
	// row; the UNION ALL sees both.
	var account string
	var stored, summed int64
	err = tx.QueryRowContext(ctx, `SELECT account, CAST(SUM(stored) AS BIGINT), CAST(SUM(summed) AS BIGINT) FROM (
			SELECT account, balance AS stored, 0 AS summed FROM ledger_balances
			UNION ALL
			SELECT account, 0, amount FROM ledger_entries
		) AS t GROUP BY account HAVING SUM(stored) <> SUM(summed) ORDER BY account LIMIT 1`).Scan(&account, &stored, &summed)
	switch {
	case err == nil:
		return fmt.Errorf("store: ledger is broken: %s has a stored balance of %d but its entries sum to %d", account, stored, summed)
	case !errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("store: check ledger: compare balances with entries: %w", err)
	}

	// substr, not LIKE: SQLite's LIKE ignores case, and "SYSTEM:x" is not a system account.
	err = tx.QueryRowContext(ctx, db.dialect.rebind(`SELECT account, balance FROM ledger_balances
		WHERE balance < 0 AND substr(account, 1, ?) <> ? ORDER BY account LIMIT 1`),
		len(systemAccountPrefix), systemAccountPrefix).Scan(&account, &stored)
	switch {
	case err == nil:
		return fmt.Errorf("store: ledger is broken: %s has a negative balance, %d", account, stored)
	case !errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("store: check ledger: look for negative balances: %w", err)
	}
	return nil
}
