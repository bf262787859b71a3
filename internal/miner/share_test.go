package miner

import (
	"fmt"
	"testing"
	"time"

	"github.com/computehorde/horde/internal/chain"
	"github.com/computehorde/horde/internal/keys"
	"github.com/computehorde/horde/internal/protocol"
	"github.com/computehorde/horde/internal/wsconn"
)

// requestAs is an initial job request of validator k, with k's JobStarted receipt.
func (h *harness) requestAs(k *keys.Keypair, id string) *protocol.V0InitialJobRequest {
	r := h.initialRequest(id, protocol.ExecutorClassAlwaysOnTest)
	r.JobStartedReceiptPayload.ValidatorHotkey = k.SS58()
	r.JobStartedReceiptSignature = k.Sign(r.JobStartedReceiptPayload.BlobForSigning()).Hex()
	return r
}

// TestStakeShare: two validators with stake 3:1 competing for 4 executors end up holding 3
// and 1, each declined with its own running receipts while it holds its share and the other
// waits; one validator alone gets all 4.
func TestStakeShare(t *testing.T) {
	h := newHarness(t, happyExecutor, protocol.ManifestEntry{Class: protocol.ExecutorClassAlwaysOnTest, Count: 4})
	ctx := t.Context()
	charlie := mustKey(t, "//Charlie")
	if _, err := h.chain.Register(chain.Hotkey(charlie.SS58()), "c4"); err != nil {
		t.Fatal(err)
	}
	if err := h.chain.SetStake(chain.Hotkey(charlie.SS58()), 1e13); err != nil {
		t.Fatal(err)
	}
	if err := h.chain.SetStake(chain.Hotkey(h.alice.SS58()), 3e13); err != nil {
		t.Fatal(err)
	}
	h.chain.Advance(12) // an epoch step hands Charlie a permit
	if err := h.metagraph.Refresh(ctx); err != nil {
		t.Fatal(err)
	}

	alice := h.connect(h.alice, h.authMsg(h.alice, time.Now()))
	h.read(alice) // manifest
	char := h.connect(charlie, h.authMsg(charlie, time.Now()))
	h.read(char)

	n := 0
	ask := func(c *wsconn.Conn, k *keys.Keypair) (string, protocol.Message) {
		t.Helper()
		n++
		id := fmt.Sprintf("00000000-0000-4000-8000-%012d", n)
		send(ctx, t, c, h.requestAs(k, id))
		return id, h.read(c)
	}
	accepted := func(c *wsconn.Conn, k *keys.Keypair) string {
		t.Helper()
		id, m := ask(c, k)
		if _, ok := m.(*protocol.V0AcceptJobRequest); !ok {
			t.Fatalf("job %s of %s: %#v, want accept", id, k.SS58()[:6], m)
		}
		if _, ok := h.read(c).(*protocol.V0ExecutorReadyRequest); !ok {
			t.Fatal("want executor ready")
		}
		return id
	}
	declined := func(c *wsconn.Conn, k *keys.Keypair, wantExcuses string) {
		t.Helper()
		id, m := ask(c, k)
		d, ok := m.(*protocol.V0DeclineJobRequest)
		if !ok || d.Reason != protocol.JobRejectionReasonBusy {
			t.Fatalf("job %s of %s: %#v, want decline busy", id, k.SS58()[:6], m)
		}
		for _, r := range d.Receipts {
			if r.Payload.Header().ValidatorHotkey != wantExcuses {
				t.Errorf("decline of %s excused by %s's receipt; want only %s's", k.SS58()[:6], r.Payload.Header().ValidatorHotkey[:6], wantExcuses[:6])
			}
		}
		if len(d.Receipts) == 0 {
			t.Errorf("decline of %s without excuses", k.SS58()[:6])
		}
	}
	finish := func(c *wsconn.Conn, id string) {
		t.Helper()
		send(ctx, t, c, &protocol.V0JobRequest{JobUUID: id, ExecutorClass: protocol.ExecutorClassAlwaysOnTest,
			DockerImage: "img", DockerRunOptionsPreset: protocol.DockerRunOptionsPresetNone, DockerRunCmd: []string{}})
		for _, want := range []string{"V0VolumesReadyRequest", "V0ExecutionDoneRequest", "V0JobFinishedRequest"} {
			if got := h.read(c).MessageType(); got != want {
				t.Fatalf("got %s, want %s", got, want)
			}
		}
	}

	// Alone, Alice gets all four.
	var aliceJobs []string
	for range 4 {
		aliceJobs = append(aliceJobs, accepted(alice, h.alice))
	}
	// Charlie asks while all are busy: declined with the running jobs' receipts.
	declined(char, charlie, h.alice.SS58())
	// An executor frees up. Alice holds 3 of 4 = her share while Charlie waits: declined
	// with her own receipts; Charlie takes it.
	finish(alice, aliceJobs[0])
	declined(alice, h.alice, h.alice.SS58())
	charlieJob := accepted(char, charlie)
	if got := h.miner.InFlight(); got != 4 {
		t.Fatalf("in flight %d, want 4 (3 + 1)", got)
	}
	// The other way round: Charlie at his share of 1 is declined while Alice waits.
	finish(alice, aliceJobs[1])
	declined(char, charlie, charlie.SS58())
	aliceJobs = append(aliceJobs, accepted(alice, h.alice))
	finish(char, charlieJob)
	charlieJob = accepted(char, charlie)
	held := map[string]int{}
	h.miner.mu.Lock()
	for _, j := range h.miner.byUUID {
		held[j.validator.hotkey]++
	}
	h.miner.mu.Unlock()
	if held[h.alice.SS58()] != 3 || held[charlie.SS58()] != 1 {
		t.Errorf("held %v, want Alice 3 and Charlie 1", held)
	}
	for _, id := range aliceJobs[2:] {
		finish(alice, id)
	}
	finish(char, charlieJob)
}
