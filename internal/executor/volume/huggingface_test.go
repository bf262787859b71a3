package volume

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/computehorde/horde/internal/protocol"
)

const testSHA = "0123456789abcdef0123456789abcdef01234567"

// hub is a loopback stand-in for the Hugging Face Hub API.
type hub struct {
	*server
	hubConfig
	mu   sync.Mutex
	auth map[string]string // request path → Authorization header seen
}

type hubConfig struct {
	infoPath string            // escaped path the revision call must use
	resolve  string            // resolve prefix, e.g. "/org/model/resolve/" + testSHA + "/"
	files    map[string]string // rfilename → content
	fail     map[string]int    // rfilename → 503s to send before serving it
	status   int               // revision call status, 0 → 200
	slow     func()            // run at the start of each request
}

func newHub(t *testing.T, cfg hubConfig) *hub {
	h := &hub{hubConfig: cfg, auth: map[string]string{}}
	if h.fail == nil {
		h.fail = map[string]int{}
	}
	h.server = serve(t, func(w http.ResponseWriter, r *http.Request) {
		if h.slow != nil {
			h.slow()
		}
		h.mu.Lock()
		h.auth[r.URL.Path] = r.Header.Get("Authorization")
		h.mu.Unlock()
		switch {
		case r.URL.EscapedPath() == h.infoPath:
			if h.status != 0 {
				w.Header().Set("X-Error-Code", "RepoNotFound")
				w.WriteHeader(h.status)
				return
			}
			var sib []map[string]string
			for name := range h.files {
				sib = append(sib, map[string]string{"rfilename": name})
			}
			json.NewEncoder(w).Encode(map[string]any{"id": "x", "sha": testSHA, "siblings": sib})
		case strings.HasPrefix(r.URL.Path, h.resolve):
			name := strings.TrimPrefix(r.URL.Path, h.resolve)
			h.mu.Lock()
			body, ok := h.files[name]
			fail := h.fail[name] > 0
			h.fail[name]--
			h.mu.Unlock()
			switch {
			case !ok:
				http.NotFound(w, r)
			case fail:
				w.WriteHeader(http.StatusServiceUnavailable)
			case name == "model.safetensors":
				// Large files redirect to a signed CDN URL, as on the Hub.
				http.Redirect(w, r, h.URL+"/cdn/blob?sig=secret", http.StatusFound)
			default:
				w.Write([]byte(body))
			}
		case r.URL.Path == "/cdn/blob" && r.URL.Query().Get("sig") == "secret":
			w.Write([]byte(h.files["model.safetensors"]))
		default:
			t.Errorf("unexpected request %s", r.URL)
			http.NotFound(w, r)
		}
	})
	return h
}

func hfVolume(v protocol.HuggingfaceVolume) *protocol.Volume {
	return &protocol.Volume{Huggingface: &v}
}

func TestHuggingFaceModel(t *testing.T) {
	files := map[string]string{
		"config.json": "{}", "model.safetensors": "weights", "sub/a.txt": "a", "sub/deep/b.txt": "b",
		"README.md": "readme", ".gitattributes": "attrs", "other/c.json": "c",
	}
	h := newHub(t, hubConfig{infoPath: "/api/models/org/model/revision/main", resolve: "/org/model/resolve/" + testSHA + "/", files: files})
	e := newEnv(t)
	f, _ := newFetcher(t, Config{HuggingFaceEndpoint: h.URL + "/", HuggingFaceToken: "executor-token"})
	v := hfVolume(protocol.HuggingfaceVolume{
		RepoID: "org/model", RelativePath: ptr("models/m"), Token: ptr("volume-token"),
		AllowPatterns: &protocol.AllowPatterns{Patterns: []string{"*.json", "sub/", "*.safetensors"}},
	})
	st, err := f.Fetch(t.Context(), v, e.vol, e.tmp)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"models/m/config.json": "{}", "models/m/model.safetensors": "weights", "models/m/sub/a.txt": "a",
		"models/m/sub/deep/b.txt": "b", "models/m/other/c.json": "c",
	}
	if got := e.files(t); !mapsEqual(got, want) {
		t.Errorf("files %v, want %v", got, want)
	}
	if st.Files != 5 {
		t.Errorf("stats %+v", st)
	}
	for path, auth := range h.auth {
		if auth != "Bearer volume-token" {
			t.Errorf("%s: Authorization %q, want the volume's token", path, auth)
		}
	}
	e.checkContained(t)
}

