package execmgr

// Docker: each executor a container on one of several Docker hosts.
//
// Security. An executor container runs `horde executor serve` with the engine's API at hand
// (its socket bind-mounted, or its TLS endpoint and client key copied in) and in the host's
// network namespace (NetworkMode "host"): it must dial the miner and, for a TCP engine, the
// engine's endpoint as the host sees them. Whoever controls an engine's API controls its host,
// so the container is no security boundary around the executor: it packages horde's own code
// and gives the miner one lifecycle handle per executor (start, kill, reap, recount). The
// untrusted code is the job, and the executor starts each job container itself with
// --network none, every capability dropped, no-new-privileges and the class's limits, exactly
// as a process executor does; nothing of the executor's own network or engine access reaches
// the job. The token travels in the container's environment, never on its command line; it
// can be read back by `docker inspect` on that engine, which again only its root can do.

import (
	"archive/tar"
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"

	"github.com/computehorde/horde/internal/enginemsg"
	jobdocker "github.com/computehorde/horde/internal/executor/docker"
	"github.com/computehorde/horde/internal/hwclass"
	"github.com/computehorde/horde/internal/jobimage"
	"github.com/computehorde/horde/internal/miner"
	"github.com/computehorde/horde/internal/protocol"
)

// Labels on every executor container the Docker manager starts. LabelExecutor is the same key
// (and value) job containers carry (docker.LabelExecutor), so the miner's start-up sweep of its
// executor ID also removes executor containers an earlier miner process left; LabelClass tells
// executor containers from job containers.
const (
	LabelExecutor      = "horde.executor"       // DockerConfig.ExecutorID
	LabelExecutorClass = "horde.executor.class" // the executor class of the slot it takes
	LabelExecutorHost  = "horde.executor.host"  // Host.Name: several hosts may share one engine
	LabelJob           = "horde.job"            // the job UUID it was started for
	// LabelExecutorSlot is the GPU slot of its class it holds (its GPUs), so that a restarted
	// miner does not hand those GPUs to another executor before the leftover is gone.
	LabelExecutorSlot = "horde.executor.slot"
)

// Defaults of DockerConfig.
const (
	DefaultPollInterval = 5 * time.Second
	DefaultPingTimeout  = 5 * time.Second
	DefaultDownAfter    = 2
	DefaultPullTimeout  = 10 * time.Minute
)

// certDir is where an executor container finds the TLS files of a TCP engine (ca.pem,
// cert.pem, key.pem, the names DOCKER_CERT_PATH wants). They are copied into the container
// before it starts, since the miner's files are not on a remote engine's host.
const certDir = "/etc/horde/docker-certs"

// innerSocket is where a unix-socket engine's socket is bind-mounted in an executor container.
const innerSocket = "/var/run/docker.sock"

// TLSFiles are the PEM files of a TLS client of a Docker engine, as for `docker --tlsverify
// --tlscacert CA --tlscert Cert --tlskey Key`.
type TLSFiles struct {
	CA, Cert, Key string
}

// Host is one Docker engine executors run on.
type Host struct {
	// Name identifies the host in logs, status pages and container labels; unique.
	Name string
	// Endpoint is how the miner reaches the engine: "unix:///var/run/docker.sock" or
	// "tcp://HOST:PORT".
	Endpoint string
	// TLS is required for a tcp:// endpoint (mutual TLS, the engine's --tlsverify), unless
	// Insecure is set; it is ignored for unix://.
	TLS *TLSFiles
	// Insecure allows a tcp:// endpoint without TLS: anyone who reaches the port owns the host.
	// For tests on loopback only.
	Insecure bool
	// ExecutorEndpoint is the engine's endpoint as executors inside their containers dial it
	// (they share the host's network; with TLS they get the same files as the miner); empty
	// means Endpoint for tcp://, and for unix:// the socket bind-mounted at
	// /var/run/docker.sock. When set, nothing is mounted for it (see DockerConfig.Binds).
	ExecutorEndpoint string
	// Classes is how many executors of each class this host runs at once.
	Classes map[protocol.ExecutorClass]int
	// GPUs is the host's GPU count: each executor of a GPU class gets its own GPUs among
	// 0..GPUs-1 (`executor serve --gpus`), and executors needing more than GPUs is a
	// configuration error. 0 means unknown, allowed only for a host with one GPU executor,
	// which then gets every GPU.
	GPUs int
}

