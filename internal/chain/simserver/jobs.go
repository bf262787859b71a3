package simserver

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/computehorde/horde/internal/chain"
	"github.com/computehorde/horde/internal/chain/pylon/wire"
)

// maxJobRecords is how many weights jobs are remembered per identity for the status
// endpoint; older ones are forgotten.
const maxJobRecords = 16

// job is one identity's background weights job for one epoch, like Pylon's ApplyWeights.
type job struct {
	start, end uint64 // the epoch it may set weights in, [start, end)
	cancel     context.CancelCauseFunc
	done       chan struct{} // closed when its goroutine has returned

	// Guarded by Server.mu.
	state string // a wire.Job* state
	err   string // the chain's last refusal
}

// errReplaced is the cause of a job that a newer PUT /weights replaced.
var errReplaced = errors.New("replaced by a newer PUT /weights of the same identity")

func (s *Server) putWeights(w http.ResponseWriter, r *http.Request, c *call) {
	var req wire.WeightsRequest
	if !decodeBody(w, r, &req, false) {
		return
	}
	if len(req.Weights) == 0 {
		writeValidation(w, r, "weights", "No weights provided")
		return
	}
	weights := make(map[chain.Hotkey]float64, len(req.Weights))
	for h, v := range req.Weights {
		if strings.TrimSpace(h) == "" {
			writeValidation(w, r, "weights", "Invalid hotkey: an empty string; key the weights by SS58 hotkey")
			return
		}
		weights[chain.Hotkey(h)] = v
	}
	// The head is read without consuming an injected Head fault: Pylon's endpoint itself
	// does not touch the chain, it only schedules.
	head, _ := s.chain.Now()
	hp, err := s.chain.Hyperparams(r.Context(), c.netuid)
	if err != nil {
		s.chainError(w, r, err, 0)
		return
	}
	start, end := chain.EpochBounds(head.Number, c.netuid, hp.Tempo)
	if !s.schedule(*c.ident, c.netuid, head, start, end, weights) {
		writeError(w, http.StatusServiceUnavailable, "The chain sim server is shutting down; no weights job can start")
		return
	}
	s.log.Info("chain sim: weights scheduled", "identity", c.ident.Name, "count", len(weights), "block", head.Number, "epoch_end", end)
	writeJSON(w, http.StatusOK, wire.WeightsResponse{Detail: wire.WeightsScheduled, Count: len(req.Weights)})
}

// schedule starts id's weights job for the epoch [start, end), replacing its running job.
// It reports false once the server is closed.
func (s *Server) schedule(id Identity, netuid chain.NetUID, head chain.Block, start, end uint64, weights map[chain.Hotkey]float64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	recs := s.jobs[id.Name]
	var prev <-chan struct{}
	if n := len(recs); n > 0 {
		old := recs[n-1]
		prev = old.done
		if old.state == wire.JobRunning {
			old.state, old.err = wire.JobFailed, errReplaced.Error()
			old.cancel(errReplaced)
		}
	}
	ctx, cancel := context.WithCancelCause(s.ctx)
	j := &job{start: start, end: end, cancel: cancel, done: make(chan struct{}), state: wire.JobRunning}
	recs = append(recs, j)
	if len(recs) > maxJobRecords {
		recs = append([]*job(nil), recs[len(recs)-maxJobRecords:]...)
	}
	s.jobs[id.Name] = recs
	s.wg.Add(1)
	go s.runJob(ctx, j, prev, id, netuid, head, weights)
	return true
}

