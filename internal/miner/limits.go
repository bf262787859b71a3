package miner

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/computehorde/horde/internal/protocol"
	"github.com/computehorde/horde/internal/wsconn"
)

// Defaults of the validator endpoint's limits (see the Config fields of the same names).
const (
	defaultMaxValidatorConns      = 256
	defaultMaxValidatorConnsPerIP = 16
	defaultValidatorAuthTimeout   = 10 * time.Second
	defaultValidatorIdleTimeout   = 5 * time.Minute
)

// preAuthReadLimit is the largest frame a validator may send before it has authenticated.
// The auth message is about 400 bytes; the protocol's 50 MiB frame limit only applies once
// the validator has authenticated, so that an unauthenticated peer cannot make the miner
// buffer more than this per connection.
const preAuthReadLimit = 4 << 10

// capRetryAfter is the Retry-After (seconds) of a refusal at the connection caps: about the
// life of a connection that never authenticates.
const capRetryAfter = 10

// noisyLogInterval is how often a rate-limited log line may repeat.
const noisyLogInterval = 10 * time.Second

// connLimiter caps concurrent connections, in total and per remote address. It holds one
// mutex for a few map operations per connection, so it serialises nothing that waits.
type connLimiter struct {
	maxTotal, maxPerIP int

	mu    sync.Mutex
	total int                // guarded by mu
	perIP map[netip.Addr]int // guarded by mu; no entry for a count of zero

	afterRelease func() // a test hook, called when a slot is freed; nil otherwise
}

func newConnLimiter(maxTotal, maxPerIP int) *connLimiter {
	return &connLimiter{maxTotal: maxTotal, maxPerIP: maxPerIP, perIP: make(map[netip.Addr]int)}
}

// capRefusal says which cap refused a connection.
type capRefusal struct {
	perIP bool       // the per-address cap; otherwise the total one
	ip    netip.Addr // the refused peer's address
	limit int        // the cap that was reached
}

// message is the body of the 503 answer; it names the cap without exposing anything else.
func (r *capRefusal) message() string {
	if r.perIP {
		return fmt.Sprintf("Too many validator connections from %s (at most %d at once); retry later", r.ip, r.limit)
	}
	return fmt.Sprintf("Too many validator connections to this miner (at most %d at once); retry later", r.limit)
}

// acquire takes a slot for a connection from ip. It returns the function that frees the slot
// (call it once), or the refusal when a cap is reached.
func (l *connLimiter) acquire(ip netip.Addr) (release func(), refused *capRefusal) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch { // the per-address cap first: it is the one the peer can do something about
	case l.perIP[ip] >= l.maxPerIP:
		return nil, &capRefusal{perIP: true, ip: ip, limit: l.maxPerIP}
	case l.total >= l.maxTotal:
		return nil, &capRefusal{ip: ip, limit: l.maxTotal}
	}
	l.total++
	l.perIP[ip]++
	var once sync.Once
	return func() { once.Do(func() { l.release(ip) }) }, nil
}

func (l *connLimiter) release(ip netip.Addr) {
	l.mu.Lock()
	l.total--
	if n := l.perIP[ip] - 1; n > 0 {
		l.perIP[ip] = n
	} else {
		delete(l.perIP, ip)
	}
	hook := l.afterRelease
	l.mu.Unlock()
	if hook != nil {
		hook()
	}
}

// counts returns the connections held, in total and from ip.
func (l *connLimiter) counts(ip netip.Addr) (total, fromIP int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.total, l.perIP[ip]
}

