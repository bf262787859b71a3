// Package minerweb is the miner's admin panel and Prometheus endpoint, served on the miner's
// own HTTP port next to the validator and executor endpoints:
//
//   - GET /admin/login/ answers 200 with a login form, or, when no credentials are
//     configured, a page saying the panel is disabled and how to enable it;
//   - behind a login: /admin/ (axon, metagraph cache, manifest, jobs in flight, recent
//     declines and failures, work done per class), /admin/jobs/ (recent jobs) and
//     /admin/jobs/{uuid}/ (one job and its receipts);
//   - GET /metrics, the miner's gauges and counters in Prometheus' text format, open to
//     anyone who can reach the port.
//
// Pages are rendered on the server with html/template from embedded templates: no
// JavaScript, no build step. The password is kept only as a PBKDF2 hash (see
// [HashPassword]); sessions live in memory and end when the miner restarts.
package minerweb

import (
	"bytes"
	"context"
	"crypto/rand"
	"embed"
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"time"

	"github.com/computehorde/horde/internal/miner"
	"github.com/computehorde/horde/internal/store"
)

// StatusSource is what the panel reads the miner's live state from; *miner.Miner is one.
// Status must be safe for concurrent use.
type StatusSource interface {
	Status(ctx context.Context) (miner.Status, error)
}

// Config holds the panel's dependencies and credentials.
type Config struct {
	// Miner gives the live state; required.
	Miner StatusSource
	// Store is the miner's database, for the jobs and receipts pages; required.
	Store *store.DB
	// Username and PasswordHash (from [HashPassword]) are the one operator's credentials.
	// Both empty disables the panel: the login page then says how to enable it, and
	// /metrics is served all the same. One without the other is an error.
	Username     string
	PasswordHash string
	// Logger receives logins, logouts and failures. Nil means slog.Default().
	Logger *slog.Logger
}

// Handler serves the admin panel and /metrics. Create it with [New]; mount it with
// [Handler.Register] or serve it as it is. It is safe for concurrent use.
type Handler struct {
	src     StatusSource
	db      *store.DB
	user    string
	hash    *passwordHash // nil: the panel is disabled
	log     *slog.Logger
	auth    *authenticator
	csrf    *http.CrossOriginProtection
	pages   map[string]*template.Template
	mux     *http.ServeMux
	hashSem chan struct{} // bounds concurrent password checks: each costs ~0.2 s of CPU
}

// New checks cfg and returns the handler.
func New(cfg Config) (*Handler, error) {
	switch {
	case cfg.Miner == nil:
		return nil, errors.New("minerweb: config: Miner is required")
	case cfg.Store == nil:
		return nil, errors.New("minerweb: config: Store is required")
	case (cfg.Username == "") != (cfg.PasswordHash == ""):
		return nil, errors.New("minerweb: config: set both the admin username and the password hash (from `horde miner hash-password`), or neither to disable the panel")
	}
	h := &Handler{
		src:     cfg.Miner,
		db:      cfg.Store,
		user:    cfg.Username,
		log:     cfg.Logger,
		auth:    newAuthenticator(time.Now),
		csrf:    http.NewCrossOriginProtection(),
		hashSem: make(chan struct{}, 2),
	}
	if h.log == nil {
		h.log = slog.Default()
	}
	h.log = h.log.With("component", "minerweb")
	if cfg.PasswordHash != "" {
		ph, err := parsePasswordHash(cfg.PasswordHash)
		if err != nil {
			return nil, fmt.Errorf("minerweb: config: password hash: %w", err)
		}
		h.hash = ph
	}
	pages, err := parseTemplates()
	if err != nil {
		return nil, err
	}
	h.pages = pages
	h.mux = http.NewServeMux()
	h.Register(h.mux)
	return h, nil
}

// Patterns the panel serves; Register mounts each on a mux.
const (
	patternMetrics = "GET /metrics"
	loginPath      = "/admin/login/"
	logoutPath     = "/admin/logout/"
	overviewPath   = "/admin/"
	jobsPath       = "/admin/jobs/"
)

// Register mounts the panel's routes on mux: /admin/ and everything under it, and
// GET /metrics. Any other pattern on mux, such as a catch-all "/" for the miner's own
// handler, keeps serving the rest.
func (h *Handler) Register(mux *http.ServeMux) {
	mux.Handle(patternMetrics, http.HandlerFunc(h.serveMetrics))
	page := func(pattern string, f http.HandlerFunc) { mux.Handle(pattern, h.secured(f)) }
	page("GET "+loginPath+"{$}", h.serveLoginForm)
	page("POST "+loginPath+"{$}", h.serveLogin)
	page("POST "+logoutPath+"{$}", h.requireSession(h.serveLogout))
	page("GET "+overviewPath+"{$}", h.requireSession(h.serveOverview))
	page("GET "+jobsPath+"{$}", h.requireSession(h.serveJobs))
	page("GET "+jobsPath+"{uuid}/{$}", h.requireSession(h.serveJob))
	page("GET /admin", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, overviewPath, http.StatusMovedPermanently)
	})
	page("/admin/", func(w http.ResponseWriter, r *http.Request) { h.notFound(w, r) })
}

// ServeHTTP serves the panel's routes alone (404 for anything else).
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

// nonceKey carries the request's CSP nonce in its context.
type nonceKey struct{}

// secured sets the security headers of every panel page: a nonce-based Content-Security-
// Policy that allows the page's one inline style element and nothing else (no script at
// all), no framing, no referrer, no caching.
func (h *Handler) secured(next http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		nonce := randomToken(16)
		hd := w.Header()
		hd.Set("Content-Security-Policy", "default-src 'self'; script-src 'none'; object-src 'none'; style-src 'nonce-"+nonce+"'; "+
			"img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("Referrer-Policy", "no-referrer")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Cache-Control", "no-store")
		next(w, r.WithContext(context.WithValue(r.Context(), nonceKey{}, nonce)))
	})
}

// page is what every template gets; Data is the page's own.
type page struct {
	Title    string
	Nonce    string // CSP nonce of the style element
	LoggedIn bool
	User     string
	CSRF     string // the session's token, for the logout form
	Data     any
}

// render executes the named page into a buffer first, so that a template error becomes a
// clean 500 rather than half a page.
func (h *Handler) render(w http.ResponseWriter, r *http.Request, status int, name, title string, data any) {
	p := page{Title: title, Data: data}
	p.Nonce, _ = r.Context().Value(nonceKey{}).(string)
	if s := sessionFrom(r.Context()); s != nil {
		p.LoggedIn, p.User, p.CSRF = true, s.user, s.csrf
	}
	var buf bytes.Buffer
	if err := h.pages[name].ExecuteTemplate(&buf, "layout", p); err != nil {
		h.log.Error("cannot render page", "page", name, "err", err)
		http.Error(w, "internal error rendering the page; see the miner's log", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

func (h *Handler) notFound(w http.ResponseWriter, r *http.Request) {
	h.render(w, r, http.StatusNotFound, "error.html", "Not found", errorPage{Message: "There is no such page."})
}

// fail logs err and answers 500 with a page that does not repeat it.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, what string, err error) {
	h.log.Error(what, "path", r.URL.Path, "err", err)
	h.render(w, r, http.StatusInternalServerError, "error.html", "Error",
		errorPage{Message: "The miner could not " + what + ". The miner's log has the details."})
}

type errorPage struct{ Message string }

//go:embed templates/*.html
var templateFS embed.FS

// parseTemplates parses each page together with the shared layout.
func parseTemplates() (map[string]*template.Template, error) {
	names, err := templateFS.ReadDir("templates")
	if err != nil {
		return nil, fmt.Errorf("minerweb: templates: %w", err)
	}
	pages := map[string]*template.Template{}
	for _, e := range names {
		if e.Name() == "layout.html" {
			continue
		}
		t, err := template.New(e.Name()).Funcs(templateFuncs).ParseFS(templateFS, "templates/layout.html", "templates/"+e.Name())
		if err != nil {
			return nil, fmt.Errorf("minerweb: template %s: %w", e.Name(), err)
		}
		pages[e.Name()] = t
	}
	return pages, nil
}

var templateFuncs = template.FuncMap{
	"when": func(t time.Time) string {
		if t.IsZero() {
			return "—"
		}
		return t.UTC().Format("2006-01-02 15:04:05Z")
	},
	"ago": func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return roundDuration(time.Since(t)).String() + " ago"
	},
	"dur":   func(d time.Duration) string { return roundDuration(d).String() },
	"short": shortKey,
	"seconds": func(d time.Duration) string {
		return fmt.Sprintf("%.0f", d.Seconds())
	},
}

func roundDuration(d time.Duration) time.Duration {
	switch {
	case d >= time.Hour:
		return d.Round(time.Minute)
	case d >= time.Minute:
		return d.Round(time.Second)
	}
	return d.Round(time.Millisecond)
}

// shortKey is an SS58 key's first 8 characters, for tables (the full key goes in a title).
func shortKey(k string) string {
	if len(k) > 10 {
		return k[:8] + "…"
	}
	return k
}

// randomToken returns n random bytes, base64url-encoded.
func randomToken(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return base64.RawURLEncoding.EncodeToString(b)
}
