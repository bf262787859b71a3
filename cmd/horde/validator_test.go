package main

import (
	"bufio"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/computehorde/horde/internal/jobimage/jobimagetest"
	"github.com/computehorde/horde/internal/keys"
	"github.com/computehorde/horde/internal/protocol"
)

var validatorServing = regexp.MustCompile(`^horde validator: job API on (127\.0\.0\.1:\d+)$`)

// TestCLIValidatorRoutesToMinerProcess: the chain sim, a miner and a validator, each its own
// process. A job posted to the validator's API is routed to the miner (found through the
// chain) and completes on its executor; SIGTERM stops the validator cleanly.
func TestCLIValidatorRoutesToMinerProcess(t *testing.T) {
	needDocker(t)
	image := jobimagetest.Hello(t)
	sim := startChainSim(t, minerGenesis)
	dir := t.TempDir()
	m := startMiner(t, writeMinerConfig(t, filepath.Join(dir, "m"), sim.url))
	announce(t, sim, m.port)

	vp := startValidator(t, writeValidatorConfig(t, filepath.Join(dir, "v"), sim.url))
	cfg, api, stderr := vp.config, vp.api, vp.stderr
	cmd, lines := vp.cmd, vp.lines

	// The validator links to the miner as soon as it sees its axon, and learns its manifest
	// before any job.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		miners := horde(t, runOpts{}, "validator", "miners", "--config", cfg)
		if strings.Contains(miners.stdout, devBob) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the validator never learned the miner's manifest:\n%s\n%s", miners, stderr.String())
		}
	}

	spec, err := protocol.Encode(&protocol.V2JobRequest{
		UUID:          uuid.NewString(),
		ExecutorClass: protocol.ExecutorClassAlwaysOnTest, DockerImage: image, Args: []string{"--sleep", "2s", "routed", "by", "a", "validator", "process"},
		DownloadTimeLimit: 30, ExecutionTimeLimit: 60, UploadTimeLimit: 30,
	})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(api+"/api/v1/jobs", "application/json", strings.NewReader(string(spec)))
	if err != nil {
		t.Fatal(err)
	}
	var accepted struct{ UUID string }
	_ = json.NewDecoder(resp.Body).Decode(&accepted)
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted || accepted.UUID == "" {
		t.Fatalf("POST /api/v1/jobs: %s %+v", resp.Status, accepted)
	}
	var job struct {
		Status string
		Result struct{ Stdout string }
	}
	for deadline := time.Now().Add(90 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		resp, err := http.Get(api + "/api/v1/jobs/" + accepted.UUID)
		if err != nil {
			t.Fatal(err)
		}
		_ = json.NewDecoder(resp.Body).Decode(&job)
		resp.Body.Close()
		if job.Status != "routing" || time.Now().After(deadline) {
			break
		}
	}
	if job.Status != string(protocol.JobStatusCompleted) || !strings.Contains(job.Result.Stdout, "routed by a validator process") {
		t.Fatalf("job %+v\n--- validator ---\n%s\n--- miner ---\n%s", job, stderr.String(), m.stderr.String())
	}
	// The validator signed the job's work interval, the miner countersigned it, and the
	// validator pulled it back from the miner's receipts pages: the scores show the seconds.
	var scores result
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		scores = horde(t, runOpts{}, "validator", "scores", "--config", cfg)
		if strings.Contains(scores.stdout, devBob) || time.Now().After(deadline) {
			break
		}
	}
	wantContains(t, "horde validator scores", scores.stdout, "the running validator's scores", devBob, "always_on.test", "relative_value")
	miners := horde(t, runOpts{}, "validator", "miners", "--config", cfg)
	wantContains(t, "horde validator miners", miners.stdout, devBob, "always_on.test", "1 miners heard from")

	bad, err := http.Post(api+"/api/v1/jobs", "application/json", strings.NewReader(`{"message_type":"V2JobRequest"}`))
	if err != nil {
		t.Fatal(err)
	}
	bad.Body.Close()
	if bad.StatusCode != http.StatusBadRequest {
		t.Errorf("a malformed job: %s", bad.Status)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		for range lines {
		}
		done <- cmd.Wait()
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("still running 30 s after SIGTERM\n%s", stderr.String())
	}
	wantContains(t, "validator stderr", stderr.String(), "validator stopping")
}

