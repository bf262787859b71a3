// Package doctor checks that a machine can run a role (miner, validator, facilitator) and says
// what to fix: the configuration, the Docker engine, GPUs and the NVIDIA Container Toolkit, the
// listen port, the hotkey, the chain and the registration on it, the miner's axon, and the
// database. `horde doctor` is this package behind a flag parser.
//
// Every check is bounded by a short timeout and reaches only what the configuration names: the
// engine DOCKER_HOST names, the configured listen address (bound, never dialled), the chain's
// URL and the database DSN. Nothing is scanned.
package doctor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/computehorde/horde/internal/chain"
	"github.com/computehorde/horde/internal/chain/backend"
	"github.com/computehorde/horde/internal/gpu"
	"github.com/computehorde/horde/internal/keys"
	"github.com/computehorde/horde/internal/store"
	"github.com/docker/docker/client"
)

// Status is a check's outcome.
type Status int

// The outcomes, from best to worst. Skipped means the check does not apply (to the role, or
// because an earlier check failed).
const (
	OK Status = iota
	Skipped
	Warn
	Fail
)

func (s Status) String() string {
	switch s {
	case OK:
		return "ok"
	case Skipped:
		return "skip"
	case Warn:
		return "WARN"
	case Fail:
		return "FAIL"
	}
	return fmt.Sprintf("Status(%d)", int(s))
}

// Result is one check's line in the report.
type Result struct {
	Name   string
	Status Status
	// Found says what the check saw.
	Found string
	// Fix is, for a warning or a failure, the command to run or the configuration key to
	// change.
	Fix string
}

// Role is the role a machine is checked for.
type Role string

// The roles.
const (
	Miner       Role = "miner"
	Validator   Role = "validator"
	Facilitator Role = "facilitator"
)

// Target is what the checks look at, taken from the role's configuration by the caller (the
// roles' configurations differ; the checks do not).
type Target struct {
	Role Role
	// ConfigFile is the configuration file ("" when none was given); ConfigErr is why it did
	// not load or validate. When Parsed is false the file could not be read at all, and the
	// checks that need the configuration are skipped rather than run on defaults the operator
	// never chose.
	ConfigFile string
	ConfigErr  error
	Parsed     bool
	// EnvPrefix is the role's environment prefix, for fixes that name a variable.
	EnvPrefix string

	// ListenKey is the configuration key of Listen ("listen", "api_listen").
	ListenKey, Listen string
	// StatusSocket is the running role's status socket, which tells a port held by this role
	// from one held by another process; "" when the role has none.
	StatusSocket string

	WalletPath, WalletName, HotkeyName string

	Chain backend.Table
	// ChainOptional is set for roles that run without a chain when [chain] url is empty (the
	// facilitator); others run an embedded simulated chain then.
	ChainOptional bool
	// NeedRegistration is set for roles whose hotkey must be registered on the netuid.
	NeedRegistration bool
	// ExternalAddress is the miner's configured axon; "" skips the axon check.
	ExternalAddress string

	// NeedDocker is set for roles that run containers on the local engine (the miner).
	NeedDocker bool
	// DockerHosts are the engines the miner's docker manager starts executors on.
	DockerHosts []DockerHost
	// GPUClasses are the configured executor classes that need a GPU on this machine.
	GPUClasses []string

	DSN string
}

// DockerHost is one engine of the miner's docker manager, as [[executors.hosts]] names it.
type DockerHost struct {
	Name, Endpoint         string
	TLSCA, TLSCert, TLSKey string
}

// Engine is what the checks learn from the Docker engine.
type Engine struct {
	Host       string
	Version    string
	APIVersion string
	OS         string
	Runtimes   []string
}

// Options are the checks' dependencies; the zero value checks the real machine.
type Options struct {
	// Logger receives the chain's and the database's events; nil discards them.
	Logger *slog.Logger
	// Timeout bounds each check; 0 means DefaultTimeout.
	Timeout time.Duration
	// Engine asks the Docker engine for its version and runtimes; nil means the engine the
	// environment names (DOCKER_HOST, default unix:///var/run/docker.sock).
	Engine func(ctx context.Context) (Engine, error)
	// HostEngine does the same for one docker manager host; nil means dialling its endpoint.
	HostEngine func(ctx context.Context, h DockerHost) (Engine, error)
	// GPUs finds GPUs and the toolkit; nil means nvidia-smi and nvidia-container-toolkit on
	// PATH.
	GPUs gpu.Detector
}

