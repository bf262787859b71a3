package simserver

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strings"

	"github.com/computehorde/horde/internal/chain"
	"github.com/computehorde/horde/internal/chain/pylon/wire"
	"github.com/computehorde/horde/internal/chain/sim"
)

// maxAdvance is the most blocks one POST /sim/advance produces.
const maxAdvance = 10000

// State answers GET /sim/state.
type State struct {
	Head        wire.Block       `json:"head"`
	NetUID      chain.NetUID     `json:"netuid"`
	Neurons     int              `json:"neurons"`
	Hyperparams wire.Hyperparams `json:"hyperparams"`
}

// RegisterRequest is the body of POST /sim/neurons; Stake is in rao.
type RegisterRequest struct {
	Hotkey  chain.Hotkey  `json:"hotkey"`
	Coldkey chain.Coldkey `json:"coldkey"`
	Stake   uint64        `json:"stake"`
}

// RegisterResponse answers POST /sim/neurons.
type RegisterResponse struct {
	UID chain.UID `json:"uid"`
}

// StakeRequest is the body of PUT /sim/neurons/{hotkey}/stake, in rao.
type StakeRequest struct {
	Stake uint64 `json:"stake"`
}

// AxonRequest is the body of PUT /sim/neurons/{hotkey}/axon.
type AxonRequest struct {
	IP   string `json:"ip"`
	Port uint16 `json:"port"`
}

// AdvanceRequest is the body of POST /sim/advance.
type AdvanceRequest struct {
	Blocks int `json:"blocks"`
}

// AdvanceResponse answers POST /sim/advance with the new head.
type AdvanceResponse struct {
	Head wire.Block `json:"head"`
}

// serveAdmin routes the admin API. Its JSON is strict: an unknown field is a 400 naming it.
func (s *Server) serveAdmin(w http.ResponseWriter, r *http.Request) {
	segs := strings.Split(strings.TrimPrefix(r.URL.Path, "/sim/"), "/")
	var methods map[string]handlerFunc
	switch {
	case len(segs) == 1 && segs[0] == "state":
		methods = map[string]handlerFunc{http.MethodGet: s.adminState}
	case len(segs) == 1 && segs[0] == "neurons":
		methods = map[string]handlerFunc{http.MethodPost: s.adminRegister}
	case len(segs) == 2 && segs[0] == "neurons" && segs[1] != "":
		hk := chain.Hotkey(segs[1])
		methods = map[string]handlerFunc{http.MethodDelete: func(w http.ResponseWriter, r *http.Request) { s.adminDeregister(w, r, hk) }}
	case len(segs) == 3 && segs[0] == "neurons" && segs[1] != "" && segs[2] == "stake":
		hk := chain.Hotkey(segs[1])
		methods = map[string]handlerFunc{http.MethodPut: func(w http.ResponseWriter, r *http.Request) { s.adminStake(w, r, hk) }}
	case len(segs) == 3 && segs[0] == "neurons" && segs[1] != "" && segs[2] == "axon":
		hk := chain.Hotkey(segs[1])
		methods = map[string]handlerFunc{http.MethodPut: func(w http.ResponseWriter, r *http.Request) { s.adminAxon(w, r, hk) }}
	case len(segs) == 1 && segs[0] == "advance":
		methods = map[string]handlerFunc{http.MethodPost: s.adminAdvance}
	case len(segs) == 1 && segs[0] == "hyperparams":
		methods = map[string]handlerFunc{http.MethodGet: s.adminHyperparams, http.MethodPut: s.adminSetHyperparams}
	case len(segs) == 2 && segs[0] == "weights" && segs[1] != "":
		hk := chain.Hotkey(segs[1])
		methods = map[string]handlerFunc{http.MethodGet: func(w http.ResponseWriter, r *http.Request) { s.adminWeights(w, r, hk) }}
	case len(segs) == 1 && segs[0] == "faults":
		methods = map[string]handlerFunc{http.MethodPost: s.postFault, http.MethodDelete: s.deleteFaults}
	}
	dispatch(w, r, methods, func() bool { return checkBearer(w, r, s.adminToken) })
}

// adminError answers a refused admin call with the simulator's error text.
func adminError(w http.ResponseWriter, err error) {
	status := http.StatusBadRequest
	switch {
	case errors.Is(err, chain.ErrNotRegistered):
		status = http.StatusNotFound
	case errors.Is(err, sim.ErrAlreadyRegistered), errors.Is(err, sim.ErrNoSlotAvailable):
		status = http.StatusConflict
	case errors.Is(err, chain.ErrUnavailable):
		status = http.StatusServiceUnavailable
	case chain.Retryable(err):
		status = http.StatusTooManyRequests
	}
	writeError(w, status, err.Error())
}

