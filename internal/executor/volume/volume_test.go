package volume

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/computehorde/horde/internal/clock"
	"github.com/computehorde/horde/internal/egress"
	"github.com/computehorde/horde/internal/protocol"
)

// env is one fetch's directories: parent holds only vol (the volume) and tmp (the temp dir),
// so anything written elsewhere shows up in parent.
type env struct{ parent, vol, tmp string }

func newEnv(t *testing.T) env {
	t.Helper()
	p := t.TempDir()
	e := env{parent: p, vol: filepath.Join(p, "vol"), tmp: filepath.Join(p, "tmp")}
	if err := os.Mkdir(e.tmp, 0o700); err != nil {
		t.Fatal(err)
	}
	return e
}

// checkContained fails unless nothing was written outside vol and tmp is empty.
func (e env) checkContained(t *testing.T) {
	t.Helper()
	ents, err := os.ReadDir(e.parent)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range ents {
		if d.Name() != "vol" && d.Name() != "tmp" {
			t.Errorf("%s written outside the volume directory", d.Name())
		}
	}
	if left, _ := os.ReadDir(e.tmp); len(left) > 0 {
		t.Errorf("temp dir not cleaned: %v", left)
	}
}

// files lists the regular files under vol (slash paths) with their contents.
func (e env) files(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(e.vol, func(p string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) && p == e.vol {
			return fs.SkipAll
		}
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		rel, _ := filepath.Rel(e.vol, p)
		out[filepath.ToSlash(rel)] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

type recorder struct {
	mu     sync.Mutex
	sleeps []time.Duration
}

func (r *recorder) sleep(ctx context.Context, d time.Duration) error {
	r.mu.Lock()
	r.sleeps = append(r.sleeps, d)
	r.mu.Unlock()
	return ctx.Err()
}

func (r *recorder) got() []time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.sleeps)
}

// newFetcher returns a Fetcher that logs to the test and records its backoff sleeps. The test
// servers run on loopback, so loopback is allowed unless cfg says otherwise.
func newFetcher(t *testing.T, cfg Config) (*Fetcher, *recorder) {
	if cfg.Egress.Allow == nil {
		cfg.Egress.Allow = egress.Loopback
	}
	rec := &recorder{}
	if cfg.Sleep == nil {
		cfg.Sleep = rec.sleep
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(t.Output(), nil))
	}
	return New(cfg), rec
}

// server is a loopback HTTP server counting its requests.
type server struct {
	*httptest.Server
	hits atomic.Int32
}