// DefaultTimeout bounds one check: long enough for a loaded engine or a slow chain server to
// answer, short enough that a dead one does not hold the report up.
const DefaultTimeout = 10 * time.Second

// run carries what later checks need from earlier ones.
type run struct {
	t   Target
	o   Options
	log *slog.Logger

	engine    *Engine
	engineErr error
	gpus      []gpu.GPU
	hotkey    *keys.Keypair
	chain     *backend.Opened
	neuron    *chain.Neuron
}

// Run runs every check in order and returns one result per check.
func Run(ctx context.Context, t Target, o Options) []Result {
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.Engine == nil {
		o.Engine = LocalEngine
	}
	if o.HostEngine == nil {
		o.HostEngine = HostEngine
	}
	if o.GPUs == nil {
		o.GPUs = gpu.NvidiaSMI{Timeout: o.Timeout}
	}
	r := &run{t: t, o: o, log: o.Logger}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	checks := []struct {
		name string
		f    func(context.Context) Result
	}{
		{"config", r.config},
		{"docker engine", r.docker},
		{"docker hosts", r.dockerHosts},
		{"gpus", r.gpuCheck},
		{"nvidia toolkit", r.toolkit},
		{"listen port", r.port},
		{"hotkey", r.hotkeyCheck},
		{"chain", r.chainCheck},
		{"registration", r.registration},
		{"axon", r.axon},
		{"database", r.database},
	}
	out := make([]Result, 0, len(checks))
	for _, c := range checks {
		cctx, cancel := context.WithTimeout(ctx, o.Timeout)
		res := c.f(cctx)
		if res.Status != OK && res.Status != Skipped && cctx.Err() != nil && ctx.Err() == nil {
			res.Found += fmt.Sprintf(" (gave up after %s)", o.Timeout)
		}
		cancel()
		res.Name = c.name
		out = append(out, res)
	}
	return out
}

// Failed reports whether any check failed.
func Failed(rs []Result) bool {
	return slices.ContainsFunc(rs, func(r Result) bool { return r.Status == Fail })
}

// Write prints the results as a table, one line per check, each fix on the line below it.
func Write(w io.Writer, rs []Result) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "CHECK\tSTATUS\tFOUND")
	var fails, warns int
	for _, r := range rs {
		lines := strings.Split(r.Found, "\n")
		fmt.Fprintf(tw, "%s\t%s\t%s\n", r.Name, r.Status, lines[0])
		for _, l := range lines[1:] {
			fmt.Fprintf(tw, "\t\t%s\n", l)
		}
		if r.Fix != "" {
			fmt.Fprintf(tw, "\t\tfix: %s\n", r.Fix)
		}
		switch r.Status {
		case Fail:
			fails++
		case Warn:
			warns++
		}
	}
	switch {
	case fails > 0:
		fmt.Fprintf(tw, "\n%d failed, %s: fix the failures before starting the role.\n", fails, plural(warns, "warning"))
	case warns > 0:
		fmt.Fprintf(tw, "\nno failures, %s.\n", plural(warns, "warning"))
	default:
		fmt.Fprintln(tw, "\nall checks passed.")
	}
	return tw.Flush()
}

func ok(format string, args ...any) Result {
	return Result{Status: OK, Found: fmt.Sprintf(format, args...)}
}

func skip(format string, args ...any) Result {
	return Result{Status: Skipped, Found: fmt.Sprintf(format, args...)}
}

func warn(fix, format string, args ...any) Result {
	return Result{Status: Warn, Found: fmt.Sprintf(format, args...), Fix: fix}
}

func fail(fix, format string, args ...any) Result {
	return Result{Status: Fail, Found: fmt.Sprintf(format, args...), Fix: fix}
}

// needConfig is the result of a check that cannot run without the configuration.
func (r *run) needConfig() (Result, bool) {
	if !r.t.Parsed {
		return skip("the configuration did not load"), false
	}
	return Result{}, true
}

