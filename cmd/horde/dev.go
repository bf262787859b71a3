package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/computehorde/horde/internal/devnet"
	"github.com/computehorde/horde/internal/protocol"
	"github.com/computehorde/horde/sdk"
)

func runDev(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("dev", "dev [flags] [-- job args…]", stderr)
	once := fs.Bool("once", false, "run one hello job through the facilitator as the dev user, print its result and exit (0 if it completed)")
	var dataDir string
	fs.StringVar(&dataDir, "data", "", "directory that keeps the subnet's state across restarts: databases, balances, jobs, keys (default: a temporary directory)")
	fs.StringVar(&dataDir, "data-dir", "", "the same as --data")
	validators := fs.Int("validators", 2, "number of validators (//Alice holds 3× the stake of each other one)")
	miners := fs.Int("miners", 3, "number of miners, each with its own manifest and costs")
	blockTime := fs.Duration("block-time", time.Second, "simulated chain block time")
	interval := fs.Duration("interval", time.Minute, "without --once: how often the dev user submits the hello job")
	verbose := fs.Bool("v", false, "log every event (default: warnings and the job's result only)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	switch {
	case *validators < 1 || *miners < 1:
		return fmt.Errorf("%w: --validators and --miners must be at least 1", errUsage)
	case *blockTime <= 0 || *interval <= 0:
		return fmt.Errorf("%w: --block-time and --interval must be positive", errUsage)
	}

	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelInfo
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	if dataDir != "" {
		// Created here so that the error names the flag and the directory asked for; MkdirAll
		// alone names only the first path element that is not a directory.
		if err := os.MkdirAll(dataDir, 0o700); err != nil {
			return fmt.Errorf("--%s %s: cannot create the directory: %w", dataFlagName(fs), dataDir, err)
		}
	}

	// stopped reports an interrupt (Ctrl-C, SIGTERM): without --once that is the normal way to
	// stop, so it exits 0; with --once the job did not finish.
	stopped := func() error {
		fmt.Fprintln(stderr, "horde dev: stopping")
		if *once {
			return errors.New("interrupted before the job finished")
		}
		return nil
	}

	fmt.Fprintf(stderr, "horde dev: starting the simulated chain, a facilitator, %s, %s and their executors on the local Docker engine\n",
		plural(*validators, "validator"), plural(*miners, "miner"))
	started := time.Now()
	net, err := startDevnet(ctx, devnet.Config{DataDir: dataDir, BlockTime: *blockTime, Validators: *validators, Miners: *miners,
		Facilitator: true, Logger: logger})
	if err != nil {
		if ctx.Err() != nil {
			return stopped()
		}
		return err
	}
	defer net.Close()
	client, err := net.UserClient()
	if err != nil {
		return err
	}
	acct, err := client.Account(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return stopped()
		}
		return fmt.Errorf("the dev user's account: %w", err)
	}
	printSubnet(stdout, net, acct.Balance, time.Since(started), !*once)

	// runOnce submits the hello job as the dev user, follows it to its end and prints its
	// result. After an interrupt it returns ctx.Err() and prints nothing: the result would
	// only report the interrupt.
	runOnce := func() (*sdk.Job, error) {
		start := time.Now()
		j, err := client.Submit(ctx, net.HelloUserJob(fs.Args()...), "")
		if err == nil {
			j, err = client.Wait(ctx, j.UUID, nil)
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if err != nil {
			return nil, err
		}
		took := time.Since(start)
		a, err := client.Account(ctx)
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if err != nil {
			return nil, err
		}
		printUserJob(stdout, j, took, a.Balance)
		return j, nil
	}
	j, err := runOnce()
	if ctx.Err() != nil {
		return stopped()
	}
	if err != nil {
		return err
	}
	if *once {
		if j.Status != string(protocol.JobStatusCompleted) {
			return fmt.Errorf("job %s did not complete: %s", j.UUID, j.Status)
		}
		return nil
	}
	fmt.Fprintf(stderr, "horde dev: running; a hello job every %s. Press Ctrl-C to stop.\n", *interval)
	ticker := time.NewTicker(*interval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return stopped()
		case <-ticker.C:
			if _, err := runOnce(); ctx.Err() != nil {
				return stopped()
			} else if err != nil {
				return err
			}
		}
	}
}

// dataFlagName is the name of the data directory flag the user gave, for its errors.
func dataFlagName(fs *flag.FlagSet) string {
	name := "data"
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "data" || f.Name == "data-dir" {
			name = f.Name
		}
	})
	return name
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

