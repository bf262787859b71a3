package validator

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/computehorde/horde/internal/chain"
	"github.com/computehorde/horde/internal/protocol"
)

// TestRouteRetriesOnAnotherMiner: a miner that cannot be reached fails on the horde's side,
// and the job goes to the next miner, which completes it.
func TestRouteRetriesOnAnotherMiner(t *testing.T) {
	e := newEnv(t, nil)
	charlie := mustKey(t, "//Charlie")
	if _, err := e.chain.Register(chain.Hotkey(charlie.SS58()), "c3"); err != nil {
		t.Fatal(err)
	}
	// Charlie announces a loopback port that drops every connection. It stays bound for the
	// whole test, so that the port cannot be handed to Bob's server.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	dead := l.Addr().(*net.TCPAddr).Port
	if err := e.chain.ServeAxon(t.Context(), chain.Hotkey(charlie.SS58()), netuid, netip.MustParseAddr("127.0.0.1"), uint16(dead)); err != nil {
		t.Fatal(err)
	}
	m := e.startMiner(func(p *minerPeer, job string) { // Bob, announced (and a block made) here
		p.accept(job)
		p.ready(job)
		e.clock.Advance(time.Second)
		p.finish(job)
	})
	spec := testSpec(protocol.ExecutorClassAlwaysOnTest)
	res, attempts, err := e.v.Route(t.Context(), spec, e.clock.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	m.wait()
	if res.Status != protocol.JobStatusCompleted || len(attempts) == 0 || len(attempts) > 2 {
		t.Fatalf("result %+v after %d attempts, want completed", res, len(attempts))
	}
	last := attempts[len(attempts)-1]
	if last.Miner != e.bob.SS58() {
		t.Errorf("completed on %s, want Bob", last.Miner)
	}
	if len(attempts) == 2 {
		first := attempts[0]
		if first.Miner != charlie.SS58() || first.Result.Status != protocol.JobStatusHordeFailed ||
			first.Result.Reason != string(protocol.HordeFailureReasonMinerConnectionFailed) {
			t.Errorf("first attempt %+v on %s, want Charlie's connection failure", first.Result, first.Miner)
		}
		if first.Result.UUID == last.Result.UUID {
			t.Error("the retry reused the job UUID the first miner saw")
		}
	}
}

func TestRouteWithoutMiners(t *testing.T) {
	e := newEnv(t, nil)
	if _, _, err := e.v.Route(t.Context(), testSpec(protocol.ExecutorClassAlwaysOnTest), e.clock.Now().Add(time.Hour)); !errors.Is(err, ErrNoMiner) {
		t.Errorf("no miner serving: %v", err)
	}
}

// TestRouteOnTrustedMiner: a job that asks for the trusted miner runs there, not on the
// subnet's miners, and is refused by a validator that has none.
func TestRouteOnTrustedMiner(t *testing.T) {
	e := newEnv(t, nil)
	spec := testSpec(protocol.ExecutorClassAlwaysOnTest)
	spec.OnTrustedMiner = true
	if _, _, err := e.v.Route(t.Context(), spec, e.clock.Now().Add(time.Hour)); !errors.Is(err, ErrNoTrustedMiner) {
		t.Fatalf("without a trusted miner: %v", err)
	}
	tm, trusted := e.startTrusted(stdoutMiner("trusted\n"))
	e.v.cfg.TrustedMiner = trusted
	res, attempts, err := e.v.Route(t.Context(), spec, e.clock.Now().Add(time.Hour))
	tm.wait()
	if err != nil || res.Status != protocol.JobStatusCompleted || res.Stdout != "trusted\n" || len(attempts) != 1 {
		t.Errorf("on the trusted miner: %+v, %d attempts, %v", res, len(attempts), err)
	}
}

type routed struct {
	res      *JobResult
	attempts []Attempt
	err      error
}

// routeInBackground routes spec with opt and sends the outcome on the returned channel.
func (e *env) routeInBackground(spec protocol.V2JobRequest, opt RouteOptions) <-chan routed {
	done := make(chan routed, 1)
	go func() {
		res, attempts, err := e.v.RouteObserved(e.t.Context(), spec, e.clock.Now().Add(time.Hour), opt)
		done <- routed{res, attempts, err}
	}()
	return done
}

// TestRouteWaitsForAMiner: a job no miner can take waits (RouteOptions.WaitForMiner) and
// runs on the first miner that turns up, under its own UUID.
func TestRouteWaitsForAMiner(t *testing.T) {
	e := newEnv(t, nil)
	spec := testSpec(protocol.ExecutorClassAlwaysOnTest)
	done := e.routeInBackground(spec, RouteOptions{WaitForMiner: time.Minute})
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := e.clock.AwaitTimer(ctx, e.clock.Now().Add(waitForMinerFirst)); err != nil {
		t.Fatalf("the job does not wait for a miner: %v", err)
	}
	m := e.startMiner(happyMiner) // Bob serves his axon now
	e.clock.Advance(waitForMinerFirst)
	var r routed
	select {
	case r = <-done:
	case <-ctx.Done():
		t.Fatal("the job did not run on the miner that turned up")
	}
	m.wait()
	if r.err != nil || r.res.Status != protocol.JobStatusCompleted || len(r.attempts) != 1 || r.res.UUID != spec.UUID {
		t.Errorf("after waiting: %+v, %d attempts, %v; want completed on the first attempt, as %s", r.res, len(r.attempts), r.err, spec.UUID)
	}
}

// TestRouteGivesUpWaitingForAMiner: with no miner at all, the job is rejected once
// WaitForMiner has passed, not before and not much after; without WaitForMiner, at once.
func TestRouteGivesUpWaitingForAMiner(t *testing.T) {
	e := newEnv(t, nil)
	if _, _, err := e.v.RouteObserved(t.Context(), testSpec(protocol.ExecutorClassAlwaysOnTest), e.clock.Now().Add(time.Hour), RouteOptions{}); !errors.Is(err, ErrNoMiner) {
		t.Fatalf("no miner, no waiting: %v", err)
	}
	began := e.clock.Now()
	done := e.routeInBackground(testSpec(protocol.ExecutorClassAlwaysOnTest), RouteOptions{WaitForMiner: time.Minute})
	rounds := 0
	for {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		waiting := make(chan error, 1)
		go func() { waiting <- e.clock.AwaitTimers(ctx, 1) }()
		select {
		case r := <-done:
			cancel()
			waited := e.clock.Now().Sub(began)
			if !errors.Is(r.err, ErrNoMiner) || waited < time.Minute-waitForMinerMax || waited > time.Minute {
				t.Errorf("gave up after %s and %d rounds: %v; want ErrNoMiner within the minute's last %s", waited, rounds, r.err, waitForMinerMax)
			}
			return
		case err := <-waiting:
			cancel()
			if err != nil {
				t.Fatalf("round %d: neither waiting nor done: %v", rounds, err)
			}
			rounds++
			e.clock.Advance(waitForMinerMax)
		}
	}
}
