package miner

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/computehorde/horde/internal/protocol"
)

func TestStatusListsJobsInFlight(t *testing.T) {
	h := newHarness(t, readyThenHold)
	c := h.authed()
	const id = "00000000-0000-4000-8000-00000000c0de"
	before := time.Now().Add(-time.Second)
	send(t.Context(), t, c, h.initialRequest(id, protocol.ExecutorClassAlwaysOnTest))
	for _, want := range []string{"V0AcceptJobRequest", "V0ExecutorReadyRequest"} {
		if got := h.read(c).MessageType(); got != want {
			t.Fatalf("got %s, want %s", got, want)
		}
	}
	st, err := h.miner.Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if st.Hotkey != h.bob.SS58() || st.NetUID != netuid {
		t.Errorf("hotkey, netuid = %s, %d; want %s, %d", st.Hotkey, st.NetUID, h.bob.SS58(), netuid)
	}
	if len(st.Jobs) != 1 {
		t.Fatalf("jobs in flight = %+v, want one", st.Jobs)
	}
	j := st.Jobs[0]
	if j.UUID != id || j.Validator != h.alice.SS58() || j.Class != protocol.ExecutorClassAlwaysOnTest || j.Status != statusWaitingForPayload {
		t.Errorf("job = %+v, want %s from Alice, always_on.test, %s", j, id, statusWaitingForPayload)
	}
	if j.Since.Before(before) || j.Updated.Before(j.Since) {
		t.Errorf("since %v, updated %v: want both after %v, in that order", j.Since, j.Updated, before)
	}
	if len(st.Validators) != 1 || st.Validators[0] != h.alice.SS58() {
		t.Errorf("validators with jobs = %v, want Alice", st.Validators)
	}
	if st.ValidatorConns != 1 {
		t.Errorf("validator connections = %d, want 1", st.ValidatorConns)
	}
	if st.Manifest.Count(protocol.ExecutorClassAlwaysOnTest) != 1 {
		t.Errorf("manifest = %v", st.Manifest)
	}
	if st.Metagraph.RefreshedAt.IsZero() {
		t.Errorf("metagraph status %+v: want a refresh", st.Metagraph)
	}
	if !st.Axon.OK { // no axon configured: nothing to check
		t.Errorf("axon status %+v, want OK", st.Axon)
	}
}

func TestStatusKeepsRecentDeclinesAndFailures(t *testing.T) {
	h := newHarness(t, happyExecutor)
	m := h.miner
	for i := range RecentEvents + 5 {
		reason := protocol.JobRejectionReasonBusy
		if i%2 == 1 {
			reason = protocol.JobRejectionReasonClassNotOffered
		}
		m.noteDecline(JobEvent{JobUUID: fmt.Sprint(i), Reason: string(reason), Message: "declined"})
	}
	kind, reason, msg, ok := outcomeFailure(&protocol.V0JobFailedRequest{Reason: protocol.JobFailureReasonTimeout, Message: "too slow"})
	if !ok {
		t.Fatal("a V0JobFailedRequest is a failure")
	}
	m.noteFailure(JobEvent{JobUUID: "j", Kind: kind, Reason: reason, Message: msg})
	m.noteFailure(JobEvent{JobUUID: "h", Kind: KindHordeFailed, Reason: string(protocol.HordeFailureReasonExecutorSpinupFailed),
		Message: strings.Repeat("é", maxEventMessage)})
	if _, _, _, ok := outcomeFailure(&protocol.V0JobFinishedRequest{}); ok {
		t.Error("a V0JobFinishedRequest is no failure")
	}

	st, err := m.Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Declines) != RecentEvents {
		t.Fatalf("%d declines kept, want %d", len(st.Declines), RecentEvents)
	}
	if first, last := st.Declines[0].JobUUID, st.Declines[RecentEvents-1].JobUUID; first != fmt.Sprint(RecentEvents+4) || last != "5" {
		t.Errorf("declines run from %s to %s, want newest (%d) first, down to 5", first, last, RecentEvents+4)
	}
	if st.Declines[0].Kind != KindDeclined || st.Declines[0].At.IsZero() {
		t.Errorf("decline %+v: want kind %q and a time", st.Declines[0], KindDeclined)
	}
	wantCounts := []ReasonCount{{KindDeclined, "busy", 103}, {KindDeclined, "class_not_offered", 102}}
	if fmt.Sprint(st.DeclineCounts) != fmt.Sprint(wantCounts) {
		t.Errorf("decline counts = %v, want %v", st.DeclineCounts, wantCounts)
	}
	if len(st.Failures) != 2 || st.Failures[0].JobUUID != "h" || st.Failures[1].Reason != "timeout" || st.Failures[1].Kind != KindJobFailed {
		t.Errorf("failures = %+v", st.Failures)
	}
	if got := st.Failures[0].Message; len(got) > maxEventMessage || !strings.HasSuffix(got, "é…") {
		t.Errorf("long message kept as %d bytes ending %q, want at most %d ending in a whole rune and …", len(got), got[len(got)-6:], maxEventMessage)
	}
	wantFail := []ReasonCount{{KindHordeFailed, "executor_spinup_failed", 1}, {KindJobFailed, "timeout", 1}}
	if fmt.Sprint(st.FailureCounts) != fmt.Sprint(wantFail) {
		t.Errorf("failure counts = %v, want %v", st.FailureCounts, wantFail)
	}

	// Another miner keeps its own log.
	other := newHarness(t, happyExecutor).miner
	if st, _ := other.Status(t.Context()); len(st.Declines)+len(st.Failures) != 0 {
		t.Errorf("a fresh miner lists %d declines and %d failures", len(st.Declines), len(st.Failures))
	}
}
