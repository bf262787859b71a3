package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Facilitator job statuses beyond upstream's JobStatus strings (received, accepted,
// executor_ready, volumes_ready, streaming_ready, execution_done, completed, failed, rejected,
// horde_failed), which the facilitator stores as the validator reports them.
const (
	FacJobQueued    = "queued"    // waiting for a validator
	FacJobSent      = "sent"      // dispatched to Validator, no status back yet
	FacJobCancelled = "cancelled" // cancelled by its user before it finished
)

// FacJob is a job as the facilitator tracks it: submitted by User, queued, dispatched to a
// validator, and followed through the statuses the validator reports.
type FacJob struct {
	UUID            string
	User            string
	Class           string
	Status          string
	Spec            json.RawMessage // required valid JSON, kept byte for byte
	TargetValidator string          // "" = any
	Validator       string          // hotkey it was dispatched to; "" while queued
	Dispatcher      string          // replica that dispatched it; "" while queued
	IdempotencyKey  string          // "" = none
	Price           int64           // micro-credits per second, fixed at submit
	MaxCost         int64
	Charged         int64
	Result          json.RawMessage // nil until set
	// CreatedAt defaults to the time of CreateFacJob and UpdatedAt to CreatedAt; DispatchedAt
	// is zero until the job is claimed. All are UTC, truncated to the microsecond.
	CreatedAt, UpdatedAt, DispatchedAt time.Time
}

const facJobColumns = `uuid, user_hotkey, executor_class, status, spec, target_validator, validator, dispatcher, idempotency_key,
	price, max_cost, charged, result, created_at, updated_at, dispatched_at`

func (j *FacJob) validate() error {
	switch {
	case j.UUID == "":
		return fmt.Errorf("%w: facilitator job has no UUID", ErrInvalid)
	case j.User == "":
		return fmt.Errorf("%w: facilitator job %s has no user", ErrInvalid, j.UUID)
	case j.Status == "":
		return fmt.Errorf("%w: facilitator job %s has no status", ErrInvalid, j.UUID)
	case !json.Valid(j.Spec):
		return fmt.Errorf("%w: facilitator job %s: spec is not valid JSON", ErrInvalid, j.UUID)
	case j.Result != nil && !json.Valid(j.Result):
		return fmt.Errorf("%w: facilitator job %s: result is not valid JSON", ErrInvalid, j.UUID)
	case j.Price < 0 || j.MaxCost < 0 || j.Charged < 0:
		return fmt.Errorf("%w: facilitator job %s: price, max cost and charged may not be negative", ErrInvalid, j.UUID)
	}
	return nil
}

// CreateFacJob inserts j (the caller sets its status, usually [FacJobQueued]) and returns it
// as stored, with created=true. When j.IdempotencyKey is set and the user already has a job
// with that key, it returns that job instead, with created=false and a nil error: a client
// retrying a submission gets its first job back rather than a second one. A job with the
// same UUID already present gives an error wrapping [ErrDuplicate].
func (db *DB) CreateFacJob(ctx context.Context, j FacJob) (FacJob, bool, error) {
	if err := j.validate(); err != nil {
		return FacJob{}, false, err
	}
	db.stampFacJob(&j)
	inserted, err := execOne(ctx, db, "create facilitator job "+j.UUID, insertFacJobSQL, db.facJobArgs(&j)...)
	if err != nil || inserted {
		return j, inserted, err
	}
	if j.IdempotencyKey != "" {
		prev, err := scanFacJob(db.w.QueryRowContext(ctx, db.dialect.rebind(facJobByIdempotencyKeySQL), j.User, j.IdempotencyKey))
		if err == nil {
			return prev, false, nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return FacJob{}, false, fmt.Errorf("store: create facilitator job %s: read the job of idempotency key %q: %w", j.UUID, j.IdempotencyKey, err)
		}
	}
	return FacJob{}, false, fmt.Errorf("%w: facilitator job %s already exists", ErrDuplicate, j.UUID)
}

// insertFacJobSQL inserts a job. DO NOTHING covers both the UUID and the (user,
// idempotency key) uniqueness; the caller tells them apart.
const insertFacJobSQL = `INSERT INTO fac_jobs (` + facJobColumns + `)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
	ON CONFLICT DO NOTHING`

const facJobByIdempotencyKeySQL = `SELECT ` + facJobColumns + ` FROM fac_jobs WHERE user_hotkey = ? AND idempotency_key = ?`

