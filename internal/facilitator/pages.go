package facilitator

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/computehorde/horde/internal/protocol"
	"github.com/computehorde/horde/internal/store"
)

// Server-rendered pages, no build step and no script (the Content-Security-Policy allows
// none): sign in with an API key or a token, the jobs list (refreshing itself), a job with
// its stage timeline, output and cost, the account with its ledger and API keys, and the
// public market page. The session is an HttpOnly, SameSite=Strict cookie holding a login
// token; forms carry a CSRF token derived from it.

//go:embed templates/*.html
var templateFS embed.FS

const sessionCookie = "horde_session"

var pageFuncs = template.FuncMap{
	"credits": credits,
	"when":    func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") },
	"short":   func(s string) string { return s[:min(12, len(s))] + "…" },
	"done":    func(s string) bool { return slices.Contains(terminal, s) },
	// excerpt is the start of a job's output for the jobs list: its first line, cut short.
	"excerpt": func(s string) string {
		line, _, _ := strings.Cut(s, "\n")
		if len(line) > 60 {
			return line[:60] + "…"
		}
		return line
	},
}

// pages holds one parsed template set per page (each with the layout).
type pages map[string]*template.Template

func parsePages() (pages, error) {
	out := pages{}
	for _, name := range []string{"login", "jobs", "job", "account", "market"} {
		t, err := template.New(name).Funcs(pageFuncs).ParseFS(templateFS, "templates/layout.html", "templates/"+name+".html")
		if err != nil {
			return nil, err
		}
		out[name] = t
	}
	return out, nil
}

// page is what every page's template gets.
type page struct {
	Title   string
	User    string
	CSRF    string
	Nonce   string
	Refresh int
	Error   string
	Data    any
}

type nonceCtxKey struct{}

// secured sets the pages' security headers: a nonce for the one style element and no script.
func secured(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var b [16]byte
		_, _ = rand.Read(b[:])
		nonce := hex.EncodeToString(b[:])
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'none'; img-src 'self'; style-src 'nonce-"+nonce+"'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-store")
		next(w, r.WithContext(context.WithValue(r.Context(), nonceCtxKey{}, nonce)))
	}
}

func (f *Facilitator) render(w http.ResponseWriter, r *http.Request, name string, status int, p page) {
	p.Nonce, _ = r.Context().Value(nonceCtxKey{}).(string)
	if p.User != "" {
		p.CSRF = f.csrf(r)
	}
	var buf bytes.Buffer
	if err := f.pages[name].ExecuteTemplate(&buf, "layout", p); err != nil {
		f.log.Error("render a page", "page", name, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// sessionUser returns the signed-in user of a page request, or "".
func (f *Facilitator) sessionUser(r *http.Request) string {
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return ""
	}
	u, err := f.checkToken(c.Value, time.Now())
	if err != nil {
		return ""
	}
	return u
}

// csrf is the form token of the request's session.
func (f *Facilitator) csrf(r *http.Request) string {
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return ""
	}
	return hex.EncodeToString(f.mac("csrf", c.Value))
}

// signedIn wraps a page that needs a user; forms (POST) must carry the CSRF token.
func (f *Facilitator) signedIn(h func(http.ResponseWriter, *http.Request, string)) http.HandlerFunc {
	return secured(func(w http.ResponseWriter, r *http.Request) {
		user := f.sessionUser(r)
		if user == "" {
			http.Redirect(w, r, "/login", http.StatusSeeOther)
			return
		}
		if r.Method == http.MethodPost {
			if err := r.ParseForm(); err != nil || !hmac.Equal([]byte(r.PostForm.Get("csrf")), []byte(f.csrf(r))) {
				http.Error(w, "the form expired; reload the page", http.StatusForbidden)
				return
			}
		}
		h(w, r, user)
	})
}

func (f *Facilitator) registerPages(mux *http.ServeMux) {
	mux.HandleFunc("GET /{$}", secured(func(w http.ResponseWriter, r *http.Request) {
		if f.sessionUser(r) != "" {
			http.Redirect(w, r, "/jobs", http.StatusSeeOther)
			return
		}
		http.Redirect(w, r, "/market", http.StatusSeeOther)
	}))
	mux.HandleFunc("GET /login", secured(func(w http.ResponseWriter, r *http.Request) {
		f.render(w, r, "login", http.StatusOK, page{Title: "Sign in"})
	}))
	mux.HandleFunc("POST /login", secured(f.pageLogin))
	mux.HandleFunc("POST /logout", f.signedIn(func(w http.ResponseWriter, r *http.Request, _ string) {
		http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode})
		http.Redirect(w, r, "/login", http.StatusSeeOther)
	}))
	mux.HandleFunc("GET /jobs", f.signedIn(f.pageJobs))
	mux.HandleFunc("GET /jobs/{uuid}", f.signedIn(f.pageJob))
	mux.HandleFunc("GET /account", f.signedIn(f.pageAccount))
	mux.HandleFunc("POST /account/keys", f.signedIn(f.pageCreateKey))
	mux.HandleFunc("POST /account/keys/{id}/revoke", f.signedIn(f.pageRevokeKey))
	mux.HandleFunc("GET /market", secured(f.pageMarket))
}

