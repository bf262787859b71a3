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
	// values and cheats, when set, receive the class values and cheat reports.
	values   chan *protocol.V0ClassValuesUpdate
	cheats   chan *protocol.V0JobCheatDetected
	capacity chan *protocol.V0ExecutorCapacityUpdate
	// out, when set, carries more messages to the validator (cheat reports).
	out chan protocol.Message
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
	// Like upstream's facilitator, this one knows only V0AuthenticationRequest: anything
	// else first is answered with an error, and the validator falls back.
	msg, err := protocol.Decode(protocol.UnionValidatorToFacilitator, frame)
	if _, v1 := msg.(*protocol.V1AuthenticationRequest); err == nil && v1 {
		_ = conn.Send(ctx, &protocol.Response{Status: protocol.ResponseStatusError, Errors: []protocol.ResponseError{{Msg: "bad message", Type: "parse_error"}}})
		if frame, err = conn.ReadFrame(ctx); err != nil {
			return
		}
		msg, err = protocol.Decode(protocol.UnionValidatorToFacilitator, frame)
	}
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
		if f.out != nil {
			go func() {
				for {
					select {
					case m := <-f.out:
						_ = conn.Send(ctx, m)
					case <-ctx.Done():
						return
					}
				}
			}()
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
		switch m := msg.(type) {
		case *protocol.V0Heartbeat:
			continue // not answered
		case *protocol.V0JobStatusUpdate:
			f.updates <- m
			if first && f.dropFirst {
				return // unanswered: the validator must send it again
			}
		case *protocol.V0ClassValuesUpdate:
			if f.values != nil {
				f.values <- m
			}
		case *protocol.V0JobCheatDetected:
			if f.cheats != nil {
				f.cheats <- m
			}
		case *protocol.V0ExecutorCapacityUpdate:
			if f.capacity != nil {
				f.capacity <- m
			}
		}
		// Everything else is answered, in order, as upstream's facilitator does.
		_ = conn.Send(ctx, &protocol.Response{Status: protocol.ResponseStatusSuccess, Errors: []protocol.ResponseError{}})
	}
}

// startLink runs the validator's facilitator link to f until the test ends.
func startLink(t *testing.T, e *env, f *fakeFacilitator) {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(f.serve))
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- e.v.RunFacilitatorLink(ctx, "ws"+strings.TrimPrefix(srv.URL, "http")) }()
	t.Cleanup(func() {
		cancel()
		<-done
		srv.Close()
	})
}

// awaitStatus waits for job's update with status s.
func awaitStatus(t *testing.T, f *fakeFacilitator, job string, s protocol.JobStatus) *protocol.V0JobStatusUpdate {
	t.Helper()
	for deadline := time.After(20 * time.Second); ; {
		select {
		case u := <-f.updates:
			if u.UUID == job && u.Status == s {
				return u
			}
		case <-deadline:
			t.Fatalf("job %s never reached %s", job, s)
		}
	}
}

// TestFacilitatorLinkPublishesClassValues: after authenticating, the validator sends the
// facilitator the class values its miners receive, for pricing.
func TestFacilitatorLinkPublishesClassValues(t *testing.T) {
	e := newEnv(t, nil)
	f := &fakeFacilitator{t: t, updates: make(chan *protocol.V0JobStatusUpdate, 32), values: make(chan *protocol.V0ClassValuesUpdate, 4)}
	startLink(t, e, f)
	select {
	case got := <-f.values:
		want := e.v.ClassValues()
		if got.RewardRate != want.RewardRate || got.ClassValues.Len() != want.ClassValues.Len() || got.ClassValues.Len() == 0 {
			t.Errorf("class values sent %+v, want %+v", got, want)
		}
		for class, w := range want.ClassValues.All() {
			if g, ok := got.ClassValues.Get(class); !ok || g != w {
				t.Errorf("class %s: sent %+v, want %+v", class, g, w)
			}
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no class values after authentication")
	}
}

// TestFacilitatorCrossCheckReported: a facilitator job whose cross-check on the trusted
// miner prints something else is reported to the facilitator under the UUID it sent.
func TestFacilitatorCrossCheckReported(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.CrossCheckFraction = 1 })
	e.startMiner(stdoutMiner("42\n"))
	_, trusted := e.startTrusted(stdoutMiner("41\n"))
	e.v.cfg.TrustedMiner = trusted
	job := testSpec(protocol.ExecutorClassAlwaysOnTest)
	signJob(t, mustKey(t, "//Ferdie"), &job)
	f := &fakeFacilitator{t: t, jobs: []protocol.V2JobRequest{job}, updates: make(chan *protocol.V0JobStatusUpdate, 32),
		cheats: make(chan *protocol.V0JobCheatDetected, 4)}
	startLink(t, e, f)
	awaitStatus(t, f, job.UUID, protocol.JobStatusCompleted)
	select {
	case c := <-f.cheats:
		if c.JobUUID != job.UUID || c.MinerHotkey != e.bob.SS58() || c.TrustedJobUUID == "" || c.TrustedJobUUID == job.UUID {
			t.Errorf("cheat report %+v", c)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the cross-check mismatch was not reported to the facilitator")
	}
}

