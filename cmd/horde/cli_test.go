package main

// End-to-end tests of the horde executable: TestMain builds it once, as scripts/dev.sh does
// (static, CGO_ENABLED=0), and the tests exec it. The `horde dev` tests need the local Docker
// engine and are skipped with -short.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/computehorde/horde/internal/jobimage"
	"github.com/computehorde/horde/internal/jobimage/jobimagetest"
	"github.com/computehorde/horde/internal/syncbuf"
)

// hordeBin is the executable TestMain built.
var hordeBin string

// devLabel is the label key on every job container (its value is each devnet's executor ID,
// "horde-dev-" plus a random suffix); ours are then picked by job UUID or jobMarker.
const devLabel = "horde.executor"

// jobMarker is passed as a job argument by the tests that may leave a job running when they
// stop horde, so that the leftover check can tell their containers from those of other test
// processes on the same engine (internal/devnet's tests use the same executor label).
var jobMarker = fmt.Sprintf("horde-cli-test-%d", os.Getpid())

// ourJobs are the UUIDs of the jobs this process's horde runs printed; dockerUsed is set once
// a test has run `horde dev` against the engine.
var (
	jobsMu     sync.Mutex
	ourJobs    = map[string]bool{}
	dockerUsed bool
)

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "horde-cli-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "cli test:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	hordeBin = filepath.Join(dir, "horde")
	start := time.Now()
	build := exec.Command("go", "build", "-trimpath", "-o", hordeBin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "cli test: CGO_ENABLED=0 go build ./cmd/horde: %v\n%s", err, out)
		return 1
	}
	if testing.Verbose() {
		fmt.Printf("cli test: built %s in %s\n", hordeBin, time.Since(start).Round(time.Millisecond))
	}

	code := m.Run()
	jobimagetest.Cleanup() // the hello image the executor tests built

	jobsMu.Lock()
	used := dockerUsed
	jobsMu.Unlock()
	if used {
		ours, err := leftoverContainers()
		switch {
		case err != nil:
			fmt.Fprintln(os.Stderr, "cli test: checking for leftover job containers:", err)
			code = 1
		case len(ours) > 0:
			fmt.Fprintf(os.Stderr, "cli test: FAIL: job containers labelled %s left behind:\n%s\n", devLabel, strings.Join(ours, "\n"))
			code = 1
		}
	}
	return code
}

// result is what one run of horde did.
type result struct {
	stdout, stderr string
	code           int // exit status; -1 if it did not exit by itself
	took           time.Duration
}

func (r result) String() string {
	return fmt.Sprintf("exit %d after %s\n--- stdout ---\n%s--- stderr ---\n%s", r.code, r.took.Round(time.Millisecond), r.stdout, r.stderr)
}

// runOpts are the optional settings of one run.
type runOpts struct {
	bin     string        // the executable; empty means hordeBin
	dir     string        // working directory; empty means a fresh temporary one
	env     []string      // added to the environment (later entries win)
	timeout time.Duration // zero means 10 s
}

// horde runs the executable with args and returns what it did; it fails the test if horde does
// not exit within the timeout.
func horde(t *testing.T, o runOpts, args ...string) result {
	t.Helper()
	if o.timeout == 0 {
		o.timeout = 10 * time.Second
	}
	if o.dir == "" {
		o.dir = t.TempDir()
	}
	ctx, cancel := context.WithTimeout(t.Context(), o.timeout)
	defer cancel()
	bin := o.bin
	if bin == "" {
		bin = hordeBin
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = o.dir
	cmd.Env = append(os.Environ(), o.env...)
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	if cmd.ProcessState == nil {
		t.Fatalf("horde %s: %v", strings.Join(args, " "), err)
	}
	r := result{stdout: stdout.String(), stderr: stderr.String(), code: cmd.ProcessState.ExitCode(), took: time.Since(start)}
	recordJobs(r.stdout)
	if ctx.Err() != nil {
		t.Fatalf("horde %s: still running after %s; killed\n%s", strings.Join(args, " "), o.timeout, r)
	}
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		t.Fatalf("horde %s: %v", strings.Join(args, " "), err)
	}
	t.Logf("horde %s: exit %d in %s", strings.Join(args, " "), r.code, r.took.Round(time.Millisecond))
	return r
}

var jobLine = regexp.MustCompile(`(?m)^job ([0-9a-f-]{36}): (\w+) in `)

// recordJobs notes the UUIDs of the jobs in horde dev's output, for the leftover check.
func recordJobs(stdout string) {
	jobsMu.Lock()
	defer jobsMu.Unlock()
	for _, m := range jobLine.FindAllStringSubmatch(stdout, -1) {
		ourJobs[m[1]] = true
	}
}

// needDocker skips t under -short and notes that the engine is used.
func needDocker(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("runs horde dev on the local Docker engine; skipped with -short")
	}
	jobsMu.Lock()
	dockerUsed = true
	jobsMu.Unlock()
}

// leftoverContainers lists the job containers labelled devLabel that this test process's
// horde runs started (by job UUID, or by jobMarker in their command).
func leftoverContainers() ([]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "docker", "ps", "-a", "--no-trunc", "--filter", "label="+devLabel,
		"--format", `{{.ID}}	{{.Label "horde.job_uuid"}}	{{.Status}}	{{.Command}}`).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			err = fmt.Errorf("%w: %s", err, ee.Stderr)
		}
		return nil, fmt.Errorf("docker ps: %w", err)
	}
	jobsMu.Lock()
	defer jobsMu.Unlock()
	var ours []string
	for line := range strings.Lines(string(out)) {
		f := strings.SplitN(strings.TrimSpace(line), "\t", 4)
		if len(f) == 4 && (ourJobs[f[1]] || strings.Contains(f[3], jobMarker)) {
			ours = append(ours, strings.TrimSpace(line))
		}
	}
	return ours, nil
}

func requireNoLeftovers(t *testing.T) {
	t.Helper()
	ours, err := leftoverContainers()
	if err != nil {
		t.Fatal(err)
	}
	if len(ours) > 0 {
		t.Fatalf("job containers labelled %s left behind:\n%s", devLabel, strings.Join(ours, "\n"))
	}
}

func wantContains(t *testing.T, what, got string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(got, w) {
			t.Errorf("%s does not contain %q:\n%s", what, w, got)
		}
	}
}

func TestCLIHelp(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"-h"}, {"help"}, {}} {
		r := horde(t, runOpts{}, args...)
		if r.code != 0 {
			t.Fatalf("horde %v:\n%s", args, r)
		}
		for _, name := range []string{"dev", "wallet", "validator", "miner", "executor", "facilitator", "job", "account", "doctor"} {
			if !regexp.MustCompile(`(?m)^  ` + name + ` +\S`).MatchString(r.stdout) {
				t.Errorf("horde %v does not list %s:\n%s", args, name, r.stdout)
			}
		}
		if strings.Contains(r.stdout, jobCommand) {
			t.Errorf("horde %v lists the hidden %s command:\n%s", args, jobCommand, r.stdout)
		}
	}

	r := horde(t, runOpts{}, "dev", "--help")
	if r.code != 0 {
		t.Fatalf("horde dev --help:\n%s", r)
	}
	wantContains(t, "horde dev --help", r.stderr, "-once", "-data ", "-data-dir", "-interval", "-block-time", "-validators", "-miners")
}

