package faults

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"

	"github.com/computehorde/horde/internal/jobimage/jobimagetest"
)

// TestEngineProxyStates drives a Docker client through the proxy the harness puts under
// EngineTarget: forwarded, cut (the request fails without an answer), failing (the engine's
// own error answer, with the injected cause) and fixed again.
func TestEngineProxyStates(t *testing.T) {
	jobimagetest.Engine(t).Close()
	socket := "/var/run/docker.sock"
	if dh := os.Getenv("DOCKER_HOST"); dh != "" {
		if !strings.HasPrefix(dh, "unix://") {
			t.Skipf("DOCKER_HOST=%s is not a unix socket", dh)
		}
		socket = strings.TrimPrefix(dh, "unix://")
	}
	p, err := startEngineProxy(filepath.Join(t.TempDir(), "engine.sock"), socket)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.close)
	cli, err := client.NewClientWithOpts(client.WithHost("unix://"+p.ln.Addr().String()), client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	list := func() error {
		_, err := cli.ContainerList(t.Context(), container.ListOptions{Limit: 1})
		return err
	}
	if err := list(); err != nil {
		t.Fatalf("through the proxy: %v", err)
	}

	p.failRequests()
	for range 2 { // the second request reuses the failing engine's kept-alive connection
		err := list()
		if err == nil || !strings.Contains(err.Error(), "no space left on device") {
			t.Fatalf("failing engine answered %v", err)
		}
	}
	p.resume()
	if err := list(); err != nil {
		t.Fatalf("after the engine was fixed: %v", err)
	}

	p.cut()
	if err := list(); err == nil {
		t.Fatal("a cut engine answered")
	}
	p.resume()
	if err := list(); err != nil {
		t.Fatalf("after the engine came back: %v", err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.answered != 2 || p.refused == 0 || p.served < 3 {
		t.Errorf("served %d, refused %d, answered %d", p.served, p.refused, p.answered)
	}
}
