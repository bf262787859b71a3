package facilitator

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/computehorde/horde/internal/keys"
	"github.com/computehorde/horde/internal/store"
)

// Users sign in two ways. A hotkey signs a nonce the facilitator issued (GET /auth/nonce,
// POST /auth/login, as upstream) and gets a short-lived token; unlike upstream, a nonce is
// good for one login only. Or the user creates API keys (POST /api/v1/keys) and sends one as
// the bearer token; keys are stored hashed and can be revoked. Every authenticated request
// is rate-limited per user.

const (
	tokenPrefix  = "hft1."
	apiKeyPrefix = "hk_"
	// maxLoginBody bounds an unauthenticated request.
	maxLoginBody = 4 << 10
)

type userKey struct{}

// userOf returns the authenticated user (an ss58 hotkey) of a request.
func userOf(r *http.Request) string { u, _ := r.Context().Value(userKey{}).(string); return u }

func (f *Facilitator) mac(parts ...string) []byte {
	h := hmac.New(sha256.New, f.secret)
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return h.Sum(nil)
}

// handleNonce issues a nonce: random hex, its time and a MAC over both.
func (f *Facilitator) handleNonce(w http.ResponseWriter, r *http.Request) {
	var b [16]byte
	_, _ = rand.Read(b[:])
	v, ts := hex.EncodeToString(b[:]), strconv.FormatInt(time.Now().Unix(), 10)
	writeJSON(w, http.StatusOK, map[string]string{"nonce": v + ":" + ts + ":" + hex.EncodeToString(f.mac("nonce", v, ts))})
}

// nonceBook remembers the nonces used, until they expire, so that each logs in once.
type nonceBook struct {
	mu   sync.Mutex
	seen map[string]time.Time
}

func (b *nonceBook) use(nonce string, expires, now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	for n, e := range b.seen {
		if now.After(e) {
			delete(b.seen, n)
		}
	}
	if _, used := b.seen[nonce]; used {
		return false
	}
	b.seen[nonce] = expires
	return true
}

// checkNonce verifies a nonce's MAC and age and uses it up.
func (f *Facilitator) checkNonce(nonce string, now time.Time) error {
	parts := strings.Split(nonce, ":")
	if len(parts) != 3 {
		return errors.New("the nonce is not one this facilitator issued (GET /auth/nonce)")
	}
	mac, err := hex.DecodeString(parts[2])
	if err != nil || !hmac.Equal(mac, f.mac("nonce", parts[0], parts[1])) {
		return errors.New("the nonce is not one this facilitator issued (GET /auth/nonce)")
	}
	ts, _ := strconv.ParseInt(parts[1], 10, 64)
	issued := time.Unix(ts, 0)
	if now.Sub(issued) > f.cfg.NonceLifetime || issued.After(now.Add(time.Minute)) {
		return fmt.Errorf("the nonce expired (nonces last %v); get a new one", f.cfg.NonceLifetime)
	}
	if !f.nonces.use(nonce, issued.Add(f.cfg.NonceLifetime), now) {
		return errors.New("the nonce was already used; get a new one for each login")
	}
	return nil
}

// handleLogin exchanges a signed nonce for a token: {hotkey, signature, nonce}, the
// signature over the nonce's UTF-8 bytes in hex (with or without 0x).
func (f *Facilitator) handleLogin(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Hotkey    string `json:"hotkey"`
		Signature string `json:"signature"`
		Nonce     string `json:"nonce"`
	}
	if !decodeBody(w, r, maxLoginBody, &req) {
		return
	}
	switch {
	case req.Hotkey == "" || req.Signature == "" || req.Nonce == "":
		writeError(w, http.StatusBadRequest, "invalid_request", "hotkey, signature and nonce are required")
		return
	}
	if _, err := keys.ParsePublicKey(req.Hotkey); err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request", "hotkey: not an ss58 address: "+err.Error())
		return
	}
	sig := req.Signature
	if !strings.HasPrefix(sig, "0x") {
		sig = "0x" + sig
	}
	if err := keys.Verify(req.Hotkey, []byte(req.Nonce), sig); err != nil {
		writeError(w, http.StatusUnauthorized, "invalid_signature", "the signature does not verify for this hotkey and nonce: "+err.Error())
		return
	}
	if err := f.checkNonce(req.Nonce, time.Now()); err != nil {
		writeError(w, http.StatusUnauthorized, "invalid_nonce", err.Error())
		return
	}
	exp := time.Now().Add(f.cfg.TokenLifetime)
	writeJSON(w, http.StatusOK, map[string]any{"token": f.issueToken(req.Hotkey, exp), "expires_at": exp.UTC().Format(time.RFC3339)})
}

type tokenClaims struct {
	Sub string `json:"sub"`
	Exp int64  `json:"exp"`
}

func (f *Facilitator) issueToken(user string, exp time.Time) string {
	payload, _ := json.Marshal(tokenClaims{Sub: user, Exp: exp.Unix()})
	p := base64.RawURLEncoding.EncodeToString(payload)
	return tokenPrefix + p + "." + base64.RawURLEncoding.EncodeToString(f.mac("token", p))
}

var (
	errTokenExpired = errors.New("the token expired; sign in again")
	errTokenInvalid = errors.New("the token is not one this facilitator issued")
)

func (f *Facilitator) checkToken(tok string, now time.Time) (string, error) {
	rest, _ := strings.CutPrefix(tok, tokenPrefix)
	p, m, ok := strings.Cut(rest, ".")
	if !ok {
		return "", errTokenInvalid
	}
	mac, err := base64.RawURLEncoding.DecodeString(m)
	if err != nil || !hmac.Equal(mac, f.mac("token", p)) {
		return "", errTokenInvalid
	}
	payload, err := base64.RawURLEncoding.DecodeString(p)
	var c tokenClaims
	if err != nil || json.Unmarshal(payload, &c) != nil || c.Sub == "" {
		return "", errTokenInvalid
	}
	if now.Unix() >= c.Exp {
		return "", errTokenExpired
	}
	return c.Sub, nil
}

