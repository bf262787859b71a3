package miner

// Benchmarks of job round trips between a validator client and the miner, with executors
// that answer at once (in-process, over the real executor websocket), so that what is
// measured is the miner's own work per job and the protocol work around it: signing and
// verifying receipts, JSON, websocket frames on loopback, the store's writes.
//
//	go test -run '^$' -bench JobRoundTrip -benchtime 2000x ./internal/miner/
//
// Everything runs in the one test process: the validator client, the miner, its executors
// and SQLite. cpu-ms/job is that process's CPU time (user+system, from /proc/self/stat on
// Linux; absent elsewhere) per job, all three roles together.

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/computehorde/horde/internal/chain"
	"github.com/computehorde/horde/internal/chain/sim"
	"github.com/computehorde/horde/internal/keys"
	"github.com/computehorde/horde/internal/protocol"
	"github.com/computehorde/horde/internal/store"
	"github.com/computehorde/horde/internal/wsconn"
)

// benchParallelism is b.SetParallelism's factor in the parallel benchmark: that many
// validator connections per GOMAXPROCS, each with one job in flight at a time.
const benchParallelism = 8

// benchExecutors is the manifest's count: more than any parallel run has jobs in flight, so
// that no job is declined busy.
const benchExecutors = 1 << 14

// benchClass is the class every benchmark job asks for.
const benchClass = protocol.ExecutorClassAlwaysOnTest

// BenchmarkJobRoundTrip measures whole jobs, validator to miner to executor and back:
// initial request with a signed JobStarted receipt → accept → signed JobAccepted receipt →
// executor ready → job request → volumes ready → execution done → job finished → signed
// JobFinished receipt. The miner verifies, countersigns and stores all three receipts, as it
// does for upstream validators, and records the job and its status changes.
//
// sequential: one validator connection, one job at a time. parallel: benchParallelism ×
// GOMAXPROCS connections, each with one job at a time. Each runs on an in-memory SQLite
// store and on a SQLite file (WAL, synchronous=FULL: what a miner runs with, so every commit
// waits for the disk).
func BenchmarkJobRoundTrip(b *testing.B) {
	stores := []struct{ name, dsn string }{
		{"store=memory", "sqlite::memory:"},
		{"store=file", ""}, // a file in the benchmark's temp dir
	}
	b.Run("sequential", func(b *testing.B) {
		for _, st := range stores {
			b.Run(st.name, func(b *testing.B) { benchSequential(b, st.dsn) })
		}
	})
	b.Run("parallel", func(b *testing.B) {
		for _, st := range stores {
			b.Run(st.name, func(b *testing.B) { benchParallel(b, st.dsn) })
		}
	})
}

func benchSequential(b *testing.B, dsn string) {
	bm := newBenchMiner(b, dsn)
	ctx := bm.ctx
	v, err := bm.dialValidator(ctx)
	if err != nil {
		b.Fatal(err)
	}
	defer v.conn.CloseNow()
	// One job before measuring: the first of each kind of statement and connection.
	if err := v.runJob(ctx); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	cpu := benchProcessCPU()
	b.ResetTimer()
	for range b.N {
		if err := v.runJob(ctx); err != nil {
			b.Fatal(err)
		}
	}
	// The last JobFinished receipt has no answer: wait until the miner has stored it.
	if err := v.barrier(ctx); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	bm.report(b, cpu)
}

func benchParallel(b *testing.B, dsn string) {
	bm := newBenchMiner(b, dsn)
	ctx := bm.ctx
	b.SetParallelism(benchParallelism)
	// Connections are dialled and authenticated before the clock starts; each goroutine of
	// RunParallel (benchParallelism × GOMAXPROCS of them) takes its own.
	vals := make([]*benchValidator, benchParallelism*runtime.GOMAXPROCS(0))
	for i := range vals {
		v, err := bm.dialValidator(ctx)
		if err != nil {
			b.Fatal(err)
		}
		defer v.conn.CloseNow()
		if err := v.runJob(ctx); err != nil { // warm up, as in sequential
			b.Fatal(err)
		}
		vals[i] = v
	}
	var next atomic.Int32
	b.ReportAllocs()
	cpu := benchProcessCPU()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		v := vals[next.Add(1)-1]
		for pb.Next() {
			if err := v.runJob(ctx); err != nil {
				b.Error(err)
				return
			}
		}
		if err := v.barrier(ctx); err != nil {
			b.Error(err)
		}
	})
	b.StopTimer()
	bm.report(b, cpu)
}

