package main

import (
	"bufio"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/computehorde/horde/internal/jobimage/jobimagetest"
	"github.com/computehorde/horde/internal/keys"
)

var facilitatorServing = regexp.MustCompile(`^horde facilitator: serving on (127\.0\.0\.1:\d+)$`)

// startFacilitator runs `horde facilitator run` with //Facilitator's wallet, allowing
// //Alice's validator, and returns its address and its config file.
func startFacilitator(t *testing.T, dir string) (addr, cfg string, p *exec.Cmd, stderr *lockedBuffer) {
	t.Helper()
	cfg = writeFacilitatorConfig(t, dir, "127.0.0.1:0")
	addr, p, stderr = runFacilitatorProcess(t, cfg)
	return addr, cfg, p, stderr
}

func writeFacilitatorConfig(t *testing.T, dir, listen string) string {
	t.Helper()
	k, err := keys.FromURI("//Facilitator")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := keys.WriteHotkey(filepath.Join(dir, "wallets"), "facilitator", "default", k, ""); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "facilitator.toml")
	if err := os.WriteFile(cfg, []byte(`
listen = "`+listen+`"
data_dir = "`+filepath.Join(dir, "data")+`"
validators = ["5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY"]
# The test image exists only in the local engine: no registry to ask (and tests reach no
# address beyond loopback).
check_images = false
[wallet]
path = "`+filepath.Join(dir, "wallets")+`"
name = "facilitator"
[prices]
"always_on.test" = 1000
`), 0o600); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// runFacilitatorProcess starts `horde facilitator run --config cfg` and waits until it serves.
func runFacilitatorProcess(t *testing.T, cfg string) (addr string, p *exec.Cmd, stderr *lockedBuffer) {
	t.Helper()
	stderr = &lockedBuffer{}
	p = exec.Command(hordeBin, "facilitator", "run", "--config", cfg)
	p.Env = append(os.Environ(), "HORDE_FACILITATOR_TOKEN_SECRET="+strings.Repeat("x", 32))
	p.Stderr = stderr
	out, err := p.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if p.ProcessState == nil {
			_ = p.Process.Kill()
			_ = p.Wait()
		}
	})
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	select {
	case line := <-lines:
		m := facilitatorServing.FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("first stdout line %q\n%s", line, stderr.String())
		}
		addr = m[1]
	case <-time.After(30 * time.Second):
		t.Fatalf("the facilitator did not serve within 30 s\n%s", stderr.String())
	}
	return addr, p, stderr
}

var chargedLine = regexp.MustCompile(`job \S+ completed; charged ([0-9.]+) credits`)

// TestCLIPaidJobThroughFacilitator: the chain sim, a miner, a validator and a facilitator,
// each its own process. An operator grants a user credits; the user runs `horde job run`
// signed in with a wallet hotkey; the job goes facilitator → validator → miner → executor →
// Docker and back, prints its output, and the user is charged the seconds the validator
// accounted × the price, the rest of the hold returned.
func TestCLIPaidJobThroughFacilitator(t *testing.T) {
	needDocker(t)
	image := jobimagetest.Hello(t)
	sim := startChainSim(t, minerGenesis)
	dir := t.TempDir()
	// The executor uploads the job's /output to the facilitator's blob store on loopback.
	m := startMiner(t, writeMinerConfig(t, filepath.Join(dir, "m"), sim.url, `allow_egress = ["127.0.0.1/32"]`))
	announce(t, sim, m.port)
	faddr, fcfg, fproc, fstderr := startFacilitator(t, filepath.Join(dir, "f"))
	v := startValidator(t, writeValidatorConfig(t, filepath.Join(dir, "v"), sim.url, `facilitator_url = "ws://`+faddr+`/ws/v0/"`))

	ferdie, _ := keys.FromURI("//Ferdie")
	if _, err := keys.WriteHotkey(filepath.Join(dir, "u", "wallets"), "user", "default", ferdie, ""); err != nil {
		t.Fatal(err)
	}
	g := horde(t, runOpts{}, "facilitator", "grant", "--config", fcfg, "--key", "welcome", ferdie.SS58(), "10000000")
	if g.code != 0 {
		t.Fatalf("grant:\n%s", g)
	}
	user := []string{"--facilitator", "http://" + faddr, "--wallet", "user", "--wallet-path", filepath.Join(dir, "u", "wallets")}
	run := horde(t, runOpts{timeout: 90 * time.Second}, append(append([]string{"job", "run", "--image", image, "--time-limit", "60s"}, user...),
		"--", "--sleep", "2s", "--write", "/output/result.bin:1234", "paid", "job")...)
	if run.code != 0 || !strings.Contains(run.stdout, "hello from horde") || !strings.Contains(run.stdout, "paid job") {
		t.Fatalf("horde job run:\n%s\n--- facilitator ---\n%s\n--- validator ---\n%s", run, fstderr.String(), v.stderr.String())
	}
	wantContains(t, "job run's progress", run.stderr, "queued", "completed")
	mm := chargedLine.FindStringSubmatch(run.stderr)
	if mm == nil {
		t.Fatalf("no charge line:\n%s", run.stderr)
	}
	charged, _ := strconv.ParseFloat(mm[1], 64)
	// 1000 micro-credits per accounted second: the 2 s the job slept, maybe one more.
	if charged < 0.002 || charged > 0.004 {
		t.Errorf("charged %v credits for a 2-second job at 0.001 per second", charged)
	}
	bal := horde(t, runOpts{}, append([]string{"account", "balance"}, user...)...)
	wantContains(t, "balance", bal.stdout, ferdie.SS58()+": "+strconv.FormatFloat(10-charged, 'f', -1, 64)+" credits")
	list := horde(t, runOpts{}, append([]string{"job", "list"}, user...)...)
	wantContains(t, "job list", list.stdout, "completed", image)
	id := regexp.MustCompile(`job (\S+) completed`).FindStringSubmatch(run.stderr)[1]
	logs := horde(t, runOpts{}, append(append([]string{"job", "logs"}, user...), id)...)
	wantContains(t, "job logs", logs.stdout, "hello from horde", "paid job")
	outDir := t.TempDir()
	outs := horde(t, runOpts{}, append(append([]string{"job", "outputs", "--dir", outDir}, user...), id)...)
	if st, err := os.Stat(filepath.Join(outDir, "result.bin")); err != nil || st.Size() != 1234 {
		t.Errorf("job outputs: result.bin %v, %v\n%s", st, err, outs)
	}
	tok := horde(t, runOpts{}, append([]string{"account", "token"}, user...)...)
	if tok.code != 0 || !strings.HasPrefix(tok.stdout, "hft1.") {
		t.Errorf("horde account token:\n%s", tok)
	}

	// Logs a person can act on: each role's configuration at start with its secrets masked,
	// the job's life one line per stage in every role, and a refusal with its reason.
	if r := horde(t, runOpts{}, append([]string{"job", "run", "--image", image, "--time-limit", "86400s"}, user...)...); r.code == 0 {
		t.Errorf("a job costing more than the balance was not refused:\n%s", r)
	}
	secret := strings.Repeat("x", 32)
	wantContains(t, "facilitator log", fstderr.String(), "facilitator starting", "token_secret = ****", "job queued", "job dispatched", "job ended",
		`msg="request refused"`, "code=insufficient_credits")
	if strings.Contains(fstderr.String(), secret) {
		t.Error("the facilitator logged its token secret")
	}
	wantContains(t, "validator log", v.stderr.String(), "validator starting", `msg="job sent"`, `msg="job accepted"`, `msg="job executor_ready"`, `msg="job execution_done"`, `msg="job ended"`, "status=completed")
	wantContains(t, "miner log", m.stderr.String(), "miner starting", `msg="accepting job"`, `msg="job running"`, `msg="job finished"`)

	if err := fproc.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := fproc.Wait(); err != nil {
		t.Errorf("facilitator exit after SIGTERM: %v\n%s", err, fstderr.String())
	}
}

