package faults

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/docker/docker/client"

	"github.com/computehorde/horde/internal/facilitatord"
	"github.com/computehorde/horde/internal/jobimage"
	"github.com/computehorde/horde/internal/keys"
	"github.com/computehorde/horde/internal/minerd"
)

const (
	// LabelRun is on every container, network and image a harness creates; its value is the
	// run's ID.
	LabelRun = "horde.faults"
	// dirPrefix starts each run's directory under os.TempDir(); a run holds an exclusive lock
	// on the file "lock" inside it while it lives.
	dirPrefix = "horde-faults-"
	// Price is the facilitator's price of always_on.test, micro-credits per second.
	Price = 1000
	// Grant is each user's starting balance, micro-credits.
	Grant = 100_000_000
	// Class is the executor class every job uses.
	Class = "always_on.test"

	chainPort       = 8000
	minerPort       = 8000
	facilitatorPort = 8200
	stake           = 10_000_000_000_000 // rao: 10,000 TAO, above miners' 1,000 TAO minimum
)

// Config configures a harness.
type Config struct {
	// Horde is a static horde executable (CGO_ENABLED=0) the role image is assembled from.
	Horde string
	// JobImage is the image of user jobs (the hello job), already on the engine; empty means
	// the role image (then set JobArgs).
	JobImage string
	// JobArgs come before each job's own arguments: empty for the hello image, and
	// ["__job", "hello"] when JobImage is the role image (the horde binary runs the hello job
	// as a hidden sub-command).
	JobArgs []string
	// PostgresDSN, when set, returns a DSN of a new empty database or schema on a server the
	// host reaches at a loopback or host address; it is called for the facilitator and for
	// the first validator. Nil keeps every role on SQLite.
	PostgresDSN func(role string) (string, error)
	// Validators and Miners are how many of each run (default 2 and 3).
	Validators, Miners int
	// Executors is how many always_on.test executors each miner offers (default 2).
	Executors int
	// Logf receives progress lines (default: none).
	Logf func(format string, args ...any)
}

// Role is one container of the subnet.
type Role struct {
	Name      string // chain, facilitator, validator-1, miner-2, …
	Kind      string // chain, facilitator, validator, miner
	IP        string
	Container string
	Dir       string // bind-mounted at the same path; holds config, wallets and data
	Config    string // path of its configuration file
	DSN       string // the PostgreSQL DSN as the host reaches it; empty for SQLite
	Hotkey    *keys.Keypair
	args      []string
	env       []string
	mounts    []string
}

// Harness is a running subnet of containers.
type Harness struct {
	cfg       Config
	RunID     string
	Dir       string
	Network   string
	Subnet    string
	Gateway   string
	Image     string // role image
	ExecImage string // miners' executor image
	Roles     []*Role
	Users     []*keys.Keypair

	lock   *os.File
	engine *client.Client

	mu          sync.Mutex
	partitioned map[string]bool
	stopped     map[string]bool
	outages     []outage
	cuts        map[string]*cut  // cutKey → the partition between two roles
	slowed      map[string]*slow // role → its slowed link
	// Why link faults cannot be injected here (empty: they can), and whether netem can;
	// without it, whether an NFQUEUE the harness holds can delay packets instead.
	noCut, noSlow, noNetem string
	netem, nfqueue         bool
	engineProxy            *engineProxy // EngineTarget's engine
	engineBroken           bool
	chainHead              uint64 // the highest head the harness saw before the chain was last killed
	chainKilled            time.Time
	weights                weightsLog
	closers                []func() error
}

// outage is a stretch of time in which a role was stopped or cut off the network (to zero
// while it lasts). Role is a role's name, or "a~b" for a partition between two roles.
type outage struct {
	Role     string
	From, To time.Time
}

// markDown opens an outage of role, unless one is open.
func (h *Harness) markDown(role string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, o := range h.outages {
		if o.Role == role && o.To.IsZero() {
			return
		}
	}
	h.outages = append(h.outages, outage{Role: role, From: time.Now()})
}

// markUp closes role's open outage.
func (h *Harness) markUp(role string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for i := range h.outages {
		if h.outages[i].Role == role && h.outages[i].To.IsZero() {
			h.outages[i].To = time.Now()
		}
	}
}

