package main

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/computehorde/horde/internal/config"
	"github.com/computehorde/horde/internal/keys"
	"github.com/computehorde/horde/sdk"
)

// The user's side: `horde job …` and `horde account …` talk to a facilitator through the
// SDK. The facilitator URL and credentials come from flags, else the environment
// (HORDE_FACILITATOR_URL, HORDE_API_KEY, HORDE_WALLET_NAME, HORDE_WALLET_HOTKEY,
// HORDE_WALLET_PATH), else the client file ($XDG_CONFIG_HOME/horde/client.toml or --client-config).

type clientFile struct {
	URL    string `toml:"url"`
	APIKey string `toml:"api_key" secret:"true"`
	Wallet struct {
		Path   string `toml:"path"`
		Name   string `toml:"name"`
		Hotkey string `toml:"hotkey"`
	} `toml:"wallet"`
}

type clientFlags struct {
	file, url, apiKey, wallet, hotkey, walletPath *string
}

func addClientFlags(fs *flag.FlagSet) *clientFlags {
	return &clientFlags{
		file:       fs.String("client-config", "", "client file with url, api_key and [wallet] (default $XDG_CONFIG_HOME/horde/client.toml when present)"),
		url:        fs.String("facilitator", "", "the facilitator's URL (or $HORDE_FACILITATOR_URL)"),
		apiKey:     fs.String("api-key", "", "an API key (or $HORDE_API_KEY); otherwise the wallet's hotkey signs in"),
		wallet:     fs.String("wallet", "", "wallet name, as btcli's --wallet.name"),
		hotkey:     fs.String("hotkey", "", "hotkey name, as btcli's --wallet.hotkey"),
		walletPath: fs.String("wallet-path", "", "wallets directory (default ~/.bittensor/wallets)"),
	}
}

// hotkeySigner signs the facilitator's nonce with a wallet hotkey.
type hotkeySigner struct{ k *keys.Keypair }

func (s hotkeySigner) SS58() string { return s.k.SS58() }
func (s hotkeySigner) SignMessage(m []byte) ([]byte, error) {
	sig := s.k.Sign(m)
	return sig[:], nil
}

