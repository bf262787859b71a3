package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/computehorde/horde/internal/chain"
	"github.com/computehorde/horde/internal/chain/backend"
)

// openChain parses the shared chain settings and opens the chain they name.
func openChain(ctx context.Context, s backend.Settings, verbose bool, stderr io.Writer) (*backend.Opened, error) {
	level := slog.LevelWarn
	if verbose {
		level = slog.LevelInfo
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	return backend.Open(ctx, s, backend.Options{Logger: logger})
}

// chainSettings are finney's defaults overridden by the environment; flags registered
// after it override both.
func chainSettings() (backend.Settings, error) {
	s := backend.Defaults()
	return s, s.ApplyEnv(os.Getenv)
}

func runChainShow(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	s, err := chainSettings()
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	fs := newFlagSet("chain show", "chain show [chain flags] [--at BLOCK]", stderr)
	s.Register(fs)
	at := fs.Uint64("at", 0, "show the metagraph at this block (default: the newest)")
	verbose := fs.Bool("v", false, "log which chain is used and where its hyperparameters come from")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	op, err := openChain(ctx, s, *verbose, stderr)
	if err != nil {
		return err
	}
	mg, err := op.Chain.Metagraph(ctx, op.NetUID, *at)
	if err != nil {
		return err
	}
	hp, err := op.Chain.Hyperparams(ctx, op.NetUID)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "netuid %d at block %d (0x%x)\n", mg.NetUID, mg.Block.Number, mg.Block.Hash)
	fmt.Fprintf(stdout, "hyperparameters (from %s): tempo %d, weights rate limit %d, commit-reveal %v (period %d), min weights %d, max validators %d\n",
		op.HyperparamsSource, hp.Tempo, hp.WeightsRateLimit, hp.CommitRevealEnabled, hp.RevealPeriodEpochs, hp.MinAllowedWeights, hp.MaxValidators)
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "UID\tHOTKEY\tSTAKE_TAO\tPERMIT\tAXON\tLAST_UPDATE")
	for _, n := range mg.Neurons {
		axon := "-"
		if n.Axon.IsServing() {
			axon = n.Axon.AddrPort().String()
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%v\t%s\t%d\n", n.UID, n.Hotkey, strconv.FormatFloat(float64(n.Stake)/1e9, 'f', -1, 64), n.ValidatorPermit, axon, n.LastUpdate)
	}
	return tw.Flush()
}

func runChainWeights(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	s, err := chainSettings()
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	fs := newFlagSet("chain weights", "chain weights [chain flags] [--hotkey SS58] HOTKEY=WEIGHT…", stderr)
	s.Register(fs)
	hotkey := fs.String("hotkey", "", "the hotkey setting the weights (default: the identity's)")
	versionKey := fs.Uint64("version-key", 0, "weights version key (direct backends; Pylon applies its own)")
	verbose := fs.Bool("v", false, "log each try")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return fmt.Errorf("%w: give at least one HOTKEY=WEIGHT", errUsage)
	}
	weights := map[chain.Hotkey]float64{}
	for _, a := range fs.Args() {
		k, v, ok := strings.Cut(a, "=")
		w, err := strconv.ParseFloat(v, 64)
		if !ok || k == "" || err != nil {
			return fmt.Errorf("%w: %q is not HOTKEY=WEIGHT", errUsage, a)
		}
		weights[chain.Hotkey(k)] = w
	}
	op, err := openChain(ctx, s, *verbose, stderr)
	if err != nil {
		return err
	}
	head, err := op.Chain.Head(ctx)
	if err != nil {
		return err
	}
	hp, err := op.Chain.Hyperparams(ctx, op.NetUID)
	if err != nil {
		return err
	}
	_, end := chain.EpochBounds(head.Number, op.NetUID, hp.Tempo)
	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelInfo
	}
	r, err := chain.SubmitWeights(ctx, chain.WeightsTask{
		Chain: op.Chain, Hotkey: chain.Hotkey(*hotkey), NetUID: op.NetUID, Weights: weights, VersionKey: *versionKey,
		Until: end, Backoff: 250 * time.Millisecond, MaxBackoff: 3 * time.Second,
		Logger: slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level})),
	})
	if err != nil {
		return err
	}
	how := "set"
	if r.CommitReveal {
		how = fmt.Sprintf("committed (revealed at block %d)", r.RevealBlock)
	}
	fmt.Fprintf(stdout, "weights %s at block %d for epoch ending at block %d: uids %v values %v\n", how, r.Block, end, r.UIDs, r.Values)
	if len(r.Unknown) > 0 {
		fmt.Fprintf(stdout, "left out, not registered: %v\n", r.Unknown)
	}
	return nil
}
