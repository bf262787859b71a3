package main

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/computehorde/horde/internal/chain/pylon/wire"
	"github.com/computehorde/horde/internal/chain/simserver"
)

const chainSimGenesis = `{
	"netuid": 7,
	"hyperparams": {"tempo": 5},
	"neurons": [
		{"hotkey": "5VAL", "coldkey": "5COLD", "stake": 1000000000000, "validator_permit": true},
		{"hotkey": "5MINER", "coldkey": "5COLD", "stake": 1, "axon": {"ip": "10.0.0.1", "port": 8091}}
	],
	"identities": [{"name": "validator", "hotkey": "5VAL", "token": "secret-identity-token"}],
	"admin_token": "secret-admin-token"
}`

var chainSimListening = regexp.MustCompile(`^horde chain sim: listening on (http://127\.0\.0\.1:\d+) \(netuid \d+\)$`)

// chainSimProcess is a running `horde chain sim`.
type chainSimProcess struct {
	cmd    *exec.Cmd
	url    string
	stderr *lockedBuffer
	lines  chan string
}

// startChainSim starts `horde chain sim` on a free loopback port, with manual blocks and the
// given genesis, and waits for its listening line.
func startChainSim(t *testing.T, genesis string) *chainSimProcess {
	t.Helper()
	path := filepath.Join(t.TempDir(), "genesis.json")
	if err := os.WriteFile(path, []byte(genesis), 0o600); err != nil {
		t.Fatal(err)
	}
	p := &chainSimProcess{
		cmd:    exec.Command(hordeBin, "chain", "sim", "--listen", "127.0.0.1:0", "--block-time", "0", "--genesis", path),
		stderr: &lockedBuffer{},
		lines:  make(chan string, 1),
	}
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
			select {
			case p.lines <- sc.Text():
			default:
			}
		}
		close(p.lines)
	}()
	select {
	case line := <-p.lines:
		m := chainSimListening.FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("first stdout line %q does not match %s\n--- stderr ---\n%s", line, chainSimListening, p.stderr.String())
		}
		p.url = m[1]
	case <-time.After(10 * time.Second):
		t.Fatalf("no listening line within 10 s\n--- stderr ---\n%s", p.stderr.String())
	}
	return p
}

// call makes one HTTP call to the server and decodes its 200 answer into v.
func (p *chainSimProcess) call(t *testing.T, method, path, token, body string, v any) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, p.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, raw)
	}
	if err := json.Unmarshal(raw, v); err != nil {
		t.Fatalf("%s %s: %v: %s", method, path, err, raw)
	}
}

// stop interrupts the server as Ctrl-C would and checks that it exits cleanly.
func (p *chainSimProcess) stop(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	for range p.lines {
	}
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit after SIGINT: %v\n--- stderr ---\n%s", err, p.stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("still running 10 s after SIGINT\n--- stderr ---\n%s", p.stderr.String())
	}
}

// TestCLIChainSim starts `horde chain sim` on a free port, reads one Pylon endpoint and
// drives one admin endpoint, then stops it with Ctrl-C.
func TestCLIChainSim(t *testing.T) {
	p := startChainSim(t, chainSimGenesis)
	var neurons wire.NeuronsResponse
	p.call(t, http.MethodGet, wire.SubnetBase("validator", 7)+wire.PathLatestNeurons, "secret-identity-token", "", &neurons)
	if len(neurons.Neurons) != 2 || neurons.Neurons["5MINER"].AxonInfo.IP != "10.0.0.1" || !neurons.Neurons["5VAL"].ValidatorPermit {
		t.Errorf("neurons: %+v", neurons)
	}
	var adv simserver.AdvanceResponse
	p.call(t, http.MethodPost, "/sim/advance", "secret-admin-token", `{"blocks": 3}`, &adv)
	if adv.Head.Number != 3 {
		t.Errorf("advance: %+v", adv)
	}
	var hp wire.Hyperparams
	p.call(t, http.MethodGet, wire.HyperparamsPath(7), "", "", &hp)
	if hp.Tempo != 5 || hp.MaxValidators != 64 {
		t.Errorf("hyperparams: %+v, want tempo 5 and the simulator's other defaults", hp)
	}
	p.stop(t)
	wantContains(t, "stderr", p.stderr.String(), "identity validator, hotkey 5VAL", "horde chain sim: stopping")
	if strings.Contains(p.stderr.String(), "secret") {
		t.Errorf("a token in the log:\n%s", p.stderr.String())
	}
}

func TestCLIChainSimBadGenesis(t *testing.T) {
	for _, tc := range []struct {
		name, genesis string
		args          []string
		want          string
	}{
		{"unknown key", `{"netuid": 7, "colour": "red"}`, nil, `unknown field "colour"`},
		{"unknown nested key", `{"neurons": [{"hotkey": "5A", "stake_tao": 1}]}`, nil, `unknown field "stake_tao"`},
		{"bad block time", `{"block_time": "soon"}`, nil, `block_time "soon"`},
		{"bad axon", `{"neurons": [{"hotkey": "5A", "axon": {"ip": "x", "port": 1}}]}`, nil, `axon ip "x"`},
		{"netuid conflict", `{"netuid": 7}`, []string{"--netuid", "8"}, "contradicts the genesis file's netuid 7"},
		{"bad identity", `{"identities": [{"name": "a/b", "hotkey": "5A", "token": "t"}]}`, nil, "not URL-path safe"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "genesis.json")
			if err := os.WriteFile(path, []byte(tc.genesis), 0o600); err != nil {
				t.Fatal(err)
			}
			args := append([]string{"chain", "sim", "--listen", "127.0.0.1:0", "--block-time", "0", "--genesis", path}, tc.args...)
			r := horde(t, runOpts{}, args...)
			if r.code == 0 || !strings.Contains(r.stderr, tc.want) || r.stdout != "" {
				t.Errorf("want a failure naming %q:\n%s", tc.want, r)
			}
		})
	}
}
