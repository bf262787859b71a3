package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Receipt is one stored receipt (protocol §7): the payload bytes as received or issued,
// with the fields the store indexes copied out of it. There is one row per (Type, JobUUID).
type Receipt struct {
	Type string // receipt_type, e.g. "JobStartedReceipt"
	// Seq tells apart receipts of one type for one job: a WorkInterval receipt's interval
	// index (protocol.ReceiptSeq); 0 for every other type.
	Seq             int
	JobUUID         string
	ValidatorHotkey string
	MinerHotkey     string
	Timestamp       time.Time       // when the receipt was generated; UTC, microseconds
	Payload         json.RawMessage // valid JSON, kept byte for byte
	// ValidatorSignature is required; MinerSignature is "" until the miner counter-signs.
	ValidatorSignature string
	MinerSignature     string
	CreatedAt          time.Time // set by the store when the row is inserted
}

// ReceiptFilter selects receipts for [DB.ListReceipts]. Zero fields do not filter.
type ReceiptFilter struct {
	Since       time.Time // Timestamp >= Since
	Until       time.Time // Timestamp < Until
	MinerHotkey string
	Type        string // receipt_type; empty means any
	Limit       int    // at most this many; 0 means no limit
}

const receiptColumns = `receipt_type, job_uuid, seq, validator_hotkey, miner_hotkey, timestamp, payload, validator_signature, miner_signature, created_at`

// InsertReceipt stores r unless a receipt with the same (Type, JobUUID, Seq) is already
// stored: the first copy wins and later ones are ignored (stored is false, err nil), with one
// exception: a copy carrying the miner's countersignature completes a stored copy of the same
// signed receipt (same validator signature) that had none, as when a validator keeps its own
// copy and later pulls the miner's; stored is then true. Callers verify both signatures first.
func (db *DB) InsertReceipt(ctx context.Context, r Receipt) (stored bool, err error) {
	if err := r.check(); err != nil {
		return false, err
	}
	return execOne(ctx, db, fmt.Sprintf("insert %s %s", r.Type, r.JobUUID), insertReceiptSQL, db.receiptArgs(r)...)
}

// insertReceiptSQL inserts a receipt with InsertReceipt's conflict rules.
const insertReceiptSQL = `INSERT INTO receipts (` + receiptColumns + `)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (receipt_type, job_uuid, seq) DO UPDATE SET miner_signature = excluded.miner_signature
		WHERE receipts.miner_signature IS NULL AND excluded.miner_signature IS NOT NULL
			AND receipts.validator_signature = excluded.validator_signature`

func (db *DB) receiptArgs(r Receipt) []any {
	return []any{r.Type, r.JobUUID, r.Seq, r.ValidatorHotkey, r.MinerHotkey, db.dialect.timeArg(r.Timestamp), string(r.Payload),
		r.ValidatorSignature, nullString(r.MinerSignature), db.dialect.timeArg(db.now())}
}

// check rejects a receipt the store cannot keep.
func (r Receipt) check() error {
	switch {
	case r.Type == "" || r.JobUUID == "":
		return fmt.Errorf("%w: receipt needs a type and a job UUID", ErrInvalid)
	case r.Seq < 0:
		return fmt.Errorf("%w: %s %s has a negative seq", ErrInvalid, r.Type, r.JobUUID)
	case r.Timestamp.IsZero():
		return fmt.Errorf("%w: %s %s has no timestamp", ErrInvalid, r.Type, r.JobUUID)
	case r.ValidatorSignature == "":
		return fmt.Errorf("%w: %s %s has no validator signature", ErrInvalid, r.Type, r.JobUUID)
	case !json.Valid(r.Payload):
		return fmt.Errorf("%w: %s %s: payload is not valid JSON", ErrInvalid, r.Type, r.JobUUID)
	}
	return nil
}

// InsertReceipts stores many receipts in one transaction, each under InsertReceipt's rules,
// and returns how many it stored: importing pulled receipt pages would otherwise pay one
// commit (an fsync on SQLite) per receipt. An invalid receipt fails the whole batch before
// anything is written, with an error wrapping ErrInvalid.
func (db *DB) InsertReceipts(ctx context.Context, rs []Receipt) (int, error) {
	for _, r := range rs {
		if err := r.check(); err != nil {
			return 0, err
		}
	}
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("store: insert %d receipts: %w", len(rs), err)
	}
	defer tx.Rollback()
	stmt, err := tx.PrepareContext(ctx, db.dialect.rebind(insertReceiptSQL))
	if err != nil {
		return 0, fmt.Errorf("store: insert %d receipts: %w", len(rs), err)
	}
	defer stmt.Close()
	n := 0
	for _, r := range rs {
		res, err := stmt.ExecContext(ctx, db.receiptArgs(r)...)
		if err != nil {
			return 0, fmt.Errorf("store: insert %s %s: %w", r.Type, r.JobUUID, err)
		}
		if k, err := res.RowsAffected(); err == nil {
			n += int(k)
		}
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("store: insert %d receipts: %w", len(rs), err)
	}
	return n, nil
}

