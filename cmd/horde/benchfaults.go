package main

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/computehorde/horde/internal/faults"
	"github.com/computehorde/horde/internal/jobimage"
)

// runBenchFaults runs the fault suite (package faults) with a longer schedule than the test's
// and prints the seed, the schedule and the invariants' table. The horde binary itself is the
// role image and the job image (its hidden hello job), so it must be static (CGO_ENABLED=0).
func runBenchFaults(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("bench faults", "bench faults [--jobs N] [--faults M] [--seed S] [--span D] [--postgres DSN]", stderr)
	jobs := fs.Int("jobs", 50, "user jobs in the schedule")
	nfaults := fs.Int("faults", 20, "faults in the schedule (kills, network cut-offs, chain restarts, cuts between two roles, slow links, a miner's engine cut or failing; every fourth has a second one on other roles at the same time)")
	seed := fs.Uint64("seed", 0, "seed of the schedule (0: from the clock)")
	span := fs.Duration("span", 0, "how long jobs are submitted and faults fire (default 10 s a fault, at least 1m)")
	settle := fs.Duration("settle", 3*time.Minute, "how long the subnet may take to end every job once healed")
	keepLogs := fs.String("logs", "", "save every role's whole log in this directory at the end (a failed run saves them in a temporary one anyway)")
	pg := fs.String("postgres", os.Getenv("HORDE_TEST_POSTGRES_DSN"), "PostgreSQL server (postgres:// DSN allowed to CREATE SCHEMA) for the facilitator and validator-1; empty: SQLite everywhere")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *jobs < 1 || *nfaults < 0 {
		return fmt.Errorf("%w: --jobs must be at least 1 and --faults not negative", errUsage)
	}
	if *seed == 0 {
		*seed = uint64(time.Now().UnixNano())
	}
	if *span == 0 {
		*span = max(time.Minute, time.Duration(*nfaults)*10*time.Second)
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	if _, err := jobimage.CheckStatic(self); err != nil {
		return fmt.Errorf("bench faults: this horde binary is the containers' image and must be static; build it with CGO_ENABLED=0: %w", err)
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	fmt.Fprintf(stdout, "seed %d\n", *seed)

	// No JobImage: jobs run the role image, whose horde binary runs the hello job itself.
	cfg := faults.Config{Horde: self, JobArgs: []string{jobCommand, "hello"},
		Logf: func(format string, args ...any) { fmt.Fprintf(stderr, format+"\n", args...) }}
	if *pg != "" {
		db, err := sql.Open("pgx", *pg)
		if err != nil {
			return err
		}
		defer db.Close()
		var schemas []string
		defer func() {
			for _, s := range schemas {
				_, _ = db.ExecContext(context.WithoutCancel(ctx), "DROP SCHEMA IF EXISTS "+s+" CASCADE")
			}
		}()
		cfg.PostgresDSN = func(string) (string, error) {
			var b [6]byte
			_, _ = rand.Read(b[:])
			name := "horde_faults_" + hex.EncodeToString(b[:])
			if _, err := db.ExecContext(ctx, "CREATE SCHEMA "+name); err != nil {
				return "", fmt.Errorf("--postgres: %w", err)
			}
			schemas = append(schemas, name)
			u, err := url.Parse(*pg)
			if err != nil {
				return "", err
			}
			q := u.Query()
			q.Set("search_path", name)
			u.RawQuery = q.Encode()
			return u.String(), nil
		}
	}
	h, err := faults.Start(ctx, cfg)
	if err != nil {
		return err
	}
	defer h.Close()

	var targets []string
	for _, r := range h.Roles {
		if r.Kind != "chain" {
			targets = append(targets, r.Name)
		}
	}
	kinds, missing := h.FaultKinds()
	for k, why := range missing {
		fmt.Fprintf(stdout, "fault kind %s not injected: %s\n", k, why)
	}
	s := faults.NewSchedule(*seed, *jobs, *nfaults, *span, targets, kinds...)
	fmt.Fprintf(stdout, "schedule:\n%s", s)
	out, runErr := faults.Run(ctx, h, s, *settle)
	if runErr != nil {
		fmt.Fprintf(stdout, "seed %d: the run: %v\n", *seed, runErr)
	}
	if out == nil {
		return runErr
	}
	var rep *faults.Report
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(time.Second) {
		if rep, err = h.Check(ctx, out.Jobs); err != nil {
			return err
		}
		if rep.OK() || time.Now().After(deadline) {
			break
		}
	}
	fmt.Fprintf(stdout, "%d jobs, %d faults in %s\n%s", len(out.Jobs), out.FaultsDone, out.Took.Round(time.Millisecond), rep.Table())
	if !rep.OK() {
		runErr = errors.Join(runErr, fmt.Errorf("seed %d: first invariant broken: %s", *seed, rep.FirstBroken()))
	}
	if runErr != nil || *keepLogs != "" {
		// The harness removes its directory on the way out; the logs of a failed run stay.
		dir := *keepLogs
		if dir == "" {
			dir = filepath.Join(os.TempDir(), "horde-faults-logs-"+h.RunID)
		}
		if err := h.SaveLogs(dir); err != nil {
			fmt.Fprintf(stdout, "saving the logs: %v\n", err)
		} else {
			fmt.Fprintf(stdout, "every role's whole log is in %s\n", dir)
		}
	}
	return runErr
}