// signReport signs a cheat report as the facilitator relays a user's (scope FullRequest).
func signReport(t *testing.T, k *keys.Keypair, r *protocol.V0JobCheated) {
	t.Helper()
	r.Signature = &protocol.Signature{SignatureType: "bittensor", Signatory: k.SS58(), TimestampNS: time.Now().UnixNano(),
		SignatureScope: protocol.SignatureScopeFullRequest}
	digest, err := r.SignedPayloadDigest()
	if err != nil {
		t.Fatal(err)
	}
	sig := k.Sign(digest[:])
	r.Signature.Signature = sig[:]
}

// TestFacilitatorCheatReport: a user who ran a job on a miner and again on the trusted
// miner reports the outputs differ. The validator compares the outputs it saw: a report
// with a bad signature, by another user or of identical outputs is refused; a true one
// counts against the miner and is confirmed to the facilitator.
func TestFacilitatorCheatReport(t *testing.T) {
	for _, tc := range []struct {
		name, trusted string
		signer        string
		forge         bool
		confirmed     bool
	}{
		{"outputs differ", "41\n", "//Ferdie", false, true},
		{"outputs equal", "42\n", "//Ferdie", false, false},
		{"another user", "41\n", "//Eve", false, false},
		{"forged signature", "41\n", "//Ferdie", true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, nil)
			e.startMiner(stdoutMiner("42\n"))
			_, trusted := e.startTrusted(stdoutMiner(tc.trusted))
			e.v.cfg.TrustedMiner = trusted
			user := mustKey(t, "//Ferdie")
			job, onTrusted := testSpec(protocol.ExecutorClassAlwaysOnTest), testSpec(protocol.ExecutorClassAlwaysOnTest)
			onTrusted.OnTrustedMiner = true
			signJob(t, user, &job)
			signJob(t, user, &onTrusted)
			f := &fakeFacilitator{t: t, jobs: []protocol.V2JobRequest{job, onTrusted}, updates: make(chan *protocol.V0JobStatusUpdate, 32),
				cheats: make(chan *protocol.V0JobCheatDetected, 4), out: make(chan protocol.Message, 2)}
			startLink(t, e, f)
			done := map[string]bool{}
			for len(done) < 2 {
				select {
				case u := <-f.updates:
					if u.Status == protocol.JobStatusCompleted {
						done[u.UUID] = true
					}
				case <-time.After(20 * time.Second):
					t.Fatalf("jobs completed: %v", done)
				}
			}
			report := &protocol.V0JobCheated{JobUUID: job.UUID, TrustedJobUUID: onTrusted.UUID, Details: []byte(`{"why":"wrong answer"}`)}
			signReport(t, mustKey(t, tc.signer), report)
			if tc.forge {
				report.TrustedJobUUID, report.JobUUID = report.JobUUID, report.TrustedJobUUID
			}
			f.out <- report
			// A job without a signature after the report: once its rejection arrives, the
			// report has been judged and any confirmation sent before it.
			probe := testSpec(protocol.ExecutorClassAlwaysOnTest)
			f.out <- &probe
			awaitStatus(t, f, probe.UUID, protocol.JobStatusRejected)
			select {
			case c := <-f.cheats:
				if !tc.confirmed {
					t.Fatalf("report confirmed: %+v", c)
				}
				if c.JobUUID != job.UUID || c.TrustedJobUUID != onTrusted.UUID || c.MinerHotkey != e.bob.SS58() {
					t.Errorf("confirmation %+v", c)
				}
				if cs := e.v.Cheats(); len(cs) != 1 || cs[0].Miner != e.bob.SS58() || e.v.Reliability(e.bob.SS58()) >= 1 {
					t.Errorf("cheats %+v, reliability %v", cs, e.v.Reliability(e.bob.SS58()))
				}
			default:
				if tc.confirmed {
					t.Fatal("a true report was not confirmed")
				}
				if cs := e.v.Cheats(); len(cs) != 0 {
					t.Errorf("a refused report recorded %+v", cs)
				}
			}
		})
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

