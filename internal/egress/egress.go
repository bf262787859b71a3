// Package egress decides which addresses a horde process may connect to on a user's behalf:
// the volume downloads, Hugging Face fetches and output uploads a job spec asks for.
//
// A job names arbitrary URLs, so without a check it could make the executor fetch the cloud
// metadata service (169.254.169.254), the miner's own admin ports on loopback or anything on
// the operator's private network, and read the answer back through /volume. The check runs
// on the address actually dialled (a net.Dialer Control hook, after DNS resolution and for
// every redirect), never on the URL's text, so a DNS name or a redirect pointing inward is
// refused the same way. Loopback, link-local, private, CGNAT, multicast, reserved and
// unspecified addresses are refused unless the operator allows a CIDR.
package egress

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"syscall"
	"time"
)

// rule is one refused range and the name an error gives it.
type rule struct {
	name   string
	prefix netip.Prefix
}

// refused are the ranges job traffic may not reach unless allowed: IPv4 and IPv6 by name.
var refused = rules(map[string][]string{
	"unspecified":        {"0.0.0.0/8", "::/128"},
	"loopback":           {"127.0.0.0/8", "::1/128"},
	"private (RFC 1918)": {"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"},
	"private (RFC 4193)": {"fc00::/7"},
	"CGNAT (RFC 6598)":   {"100.64.0.0/10"},
	"link-local":         {"169.254.0.0/16", "fe80::/10"},
	"site-local":         {"fec0::/10"},
	"multicast":          {"224.0.0.0/4", "ff00::/8"},
	"reserved":           {"240.0.0.0/4"}, // broadcast included
})

func rules(byName map[string][]string) []rule {
	var out []rule
	for name, prefixes := range byName {
		for _, p := range prefixes {
			out = append(out, rule{name, netip.MustParsePrefix(p)})
		}
	}
	return out
}

// Loopback is the CIDRs of the loopback interface, for tests and `horde executor run`
// setups whose volume and upload servers run on this machine.
var Loopback = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}

// Policy says which addresses may be dialled. The zero value refuses every internal range.
type Policy struct {
	// Allow lists CIDRs an operator opened on purpose (an in-cluster S3, a registry mirror);
	// an address inside one is dialled even if it lies in a refused range.
	Allow []netip.Prefix
}

// BlockedError is a dial the policy refused.
type BlockedError struct {
	Addr   netip.Addr
	Rule   string       // "loopback", "link-local", …
	Prefix netip.Prefix // the refused range the address lies in
}

func (e *BlockedError) Error() string {
	return fmt.Sprintf("connection to %s refused: %s address (%s); an operator can allow it with --allow-egress %s",
		e.Addr, e.Rule, e.Prefix, netip.PrefixFrom(e.Addr, e.Addr.BitLen()))
}

// nat64 is the well-known NAT64 prefix (RFC 6052): its addresses reach the IPv4 address in
// their last four bytes, which is checked instead.
var nat64 = netip.MustParsePrefix("64:ff9b::/96")

// Check returns a *BlockedError if ip may not be dialled, nil if it may.
func (p Policy) Check(ip netip.Addr) error {
	ip = ip.Unmap().WithZone("")
	for _, a := range p.Allow {
		if a.Contains(ip) {
			return nil
		}
	}
	if nat64.Contains(ip) {
		b := ip.As16()
		return p.Check(netip.AddrFrom4([4]byte(b[12:])))
	}
	for _, r := range refused {
		if r.prefix.Contains(ip) {
			return &BlockedError{Addr: ip, Rule: r.name, Prefix: r.prefix}
		}
	}
	return nil
}

// Control is a net.Dialer Control hook: it runs after the socket is made and before
// connect(), with the resolved address, and refuses what Check refuses.
func (p Policy) Control(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		// Only IP sockets reach a dialer used for HTTP; anything else is refused rather
		// than guessed at.
		return fmt.Errorf("egress: cannot check %s address %q: %w", network, address, err)
	}
	return p.Check(ap.Addr())
}

// Dialer returns a copy of base whose Control hook checks the policy first; base's own
// Control, if any, runs only for addresses the policy lets through (tests use it to observe
// that a refused address never gets as far as a connect).
func (p Policy) Dialer(base *net.Dialer) *net.Dialer {
	d := *base
	next := base.Control
	d.Control = func(network, address string, c syscall.RawConn) error {
		if err := p.Control(network, address, c); err != nil {
			return err
		}
		if next != nil {
			return next(network, address, c)
		}
		return nil
	}
	d.ControlContext = nil
	return &d
}

// Transport returns an HTTP transport that dials through Dialer(base) and uses no proxy: a
// proxy would make the connection on the job's behalf to an address this policy never sees.
// The caller tunes timeouts and the rest on the result.
func (p Policy) Transport(base *net.Dialer) *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Proxy = nil
	t.DialContext = p.Dialer(base).DialContext
	return t
}

// DefaultDialer is the base dialer of job traffic.
func DefaultDialer() *net.Dialer {
	return &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
}

// IsBlocked reports whether err (at any depth) is a refused dial.
func IsBlocked(err error) bool {
	var b *BlockedError
	return errors.As(err, &b)
}

// ParseAllow reads a comma-separated list of CIDRs or single addresses ("10.1.2.0/24,
// 127.0.0.1, ::1") as Policy.Allow. A bare address stands for itself alone.
func ParseAllow(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for item := range strings.SplitSeq(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		if strings.Contains(item, "/") {
			p, err := netip.ParsePrefix(item)
			if err != nil {
				return nil, fmt.Errorf("egress: %q is not a CIDR such as 10.0.0.0/8: %w", item, err)
			}
			if p != p.Masked() {
				return nil, fmt.Errorf("egress: %q has host bits set; did you mean %s?", item, p.Masked())
			}
			out = append(out, p)
			continue
		}
		a, err := netip.ParseAddr(item)
		if err != nil {
			return nil, fmt.Errorf("egress: %q is neither a CIDR nor an IP address", item)
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return slices.Clip(out), nil
}

// String lists the allowed CIDRs, for logs.
func (p Policy) String() string {
	if len(p.Allow) == 0 {
		return "internal addresses refused, none allowed"
	}
	s := make([]string, len(p.Allow))
	for i, a := range p.Allow {
		s[i] = a.String()
	}
	return "internal addresses refused, allowed: " + strings.Join(s, ", ")
}