// TestCLIFacilitatorKilledMidJob: the facilitator is killed with SIGKILL while a paid job
// runs and started again on the same address; the validator reconnects and re-sends what
// the dead process did not answer, the user's `horde job run` rides over the gap, and the
// job ends completed, charged once, with the ledger intact.
func TestCLIFacilitatorKilledMidJob(t *testing.T) {
	needDocker(t)
	image := jobimagetest.Hello(t)
	sim := startChainSim(t, minerGenesis)
	dir := t.TempDir()
	m := startMiner(t, writeMinerConfig(t, filepath.Join(dir, "m"), sim.url, `allow_egress = ["127.0.0.1/32"]`))
	announce(t, sim, m.port)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	listen := ln.Addr().String()
	ln.Close()
	fcfg := writeFacilitatorConfig(t, filepath.Join(dir, "f"), listen)
	_, fproc, _ := runFacilitatorProcess(t, fcfg)
	startValidator(t, writeValidatorConfig(t, filepath.Join(dir, "v"), sim.url, `facilitator_url = "ws://`+listen+`/ws/v0/"`))
	ferdie, _ := keys.FromURI("//Ferdie")
	if _, err := keys.WriteHotkey(filepath.Join(dir, "u", "wallets"), "user", "default", ferdie, ""); err != nil {
		t.Fatal(err)
	}
	if g := horde(t, runOpts{}, "facilitator", "grant", "--config", fcfg, ferdie.SS58(), "10000000"); g.code != 0 {
		t.Fatalf("grant:\n%s", g)
	}
	user := []string{"--facilitator", "http://" + listen, "--wallet", "user", "--wallet-path", filepath.Join(dir, "u", "wallets")}
	run := exec.Command(hordeBin, append(append([]string{"job", "run", "--image", image, "--time-limit", "60s"}, user...), "--", "--sleep", "4s", "survived")...)
	var runOut, runErr lockedBuffer
	run.Stdout, run.Stderr = &runOut, &runErr
	if err := run.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = run.Process.Kill() })
	for deadline := time.Now().Add(60 * time.Second); !strings.Contains(runErr.String(), "volumes_ready"); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the job never ran:\n%s", runErr.String())
		}
	}
	if err := fproc.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = fproc.Wait()
	_, again, againErr := runFacilitatorProcess(t, fcfg)
	done := make(chan error, 1)
	go func() { done <- run.Wait() }()
	select {
	case err := <-done:
		if err != nil || !strings.Contains(runOut.String(), "survived") {
			t.Fatalf("horde job run: %v\n%s\n%s\n--- facilitator ---\n%s", err, runOut.String(), runErr.String(), againErr.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("the job did not end after the facilitator's restart:\n%s\n--- facilitator ---\n%s", runErr.String(), againErr.String())
	}
	mm := chargedLine.FindStringSubmatch(runErr.String())
	if mm == nil {
		t.Fatalf("no charge line:\n%s", runErr.String())
	}
	charged, _ := strconv.ParseFloat(mm[1], 64)
	if charged < 0.004 || charged > 0.006 {
		t.Errorf("charged %v credits for a 4-second job at 0.001 per second", charged)
	}
	bal := horde(t, runOpts{}, append([]string{"account", "balance"}, user...)...)
	wantContains(t, "balance", bal.stdout, strconv.FormatFloat(10-charged, 'f', -1, 64)+" credits")
	if err := again.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	_ = again.Wait()
}