// apiKeyCacheAge is how long a valid API key, once looked up, is accepted without asking the
// database again. It bounds how late a revocation takes effect: at once through this
// process (the store drops the key from its cache), within apiKeyCacheAge (1 s) when another
// replica revoked it.
const apiKeyCacheAge = time.Second

// hashAPIKey is how API keys are stored: random 32-byte secrets need no slow hash.
func hashAPIKey(secret string) []byte { s := sha256.Sum256([]byte(secret)); return s[:] }

// authenticate returns the user a bearer credential names.
func (f *Facilitator) authenticate(ctx context.Context, r *http.Request) (string, int, string, error) {
	auth := r.Header.Get("Authorization")
	cred, ok := strings.CutPrefix(auth, "Bearer ")
	if !ok || cred == "" {
		return "", http.StatusUnauthorized, "unauthenticated", errors.New("send Authorization: Bearer <token or API key>; sign in with /auth/nonce and /auth/login")
	}
	switch {
	case strings.HasPrefix(cred, tokenPrefix):
		u, err := f.checkToken(cred, time.Now())
		if err != nil {
			return "", http.StatusUnauthorized, "invalid_token", err
		}
		return u, 0, "", nil
	case strings.HasPrefix(cred, apiKeyPrefix):
		k, err := f.db.APIKeyByHashCached(ctx, hashAPIKey(cred), apiKeyCacheAge)
		if errors.Is(err, store.ErrNotFound) {
			return "", http.StatusUnauthorized, "invalid_api_key", errors.New("unknown or revoked API key")
		}
		if err != nil {
			return "", http.StatusInternalServerError, "internal", err
		}
		return k.User, 0, "", nil
	}
	return "", http.StatusUnauthorized, "invalid_token", errTokenInvalid
}

// authed wraps h with authentication and the per-user rate limit.
func (f *Facilitator) authed(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		user, status, code, err := f.authenticate(r.Context(), r)
		if err != nil {
			if status == http.StatusInternalServerError {
				f.log.Error("authentication failed", "err", err)
				err = errors.New("internal error")
			}
			writeError(w, status, code, err.Error())
			return
		}
		if wait, ok := f.limiter.allow(user, time.Now()); !ok {
			w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
			writeError(w, http.StatusTooManyRequests, "rate_limited",
				fmt.Sprintf("more than %v requests per second; retry in %v", f.cfg.RateLimit, wait.Round(time.Millisecond)))
			return
		}
		if rw, ok := w.(*refusalWriter); ok {
			rw.user = user
		}
		h(w, r.WithContext(context.WithValue(r.Context(), userKey{}, user)))
	}
}

// rateLimiter is a token bucket per user.
type rateLimiter struct {
	mu      sync.Mutex
	rate    float64
	burst   float64
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	at     time.Time
}

// allow takes a token of user's bucket, or says how long until one is there.
func (l *rateLimiter) allow(user string, now time.Time) (time.Duration, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[user]
	if b == nil {
		if len(l.buckets) > 100_000 { // forget idle users rather than grow without bound
			clear(l.buckets)
		}
		b = &bucket{tokens: l.burst, at: now}
		l.buckets[user] = b
	}
	b.tokens = math.Min(l.burst, b.tokens+now.Sub(b.at).Seconds()*l.rate)
	b.at = now
	if b.tokens < 1 {
		return time.Duration((1 - b.tokens) / l.rate * float64(time.Second)), false
	}
	b.tokens--
	return 0, true
}

func (f *Facilitator) handleCreateKey(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Name string `json:"name"`
	}
	if !decodeBody(w, r, maxLoginBody, &req) {
		return
	}
	if len(req.Name) > 100 {
		writeFieldErrors(w, []fieldError{{Field: "name", Problem: "longer than 100 characters"}})
		return
	}
	secret := apiKeyPrefix + strings.ToLower(rand.Text()+rand.Text())
	k, err := f.db.CreateAPIKey(r.Context(), userOf(r), req.Name, hashAPIKey(secret))
	if err != nil {
		f.internal(w, "create API key", err)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]any{"id": k.ID, "name": k.Name, "created_at": k.CreatedAt, "key": secret,
		"note": "the key is shown once; store it now"})
}

func (f *Facilitator) handleListKeys(w http.ResponseWriter, r *http.Request) {
	ks, err := f.db.ListAPIKeys(r.Context(), userOf(r))
	if err != nil {
		f.internal(w, "list API keys", err)
		return
	}
	out := make([]map[string]any, 0, len(ks))
	for _, k := range ks {
		m := map[string]any{"id": k.ID, "name": k.Name, "created_at": k.CreatedAt}
		if !k.RevokedAt.IsZero() {
			m["revoked_at"] = k.RevokedAt
		}
		out = append(out, m)
	}
	writeJSON(w, http.StatusOK, map[string]any{"keys": out})
}

func (f *Facilitator) handleRevokeKey(w http.ResponseWriter, r *http.Request) {
	err := f.db.RevokeAPIKey(r.Context(), userOf(r), r.PathValue("id"))
	switch {
	case errors.Is(err, store.ErrNotFound):
		writeError(w, http.StatusNotFound, "not_found", "no such API key")
	case err != nil:
		f.internal(w, "revoke API key", err)
	default:
		w.WriteHeader(http.StatusNoContent)
	}
}