// SetMinerSignature records the miner's counter-signature on a stored receipt. Setting the
// signature it already has is a no-op; a different one gives an error wrapping
// [ErrConflict], and a missing receipt one wrapping [ErrNotFound].
func (db *DB) SetMinerSignature(ctx context.Context, receiptType, jobUUID, sig string) error {
	if sig == "" {
		return fmt.Errorf("%w: %s %s: empty miner signature", ErrInvalid, receiptType, jobUUID)
	}
	what := fmt.Sprintf("set miner signature on %s %s", receiptType, jobUUID)
	if ok, err := execOne(ctx, db, what, `UPDATE receipts SET miner_signature = ?
		WHERE receipt_type = ? AND job_uuid = ? AND seq = 0 AND (miner_signature IS NULL OR miner_signature = ?)`,
		sig, receiptType, jobUUID, sig); ok || err != nil {
		return err
	}
	var exists int
	err := db.w.QueryRowContext(ctx, db.dialect.rebind(`SELECT 1 FROM receipts WHERE receipt_type = ? AND job_uuid = ? AND seq = 0`),
		receiptType, jobUUID).Scan(&exists)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%w: %s %s", ErrNotFound, receiptType, jobUUID)
	}
	if err != nil {
		return fmt.Errorf("store: %s: %w", what, err)
	}
	return fmt.Errorf("%w: %s %s already has a different miner signature", ErrConflict, receiptType, jobUUID)
}

// GetReceipt returns the receipt of that type for the job, or an error wrapping [ErrNotFound].
func (db *DB) GetReceipt(ctx context.Context, receiptType, jobUUID string) (Receipt, error) {
	row := db.r.QueryRowContext(ctx, db.dialect.rebind(`SELECT `+receiptColumns+` FROM receipts
		WHERE receipt_type = ? AND job_uuid = ? AND seq = 0`), receiptType, jobUUID)
	r, err := scanReceipt(row)
	if errors.Is(err, sql.ErrNoRows) {
		return Receipt{}, fmt.Errorf("%w: %s %s", ErrNotFound, receiptType, jobUUID)
	}
	if err != nil {
		return Receipt{}, fmt.Errorf("store: get %s %s: %w", receiptType, jobUUID, err)
	}
	return r, nil
}

// ListReceipts returns the receipts matching f in timestamp order (then type, job UUID).
func (db *DB) ListReceipts(ctx context.Context, f ReceiptFilter) ([]Receipt, error) {
	var q listQuery
	if !f.Since.IsZero() {
		q.add(`timestamp >= ?`, db.dialect.timeArg(f.Since))
	}
	if !f.Until.IsZero() {
		q.add(`timestamp < ?`, db.dialect.timeArg(f.Until))
	}
	if f.MinerHotkey != "" {
		q.add(`miner_hotkey = ?`, f.MinerHotkey)
	}
	if f.Type != "" {
		q.add(`receipt_type = ?`, f.Type)
	}
	return list(ctx, db, "receipts", `SELECT `+receiptColumns+` FROM receipts`, `timestamp, receipt_type, job_uuid, seq`, q, f.Limit, scanReceipt)
}

// ReceiptsStoredBetween returns the receipts the store inserted at a CreatedAt in
// [from, to) (not by the payload's Timestamp), in insertion order: CreatedAt, then type,
// then job UUID. This is how a miner lays out its receipts pages (protocol §7.3): a
// receipt goes to the page that is current when it is stored, and a page only grows at
// its end. created_at has no index, so this reads the whole table; callers cache.
func (db *DB) ReceiptsStoredBetween(ctx context.Context, from, to time.Time) ([]Receipt, error) {
	var q listQuery
	q.add(`created_at >= ?`, db.dialect.timeArg(from))
	q.add(`created_at < ?`, db.dialect.timeArg(to))
	return list(ctx, db, "receipts stored between", `SELECT `+receiptColumns+` FROM receipts`,
		`created_at, receipt_type, job_uuid, seq`, q, 0, scanReceipt)
}

func scanReceipt(s scanner) (Receipt, error) {
	var r Receipt
	var payload string
	var minerSig sql.NullString
	err := s.Scan(&r.Type, &r.JobUUID, &r.Seq, &r.ValidatorHotkey, &r.MinerHotkey, timeCol{&r.Timestamp}, &payload,
		&r.ValidatorSignature, &minerSig, timeCol{&r.CreatedAt})
	if err != nil {
		return Receipt{}, err
	}
	r.Payload = json.RawMessage(payload)
	r.MinerSignature = minerSig.String
	return r, nil
}
