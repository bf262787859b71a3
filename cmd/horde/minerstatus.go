package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/computehorde/horde/internal/miner"
	"github.com/computehorde/horde/internal/minerd"
	"github.com/computehorde/horde/internal/minerweb"
	"github.com/computehorde/horde/internal/store"
)

func runMinerHashPassword(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("miner hash-password", "miner hash-password < password", stderr)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	line, err := bufio.NewReader(os.Stdin).ReadString('\n')
	if err != nil && err != io.EOF {
		return err
	}
	h, err := minerweb.HashPassword(strings.TrimRight(line, "\r\n"))
	if err != nil {
		return fmt.Errorf("%w: %v (give the password on standard input)", errUsage, err)
	}
	fmt.Fprintln(stdout, h)
	return nil
}

func runMinerStatus(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("miner status", "miner status --config miner.toml", stderr)
	path := fs.String("config", "", "the running miner's configuration file (its data_dir holds the status socket)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := minerd.LoadLocal(*path, os.Getenv)
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	st, err := minerd.ReadStatus(ctx, cfg.DataDir)
	if err != nil {
		return err
	}
	printMinerStatus(stdout, st)
	return nil
}

// printMinerStatus prints the status and, first, the answer to "why do I get no jobs or no
// weight?" from what the miner knows.
func printMinerStatus(w io.Writer, st miner.Status) {
	fmt.Fprintf(w, "miner %s on netuid %d, at %s\n", st.Hotkey, st.NetUID, st.At.Format(time.RFC3339))
	problems := minerProblems(st)
	if len(problems) == 0 {
		fmt.Fprintln(w, "no problem found: the axon on chain is this miner's, the chain is fresh, classes are offered")
	}
	for _, p := range problems {
		fmt.Fprintln(w, "PROBLEM: "+p)
	}
	fmt.Fprintf(w, "\nchain: block %d, refreshed %s ago, stale %v\n", st.Metagraph.Block, st.At.Sub(st.Metagraph.RefreshedAt).Round(time.Second), st.Metagraph.Stale)
	if st.Axon.Want.IsValid() {
		fmt.Fprintf(w, "axon: on chain %v, configured %v, ok %v\n", st.Axon.Chain, st.Axon.Want, st.Axon.OK)
	} else {
		fmt.Fprintln(w, "axon: not checked (no external_address configured)")
	}
	fmt.Fprintf(w, "validators: %d connections; with jobs: %s\n", st.ValidatorConns, strings.Join(st.Validators, ", "))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "\nCLASS\tCAPACITY\tOFFERED\tCOST\tBEST RATE")
	for _, c := range st.Offer.Classes {
		cost, rate := "-", "-"
		if c.HasCost {
			cost = fmt.Sprint(c.Cost)
		}
		if c.HasRate {
			rate = fmt.Sprint(c.BestRate)
		}
		fmt.Fprintf(tw, "%s\t%d\t%v\t%s\t%s\n", c.Class, c.Capacity, c.Offered, cost, rate)
	}
	tw.Flush()
	fmt.Fprintf(w, "manifest may next change at %s\n", st.Offer.NextChangeAllowed.Format(time.RFC3339))
	if len(st.Offer.Pending) > 0 {
		fmt.Fprintf(w, "held until then: %v\n", st.Offer.Pending)
	}
	if len(st.Hosts) == 0 {
		fmt.Fprintln(w, "executors: processes of this miner, on this machine")
	}
	for _, h := range st.Hosts {
		state := "up"
		if !h.Up {
			state = "DOWN"
		}
		fmt.Fprintf(w, "host %s (%s): %s since %s, offers %v, running %v", h.Name, h.Endpoint, state, h.Since.Format(time.RFC3339), h.Classes, h.Running)
		if h.Err != "" {
			fmt.Fprintf(w, ", last error: %s", h.Err)
		}
		fmt.Fprintln(w)
	}
	if len(st.Jobs) > 0 {
		fmt.Fprintln(w, "\njobs in flight:")
		for _, j := range st.Jobs {
			fmt.Fprintf(w, "  %s %s %s for %s\n", j.UUID, j.Class, j.Status, j.Validator)
		}
	}
	if len(st.Declines) > 0 {
		fmt.Fprintln(w, "\nrecent declines:")
		for _, e := range st.Declines[:min(len(st.Declines), 10)] {
			fmt.Fprintf(w, "  %s %s %s: %s\n", e.At.Format(time.TimeOnly), e.Class, e.Reason, e.Message)
		}
	}
	if len(st.Failures) > 0 {
		fmt.Fprintln(w, "\nrecent failures:")
		for _, e := range st.Failures[:min(len(st.Failures), 10)] {
			fmt.Fprintf(w, "  %s %s %s/%s: %s\n", e.At.Format(time.TimeOnly), e.Class, e.Kind, e.Reason, e.Message)
		}
	}
}

