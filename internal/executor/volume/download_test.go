package volume

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/computehorde/horde/internal/protocol"
)

func randomBytes(n int) []byte {
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{1})
	r.Read(b)
	return b
}

// writeChunked sends body without Content-Length (chunked), flushing so the client streams.
func writeChunked(w http.ResponseWriter, body []byte) {
	for len(body) > 0 {
		n := min(len(body), 4096)
		w.Write(body[:n])
		w.(http.Flusher).Flush()
		body = body[n:]
	}
}

func TestZipURL(t *testing.T) {
	data := makeZip(t, zipEntry{name: "a/b.txt", body: "zipped"}, zipEntry{name: "c.txt", body: "c"})
	for _, withLength := range []bool{true, false} {
		t.Run("content-length="+strconv.FormatBool(withLength), func(t *testing.T) {
			srv := serve(t, func(w http.ResponseWriter, r *http.Request) {
				if r.Header.Get("Accept-Encoding") != "identity" {
					t.Errorf("Accept-Encoding %q: transparent gzip would break Range", r.Header.Get("Accept-Encoding"))
				}
				if withLength {
					w.Header().Set("Content-Length", strconv.Itoa(len(data)))
					w.Write(data)
					return
				}
				writeChunked(w, data)
			})
			e := newEnv(t)
			f, _ := newFetcher(t, Config{})
			v := protocol.Volume{ZipURL: &protocol.ZipURLVolume{Contents: srv.URL + "/data.zip", RelativePath: ptr("in")}}
			st, err := f.Fetch(t.Context(), &v, e.vol, e.tmp)
			if err != nil {
				t.Fatal(err)
			}
			want := map[string]string{"in/a/b.txt": "zipped", "in/c.txt": "c"}
			if got := e.files(t); !mapsEqual(got, want) {
				t.Errorf("files %v, want %v", got, want)
			}
			// The archive's own bytes do not count, only what it unpacks to.
			if st != (Stats{Bytes: 7, Files: 2}) {
				t.Errorf("stats %+v", st)
			}
			e.checkContained(t)
		})
	}
}

func TestZipURLTooLarge(t *testing.T) {
	body := randomBytes(5000)
	for _, withLength := range []bool{true, false} {
		t.Run("content-length="+strconv.FormatBool(withLength), func(t *testing.T) {
			srv := serve(t, func(w http.ResponseWriter, r *http.Request) {
				if withLength {
					w.Header().Set("Content-Length", strconv.Itoa(len(body)))
					w.Write(body)
					return
				}
				writeChunked(w, body)
			})
			e := newEnv(t)
			f, rec := newFetcher(t, Config{MaxBytes: 1000})
			v := zipURL(srv.URL + "/big.zip")
			_, err := f.Fetch(t.Context(), &v, e.vol, e.tmp)
			asError(t, err, protocol.VolumeTypeZipURL)
			if !errors.Is(err, ErrTooLarge) {
				t.Fatalf("error %v, want ErrTooLarge", err)
			}
			if !strings.Contains(err.Error(), "1000-byte cap") {
				t.Errorf("error %q does not name the cap", err)
			}
			if srv.hits.Load() != 1 || len(rec.got()) != 0 {
				t.Errorf("%d requests, sleeps %v: too large must not be retried", srv.hits.Load(), rec.got())
			}
			e.checkContained(t)
		})
	}
}

func TestRetryAfterServerError(t *testing.T) {
	var n int
	srv := serve(t, func(w http.ResponseWriter, r *http.Request) {
		if n++; n == 1 {
			http.Error(w, "busy", http.StatusInternalServerError)
			return
		}
		w.Write([]byte("ok"))
	})
	e := newEnv(t)
	f, rec := newFetcher(t, Config{})
	v := singleFile(srv.URL+"/f", "f.txt")
	if _, err := f.Fetch(t.Context(), &v, e.vol, e.tmp); err != nil {
		t.Fatal(err)
	}
	if got := e.files(t); got["f.txt"] != "ok" {
		t.Errorf("files %v", got)
	}
	if s := rec.got(); len(s) != 1 || s[0] < time.Second || s[0] > 1100*time.Millisecond {
		t.Errorf("sleeps %v, want one of 1 s + at most 10%%", s)
	}
}

