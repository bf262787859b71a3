package faults

import (
	"errors"
	"io"
	"net"
	"sync"
)

// EngineTarget is the miner whose Docker engine the harness can break (FaultEngine): its
// executors' host is a proxy of the engine's socket in its directory, and so is the engine
// its executors use for their jobs.
const EngineTarget = "miner-1"

// engineProxy forwards a unix socket to the engine's and can play a dying engine: cut drops
// every connection and refuses new ones (accepted and closed at once) until resume. The
// socket stays where it is, since containers bind-mount it.
type engineProxy struct {
	target string
	ln     net.Listener

	mu      sync.Mutex
	down    bool
	conns   map[net.Conn]bool
	served  int // connections forwarded
	refused int // connections refused while cut
	wg      sync.WaitGroup
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
		down := p.down
		if down {
			p.refused++
		} else {
			p.served++
		}
		p.mu.Unlock()
		if down {
			c.Close()
			continue
		}
		p.wg.Go(func() { p.pipe(c) })
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
	if p.down {
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

// cut drops every connection to the engine and refuses new ones.
func (p *engineProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = true
	for c := range p.conns {
		c.Close()
	}
}

// resume accepts connections again.
func (p *engineProxy) resume() {
	p.mu.Lock()
	p.down = false
	p.mu.Unlock()
}

func (p *engineProxy) close() {
	p.ln.Close()
	p.cut()
	p.wg.Wait()
}

// EngineCut makes EngineTarget's Docker engine unreachable: every connection to it dropped,
// new ones refused.
func (h *Harness) EngineCut() error {
	if h.engineProxy == nil {
		return errNoEngineProxy
	}
	h.mu.Lock()
	h.engineCut = true
	h.mu.Unlock()
	h.engineProxy.cut()
	return nil
}

// EngineResume lets EngineTarget reach its engine again.
func (h *Harness) EngineResume() {
	h.mu.Lock()
	cut := h.engineCut
	h.engineCut = false
	h.mu.Unlock()
	if cut {
		h.engineProxy.resume()
	}
}

var errNoEngineProxy = errors.New("faults: no miner's engine is proxied")

// EngineConns says how many connections EngineTarget's engine proxy forwarded and refused.
func (h *Harness) EngineConns() (served, refused int) {
	if h.engineProxy == nil {
		return 0, 0
	}
	p := h.engineProxy
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.served, p.refused
}
