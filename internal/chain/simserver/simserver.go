// Package simserver serves a simulated chain (*sim.Chain) over the subset of Pylon's v1 REST
// API that horde uses (package chain/pylon/wire, pinned to Pylon 0.3.0), so that roles in
// separate processes share one simulated subnet through the same client they use against a
// real Pylon. It adds horde's hyperparameters extension, the weights status endpoint of later
// Pylon releases, and an admin API under /sim/ that drives the simulation (register, stake,
// advance, hyperparameters, axons, fault injection).
//
// PUT /weights behaves like Pylon's: it answers at once and a background job per identity
// sets the weights, retrying at every new block until the epoch that held the block at
// scheduling time ends (reference/chain.md §2.4).
package simserver

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"

	"github.com/computehorde/horde/internal/chain"
	"github.com/computehorde/horde/internal/chain/pylon/wire"
	"github.com/computehorde/horde/internal/chain/sim"
)

// VersionKey is the version_key Pylon's weights job sends: turbobt's fixed value, from
// SDK 9.3.0 (reference/chain.md §2.4).
const VersionKey = 9003000

// MaxBodyBytes bounds every request body; a larger one is answered 413.
const MaxBodyBytes = 1 << 20

// Identity is one Pylon identity: a name in the URL, the hotkey it signs with and its
// bearer token.
type Identity struct {
	Name   string
	Hotkey chain.Hotkey
	Token  string
}

// Config configures a Server.
type Config struct {
	// Chain is the simulated subnet to serve; required.
	Chain *sim.Chain
	// Identities may write (weights, commitments) under /api/v1/identity/{name}/.
	Identities []Identity
	// OpenAccessToken guards the open-access paths; "" means they need no token.
	OpenAccessToken string
	// AdminToken guards /sim/; "" means the admin API needs no token.
	AdminToken string
	// Logger receives job outcomes and server errors; nil discards them.
	Logger *slog.Logger
}

// Server serves one simulated chain. Create it with [New]; call Close when done.
type Server struct {
	chain      *sim.Chain
	netuid     chain.NetUID
	identities map[string]Identity
	openToken  string
	adminToken string
	log        *slog.Logger

	// ctx is cancelled by Close; every weights job runs under it.
	ctx    context.Context
	cancel context.CancelCauseFunc
	wg     sync.WaitGroup

	// hpMu serializes PUT /sim/hyperparams; pendingHP is the last one's values and
	// pendingAt the head it was made at (the change is in effect from the next block).
	hpMu      sync.Mutex
	pendingHP *chain.Hyperparams
	pendingAt uint64

	mu     sync.Mutex
	closed bool
	jobs   map[string][]*job // by identity name, oldest first; guarded by mu
	faults []*httpFault      // armed HTTP faults in arrival order; guarded by mu
}

// errClosed is the cause of the jobs Close stops.
var errClosed = errors.New("the chain sim server was closed")

