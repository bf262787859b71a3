package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// maxStateBytes bounds one state document: state is small by design (books of a few
// thousand miners), and a runaway one should fail loudly rather than bloat every restart.
const maxStateBytes = 16 << 20

// PutState stores v, encoded as JSON, under name, replacing what was there.
func (db *DB) PutState(ctx context.Context, name string, v any) error {
	if name == "" {
		return fmt.Errorf("%w: state without a name", ErrInvalid)
	}
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("store: encode state %s: %w", name, err)
	}
	if len(data) > maxStateBytes {
		return fmt.Errorf("%w: state %s is %d bytes, over the %d-byte limit", ErrInvalid, name, len(data), maxStateBytes)
	}
	_, err = db.w.ExecContext(ctx, db.dialect.rebind(`INSERT INTO state (name, value, updated_at) VALUES (?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at`),
		name, string(data), db.dialect.timeArg(time.Now()))
	if err != nil {
		return fmt.Errorf("store: put state %s: %w", name, err)
	}
	return nil
}

// GetState decodes the state stored under name into v. It returns an error wrapping
// [ErrNotFound] when there is none.
func (db *DB) GetState(ctx context.Context, name string, v any) error {
	var data string
	err := db.r.QueryRowContext(ctx, db.dialect.rebind(`SELECT value FROM state WHERE name = ?`), name).Scan(&data)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%w: state %s", ErrNotFound, name)
	}
	if err != nil {
		return fmt.Errorf("store: get state %s: %w", name, err)
	}
	if err := json.Unmarshal([]byte(data), v); err != nil {
		return fmt.Errorf("store: decode state %s: %w", name, err)
	}
	return nil
}
