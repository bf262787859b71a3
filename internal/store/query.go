package store

import (
	"context"
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
