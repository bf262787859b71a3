package minerd

import (
	"net/netip"
	"testing"
)

// TestExecutorDialAddr: executors dial IPv4 loopback when the miner listens on every
// interface, also when Go reports the dual-stack listener as [::], since ::1 is missing
// where IPv6 is off.
func TestExecutorDialAddr(t *testing.T) {
	for in, want := range map[string]string{
		"0.0.0.0:8000":  "127.0.0.1:8000",
		"[::]:8000":     "127.0.0.1:8000",
		"127.0.0.1:812": "127.0.0.1:812",
		"[::1]:8000":    "[::1]:8000",
		"10.0.0.5:8000": "10.0.0.5:8000",
	} {
		if got := executorDialAddr(netip.MustParseAddrPort(in)).String(); got != want {
			t.Errorf("executorDialAddr(%s) = %s, want %s", in, got, want)
		}
	}
}