// runJob sets the weights at once and again at every new block until the chain accepts
// them (completed) or the epoch ends (tempo_expired, keeping the chain's last refusal).
func (s *Server) runJob(ctx context.Context, j *job, prev <-chan struct{}, id Identity, netuid chain.NetUID, head chain.Block, weights map[chain.Hotkey]float64) {
	defer s.wg.Done()
	defer close(j.done)
	if prev != nil {
		// The replaced job was cancelled; waiting keeps its last attempt from landing
		// after ours.
		<-prev
	}
	heads := s.chain.WatchHeads(ctx)
	defer func() {
		// The channel closes once WatchHeads has let go of it; draining to the close
		// leaves no goroutine of ours behind.
		j.cancel(nil)
		for range heads {
		}
	}()
	var lastErr error
	// The first attempt is made at once, for the block the weights were scheduled in, as
	// Pylon's job does; later ones at each new head. Reading the head here instead would
	// let blocks produced before this goroutine ran expire the job untried.
	for first := true; ; first = false {
		if !first {
			select {
			case <-ctx.Done():
				s.finish(j, wire.JobFailed, context.Cause(ctx))
				return
			case b, ok := <-heads:
				if !ok {
					return
				}
				head = newest(b, heads)
			}
		}
		if head.Number >= j.end {
			s.finish(j, wire.JobTempoExpired, lastErr)
			s.log.Warn("chain sim: weights job gave up: the epoch ended", "identity", id.Name,
				"epoch_end", j.end, "last_error", lastErr)
			return
		}
		r, err := s.chain.SetWeights(ctx, id.Hotkey, netuid, weights, VersionKey)
		if err == nil {
			s.finish(j, wire.JobCompleted, nil)
			s.log.Info("chain sim: weights set", "identity", id.Name, "block", r.Block,
				"commit_reveal", r.CommitReveal, "uids", len(r.UIDs), "unknown_hotkeys", len(r.Unknown))
			return
		}
		if ctx.Err() != nil {
			s.finish(j, wire.JobFailed, context.Cause(ctx))
			return
		}
		lastErr = err
		s.mu.Lock()
		j.err = err.Error()
		s.mu.Unlock()
		s.log.Debug("chain sim: weights refused; retrying at the next block", "identity", id.Name, "block", head.Number, "err", err)
	}
}

// newest returns the last head already queued on heads, or b: a job behind by several
// blocks acts on the newest.
func newest(b chain.Block, heads <-chan chain.Block) chain.Block {
	for {
		select {
		case nb, ok := <-heads:
			if !ok {
				return b
			}
			b = nb
		default:
			return b
		}
	}
}

// finish records j's end unless it was already ended (replaced).
func (s *Server) finish(j *job, state string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if j.state != wire.JobRunning {
		return
	}
	j.state = state
	if err != nil {
		j.err = err.Error()
	} else if state == wire.JobCompleted {
		j.err = ""
	}
}

// weightsStatus answers whether the identity's weights for the epoch holding the block
// were submitted: a job of its for that epoch completed, or its neuron's last update lies
// in the epoch.
func (s *Server) weightsStatus(w http.ResponseWriter, r *http.Request, c *call) {
	hp, err := s.chain.Hyperparams(r.Context(), c.netuid)
	if err != nil {
		s.chainError(w, r, err, 0)
		return
	}
	mg, err := s.chain.Metagraph(r.Context(), c.netuid, 0)
	if err != nil {
		s.chainError(w, r, err, 0)
		return
	}
	var resp wire.WeightsStatusResponse
	start, end := chain.EpochBounds(c.block, c.netuid, hp.Tempo)
	if n, ok := mg.ByHotkey(c.ident.Hotkey); ok && n.LastUpdate != 0 && n.LastUpdate >= start && n.LastUpdate < end {
		resp.WeightsSubmitted = true
	}
	// Job and Error are the newest job's for the epoch; an earlier job of the epoch that
	// completed (before a newer PUT replaced it) still counts as submitted.
	s.mu.Lock()
	recs := s.jobs[c.ident.Name]
	for i := len(recs) - 1; i >= 0; i-- {
		j := recs[i]
		if j.start > c.block || c.block >= j.end {
			continue
		}
		if resp.Job == "" {
			resp.Job, resp.Error = j.state, j.err
		}
		resp.WeightsSubmitted = resp.WeightsSubmitted || j.state == wire.JobCompleted
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, resp)
}
