package miner

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/computehorde/horde/internal/chain"
)

// The axon check. Validators find a miner through the axon its hotkey announced on chain, and
// Pylon, the production backend, cannot announce one (chain.ErrServeAxonUnsupported). So the
// miner checks at start and every tempo that the chain shows Config.Axon, announces it itself
// where the backend can, and otherwise tells the operator the exact btcli command.

// AxonStatus is the outcome of one axon check.
type AxonStatus struct {
	// OK means the chain shows Want, or this check has just announced it (Served).
	OK bool
	// Served means this check announced Want with serve_axon; the chain shows it from the
	// next block.
	Served bool
	// Chain is the axon the chain showed for the miner's hotkey; invalid if it never served.
	Chain netip.AddrPort
	// Want is Config.Axon.
	Want netip.AddrPort
	// Block is the block of the metagraph checked; 0 if there was none.
	Block uint64
	// FixCommand, when the chain shows another axon and the miner could not announce Want
	// itself, is the btcli command that does.
	FixCommand string
	// Err says why the check is not OK.
	Err error
}

// MarshalJSON writes Err as its text, for the status socket (`horde miner status`): an error
// value has no JSON form of its own.
func (s AxonStatus) MarshalJSON() ([]byte, error) {
	type plain AxonStatus
	return json.Marshal(struct {
		plain
		Err string `json:",omitempty"`
	}{plain(s), chain.ErrorText(s.Err)})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (s *AxonStatus) UnmarshalJSON(b []byte) error {
	type plain AxonStatus
	var v struct {
		plain
		Err string
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*s = AxonStatus(v.plain)
	s.Err = chain.TextError(v.Err)
	return nil
}

// errAxonNotChecked is AxonStatus's error before the first check.
var errAxonNotChecked = errors.New("miner: the axon has not been checked yet; the check runs once the metagraph cache has a metagraph")

// defaultCheckTempo is the check's period, in blocks, while the chain's tempo is unknown (or
// 0, which would never end an epoch): mainnet's tempo.
const defaultCheckTempo = 360

// AxonFixCommand returns the btcli command that announces axon for the wallet's hotkey on
// netuid. This is the one place the command's text lives. Empty wallet or hotkey names are
// btcli's own default, "default".
func AxonFixCommand(netuid chain.NetUID, axon netip.AddrPort, wallet, hotkey string) string {
	return fmt.Sprintf("btcli axon set --netuid %d --ip %s --port %d --wallet-name %s --wallet-hotkey %s",
		netuid, axon.Addr().Unmap(), axon.Port(), shellWord(cmp.Or(wallet, "default")), shellWord(cmp.Or(hotkey, "default")))
}

// shellWord quotes s for a POSIX shell when it holds anything but plain name characters, so
// that the command can be pasted as it is.
func shellWord(s string) string {
	if strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// AxonStatus returns the outcome of the last axon check.
func (m *Miner) AxonStatus() AxonStatus {
	if st := m.axon.Load(); st != nil {
		return *st
	}
	if m.cfg.Axon == (netip.AddrPort{}) {
		return AxonStatus{OK: true}
	}
	return AxonStatus{Want: m.cfg.Axon, Err: errAxonNotChecked}
}

// CheckAxon compares the axon the cached metagraph shows for the miner's hotkey with
// Config.Axon and, when they differ, announces Config.Axon with Chain.ServeAxon. When that
// fails (Pylon cannot serve axons) it logs a warning with the btcli command that fixes it.
// The outcome is returned and kept for AxonStatus. With a zero Config.Axon there is nothing
// to check.
func (m *Miner) CheckAxon(ctx context.Context) AxonStatus {
	st := m.checkAxon(ctx)
	if ctx.Err() == nil {
		m.axon.Store(&st)
	}
	return st
}

func (m *Miner) checkAxon(ctx context.Context) AxonStatus {
	want := m.cfg.Axon
	st := AxonStatus{Want: want}
	if want == (netip.AddrPort{}) {
		st.OK = true
		return st
	}
	mg := m.cfg.Metagraph.Latest()
	if mg == nil {
		st.Err = errAxonNotChecked
		return st
	}
	st.Block = mg.Block.Number
	n, ok := mg.ByHotkey(chain.Hotkey(m.hotkey)) // once per tempo: the scan costs nothing
	if !ok {
		st.Err = fmt.Errorf("miner: axon check: %w (hotkey %s, netuid %d, block %d)", chain.ErrNotRegistered, m.hotkey, m.cfg.NetUID, mg.Block.Number)
		m.log.Warn("the miner's hotkey is not registered, so validators cannot find it", "err", st.Err)
		return st
	}
	st.Chain = n.Axon.AddrPort()
	if n.Axon.IP.Unmap() == want.Addr().Unmap() && n.Axon.Port == want.Port() {
		st.OK = true
		m.log.Debug("axon on chain matches the configured one", "axon", want, "block", st.Block)
		return st
	}
	err := m.cfg.Chain.ServeAxon(ctx, chain.Hotkey(m.hotkey), m.cfg.NetUID, want.Addr().Unmap(), want.Port())
	if err == nil {
		st.OK, st.Served = true, true
		m.log.Info("announced the miner's axon on chain", "axon", want, "was", axonString(n.Axon), "block", st.Block)
		return st
	}
	st.FixCommand = AxonFixCommand(m.cfg.NetUID, want, m.cfg.WalletName, m.cfg.HotkeyName)
	st.Err = fmt.Errorf("miner: the chain shows axon %s for this hotkey, not the configured %s, and the miner cannot announce it: %w; run: %s",
		axonString(n.Axon), want, err, st.FixCommand)
	if ctx.Err() == nil {
		m.log.Warn("validators cannot reach this miner: its axon on chain is not the configured address; announce it with btcli",
			"chain", axonString(n.Axon), "want", want, "fix", st.FixCommand, "err", err)
	}
	return st
}

func axonString(a chain.AxonInfo) string {
	if !a.IP.IsValid() {
		return "none"
	}
	return a.AddrPort().String()
}

// RunAxonCheck checks the axon once the metagraph cache has its first metagraph, then at the
// first block of every epoch (every tempo), until ctx is done; it returns nil. With a zero
// Config.Axon it returns at once.
func (m *Miner) RunAxonCheck(ctx context.Context) error {
	if m.cfg.Axon == (netip.AddrPort{}) {
		return nil
	}
	if m.cfg.Metagraph.Wait(ctx) != nil {
		return nil // ctx done before the chain was read
	}
	tempo := m.tempo(ctx, defaultCheckTempo)
	st := m.CheckAxon(ctx)
	epoch := chain.EpochIndex(st.Block, m.cfg.NetUID, tempo)
	delay := time.Second
	for {
		for h := range m.cfg.Chain.WatchHeads(ctx) {
			delay = time.Second
			if chain.EpochIndex(h.Number, m.cfg.NetUID, tempo) == epoch {
				continue
			}
			m.CheckAxon(ctx)
			tempo = m.tempo(ctx, tempo)
			epoch = chain.EpochIndex(h.Number, m.cfg.NetUID, tempo)
		}
		if ctx.Err() != nil {
			return nil
		}
		// A backend that dropped its head stream is watched again after a pause.
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		delay = min(2*delay, 30*time.Second)
	}
}

// tempo reads the subnet's tempo, keeping prev when the chain cannot say.
func (m *Miner) tempo(ctx context.Context, prev uint16) uint16 {
	hp, err := m.cfg.Chain.Hyperparams(ctx, m.cfg.NetUID)
	if err != nil {
		if ctx.Err() == nil {
			m.log.Debug("cannot read the tempo for the axon check; keeping the last one", "tempo", prev, "err", err)
		}
		return prev
	}
	return cmp.Or(hp.Tempo, defaultCheckTempo)
}
