package miner

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/coder/websocket"

	"github.com/computehorde/horde/internal/protocol"
	"github.com/computehorde/horde/internal/wsconn"
)

// tunedMiner serves a second miner over h's chain, store and executors, with h's config as
// tune changes it, and returns it with its websocket base URL. Jobs it accepts get their
// executors from h.execs only once h.execs.url is pointed at that URL.
func tunedMiner(t *testing.T, h *harness, tune func(*Config)) (*Miner, string) {
	t.Helper()
	cfg := h.miner.cfg
	tune(&cfg)
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(m.Handler())
	t.Cleanup(func() {
		m.Close()
		srv.Close()
	})
	return m, "ws" + strings.TrimPrefix(srv.URL, "http")
}

// dialFrom opens a websocket to url from the loopback address src (any 127.0.0.0/8 address
// works on Linux), so that one test can be several remote addresses.
func dialFrom(t *testing.T, url, src string) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	tr := &http.Transport{DialContext: d.DialContext}
	t.Cleanup(tr.CloseIdleConnections)
	ws, resp, err := websocket.Dial(t.Context(), url, &websocket.DialOptions{HTTPClient: &http.Client{Transport: tr}})
	if ws != nil {
		t.Cleanup(func() { ws.CloseNow() })
	}
	return ws, resp, err
}

// authedAt connects to the miner at url as Alice and authenticates, consuming the manifest.
// It returns the raw websocket (for pings) and its protocol wrapper.
func (h *harness) authedAt(url string) (*websocket.Conn, *wsconn.Conn) {
	h.t.Helper()
	ws, _, err := dialFrom(h.t, url+ValidatorPathPrefix+h.alice.SS58(), "127.0.0.1")
	if err != nil {
		h.t.Fatal(err)
	}
	c := wsconn.New(ws)
	send(h.t.Context(), h.t, c, h.authMsg(h.alice, time.Now()))
	if _, ok := h.read(c).(*protocol.V0ExecutorManifestRequest); !ok {
		h.t.Fatal("want the manifest right after auth")
	}
	return ws, c
}

// readFrames reads c in the background until it fails; the frames arrive on the first
// channel, the error that ended the reading on the second.
func readFrames(ctx context.Context, c *wsconn.Conn) (<-chan protocol.Message, <-chan error) {
	frames, done := make(chan protocol.Message, 16), make(chan error, 1)
	go func() {
		for {
			frame, err := c.ReadFrame(ctx)
			if err != nil {
				done <- err
				return
			}
			if m, err := protocol.DecodeMinerToValidator(frame); err == nil {
				frames <- m
			}
		}
	}()
	return frames, done
}

// wantClosedWith checks that the next read fails on a close frame with code and reason.
func wantClosedWith(t *testing.T, err error, code websocket.StatusCode, reason string) {
	t.Helper()
	var ce websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != code || ce.Reason != reason {
		t.Fatalf("connection ended with %v, want close status %d %q", err, code, reason)
	}
}

func TestValidatorConnectionCaps(t *testing.T) {
	h := newHarness(t, happyExecutor)
	m, url := tunedMiner(t, h, func(c *Config) {
		c.MaxValidatorConns, c.MaxValidatorConnsPerIP = 3, 2
		c.ValidatorAuthTimeout = time.Minute // the connections below wait, unauthenticated
	})
	released := make(chan struct{}, 8)
	m.limits.mu.Lock()
	m.limits.afterRelease = func() { released <- struct{}{} }
	m.limits.mu.Unlock()
	path := url + ValidatorPathPrefix + h.alice.SS58()

	open := func(src string) *websocket.Conn {
		t.Helper()
		ws, _, err := dialFrom(t, path, src)
		if err != nil {
			t.Fatalf("connection from %s refused: %v", src, err)
		}
		return ws
	}
	refused := func(src, wantBody string) {
		t.Helper()
		ws, resp, err := dialFrom(t, path, src)
		if err == nil {
			ws.CloseNow()
			t.Fatalf("connection from %s accepted over the cap", src)
		}
		if resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("connection from %s over the cap: %v (response %+v), want HTTP 503", src, err, resp)
		}
		if got := resp.Header.Get("Retry-After"); got != "10" {
			t.Errorf("Retry-After = %q, want 10", got)
		}
		body, _ := io.ReadAll(resp.Body)
		if !strings.Contains(string(body), wantBody) {
			t.Errorf("503 body = %q, want it to contain %q", body, wantBody)
		}
	}

	first := open("127.0.0.1")
	open("127.0.0.1")
	refused("127.0.0.1", "Too many validator connections from 127.0.0.1 (at most 2 at once)")
	open("127.0.0.2")
	refused("127.0.0.3", "Too many validator connections to this miner (at most 3 at once)")

	// A slot frees when its connection closes.
	first.CloseNow()
	<-released
	open("127.0.0.1")
	refused("127.0.0.1", "from 127.0.0.1")
	if total, fromIP := m.limits.counts(netip.MustParseAddr("127.0.0.1")); total != 3 || fromIP != 2 {
		t.Errorf("held slots: %d in total, %d from 127.0.0.1; want 3 and 2", total, fromIP)
	}
}