// pageLogin signs in with an API key or a login token and sets the session cookie.
func (f *Facilitator) pageLogin(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxLoginBody)
	if err := r.ParseForm(); err != nil {
		f.render(w, r, "login", http.StatusBadRequest, page{Title: "Sign in", Error: "The form could not be read."})
		return
	}
	cred := strings.TrimSpace(r.PostForm.Get("credential"))
	fake := &http.Request{Header: http.Header{"Authorization": {"Bearer " + cred}}}
	user, _, _, err := f.authenticate(r.Context(), fake)
	if err != nil {
		f.render(w, r, "login", http.StatusUnauthorized, page{Title: "Sign in", Error: "Not signed in: " + err.Error()})
		return
	}
	exp := time.Now().Add(f.cfg.TokenLifetime)
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: f.issueToken(user, exp), Path: "/", Expires: exp,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
	http.Redirect(w, r, "/jobs", http.StatusSeeOther)
}

func (f *Facilitator) pageJobs(w http.ResponseWriter, r *http.Request, user string) {
	jobs, err := f.db.ListFacJobs(r.Context(), store.FacJobFilter{User: user, Limit: 100,
		Statuses: append(append([]string{store.FacJobQueued}, inFlight...), terminal...)})
	if err != nil {
		f.internal(w, "list jobs", err)
		return
	}
	bal, _ := f.db.Balance(r.Context(), store.UserAccount(user))
	views := make([]JobView, 0, len(jobs))
	for _, j := range jobs {
		views = append(views, f.view(r.Context(), j))
	}
	f.render(w, r, "jobs", http.StatusOK, page{Title: "Jobs", User: user, Refresh: 5,
		Data: map[string]any{"Jobs": views, "Balance": bal}})
}

func (f *Facilitator) pageJob(w http.ResponseWriter, r *http.Request, user string) {
	j, err := f.db.GetFacJob(r.Context(), r.PathValue("uuid"))
	if errors.Is(err, store.ErrNotFound) || err == nil && (j.User != user || j.Status == statusNew || j.Status == statusRefused) {
		http.Error(w, "no such job", http.StatusNotFound)
		return
	}
	if err != nil {
		f.internal(w, "read the job", err)
		return
	}
	refresh := 0
	if !slices.Contains(terminal, j.Status) {
		refresh = 3
	}
	f.render(w, r, "job", http.StatusOK, page{Title: "Job " + j.UUID, User: user, Refresh: refresh, Data: f.view(r.Context(), j)})
}

func (f *Facilitator) pageAccount(w http.ResponseWriter, r *http.Request, user string) {
	f.renderAccount(w, r, user, "")
}

func (f *Facilitator) renderAccount(w http.ResponseWriter, r *http.Request, user, newKey string) {
	ctx := r.Context()
	bal, err := f.db.Balance(ctx, store.UserAccount(user))
	if err != nil {
		f.internal(w, "read the balance", err)
		return
	}
	ks, err := f.db.ListAPIKeys(ctx, user)
	if err != nil {
		f.internal(w, "list API keys", err)
		return
	}
	ledger, err := f.db.LedgerEntries(ctx, store.UserAccount(user), 100)
	if err != nil {
		f.internal(w, "read the ledger", err)
		return
	}
	f.render(w, r, "account", http.StatusOK, page{Title: "Account", User: user,
		Data: map[string]any{"User": user, "Balance": bal, "Keys": ks, "Ledger": ledger, "NewKey": newKey}})
}

func (f *Facilitator) pageCreateKey(w http.ResponseWriter, r *http.Request, user string) {
	name := strings.TrimSpace(r.PostForm.Get("name"))
	if len(name) > 100 {
		name = name[:100]
	}
	secret := apiKeyPrefix + strings.ToLower(rand.Text()+rand.Text())
	if _, err := f.db.CreateAPIKey(r.Context(), user, name, hashAPIKey(secret)); err != nil {
		f.internal(w, "create API key", err)
		return
	}
	f.renderAccount(w, r, user, secret)
}

