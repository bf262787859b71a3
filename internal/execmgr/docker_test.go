package execmgr_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"

	"github.com/computehorde/horde/internal/chain"
	"github.com/computehorde/horde/internal/chain/sim"
	"github.com/computehorde/horde/internal/execmgr"
	jobdocker "github.com/computehorde/horde/internal/executor/docker"
	"github.com/computehorde/horde/internal/executor/docker/dockertest"
	"github.com/computehorde/horde/internal/jobimage"
	"github.com/computehorde/horde/internal/jobimage/jobimagetest"
	"github.com/computehorde/horde/internal/keys"
	"github.com/computehorde/horde/internal/miner"
	"github.com/computehorde/horde/internal/protocol"
	"github.com/computehorde/horde/internal/store"
	"github.com/computehorde/horde/internal/validator"
)

const testClass = protocol.ExecutorClassAlwaysOnTest

func TestDockerConfigRefusals(t *testing.T) {
	ok := execmgr.DockerConfig{
		Image: "horde-executor:test", MinerURL: "ws://127.0.0.1:1", ExecutorID: "x", WorkDir: "/tmp",
		Hosts: []execmgr.Host{{Name: "a", Endpoint: "unix:///var/run/docker.sock", Classes: map[protocol.ExecutorClass]int{testClass: 1}}},
	}
	for _, tc := range []struct {
		name, want string
		mutate     func(c *execmgr.DockerConfig)
	}{
		{"plain tcp", "plain TCP", func(c *execmgr.DockerConfig) { c.Hosts[0].Endpoint = "tcp://127.0.0.1:2375" }},
		{"other scheme", "want unix", func(c *execmgr.DockerConfig) { c.Hosts[0].Endpoint = "http://127.0.0.1:2375" }},
		{"no hosts", "no hosts", func(c *execmgr.DockerConfig) { c.Hosts = nil }},
		{"no executors", "offers no executors", func(c *execmgr.DockerConfig) { c.Hosts[0].Classes = nil }},
		{"bad class", "no executor class", func(c *execmgr.DockerConfig) { c.Hosts[0].Classes = map[protocol.ExecutorClass]int{"gpu.huge": 1} }},
		{"relative work dir", "absolute", func(c *execmgr.DockerConfig) { c.WorkDir = "jobs" }},
		{"twice", "used twice", func(c *execmgr.DockerConfig) { c.Hosts = append(c.Hosts, c.Hosts[0]) }},
		{"more GPUs than the host has", "host a has 2 GPUs but its executors need 3", func(c *execmgr.DockerConfig) {
			c.Hosts[0].GPUs = 2
			c.Hosts[0].Classes = map[protocol.ExecutorClass]int{protocol.ExecutorClassSpinUp4minGPU24GB: 3}
		}},
		{"GPU count unknown", "set gpus in its [[executors.hosts]] entry", func(c *execmgr.DockerConfig) {
			c.Hosts[0].Classes = map[protocol.ExecutorClass]int{protocol.ExecutorClassSpinUp4minGPU24GB: 2}
		}},
		{"negative GPUs", "GPUs is -1", func(c *execmgr.DockerConfig) { c.Hosts[0].GPUs = -1 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := ok
			cfg.Hosts = slices.Clone(ok.Hosts)
			tc.mutate(&cfg)
			_, err := execmgr.NewDocker(context.Background(), cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("NewDocker: %v, want an error saying %q", err, tc.want)
			}
		})
	}
}