// New validates cfg and returns a Server.
func New(cfg Config) (*Server, error) {
	if cfg.Chain == nil {
		return nil, errors.New("simserver: Config.Chain is nil; pass the *sim.Chain to serve")
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	ids := make(map[string]Identity, len(cfg.Identities))
	for i, id := range cfg.Identities {
		if !pathSafe(id.Name) {
			return nil, fmt.Errorf("simserver: identity %d: name %q is not URL-path safe; use only letters, digits, '-', '_', '.' and '~'", i, id.Name)
		}
		if _, dup := ids[id.Name]; dup {
			return nil, fmt.Errorf("simserver: identity name %q appears twice; give each identity its own name", id.Name)
		}
		if id.Hotkey == "" {
			return nil, fmt.Errorf("simserver: identity %q has no hotkey; set the SS58 hotkey it signs with", id.Name)
		}
		if id.Token == "" {
			return nil, fmt.Errorf("simserver: identity %q has no token; set a bearer token for it", id.Name)
		}
		ids[id.Name] = id
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	return &Server{
		chain:      cfg.Chain,
		netuid:     cfg.Chain.NetUID(),
		identities: ids,
		openToken:  cfg.OpenAccessToken,
		adminToken: cfg.AdminToken,
		log:        logger,
		ctx:        ctx,
		cancel:     cancel,
		jobs:       map[string][]*job{},
	}, nil
}

// pathSafe reports whether name may stand in a URL path unescaped: RFC 3986's unreserved
// characters, and not a dot segment.
func pathSafe(name string) bool {
	if name == "" || name == "." || name == ".." {
		return false
	}
	for _, r := range name {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_.~", r)
		if !ok {
			return false
		}
	}
	return true
}

// NetUID returns the netuid the server serves (the simulated chain's).
func (s *Server) NetUID() chain.NetUID { return s.netuid }

// Handler returns the HTTP handler: Pylon's API under /api/v1, horde's extension under
// /horde/v1 and the admin API under /sim/.
func (s *Server) Handler() http.Handler { return http.HandlerFunc(s.serveHTTP) }

// Close stops every running weights job and waits for them; later PUT /weights calls are
// answered 503. The handler keeps serving reads.
func (s *Server) Close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.cancel(errClosed)
	s.wg.Wait()
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	switch {
	case p == "/sim" || strings.HasPrefix(p, "/sim/"):
		s.serveAdmin(w, r)
	case strings.HasPrefix(p, wire.Prefix+"/") || strings.HasPrefix(p, wire.HordePrefix+"/"):
		s.serveWithFaults(w, r)
	default:
		notFound(w)
	}
}

// handlerFunc serves one matched route.
type handlerFunc func(w http.ResponseWriter, r *http.Request)

// dispatch answers 404 when no route matched (methods is nil), 405 when the method is not
// among the route's, and otherwise calls the method's handler after guard (the auth check,
// done after routing as Litestar does).
func dispatch(w http.ResponseWriter, r *http.Request, methods map[string]handlerFunc, guard func() bool) {
	if methods == nil {
		notFound(w)
		return
	}
	h, ok := methods[r.Method]
	if !ok {
		allow := make([]string, 0, len(methods))
		for m := range methods {
			allow = append(allow, m)
		}
		w.Header().Set("Allow", strings.Join(allow, ", "))
		writeError(w, http.StatusMethodNotAllowed, "Method Not Allowed")
		return
	}
	if guard != nil && !guard() {
		return
	}
	h(w, r)
}

// checkBearer enforces want as the request's bearer token (nothing when want is empty):
// 401 when the header is missing or not a bearer token, 403 when the token differs. It
// reports whether the request may go on.
func checkBearer(w http.ResponseWriter, r *http.Request, want string) bool {
	if want == "" {
		return true
	}
	h := r.Header.Get("Authorization")
	if h == "" {
		writeError(w, http.StatusUnauthorized, "Missing Authorization header; send `Authorization: Bearer <token>`")
		return false
	}
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		writeError(w, http.StatusUnauthorized, "Authorization header is not a bearer token; send `Authorization: Bearer <token>`")
		return false
	}
	if !tokensEqual(strings.TrimSpace(token), want) {
		writeError(w, http.StatusForbidden, "Invalid token")
		return false
	}
	return true
}

// tokensEqual compares in constant time; hashing first hides the length as well.
func tokensEqual(a, b string) bool {
	ha, hb := sha256.Sum256([]byte(a)), sha256.Sum256([]byte(b))
	return subtle.ConstantTimeCompare(ha[:], hb[:]) == 1
}

// decodeBody reads r's JSON body into v, bounded by MaxBodyBytes. strict rejects unknown
// fields (the admin API); Pylon's models are lax and ignore them. On failure it answers
// 413 or 400 and returns false.
func decodeBody(w http.ResponseWriter, r *http.Request, v any, strict bool) bool {
	r.Body = http.MaxBytesReader(w, r.Body, MaxBodyBytes)
	dec := json.NewDecoder(r.Body)
	if strict {
		dec.DisallowUnknownFields()
	}
	err := dec.Decode(v)
	if err == nil {
		// One JSON value only: trailing data is as malformed as a missing brace.
		if err = dec.Decode(&struct{}{}); err == io.EOF {
			return true
		} else if err == nil {
			err = errors.New("more than one JSON value")
		}
	}
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("Request body is larger than %d bytes", MaxBodyBytes))
		return false
	}
	writeValidation(w, r, "", "Invalid JSON body: "+err.Error())
	return false
}

// writeValidation answers 400 in Litestar's validation shape, with the message in the
// detail too so that clients showing only the detail name the cause.
func writeValidation(w http.ResponseWriter, r *http.Request, key, msg string) {
	resp := wire.DetailResponse{
		StatusCode: http.StatusBadRequest,
		Detail:     fmt.Sprintf("Validation failed for %s %s: %s", r.Method, r.URL.Path, msg),
	}
	resp.Extra = append(resp.Extra, struct {
		Message string `json:"message"`
		Key     string `json:"key"`
	}{Message: msg, Key: key})
	writeJSON(w, http.StatusBadRequest, resp)
}

// writeError answers status with a Pylon/Litestar-shaped error body.
func writeError(w http.ResponseWriter, status int, detail string) {
	writeJSON(w, status, wire.DetailResponse{StatusCode: status, Detail: detail})
}

// notFound is Litestar's answer to a path no route matches.
func notFound(w http.ResponseWriter) { writeError(w, http.StatusNotFound, "Not Found") }

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil { // only our own types are written; this is a bug
		status = http.StatusInternalServerError
		body = []byte(fmt.Sprintf(`{"status_code":500,"detail":%q}`, "encoding the answer: "+err.Error()))
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
