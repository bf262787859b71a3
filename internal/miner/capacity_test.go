package miner

import (
	"testing"

	"github.com/computehorde/horde/internal/protocol"
)

// TestSetCapacityCapsAdmission: when the executor manager loses its hosts, jobs of the
// class are declined at once (class_not_offered, no penalty), and accepted again when the
// hosts return.
func TestSetCapacityCapsAdmission(t *testing.T) {
	h := newHarness(t, readyThenHold)
	c := h.authed()
	ctx := t.Context()
	h.miner.SetCapacity(protocol.Manifest{{Class: protocol.ExecutorClassAlwaysOnTest, Count: 0}})
	send(ctx, t, c, h.initialRequest("00000000-0000-4000-8000-000000000001", protocol.ExecutorClassAlwaysOnTest))
	if d, ok := h.read(c).(*protocol.V0DeclineJobRequest); !ok || d.Reason != protocol.JobRejectionReasonClassNotOffered {
		t.Fatalf("no host up: %#v, want decline class_not_offered", d)
	}
	h.miner.SetCapacity(protocol.Manifest{{Class: protocol.ExecutorClassAlwaysOnTest, Count: 1}})
	send(ctx, t, c, h.initialRequest("00000000-0000-4000-8000-000000000002", protocol.ExecutorClassAlwaysOnTest))
	if _, ok := h.read(c).(*protocol.V0AcceptJobRequest); !ok {
		t.Fatal("host back: want accept")
	}
	if _, ok := h.read(c).(*protocol.V0ExecutorReadyRequest); !ok {
		t.Fatal("want executor ready")
	}
}