func (r *run) config(context.Context) Result {
	if r.t.ConfigErr == nil {
		if r.t.ConfigFile == "" {
			return ok("no --config: the defaults and $%s_* are valid", r.t.EnvPrefix)
		}
		return ok("%s loads and every key is valid", r.t.ConfigFile)
	}
	where := "in " + r.t.ConfigFile
	if r.t.ConfigFile == "" {
		where = "in a file passed with --config"
	}
	fix := fmt.Sprintf("set the keys named above %s (examples/%s.toml documents each; $%s_<TABLE>_<KEY> overrides one)",
		where, r.t.Role, r.t.EnvPrefix)
	return fail(fix, "%s", strings.TrimSpace(r.t.ConfigErr.Error()))
}

// LocalEngine asks the engine the environment names (DOCKER_HOST, DOCKER_CERT_PATH, …) for its
// version and runtimes, as the miner's executors reach it.
func LocalEngine(ctx context.Context) (Engine, error) {
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return Engine{}, fmt.Errorf("client from the environment (DOCKER_HOST, DOCKER_CERT_PATH): %w", err)
	}
	return engineInfo(ctx, cli)
}

// HostEngine asks a docker manager host's engine, reached as the miner reaches it, for its
// version and runtimes.
func HostEngine(ctx context.Context, h DockerHost) (Engine, error) {
	opts := []client.Opt{client.WithHost(h.Endpoint), client.WithAPIVersionNegotiation()}
	if h.TLSCA != "" || h.TLSCert != "" || h.TLSKey != "" {
		opts = append(opts, client.WithTLSClientConfig(h.TLSCA, h.TLSCert, h.TLSKey))
	}
	cli, err := client.NewClientWithOpts(opts...)
	if err != nil {
		return Engine{Host: h.Endpoint}, err
	}
	return engineInfo(ctx, cli)
}

// engineInfo asks cli's engine for its version and runtimes, and closes cli.
func engineInfo(ctx context.Context, cli *client.Client) (Engine, error) {
	defer cli.Close()
	e := Engine{Host: cli.DaemonHost()}
	info, err := cli.Info(ctx)
	if err != nil {
		return e, err
	}
	e.Version, e.OS = info.ServerVersion, info.OperatingSystem
	e.APIVersion = cli.ClientVersion()
	e.Runtimes = slices.Sorted(maps.Keys(info.Runtimes))
	return e, nil
}

func (r *run) docker(ctx context.Context) Result {
	if !r.t.NeedDocker {
		return skip("the %s runs no containers", r.t.Role)
	}
	e, err := r.o.Engine(ctx)
	if err != nil {
		r.engineErr = err
		host := e.Host
		if host == "" {
			host = "the engine DOCKER_HOST names"
		}
		fix := "install Docker Engine (https://docs.docker.com/engine/install/) and start it (`sudo systemctl start docker`), " +
			"or set DOCKER_HOST to a running engine (e.g. unix:///var/run/docker.sock)"
		if strings.Contains(err.Error(), "permission denied") {
			fix = "give this user the engine's socket: `sudo usermod -aG docker $USER` and log in again (or run as a user in the docker group)"
		}
		return fail(fix, "not reachable at %s: %v", host, err)
	}
	r.engine = &e
	return ok("Docker %s (API %s, %s) at %s", e.Version, e.APIVersion, orUnknown(e.OS), e.Host)
}

func (r *run) dockerHosts(ctx context.Context) Result {
	switch {
	case r.t.Role != Miner:
		return skip("the %s runs no executors", r.t.Role)
	case len(r.t.DockerHosts) == 0:
		return skip("no [[executors.hosts]]: executors run on this machine's engine")
	}
	var lines []string
	failed := false
	for _, h := range r.t.DockerHosts {
		e, err := r.o.HostEngine(ctx, h)
		if err != nil {
			failed = true
			lines = append(lines, fmt.Sprintf("%s (%s): not reachable: %v", h.Name, h.Endpoint, err))
			continue
		}
		gpuRuntime := "no nvidia runtime"
		if slices.Contains(e.Runtimes, "nvidia") {
			gpuRuntime = "nvidia runtime"
		}
		lines = append(lines, fmt.Sprintf("%s: Docker %s at %s, %s", h.Name, e.Version, h.Endpoint, gpuRuntime))
	}
	if failed {
		return fail("start the engines named above, or correct their executors.hosts endpoint and tls_ca, tls_cert, tls_key "+
			"(a tcp:// engine needs TLS: https://docs.docker.com/engine/security/protect-access/)", "%s", strings.Join(lines, "\n"))
	}
	return ok("%s", strings.Join(lines, "\n"))
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown OS"
	}
	return s
}

