package installtest

// TestInstallOverSSH runs the install scripts as an operator would, against servers on a
// Docker network of its own: Debian containers booted with systemd as PID 1 and sshd (and one
// whose PID 1 is sshd, which the scripts must refuse), from an image built with debootstrap
// once per recipe and kept (see serverImage). The miner's server has no engine of its own: it
// is given the host engine's socket, and its data directory at the same path as on the host,
// so that the job directories its executors hand the engine exist where the engine looks.
// The chain is `horde chain sim` on the network's gateway. Everything a run creates
// (containers, the network, processes, files) carries the run's label or lives in the test's
// temporary directories and is removed by t.Cleanup, on failure too; only the server image
// stays, as the cache.

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/computehorde/horde/internal/jobimage/jobimagetest"
	"github.com/computehorde/horde/internal/keys"
	"github.com/computehorde/horde/internal/protocol"
	"github.com/computehorde/horde/internal/syncbuf"
)

const (
	// runLabel is on every container and network a run creates; its value is the run's ID.
	runLabel = "horde.installtest"
	// recipeLabel is on the server image; its value is the hash of the recipe it was built
	// from, so an image of an older recipe is never reused.
	recipeLabel = "horde.installtest.recipe"
	imageRepo   = "horde-installtest/server"
	// recipeVersion is bumped by hand when the way the image is built changes in a way the
	// recipe text below does not show.
	recipeVersion = 1
)

var (
	repoRoot string
	tmpRoot  string

	buildOnce sync.Once
	hordeBin  string
	buildErr  error
)

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	var err error
	if repoRoot, err = filepath.Abs(filepath.Join("..", "..")); err != nil {
		fmt.Fprintln(os.Stderr, "installtest:", err)
		return 1
	}
	if tmpRoot, err = os.MkdirTemp("", "horde-installtest-"); err != nil {
		fmt.Fprintln(os.Stderr, "installtest:", err)
		return 1
	}
	defer os.RemoveAll(tmpRoot)
	code := m.Run()
	jobimagetest.Cleanup()
	return code
}

// horde builds the horde binary once per process as the scripts' default does (static,
// CGO_ENABLED=0), so that the servers run it whatever their libc.
func horde(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		hordeBin = filepath.Join(tmpRoot, "horde")
		cmd := exec.Command("go", "build", "-trimpath", "-o", hordeBin, "./cmd/horde")
		cmd.Dir = repoRoot
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("CGO_ENABLED=0 go build ./cmd/horde: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return hordeBin
}

// script runs one of the install scripts with args and the environment env (KEY=VALUE, over
// this process's environment less any HORDE_ variable, so that the caller's shell cannot
// change what is tested) and returns its combined output and exit status.
func script(ctx context.Context, name string, env []string, args ...string) (string, int, error) {
	cmd := exec.CommandContext(ctx, "bash", append([]string{filepath.Join(repoRoot, "scripts", name)}, args...)...)
	cmd.Dir = repoRoot
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "HORDE_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	cmd.WaitDelay = 5 * time.Second
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		return out.String(), ee.ExitCode(), nil
	case err != nil:
		return out.String(), -1, err
	}
	return out.String(), 0, nil
}