// DockerConfig configures a Docker manager.
type DockerConfig struct {
	// Hosts are the engines executors run on; at least one.
	Hosts []Host
	// Image is the executor image's tag, e.g. "horde-executor:VERSION". Required.
	Image string
	// Binary is a static horde executable the image is assembled from offline (package
	// jobimage) on each host where Image is missing or holds another build; empty means Image
	// is pulled where missing (production: a published image).
	Binary string
	// MinerURL is the miner's executor endpoint base as executor containers (on the host's
	// network) dial it, e.g. ws://10.0.0.5:8000. Required.
	MinerURL string
	// ExecutorID labels executor containers (LabelExecutor) and is each executor's
	// --executor-id, so their job containers and job directories carry it too. Required.
	ExecutorID string
	// WorkDir is the parent of the job directories on each host: an absolute path,
	// bind-mounted at the same path into executor containers, since executors bind-mount job
	// directories into job containers on the same engine. The engine creates it if missing.
	WorkDir string
	// Args are extra `executor serve` flags (--allow-egress, --max-volume-bytes, …).
	Args []string
	// Env are extra "KEY=value" entries of executor containers (HF_ENDPOINT, SSL_CERT_FILE, …).
	Env []string
	// Binds are extra bind mounts of executor containers, "SRC:DST[:ro]" on the host (e.g.
	// "/etc/ssl/certs:/etc/ssl/certs:ro": the image holds nothing but horde, so HTTPS
	// downloads and uploads need the host's CA certificates).
	Binds []string
	// StopGrace is how long a stopped executor (Close, a stale executor) gets to report and
	// remove its job before it is killed; 0 means DefaultStopGrace.
	StopGrace time.Duration
	// PollInterval is how often each host is pinged and its exited executors are removed;
	// 0 means DefaultPollInterval.
	PollInterval time.Duration
	// PingTimeout bounds one ping; 0 means DefaultPingTimeout.
	PingTimeout time.Duration
	// DownAfter is how many failed pings in a row take a host out of the manifest; 0 means
	// DefaultDownAfter. One answered ping puts it back.
	DownAfter int
	// PullTimeout bounds the pull (or the offline build) of Image on one host; 0 means
	// DefaultPullTimeout.
	PullTimeout time.Duration
	// MaxLifetime stops (StopGrace, then kill) executors running longer than this; 0 means
	// never: executors end with their job, whose time limits the executor enforces.
	MaxLifetime time.Duration
	// Registry gives each class's GPU count; nil means hwclass.Default().
	Registry *hwclass.Registry
	// OnManifestChange, when set, is called with the new Manifest whenever a host going down
	// or coming back changes it (and once from NewDocker); calls are serialised, from the
	// manager's goroutines, and must not call Close.
	OnManifestChange func(protocol.Manifest)
	Logger           *slog.Logger // nil means slog.Default()
}

// HostStatus is one host as status pages show it.
type HostStatus = miner.ExecutorHost

// Docker is an ExecutorManager that runs each executor as a container on one of several
// Docker hosts, one job per container. Create it with NewDocker; Close stops it.
type Docker struct {
	cfg   DockerConfig
	log   *slog.Logger
	hosts []*dockerHost

	mu      sync.Mutex
	byName  map[string]*executorEntry // tracked executor containers by container name
	byJob   map[string]*executorEntry
	closed  bool
	starts  sync.WaitGroup // Start calls in flight
	bg      sync.WaitGroup // stops and removals in the background
	loops   sync.WaitGroup
	cancel  context.CancelFunc
	closeMu sync.Mutex // one Close at a time

	notifyMu     sync.Mutex
	lastManifest protocol.Manifest

	freed chan struct{} // guarded by mu; closed (and replaced) when an executor's slot frees
}

var _ miner.ExecutorManager = (*Docker)(nil)

type dockerHost struct {
	cfg   Host
	cli   *client.Client
	certs []byte // a tar of certDir for a TLS engine, copied into each executor container

	// Guarded by Docker.mu.
	answering  bool
	imageReady bool
	failures   int
	since      time.Time
	lastErr    error
	used       map[protocol.ExecutorClass]int
	gpus       *gpuSlots // the GPUs of each executor slot of a GPU class; nil: none assigned

	kick chan struct{} // a Start waits for a slot: check (and reap) now
}

func (h *dockerHost) up() bool { return h.answering && h.imageReady }

type executorEntry struct {
	name    string
	id      string // container ID, once created
	host    *dockerHost
	class   protocol.ExecutorClass
	job     string
	created time.Time
	slot    int      // its GPU slot of class on host; -1: none
	devices []string // the GPUs of slot

	// Guarded by Docker.mu.
	starting bool // Start is creating it: the reaper leaves it alone
	stale    bool // an earlier process's, found by the reaper: stopped on sight
	stopping bool // Kill, Close or the reaper is removing it
	released bool // its slot is free again
}

// NewDocker checks cfg, connects to every host, and checks each once (ping, executor image,
// leftover executors of an earlier process, which are stopped) before it returns, so that
// Manifest is right from the start; a host that does not answer is down, not an error. The
// hosts are then checked every PollInterval until Close.
func NewDocker(ctx context.Context, cfg DockerConfig) (*Docker, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if cfg.StopGrace <= 0 {
		cfg.StopGrace = DefaultStopGrace
	}
	cfg.PollInterval = cmp.Or(cfg.PollInterval, DefaultPollInterval)
	cfg.PingTimeout = cmp.Or(cfg.PingTimeout, DefaultPingTimeout)
	cfg.DownAfter = cmp.Or(cfg.DownAfter, DefaultDownAfter)
	cfg.PullTimeout = cmp.Or(cfg.PullTimeout, DefaultPullTimeout)
	d := &Docker{cfg: cfg, log: cmp.Or(cfg.Logger, slog.Default()), byName: map[string]*executorEntry{}, byJob: map[string]*executorEntry{}}
	now := time.Now()
	for _, hc := range cfg.Hosts {
		h, err := newDockerHost(hc, cfg.Registry)
		if err != nil {
			d.closeClients()
			return nil, err
		}
		h.since = now
		d.hosts = append(d.hosts, h)
	}
	var wg sync.WaitGroup
	for _, h := range d.hosts {
		wg.Go(func() { d.check(ctx, h) })
	}
	wg.Wait()
	d.notifyManifest()
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	d.cancel = cancel
	for _, h := range d.hosts {
		d.loops.Go(func() { d.watch(runCtx, h) })
	}
	return d, nil
}

