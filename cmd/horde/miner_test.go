package main

import (
	"bufio"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/computehorde/horde/internal/chain"
	"github.com/computehorde/horde/internal/chain/pylon"
	"github.com/computehorde/horde/internal/hwclass"
	"github.com/computehorde/horde/internal/jobimage/jobimagetest"
	"github.com/computehorde/horde/internal/keys"
	"github.com/computehorde/horde/internal/minerd"
	"github.com/computehorde/horde/internal/protocol"
	"github.com/computehorde/horde/internal/store"
	"github.com/computehorde/horde/internal/validator"
)

const minerGenesis = `{
	"netuid": 12,
	"relaxed_axon_ips": true,
	"neurons": [
		{"hotkey": "` + devAlice + `", "stake": 10000000000000, "validator_permit": true},
		{"hotkey": "` + devBob + `", "validator_permit": false}
	],
	"identities": [
		{"name": "validator", "hotkey": "` + devAlice + `", "token": "validator-token"},
		{"name": "miner", "hotkey": "` + devBob + `", "token": "miner-token"}
	]
}`

var minerServing = regexp.MustCompile(`^horde miner: serving on (127\.0\.0\.1:(\d+))$`)

// minerProcess is a running `horde miner run`.
type minerProcess struct {
	cmd    *exec.Cmd
	config string
	addr   string // where it serves
	port   string
	stderr *lockedBuffer
	lines  chan string
}

// writeMinerConfig writes a miner configuration for //Bob on the chain sim at simURL, with
// its wallet and data under dir, and returns its path.
func writeMinerConfig(t *testing.T, dir, simURL string, executorKeys ...string) string {
	t.Helper()
	bob, err := keys.FromURI("//Bob")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := keys.WriteHotkey(filepath.Join(dir, "wallets"), "miner", "default", bob, ""); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "miner.toml")
	if err := os.WriteFile(cfg, []byte(`
listen = "127.0.0.1:0"
data_dir = "`+filepath.Join(dir, "data")+`"
shutdown_grace = "20s"
[wallet]
path = "`+filepath.Join(dir, "wallets")+`"
name = "miner"
[chain]
url = "`+simURL+`"
identity = "miner"
[executors]
classes = { "always_on.test" = 1 }
start_timeout = "30s"
`+strings.Join(executorKeys, "\n")+`
`), 0o600); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// startMiner starts `horde miner run --config cfg` and waits until it serves.
func startMiner(t *testing.T, cfg string) *minerProcess {
	t.Helper()
	p := &minerProcess{cmd: exec.Command(hordeBin, "miner", "run", "--config", cfg), config: cfg, stderr: &lockedBuffer{}, lines: make(chan string, 4)}
	p.cmd.Env = append(os.Environ(), "HORDE_MINER_CHAIN_TOKEN=miner-token")
	p.cmd.Stderr = p.stderr
	out, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			_ = p.cmd.Process.Kill()
			_ = p.cmd.Wait()
		}
	})
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
		close(p.lines)
	}()
	select {
	case line := <-p.lines:
		m := minerServing.FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("first stdout line %q\n--- stderr ---\n%s", line, p.stderr.String())
		}
		p.addr, p.port = m[1], m[2]
	case <-time.After(30 * time.Second):
		t.Fatalf("the miner did not serve within 30 s\n--- stderr ---\n%s", p.stderr.String())
	}
	return p
}

// wait waits for the process to exit after a signal and returns its error.
func (p *minerProcess) wait(t *testing.T) error {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		for range p.lines {
		}
		done <- p.cmd.Wait()
	}()
	select {
	case err := <-done:
		return err
	case <-time.After(30 * time.Second):
		t.Fatalf("the miner still runs 30 s after the signal\n%s", p.stderr.String())
		return nil
	}
}

// announce puts the miner's axon on the simulated chain (Pylon cannot announce axons; the
// chain sim's admin API does it for the test) and produces the block that shows it.
func announce(t *testing.T, sim *chainSimProcess, port string) {
	t.Helper()
	var none struct{}
	sim.call(t, http.MethodPut, "/sim/neurons/"+devBob+"/axon", "", `{"ip": "127.0.0.1", "port": `+port+`}`, &none)
	sim.call(t, http.MethodPost, "/sim/advance", "", `{"blocks": 1}`, &none)
}