// benchMiner is a miner on loopback with instant executors, over a simulated chain where
// //Alice is a validator with permit and stake and //Bob is the miner.
type benchMiner struct {
	ctx         context.Context
	url         string
	alice, bob  *keys.Keypair
	aliceHotkey string
	minerHotkey string
	execs       *benchInstantExecutors
}

func newBenchMiner(b *testing.B, dsn string) *benchMiner {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	b.Cleanup(cancel)
	key := func(uri string) *keys.Keypair {
		k, err := keys.FromURI(uri)
		if err != nil {
			b.Fatal(err)
		}
		return k
	}
	bm := &benchMiner{ctx: ctx, alice: key("//Alice"), bob: key("//Bob")}
	bm.aliceHotkey, bm.minerHotkey = bm.alice.SS58(), bm.bob.SS58()
	permit := true
	c, err := sim.New(sim.Genesis{
		NetUID: netuid,
		Neurons: []sim.NeuronSpec{
			{Hotkey: chain.Hotkey(bm.aliceHotkey), Coldkey: "c1", Stake: 1e13, ValidatorPermit: &permit},
			{Hotkey: chain.Hotkey(bm.minerHotkey), Coldkey: "c2"},
		},
	})
	if err != nil {
		b.Fatal(err)
	}
	if dsn == "" {
		dsn = "sqlite:" + filepath.Join(b.TempDir(), "miner.db")
	}
	db, err := store.Open(ctx, store.Config{DSN: dsn})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	// The miner logs at Info, as it runs: each line is formatted, then discarded.
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	mc, err := chain.NewMetagraphCache(chain.CacheConfig{Chain: c, NetUID: netuid, Logger: logger})
	if err != nil {
		b.Fatal(err)
	}
	if err := mc.Refresh(ctx); err != nil {
		b.Fatal(err)
	}
	bm.execs = &benchInstantExecutors{}
	m, err := New(Config{
		Keypair: bm.bob, Chain: c, Metagraph: mc, NetUID: netuid, Store: db, Executors: bm.execs,
		Manifest:          protocol.Manifest{{Class: benchClass, Count: benchExecutors}},
		MinValidatorStake: 1000,
		// The default per-address cap (16) would refuse the parallel benchmark's
		// connections, which all come from 127.0.0.1.
		MaxValidatorConns: 4096, MaxValidatorConnsPerIP: 4096,
		Logger: logger,
	})
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(m.Handler())
	bm.url = "ws" + strings.TrimPrefix(srv.URL, "http")
	bm.execs.url = bm.url
	b.Cleanup(func() {
		m.Close()
		srv.Close()
		bm.execs.wg.Wait()
		if err := bm.execs.firstErr(); err != nil {
			b.Errorf("an executor failed: %v", err)
		}
	})
	return bm
}

// report adds jobs/s and the process's CPU time per job.
func (bm *benchMiner) report(b *testing.B, cpuBefore time.Duration) {
	secs := b.Elapsed().Seconds()
	if secs > 0 {
		b.ReportMetric(float64(b.N)/secs, "jobs/s")
	}
	if cpuBefore >= 0 {
		if after := benchProcessCPU(); after >= 0 {
			b.ReportMetric(float64((after-cpuBefore).Microseconds())/1000/float64(b.N), "cpu-ms/job")
		}
	}
}

// benchProcessCPU returns this process's user+system CPU time from /proc/self/stat, or -1
// where there is none. Its resolution is one clock tick (10 ms), fine over thousands of
// jobs.
func benchProcessCPU() time.Duration {
	data, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return -1
	}
	// The command name (field 2) is in parentheses and may hold spaces: count from after it.
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return -1
	}
	f := strings.Fields(s[i+1:]) // f[0] is field 3 (state); utime and stime are fields 14 and 15
	if len(f) < 13 {
		return -1
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return -1
	}
	const ticksPerSecond = 100 // USER_HZ, 100 on every Linux architecture Go supports
	return time.Duration(ut+st) * (time.Second / ticksPerSecond)
}

// benchInstantExecutors is an ExecutorManager whose executors run in this process and
// answer at once, over the real executor endpoint: read the initial request, report ready,
// read the job request, report volumes ready, execution done and job finished, then wait
// for the miner to close the connection, as an executor that exits after its job does.
type benchInstantExecutors struct {
	url string
	wg  sync.WaitGroup

	mu  sync.Mutex
	err error // the first failure
}

