package main

import (
	"bufio"
	"context"
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

// TestCLIMinerRunsAJob runs `horde miner run` as its own process against `horde chain sim`
// (another process): a validator in this test process finds it through the chain, gets its
// manifest and runs the hello job to completion on a process executor and the local Docker
// engine; SIGTERM then stops the miner cleanly.
func TestCLIMinerRunsAJob(t *testing.T) {
	needDocker(t)
	image := jobimagetest.Hello(t)
	sim := startChainSim(t, minerGenesis)

	dir := t.TempDir()
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
url = "`+sim.url+`"
identity = "miner"
[executors]
classes = { "always_on.test" = 1 }
start_timeout = "30s"
`), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(hordeBin, "miner", "run", "--config", cfg)
	cmd.Env = append(os.Environ(), "HORDE_MINER_CHAIN_TOKEN=miner-token")
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
	var addr, port string
	select {
	case line := <-lines:
		m := minerServing.FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("first stdout line %q\n--- stderr ---\n%s", line, stderr.String())
		}
		addr, port = m[1], m[2]
	case <-time.After(30 * time.Second):
		t.Fatalf("the miner did not serve within 30 s\n--- stderr ---\n%s", stderr.String())
	}
	if strings.Contains(stderr.String(), "miner-token") {
		t.Errorf("the token is in the log:\n%s", stderr.String())
	}

	// Pylon cannot announce axons; the simulated chain's admin API does it for the test.
	var none struct{}
	sim.call(t, http.MethodPut, "/sim/neurons/"+devBob+"/axon", "", `{"ip": "127.0.0.1", "port": `+port+`}`, &none)
	sim.call(t, http.MethodPost, "/sim/advance", "", `{"blocks": 1}`, &none)

	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	alice, err := keys.FromURI("//Alice")
	if err != nil {
		t.Fatal(err)
	}
	pc, err := pylon.New(ctx, pylon.Config{URL: sim.url, Identity: "validator", Token: "validator-token", Hotkey: devAlice})
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
	if n, _ := cache.Neuron(devBob); n.Axon.AddrPort().String() != addr {
		t.Fatalf("the miner's axon on chain is %v, not %s", n.Axon, addr)
	}
	db, err := store.Open(ctx, store.Config{DSN: "sqlite:" + filepath.Join(dir, "validator.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	v, err := validator.New(validator.Config{Keypair: alice, Chain: pc, Metagraph: cache, NetUID: 12, Store: db, Classes: hwclass.Default()})
	if err != nil {
		t.Fatal(err)
	}
	res, err := v.RunJob(ctx, devBob, protocol.V2JobRequest{
		ExecutorClass: protocol.ExecutorClassAlwaysOnTest, DockerImage: image, Args: []string{"from", "a", "miner", "process"},
		DownloadTimeLimit: 30, ExecutionTimeLimit: 60, UploadTimeLimit: 30,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != protocol.JobStatusCompleted || !strings.Contains(res.Stdout, "from a miner process") {
		t.Fatalf("job %+v\n--- miner stderr ---\n%s", res, stderr.String())
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
	wantContains(t, "miner stderr", stderr.String(), "miner stopping", "executor exited")
}