func serve(t *testing.T, h http.HandlerFunc) *server {
	s := &server{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		h(w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

type zipEntry struct {
	name string
	body string
	mode fs.FileMode
}

func makeZip(t testing.TB, entries ...zipEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, e := range entries {
		h := &zip.FileHeader{Name: e.name, Method: zip.Deflate}
		if e.mode != 0 {
			h.SetMode(e.mode)
		}
		w, err := zw.CreateHeader(h)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write([]byte(e.body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func ptr[T any](v T) *T { return &v }

func inline(data []byte, rel *string) protocol.Volume {
	return protocol.Volume{Inline: &protocol.InlineVolume{Contents: base64.StdEncoding.EncodeToString(data), RelativePath: rel}}
}

func singleFile(url, rel string) protocol.Volume {
	return protocol.Volume{SingleFile: &protocol.SingleFileVolume{URL: url, RelativePath: rel}}
}

func zipURL(url string) protocol.Volume {
	return protocol.Volume{ZipURL: &protocol.ZipURLVolume{Contents: url}}
}

func multi(vs ...protocol.Volume) *protocol.Volume {
	return &protocol.Volume{Multi: &protocol.MultiVolume{Volumes: vs}}
}

// asError checks err is a *Error of type typ and returns it.
func asError(t *testing.T, err error, typ protocol.VolumeType) *Error {
	t.Helper()
	var ve *Error
	if !errors.As(err, &ve) {
		t.Fatalf("error %v (%T) is not a *Error", err, err)
	}
	if ve.Type != typ {
		t.Errorf("error type %q, want %q (%v)", ve.Type, typ, err)
	}
	return ve
}

func TestInline(t *testing.T) {
	e := newEnv(t)
	f, _ := newFetcher(t, Config{})
	data := makeZip(t,
		zipEntry{name: "dir/", mode: fs.ModeDir | 0o700},
		zipEntry{name: "dir/a.txt", body: "hello", mode: 0o600},
		zipEntry{name: "b/c/d.bin", body: strings.Repeat("x", 1000)},
	)
	v := inline(data, ptr("sub/dir/"))
	st, err := f.Fetch(t.Context(), &v, e.vol, e.tmp)
	if err != nil {
		t.Fatal(err)
	}
	if st != (Stats{Bytes: 1005, Files: 3}) {
		t.Errorf("stats %+v", st)
	}
	want := map[string]string{"sub/dir/dir/a.txt": "hello", "sub/dir/b/c/d.bin": strings.Repeat("x", 1000)}
	if got := e.files(t); !mapsEqual(got, want) {
		t.Errorf("files %v, want %v", got, want)
	}
	// Everything is usable by any uid in the container, whatever the umask and zip modes.
	filepath.WalkDir(e.vol, func(p string, d fs.DirEntry, err error) error {
		if info, err := os.Lstat(p); err != nil || info.Mode().Perm() != 0o777 {
			t.Errorf("%s: mode %v, %v", p, info.Mode(), err)
		}
		return nil
	})
	e.checkContained(t)
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func TestInlineBase64Forms(t *testing.T) {
	data := makeZip(t, zipEntry{name: "a.txt", body: "hi"})
	std := base64.StdEncoding.EncodeToString(data)
	forms := map[string]string{
		"padded":     std,
		"unpadded":   strings.TrimRight(std, "="),
		"whitespace": std[:10] + "\n  " + std[10:20] + "\r\n\t" + std[20:] + "\n",
	}
	for name, s := range forms {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)
			f, _ := newFetcher(t, Config{})
			v := protocol.Volume{Inline: &protocol.InlineVolume{Contents: s}}
			if _, err := f.Fetch(t.Context(), &v, e.vol, e.tmp); err != nil {
				t.Fatal(err)
			}
			if got := e.files(t); got["a.txt"] != "hi" {
				t.Errorf("files %v", got)
			}
		})
	}
}

func TestInlineBadBase64(t *testing.T) {
	e := newEnv(t)
	f, _ := newFetcher(t, Config{})
	v := protocol.Volume{Inline: &protocol.InlineVolume{Contents: "not*base64!"}}
	_, err := f.Fetch(t.Context(), &v, e.vol, e.tmp)
	ve := asError(t, err, protocol.VolumeTypeInline)
	if ve.Index != 1 || ve.Count != 1 || !strings.HasPrefix(err.Error(), "volume (inline): contents are not valid base64") {
		t.Errorf("error %q (index %d/%d)", err, ve.Index, ve.Count)
	}
	e.checkContained(t)
}

func TestInlineNotZip(t *testing.T) {
	e := newEnv(t)
	f, _ := newFetcher(t, Config{})
	v := inline([]byte("plain text, not a zip"), nil)
	_, err := f.Fetch(t.Context(), &v, e.vol, e.tmp)
	asError(t, err, protocol.VolumeTypeInline)
	if !strings.Contains(err.Error(), "not a valid zip archive") {
		t.Errorf("error %q", err)
	}
}

func TestMalformedVolume(t *testing.T) {
	e := newEnv(t)
	f, _ := newFetcher(t, Config{})
	for _, v := range []*protocol.Volume{
		{},
		{Inline: &protocol.InlineVolume{}, ZipURL: &protocol.ZipURLVolume{}},
		multi(*multi()),
	} {
		_, err := f.Fetch(t.Context(), v, e.vol, e.tmp)
		var ve *Error
		if !errors.As(err, &ve) {
			t.Errorf("%+v: error %v, want *Error", v, err)
		}
	}
	if _, err := f.Fetch(t.Context(), nil, e.vol, e.tmp); err == nil {
		t.Error("nil volume accepted")
	}
}

func TestMultiVolume(t *testing.T) {
	srv := serve(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/a.txt":
			w.Write([]byte("from single_file"))
		case "/c.zip":
			w.Write(makeZip(t, zipEntry{name: "c/c.txt", body: "from zip_url"}))
		default:
			http.NotFound(w, r)
		}
	})
	var logs bytes.Buffer
	e := newEnv(t)
	f, _ := newFetcher(t, Config{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	v := multi(
		inline(makeZip(t, zipEntry{name: "a.txt", body: "from inline"}, zipEntry{name: "b.txt", body: "b"}), nil),
		singleFile(srv.URL+"/a.txt?sig=secret", "a.txt"), // later volumes win
		zipURL(srv.URL+"/c.zip"),
	)
	st, err := f.Fetch(t.Context(), v, e.vol, e.tmp)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"a.txt": "from single_file", "b.txt": "b", "c/c.txt": "from zip_url"}
	if got := e.files(t); !mapsEqual(got, want) {
		t.Errorf("files %v, want %v", got, want)
	}
	if st.Files != 4 || st.Bytes != int64(len("from inline")+1+len("from single_file")+len("from zip_url")) {
		t.Errorf("stats %+v", st)
	}
	if n := strings.Count(logs.String(), "volume fetched"); n != 3 {
		t.Errorf("%d log lines, want one per volume:\n%s", n, logs.String())
	}
	if strings.Contains(logs.String(), "secret") {
		t.Errorf("log leaks the query string:\n%s", logs.String())
	}
	e.checkContained(t)
}

func TestMultiVolumeErrorNamesSubVolume(t *testing.T) {
	srv := serve(t, http.NotFound)
	e := newEnv(t)
	f, _ := newFetcher(t, Config{})
	v := multi(
		inline(makeZip(t, zipEntry{name: "a.txt", body: "a"}), nil),
		zipURL(srv.URL+"/data.zip?X-Amz-Signature=secret#frag"),
		singleFile(srv.URL+"/never", "never"),
	)
	_, err := f.Fetch(t.Context(), v, e.vol, e.tmp)
	ve := asError(t, err, protocol.VolumeTypeZipURL)
	want := "volume 2/3 (zip_url " + srv.URL + "/data.zip): HTTP 404 Not Found"
	if ve.Index != 2 || ve.Count != 3 || err.Error() != want {
		t.Errorf("error %q (index %d/%d), want %q", err, ve.Index, ve.Count, want)
	}
	if he, ok := errors.AsType[*HTTPError](err); !ok || he.StatusCode != 404 {
		t.Errorf("error %v does not wrap HTTP 404", err)
	}
	if srv.hits.Load() != 1 {
		t.Errorf("%d requests: a 404 must not be retried, nor later volumes fetched", srv.hits.Load())
	}
	e.checkContained(t)
}

func TestMultiVolumeCapsAreShared(t *testing.T) {
	one := makeZip(t, zipEntry{name: "a", body: strings.Repeat("a", 600)}, zipEntry{name: "b", body: "b"})
	two := makeZip(t, zipEntry{name: "c", body: strings.Repeat("c", 600)})
	for name, cfg := range map[string]Config{
		"bytes": {MaxBytes: 1000},
		"files": {MaxFiles: 2},
	} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)
			f, _ := newFetcher(t, cfg)
			_, err := f.Fetch(t.Context(), multi(inline(one, nil), inline(two, ptr("x"))), e.vol, e.tmp)
			ve := asError(t, err, protocol.VolumeTypeInline)
			if ve.Index != 2 || !errors.Is(err, ErrTooLarge) {
				t.Errorf("error %v (index %d), want ErrTooLarge on the second volume", err, ve.Index)
			}
			if _, err := os.Stat(filepath.Join(e.vol, "x")); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("second volume was partly written: %v", err)
			}
		})
	}
}

