package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Job roles: which side of the validator↔miner exchange a job row belongs to.
const (
	RoleValidator = "validator"
	RoleMiner     = "miner"
)

// Job is one job as a validator or a miner tracks it. Status is the role's own state
// machine (for example PENDING/COMPLETED/FAILED/EXCUSED on the validator,
// WAITING_FOR_EXECUTOR/…/FINISHED on the miner); the store does not interpret it.
type Job struct {
	UUID            string
	Role            string // RoleValidator or RoleMiner
	ValidatorHotkey string
	MinerHotkey     string
	ExecutorClass   string
	DockerImage     string
	Status          string
	// Spec is the job as upstream's JSON of the message that defined it (a validator's
	// V2JobRequest, a miner's V0InitialJobRequest); required, valid JSON, kept byte for byte.
	Spec   json.RawMessage
	Result json.RawMessage // nil until set; valid JSON when set
	// CreatedAt and UpdatedAt default to the time of CreateJob when zero. They are stored
	// in UTC, truncated to the microsecond.
	CreatedAt time.Time
	UpdatedAt time.Time
}

// JobFilter selects jobs for [DB.ListJobs]. Zero fields do not filter.
type JobFilter struct {
	Role   string
	Status string
	Since  time.Time // created at or after; zero means any
	Limit  int       // at most this many; 0 means no limit
}

const jobColumns = `uuid, role, validator_hotkey, miner_hotkey, executor_class, docker_image, status, spec, result, created_at, updated_at`

