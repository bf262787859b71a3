package minerd

import (
	"context"
	"log/slog"
	"path/filepath"
	"sync"

	"github.com/computehorde/horde/internal/miner"
	"github.com/computehorde/horde/internal/statussock"
)

// StatusSocket is where a running miner answers `horde miner status`.
func StatusSocket(dataDir string) string { return filepath.Join(dataDir, "miner.sock") }

// serveStatus answers GET /status with the miner's Status until stop or ctx ends.
func serveStatus(ctx context.Context, wg *sync.WaitGroup, path string, m *miner.Miner, log *slog.Logger) (stop func(), err error) {
	return statussock.Serve(ctx, wg, path, log, map[string]func(context.Context) (any, error){
		"/status": func(ctx context.Context) (any, error) { return m.Status(ctx) },
	})
}

// ReadStatus asks the miner running on dataDir for its status.
func ReadStatus(ctx context.Context, dataDir string) (miner.Status, error) {
	var st miner.Status
	err := statussock.Get(ctx, StatusSocket(dataDir), "/status", &st)
	return st, err
}