func TestContextCancelDuringDownload(t *testing.T) {
	started := make(chan struct{})
	srv := serve(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "1000000")
		w.Write(make([]byte, 1000))
		w.(http.Flusher).Flush()
		close(started)
		<-r.Context().Done()
	})
	e := newEnv(t)
	f, _ := newFetcher(t, Config{})
	ctx, cancel := context.WithCancel(t.Context())
	go func() {
		<-started
		cancel()
	}()
	begin := time.Now()
	v := zipURL(srv.URL + "/big.zip")
	_, err := f.Fetch(ctx, &v, e.vol, e.tmp)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v, want context.Canceled", err)
	}
	if d := time.Since(begin); d > 5*time.Second {
		t.Errorf("took %v to notice the cancellation", d)
	}
	asError(t, err, protocol.VolumeTypeZipURL)
	e.checkContained(t)
}

func TestContextCancelDuringBackoff(t *testing.T) {
	srv := serve(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	})
	ctx, cancel := context.WithCancel(t.Context())
	sleeping := make(chan struct{})
	go func() {
		<-sleeping
		cancel()
	}()
	e := newEnv(t)
	f, _ := newFetcher(t, Config{Sleep: func(ctx context.Context, d time.Duration) error {
		close(sleeping)
		return clock.Sleep(ctx, d) // the real timer: 1 s unless cancelled
	}})
	begin := time.Now()
	v := singleFile(srv.URL+"/f", "f")
	_, err := f.Fetch(ctx, &v, e.vol, e.tmp)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v, want context.Canceled", err)
	}
	if d := time.Since(begin); d > 900*time.Millisecond {
		t.Errorf("took %v: the backoff did not stop at cancellation", d)
	}
	if got := e.files(t); len(got) != 0 {
		t.Errorf("files left: %v", got)
	}
}