func (e *benchInstantExecutors) Start(_ context.Context, req ExecutorRequest) error {
	e.wg.Go(func() {
		if err := e.run(req); err != nil {
			e.mu.Lock()
			if e.err == nil {
				e.err = fmt.Errorf("job %s: %w", req.JobUUID, err)
			}
			e.mu.Unlock()
		}
	})
	return nil
}

func (e *benchInstantExecutors) firstErr() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.err
}

func (e *benchInstantExecutors) run(req ExecutorRequest) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := wsconn.Dial(ctx, e.url+ExecutorPathPrefix+req.Token)
	if err != nil {
		return err
	}
	defer conn.CloseNow()
	if _, err := benchRead[*protocol.V0InitialJobRequest](ctx, conn, protocol.DecodeMinerToExecutor); err != nil {
		return err
	}
	id := req.JobUUID
	if err := conn.Send(ctx, &protocol.V0ExecutorReadyRequest{JobUUID: id}); err != nil {
		return err
	}
	if _, err := benchRead[*protocol.V0JobRequest](ctx, conn, protocol.DecodeMinerToExecutor); err != nil {
		return err
	}
	for _, m := range []protocol.Message{
		&protocol.V0VolumesReadyRequest{JobUUID: id},
		&protocol.V0ExecutionDoneRequest{JobUUID: id},
		&protocol.V0JobFinishedRequest{JobUUID: id, DockerProcessStdout: "ok"},
	} {
		if err := conn.Send(ctx, m); err != nil {
			return err
		}
	}
	// The miner closes the connection once it has relayed the outcome; reading completes
	// the closing handshake. The job is over, so how the connection ends does not matter.
	if frame, err := conn.ReadFrame(ctx); err == nil {
		return fmt.Errorf("the miner sent a frame after the job finished: %s", frame)
	}
	return nil
}

// benchRead reads the next message and checks that it is a T.
func benchRead[T protocol.Message](ctx context.Context, conn *wsconn.Conn, decode func([]byte) (protocol.Message, error)) (T, error) {
	var zero T
	frame, err := conn.ReadFrame(ctx)
	if err != nil {
		return zero, err
	}
	msg, err := decode(frame)
	if err != nil {
		return zero, err
	}
	m, ok := msg.(T)
	if !ok {
		return zero, fmt.Errorf("got %s, want %T: %s", msg.MessageType(), zero, frame)
	}
	return m, nil
}

// benchValidator is one authenticated validator connection of //Alice, running one job at
// a time as upstream's validator does: it signs the JobStarted, JobAccepted and
// JobFinished receipts of each job.
type benchValidator struct {
	bm   *benchMiner
	conn *wsconn.Conn
}

// dialValidator connects and authenticates as //Alice, and reads the manifest.
func (bm *benchMiner) dialValidator(ctx context.Context) (*benchValidator, error) {
	conn, err := wsconn.Dial(ctx, bm.url+ValidatorPathPrefix+bm.aliceHotkey)
	if err != nil {
		return nil, err
	}
	auth := &protocol.ValidatorAuthForMiner{ValidatorHotkey: bm.aliceHotkey, MinerHotkey: bm.minerHotkey, Timestamp: time.Now().Unix()}
	auth.Signature = bm.alice.Sign(auth.BlobForSigning()).Hex()
	v := &benchValidator{bm: bm, conn: conn}
	if err := conn.Send(ctx, auth); err != nil {
		conn.CloseNow()
		return nil, err
	}
	if _, err := benchRead[*protocol.V0ExecutorManifestRequest](ctx, conn, protocol.DecodeMinerToValidator); err != nil {
		conn.CloseNow()
		return nil, fmt.Errorf("after auth: %w", err)
	}
	return v, nil
}

// benchValidatorRead returns the next message about the job, which must be a T. Manifest
// updates are skipped.
func benchValidatorRead[T protocol.Message](ctx context.Context, v *benchValidator) (T, error) {
	var zero T
	for {
		frame, err := v.conn.ReadFrame(ctx)
		if err != nil {
			return zero, err
		}
		msg, err := protocol.DecodeMinerToValidator(frame)
		if err != nil {
			return zero, err
		}
		if _, ok := msg.(*protocol.V0ExecutorManifestRequest); ok {
			continue
		}
		m, ok := msg.(T)
		if !ok {
			return zero, fmt.Errorf("got %s, want %T: %s", msg.MessageType(), zero, frame)
		}
		return m, nil
	}
}