func (c *DockerConfig) validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("execmgr: docker config: "+format, args...)
	}
	switch {
	case len(c.Hosts) == 0:
		return bad("no hosts; give at least one Docker engine (unix:///var/run/docker.sock or tcp://HOST:PORT with TLS)")
	case c.Image == "":
		return bad("Image is empty; name the executor image, e.g. horde-executor:VERSION")
	case c.MinerURL == "":
		return bad("MinerURL is empty; give the miner's executor endpoint as executor containers dial it, e.g. ws://10.0.0.5:8000")
	case c.ExecutorID == "":
		return bad("ExecutorID is empty; it labels the executor containers")
	case c.WorkDir == "" || !filepath.IsAbs(c.WorkDir):
		return bad("WorkDir %q is not an absolute path; give the job directories' parent on the Docker hosts", c.WorkDir)
	case c.StopGrace < 0 || c.PollInterval < 0 || c.PingTimeout < 0 || c.DownAfter < 0 || c.PullTimeout < 0 || c.MaxLifetime < 0:
		return bad("durations and DownAfter must not be negative (zero means the default)")
	}
	if c.Binary != "" {
		// A dynamically linked binary is fine: the image carries its loader and libraries.
		if _, err := jobimage.CheckStatic(c.Binary); err != nil && !errors.Is(err, jobimage.ErrNotStatic) {
			return bad("Binary: %w", err)
		}
	}
	names := map[string]bool{}
	for i, h := range c.Hosts {
		if h.Name == "" {
			return bad("host %d has no name", i+1)
		}
		if names[h.Name] {
			return bad("host name %q is used twice", h.Name)
		}
		names[h.Name] = true
		u, err := url.Parse(h.Endpoint)
		if err != nil {
			return bad("host %s: endpoint %q: %w", h.Name, h.Endpoint, err)
		}
		switch u.Scheme {
		case "unix":
			if u.Path == "" {
				return bad("host %s: endpoint %q names no socket; e.g. unix:///var/run/docker.sock", h.Name, h.Endpoint)
			}
		case "tcp":
			if u.Host == "" {
				return bad("host %s: endpoint %q names no address; e.g. tcp://10.0.0.7:2376", h.Name, h.Endpoint)
			}
			if h.TLS == nil && !h.Insecure {
				return bad("host %s: %s is plain TCP: whoever reaches the port owns the host; give TLS files (the engine running with --tlsverify)", h.Name, h.Endpoint)
			}
			if h.TLS != nil && (h.TLS.CA == "" || h.TLS.Cert == "" || h.TLS.Key == "") {
				return bad("host %s: TLS needs the CA, Cert and Key files", h.Name)
			}
		default:
			return bad("host %s: endpoint %q: want unix:///PATH or tcp://HOST:PORT", h.Name, h.Endpoint)
		}
		total := 0
		for class, n := range h.Classes {
			if !class.Valid() {
				return bad("host %s: %q is no executor class", h.Name, class)
			}
			if n < 0 {
				return bad("host %s: %d executors of %s", h.Name, n, class)
			}
			total += n
		}
		if total == 0 {
			return bad("host %s offers no executors; give a count for at least one class", h.Name)
		}
		if h.GPUs < 0 {
			return bad("host %s: GPUs is %d; give its GPU count, or 0 if unknown", h.Name, h.GPUs)
		}
		if _, err := planGPUs("host "+h.Name, h.Classes, c.Registry, h.GPUs, "set gpus in its [[executors.hosts]] entry to its GPU count"); err != nil {
			return err
		}
	}
	return nil
}

func newDockerHost(hc Host, reg *hwclass.Registry) (*dockerHost, error) {
	opts := []client.Opt{client.WithHost(hc.Endpoint), client.WithAPIVersionNegotiation()}
	plan, err := planGPUs("host "+hc.Name, hc.Classes, reg, hc.GPUs, "") // checked by validate
	if err != nil {
		return nil, err
	}
	h := &dockerHost{cfg: hc, used: map[protocol.ExecutorClass]int{}, gpus: newGPUSlots(plan), kick: make(chan struct{}, 1)}
	if strings.HasPrefix(hc.Endpoint, "tcp://") && hc.TLS != nil {
		opts = append(opts, client.WithTLSClientConfig(hc.TLS.CA, hc.TLS.Cert, hc.TLS.Key))
		certs, err := certTar(*hc.TLS)
		if err != nil {
			return nil, fmt.Errorf("execmgr: host %s: %w", hc.Name, err)
		}
		h.certs = certs
	}
	cli, err := client.NewClientWithOpts(opts...)
	if err != nil {
		return nil, fmt.Errorf("execmgr: host %s: Docker client for %s: %w", hc.Name, hc.Endpoint, err)
	}
	h.cli = cli
	return h, nil
}

// certTar packs the TLS files as certDir/{ca,cert,key}.pem.
func certTar(files TLSFiles) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dir := strings.TrimPrefix(certDir, "/")
	for _, d := range []string{"etc/", "etc/horde/", dir + "/"} {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d, Mode: 0o755}); err != nil {
			return nil, err
		}
	}
	for _, f := range []struct{ name, path string }{{"ca.pem", files.CA}, {"cert.pem", files.Cert}, {"key.pem", files.Key}} {
		b, err := os.ReadFile(f.path)
		if err != nil {
			return nil, fmt.Errorf("TLS file: %w", err)
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: dir + "/" + f.name, Mode: 0o600, Size: int64(len(b))}); err != nil {
			return nil, err
		}
		if _, err := tw.Write(b); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Start runs the executor of req in a container on an up host with a free executor of its
// class (the one with the most free), and returns once the container runs.
func (d *Docker) Start(ctx context.Context, req miner.ExecutorRequest) error {
	e, err := d.reserveWaiting(ctx, req)
	if err != nil {
		return err
	}
	defer d.starts.Done()
	h := e.host

	log := d.log.With("job", req.JobUUID, "class", req.ExecutorClass, "host", h.cfg.Name)
	err = d.create(ctx, e, req.Token)
	d.mu.Lock()
	e.starting = false
	if err != nil {
		e.stopping = true
	}
	d.mu.Unlock()
	if err != nil {
		if e.id != "" {
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			if rerr := h.cli.ContainerRemove(rctx, e.id, container.RemoveOptions{Force: true}); rerr != nil && !cerrdefs.IsNotFound(rerr) {
				log.Warn("could not remove the executor container that failed to start", "container", e.name, "err", rerr)
			}
			cancel()
		}
		if cerrdefs.IsNotFound(err) {
			d.mu.Lock()
			h.imageReady = false // gone from the host: the next check builds or pulls it again
			d.mu.Unlock()
		}
		d.release(e)
		return fmt.Errorf("execmgr: host %s: start executor container: %w", h.cfg.Name, err)
	}
	log.Info("executor container started", "container", e.name, "id", shortID(e.id))
	return nil
}

// errNoFreeExecutor reports that no up host has an executor of the class free.
var errNoFreeExecutor = errors.New("execmgr: no free executor")

// slotRecheck is how often a Start waiting for a free executor has the hosts reaped again.
const slotRecheck = 250 * time.Millisecond

// reserveWaiting is reserve, waiting until ctx ends for an executor of the class to be freed
// when none is. The miner counts a job's executor free as soon as the job ends, while the
// executor is still removing its job's container and exiting, and its slot is freed only
// once the reaper has seen it exit: a job admitted in between would otherwise fail to spin
// up (the fault suite saw a quarter of its jobs end so under load).
func (d *Docker) reserveWaiting(ctx context.Context, req miner.ExecutorRequest) (*executorEntry, error) {
	for {
		e, freed, err := d.reserve(req)
		if !errors.Is(err, errNoFreeExecutor) {
			return e, err
		}
		for _, h := range d.hosts {
			select {
			case h.kick <- struct{}{}:
			default:
			}
		}
		t := time.NewTimer(slotRecheck)
		select {
		case <-freed:
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("%w (waited until: %w)", err, context.Cause(ctx))
		}
		t.Stop()
	}
}

// reserve takes a free executor of req's class, and its GPUs, on the up host with the most
// free; the caller creates its container and then calls d.starts.Done. When none is free it
// returns errNoFreeExecutor (wrapped) and a channel closed when a slot frees.
func (d *Docker) reserve(req miner.ExecutorRequest) (*executorEntry, <-chan struct{}, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil, nil, errors.New("execmgr: the miner is stopping; no executor starts")
	}
	if d.byJob[req.JobUUID] != nil {
		return nil, nil, fmt.Errorf("execmgr: job %s already has an executor", req.JobUUID)
	}
	h := d.pickLocked(req.ExecutorClass)
	if h == nil {
		if d.freed == nil {
			d.freed = make(chan struct{})
		}
		return nil, d.freed, fmt.Errorf("%w of class %s: %s", errNoFreeExecutor, req.ExecutorClass, d.whyNoneLocked(req.ExecutorClass))
	}
	e := &executorEntry{name: containerName(req.JobUUID), host: h, class: req.ExecutorClass, job: req.JobUUID, created: time.Now(), starting: true, slot: -1}
	if h.gpus.assigned(e.class) {
		// A slot is free: no more slots are busy than executors of the class are counted.
		e.slot, e.devices = h.gpus.take(e.class)
		if e.slot < 0 {
			return nil, nil, fmt.Errorf("execmgr: host %s: every executor of class %s holds its GPUs", h.cfg.Name, e.class)
		}
	}
	h.used[e.class]++
	d.byName[e.name] = e
	d.byJob[e.job] = e
	d.starts.Add(1)
	return e, nil, nil
}

// pickLocked returns the up host with the most free executors of class, nil if none.
func (d *Docker) pickLocked(class protocol.ExecutorClass) *dockerHost {
	var best *dockerHost
	bestFree := 0
	for _, h := range d.hosts {
		if !h.up() {
			continue
		}
		if free := h.cfg.Classes[class] - h.used[class]; free > bestFree {
			best, bestFree = h, free
		}
	}
	return best
}