func (cf *clientFlags) client() (*sdk.Client, error) {
	var c clientFile
	c.Wallet.Path, c.Wallet.Name, c.Wallet.Hotkey = keys.DefaultWalletsDir(), "default", "default"
	path := *cf.file
	if path == "" {
		if dir, err := os.UserConfigDir(); err == nil {
			if p := filepath.Join(dir, "horde", "client.toml"); fileExists(p) {
				path = p
			}
		}
	}
	if err := config.Load(path, &c, "HORDE", os.Getenv); err != nil {
		return nil, fmt.Errorf("%w: %v", errUsage, err)
	}
	for _, o := range []struct {
		flag, env string
		dst       *string
	}{
		{*cf.url, "HORDE_FACILITATOR_URL", &c.URL}, {*cf.apiKey, "HORDE_API_KEY", &c.APIKey},
		{*cf.wallet, "", &c.Wallet.Name}, {*cf.hotkey, "", &c.Wallet.Hotkey}, {*cf.walletPath, "", &c.Wallet.Path},
	} {
		if o.flag != "" {
			*o.dst = o.flag
		} else if v := os.Getenv(o.env); o.env != "" && v != "" {
			*o.dst = v
		}
	}
	if c.URL == "" {
		return nil, fmt.Errorf("%w: name the facilitator: --facilitator URL, $HORDE_FACILITATOR_URL or url in the client file", errUsage)
	}
	if c.APIKey != "" {
		return sdk.New(c.URL, sdk.WithAPIKey(c.APIKey))
	}
	k, err := keys.LoadHotkey(c.Wallet.Path, c.Wallet.Name, c.Wallet.Hotkey)
	if err != nil {
		return nil, fmt.Errorf("no API key, and the wallet hotkey to sign in with: %w", err)
	}
	return sdk.New(c.URL, sdk.WithSigner(hotkeySigner{k}))
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

func runUserJob(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	usage := "Usage: horde job <command> [flags]\n\n" +
		"  run     submit a job, show its stages, print its output, exit with its outcome\n" +
		"  status  one job\n" +
		"  list    your jobs, newest first\n" +
		"  cancel  cancel a queued job\n" +
		"  logs    a job's output (--stderr for its standard error)\n" +
		"  outputs write a finished job's artifacts into a directory\n"
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("%w: name a command (run, status, list, cancel, logs, outputs)", errUsage)
	}
	switch args[0] {
	case "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	case "run":
		return runUserJobRun(ctx, args[1:], stdout, stderr)
	case "status", "cancel":
		fs := newFlagSet("job "+args[0], "job "+args[0]+" [flags] JOB_UUID", stderr)
		cf := addClientFlags(fs)
		if err := parseFlags(fs, args[1:]); err != nil {
			return err
		}
		if fs.NArg() != 1 {
			return fmt.Errorf("%w: name one job", errUsage)
		}
		c, err := cf.client()
		if err != nil {
			return err
		}
		var j *sdk.Job
		if args[0] == "status" {
			j, err = c.Job(ctx, fs.Arg(0))
		} else {
			j, err = c.Cancel(ctx, fs.Arg(0))
		}
		if err != nil {
			return err
		}
		return printJob(stdout, j)
	case "list":
		fs := newFlagSet("job list", "job list [--status S,S] [--limit N] [flags]", stderr)
		cf := addClientFlags(fs)
		status := fs.String("status", "", "only jobs in these statuses (comma-separated)")
		limit := fs.Int("limit", 20, "at most this many")
		if err := parseFlags(fs, args[1:]); err != nil {
			return err
		}
		c, err := cf.client()
		if err != nil {
			return err
		}
		var statuses []string
		if *status != "" {
			statuses = strings.Split(*status, ",")
		}
		p, err := c.Jobs(ctx, statuses, *limit, "")
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "UUID\tSTATUS\tCLASS\tIMAGE\tCHARGED\tCREATED")
		for _, j := range p.Jobs {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", j.UUID, j.Status, j.ExecutorClass, j.DockerImage, microCredits(j.Charged), j.CreatedAt.Format(time.RFC3339))
		}
		return tw.Flush()
	case "logs":
		fs := newFlagSet("job logs", "job logs [--stderr] [flags] JOB_UUID", stderr)
		cf := addClientFlags(fs)
		errStream := fs.Bool("stderr", false, "the job's standard error instead of its output")
		if err := parseFlags(fs, args[1:]); err != nil {
			return err
		}
		if fs.NArg() != 1 {
			return fmt.Errorf("%w: name one job", errUsage)
		}
		c, err := cf.client()
		if err != nil {
			return err
		}
		out, err := c.Logs(ctx, fs.Arg(0), *errStream)
		if err != nil {
			return err
		}
		_, err = io.WriteString(stdout, out)
		return err
	case "outputs":
		fs := newFlagSet("job outputs", "job outputs --dir DIR [flags] JOB_UUID", stderr)
		cf := addClientFlags(fs)
		dir := fs.String("dir", ".", "where to write the artifacts (their paths below it)")
		if err := parseFlags(fs, args[1:]); err != nil {
			return err
		}
		if fs.NArg() != 1 {
			return fmt.Errorf("%w: name one job", errUsage)
		}
		c, err := cf.client()
		if err != nil {
			return err
		}
		j, err := c.Job(ctx, fs.Arg(0))
		if err != nil {
			return err
		}
		files, err := j.Artifacts()
		if err != nil {
			return err
		}
		root, err := os.OpenRoot(*dir)
		if err != nil {
			return err
		}
		defer root.Close()
		for p, data := range files {
			rel := strings.TrimLeft(filepath.ToSlash(p), "/")
			if d := filepath.Dir(rel); d != "." {
				if err := root.MkdirAll(d, 0o755); err != nil {
					return err
				}
			}
			if err := root.WriteFile(rel, data, 0o644); err != nil {
				return fmt.Errorf("artifact %s: %w", p, err)
			}
			fmt.Fprintf(stdout, "%s (%d bytes)\n", rel, len(data))
		}
		// The zipped /output, when the facilitator's blob store took it.
		n, err := downloadOutputs(ctx, c, j.UUID, root, stdout)
		if err != nil {
			return err
		}
		if len(files) == 0 && n == 0 {
			fmt.Fprintf(stderr, "job %s (%s) has no artifacts and no outputs at the facilitator\n", j.UUID, j.Status)
		}
		return nil
	default:
		return fmt.Errorf("%w: unknown command %q (run, status, list, cancel, logs, outputs)", errUsage, args[0])
	}
}