// printSubnet prints who runs where: every role's dev key, hotkey and addresses, and, while
// the subnet keeps running, a line that submits a job as the dev user.
func printSubnet(w io.Writer, d *devnet.Devnet, balance int64, took time.Duration, running bool) {
	fmt.Fprintf(w, "horde dev: subnet up in %s: netuid %d on a simulated chain (a block every %s), state in %s\n\n",
		took.Round(time.Millisecond), devnet.NetUID, d.BlockTime(), d.DataDir())
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ROLE\tDEV KEY\tHOTKEY\tLISTENS ON\tDETAILS")
	fmt.Fprintf(tw, "facilitator\t%s\t%s\t%s\tAPI; user pages %s/login; validators' channel /ws/v0/\n",
		devnet.FacilitatorURI, d.FacilitatorHotkey, d.FacilitatorURL, d.FacilitatorURL)
	for _, v := range d.Validators {
		fmt.Fprintf(tw, "validator\t%s\t%s\t-\tstake %d TAO; takes jobs from the facilitator, links to every miner\n",
			v.URI, v.Hotkey, v.Stake/1_000_000_000)
	}
	for _, m := range d.Miners {
		fmt.Fprintf(tw, "miner\t%s\t%s\tws://%s\t%s; admin panel %s\n", m.URI, m.Hotkey, m.Addr, describeOffer(m.Spec), m.AdminURL())
	}
	fmt.Fprintf(tw, "user\t%s\t%s\t-\t%s credits; API key %s\n", d.User.URI, d.User.Hotkey, microCredits(balance), d.User.APIKey)
	_ = tw.Flush()
	fmt.Fprintf(w, "\nMiner admin panels: user %s, password %s\n", devnet.AdminUser, d.AdminPassword)
	if running {
		fmt.Fprintf(w, "Submit a job as the dev user while horde dev runs:\n  HORDE_FACILITATOR_URL=%s HORDE_API_KEY=%s %s job run --image %s -- it works\n",
			d.FacilitatorURL, d.User.APIKey, shellQuote(selfCommand()), d.JobImage())
	}
	fmt.Fprintln(w)
}

// describeOffer is a miner's manifest and costs, e.g. "2 × always_on.test at 0.2 α/h".
func describeOffer(s devnet.MinerSpec) string {
	var parts []string
	for _, e := range s.Manifest {
		p := fmt.Sprintf("%d × %s", e.Count, e.Class)
		if c, ok := s.Costs[e.Class]; ok {
			p += fmt.Sprintf(" at %g α/h", c)
		}
		parts = append(parts, p)
	}
	return strings.Join(parts, ", ")
}

// selfCommand is how the user ran this horde: the path as typed when it had one (bin/horde),
// else "horde" (found on $PATH).
func selfCommand() string {
	if a := os.Args[0]; strings.ContainsRune(a, filepath.Separator) {
		return a
	}
	return "horde"
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("/._-+:=,@", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// printUserJob prints a job the dev user ran: its outcome, why it failed, its output, and
// what it cost.
func printUserJob(w io.Writer, j *sdk.Job, took time.Duration, balance int64) {
	fmt.Fprintf(w, "job %s: %s in %s\n", j.UUID, j.Status, took.Round(time.Millisecond))
	if why := failureDetails(j); why != "" {
		fmt.Fprintf(w, "  %s\n", why)
	}
	if j.Stdout != "" {
		fmt.Fprintf(w, "--- stdout ---\n%s", ensureNewline(j.Stdout))
	}
	if j.Stderr != "" {
		fmt.Fprintf(w, "--- stderr ---\n%s", ensureNewline(j.Stderr))
	}
	fmt.Fprintf(w, "charged %s credits", microCredits(j.Charged))
	if j.PricePerSecond > 0 {
		fmt.Fprintf(w, " (%d s at %s credits/s)", j.Charged/j.PricePerSecond, microCredits(j.PricePerSecond))
	}
	fmt.Fprintf(w, "; the dev user's balance is %s credits\n", microCredits(balance))
}

// failureDetails says why a job that did not complete ended, from its terminal status's
// metadata; "" for a completed job.
func failureDetails(j *sdk.Job) string {
	if j.Status == string(protocol.JobStatusCompleted) || len(j.Result) == 0 {
		return ""
	}
	var md protocol.JobStatusMetadata
	if err := json.Unmarshal(j.Result, &md); err != nil {
		return ""
	}
	switch {
	case md.JobFailureDetails != nil:
		f := md.JobFailureDetails
		s := fmt.Sprintf("%s (%s)", f.Reason, f.Message)
		if f.Stage != "" {
			s += " at stage " + string(f.Stage)
		}
		if f.DockerProcessExitStatus != nil {
			s += fmt.Sprintf(", exit status %d", *f.DockerProcessExitStatus)
		}
		return s
	case md.HordeFailureDetails != nil:
		f := md.HordeFailureDetails
		return fmt.Sprintf("reported by %s: %s (%s)", f.ReportedBy, f.Reason, f.Message)
	case md.JobRejectionDetails != nil:
		f := md.JobRejectionDetails
		return fmt.Sprintf("rejected by %s: %s (%s)", f.RejectedBy, f.Reason, f.Message)
	}
	return ""
}

func ensureNewline(s string) string {
	if strings.HasSuffix(s, "\n") {
		return s
	}
	return s + "\n"
}

// startDevnet starts a devnet whose job image is assembled from this very executable, which
// runs the hello job through its hidden `__job hello` command.
func startDevnet(ctx context.Context, cfg devnet.Config) (*devnet.Devnet, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("cannot find the horde executable to build the job image from: %w", err)
	}
	cfg.JobBinary = self
	// The image holds the executable under its own name (jobimage), whatever it is called.
	cfg.JobEntrypoint = []string{"/bin/" + filepath.Base(self), jobCommand, "hello"}
	return devnet.Start(ctx, cfg)
}