func (d *Docker) whyNoneLocked(class protocol.ExecutorClass) string {
	var parts []string
	for _, h := range d.hosts {
		n := h.cfg.Classes[class]
		switch {
		case n == 0:
			continue
		case !h.answering:
			parts = append(parts, h.cfg.Name+" is down")
		case !h.imageReady:
			parts = append(parts, h.cfg.Name+" has no executor image yet")
		default:
			parts = append(parts, fmt.Sprintf("%s runs %d of %d", h.cfg.Name, h.used[class], n))
		}
	}
	if len(parts) == 0 {
		return "no host offers it"
	}
	return strings.Join(parts, ", ")
}

// containerName is "horde-executor-<job>-<random>", the job UUID cut to the characters and
// length container names allow.
func containerName(job string) string {
	clean := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.' {
			return r
		}
		return -1
	}, job)
	if len(clean) > 64 {
		clean = clean[:64]
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	return "horde-executor-" + clean + "-" + hex.EncodeToString(b[:])
}

// containerConfig is the executor container of e.
func (d *Docker) containerConfig(e *executorEntry, token string) (*container.Config, *container.HostConfig) {
	h := e.host
	env := append([]string{EnvToken + "=" + token}, d.cfg.Env...)
	binds := []string{d.cfg.WorkDir + ":" + d.cfg.WorkDir}
	switch {
	case h.cfg.ExecutorEndpoint != "":
		env = append(env, "DOCKER_HOST="+h.cfg.ExecutorEndpoint)
	case strings.HasPrefix(h.cfg.Endpoint, "unix://"):
		binds = append(binds, strings.TrimPrefix(h.cfg.Endpoint, "unix://")+":"+innerSocket)
		env = append(env, "DOCKER_HOST=unix://"+innerSocket)
	default:
		env = append(env, "DOCKER_HOST="+h.cfg.Endpoint)
	}
	if h.certs != nil {
		env = append(env, "DOCKER_TLS_VERIFY=1", "DOCKER_CERT_PATH="+certDir)
	}
	binds = append(binds, d.cfg.Binds...)
	args := append([]string{"--miner-url", d.cfg.MinerURL, "--executor-id", d.cfg.ExecutorID, "--work-dir", d.cfg.WorkDir}, d.cfg.Args...)
	labels := map[string]string{
		LabelExecutor:      d.cfg.ExecutorID,
		LabelExecutorClass: string(e.class),
		LabelExecutorHost:  h.cfg.Name,
		LabelJob:           e.job,
	}
	if e.slot >= 0 {
		// The executor requests these for its job containers; it needs no GPU itself.
		args = append(args, "--gpus", strings.Join(e.devices, ","))
		labels[LabelExecutorSlot] = strconv.Itoa(e.slot)
	}
	return &container.Config{Image: d.cfg.Image, Cmd: args, Env: env, Labels: labels}, &container.HostConfig{
		// The host's network: the executor dials the miner and the engine as the host does.
		// Job containers get --network none from the executor (see the top of this file).
		NetworkMode: "host",
		Binds:       binds,
		AutoRemove:  false, // the reaper removes it, after reading its last lines on failure
	}
}

// create creates, fills and starts the container of e.
func (d *Docker) create(ctx context.Context, e *executorEntry, token string) error {
	h := e.host
	cfg, hostCfg := d.containerConfig(e, token)
	created, err := h.cli.ContainerCreate(ctx, cfg, hostCfg, nil, nil, e.name)
	if err != nil {
		return err
	}
	d.mu.Lock()
	e.id = created.ID
	d.mu.Unlock()
	if h.certs != nil {
		if err := h.cli.CopyToContainer(ctx, created.ID, "/", bytes.NewReader(h.certs), container.CopyToContainerOptions{}); err != nil {
			return fmt.Errorf("copy the engine's TLS files into the executor container: %w", err)
		}
	}
	return h.cli.ContainerStart(ctx, created.ID, container.StartOptions{})
}

// Kill kills and removes the executor container of job (the miner's path for an executor that
// did not connect within its class's spin-up time), freeing its slot. A job without an
// executor is not an error.
func (d *Docker) Kill(ctx context.Context, job string) error {
	d.mu.Lock()
	e := d.byJob[job]
	if e == nil || e.released {
		d.mu.Unlock()
		return nil
	}
	if e.starting {
		d.mu.Unlock()
		return fmt.Errorf("execmgr: the executor of job %s is still starting", job)
	}
	e.stopping = true
	d.mu.Unlock()
	err := e.host.cli.ContainerRemove(ctx, e.id, container.RemoveOptions{Force: true})
	if err != nil && !cerrdefs.IsNotFound(err) {
		d.mu.Lock()
		e.stopping = false
		e.stale = true // the reaper stops it once the host answers again
		d.mu.Unlock()
		return fmt.Errorf("execmgr: host %s: kill the executor of job %s: %w", e.host.cfg.Name, job, err)
	}
	d.log.Info("executor killed and removed", "job", job, "host", e.host.cfg.Name, "container", e.name)
	d.release(e)
	return nil
}

