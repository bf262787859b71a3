package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"sync"
	"time"

	"github.com/computehorde/horde/internal/chain"
	"github.com/computehorde/horde/internal/chain/backend"
	"github.com/computehorde/horde/internal/chain/pylon/wire"
	"github.com/computehorde/horde/internal/chain/sim"
	"github.com/computehorde/horde/internal/chain/simserver"
)

// Environment variables that override the genesis file's tokens, so secrets need not sit in
// the file.
const (
	envOpenAccessToken = backend.EnvOpenAccessToken // the roles' variable, so one setting serves both
	envAdminToken      = "HORDE_CHAIN_ADMIN_TOKEN"
)

// axonProtocolTCP is the protocol byte the Python SDK announces; genesis axons get it.
const axonProtocolTCP = 4

// chainSimShutdown bounds the wait for in-flight requests once the command is stopped.
const chainSimShutdown = 5 * time.Second

// simGenesis is the --genesis file. Decoding is strict: an unknown key is an error.
type simGenesis struct {
	NetUID          *chain.NetUID        `json:"netuid"`
	BlockTime       string               `json:"block_time"` // a Go duration
	MaxNeurons      int                  `json:"max_neurons"`
	History         int                  `json:"history"`
	RelaxedAxonIPs  bool                 `json:"relaxed_axon_ips"`
	Hyperparams     *wire.Hyperparams    `json:"hyperparams"` // keys left out keep sim's defaults
	Neurons         []simGenesisNeuron   `json:"neurons"`
	Identities      []simGenesisIdentity `json:"identities"`
	OpenAccessToken string               `json:"open_access_token"`
	AdminToken      string               `json:"admin_token"`
}

type simGenesisNeuron struct {
	Hotkey          chain.Hotkey  `json:"hotkey"`
	Coldkey         chain.Coldkey `json:"coldkey"`
	Stake           uint64        `json:"stake"` // rao
	ValidatorPermit *bool         `json:"validator_permit"`
	Axon            *struct {
		IP   string `json:"ip"`
		Port uint16 `json:"port"`
	} `json:"axon"`
}

type simGenesisIdentity struct {
	Name   string       `json:"name"`
	Hotkey chain.Hotkey `json:"hotkey"`
	Token  string       `json:"token"`
}

func runChainSim(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("chain sim", "chain sim [flags]", stderr)
	listen := fs.String("listen", "127.0.0.1:8000", "address to serve Pylon's API and the admin API on (Pylon's port by default)")
	genesisPath := fs.String("genesis", "", "JSON genesis file: netuid, block_time, max_neurons, history, relaxed_axon_ips, hyperparams, "+
		"neurons, identities, open_access_token, admin_token (tokens also from $"+envOpenAccessToken+" and $"+envAdminToken+", which win)")
	netuidFlag := fs.Uint("netuid", 12, "the simulated subnet's netuid (or the genesis file's netuid)")
	blockTime := fs.Duration("block-time", sim.DefaultBlockTime, "time between blocks (or the genesis file's block_time); 0 = blocks only through POST /sim/advance")
	verbose := fs.Bool("v", false, "log every request outcome and weights attempt (default: warnings only)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q; chain sim takes only flags", errUsage, fs.Arg(0))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })

	var gen simGenesis
	if *genesisPath != "" {
		var err error
		if gen, err = readSimGenesis(*genesisPath); err != nil {
			return fmt.Errorf("%w: --genesis %s: %v", errUsage, *genesisPath, err)
		}
	}
	if *netuidFlag > 0xffff {
		return fmt.Errorf("%w: --netuid %d is above 65535", errUsage, *netuidFlag)
	}
	netuid := chain.NetUID(*netuidFlag)
	if gen.NetUID != nil {
		if set["netuid"] && *gen.NetUID != netuid {
			return fmt.Errorf("%w: --netuid %d contradicts the genesis file's netuid %d; drop one", errUsage, netuid, *gen.NetUID)
		}
		netuid = *gen.NetUID
	}
	bt := *blockTime
	if gen.BlockTime != "" {
		d, err := time.ParseDuration(gen.BlockTime)
		if err != nil {
			return fmt.Errorf("%w: --genesis %s: block_time %q is not a duration such as 12s or 500ms", errUsage, *genesisPath, gen.BlockTime)
		}
		if set["block-time"] && d != bt {
			return fmt.Errorf("%w: --block-time %v contradicts the genesis file's block_time %v; drop one", errUsage, bt, d)
		}
		bt = d
	}
	if bt < 0 {
		return fmt.Errorf("%w: block time %v is negative; use 0 for blocks only through POST /sim/advance", errUsage, bt)
	}

	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	g, err := gen.simGenesis(netuid, bt)
	if err != nil {
		return fmt.Errorf("%w: --genesis %s: %v", errUsage, *genesisPath, err)
	}
	c, err := sim.New(g)
	if err != nil {
		return fmt.Errorf("--genesis %s: %w", *genesisPath, err)
	}
	cfg := simserver.Config{
		Chain:           c,
		OpenAccessToken: cmpEnv(envOpenAccessToken, gen.OpenAccessToken),
		AdminToken:      cmpEnv(envAdminToken, gen.AdminToken),
		Logger:          logger,
	}
	for _, id := range gen.Identities {
		cfg.Identities = append(cfg.Identities, simserver.Identity{Name: id.Name, Hotkey: id.Hotkey, Token: id.Token})
	}
	srv, err := simserver.New(cfg)
	if err != nil {
		return fmt.Errorf("--genesis %s: %w", *genesisPath, err)
	}
	defer srv.Close()

	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", *listen)
	if err != nil {
		return fmt.Errorf("--listen %s: %w", *listen, err)
	}
	hs := &http.Server{
		Handler:           srv.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()

	runCtx, stopRun := context.WithCancel(ctx)
	var wg sync.WaitGroup
	if bt > 0 {
		wg.Go(func() { _ = c.Run(runCtx) }) // returns only when runCtx ends
	}

	fmt.Fprintf(stdout, "horde chain sim: listening on http://%s (netuid %d)\n", ln.Addr(), netuid)
	blocks := "blocks only through POST /sim/advance"
	if bt > 0 {
		blocks = "a block every " + bt.String()
	}
	fmt.Fprintf(stderr, "horde chain sim: %d neurons, %s; open access %s, admin API %s\n", len(g.Neurons), blocks,
		guarded(cfg.OpenAccessToken), guarded(cfg.AdminToken))
	for _, id := range cfg.Identities {
		fmt.Fprintf(stderr, "horde chain sim: identity %s, hotkey %s\n", id.Name, id.Hotkey)
	}

	var serveErr error
	select {
	case <-ctx.Done():
		fmt.Fprintln(stderr, "horde chain sim: stopping")
	case serveErr = <-served:
	}
	stopRun()
	wg.Wait()
	shCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), chainSimShutdown)
	defer cancel()
	if err := hs.Shutdown(shCtx); err != nil {
		// Requests still running (a delay fault) are cut off.
		_ = hs.Close()
	}
	if serveErr == nil {
		serveErr = <-served
	}
	if errors.Is(serveErr, http.ErrServerClosed) {
		return nil
	}
	return fmt.Errorf("serving on %s: %w", ln.Addr(), serveErr)
}

