// Package egresstest proves in tests that an address is refused before any connection, in
// the two ways that never send traffic off the machine: a real loopback listener that counts
// the connections it accepts, and, for addresses no test may reach (169.254.169.254, private
// ranges), a base dialer whose pre-connect hook refuses everything and counts how often the
// policy let a dial get that far.
package egresstest

import (
	"errors"
	"net"
	"net/http"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/computehorde/horde/internal/egress"
)

// Listener is a real HTTP server on a loopback address.
type Listener struct {
	// URL is "http://" plus the listener's address.
	URL   string
	conns atomic.Int64
}

// Serve starts h on addr ("127.0.0.1:0", "127.0.0.2:0", …) until the test ends.
func Serve(t testing.TB, addr string, h http.Handler) *Listener {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	l := &Listener{URL: "http://" + ln.Addr().String()}
	srv := &http.Server{Handler: h, ConnState: func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			l.conns.Add(1)
		}
	}}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return l
}

// Conns is how many connections the listener has accepted.
func (l *Listener) Conns() int64 { return l.conns.Load() }

// Dialer stands in for connect(): its Control hook runs where the policy's would let the
// connection proceed, counts, and refuses, so nothing leaves the machine whatever the policy
// decides.
type Dialer struct {
	reached atomic.Int64
}

// Reached is how many dials got past the policy to the point of connecting.
func (d *Dialer) Reached() int64 { return d.reached.Load() }

// Client is an HTTP client built as production builds it (egress.Policy.Transport), on this
// dialer's hook.
func (d *Dialer) Client(p egress.Policy) *http.Client {
	return &http.Client{Transport: p.Transport(d.base())}
}

// Dialer is p's dialer on this one's hook.
func (d *Dialer) Dialer(p egress.Policy) *net.Dialer { return p.Dialer(d.base()) }

func (d *Dialer) base() *net.Dialer {
	base := egress.DefaultDialer()
	base.Control = func(string, string, syscall.RawConn) error {
		d.reached.Add(1)
		return errors.New("egresstest: connect suppressed")
	}
	return base
}