// TestPreAuthFrameOverLimit: before auth, a frame whose header claims 45 MiB is cut off with
// status 1009 (message too big) once it passes the pre-auth limit; the miner never waits for
// (or buffers) the rest.
func TestPreAuthFrameOverLimit(t *testing.T) {
	h := newHarness(t, happyExecutor)
	_, url := tunedMiner(t, h, func(*Config) {})
	c, err := rawDial(url, h.alice.SS58())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write(frameHeader(45 << 20)); err != nil {
		t.Fatal(err)
	}
	// Exactly what the miner reads before refusing (the limit plus the byte that passes it),
	// so that no unread bytes make the miner's kernel reset the connection.
	if _, err := c.Write(bytes.Repeat([]byte{'x'}, preAuthReadLimit+1)); err != nil {
		t.Fatal(err)
	}
	op, payload := readRawFrame(t, c)
	if op != 8 || len(payload) < 2 {
		t.Fatalf("got frame opcode %d payload %q, want a close frame", op, payload)
	}
	if code := websocket.StatusCode(binary.BigEndian.Uint16(payload)); code != websocket.StatusMessageTooBig {
		t.Fatalf("close status %d (%q), want %d (message too big)", code, payload[2:], websocket.StatusMessageTooBig)
	}
}

// TestFirstFrameMustBeAuth: nothing is queued before auth; another first message is a
// refusal.
func TestFirstFrameMustBeAuth(t *testing.T) {
	h := newHarness(t, happyExecutor)
	c, err := wsconn.Dial(t.Context(), h.url+ValidatorPathPrefix+h.alice.SS58())
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	send(t.Context(), t, c, &protocol.V0MainHotkeyMessage{})
	send(t.Context(), t, c, h.authMsg(h.alice, time.Now()))
	e, ok := h.read(c).(*protocol.GenericError)
	if !ok || !strings.Contains(*e.Details, "the first message must be ValidatorAuthForMiner (got V0MainHotkeyMessage)") {
		t.Fatalf("got %#v, want a refusal naming the first message", e)
	}
	_, err = c.ReadFrame(t.Context())
	wantClosedWith(t, err, websocket.StatusNormalClosure, "not authenticated")
}

// TestReadLimitRaisedAfterAuth: once authenticated, frames may be as large as the protocol
// allows.
func TestReadLimitRaisedAfterAuth(t *testing.T) {
	h := newHarness(t, happyExecutor)
	c := h.authed()
	send(t.Context(), t, c, &protocol.GenericError{Details: new(strings.Repeat("x", 1<<20))})
	send(t.Context(), t, c, &protocol.V0MainHotkeyMessage{})
	if m, ok := h.read(c).(*protocol.V0MainHotkeyMessage); !ok || *m.MainHotkey != h.bob.SS58() {
		t.Fatalf("after a 1 MiB frame: got %#v, want the main hotkey", m)
	}
}

func TestAuthTimeout(t *testing.T) {
	h := newHarness(t, happyExecutor)
	_, url := tunedMiner(t, h, func(c *Config) { c.ValidatorAuthTimeout = 100 * time.Millisecond })
	c, err := wsconn.Dial(t.Context(), url+ValidatorPathPrefix+h.alice.SS58())
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	e, ok := h.read(c).(*protocol.GenericError)
	want := "Validator " + h.alice.SS58() + " not authenticated due to: no auth message received within 100ms"
	if !ok || e.Details == nil || *e.Details != want {
		t.Fatalf("got %#v, want GenericError %q", e, want)
	}
	_, err = c.ReadFrame(t.Context())
	wantClosedWith(t, err, websocket.StatusNormalClosure, "auth timeout")
}

