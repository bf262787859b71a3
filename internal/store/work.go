package store

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"
)

// WorkTotal is one miner's accounted work on one executor class: the sum of the
// worked_seconds of its countersigned WorkInterval receipts in a window.
type WorkTotal struct {
	MinerHotkey   string
	ExecutorClass string // the payload's executor_class
	WorkedSeconds int64  // Σ payload worked_seconds
	Receipts      int64  // how many receipts were summed
}

// WorkedSeconds sums, per miner hotkey and executor class, the worked_seconds of the
// WorkInterval receipts whose Timestamp is in [from, to) and that the miner has
// countersigned (a receipt without a miner signature does not count). The executor class
// and worked seconds come from the payload JSON, read in SQL: on SQLite through the
// expression index receipts_work, on PostgreSQL through the generated columns work_class
// and work_seconds (migration 0005). A receipt whose payload has no executor_class is not
// counted; a worked_seconds that is not a number counts as 0. The result is ordered by
// hotkey, then class (byte order, the same on both engines).
//
// Each stored row counts once, and each interval of a job is one row: receipts are keyed
// (receipt_type, job_uuid, seq), seq being a WorkInterval receipt's interval index.
//
// Cost: SQLite reads every countersigned WorkInterval entry of the index (in miner and
// class order, so no sort) and skips those outside the window; PostgreSQL reads the
// window's entries of its index. 0.3 s (SQLite) and 0.5 s (PostgreSQL) per million receipts
// on 2 cores, scoring included (BenchmarkScoreMillionReceipts).
func (db *DB) WorkedSeconds(ctx context.Context, from, to time.Time) ([]WorkTotal, error) {
	rows, err := db.r.QueryContext(ctx, db.dialect.rebind(db.dialect.workedSecondsQuery()),
		db.dialect.timeArg(from), db.dialect.timeArg(to))
	if err != nil {
		return nil, fmt.Errorf("store: sum worked seconds: %w", err)
	}
	defer rows.Close()
	var out []WorkTotal
	for rows.Next() {
		var w WorkTotal
		if err := rows.Scan(&w.MinerHotkey, &w.ExecutorClass, &w.WorkedSeconds, &w.Receipts); err != nil {
			return nil, fmt.Errorf("store: sum worked seconds: %w", err)
		}
		out = append(out, w)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: sum worked seconds: %w", err)
	}
	// PostgreSQL's ORDER BY follows the database's collation; sort in byte order so both
	// engines give the same order.
	slices.SortFunc(out, func(a, b WorkTotal) int {
		return cmp.Or(cmp.Compare(a.MinerHotkey, b.MinerHotkey), cmp.Compare(a.ExecutorClass, b.ExecutorClass))
	})
	return out, nil
}

// workedSecondsQuery is WorkedSeconds' SELECT for the engine; arguments: from, to. The
// conditions on receipt_type and miner_signature repeat the WHERE of the partial index of
// migration 0005 word for word (literals, not arguments), which is what lets each engine
// use it: SQLite then reads the class and seconds from the index instead of parsing each
// payload, PostgreSQL does an index-only scan of the generated columns.
func (d dialect) workedSecondsQuery() string {
	if d == dialectPostgres {
		return `SELECT miner_hotkey, work_class, COALESCE(SUM(work_seconds), 0)::bigint, COUNT(*)
			FROM receipts
			WHERE receipt_type = 'WorkInterval' AND miner_signature IS NOT NULL AND miner_signature <> ''
				AND timestamp >= ? AND timestamp < ? AND work_class IS NOT NULL
			GROUP BY miner_hotkey, work_class`
	}
	return `SELECT miner_hotkey, payload ->> '$.executor_class' AS class,
			CAST(COALESCE(SUM(CASE WHEN json_type(payload, '$.worked_seconds') IN ('integer', 'real')
				THEN payload ->> '$.worked_seconds' END), 0) AS INTEGER), COUNT(*)
		FROM receipts INDEXED BY receipts_work
		WHERE receipt_type = 'WorkInterval' AND miner_signature IS NOT NULL AND miner_signature <> ''
			AND timestamp >= ? AND timestamp < ? AND class IS NOT NULL
		GROUP BY miner_hotkey, class`
}
