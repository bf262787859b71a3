package devnet

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"
)

// Miner-behaviour scenarios: a miner killed mid-job and started again, possibly with another
// offer.

// startMinerLoops runs m's periodic axon check and manifest keeper until runCtx ends or
// KillMiner stops them. They run on the miner started last: a restarted miner has its own.
func (d *Devnet) startMinerLoops(runCtx context.Context, m *MinerNode) {
	ctx, stop := context.WithCancel(runCtx)
	m.stopLoops = stop
	mn := m.Miner
	d.wg.Go(func() { _ = mn.RunAxonCheck(ctx) })
	d.wg.Go(func() { _ = mn.RunManifest(ctx) })
}

// minerListener listens for m: on the address it served before when it is started again (its
// axon on chain names that address), else on a new loopback port.
func (d *Devnet) minerListener(m *MinerNode) (net.Listener, error) {
	if !m.Addr.IsValid() {
		return d.listen("miner " + m.URI)
	}
	// The old server's socket is closed; a moment's retry covers a listener still going away.
	var err error
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		var lis net.Listener
		if lis, err = net.Listen("tcp", m.Addr.String()); err == nil {
			return lis, nil
		}
	}
	return nil, fmt.Errorf("devnet: listen again for the miner %s on %s: %w", m.URI, m.Addr, err)
}

// KillMiner stops miner i abruptly, as a crash of its process would: its server and every
// connection (validators' and executors') are dropped at once, without draining or telling
// anyone, and its executors are stopped (their containers removed). Its database is kept, so
// that RestartMiner serves the receipts it countersigned before. Validators see their jobs
// on it fail as the horde's fault.
func (d *Devnet) KillMiner(i int) error {
	if i < 0 || i >= len(d.Miners) {
		return fmt.Errorf("devnet: no miner %d (%d run)", i, len(d.Miners))
	}
	m := d.Miners[i]
	if m.srv == nil {
		return fmt.Errorf("devnet: miner %s is not running", m.URI)
	}
	if m.stopLoops != nil { // nil for a miner AddMiner started: its loops end with the devnet
		m.stopLoops()
	}
	err := m.srv.Close() // the listener and the plain HTTP connections
	_ = m.Miner.Close()  // the websockets, which the server no longer tracks
	m.stopExecutors()
	m.srv, m.stopLoops, m.stopExecutors = nil, nil, nil
	d.log.Warn("miner killed", "miner", m.URI)
	if err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("devnet: kill miner %s: %w", m.URI, err)
	}
	return nil
}

// RestartMiner starts miner i again after KillMiner, on its database and address, as its
// operator restarting the process would: the jobs it had in flight are failed (Recover), and
// it announces its manifest to every validator again. spec, when not nil, replaces its offer
// (its manifest and costs). A devnet miner keeps no manifest state across restarts, so the
// manifest it starts with counts as a change now; validators honour it only when their
// 2-hour rule allows.
func (d *Devnet) RestartMiner(ctx context.Context, i int, spec *MinerSpec) error {
	if i < 0 || i >= len(d.Miners) {
		return fmt.Errorf("devnet: no miner %d (%d run)", i, len(d.Miners))
	}
	m := d.Miners[i]
	if m.srv != nil {
		return fmt.Errorf("devnet: miner %s is running; kill it first (KillMiner)", m.URI)
	}
	if spec != nil {
		m.Spec = *spec
	}
	if err := d.startMiner(ctx, d.execCtx, m, m.adminHash); err != nil {
		return err
	}
	d.startMinerLoops(d.runCtx, m)
	if i == 0 {
		d.Miner = m.Miner
	}
	return nil
}
