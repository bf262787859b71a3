package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"
)

// APIKey is a user's API key for the facilitator. The store never sees the secret, only its
// SHA-256, kept as lowercase hex (the same text on both engines) under a unique index.
type APIKey struct {
	ID, User, Name       string
	CreatedAt, RevokedAt time.Time // RevokedAt zero while valid
}

const apiKeyColumns = `id, user_hotkey, name, created_at, revoked_at`

// CreateAPIKey stores a key of user whose secret hashes to hash (the SHA-256 of the secret,
// computed by the caller) and returns it. The ID is random: "key_" and 16 hex digits. A hash
// of another length gives an error wrapping [ErrInvalid], which catches a secret passed by
// mistake instead of its hash; a hash already stored, one wrapping [ErrDuplicate].
func (db *DB) CreateAPIKey(ctx context.Context, user, name string, hash []byte) (APIKey, error) {
	switch {
	case user == "":
		return APIKey{}, fmt.Errorf("%w: API key without a user", ErrInvalid)
	case len(hash) != sha256.Size:
		return APIKey{}, fmt.Errorf("%w: API key of %s: the hash is %d bytes, not a SHA-256 (%d)", ErrInvalid, user, len(hash), sha256.Size)
	}
	var id [8]byte
	rand.Read(id[:]) // never fails: crypto/rand crashes the program instead
	k := APIKey{ID: "key_" + hex.EncodeToString(id[:]), User: user, Name: name, CreatedAt: db.now().UTC().Truncate(time.Microsecond)}
	inserted, err := execOne(ctx, db, "create API key of "+user, `INSERT INTO api_keys (id, user_hotkey, name, key_hash, created_at, revoked_at)
		VALUES (?, ?, ?, ?, ?, NULL) ON CONFLICT DO NOTHING`,
		k.ID, k.User, k.Name, hex.EncodeToString(hash), db.dialect.timeArg(k.CreatedAt))
	if err == nil && !inserted {
		// A clash of 64 random bits in the ID is not worth a retry loop; the hash is what
		// repeats in practice.
		err = fmt.Errorf("%w: an API key with that hash (or the ID %s) already exists", ErrDuplicate, k.ID)
	}
	if err != nil {
		return APIKey{}, err
	}
	return k, nil
}

// APIKeyByHash returns the unrevoked key whose secret hashes to hash, or an error wrapping
// [ErrNotFound] (also for a revoked key).
func (db *DB) APIKeyByHash(ctx context.Context, hash []byte) (APIKey, error) {
	row := db.r.QueryRowContext(ctx, db.dialect.rebind(`SELECT `+apiKeyColumns+` FROM api_keys
		WHERE key_hash = ? AND revoked_at IS NULL`), hex.EncodeToString(hash))
	k, err := scanAPIKey(row)
	if errors.Is(err, sql.ErrNoRows) {
		// The hash is as good as a password: it stays out of the message.
		return APIKey{}, fmt.Errorf("%w: no valid API key with that hash", ErrNotFound)
	}
	if err != nil {
		return APIKey{}, fmt.Errorf("store: look up an API key: %w", err)
	}
	return k, nil
}