// stampFacJob sets a new job's times as CreateFacJob stores them: CreatedAt now when zero,
// UpdatedAt CreatedAt when zero, all UTC and truncated to the microsecond.
func (db *DB) stampFacJob(j *FacJob) {
	if j.CreatedAt.IsZero() {
		j.CreatedAt = db.now()
	}
	if j.UpdatedAt.IsZero() {
		j.UpdatedAt = j.CreatedAt
	}
	j.CreatedAt = j.CreatedAt.UTC().Truncate(time.Microsecond)
	j.UpdatedAt = j.UpdatedAt.UTC().Truncate(time.Microsecond)
	if !j.DispatchedAt.IsZero() {
		j.DispatchedAt = j.DispatchedAt.UTC().Truncate(time.Microsecond)
	}
}

// facJobArgs are the arguments of insertFacJobSQL.
func (db *DB) facJobArgs(j *FacJob) []any {
	return []any{j.UUID, j.User, j.Class, j.Status, string(j.Spec), j.TargetValidator, j.Validator, j.Dispatcher, j.IdempotencyKey,
		j.Price, j.MaxCost, j.Charged, nullText(j.Result), db.dialect.timeArg(j.CreatedAt), db.dialect.timeArg(j.UpdatedAt),
		db.nullTimeArg(j.DispatchedAt)}
}

// nullTimeArg is timeArg, with the zero time as SQL NULL.
func (db *DB) nullTimeArg(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return db.dialect.timeArg(t)
}

// GetFacJob returns the facilitator job with that UUID, or an error wrapping [ErrNotFound].
func (db *DB) GetFacJob(ctx context.Context, uuid string) (FacJob, error) {
	row := db.r.QueryRowContext(ctx, db.dialect.rebind(`SELECT `+facJobColumns+` FROM fac_jobs WHERE uuid = ?`), uuid)
	j, err := scanFacJob(row)
	if errors.Is(err, sql.ErrNoRows) {
		return FacJob{}, fmt.Errorf("%w: facilitator job %s", ErrNotFound, uuid)
	}
	if err != nil {
		return FacJob{}, fmt.Errorf("store: get facilitator job %s: %w", uuid, err)
	}
	return j, nil
}

// FacJobFilter selects facilitator jobs for [DB.ListFacJobs]. Zero fields do not filter.
type FacJobFilter struct {
	User     string   // "" = any
	Statuses []string // empty = any
	Class    string
	// Cursor pagination, newest first: jobs strictly older than (BeforeCreated, BeforeUUID) in
	// (created_at DESC, uuid DESC) order; zero BeforeCreated = from the newest. A page's last
	// job gives the next page's cursor.
	BeforeCreated time.Time
	BeforeUUID    string
	Limit         int  // 0 = no limit
	OldestFirst   bool // queue order (created_at ASC, uuid ASC) instead; cursor fields ignored
}

// ListFacJobs returns the jobs matching f, newest first, or oldest first with f.OldestFirst.
func (db *DB) ListFacJobs(ctx context.Context, f FacJobFilter) ([]FacJob, error) {
	var q listQuery
	if f.User != "" {
		q.add(`user_hotkey = ?`, f.User)
	}
	if len(f.Statuses) > 0 {
		q.where = append(q.where, `status IN (`+placeholders(len(f.Statuses))+`)`)
		for _, s := range f.Statuses {
			q.args = append(q.args, s)
		}
	}
	if f.Class != "" {
		q.add(`executor_class = ?`, f.Class)
	}
	order := `created_at DESC, uuid DESC`
	if f.OldestFirst {
		order = `created_at, uuid`
	} else if !f.BeforeCreated.IsZero() {
		at := db.dialect.timeArg(f.BeforeCreated)
		q.where = append(q.where, `(created_at < ? OR (created_at = ? AND uuid < ?))`)
		q.args = append(q.args, at, at, f.BeforeUUID)
	}
	return list(ctx, db, "facilitator jobs", `SELECT `+facJobColumns+` FROM fac_jobs`, order, q, f.Limit, scanFacJob)
}