// release frees e's slot once.
func (d *Docker) release(e *executorEntry) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if e.released {
		return
	}
	e.released = true
	e.host.used[e.class]--
	e.host.gpus.free(e.class, e.slot)
	if d.freed != nil {
		close(d.freed)
		d.freed = nil
	}
	if d.byName[e.name] == e {
		delete(d.byName, e.name)
	}
	if d.byJob[e.job] == e {
		delete(d.byJob, e.job)
	}
}

// Running returns the number of executor containers the manager holds (starting, running or
// being removed).
func (d *Docker) Running() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.byName)
}

// Manifest is the executors per class of the up hosts, in protocol.ExecutorClassValues
// order; classes no up host offers are left out.
func (d *Docker) Manifest() protocol.Manifest {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.manifestLocked()
}

func (d *Docker) manifestLocked() protocol.Manifest {
	var m protocol.Manifest
	for _, class := range protocol.ExecutorClassValues() {
		n := 0
		for _, h := range d.hosts {
			if h.up() {
				n += h.cfg.Classes[class]
			}
		}
		if n > 0 {
			m = append(m, protocol.ManifestEntry{Class: class, Count: n})
		}
	}
	return m
}

// Hosts returns each host's state, in configuration order.
func (d *Docker) Hosts() []HostStatus {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]HostStatus, 0, len(d.hosts))
	for _, h := range d.hosts {
		st := HostStatus{
			Name: h.cfg.Name, Endpoint: h.cfg.Endpoint, Up: h.up(), Answering: h.answering, Since: h.since,
			Classes: map[protocol.ExecutorClass]int{}, Running: map[protocol.ExecutorClass]int{},
		}
		if h.lastErr != nil {
			st.Err = h.lastErr.Error()
		}
		for c, n := range h.cfg.Classes {
			st.Classes[c] = n
		}
		for c, n := range h.used {
			if n > 0 {
				st.Running[c] = n
			}
		}
		out = append(out, st)
	}
	return out
}

// notifyManifest calls OnManifestChange when the manifest differs from the last one it saw.
func (d *Docker) notifyManifest() {
	d.notifyMu.Lock()
	defer d.notifyMu.Unlock()
	m := d.Manifest()
	if slices.Equal(m, d.lastManifest) {
		return
	}
	d.lastManifest = m
	if d.cfg.OnManifestChange != nil {
		d.cfg.OnManifestChange(slices.Clone(m))
	}
}

// watch checks h every PollInterval until ctx ends.
func (d *Docker) watch(ctx context.Context, h *dockerHost) {
	t := time.NewTicker(d.cfg.PollInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-h.kick:
		}
		d.check(ctx, h)
	}
}

// check pings h, marks it up or down, makes sure it holds the executor image, and reaps its
// executors.
func (d *Docker) check(ctx context.Context, h *dockerHost) {
	pctx, cancel := context.WithTimeout(ctx, d.cfg.PingTimeout)
	_, err := h.cli.Ping(pctx)
	cancel()
	if ctx.Err() != nil {
		return
	}
	d.mu.Lock()
	wasUp := h.up()
	if err != nil {
		h.failures++
		h.lastErr = err
		if h.failures >= d.cfg.DownAfter {
			h.answering, h.imageReady = false, false
		}
	} else {
		h.failures = 0
		h.answering = true
		if h.imageReady {
			h.lastErr = nil
		}
	}
	needImage := h.answering && !h.imageReady
	d.mu.Unlock()

	if needImage {
		ierr := d.ensureImage(ctx, h)
		if ctx.Err() != nil {
			return
		}
		d.mu.Lock()
		repeated := ierr != nil && h.lastErr != nil && h.lastErr.Error() == ierr.Error()
		h.imageReady = ierr == nil
		h.lastErr = ierr
		d.mu.Unlock()
		if ierr != nil && !repeated {
			d.log.Error("docker host has no executor image; its executors are not offered", "host", h.cfg.Name, "image", d.cfg.Image, "err", ierr)
		}
	}

	d.mu.Lock()
	isUp := h.up()
	if isUp != wasUp {
		h.since = time.Now()
	}
	answering := h.answering
	d.mu.Unlock()
	switch {
	case wasUp && !isUp:
		d.log.Warn("docker host down; its executors leave the manifest", "host", h.cfg.Name, "endpoint", h.cfg.Endpoint, "err", err)
	case !wasUp && isUp:
		d.log.Info("docker host up; its executors are offered", "host", h.cfg.Name, "endpoint", h.cfg.Endpoint)
	}
	if isUp != wasUp {
		d.notifyManifest()
	}
	if answering {
		if rerr := d.reap(ctx, h); rerr != nil && ctx.Err() == nil {
			d.log.Warn("could not reap executor containers", "host", h.cfg.Name, "err", rerr)
		}
	}
}