func TestCLIUsageErrors(t *testing.T) {
	tests := []struct {
		args []string
		want []string
	}{
		{[]string{"frobnicate"}, []string{`unknown command "frobnicate"`, "horde --help"}},
		{[]string{"validator"}, []string{"horde validator:", "name a command (run, scores, miners)"}},
		{[]string{"validator", "run", "--config", "/nonexistent/validator.toml"}, []string{"horde validator:", "/nonexistent/validator.toml"}},
		{[]string{"miner", "--netuid", "12"}, []string{"horde miner:", `unknown command "--netuid"`}},
		{[]string{"miner"}, []string{"horde miner:", "name a command (run, status, jobs, hash-password)"}},
		{[]string{"miner", "run", "--config", "/nonexistent/miner.toml"}, []string{"horde miner:", "/nonexistent/miner.toml"}},
		{[]string{"executor"}, []string{"horde executor:", "name a command (run, serve, pull)"}},
		{[]string{"executor", "serve"}, []string{"horde executor:", "--miner-url and a token"}},
		{[]string{"executor", "serve", "--miner-url", "ws://127.0.0.1:1", "--token", "t", "--gpus", "0,0"}, []string{"horde executor:", "--gpus", "listed twice"}},
		{[]string{"executor", "serve", "--miner-url", "ws://127.0.0.1:1", "--token", "t", "--gpus", "0,,1"}, []string{"horde executor:", "--gpus", "entry 2 is empty"}},
		{[]string{"executor", "run"}, []string{"horde executor:", "--spec is required"}},
		{[]string{"executor", "pull"}, []string{"horde executor:", "name at least one image"}},
		{[]string{"facilitator"}, []string{"horde facilitator:", "name a command (run, grant)"}},
		{[]string{"facilitator", "run", "--config", "/nonexistent/facilitator.toml"}, []string{"horde facilitator:", "/nonexistent/facilitator.toml"}},
		{[]string{"facilitator", "grant", "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY", "-5"}, []string{"horde facilitator:", "positive whole number"}},
		{[]string{"job"}, []string{"horde job:", "name a command (run, status, list, cancel, logs, outputs)"}},
		{[]string{"job", "run", "--image", "x", "--facilitator", ""}, []string{"horde job:", "name the facilitator"}},
		{[]string{"account"}, []string{"horde account:", "name a command (balance, keys)"}},
		{[]string{"dev", "--no-such-flag"}, []string{"horde dev:", "no-such-flag"}},
		{[]string{"wallet"}, []string{"name a wallet command"}},
		{[]string{"wallet", "inspect"}, []string{"exactly one secret URI"}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			r := horde(t, runOpts{}, tt.args...)
			if r.code != 2 {
				t.Fatalf("want exit 2:\n%s", r)
			}
			if r.stdout != "" {
				t.Errorf("stdout not empty:\n%s", r.stdout)
			}
			wantContains(t, "stderr", r.stderr, tt.want...)
		})
	}
}

func TestCLIWalletInspect(t *testing.T) {
	r := horde(t, runOpts{}, "wallet", "inspect", "//Alice")
	want := "public key: 0xd43593c715fdd31c61141abd04a99fd6822c8558854ccde39a5684e7a56da27d\n" +
		"ss58 address: 5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY\n"
	if r.code != 0 || r.stdout != want {
		t.Fatalf("want exit 0 and\n%s\ngot:\n%s", want, r)
	}
}

func TestCLIWalletBadURI(t *testing.T) {
	const mnemonic = "bottom drive obey lake curtain smoke basket hold race lonely fit"
	tests := []struct {
		name, uri string
		want      string   // the problem, named
		secrets   []string // must not be echoed
	}{
		{"mistyped word", mnemonic + " walkk", "word 12 is not in the BIP-39", []string{"walkk", "bottom", "lonely"}},
		{"checksum", mnemonic + " fit", "checksum", []string{"bottom", "lonely"}},
		{"too few words", "correct horse battery staple", "4 words", []string{"horse", "staple"}},
		{"bad seed", "0x" + strings.Repeat("ab", 31) + "zz", "not hexadecimal", []string{"abab"}},
		{"short seed", "0xe5be9a5092b81bca", "16 hex digits, want 64", []string{"e5be9a50"}},
		{"empty junction", mnemonic + " walk//hard/", "empty junction", []string{"bottom", "hard"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := horde(t, runOpts{}, "wallet", "inspect", tt.uri)
			if r.code == 0 || r.stdout != "" {
				t.Fatalf("want a non-zero exit and no output:\n%s", r)
			}
			if !strings.HasPrefix(r.stderr, "horde wallet: invalid") || strings.Count(r.stderr, "\n") != 1 {
				t.Errorf("want one line starting %q:\n%s", "horde wallet: invalid", r.stderr)
			}
			wantContains(t, "stderr", r.stderr, tt.want)
			for _, s := range tt.secrets {
				if strings.Contains(r.stderr, s) {
					t.Errorf("stderr echoes the secret %q:\n%s", s, r.stderr)
				}
			}
		})
	}
}

