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

	alice, err := keys.FromURI("//Alice")
	if err != nil {
		t.Fatal(err)
	}
	vdir := filepath.Join(dir, "v")
	if _, err := keys.WriteHotkey(filepath.Join(vdir, "wallets"), "validator", "default", alice, ""); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(vdir, "validator.toml")
	if err := os.WriteFile(cfg, []byte(`
api_listen = "127.0.0.1:0"
data_dir = "`+filepath.Join(vdir, "data")+`"
shutdown_grace = "20s"
receipts_interval = "500ms"
allow_egress = ["127.0.0.1/32"]
[wallet]
path = "`+filepath.Join(vdir, "wallets")+`"
name = "validator"
[chain]
url = "`+sim.url+`"
identity = "validator"
`), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(hordeBin, "validator", "run", "--config", cfg)
	cmd.Env = append(os.Environ(), "HORDE_VALIDATOR_CHAIN_TOKEN=validator-token")
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	lines := make(chan string, 4)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	var api string
	select {
	case line := <-lines:
		mm := validatorServing.FindStringSubmatch(line)
		if mm == nil {
			t.Fatalf("first stdout line %q\n%s", line, stderr.String())
		}
		api = "http://" + mm[1]
	case <-time.After(30 * time.Second):
		t.Fatalf("the validator did not serve within 30 s\n%s", stderr.String())
	}

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
	wantContains(t, "horde validator scores", scores.stdout, devBob, "always_on.test", "relative_value")
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
