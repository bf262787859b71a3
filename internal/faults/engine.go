package faults

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
)

// EngineTarget is the miner whose Docker engine the harness can break (FaultEngine,
// FaultEngineErrors): its executors' host is a proxy of the engine's socket in its
// directory, and so is the engine its executors use for their jobs.
const EngineTarget = "miner-1"

// engineState is what the proxy plays.
type engineState int

const (
	engineUp      engineState = iota // every request forwarded
	engineDown                       // connections accepted and closed at once
	engineFailing                    // every request answered 500, as a broken daemon does
)

// engineErrorMessage is what a failing engine answers, in Docker's error body: the daemon's
// own words when its disk is full, the common way an engine that is up refuses all work.
const engineErrorMessage = "faults: injected engine error: write /var/lib/docker/tmp: no space left on device"

// engineProxy forwards a unix socket to the engine's and can play a dying engine (cut: every
// connection dropped and new ones refused) or a broken one (fail: every connection dropped and
// each request on new ones answered with an error) until resume. The socket stays where it
// is, since containers bind-mount it.
type engineProxy struct {
	target string
	ln     net.Listener

	mu       sync.Mutex
	state    engineState
	conns    map[net.Conn]bool
	served   int // connections forwarded
	refused  int // connections refused while cut
	answered int // requests answered with an error while failing
	wg       sync.WaitGroup
}

func startEngineProxy(path, target string) (*engineProxy, error) {
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	p := &engineProxy{target: target, ln: ln, conns: map[net.Conn]bool{}}
	p.wg.Go(p.serve)
	return p, nil
}

func (p *engineProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		state := p.state
		switch state {
		case engineDown:
			p.refused++
		case engineUp:
			p.served++
		}
		p.mu.Unlock()
		switch state {
		case engineDown:
			c.Close()
		case engineFailing:
			p.wg.Go(func() { p.fail(c) })
		default:
			p.wg.Go(func() { p.pipe(c) })
		}
	}
}

// fail answers every request on c with Docker's 500 and its error body, keeping the
// connection alive as the daemon does, until the client hangs up or the proxy resumes.
func (p *engineProxy) fail(c net.Conn) {
	defer c.Close()
	p.mu.Lock()
	if p.state != engineFailing {
		p.mu.Unlock()
		return
	}
	p.conns[c] = true
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		delete(p.conns, c)
		p.mu.Unlock()
	}()
	body := fmt.Sprintf("{\"message\":%q}\n", engineErrorMessage)
	br := bufio.NewReader(c)
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		// The body is read so that the next request on the connection can be; a client
		// sends at most an image's build context here, and none does.
		_, _ = io.Copy(io.Discard, io.LimitReader(req.Body, 64<<20))
		req.Body.Close()
		p.mu.Lock()
		p.answered++
		p.mu.Unlock()
		head := "HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\n" +
			fmt.Sprintf("Content-Length: %d\r\n", len(body))
		if req.Close || strings.EqualFold(req.Header.Get("Connection"), "close") {
			head += "Connection: close\r\n"
		}
		if _, err := io.WriteString(c, head+"\r\n"+body); err != nil || req.Close {
			return
		}
	}
}

func (p *engineProxy) pipe(c net.Conn) {
	defer c.Close()
	up, err := net.Dial("unix", p.target)
	if err != nil {
		return
	}
	defer up.Close()
	p.mu.Lock()
	if p.state != engineUp {
		p.mu.Unlock()
		return
	}
	p.conns[c], p.conns[up] = true, true
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		delete(p.conns, c)
		delete(p.conns, up)
		p.mu.Unlock()
	}()
	var both sync.WaitGroup
	both.Go(func() {
		_, _ = io.Copy(up, c)
		if u, ok := up.(*net.UnixConn); ok {
			_ = u.CloseWrite()
		}
	})
	_, _ = io.Copy(c, up)
	if u, ok := c.(*net.UnixConn); ok {
		_ = u.CloseWrite()
	}
	both.Wait()
}

// set changes what the proxy plays and drops every connection it holds: the engine died,
// or restarted broken, or (resume) was fixed.
func (p *engineProxy) set(state engineState) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.state = state
	for c := range p.conns {
		c.Close()
	}
}

// cut drops every connection to the engine and refuses new ones.
func (p *engineProxy) cut() { p.set(engineDown) }

// failRequests drops every connection to the engine and answers every request on new ones
// with an error.
func (p *engineProxy) failRequests() { p.set(engineFailing) }

// resume forwards new connections again; the failing engine's connections are dropped (a
// dead one holds none).
func (p *engineProxy) resume() { p.set(engineUp) }

func (p *engineProxy) close() {
	p.ln.Close()
	p.cut()
	p.wg.Wait()
}

// EngineCut makes EngineTarget's Docker engine unreachable: every connection to it dropped,
// new ones refused.
func (h *Harness) EngineCut() error {
	return h.breakEngine((*engineProxy).cut)
}

// EngineFail makes EngineTarget's Docker engine answer every request with an error (HTTP
// 500, "no space left on device"); the connections it held are dropped.
func (h *Harness) EngineFail() error {
	return h.breakEngine((*engineProxy).failRequests)
}

func (h *Harness) breakEngine(how func(*engineProxy)) error {
	if h.engineProxy == nil {
		return errNoEngineProxy
	}
	h.mu.Lock()
	h.engineBroken = true
	h.mu.Unlock()
	how(h.engineProxy)
	return nil
}

// EngineResume lets EngineTarget reach its working engine again.
func (h *Harness) EngineResume() {
	h.mu.Lock()
	broken := h.engineBroken
	h.engineBroken = false
	h.mu.Unlock()
	if broken {
		h.engineProxy.resume()
	}
}

var errNoEngineProxy = errors.New("faults: no miner's engine is proxied")

// EngineConns says how many connections EngineTarget's engine proxy forwarded and refused
// (while cut), and how many requests it answered with an error (while failing).
func (h *Harness) EngineConns() (served, refused, failed int) {
	if h.engineProxy == nil {
		return 0, 0, 0
	}
	p := h.engineProxy
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.served, p.refused, p.answered
}