// validatorProcess is a running `horde validator run`.
type validatorProcess struct {
	cmd    *exec.Cmd
	config string
	api    string // http://127.0.0.1:PORT
	stderr *lockedBuffer
	lines  chan string
}

// writeValidatorConfig writes a validator configuration for //Alice on the chain sim at
// simURL, with its wallet and data under dir, and returns its path.
func writeValidatorConfig(t *testing.T, dir, simURL string, topLevel ...string) string {
	t.Helper()
	alice, err := keys.FromURI("//Alice")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := keys.WriteHotkey(filepath.Join(dir, "wallets"), "validator", "default", alice, ""); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "validator.toml")
	if err := os.WriteFile(cfg, []byte(strings.Join(topLevel, "\n")+`
api_listen = "127.0.0.1:0"
data_dir = "`+filepath.Join(dir, "data")+`"
shutdown_grace = "20s"
receipts_interval = "500ms"
allow_egress = ["127.0.0.1/32"]
[wallet]
path = "`+filepath.Join(dir, "wallets")+`"
name = "validator"
[chain]
url = "`+simURL+`"
identity = "validator"
`), 0o600); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// startValidator starts `horde validator run --config cfg` and waits for its API.
func startValidator(t *testing.T, cfg string) *validatorProcess {
	t.Helper()
	p := &validatorProcess{cmd: exec.Command(hordeBin, "validator", "run", "--config", cfg), config: cfg, stderr: &lockedBuffer{}, lines: make(chan string, 4)}
	p.cmd.Env = append(os.Environ(), "HORDE_VALIDATOR_CHAIN_TOKEN=validator-token")
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
		mm := validatorServing.FindStringSubmatch(line)
		if mm == nil {
			t.Fatalf("first stdout line %q\n%s", line, p.stderr.String())
		}
		p.api = "http://" + mm[1]
	case <-time.After(30 * time.Second):
		t.Fatalf("the validator did not serve within 30 s\n%s", p.stderr.String())
	}
	return p
}

// TestCLIValidatorKilledMidJob kills the validator with SIGKILL while its job runs on the
// miner, then starts it again: the job is settled as horde_failed, reported by the validator.
// After a clean stop, a third start restores the books the second saved.
func TestCLIValidatorKilledMidJob(t *testing.T) {
	needDocker(t)
	image := jobimagetest.Hello(t)
	sim := startChainSim(t, minerGenesis)
	dir := t.TempDir()
	m := startMiner(t, writeMinerConfig(t, filepath.Join(dir, "m"), sim.url))
	announce(t, sim, m.port)
	cfg := writeValidatorConfig(t, filepath.Join(dir, "v"), sim.url)
	vp := startValidator(t, cfg)

	id := uuid.NewString()
	spec, err := protocol.Encode(&protocol.V2JobRequest{UUID: id, ExecutorClass: protocol.ExecutorClassAlwaysOnTest, DockerImage: image,
		Args: []string{"--sleep", "30s"}, DownloadTimeLimit: 30, ExecutionTimeLimit: 60, UploadTimeLimit: 30})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(vp.api+"/api/v1/jobs", "application/json", strings.NewReader(string(spec)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	// The job runs once the miner has it in flight.
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		st := horde(t, runOpts{}, "miner", "status", "--config", m.config)
		if strings.Contains(st.stdout, id) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the job never ran on the miner\n%s\n%s", st, vp.stderr.String())
		}
	}
	if err := vp.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = vp.cmd.Wait()

	again := startValidator(t, cfg)
	wantContains(t, "restarted validator's log", again.stderr.String(), "jobs of an earlier run are horde_failed")
	var job struct{ Status string }
	r, err := http.Get(again.api + "/api/v1/jobs/" + id)
	if err != nil {
		t.Fatal(err)
	}
	_ = json.NewDecoder(r.Body).Decode(&job)
	r.Body.Close()
	if job.Status != string(protocol.JobStatusHordeFailed) {
		t.Errorf("the killed validator's job after the restart: %+v", job)
	}
	if err := again.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	_ = again.cmd.Wait()

	// A clean stop saved the books (manifests, factors, penalties): the next start has them.
	third := startValidator(t, cfg)
	wantContains(t, "the third start's log", third.stderr.String(), "books restored")
	if err := third.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	_ = third.cmd.Wait()
}
