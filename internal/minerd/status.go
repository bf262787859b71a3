package minerd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/computehorde/horde/internal/miner"
)

// StatusSocket is where a running miner answers `horde miner status`: a unix socket in its
// data directory, readable by its owner only, so the terminal needs no credentials.
func StatusSocket(dataDir string) string { return filepath.Join(dataDir, "miner.sock") }

// serveStatus answers GET /status on the socket with the miner's Status as JSON until
// stop is called or ctx ends.
func serveStatus(ctx context.Context, wg *sync.WaitGroup, path string, m *miner.Miner, log *slog.Logger) (stop func(), err error) {
	// A socket left by a killed miner is stale: nobody answers on it.
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return nil, fmt.Errorf("another miner runs on data_dir %s (it answers on %s); stop it or use another data_dir", filepath.Dir(path), path)
	}
	_ = os.Remove(path)
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("status socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("status socket: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		st, err := m.Status(r.Context())
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(st)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	wg.Go(func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Warn("status socket stopped", "err", err)
		}
	})
	stop = func() {
		_ = srv.Close()
		_ = os.Remove(path)
	}
	context.AfterFunc(ctx, stop)
	return stop, nil
}

// ReadStatus asks the miner running on dataDir for its status.
func ReadStatus(ctx context.Context, dataDir string) (miner.Status, error) {
	path := StatusSocket(dataDir)
	c := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", path)
	}}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://miner/status", nil)
	if err != nil {
		return miner.Status{}, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return miner.Status{}, fmt.Errorf("no miner answers on %s (is `horde miner run` running with this data_dir?): %w", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return miner.Status{}, fmt.Errorf("the miner answered %s", resp.Status)
	}
	var st miner.Status
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return miner.Status{}, fmt.Errorf("the miner's status does not decode: %w", err)
	}
	return st, nil
}