// ClaimFacJob atomically moves a queued job to [FacJobSent] for validator by replica,
// setting DispatchedAt to at (now when zero). It reports false when the job was not queued
// any more (another replica claimed it, or it was cancelled), and an error wrapping
// [ErrNotFound] when there is no such job. This compare-and-set is what keeps two replicas
// on one PostgreSQL database from dispatching a job twice.
func (db *DB) ClaimFacJob(ctx context.Context, uuid, validator, replica string, at time.Time) (bool, error) {
	if validator == "" {
		return false, fmt.Errorf("%w: claim facilitator job %s: no validator", ErrInvalid, uuid)
	}
	if at.IsZero() {
		at = db.now()
	}
	what := fmt.Sprintf("claim facilitator job %s for %s", uuid, validator)
	ok, err := execOne(ctx, db, what, `UPDATE fac_jobs SET status = ?, validator = ?, dispatcher = ?, dispatched_at = ?, updated_at = ?
		WHERE uuid = ? AND status = ?`,
		FacJobSent, validator, replica, db.dialect.timeArg(at), db.dialect.timeArg(db.now()), uuid, FacJobQueued)
	if ok || err != nil {
		return ok, err
	}
	if _, err := db.facJobStatus(ctx, uuid, what); err != nil {
		return false, err
	}
	return false, nil
}

// facJobStatus returns the current status of job uuid (statusOf on fac_jobs).
func (db *DB) facJobStatus(ctx context.Context, uuid, what string) (string, error) {
	return db.statusOf(ctx, "fac_jobs", "facilitator job", uuid, what)
}

// UpdateFacJobStatus moves job uuid to status to, but only if its current status is one of
// from (compare-and-set). If result is not nil it replaces the stored result; nil keeps it.
// UpdatedAt is set to now. Errors wrap [ErrNotFound] when there is no such job and
// [ErrConflict] when its status is not in from; of several concurrent calls from the same
// status, exactly one succeeds.
func (db *DB) UpdateFacJobStatus(ctx context.Context, uuid string, from []string, to string, result json.RawMessage) error {
	return db.casStatus(ctx, "fac_jobs", "facilitator job", uuid, from, to, result)
}

// RequeueFacJob moves a job whose status is one of from back to [FacJobQueued], clearing
// Validator, Dispatcher and DispatchedAt, so that any replica may dispatch it again. It
// reports false when the job was in none of them, and an error wrapping [ErrNotFound] when
// there is no such job.
func (db *DB) RequeueFacJob(ctx context.Context, uuid string, from []string) (bool, error) {
	if len(from) == 0 {
		return false, fmt.Errorf("%w: requeue facilitator job %s: no expected current status given", ErrInvalid, uuid)
	}
	args := []any{FacJobQueued, db.dialect.timeArg(db.now()), uuid}
	for _, s := range from {
		args = append(args, s)
	}
	what := "requeue facilitator job " + uuid
	ok, err := execOne(ctx, db, what, `UPDATE fac_jobs SET status = ?, validator = '', dispatcher = '', dispatched_at = NULL, updated_at = ?
		WHERE uuid = ? AND status IN (`+placeholders(len(from))+`)`, args...)
	if ok || err != nil {
		return ok, err
	}
	if _, err := db.facJobStatus(ctx, uuid, what); err != nil {
		return false, err
	}
	return false, nil
}

// AddFacJobCharge adds amount to the job's Charged (a negative amount takes a refund off it).
// Charged never goes below zero: an amount that would make it negative gives an error
// wrapping [ErrInvalid] and changes nothing; an unknown job one wrapping [ErrNotFound].
func (db *DB) AddFacJobCharge(ctx context.Context, uuid string, amount int64) error {
	what := fmt.Sprintf("add %d to the charge of facilitator job %s", amount, uuid)
	ok, err := execOne(ctx, db, what, `UPDATE fac_jobs SET charged = charged + ?, updated_at = ? WHERE uuid = ? AND charged + ? >= 0`,
		amount, db.dialect.timeArg(db.now()), uuid, amount)
	if ok || err != nil {
		return err
	}
	if _, err := db.facJobStatus(ctx, uuid, what); err != nil {
		return err
	}
	return fmt.Errorf("%w: %s: the charge would become negative", ErrInvalid, what)
}

// FacJobEvent is one status a facilitator job went through (upstream's JobStatus row).
type FacJobEvent struct {
	JobUUID string
	Seq     int // 0,1,2… per job in arrival order
	Status  string
	At      time.Time       // now when zero
	Detail  json.RawMessage // optional JSON
}

