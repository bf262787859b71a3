package devnet

import (
	"context"
	"errors"
	"fmt"

	"github.com/computehorde/horde/internal/chain"
	"github.com/computehorde/horde/internal/chain/sim"
	"github.com/computehorde/horde/internal/keys"
	"github.com/computehorde/horde/sdk"
)

// Users beyond the dev one: hotkeys registered on the simulated chain with a stake, so that
// the facilitator shares the validators' capacity among them by stake (rule 6), as
// `horde facilitator run` does from the metagraph.

// startUserStakes gives the facilitator its own metagraph cache (it runs in its own process in
// production), refreshed on every block until runCtx ends, and returns the users' stakes
// from it: a user's stake is its hotkey's stake on the subnet, in TAO; unregistered, none.
func (d *Devnet) startUserStakes(ctx, runCtx context.Context) (func(user string) float64, error) {
	c, err := chain.NewMetagraphCache(chain.CacheConfig{Chain: d.Chain, NetUID: NetUID, Logger: d.log})
	if err != nil {
		return nil, fmt.Errorf("devnet: %w", err)
	}
	d.facMetagraph = c
	d.wg.Go(func() { _ = c.Run(runCtx) })
	if err := c.Wait(ctx); err != nil {
		return nil, fmt.Errorf("devnet: %w", err)
	}
	return func(user string) float64 {
		if n, ok := c.Neuron(chain.Hotkey(user)); ok {
			return float64(n.Stake) / raoPerTAO
		}
		return 0
	}, nil
}

// AddUser registers the hotkey of the dev secret URI uri (e.g. "//UserA") on the simulated
// chain with stake (rao), grants it credits (micro-credits, once per facilitator database)
// and returns a client of the facilitator that signs in with that hotkey. It returns once
// the facilitator sees the stake, so jobs submitted next are shared by it.
func (d *Devnet) AddUser(ctx context.Context, uri string, stake uint64, credits int64) (User, *sdk.Client, error) {
	if d.Facilitator == nil {
		return User{}, nil, errors.New("devnet: no facilitator: start the devnet with Config.Facilitator")
	}
	k, err := keys.FromURI(uri)
	if err != nil {
		return User{}, nil, fmt.Errorf("devnet: %w", err)
	}
	u := User{URI: uri, Hotkey: k.SS58()}
	hk := chain.Hotkey(u.Hotkey)
	if _, err := d.Chain.Register(hk, chain.Coldkey("5DevColdkey"+devName(uri))); err != nil && !errors.Is(err, sim.ErrAlreadyRegistered) {
		return User{}, nil, fmt.Errorf("devnet: register user %s: %w", uri, err)
	}
	if err := d.Chain.SetStake(hk, stake); err != nil {
		return User{}, nil, fmt.Errorf("devnet: stake of user %s: %w", uri, err)
	}
	if credits > 0 {
		if _, err := d.Facilitator.Grant(ctx, u.Hotkey, credits, grantKey+":"+u.Hotkey); err != nil {
			return User{}, nil, fmt.Errorf("devnet: grant user %s its credits: %w", uri, err)
		}
	}
	// The chain includes both in its next block (every BlockTime); the facilitator's cache
	// reads it then.
	if err := waitFor(ctx, "the facilitator's view of user "+uri+"'s stake", func() string {
		if n, ok := d.facMetagraph.Neuron(hk); !ok || n.Stake != stake {
			return uri
		}
		return ""
	}); err != nil {
		return User{}, nil, err
	}
	c, err := sdk.New(d.FacilitatorURL, sdk.WithSigner(signer{k}), sdk.WithHTTPClient(d.http))
	if err != nil {
		return User{}, nil, fmt.Errorf("devnet: %w", err)
	}
	return u, c, nil
}
