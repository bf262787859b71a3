package faults

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/computehorde/horde/internal/chain"
	"github.com/computehorde/horde/internal/chain/pylon"
)

const (
	netUID = 12
	tempo  = 10
	// weightsPoll is how often the harness reads the validators' last weights from the
	// chain: well under a block, so that no tempo's weights are overwritten unseen.
	weightsPoll = 500 * time.Millisecond
	// weightsGrace is how long before a tempo a validator (and the chain) must already be
	// up for the tempo to count: a restarted validator opens its database, logs in to the
	// chain and reads its first head in that time.
	weightsGrace = 10 * time.Second
	// linkGrace is the same for the chain's outages and cuts between the validator and the
	// chain: the validator polls the head every second and sets weights at the next one.
	linkGrace = 3 * time.Second
)

// weightsSample is what one read of the metagraph showed.
type weightsSample struct {
	At   time.Time
	Head uint64
	Last map[string]uint64 // validator hotkey → block of its last weights (0: none)
}

type weightsLog struct {
	samples []weightsSample
	err     error // the last read's error, for the report
}

// chainAdmin calls the sim chain's admin API.
func (h *Harness) chainAdmin(ctx context.Context, method, path string, body any, out any) error {
	var rd *bytes.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	} else {
		rd = bytes.NewReader(nil)
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, fmt.Sprintf("http://%s:%d/sim/%s", h.Role("chain").IP, chainPort, path), rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer admin-"+h.RunID)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var b bytes.Buffer
		_, _ = b.ReadFrom(resp.Body)
		return fmt.Errorf("%s /sim/%s: %s: %s", method, path, resp.Status, strings.TrimSpace(b.String()))
	}
	if out != nil {
		return json.NewDecoder(resp.Body).Decode(out)
	}
	return nil
}

func (h *Harness) chainHeadNow(ctx context.Context) (uint64, error) {
	var st struct {
		Head struct {
			Number uint64 `json:"number"`
		} `json:"head"`
	}
	err := h.chainAdmin(ctx, http.MethodGet, "state", nil, &st)
	return st.Head.Number, err
}

// noteChainHead remembers the chain's head before the chain is stopped.
func (h *Harness) noteChainHead(ctx context.Context) {
	head, err := h.chainHeadNow(ctx)
	h.mu.Lock()
	defer h.mu.Unlock()
	if err == nil {
		h.chainHead = max(h.chainHead, head)
	}
	for _, s := range h.weights.samples {
		h.chainHead = max(h.chainHead, s.Head)
	}
	h.chainKilled = time.Now()
}

// catchUpChain brings a restarted chain server, which starts again from its genesis at
// block 0, to the height a chain that never stopped would have: the head before the kill
// plus a block for every second it was down. Roles ignore heads older than the newest they
// saw (a chain never goes back), so without it they would wait out the old height.
func (h *Harness) catchUpChain(ctx context.Context) error {
	if err := h.waitHTTP(ctx, fmt.Sprintf("http://%s:%d/sim/state", h.Role("chain").IP, chainPort), time.Minute); err != nil {
		return fmt.Errorf("faults: the restarted chain: %w", err)
	}
	h.mu.Lock()
	target := h.chainHead + uint64(time.Since(h.chainKilled)/time.Second) + 1
	h.mu.Unlock()
	head, err := h.chainHeadNow(ctx)
	if err != nil {
		return fmt.Errorf("faults: the restarted chain: %w", err)
	}
	if head >= target {
		return nil
	}
	for left := target - head; left > 0; {
		n := min(left, 10000)
		if err := h.chainAdmin(ctx, http.MethodPost, "advance", map[string]int{"blocks": int(n)}, nil); err != nil {
			return fmt.Errorf("faults: advancing the restarted chain: %w", err)
		}
		left -= n
	}
	return nil
}