// remoteIP is the address of the TCP peer of r, the key of the per-address cap. IPv4 peers
// on an IPv6 socket count as the IPv4 address. An unparsable RemoteAddr (not one net/http
// sets) maps to the zero Addr, which then shares one per-address slot pool.
func remoteIP(r *http.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// refuseOverCap answers a connection over a cap with 503 before any websocket upgrade, and
// logs it at most once per noisyLogInterval per cap.
func (m *Miner) refuseOverCap(w http.ResponseWriter, r *capRefusal) {
	key, what := "validator-cap-total", "validator connections refused: the miner is at its connection cap"
	if r.perIP {
		key, what = "validator-cap-ip", "validator connections refused: a remote address is at its connection cap"
	}
	if ok, suppressed := m.noisy.allow(key, time.Now()); ok {
		total, fromIP := m.limits.counts(r.ip)
		m.log.Warn(what, "remote_ip", r.ip, "cap", r.limit, "open", total, "open_from_ip", fromIP,
			"similar_refusals_not_logged", suppressed)
	}
	h := w.Header()
	h.Set("Retry-After", strconv.Itoa(capRetryAfter))
	h.Set("Connection", "close") // do not keep the refused peer's TCP connection either
	http.Error(w, r.message(), http.StatusServiceUnavailable)
}

// logLimiter lets a log line through at most once per noisyLogInterval per key, counting the
// ones it holds back. Keys must come from a fixed set (never a peer's address or hotkey), so
// that its map stays small whatever peers do. The zero value is ready to use.
type logLimiter struct {
	mu   sync.Mutex
	keys map[string]*logWindow // guarded by mu
}

type logWindow struct {
	last       time.Time
	suppressed int
}

// allow reports whether a line under key may be logged at now and, if so, how many were held
// back since the last one.
func (l *logLimiter) allow(key string, now time.Time) (ok bool, suppressed int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.keys == nil {
		l.keys = make(map[string]*logWindow)
	}
	w := l.keys[key]
	if w == nil {
		l.keys[key] = &logWindow{last: now}
		return true, 0
	}
	if now.Sub(w.last) < noisyLogInterval {
		w.suppressed++
		return false, 0
	}
	suppressed = w.suppressed
	w.last, w.suppressed = now, 0
	return true, suppressed
}

// logNoisy logs msg at level unless a line of the same kind went out within
// noisyLogInterval; the line counts the ones held back.
func (m *Miner) logNoisy(log *slog.Logger, level slog.Level, kind, msg string, args ...any) {
	ok, suppressed := m.noisy.allow(kind, time.Now())
	if !ok {
		return
	}
	if suppressed > 0 {
		args = append(args, "similar_not_logged", suppressed)
	}
	log.Log(context.Background(), level, msg, args...)
}

// activity records when a connection's peer last sent anything, pings included.
type activity struct {
	start time.Time
	last  atomic.Int64 // time since start, so that it follows the monotonic clock
}

func newActivity() *activity { return &activity{start: time.Now()} }

func (a *activity) touch() { a.last.Store(int64(time.Since(a.start))) }

func (a *activity) idleFor() time.Duration {
	return time.Since(a.start) - time.Duration(a.last.Load())
}

// watchdog runs expire once, in its own goroutine, when a deadline passes: first after the
// duration it starts with, then, as long as remaining reports time left, after that time.
// remaining and expire run from the watchdog's timer; remaining must not block.
type watchdog struct {
	remaining func() time.Duration
	expire    func()
	done      chan struct{} // closed once expire has returned

	mu      sync.Mutex
	timer   *time.Timer // guarded by mu
	stopped bool        // guarded by mu
	firing  bool        // guarded by mu
}

func startWatchdog(after time.Duration, remaining func() time.Duration, expire func()) *watchdog {
	w := &watchdog{remaining: remaining, expire: expire, done: make(chan struct{})}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.timer = time.AfterFunc(after, w.check)
	return w
}

func (w *watchdog) check() {
	w.mu.Lock()
	if w.stopped {
		w.mu.Unlock()
		return
	}
	if left := w.remaining(); left > 0 {
		w.timer.Reset(left)
		w.mu.Unlock()
		return
	}
	w.firing = true
	w.mu.Unlock()
	defer close(w.done)
	w.expire()
}

// stop disarms the watchdog. It reports whether expire ran (or is running), and then returns
// only once expire has.
func (w *watchdog) stop() (expired bool) {
	w.mu.Lock()
	w.stopped = true
	w.timer.Stop()
	firing := w.firing
	w.mu.Unlock()
	if firing {
		<-w.done
	}
	return firing
}

// expireConn tells the peer why in a GenericError, then closes the connection
// with a close frame carrying reason. A read blocked on conn then fails.
func expireConn(conn *wsconn.Conn, details, reason string) {
	_ = conn.Send(context.Background(), &protocol.GenericError{Details: new(details)})
	_ = conn.Close(reason)
}