// Outages returns the outages so far, open ones with To zero.
func (h *Harness) Outages() []outage {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.outages)
}

func (h *Harness) logf(format string, args ...any) {
	if h.cfg.Logf != nil {
		h.cfg.Logf(format, args...)
	}
}

// Role returns the role called name, or nil.
func (h *Harness) Role(name string) *Role {
	for _, r := range h.Roles {
		if r.Name == name {
			return r
		}
	}
	return nil
}

// RolesOf returns the roles of kind.
func (h *Harness) RolesOf(kind string) []*Role {
	var out []*Role
	for _, r := range h.Roles {
		if r.Kind == kind {
			out = append(out, r)
		}
	}
	return out
}

// FacilitatorURL is the facilitator's API as the host reaches it.
func (h *Harness) FacilitatorURL() string {
	return fmt.Sprintf("http://%s:%d", h.Role("facilitator").IP, facilitatorPort)
}

// Start creates the network and the images, starts every role and waits until the
// validators hear from every miner. On error the harness is closed before Start returns.
func Start(ctx context.Context, cfg Config) (h *Harness, err error) {
	if cfg.Validators == 0 {
		cfg.Validators = 2
	}
	if cfg.Miners == 0 {
		cfg.Miners = 3
	}
	if cfg.Executors == 0 {
		cfg.Executors = 2
	}
	if _, err := jobimage.CheckStatic(cfg.Horde); err != nil {
		return nil, fmt.Errorf("faults: the horde binary must be static (CGO_ENABLED=0): %w", err)
	}
	sweepLeftovers(ctx, cfg.Logf)

	var id [4]byte
	_, _ = rand.Read(id[:])
	h = &Harness{cfg: cfg, RunID: hex.EncodeToString(id[:]), partitioned: map[string]bool{}, stopped: map[string]bool{},
		cuts: map[string]*cut{}, slowed: map[string]*slow{}}
	defer func() {
		if err != nil {
			_ = h.Close()
			h = nil
		}
	}()
	h.Dir = filepath.Join(os.TempDir(), dirPrefix+h.RunID)
	if err := os.MkdirAll(h.Dir, 0o755); err != nil {
		return h, err
	}
	h.closers = append(h.closers, func() error { return os.RemoveAll(h.Dir) })
	if h.lock, err = os.OpenFile(filepath.Join(h.Dir, "lock"), os.O_CREATE|os.O_RDWR, 0o600); err != nil {
		return h, err
	}
	if err := syscall.Flock(int(h.lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		return h, err
	}
	if h.engine, err = client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation()); err != nil {
		return h, err
	}
	if err := h.createNetwork(ctx); err != nil {
		return h, err
	}
	if err := h.buildImages(ctx); err != nil {
		return h, err
	}
	h.closers = append(h.closers, h.removeContainers)
	if err := h.layout(); err != nil {
		return h, err
	}
	for _, r := range h.Roles {
		if r.Kind == "validator" || r.Kind == "facilitator" {
			continue
		}
		if err := h.create(ctx, r); err != nil {
			return h, err
		}
	}
	// The facilitator before the validators, which dial it; then the users' credits.
	if err := h.create(ctx, h.Role("facilitator")); err != nil {
		return h, err
	}
	if err := h.waitHTTP(ctx, h.FacilitatorURL()+"/", time.Minute); err != nil {
		return h, fmt.Errorf("faults: the facilitator: %w\n%s", err, h.Logs(h.Role("facilitator"), 40))
	}
	if err := h.grant(ctx); err != nil {
		return h, err
	}
	for _, r := range h.RolesOf("validator") {
		if err := h.create(ctx, r); err != nil {
			return h, err
		}
	}
	if err := h.WaitReady(ctx, 2*time.Minute); err != nil {
		return h, err
	}
	h.probeLinks(ctx)
	wctx, stopWatch := context.WithCancel(context.Background())
	var watch sync.WaitGroup
	watch.Go(func() { h.watchWeights(wctx) })
	h.closers = append(h.closers, func() error { stopWatch(); watch.Wait(); return nil })
	return h, nil
}