// watchWeights samples every validator's last weights block until ctx ends.
func (h *Harness) watchWeights(ctx context.Context) {
	c, err := pylon.New(ctx, pylon.Config{URL: fmt.Sprintf("http://%s:%d", h.Role("chain").IP, chainPort), NetUID: netUID,
		Attempts: 1, RequestTimeout: 2 * time.Second, HTTPClient: &http.Client{Timeout: 3 * time.Second}})
	if err != nil {
		h.mu.Lock()
		h.weights.err = err
		h.mu.Unlock()
		return
	}
	validators := map[string]bool{}
	for _, v := range h.RolesOf("validator") {
		validators[v.Hotkey.SS58()] = true
	}
	for {
		mg, err := c.Metagraph(ctx, netUID, 0)
		if ctx.Err() != nil {
			return
		}
		h.mu.Lock()
		h.weights.err = err
		if err == nil {
			s := weightsSample{At: time.Now(), Head: mg.Block.Number, Last: map[string]uint64{}}
			for _, n := range mg.Neurons {
				if validators[string(n.Hotkey)] {
					s.Last[string(n.Hotkey)] = n.LastUpdate
				}
			}
			h.weights.samples = append(h.weights.samples, s)
		}
		h.mu.Unlock()
		if !sleepUntil(ctx, time.Now().Add(weightsPoll)) {
			return
		}
	}
}

// checkWeights checks that each validator set weights in every tempo it was up for whole
// (and the chain too, and nothing cut them apart), from the harness's samples of the chain.
// Tempos are checked from the first in which the validator was seen to set weights (before
// the first countersigned work there is nothing to weigh), and only tempos the samples show
// in real time (not blocks the harness produced at once to bring a restarted chain up to
// height). It returns the broken tempos and how many tempos were checked.
func (h *Harness) checkWeights() (broken []string, checked int) {
	h.mu.Lock()
	samples := slices.Clone(h.weights.samples)
	outages := slices.Clone(h.outages)
	lastErr := h.weights.err
	h.mu.Unlock()
	// Drop the reads of a restarted chain before the harness caught it up (its head is
	// below one seen before).
	var top uint64
	kept := samples[:0]
	for _, s := range samples {
		if s.Head >= top {
			top = s.Head
			kept = append(kept, s)
		}
	}
	samples = kept
	if len(samples) < 2 {
		return []string{fmt.Sprintf("the chain was read %d times (last error: %v)", len(samples), lastErr)}, 0
	}
	downDuring := func(role string, from, to time.Time) bool {
		for _, o := range outages {
			grace := linkGrace
			switch o.Role {
			case role:
				grace = weightsGrace
			case "chain", role + "~chain", "chain~" + role:
			default:
				continue
			}
			end := o.To
			if end.IsZero() {
				end = time.Now()
			}
			if o.From.Before(to) && end.After(from.Add(-grace)) {
				return true
			}
		}
		return false
	}
	first := chain.EpochIndex(samples[0].Head, netUID, tempo) + 1
	lastIdx := chain.EpochIndex(samples[len(samples)-1].Head, netUID, tempo)
	for _, v := range h.RolesOf("validator") {
		hk := v.Hotkey.SS58()
		var firstSet time.Time
		sets := map[uint64]bool{}
		for _, s := range samples {
			if b := s.Last[hk]; b > 0 {
				sets[b] = true
				if firstSet.IsZero() {
					firstSet = s.At
				}
			}
		}
		if firstSet.IsZero() {
			broken = append(broken, fmt.Sprintf("%s never set weights", v.Name))
			continue
		}
		for idx := first; idx < lastIdx; idx++ {
			start := chain.EpochStart(idx, netUID, tempo)
			end := chain.EpochStart(idx+1, netUID, tempo)
			// The tempo in wall time: from the last read before it to the first after it.
			var lo, hi time.Time
			in := 0
			for _, s := range samples {
				switch {
				case s.Head < start:
					lo = s.At
				case s.Head < end:
					in++
				case hi.IsZero():
					hi = s.At
				}
			}
			if lo.IsZero() || hi.IsZero() || in < int(tempo)/2 || lo.Before(firstSet) {
				continue // not seen in real time, or before the validator had work to weigh
			}
			if downDuring(v.Name, lo, hi) {
				continue
			}
			checked++
			set := false
			for b := range sets {
				if b >= start && b < end {
					set = true
				}
			}
			if !set {
				broken = append(broken, fmt.Sprintf("%s set no weights in the tempo of blocks %d–%d (up from %s before it to its end)",
					v.Name, start, end-1, weightsGrace))
			}
		}
	}
	return broken, checked
}