// ensureImage builds Image from Binary on h, or pulls it when there is no Binary and h lacks it.
func (d *Docker) ensureImage(ctx context.Context, h *dockerHost) error {
	ctx, cancel := context.WithTimeout(ctx, d.cfg.PullTimeout)
	defer cancel()
	if d.cfg.Binary != "" {
		res, err := jobimage.Assemble(ctx, h.cli, jobimage.Spec{
			Tag: d.cfg.Image, Binary: d.cfg.Binary,
			Entrypoint: []string{"/bin/" + filepath.Base(d.cfg.Binary), "executor", "serve"},
		})
		if err != nil {
			return err
		}
		if res.Loaded {
			d.log.Info("executor image assembled", "host", h.cfg.Name, "image", d.cfg.Image, "id", shortID(res.ImageID))
		}
		return nil
	}
	if _, err := h.cli.ImageInspect(ctx, d.cfg.Image); err == nil {
		return nil
	} else if !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("inspect %s: %w", d.cfg.Image, err)
	}
	d.log.Info("pulling the executor image", "host", h.cfg.Name, "image", d.cfg.Image)
	rc, err := h.cli.ImagePull(ctx, d.cfg.Image, image.PullOptions{})
	if err != nil {
		return fmt.Errorf("pull %s: %w", d.cfg.Image, err)
	}
	defer rc.Close()
	// A pull takes minutes on a slow link: say how far it got, every pullProgressEvery.
	last := time.Now()
	var dl enginemsg.Downloads
	if err := enginemsg.Read(rc, func(m enginemsg.Message) error {
		if dl.Add(m) {
			if now := time.Now(); now.Sub(last) >= pullProgressEvery {
				last = now
				d.log.Info("pulling the executor image", "host", h.cfg.Name, "image", d.cfg.Image, "downloaded_mib", dl.Done>>20, "of_mib", dl.Total>>20)
			}
		}
		return nil
	}); err != nil {
		return fmt.Errorf("pull %s: %w", d.cfg.Image, err)
	}
	return nil
}

// pullProgressEvery is how often a running pull of the executor image logs its progress.
const pullProgressEvery = 5 * time.Second

// reap removes h's exited executor containers and frees their slots; stops leftovers of an
// earlier process and executors past MaxLifetime; and frees the slots of containers that
// disappeared.
func (d *Docker) reap(ctx context.Context, h *dockerHost) error {
	listedAt := time.Now()
	// One listing: this manager's executor containers on h, and the job containers their
	// executors started (the same executor ID label, no class).
	all, err := h.cli.ContainerList(ctx, container.ListOptions{
		All:     true,
		Filters: filters.NewArgs(filters.Arg("label", LabelExecutor+"="+d.cfg.ExecutorID)),
	})
	if err != nil {
		return err
	}
	var list, jobs []container.Summary
	for _, c := range all {
		if _, executor := c.Labels[LabelExecutorClass]; !executor {
			jobs = append(jobs, c)
		} else if c.Labels[LabelExecutorHost] == h.cfg.Name {
			list = append(list, c)
		}
	}
	seen := map[string]bool{}
	var errs []error
	for _, c := range list {
		if len(c.Names) == 0 {
			continue
		}
		name := strings.TrimPrefix(c.Names[0], "/")
		seen[name] = true
		d.mu.Lock()
		e := d.byName[name]
		if e == nil {
			// Not ours: an earlier process's (the miner restarted, so its token is dead).
			// It takes its slot until it is gone.
			e = &executorEntry{
				name: name, id: c.ID, host: h, class: protocol.ExecutorClass(c.Labels[LabelExecutorClass]),
				job: c.Labels[LabelJob], created: time.Unix(c.Created, 0), stale: true, slot: -1,
			}
			// Its job may still be on those GPUs until it is stopped.
			if slot, err := strconv.Atoi(c.Labels[LabelExecutorSlot]); err == nil && h.gpus.assigned(e.class) && h.gpus.takeSlot(e.class, slot) {
				e.slot = slot
			}
			if d.byJob[e.job] != nil {
				e.job = "" // a job of ours now: do not shadow it
			}
			h.used[e.class]++
			d.byName[name] = e
			if e.job != "" {
				d.byJob[e.job] = e
			}
			d.log.Info("stopping an executor container an earlier process left", "host", h.cfg.Name, "container", name, "state", c.State)
		}
		busy := e.starting || e.stopping
		exited := c.State == container.StateExited || c.State == container.StateDead || c.State == container.StateCreated
		old := d.cfg.MaxLifetime > 0 && c.State == container.StateRunning && time.Since(e.created) > d.cfg.MaxLifetime
		if !busy && (exited || old || e.stale) {
			e.stopping = true
		} else {
			busy = true
		}
		d.mu.Unlock()
		if busy {
			continue
		}
		if exited {
			if err := d.removeExited(ctx, e); err != nil {
				errs = append(errs, err)
			}
			continue
		}
		if old {
			d.log.Warn("stopping an executor past its maximum lifetime", "host", h.cfg.Name, "job", e.job, "max_lifetime", d.cfg.MaxLifetime)
		}
		d.bg.Go(func() { _ = d.stop(e) })
	}
	// Tracked containers the engine no longer lists were removed by someone else.
	d.mu.Lock()
	var gone []*executorEntry
	for name, e := range d.byName {
		if e.host == h && !seen[name] && !e.starting && !e.stopping && e.id != "" && e.created.Before(listedAt) {
			gone = append(gone, e)
		}
	}
	d.mu.Unlock()
	for _, e := range gone {
		d.log.Warn("executor container vanished", "host", h.cfg.Name, "job", e.job, "container", e.name)
		d.release(e)
	}
	errs = append(errs, d.removeOrphanJobs(ctx, h, jobs))
	return errors.Join(errs...)
}