// testValidator is //Alice as a validator in this test process, reading the chain sim
// through the Pylon client.
func testValidator(t *testing.T, ctx context.Context, simURL, dir string) (*validator.Validator, *chain.MetagraphCache) {
	t.Helper()
	alice, err := keys.FromURI("//Alice")
	if err != nil {
		t.Fatal(err)
	}
	pc, err := pylon.New(ctx, pylon.Config{URL: simURL, Identity: "validator", Token: "validator-token", Hotkey: devAlice})
	if err != nil {
		t.Fatal(err)
	}
	cache, err := chain.NewMetagraphCache(chain.CacheConfig{Chain: pc, NetUID: 12, Interval: time.Second, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if err := cache.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	db, err := store.Open(ctx, store.Config{DSN: "sqlite:" + filepath.Join(dir, "validator.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	v, err := validator.New(validator.Config{Keypair: alice, Chain: pc, Metagraph: cache, NetUID: 12, Store: db, Classes: hwclass.Default()})
	if err != nil {
		t.Fatal(err)
	}
	return v, cache
}

func helloSpec(image string, args ...string) protocol.V2JobRequest {
	return protocol.V2JobRequest{
		ExecutorClass: protocol.ExecutorClassAlwaysOnTest, DockerImage: image, Args: args,
		DownloadTimeLimit: 30, ExecutionTimeLimit: 60, UploadTimeLimit: 30,
	}
}

// TestCLIMinerRunsAJob runs `horde miner run` as its own process against `horde chain sim`
// (another process): a validator in this test process finds it through the chain, gets its
// manifest and runs the hello job to completion on a process executor and the local Docker
// engine; SIGTERM then stops the miner cleanly.
func TestCLIMinerRunsAJob(t *testing.T) {
	needDocker(t)
	image := jobimagetest.Hello(t)
	sim := startChainSim(t, minerGenesis)
	dir := t.TempDir()
	m := startMiner(t, writeMinerConfig(t, dir, sim.url))
	if strings.Contains(m.stderr.String(), "miner-token") {
		t.Errorf("the token is in the log:\n%s", m.stderr.String())
	}
	announce(t, sim, m.port)

	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	v, cache := testValidator(t, ctx, sim.url, dir)
	if n, _ := cache.Neuron(devBob); n.Axon.AddrPort().String() != m.addr {
		t.Fatalf("the miner's axon on chain is %v, not %s", n.Axon, m.addr)
	}
	res, err := v.RunJob(ctx, devBob, helloSpec(image, "from", "a", "miner", "process"))
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != protocol.JobStatusCompleted || !strings.Contains(res.Stdout, "from a miner process") {
		t.Fatalf("job %+v\n--- miner stderr ---\n%s", res, m.stderr.String())
	}

	// The seed's reachability check, and the operator's terminal view.
	resp, err := http.Get("http://" + m.addr + "/admin/login/")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("GET /admin/login/: %v %v", resp, err)
	}
	if resp != nil {
		resp.Body.Close()
	}
	st := horde(t, runOpts{}, "miner", "status", "--config", m.config)
	if st.code != 0 {
		t.Errorf("horde miner status:\n%s", st)
	}
	jobs := horde(t, runOpts{}, "miner", "jobs", "--config", m.config)
	if jobs.code != 0 {
		t.Errorf("horde miner jobs:\n%s", jobs)
	}
	wantContains(t, "horde miner jobs", jobs.stdout, res.UUID, "finished", "V0JobFinishedRequest", "1 jobs in the last 24h0m0s")
	// A configuration naming another data_dir is refused, and no empty database appears there.
	elsewhere := filepath.Join(t.TempDir(), "nowhere")
	wrong := horde(t, runOpts{env: []string{"HORDE_MINER_DATA_DIR=" + elsewhere}}, "miner", "jobs", "--config", m.config)
	if wrong.code == 0 || !strings.Contains(wrong.stderr, "no sqlite database at "+filepath.Join(elsewhere, "miner.db")) ||
		!strings.Contains(wrong.stderr, "has the miner run") {
		t.Errorf("horde miner jobs on a data_dir the miner never used:\n%s", wrong)
	}
	if _, err := os.Stat(elsewhere); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("horde miner jobs created %s: %v", elsewhere, err)
	}
	wantContains(t, "horde miner status", st.stdout, "miner "+devBob, "always_on.test  1         true", "PROBLEM: no validator is connected", "axon: not checked")

	if err := m.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := m.wait(t); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, m.stderr.String())
	}
	wantContains(t, "miner stderr", m.stderr.String(), "miner stopping", "executor exited")
}

// TestCLIMinerKilledMidJob kills the miner with SIGKILL while its job's container runs, then
// starts it again: the job is settled as failed in the miner's database, its validator saw
// a horde failure, and no container of the miner's executors is left on the engine.
func TestCLIMinerKilledMidJob(t *testing.T) {
	needDocker(t)
	image := jobimagetest.Hello(t)
	sim := startChainSim(t, minerGenesis)
	dir := t.TempDir()
	cfg := writeMinerConfig(t, dir, sim.url)
	m := startMiner(t, cfg)
	announce(t, sim, m.port)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	v, _ := testValidator(t, ctx, sim.url, dir)

	type outcome struct {
		res *validator.JobResult
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		res, err := v.RunJob(ctx, devBob, helloSpec(image, "--sleep", "60s"))
		done <- outcome{res, err}
	}()
	label := "label=horde.executor=" + minerd.ExecutorID(filepath.Join(dir, "data"))
	containers := func() string {
		out, err := exec.Command("docker", "ps", "-a", "-q", "--filter", label).Output()
		if err != nil {
			t.Fatalf("docker ps: %v", err)
		}
		return strings.TrimSpace(string(out))
	}
	for deadline := time.Now().Add(60 * time.Second); containers() == ""; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no job container within 60 s\n%s", m.stderr.String())
		}
	}

	if err := m.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = m.wait(t)
	got := <-done
	if got.err != nil || got.res.Status != protocol.JobStatusHordeFailed {
		t.Errorf("the validator's view of the job: %+v, %v", got.res, got.err)
	}

	// The killed miner's executor got SIGTERM with it and removes its container; the
	// restarted miner sweeps whatever is left. Either way none may stay.
	again := startMiner(t, cfg)
	for deadline := time.Now().Add(30 * time.Second); containers() != ""; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("containers left 30 s after the restart: %s\n%s", containers(), again.stderr.String())
		}
	}
	wantContains(t, "restarted miner's stderr", again.stderr.String(), "jobs of an earlier run failed")
	db, err := store.Open(ctx, store.Config{DSN: "sqlite:" + filepath.Join(dir, "data", "miner.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if j, err := db.GetJob(ctx, got.res.UUID); err != nil || j.Status != "failed" {
		t.Errorf("the job in the miner's database: %+v, %v", j, err)
	}
	if err := again.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := again.wait(t); err != nil {
		t.Errorf("exit after SIGTERM: %v\n%s", err, again.stderr.String())
	}
}
