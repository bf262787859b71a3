package validator

import (
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"

	"github.com/computehorde/horde/internal/protocol"
)

// startTrusted serves script as the validator's trusted miner: a loopback server the chain
// does not know (it answers as Bob, whose key the scripted miner checks).
func (e *env) startTrusted(script minerScript) (*scriptedMiner, *TrustedMiner) {
	e.t.Helper()
	m := &scriptedMiner{e: e, script: script, done: make(chan struct{})}
	mux := http.NewServeMux()
	mux.HandleFunc("/v0.1/validator_interface/{hotkey}", m.serve)
	srv := httptest.NewServer(mux)
	e.t.Cleanup(func() {
		srv.Close()
		if m.conns.Load() > 0 {
			m.wait()
		}
	})
	addr := netip.MustParseAddrPort(srv.Listener.Addr().(*net.TCPAddr).String())
	return m, &TrustedMiner{Hotkey: e.bob.SS58(), Addr: addr}
}

// stdoutMiner completes the job with the given stdout.
func stdoutMiner(stdout string) minerScript {
	return func(p *minerPeer, job string) {
		p.accept(job)
		p.ready(job)
		p.send(&protocol.V0VolumesReadyRequest{JobUUID: job})
		p.send(&protocol.V0ExecutionDoneRequest{JobUUID: job})
		p.send(&protocol.V0JobFinishedRequest{JobUUID: job, DockerProcessStdout: stdout})
	}
}

func TestCrossCheck(t *testing.T) {
	for _, tc := range []struct {
		name, trusted string
		mismatch      bool
	}{
		{"same output", "42\n", false},
		{"different output", "41\n", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, nil)
			m := e.startMiner(stdoutMiner("42\n"))
			spec := testSpec(protocol.ExecutorClassAlwaysOnTest)
			res, err := e.v.RunJob(t.Context(), e.bob.SS58(), spec)
			if err != nil || res.Status != protocol.JobStatusCompleted {
				t.Fatalf("job: %+v, %v", res, err)
			}
			m.wait()
			tm, trusted := e.startTrusted(stdoutMiner(tc.trusted))
			e.v.cfg.TrustedMiner = trusted
			mismatch, ok, err := e.v.CrossCheck(t.Context(), e.bob.SS58(), spec, res)
			tm.wait()
			if err != nil || !ok || mismatch != tc.mismatch {
				t.Fatalf("CrossCheck = %v, %v, %v; want mismatch %v", mismatch, ok, err, tc.mismatch)
			}
			cheats := e.v.Cheats()
			if tc.mismatch {
				if len(cheats) != 1 || cheats[0].JobUUID != spec.UUID || cheats[0].TrustedStdout != tc.trusted || e.v.Reliability(e.bob.SS58()) != 0.5 {
					t.Errorf("cheats %+v, reliability %v", cheats, e.v.Reliability(e.bob.SS58()))
				}
			} else if len(cheats) != 0 || e.v.Reliability(e.bob.SS58()) != 1 {
				t.Errorf("a matching check recorded %+v", cheats)
			}
		})
	}
}