func TestHuggingFaceDataset(t *testing.T) {
	files := map[string]string{"data/train.csv": "1,2", "data/x/y.csv": "3", "data/readme.md": "no"}
	h := newHub(t, hubConfig{infoPath: "/api/datasets/org/ds/revision/refs%2Fpr%2F1", resolve: "/datasets/org/ds/resolve/" + testSHA + "/", files: files})
	e := newEnv(t)
	f, _ := newFetcher(t, Config{HuggingFaceEndpoint: h.URL, HuggingFaceToken: "executor-token"})
	v := hfVolume(protocol.HuggingfaceVolume{
		RepoID: "org/ds", RepoType: ptr("dataset"), Revision: ptr("refs/pr/1"),
		AllowPatterns: &protocol.AllowPatterns{Patterns: []string{"data/*.csv"}, Single: true},
	})
	if _, err := f.Fetch(t.Context(), v, e.vol, e.tmp); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"data/train.csv": "1,2", "data/x/y.csv": "3"}
	if got := e.files(t); !mapsEqual(got, want) {
		t.Errorf("files %v, want %v", got, want)
	}
	for path, auth := range h.auth {
		if auth != "Bearer executor-token" {
			t.Errorf("%s: Authorization %q, want the executor's token", path, auth)
		}
	}
}

func TestHuggingFaceNoTokenNoPatterns(t *testing.T) {
	files := map[string]string{"a": "a", "b/c": "c"}
	h := newHub(t, hubConfig{infoPath: "/api/spaces/sp/revision/main", resolve: "/spaces/sp/resolve/" + testSHA + "/", files: files})
	e := newEnv(t)
	f, _ := newFetcher(t, Config{HuggingFaceEndpoint: h.URL})
	if _, err := f.Fetch(t.Context(), hfVolume(protocol.HuggingfaceVolume{RepoID: "sp", RepoType: ptr("space")}), e.vol, e.tmp); err != nil {
		t.Fatal(err)
	}
	if got := e.files(t); !mapsEqual(got, files) {
		t.Errorf("files %v, want all of %v", got, files)
	}
	for path, auth := range h.auth {
		if auth != "" {
			t.Errorf("%s: Authorization %q without a token", path, auth)
		}
	}
}

func TestHuggingFaceRevisionNotFound(t *testing.T) {
	for _, code := range []int{401, 403, 404} {
		h := newHub(t, hubConfig{infoPath: "/api/models/org/model/revision/nope", resolve: "/unused/", status: code})
		e := newEnv(t)
		f, rec := newFetcher(t, Config{HuggingFaceEndpoint: h.URL})
		v := hfVolume(protocol.HuggingfaceVolume{RepoID: "org/model", Revision: ptr("nope"), Token: ptr("hf_secret")})
		_, err := f.Fetch(t.Context(), v, e.vol, e.tmp)
		ve := asError(t, err, protocol.VolumeTypeHuggingfaceVolume)
		if ve.Source != "model:org/model@nope" || !strings.Contains(err.Error(), "not found") ||
			!strings.Contains(err.Error(), "RepoNotFound") || strings.Contains(err.Error(), "hf_secret") {
			t.Errorf("error %q, source %q", err, ve.Source)
		}
		if he, ok := errors.AsType[*HTTPError](err); !ok || he.StatusCode != code {
			t.Errorf("error %v does not wrap HTTP %d", err, code)
		}
		if h.hits.Load() != 1 || len(rec.got()) != 0 {
			t.Errorf("HTTP %d: %d requests, sleeps %v: must not retry", code, h.hits.Load(), rec.got())
		}
	}
}

