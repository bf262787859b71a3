package docker_test

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/computehorde/horde/internal/executor"
	"github.com/computehorde/horde/internal/executor/docker"
	"github.com/computehorde/horde/internal/jobimage/jobimagetest"
)

const (
	registryUser     = "horde"
	registryPassword = "pull-secret-123"
)

// testRegistry is an in-process OCI registry on loopback behind Basic auth.
type testRegistry struct {
	host string // 127.0.0.1:port
	// stall makes blob downloads hang until the client gives up or the test ends.
	stall atomic.Bool
}

func newTestRegistry(t *testing.T) *testRegistry {
	t.Helper()
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	tr := &testRegistry{}
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != registryUser || p != registryPassword {
			w.Header().Set("WWW-Authenticate", `Basic realm="horde-test"`)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`)
			return
		}
		if tr.stall.Load() && r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/") {
			select {
			case <-r.Context().Done():
			case <-release:
			}
			return
		}
		reg.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) }) // before srv.Close, which waits for the stalled handlers
	tr.host = strings.TrimPrefix(srv.URL, "http://")
	return tr
}

var (
	layerOnce sync.Once
	layerTar  []byte
	layerErr  error
)

// helloLayer is an uncompressed tar holding the hello binary at /bin/hello.
func helloLayer(t *testing.T) []byte {
	t.Helper()
	bin := jobimagetest.HelloBinary(t)
	layerOnce.Do(func() {
		var data []byte
		if data, layerErr = os.ReadFile(bin); layerErr != nil {
			return
		}
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		for _, h := range []*tar.Header{
			{Name: "bin/", Typeflag: tar.TypeDir, Mode: 0o755},
			{Name: "tmp/", Typeflag: tar.TypeDir, Mode: 0o1777},
			{Name: "bin/hello", Typeflag: tar.TypeReg, Mode: 0o755, Size: int64(len(data))},
		} {
			if layerErr = tw.WriteHeader(h); layerErr != nil {
				return
			}
		}
		if _, layerErr = tw.Write(data); layerErr != nil {
			return
		}
		layerErr = tw.Close()
		layerTar = buf.Bytes()
	})
	if layerErr != nil {
		t.Fatal(layerErr)
	}
	return layerTar
}

// push uploads a one-layer hello image as repo:tag (tag unique per call) and returns its
// reference and the size of its compressed layer. The pulled image is removed at the end of
// the test.
func (tr *testRegistry) push(t *testing.T, repo string) (ref string, layerSize int64) {
	t.Helper()
	tarBytes := helloLayer(t)
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(tarBytes)), nil })
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture = "linux", runtime.GOARCH
	cfg.Config = v1.Config{Entrypoint: []string{"/bin/hello"}, Env: []string{"PATH=/bin"}}
	if img, err = mutate.ConfigFile(img, cfg); err != nil {
		t.Fatal(err)
	}
	tag := fmt.Sprintf("t%d-%d", os.Getpid(), seq.Add(1))
	ref = tr.host + "/" + repo + ":" + tag
	if err := tr.write(repo, tag, img); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
	if layerSize, err = layer.Size(); err != nil {
		t.Fatal(err)
	}
	cli := jobimagetest.Engine(t)
	t.Cleanup(func() {
		if err := jobimagetest.RemoveImage(cli, ref); err != nil {
			t.Errorf("remove %s: %v", ref, err)
		}
	})
	return ref, layerSize
}

// write pushes img as repo:tag through the registry API: each blob in one monolithic upload,
// then the manifest. (go-containerregistry's remote package needs github.com/docker/cli, which
// this module does not carry.)
func (tr *testRegistry) write(repo, tag string, img v1.Image) error {
	cfgName, err := img.ConfigName()
	if err != nil {
		return err
	}
	cfg, err := img.RawConfigFile()
	if err != nil {
		return err
	}
	if err := tr.putBlob(repo, cfgName, bytes.NewReader(cfg)); err != nil {
		return err
	}
	layers, err := img.Layers()
	if err != nil {
		return err
	}
	for _, l := range layers {
		d, err := l.Digest()
		if err != nil {
			return err
		}
		rc, err := l.Compressed()
		if err != nil {
			return err
		}
		err = tr.putBlob(repo, d, rc)
		rc.Close()
		if err != nil {
			return err
		}
	}
	manifest, err := img.RawManifest()
	if err != nil {
		return err
	}
	mt, err := img.MediaType()
	if err != nil {
		return err
	}
	_, err = tr.do(http.MethodPut, "/v2/"+repo+"/manifests/"+tag, string(mt), bytes.NewReader(manifest), http.StatusCreated)
	return err
}

func (tr *testRegistry) putBlob(repo string, d v1.Hash, body io.Reader) error {
	resp, err := tr.do(http.MethodPost, "/v2/"+repo+"/blobs/uploads/", "", nil, http.StatusAccepted)
	if err != nil {
		return err
	}
	loc := resp.Header.Get("Location")
	sep := "?"
	if strings.Contains(loc, "?") {
		sep = "&"
	}
	_, err = tr.do(http.MethodPut, strings.TrimPrefix(loc, "http://"+tr.host)+sep+"digest="+d.String(), "application/octet-stream", body, http.StatusCreated)
	return err
}

func (tr *testRegistry) do(method, path, contentType string, body io.Reader, want int) (*http.Response, error) {
	req, err := http.NewRequest(method, "http://"+tr.host+path, body)
	if err != nil {
		return nil, err
	}
	req.SetBasicAuth(registryUser, registryPassword)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	if resp.StatusCode != want {
		return nil, fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, msg)
	}
	return resp, nil
}

func withCredentials(host string) func(*docker.Options) {
	return func(o *docker.Options) {
		o.Registries = map[string]docker.RegistryAuth{host: {Username: registryUser, Password: registryPassword}}
	}
}

func imagePresent(t *testing.T, ref string) bool {
	t.Helper()
	_, err := jobimagetest.Engine(t).ImageInspect(context.Background(), ref)
	if err != nil && !cerrdefs.IsNotFound(err) {
		t.Fatal(err)
	}
	return err == nil
}

func TestPullWithCredentials(t *testing.T) {
	tr := newTestRegistry(t)
	ref, _ := tr.push(t, "horde/hello")
	rt := newRuntime(t, withCredentials(tr.host))
	ctx := context.Background()
	if err := rt.EnsureImage(ctx, ref); err != nil {
		t.Fatal(err)
	}
	res, err := run(t, rt, executor.RunSpec{Image: ref, Cmd: []string{"pulled"}, Timeout: time.Minute}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.ExitCode != 0 || !strings.HasPrefix(res.Stdout, "hello from horde pulled\n") {
		t.Errorf("pulled image ran with %+v", res)
	}
	// Present now: no registry needed.
	tr.stall.Store(true)
	if err := rt.EnsureImage(ctx, ref); err != nil {
		t.Errorf("present image: %v", err)
	}
}

func TestPullAuthRefused(t *testing.T) {
	tr := newTestRegistry(t)
	ref, _ := tr.push(t, "horde/private")
	for _, tc := range []struct {
		name string
		opts func(*docker.Options)
		want string
	}{
		{"no credentials", func(*docker.Options) {}, "no credentials for " + tr.host},
		{"wrong password", func(o *docker.Options) {
			o.Registries = map[string]docker.RegistryAuth{"http://" + tr.host + "/": {Username: registryUser, Password: "wrong"}}
		}, "check the credentials for " + tr.host},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rt := newRuntime(t, tc.opts)
			err := rt.EnsureImage(context.Background(), ref)
			t.Log(err)
			if !errors.Is(err, docker.ErrImageAuth) || !errors.Is(err, executor.ErrBadImage) {
				t.Fatalf("EnsureImage = %v, want ErrImageAuth, the job's fault", err)
			}
			for _, want := range []string{ref, "registry " + tr.host, tc.want} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error lacks %q: %v", want, err)
				}
			}
			if strings.Contains(err.Error(), "wrong") || strings.Contains(err.Error(), registryPassword) {
				t.Errorf("error leaks the password: %v", err)
			}
			if imagePresent(t, ref) {
				t.Error("image present after a refused pull")
			}
		})
	}
}

func TestPullNotFound(t *testing.T) {
	tr := newTestRegistry(t)
	rt := newRuntime(t, withCredentials(tr.host))
	ref := tr.host + "/horde/absent:nope"
	err := rt.EnsureImage(context.Background(), ref)
	t.Log(err)
	if !errors.Is(err, docker.ErrImageNotFound) || !errors.Is(err, executor.ErrBadImage) || !strings.Contains(err.Error(), ref) {
		t.Fatalf("EnsureImage = %v, want ErrImageNotFound naming %s, the job's fault", err, ref)
	}
}

func TestPullTooLarge(t *testing.T) {
	tr := newTestRegistry(t)
	for _, tc := range []struct {
		name  string
		bound func(layerSize int64) int64
		want  string
	}{
		// The download alone passes the bound: the progress stream catches it.
		{"download", func(int64) int64 { return 1000 }, "while downloading"},
		// The compressed layer fits, the unpacked image does not: the backstop catches it.
		{"unpacked", func(n int64) int64 { return n + 4096 }, "unpacked"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ref, layerSize := tr.push(t, "horde/big")
			bound := tc.bound(layerSize)
			rt := newRuntime(t, withCredentials(tr.host), func(o *docker.Options) { o.MaxImageBytes = bound })
			err := rt.EnsureImage(context.Background(), ref)
			t.Log(err)
			if !errors.Is(err, docker.ErrImageTooLarge) || !errors.Is(err, executor.ErrBadImage) {
				t.Fatalf("EnsureImage = %v, want ErrImageTooLarge, the job's fault", err)
			}
			for _, want := range []string{ref, tr.host, fmt.Sprintf("> %d bytes", bound), tc.want} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error lacks %q: %v", want, err)
				}
			}
			if imagePresent(t, ref) {
				t.Errorf("image %s left behind", ref)
			}
		})
	}
}

func TestPullTimeout(t *testing.T) {
	tr := newTestRegistry(t)
	ref, _ := tr.push(t, "horde/slow")
	tr.stall.Store(true)
	rt := newRuntime(t, withCredentials(tr.host), func(o *docker.Options) { o.PullTimeout = time.Second })
	start := time.Now()
	err := rt.EnsureImage(context.Background(), ref)
	t.Log(err)
	if !errors.Is(err, docker.ErrPullTimeout) || errors.Is(err, executor.ErrBadImage) {
		t.Fatalf("EnsureImage = %v, want ErrPullTimeout, the host's fault", err)
	}
	for _, want := range []string{ref, tr.host, "after 1s"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("a 1 s pull bound took %v", took)
	}
}

func TestPreload(t *testing.T) {
	tr := newTestRegistry(t)
	a, _ := tr.push(t, "horde/a")
	b, _ := tr.push(t, "horde/b")
	rt := newRuntime(t, withCredentials(tr.host))
	ctx := context.Background()
	if err := rt.Preload(ctx, []string{a, jobimagetest.Hello(t), b}); err != nil {
		t.Fatal(err)
	}
	for _, ref := range []string{a, b} {
		if !imagePresent(t, ref) {
			t.Errorf("%s not preloaded", ref)
		}
	}
	missing1, missing2 := tr.host+"/horde/absent:one", tr.host+"/horde/absent:two"
	err := rt.Preload(ctx, []string{missing1, a, missing2})
	t.Log(err)
	if !errors.Is(err, docker.ErrImageNotFound) || !strings.Contains(err.Error(), missing1) || !strings.Contains(err.Error(), missing2) {
		t.Errorf("Preload with two missing images = %v", err)
	}
}

func TestBadReferenceAndOptions(t *testing.T) {
	rt := newRuntime(t)
	err := rt.EnsureImage(context.Background(), "Not A Valid/Ref")
	if !errors.Is(err, executor.ErrBadImage) || !strings.Contains(err.Error(), `"Not A Valid/Ref"`) {
		t.Errorf("EnsureImage of a malformed reference = %v, want the job's fault naming it", err)
	}
	for name, o := range map[string]docker.Options{
		"alias conflict": {Registries: map[string]docker.RegistryAuth{
			"docker.io": {Username: "a"}, "https://index.docker.io/v1/": {Username: "b"},
		}},
		"empty key":        {Registries: map[string]docker.RegistryAuth{"https://": {}}},
		"negative timeout": {PullTimeout: -time.Second},
		"negative log cap": {MaxLogBytes: -1},
		"grace over 1m":    {ExpiryGrace: 2 * time.Minute},
	} {
		if _, err := docker.NewWithClient(jobimagetest.Engine(t), o); err == nil {
			t.Errorf("%s: NewWithClient accepted %+v", name, o)
		}
	}
}

func TestRegistryHost(t *testing.T) {
	for in, want := range map[string]string{
		"docker.io":                   "docker.io",
		"index.docker.io":             "docker.io",
		"registry-1.docker.io":        "docker.io",
		"https://index.docker.io/v1/": "docker.io",
		"GHCR.io":                     "ghcr.io",
		"127.0.0.1:5000":              "127.0.0.1:5000",
		"http://127.0.0.1:5000/":      "127.0.0.1:5000",
	} {
		if got := docker.RegistryHost(in); got != want {
			t.Errorf("RegistryHost(%q) = %q, want %q", in, got, want)
		}
	}
	auth := docker.RegistryAuth{Username: "u", Password: "hunter2", IdentityToken: "tok"}
	for _, s := range []string{fmt.Sprint(auth), fmt.Sprintf("%+v", auth), fmt.Sprintf("%#v", auth)} {
		if strings.Contains(s, "hunter2") || strings.Contains(s, "tok\"") {
			t.Errorf("RegistryAuth prints its secrets: %s", s)
		}
	}
	got := docker.RedactURLs(`Get "https://bucket.example/x.tar?X-Amz-Signature=abc&X-Amz-Credential=k": EOF`)
	if strings.Contains(got, "Signature") || !strings.Contains(got, "https://bucket.example/x.tar") {
		t.Errorf("RedactURLs = %q", got)
	}
}

// TestReadPullProgress: the progress of a pull adds up the layers' downloaded bytes and sizes,
// as the engine streams them (the operator's "pulling image" lines), and the size bound holds.
func TestReadPullProgress(t *testing.T) {
	stream := `{"status":"Pulling fs layer","id":"a"}
{"status":"Downloading","id":"a","progressDetail":{"current":100,"total":1000}}
{"status":"Downloading","id":"b","progressDetail":{"current":50,"total":500}}
{"status":"Downloading","id":"a","progressDetail":{"current":1000,"total":1000}}
{"status":"Download complete","id":"a"}
`
	var done, total int64
	if err := docker.ReadPull(strings.NewReader(stream), 0, func(d, tt int64) { done, total = d, tt }); err != nil {
		t.Fatal(err)
	}
	if done != 1050 || total != 1500 {
		t.Errorf("progress %d of %d, want 1050 of 1500", done, total)
	}
	if err := docker.ReadPull(strings.NewReader(stream), 1200, nil); err == nil {
		t.Error("a pull past its bound of 1200 bytes was not stopped")
	}
}
