package miner

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/computehorde/horde/internal/chain"
	"github.com/computehorde/horde/internal/protocol"
)

// Errors a validator's connection can be refused with. The text goes to the validator in a
// GenericError, so it names the cause without echoing secrets.
var (
	errUnknownValidator  = errors.New("unknown validator: hotkey is not registered on the subnet")
	errNoPermit          = errors.New("inactive validator: hotkey has no validator permit")
	errLowStake          = errors.New("inactive validator: stake is below the miner's minimum")
	errAuthStale         = errors.New("msg too old: auth timestamp is outside the allowed window")
	errAuthReplayed      = errors.New("auth message replayed: a fresh signature is required per connection")
	errAuthWrongMiner    = errors.New("wrong miner hotkey")
	errAuthWrongVal      = errors.New("wrong validator hotkey: it differs from the hotkey in the URL path")
	errAuthBadSignature  = errors.New("signature mismatches")
	errAuthNotFirstFrame = errors.New("the first message must be ValidatorAuthForMiner")
)

// checkValidator decides from the metagraph cache whether hotkey may connect: registered,
// permitted and staked. The caller has made sure that the cache holds a metagraph.
func (m *Miner) checkValidator(hotkey string) error {
	n, ok := m.cfg.Metagraph.Neuron(chain.Hotkey(hotkey))
	if !ok {
		return errUnknownValidator
	}
	if !n.ValidatorPermit {
		return errNoPermit
	}
	if n.Stake < m.cfg.MinValidatorStake {
		return errLowStake
	}
	return nil
}

// checkAuth verifies the validator's first message: right hotkeys, fresh timestamp, valid
// signature, and not seen before within the freshness window.
func (m *Miner) checkAuth(pathHotkey string, a *protocol.ValidatorAuthForMiner) error {
	if a.MinerHotkey != m.hotkey {
		return errAuthWrongMiner
	}
	if a.ValidatorHotkey != pathHotkey {
		return errAuthWrongVal
	}
	now := m.now()
	ts := time.Unix(a.Timestamp, 0)
	if ts.Before(now.Add(-m.cfg.AuthMaxAge)) || ts.After(now.Add(m.cfg.AuthMaxAge)) {
		return errAuthStale
	}
	if err := a.VerifySignature(); err != nil {
		return fmt.Errorf("%w: %v", errAuthBadSignature, err)
	}
	if !m.replays.add(a.Signature, ts.Add(m.cfg.AuthMaxAge), now) {
		return errAuthReplayed
	}
	return nil
}

// replayCache remembers auth signatures until their timestamps leave the freshness window,
// so a captured auth frame cannot open a second connection.
type replayCache struct {
	mu   sync.Mutex
	seen map[string]time.Time // signature -> expiry; guarded by mu
}

func newReplayCache() *replayCache { return &replayCache{seen: make(map[string]time.Time)} }

// add records sig until expiry and reports whether it was new.
func (c *replayCache) add(sig string, expiry, now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for s, exp := range c.seen {
		if now.After(exp) {
			delete(c.seen, s)
		}
	}
	if _, dup := c.seen[sig]; dup {
		return false
	}
	c.seen[sig] = expiry
	return true
}