func (r *run) gpuCheck(ctx context.Context) Result {
	if r.t.Role != Miner {
		return skip("the %s runs no executors", r.t.Role)
	}
	gs, err := r.o.GPUs.GPUs(ctx)
	if err != nil {
		return fail("make `nvidia-smi` list the GPUs (install or repair the NVIDIA driver), or offer CPU classes only",
			"nvidia-smi failed: %v", err)
	}
	r.gpus = gs
	if len(gs) == 0 {
		if len(r.t.GPUClasses) > 0 {
			return warn("install the NVIDIA driver, or drop the GPU classes from [executors] classes",
				"no NVIDIA GPU found (no nvidia-smi on PATH), but classes %s need one; CPU classes still work", strings.Join(r.t.GPUClasses, ", "))
		}
		return warn("none needed for CPU classes; install the NVIDIA driver to offer GPU classes",
			"no NVIDIA GPU found (no nvidia-smi on PATH): only CPU classes can run here")
	}
	var names []string
	for _, g := range gs {
		names = append(names, fmt.Sprintf("%s %d MiB", g.Name, g.MemoryMiB))
	}
	return ok("%d: %s (driver %s)", len(gs), strings.Join(names, ", "), gs[0].Driver)
}

const toolkitFix = "install the NVIDIA Container Toolkit (https://docs.nvidia.com/datacenter/cloud-native/container-toolkit/latest/install-guide.html), " +
	"then `sudo nvidia-ctk runtime configure --runtime=docker && sudo systemctl restart docker`"

func (r *run) toolkit(ctx context.Context) Result {
	switch {
	case r.t.Role != Miner:
		return skip("the %s runs no executors", r.t.Role)
	case len(r.gpus) == 0:
		return skip("no GPUs to hand to containers")
	}
	v, err := r.o.GPUs.ToolkitVersion(ctx)
	if err != nil {
		return fail(toolkitFix, "%v", err)
	}
	if err := gpu.CheckToolkit(v); err != nil {
		return fail("upgrade the NVIDIA Container Toolkit to "+gpu.MinToolkitVersion+" or later", "%v", err)
	}
	if r.engine == nil {
		return fail("fix the docker engine first", "toolkit %s; the engine's runtimes are unknown: the engine did not answer", v)
	}
	if !slices.Contains(r.engine.Runtimes, "nvidia") {
		return fail("`sudo nvidia-ctk runtime configure --runtime=docker && sudo systemctl restart docker`",
			"toolkit %s, but the engine has no nvidia runtime (runtimes: %s)", v, strings.Join(r.engine.Runtimes, ", "))
	}
	return ok("toolkit %s; the engine has the nvidia runtime", v)
}

func (r *run) port(context.Context) Result {
	if res, ok := r.needConfig(); !ok {
		return res
	}
	ap, err := netip.ParseAddrPort(r.t.Listen)
	if err != nil {
		return skip("%s %q is not IP:PORT (see config)", r.t.ListenKey, r.t.Listen)
	}
	// Binding, not dialling: it proves the role can listen there and sends nothing anywhere.
	ln, err := net.Listen("tcp", ap.String())
	if err == nil {
		ln.Close()
		return ok("%s %s is free", r.t.ListenKey, ap)
	}
	change := fmt.Sprintf("set %s to a free IP:PORT", r.t.ListenKey)
	switch {
	case errors.Is(err, syscall.EADDRINUSE):
		if r.t.StatusSocket != "" && answers(r.t.StatusSocket) {
			return ok("%s %s is served by the running %s (its status socket %s answers)", r.t.ListenKey, ap, r.t.Role, r.t.StatusSocket)
		}
		return fail(fmt.Sprintf("stop the process holding it (`ss -ltnp 'sport = :%d'` names it), or %s", ap.Port(), change),
			"%s %s is in use by another process", r.t.ListenKey, ap)
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return fail(fmt.Sprintf("use an address of this machine, or 0.0.0.0:%d for all of them", ap.Port()),
			"%s %s: %s is not an address of this machine", r.t.ListenKey, ap, ap.Addr())
	case errors.Is(err, syscall.EACCES):
		return fail(fmt.Sprintf("use a port from 1024 up, or grant the binary CAP_NET_BIND_SERVICE (`sudo setcap cap_net_bind_service=+ep $(command -v horde)`); or %s", change),
			"%s %s: not allowed to bind it", r.t.ListenKey, ap)
	}
	return fail(change, "%s %s: %v", r.t.ListenKey, ap, err)
}

