package miner

import (
	"bytes"
	"testing"
	"time"

	"github.com/coder/websocket"

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

// TestUnknownClassDeclined: an initial request for a class newer than this miner is a clean
// class_not_offered decline, not a malformed message.
func TestUnknownClassDeclined(t *testing.T) {
	h := newHarness(t, readyThenHold)
	ctx := t.Context()
	ws, _, err := websocket.Dial(ctx, h.url+ValidatorPathPrefix+h.alice.SS58(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	write := func(m protocol.Message, edit func([]byte) []byte) {
		t.Helper()
		data, err := protocol.Encode(m)
		if err != nil {
			t.Fatal(err)
		}
		if err := ws.Write(ctx, websocket.MessageText, edit(data)); err != nil {
			t.Fatal(err)
		}
	}
	read := func() protocol.Message {
		t.Helper()
		_, data, err := ws.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		m, err := protocol.DecodeMinerToValidator(data)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	write(h.authMsg(h.alice, time.Now()), func(b []byte) []byte { return b })
	read() // manifest
	req := h.initialRequest("00000000-0000-4000-8000-0000000000aa", protocol.ExecutorClassAlwaysOnTest)
	write(req, func(b []byte) []byte {
		return bytes.Replace(b, []byte(`"executor_class":"always_on.test"`), []byte(`"executor_class":"always_on.tpu-v9"`), 1)
	})
	d, ok := read().(*protocol.V0DeclineJobRequest)
	if !ok || d.Reason != protocol.JobRejectionReasonClassNotOffered || d.JobUUID != req.JobUUID {
		t.Fatalf("got %#v, want decline class_not_offered", d)
	}
}