// TestInstallScriptsUsage checks the scripts' help and the mistakes they catch before they
// connect anywhere, and that shellcheck finds nothing (where shellcheck is installed).
func TestInstallScriptsUsage(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	hotkey := filepath.Join(t.TempDir(), "wallets", "w", "hotkeys", "h")
	if err := os.MkdirAll(filepath.Dir(hotkey), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(hotkey, []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, script string
		args         []string
		code         int
		want         []string
		notWant      string
	}{
		{"miner help", "install_miner.sh", []string{"--help"}, 0,
			[]string{"Usage: scripts/install_miner.sh [options] SSH_DESTINATION HOTKEY_PATH", "--classes", "/etc/horde/miner.toml", "HORDE_CHAIN_TOKEN"}, ""},
		{"validator help", "install_validator.sh", []string{"-h"}, 0,
			[]string{"Usage: scripts/install_validator.sh", "HORDE_VALIDATOR_*", "job API port"}, "--classes"},
		{"no arguments", "install_miner.sh", nil, 1, []string{"give SSH_DESTINATION and HOTKEY_PATH"}, ""},
		{"no hotkey file", "install_miner.sh", []string{"root@192.0.2.1", "/nonexistent/hotkey"}, 1, []string{"is not a file"}, ""},
		{"bad wallet name", "install_validator.sh", []string{"--wallet", "a/b", "root@192.0.2.1", hotkey}, 1, []string{"--wallet 'a/b'"}, ""},
		{"miner option", "install_validator.sh", []string{"--classes", "x=1", "root@192.0.2.1", hotkey}, 1, []string{"--classes is a miner option"}, ""},
		{"bad classes", "install_miner.sh", []string{"--classes", "always_on.test", "root@192.0.2.1", hotkey}, 1, []string{"class=count"}, ""},
		{"quoted env", "install_miner.sh", []string{"--env", `K=a"b`, "root@192.0.2.1", hotkey}, 1, []string{"no quotes or backslashes"}, ""},
		{"bad port", "install_miner.sh", []string{"--port", "70000", "root@192.0.2.1", hotkey}, 1, []string{"--port 70000"}, ""},
		{"unknown option", "install_miner.sh", []string{"--colour", "red"}, 1, []string{"unknown option --colour"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, code, err := script(ctx, tc.script, nil, tc.args...)
			if err != nil {
				t.Fatal(err)
			}
			if code != tc.code {
				t.Errorf("exit %d, want %d\n%s", code, tc.code, out)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			if tc.notWant != "" && strings.Contains(out, tc.notWant) {
				t.Errorf("output has %q:\n%s", tc.notWant, out)
			}
		})
	}
	t.Run("shellcheck", func(t *testing.T) {
		sc, err := exec.LookPath("shellcheck")
		if err != nil {
			t.Skip("shellcheck is not installed (apt-get install shellcheck)")
		}
		cmd := exec.CommandContext(ctx, sc, "-x", "scripts/install_miner.sh", "scripts/install_validator.sh", "scripts/lib/install.sh", "deploy/remote-install.sh")
		cmd.Dir = repoRoot
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("shellcheck: %v\n%s", err, out)
		}
	})
}

// TestInstallOverSSH: install_miner.sh and install_validator.sh bring up a miner and a
// validator over SSH on two freshly booted Debian servers (systemd as PID 1); the validator
// then routes a job to the miner, which runs it on the engine; a re-run of
// install_validator.sh keeps the operator's configuration and restarts the service.
func TestInstallOverSSH(t *testing.T) {
	if testing.Short() {
		t.Skip("boots two Debian servers in containers and installs horde on them over SSH; skipped with -short")
	}
	jobimagetest.Engine(t) // skipped without a Docker engine (a failure when CI is set)
	if _, err := exec.LookPath("ssh"); err != nil {
		t.Skip("the scripts need an ssh client (apt-get install openssh-client)")
	}
	engineSocket := "/var/run/docker.sock"
	if h := os.Getenv("DOCKER_HOST"); h != "" {
		if !strings.HasPrefix(h, "unix://") {
			t.Skipf("DOCKER_HOST=%s: the miner's server is given the engine's unix socket, and this engine has none here", h)
		}
		engineSocket = strings.TrimPrefix(h, "unix://")
	}
	image := serverImage(t)
	bin := horde(t)
	hello := jobimagetest.Hello(t)
	started := time.Now()

	runID := hex.EncodeToString(randomBytes(t, 4))
	netName, subnet, gateway := createNetwork(t, runID)
	dir := t.TempDir()
	client := newSSHKey(t)
	clientKeyPath := filepath.Join(dir, "id_ed25519")
	if err := os.WriteFile(clientKeyPath, client.privatePEM, 0o600); err != nil {
		t.Fatal(err)
	}

	// The miner's data directory is bind-mounted at the same path on both sides: its
	// executors ask the host's engine to bind-mount job directories into job containers, and
	// the engine looks the paths up on the host.
	minerData := filepath.Join(dir, "miner-data")
	if err := os.Mkdir(minerData, 0o700); err != nil {
		t.Fatal(err)
	}
	miner := startServer(t, runID, netName, image, "miner", client,
		serverOpts{docker: []string{"-v", engineSocket + ":/run/docker.sock", "-v", minerData + ":" + minerData}})
	validator := startServer(t, runID, netName, image, "validator", client, serverOpts{})
	// A server whose PID 1 is sshd, not systemd: the scripts must refuse it, saying why.
	bare := startServer(t, runID, netName, image, "bare", client,
		serverOpts{cmd: []string{"/bin/sh", "-c", "mkdir -p /run/sshd && exec /usr/sbin/sshd -D -e"}})
	knownHosts := filepath.Join(dir, "known_hosts")
	writeKnownHosts(t, knownHosts, miner, validator, bare)
	t.Logf("servers booted with systemd as PID 1 in %s: miner %s, validator %s (network %s, %s)",
		time.Since(started).Round(time.Millisecond), miner.ip, validator.ip, netName, subnet)

	// The chain: both hotkeys registered with the admin API, the validator staked, the
	// miner's axon announced, and the epoch that hands out validator permits passed.
	alice, bob := devKey(t, "//Alice"), devKey(t, "//Bob")
	sim := startChainSim(t, bin, gateway, alice.SS58(), bob.SS58())
	sim.admin(t, http.MethodPost, "/sim/neurons", fmt.Sprintf(`{"hotkey": %q, "coldkey": %q, "stake": 10000000000000}`, alice.SS58(), alice.SS58()))
	sim.admin(t, http.MethodPost, "/sim/neurons", fmt.Sprintf(`{"hotkey": %q, "coldkey": %q}`, bob.SS58(), bob.SS58()))
	sim.admin(t, http.MethodPut, "/sim/neurons/"+bob.SS58()+"/axon", fmt.Sprintf(`{"ip": %q, "port": 8000}`, miner.ip))
	sim.admin(t, http.MethodPost, "/sim/advance", `{"blocks": 12}`)

	// The operator's hotkey files, laid out as btcli does.
	wallets := filepath.Join(dir, "wallets")
	minerKey, err := keys.WriteHotkey(wallets, "miner", "default", bob, "")
	if err != nil {
		t.Fatal(err)
	}
	validatorKey, err := keys.WriteHotkey(wallets, "validator", "default", alice, "")
	if err != nil {
		t.Fatal(err)
	}
	secrets := keySecrets(t, minerKey, validatorKey)

	sshEnv := []string{"HORDE_SSH_OPTS=-F /dev/null"} // not the user's ~/.ssh/config
	sshArgs := []string{"-i", clientKeyPath, "-o", "IdentitiesOnly=yes", "-o", "UserKnownHostsFile=" + knownHosts, "-o", "StrictHostKeyChecking=yes"}
	chainURL := "http://" + sim.addr
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()

	// Both installs at once, as an operator with two terminals would. The validator's uses
	// the scripts' default binary: this repository built by the script.
	type outcome struct {
		out  string
		code int
		err  error
		took time.Duration
	}
	var minerRes, validatorRes outcome
	var wg sync.WaitGroup
	// What the scripts refuse, and say why, before they change anything: a server without
	// systemd; a hotkey file that is not one; a miner's server without a Docker engine when
	// installing one is not allowed. (The validator's server has no engine.)
	notKey := filepath.Join(dir, "not-a-key")
	if err := os.WriteFile(notKey, []byte(`{"secretSeed": "0x00"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	refusals := []struct {
		name   string
		srv    *server
		script string
		args   []string
		want   string
	}{
		{"no systemd", bare, "install_validator.sh", []string{"root@" + bare.ip, validatorKey}, "systemd is not running as the init system here (PID 1 is sshd)"},
		{"not a hotkey", validator, "install_validator.sh", []string{"root@" + validator.ip, notKey}, "HOTKEY_PATH is not a usable unencrypted btcli hotkey file"},
		{"no docker", validator, "install_miner.sh", []string{"--no-docker-install", "root@" + validator.ip, minerKey}, "no Docker engine (no /var/run/docker.sock, no dockerd)"},
	}
	refused := make([]outcome, len(refusals))
	for i, r := range refusals {
		start := time.Now()
		refused[i].out, refused[i].code, refused[i].err = script(ctx, r.script, sshEnv, append(append([]string{}, sshArgs...), append([]string{"--binary", bin}, r.args...)...)...)
		refused[i].took = time.Since(start)
	}
	for i, r := range refusals {
		res := refused[i]
		if res.err != nil || res.code != 1 || !strings.Contains(res.out, r.want) {
			t.Errorf("%s: %s: exit %d (%v), want 1 and %q:\n%s", r.name, r.script, res.code, res.err, r.want, res.out)
		}
		if out, err := r.srv.run(t, "{ find /usr/local/bin -mindepth 1; find /tmp -name 'horde*'; ls -d /etc/horde /var/lib/horde /etc/systemd/system/horde-*; getent passwd horde; } 2>/dev/null; true"); err != nil || out != "" {
			t.Errorf("%s: the refused install left something on the server:\n%s", r.name, out)
		}
	}
	t.Logf("%d refusals checked in %s", len(refusals), time.Since(started).Round(time.Millisecond))
	wg.Go(func() {
		start := time.Now()
		minerRes.out, minerRes.code, minerRes.err = script(ctx, "install_miner.sh", append(sshEnv, "HORDE_CHAIN_TOKEN=miner-token"),
			append(sshArgs, "--binary", bin, "--chain-url", chainURL, "--classes", "always_on.test=1",
				"--external-address", miner.ip+":8000", "--data-dir", minerData,
				"--env", "HORDE_MINER_EXECUTORS_START_TIMEOUT=60s",
				"root@"+miner.ip, minerKey)...)
		minerRes.took = time.Since(start)
	})
	wg.Go(func() {
		start := time.Now()
		validatorRes.out, validatorRes.code, validatorRes.err = script(ctx, "install_validator.sh", append(sshEnv, "HORDE_CHAIN_TOKEN=validator-token"),
			append(sshArgs, "--chain-url", chainURL,
				"--env", "HORDE_VALIDATOR_ALLOW_EGRESS="+subnet, "--env", "HORDE_VALIDATOR_RECEIPTS_INTERVAL=1s",
				"root@"+validator.ip, validatorKey)...)
		validatorRes.took = time.Since(start)
	})
	wg.Wait()
	for _, r := range []struct {
		role string
		res  outcome
		srv  *server
	}{{"miner", minerRes, miner}, {"validator", validatorRes, validator}} {
		t.Logf("install_%s.sh: exit %d in %s", r.role, r.res.code, r.res.took.Round(time.Millisecond))
		if testing.Verbose() {
			t.Logf("install_%s.sh's output, as the operator sees it:\n%s", r.role, r.res.out)
		}
		if r.res.err != nil || r.res.code != 0 {
			journal, _ := r.srv.run(t, "journalctl -u horde-"+r.role+" -n 60 --no-pager")
			t.Fatalf("install_%s.sh: exit %d, %v\n%s\n--- journal ---\n%s\n--- chain sim ---\n%s", r.role, r.res.code, r.res.err, r.res.out, journal, sim.stderr.String())
		}
		for _, want := range []string{
			"horde doctor: this machine as a " + r.role, "is running (pid ", "journalctl -u horde-" + r.role,
		} {
			if !strings.Contains(r.res.out, want) {
				t.Errorf("install_%s.sh's output lacks %q:\n%s", r.role, want, r.res.out)
			}
		}
		if regexp.MustCompile(`(?m)^\s*FAIL\b|\bFAIL\s`).MatchString(r.res.out) {
			t.Errorf("the doctor reports a failure after install_%s.sh:\n%s", r.role, r.res.out)
		}
		for _, s := range append(secrets, r.role+"-token") {
			if strings.Contains(r.res.out, s) {
				t.Errorf("install_%s.sh printed a secret (%.6s…):\n%s", r.role, s, r.res.out)
			}
		}
		r.srv.checkInstalled(t, r.role)
	}
	if !strings.Contains(validatorRes.out, "building horde for linux/") {
		t.Errorf("install_validator.sh without --binary did not build horde:\n%s", validatorRes.out)
	}
	if !strings.Contains(minerRes.out, "Docker engine socket: /var/run/docker.sock") || !strings.Contains(minerRes.out, "curl -i http://ADDRESS:8000/admin/login/") {
		t.Errorf("install_miner.sh: no engine check or reachability hint:\n%s", minerRes.out)
	}

	// The miner's admin page answers from the validator's server, as the next steps say.
	if out, err := validator.run(t, fmt.Sprintf("exec 3<>/dev/tcp/%s/8000 && printf 'GET /admin/login/ HTTP/1.0\\r\\n\\r\\n' >&3 && head -n1 <&3", miner.ip)); err != nil || !strings.Contains(out, " 200 ") {
		t.Errorf("GET http://%s:8000/admin/login/ from the validator's server: %v %q", miner.ip, err, out)
	}

	// The validator finds the miner on the chain and learns its manifest.
	deadline := time.Now().Add(60 * time.Second)
	for {
		out, _ := validator.run(t, "horde validator miners --config /etc/horde/validator.toml")
		if strings.Contains(out, bob.SS58()) {
			break
		}
		if time.Now().After(deadline) {
			vj, _ := validator.run(t, "journalctl -u horde-validator -n 60 --no-pager")
			mj, _ := miner.run(t, "journalctl -u horde-miner -n 60 --no-pager")
			t.Fatalf("the validator never learned the miner's manifest:\n%s\n--- validator ---\n%s\n--- miner ---\n%s", out, vj, mj)
		}
		time.Sleep(500 * time.Millisecond)
	}

	// A job through the validator's job API (127.0.0.1 on its server), reached through an SSH
	// tunnel as the next steps say.
	api := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return validator.client.DialContext(ctx, "tcp", "127.0.0.1:8100")
	}}, Timeout: 30 * time.Second}
	id := uuid.NewString()
	spec, err := protocol.Encode(&protocol.V2JobRequest{
		UUID: id, ExecutorClass: protocol.ExecutorClassAlwaysOnTest, DockerImage: hello,
		Args:              []string{"installed", "over", "ssh"},
		DownloadTimeLimit: 30, ExecutionTimeLimit: 60, UploadTimeLimit: 30,
	})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := api.Post("http://validator/api/v1/jobs", "application/json", bytes.NewReader(spec))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST /api/v1/jobs: %s %s", resp.Status, body)
	}
	var job struct {
		Status string
		Result struct{ Stdout string }
	}
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(250 * time.Millisecond) {
		resp, err := api.Get("http://validator/api/v1/jobs/" + id)
		if err != nil {
			t.Fatal(err)
		}
		err = json.NewDecoder(resp.Body).Decode(&job)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if job.Status != "routing" || time.Now().After(deadline) {
			break
		}
	}
	if job.Status != string(protocol.JobStatusCompleted) || !strings.Contains(job.Result.Stdout, "installed over ssh") {
		vj, _ := validator.run(t, "journalctl -u horde-validator -n 80 --no-pager")
		mj, _ := miner.run(t, "journalctl -u horde-miner -n 80 --no-pager")
		t.Fatalf("job %s: %+v\n--- validator ---\n%s\n--- miner ---\n%s", id, job, vj, mj)
	}
	if out, err := miner.run(t, "horde miner jobs --config /etc/horde/miner.toml"); err != nil || !strings.Contains(out, id) {
		t.Errorf("horde miner jobs on the miner's server does not list job %s: %v\n%s", id, err, out)
	}
	t.Logf("job %s completed on the installed miner, %s after the servers were up", id, time.Since(started).Round(time.Millisecond))

	// The validator pulls the miner's countersigned receipts (over the test network, which
	// --env allowed) and scores the miner for the job's seconds.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(500 * time.Millisecond) {
		out, err := validator.run(t, "runuser -u horde -- horde validator scores --config /etc/horde/validator.toml")
		if err == nil && strings.Contains(out, bob.SS58()) && strings.Contains(out, "always_on.test") {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("the validator's scores never showed the miner's work: %v\n%s", err, out)
			break
		}
	}

	// A re-run keeps the operator's configuration, installs the binary again and restarts.
	const edit = "# edited by hand"
	if _, err := validator.run(t, "echo '"+edit+"' >> /etc/horde/validator.toml"); err != nil {
		t.Fatal(err)
	}
	pidBefore, _ := validator.run(t, "systemctl show -p MainPID --value horde-validator")
	out, code, err := script(ctx, "install_validator.sh", sshEnv, append(sshArgs, "--binary", bin, "--chain-url", chainURL, "root@"+validator.ip, validatorKey)...)
	if err != nil || code != 0 {
		t.Fatalf("re-running install_validator.sh: exit %d, %v\n%s", code, err, out)
	}
	if !strings.Contains(out, "/etc/horde/validator.toml exists: kept") || !strings.Contains(out, "hotkey file /var/lib/horde/wallets/validator/hotkeys/default unchanged") {
		t.Errorf("the re-run's output:\n%s", out)
	}
	if cfg, _ := validator.run(t, "cat /etc/horde/validator.toml"); !strings.Contains(cfg, edit) {
		t.Errorf("the re-run rewrote the operator's configuration:\n%s", cfg)
	}
	if env, _ := validator.run(t, "cat /etc/horde/validator.env"); !strings.Contains(env, "HORDE_VALIDATOR_CHAIN_TOKEN='validator-token'") {
		t.Errorf("the re-run (no token given) lost the chain token:\n%s", env)
	}
	pidAfter, _ := validator.run(t, "systemctl show -p MainPID --value horde-validator")
	if strings.TrimSpace(pidAfter) == strings.TrimSpace(pidBefore) || strings.TrimSpace(pidAfter) == "0" {
		t.Errorf("the re-run did not restart the validator: pid %s, then %s", strings.TrimSpace(pidBefore), strings.TrimSpace(pidAfter))
	}
	t.Logf("total after the image: %s", time.Since(started).Round(time.Millisecond))
}

// checkInstalled checks what the script left on the server: the service enabled and active
// under systemd, the unit as the repository has it and valid, the hotkey and the env file
// readable by their owner only.
func (s *server) checkInstalled(t *testing.T, role string) {
	t.Helper()
	unit := "horde-" + role
	for cmd, want := range map[string]string{
		"systemctl is-enabled " + unit:                                        "enabled",
		"systemctl is-active " + unit:                                         "active",
		"stat -c '%a %U' /var/lib/horde/wallets/" + role + "/hotkeys/default": "600 horde",
		"stat -c '%a %U' /etc/horde/" + role + ".env":                         "600 root",
		"stat -c '%a' /usr/local/bin/horde":                                   "755",
		"ps -o user= -p $(systemctl show -p MainPID --value " + unit + ")":    map[string]string{"miner": "root", "validator": "horde"}[role],
	} {
		out, err := s.run(t, cmd)
		if err != nil || strings.TrimSpace(out) != want {
			t.Errorf("%s on the %s's server: %q (%v), want %q", cmd, role, out, err, want)
		}
	}
	template, err := os.ReadFile(filepath.Join(repoRoot, "deploy", "systemd", unit+".service"))
	if err != nil {
		t.Fatal(err)
	}
	if out, err := s.run(t, "cat /etc/systemd/system/"+unit+".service"); err != nil || out != string(template) {
		t.Errorf("/etc/systemd/system/%s.service on the server differs from deploy/systemd (%v):\n%s", unit, err, out)
	}
	if out, err := s.run(t, "systemd-analyze verify /etc/systemd/system/"+unit+".service"); err != nil {
		t.Errorf("systemd-analyze verify %s.service: %v\n%s", unit, err, out)
	}
}

// keySecrets returns the secret fields of hotkey files, which no output may contain.
func keySecrets(t *testing.T, paths ...string) []string {
	t.Helper()
	var out []string
	for _, p := range paths {
		raw, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		var kf map[string]any
		if err := json.Unmarshal(raw, &kf); err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"secretSeed", "privateKey", "secretPhrase"} {
			if s, ok := kf[k].(string); ok && len(s) > 16 {
				out = append(out, strings.TrimPrefix(s, "0x"))
			}
		}
	}
	if len(out) == 0 {
		t.Fatal("the hotkey files hold no secret field to look for")
	}
	return out
}

func devKey(t *testing.T, uri string) *keys.Keypair {
	t.Helper()
	kp, err := keys.FromURI(uri)
	if err != nil {
		t.Fatal(err)
	}
	return kp
}

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// docker runs the docker CLI and returns its trimmed standard output; a failure fails t.
func docker(t *testing.T, stdin io.Reader, args ...string) string {
	t.Helper()
	out, err := dockerErr(stdin, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func dockerErr(stdin io.Reader, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "docker", args...)
	cmd.Stdin = stdin
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("docker %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(stdout.String()), nil
}

// createNetwork makes the run's private bridge network and returns its name, subnet and
// gateway (the host's address on it).
func createNetwork(t *testing.T, runID string) (name, subnet, gateway string) {
	t.Helper()
	name = "horde-installtest-" + runID
	docker(t, nil, "network", "create", "--label", runLabel+"="+runID, name)
	t.Cleanup(func() {
		if _, err := dockerErr(nil, "network", "rm", name); err != nil {
			t.Errorf("removing the test's network: %v", err)
		}
	})
	cfg := docker(t, nil, "network", "inspect", "--format", "{{range .IPAM.Config}}{{.Subnet}} {{.Gateway}}{{end}}", name)
	f := strings.Fields(cfg)
	if len(f) != 2 {
		t.Fatalf("network %s: subnet and gateway %q", name, cfg)
	}
	return name, f[0], f[1]
}

// sshKey is an ed25519 key pair for SSH, as an OpenSSH private key file and a signer.
type sshKey struct {
	privatePEM []byte
	signer     ssh.Signer
}

func newSSHKey(t *testing.T) sshKey {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return sshKey{privatePEM: pem.EncodeToMemory(block), signer: signer}
}

// serverOpts are a server's extra `docker create` options, and the command that replaces
// systemd as its PID 1 (then startServer waits for SSH only).
type serverOpts struct {
	docker, cmd []string
}

// server is one booted server container and an SSH connection to it as root.
type server struct {
	name, ip string
	hostKey  sshKey
	client   *ssh.Client
}

// startServer creates the server container (systemd as PID 1: SYS_ADMIN for its mounts, a
// private cgroup namespace it may write, tmpfs on /run; not --privileged, which this engine
// refuses where the daemon lacks CAP_SYS_RESOURCE), gives it its own SSH host key and the
// client key as root's authorized key, boots it and waits until systemd reports the boot
// done and sshd answers.
func startServer(t *testing.T, runID, network, image, role string, client sshKey, o serverOpts) *server {
	t.Helper()
	s := &server{name: "horde-installtest-" + runID + "-" + role, hostKey: newSSHKey(t)}
	args := []string{"create", "--name", s.name, "--hostname", role, "--label", runLabel + "=" + runID,
		"--network", network, "--cap-add", "SYS_ADMIN", "--security-opt", "seccomp=unconfined", "--cgroupns", "private",
		"--tmpfs", "/run", "--tmpfs", "/run/lock", "--tmpfs", "/tmp", "-e", "container=docker"}
	args = append(append(append(args, o.docker...), image), o.cmd...)
	docker(t, nil, args...)
	t.Cleanup(func() {
		if _, err := dockerErr(nil, "rm", "-f", "-v", s.name); err != nil {
			t.Errorf("removing %s: %v", s.name, err)
		}
	})
	var files bytes.Buffer
	tw := tar.NewWriter(&files)
	add := func(name string, mode int64, body []byte) {
		hdr := &tar.Header{Name: name, Mode: mode, Size: int64(len(body)), Typeflag: tar.TypeReg, ModTime: time.Now()}
		if body == nil {
			hdr.Typeflag, hdr.Size = tar.TypeDir, 0
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(body); err != nil {
			t.Fatal(err)
		}
	}
	add("root/.ssh/", 0o700, nil)
	add("root/.ssh/authorized_keys", 0o600, ssh.MarshalAuthorizedKey(client.signer.PublicKey()))
	add("etc/ssh/ssh_host_ed25519_key", 0o600, s.hostKey.privatePEM)
	add("etc/ssh/ssh_host_ed25519_key.pub", 0o644, ssh.MarshalAuthorizedKey(s.hostKey.signer.PublicKey()))
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	docker(t, &files, "cp", "-", s.name+":/")
	docker(t, nil, "start", s.name)
	s.ip = docker(t, nil, "inspect", "--format", `{{(index .NetworkSettings.Networks "`+network+`").IPAddress}}`, s.name)

	cfg := &ssh.ClientConfig{
		User: "root", Auth: []ssh.AuthMethod{ssh.PublicKeys(client.signer)},
		HostKeyCallback: ssh.FixedHostKey(s.hostKey.signer.PublicKey()), Timeout: 5 * time.Second,
	}
	var err error
	for deadline := time.Now().Add(90 * time.Second); ; time.Sleep(250 * time.Millisecond) {
		if s.client, err = ssh.Dial("tcp", net.JoinHostPort(s.ip, "22"), cfg); err == nil {
			break
		}
		if time.Now().After(deadline) {
			logs, _ := dockerErr(nil, "logs", "--tail", "40", s.name)
			t.Fatalf("no SSH to the %s's server at %s within 90 s: %v\n%s", role, s.ip, err, logs)
		}
	}
	t.Cleanup(func() { s.client.Close() })
	if o.cmd != nil {
		return s
	}
	out, err := s.run(t, "timeout 90 systemctl is-system-running --wait; echo pid1=$(cat /proc/1/comm)")
	if !strings.Contains(out, "pid1=systemd") || !strings.HasPrefix(out, "running") {
		failed, _ := s.run(t, "systemctl --failed --no-pager")
		t.Fatalf("the %s's server did not boot cleanly with systemd as PID 1 (%v):\n%s\n%s", role, err, out, failed)
	}
	return s
}

// run runs cmd on the server over SSH and returns its combined output.
func (s *server) run(t *testing.T, cmd string) (string, error) {
	t.Helper()
	sess, err := s.client.NewSession()
	if err != nil {
		return "", err
	}
	defer sess.Close()
	out, err := sess.CombinedOutput(cmd)
	return string(out), err
}

func writeKnownHosts(t *testing.T, path string, servers ...*server) {
	t.Helper()
	var b strings.Builder
	for _, s := range servers {
		b.WriteString(knownhosts.Line([]string{s.ip}, s.hostKey.signer.PublicKey()) + "\n")
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
}

// chainSim is a running `horde chain sim` on the test network's gateway.
type chainSim struct {
	addr, adminToken string
	stderr           *lockedBuffer
}

var simListening = regexp.MustCompile(`^horde chain sim: listening on http://(\S+) \(netuid 12\)$`)

// startChainSim serves a simulated chain on gateway (the host's address on the test network,
// which the servers reach) with the two roles' Pylon identities; blocks come only from
// POST /sim/advance. The tempo is short, so that one advance reaches the epoch that hands
// out validator permits.
func startChainSim(t *testing.T, bin, gateway, validatorHotkey, minerHotkey string) *chainSim {
	t.Helper()
	p := &chainSim{adminToken: hex.EncodeToString(randomBytes(t, 16)), stderr: &lockedBuffer{}}
	genesis := fmt.Sprintf(`{
	"netuid": 12,
	"relaxed_axon_ips": true,
	"hyperparams": {"tempo": 10},
	"identities": [
		{"name": "validator", "hotkey": %q, "token": "validator-token"},
		{"name": "miner", "hotkey": %q, "token": "miner-token"}
	],
	"admin_token": %q
}`, validatorHotkey, minerHotkey, p.adminToken)
	path := filepath.Join(t.TempDir(), "genesis.json")
	if err := os.WriteFile(path, []byte(genesis), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "chain", "sim", "--listen", net.JoinHostPort(gateway, "0"), "--block-time", "0", "--genesis", path)
	cmd.Stderr = p.stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGINT)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	first := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		if sc.Scan() {
			first <- sc.Text()
		}
		close(first)
		_, _ = io.Copy(io.Discard, out)
	}()
	select {
	case line := <-first:
		m := simListening.FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("horde chain sim's first line %q\n%s", line, p.stderr.String())
		}
		p.addr = m[1]
	case <-time.After(30 * time.Second):
		t.Fatalf("horde chain sim did not listen within 30 s\n%s", p.stderr.String())
	}
	return p
}

// admin makes one admin API call, which must answer 200.
func (p *chainSim) admin(t *testing.T, method, path, body string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, "http://"+p.addr+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+p.adminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s %s: %s %s", method, path, resp.Status, raw)
	}
}

// lockedBuffer is a buffer the test may read while another goroutine still writes to it.
type lockedBuffer = syncbuf.Buffer

// sha256Hex is the hex SHA-256 of s.
func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}
