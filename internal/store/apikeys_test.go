package store

import (
	"crypto/sha256"
	"errors"
	"reflect"
	"regexp"
	"testing"
	"time"
)

func TestAPIKeys(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, db *DB) {
		ctx := testContext(t)
		now := time.Date(2026, 4, 5, 6, 7, 8, 901234567, time.UTC)
		db.now = func() time.Time { return now }
		hash := func(secret string) []byte { h := sha256.Sum256([]byte(secret)); return h[:] }

		var alices []APIKey
		for i, secret := range []string{"s1", "s2"} {
			now = now.Add(time.Duration(i) * time.Second)
			k, err := db.CreateAPIKey(ctx, "alice", "laptop", hash(secret))
			if err != nil {
				t.Fatalf("CreateAPIKey: %v", err)
			}
			if !regexp.MustCompile(`^key_[0-9a-f]{16}$`).MatchString(k.ID) || k.User != "alice" || k.Name != "laptop" ||
				!k.CreatedAt.Equal(now.Truncate(time.Microsecond)) || !k.RevokedAt.IsZero() {
				t.Errorf("CreateAPIKey = %+v", k)
			}
			alices = append(alices, k)
		}
		if alices[0].ID == alices[1].ID {
			t.Errorf("two keys with ID %s", alices[0].ID)
		}
		bobs, err := db.CreateAPIKey(ctx, "bob", "", hash("s3"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.CreateAPIKey(ctx, "bob", "again", hash("s1")); !errors.Is(err, ErrDuplicate) {
			t.Errorf("CreateAPIKey with a stored hash: %v", err)
		}
		if _, err := db.CreateAPIKey(ctx, "bob", "raw", []byte("s4")); !errors.Is(err, ErrInvalid) {
			t.Errorf("CreateAPIKey with a secret instead of its hash: %v", err)
		}
		if _, err := db.CreateAPIKey(ctx, "", "x", hash("s5")); !errors.Is(err, ErrInvalid) {
			t.Errorf("CreateAPIKey without a user: %v", err)
		}

		if k, err := db.APIKeyByHash(ctx, hash("s1")); err != nil || !reflect.DeepEqual(k, alices[0]) {
			t.Errorf("APIKeyByHash = %+v, %v; want %+v", k, err, alices[0])
		}
		if _, err := db.APIKeyByHash(ctx, hash("wrong")); !errors.Is(err, ErrNotFound) {
			t.Errorf("APIKeyByHash(unknown): %v", err)
		}
		if got, err := db.ListAPIKeys(ctx, "alice"); err != nil || !reflect.DeepEqual(got, []APIKey{alices[1], alices[0]}) {
			t.Errorf("ListAPIKeys(alice) = %+v, %v", got, err)
		}
		if got, err := db.ListAPIKeys(ctx, "carol"); err != nil || len(got) != 0 {
			t.Errorf("ListAPIKeys(carol) = %+v, %v", got, err)
		}

		// Only the owner can revoke, and the key stops working; revoking again changes nothing.
		if err := db.RevokeAPIKey(ctx, "bob", alices[0].ID); !errors.Is(err, ErrNotFound) {
			t.Errorf("RevokeAPIKey of another user's key: %v", err)
		}
		if err := db.RevokeAPIKey(ctx, "alice", "key_0000000000000000"); !errors.Is(err, ErrNotFound) {
			t.Errorf("RevokeAPIKey of an unknown key: %v", err)
		}
		if _, err := db.APIKeyByHash(ctx, hash("s1")); err != nil {
			t.Errorf("a failed revocation revoked the key: %v", err)
		}
		revoked := now.Add(time.Minute)
		now = revoked
		if err := db.RevokeAPIKey(ctx, "alice", alices[0].ID); err != nil {
			t.Fatalf("RevokeAPIKey: %v", err)
		}
		now = now.Add(time.Minute)
		if err := db.RevokeAPIKey(ctx, "alice", alices[0].ID); err != nil {
			t.Errorf("RevokeAPIKey twice: %v", err)
		}
		if _, err := db.APIKeyByHash(ctx, hash("s1")); !errors.Is(err, ErrNotFound) {
			t.Errorf("APIKeyByHash of a revoked key: %v", err)
		}
		got, err := db.ListAPIKeys(ctx, "alice")
		want := []APIKey{alices[1], alices[0]}
		want[1].RevokedAt = revoked.Truncate(time.Microsecond)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("ListAPIKeys after the revocation = %+v, %v; want %+v", got, err, want)
		}
		if k, err := db.APIKeyByHash(ctx, hash("s3")); err != nil || k.ID != bobs.ID {
			t.Errorf("bob's key = %+v, %v", k, err)
		}
	})
}