// TestIdleTimeout: an authenticated validator that sends nothing is told and disconnected
// after the idle timeout; websocket pings keep it connected.
func TestIdleTimeout(t *testing.T) {
	const idle = 300 * time.Millisecond
	h := newHarness(t, happyExecutor)
	_, url := tunedMiner(t, h, func(c *Config) { c.ValidatorIdleTimeout = idle })
	ws, c := h.authedAt(url)
	frames, ended := readFrames(t.Context(), c)

	// Pings, and nothing else, for well over an idle timeout: the connection stays.
	start := time.Now()
	tick := time.NewTicker(idle / 10)
	defer tick.Stop()
	for time.Since(start) < 5*idle/2 {
		if err := ws.Ping(t.Context()); err != nil {
			t.Fatalf("ping after %s: %v", time.Since(start), err)
		}
		<-tick.C
	}
	select {
	case m := <-frames:
		t.Fatalf("pinging validator got %s", m.MessageType())
	case err := <-ended:
		t.Fatalf("pinging validator disconnected: %v", err)
	default:
	}
	send(t.Context(), t, c, &protocol.V0MainHotkeyMessage{})
	if m, ok := (<-frames).(*protocol.V0MainHotkeyMessage); !ok || *m.MainHotkey != h.bob.SS58() {
		t.Fatalf("got %#v, want the main hotkey", m)
	}

	// Silence: told, then closed.
	e, ok := (<-frames).(*protocol.GenericError)
	want := "Closing the connection: no message from the validator for 300ms and no job in flight"
	if !ok || e.Details == nil || *e.Details != want {
		t.Fatalf("got %#v, want GenericError %q", e, want)
	}
	wantClosedWith(t, <-ended, websocket.StatusNormalClosure, "idle timeout")
}

// TestIdleTimeoutSparesJobsInFlight: a validator waiting, silent, for its job's outcome is not
// idle; once the job has ended, it is.
func TestIdleTimeoutSparesJobsInFlight(t *testing.T) {
	const idle = 100 * time.Millisecond
	finish := make(chan struct{})
	h := newHarness(t, func(ctx context.Context, t *testing.T, conn *wsconn.Conn, initial *protocol.V0InitialJobRequest) {
		send(ctx, t, conn, &protocol.V0ExecutorReadyRequest{JobUUID: initial.JobUUID})
		<-finish
		send(ctx, t, conn, &protocol.V0JobFinishedRequest{JobUUID: initial.JobUUID, DockerProcessStdout: "ok"})
	})
	_, url := tunedMiner(t, h, func(c *Config) { c.ValidatorIdleTimeout = idle })
	h.execs.url = url
	_, c := h.authedAt(url)
	frames, ended := readFrames(t.Context(), c)
	send(t.Context(), t, c, h.initialRequest("00000000-0000-4000-8000-0000000000a1", protocol.ExecutorClassAlwaysOnTest))
	for _, want := range []string{"V0AcceptJobRequest", "V0ExecutorReadyRequest"} {
		if got := (<-frames).MessageType(); got != want {
			t.Fatalf("got %s, want %s", got, want)
		}
	}
	// Silent for five idle timeouts while the job runs: nothing comes, the connection stays.
	quiet := time.NewTimer(5 * idle)
	select {
	case m := <-frames:
		t.Fatalf("validator with a job in flight got %#v", m)
	case err := <-ended:
		t.Fatalf("validator with a job in flight disconnected: %v", err)
	case <-quiet.C:
	}
	close(finish)
	if got := (<-frames).MessageType(); got != "V0JobFinishedRequest" {
		t.Fatalf("got %s, want V0JobFinishedRequest", got)
	}
	if e, ok := (<-frames).(*protocol.GenericError); !ok || !strings.Contains(*e.Details, "no job in flight") {
		t.Fatalf("got %#v, want the idle GenericError once the job has ended", e)
	}
	wantClosedWith(t, <-ended, websocket.StatusNormalClosure, "idle timeout")
}

