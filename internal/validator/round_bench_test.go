package validator

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http/httptest"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/computehorde/horde/internal/chain"
	"github.com/computehorde/horde/internal/chain/sim"
	"github.com/computehorde/horde/internal/keys"
	"github.com/computehorde/horde/internal/miner"
	"github.com/computehorde/horde/internal/protocol"
	"github.com/computehorde/horde/internal/store"
	"github.com/computehorde/horde/internal/wsconn"
	"github.com/computehorde/horde/jobs/bench/benchjob"
)

// instantBench is an executor manager whose executors, in-process, solve the benchmark at
// once over the real executor websocket.
type instantBench struct {
	url string
	wg  sync.WaitGroup
}

func (x *instantBench) Start(_ context.Context, req miner.ExecutorRequest) error {
	x.wg.Go(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		conn, err := wsconn.Dial(ctx, x.url+miner.ExecutorPathPrefix+req.Token)
		if err != nil {
			return
		}
		defer conn.CloseNow()
		read := func() protocol.Message {
			f, err := conn.ReadFrame(ctx)
			if err != nil {
				return nil
			}
			m, _ := protocol.DecodeMinerToExecutor(f)
			return m
		}
		read() // V0InitialJobRequest
		_ = conn.Send(ctx, &protocol.V0ExecutorReadyRequest{JobUUID: req.JobUUID})
		job, ok := read().(*protocol.V0JobRequest)
		if !ok {
			return
		}
		tasks, _ := benchjob.ParseArgs(job.DockerRunCmd, io.Discard)
		secrets, _ := benchjob.SolveAll(tasks, 1)
		var answer strings.Builder
		for _, x := range secrets {
			fmt.Fprintln(&answer, x)
		}
		_ = conn.Send(ctx, &protocol.V0VolumesReadyRequest{JobUUID: req.JobUUID})
		_ = conn.Send(ctx, &protocol.V0ExecutionDoneRequest{JobUUID: req.JobUUID})
		_ = conn.Send(ctx, &protocol.V0JobFinishedRequest{JobUUID: req.JobUUID, DockerProcessStdout: answer.String()})
	})
	return nil
}

// BenchmarkRound256 is one benchmark round across 256 in-process miners with 8 executors
// each that answer at once: every miner benchmarked on its class, each answer checked.
// Reported: the round's time per op, and the process's peak RSS (miners included, since
// they run in the same process) and the heap the round grew.
func BenchmarkRound256(b *testing.B) {
	const miners = 256
	quiet := slog.New(slog.DiscardHandler)
	validatorKey, err := keys.FromURI("//Alice")
	if err != nil {
		b.Fatal(err)
	}
	permit, none := true, false
	genesis := sim.Genesis{NetUID: netuid, RelaxedAxonIPs: true, MaxNeurons: miners + 1,
		Neurons: []sim.NeuronSpec{{Hotkey: chain.Hotkey(validatorKey.SS58()), Stake: 1e13, ValidatorPermit: &permit}}}
	minerKeys := make([]*keys.Keypair, miners)
	for i := range minerKeys {
		if minerKeys[i], err = keys.FromURI(fmt.Sprintf("//Miner%d", i)); err != nil {
			b.Fatal(err)
		}
		genesis.Neurons = append(genesis.Neurons, sim.NeuronSpec{Hotkey: chain.Hotkey(minerKeys[i].SS58()), ValidatorPermit: &none})
	}
	c, err := sim.New(genesis)
	if err != nil {
		b.Fatal(err)
	}
	mc, err := chain.NewMetagraphCache(chain.CacheConfig{Chain: c, NetUID: netuid, Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if err := mc.Refresh(ctx); err != nil {
		b.Fatal(err)
	}
	for i, k := range minerKeys {
		db, err := store.Open(ctx, store.Config{DSN: "sqlite::memory:"})
		if err != nil {
			b.Fatal(err)
		}
		execs := &instantBench{}
		m, err := miner.New(miner.Config{Keypair: k, Chain: c, Metagraph: mc, NetUID: netuid, Store: db, Executors: execs,
			Manifest: protocol.Manifest{{Class: protocol.ExecutorClassAlwaysOnTest, Count: 8}}, Logger: quiet})
		if err != nil {
			b.Fatal(err)
		}
		srv := httptest.NewServer(m.Handler())
		execs.url = "ws" + strings.TrimPrefix(srv.URL, "http")
		b.Cleanup(func() { m.Close(); srv.Close(); execs.wg.Wait(); db.Close() })
		port := srv.Listener.Addr().(*net.TCPAddr).Port
		if err := c.ServeAxon(ctx, chain.Hotkey(k.SS58()), netuid, netip.MustParseAddr("127.0.0.1"), uint16(port)); err != nil {
			b.Fatal(i, err)
		}
	}
	c.Advance(1)
	if err := mc.Refresh(ctx); err != nil {
		b.Fatal(err)
	}
	vdb, err := store.Open(ctx, store.Config{DSN: "sqlite:" + b.TempDir() + "/validator.db"})
	if err != nil {
		b.Fatal(err)
	}
	defer vdb.Close()

	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	var peakHeap uint64
	for b.Loop() {
		b.StopTimer()
		v, err := New(Config{Keypair: validatorKey, Chain: c, Metagraph: mc, NetUID: netuid, Store: vdb, Logger: quiet,
			BenchImage: "horde-jobs/bench:test", BenchRate: 1000, BenchSeconds: 1})
		if err != nil {
			b.Fatal(err)
		}
		for _, k := range minerKeys {
			v.manifests.announce(k.SS58(), protocol.Manifest{{Class: protocol.ExecutorClassAlwaysOnTest, Count: 8}}, time.Now())
		}
		b.StartTimer()
		runs := v.BenchmarkRound(ctx)
		b.StopTimer()
		correct := 0
		for _, r := range runs {
			if r.Correct {
				correct++
			}
		}
		if correct != miners {
			b.Fatalf("%d of %d benchmarks answered correctly", correct, miners)
		}
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		peakHeap = max(peakHeap, ms.HeapInuse)
		b.StartTimer()
	}
	b.ReportMetric(float64(peakHeap-min(peakHeap, before.HeapInuse))/(1<<20), "heap-growth-MB")
	if data, err := os.ReadFile("/proc/self/status"); err == nil {
		for line := range strings.Lines(string(data)) {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
				kb, _ := strconv.ParseFloat(f[1], 64)
				b.ReportMetric(kb/1024, "peak-RSS-MB")
			}
		}
	}
}
