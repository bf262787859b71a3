package store

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
)

// On PostgreSQL a batch of submissions is three round trips, whatever its size: BEGIN with
// the reads, then every write (one statement per table, the rows travelling as arrays), then
// COMMIT. Through database/sql each statement would be a round trip of its own, and under
// load a round trip costs more than the server's work for a whole batch; so the batch talks
// to pgx directly and pipelines.

// writeBatchPostgres is writeBatch on a connection of the pool, used through pgx.
func (db *DB) writeBatchPostgres(ctx context.Context, subs []*submission) error {
	conn, err := db.w.Conn(ctx)
	if err != nil {
		return fmt.Errorf("store: submit facilitator jobs: %w", err)
	}
	defer conn.Close()
	var batchErr error
	err = conn.Raw(func(dc any) error {
		c, ok := dc.(*stdlib.Conn)
		if !ok {
			return fmt.Errorf("store: submit facilitator jobs: unexpected driver connection %T", dc)
		}
		b := &pgBatch{conn: c.Conn()}
		batchErr = db.runBatch(ctx, subs, b)
		if b.broken {
			return driver.ErrBadConn // database/sql drops the connection
		}
		return nil
	})
	if batchErr != nil {
		return batchErr
	}
	return err
}

// pgBatch is a batch's transaction on a pgx connection.
type pgBatch struct {
	conn   *pgx.Conn
	open   bool // BEGIN was sent and neither COMMIT nor ROLLBACK
	broken bool // the connection's state is unknown
}

func (b *pgBatch) read(ctx context.Context, payers []string, keys []idemKey) (map[string]int64, map[idemKey]FacJob, error) {
	batch := &pgx.Batch{}
	batch.Queue(`BEGIN`)
	// ORDER BY: the rows are locked in account order, so that two replicas' batches cannot
	// deadlock.
	batch.Queue(`SELECT account, balance FROM ledger_balances WHERE account = ANY($1) ORDER BY account FOR UPDATE`, payers)
	users, ks := make([]string, len(keys)), make([]string, len(keys))
	for i, k := range keys {
		users[i], ks[i] = k.user, k.key
	}
	if len(keys) > 0 {
		batch.Queue(`SELECT `+facJobColumns+` FROM fac_jobs
			WHERE (user_hotkey, idempotency_key) IN (SELECT * FROM unnest($1::text[], $2::text[]))`, users, ks)
	}
	b.open = true
	br := b.conn.SendBatch(ctx, batch)
	balances, stored, err := b.readResults(br, payers, len(keys) > 0)
	if cerr := br.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return nil, nil, fmt.Errorf("store: submit facilitator jobs: read balances and idempotency keys: %w", err)
	}
	return balances, stored, nil
}

func (b *pgBatch) readResults(br pgx.BatchResults, payers []string, keyed bool) (map[string]int64, map[idemKey]FacJob, error) {
	if _, err := br.Exec(); err != nil {
		return nil, nil, err
	}
	balances := make(map[string]int64, len(payers))
	for _, a := range payers {
		balances[a] = 0
	}
	rows, err := br.Query()
	if err != nil {
		return nil, nil, err
	}
	for rows.Next() {
		var a string
		var bal int64
		if err := rows.Scan(&a, &bal); err != nil {
			rows.Close()
			return nil, nil, err
		}
		balances[a] = bal
	}
	if rows.Close(); rows.Err() != nil {
		return nil, nil, rows.Err()
	}
	stored := map[idemKey]FacJob{}
	if !keyed {
		return balances, stored, nil
	}
	rows, err = br.Query()
	if err != nil {
		return nil, nil, err
	}
	for rows.Next() {
		j, err := scanFacJob(rows)
		if err != nil {
			rows.Close()
			return nil, nil, err
		}
		stored[idemKey{j.User, j.IdempotencyKey}] = j
	}
	rows.Close()
	return balances, stored, rows.Err()
}

