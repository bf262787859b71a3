package validator

import (
	"context"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/computehorde/horde/internal/keys"
	"github.com/computehorde/horde/internal/protocol"
	"github.com/computehorde/horde/internal/wsconn"
)

// signJob signs spec as the facilitator does for its users (scope SignedFields).
func signJob(t *testing.T, k *keys.Keypair, spec *protocol.V2JobRequest) {
	t.Helper()
	spec.Signature = &protocol.Signature{SignatureType: "bittensor", Signatory: k.SS58(), TimestampNS: time.Now().UnixNano(),
		SignatureScope: protocol.SignatureScopeSignedFields}
	digest, err := spec.SignedPayloadDigest()
	if err != nil {
		t.Fatal(err)
	}
	sig := k.Sign(digest[:])
	spec.Signature.Signature = sig[:]
}

// fakeFacilitator accepts one validator, checks its authentication, sends it jobs and
// collects the status updates, answering each.
type fakeFacilitator struct {
	t       *testing.T
	jobs    []protocol.V2JobRequest
	updates chan *protocol.V0JobStatusUpdate
	// dropFirst drops the first connection at its first status update, unanswered.
	dropFirst bool
	conns     atomic.Int32
}

func (f *fakeFacilitator) serve(w http.ResponseWriter, r *http.Request) {
	ws, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	conn := wsconn.New(ws)
	defer conn.CloseNow()
	ctx := r.Context()
	frame, err := conn.ReadFrame(ctx)
	if err != nil {
		return
	}
	msg, err := protocol.Decode(protocol.UnionValidatorToFacilitator, frame)
	auth, ok := msg.(*protocol.V0AuthenticationRequest)
	if err != nil || !ok {
		f.t.Errorf("facilitator: first frame %s: %v", frame, err)
		return
	}
	pubBytes, _ := hex.DecodeString(auth.PublicKey)
	var pub keys.PublicKey
	copy(pub[:], pubBytes)
	sig, err := keys.ParseSignature(auth.Signature)
	if err != nil || !pub.Verify(pubBytes, sig) || strings.HasPrefix(auth.PublicKey, "0x") {
		f.t.Errorf("facilitator: bad auth %+v", auth)
		return
	}
	_ = conn.Send(ctx, &protocol.Response{Status: protocol.ResponseStatusSuccess, Errors: []protocol.ResponseError{}})
	first := f.conns.Add(1) == 1
	if first {
		for i := range f.jobs {
			_ = conn.Send(ctx, &f.jobs[i])
		}
	}
	for {
		frame, err := conn.ReadFrame(ctx)
		if err != nil {
			return
		}
		msg, err := protocol.Decode(protocol.UnionValidatorToFacilitator, frame)
		if err != nil {
			f.t.Errorf("facilitator: %s: %v", frame, err)
			continue
		}
		if u, ok := msg.(*protocol.V0JobStatusUpdate); ok {
			f.updates <- u
			if first && f.dropFirst {
				return // unanswered: the validator must send it again
			}
			_ = conn.Send(ctx, &protocol.Response{Status: protocol.ResponseStatusSuccess, Errors: []protocol.ResponseError{}})
		}
	}
}

// TestFacilitatorLink: a signed job from the facilitator runs on a miner and every status
// reaches the facilitator in order, ending completed with the output; a job with a forged
// signature is rejected invalid_signature.
func TestFacilitatorLink(t *testing.T) {
	e := newEnv(t, nil)
	m := e.startMiner(happyMiner)
	user := mustKey(t, "//Ferdie")
	good := testSpec(protocol.ExecutorClassAlwaysOnTest)
	signJob(t, user, &good)
	forged := testSpec(protocol.ExecutorClassAlwaysOnTest)
	signJob(t, user, &forged)
	forged.Args = []string{"something", "else"} // after signing
	f := &fakeFacilitator{t: t, jobs: []protocol.V2JobRequest{forged, good}, updates: make(chan *protocol.V0JobStatusUpdate, 32)}
	srv := httptest.NewServer(http.HandlerFunc(f.serve))
	defer srv.Close()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- e.v.RunFacilitatorLink(ctx, "ws"+strings.TrimPrefix(srv.URL, "http")) }()

	got := map[string][]protocol.JobStatus{}
	var completed *protocol.V0JobStatusUpdate
	for deadline := time.After(20 * time.Second); completed == nil || len(got[forged.UUID]) == 0; {
		select {
		case u := <-f.updates:
			got[u.UUID] = append(got[u.UUID], u.Status)
			if u.UUID == good.UUID && u.Status == protocol.JobStatusCompleted {
				completed = u
			}
		case <-deadline:
			t.Fatalf("updates so far: %v", got)
		}
	}
	m.wait()
	cancel()
	<-done
	want := []protocol.JobStatus{"received", "accepted", "executor_ready", "volumes_ready", "execution_done", "completed"}
	if strings.Join(statusStrings(got[good.UUID]), ",") != strings.Join(statusStrings(want), ",") {
		t.Errorf("statuses of the good job: %v, want %v", got[good.UUID], want)
	}
	if completed.Metadata == nil || completed.Metadata.MinerResponse == nil || completed.Metadata.MinerResponse.DockerProcessStdout != "hello horde\n" {
		t.Errorf("completed metadata %+v", completed.Metadata)
	}
	if len(got[forged.UUID]) != 1 || got[forged.UUID][0] != protocol.JobStatusRejected {
		t.Errorf("statuses of the forged job: %v, want rejected", got[forged.UUID])
	}
}

func statusStrings(ss []protocol.JobStatus) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = string(s)
	}
	return out
}

// TestFacilitatorLinkResendsAfterReconnect: status updates the facilitator did not answer
// before the connection dropped are sent again after the reconnect, in order.
func TestFacilitatorLinkResendsAfterReconnect(t *testing.T) {
	e := newEnv(t, nil)
	m := e.startMiner(happyMiner)
	good := testSpec(protocol.ExecutorClassAlwaysOnTest)
	signJob(t, mustKey(t, "//Ferdie"), &good)
	f := &fakeFacilitator{t: t, jobs: []protocol.V2JobRequest{good}, updates: make(chan *protocol.V0JobStatusUpdate, 32), dropFirst: true}
	srv := httptest.NewServer(http.HandlerFunc(f.serve))
	defer srv.Close()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- e.v.RunFacilitatorLink(ctx, "ws"+strings.TrimPrefix(srv.URL, "http")) }()
	var got []string
	for deadline := time.After(30 * time.Second); len(got) == 0 || got[len(got)-1] != "completed"; {
		select {
		case u := <-f.updates:
			got = append(got, string(u.Status))
		case <-deadline:
			t.Fatalf("updates so far: %v", got)
		}
	}
	m.wait()
	cancel()
	<-done
	// "received" reached the first connection, unanswered, and comes again on the second.
	if got[0] != "received" || got[1] != "received" || f.conns.Load() < 2 {
		t.Errorf("updates %v over %d connections; want received twice", got, f.conns.Load())
	}
	if strings.Join(got[1:], ",") != "received,accepted,executor_ready,volumes_ready,execution_done,completed" {
		t.Errorf("updates after the reconnect: %v", got[1:])
	}
}
