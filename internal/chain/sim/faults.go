package sim

import (
	"fmt"

	"github.com/computehorde/horde/internal/chain"
)

// Call kinds for [Chain.FailNext].
const (
	KindHead          = "head"
	KindMetagraph     = "metagraph"
	KindHyperparams   = "hyperparams"
	KindCommitments   = "commitments"
	KindSetWeights    = "set_weights" // SetWeights, SetWeightsRaw, CommitWeightsRaw
	KindServeAxon     = "serve_axon"
	KindSetCommitment = "set_commitment"
)

var kinds = map[string]bool{
	KindHead: true, KindMetagraph: true, KindHyperparams: true, KindCommitments: true,
	KindSetWeights: true, KindServeAxon: true, KindSetCommitment: true,
}

type fault struct {
	n   int
	err error
}

// FailNext makes the next n calls of kind fail with err before doing
// anything; a nil err means chain.ErrUnavailable. n <= 0 removes the fault.
// A failed write changes nothing. It panics on an unknown kind, which is a
// bug in the test.
func (s *Chain) FailNext(kind string, n int, err error) {
	if !kinds[kind] {
		panic(fmt.Sprintf("sim: FailNext: unknown call kind %q; use one of the sim.Kind constants", kind))
	}
	if err == nil {
		err = fmt.Errorf("%w (fault injected into %s)", chain.ErrUnavailable, kind)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if n <= 0 {
		delete(s.faults, kind)
		return
	}
	s.faults[kind] = &fault{n: n, err: err}
}

// faultLocked consumes one injected failure of kind, if any.
func (s *Chain) faultLocked(kind string) error {
	f := s.faults[kind]
	if f == nil {
		return nil
	}
	f.n--
	if f.n <= 0 {
		delete(s.faults, kind)
	}
	return f.err
}