// jobOutcome is a job that ended other than completed: its exit code is 1 (failed by the
// job's fault) or 3 (the horde's fault, rejected or cancelled).
type jobOutcome struct {
	status string
	code   int
}

func (o jobOutcome) Error() string { return "the job ended " + o.status }

func runUserJobRun(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("job run", "job run --class C --image I [flags] [-- CMD ARGS…]", stderr)
	cf := addClientFlags(fs)
	class := fs.String("class", "always_on.test", "the executor class")
	image := fs.String("image", "", "the Docker image")
	limit := fs.Duration("time-limit", 5*time.Minute, "execution time limit (you hold price × this)")
	download := fs.Duration("download-limit", 5*time.Minute, "volume download time limit")
	upload := fs.Duration("upload-limit", 5*time.Minute, "output upload time limit")
	validator := fs.String("validator", "", "send the job to this validator (hotkey); default: any")
	var env multiFlag
	fs.Var(&env, "env", "KEY=VALUE for the job's environment (repeatable)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *image == "" {
		return fmt.Errorf("%w: --image is required", errUsage)
	}
	spec := sdk.JobSpec{ExecutorClass: *class, DockerImage: *image, Args: fs.Args(), TargetValidator: *validator,
		ExecutionTimeLimit: int(limit.Seconds()), DownloadTimeLimit: int(download.Seconds()), UploadTimeLimit: int(upload.Seconds())}
	for _, kv := range env {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return fmt.Errorf("%w: --env %q is not KEY=VALUE", errUsage, kv)
		}
		if spec.Env == nil {
			spec.Env = map[string]string{}
		}
		spec.Env[k] = v
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	j, err := c.Submit(ctx, spec, "")
	if err != nil {
		var apiErr *sdk.APIError
		if errors.As(err, &apiErr) && len(apiErr.Fields) > 0 {
			for _, f := range apiErr.Fields {
				fmt.Fprintf(stderr, "  %s: %s\n", f.Field, f.Problem)
			}
		}
		return err
	}
	fmt.Fprintf(stderr, "job %s queued: up to %s credits held (%s per second)\n", j.UUID, microCredits(j.MaxCost), microCredits(j.PricePerSecond))
	start := time.Now()
	j, err = c.Wait(ctx, j.UUID, func(j *sdk.Job) {
		fmt.Fprintf(stderr, "  %6.1fs  %s\n", time.Since(start).Seconds(), j.Status)
	})
	if err != nil {
		return err
	}
	fmt.Fprint(stdout, j.Stdout)
	if j.Stderr != "" {
		fmt.Fprint(stderr, j.Stderr)
	}
	fmt.Fprintf(stderr, "job %s %s; charged %s credits\n", j.UUID, j.Status, microCredits(j.Charged))
	switch j.Status {
	case "completed":
		return nil
	case "failed":
		return jobOutcome{j.Status, 1}
	default:
		return jobOutcome{j.Status, 3}
	}
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(s string) error { *m = append(*m, s); return nil }

func microCredits(n int64) string {
	return strings.TrimRight(strings.TrimRight(fmt.Sprintf("%.6f", float64(n)/1e6), "0"), ".")
}

func printJob(w io.Writer, j *sdk.Job) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(j)
}