func TestHuggingFaceFlakyFile(t *testing.T) {
	h := newHub(t, hubConfig{infoPath: "/api/models/m/revision/main", resolve: "/m/resolve/" + testSHA + "/",
		files: map[string]string{"w.bin": "data", "x": "x"}, fail: map[string]int{"w.bin": 1}})
	e := newEnv(t)
	f, rec := newFetcher(t, Config{HuggingFaceEndpoint: h.URL})
	if _, err := f.Fetch(t.Context(), hfVolume(protocol.HuggingfaceVolume{RepoID: "m"}), e.vol, e.tmp); err != nil {
		t.Fatal(err)
	}
	if got := e.files(t); got["w.bin"] != "data" {
		t.Errorf("files %v", got)
	}
	if h.hits.Load() != 4 || len(rec.got()) != 1 {
		t.Errorf("%d requests, sleeps %v; want info + 2 files + 1 retry", h.hits.Load(), rec.got())
	}
}

func TestHuggingFaceFileFailureNamesFile(t *testing.T) {
	h := newHub(t, hubConfig{infoPath: "/api/models/m/revision/main", resolve: "/m/resolve/" + testSHA + "/",
		files: map[string]string{"bad.bin": "x"}, fail: map[string]int{"bad.bin": 100}})
	e := newEnv(t)
	f, _ := newFetcher(t, Config{HuggingFaceEndpoint: h.URL, Attempts: 2})
	_, err := f.Fetch(t.Context(), hfVolume(protocol.HuggingfaceVolume{RepoID: "m"}), e.vol, e.tmp)
	want := `volume (huggingface_volume model:m@main): file "bad.bin": giving up after 2 attempts: HTTP 503 Service Unavailable`
	if err == nil || err.Error() != want {
		t.Errorf("error %v, want %s", err, want)
	}
	if got := e.files(t); len(got) != 0 {
		t.Errorf("files left: %v", got)
	}
}

func TestHuggingFaceUnsafe(t *testing.T) {
	for _, name := range []string{"../evil", "/abs", "a/../../evil"} {
		h := newHub(t, hubConfig{infoPath: "/api/models/m/revision/main", resolve: "/m/resolve/" + testSHA + "/",
			files: map[string]string{"ok": "ok", name: "x"}})
		e := newEnv(t)
		f, _ := newFetcher(t, Config{HuggingFaceEndpoint: h.URL})
		_, err := f.Fetch(t.Context(), hfVolume(protocol.HuggingfaceVolume{RepoID: "m"}), e.vol, e.tmp)
		if !errors.Is(err, ErrUnsafe) {
			t.Errorf("%q: error %v, want ErrUnsafe", name, err)
		}
		if h.hits.Load() != 1 {
			t.Errorf("%q: %d requests: nothing may be downloaded", name, h.hits.Load())
		}
		e.checkContained(t)
	}
	e := newEnv(t)
	f, _ := newFetcher(t, Config{HuggingFaceEndpoint: "http://127.0.0.1:1"})
	for _, v := range []protocol.HuggingfaceVolume{
		{RepoID: "../x"}, {RepoID: "a/b/c"}, {RepoID: "a?b"}, {RepoID: ""}, {RepoID: "m", RepoType: ptr("bucket")},
		{RepoID: "m", RelativePath: ptr("../x")},
	} {
		if _, err := f.Fetch(t.Context(), hfVolume(v), e.vol, e.tmp); err == nil {
			t.Errorf("%+v accepted", v)
		}
	}
}

