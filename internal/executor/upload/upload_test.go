package upload

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/computehorde/horde/internal/egress"
	"github.com/computehorde/horde/internal/protocol"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// sleeps records the backoff waits instead of sleeping.
type sleeps struct {
	mu sync.Mutex
	d  []time.Duration
}

func (s *sleeps) sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	s.d = append(s.d, d)
	s.mu.Unlock()
	return ctx.Err()
}

func (s *sleeps) got() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.d)
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), nil))
}

// newUploader returns an Uploader that logs to the test and records its backoff sleeps. The
// test servers run on loopback, so loopback is allowed unless cfg says otherwise.
func newUploader(t testing.TB, cfg Config) (*Uploader, *sleeps) {
	if cfg.Egress.Allow == nil {
		cfg.Egress.Allow = egress.Loopback
	}
	s := &sleeps{}
	cfg.Sleep = s.sleep
	cfg.Logger = testLogger(t)
	return New(cfg), s
}

func writeFile(t testing.TB, dir, rel string, data []byte) {
	t.Helper()
	p := filepath.Join(dir, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// part is one multipart part as received.
type part struct {
	name, filename string
	data           []byte
}

// request is one request as received.
type request struct {
	method        string
	path, query   string
	header        http.Header
	contentLength int64
	chunked       bool
	body          []byte
	parts         []part // for multipart requests
}

// recorder is an upload target that records requests and answers with respond (200 "ok"
// when nil); n counts from 1.
type recorder struct {
	srv     *httptest.Server
	mu      sync.Mutex
	reqs    []request
	respond func(w http.ResponseWriter, r *http.Request, n int)
}

func newRecorder(t testing.TB, respond func(w http.ResponseWriter, r *http.Request, n int)) *recorder {
	rec := &recorder{respond: respond}
	rec.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := request{method: r.Method, path: r.URL.Path, query: r.URL.RawQuery, header: r.Header.Clone(),
			contentLength: r.ContentLength, chunked: slices.Contains(r.TransferEncoding, "chunked")}
		if strings.HasPrefix(r.Header.Get("Content-Type"), "multipart/form-data") {
			mr, err := r.MultipartReader()
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			for {
				p, err := mr.NextPart()
				if err == io.EOF {
					break
				}
				if err != nil {
					http.Error(w, err.Error(), http.StatusBadRequest)
					return
				}
				data, _ := io.ReadAll(p)
				got.parts = append(got.parts, part{p.FormName(), p.FileName(), data})
			}
		} else {
			got.body, _ = io.ReadAll(r.Body)
		}
		rec.mu.Lock()
		rec.reqs = append(rec.reqs, got)
		n := len(rec.reqs)
		rec.mu.Unlock()
		if rec.respond != nil {
			rec.respond(w, r, n)
			return
		}
		io.WriteString(w, "ok")
	}))
	t.Cleanup(rec.srv.Close)
	return rec
}

func (rec *recorder) requests() []request {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return slices.Clone(rec.reqs)
}

func (rec *recorder) url(p string) string { return rec.srv.URL + p }

func fields(kv ...string) *protocol.OrderedMap[string] {
	m := &protocol.OrderedMap[string]{}
	for i := 0; i < len(kv); i += 2 {
		m.Set(kv[i], kv[i+1])
	}
	return m
}

func unzipEntries(t testing.TB, data []byte) map[string]string {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatalf("not a zip: %v", err)
	}
	out := map[string]string{}
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		out[f.Name] = string(b)
	}
	return out
}

func sameMap(t testing.TB, got, want map[string]string) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("got %d entries %v, want %d", len(got), keys(got), len(want))
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("entry %q: got %q (present %v), want %q", k, g, ok, v)
		}
	}
}

