package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"
)

// SubmitFacJob records a job a user submits, all or nothing, in one transaction: it inserts
// j, applies the transfer hold (the job's maximum cost, from the user's account to the job's
// hold account) as [DB.Transfer] would, and appends ev (its JobUUID may be left empty; a zero
// At is the job's CreatedAt) to the job's history. It returns the job as stored and
// created=true. Otherwise nothing at all is written:
//   - when j.IdempotencyKey is set and the user already has a job with that key, that job is
//     returned with created=false and a nil error (as [DB.CreateFacJob]); no hold, no event;
//   - when hold's source cannot pay, the error is Transfer's, wrapping [ErrInsufficientFunds]
//     with the balance and the amount in its text, and no job row is left;
//   - a job with j's UUID already stored gives an error wrapping [ErrDuplicate]; a hold key
//     already used, one wrapping [ErrConflict]; invalid arguments, one wrapping [ErrInvalid].
//
// So a crash can never leave a job without its hold, or a hold without its job.
//
// Concurrent calls are committed together (group commit, see submitQueue): each returns once
// its own submission is committed or refused, with the outcome it would have had alone, the
// submissions taking effect one after the other in the order they were taken. A caller
// whose ctx ends while its submission still waits withdraws it and gets ctx's error; one
// already being written waits for the outcome (a commit cannot be recalled).
func (db *DB) SubmitFacJob(ctx context.Context, j FacJob, hold Transfer, ev FacJobEvent) (FacJob, bool, error) {
	s, err := db.newSubmission(ctx, j, hold, ev)
	if err != nil {
		return FacJob{}, false, err
	}
	return db.submits.submit(db, s)
}

// newSubmission checks a submission and sets its times as they will be stored.
func (db *DB) newSubmission(ctx context.Context, j FacJob, hold Transfer, ev FacJobEvent) (*submission, error) {
	if err := j.validate(); err != nil {
		return nil, err
	}
	if err := hold.check(); err != nil {
		return nil, err
	}
	if ev.JobUUID == "" {
		ev.JobUUID = j.UUID
	}
	if ev.JobUUID != j.UUID {
		return nil, fmt.Errorf("%w: submit facilitator job %s: its event names job %s", ErrInvalid, j.UUID, ev.JobUUID)
	}
	if err := ev.check(); err != nil {
		return nil, err
	}
	db.stampFacJob(&j)
	if ev.At.IsZero() {
		ev.At = j.CreatedAt
	}
	ev.At = ev.At.UTC().Truncate(time.Microsecond)
	return &submission{ctx: ctx, j: j, hold: hold, ev: ev, done: make(chan struct{})}, nil
}

// submitBatchMax bounds the submissions committed together: enough to drain a burst from
// many clients, few enough that the write lock is not held for long.
const submitBatchMax = 128

// submission is one SubmitFacJob call and, once done is closed, its outcome.
type submission struct {
	ctx  context.Context
	j    FacJob
	hold Transfer
	ev   FacJobEvent

	taken bool // guarded by submitQueue.mu: a writer took it off the queue

	done    chan struct{}
	job     FacJob
	created bool
	err     error
}

func (s *submission) finish(job FacJob, created bool, err error) {
	s.job, s.created, s.err = job, created, err
	close(s.done)
}

// submitQueue gathers concurrent submissions so that one transaction, one write lock and (on
// SQLite) one fsync serve many: whichever caller gets the turn writes all that is waiting, up
// to submitBatchMax, while the next ones gather. It has no goroutine of its own: the callers
// take turns, so nothing outlives them or needs stopping.
type submitQueue struct {
	// turn holds a token while a batch is being written.
	turn    chan struct{}
	mu      sync.Mutex
	pending []*submission
}

// init makes the one turn: batches are written one at a time. (On SQLite the single writer
// connection serialises them anyway; on PostgreSQL a second batch would wait for the first
// one's lock on a shared balance, and measured no faster.)
func (q *submitQueue) init() { q.turn = make(chan struct{}, 1) }

