package simserver

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/computehorde/horde/internal/chain/pylon/wire"
	"github.com/computehorde/horde/internal/chain/sim"
)

// Bodies an HTTP fault can give.
const (
	faultTruncated = "truncated" // the real answer, cut in half mid-transfer
	faultMalformed = "malformed" // 200 with JSON that never ends
)

// Bounds of a fault request.
const (
	maxFaultCount = 1_000_000
	maxFaultDelay = 10 * time.Minute
)

// malformedBody is what a "malformed" fault answers with status 200.
const malformedBody = `{"block":`

// httpFault is one armed fault of the Pylon API.
type httpFault struct {
	prefix string
	left   int
	status int
	delay  time.Duration
	body   string
}

// faultRequest is the body of POST /sim/faults: an HTTP fault, or a chain fault when
// ChainKind is set.
type faultRequest struct {
	PathPrefix string `json:"path_prefix"`
	Count      int    `json:"count"`
	Status     int    `json:"status"`
	DelayMS    int64  `json:"delay_ms"`
	Body       string `json:"body"`
	ChainKind  string `json:"chain_kind"`
}

// chainKinds are the call kinds sim.FailNext accepts.
func chainKinds() []string {
	return []string{sim.KindHead, sim.KindMetagraph, sim.KindHyperparams, sim.KindCommitments,
		sim.KindSetWeights, sim.KindServeAxon, sim.KindSetCommitment}
}

// takeFault consumes one use of the first armed fault matching path.
func (s *Server) takeFault(path string) (httpFault, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, f := range s.faults {
		if !strings.HasPrefix(path, f.prefix) {
			continue
		}
		f.left--
		if f.left <= 0 {
			s.faults = slices.Delete(s.faults, i, i+1)
		}
		return *f, true
	}
	return httpFault{}, false
}

// serveWithFaults serves an API request, applying the first armed fault that matches it.
func (s *Server) serveWithFaults(w http.ResponseWriter, r *http.Request) {
	f, ok := s.takeFault(r.URL.Path)
	if !ok {
		s.serveAPI(w, r)
		return
	}
	if f.delay > 0 {
		t := time.NewTimer(f.delay)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return // the client is gone: nobody to answer
		}
	}
	switch {
	case f.status != 0:
		writeError(w, f.status, fmt.Sprintf("Fault injected by horde chain sim (status %d)", f.status))
	case f.body == faultMalformed:
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, malformedBody)
	case f.body == faultTruncated:
		rec := &recorder{header: http.Header{}, status: http.StatusOK}
		s.serveAPI(rec, r)
		for k, v := range rec.header {
			w.Header()[k] = v
		}
		// Announcing the whole length and sending half makes the server drop the
		// connection, so the client sees the transfer cut, as on a real network.
		body := rec.body.Bytes()
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(rec.status)
		_, _ = w.Write(body[:len(body)/2])
	default:
		s.serveAPI(w, r)
	}
}

// recorder buffers an answer so that a fault can cut it.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
	wrote  bool
}

func (r *recorder) Header() http.Header { return r.header }

func (r *recorder) WriteHeader(status int) {
	if !r.wrote {
		r.status, r.wrote = status, true
	}
}

func (r *recorder) Write(p []byte) (int, error) {
	r.wrote = true
	return r.body.Write(p)
}

// postFault arms an HTTP fault or a chain fault.
func (s *Server) postFault(w http.ResponseWriter, r *http.Request) {
	var req faultRequest
	if !decodeBody(w, r, &req, true) {
		return
	}
	bad := func(format string, args ...any) {
		writeError(w, http.StatusBadRequest, fmt.Sprintf(format, args...))
	}
	if req.ChainKind != "" {
		if req.PathPrefix != "" || req.Status != 0 || req.DelayMS != 0 || req.Body != "" {
			bad("chain_kind arms a chain fault and takes only count; send path_prefix, status, delay_ms and body in a separate HTTP fault")
			return
		}
		if !slices.Contains(chainKinds(), req.ChainKind) {
			bad("chain_kind %q is unknown; use one of %s", req.ChainKind, strings.Join(chainKinds(), ", "))
			return
		}
		if req.Count < 0 || req.Count > maxFaultCount {
			bad("count %d is outside 0..%d (0 clears the fault)", req.Count, maxFaultCount)
			return
		}
		s.chain.FailNext(req.ChainKind, req.Count, nil)
		writeJSON(w, http.StatusOK, wire.DetailResponse{Detail: fmt.Sprintf("the next %d %s calls fail as unavailable", req.Count, req.ChainKind)})
		return
	}
	f := &httpFault{prefix: req.PathPrefix, left: req.Count, status: req.Status, delay: time.Duration(req.DelayMS) * time.Millisecond, body: req.Body}
	switch {
	case f.prefix != "" && !strings.HasPrefix(f.prefix, wire.Prefix) && !strings.HasPrefix(f.prefix, wire.HordePrefix):
		bad("path_prefix %q matches no API path; start it with %s or %s, or leave it empty for all", f.prefix, wire.Prefix, wire.HordePrefix)
	case req.Count < 1 || req.Count > maxFaultCount:
		bad("count %d is outside 1..%d", req.Count, maxFaultCount)
	case req.Status != 0 && (req.Status < 400 || req.Status > 599):
		bad("status %d is not an error status; use 400..599, or 0 with a body or delay fault", req.Status)
	case req.DelayMS < 0 || f.delay > maxFaultDelay:
		bad("delay_ms %d is outside 0..%d", req.DelayMS, maxFaultDelay.Milliseconds())
	case req.Body != "" && req.Body != faultTruncated && req.Body != faultMalformed:
		bad("body %q is unknown; use %q, %q or leave it empty", req.Body, faultTruncated, faultMalformed)
	case req.Body != "" && req.Status != 0:
		bad("status and body are alternatives; set one of them")
	case req.Body == "" && req.Status == 0 && req.DelayMS == 0:
		bad("the fault does nothing; set status, body or delay_ms")
	default:
		s.mu.Lock()
		s.faults = append(s.faults, f)
		s.mu.Unlock()
		writeJSON(w, http.StatusOK, wire.DetailResponse{Detail: fmt.Sprintf("fault armed for the next %d requests under %q", f.left, f.prefix)})
	}
}

// deleteFaults clears every armed fault, HTTP and chain.
func (s *Server) deleteFaults(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	s.faults = nil
	s.mu.Unlock()
	for _, k := range chainKinds() {
		s.chain.FailNext(k, 0, nil)
	}
	writeJSON(w, http.StatusOK, wire.DetailResponse{Detail: "faults cleared"})
}