func keys(m map[string]string) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// sampleOutputs writes a small output tree and returns it as zip entries.
func sampleOutputs(t testing.TB, dir string) map[string]string {
	files := map[string]string{
		"stdout.txt":          "hello\n",
		"stderr.txt":          "",
		"sub/b.bin":           "\x00\x01\x02binary",
		"sub/deeper/c.txt":    strings.Repeat("compress me ", 1000),
		"name with space.txt": "spaces",
	}
	for k, v := range files {
		writeFile(t, dir, k, []byte(v))
	}
	return files
}

func resultFor(t testing.TB, res *protocol.OrderedMap[string], key string) string {
	t.Helper()
	if res == nil {
		t.Fatalf("no results, want key %q", key)
	}
	v, ok := res.Get(key)
	if !ok {
		t.Fatalf("results %v lack key %q", res.Keys(), key)
	}
	return v
}

func checkEmpty(t testing.TB, dir string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 0 {
		t.Errorf("temp dir not cleaned: %v", ents)
	}
}

func TestZipAndHTTPPost(t *testing.T) {
	out, tmp := t.TempDir(), t.TempDir()
	want := sampleOutputs(t, out)
	rec := newRecorder(t, nil)
	u, s := newUploader(t, Config{})
	up := &protocol.OutputUpload{ZipAndHTTPPost: &protocol.ZipAndHTTPPostUpload{
		URL:        rec.url("/bucket/"),
		FormFields: fields("key", "jobs/1/output.zip", "policy", "cG9saWN5", "x-amz-signature", "abc", "a-last", "1"),
	}}
	res, err := u.Upload(context.Background(), up, out, tmp)
	if err != nil {
		t.Fatal(err)
	}
	reqs := rec.requests()
	if len(reqs) != 1 || reqs[0].method != http.MethodPost {
		t.Fatalf("requests: %+v", reqs)
	}
	var names []string
	for _, p := range reqs[0].parts {
		names = append(names, p.name)
	}
	if got, want := strings.Join(names, ","), "key,policy,x-amz-signature,a-last,file"; got != want {
		t.Errorf("part order %s, want %s", got, want)
	}
	if reqs[0].chunked || reqs[0].contentLength <= 0 {
		t.Errorf("want a Content-Length, got %d chunked=%v", reqs[0].contentLength, reqs[0].chunked)
	}
	if v := string(reqs[0].parts[0].data); v != "jobs/1/output.zip" {
		t.Errorf("key field = %q", v)
	}
	file := reqs[0].parts[4]
	if file.filename != "output.zip" {
		t.Errorf("file part filename %q, want output.zip", file.filename)
	}
	sameMap(t, unzipEntries(t, file.data), want)
	if r := resultFor(t, res, "output.zip"); !strings.HasSuffix(r, `"body": "ok"}`) {
		t.Errorf("result %s", r)
	}
	if len(s.got()) != 0 {
		t.Errorf("slept %v", s.got())
	}
	checkEmpty(t, tmp)
}

func TestZipAndHTTPPut(t *testing.T) {
	out, tmp := t.TempDir(), t.TempDir()
	want := sampleOutputs(t, out)
	rec := newRecorder(t, nil)
	u, _ := newUploader(t, Config{})
	up := &protocol.OutputUpload{ZipAndHTTPPut: &protocol.ZipAndHTTPPutUpload{URL: rec.url("/put/out.zip?X-Amz-Signature=s3cr3t")}}
	res, err := u.Upload(context.Background(), up, out, tmp)
	if err != nil {
		t.Fatal(err)
	}
	reqs := rec.requests()
	if len(reqs) != 1 || reqs[0].method != http.MethodPut || reqs[0].query != "X-Amz-Signature=s3cr3t" {
		t.Fatalf("requests: %+v", reqs)
	}
	if reqs[0].chunked || reqs[0].contentLength != int64(len(reqs[0].body)) {
		t.Errorf("Content-Length %d for %d bytes (chunked %v)", reqs[0].contentLength, len(reqs[0].body), reqs[0].chunked)
	}
	sameMap(t, unzipEntries(t, reqs[0].body), want)
	if res.Len() != 1 {
		t.Errorf("results %v", res.Keys())
	}
	resultFor(t, res, "output.zip")
	checkEmpty(t, tmp)
}

