package minerweb

import (
	"context"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Password hashes are "pbkdf2-sha256$ITERATIONS$SALT$HASH", salt and hash in unpadded
// standard base64: PBKDF2 with HMAC-SHA-256 from the standard library, at OWASP's
// recommended 600,000 iterations.
const (
	hashScheme       = "pbkdf2-sha256"
	hashIterations   = 600_000
	minHashIteration = 100_000 // below this a configured hash is refused as too weak
	saltBytes        = 16
	keyBytes         = 32
)

// HashPassword returns the hash of pw to configure as the admin password hash. Each call
// draws a new salt, so hashing one password twice gives two different (equally valid)
// strings.
func HashPassword(pw string) (string, error) {
	return hashPassword(pw, hashIterations)
}

func hashPassword(pw string, iter int) (string, error) {
	if pw == "" {
		return "", errors.New("minerweb: the password is empty")
	}
	salt := make([]byte, saltBytes)
	_, _ = rand.Read(salt)
	key, err := pbkdf2.Key(sha256.New, pw, salt, iter, keyBytes)
	if err != nil {
		return "", fmt.Errorf("minerweb: hash password: %w", err)
	}
	enc := base64.RawStdEncoding
	return fmt.Sprintf("%s$%d$%s$%s", hashScheme, iter, enc.EncodeToString(salt), enc.EncodeToString(key)), nil
}

// passwordHash is a parsed password hash.
type passwordHash struct {
	iter      int
	salt, key []byte
}

// parsePasswordHash parses s; its errors never quote s, which is a secret.
func parsePasswordHash(s string) (*passwordHash, error) {
	parts := strings.Split(s, "$")
	if len(parts) != 4 || parts[0] != hashScheme {
		return nil, fmt.Errorf("not of the form %s$ITERATIONS$SALT$HASH; create one with `horde miner hash-password`", hashScheme)
	}
	iter, err := strconv.Atoi(parts[1])
	if err != nil || iter < minHashIteration || iter > 100*hashIterations {
		return nil, fmt.Errorf("iteration count must be a number from %d to %d", minHashIteration, 100*hashIterations)
	}
	dec := func(s string) ([]byte, error) { return base64.RawStdEncoding.DecodeString(strings.TrimRight(s, "=")) }
	salt, err := dec(parts[2])
	if err != nil || len(salt) < 8 {
		return nil, errors.New("salt is not base64 of at least 8 bytes")
	}
	key, err := dec(parts[3])
	if err != nil || len(key) < 16 || len(key) > 64 {
		return nil, errors.New("hash is not base64 of 16 to 64 bytes")
	}
	return &passwordHash{iter: iter, salt: salt, key: key}, nil
}

// matches reports whether pw hashes to h, comparing in constant time.
func (h *passwordHash) matches(pw string) bool {
	key, err := pbkdf2.Key(sha256.New, pw, h.salt, h.iter, len(h.key))
	return err == nil && subtle.ConstantTimeCompare(key, h.key) == 1
}

// Sessions and login throttling.
const (
	sessionCookie   = "horde_admin"
	sessionTTL      = 12 * time.Hour
	maxSessions     = 32 // the oldest is ended to make room
	loginFailWindow = time.Minute
	maxLoginFails   = 5 // failed logins per address and window; more get 429
	maxTrackedAddrs = 4096
)

// session is one logged-in browser. Its fields do not change.
type session struct {
	user    string
	csrf    string // the token the logout form must carry
	created time.Time
	expires time.Time
}

// authenticator keeps the sessions and the failed-login counts, in memory.
type authenticator struct {
	now func() time.Time

	mu       sync.Mutex
	sessions map[[32]byte]*session        // by SHA-256 of the cookie's token; guarded by mu
	failures map[netip.Prefix][]time.Time // failed logins in the window, oldest first; guarded by mu
}

func newAuthenticator(now func() time.Time) *authenticator {
	return &authenticator{now: now, sessions: map[[32]byte]*session{}, failures: map[netip.Prefix][]time.Time{}}
}

// start creates a session for user and returns the cookie's token. Sessions are looked up
// by the token's hash, so the map's timing says nothing about the tokens.
func (a *authenticator) start(user string) string {
	token := randomToken(32)
	now := a.now()
	s := &session{user: user, csrf: randomToken(32), created: now, expires: now.Add(sessionTTL)}
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.sessions) >= maxSessions {
		var oldestKey [32]byte
		var oldest *session
		for k, s := range a.sessions {
			if !now.Before(s.expires) {
				delete(a.sessions, k)
			} else if oldest == nil || s.created.Before(oldest.created) {
				oldestKey, oldest = k, s
			}
		}
		if len(a.sessions) >= maxSessions {
			delete(a.sessions, oldestKey)
		}
	}
	a.sessions[sha256.Sum256([]byte(token))] = s
	return token
}

// lookup returns the live session of token, or nil.
func (a *authenticator) lookup(token string) *session {
	if token == "" {
		return nil
	}
	key := sha256.Sum256([]byte(token))
	a.mu.Lock()
	defer a.mu.Unlock()
	s := a.sessions[key]
	if s != nil && !a.now().Before(s.expires) {
		delete(a.sessions, key)
		return nil
	}
	return s
}

func (a *authenticator) end(token string) {
	a.mu.Lock()
	delete(a.sessions, sha256.Sum256([]byte(token)))
	a.mu.Unlock()
}

// throttled reports whether addr has used up its failed logins, and for how long.
func (a *authenticator) throttled(addr netip.Prefix) (time.Duration, bool) {
	now := a.now()
	a.mu.Lock()
	defer a.mu.Unlock()
	fails := a.recentLocked(addr, now)
	if len(fails) < maxLoginFails {
		return 0, false
	}
	return fails[0].Add(loginFailWindow).Sub(now), true
}