func TestCLIWalletNewShow(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "wallets")
	home := t.TempDir()
	env := []string{"HOME=" + home, walletsDirEnv + "="} // nothing may land in the real ~/.bittensor
	flags := []string{"--wallets-dir", dir, "--wallet", "cli", "--hotkey", "hk"}

	r := horde(t, runOpts{env: env}, append([]string{"wallet", "new"}, flags...)...)
	if r.code != 0 {
		t.Fatalf("wallet new:\n%s", r)
	}
	path := filepath.Join(dir, "cli", "hotkeys", "hk")
	m := regexp.MustCompile(`(?m)^hotkey file: (.+)\npublic key: (0x[0-9a-f]{64})\nss58 address: (5\w{47})\nmnemonic: ((?:[a-z]+ ){11}[a-z]+)\n`).FindStringSubmatch(r.stdout)
	if m == nil || m[1] != path {
		t.Fatalf("wallet new: unexpected output (want hotkey file %s):\n%s", path, r)
	}
	if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("hotkey file: %v, %v", st, err)
	}

	r = horde(t, runOpts{env: env}, append([]string{"wallet", "show"}, flags...)...)
	if want := "hotkey file: " + path + "\npublic key: " + m[2] + "\nss58 address: " + m[3] + "\n"; r.code != 0 || r.stdout != want {
		t.Fatalf("wallet show: want exit 0 and\n%s\ngot:\n%s", want, r)
	}
	if strings.Contains(r.stdout+r.stderr, m[4]) {
		t.Errorf("wallet show prints the mnemonic:\n%s", r)
	}

	// The printed mnemonic is the key.
	r = horde(t, runOpts{env: env}, "wallet", "inspect", m[4])
	if r.code != 0 || !strings.Contains(r.stdout, "ss58 address: "+m[3]+"\n") {
		t.Fatalf("wallet inspect MNEMONIC: want %s:\n%s", m[3], r)
	}

	// A second `new` keeps the key.
	r = horde(t, runOpts{env: env}, append([]string{"wallet", "new"}, flags...)...)
	if r.code != 1 || r.stdout != "" || !strings.Contains(r.stderr, path) {
		t.Fatalf("second wallet new: want exit 1 naming %s:\n%s", path, r)
	}

	// Another hotkey name is not there.
	r = horde(t, runOpts{env: env}, "wallet", "show", "--wallets-dir", dir, "--wallet", "cli", "--hotkey", "other")
	if r.code != 1 {
		t.Fatalf("wallet show of a missing hotkey: want exit 1:\n%s", r)
	}
	wantContains(t, "stderr", r.stderr, "horde wallet new")

	if entries, _ := os.ReadDir(home); len(entries) != 0 {
		t.Errorf("wallet commands wrote to $HOME: %v", entries)
	}
}