func (b *pgBatch) write(ctx context.Context, subs []*submission, deltas map[string]int64, now time.Time) error {
	n := len(subs)
	var (
		uuid, user, class, status, spec = make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		target, validator, dispatcher   = make([]string, n), make([]string, n), make([]string, n)
		idem                            = make([]string, n)
		price, maxCost, charged         = make([]int64, n), make([]int64, n), make([]int64, n)
		result                          = make([]*string, n)
		created, updated                = make([]time.Time, n), make([]time.Time, n)
		dispatched                      = make([]*time.Time, n)
		evStatus, evDetail              = make([]string, n), make([]*string, n)
		evAt                            = make([]time.Time, n)
		key, kind, account, job, note   = make([]string, 0, 2*n), make([]string, 0, 2*n), make([]string, 0, 2*n), make([]string, 0, 2*n), make([]string, 0, 2*n)
		amount                          = make([]int64, 0, 2*n)
		at                              = make([]time.Time, 0, 2*n)
	)
	nullable := func(b []byte) *string {
		if b == nil {
			return nil
		}
		s := string(b)
		return &s
	}
	now = now.UTC().Truncate(time.Microsecond)
	for i, s := range subs {
		j, t := s.j, s.hold
		uuid[i], user[i], class[i], status[i], spec[i] = j.UUID, j.User, j.Class, j.Status, string(j.Spec)
		target[i], validator[i], dispatcher[i], idem[i] = j.TargetValidator, j.Validator, j.Dispatcher, j.IdempotencyKey
		price[i], maxCost[i], charged[i], result[i] = j.Price, j.MaxCost, j.Charged, nullable(j.Result)
		created[i], updated[i] = j.CreatedAt, j.UpdatedAt
		if !j.DispatchedAt.IsZero() {
			dispatched[i] = &j.DispatchedAt
		}
		evStatus[i], evAt[i], evDetail[i] = s.ev.Status, s.ev.At, nullable(s.ev.Detail)
		key, kind, account = append(key, t.Key, t.Key), append(kind, t.Kind, t.Kind), append(account, t.From, t.To)
		amount, job, note, at = append(amount, -t.Amount, t.Amount), append(job, t.JobUUID, t.JobUUID), append(note, t.Note, t.Note), append(at, now, now)
	}
	debits, debited, credits, credited := balanceDeltas(deltas)

	type write struct {
		what string
		rows int // the rows it must change
	}
	var writes []write
	batch := &pgx.Batch{}
	queue := func(what string, rows int, stmt string, args ...any) {
		writes = append(writes, write{what, rows})
		batch.Queue(stmt, args...)
	}
	queue("insert jobs", n, `INSERT INTO fac_jobs (`+facJobColumns+`)
		SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[],
			$10::bigint[], $11::bigint[], $12::bigint[], $13::text[], $14::timestamptz[], $15::timestamptz[], $16::timestamptz[])
		ON CONFLICT DO NOTHING`,
		uuid, user, class, status, spec, target, validator, dispatcher, idem, price, maxCost, charged, result, created, updated, dispatched)
	// The jobs are new (inserted just above): each event is its job's first.
	queue("insert events", n, `INSERT INTO fac_job_events (job_uuid, seq, status, at, detail)
		SELECT u, 0, s, a, d FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::text[]) AS t (u, s, a, d)`,
		uuid, evStatus, evAt, evDetail)
	queue("insert ledger entries", 2*n, `INSERT INTO ledger_entries (tx_key, kind, account, amount, job_uuid, note, created_at)
		SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::text[], $7::timestamptz[])
		ON CONFLICT DO NOTHING`,
		key, kind, account, amount, job, note, at)
	if len(debits) > 0 {
		// The guard of a transfer's debit, though the balances were checked under the lock.
		queue("debit balances", len(debits), `UPDATE ledger_balances AS b SET balance = b.balance - t.d, updated_at = $3
			FROM unnest($1::text[], $2::bigint[]) AS t (a, d) WHERE b.account = t.a AND b.balance >= t.d`,
			debits, debited, now)
	}
	if len(credits) > 0 {
		queue("credit balances", len(credits), `INSERT INTO ledger_balances (account, balance, updated_at)
			SELECT a, d, $3 FROM unnest($1::text[], $2::bigint[]) AS t (a, d)
			ON CONFLICT (account) DO UPDATE SET balance = ledger_balances.balance + excluded.balance, updated_at = excluded.updated_at`,
			credits, credited, now)
	}
	br := b.conn.SendBatch(ctx, batch)
	var err error
	for _, w := range writes {
		tag, execErr := br.Exec()
		if execErr != nil {
			err = fmt.Errorf("store: submit facilitator jobs: %s: %w", w.what, execErr)
			break
		}
		if tag.RowsAffected() != int64(w.rows) {
			err = errBatchConflict
			break
		}
	}
	if cerr := br.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("store: submit facilitator jobs: %w", cerr)
	}
	return err
}

func (b *pgBatch) commit(ctx context.Context) error {
	b.open = false
	tag, err := b.conn.Exec(ctx, `COMMIT`)
	if err != nil {
		b.broken = true
		return err
	}
	if tag.String() != "COMMIT" {
		return errors.New("the transaction was rolled back")
	}
	return nil
}

func (b *pgBatch) rollback() {
	if !b.open {
		return
	}
	b.open = false
	// Not the batch's ctx: the connection must leave the transaction whatever happened.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := b.conn.Exec(ctx, `ROLLBACK`); err != nil {
		b.broken = true
	}
}
