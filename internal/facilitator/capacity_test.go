package facilitator

import (
	"testing"

	"github.com/computehorde/horde/internal/protocol"
)

// TestEndedJobGivesItsExecutorBack: a job that ends gives its executor back at once, without
// waiting for the validator's next capacity report (which, its capacity being unchanged since
// the last one, may never come); a class the validator stopped offering gets nothing back.
func TestEndedJobGivesItsExecutorBack(t *testing.T) {
	e := newEnv(t, "", nil)
	v := e.validator("//Alice")
	v.send(&protocol.V0ExecutorCapacityUpdate{FreeExecutors: protocol.Manifest{{Class: protocol.ExecutorClassAlwaysOnTest, Count: 1}}})
	c, _ := e.user("//Ferdie", 1_000_000_000)
	for range 3 {
		if _, err := c.Submit(t.Context(), helloSpec(), ""); err != nil {
			t.Fatal(err)
		}
	}
	first := v.job()
	noJob := func(why string) {
		t.Helper()
		e.f.hub.dispatch(t.Context())
		v.send(&protocol.V0MachineSpecsUpdate{}) // a round trip: a dispatched job would be here
		select {
		case j := <-v.jobs:
			t.Fatalf("job %s dispatched %s", j.UUID, why)
		default:
		}
	}
	noJob("to a validator with no room")
	v.status(first.UUID, protocol.JobStatusCompleted, completed("hi", ""))
	second := v.job()
	noJob("beyond the executor the first job gave back")

	// The class is gone from the validator's offer: the second job's end frees nothing.
	v.send(&protocol.V0ExecutorCapacityUpdate{FreeExecutors: protocol.Manifest{}})
	v.status(second.UUID, protocol.JobStatusCompleted, completed("hi", ""))
	noJob("of a class the validator no longer offers")
}