// CreateJob inserts j. A job with the same UUID already present gives an error wrapping
// [ErrDuplicate]; the stored job is left as it was.
func (db *DB) CreateJob(ctx context.Context, j Job) error {
	if err := j.validate(); err != nil {
		return err
	}
	now := db.now()
	if j.CreatedAt.IsZero() {
		j.CreatedAt = now
	}
	if j.UpdatedAt.IsZero() {
		j.UpdatedAt = j.CreatedAt
	}
	inserted, err := execOne(ctx, db, "create job "+j.UUID, `INSERT INTO jobs (`+jobColumns+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (uuid) DO NOTHING`,
		j.UUID, j.Role, j.ValidatorHotkey, j.MinerHotkey, j.ExecutorClass, j.DockerImage, j.Status,
		string(j.Spec), nullText(j.Result), db.dialect.timeArg(j.CreatedAt), db.dialect.timeArg(j.UpdatedAt))
	if err == nil && !inserted {
		err = fmt.Errorf("%w: job %s already exists", ErrDuplicate, j.UUID)
	}
	return err
}

func (j *Job) validate() error {
	switch {
	case j.UUID == "":
		return fmt.Errorf("%w: job has no UUID", ErrInvalid)
	case j.Role != RoleValidator && j.Role != RoleMiner:
		return fmt.Errorf("%w: job %s: role %q is not %q or %q", ErrInvalid, j.UUID, j.Role, RoleValidator, RoleMiner)
	case j.Status == "":
		return fmt.Errorf("%w: job %s has no status", ErrInvalid, j.UUID)
	case !json.Valid(j.Spec):
		return fmt.Errorf("%w: job %s: spec is not valid JSON", ErrInvalid, j.UUID)
	case j.Result != nil && !json.Valid(j.Result):
		return fmt.Errorf("%w: job %s: result is not valid JSON", ErrInvalid, j.UUID)
	}
	return nil
}

// GetJob returns the job with that UUID, or an error wrapping [ErrNotFound].
func (db *DB) GetJob(ctx context.Context, uuid string) (Job, error) {
	row := db.r.QueryRowContext(ctx, db.dialect.rebind(`SELECT `+jobColumns+` FROM jobs WHERE uuid = ?`), uuid)
	j, err := scanJob(row)
	if errors.Is(err, sql.ErrNoRows) {
		return Job{}, fmt.Errorf("%w: job %s", ErrNotFound, uuid)
	}
	if err != nil {
		return Job{}, fmt.Errorf("store: get job %s: %w", uuid, err)
	}
	return j, nil
}

// UpdateJobStatus moves job uuid to status to, but only if its current status is one of
// from (compare-and-set). If result is not nil it replaces the stored result; nil keeps it.
// UpdatedAt is set to now. Errors wrap [ErrNotFound] when there is no such job and
// [ErrConflict] when its status is not in from; of several concurrent calls from the same
// status, exactly one succeeds.
func (db *DB) UpdateJobStatus(ctx context.Context, uuid string, from []string, to string, result json.RawMessage) error {
	return db.casStatus(ctx, "jobs", "job", uuid, from, to, result)
}

// casStatus is the compare-and-set status update of a row of table (jobs, fac_jobs), which
// errors call noun: UpdateJobStatus and UpdateFacJobStatus.
func (db *DB) casStatus(ctx context.Context, table, noun, uuid string, from []string, to string, result json.RawMessage) error {
	switch {
	case len(from) == 0:
		return fmt.Errorf("%w: update %s %s: no expected current status given", ErrInvalid, noun, uuid)
	case to == "":
		return fmt.Errorf("%w: update %s %s: empty target status", ErrInvalid, noun, uuid)
	case result != nil && !json.Valid(result):
		return fmt.Errorf("%w: update %s %s: result is not valid JSON", ErrInvalid, noun, uuid)
	}
	set := `status = ?, updated_at = ?`
	args := []any{to, db.dialect.timeArg(db.now())}
	if result != nil {
		set += `, result = ?`
		args = append(args, string(result))
	}
	args = append(args, uuid)
	for _, s := range from {
		args = append(args, s)
	}
	what := fmt.Sprintf("update %s %s to %s", noun, uuid, to)
	if ok, err := execOne(ctx, db, what, `UPDATE `+table+` SET `+set+` WHERE uuid = ? AND status IN (`+placeholders(len(from))+`)`, args...); ok || err != nil {
		return err
	}
	current, err := db.statusOf(ctx, table, noun, uuid, what)
	if err != nil {
		return err
	}
	return fmt.Errorf("%w: %s %s is %s, not %s; not moved to %s", ErrConflict, noun, uuid, current, strings.Join(from, " or "), to)
}

// statusOf returns the current status of row uuid of table, read on the writer so that it
// sees the write that just missed; an error wrapping ErrNotFound when there is no such row.
func (db *DB) statusOf(ctx context.Context, table, noun, uuid, what string) (string, error) {
	var status string
	err := db.w.QueryRowContext(ctx, db.dialect.rebind(`SELECT status FROM `+table+` WHERE uuid = ?`), uuid).Scan(&status)
	if errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("%w: %s %s", ErrNotFound, noun, uuid)
	}
	if err != nil {
		return "", fmt.Errorf("store: %s: %w", what, err)
	}
	return status, nil
}

// ListJobs returns the jobs matching f, oldest first.
func (db *DB) ListJobs(ctx context.Context, f JobFilter) ([]Job, error) {
	var q listQuery
	if f.Role != "" {
		q.add(`role = ?`, f.Role)
	}
	if f.Status != "" {
		q.add(`status = ?`, f.Status)
	}
	if !f.Since.IsZero() {
		q.add(`created_at >= ?`, db.dialect.timeArg(f.Since))
	}
	return list(ctx, db, "jobs", `SELECT `+jobColumns+` FROM jobs`, `created_at, uuid`, q, f.Limit, scanJob)
}

func scanJob(s scanner) (Job, error) {
	var j Job
	var spec string
	var result sql.NullString
	err := s.Scan(&j.UUID, &j.Role, &j.ValidatorHotkey, &j.MinerHotkey, &j.ExecutorClass, &j.DockerImage,
		&j.Status, &spec, &result, timeCol{&j.CreatedAt}, timeCol{&j.UpdatedAt})
	if err != nil {
		return Job{}, err
	}
	j.Spec = json.RawMessage(spec)
	if result.Valid {
		j.Result = json.RawMessage(result.String)
	}
	return j, nil
}
