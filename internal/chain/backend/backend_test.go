package backend

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/computehorde/horde/internal/chain"
	"github.com/computehorde/horde/internal/chain/pylon"
	"github.com/computehorde/horde/internal/chain/sim"
	"github.com/computehorde/horde/internal/chain/simserver"
	"github.com/computehorde/horde/internal/clock/clocktest"
	"github.com/computehorde/horde/internal/config"
)

func TestSettingsEnvThenFlags(t *testing.T) {
	s := Defaults()
	env := map[string]string{EnvURL: "http://pylon:8000", EnvIdentity: "validator", EnvToken: "env-secret", EnvNetUID: "13"}
	if err := s.ApplyEnv(func(k string) string { return env[k] }); err != nil {
		t.Fatal(err)
	}
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	var help bytes.Buffer
	fs.SetOutput(&help)
	s.Register(fs)
	if err := fs.Parse([]string{"--netuid", "12", "--tempo", "99"}); err != nil {
		t.Fatal(err)
	}
	if s.URL != "http://pylon:8000" || s.Identity != "validator" || s.Token != "env-secret" || s.NetUID != 12 || s.Tempo != 99 {
		t.Errorf("settings %+v", s)
	}
	fs.PrintDefaults()
	if strings.Contains(help.String(), "env-secret") || strings.Contains(s.String(), "env-secret") {
		t.Errorf("the token shows:\n%s\n%s", help.String(), s.String())
	}
	if !strings.Contains(s.String(), "identity validator, token ****") {
		t.Errorf("String() = %s", s)
	}
	if err := s.ApplyEnv(func(k string) string { return map[string]string{EnvNetUID: "x"}[k] }); err == nil {
		t.Error("a bad $HORDE_NETUID was accepted")
	}
}

func TestOpen(t *testing.T) {
	ctx := context.Background()
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))

	op, err := Open(ctx, Defaults(), Options{Logger: logger})
	if err != nil || op.Shared || op.NetUID != DefaultNetUID || op.Interval != 0 {
		t.Fatalf("embedded: %+v, %v", op, err)
	}
	if !strings.Contains(logs.String(), "embedded simulated chain") {
		t.Errorf("log: %s", logs.String())
	}

	hs := httptest.NewServer(simServer(t).Handler())
	defer hs.Close()
	s := Defaults()
	s.URL, s.Identity, s.Token = hs.URL, "validator", "tok"
	logs.Reset()
	op, err = Open(ctx, s, Options{Logger: logger, Hotkey: "5V"})
	if err != nil || !op.Shared || op.NetUID != 12 || op.Interval == 0 {
		t.Fatalf("server: %+v, %v", op, err)
	}
	if !strings.Contains(logs.String(), "hyperparameters_from=") || !strings.Contains(logs.String(), "chain server") ||
		strings.Contains(logs.String(), "tok ") {
		t.Errorf("log: %s", logs.String())
	}
	if hp, err := op.Chain.Hyperparams(ctx, 12); err != nil || hp.Tempo != sim.DefaultHyperparams().Tempo {
		t.Errorf("hyperparams from the server: %+v, %v", hp, err)
	}

	for name, bad := range map[string]func(*Settings){
		"no token":          func(s *Settings) { s.Token = "" },
		"netuid":            func(s *Settings) { s.NetUID = 70000 },
		"tempo":             func(s *Settings) { s.Tempo = 0 },
		"wrong netuid":      func(s *Settings) { s.NetUID = 13 },
		"unreachable":       func(s *Settings) { s.URL = "http://127.0.0.1:1" },
		"not http":          func(s *Settings) { s.URL = "pylon:8000" },
		"wrong token":       func(s *Settings) { s.Token = "nope" },
		"wrong ident":       func(s *Settings) { s.Identity = "miner" },
		"embedded, tempo 0": func(s *Settings) { s.URL = ""; s.Tempo = 0 },
	} {
		s2 := s
		bad(&s2)
		if _, err := Open(ctx, s2, Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Pylon: pylonFast()}); err == nil {
			t.Errorf("%s: opened", name)
		}
	}
}

func TestFallbackHyperparams(t *testing.T) {
	s := Defaults()
	s.Tempo, s.WeightsRateLimit, s.CommitReveal, s.CommitRevealPeriod = 99, 7, false, 3
	hp := s.fallbackHyperparams()
	want := chain.DefaultHyperparams()
	want.Tempo, want.WeightsRateLimit, want.CommitRevealEnabled, want.RevealPeriodEpochs = 99, 7, false, 3
	if hp != want {
		t.Errorf("%+v, want %+v", hp, want)
	}
	if d := Defaults().fallbackHyperparams(); d != chain.DefaultHyperparams() {
		t.Errorf("defaults %+v are not subtensor's", d)
	}
}

