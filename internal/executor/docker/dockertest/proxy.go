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
// connection and stops accepting, Resume accepts again.
type Proxy struct {
	// Path is the proxy's socket; point a client at "unix://" + Path.
	Path   string
	target string
	waits  chan struct{}

	mu    sync.Mutex
	ln    net.Listener
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

// StartProxy listens on a socket in t.TempDir() and forwards to the engine socket at target
// until the test ends.
func StartProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	p := &Proxy{
		Path: filepath.Join(t.TempDir(), "engine.sock"), target: target,
		waits: make(chan struct{}, 16), conns: map[net.Conn]struct{}{},
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
