package pylon_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/computehorde/horde/internal/chain"
)

// BenchmarkRefresh256 is one refresh of a 256-neuron metagraph from `horde chain sim`'s
// server over loopback HTTP: the GET, the JSON decoding and conversion (client), and the
// same through the metagraph cache, which also indexes it (cache; a new block each time).
func BenchmarkRefresh256(b *testing.B) {
	e := newEnv(b, 253)
	c := e.client(b, "miner", minerToken)
	ctx := context.Background()
	b.Run("client", func(b *testing.B) {
		for b.Loop() {
			mg, err := c.Metagraph(ctx, netuid, 0)
			if err != nil || len(mg.Neurons) != 256 {
				b.Fatal(err)
			}
		}
	})
	b.Run("cache", func(b *testing.B) {
		cache, err := chain.NewMetagraphCache(chain.CacheConfig{Chain: c, NetUID: netuid, Interval: time.Second, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			b.StopTimer()
			e.sim.Advance(1)
			b.StartTimer()
			if err := cache.Refresh(ctx); err != nil {
				b.Fatal(err)
			}
		}
		if len(cache.Latest().Neurons) != 256 {
			b.Fatal("short metagraph")
		}
	})
}