func TestSingleFilePost(t *testing.T) {
	out := t.TempDir()
	writeFile(t, out, "results/model.json", []byte(`{"loss": 0.1}`))
	rec := newRecorder(t, nil)
	u, _ := newUploader(t, Config{})
	up := &protocol.OutputUpload{SingleFilePost: &protocol.SingleFilePostUpload{
		URL:           rec.url("/post"),
		FormFields:    fields("z", "first", "a", "second"),
		RelativePath:  "results/model.json",
		SignedHeaders: fields("X-Amz-Meta-Job", "j1", "x-custom", "v"),
	}}
	res, err := u.Upload(context.Background(), up, out, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	reqs := rec.requests()
	if len(reqs) != 1 {
		t.Fatalf("requests: %+v", reqs)
	}
	r := reqs[0]
	if len(r.parts) != 3 || r.parts[0].name != "z" || r.parts[1].name != "a" || r.parts[2].name != "file" {
		t.Fatalf("parts %+v", r.parts)
	}
	if r.parts[2].filename != "model.json" || string(r.parts[2].data) != `{"loss": 0.1}` {
		t.Errorf("file part %q %q", r.parts[2].filename, r.parts[2].data)
	}
	if r.header.Get("X-Amz-Meta-Job") != "j1" || r.header.Get("X-Custom") != "v" {
		t.Errorf("signed headers missing: %v", r.header)
	}
	if res.Len() != 1 {
		t.Errorf("results %v", res.Keys())
	}
	resultFor(t, res, "results/model.json")
}

func TestSingleFilePut(t *testing.T) {
	out := t.TempDir()
	writeFile(t, out, "a/b/data.bin", bytes.Repeat([]byte{7}, 70_000))
	writeFile(t, out, "empty", nil)
	rec := newRecorder(t, nil)
	u, _ := newUploader(t, Config{})
	for _, rel := range []string{"a/b/data.bin", "./empty"} {
		up := &protocol.OutputUpload{SingleFilePut: &protocol.SingleFilePutUpload{
			URL: rec.url("/put/" + rel), RelativePath: rel,
			SignedHeaders: fields("Content-Type", "application/x-test", "x-amz-acl", "private"),
		}}
		res, err := u.Upload(context.Background(), up, out, t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		resultFor(t, res, rel) // the key is relative_path as given
	}
	reqs := rec.requests()
	if len(reqs) != 2 {
		t.Fatalf("requests: %+v", reqs)
	}
	for i, wantLen := range []int{70_000, 0} {
		r := reqs[i]
		if r.method != http.MethodPut || len(r.body) != wantLen || r.contentLength != int64(wantLen) || r.chunked {
			t.Errorf("request %d: %s %d bytes, Content-Length %d, chunked %v", i, r.method, len(r.body), r.contentLength, r.chunked)
		}
		if r.header.Get("Content-Type") != "application/x-test" || r.header.Get("X-Amz-Acl") != "private" {
			t.Errorf("request %d: signed headers missing: %v", i, r.header)
		}
	}
}

func TestZipLimits(t *testing.T) {
	cases := []struct {
		name string
		cfg  Config
	}{
		{"files", Config{MaxZipFiles: 4}},
		{"bytes", Config{MaxZipBytes: 1000}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, tmp := t.TempDir(), t.TempDir()
			sampleOutputs(t, out) // 5 files, 12 kB
			rec := newRecorder(t, nil)
			u, _ := newUploader(t, c.cfg)
			_, err := u.Upload(context.Background(), &protocol.OutputUpload{ZipAndHTTPPost: &protocol.ZipAndHTTPPostUpload{
				URL: rec.url("/z")}}, out, tmp)
			if !errors.Is(err, ErrTooLarge) {
				t.Errorf("got %v, want ErrTooLarge", err)
			}
			if n := len(rec.requests()); n != 0 {
				t.Errorf("%d requests, want none", n)
			}
			checkEmpty(t, tmp)
		})
	}
	// Exactly at the caps is fine.
	out := t.TempDir()
	sampleOutputs(t, out)
	rec := newRecorder(t, nil)
	u, _ := newUploader(t, Config{MaxZipFiles: 5})
	if _, err := u.Upload(context.Background(), &protocol.OutputUpload{ZipAndHTTPPut: &protocol.ZipAndHTTPPutUpload{
		URL: rec.url("/z")}}, out, t.TempDir()); err != nil {
		t.Errorf("5 files at a cap of 5: %v", err)
	}
}

func TestSingleFileBadPaths(t *testing.T) {
	out := t.TempDir()
	outside := t.TempDir()
	writeFile(t, outside, "shadow", []byte("SECRET"))
	writeFile(t, out, "ok.txt", []byte("ok"))
	writeFile(t, out, "dir/inner.txt", []byte("inner"))
	mustSymlink(t, filepath.Join(outside, "shadow"), filepath.Join(out, "link"))
	mustSymlink(t, "ok.txt", filepath.Join(out, "inner-link"))
	mustSymlink(t, outside, filepath.Join(out, "dirlink"))
	mustSymlink(t, "dir", filepath.Join(out, "inner-dirlink"))
	if err := syscall.Mkfifo(filepath.Join(out, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	rec := newRecorder(t, nil)
	u, _ := newUploader(t, Config{})
	cases := map[string]error{
		"missing":                 ErrMissingFile,
		"dir/missing":             ErrMissingFile,
		"ok.txt/x":                ErrMissingFile,
		"link":                    ErrUnsafe,
		"inner-link":              ErrUnsafe,
		"dirlink/shadow":          ErrUnsafe,
		"inner-dirlink/inner.txt": ErrUnsafe,
		"fifo":                    ErrUnsafe,
		"dir":                     ErrUnsafe,
		"../" + filepath.Base(outside) + "/shadow": ErrUnsafe,
		"dir/../ok.txt":                  ErrUnsafe,
		filepath.Join(outside, "shadow"): ErrUnsafe,
		"":                               ErrUnsafe,
		".":                              ErrUnsafe,
	}
	for rel, want := range cases {
		for _, up := range []*protocol.OutputUpload{
			{SingleFilePut: &protocol.SingleFilePutUpload{URL: rec.url("/f?sig=secret"), RelativePath: rel}},
			{SingleFilePost: &protocol.SingleFilePostUpload{URL: rec.url("/f?sig=secret"), RelativePath: rel}},
		} {
			_, err := u.Upload(context.Background(), up, out, t.TempDir())
			var ue *Error
			if !errors.Is(err, want) || !errors.As(err, &ue) || ue.Key != rel || strings.Contains(err.Error(), "secret") {
				t.Errorf("%q (%s): got %v, want %v", rel, up.Type(), err, want)
			}
		}
	}
	if n := len(rec.requests()); n != 0 {
		t.Errorf("%d requests, want none", n)
	}
}

func TestBadTargets(t *testing.T) {
	out := t.TempDir()
	writeFile(t, out, "f", []byte("x"))
	u, _ := newUploader(t, Config{})
	cases := map[string]*protocol.OutputUpload{
		"scheme":       {SingleFilePut: &protocol.SingleFilePutUpload{URL: "file:///etc/passwd", RelativePath: "f"}},
		"no host":      {ZipAndHTTPPut: &protocol.ZipAndHTTPPutUpload{URL: "http:///x"}},
		"unparsable":   {ZipAndHTTPPut: &protocol.ZipAndHTTPPutUpload{URL: "http://h/x?sig=secret\x7f"}},
		"header name":  {SingleFilePut: &protocol.SingleFilePutUpload{URL: "http://h/", RelativePath: "f", SignedHeaders: fields("Bad Name", "v")}},
		"header value": {SingleFilePut: &protocol.SingleFilePutUpload{URL: "http://h/", RelativePath: "f", SignedHeaders: fields("X-Sig", "secret\r\nInjected: 1")}},
		"field name":   {ZipAndHTTPPost: &protocol.ZipAndHTTPPostUpload{URL: "http://h/", FormFields: fields("a\r\nb", "v")}},
		"none":         {},
		"two":          {ZipAndHTTPPut: &protocol.ZipAndHTTPPutUpload{URL: "http://h/"}, SingleFilePut: &protocol.SingleFilePutUpload{URL: "http://h/", RelativePath: "f"}},
		"nested multi": {Multi: &protocol.MultiUpload{Uploads: []protocol.OutputUpload{{Multi: &protocol.MultiUpload{}}}}},
		"bad system":   {Multi: &protocol.MultiUpload{SystemOutput: &protocol.OutputUpload{SingleFilePut: &protocol.SingleFilePutUpload{URL: "http://h/", RelativePath: "f"}}}},
	}
	for name, up := range cases {
		_, err := u.Upload(context.Background(), up, out, t.TempDir())
		if err == nil || strings.Contains(err.Error(), "secret") {
			t.Errorf("%s: got %v", name, err)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
	if res, err := u.Upload(context.Background(), nil, out, t.TempDir()); res != nil || err != nil {
		t.Errorf("nil upload: %v %v", res, err)
	}
}

func mustSymlink(t testing.TB, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

func TestZipSkipsSymlinksAndSpecialFiles(t *testing.T) {
	out := t.TempDir()
	outside := t.TempDir()
	writeFile(t, outside, "shadow", []byte("SECRET"))
	writeFile(t, out, "ok.txt", []byte("ok"))
	writeFile(t, out, "sub/kept.txt", []byte("kept"))
	mustSymlink(t, filepath.Join(outside, "shadow"), filepath.Join(out, "link"))
	mustSymlink(t, outside, filepath.Join(out, "sub", "dirlink"))
	mustSymlink(t, "ok.txt", filepath.Join(out, "inner-link"))
	if err := syscall.Mkfifo(filepath.Join(out, "sub", "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	rec := newRecorder(t, nil)
	u, _ := newUploader(t, Config{})
	// Opening the FIFO would block forever: the deadline turns that hang into a failure.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := u.Upload(ctx, &protocol.OutputUpload{ZipAndHTTPPut: &protocol.ZipAndHTTPPutUpload{URL: rec.url("/z")}}, out, t.TempDir()); err != nil {
		t.Fatal(err)
	}
	sameMap(t, unzipEntries(t, rec.requests()[0].body), map[string]string{"ok.txt": "ok", "sub/kept.txt": "kept"})
}

func TestFIFOSwappedInIsNotBlocking(t *testing.T) {
	out := t.TempDir()
	writeFile(t, out, "checked", []byte("x"))
	if err := syscall.Mkfifo(filepath.Join(out, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	root, err := os.OpenRoot(out)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	checked, err := root.Lstat("checked")
	if err != nil {
		t.Fatal(err)
	}
	// As if "checked" were replaced by a FIFO between the check and the open: a blocking
	// open would hang here forever, with no writer.
	if _, _, err := openRegular(root, "fifo", checked); !errors.Is(err, ErrUnsafe) {
		t.Errorf("got %v, want ErrUnsafe", err)
	}
}

func TestMultiUpload(t *testing.T) {
	out, tmp := t.TempDir(), t.TempDir()
	writeFile(t, out, "stdout.txt", []byte("out"))
	writeFile(t, out, "stderr.txt", []byte("err"))
	writeFile(t, out, "model.bin", []byte("weights"))
	writeFile(t, out, "res/score.json", []byte(`{"s":1}`))
	writeFile(t, out, "res/notes.txt", []byte("notes"))
	rec := newRecorder(t, nil)
	u, _ := newUploader(t, Config{})
	up := &protocol.OutputUpload{Multi: &protocol.MultiUpload{
		Uploads: []protocol.OutputUpload{
			{SingleFilePut: &protocol.SingleFilePutUpload{URL: rec.url("/single/model"), RelativePath: "model.bin"}},
			{SingleFilePost: &protocol.SingleFilePostUpload{URL: rec.url("/single/score"), RelativePath: "./res/score.json", FormFields: fields("key", "score")}},
		},
		SystemOutput: &protocol.OutputUpload{ZipAndHTTPPost: &protocol.ZipAndHTTPPostUpload{URL: rec.url("/system"), FormFields: fields("key", "sys.zip")}},
	}}
	res, err := u.Upload(context.Background(), up, out, tmp)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(res.Keys(), ","); got != "model.bin,./res/score.json,system_output" {
		t.Errorf("result keys %s", got)
	}
	byPath := map[string]request{}
	for _, r := range rec.requests() {
		byPath[r.path] = r
	}
	if string(byPath["/single/model"].body) != "weights" {
		t.Errorf("model upload %+v", byPath["/single/model"])
	}
	if p := byPath["/single/score"].parts; len(p) != 2 || p[1].filename != "score.json" || string(p[1].data) != `{"s":1}` {
		t.Errorf("score upload %+v", p)
	}
	sys := byPath["/system"].parts
	if len(sys) != 2 || sys[1].filename != "output.zip" {
		t.Fatalf("system upload %+v", sys)
	}
	sameMap(t, unzipEntries(t, sys[1].data), map[string]string{"stdout.txt": "out", "stderr.txt": "err", "res/notes.txt": "notes"})
	checkEmpty(t, tmp)
}

func TestMultiUploadConcurrency(t *testing.T) {
	var (
		mu       sync.Mutex
		inflight int
		peak     int
		reached  = make(chan struct{})
	)
	rec := newRecorder(t, func(w http.ResponseWriter, r *http.Request, n int) {
		mu.Lock()
		inflight++
		if inflight > peak {
			peak = inflight
			if peak == 2 {
				close(reached)
			}
		}
		mu.Unlock()
		// Hold the first request until a second one runs beside it (bounded, in case
		// uploads were serial).
		select {
		case <-reached:
		case <-time.After(5 * time.Second):
		}
		mu.Lock()
		inflight--
		mu.Unlock()
		io.WriteString(w, "ok")
	})
	out := t.TempDir()
	var uploads []protocol.OutputUpload
	for i := range 6 {
		name := fmt.Sprintf("f%d", i)
		writeFile(t, out, name, []byte(name))
		uploads = append(uploads, protocol.OutputUpload{SingleFilePut: &protocol.SingleFilePutUpload{URL: rec.url("/" + name), RelativePath: name}})
	}
	u, _ := newUploader(t, Config{Concurrency: 2})
	res, err := u.Upload(context.Background(), &protocol.OutputUpload{Multi: &protocol.MultiUpload{Uploads: uploads}}, out, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if res.Len() != 6 || len(rec.requests()) != 6 {
		t.Errorf("%d results, %d requests", res.Len(), len(rec.requests()))
	}
	mu.Lock()
	defer mu.Unlock()
	if peak != 2 {
		t.Errorf("peak concurrency %d, want 2", peak)
	}
}

func TestMultiUploadFailure(t *testing.T) {
	rec := newRecorder(t, func(w http.ResponseWriter, r *http.Request, n int) {
		if r.URL.Path == "/bad" {
			http.Error(w, "denied", http.StatusForbidden)
			return
		}
		io.WriteString(w, "ok")
	})
	out := t.TempDir()
	writeFile(t, out, "a", []byte("a"))
	writeFile(t, out, "b", []byte("b"))
	u, _ := newUploader(t, Config{})
	_, err := u.Upload(context.Background(), &protocol.OutputUpload{Multi: &protocol.MultiUpload{
		Uploads: []protocol.OutputUpload{
			{SingleFilePut: &protocol.SingleFilePutUpload{URL: rec.url("/good"), RelativePath: "a"}},
			{SingleFilePut: &protocol.SingleFilePutUpload{URL: rec.url("/bad"), RelativePath: "b"}},
		},
		SystemOutput: &protocol.OutputUpload{ZipAndHTTPPut: &protocol.ZipAndHTTPPutUpload{URL: rec.url("/system")}},
	}}, out, t.TempDir())
	var ue *Error
	if !errors.As(err, &ue) || ue.Key != "b" || !strings.Contains(err.Error(), "HTTP 403") {
		t.Fatalf("got %v", err)
	}
	for _, r := range rec.requests() {
		if r.path == "/system" {
			t.Error("system_output sent after a failed single upload")
		}
	}

	// A missing single file fails before anything is sent.
	rec2 := newRecorder(t, nil)
	_, err = u.Upload(context.Background(), &protocol.OutputUpload{Multi: &protocol.MultiUpload{
		Uploads: []protocol.OutputUpload{
			{SingleFilePut: &protocol.SingleFilePutUpload{URL: rec2.url("/a"), RelativePath: "a"}},
			{SingleFilePut: &protocol.SingleFilePutUpload{URL: rec2.url("/gone"), RelativePath: "gone"}},
		},
	}}, out, t.TempDir())
	if !errors.Is(err, ErrMissingFile) || len(rec2.requests()) != 0 {
		t.Errorf("got %v after %d requests", err, len(rec2.requests()))
	}
}

func TestCollectArtifacts(t *testing.T) {
	dir := t.TempDir()
	small := bytes.Repeat([]byte{0xab}, 999_000)
	writeFile(t, dir, "small.bin", small)
	writeFile(t, dir, "limit.bin", make([]byte, 1_000_000))
	writeFile(t, dir, "empty", nil)
	writeFile(t, dir, "sub/nested.txt", []byte("nested"))
	mustSymlink(t, "small.bin", filepath.Join(dir, "link"))
	mustSymlink(t, "/etc/hostname", filepath.Join(dir, "abs-link"))
	if err := syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := CollectArtifacts(dir, "/artifacts", testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if keys := strings.Join(got.Keys(), ","); keys != "/artifacts/empty,/artifacts/small.bin" {
		t.Fatalf("keys %s", keys)
	}
	if v, _ := got.Get("/artifacts/empty"); v != "" {
		t.Errorf("empty file: %q", v)
	}
	if v, _ := got.Get("/artifacts/small.bin"); v != base64.StdEncoding.EncodeToString(small) {
		t.Errorf("small.bin: wrong content (%d chars)", len(v))
	}

	empty := t.TempDir()
	writeFile(t, empty, "sub/x", []byte("x"))
	if got, err := CollectArtifacts(empty, "/a", nil); got != nil || err != nil {
		t.Errorf("no files: %v %v", got, err)
	}
	if got, err := CollectArtifacts(filepath.Join(empty, "absent"), "/a", nil); got != nil || err != nil {
		t.Errorf("absent dir: %v %v", got, err)
	}
}

func BenchmarkZipOutput(b *testing.B) {
	out := b.TempDir()
	line := []byte("benchmark output line 0123456789\n")
	chunk := bytes.Repeat(line, 16<<10/len(line)+1)[:16<<10]
	for i := range 200 {
		writeFile(b, out, fmt.Sprintf("d%d/f%03d.txt", i%10, i), chunk)
	}
	root, err := os.OpenRoot(out)
	if err != nil {
		b.Fatal(err)
	}
	defer root.Close()
	u := New(Config{Egress: egress.Policy{Allow: egress.Loopback}, Logger: slog.New(slog.DiscardHandler)})
	tmp := b.TempDir()
	b.SetBytes(200 * 16 << 10)
	for b.Loop() {
		z, err := u.buildZip(context.Background(), root, nil, tmp)
		if err != nil {
			b.Fatal(err)
		}
		u.removeZip(z)
	}
}