func (q *submitQueue) submit(db *DB, s *submission) (FacJob, bool, error) {
	q.mu.Lock()
	q.pending = append(q.pending, s)
	q.mu.Unlock()
	for {
		select {
		case <-s.done:
			return s.job, s.created, s.err
		case q.turn <- struct{}{}:
			if batch := q.take(); len(batch) > 0 {
				db.writeSubmissions(batch)
			}
			<-q.turn
		case <-s.ctx.Done():
			q.mu.Lock()
			taken := s.taken
			if !taken {
				q.pending = slices.DeleteFunc(q.pending, func(p *submission) bool { return p == s })
			}
			q.mu.Unlock()
			if !taken {
				return FacJob{}, false, fmt.Errorf("store: submit facilitator job %s: %w", s.j.UUID, s.ctx.Err())
			}
			<-s.done
			return s.job, s.created, s.err
		}
	}
}

// take removes up to submitBatchMax waiting submissions, oldest first.
func (q *submitQueue) take() []*submission {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := min(len(q.pending), submitBatchMax)
	batch := slices.Clone(q.pending[:n])
	q.pending = slices.Delete(q.pending, 0, n)
	for _, s := range batch {
		s.taken = true
	}
	return batch
}

// writeSubmissions writes batch and finishes every submission of it.
func (db *DB) writeSubmissions(batch []*submission) {
	// The transaction belongs to the whole batch: one caller's cancellation must not abort the
	// others' submissions. A submission whose ctx has ended is dropped here.
	ctx := context.WithoutCancel(batch[0].ctx)
	live := batch[:0:0]
	for _, s := range batch {
		if err := s.ctx.Err(); err != nil {
			s.finish(FacJob{}, false, fmt.Errorf("store: submit facilitator job %s: %w", s.j.UUID, err))
			continue
		}
		live = append(live, s)
	}
	if len(live) == 0 {
		return
	}
	err := db.writeBatch(ctx, live)
	if err == nil {
		return
	}
	var commitErr *batchCommitError
	if errors.As(err, &commitErr) {
		// Whether the commit happened is unknown: writing them again could write twice.
		for _, s := range live {
			s.finish(FacJob{}, false, err)
		}
		return
	}
	// The batch met what its checks did not foresee (a UUID or hold key already used, a job
	// of the same idempotency key committed by another process meanwhile) or failed: nothing
	// of it was written, and each submission is now written alone, getting its own outcome.
	db.log.Debug("group commit failed; writing the submissions one by one", "submissions", len(live), "err", err)
	for _, s := range live {
		s.finish(db.writeOne(ctx, s))
	}
}

// batchCommitError is a batch's failed commit.
type batchCommitError struct{ err error }

func (e *batchCommitError) Error() string {
	return "store: submit facilitator jobs: commit: " + e.err.Error()
}
func (e *batchCommitError) Unwrap() error { return e.err }

// writeOne writes submission s in a transaction of its own, statement by statement.
func (db *DB) writeOne(ctx context.Context, s *submission) (FacJob, bool, error) {
	what := "submit facilitator job " + s.j.UUID
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return FacJob{}, false, fmt.Errorf("store: %s: %w", what, err)
	}
	defer tx.Rollback()
	job, created, err := db.submitTx(ctx, tx, s, db.dialect.timeArg(db.now()))
	if err != nil || !created {
		return job, created, err
	}
	if err := tx.Commit(); err != nil {
		return FacJob{}, false, fmt.Errorf("store: %s: commit: %w", what, err)
	}
	return job, true, nil
}