// answers reports whether a process listens on the unix socket at path.
func answers(path string) bool {
	c, err := net.DialTimeout("unix", path, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

func (r *run) walletNewFix() string {
	return fmt.Sprintf("`horde wallet new --wallet-path %s --wallet %s --hotkey %s`, or import the existing key from its "+
		"mnemonic (`horde wallet import` with the same flags), or point --wallet-path/--wallet/--hotkey at it",
		r.t.WalletPath, r.t.WalletName, r.t.HotkeyName)
}

func (r *run) hotkeyCheck(context.Context) Result {
	if res, ok := r.needConfig(); !ok {
		return res
	}
	path, err := keys.HotkeyPath(r.t.WalletPath, r.t.WalletName, r.t.HotkeyName)
	if err != nil {
		return fail("set [wallet] path, name and hotkey (or --wallet-path, --wallet, --hotkey)", "%v", err)
	}
	kp, err := keys.LoadHotkeyFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fail(r.walletNewFix(), "no hotkey file at %s (wallet %q, hotkey %q)", path, r.t.WalletName, r.t.HotkeyName)
	case errors.Is(err, fs.ErrPermission):
		return fail(fmt.Sprintf("run as the file's owner, or `chmod 600 %s` as it", path), "%v", err)
	case err != nil:
		return fail("replace it with a valid bittensor hotkey file: "+r.walletNewFix(), "%v", err)
	}
	r.hotkey = kp
	return ok("%s (%s)", kp.SS58(), path)
}

func (r *run) chainCheck(ctx context.Context) Result {
	if res, ok := r.needConfig(); !ok {
		return res
	}
	s := r.t.Chain.Settings()
	if s.URL == "" {
		if r.t.ChainOptional {
			return skip("[chain] url is not set: the %s runs without a chain", r.t.Role)
		}
		return ok("embedded simulated chain, netuid %d: nothing to reach (set [chain] url to join a shared one)", s.NetUID)
	}
	var hk chain.Hotkey
	if r.hotkey != nil {
		hk = chain.Hotkey(r.hotkey.SS58())
	}
	fix := fmt.Sprintf("start the chain server at [chain] url, or correct url, identity and token ($%s_CHAIN_TOKEN)", r.t.EnvPrefix)
	op, err := backend.Open(ctx, s, backend.Options{Hotkey: hk, Logger: r.log})
	if err != nil {
		return fail(fix, "%s: %v", s, err)
	}
	head, err := op.Chain.Head(ctx)
	if err != nil {
		return fail(fix, "%s: %v", s, err)
	}
	r.chain = op
	return ok("%s: head block %d", s, head.Number)
}

func (r *run) registration(ctx context.Context) Result {
	switch {
	case !r.t.NeedRegistration:
		return skip("the %s needs no registration", r.t.Role)
	case r.t.Parsed && r.t.Chain.URL == "":
		return skip("the embedded simulated chain has no registrations to check")
	case r.hotkey == nil:
		return skip("no hotkey to look up")
	case r.chain == nil:
		return skip("the chain did not answer")
	}
	hk := chain.Hotkey(r.hotkey.SS58())
	mg, err := r.chain.Chain.Metagraph(ctx, r.chain.NetUID, 0)
	if err != nil {
		return fail("check the chain server (see the chain check)", "metagraph of netuid %d: %v", r.chain.NetUID, err)
	}
	n, found := mg.ByHotkey(hk)
	if !found {
		return fail(fmt.Sprintf("`btcli subnet register --netuid %d --wallet.name %s --wallet.hotkey %s`", r.chain.NetUID, r.t.WalletName, r.t.HotkeyName),
			"%s is not registered on netuid %d (block %d)", hk, r.chain.NetUID, mg.Block.Number)
	}
	r.neuron = &n
	found2 := fmt.Sprintf("uid %d on netuid %d, stake %.3f", n.UID, r.chain.NetUID, float64(n.Stake)/1e9)
	if r.t.Role == Validator && !n.ValidatorPermit {
		return warn("stake more on the hotkey: the top validators by stake get a permit at each epoch",
			"%s, but no validator permit: its weights do not count", found2)
	}
	return ok("%s", found2)
}

func (r *run) axon(context.Context) Result {
	switch {
	case r.t.Role != Miner:
		return skip("only miners announce an axon")
	case !r.t.Parsed:
		return skip("the configuration did not load")
	case r.t.ExternalAddress == "":
		return skip("external_address is not set: the miner does not check its axon")
	case r.t.Chain.URL == "":
		return skip("the embedded simulated chain is private to the miner")
	case r.neuron == nil:
		return skip("the hotkey's neuron was not found")
	}
	want, err := netip.ParseAddrPort(r.t.ExternalAddress)
	if err != nil {
		return skip("external_address %q is not IP:PORT (see config)", r.t.ExternalAddress)
	}
	fix := fmt.Sprintf("the miner announces it when it starts, where the chain backend can; else `btcli axon set --netuid %d --wallet.name %s --wallet.hotkey %s --ip %s --port %d`, or correct external_address",
		r.chain.NetUID, r.t.WalletName, r.t.HotkeyName, want.Addr(), want.Port())
	a := r.neuron.Axon
	if !a.IsServing() {
		return warn(fix, "no axon on chain; validators cannot find the miner at %s", want)
	}
	if a.AddrPort() != want {
		return warn(fix, "the axon on chain is %s, external_address is %s: validators dial the former", a.AddrPort(), want)
	}
	return ok("the axon on chain is %s, as configured", want)
}

func (r *run) database(ctx context.Context) Result {
	if res, ok := r.needConfig(); !ok {
		return res
	}
	fix := "set database (or data_dir) to a writable SQLite path or a PostgreSQL DSN that connects, e.g. postgres://user:password@host:5432/horde"
	if path, isFile := sqliteFile(r.t.DSN); isFile {
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			// A database that is not there yet is created by the role; the doctor only
			// proves it can be, and leaves nothing behind.
			dir, err := writableAncestor(filepath.Dir(path))
			if err != nil {
				return fail(fix, "%s cannot be created: %v", path, err)
			}
			return ok("sqlite:%s does not exist yet; the %s creates it (%s is writable)", path, r.t.Role, dir)
		}
	}
	// An existing database (or a server) is opened as the role opens it, pending migrations
	// included: the one test that proves the role will start on it.
	db, err := store.Open(ctx, store.Config{DSN: r.t.DSN, Logger: r.log})
	if err != nil {
		return fail(fix, "%v", err)
	}
	dialect := db.Dialect()
	db.Close()
	return ok("%s opens (%s)", redact(r.t.DSN), dialect)
}

