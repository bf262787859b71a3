package docker_test

import (
	"bytes"
	"context"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"

	"github.com/computehorde/horde/internal/executor"
	"github.com/computehorde/horde/internal/executor/docker"
	"github.com/computehorde/horde/internal/jobimage/jobimagetest"
)

// engineProxy forwards a unix socket to the engine's, and can play a dying engine: cut drops
// every connection and stops accepting, resume accepts again.
type engineProxy struct {
	path, target string
	waits        chan struct{} // gets a value per /wait request forwarded

	mu    sync.Mutex
	ln    net.Listener
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

func startProxy(t *testing.T, target string) *engineProxy {
	t.Helper()
	p := &engineProxy{
		path: filepath.Join(t.TempDir(), "engine.sock"), target: target,
		waits: make(chan struct{}, 16), conns: map[net.Conn]struct{}{},
	}
	p.resume(t)
	t.Cleanup(func() {
		p.cut()
		p.wg.Wait()
	})
	return p
}

func (p *engineProxy) resume(t *testing.T) {
	t.Helper()
	ln, err := net.Listen("unix", p.path)
	if err != nil {
		t.Fatal(err)
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
}

// track registers a connection pair, unless the proxy has been cut meanwhile.
func (p *engineProxy) track(c, up net.Conn) bool {
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
func (p *engineProxy) pipe(dst, src net.Conn, toEngine bool) {
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

func (p *engineProxy) cut() {
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

// TestEngineLostMidJob: the engine goes away while a job runs. Wait returns at once with
// ErrEngineConnectionLost; Remove, called while the engine is still away, retries until it
// is back and then removes the container.
func TestEngineLostMidJob(t *testing.T) {
	direct := jobimagetest.Engine(t)
	host := direct.DaemonHost()
	if !strings.HasPrefix(host, "unix://") {
		t.Skipf("the proxy needs a unix-socket engine, not %s", host)
	}
	p := startProxy(t, strings.TrimPrefix(host, "unix://"))
	cli, err := client.NewClientWithOpts(client.WithHost("unix://"+p.path), client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	rt, err := docker.NewWithClient(cli, docker.Options{WorkDir: t.TempDir(), ExecutorID: "engine-lost-" + uniqueID(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := rt.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})

	ctx := context.Background()
	id := uniqueID(t)
	ws, err := rt.Prepare(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if err := rt.Start(ctx, executor.RunSpec{ID: id, JobUUID: id, Image: jobimagetest.Hello(t), Cmd: []string{"--sleep", "30s"}, Timeout: time.Minute}); err != nil {
		t.Fatal(err)
	}
	waitErr := make(chan error, 1)
	go func() {
		_, err := rt.Wait(ctx, id)
		waitErr <- err
	}()
	select {
	case <-p.waits:
	case err := <-waitErr:
		t.Fatalf("Wait returned before the engine went away: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("Wait sent no wait request")
	}
	cut := time.Now()
	p.cut()
	select {
	case err := <-waitErr:
		t.Log(err)
		if !errors.Is(err, docker.ErrEngineConnectionLost) || !strings.Contains(err.Error(), "engine connection lost") || !strings.Contains(err.Error(), id) {
			t.Errorf("Wait = %v, want ErrEngineConnectionLost naming the job", err)
		}
		if took := time.Since(cut); took > 5*time.Second {
			t.Errorf("Wait noticed the loss after %v", took)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Wait did not notice the engine going away")
	}

	// Remove while the engine is away: its first retry waits until the engine is back.
	retrying := make(chan struct{})
	resumed := make(chan struct{})
	var once sync.Once
	rt.SetSleep(func(ctx context.Context, d time.Duration) error {
		once.Do(func() { close(retrying) })
		select {
		case <-resumed:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	removeErr := make(chan error, 1)
	go func() { removeErr <- rt.Remove(ctx, id) }()
	select {
	case <-retrying:
	case err := <-removeErr:
		t.Fatalf("Remove with the engine away returned %v without retrying", err)
	}
	p.resume(t)
	close(resumed)
	if err := <-removeErr; err != nil {
		t.Fatalf("Remove after the engine came back: %v", err)
	}
	list, err := direct.ContainerList(ctx, container.ListOptions{
		All: true, Filters: filters.NewArgs(filters.Arg("label", docker.LabelRuntimeID+"="+id)),
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 0 {
		t.Errorf("container of %s left after Remove: %v", id, list[0].Names)
	}
	assertGone(t, rt, id, ws)
}
