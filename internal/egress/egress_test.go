package egress_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"

	"github.com/computehorde/horde/internal/egress"
	"github.com/computehorde/horde/internal/egress/egresstest"
)

func TestCheck(t *testing.T) {
	for _, tc := range []struct {
		addr string
		rule string // "" = allowed
	}{
		{"169.254.169.254", "link-local"},
		{"127.0.0.1", "loopback"},
		{"127.255.0.9", "loopback"},
		{"10.0.0.1", "private (RFC 1918)"},
		{"172.16.5.4", "private (RFC 1918)"},
		{"172.32.0.1", ""},
		{"192.168.1.1", "private (RFC 1918)"},
		{"100.64.0.1", "CGNAT (RFC 6598)"},
		{"224.0.0.251", "multicast"},
		{"255.255.255.255", "reserved"},
		{"0.0.0.0", "unspecified"},
		{"::", "unspecified"},
		{"::1", "loopback"},
		{"fe80::1%eth0", "link-local"},
		{"fd00:ec2::254", "private (RFC 4193)"},
		{"ff02::1", "multicast"},
		{"::ffff:127.0.0.1", "loopback"}, // IPv4-mapped
		{"::ffff:169.254.169.254", "link-local"},
		{"64:ff9b::a9fe:a9fe", "link-local"}, // NAT64 of 169.254.169.254
		{"64:ff9b::808:808", ""},
		{"8.8.8.8", ""},
		{"2606:4700::1111", ""},
	} {
		err := egress.Policy{}.Check(netip.MustParseAddr(tc.addr))
		var b *egress.BlockedError
		switch {
		case tc.rule == "" && err != nil:
			t.Errorf("%s: refused: %v", tc.addr, err)
		case tc.rule != "" && !errors.As(err, &b):
			t.Errorf("%s: allowed, want refused as %s", tc.addr, tc.rule)
		case tc.rule != "" && b.Rule != tc.rule:
			t.Errorf("%s: rule %q, want %q", tc.addr, b.Rule, tc.rule)
		}
	}
}

func TestAllow(t *testing.T) {
	allow, err := egress.ParseAllow(" 10.1.0.0/16, 127.0.0.1 ,::1")
	if err != nil {
		t.Fatal(err)
	}
	p := egress.Policy{Allow: allow}
	for addr, ok := range map[string]bool{
		"10.1.2.3": true, "10.2.0.1": false, "127.0.0.1": true, "127.0.0.2": false, "::1": true,
		"169.254.169.254": false, "::ffff:10.1.0.1": true,
	} {
		if err := p.Check(netip.MustParseAddr(addr)); (err == nil) != ok {
			t.Errorf("%s: err %v, want allowed=%v", addr, err, ok)
		}
	}
	for _, bad := range []string{"10.0.0.1/33", "10.0.0.1/8", "example.com", "10.0.0"} {
		if _, err := egress.ParseAllow(bad); err == nil || !strings.Contains(err.Error(), bad) {
			t.Errorf("ParseAllow(%q) = %v, want an error naming it", bad, err)
		}
	}
	// What the executor logs at start.
	if got, want := p.String(), "internal addresses refused, allowed: 10.1.0.0/16, 127.0.0.1/32, ::1/128"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	if got := (egress.Policy{}).String(); got != "internal addresses refused, none allowed" {
		t.Errorf("String() of the default policy = %q", got)
	}
}

func TestErrorNamesAddressAndRule(t *testing.T) {
	err := egress.Policy{}.Check(netip.MustParseAddr("169.254.169.254"))
	for _, want := range []string{"169.254.169.254", "link-local", "169.254.0.0/16", "--allow-egress 169.254.169.254/32"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q lacks %q", err, want)
		}
	}
}

// TestLoopbackNeverConnected: a refused loopback address is never connected to: the listener
// sees no connection at all, also when the URL names it by DNS ("localhost").
func TestLoopbackNeverConnected(t *testing.T) {
	l := egresstest.Serve(t, "127.0.0.1:0", http.NotFoundHandler())
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(l.URL, "http://"))
	client := &http.Client{Transport: egress.Policy{}.Transport(egress.DefaultDialer())}
	defer client.CloseIdleConnections()
	for _, url := range []string{l.URL + "/", "http://localhost:" + port + "/"} {
		_, err := client.Get(url)
		if !egress.IsBlocked(err) {
			t.Errorf("GET %s: %v, want a refused dial", url, err)
		}
	}
	if n := l.Conns(); n != 0 {
		t.Errorf("the listener saw %d connections, want none", n)
	}
	// The same listener is reachable when loopback is allowed: the count above means something.
	open := &http.Client{Transport: egress.Policy{Allow: egress.Loopback}.Transport(egress.DefaultDialer())}
	defer open.CloseIdleConnections()
	resp, err := open.Get(l.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if n := l.Conns(); n != 1 {
		t.Errorf("with loopback allowed the listener saw %d connections, want 1", n)
	}
}

// TestRefusedBeforeConnect: addresses that must not be reached from a test at all are
// dialled on egresstest's base dialer, whose pre-connect hook runs after the policy, just
// before connect(), and refuses everything, so nothing leaves the machine whatever happens.
// The policy must stop each address before that hook is reached.
func TestRefusedBeforeConnect(t *testing.T) {
	var hook egresstest.Dialer
	d := hook.Dialer(egress.Policy{})
	for _, addr := range []string{"169.254.169.254:80", "10.0.0.1:443", "127.0.0.1:9", "[fd00::1]:80", "100.64.0.1:80"} {
		_, err := d.DialContext(context.Background(), "tcp", addr)
		var b *egress.BlockedError
		if !errors.As(err, &b) {
			t.Errorf("dial %s: %v, want a *BlockedError", addr, err)
		}
	}
	if n := hook.Reached(); n != 0 {
		t.Errorf("the pre-connect hook was reached %d times, want 0", n)
	}
	// A public address gets past the policy to the hook (which then stops it): the hook is
	// wired and the count above means something.
	if _, err := d.DialContext(context.Background(), "tcp", "192.0.2.1:80"); err == nil || egress.IsBlocked(err) {
		t.Errorf("dial of a public address: %v, want the hook's refusal", err)
	}
	if n := hook.Reached(); n != 1 {
		t.Errorf("hook reached %d times, want 1", n)
	}
}