func (e *FacJobEvent) check() error {
	switch {
	case e.JobUUID == "" || e.Status == "":
		return fmt.Errorf("%w: facilitator job event needs a job UUID and a status", ErrInvalid)
	case e.Detail != nil && !json.Valid(e.Detail):
		return fmt.Errorf("%w: facilitator job %s event %s: detail is not valid JSON", ErrInvalid, e.JobUUID, e.Status)
	}
	return nil
}

// AddFacJobEvent appends e to its job's history and reports whether it did. The store
// assigns e.Seq (the number of events of the job so far; the caller's value is ignored).
// The same (job, status) a second time is a no-op returning false, as upstream's
// UNIQUE(job, status). An unknown job gives an error wrapping [ErrNotFound].
func (db *DB) AddFacJobEvent(ctx context.Context, e FacJobEvent) (bool, error) {
	if err := e.check(); err != nil {
		return false, err
	}
	if e.At.IsZero() {
		e.At = db.now()
	}
	what := fmt.Sprintf("add event %s to facilitator job %s", e.Status, e.JobUUID)
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("store: %s: %w", what, err)
	}
	defer tx.Rollback()
	// Locking the job's row serialises the events of one job on PostgreSQL, so two arriving at
	// once cannot both take the same seq. SQLite's writer is serialised already.
	lock := `SELECT 1 FROM fac_jobs WHERE uuid = ?`
	if db.dialect == dialectPostgres {
		lock += ` FOR UPDATE`
	}
	var one int
	err = tx.QueryRowContext(ctx, db.dialect.rebind(lock), e.JobUUID).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, fmt.Errorf("%w: facilitator job %s", ErrNotFound, e.JobUUID)
	}
	if err != nil {
		return false, fmt.Errorf("store: %s: %w", what, err)
	}
	added, err := db.insertFacJobEvent(ctx, tx, e)
	if err != nil {
		return false, fmt.Errorf("store: %s: %w", what, err)
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("store: %s: commit: %w", what, err)
	}
	return added, nil
}

// insertFacJobEventSQL appends an event with the next seq of its job; a status the job
// already went through is dropped.
const insertFacJobEventSQL = `INSERT INTO fac_job_events (job_uuid, seq, status, at, detail)
	VALUES (?, (SELECT COUNT(*) FROM fac_job_events WHERE job_uuid = ?), ?, ?, ?)
	ON CONFLICT (job_uuid, status) DO NOTHING`

// insertFacJobEvent appends the checked event e (At set) in tx and reports whether it did.
// The caller makes sure that no other transaction adds events to the job meanwhile (a
// lock on the job's row, or a job created in tx).
func (db *DB) insertFacJobEvent(ctx context.Context, tx *sql.Tx, e FacJobEvent) (bool, error) {
	res, err := db.txExec(ctx, tx, insertFacJobEventSQL, e.JobUUID, e.JobUUID, e.Status, db.dialect.timeArg(e.At), nullText(e.Detail))
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, err
	}
	return n == 1, nil
}

// FacJobEvents returns the events of job uuid in seq order; none for an unknown job.
func (db *DB) FacJobEvents(ctx context.Context, uuid string) ([]FacJobEvent, error) {
	var q listQuery
	q.add(`job_uuid = ?`, uuid)
	return list(ctx, db, "events of facilitator job "+uuid, `SELECT job_uuid, seq, status, at, detail FROM fac_job_events`, `seq`, q, 0,
		func(s scanner) (FacJobEvent, error) {
			var e FacJobEvent
			var detail sql.NullString
			if err := s.Scan(&e.JobUUID, &e.Seq, &e.Status, timeCol{&e.At}, &detail); err != nil {
				return FacJobEvent{}, err
			}
			if detail.Valid {
				e.Detail = json.RawMessage(detail.String)
			}
			return e, nil
		})
}

func scanFacJob(s scanner) (FacJob, error) {
	var j FacJob
	var spec string
	var result sql.NullString
	err := s.Scan(&j.UUID, &j.User, &j.Class, &j.Status, &spec, &j.TargetValidator, &j.Validator, &j.Dispatcher, &j.IdempotencyKey,
		&j.Price, &j.MaxCost, &j.Charged, &result, timeCol{&j.CreatedAt}, timeCol{&j.UpdatedAt}, timeCol{&j.DispatchedAt})
	if err != nil {
		return FacJob{}, err
	}
	j.Spec = json.RawMessage(spec)
	if result.Valid {
		j.Result = json.RawMessage(result.String)
	}
	return j, nil
}
