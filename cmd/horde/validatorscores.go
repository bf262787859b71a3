package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	"github.com/computehorde/horde/internal/keys"
	"github.com/computehorde/horde/internal/scoring"
	"github.com/computehorde/horde/internal/validator"
	"github.com/computehorde/horde/internal/validatord"
)

// runValidatorScores prints the points formula for the window ending now: every factor, the
// points and the weight of each miner, as the running validator holds them, or from its
// database and saved books when it is not running.
func runValidatorScores(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("validator scores", "validator scores --config validator.toml [--window 72m]", stderr)
	path := fs.String("config", "", "the validator's configuration file (its database)")
	window := fs.Duration("window", 0, "the scoring window ending now (default: the file's score_window)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := validatord.LoadLocal(*path, os.Getenv)
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	// The running validator answers with the factors it holds now; otherwise (or for another
	// window) the store's work and the books it last saved give the same computation.
	if *window <= 0 {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		r, err := validatord.ReadScores(ctx, cfg.DataDir)
		cancel()
		if err == nil {
			fmt.Fprintf(stdout, "the running validator's scores over its %s score window, with the factors it holds now\n",
				time.Duration(cfg.ScoreWindow))
			return scoring.WriteTable(stdout, r)
		}
		*window = time.Duration(cfg.ScoreWindow)
	}
	key, err := keys.LoadHotkey(cfg.Wallet.Path, cfg.Wallet.Name, cfg.Wallet.Hotkey)
	if err != nil {
		return fmt.Errorf("wallet %s hotkey %s: %w", cfg.Wallet.Name, cfg.Wallet.Hotkey, err)
	}
	db, err := openRoleStore(ctx, "validator", cfg.DSN())
	if err != nil {
		return err
	}
	defer db.Close()
	now := time.Now()
	r, savedAt, err := validator.StoredScores(ctx, db, nil, key.SS58(), *window, 0, now)
	if err != nil {
		return err
	}
	books := "no saved books: demand, efficiency and penalty are 1"
	if !savedAt.IsZero() {
		books = "factors from the books saved at " + savedAt.Format(time.RFC3339)
	}
	fmt.Fprintf(stdout, "window %s to %s (the validator is not running); %s\n",
		now.Add(-*window).Format(time.RFC3339), now.Format(time.RFC3339), books)
	return scoring.WriteTable(stdout, r)
}

// runValidatorMiners prints the manifests the running validator honours, with the changes
// it ignored under the 2-hour rule.
func runValidatorMiners(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("validator miners", "validator miners --config validator.toml", stderr)
	path := fs.String("config", "", "the running validator's configuration file (its data_dir holds the status socket)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := validatord.LoadLocal(*path, os.Getenv)
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	miners, err := validatord.ReadMiners(ctx, cfg.DataDir)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "MINER\tHONOURED\tSINCE\tANNOUNCED\tIGNORED CHANGES")
	for _, m := range miners {
		ignored := "-"
		if m.Ignored > 0 {
			ignored = fmt.Sprintf("%d (last %s; honoured again after %s)", m.Ignored, m.LastIgnored.Format(time.RFC3339),
				m.HonouredAt.Add(validator.ManifestChangeInterval).Format(time.RFC3339))
		}
		fmt.Fprintf(tw, "%s\t%v\t%s\t%v\t%s\n", m.Miner, m.Honoured, m.HonouredAt.Format(time.RFC3339), m.Announced, ignored)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%d miners heard from\n", len(miners))
	return nil
}
