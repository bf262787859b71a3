// Package dockertest helps tests play faults of the Docker engine.
package dockertest

import (
	"bytes"
	"net"
	"path/filepath"
	"sync"
	"testing"
)

// Proxy forwards a unix socket to the engine's and can play a dying engine: Cut drops every
// connection and stops accepting, Resume accepts again; and a stuck one: Stall.
type Proxy struct {
	// Path is the proxy's socket; point a client at "unix://" + Path.
	Path   string
	target string
	waits  chan struct{}

	mu      sync.Mutex
	ln      net.Listener
	conns   map[net.Conn]struct{}
	stalled map[string]chan struct{} // request pattern → closed when the stall ends
	wg      sync.WaitGroup
}

// StartProxy listens on a socket in t.TempDir() and forwards to the engine socket at target
// until the test ends.
func StartProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	p := &Proxy{
		Path: filepath.Join(t.TempDir(), "engine.sock"), target: target,
		waits: make(chan struct{}, 16), conns: map[net.Conn]struct{}{}, stalled: map[string]chan struct{}{},
	}
	if err := p.Resume(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.Cut()
		p.wg.Wait()
	})
	return p
}

// Stall makes the engine never answer requests whose start contains pattern (such as
// "/containers/create"): they are held, never forwarded, and their connection is closed when
// the client gives up... or when the test ends. Nothing they asked for happens.
func (p *Proxy) Stall(t testing.TB, pattern string) {
	ch := make(chan struct{})
	p.mu.Lock()
	p.stalled[pattern] = ch
	p.mu.Unlock()
	t.Cleanup(func() { close(ch) }) // before the proxy's own cleanup, which waits for the pipes
}

// stall returns the channel of the stall that data matches, or nil.
func (p *Proxy) stall(data []byte) chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	for pattern, ch := range p.stalled {
		if bytes.Contains(data, []byte(pattern)) {
			return ch
		}
	}
	return nil
}

// Waits gets a value each time a container wait request goes through the proxy.
func (p *Proxy) Waits() <-chan struct{} { return p.waits }

// Resume accepts connections again. It may be called from any goroutine.
func (p *Proxy) Resume() error {
	ln, err := net.Listen("unix", p.Path)
	if err != nil {
		return err
	}
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("unix", p.target)
			if err != nil {
				c.Close()
				continue
			}
			if !p.track(c, up) {
				return
			}
			p.wg.Add(2)
			go p.pipe(up, c, true)
			go p.pipe(c, up, false)
		}
	}()
	return nil
}

// track registers a connection pair, unless the proxy has been cut meanwhile.
func (p *Proxy) track(c, up net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln == nil {
		c.Close()
		up.Close()
		return false
	}
	p.conns[c], p.conns[up] = struct{}{}, struct{}{}
	return true
}

// pipe copies src to dst; the client-to-engine direction reports wait requests.
func (p *Proxy) pipe(dst, src net.Conn, toEngine bool) {
	defer p.wg.Done()
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if ch := p.stall(buf[:n]); toEngine && ch != nil {
				// Hold it until the client hangs up (its read on the closed pipe fails) or
				// the stall ends; never forward it.
				gone := make(chan struct{})
				go func() {
					src.Read(make([]byte, 1))
					close(gone)
				}()
				select {
				case <-gone:
				case <-ch:
				}
				return
			}
			if toEngine && bytes.Contains(buf[:n], []byte("/wait?")) {
				select {
				case p.waits <- struct{}{}:
				default:
				}
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// Cut drops every connection and stops accepting new ones.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
	}
	clear(p.conns)
}