// Close removes everything the harness created: containers (roles, and the miners'
// executors and jobs), the network, the images, the relay and the run's directory.
func (h *Harness) Close() error {
	h.mu.Lock()
	for _, s := range h.slowed {
		if s.queue != nil {
			s.queue.close() // its goroutines are the harness's own
		}
	}
	h.mu.Unlock()
	var errs []error
	for i := len(h.closers) - 1; i >= 0; i-- {
		if err := h.closers[i](); err != nil {
			errs = append(errs, err)
		}
	}
	h.closers = nil
	if h.engine != nil {
		h.engine.Close()
	}
	if h.lock != nil {
		h.lock.Close()
	}
	return errors.Join(errs...)
}

// docker runs the docker CLI and returns its trimmed standard output.
func docker(ctx context.Context, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "docker", args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("docker %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(stdout.String()), nil
}

// createNetwork makes the run's bridge network with a subnet of its own, so that roles keep
// their addresses across restarts and reconnections (--ip needs a user-configured subnet).
func (h *Harness) createNetwork(ctx context.Context) error {
	h.Network = "horde-faults-" + h.RunID
	var last error
	for range 20 {
		var b [2]byte
		_, _ = rand.Read(b[:])
		subnet := fmt.Sprintf("10.%d.%d.0/24", 100+int(b[0])%100, b[1])
		_, err := docker(ctx, "network", "create", "--label", LabelRun+"="+h.RunID, "--subnet", subnet, h.Network)
		if err == nil {
			h.Subnet = subnet
			h.Gateway = strings.TrimSuffix(subnet, "0/24") + "1"
			h.closers = append(h.closers, func() error {
				_, err := docker(context.Background(), "network", "rm", h.Network)
				return err
			})
			return nil
		}
		last = err
		if !strings.Contains(err.Error(), "overlap") {
			break
		}
	}
	return fmt.Errorf("faults: create the network: %w", last)
}

func (h *Harness) ip(host int) string { return strings.TrimSuffix(h.Subnet, "0/24") + fmt.Sprint(host) }

// buildImages assembles the role image (entrypoint /bin/horde) and the miners' executor image
// (entrypoint `horde executor serve`) from the horde binary, both labelled with the run.
func (h *Harness) buildImages(ctx context.Context) error {
	h.Image = "horde-faults/horde:" + h.RunID
	h.ExecImage = "horde-faults/executor:" + h.RunID
	labels := map[string]string{LabelRun: h.RunID}
	for _, s := range []jobimage.Spec{
		{Tag: h.Image, Binary: h.cfg.Horde, Labels: labels},
		{Tag: h.ExecImage, Binary: h.cfg.Horde, Labels: labels, Entrypoint: []string{"/bin/" + filepath.Base(h.cfg.Horde), "executor", "serve"}},
	} {
		if _, err := jobimage.Assemble(ctx, h.engine, s); err != nil {
			return err
		}
		tag := s.Tag
		h.closers = append(h.closers, func() error {
			_, err := docker(context.Background(), "image", "rm", tag)
			return err
		})
	}
	return nil
}

// token is a role's chain identity token.
func token(name string) string { return name + "-token" }

// layout decides every role's address, keys and files and writes them.
func (h *Harness) layout() error {
	chain := &Role{Name: "chain", Kind: "chain", IP: h.ip(10)}
	fac := &Role{Name: "facilitator", Kind: "facilitator", IP: h.ip(11)}
	h.Roles = append(h.Roles, chain, fac)
	for i := range h.cfg.Validators {
		h.Roles = append(h.Roles, &Role{Name: fmt.Sprintf("validator-%d", i+1), Kind: "validator", IP: h.ip(20 + i)})
	}
	for i := range h.cfg.Miners {
		h.Roles = append(h.Roles, &Role{Name: fmt.Sprintf("miner-%d", i+1), Kind: "miner", IP: h.ip(40 + i)})
	}
	for _, r := range h.Roles {
		r.Container = "horde-faults-" + h.RunID + "-" + r.Name
		r.Dir = filepath.Join(h.Dir, r.Name)
		if err := os.MkdirAll(filepath.Join(r.Dir, "data"), 0o755); err != nil {
			return err
		}
		r.mounts = []string{r.Dir + ":" + r.Dir}
		var err error
		if r.Hotkey, err = keys.FromURI("//HordeFaults/" + r.Name); err != nil {
			return err
		}
		if r.Kind != "chain" {
			if _, err := keys.WriteHotkey(filepath.Join(r.Dir, "wallets"), r.Kind, "default", r.Hotkey, ""); err != nil {
				return err
			}
		}
	}
	for i := range 2 {
		u, err := keys.FromURI(fmt.Sprintf("//HordeFaults/user-%d", i+1))
		if err != nil {
			return err
		}
		h.Users = append(h.Users, u)
	}
	chainURL := fmt.Sprintf("http://%s:%d", chain.IP, chainPort)

	// The chain: every neuron in the genesis, so a restarted server comes back the same.
	type neuron struct {
		Hotkey  string `json:"hotkey"`
		Coldkey string `json:"coldkey"`
		Stake   uint64 `json:"stake"`
		Permit  *bool  `json:"validator_permit,omitempty"`
		Axon    *struct {
			IP   string `json:"ip"`
			Port int    `json:"port"`
		} `json:"axon,omitempty"`
	}
	yes := true
	var neurons []neuron
	var ids []map[string]string
	var validators []string
	for _, r := range h.Roles {
		switch r.Kind {
		case "validator":
			neurons = append(neurons, neuron{Hotkey: r.Hotkey.SS58(), Coldkey: r.Hotkey.SS58(), Stake: stake, Permit: &yes})
			validators = append(validators, r.Hotkey.SS58())
		case "miner":
			n := neuron{Hotkey: r.Hotkey.SS58(), Coldkey: r.Hotkey.SS58()}
			n.Axon = &struct {
				IP   string `json:"ip"`
				Port int    `json:"port"`
			}{r.IP, minerPort}
			neurons = append(neurons, n)
		default:
			continue
		}
		ids = append(ids, map[string]string{"name": r.Name, "hotkey": r.Hotkey.SS58(), "token": token(r.Name)})
	}
	genesis, err := json.MarshalIndent(map[string]any{
		"netuid": 12, "relaxed_axon_ips": true, "hyperparams": map[string]any{"tempo": 10},
		"neurons": neurons, "identities": ids, "admin_token": "admin-" + h.RunID,
	}, "", "  ")
	if err != nil {
		return err
	}
	chain.Config = filepath.Join(chain.Dir, "genesis.json")
	if err := os.WriteFile(chain.Config, genesis, 0o644); err != nil {
		return err
	}
	chain.args = []string{"chain", "sim", "--listen", fmt.Sprintf("0.0.0.0:%d", chainPort), "--genesis", chain.Config, "--block-time", "1s"}

	quote := func(ss []string) string {
		b, _ := json.Marshal(ss)
		return string(b)
	}
	if h.cfg.PostgresDSN != nil {
		for _, r := range []*Role{fac, h.Role("validator-1")} {
			if r.DSN, err = h.cfg.PostgresDSN(r.Name); err != nil {
				return err
			}
		}
	}
	database := func(r *Role) (string, error) {
		if r.DSN == "" {
			return "", nil
		}
		inner, err := h.relay(r.DSN)
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("database = %q\n", inner), nil
	}

	db, err := database(fac)
	if err != nil {
		return err
	}
	fac.Config = filepath.Join(fac.Dir, "facilitator.toml")
	fac.args = []string{"facilitator", "run", "--config", fac.Config}
	fac.env = []string{"HORDE_FACILITATOR_TOKEN_SECRET=" + strings.Repeat("f", 32)}
	if err := os.WriteFile(fac.Config, []byte(fmt.Sprintf(`listen = "0.0.0.0:%d"
data_dir = %q
%svalidators = %s
check_images = false
requeue_after = "15s"
shutdown_grace = "5s"
rate_limit = 1000.0
rate_burst = 1000
[wallet]
path = %q
name = "facilitator"
[blobs]
kind = "none"
[prices]
%q = %d
`, facilitatorPort, filepath.Join(fac.Dir, "data"), db, quote(validators), filepath.Join(fac.Dir, "wallets"), Class, Price)), 0o600); err != nil {
		return err
	}

	for _, r := range h.RolesOf("validator") {
		db, err := database(r)
		if err != nil {
			return err
		}
		r.Config = filepath.Join(r.Dir, "validator.toml")
		r.args = []string{"validator", "run", "--config", r.Config}
		r.env = []string{"HORDE_VALIDATOR_CHAIN_TOKEN=" + token(r.Name)}
		if err := os.WriteFile(r.Config, []byte(fmt.Sprintf(`api_listen = "127.0.0.1:8100"
data_dir = %q
%sshutdown_grace = "5s"
receipts_interval = "1s"
class_weights = "always_on.test=1"
allow_egress = [%q]
facilitator_url = "ws://%s:%d/ws/v0/"
[wallet]
path = %q
name = "validator"
[chain]
url = %q
identity = %q
poll_interval = "1s"
`, filepath.Join(r.Dir, "data"), db, h.Subnet, fac.IP, facilitatorPort, filepath.Join(r.Dir, "wallets"), chainURL, r.Name)), 0o600); err != nil {
			return err
		}
	}

	socket := "/var/run/docker.sock"
	if dh := os.Getenv("DOCKER_HOST"); strings.HasPrefix(dh, "unix://") {
		socket = strings.TrimPrefix(dh, "unix://")
	} else if dh != "" {
		return fmt.Errorf("faults: DOCKER_HOST=%s: miners are given the engine's unix socket, and there is none", dh)
	}
	for _, r := range h.RolesOf("miner") {
		endpoint := "unix:///var/run/docker.sock"
		if r.Name == EngineTarget {
			// This miner's engine is a proxy the harness can cut (FaultEngine), in its
			// directory, which the miner and its executors reach at the same path.
			path := filepath.Join(r.Dir, "engine.sock")
			p, err := startEngineProxy(path, socket)
			if err != nil {
				return fmt.Errorf("faults: the engine proxy of %s: %w", r.Name, err)
			}
			h.engineProxy = p
			h.closers = append(h.closers, func() error { p.close(); return nil })
			endpoint = "unix://" + path
		}
		r.Config = filepath.Join(r.Dir, "miner.toml")
		r.args = []string{"miner", "run", "--config", r.Config}
		r.env = []string{"HORDE_MINER_CHAIN_TOKEN=" + token(r.Name)}
		r.mounts = append(r.mounts, socket+":/var/run/docker.sock")
		if err := os.WriteFile(r.Config, []byte(fmt.Sprintf(`listen = "0.0.0.0:%d"
external_address = "%s:%d"
data_dir = %q
shutdown_grace = "5s"
[wallet]
path = %q
name = "miner"
[chain]
url = %q
identity = %q
[executors]
manager = "docker"
image = %q
miner_url = "ws://%s:%d"
start_timeout = "60s"
[[executors.hosts]]
name = "local"
endpoint = %q
classes = { %q = %d }
`, minerPort, r.IP, minerPort, filepath.Join(r.Dir, "data"), filepath.Join(r.Dir, "wallets"), chainURL, r.Name,
			h.ExecImage, r.IP, minerPort, endpoint, Class, h.cfg.Executors)), 0o600); err != nil {
			return err
		}
	}
	return nil
}

// ExecutorID is the label value of a miner's executor and job containers.
func (r *Role) ExecutorID() string { return minerd.ExecutorID(filepath.Join(r.Dir, "data")) }

// create creates and starts a role's container at its fixed address.
func (h *Harness) create(ctx context.Context, r *Role) error {
	args := []string{"create", "--name", r.Container, "--hostname", r.Name, "--label", LabelRun + "=" + h.RunID,
		"--network", h.Network, "--ip", r.IP}
	for _, m := range r.mounts {
		args = append(args, "-v", m)
	}
	for _, e := range r.env {
		args = append(args, "-e", e)
	}
	args = append(append(args, h.Image), r.args...)
	if _, err := docker(ctx, args...); err != nil {
		return err
	}
	if _, err := docker(ctx, "start", r.Container); err != nil {
		return err
	}
	h.logf("started %s at %s", r.Name, r.IP)
	return nil
}

// removeContainers removes the roles' containers and every executor and job container of
// the miners.
func (h *Harness) removeContainers() error {
	ctx := context.Background()
	var errs []error
	if ids, _ := docker(ctx, "ps", "-aq", "--filter", "label="+LabelRun+"="+h.RunID); ids != "" {
		if _, err := docker(ctx, append([]string{"rm", "-f", "-v"}, strings.Fields(ids)...)...); err != nil {
			errs = append(errs, err)
		}
	}
	for _, r := range h.RolesOf("miner") {
		if err := removeExecutors(ctx, r.ExecutorID()); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func removeExecutors(ctx context.Context, execID string) error {
	ids, err := docker(ctx, "ps", "-aq", "--filter", "label=horde.executor="+execID)
	if err != nil || ids == "" {
		return err
	}
	_, err = docker(ctx, append([]string{"rm", "-f", "-v"}, strings.Fields(ids)...)...)
	return err
}

// Leftovers lists the executor and job containers of the miners still on the engine.
func (h *Harness) Leftovers(ctx context.Context) ([]string, error) {
	var out []string
	for _, r := range h.RolesOf("miner") {
		names, err := docker(ctx, "ps", "-a", "--format", "{{.Names}} ({{.Status}})", "--filter", "label=horde.executor="+r.ExecutorID())
		if err != nil {
			return nil, err
		}
		if names != "" {
			out = append(out, strings.Split(names, "\n")...)
		}
	}
	return out, nil
}

// sweepLeftovers removes what runs that are gone left behind: containers, networks and
// images labelled with a run whose lock file nobody holds, and their miners' executors.
func sweepLeftovers(ctx context.Context, logf func(string, ...any)) {
	runs := map[string]bool{}
	for _, what := range [][]string{
		{"ps", "-a", "--format", `{{.Label "` + LabelRun + `"}}`, "--filter", "label=" + LabelRun},
		{"network", "ls", "--format", `{{.Label "` + LabelRun + `"}}`, "--filter", "label=" + LabelRun},
		{"image", "ls", "--format", `{{.Tag}}`, "horde-faults/horde"},
	} {
		out, _ := docker(ctx, what...)
		for _, id := range strings.Fields(out) {
			runs[id] = true
		}
	}
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), dirPrefix+"*"))
	for _, d := range dirs {
		runs[strings.TrimPrefix(filepath.Base(d), dirPrefix)] = true
	}
	for id := range runs {
		if !regexp.MustCompile(`^[0-9a-f]{8}$`).MatchString(id) {
			continue
		}
		dir := filepath.Join(os.TempDir(), dirPrefix+id)
		if f, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_RDWR, 0); err == nil {
			held := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) != nil
			f.Close()
			if held {
				continue // a live run
			}
		}
		if logf != nil {
			logf("removing the leftovers of interrupted run %s", id)
		}
		if ids, _ := docker(ctx, "ps", "-aq", "--filter", "label="+LabelRun+"="+id); ids != "" {
			_, _ = docker(ctx, append([]string{"rm", "-f", "-v"}, strings.Fields(ids)...)...)
		}
		for i := 1; i <= 9; i++ {
			_ = removeExecutors(ctx, minerd.ExecutorID(filepath.Join(dir, fmt.Sprintf("miner-%d", i), "data")))
		}
		_, _ = docker(ctx, "network", "rm", "horde-faults-"+id)
		_, _ = docker(ctx, "image", "rm", "horde-faults/horde:"+id, "horde-faults/executor:"+id)
		_ = os.RemoveAll(dir)
	}
}