// TestDockerManager runs the Docker manager against a second Docker engine that it starts on a
// loopback TCP port with mutual TLS: a real hello job from a validator through an in-process
// miner whose executors are containers on that engine; a host going away and coming back; an
// executor that never connects, killed; Close; and nothing left behind.
func TestDockerManager(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a second Docker engine and runs a job on it; skipped with -short")
	}
	began := time.Now()
	eng := dockertest.StartTLSEngine(t)
	t.Logf("second engine at %s (and unix://%s): storage driver %s, answered after %v", eng.Host, eng.Socket, eng.Driver, eng.StartTime.Round(time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	// Short paths: the work dir is bind-mounted into containers under the same path.
	tmp, err := os.MkdirTemp("", "hx-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(tmp) })
	workDir := filepath.Join(tmp, "work")
	if err := os.Mkdir(workDir, 0o700); err != nil {
		t.Fatal(err)
	}
	hordeBin, helloBin := filepath.Join(tmp, "horde"), filepath.Join(tmp, "hello")
	var wg sync.WaitGroup
	var hordeErr, helloErr error
	wg.Go(func() { hordeErr = jobimage.CompileStatic(ctx, "github.com/computehorde/horde/cmd/horde", hordeBin) })
	wg.Go(func() { helloErr = jobimage.CompileStatic(ctx, jobimagetest.HelloPackage, helloBin) })
	wg.Wait()
	if err := errors.Join(hordeErr, helloErr); err != nil {
		t.Fatal(err)
	}
	helloTag := jobimagetest.RandomTag()
	if err := jobimage.Build(ctx, eng.Client, jobimage.Spec{Tag: helloTag, Binary: helloBin}); err != nil {
		t.Fatal(err)
	}
	t.Logf("setup (engine, two static builds, hello image) took %v", time.Since(began).Round(time.Millisecond))

	ids := []string{testID("job"), testID("kill")}
	t.Cleanup(func() { checkNoLeftovers(t, eng.Client, ids) })
	logger := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}))
	tlsFiles := &execmgr.TLSFiles{CA: eng.CA, Cert: eng.Cert, Key: eng.Key}

	// The miner listens first: executor containers dial its address.
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var manifestsMu sync.Mutex
	var manifests []protocol.Manifest
	mgr, err := execmgr.NewDocker(ctx, execmgr.DockerConfig{
		Hosts: []execmgr.Host{{
			Name: "tls", Endpoint: eng.Host, TLS: tlsFiles, Classes: map[protocol.ExecutorClass]int{testClass: 1},
		}},
		Image: "horde-executor:test", Binary: hordeBin,
		MinerURL: "ws://" + lis.Addr().String(), ExecutorID: ids[0], WorkDir: workDir,
		Args:         []string{"-v"},
		PollInterval: 200 * time.Millisecond, PingTimeout: 2 * time.Second, StopGrace: 5 * time.Second,
		OnManifestChange: func(m protocol.Manifest) {
			manifestsMu.Lock()
			manifests = append(manifests, m)
			manifestsMu.Unlock()
		},
		Logger: logger.With("manager", "tls"),
	})
	if err != nil {
		lis.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := mgr.Close(); err != nil {
			t.Error(err)
		}
	})
	wantManifest := protocol.Manifest{{Class: testClass, Count: 1}}
	if got := mgr.Manifest(); !slices.Equal(got, wantManifest) {
		t.Fatalf("Manifest() = %v, want %v", got, wantManifest)
	}

	t.Run("hello job", func(t *testing.T) {
		start := time.Now()
		m, v := startSubnet(t, ctx, lis, mgr, mgr.Manifest(), logger)
		res, err := v.RunJob(ctx, m.Hotkey(), protocol.V2JobRequest{
			ExecutorClass: testClass, DockerImage: helloTag, Args: []string{"from", "execmgr"},
			DownloadTimeLimit: 30, ExecutionTimeLimit: 60, UploadTimeLimit: 30,
		})
		if err != nil {
			t.Fatal(err)
		}
		if res.Failed() {
			t.Fatalf("job %s: %s by %s at %s: %s (%s)", res.UUID, res.Status, res.ReportedBy, res.Stage, res.Message, res.Reason)
		}
		if !strings.Contains(res.Stdout, "hello from horde") || !strings.Contains(res.Stdout, "from execmgr") {
			t.Errorf("stdout = %q, want the hello line with the job's args", res.Stdout)
		}
		t.Logf("job completed in %v (validator's view %v)", time.Since(start).Round(time.Millisecond), res.Took.Round(time.Millisecond))
		// The executor exits after its job; the reaper removes its container and frees the slot.
		waitFor(t, 15*time.Second, "the executor container reaped", func() bool {
			return mgr.Running() == 0 && len(containers(t, eng.Client, ids[0])) == 0
		})
	})

	// An executor whose engine failed while it removed its job container (or that was
	// killed) leaves the container behind: the reaper removes it once no executor of the
	// manager runs that job, and leaves alone the job containers of executors it runs.
	t.Run("job container its executor left", func(t *testing.T) {
		create := func(job string) string {
			c, err := eng.Client.ContainerCreate(ctx, &container.Config{
				Image: helloTag, Labels: map[string]string{execmgr.LabelExecutor: ids[0], jobdocker.LabelJobUUID: job},
			}, &container.HostConfig{NetworkMode: "none"}, nil, nil, "")
			if err != nil {
				t.Fatal(err)
			}
			return c.ID
		}
		if _, _, err := mgr.Reserve("owned-job", testClass); err != nil {
			t.Fatal(err)
		}
		owned, orphan := create("owned-job"), create("orphan-job")
		exists := func(id string) bool {
			_, err := eng.Client.ContainerInspect(ctx, id)
			return err == nil
		}
		waitFor(t, 15*time.Second, "removal of the orphan job container", func() bool { return !exists(orphan) })
		if !exists(owned) {
			t.Fatal("the job container of an executor the manager runs was removed")
		}
		mgr.Unreserve("owned-job")
		waitFor(t, 15*time.Second, "removal of the job container once its executor is gone", func() bool { return !exists(owned) })
	})

	// The miner counts a job's executor free as soon as the job ends, while the executor is
	// still on its way out and holds its slot until the reaper sees it gone: a job admitted
	// in between waits for the slot instead of failing to spin up (the fault suite saw 118
	// of 500 jobs end executor_spinup_failed before).
	t.Run("a Start waits for the slot of an executor on its way out", func(t *testing.T) {
		if _, _, err := mgr.Reserve("leaving-job", testClass); err != nil {
			t.Fatal(err)
		}
		started := make(chan error, 1)
		go func() {
			started <- mgr.Start(ctx, miner.ExecutorRequest{Token: "tok-w", JobUUID: "waiting-job", ExecutorClass: testClass})
		}()
		select {
		case err := <-started:
			t.Fatalf("Start with the only slot held returned at once: %v", err)
		case <-time.After(300 * time.Millisecond):
		}
		mgr.Unreserve("leaving-job")
		if err := <-started; err != nil {
			t.Fatalf("Start once the slot freed: %v", err)
		}
		if err := mgr.Kill(ctx, "waiting-job"); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 15*time.Second, "the slot free again", func() bool { return mgr.Running() == 0 })
	})

	t.Run("host goes away and comes back", func(t *testing.T) {
		start := time.Now()
		eng.Stop(t)
		waitFor(t, 10*time.Second, "the stopped host out of the manifest", func() bool {
			return len(mgr.Manifest()) == 0 && !mgr.Hosts()[0].Up
		})
		t.Logf("down after %v: %s", time.Since(start).Round(time.Millisecond), mgr.Hosts()[0].Err)
		// Start waits (for its context: the miner's spin-up time) for the host to come back.
		sctx, cancel := context.WithTimeout(ctx, time.Second)
		err := mgr.Start(sctx, miner.ExecutorRequest{Token: "t", JobUUID: "down-1", ExecutorClass: testClass})
		cancel()
		if err == nil || !strings.Contains(err.Error(), "tls is down") {
			t.Errorf("Start on a down host: %v, want an error saying the host is down", err)
		}
		start = time.Now()
		eng.Restart(t)
		t.Logf("engine restarted in %v", eng.StartTime.Round(time.Millisecond))
		waitFor(t, 10*time.Second, "the restarted host back in the manifest", func() bool {
			return slices.Equal(mgr.Manifest(), wantManifest)
		})
		t.Logf("up again %v after the restart began", time.Since(start).Round(time.Millisecond))
		manifestsMu.Lock()
		defer manifestsMu.Unlock()
		if want := []protocol.Manifest{wantManifest, nil, wantManifest}; !slices.EqualFunc(manifests, want, slices.Equal) {
			t.Errorf("OnManifestChange saw %v, want %v", manifests, want)
		}
	})

	t.Run("kill, bogus host, close", func(t *testing.T) {
		// A miner that accepts connections and never answers: executors hang connecting.
		hole, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer hole.Close()
		closed, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		closedAddr := closed.Addr().String()
		closed.Close()
		// A container an earlier miner process left on the host, labelled as this manager
		// labels its executors. Its stop signal is one it ignores, so it holds its slot for
		// the whole StopGrace before the kill.
		leftover, err := eng.Client.ContainerCreate(ctx, &container.Config{
			Image: helloTag, Cmd: []string{"--sleep", "1m"}, StopSignal: "SIGWINCH",
			Labels: map[string]string{
				execmgr.LabelExecutor: ids[1], execmgr.LabelExecutorClass: string(testClass),
				execmgr.LabelExecutorHost: "sock", execmgr.LabelJob: "earlier-job",
			},
		}, &container.HostConfig{NetworkMode: "none"}, nil, nil, "")
		if err != nil {
			t.Fatal(err)
		}
		if err := eng.Client.ContainerStart(ctx, leftover.ID, container.StartOptions{}); err != nil {
			t.Fatal(err)
		}
		mgr2, err := execmgr.NewDocker(ctx, execmgr.DockerConfig{
			Hosts: []execmgr.Host{
				{Name: "sock", Endpoint: "unix://" + eng.Socket, Classes: map[protocol.ExecutorClass]int{testClass: 1}},
				{Name: "bogus", Endpoint: "tcp://" + closedAddr, TLS: tlsFiles, Classes: map[protocol.ExecutorClass]int{testClass: 3}},
			},
			Image: "horde-executor:test", Binary: hordeBin,
			MinerURL: "ws://" + hole.Addr().String(), ExecutorID: ids[1], WorkDir: workDir,
			PollInterval: 200 * time.Millisecond, PingTimeout: 2 * time.Second, StopGrace: 2 * time.Second,
			Logger: logger.With("manager", "sock"),
		})
		if err != nil {
			t.Fatal(err)
		}
		closedMgr := false
		defer func() {
			if !closedMgr {
				mgr2.Close()
			}
		}()
		if got := mgr2.Manifest(); !slices.Equal(got, wantManifest) {
			t.Errorf("Manifest() with a bogus host = %v, want %v", got, wantManifest)
		}
		if hs := mgr2.Hosts(); len(hs) != 2 || !hs[0].Up || hs[1].Up || hs[1].Err == "" {
			t.Errorf("Hosts() = %+v, want sock up and bogus down with an error", hs)
		}

		// The leftover is recounted, stopped and removed in the background.
		if hs := mgr2.Hosts(); hs[0].Running[testClass] != 1 {
			t.Errorf("right after NewDocker, sock runs %v, want the leftover counted", hs[0].Running)
		}
		// Shorter than the leftover's 2 s StopGrace: the wait for its slot ends first.
		sctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		err = mgr2.Start(sctx, miner.ExecutorRequest{Token: "tok-0", JobUUID: "job-0", ExecutorClass: testClass})
		cancel()
		if err == nil || !strings.Contains(err.Error(), "sock runs 1 of 1") {
			t.Errorf("Start while the leftover holds the slot: %v, want an error saying sock runs 1 of 1", err)
		}
		start := time.Now()
		waitFor(t, 15*time.Second, "the leftover executor stopped and removed", func() bool {
			return mgr2.Running() == 0 && len(containers(t, eng.Client, ids[1])) == 0
		})
		t.Logf("the leftover was removed %v after NewDocker returned", time.Since(start).Round(time.Millisecond))
		if took := time.Since(start); took < time.Second {
			t.Errorf("the leftover was gone after %v: it should have held its slot for the 2 s StopGrace", took)
		}

		if err := mgr2.Start(ctx, miner.ExecutorRequest{Token: "tok-a", JobUUID: "job-a", ExecutorClass: testClass}); err != nil {
			t.Fatal(err)
		}
		waitRunning(t, eng.Client, ids[1], "job-a")
		// Start waits for a slot to free until its context ends (the miner's spin-up time).
		sctx, cancel = context.WithTimeout(ctx, time.Second)
		err = mgr2.Start(sctx, miner.ExecutorRequest{Token: "tok-b", JobUUID: "job-b", ExecutorClass: testClass})
		cancel()
		if err == nil || !strings.Contains(err.Error(), "bogus is down") || !strings.Contains(err.Error(), "sock runs 1 of 1") ||
			!errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Start with no free executor: %v, want an error naming both hosts' states and the deadline", err)
		}
		start = time.Now()
		if err := mgr2.Kill(ctx, "job-a"); err != nil {
			t.Fatal(err)
		}
		t.Logf("Kill took %v", time.Since(start).Round(time.Millisecond))
		if n := len(containers(t, eng.Client, ids[1])); n != 0 || mgr2.Running() != 0 {
			t.Errorf("after Kill: %d containers on the engine, %d held, want none", n, mgr2.Running())
		}

		if err := mgr2.Start(ctx, miner.ExecutorRequest{Token: "tok-c", JobUUID: "job-c", ExecutorClass: testClass}); err != nil {
			t.Fatalf("Start after Kill freed the slot: %v", err)
		}
		waitRunning(t, eng.Client, ids[1], "job-c")
		start = time.Now()
		closedMgr = true
		if err := mgr2.Close(); err != nil {
			t.Error(err)
		}
		took := time.Since(start)
		t.Logf("Close stopped a running executor in %v", took.Round(time.Millisecond))
		if took > 2*time.Second {
			t.Errorf("Close took %v: the executor ignored SIGTERM and waited for the kill", took)
		}
		if n := len(containers(t, eng.Client, ids[1])); n != 0 {
			t.Errorf("after Close: %d executor containers left", n)
		}
		if err := mgr2.Start(ctx, miner.ExecutorRequest{Token: "tok-d", JobUUID: "job-d", ExecutorClass: testClass}); err == nil {
			t.Error("Start after Close succeeded")
		}
	})
}