// TestManyValidatorsManyJobs: validators' connections run side by side, each with several
// jobs in flight. Every executor holds its job until all of them run at once, so anything
// serialising jobs or connections across validators would hang the test.
func TestManyValidatorsManyJobs(t *testing.T) {
	const validators, jobsEach = 24, 4
	const total = validators * jobsEach
	var running sync.WaitGroup
	running.Add(total)
	allRunning := make(chan struct{})
	go func() { running.Wait(); close(allRunning) }()
	h := newHarness(t, func(ctx context.Context, t *testing.T, conn *wsconn.Conn, initial *protocol.V0InitialJobRequest) {
		id := initial.JobUUID
		send(ctx, t, conn, &protocol.V0ExecutorReadyRequest{JobUUID: id})
		if _, ok := tryRead(ctx, t, conn, protocol.DecodeMinerToExecutor).(*protocol.V0JobRequest); !ok {
			t.Errorf("executor: want V0JobRequest")
		}
		running.Done()
		select {
		case <-allRunning:
		case <-ctx.Done():
			t.Errorf("job %s: not all jobs ran at once", id)
			return
		}
		send(ctx, t, conn, &protocol.V0JobFinishedRequest{JobUUID: id, DockerProcessStdout: "ok"})
	}, protocol.ManifestEntry{Class: protocol.ExecutorClassAlwaysOnTest, Count: total})
	_, url := tunedMiner(t, h, func(c *Config) { c.MaxValidatorConnsPerIP = validators })
	h.execs.url = url

	var wg sync.WaitGroup
	for v := range validators {
		wg.Go(func() {
			ctx := t.Context()
			ws, _, err := dialFrom(t, url+ValidatorPathPrefix+h.alice.SS58(), "127.0.0.1")
			if err != nil {
				t.Errorf("validator %d: %v", v, err)
				return
			}
			c := wsconn.New(ws)
			send(ctx, t, c, h.authMsg(h.alice, time.Now()))
			next := func() string {
				if m := tryRead(ctx, t, c, protocol.DecodeMinerToValidator); m != nil {
					return m.MessageType()
				}
				return ""
			}
			if got := next(); got != "V0ExecutorManifestRequest" {
				t.Errorf("validator %d: got %s, want the manifest", v, got)
				return
			}
			ids := make([]string, jobsEach)
			for j := range ids {
				ids[j] = fmt.Sprintf("00000000-0000-4000-8000-%012d", v*100+j)
				send(ctx, t, c, h.initialRequest(ids[j], protocol.ExecutorClassAlwaysOnTest))
			}
			counts := map[string]int{}
			for range 2 * jobsEach { // an accept and an executor-ready per job, interleaved
				counts[next()]++
			}
			if counts["V0AcceptJobRequest"] != jobsEach || counts["V0ExecutorReadyRequest"] != jobsEach {
				t.Errorf("validator %d: got %v, want %d accepts and executor-readies", v, counts, jobsEach)
				return
			}
			for _, id := range ids {
				send(ctx, t, c, &protocol.V0JobRequest{JobUUID: id, ExecutorClass: protocol.ExecutorClassAlwaysOnTest,
					DockerImage: "img", DockerRunOptionsPreset: protocol.DockerRunOptionsPresetNone, DockerRunCmd: []string{}})
			}
			for range jobsEach {
				if got := next(); got != "V0JobFinishedRequest" {
					t.Errorf("validator %d: got %s, want V0JobFinishedRequest", v, got)
					return
				}
			}
		})
	}
	wg.Wait()
	h.execs.wg.Wait()
}