// TestCLIDevOnce is the README's first command.
func TestCLIDevOnce(t *testing.T) {
	needDocker(t)
	cwd, tmp, data := t.TempDir(), t.TempDir(), filepath.Join(t.TempDir(), "data", "dev")

	t.Run("temporary data dir", func(t *testing.T) {
		r := horde(t, runOpts{dir: cwd, env: []string{"TMPDIR=" + tmp}, timeout: time.Minute}, "dev", "--once")
		checkHello(t, r, "hello from horde\n")
		// The temporary data dir and per-job directories are removed again.
		if entries, _ := os.ReadDir(tmp); len(entries) != 0 {
			t.Errorf("left in $TMPDIR: %v", entries)
		}
	})

	t.Run("--data-dir", func(t *testing.T) {
		r := horde(t, runOpts{dir: cwd, timeout: time.Minute}, "dev", "--once", "--data-dir", data)
		checkHello(t, r, "hello from horde\n")
		for _, name := range []string{"validator.db", "validator2.db", "miner.db", "miner2.db", "miner3.db", "facilitator.db"} {
			if st, err := os.Stat(filepath.Join(data, name)); err != nil || st.Size() == 0 {
				t.Errorf("%s in --data-dir: %v, %v", name, st, err)
			}
		}
		// The same data dir again (--data is the same flag): the databases are reopened, not
		// rejected, and the dev user keeps its balance: its credits are not granted twice.
		_, balance := charge(t, r)
		again := horde(t, runOpts{dir: cwd, timeout: time.Minute}, "dev", "--once", "--data", data)
		checkHello(t, again, "hello from horde\n")
		charged, after := charge(t, again)
		if after != balance-charged {
			t.Errorf("balance %v after a restart and a job of %v; want %v less that:\n%s", after, charged, balance, again)
		}
	})

	stray, _ := filepath.Glob(filepath.Join(cwd, "*"))
	if len(stray) != 0 {
		t.Errorf("files left in the working directory: %v", stray)
	}
	requireNoLeftovers(t)
}

// TestCLIDevOnceDynamic runs `horde dev --once` from a horde built as plain `go build` does with
// a C compiler present (cgo on), so dynamically linked: the job image assembled from it must
// carry the loader and libc for the job to run.
func TestCLIDevOnceDynamic(t *testing.T) {
	needDocker(t)
	bin := filepath.Join(t.TempDir(), "horde")
	start := time.Now()
	build := exec.CommandContext(t.Context(), "go", "build", "-o", bin, ".")
	// Set explicitly so that a CGO_ENABLED=0 in the caller's environment cannot turn this into
	// the static build the other tests use.
	build.Env = append(os.Environ(), "CGO_ENABLED=1")
	if out, err := build.CombinedOutput(); err != nil {
		t.Skipf("cannot build horde with cgo here (no C compiler? install gcc): %v\n%s", err, out)
	}
	t.Logf("built %s with cgo in %s", bin, time.Since(start).Round(time.Millisecond))
	if _, err := jobimage.CheckStatic(bin); !errors.Is(err, jobimage.ErrNotStatic) {
		t.Skipf("the cgo build of horde is not dynamically linked (CheckStatic: %v); nothing to test", err)
	}
	r := horde(t, runOpts{bin: bin, timeout: time.Minute}, "dev", "--once")
	checkHello(t, r, "hello from horde\n")
	requireNoLeftovers(t)
}

var chargeLine = regexp.MustCompile(`(?m)^charged ([0-9.]+) credits[^;\n]*; the dev user's balance is ([0-9.]+) credits$`)

// charge returns what horde dev's job cost the dev user and the balance it left, in
// micro-credits.
func charge(t *testing.T, r result) (charged, balance float64) {
	t.Helper()
	m := chargeLine.FindStringSubmatch(r.stdout)
	if m == nil {
		t.Fatalf("no charge line:\n%s", r)
	}
	charged, _ = strconv.ParseFloat(m[1], 64)
	balance, _ = strconv.ParseFloat(m[2], 64)
	// Whole micro-credits: compared exactly once rounded.
	return math.Round(charged * 1e6), math.Round(balance * 1e6)
}

func checkHello(t *testing.T, r result, wantStdout string) {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("want exit 0:\n%s", r)
	}
	m := jobLine.FindStringSubmatch(r.stdout)
	if m == nil || m[2] != "completed" {
		t.Fatalf("no completed job line:\n%s", r)
	}
	wantContains(t, "stdout", r.stdout, "--- stdout ---\n"+wantStdout)
	if strings.Contains(r.stderr, "level=") {
		t.Errorf("log lines on stderr without -v:\n%s", r.stderr)
	}
}

