package miner

import (
	"bytes"
	"context"
	"sync"
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

// silentExecutors start executors that never connect, and record the kills.
type silentExecutors struct {
	mu     sync.Mutex
	killed []string
}

func (s *silentExecutors) Start(context.Context, ExecutorRequest) error { return nil }
func (s *silentExecutors) Kill(_ context.Context, job string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.killed = append(s.killed, job)
	return nil
}

// TestExecutorNeverConnects: an executor that does not connect in time is killed and its
// job fails as executor_spinup_failed; the wait follows the class's spin-up time unless set.
func TestExecutorNeverConnects(t *testing.T) {
	h := newHarness(t, happyExecutor)
	silent := &silentExecutors{}
	h.miner.cfg.Executors = silent
	h.miner.cfg.ExecutorStartTimeout = 50 * time.Millisecond
	c := h.authed()
	const id = "00000000-0000-4000-8000-000000000007"
	send(t.Context(), t, c, h.initialRequest(id, protocol.ExecutorClassAlwaysOnTest))
	if _, ok := h.read(c).(*protocol.V0AcceptJobRequest); !ok {
		t.Fatal("want accept")
	}
	f, ok := h.read(c).(*protocol.V0HordeFailedRequest)
	if !ok || f.Reason != protocol.HordeFailureReasonExecutorSpinupFailed {
		t.Fatalf("got %#v, want executor_spinup_failed", f)
	}
	silent.mu.Lock()
	defer silent.mu.Unlock()
	if len(silent.killed) != 1 || silent.killed[0] != id {
		t.Errorf("killed %v, want the job's executor", silent.killed)
	}

	h.miner.cfg.ExecutorStartTimeout = 0
	for class, want := range map[protocol.ExecutorClass]time.Duration{
		protocol.ExecutorClassSpinUp4minGPU24GB: 4 * time.Minute,
		protocol.ExecutorClassAlwaysOnTest:      MinExecutorStartTimeout,
		protocol.ExecutorClassAlwaysOnLLMA6000:  30 * time.Second,
	} {
		if got := h.miner.startTimeout(class); got != want {
			t.Errorf("start timeout of %s = %v, want %v", class, got, want)
		}
	}
}