// minerProblems lists what keeps jobs or weight away, most important first.
func minerProblems(st miner.Status) []string {
	var out []string
	if !st.Axon.OK {
		msg := "validators cannot find this miner: the axon on chain is not the configured address"
		if st.Axon.FixCommand != "" {
			msg += "; run: " + st.Axon.FixCommand
		}
		out = append(out, msg)
	}
	if st.Metagraph.Stale {
		out = append(out, "the chain is not answering: the metagraph is stale, so new validators are not recognised")
	}
	offered := 0
	for _, c := range st.Offer.Classes {
		if c.Offered {
			offered += c.Capacity
		}
	}
	if offered == 0 {
		out = append(out, "no executor is offered: every class is out of the manifest (unprofitable at the published rates, or none configured)")
	}
	for _, h := range st.Hosts {
		if !h.Up {
			out = append(out, fmt.Sprintf("executor host %s is down (%s): its executors are out of the manifest", h.Name, h.Err))
		}
	}
	if st.Draining {
		out = append(out, "the miner is shutting down and declines new jobs")
	}
	if st.ValidatorConns == 0 {
		out = append(out, "no validator is connected")
	}
	return out
}

func runMinerJobs(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("miner jobs", "miner jobs --config miner.toml [--since 24h]", stderr)
	path := fs.String("config", "", "the miner's configuration file (its database)")
	since := fs.Duration("since", 24*time.Hour, "jobs received within this long")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := minerd.LoadLocal(*path, os.Getenv)
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	db, err := openRoleStore(ctx, "miner", cfg.DSN())
	if err != nil {
		return err
	}
	defer db.Close()
	jobs, err := db.ListJobs(ctx, store.JobFilter{Role: store.RoleMiner, Since: time.Now().Add(-*since)})
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "RECEIVED\tJOB\tVALIDATOR\tCLASS\tSTATUS\tTOOK\tOUTCOME")
	for _, j := range jobs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", j.CreatedAt.Local().Format(time.DateTime), j.UUID, shortHotkey(j.ValidatorHotkey),
			j.ExecutorClass, j.Status, j.UpdatedAt.Sub(j.CreatedAt).Round(time.Millisecond), outcomeOf(j.Result))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%d jobs in the last %s\n", len(jobs), *since)
	return nil
}

func shortHotkey(h string) string {
	if len(h) > 10 {
		return h[:10] + "…"
	}
	return h
}

// outcomeOf names a stored job result: the relayed message and its reason.
func outcomeOf(result []byte) string {
	if len(result) == 0 {
		return "-"
	}
	var r struct {
		MessageType string `json:"message_type"`
		Reason      string `json:"reason"`
	}
	if json.Unmarshal(result, &r) != nil {
		return "?"
	}
	if r.Reason != "" {
		return r.MessageType + " (" + r.Reason + ")"
	}
	return r.MessageType
}

// openRoleStore opens the database of a role that has already run, for the commands that only
// read it: a SQLite file that does not exist is an error naming it, not a new empty database.
func openRoleStore(ctx context.Context, role, dsn string) (*store.DB, error) {
	db, err := store.Open(ctx, store.Config{DSN: dsn, Existing: true})
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("%w: has the %s run with this configuration? check --config and its data_dir (or database)", err, role)
	}
	return db, err
}