// startSubnet serves a miner on lis with the given executors, announces its axon on a
// simulated chain, and returns it and a validator that can reach it. Everything stops when the
// test ends.
func startSubnet(t *testing.T, ctx context.Context, lis net.Listener, execs miner.ExecutorManager, manifest protocol.Manifest, logger *slog.Logger) (*miner.Miner, *validator.Validator) {
	t.Helper()
	const netUID chain.NetUID = 12
	const tao = 1_000_000_000
	alice, err := keys.FromURI("//Alice")
	if err != nil {
		t.Fatal(err)
	}
	bob, err := keys.FromURI("//Bob")
	if err != nil {
		t.Fatal(err)
	}
	permit := true
	ch, err := sim.New(sim.Genesis{
		NetUID: netUID, Hyperparams: sim.DefaultHyperparams(), BlockTime: time.Second, RelaxedAxonIPs: true,
		Neurons: []sim.NeuronSpec{
			{Hotkey: chain.Hotkey(alice.Public().SS58()), Coldkey: "5TestValidatorColdkey", Stake: 10_000 * tao, ValidatorPermit: &permit},
			{Hotkey: chain.Hotkey(bob.Public().SS58()), Coldkey: "5TestMinerColdkey"},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	openStore := func() *store.DB {
		db, err := store.Open(ctx, store.Config{DSN: "sqlite::memory:"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	}
	var caches []*chain.MetagraphCache
	for range 2 {
		mc, err := chain.NewMetagraphCache(chain.CacheConfig{Chain: ch, NetUID: netUID, Logger: logger})
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() { _ = mc.Run(runCtx) })
		if err := mc.Wait(ctx); err != nil {
			t.Fatal(err)
		}
		caches = append(caches, mc)
	}
	axon := netip.MustParseAddrPort(lis.Addr().String())
	m, err := miner.New(miner.Config{
		Keypair: bob, Chain: ch, Metagraph: caches[0], NetUID: netUID, Store: openStore(), Executors: execs,
		Manifest: manifest, MinValidatorStake: 1000 * tao, Axon: axon, Logger: logger,
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: m.Handler(), ReadHeaderTimeout: 10 * time.Second}
	wg.Go(func() { _ = srv.Serve(lis) })
	t.Cleanup(func() {
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer scancel()
		_ = srv.Shutdown(sctx)
		_ = m.Close()
	})
	if st := m.CheckAxon(ctx); !st.OK {
		t.Fatalf("miner axon: %v", st.Err)
	}
	ch.Advance(1)
	for _, mc := range caches {
		if err := mc.Refresh(ctx); err != nil {
			t.Fatal(err)
		}
	}
	wg.Go(func() { ch.Run(runCtx) })
	v, err := validator.New(validator.Config{
		Keypair: alice, Chain: ch, Metagraph: caches[1], NetUID: netUID, Store: openStore(),
		// An executor container and its connection take longer than always_on.test's 3 s
		// spin-up on a loaded 2-core machine.
		ExecutorStartupTimeLimit: 30 * time.Second,
		Logger:                   logger,
	})
	if err != nil {
		t.Fatal(err)
	}
	return m, v
}

func testID(what string) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return "horde-execmgr-test-" + what + "-" + hex.EncodeToString(b[:])
}

// containers lists every container (executors and jobs) labelled with executor ID id.
func containers(t *testing.T, cli *client.Client, id string) []container.Summary {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	list, err := cli.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", execmgr.LabelExecutor+"="+id))})
	if err != nil {
		t.Fatal(err)
	}
	return list
}

// waitRunning waits until the executor container of job runs on the engine, and checks that
// it keeps running (it hangs connecting to a miner that never answers).
func waitRunning(t *testing.T, cli *client.Client, id, job string) {
	t.Helper()
	running := func() bool {
		for _, c := range containers(t, cli, id) {
			if c.Labels[execmgr.LabelJob] == job && c.State == container.StateRunning {
				return true
			}
		}
		return false
	}
	waitFor(t, 10*time.Second, "the executor container of "+job+" running", running)
	time.Sleep(500 * time.Millisecond)
	if !running() {
		t.Fatalf("the executor container of %s stopped by itself", job)
	}
}

// checkNoLeftovers fails the test if a container labelled with one of ids is on the second
// engine or on the default engine (when one answers), and removes it.
func checkNoLeftovers(t *testing.T, second *client.Client, ids []string) {
	clis := []*client.Client{second}
	if def, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation()); err == nil {
		defer def.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		if _, err := def.Ping(ctx); err == nil {
			clis = append(clis, def)
		}
		cancel()
	}
	for _, cli := range clis {
		for _, id := range ids {
			for _, c := range containers(t, cli, id) {
				t.Errorf("left behind on %s: container %s %v (%s) labels %v", cli.DaemonHost(), c.ID[:12], c.Names, c.State, c.Labels)
				_ = cli.ContainerRemove(context.Background(), c.ID, container.RemoveOptions{Force: true})
			}
		}
	}
}

func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s after %v", what, limit)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