func TestRetryStatuses(t *testing.T) {
	for code, tries := range map[int]int{408: 3, 429: 3, 502: 3, 503: 3, 400: 1, 401: 1, 403: 1, 404: 1, 410: 1} {
		t.Run(strconv.Itoa(code), func(t *testing.T) {
			srv := serve(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(code) })
			e := newEnv(t)
			f, rec := newFetcher(t, Config{})
			v := singleFile(srv.URL+"/f", "f")
			_, err := f.Fetch(t.Context(), &v, e.vol, e.tmp)
			if he, ok := errors.AsType[*HTTPError](err); !ok || he.StatusCode != code {
				t.Fatalf("error %v, want HTTP %d", err, code)
			}
			if int(srv.hits.Load()) != tries || len(rec.got()) != tries-1 {
				t.Errorf("%d requests, sleeps %v; want %d requests", srv.hits.Load(), rec.got(), tries)
			}
			if tries > 1 {
				if s := rec.got(); s[1] < 2*time.Second || s[1] > 2200*time.Millisecond {
					t.Errorf("second backoff %v, want 2 s + at most 10%%", s[1])
				}
			}
			e.checkContained(t)
		})
	}
}

// cutServer serves data, cutting the first response after half of it; later requests get
// what respond makes of them.
func cutServer(t *testing.T, data []byte, respond func(w http.ResponseWriter, r *http.Request)) (*server, *[]string) {
	var (
		mu     sync.Mutex
		ranges []string
	)
	srv := serve(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		ranges = append(ranges, r.Header.Get("Range")+"|"+r.Header.Get("If-Range"))
		first := len(ranges) == 1
		mu.Unlock()
		if first {
			w.Header().Set("Content-Length", strconv.Itoa(len(data)))
			w.Header().Set("ETag", `"v1"`)
			w.Write(data[:len(data)/2])
			w.(http.Flusher).Flush()
			panic(http.ErrAbortHandler) // drop the connection mid-body
		}
		respond(w, r)
	})
	return srv, &ranges
}

func TestResumeWithRange(t *testing.T) {
	data := randomBytes(300_000)
	half := len(data) / 2
	srv, ranges := cutServer(t, data, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", half, len(data)-1, len(data)))
		w.Header().Set("Content-Length", strconv.Itoa(len(data)-half))
		w.WriteHeader(http.StatusPartialContent)
		w.Write(data[half:])
	})
	e := newEnv(t)
	f, rec := newFetcher(t, Config{})
	v := singleFile(srv.URL+"/blob", "deep/er/blob.bin")
	st, err := f.Fetch(t.Context(), &v, e.vol, e.tmp)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"|", fmt.Sprintf(`bytes=%d-|"v1"`, half)}
	if fmt.Sprint(*ranges) != fmt.Sprint(want) {
		t.Errorf("Range|If-Range headers %q, want %q", *ranges, want)
	}
	if got, _ := os.ReadFile(filepath.Join(e.vol, "deep", "er", "blob.bin")); !bytes.Equal(got, data) {
		t.Errorf("content differs (%d bytes, want %d)", len(got), len(data))
	}
	if st.Bytes != int64(len(data)) || len(rec.got()) != 1 {
		t.Errorf("stats %+v, sleeps %v", st, rec.got())
	}
}