// TestPreAuthMemory: 2,000 unauthenticated connections, each in the middle of a frame whose
// header claims 45 MiB, hold the miner's memory well under 100 MB. The figure counts the
// whole process: the test's own client side too (raw TCP connections, a few hundred bytes
// each), so the miner's share is smaller still.
func TestPreAuthMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("2,000 connections; skipped with -short")
	}
	n := 2000
	if fds := raiseFDLimit(t, uint64(2*n+256)); fds < uint64(2*n+256) {
		n = int(fds-256) / 2
		t.Logf("file descriptor limit %d: scaled down to %d connections", fds, n)
	}
	const partial = 1024 // payload bytes each connection sends of its claimed 45 MiB
	h := newHarness(t, happyExecutor)
	cfg := h.miner.cfg
	cfg.MaxValidatorConns, cfg.MaxValidatorConnsPerIP = n, n
	cfg.ValidatorAuthTimeout = time.Minute
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	counted := &countingListener{Listener: ln, reached: make(chan struct{})}
	srv := httptest.NewUnstartedServer(m.Handler())
	srv.Listener.Close()
	srv.Listener = counted
	srv.Start()
	t.Cleanup(func() {
		m.Close()
		srv.Close()
	})
	url := "ws" + strings.TrimPrefix(srv.URL, "http")
	perConn := int64(len(upgradeRequest(url, h.alice.SS58())) + len(frameHeader(0)) + partial)
	counted.target.Store(int64(n) * perConn)

	before := inUse()
	start := time.Now()
	conns := make([]net.Conn, n)
	parallel(n, func(i int) {
		c, err := rawDial(url, h.alice.SS58())
		if err != nil {
			t.Errorf("connection %d: %v", i, err)
			return
		}
		conns[i] = c
		if _, err := c.Write(append(frameHeader(45<<20), make([]byte, partial)...)); err != nil {
			t.Errorf("connection %d: %v", i, err)
		}
	})
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	}()
	if t.Failed() {
		t.FailNow()
	}
	// Every byte sent has been read by the miner: each connection's handler is blocked in the
	// middle of its 45 MiB frame.
	select {
	case <-counted.reached:
	case <-time.After(30 * time.Second):
		t.Fatalf("the miner read %d of the %d bytes sent", counted.read.Load(), counted.target.Load())
	}
	after := inUse()
	delta := int64(after) - int64(before)
	t.Logf("%d pre-auth connections, each mid-way through a frame claiming 45 MiB: heap+stack in use grew by %.1f MB "+
		"(%.1f KB a connection, client side included), set up in %s",
		n, float64(delta)/1e6, float64(delta)/1e3/float64(n), time.Since(start).Round(time.Millisecond))
	if delta > 100e6 {
		t.Errorf("heap+stack in use grew by %.1f MB, want under 100 MB", float64(delta)/1e6)
	}
	if total, _ := m.limits.counts(netip.MustParseAddr("127.0.0.1")); total != n {
		t.Errorf("miner holds %d connections, want %d", total, n)
	}

	// The frames are really being read under the pre-auth limit: the bytes that take each one
	// past it end the connection with status 1009.
	parallel(n, func(i int) {
		if conns[i] == nil {
			return
		}
		if _, err := conns[i].Write(make([]byte, preAuthReadLimit+1-partial)); err != nil {
			t.Errorf("connection %d: %v", i, err)
			return
		}
		op, payload := readRawFrame(t, conns[i])
		if op != 8 || len(payload) < 2 || websocket.StatusCode(binary.BigEndian.Uint16(payload)) != websocket.StatusMessageTooBig {
			t.Errorf("connection %d: got opcode %d payload %q, want close status 1009", i, op, payload)
		}
	})
}

// inUse returns the heap and stack memory in use after a collection.
func inUse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse + ms.StackInuse
}

// parallel runs f(0..n-1) on a few goroutines.
func parallel(n int, f func(i int)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				f(i)
			}
		})
	}
	wg.Wait()
}

// raiseFDLimit raises the soft limit on open files towards want, up to the hard limit, and
// returns the soft limit then in force.
func raiseFDLimit(t *testing.T, want uint64) uint64 {
	t.Helper()
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		t.Fatal(err)
	}
	if rl.Cur >= want {
		return rl.Cur
	}
	rl.Cur = min(want, rl.Max)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		t.Logf("cannot raise the open-file limit: %v", err)
		_ = syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl)
	}
	return rl.Cur
}

// countingListener counts the bytes its connections read, and closes reached once they come
// to target.
type countingListener struct {
	net.Listener
	read, target atomic.Int64
	reached      chan struct{}
	once         sync.Once
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &countingConn{Conn: c, l: l}, nil
}

type countingConn struct {
	net.Conn
	l *countingListener
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if c.l.read.Add(int64(n)) == c.l.target.Load() {
		c.l.once.Do(func() { close(c.l.reached) })
	}
	return n, err
}

// upgradeRequest is the websocket handshake for validator hotkey at the miner at url.
func upgradeRequest(url, hotkey string) string {
	host := strings.TrimPrefix(url, "ws://")
	return "GET " + ValidatorPathPrefix + hotkey + " HTTP/1.1\r\nHost: " + host + "\r\n" +
		"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
}