func (f *Facilitator) pageRevokeKey(w http.ResponseWriter, r *http.Request, user string) {
	if err := f.db.RevokeAPIKey(r.Context(), user, r.PathValue("id")); err != nil && !errors.Is(err, store.ErrNotFound) {
		f.internal(w, "revoke API key", err)
		return
	}
	http.Redirect(w, r, "/account", http.StatusSeeOther)
}

// marketRow is one class on the market page.
type marketRow struct {
	Name            string
	Price           int64
	Multiplier      float64
	Queued, Running int
}

func (f *Facilitator) pageMarket(w http.ResponseWriter, r *http.Request) {
	counts := map[string][2]int{}
	if jobs, err := f.db.ListFacJobs(r.Context(), store.FacJobFilter{Statuses: append([]string{store.FacJobQueued}, inFlight...)}); err == nil {
		for _, j := range jobs {
			c := counts[j.Class]
			if j.Status == store.FacJobQueued {
				c[0]++
			} else {
				c[1]++
			}
			counts[j.Class] = c
		}
	}
	var rows []marketRow
	for _, c := range f.cfg.Classes.Classes() {
		n := counts[string(c.Name)]
		rows = append(rows, marketRow{Name: string(c.Name), Price: f.Price(c.Name), Multiplier: f.hub.multiplier(c.Name), Queued: n[0], Running: n[1]})
	}
	f.render(w, r, "market", http.StatusOK, page{Title: "Market", User: f.sessionUser(r),
		Data: map[string]any{"Classes": rows, "Chart": f.market.chart()}})
}

// marketHistory samples the demand multipliers once a minute for the market page's chart.
type marketHistory struct {
	mu      sync.Mutex
	samples []marketSample // oldest first, at most maxSamples
}

type marketSample struct {
	at   time.Time
	mult map[protocol.ExecutorClass]float64
}

const maxSamples = 24 * 60

func (h *marketHistory) add(s marketSample) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.samples = append(h.samples, s)
	if len(h.samples) > maxSamples {
		h.samples = h.samples[len(h.samples)-maxSamples:]
	}
}

// chartData is an inline SVG chart: one polyline per class over the samples.
type chartData struct {
	W, H  int
	Grid  []struct{ Y, Label string }
	Lines []struct{ Class, Color, Points string }
}

var chartColors = []string{"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"}

func (h *marketHistory) chart() chartData {
	h.mu.Lock()
	defer h.mu.Unlock()
	c := chartData{W: 720, H: 220}
	if len(h.samples) < 2 {
		return c
	}
	classes := map[protocol.ExecutorClass]bool{}
	top := 2.0
	for _, s := range h.samples {
		for k, v := range s.mult {
			classes[k] = true
			top = max(top, v)
		}
	}
	names := make([]protocol.ExecutorClass, 0, len(classes))
	for k := range classes {
		names = append(names, k)
	}
	slices.Sort(names)
	y := func(v float64) float64 { return float64(c.H-10) - v/top*float64(c.H-20) }
	for _, v := range []float64{0, 0.5, 1, 1.5, 2} {
		c.Grid = append(c.Grid, struct{ Y, Label string }{fmt.Sprintf("%.1f", y(v)), fmt.Sprintf("%.1f", v)})
	}
	span := h.samples[len(h.samples)-1].at.Sub(h.samples[0].at).Seconds()
	for i, name := range names {
		var pts []string
		for _, s := range h.samples {
			v, ok := s.mult[name]
			if !ok {
				v = 1
			}
			x := 40 + s.at.Sub(h.samples[0].at).Seconds()/max(span, 1)*float64(c.W-50)
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", x, y(v)))
		}
		c.Lines = append(c.Lines, struct{ Class, Color, Points string }{string(name), chartColors[i%len(chartColors)], strings.Join(pts, " ")})
	}
	return c
}

// sampleMarket records the current multipliers of every class the validators publish.
func (f *Facilitator) sampleMarket(now time.Time) {
	s := marketSample{at: now, mult: map[protocol.ExecutorClass]float64{}}
	for _, c := range f.cfg.Classes.Classes() {
		if c.RelativeValue > 0 {
			s.mult[c.Name] = f.hub.multiplier(c.Name)
		}
	}
	f.market.add(s)
}