func TestResumeIgnoredRestarts(t *testing.T) {
	data := randomBytes(200_000)
	srv, ranges := cutServer(t, data, func(w http.ResponseWriter, r *http.Request) {
		w.Write(data) // 200: the server ignores Range
	})
	e := newEnv(t)
	f, _ := newFetcher(t, Config{MaxBytes: int64(len(data))}) // the discarded half must not count
	v := singleFile(srv.URL+"/blob", "blob")
	st, err := f.Fetch(t.Context(), &v, e.vol, e.tmp)
	if err != nil {
		t.Fatal(err)
	}
	if len(*ranges) != 2 || !strings.HasPrefix((*ranges)[1], "bytes=100000-") {
		t.Errorf("Range headers %q", *ranges)
	}
	if got, _ := os.ReadFile(filepath.Join(e.vol, "blob")); !bytes.Equal(got, data) {
		t.Errorf("content differs (%d bytes, want %d)", len(got), len(data))
	}
	if st.Bytes != int64(len(data)) {
		t.Errorf("stats %+v", st)
	}
}

func TestResumeNotSatisfiableRestarts(t *testing.T) {
	data := randomBytes(100_000)
	srv, ranges := cutServer(t, data, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Range") != "" {
			w.Header().Set("Content-Range", "bytes */999999")
			w.WriteHeader(http.StatusRequestedRangeNotSatisfiable)
			return
		}
		w.Write(data)
	})
	e := newEnv(t)
	f, rec := newFetcher(t, Config{})
	v := zipURL(srv.URL + "/x")
	_, err := f.Fetch(t.Context(), &v, e.vol, e.tmp)
	// The body is no zip; what matters is that it downloaded whole after the 416.
	if err == nil || !strings.Contains(err.Error(), "not a valid zip archive") {
		t.Fatalf("error %v, want the complete download to reach the unzip", err)
	}
	if len(*ranges) != 3 || (*ranges)[2] != "|" || len(rec.got()) != 1 {
		t.Errorf("Range headers %q, sleeps %v: want a fresh request right after the 416", *ranges, rec.got())
	}
	e.checkContained(t)
}

func TestDownloadFailureLeavesNoPartialFile(t *testing.T) {
	data := randomBytes(10_000)
	srv := serve(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(len(data)))
		w.Write(data[:100])
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler)
	})
	e := newEnv(t)
	f, rec := newFetcher(t, Config{Attempts: 2})
	v := singleFile(srv.URL+"/f", "dir/f")
	st, err := f.Fetch(t.Context(), &v, e.vol, e.tmp)
	asError(t, err, protocol.VolumeTypeSingleFile)
	if !strings.Contains(err.Error(), "giving up after 2 attempts") || !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("error %q", err)
	}
	if srv.hits.Load() != 2 || len(rec.got()) != 1 {
		t.Errorf("%d requests, sleeps %v", srv.hits.Load(), rec.got())
	}
	if ents, _ := os.ReadDir(filepath.Join(e.vol, "dir")); len(ents) != 0 {
		t.Errorf("left behind: %v", ents)
	}
	if st.Bytes != 0 {
		t.Errorf("stats %+v: removed bytes still counted", st)
	}
}

func TestUnreachableHost(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	e := newEnv(t)
	f, rec := newFetcher(t, Config{})
	v := zipURL("http://user:pw@" + addr + "/v.zip?token=secret")
	_, err = f.Fetch(t.Context(), &v, e.vol, e.tmp)
	ve := asError(t, err, protocol.VolumeTypeZipURL)
	if ve.Source != "http://"+addr+"/v.zip" {
		t.Errorf("source %q", ve.Source)
	}
	msg := err.Error()
	if !strings.HasPrefix(msg, "volume (zip_url http://"+addr+"/v.zip): giving up after 3 attempts: GET: dial tcp") ||
		strings.Contains(msg, "secret") || strings.Contains(msg, "pw") {
		t.Errorf("error %q", msg)
	}
	if s := rec.got(); len(s) != 2 {
		t.Errorf("sleeps %v, want 2 (3 attempts)", s)
	}
	e.checkContained(t)
}

