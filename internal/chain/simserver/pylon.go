package simserver

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/computehorde/horde/internal/chain"
	"github.com/computehorde/horde/internal/chain/pylon/wire"
)

// call is what a Pylon route's path says.
type call struct {
	ident    *Identity // nil on open access
	netuid   chain.NetUID
	block    uint64 // from /block/{n}/…; 0 with hasBlock false means the latest
	hasBlock bool
	hotkey   chain.Hotkey // from /block/latest/commitments/{hotkey}
}

// serveAPI routes Pylon's v1 paths and horde's extension.
func (s *Server) serveAPI(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	if rest, ok := strings.CutPrefix(p, wire.HordePrefix+"/"); ok {
		s.serveExtension(w, r, strings.Split(rest, "/"))
		return
	}
	segs := strings.Split(strings.TrimPrefix(p, wire.Prefix+"/"), "/")
	switch {
	case len(segs) == 3 && segs[0] == "login" && segs[1] == "identity":
		dispatch(w, r, map[string]handlerFunc{http.MethodPost: func(w http.ResponseWriter, r *http.Request) {
			s.login(w, r, segs[2])
		}}, nil)
	case len(segs) >= 4 && segs[0] == "identity" && segs[2] == "subnet":
		name := segs[1]
		c, methods := s.subnetRoute(segs[3], segs[4:], true)
		dispatch(w, r, methods, func() bool {
			id, ok := s.identities[name]
			if !ok {
				writeError(w, http.StatusNotFound, fmt.Sprintf("Identity '%s' not found", name))
				return false
			}
			c.ident = &id
			return checkBearer(w, r, id.Token) && s.checkNetUID(w, c.netuid)
		})
	case len(segs) >= 2 && segs[0] == "subnet":
		c, methods := s.subnetRoute(segs[1], segs[2:], false)
		dispatch(w, r, methods, func() bool {
			return checkBearer(w, r, s.openToken) && s.checkNetUID(w, c.netuid)
		})
	default:
		notFound(w)
	}
}

// subnetRoute matches the part of a path after /subnet/{netuid}; methods is nil when
// nothing matches. Identity-only routes exist only when identity is set.
func (s *Server) subnetRoute(netuid string, rest []string, identity bool) (*call, map[string]handlerFunc) {
	n, err := strconv.ParseUint(netuid, 10, 16)
	if err != nil {
		return nil, nil
	}
	c := &call{netuid: chain.NetUID(n)}
	get := func(h func(http.ResponseWriter, *http.Request, *call)) map[string]handlerFunc {
		return map[string]handlerFunc{http.MethodGet: func(w http.ResponseWriter, r *http.Request) { h(w, r, c) }}
	}
	// block parses a block number; a bad one matches no route, so Litestar answers 404.
	block := func(seg string) bool {
		b, err := strconv.ParseUint(seg, 10, 64)
		c.block, c.hasBlock = b, err == nil
		return err == nil
	}
	switch {
	case len(rest) == 3 && rest[0] == "block" && rest[2] == "neurons":
		if rest[1] == "latest" || rest[1] == "recent" || block(rest[1]) {
			return c, get(s.neurons)
		}
	case len(rest) == 3 && rest[0] == "block" && rest[2] == "validators":
		if rest[1] == "latest" || block(rest[1]) {
			return c, get(s.validators)
		}
	case len(rest) == 3 && rest[0] == "block" && rest[1] == "latest" && rest[2] == "commitments":
		return c, get(s.commitments)
	case len(rest) == 4 && rest[0] == "block" && rest[1] == "latest" && rest[2] == "commitments" && rest[3] != "":
		if identity && rest[3] == "self" {
			return c, get(s.ownCommitment)
		}
		c.hotkey = chain.Hotkey(rest[3])
		return c, get(s.commitment)
	case identity && len(rest) == 1 && rest[0] == "weights":
		return c, map[string]handlerFunc{http.MethodPut: func(w http.ResponseWriter, r *http.Request) { s.putWeights(w, r, c) }}
	case identity && len(rest) == 1 && rest[0] == "commitments":
		return c, map[string]handlerFunc{http.MethodPost: func(w http.ResponseWriter, r *http.Request) { s.setCommitment(w, r, c) }}
	case identity && len(rest) == 6 && rest[0] == "mechanism" && rest[1] == "0" && rest[2] == "block" &&
		rest[4] == "weights" && rest[5] == "status":
		if block(rest[3]) {
			return c, get(s.weightsStatus)
		}
	}
	return nil, nil
}

// serveExtension serves horde's extensions (open access).
func (s *Server) serveExtension(w http.ResponseWriter, r *http.Request, segs []string) {
	var methods map[string]handlerFunc
	var netuid chain.NetUID
	if len(segs) == 3 && segs[0] == "subnet" && segs[2] == "hyperparams" {
		if n, err := strconv.ParseUint(segs[1], 10, 16); err == nil {
			netuid = chain.NetUID(n)
			methods = map[string]handlerFunc{http.MethodGet: func(w http.ResponseWriter, r *http.Request) {
				hp, err := s.chain.Hyperparams(r.Context(), netuid)
				if err != nil {
					s.chainError(w, r, err, 0)
					return
				}
				writeJSON(w, http.StatusOK, wire.FromHyperparams(hp))
			}}
		}
	}
	dispatch(w, r, methods, func() bool { return checkBearer(w, r, s.openToken) && s.checkNetUID(w, netuid) })
}

func (s *Server) checkNetUID(w http.ResponseWriter, n chain.NetUID) bool {
	if n != s.netuid {
		writeError(w, http.StatusNotFound, fmt.Sprintf("Subnet %d not found; this simulated chain runs netuid %d", n, s.netuid))
		return false
	}
	return true
}