// APIKeyByHashCached is [DB.APIKeyByHash] through a cache of the keys found in the last
// maxAge, for checking the key of every request without a query each time. A key revoked
// through this DB ([DB.RevokeAPIKey]) is refused at once; one revoked by another process
// sharing the database is still accepted here for at most maxAge. Unknown and revoked keys
// are not cached: they are looked up every time. Concurrent lookups of one key not in the
// cache share one query.
func (db *DB) APIKeyByHashCached(ctx context.Context, hash []byte, maxAge time.Duration) (APIKey, error) {
	c := &db.keyCache
	h := string(hash)
	now := time.Now()
	c.mu.Lock()
	e, cached := c.keys[h]
	if cached && now.Sub(e.at) < maxAge {
		c.mu.Unlock()
		return e.key, nil
	}
	if f := c.flights[h]; f != nil {
		c.mu.Unlock()
		select {
		case <-f.done:
			if f.err == nil || !errors.Is(f.err, f.ctx.Err()) { // not the first caller's own cancellation
				return f.key, f.err
			}
		case <-ctx.Done():
			return APIKey{}, fmt.Errorf("store: look up an API key: %w", ctx.Err())
		}
		return db.APIKeyByHash(ctx, hash)
	}
	f := &keyFlight{ctx: ctx, done: make(chan struct{})}
	if c.flights == nil {
		c.flights = map[string]*keyFlight{}
	}
	c.flights[h] = f
	gen := c.gen
	c.mu.Unlock()

	f.key, f.err = db.APIKeyByHash(ctx, hash)
	c.mu.Lock()
	delete(c.flights, h)
	switch {
	case errors.Is(f.err, ErrNotFound) && cached:
		delete(c.keys, h) // revoked by another process
	case f.err == nil && c.gen == gen: // no revocation meanwhile, which the read may predate
		if c.keys == nil || len(c.keys) >= apiKeyCacheMax {
			c.keys = map[string]cachedAPIKey{}
		}
		c.keys[h] = cachedAPIKey{key: f.key, at: now}
	}
	c.mu.Unlock()
	close(f.done)
	return f.key, f.err
}

// apiKeyCacheMax bounds the keys cached; past it the cache starts again empty.
const apiKeyCacheMax = 10_000

// apiKeyCache holds the keys APIKeyByHashCached found, by hash.
type apiKeyCache struct {
	mu      sync.Mutex
	keys    map[string]cachedAPIKey
	flights map[string]*keyFlight // lookups under way
	gen     uint64                // counts revocations
}

type cachedAPIKey struct {
	key APIKey
	at  time.Time // when it was read
}

// keyFlight is a lookup under way; key and err are set when done is closed.
type keyFlight struct {
	ctx  context.Context // the looking-up caller's
	done chan struct{}
	key  APIKey
	err  error
}

// forget drops key id from the cache, after its revocation was committed.
func (c *apiKeyCache) forget(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	for h, e := range c.keys {
		if e.key.ID == id {
			delete(c.keys, h)
		}
	}
}

// ListAPIKeys returns user's keys, newest first, revoked ones included.
func (db *DB) ListAPIKeys(ctx context.Context, user string) ([]APIKey, error) {
	var q listQuery
	q.add(`user_hotkey = ?`, user)
	return list(ctx, db, "API keys of "+user, `SELECT `+apiKeyColumns+` FROM api_keys`, `created_at DESC, id DESC`, q, 0, scanAPIKey)
}

// RevokeAPIKey revokes user's key id from now on. Another user's key or an unknown id gives
// an error wrapping [ErrNotFound] (a user cannot learn that someone else's key ID exists);
// revoking a revoked key is a no-op that keeps the first revocation time.
func (db *DB) RevokeAPIKey(ctx context.Context, user, id string) error {
	what := fmt.Sprintf("revoke API key %s of %s", id, user)
	ok, err := execOne(ctx, db, what, `UPDATE api_keys SET revoked_at = ? WHERE id = ? AND user_hotkey = ? AND revoked_at IS NULL`,
		db.dialect.timeArg(db.now()), id, user)
	if ok {
		db.keyCache.forget(id)
	}
	if ok || err != nil {
		return err
	}
	var one int
	err = db.w.QueryRowContext(ctx, db.dialect.rebind(`SELECT 1 FROM api_keys WHERE id = ? AND user_hotkey = ?`), id, user).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%w: API key %s of %s", ErrNotFound, id, user)
	}
	if err != nil {
		return fmt.Errorf("store: %s: %w", what, err)
	}
	return nil
}

func scanAPIKey(s scanner) (APIKey, error) {
	var k APIKey
	err := s.Scan(&k.ID, &k.User, &k.Name, timeCol{&k.CreatedAt}, timeCol{&k.RevokedAt})
	return k, err
}