// removeOrphanJobs removes the listed job containers whose executor is gone.
// An executor removes its job's container itself, but not when the engine failed under it
// at that moment or it was killed; the container would otherwise stay until its deadline
// label let a sweep remove it, minutes or hours later. A job's executor is tracked
// (d.byJob) from before it starts until it is removed, so a job container with no tracked
// executor has no owner left.
func (d *Docker) removeOrphanJobs(ctx context.Context, h *dockerHost, jobs []container.Summary) error {
	var errs []error
	for _, c := range jobs {
		job := c.Labels[jobdocker.LabelJobUUID]
		if job == "" {
			continue
		}
		d.mu.Lock()
		_, owned := d.byJob[job]
		d.mu.Unlock()
		if owned {
			continue
		}
		d.log.Info("removing a job container its executor left", "host", h.cfg.Name, "job", job, "container", c.Names, "state", c.State)
		if err := h.cli.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("remove job container %v: %w", c.Names, err))
		}
	}
	return errors.Join(errs...)
}

// removeExited logs how e ended (its last output lines when it failed) and removes it.
func (d *Docker) removeExited(ctx context.Context, e *executorEntry) error {
	h := e.host
	log := d.log.With("host", h.cfg.Name, "job", e.job, "container", e.name)
	if info, err := h.cli.ContainerInspect(ctx, e.id); err == nil && info.State != nil {
		if code := info.State.ExitCode; code != 0 || info.State.Error != "" {
			log.Warn("executor failed", "exit_code", code, "error", info.State.Error, "output", d.lastLines(ctx, e, 20))
		} else {
			log.Info("executor exited")
		}
	}
	err := h.cli.ContainerRemove(ctx, e.id, container.RemoveOptions{Force: true})
	if err != nil && !cerrdefs.IsNotFound(err) {
		d.mu.Lock()
		e.stopping = false
		d.mu.Unlock()
		return fmt.Errorf("remove executor container %s: %w", e.name, err)
	}
	d.release(e)
	return nil
}

// lastLines returns the last n lines of e's output, for the log.
func (d *Docker) lastLines(ctx context.Context, e *executorEntry, n int) string {
	rc, err := e.host.cli.ContainerLogs(ctx, e.id, container.LogsOptions{ShowStdout: true, ShowStderr: true, Tail: fmt.Sprint(n)})
	if err != nil {
		return "(logs: " + err.Error() + ")"
	}
	defer rc.Close()
	var out bytes.Buffer
	if _, err := stdcopy.StdCopy(&out, &out, io.LimitReader(rc, 64<<10)); err != nil && out.Len() == 0 {
		return "(logs: " + err.Error() + ")"
	}
	return strings.TrimSpace(out.String())
}

// stop stops e (SIGTERM: the executor reports and removes its job; SIGKILL after StopGrace),
// removes it and frees its slot. e.stopping is set.
func (d *Docker) stop(e *executorEntry) error {
	ctx, cancel := context.WithTimeout(context.Background(), d.cfg.StopGrace+30*time.Second)
	defer cancel()
	grace := int(max(1, (d.cfg.StopGrace+time.Second-1)/time.Second))
	err := e.host.cli.ContainerStop(ctx, e.id, container.StopOptions{Timeout: &grace})
	if err != nil && !cerrdefs.IsNotFound(err) {
		d.log.Warn("could not stop an executor container", "host", e.host.cfg.Name, "container", e.name, "err", err)
	}
	err = e.host.cli.ContainerRemove(ctx, e.id, container.RemoveOptions{Force: true})
	if err != nil && !cerrdefs.IsNotFound(err) {
		d.mu.Lock()
		e.stopping = false // the reaper tries again
		d.mu.Unlock()
		return fmt.Errorf("execmgr: host %s: remove executor container %s: %w", e.host.cfg.Name, e.name, err)
	}
	d.release(e)
	return nil
}

// Close stops checking the hosts, waits for Starts in flight, then stops every executor
// container (SIGTERM: each reports and removes its job; SIGKILL after StopGrace) and removes
// it. It returns once all are gone or could not be removed.
func (d *Docker) Close() error {
	d.closeMu.Lock()
	defer d.closeMu.Unlock()
	d.mu.Lock()
	already := d.closed
	d.closed = true
	if d.freed != nil {
		close(d.freed) // Starts waiting for a slot give up
		d.freed = nil
	}
	d.mu.Unlock()
	if already {
		return nil
	}
	d.cancel()
	d.loops.Wait()
	d.starts.Wait()
	d.mu.Lock()
	var todo []*executorEntry
	for _, e := range d.byName {
		if !e.stopping && !e.released && e.id != "" {
			e.stopping = true
			todo = append(todo, e)
		}
	}
	d.mu.Unlock()
	errs := make([]error, len(todo))
	for i, e := range todo {
		d.bg.Go(func() { errs[i] = d.stop(e) })
	}
	d.bg.Wait()
	d.closeClients()
	return errors.Join(errs...)
}

func (d *Docker) closeClients() {
	for _, h := range d.hosts {
		if h.cli != nil {
			_ = h.cli.Close()
		}
	}
}

func shortID(id string) string {
	id = strings.TrimPrefix(id, "sha256:")
	return id[:min(12, len(id))]
}