// chainError answers a failed chain read: 404 for a block the chain does not have, 503
// when the simulator reports itself unavailable (its injected faults), 500 otherwise.
func (s *Server) chainError(w http.ResponseWriter, r *http.Request, err error, block uint64) {
	switch {
	case errors.Is(err, chain.ErrUnknownBlock):
		writeError(w, http.StatusNotFound, fmt.Sprintf("Block %d not found.", block))
	case errors.Is(err, chain.ErrSubnetNotExists):
		writeError(w, http.StatusNotFound, err.Error())
	case errors.Is(err, chain.ErrUnavailable), errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		writeError(w, http.StatusServiceUnavailable, err.Error())
	default:
		s.log.Error("chain sim: unexpected chain error", "method", r.Method, "path", r.URL.Path, "err", err)
		writeError(w, http.StatusInternalServerError, err.Error())
	}
}

func (s *Server) login(w http.ResponseWriter, r *http.Request, name string) {
	id, ok := s.identities[name]
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Sprintf("Identity '%s' not found", name))
		return
	}
	var req wire.LoginRequest
	if !decodeBody(w, r, &req, false) {
		return
	}
	if !tokensEqual(req.Token, id.Token) {
		writeError(w, http.StatusForbidden, fmt.Sprintf("Invalid token for identity '%s'", name))
		return
	}
	writeJSON(w, http.StatusOK, wire.LoginResponse{NetUID: s.netuid, IdentityName: name})
}

// metagraph reads the metagraph the call names. The simulator reads the head for block 0,
// so block 0 itself is served only while it is the head.
func (s *Server) metagraph(w http.ResponseWriter, r *http.Request, c *call) (*chain.Metagraph, bool) {
	mg, err := s.chain.Metagraph(r.Context(), c.netuid, c.block)
	if err == nil && c.hasBlock && mg.Block.Number != c.block {
		err = fmt.Errorf("%w (block 0 is no longer the head)", chain.ErrUnknownBlock)
	}
	if err != nil {
		s.chainError(w, r, err, c.block)
		return nil, false
	}
	return mg, true
}

func (s *Server) neurons(w http.ResponseWriter, r *http.Request, c *call) {
	if mg, ok := s.metagraph(w, r, c); ok {
		writeJSON(w, http.StatusOK, wire.FromMetagraph(mg))
	}
}

func (s *Server) validators(w http.ResponseWriter, r *http.Request, c *call) {
	mg, ok := s.metagraph(w, r, c)
	if !ok {
		return
	}
	resp := wire.ValidatorsResponse{Block: wire.FromBlock(mg.Block), Validators: []wire.Neuron{}}
	for _, n := range mg.Validators() {
		resp.Validators = append(resp.Validators, wire.FromNeuron(n))
	}
	writeJSON(w, http.StatusOK, resp)
}

// latestCommitments reads the head and every commitment. The simulator has no read of both
// at once; a block produced in between makes the commitments one block newer.
func (s *Server) latestCommitments(w http.ResponseWriter, r *http.Request, c *call) (wire.Block, map[chain.Hotkey][]byte, bool) {
	head, err := s.chain.Head(r.Context())
	if err != nil {
		s.chainError(w, r, err, 0)
		return wire.Block{}, nil, false
	}
	all, err := s.chain.Commitments(r.Context(), c.netuid)
	if err != nil {
		s.chainError(w, r, err, 0)
		return wire.Block{}, nil, false
	}
	return wire.FromBlock(head), all, true
}

func (s *Server) commitments(w http.ResponseWriter, r *http.Request, c *call) {
	b, all, ok := s.latestCommitments(w, r, c)
	if !ok {
		return
	}
	resp := wire.CommitmentsResponse{Block: b, Commitments: make(map[string]string, len(all))}
	for h, d := range all {
		resp.Commitments[string(h)] = wire.EncodeCommitment(d)
	}
	writeJSON(w, http.StatusOK, resp)
}

func (s *Server) commitment(w http.ResponseWriter, r *http.Request, c *call) {
	b, all, ok := s.latestCommitments(w, r, c)
	if !ok {
		return
	}
	d, ok := all[c.hotkey]
	if !ok {
		writeError(w, http.StatusNotFound, "Commitment not found.")
		return
	}
	writeJSON(w, http.StatusOK, wire.CommitmentResponse{Block: b, Hotkey: string(c.hotkey), Commitment: wire.EncodeCommitment(d)})
}

func (s *Server) ownCommitment(w http.ResponseWriter, r *http.Request, c *call) {
	c.hotkey = c.ident.Hotkey
	s.commitment(w, r, c)
}

func (s *Server) setCommitment(w http.ResponseWriter, r *http.Request, c *call) {
	var req wire.SetCommitmentRequest
	if !decodeBody(w, r, &req, false) {
		return
	}
	data, err := wire.DecodeCommitment(req.Commitment)
	if err != nil {
		writeValidation(w, r, "commitment", err.Error())
		return
	}
	if len(data) > chain.MaxCommitmentBytes {
		writeValidation(w, r, "commitment", fmt.Sprintf("commitment is %d bytes; at most %d are allowed", len(data), chain.MaxCommitmentBytes))
		return
	}
	if err := s.chain.SetCommitment(r.Context(), c.ident.Hotkey, c.netuid, data); err != nil {
		// Pylon answers 502 once its retries of the extrinsic run out.
		writeError(w, http.StatusBadGateway, err.Error())
		return
	}
	writeJSON(w, http.StatusCreated, wire.DetailResponse{Detail: wire.CommitmentSet})
}