// failed counts a failed login from addr.
func (a *authenticator) failed(addr netip.Prefix) {
	now := a.now()
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, known := a.failures[addr]; !known && len(a.failures) >= maxTrackedAddrs {
		for p := range a.failures {
			a.recentLocked(p, now)
		}
		for p := range a.failures { // still full: forget one address to make room
			if len(a.failures) < maxTrackedAddrs {
				break
			}
			delete(a.failures, p)
		}
	}
	a.failures[addr] = append(a.recentLocked(addr, now), now)
}

// recentLocked drops addr's failures older than the window and returns the rest.
func (a *authenticator) recentLocked(addr netip.Prefix, now time.Time) []time.Time {
	fails := a.failures[addr]
	i := 0
	for i < len(fails) && !now.Before(fails[i].Add(loginFailWindow)) {
		i++
	}
	fails = fails[i:]
	if len(fails) == 0 {
		delete(a.failures, addr)
		return nil
	}
	a.failures[addr] = fails
	return fails
}

// clientPrefix is what failed logins are counted by: the TCP peer's address (no forwarding
// header is trusted), IPv6 peers by their /64, which one host usually holds whole.
func clientPrefix(r *http.Request) netip.Prefix {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Prefix{}
	}
	addr := ap.Addr().Unmap()
	if addr.Is6() {
		p, _ := addr.Prefix(64)
		return p
	}
	return netip.PrefixFrom(addr, 32)
}

type sessionKey struct{}

func sessionFrom(ctx context.Context) *session {
	s, _ := ctx.Value(sessionKey{}).(*session)
	return s
}

// requireSession lets requests with a live session through and sends the others to the
// login page.
func (h *Handler) requireSession(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s := h.session(r)
		if s == nil {
			http.Redirect(w, r, loginPath, http.StatusSeeOther)
			return
		}
		next(w, r.WithContext(context.WithValue(r.Context(), sessionKey{}, s)))
	}
}

func (h *Handler) session(r *http.Request) *session {
	if h.hash == nil {
		return nil
	}
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return nil
	}
	return h.auth.lookup(c.Value)
}

type loginPage struct {
	Enabled bool
	Error   string
	User    string // the username tried, to fill the form again
}

func (h *Handler) serveLoginForm(w http.ResponseWriter, r *http.Request) {
	if h.session(r) != nil {
		http.Redirect(w, r, overviewPath, http.StatusSeeOther)
		return
	}
	h.render(w, r, http.StatusOK, "login.html", "Sign in", loginPage{Enabled: h.hash != nil})
}

func (h *Handler) serveLogin(w http.ResponseWriter, r *http.Request) {
	if h.hash == nil {
		h.render(w, r, http.StatusForbidden, "login.html", "Sign in", loginPage{})
		return
	}
	if err := h.csrf.Check(r); err != nil {
		h.render(w, r, http.StatusForbidden, "error.html", "Forbidden", errorPage{Message: "Cross-origin login refused."})
		return
	}
	addr := clientPrefix(r)
	if wait, ok := h.auth.throttled(addr); ok {
		h.tooMany(w, r, wait)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	user, pw := r.PostFormValue("username"), r.PostFormValue("password")
	// The password is checked whatever the username, so that timing does not tell a right
	// username from a wrong one; the comparisons are constant-time.
	select {
	case h.hashSem <- struct{}{}:
	case <-r.Context().Done():
		return
	}
	pwOK := h.hash.matches(pw)
	<-h.hashSem
	userOK := subtle.ConstantTimeCompare([]byte(user), []byte(h.user)) == 1
	if !userOK || !pwOK {
		h.auth.failed(addr)
		h.log.Warn("admin login failed", "remote", r.RemoteAddr)
		h.render(w, r, http.StatusUnauthorized, "login.html", "Sign in",
			loginPage{Enabled: true, Error: "Wrong username or password.", User: user})
		return
	}
	token := h.auth.start(h.user)
	http.SetCookie(w, &http.Cookie{
		Name: sessionCookie, Value: token, Path: overviewPath,
		MaxAge: int(sessionTTL / time.Second), HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode,
	})
	h.log.Info("admin logged in", "remote", r.RemoteAddr)
	http.Redirect(w, r, overviewPath, http.StatusSeeOther)
}

func (h *Handler) tooMany(w http.ResponseWriter, r *http.Request, wait time.Duration) {
	secs := max(1, int((wait+time.Second-1)/time.Second))
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	h.render(w, r, http.StatusTooManyRequests, "error.html", "Too many attempts",
		errorPage{Message: fmt.Sprintf("Too many failed logins from your address; try again in %d s.", secs)})
}

// serveLogout ends the session. The form must carry the session's CSRF token, on top of
// the SameSite=Strict cookie and the cross-origin check.
func (h *Handler) serveLogout(w http.ResponseWriter, r *http.Request) {
	s := sessionFrom(r.Context())
	r.Body = http.MaxBytesReader(w, r.Body, 4<<10)
	if h.csrf.Check(r) != nil || subtle.ConstantTimeCompare([]byte(r.PostFormValue("csrf")), []byte(s.csrf)) != 1 {
		h.render(w, r, http.StatusForbidden, "error.html", "Forbidden", errorPage{Message: "The form's token is missing or stale; reload the page and try again."})
		return
	}
	if c, err := r.Cookie(sessionCookie); err == nil {
		h.auth.end(c.Value)
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: overviewPath, MaxAge: -1,
		HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode})
	h.log.Info("admin logged out", "remote", r.RemoteAddr)
	http.Redirect(w, r, loginPath, http.StatusSeeOther)
}