func TestRedirectFollowed(t *testing.T) {
	var srv *server
	srv = serve(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/start" {
			http.Redirect(w, r, srv.URL+"/cdn/object?X-Amz-Signature=abc", http.StatusFound)
			return
		}
		if r.URL.Query().Get("X-Amz-Signature") != "abc" {
			t.Errorf("redirect lost its query: %s", r.URL)
		}
		w.Write([]byte("payload"))
	})
	e := newEnv(t)
	f, _ := newFetcher(t, Config{})
	v := singleFile(srv.URL+"/start", "p")
	if _, err := f.Fetch(t.Context(), &v, e.vol, e.tmp); err != nil {
		t.Fatal(err)
	}
	if got := e.files(t); got["p"] != "payload" {
		t.Errorf("files %v", got)
	}
}

func TestSingleFile(t *testing.T) {
	srv := serve(t, func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("v" + r.URL.Path)) })
	e := newEnv(t)
	f, _ := newFetcher(t, Config{})
	v := multi(singleFile(srv.URL+"/1", "a/b/c/file.bin"), singleFile(srv.URL+"/2", "a/b/c/file.bin"), singleFile(srv.URL+"/3", "top"))
	st, err := f.Fetch(t.Context(), v, e.vol, e.tmp)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"a/b/c/file.bin": "v/2", "top": "v/3"}
	if got := e.files(t); !mapsEqual(got, want) {
		t.Errorf("files %v, want %v (no temporary files either)", got, want)
	}
	if st.Files != 3 {
		t.Errorf("stats %+v", st)
	}
	info, err := os.Stat(filepath.Join(e.vol, "a", "b", "c", "file.bin"))
	if err != nil || info.Mode().Perm() != 0o777 {
		t.Errorf("mode %v, %v", info.Mode(), err)
	}
}

func TestSingleFileUnsafePath(t *testing.T) {
	srv := serve(t, func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("x")) })
	for _, rel := range []string{"../x", "/etc/x", "a/../../x", "a/../x", "a\x00b", "", "dir/", "."} {
		t.Run(rel, func(t *testing.T) {
			e := newEnv(t)
			f, _ := newFetcher(t, Config{})
			v := singleFile(srv.URL+"/f", rel)
			_, err := f.Fetch(t.Context(), &v, e.vol, e.tmp)
			asError(t, err, protocol.VolumeTypeSingleFile)
			if !errors.Is(err, ErrUnsafe) {
				t.Errorf("error %v, want ErrUnsafe", err)
			}
			e.checkContained(t)
			if got := e.files(t); len(got) != 0 {
				t.Errorf("files %v", got)
			}
		})
	}
	if srv.hits.Load() != 0 {
		t.Errorf("%d requests for unsafe paths", srv.hits.Load())
	}
}

func TestSingleFileOntoSymlinkOrDir(t *testing.T) {
	srv := serve(t, func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("x")) })
	e := newEnv(t)
	outside := filepath.Join(e.parent, "outside")
	os.Mkdir(outside, 0o700)
	os.MkdirAll(filepath.Join(e.vol, "d"), 0o700)
	if err := os.Symlink(outside, filepath.Join(e.vol, "link")); err != nil {
		t.Fatal(err)
	}
	f, _ := newFetcher(t, Config{})
	for _, rel := range []string{"link/f", "d"} {
		v := singleFile(srv.URL+"/f", rel)
		_, err := f.Fetch(t.Context(), &v, e.vol, e.tmp)
		if !errors.Is(err, ErrUnsafe) {
			t.Errorf("%s: error %v, want ErrUnsafe", rel, err)
		}
	}
	if ents, _ := os.ReadDir(outside); len(ents) != 0 {
		t.Errorf("written through a symlink: %v", ents)
	}
}

func TestBadURL(t *testing.T) {
	e := newEnv(t)
	f, _ := newFetcher(t, Config{})
	for _, u := range []string{"file:///etc/passwd", "ftp://host/x", "not a url", "http:///nohost", "http://[::1"} {
		v := singleFile(u, "x")
		_, err := f.Fetch(t.Context(), &v, e.vol, e.tmp)
		asError(t, err, protocol.VolumeTypeSingleFile)
		if err == nil || strings.Contains(err.Error(), "passwd") {
			t.Errorf("%s: error %v", u, err)
		}
	}
	e.checkContained(t)
}