// rawDial opens a websocket to the miner at url as hotkey on a bare TCP connection, so that a
// test can send frames byte by byte and hold thousands of connections cheaply.
func rawDial(url, hotkey string) (net.Conn, error) {
	c, err := net.Dial("tcp", strings.TrimPrefix(url, "ws://"))
	if err != nil {
		return nil, err
	}
	if _, err := io.WriteString(c, upgradeRequest(url, hotkey)); err != nil {
		c.Close()
		return nil, err
	}
	// The miner sends nothing after the 101 before auth, so reading up to the blank line
	// leaves no websocket bytes behind.
	var resp []byte
	buf := make([]byte, 512)
	for !bytes.Contains(resp, []byte("\r\n\r\n")) {
		k, err := c.Read(buf)
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("handshake: %w (read %q)", err, resp)
		}
		resp = append(resp, buf[:k]...)
	}
	if !bytes.HasPrefix(resp, []byte("HTTP/1.1 101 ")) {
		c.Close()
		return nil, fmt.Errorf("handshake answered %q", resp)
	}
	return c, nil
}

// frameHeader is the header of a final, masked (with a zero key, so the payload goes as it
// is) text frame claiming length bytes.
func frameHeader(length uint64) []byte {
	h := []byte{0x81, 0x80 | 127, 0, 0, 0, 0, 0, 0, 0, 0}
	binary.BigEndian.PutUint64(h[2:], length)
	return append(h, 0, 0, 0, 0)
}

// readRawFrame reads one unmasked server frame (payload under 64 KiB) and returns its opcode
// and payload.
func readRawFrame(t *testing.T, c net.Conn) (opcode byte, payload []byte) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var h [4]byte
	if _, err := io.ReadFull(c, h[:2]); err != nil {
		t.Errorf("read frame: %v", err)
		return 0, nil
	}
	n := int(h[1] & 0x7f)
	if n == 126 {
		if _, err := io.ReadFull(c, h[2:4]); err != nil {
			t.Errorf("read frame: %v", err)
			return 0, nil
		}
		n = int(binary.BigEndian.Uint16(h[2:4]))
	}
	payload = make([]byte, n)
	if _, err := io.ReadFull(c, payload); err != nil {
		t.Errorf("read frame: %v", err)
		return 0, nil
	}
	return h[0] & 0x0f, payload
}

func TestWatchdog(t *testing.T) {
	const idle = 5 * time.Minute
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		act := newActivity()
		act.touch()
		fired := make(chan time.Time, 1)
		dog := startWatchdog(idle, func() time.Duration { return idle - act.idleFor() },
			func() { fired <- time.Now() })
		time.Sleep(3 * time.Minute)
		act.touch() // the deadline moves to 8 min
		time.Sleep(4 * time.Minute)
		synctest.Wait()
		if len(fired) != 0 {
			t.Fatal("fired although the peer was active 4 min ago")
		}
		at := <-fired
		if got := at.Sub(start); got != 8*time.Minute {
			t.Errorf("fired after %s, want 8m0s", got)
		}
		if !dog.stop() {
			t.Error("stop after firing reports it did not fire")
		}

		dog = startWatchdog(time.Second, func() time.Duration { return 0 }, func() { t.Error("fired after stop") })
		if dog.stop() {
			t.Error("stop before the deadline reports it fired")
		}
		time.Sleep(time.Minute)
	})
}

func TestLogLimiter(t *testing.T) {
	var l logLimiter
	t0 := time.Now()
	for i, step := range []struct {
		at         time.Duration
		key        string
		ok         bool
		suppressed int
	}{
		{0, "a", true, 0},
		{time.Second, "a", false, 0},
		{2 * time.Second, "b", true, 0}, // keys are independent
		{3 * time.Second, "a", false, 0},
		{noisyLogInterval, "a", true, 2},
		{noisyLogInterval + time.Second, "a", false, 0},
		{3 * noisyLogInterval, "a", true, 1},
	} {
		ok, suppressed := l.allow(step.key, t0.Add(step.at))
		if ok != step.ok || suppressed != step.suppressed {
			t.Errorf("step %d: allow(%s at %s) = %v, %d; want %v, %d", i, step.key, step.at, ok, suppressed, step.ok, step.suppressed)
		}
	}
}