func runAccount(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	usage := "Usage: horde account <command> [flags]\n\n" +
		"  balance          your balance\n" +
		"  token            sign in with the wallet's hotkey and print a short-lived token (for the pages)\n" +
		"  keys             your API keys\n" +
		"  keys create NAME create an API key (shown once)\n" +
		"  keys revoke ID   revoke an API key\n"
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("%w: name a command (balance, keys)", errUsage)
	}
	cmd, rest := args[0], args[1:]
	if cmd == "-h" || cmd == "--help" {
		fmt.Fprint(stdout, usage)
		return nil
	}
	fs := newFlagSet("account "+cmd, "account "+cmd+" [flags]", stderr)
	cf := addClientFlags(fs)
	if err := parseFlags(fs, rest); err != nil {
		return err
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	switch cmd {
	case "token":
		tok, err := c.Token(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, tok)
		return nil
	case "balance":
		a, err := c.Account(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s: %s credits\n", a.User, microCredits(a.Balance))
		return nil
	case "keys":
		switch {
		case fs.NArg() == 0:
			ks, err := c.Keys(ctx)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tNAME\tCREATED\tREVOKED")
			for _, k := range ks {
				revoked := "-"
				if !k.RevokedAt.IsZero() {
					revoked = k.RevokedAt.Format(time.RFC3339)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", k.ID, k.Name, k.CreatedAt.Format(time.RFC3339), revoked)
			}
			return tw.Flush()
		case fs.Arg(0) == "create" && fs.NArg() == 2:
			k, err := c.CreateKey(ctx, fs.Arg(1))
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "%s\n", k.Key)
			fmt.Fprintf(stderr, "API key %s (%s) created; it is shown once: store it now\n", k.ID, k.Name)
			return nil
		case fs.Arg(0) == "revoke" && fs.NArg() == 2:
			return c.RevokeKey(ctx, fs.Arg(1))
		}
		return fmt.Errorf("%w: keys, keys create NAME, or keys revoke ID", errUsage)
	default:
		return fmt.Errorf("%w: unknown command %q (balance, token, keys)", errUsage, cmd)
	}
}

// maxOutputsZip bounds a downloaded outputs archive.
const maxOutputsZip = 4 << 30

// downloadOutputs fetches the job's zipped /output through its signed URL and extracts it
// below root, returning the files written; none when the job's outputs went elsewhere.
func downloadOutputs(ctx context.Context, c *sdk.Client, id string, root *os.Root, stdout io.Writer) (int, error) {
	u, err := c.OutputsURL(ctx, id)
	var apiErr *sdk.APIError
	if errors.As(err, &apiErr) && apiErr.Code == "no_outputs" {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, fmt.Errorf("download the outputs: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return 0, nil // the job uploaded nothing
	}
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("download the outputs: HTTP %s", resp.Status)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxOutputsZip))
	if err != nil {
		return 0, fmt.Errorf("download the outputs: %w", err)
	}
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return 0, fmt.Errorf("the outputs are not a zip: %w", err)
	}
	n := 0
	for _, zf := range zr.File {
		if zf.FileInfo().IsDir() {
			continue
		}
		rel := strings.TrimLeft(filepath.ToSlash(zf.Name), "/")
		if d := filepath.Dir(rel); d != "." {
			if err := root.MkdirAll(d, 0o755); err != nil {
				return n, err
			}
		}
		rc, err := zf.Open()
		if err != nil {
			return n, err
		}
		f, err := root.Create(rel)
		if err != nil {
			rc.Close()
			return n, fmt.Errorf("output %s: %w", zf.Name, err)
		}
		written, err := io.Copy(f, io.LimitReader(rc, maxOutputsZip))
		rc.Close()
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return n, fmt.Errorf("output %s: %w", zf.Name, err)
		}
		fmt.Fprintf(stdout, "%s (%d bytes)\n", rel, written)
		n++
	}
	return n, nil
}