func TestHuggingFaceConcurrency(t *testing.T) {
	files := map[string]string{}
	for _, n := range []string{"1", "2", "3", "4", "5", "6"} {
		files[n] = n
	}
	var inflight, peak atomic.Int32
	h := newHub(t, hubConfig{infoPath: "/api/models/m/revision/main", resolve: "/m/resolve/" + testSHA + "/", files: files,
		slow: func() {
			n := inflight.Add(1)
			defer inflight.Add(-1)
			for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
			}
			time.Sleep(10 * time.Millisecond) // tiny, so overlapping downloads show
		}})
	e := newEnv(t)
	f, _ := newFetcher(t, Config{HuggingFaceEndpoint: h.URL, Concurrency: 2})
	if _, err := f.Fetch(t.Context(), hfVolume(protocol.HuggingfaceVolume{RepoID: "m"}), e.vol, e.tmp); err != nil {
		t.Fatal(err)
	}
	if got := e.files(t); len(got) != 6 {
		t.Errorf("files %v", got)
	}
	if p := peak.Load(); p > 2 {
		t.Errorf("%d downloads at once, want at most 2", p)
	}
}

func TestHuggingFaceTooManyFiles(t *testing.T) {
	h := newHub(t, hubConfig{infoPath: "/api/models/m/revision/main", resolve: "/m/resolve/" + testSHA + "/",
		files: map[string]string{"a": "a", "b": "b", "c": "c"}})
	e := newEnv(t)
	f, _ := newFetcher(t, Config{HuggingFaceEndpoint: h.URL, MaxFiles: 2})
	_, err := f.Fetch(t.Context(), hfVolume(protocol.HuggingfaceVolume{RepoID: "m"}), e.vol, e.tmp)
	if !errors.Is(err, ErrTooLarge) || h.hits.Load() != 1 {
		t.Errorf("error %v after %d requests, want ErrTooLarge before any download", err, h.hits.Load())
	}
}

func TestFnmatch(t *testing.T) {
	// Expectations from CPython's fnmatch.fnmatchcase.
	cases := []struct {
		name, pattern string
		want          bool
	}{
		{"config.json", "*.json", true}, {"sub/a.json", "*.json", true}, {"a/b/c.txt", "a/*", true},
		{"a/b/c.txt", "a/*.txt", true}, {"abc", "a?c", true}, {"a/c", "a?c", true}, {"ac", "a?c", false},
		{"b", "[abc]", true}, {"d", "[abc]", false}, {"d", "[!abc]", true}, {"a", "[!abc]", false},
		{"m", "[a-z]", true}, {"M", "[a-z]", false}, {"-", "[a-]", true}, {"-", "[-a]", true},
		{"b", "[z-a]", false}, {"]", "[]]", true}, {"]", "[!]]", false}, {"a", "[!]]", true},
		{"[", "[", true}, {"[x", "[x", true}, {"a[b", "a[b", true}, {"x", "[!]", false}, {"[!]", "[!]", true},
		{"data/train.csv", "data/*.csv", true}, {"data/x/y.csv", "data/*.csv", true},
		{"data/readme.md", "data/*.csv", false}, {"x.bin", "*", true}, {"", "*", true},
		{"aXbXc", "a*b*c", true}, {"aXbXcX", "a*b*c", false}, {"abc", "abc*", true},
		{"weights/model.safetensors", "*.safetensors", true}, {"é", "?", true}, {"a.txt", "A.TXT", false},
		{"c", "[a-b-c]", true}, {"-", "[a-b-c]", true}, {"b", "[a-b-c]", true}, {`\`, `[\]`, true},
		{`a\b`, `a\b`, true}, {"aaaaaaaaaaaaab", "*a*a*a*b", true}, {"aaaaaaaaaaaaa", "*a*a*a*b", false},
	}
	for _, c := range cases {
		if got := fnmatch(c.name, c.pattern); got != c.want {
			t.Errorf("fnmatch(%q, %q) = %v, want %v", c.name, c.pattern, got, c.want)
		}
	}
	if !hfAllowed("sub/deep/x", []string{"sub/"}) || hfAllowed("subx/y", []string{"sub/"}) {
		t.Error("a pattern ending in / must select its directory")
	}
	if !hfAllowed("x", nil) || hfAllowed("x", []string{}) {
		t.Error("nil patterns select everything, an empty list nothing (as upstream)")
	}
}