// TestFacilitatorLinkPublishesCapacity: the validator tells the facilitator how many
// executors of each class it could use now, and again when that changes.
func TestFacilitatorLinkPublishesCapacity(t *testing.T) {
	e := newEnv(t, nil)
	e.serveAxon(9)
	bob := e.bob.SS58()
	e.v.manifests.announce(bob, protocol.Manifest{{Class: protocol.ExecutorClassAlwaysOnTest, Count: 2}}, e.clock.Now())
	f := &fakeFacilitator{t: t, updates: make(chan *protocol.V0JobStatusUpdate, 32), capacity: make(chan *protocol.V0ExecutorCapacityUpdate, 8)}
	startLink(t, e, f)
	next := func() protocol.Manifest {
		t.Helper()
		select {
		case u := <-f.capacity:
			return u.FreeExecutors
		case <-time.After(10 * time.Second):
			t.Fatal("no capacity update")
		}
		return nil
	}
	if got := next(); got.Count(protocol.ExecutorClassAlwaysOnTest) != 2 {
		t.Fatalf("capacity after auth: %v", got)
	}
	e.v.countInFlight(bob, protocol.ExecutorClassAlwaysOnTest, 1)
	if got := next(); got.Count(protocol.ExecutorClassAlwaysOnTest) != 1 {
		t.Errorf("capacity with one job running: %v", got)
	}
}

// TestFacilitatorLinkReportsJobsOfAKilledRun: a validator killed while running a
// facilitator job, and back before the facilitator's requeue_after, reports the job
// horde_failed when its link starts again (found by the fault suite, package faults: the
// job stayed volumes_ready at the facilitator for good). The stored list of jobs under way
// is cleared once the facilitator has the report, and a job run to its end leaves nothing.
func TestFacilitatorLinkReportsJobsOfAKilledRun(t *testing.T) {
	e := newEnv(t, nil)
	left := "0190a8d2-0000-7000-8000-00000000abcd"
	if err := e.db.PutState(t.Context(), e.v.runningState(), []string{left}); err != nil {
		t.Fatal(err)
	}
	m := e.startMiner(happyMiner)
	user := mustKey(t, "//Ferdie")
	good := testSpec(protocol.ExecutorClassAlwaysOnTest)
	signJob(t, user, &good)
	f := &fakeFacilitator{t: t, jobs: []protocol.V2JobRequest{good}, updates: make(chan *protocol.V0JobStatusUpdate, 32)}
	startLink(t, e, f)
	u := awaitStatus(t, f, left, protocol.JobStatusHordeFailed)
	if u.Metadata == nil || u.Metadata.HordeFailureDetails == nil || !strings.Contains(u.Metadata.HordeFailureDetails.Message, "restarted") {
		t.Errorf("report of the left job: %+v", u.Metadata)
	}
	awaitStatus(t, f, good.UUID, protocol.JobStatusCompleted)
	m.wait()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		var ids []string
		if err := e.db.GetState(t.Context(), e.v.runningState(), &ids); err != nil {
			t.Fatal(err)
		}
		if len(ids) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("jobs under way still stored: %v", ids)
		}
	}
}