// adminState reads the head without consuming an injected Head fault; the neuron count and hyperparameters do consume metagraph and hyperparams
// faults, which the simulator offers no way around.
func (s *Server) adminState(w http.ResponseWriter, r *http.Request) {
	head, _ := s.chain.Now()
	mg, err := s.chain.Metagraph(r.Context(), s.netuid, 0)
	if err != nil {
		adminError(w, err)
		return
	}
	hp, err := s.chain.Hyperparams(r.Context(), s.netuid)
	if err != nil {
		adminError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, State{Head: wire.FromBlock(head), NetUID: s.netuid, Neurons: len(mg.Neurons), Hyperparams: wire.FromHyperparams(hp)})
}

func (s *Server) adminRegister(w http.ResponseWriter, r *http.Request) {
	var req RegisterRequest
	if !decodeBody(w, r, &req, true) {
		return
	}
	uid, err := s.chain.Register(req.Hotkey, req.Coldkey)
	if err != nil {
		adminError(w, err)
		return
	}
	if req.Stake > 0 {
		if err := s.chain.SetStake(req.Hotkey, req.Stake); err != nil {
			adminError(w, err)
			return
		}
	}
	writeJSON(w, http.StatusOK, RegisterResponse{UID: uid})
}

func (s *Server) adminDeregister(w http.ResponseWriter, _ *http.Request, hk chain.Hotkey) {
	if err := s.chain.Deregister(hk); err != nil {
		adminError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, wire.DetailResponse{Detail: fmt.Sprintf("%s deregistered from the next block", hk)})
}

func (s *Server) adminStake(w http.ResponseWriter, r *http.Request, hk chain.Hotkey) {
	var req StakeRequest
	if !decodeBody(w, r, &req, true) {
		return
	}
	if err := s.chain.SetStake(hk, req.Stake); err != nil {
		adminError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, wire.DetailResponse{Detail: fmt.Sprintf("stake of %s set to %d rao from the next block", hk, req.Stake)})
}

// adminAxon announces hk's axon with serve_axon's rules: Pylon cannot sign serve_axon, so
// devnet miners announce through here.
func (s *Server) adminAxon(w http.ResponseWriter, r *http.Request, hk chain.Hotkey) {
	var req AxonRequest
	if !decodeBody(w, r, &req, true) {
		return
	}
	ip, err := netip.ParseAddr(req.IP)
	if err != nil {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("ip %q is not an IPv4 or IPv6 address", req.IP))
		return
	}
	if err := s.chain.ServeAxon(r.Context(), hk, s.netuid, ip, req.Port); err != nil {
		adminError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, wire.DetailResponse{Detail: fmt.Sprintf("axon of %s set to %s from the next block", hk, netip.AddrPortFrom(ip, req.Port))})
}

func (s *Server) adminAdvance(w http.ResponseWriter, r *http.Request) {
	var req AdvanceRequest
	if !decodeBody(w, r, &req, true) {
		return
	}
	if req.Blocks < 1 || req.Blocks > maxAdvance {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("blocks %d is outside 1..%d", req.Blocks, maxAdvance))
		return
	}
	writeJSON(w, http.StatusOK, AdvanceResponse{Head: wire.FromBlock(s.chain.Advance(req.Blocks))})
}

func (s *Server) adminHyperparams(w http.ResponseWriter, r *http.Request) {
	hp, err := s.chain.Hyperparams(r.Context(), s.netuid)
	if err != nil {
		adminError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, wire.FromHyperparams(hp))
}

// adminSetHyperparams decodes the body over the current values, so that fields left out
// keep theirs; the change is in effect from the next block.
// The simulator serves only the head's hyperparameters, so a change made earlier in the
// same block is remembered here and merged onto instead; otherwise two PUTs before the next
// block would undo each other's fields.
func (s *Server) adminSetHyperparams(w http.ResponseWriter, r *http.Request) {
	hp, err := s.chain.Hyperparams(r.Context(), s.netuid)
	if err != nil {
		adminError(w, err)
		return
	}
	// Held across the read-modify-write so that concurrent PUTs merge too.
	s.hpMu.Lock()
	defer s.hpMu.Unlock()
	b, _ := s.chain.Now()
	head := b.Number
	if s.pendingHP != nil && s.pendingAt == head {
		hp = *s.pendingHP
	}
	body := wire.FromHyperparams(hp)
	if !decodeBody(w, r, &body, true) {
		return
	}
	set := body.ToHyperparams()
	if err := s.chain.SetHyperparams(set); err != nil {
		adminError(w, err)
		return
	}
	s.pendingHP, s.pendingAt = &set, head
	writeJSON(w, http.StatusOK, body)
}

func (s *Server) adminWeights(w http.ResponseWriter, _ *http.Request, hk chain.Hotkey) {
	ws, err := s.chain.Weights(s.netuid, hk)
	if err != nil {
		adminError(w, err)
		return
	}
	if ws == nil {
		ws = map[chain.UID]uint16{}
	}
	writeJSON(w, http.StatusOK, ws)
}