// readSimGenesis reads the genesis file strictly: an unknown key, a second JSON value or a
// wrong type is an error naming it.
func readSimGenesis(path string) (simGenesis, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return simGenesis{}, err
	}
	hp := wire.FromHyperparams(sim.DefaultHyperparams())
	gen := simGenesis{Hyperparams: &hp} // keys the file leaves out keep sim's defaults
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&gen); err != nil {
		return simGenesis{}, fmt.Errorf("%v; fix or remove it (keys: netuid, block_time, max_neurons, history, relaxed_axon_ips, "+
			"hyperparams, neurons, identities, open_access_token, admin_token)", err)
	}
	if dec.More() {
		return simGenesis{}, errors.New("more than one JSON value; the file holds one object")
	}
	if gen.Hyperparams == nil { // "hyperparams": null
		gen.Hyperparams = &hp
	}
	return gen, nil
}

// simGenesis converts the file to the simulator's genesis.
func (g simGenesis) simGenesis(netuid chain.NetUID, blockTime time.Duration) (sim.Genesis, error) {
	out := sim.Genesis{
		NetUID:         netuid,
		MaxNeurons:     g.MaxNeurons,
		BlockTime:      blockTime, // 0: the simulator's 12 s, for block timestamps only
		History:        g.History,
		RelaxedAxonIPs: g.RelaxedAxonIPs,
		Hyperparams:    sim.DefaultHyperparams(),
	}
	if g.Hyperparams != nil {
		out.Hyperparams = g.Hyperparams.ToHyperparams()
	}
	for i, n := range g.Neurons {
		spec := sim.NeuronSpec{Hotkey: n.Hotkey, Coldkey: n.Coldkey, Stake: n.Stake, ValidatorPermit: n.ValidatorPermit}
		if n.Axon != nil {
			ip, err := netip.ParseAddr(n.Axon.IP)
			if err != nil {
				return sim.Genesis{}, fmt.Errorf("neurons[%d] (%s): axon ip %q is not an IPv4 or IPv6 address", i, n.Hotkey, n.Axon.IP)
			}
			if n.Axon.Port == 0 {
				return sim.Genesis{}, fmt.Errorf("neurons[%d] (%s): axon port is 0; give the port its server listens on", i, n.Hotkey)
			}
			spec.Axon = chain.AxonInfo{IP: ip.Unmap(), Port: n.Axon.Port, Protocol: axonProtocolTCP}
		}
		out.Neurons = append(out.Neurons, spec)
	}
	return out, nil
}

// cmpEnv returns the environment variable name's value, or def when it is unset or empty.
func cmpEnv(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func guarded(token string) string {
	if token == "" {
		return "needs no token"
	}
	return "needs a bearer token"
}