// submitTx writes submission s in tx (see SubmitFacJob); on an error the caller rolls back
// what it wrote.
func (db *DB) submitTx(ctx context.Context, tx *sql.Tx, s *submission, now any) (FacJob, bool, error) {
	j := s.j
	what := "submit facilitator job " + j.UUID
	res, err := db.txExec(ctx, tx, insertFacJobSQL, db.facJobArgs(&j)...)
	if err != nil {
		return FacJob{}, false, fmt.Errorf("store: %s: %w", what, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return FacJob{}, false, fmt.Errorf("store: %s: %w", what, err)
	} else if n == 0 {
		if j.IdempotencyKey != "" {
			prev, err := scanFacJob(db.txQueryRow(ctx, tx, facJobByIdempotencyKeySQL, j.User, j.IdempotencyKey))
			if err == nil {
				return prev, false, nil
			}
			if !errors.Is(err, sql.ErrNoRows) {
				return FacJob{}, false, fmt.Errorf("store: %s: read the job of idempotency key %q: %w", what, j.IdempotencyKey, err)
			}
		}
		return FacJob{}, false, fmt.Errorf("%w: facilitator job %s already exists", ErrDuplicate, j.UUID)
	}
	// The event before the hold: the hold's last write is the debit of the user's balance,
	// whose row lock (PostgreSQL) is then held only until the commit.
	if _, err := db.insertFacJobEvent(ctx, tx, s.ev); err != nil {
		return FacJob{}, false, fmt.Errorf("store: %s: add event %s: %w", what, s.ev.Status, err)
	}
	applied, err := db.applyTransfer(ctx, tx, s.hold, now)
	if err != nil {
		return FacJob{}, false, err
	}
	if !applied {
		return FacJob{}, false, fmt.Errorf("%w: %s: its hold %s was already recorded", ErrConflict, what, s.hold.Key)
	}
	return j, true, nil
}

// idemKey is a user's idempotency key.
type idemKey struct{ user, key string }

// batchTx is the transaction of a batch of submissions, on one engine or the other.
type batchTx interface {
	// read begins the transaction and returns the balances of the accounts payers (sorted;
	// 0 for an account without a row), locked until the transaction ends, and the stored jobs
	// of keys.
	read(ctx context.Context, payers []string, keys []idemKey) (map[string]int64, map[idemKey]FacJob, error)
	// write inserts the jobs of subs, their events and the ledger entries of their holds, and
	// adds deltas to the balances: a non-system account that loses credits through the
	// guarded debit of a transfer. A row that is already there, or a debit refused, gives
	// errBatchConflict.
	write(ctx context.Context, subs []*submission, deltas map[string]int64, now time.Time) error
	commit(ctx context.Context) error
	// rollback ends the transaction if it is still open.
	rollback()
}

// errBatchConflict: a row the batch meant to insert was already there, or a debit it had
// checked was refused.
var errBatchConflict = errors.New("store: submit facilitator jobs: a job or a ledger entry already exists")

// writeBatch writes several submissions in one transaction. It decides first, from what it
// reads under the write lock, what each submission gets, taking them in order as if each
// were written alone: the job already stored under its idempotency key, or the one an
// earlier submission of the batch creates under it; a refusal, when its hold's source cannot
// pay what is left after the earlier ones; otherwise a new job. Then it writes all the new
// jobs with a few statements. It finishes the submissions only once committed; on an error
// before the commit nothing is written and none is finished (on a failed commit, see
// batchCommitError, none is finished either).
func (db *DB) writeBatch(ctx context.Context, subs []*submission) error {
	if db.dialect == dialectPostgres {
		return db.writeBatchPostgres(ctx, subs)
	}
	return db.runBatch(ctx, subs, &sqliteBatch{db: db})
}

func (db *DB) runBatch(ctx context.Context, subs []*submission, tx batchTx) error {
	defer tx.rollback()
	payers := map[string]bool{}
	var keyed []idemKey
	for _, s := range subs {
		if !isSystemAccount(s.hold.From) {
			payers[s.hold.From] = true
		}
		if s.j.IdempotencyKey != "" {
			keyed = append(keyed, idemKey{s.j.User, s.j.IdempotencyKey})
		}
	}
	balances, stored, err := tx.read(ctx, slices.Sorted(maps.Keys(payers)), keyed)
	if err != nil {
		return err
	}

	type outcome struct {
		job     FacJob
		created bool
		same    *submission // the earlier submission of the batch whose job this one gets
		err     error
	}
	outcomes := make([]outcome, len(subs))
	var fresh []*submission
	sameKey := map[idemKey]*submission{}
	uuids := map[string]bool{}
	deltas := map[string]int64{}
	for i, s := range subs {
		o := &outcomes[i]
		k := idemKey{s.j.User, s.j.IdempotencyKey}
		if k.key != "" {
			if j, ok := stored[k]; ok {
				o.job = j
				continue
			}
			if first := sameKey[k]; first != nil {
				o.same = first
				continue
			}
		}
		if uuids[s.j.UUID] {
			o.err = fmt.Errorf("%w: facilitator job %s already exists", ErrDuplicate, s.j.UUID)
			continue
		}
		t := s.hold
		if bal, tracked := balances[t.From]; tracked {
			if bal < t.Amount {
				o.err = insufficientFunds(t, bal)
				continue
			}
			balances[t.From] = bal - t.Amount
		}
		if _, tracked := balances[t.To]; tracked {
			balances[t.To] += t.Amount
		}
		deltas[t.From] -= t.Amount
		deltas[t.To] += t.Amount
		o.job, o.created = s.j, true
		fresh = append(fresh, s)
		uuids[s.j.UUID] = true
		if k.key != "" {
			sameKey[k] = s
		}
	}

	if len(fresh) > 0 {
		if err := tx.write(ctx, fresh, deltas, db.now()); err != nil {
			return err
		}
		if err := tx.commit(ctx); err != nil {
			return &batchCommitError{err}
		}
	}
	for i, s := range subs {
		o := outcomes[i]
		if o.same != nil {
			o.job = o.same.j
		}
		s.finish(o.job, o.created, o.err)
	}
	return nil
}

// balanceDeltas splits deltas, in account order, into the debits of non-system accounts
// (as positive amounts) and the other changes.
func balanceDeltas(deltas map[string]int64) (debits []string, debited []int64, credits []string, credited []int64) {
	for _, a := range slices.Sorted(maps.Keys(deltas)) {
		switch d := deltas[a]; {
		case d < 0 && !isSystemAccount(a):
			debits, debited = append(debits, a), append(debited, -d)
		case d != 0:
			credits, credited = append(credits, a), append(credited, d)
		}
	}
	return debits, debited, credits, credited
}

// sqliteBatch is a batch's transaction on SQLite: the writer's one connection, under the
// database's write lock (BEGIN IMMEDIATE), each row written by a prepared statement.
type sqliteBatch struct {
	db *DB
	tx *sql.Tx
}

func (b *sqliteBatch) read(ctx context.Context, payers []string, keys []idemKey) (map[string]int64, map[idemKey]FacJob, error) {
	db := b.db
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("store: submit facilitator jobs: begin: %w", err)
	}
	b.tx = tx
	balances := make(map[string]int64, len(payers))
	for _, a := range payers {
		var bal int64
		if err := db.txQueryRow(ctx, tx, balanceSQL, a).Scan(&bal); err != nil && !errors.Is(err, sql.ErrNoRows) {
			return nil, nil, fmt.Errorf("store: read the balance of %s: %w", a, err)
		}
		balances[a] = bal
	}
	stored := map[idemKey]FacJob{}
	for _, k := range keys {
		j, err := scanFacJob(db.txQueryRow(ctx, tx, facJobByIdempotencyKeySQL, k.user, k.key))
		if errors.Is(err, sql.ErrNoRows) {
			continue
		}
		if err != nil {
			return nil, nil, fmt.Errorf("store: read the job of idempotency key %q: %w", k.key, err)
		}
		stored[k] = j
	}
	return balances, stored, nil
}