// relay serves a TCP relay on the network's gateway to the PostgreSQL server of dsn and
// returns the DSN as containers use it.
func (h *Harness) relay(dsn string) (string, error) {
	u, err := url.Parse(dsn)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") || u.Host == "" {
		return "", fmt.Errorf("faults: the PostgreSQL DSN must be a postgres:// URL with a host")
	}
	target := u.Host
	if u.Port() == "" {
		target = net.JoinHostPort(u.Hostname(), "5432")
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(h.Gateway, "0"))
	if err != nil {
		return "", err
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	conns := map[net.Conn]bool{}
	track := func(c net.Conn, add bool) {
		mu.Lock()
		defer mu.Unlock()
		if add {
			conns[c] = true
		} else {
			delete(conns, c)
		}
	}
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				s, err := net.DialTimeout("tcp", target, 10*time.Second)
				if err != nil {
					return
				}
				defer s.Close()
				track(c, true)
				track(s, true)
				defer track(c, false)
				defer track(s, false)
				done := make(chan struct{}, 2)
				go func() { _, _ = io.Copy(s, c); done <- struct{}{} }()
				go func() { _, _ = io.Copy(c, s); done <- struct{}{} }()
				<-done
			})
		}
	})
	h.closers = append(h.closers, func() error {
		ln.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
		return nil
	})
	u.Host = ln.Addr().String()
	return u.String(), nil
}

