// Package statussock serves a running role's state to its own terminal commands (`horde
// miner status`, `horde validator miners`) over a unix socket in its data directory,
// readable by its owner only, so the commands need no credentials.
package statussock

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
)

// Serve answers GET requests on the unix socket at path with the JSON of the handlers'
// values until stop is called or ctx ends. A socket left by a killed process is replaced;
// one a live process answers on is an error (two processes on one data directory).
func Serve(ctx context.Context, wg *sync.WaitGroup, path string, log *slog.Logger, handlers map[string]func(context.Context) (any, error)) (stop func(), err error) {
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return nil, fmt.Errorf("another process runs on data_dir %s (it answers on %s); stop it or use another data_dir", filepath.Dir(path), path)
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
	for p, h := range handlers {
		mux.HandleFunc("GET "+p, func(w http.ResponseWriter, r *http.Request) {
			v, err := h(r.Context())
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(v)
		})
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	wg.Go(func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Warn("status socket stopped", "err", err)
		}
	})
	var once sync.Once
	stop = func() {
		once.Do(func() {
			_ = srv.Close()
			_ = os.Remove(path)
		})
	}
	context.AfterFunc(ctx, stop)
	return stop, nil
}

// Get asks the process answering on the socket at path for urlPath and decodes the answer
// into v.
func Get(ctx context.Context, path, urlPath string, v any) error {
	c := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", path)
	}}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://local"+urlPath, nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("nothing answers on %s (is the process running with this data_dir?): %w", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("the process answered %s", resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return fmt.Errorf("the answer does not decode: %w", err)
	}
	return nil
}
