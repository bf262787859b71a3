package upload

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/computehorde/horde/internal/egress"
	"github.com/computehorde/horde/internal/protocol"
)

// The HTTP side of uploads: statuses, retries and backoff, timeouts, the response kept as the
// result, redirects, and the redaction of presigned URLs.

func TestResultJSON(t *testing.T) {
	body := "h\u00e9llo \"w\"\n\U0001F600\\/\x7f\x01\xff<&>"
	rec := newRecorder(t, func(w http.ResponseWriter, r *http.Request, n int) {
		h := w.Header()
		h["Date"] = nil // suppress, so the result is fixed
		h.Set("Content-Type", "text/plain; charset=utf-8")
		h.Add("X-Multi", "a")
		h.Add("X-Multi", "b")
		h.Set("ETag", `"d41d8cd9"`)
		io.WriteString(w, body)
	})
	out := t.TempDir()
	writeFile(t, out, "f", []byte("x"))
	u, _ := newUploader(t, Config{})
	res, err := u.Upload(context.Background(), &protocol.OutputUpload{SingleFilePut: &protocol.SingleFilePutUpload{
		URL: rec.url("/f"), RelativePath: "f"}}, out, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	want := `{"headers": {"content-length": "23", "content-type": "text/plain; charset=utf-8", "etag": "\"d41d8cd9\"", "x-multi": "a, b"}, ` +
		`"body": "h\u00e9llo \"w\"\n\ud83d\ude00\\/\u007f\u0001\ufffd<&>"}`
	if got := resultFor(t, res, "f"); got != want {
		t.Errorf("result\n got %s\nwant %s", got, want)
	}
}

func Test400NotRetried(t *testing.T) {
	long := strings.Repeat("x", 150) + strings.Repeat("y", 100)
	rec := newRecorder(t, func(w http.ResponseWriter, r *http.Request, n int) {
		http.Error(w, long, http.StatusBadRequest)
	})
	out := t.TempDir()
	sampleOutputs(t, out)
	u, s := newUploader(t, Config{})
	_, err := u.Upload(context.Background(), &protocol.OutputUpload{ZipAndHTTPPut: &protocol.ZipAndHTTPPutUpload{
		URL: rec.url("/b/out.zip?X-Amz-Credential=AKID&X-Amz-Signature=topsecret")}}, out, t.TempDir())
	var ue *Error
	if !errors.As(err, &ue) {
		t.Fatalf("want *Error, got %T %v", err, err)
	}
	want := `upload "output.zip" to ` + rec.url("/b/out.zip") + `: HTTP 400 Bad Request: ` + long[:200]
	if err.Error() != want {
		t.Errorf("error\n got %s\nwant %s", err, want)
	}
	var se *StatusError
	if !errors.As(err, &se) || se.Code != 400 {
		t.Errorf("want StatusError 400, got %v", err)
	}
	if ue.Key != "output.zip" || ue.URL != rec.url("/b/out.zip") || strings.Contains(err.Error(), "topsecret") {
		t.Errorf("Error %+v", ue)
	}
	if n := len(rec.requests()); n != 1 || len(s.got()) != 0 {
		t.Errorf("%d requests, slept %v; want 1, none", n, s.got())
	}
}

func Test5xxRetried(t *testing.T) {
	rec := newRecorder(t, func(w http.ResponseWriter, r *http.Request, n int) {
		if n == 1 {
			http.Error(w, "busy", http.StatusInternalServerError)
			return
		}
		io.WriteString(w, "stored")
	})
	out := t.TempDir()
	content := bytes.Repeat([]byte("0123456789"), 10_000)
	writeFile(t, out, "r.bin", content)
	u, s := newUploader(t, Config{})
	res, err := u.Upload(context.Background(), &protocol.OutputUpload{SingleFilePut: &protocol.SingleFilePutUpload{
		URL: rec.url("/r"), RelativePath: "r.bin"}}, out, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	reqs := rec.requests()
	if len(reqs) != 2 {
		t.Fatalf("%d requests, want 2", len(reqs))
	}
	for i, r := range reqs {
		if !bytes.Equal(r.body, content) {
			t.Errorf("attempt %d sent %d bytes, want the whole file", i+1, len(r.body))
		}
	}
	if got := s.got(); !slices.Equal(got, []time.Duration{time.Second}) {
		t.Errorf("slept %v, want [1s]", got)
	}
	if r := resultFor(t, res, "r.bin"); !strings.HasSuffix(r, `"body": "stored"}`) {
		t.Errorf("result %s", r)
	}
}

func TestRetriesExhausted(t *testing.T) {
	for _, code := range []int{http.StatusServiceUnavailable, http.StatusTooManyRequests, http.StatusRequestTimeout} {
		t.Run(fmt.Sprint(code), func(t *testing.T) {
			rec := newRecorder(t, func(w http.ResponseWriter, r *http.Request, n int) {
				http.Error(w, "try later", code)
			})
			out := t.TempDir()
			writeFile(t, out, "f", []byte("data"))
			u, s := newUploader(t, Config{})
			_, err := u.Upload(context.Background(), &protocol.OutputUpload{SingleFilePost: &protocol.SingleFilePostUpload{
				URL: rec.url("/p"), RelativePath: "f"}}, out, t.TempDir())
			var se *StatusError
			if !errors.As(err, &se) || se.Code != code || !strings.Contains(err.Error(), "after 3 attempts") {
				t.Errorf("got %v", err)
			}
			if n := len(rec.requests()); n != 3 {
				t.Errorf("%d requests, want 3", n)
			}
			if got := s.got(); !slices.Equal(got, []time.Duration{time.Second, 2 * time.Second}) {
				t.Errorf("slept %v, want [1s 2s]", got)
			}
		})
	}
}

func TestUnreachable(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	dead := srv.URL + "/x?sig=topsecret"
	srv.Close()
	out := t.TempDir()
	writeFile(t, out, "f", []byte("data"))
	u, s := newUploader(t, Config{})
	_, err := u.Upload(context.Background(), &protocol.OutputUpload{SingleFilePut: &protocol.SingleFilePutUpload{
		URL: dead, RelativePath: "f"}}, out, t.TempDir())
	var ue *Error
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "after 3 attempts") || strings.Contains(err.Error(), "topsecret") {
		t.Fatalf("got %v", err)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("want the connection error wrapped, got %v", err)
	}
	if got := s.got(); !slices.Equal(got, []time.Duration{time.Second, 2 * time.Second}) {
		t.Errorf("slept %v, want [1s 2s]", got)
	}
}

func TestRequestTimeoutRetried(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	rec := newRecorder(t, func(w http.ResponseWriter, r *http.Request, n int) {
		if n == 1 {
			select { // hang until the client gives up
			case <-r.Context().Done():
			case <-release:
			}
			return
		}
		io.WriteString(w, "ok")
	})
	out := t.TempDir()
	writeFile(t, out, "f", []byte("data"))
	u, s := newUploader(t, Config{RequestTimeout: 50 * time.Millisecond})
	if _, err := u.Upload(context.Background(), &protocol.OutputUpload{SingleFilePut: &protocol.SingleFilePutUpload{
		URL: rec.url("/f"), RelativePath: "f"}}, out, t.TempDir()); err != nil {
		t.Fatal(err)
	}
	if n := len(rec.requests()); n != 2 || len(s.got()) != 1 {
		t.Errorf("%d requests, slept %v", n, s.got())
	}
}

func TestCanceledDuringBackoff(t *testing.T) {
	rec := newRecorder(t, func(w http.ResponseWriter, r *http.Request, n int) {
		http.Error(w, "down", http.StatusBadGateway)
	})
	out := t.TempDir()
	writeFile(t, out, "f", []byte("data"))
	ctx, cancel := context.WithCancel(context.Background())
	u := New(Config{Egress: egress.Policy{Allow: egress.Loopback}, Logger: testLogger(t), Sleep: func(context.Context, time.Duration) error {
		cancel()
		return context.Canceled
	}})
	_, err := u.Upload(ctx, &protocol.OutputUpload{SingleFilePut: &protocol.SingleFilePutUpload{
		URL: rec.url("/f"), RelativePath: "f"}}, out, t.TempDir())
	if !errors.Is(err, context.Canceled) {
		t.Errorf("got %v", err)
	}
	if n := len(rec.requests()); n != 1 {
		t.Errorf("%d requests after cancel, want 1", n)
	}
}

func TestResponseCapAndRedirect(t *testing.T) {
	big := strings.Repeat("r", MaxResponseBytes+100)
	rec := newRecorder(t, func(w http.ResponseWriter, r *http.Request, n int) {
		if r.URL.Path == "/redirect" {
			http.Redirect(w, r, "/elsewhere", http.StatusTemporaryRedirect)
			return
		}
		io.WriteString(w, big)
	})
	out := t.TempDir()
	writeFile(t, out, "f", []byte("x"))
	u, s := newUploader(t, Config{})
	res, err := u.Upload(context.Background(), &protocol.OutputUpload{SingleFilePut: &protocol.SingleFilePutUpload{
		URL: rec.url("/big"), RelativePath: "f"}}, out, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if r := resultFor(t, res, "f"); !strings.HasSuffix(r, `"body": "`+big[:MaxResponseBytes]+`"}`) {
		t.Errorf("result not capped at %d body bytes (%d chars)", MaxResponseBytes, len(r))
	}
	// Redirects are not followed: upstream's httpx fails on them too.
	_, err = u.Upload(context.Background(), &protocol.OutputUpload{SingleFilePut: &protocol.SingleFilePutUpload{
		URL: rec.url("/redirect"), RelativePath: "f"}}, out, t.TempDir())
	var se *StatusError
	if !errors.As(err, &se) || se.Code != http.StatusTemporaryRedirect {
		t.Errorf("got %v, want HTTP 307", err)
	}
	if n := len(rec.requests()); n != 2 || len(s.got()) != 0 {
		t.Errorf("%d requests, slept %v", n, s.got())
	}
}

func TestPyQuote(t *testing.T) {
	for in, want := range map[string]string{
		"":                   `""`,
		"plain ~":            `"plain ~"`,
		"\b\f\n\r\t\x00\x1f": `"\b\f\n\r\t\u0000\u001f"`,
		"ü€𝄞":                `"\u00fc\u20ac\ud834\udd1e"`,
		"\xed\xa0\x80":       `"\ufffd\ufffd\ufffd"`, // an encoded surrogate is invalid UTF-8
	} {
		var sb strings.Builder
		pyQuote(&sb, in)
		if sb.String() != want {
			t.Errorf("pyQuote(%q) = %s, want %s", in, sb.String(), want)
		}
	}
}

func TestRedactURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://user:pw@s3.example.com/b/k?X-Amz-Signature=abc#frag": "https://s3.example.com/b/k",
		"http://h/p?":            "http://h/p",
		"http://u:p@h/%zz?sig=1": "http://h/%zz",
	} {
		if got := redactURL(in); got != want {
			t.Errorf("redactURL(%q) = %q, want %q", in, got, want)
		}
	}
}