// TestCLIDevJobFails passes job arguments through and checks that a failed job fails horde.
func TestCLIDevJobFails(t *testing.T) {
	needDocker(t)
	r := horde(t, runOpts{timeout: time.Minute}, "dev", "--once", "--", "--exit", "3", jobMarker)
	if r.code != 1 {
		t.Fatalf("want exit 1:\n%s", r)
	}
	wantContains(t, "stdout", r.stdout,
		"hello from horde --exit 3 "+jobMarker+"\n",
		"nonzero_return_code", "exit status 3",
		"--- stderr ---\nexiting with status 3\n")
	m := jobLine.FindStringSubmatch(r.stdout)
	if m == nil || m[2] != "failed" {
		t.Fatalf("no failed job line:\n%s", r)
	}
	wantContains(t, "stderr", r.stderr, "horde dev: job "+m[1]+" did not complete: failed")
}

func TestCLIDevNoDocker(t *testing.T) {
	const host = "unix:///nonexistent/docker.sock"
	r := horde(t, runOpts{env: []string{"DOCKER_HOST=" + host}}, "dev", "--once")
	if r.code != 1 || r.stdout != "" {
		t.Fatalf("want exit 1 and no output:\n%s", r)
	}
	if r.took > 5*time.Second {
		t.Errorf("took %s to notice that the engine is not there", r.took)
	}
	var errLines []string
	for line := range strings.Lines(r.stderr) {
		if !strings.HasPrefix(line, "horde dev: starting") {
			errLines = append(errLines, line)
		}
	}
	if len(errLines) != 1 {
		t.Fatalf("want one error line:\n%s", r.stderr)
	}
	wantContains(t, "error", errLines[0], "horde dev: docker: engine not reachable at "+host, "dockerd", "DOCKER_HOST")
}

func TestCLIDevBadDataDir(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{filepath.Join(file, "sub"), file} {
		r := horde(t, runOpts{env: []string{"DOCKER_HOST=unix:///nonexistent/docker.sock"}}, "dev", "--once", "--data-dir", dir)
		if r.code != 1 || r.stdout != "" {
			t.Fatalf("--data-dir %s: want exit 1 and no output:\n%s", dir, r)
		}
		wantContains(t, "stderr", r.stderr, "--data-dir "+dir+": ", "not a directory")
		if strings.Contains(r.stderr, "engine not reachable") {
			t.Errorf("--data-dir %s: checked before the Docker engine:\n%s", dir, r.stderr)
		}
	}
}

// devProcess is a running `horde dev` whose stdout the test reads line by line.
type devProcess struct {
	cmd            *exec.Cmd
	tmp            string      // its $TMPDIR
	lines          chan string // stdout lines; closed at EOF
	stdout, stderr lockedBuffer
	done           chan struct{} // closed when stdout is drained
}

// lockedBuffer is a buffer the test may read while another goroutine still writes to it.
type lockedBuffer = syncbuf.Buffer

func startDev(t *testing.T, args ...string) *devProcess {
	t.Helper()
	p := &devProcess{lines: make(chan string, 100), done: make(chan struct{}), tmp: t.TempDir()}
	p.cmd = exec.Command(hordeBin, append([]string{"dev"}, args...)...)
	p.cmd.Dir = t.TempDir()
	p.cmd.Env = append(os.Environ(), "TMPDIR="+p.tmp)
	p.cmd.Stderr = &p.stderr
	out, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(p.done)
		defer close(p.lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			_, _ = p.stdout.Write([]byte(sc.Text() + "\n"))
			select {
			case p.lines <- sc.Text():
			default: // nobody is waiting for lines any more
			}
		}
		_, _ = io.Copy(io.Discard, out)
	}()
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			_ = p.cmd.Process.Kill()
			_ = p.cmd.Wait()
		}
	})
	return p
}

// stop sends SIGINT and waits up to limit for horde to exit; it returns what horde did.
func (p *devProcess) stop(t *testing.T, limit time.Duration) result {
	t.Helper()
	start := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	// Drain the rest of stdout first: Wait closes the pipe.
	select {
	case <-p.done:
	case <-time.After(limit):
		_ = p.cmd.Process.Kill()
		<-p.done
		_ = p.cmd.Wait()
		t.Fatalf("horde dev did not exit within %s of SIGINT\n--- stdout ---\n%s--- stderr ---\n%s", limit, p.stdout.String(), p.stderr.String())
	}
	_ = p.cmd.Wait()
	r := result{stdout: p.stdout.String(), stderr: p.stderr.String(), code: p.cmd.ProcessState.ExitCode(), took: time.Since(start)}
	recordJobs(r.stdout)
	t.Logf("horde dev: exit %d %s after SIGINT", r.code, r.took.Round(time.Millisecond))
	// Its temporary data dir and per-job directories are removed again.
	if entries, _ := os.ReadDir(p.tmp); len(entries) != 0 {
		t.Errorf("left in $TMPDIR after SIGINT: %v", entries)
	}
	return r
}

// TestCLIDevInterrupt runs `horde dev` until it has printed two job results, then stops it
// with Ctrl-C.
func TestCLIDevInterrupt(t *testing.T) {
	needDocker(t)
	p := startDev(t, "--interval", "1s", "--", jobMarker)
	deadline := time.After(30 * time.Second)
	for results := 0; results < 2; {
		select {
		case line, ok := <-p.lines:
			if !ok {
				_ = p.cmd.Wait()
				t.Fatalf("horde dev exited before two job results (%v)\n--- stdout ---\n%s--- stderr ---\n%s", p.cmd.ProcessState, p.stdout.String(), p.stderr.String())
			}
			if m := jobLine.FindStringSubmatch(line); m != nil {
				if m[2] != "completed" {
					t.Errorf("job result: %s", line)
				}
				results++
			}
		case <-deadline:
			t.Fatalf("no two job results within 30 s\n--- stdout ---\n%s--- stderr ---\n%s", p.stdout.String(), p.stderr.String())
		}
	}
	r := p.stop(t, 10*time.Second)
	if r.code != 0 {
		t.Fatalf("want exit 0 after SIGINT:\n%s", r)
	}
	wantContains(t, "stderr", r.stderr, "horde dev: running; a hello job every 1s", "horde dev: stopping\n")
	if n := strings.Count(r.stdout, "hello from horde "+jobMarker+"\n"); n < 2 {
		t.Errorf("%d job outputs, want at least 2:\n%s", n, r.stdout)
	}
	requireNoLeftovers(t)
}

// TestCLIDevInterruptMidJob stops `horde dev` while its job container runs: it exits 0 at
// once, prints no result for the interrupted job, and removes the container.
func TestCLIDevInterruptMidJob(t *testing.T) {
	needDocker(t)
	p := startDev(t, "--interval", "1h", "--", "--sleep", "60s", jobMarker)
	waitForContainer(t, p)
	r := p.stop(t, 10*time.Second)
	if r.code != 0 {
		t.Fatalf("want exit 0 after SIGINT:\n%s", r)
	}
	if jobLine.MatchString(r.stdout) {
		t.Errorf("a result printed for the interrupted job:\n%s", r.stdout)
	}
	wantContains(t, "stderr", r.stderr, "horde dev: stopping\n")
	if strings.Contains(r.stderr, "running;") {
		t.Errorf("says it is running after the interrupt:\n%s", r.stderr)
	}
	requireNoLeftovers(t)
}

// waitForContainer polls the engine until the job container of p (found by jobMarker) runs.
func waitForContainer(t *testing.T, p *devProcess) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		out, err := exec.Command("docker", "ps", "--no-trunc", "--filter", "label="+devLabel, "--format", "{{.Command}}").Output()
		if err != nil {
			t.Fatalf("docker ps: %v", err)
		}
		if strings.Contains(string(out), jobMarker) {
			return
		}
		select {
		case <-p.done:
			_ = p.cmd.Wait()
			t.Fatalf("horde dev exited before its job container ran (%v)\n--- stdout ---\n%s--- stderr ---\n%s", p.cmd.ProcessState, p.stdout.String(), p.stderr.String())
		case <-time.After(100 * time.Millisecond):
		}
	}
	t.Fatalf("no job container within 30 s\n--- stderr ---\n%s", p.stderr.String())
}
