package chain_test

import (
	"io"
	"log/slog"
	"testing"

	"github.com/computehorde/horde/internal/chain"
	"github.com/computehorde/horde/internal/chain/sim"
)

const benchNeurons = 256

func benchCache(b *testing.B) (*sim.Chain, *chain.MetagraphCache) {
	b.Helper()
	s := newSim(b, benchNeurons, 0)
	c, err := chain.NewMetagraphCache(chain.CacheConfig{Chain: s, NetUID: netuid, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	if err := c.Refresh(b.Context()); err != nil {
		b.Fatal(err)
	}
	return s, c
}

func BenchmarkCacheLatest(b *testing.B) {
	_, c := benchCache(b)
	b.ReportAllocs()
	for b.Loop() {
		if c.Latest() == nil {
			b.Fatal("empty cache")
		}
	}
}

// BenchmarkCacheNeuron is the hot path of a miner checking a validator (and a validator
// finding a miner's axon). Target: well under 1 µs/op with 256 neurons, no allocations.
func BenchmarkCacheNeuron(b *testing.B) {
	_, c := benchCache(b)
	keys := make([]chain.Hotkey, benchNeurons)
	for i := range keys {
		keys[i] = hotkey(i)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, ok := c.Neuron(keys[i%benchNeurons]); !ok {
			b.Fatal("neuron missing")
		}
		i++
	}
}

// BenchmarkCacheRefresh is one refresh per block against the in-process simulator: with the
// neurons unchanged (most blocks) and with one stake changed per block, which rebuilds the
// index. The simulator's own cost (copying 256 neurons per read) is included.
func BenchmarkCacheRefresh(b *testing.B) {
	b.Run("unchanged", func(b *testing.B) {
		s, c := benchCache(b)
		b.ReportAllocs()
		for b.Loop() {
			s.Advance(1)
			if err := c.Refresh(b.Context()); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("changed", func(b *testing.B) {
		s, c := benchCache(b)
		b.ReportAllocs()
		i := uint64(0)
		for b.Loop() {
			i++
			if err := s.SetStake(hotkey(int(i%benchNeurons)), i); err != nil {
				b.Fatal(err)
			}
			s.Advance(1)
			if err := c.Refresh(b.Context()); err != nil {
				b.Fatal(err)
			}
		}
	})
}