// runJob runs one job to its end and sends its JobFinished receipt.
func (v *benchValidator) runJob(ctx context.Context) error {
	bm := v.bm
	id := uuid.NewString()
	start := time.Now()
	started := protocol.JobStartedReceiptPayload{
		JobUUID: id, MinerHotkey: bm.minerHotkey, ValidatorHotkey: bm.aliceHotkey,
		Timestamp: protocol.NewTimestamp(start), ExecutorClass: benchClass, IsOrganic: true, TTL: 7,
	}
	timing := &protocol.ExecutorTiming{AllowedLeeway: 5, DownloadTimeLimit: 5, ExecutionTimeLimit: 5, UploadTimeLimit: 5}
	if err := v.conn.Send(ctx, &protocol.V0InitialJobRequest{
		JobUUID: id, ExecutorClass: benchClass, DockerImage: new("horde-bench/none"),
		JobStartedReceiptPayload: started, JobStartedReceiptSignature: bm.alice.Sign(started.BlobForSigning()).Hex(),
		ExecutorTiming: timing, TimeoutSeconds: new(300),
	}); err != nil {
		return err
	}
	if _, err := benchValidatorRead[*protocol.V0AcceptJobRequest](ctx, v); err != nil {
		return fmt.Errorf("job %s: %w", id, err)
	}
	acceptedAt := time.Now()
	acc := protocol.JobAcceptedReceiptPayload{
		JobUUID: id, MinerHotkey: bm.minerHotkey, ValidatorHotkey: bm.aliceHotkey,
		Timestamp: protocol.NewTimestamp(acceptedAt), TimeAccepted: protocol.NewTimestamp(acceptedAt), TTL: 30,
	}
	if err := v.conn.Send(ctx, &protocol.V0JobAcceptedReceiptRequest{Payload: acc, Signature: bm.alice.Sign(acc.BlobForSigning()).Hex()}); err != nil {
		return err
	}
	if _, err := benchValidatorRead[*protocol.V0ExecutorReadyRequest](ctx, v); err != nil {
		return fmt.Errorf("job %s: %w", id, err)
	}
	if err := v.conn.Send(ctx, &protocol.V0JobRequest{
		JobUUID: id, ExecutorClass: benchClass, DockerImage: "horde-bench/none",
		DockerRunOptionsPreset: protocol.DockerRunOptionsPresetNone, DockerRunCmd: []string{},
	}); err != nil {
		return err
	}
	if _, err := benchValidatorRead[*protocol.V0VolumesReadyRequest](ctx, v); err != nil {
		return fmt.Errorf("job %s: %w", id, err)
	}
	if _, err := benchValidatorRead[*protocol.V0ExecutionDoneRequest](ctx, v); err != nil {
		return fmt.Errorf("job %s: %w", id, err)
	}
	fin, err := benchValidatorRead[*protocol.V0JobFinishedRequest](ctx, v)
	if err != nil {
		return fmt.Errorf("job %s: %w", id, err)
	}
	if fin.DockerProcessStdout != "ok" {
		return fmt.Errorf("job %s: stdout %q, want ok", id, fin.DockerProcessStdout)
	}
	now := time.Now()
	p := protocol.JobFinishedReceiptPayload{
		JobUUID: id, MinerHotkey: bm.minerHotkey, ValidatorHotkey: bm.aliceHotkey,
		Timestamp: protocol.NewTimestamp(now), TimeStarted: protocol.NewTimestamp(start),
		TimeTookUS: now.Sub(start).Microseconds(), ScoreStr: protocol.FormatScore(15), BlockNumbers: []int{},
	}
	return v.conn.Send(ctx, &protocol.V0JobFinishedReceiptRequest{Payload: p, Signature: bm.alice.Sign(p.BlobForSigning()).Hex()})
}

// barrier returns once the miner has handled everything sent before it on the connection:
// it answers V0MainHotkeyMessage in order.
func (v *benchValidator) barrier(ctx context.Context) error {
	if err := v.conn.Send(ctx, &protocol.V0MainHotkeyMessage{}); err != nil {
		return err
	}
	_, err := benchValidatorRead[*protocol.V0MainHotkeyMessage](ctx, v)
	return err
}
