package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	"github.com/computehorde/horde/internal/hwclass"
	"github.com/computehorde/horde/internal/protocol"
	"github.com/computehorde/horde/internal/scoring"
	"github.com/computehorde/horde/internal/store"
	"github.com/computehorde/horde/internal/validator"
	"github.com/computehorde/horde/internal/validatord"
)

// runValidatorScores prints the points formula for the window ending now, from the
// validator's database: every factor, the points and the weight of each miner.
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
	if *window <= 0 {
		*window = time.Duration(cfg.ScoreWindow)
	}
	db, err := store.Open(ctx, store.Config{DSN: cfg.DSN()})
	if err != nil {
		return err
	}
	defer db.Close()
	now := time.Now()
	totals, err := db.WorkedSeconds(ctx, now.Add(-*window), now)
	if err != nil {
		return err
	}
	work := make([]scoring.Work, 0, len(totals))
	for _, t := range totals {
		work = append(work, scoring.Work{Miner: t.MinerHotkey, Class: protocol.ExecutorClass(t.ExecutorClass), WorkedSeconds: t.WorkedSeconds})
	}
	factors, err := scoring.Assemble(work, scoring.Sources{RelativeValues: hwclass.Default().RelativeValues()})
	if err != nil {
		return err
	}
	r, err := scoring.Score(scoring.Inputs{Factors: factors})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "window %s to %s; demand, efficiency and penalty are 1 until the validator measures them\n",
		now.Add(-*window).Format(time.RFC3339), now.Format(time.RFC3339))
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
