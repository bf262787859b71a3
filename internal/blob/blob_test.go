package blob

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
)

func put(t *testing.T, url string, body []byte) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPut, url, bytes.NewReader(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func get(t *testing.T, url string) (int, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// roundTrip puts an object through a presigned URL and reads it back through a signed one.
func roundTrip(t *testing.T, s Store) {
	t.Helper()
	ctx := context.Background()
	pu, err := s.PutURL(ctx, "jobs/j1/output.zip", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if code := put(t, pu, []byte("zip bytes")); code != http.StatusOK {
		t.Fatalf("PUT: HTTP %d", code)
	}
	gu, err := s.GetURL(ctx, "jobs/j1/output.zip", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if code, body := get(t, gu); code != http.StatusOK || string(body) != "zip bytes" {
		t.Fatalf("GET: HTTP %d %q", code, body)
	}
	if _, err := s.PutURL(ctx, "../etc/passwd", time.Hour); !errors.Is(err, ErrBadKey) {
		t.Errorf("a key leaving the store: %v", err)
	}
}

func TestLocal(t *testing.T) {
	var srv *httptest.Server
	mux := http.NewServeMux()
	srv = httptest.NewServer(mux)
	defer srv.Close()
	l, err := NewLocal(t.TempDir(), srv.URL, []byte("secret"), 16)
	if err != nil {
		t.Fatal(err)
	}
	mux.Handle("/blobs/", l.Handler())
	roundTrip(t, l)

	ctx := context.Background()
	pu, _ := l.PutURL(ctx, "a/b", time.Hour)
	gu, _ := l.GetURL(ctx, "a/b", time.Hour)
	if code := put(t, gu, []byte("x")); code != http.StatusForbidden {
		t.Errorf("PUT with a GET URL: HTTP %d", code)
	}
	if code := put(t, strings.Replace(pu, "sig=", "sig=0", 1), []byte("x")); code != http.StatusForbidden {
		t.Errorf("a tampered signature: HTTP %d", code)
	}
	if code := put(t, pu, bytes.Repeat([]byte("x"), 17)); code != http.StatusRequestEntityTooLarge {
		t.Errorf("an object over the limit: HTTP %d", code)
	}
	if code, _ := get(t, gu); code != http.StatusNotFound {
		t.Errorf("an oversized upload left an object: HTTP %d", code)
	}
	l.now = func() time.Time { return time.Now().Add(2 * time.Hour) }
	if code := put(t, pu, []byte("x")); code != http.StatusForbidden {
		t.Errorf("an expired URL: HTTP %d", code)
	}
	if _, err := NewLocal(t.TempDir(), "ftp://x", nil, 0); err == nil {
		t.Error("an ftp base URL was accepted")
	}
}

// TestS3 presigns against a local S3-compatible server (gofakes3).
func TestS3(t *testing.T) {
	backend := s3mem.New()
	srv := httptest.NewServer(gofakes3.New(backend).Server())
	defer srv.Close()
	if err := backend.CreateBucket("outputs"); err != nil {
		t.Fatal(err)
	}
	s, err := NewS3(S3Config{Endpoint: strings.TrimPrefix(srv.URL, "http://"), Region: "us-east-1", Bucket: "outputs",
		AccessKey: "HORDETESTKEY", SecretKey: "horde-test-secret"})
	if err != nil {
		t.Fatal(err)
	}
	roundTrip(t, s)
	if _, err := NewS3(S3Config{Endpoint: "x"}); err == nil {
		t.Error("an S3 store without a bucket and credentials was accepted")
	}
}
