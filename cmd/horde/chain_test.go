package main

import (
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/computehorde/horde/internal/chain/pylon/wire"
)

const (
	devAlice = "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY"
	devBob   = "5FHneW46xGXgs5mUiveU4sbTyGBzmstUspZC92UhjJM694ty"
)

// sharedGenesis is a subnet with validator //Alice and miner //Bob, each with a Pylon
// identity.
const sharedGenesis = `{
	"netuid": 12,
	"neurons": [
		{"hotkey": "` + devAlice + `", "coldkey": "5DAAnrj7VHTznn2AWBemMuyBwZWs6FNFjdyVXUeYum3PTXFy", "stake": 1000000000000, "validator_permit": true},
		{"hotkey": "` + devBob + `", "coldkey": "5DAAnrj7VHTznn2AWBemMuyBwZWs6FNFjdyVXUeYum3PTXFy", "validator_permit": false, "axon": {"ip": "203.0.113.7", "port": 8000}}
	],
	"identities": [
		{"name": "validator", "hotkey": "` + devAlice + `", "token": "validator-token"},
		{"name": "miner", "hotkey": "` + devBob + `", "token": "miner-token"}
	]
}`

// neuronRow returns the fields of hotkey's row in `horde chain show`'s table.
func neuronRow(t *testing.T, show, hotkey string) []string {
	t.Helper()
	for line := range strings.Lines(show) {
		if f := strings.Fields(line); len(f) == 6 && f[1] == hotkey {
			return f
		}
	}
	t.Fatalf("no row for %s in:\n%s", hotkey, show)
	return nil
}

// TestCLIChainSharedByProcesses runs a validator-side and a miner-side horde, each its own
// OS process, against one `horde chain sim` (a third): both see the same metagraph, and
// weights the validator sets show for the miner at the next block.
func TestCLIChainSharedByProcesses(t *testing.T) {
	sim := startChainSim(t, sharedGenesis)
	as := func(identity string) runOpts {
		return runOpts{env: []string{"HORDE_CHAIN=" + sim.url, "HORDE_CHAIN_IDENTITY=" + identity, "HORDE_CHAIN_TOKEN=" + identity + "-token"}}
	}
	validatorView := horde(t, as("validator"), "chain", "show")
	minerView := horde(t, as("miner"), "chain", "show")
	if validatorView.code != 0 || minerView.code != 0 || validatorView.stdout != minerView.stdout {
		t.Fatalf("the two processes see different chains:\n%s\n%s", validatorView, minerView)
	}
	wantContains(t, "chain show", minerView.stdout, "netuid 12 at block 0", "hyperparameters (from the chain server", "203.0.113.7:8000")
	if row := neuronRow(t, minerView.stdout, devAlice); row[2] != "1000" || row[3] != "true" || row[5] != "0" {
		t.Errorf("alice before weights: %v", row)
	}

	set := horde(t, as("validator"), "chain", "weights", devBob+"=1", "5NotRegistered=1")
	if set.code != 0 {
		t.Fatalf("setting weights:\n%s", set)
	}
	wantContains(t, "chain weights", set.stdout, "weights set at block 1", "values [65535]", "left out, not registered: [5NotRegistered]")

	var head struct {
		Head struct{ Number uint64 } `json:"head"`
	}
	sim.call(t, http.MethodPost, "/sim/advance", "", `{"blocks": 1}`, &head)
	after := horde(t, as("miner"), "chain", "show")
	if row := neuronRow(t, after.stdout, devAlice); row[5] != "1" || head.Head.Number != 1 {
		t.Errorf("the miner does not see the validator's weights at block 1: %v\n%s", row, after)
	}
	var onChain map[string]uint16
	sim.call(t, http.MethodGet, "/sim/weights/"+devAlice, "", "", &onChain)
	if onChain["1"] != 65535 || len(onChain) != 1 {
		t.Errorf("weights on the simulated chain: %v", onChain)
	}

	// The miner's identity holds no permit: the chain refuses its weights, and the command
	// says why at once and gives up when the epoch ends.
	refused := exec.Command(hordeBin, "chain", "weights", devAlice+"=1")
	refused.Env = append(os.Environ(), as("miner").env...)
	var stderr lockedBuffer
	refused.Stderr = &stderr
	if err := refused.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = refused.Process.Kill() }()
	var st wire.WeightsStatusResponse
	for deadline := time.Now().Add(10 * time.Second); st.Job != wire.JobRunning || st.Error == ""; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the miner's weights were never scheduled: %+v\n%s", st, stderr.String())
		}
		sim.call(t, http.MethodGet, wire.SubnetBase("miner", 12)+wire.PathWeightsStatus(2), "miner-token", "", &st)
	}
	// The command says why at once: wait for that before ending the epoch, or a loaded
	// machine may end it before the command has read the refusal.
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(stderr.String(), "NeuronNoValidatorPermit"); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the command did not report the refusal while the epoch was open:\n%s", stderr.String())
		}
	}
	sim.call(t, http.MethodPost, "/sim/advance", "", `{"blocks": 12}`, &head)
	err := refused.Wait()
	if err == nil || !strings.Contains(stderr.String(), "weights not set yet") || strings.Count(stderr.String(), "NeuronNoValidatorPermit") < 2 {
		t.Errorf("a miner's weights: %v\n%s", err, stderr.String())
	}
	sim.stop(t)
}
