package facilitator

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/computehorde/horde/internal/keys"
	"github.com/computehorde/horde/internal/protocol"
	"github.com/computehorde/horde/internal/store"
	"github.com/computehorde/horde/internal/store/pgtest"
)

// benchClients is the number of concurrent clients of the submission benchmark.
const benchClients = 64

// BenchmarkSubmit measures job submissions through the real HTTP server (API-key auth,
// validation, signing, the hold in the ledger, the queue) with 64 concurrent clients, beside
// two baselines measured in the same run: a bare JSON POST handler, and single-row insert
// transactions on the same database. Targets: ≥ 3,000/s on SQLite, ≥ 2,500/s on PostgreSQL,
// p99 ≤ 20 ms.
func BenchmarkSubmit(b *testing.B) {
	for _, engine := range []string{"sqlite", "postgres"} {
		b.Run(engine, func(b *testing.B) {
			dsn := "sqlite:" + filepath.Join(b.TempDir(), "f.db")
			if engine == "postgres" {
				dsn = pgtest.DSN(b)
			}
			db, err := store.Open(context.Background(), store.Config{DSN: dsn})
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			b.Run("submit", func(b *testing.B) { benchSubmit(b, db) })
			b.Run("bare-json-post", func(b *testing.B) { benchBarePost(b) })
			b.Run("single-row-insert", func(b *testing.B) { benchInsert(b, db) })
		})
	}
}

// runClients runs n requests over 64 clients and reports the rate and the latencies.
func runClients(b *testing.B, n int, do func() error) {
	lat := make([]time.Duration, n)
	var next sync.Mutex
	i := 0
	var wg sync.WaitGroup
	start := time.Now()
	for range benchClients {
		wg.Go(func() {
			for {
				next.Lock()
				k := i
				i++
				next.Unlock()
				if k >= n {
					return
				}
				t0 := time.Now()
				if err := do(); err != nil {
					b.Error(err)
					return
				}
				lat[k] = time.Since(t0)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	slices.Sort(lat)
	b.ReportMetric(float64(n)/elapsed.Seconds(), "ops/s")
	b.ReportMetric(float64(lat[n/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[n*99/100].Microseconds())/1000, "p99-ms")
	b.ReportMetric(0, "ns/op")
}

func benchSubmit(b *testing.B, db *store.DB) {
	k, _ := keys.FromURI("//Facilitator")
	f, err := New(Config{Store: db, Keypair: k, Validators: []string{}, RateLimit: 1e9, RateBurst: 1e9,
		Prices: map[protocol.ExecutorClass]int64{protocol.ExecutorClassAlwaysOnTest: 1}, Logger: discard()})
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(f.Handler())
	defer srv.Close()
	user := "5CiPPseXPECbkjWCa6MnjNokrgYjMqmKndv2rSnekmSK2DjL"
	if _, err := f.Grant(context.Background(), user, 1<<60, ""); err != nil {
		b.Fatal(err)
	}
	secret := apiKeyPrefix + uuid.NewString()
	if _, err := db.CreateAPIKey(context.Background(), user, "bench", hashAPIKey(secret)); err != nil {
		b.Fatal(err)
	}
	body, _ := json.Marshal(SubmitRequest{ExecutorClass: "always_on.test", DockerImage: "horde-jobs/hello:dev", Args: []string{"x"},
		DownloadTimeLimit: 60, ExecutionTimeLimit: 60, UploadTimeLimit: 60})
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: benchClients}}
	n := max(b.N, 2000)
	b.ResetTimer()
	runClients(b, n, func() error { return post(client, srv.URL+"/api/v1/jobs", secret, body, http.StatusCreated) })
}

func benchBarePost(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req SubmitRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		writeJSON(w, http.StatusCreated, map[string]string{"uuid": uuid.NewString()})
	}))
	defer srv.Close()
	body, _ := json.Marshal(SubmitRequest{ExecutorClass: "always_on.test", DockerImage: "horde-jobs/hello:dev"})
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: benchClients}}
	n := max(b.N, 2000)
	b.ResetTimer()
	runClients(b, n, func() error { return post(client, srv.URL, "", body, http.StatusCreated) })
}

func benchInsert(b *testing.B, db *store.DB) {
	spec := json.RawMessage(`{"uuid":"x"}`)
	n := max(b.N, 2000)
	b.ResetTimer()
	runClients(b, n, func() error {
		_, _, err := db.CreateFacJob(context.Background(), store.FacJob{UUID: uuid.NewString(), User: "bench", Class: "always_on.test",
			Status: store.FacJobQueued, Spec: spec, Price: 1, MaxCost: 1})
		return err
	})
}

func post(c *http.Client, url, key string, body []byte, want int) error {
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	data, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != want {
		return &httpError{resp.StatusCode, string(data)}
	}
	return nil
}

type httpError struct {
	status int
	body   string
}

func (e *httpError) Error() string { return http.StatusText(e.status) + ": " + e.body }

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }
