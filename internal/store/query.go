package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
)

// scanner is a row to scan: *sql.Row or *sql.Rows.
type scanner interface{ Scan(dest ...any) error }

// listQuery is the conditions of a filtered SELECT, AND-ed in order, with their arguments.
type listQuery struct {
	where []string
	args  []any
}

func (q *listQuery) add(cond string, arg any) {
	q.where = append(q.where, cond)
	q.args = append(q.args, arg)
}

// list runs sel with q's conditions, ordered by order and limited to limit rows (0: all), and
// scans every row; what names the rows in errors.
func list[T any](ctx context.Context, db *DB, what, sel, order string, q listQuery, limit int, scan func(scanner) (T, error)) ([]T, error) {
	stmt, args := sel, q.args
	if len(q.where) > 0 {
		stmt += ` WHERE ` + strings.Join(q.where, ` AND `)
	}
	stmt += ` ORDER BY ` + order
	if limit > 0 {
		stmt += ` LIMIT ?`
		args = append(args, limit)
	}
	rows, err := db.r.QueryContext(ctx, db.dialect.rebind(stmt), args...)
	if err != nil {
		return nil, fmt.Errorf("store: list %s: %w", what, err)
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, fmt.Errorf("store: list %s: %w", what, err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: list %s: %w", what, err)
	}
	return out, nil
}

// execOne runs a statement meant to change exactly one row and reports whether it did; what
// names the change in errors.
func execOne(ctx context.Context, db *DB, what, stmt string, args ...any) (bool, error) {
	res, err := db.w.ExecContext(ctx, db.dialect.rebind(stmt), args...)
	if err != nil {
		return false, fmt.Errorf("store: %s: %w", what, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("store: %s: %w", what, err)
	}
	return n == 1, nil
}

// txExec runs stmt (written with `?` placeholders) in tx. On SQLite a statement of
// [preparedSQL] runs prepared: parsing and planning are a large share of the cost of a small
// write there, and the writer's single connection keeps them prepared. pgx keeps prepared
// statements per connection by itself, so PostgreSQL runs the text.
func (db *DB) txExec(ctx context.Context, tx *sql.Tx, stmt string, args ...any) (sql.Result, error) {
	if st := db.stmts[stmt]; st != nil {
		return tx.StmtContext(ctx, st).ExecContext(ctx, args...)
	}
	return tx.ExecContext(ctx, db.dialect.rebind(stmt), args...)
}

// txQueryRow is txExec for a query of one row.
func (db *DB) txQueryRow(ctx context.Context, tx *sql.Tx, stmt string, args ...any) *sql.Row {
	if st := db.stmts[stmt]; st != nil {
		return tx.StmtContext(ctx, st).QueryRowContext(ctx, args...)
	}
	return tx.QueryRowContext(ctx, db.dialect.rebind(stmt), args...)
}

// preparedSQL are the statements of a job submission and a transfer, which SQLite runs
// prepared (see txExec).
var preparedSQL = []string{insertEntrySQL, insertCreditSQL, creditBalanceSQL, debitBalanceSQL, balanceSQL, insertFacJobSQL,
	facJobByIdempotencyKeySQL, insertFacJobEventSQL}

// prepareStatements prepares preparedSQL on SQLite's writer; it runs once, in Open, after the
// migrations (a statement can only be prepared once its tables exist) and before any
// transaction holds the writer's one connection (preparing on the DB needs a free one; a
// statement prepared on it is reused by every transaction on that connection, and
// database/sql prepares it again should the connection ever be replaced).
func (db *DB) prepareStatements(ctx context.Context) error {
	if db.dialect != dialectSQLite {
		return nil
	}
	stmts := make(map[string]*sql.Stmt, len(preparedSQL))
	for _, q := range preparedSQL {
		st, err := db.w.PrepareContext(ctx, q)
		if err != nil {
			for _, st := range stmts {
				st.Close()
			}
			return fmt.Errorf("store: prepare %q: %w", q, err)
		}
		stmts[q] = st
	}
	db.stmts = stmts
	return nil
}