func pylonFast() pylon.Config { return pylon.Config{Attempts: 1} }

// A chain with 1 s blocks and 11-block tempos, polled every 12 s (finney's block), shows the
// roles no head in one tempo of twelve, and a validator sets no weights in it: the [chain]
// table's poll_interval sets the pace (found by the fault suite, package faults).
func TestPollInterval(t *testing.T) {
	c, err := sim.New(sim.Genesis{NetUID: 12})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := simserver.New(simserver.Config{Chain: c})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	tab := DefaultTable()
	tab.URL = hs.URL
	quiet := Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Pylon: pylonFast()}
	op, err := Open(context.Background(), tab.Settings(), quiet)
	if err != nil || op.Interval != pylon.DefaultPollInterval {
		t.Fatalf("default: interval %v, %v", op.Interval, err)
	}
	tab.PollInterval = config.Duration(time.Second)
	if op, err = Open(context.Background(), tab.Settings(), quiet); err != nil || op.Interval != time.Second {
		t.Fatalf("poll_interval 1s: interval %v, %v", op.Interval, err)
	}
	tab.PollInterval = config.Duration(-time.Second)
	if err := tab.Check("X"); err == nil || !strings.Contains(err.Error(), "chain.poll_interval") {
		t.Errorf("negative poll_interval: %v", err)
	}
}

// simServer serves a simulated subnet 12 with one identity, "validator" (hotkey 5V, token
// tok), until the test ends.
func simServer(t *testing.T) *simserver.Server {
	t.Helper()
	c, err := sim.New(sim.Genesis{NetUID: 12, Neurons: []sim.NeuronSpec{{Hotkey: "5V"}}})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := simserver.New(simserver.Config{Chain: c, Identities: []simserver.Identity{{Name: "validator", Hotkey: "5V", Token: "tok"}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv
}

// TestOpenWaitsForTheChain: a role started while the chain server cannot be reached waits
// for it (found by the fault suite: a miner restarted into a partition exited), while a
// one-shot command and an error a retry cannot mend end at once.
func TestOpenWaitsForTheChain(t *testing.T) {
	srv := simServer(t)
	// The server drops every connection until it is let up, as one behind a partition.
	var up atomic.Bool
	hs := httptest.NewUnstartedServer(srv.Handler())
	hs.Config.ConnState = func(conn net.Conn, state http.ConnState) {
		if state == http.StateNew && !up.Load() {
			conn.Close()
		}
	}
	hs.Start()
	defer hs.Close()
	s := Defaults()
	s.URL, s.Identity, s.Token = hs.URL, "validator", "tok"
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))

	if _, err := Open(t.Context(), s, Options{Logger: quiet, Pylon: pylonFast()}); !errors.Is(err, chain.ErrUnavailable) {
		t.Fatalf("a one-shot open of an unreachable server: %v", err)
	}

	fake := clocktest.NewFake(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	type opened struct {
		op  *Opened
		err error
	}
	done := make(chan opened, 1)
	go func() {
		op, err := Open(t.Context(), s, Options{Logger: quiet, Pylon: pylonFast(), WaitForChain: true, Clock: fake})
		done <- opened{op, err}
	}()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	for _, wait := range []time.Duration{chainWaitFirst, 2 * chainWaitFirst, 4 * chainWaitFirst} {
		if err := fake.AwaitTimer(ctx, fake.Now().Add(wait)); err != nil {
			t.Fatalf("not waiting %s for the chain: %v", wait, err)
		}
		fake.Advance(wait)
	}
	if err := fake.AwaitTimer(ctx, fake.Now().Add(8*chainWaitFirst)); err != nil {
		t.Fatal(err)
	}
	up.Store(true)
	fake.Advance(8 * chainWaitFirst)
	select {
	case r := <-done:
		if r.err != nil || r.op.NetUID != 12 {
			t.Fatalf("once the server is back: %+v, %v", r.op, r.err)
		}
	case <-ctx.Done():
		t.Fatal("Open did not return once the server was back")
	}

	s.Token = "nope"
	if _, err := Open(t.Context(), s, Options{Logger: quiet, Pylon: pylonFast(), WaitForChain: true, Clock: fake}); !errors.Is(err, pylon.ErrForbidden) {
		t.Errorf("a wrong token while waiting for the chain: %v, want ErrForbidden at once", err)
	}
}
