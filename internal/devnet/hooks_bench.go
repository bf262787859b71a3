package devnet

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"

	"github.com/computehorde/horde/internal/chain"
	"github.com/computehorde/horde/internal/executor"
	"github.com/computehorde/horde/internal/executor/docker"
	"github.com/computehorde/horde/internal/keys"
	"github.com/computehorde/horde/internal/minerweb"
	"github.com/computehorde/horde/internal/store"
	"github.com/computehorde/horde/jobs/bench/benchjob"
)

// Benchmark scenarios: miners that join a running subnet, and miners that cheat on the
// validators' benchmarks.

// AddMiner starts one more miner while the devnet runs, as an operator joining the subnet
// would: the hotkey of the dev secret URI uri (e.g. "//Dave") is registered on the simulated
// chain, the miner serves its axon and announces its manifest, and AddMiner returns once
// every validator honours that manifest (the validators look for new miners every 10 s). A
// spec without a manifest means the offer a miner without a MinerSpec gets at this index.
func (d *Devnet) AddMiner(ctx context.Context, uri string, spec MinerSpec) (*MinerNode, error) {
	k, err := keys.FromURI(uri)
	if err != nil {
		return nil, fmt.Errorf("devnet: %w", err)
	}
	if slices.ContainsFunc(d.Miners, func(m *MinerNode) bool { return m.Hotkey == k.SS58() }) {
		return nil, fmt.Errorf("devnet: miner %s runs already", uri)
	}
	if spec.Manifest == nil {
		spec = d.cfg.minerSpec(len(d.Miners))
	}
	m := &MinerNode{URI: uri, Hotkey: k.SS58(), Spec: spec}
	if m.Store, err = store.Open(ctx, store.Config{DSN: "sqlite:" + filepath.Join(d.cfg.DataDir, numbered("miner", len(d.Miners))+".db"), Logger: d.log}); err != nil {
		return nil, fmt.Errorf("devnet: %w", err)
	}
	d.stores = append(d.stores, m.Store)
	if m.metagraph, err = chain.NewMetagraphCache(chain.CacheConfig{Chain: d.Chain, NetUID: NetUID, Logger: d.log}); err != nil {
		return nil, fmt.Errorf("devnet: %w", err)
	}
	d.wg.Go(func() { _ = m.metagraph.Run(d.runCtx) })
	if _, err := d.Chain.Register(chain.Hotkey(m.Hotkey), chain.Coldkey("5DevColdkey"+devName(uri))); err != nil {
		return nil, fmt.Errorf("devnet: register miner %s: %w", uri, err)
	}
	// The chain includes the registration in its next block: the miner announces its axon
	// once it sees itself registered, as `horde miner run` does.
	if err := waitFor(ctx, "miner "+uri+"'s registration", func() string {
		if _, ok := m.metagraph.Neuron(chain.Hotkey(m.Hotkey)); !ok {
			return uri
		}
		return ""
	}); err != nil {
		return nil, err
	}
	// The panel's password hash is not kept by Start: it costs a fifth of a second again.
	adminHash, err := minerweb.HashPassword(d.AdminPassword)
	if err != nil {
		return nil, fmt.Errorf("devnet: admin password: %w", err)
	}
	if err := d.startMiner(ctx, d.execCtx, m, adminHash); err != nil {
		return nil, err
	}
	d.Miners = append(d.Miners, m) // Close stops it from here on
	// As in announceAxons: the periodic axon check starts once the axon is on chain, or it
	// would announce it again inside the serving rate limit.
	if err := waitFor(ctx, "miner "+uri+"'s axon", func() string {
		if n, ok := m.metagraph.Neuron(chain.Hotkey(m.Hotkey)); !ok || n.Axon.AddrPort() != m.Addr {
			return uri
		}
		return ""
	}); err != nil {
		return nil, err
	}
	d.startMinerLoops(d.runCtx, m)
	return m, d.waitForManifests(ctx)
}

// minerRuntime is the container runtime of a miner's executors: the devnet's, or one that
// cheats on benchmarks for a miner whose spec says so.
func (d *Devnet) minerRuntime(spec MinerSpec) executor.Runtime {
	if spec.WrongBenchAnswers && d.cfg.BenchImage != "" {
		return benchCheat{Runtime: d.runtime, image: d.cfg.BenchImage}
	}
	return d.runtime
}

// benchCheat is the runtime of a miner that skips the benchmark's work: it swaps each search's
// hash for that of 0 under the search's salt, so the container answers at once with zeros,
// which a validator that checks the answers finds wrong (a validator that did not check them
// would credit the miner the highest efficiency). Everything else runs as on the devnet's
// runtime; embedding the concrete runtime keeps its security checks.
type benchCheat struct {
	*docker.Runtime
	image string
}

func (c benchCheat) Start(ctx context.Context, spec executor.RunSpec) error {
	if spec.Image == c.image {
		cmd, err := zeroAnswers(spec.Cmd)
		if err != nil {
			return err
		}
		spec.Cmd = cmd
	}
	return c.Runtime.Start(ctx, spec)
}

// zeroAnswers rewrites a benchmark's arguments (--salt --space --hashes) so that every
// search's secret is 0.
func zeroAnswers(args []string) ([]string, error) {
	tasks, err := benchjob.ParseArgs(args, io.Discard)
	if err != nil {
		return nil, fmt.Errorf("devnet: cheating miner: %w", err)
	}
	i := slices.Index(args, "--hashes")
	if i < 0 || i+1 >= len(args) {
		return nil, errors.New("devnet: cheating miner: the benchmark has no --hashes argument")
	}
	hashes := make([]string, len(tasks))
	for j, t := range tasks {
		h := benchjob.Digest(t.Salt, 0)
		hashes[j] = hex.EncodeToString(h[:])
	}
	out := slices.Clone(args)
	out[i+1] = strings.Join(hashes, ",")
	return out, nil
}
