package sdk

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
)

// TestRetries: a repeatable request is retried on 429 (after Retry-After) and 503 and
// succeeds; a 400 is returned at once as an *APIError with its fields.
func TestRetries(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch calls.Add(1) {
		case 1:
			w.Header().Set("Retry-After", "0")
			w.WriteHeader(http.StatusTooManyRequests)
			_, _ = w.Write([]byte(`{"error":{"code":"rate_limited","message":"slow down"}}`))
		case 2:
			w.WriteHeader(http.StatusServiceUnavailable)
		default:
			_, _ = w.Write([]byte(`{"uuid":"j1","status":"completed"}`))
		}
	}))
	defer srv.Close()
	c, err := New(srv.URL, WithAPIKey("hk_x"))
	if err != nil {
		t.Fatal(err)
	}
	j, err := c.Job(context.Background(), "j1")
	if err != nil || j.UUID != "j1" || !j.Done() || calls.Load() != 3 {
		t.Fatalf("Job = %+v, %v after %d calls", j, err, calls.Load())
	}

	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte(`{"error":{"code":"invalid_job","message":"docker_image: empty","fields":[{"field":"docker_image","problem":"empty"}]}}`))
	}))
	defer bad.Close()
	c, _ = New(bad.URL, WithAPIKey("hk_x"))
	calls.Store(0)
	_, err = c.Submit(context.Background(), JobSpec{}, "")
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.Code != "invalid_job" || len(apiErr.Fields) != 1 || calls.Load() != 1 {
		t.Errorf("Submit: %v after %d calls", err, calls.Load())
	}
}

type fakeSigner struct{}

func (fakeSigner) SS58() string                         { return "5user" }
func (fakeSigner) SignMessage(m []byte) ([]byte, error) { return make([]byte, 64), nil }

// TestReloginOnExpiredToken: with a signer, a 401 invalid_token signs in again once.
func TestReloginOnExpiredToken(t *testing.T) {
	var logins atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/auth/nonce":
			_, _ = w.Write([]byte(`{"nonce":"n"}`))
		case "/auth/login":
			n := logins.Add(1)
			_, _ = w.Write([]byte(`{"token":"hft1.t` + string(rune('0'+n)) + `"}`))
		default:
			if r.Header.Get("Authorization") == "Bearer hft1.t1" {
				w.WriteHeader(http.StatusUnauthorized)
				_, _ = w.Write([]byte(`{"error":{"code":"invalid_token","message":"the token expired"}}`))
				return
			}
			_, _ = w.Write([]byte(`{"user":"5user","balance":7}`))
		}
	}))
	defer srv.Close()
	c, err := New(srv.URL, WithSigner(fakeSigner{}), WithRetries(0))
	if err != nil {
		t.Fatal(err)
	}
	a, err := c.Account(context.Background())
	if err != nil || a.Balance != 7 || logins.Load() != 2 {
		t.Errorf("Account = %+v, %v after %d logins", a, err, logins.Load())
	}
}

func TestNewRefusesBadInput(t *testing.T) {
	if _, err := New("ftp://x", WithAPIKey("k")); err == nil {
		t.Error("an ftp URL was accepted")
	}
	if _, err := New("http://x"); err == nil {
		t.Error("no credentials were accepted")
	}
}
