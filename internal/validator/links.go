package validator

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/computehorde/horde/internal/chain"
	"github.com/computehorde/horde/internal/clock"
	"github.com/computehorde/horde/internal/protocol"
	"github.com/computehorde/horde/internal/wsconn"
)

// Miner links: the validator keeps one connection to every miner serving an axon, with
// upstream's auth, to learn manifests as miners announce them (under the 2-hour rule) and
// to give miners its class values, whether or not a job is running there. Jobs use their
// own connections.
var errNotServing = errors.New("validator: the miner no longer serves an axon")

const (
	linkBackoffMin = time.Second
	linkBackoffMax = 5 * time.Minute
	linkPing       = time.Minute      // keeps the miner's idle timeout away
	linkRescan     = 10 * time.Second // how often the metagraph is looked at for miners
)

// RunMinerLinks keeps the links until ctx ends, starting one for each miner that appears
// and stopping those of miners that leave or stop serving; it returns nil when ctx ends.
func (v *Validator) RunMinerLinks(ctx context.Context) error {
	links := map[string]context.CancelFunc{}
	done := make(chan string)
	defer func() {
		for _, stop := range links {
			stop()
		}
		for range links {
			<-done
		}
	}()
	scan := func() {
		want := map[string]string{}
		if mg := v.cfg.Metagraph.Latest(); mg != nil {
			for _, n := range mg.Neurons {
				if n.Axon.IsServing() && n.Hotkey != chain.Hotkey(v.hotkey) {
					want[string(n.Hotkey)] = n.Axon.AddrPort().String()
				}
			}
		}
		for miner, stop := range links {
			if _, ok := want[miner]; !ok {
				stop()
			}
		}
		for miner := range want {
			if _, ok := links[miner]; ok {
				continue
			}
			lctx, stop := context.WithCancel(ctx)
			links[miner] = stop
			go func() {
				v.link(lctx, miner)
				done <- miner
			}()
		}
	}
	t := time.NewTicker(linkRescan)
	defer t.Stop()
	for {
		scan()
		select {
		case <-ctx.Done():
			return nil
		case miner := <-done:
			delete(links, miner) // stopped: a later scan starts it again if still wanted
		case <-t.C:
		}
	}
}

// link keeps one miner's connection up until ctx ends, reconnecting with backoff and jitter.
func (v *Validator) link(ctx context.Context, miner string) {
	log := v.log.With("miner", miner[:min(10, len(miner))])
	wait := linkBackoffMin
	for ctx.Err() == nil {
		start := time.Now()
		err := v.linkOnce(ctx, miner)
		if ctx.Err() != nil {
			return
		}
		if time.Since(start) > linkBackoffMax {
			wait = linkBackoffMin // it held for a while: the next failure is news
		}
		log.Debug("miner link down; reconnecting", "err", err, "in", wait)
		// Full jitter, so that validators restarted together do not reconnect in step.
		if clock.Sleep(ctx, wait/2+rand.N(wait/2+1)) != nil {
			return
		}
		wait = min(2*wait, linkBackoffMax)
	}
}

// linkOnce connects, authenticates, sends the class values and records the manifests the
// miner announces until the connection ends.
func (v *Validator) linkOnce(ctx context.Context, miner string) error {
	n, ok := v.cfg.Metagraph.Neuron(chain.Hotkey(miner))
	if !ok {
		return errNotServing
	}
	base, err := minerURL(n)
	if err != nil {
		return err
	}
	dialCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	conn, err := wsconn.Dial(dialCtx, base+"/v0.1/validator_interface/"+v.hotkey)
	cancel()
	if err != nil {
		return err
	}
	defer conn.CloseNow()
	// The validator's clock, as for its jobs' auth: the miner checks it against the same time.
	auth := &protocol.ValidatorAuthForMiner{ValidatorHotkey: v.hotkey, MinerHotkey: miner, Timestamp: v.cfg.Clock.Now().Unix()}
	auth.Signature = v.cfg.Keypair.Sign(auth.BlobForSigning()).Hex()
	if err := conn.Send(ctx, auth); err != nil {
		return err
	}
	changed := v.valuesChanged.wait() // before the values are read, so no change is missed
	values := v.ClassValues()
	if err := conn.Send(ctx, values); err != nil {
		return err
	}
	pctx, stopPing := context.WithCancel(ctx)
	var republish sync.WaitGroup
	defer republish.Wait()
	defer stopPing()
	go clock.Every(pctx, linkPing, func() { _ = conn.Ping(pctx) })
	republish.Go(func() { v.republishValues(pctx, conn, values, changed) })
	for {
		frame, err := conn.ReadFrame(ctx)
		if err != nil {
			return err
		}
		msg, err := protocol.DecodeMinerToValidator(frame)
		if err != nil {
			continue
		}
		switch m := msg.(type) {
		case *protocol.V0ExecutorManifestRequest:
			if v.manifests.announce(miner, m.Manifest, v.cfg.Clock.Now()) {
				v.log.Info("manifest change ignored: the miner changed its manifest less than 2 hours ago",
					"miner", miner[:min(10, len(miner))], "announced", m.Manifest)
			}
		case *protocol.GenericError:
			v.log.Debug("miner link: the miner reported an error", "miner", miner[:min(10, len(miner))], "details", m.Details)
		}
	}
}

// republishValues sends the class values on the link again whenever they change (demand
// multipliers, checked every classValuesCheck; the reward rate, at once after
// SetRewardRate), so that the miner judges profitability by the validator's current rates,
// not by those of the link's start. sent is what the link sent last, changed the signal
// taken before sent was read. It returns when ctx ends or a send fails (the link is then
// going down).
func (v *Validator) republishValues(ctx context.Context, conn *wsconn.Conn, sent *protocol.V0ClassValuesMessage, changed <-chan struct{}) {
	last, _ := protocol.Encode(sent)
	t := time.NewTicker(classValuesCheck)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-changed:
		}
		changed = v.valuesChanged.wait()
		values := v.ClassValues()
		enc, err := protocol.Encode(values)
		if err != nil || bytes.Equal(enc, last) {
			continue
		}
		if err := conn.Send(ctx, values); err != nil {
			return
		}
		last = enc
	}
}

// signal wakes every waiter at once: wait returns a channel that the next fire closes.
type signal struct {
	mu sync.Mutex
	ch chan struct{}
}

func (s *signal) wait() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ch == nil {
		s.ch = make(chan struct{})
	}
	return s.ch
}

func (s *signal) fire() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ch != nil {
		close(s.ch)
		s.ch = nil
	}
}