// sqliteFile returns the file a SQLite DSN names, as the store reads DSNs: "sqlite:PATH",
// "sqlite:///PATH" or a bare path.
func sqliteFile(dsn string) (string, bool) {
	s := strings.TrimSpace(dsn)
	lower := strings.ToLower(s)
	switch {
	case s == "", s == ":memory:", lower == "sqlite::memory:":
		return "", false
	case strings.HasPrefix(lower, "sqlite:"):
		p := strings.TrimPrefix(s[len("sqlite:"):], "//")
		return p, p != ""
	case strings.Contains(s, "://"):
		return "", false
	}
	return s, true
}

// writableAncestor returns the nearest existing directory at or above dir, after proving a file
// can be created in it (and removing the file).
func writableAncestor(dir string) (string, error) {
	for {
		st, err := os.Stat(dir)
		if err == nil {
			if !st.IsDir() {
				return "", fmt.Errorf("%s is not a directory", dir)
			}
			f, err := os.CreateTemp(dir, ".horde-doctor-*")
			if err != nil {
				return "", err
			}
			f.Close()
			return dir, os.Remove(f.Name())
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", err
		}
		dir = parent
	}
}

// redact keeps a DSN's password out of the report: a URL keeps its scheme, host and database,
// losing its user information and its query (where password= may be).
func redact(dsn string) string {
	scheme, rest, isURL := strings.Cut(dsn, "://")
	if !isURL {
		return dsn
	}
	rest, _, _ = strings.Cut(rest, "?")
	if j := strings.LastIndex(rest, "@"); j >= 0 {
		rest = "…@" + rest[j+1:]
	}
	return scheme + "://" + rest
}

// plural is "1 warning", "2 warnings".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