func (b *sqliteBatch) write(ctx context.Context, subs []*submission, deltas map[string]int64, now time.Time) error {
	db, tx := b.db, b.tx
	nowArg := db.dialect.timeArg(now)
	exec := func(want int64, stmt string, args ...any) error {
		res, err := db.txExec(ctx, tx, stmt, args...)
		if err != nil {
			return fmt.Errorf("store: submit facilitator jobs: %w", err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("store: submit facilitator jobs: %w", err)
		} else if want >= 0 && n != want {
			return errBatchConflict
		}
		return nil
	}
	for _, s := range subs {
		t, ev := s.hold, s.ev
		if err := exec(1, insertFacJobSQL, db.facJobArgs(&s.j)...); err != nil {
			return err
		}
		if err := exec(1, insertFacJobEventSQL, ev.JobUUID, ev.JobUUID, ev.Status, db.dialect.timeArg(ev.At), nullText(ev.Detail)); err != nil {
			return err
		}
		// Both entries through insertEntrySQL: an entry already there is a conflict, not an error.
		if err := exec(1, insertEntrySQL, t.Key, t.Kind, t.From, -t.Amount, t.JobUUID, t.Note, nowArg); err != nil {
			return err
		}
		if err := exec(1, insertEntrySQL, t.Key, t.Kind, t.To, t.Amount, t.JobUUID, t.Note, nowArg); err != nil {
			return err
		}
	}
	debits, debited, credits, credited := balanceDeltas(deltas)
	for i, a := range debits {
		if err := exec(1, debitBalanceSQL, debited[i], nowArg, a, debited[i]); err != nil {
			return err
		}
	}
	for i, a := range credits {
		if err := exec(-1, creditBalanceSQL, a, credited[i], nowArg); err != nil {
			return err
		}
	}
	return nil
}

func (b *sqliteBatch) commit(context.Context) error { return b.tx.Commit() }

func (b *sqliteBatch) rollback() {
	if b.tx != nil {
		_ = b.tx.Rollback()
	}
}