// grant gives each user its starting credits, through the facilitator's database.
func (h *Harness) grant(ctx context.Context) error {
	cfg, err := facilitatord.LoadLocal(h.Role("facilitator").Config, func(string) string { return "" })
	if err != nil {
		return err
	}
	for i, u := range h.Users {
		if _, err := facilitatord.Grant(ctx, cfg, u.SS58(), Grant, fmt.Sprintf("faults-grant-%d", i)); err != nil {
			return fmt.Errorf("faults: grant: %w", err)
		}
	}
	return nil
}

// waitHTTP polls url until it answers at all.
func (h *Harness) waitHTTP(ctx context.Context, url string, within time.Duration) error {
	deadline := time.Now().Add(within)
	c := &http.Client{Timeout: 2 * time.Second}
	for {
		resp, err := c.Get(url)
		if err == nil {
			resp.Body.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not answer within %s: %w", url, within, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// minersHeard matches a miner whose honoured manifest offers something.
var minersHeard = regexp.MustCompile(`(?m)^5\S+\s+\[\{`)

// WaitReady waits until every validator honours the manifest of every miner (read through
// the validator's status socket in its bind-mounted data directory).
func (h *Harness) WaitReady(ctx context.Context, within time.Duration) error {
	deadline := time.Now().Add(within)
	want := len(h.RolesOf("miner"))
	for _, v := range h.RolesOf("validator") {
		for {
			cmd := exec.CommandContext(ctx, h.cfg.Horde, "validator", "miners", "--config", v.Config)
			out, err := cmd.CombinedOutput()
			if err == nil && len(minersHeard.FindAllString(string(out), -1)) >= want {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("faults: %s does not honour %d miners' manifests within %s: %v\n%s\n--- %s ---\n%s",
					v.Name, want, within, err, out, v.Name, h.Logs(v, 30))
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(500 * time.Millisecond):
			}
		}
	}
	return nil
}

// SaveLogs writes every role's whole output to dir (one file a role), for a failed run.
func (h *Harness) SaveLogs(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var errs []error
	for _, r := range h.Roles {
		out, _ := exec.Command("docker", "logs", "-t", r.Container).CombinedOutput()
		errs = append(errs, os.WriteFile(filepath.Join(dir, r.Name+".log"), out, 0o644))
	}
	return errors.Join(errs...)
}

// Logs returns the last n lines of a role's output.
func (h *Harness) Logs(r *Role, n int) string {
	cmd := exec.Command("docker", "logs", "--tail", fmt.Sprint(n), r.Container)
	out, _ := cmd.CombinedOutput()
	return string(out)
}

// Kill kills a role's container with SIGKILL; Restart starts it again.
func (h *Harness) Kill(ctx context.Context, r *Role) error {
	if r.Kind == "chain" {
		h.noteChainHead(ctx)
	}
	h.mu.Lock()
	h.stopped[r.Name] = true
	h.mu.Unlock()
	h.markDown(r.Name)
	switch gone, err := h.exitedOnItsOwn(ctx, r); {
	case err != nil:
		return err
	case gone != "":
		return errors.New(gone)
	}
	_, err := docker(ctx, "kill", "-s", "KILL", r.Container)
	return err
}

// exitedOnItsOwn says how r ended when its container is not running though the harness did
// not stop it ("" while it runs): a role that exits on its own is a finding.
func (h *Harness) exitedOnItsOwn(ctx context.Context, r *Role) (string, error) {
	state, err := docker(ctx, "inspect", "-f", "{{.State.Running}} {{.State.ExitCode}} {{.State.FinishedAt}}", r.Container)
	if err != nil {
		return "", err
	}
	if f := strings.Fields(state); len(f) == 3 && f[0] != "true" {
		return fmt.Sprintf("%s exited on its own with code %s at %s; its last lines:\n%s", r.Name, f[1], f[2], h.Logs(r, 15)), nil
	}
	return "", nil
}

// Exited lists the roles whose containers are not running though the harness has not
// stopped them, each with how it ended.
func (h *Harness) Exited(ctx context.Context) ([]string, error) {
	var out []string
	for _, r := range h.Roles {
		h.mu.Lock()
		stopped := h.stopped[r.Name]
		h.mu.Unlock()
		if stopped {
			continue
		}
		gone, err := h.exitedOnItsOwn(ctx, r)
		if err != nil {
			return nil, err
		}
		if gone != "" {
			out = append(out, gone)
		}
	}
	return out, nil
}

// Restart starts a killed or stopped role again (same container, address and data).
func (h *Harness) Restart(ctx context.Context, r *Role) error {
	if _, err := docker(ctx, "start", r.Container); err != nil {
		return err
	}
	if r.Kind == "chain" {
		if err := h.catchUpChain(ctx); err != nil {
			return err
		}
	}
	h.mu.Lock()
	delete(h.stopped, r.Name)
	h.mu.Unlock()
	h.markUp(r.Name)
	return nil
}

// Stop stops a role gracefully (SIGTERM, then SIGKILL after grace).
func (h *Harness) Stop(ctx context.Context, r *Role, grace time.Duration) error {
	if r.Kind == "chain" {
		h.noteChainHead(ctx)
	}
	h.mu.Lock()
	h.stopped[r.Name] = true
	h.mu.Unlock()
	h.markDown(r.Name)
	_, err := docker(ctx, "stop", "-t", fmt.Sprint(int(grace/time.Second)), r.Container)
	return err
}

// Partition cuts a role off the network (from every other role and the host's relay).
func (h *Harness) Partition(ctx context.Context, r *Role) error {
	if _, err := docker(ctx, "network", "disconnect", "--force", h.Network, r.Container); err != nil {
		return err
	}
	h.mu.Lock()
	h.partitioned[r.Name] = true
	h.mu.Unlock()
	h.markDown(r.Name)
	return nil
}

// Heal joins a partitioned role to the network again at its address.
func (h *Harness) Heal(ctx context.Context, r *Role) error {
	if _, err := docker(ctx, "network", "connect", "--ip", r.IP, h.Network, r.Container); err != nil {
		return err
	}
	h.mu.Lock()
	delete(h.partitioned, r.Name)
	h.mu.Unlock()
	h.markUp(r.Name)
	return nil
}

// HealAll joins every partitioned role again and starts every stopped one.
func (h *Harness) HealAll(ctx context.Context) error {
	h.mu.Lock()
	var parts, stops, slows []string
	var cuts []*cut
	for n := range h.partitioned {
		parts = append(parts, n)
	}
	for n := range h.stopped {
		stops = append(stops, n)
	}
	for n := range h.slowed {
		slows = append(slows, n)
	}
	for _, c := range h.cuts {
		cuts = append(cuts, c)
	}
	h.mu.Unlock()
	slices.Sort(parts)
	slices.Sort(stops)
	slices.Sort(slows)
	var errs []error
	for _, c := range cuts {
		errs = append(errs, h.Join(ctx, c.a, c.b))
	}
	for _, n := range slows {
		errs = append(errs, h.Unslow(ctx, h.Role(n)))
	}
	h.EngineResume()
	for _, n := range parts {
		errs = append(errs, h.Heal(ctx, h.Role(n)))
	}
	for _, n := range stops {
		errs = append(errs, h.Restart(ctx, h.Role(n)))
	}
	return errors.Join(errs...)
}
