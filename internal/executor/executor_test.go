package executor_test

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/google/uuid"
	"go.uber.org/goleak"

	"github.com/computehorde/horde/internal/clock/clocktest"
	"github.com/computehorde/horde/internal/egress"
	"github.com/computehorde/horde/internal/executor"
	"github.com/computehorde/horde/internal/executor/docker"
	"github.com/computehorde/horde/internal/jobimage/jobimagetest"
	"github.com/computehorde/horde/internal/protocol"
)

func TestMain(m *testing.M) {
	code := m.Run()
	jobimagetest.Cleanup()
	if code == 0 {
		// Every goroutine the executor started (reader, engine calls) must be gone.
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goroutine leak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// ---- a scripted miner ----

// step is one action of the fake miner: send a frame, or wait for one message from the
// executor (checked by the test afterwards).
type step struct {
	send   string // raw frame to send
	binary []byte // binary frame to send, a protocol violation
	expect int    // number of executor messages to receive before the next step
	hangUp bool   // drop the connection without a closing handshake
	before func() // runs before the step's action (on the miner's goroutine)
}

// fakeMiner serves the executor endpoint for one token and records everything the executor
// sends, in order.
type fakeMiner struct {
	t      *testing.T
	token  string
	script []step
	srv    *httptest.Server

	// onMessage, if set, is called with the count of messages received so far after each one.
	onMessage func(n int)

	mu       sync.Mutex
	got      []protocol.Message
	raw      []string
	path     string
	finished chan struct{}
}

func newFakeMiner(t *testing.T, token string, script ...step) *fakeMiner {
	m := &fakeMiner{t: t, token: token, script: script, finished: make(chan struct{})}
	m.srv = httptest.NewServer(http.HandlerFunc(m.serve))
	t.Cleanup(m.srv.Close)
	return m
}

func (m *fakeMiner) url() string { return "ws" + strings.TrimPrefix(m.srv.URL, "http") }

func (m *fakeMiner) serve(w http.ResponseWriter, r *http.Request) {
	defer close(m.finished)
	m.mu.Lock()
	m.path = r.URL.Path
	m.mu.Unlock()
	ws, err := websocket.Accept(w, r, nil)
	if err != nil {
		m.t.Errorf("accept: %v", err)
		return
	}
	defer ws.CloseNow()
	ws.SetReadLimit(protocol.MaxFrameSize)
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Minute)
	defer cancel()
	for _, s := range m.script {
		if s.before != nil {
			s.before()
		}
		if s.hangUp {
			return // the deferred CloseNow drops the connection
		}
		if s.send != "" {
			if err := ws.Write(ctx, websocket.MessageText, []byte(s.send)); err != nil {
				m.t.Errorf("miner send: %v", err)
				return
			}
		}
		if s.binary != nil {
			if err := ws.Write(ctx, websocket.MessageBinary, s.binary); err != nil {
				m.t.Errorf("miner send: %v", err)
				return
			}
		}
		for range s.expect {
			if !m.readOne(ctx, ws) {
				return
			}
		}
	}
	// Then read until the executor closes the connection.
	for m.readOne(ctx, ws) {
	}
}

func (m *fakeMiner) readOne(ctx context.Context, ws *websocket.Conn) bool {
	_, data, err := ws.Read(ctx)
	if err != nil {
		return false
	}
	msg, err := protocol.DecodeExecutorToMiner(data)
	if err != nil {
		m.t.Errorf("executor sent an undecodable frame %s: %v", data, err)
		return false
	}
	if len(data) > 400 {
		m.t.Logf("executor → miner: %s…", data[:400])
	} else {
		m.t.Logf("executor → miner: %s", data)
	}
	m.mu.Lock()
	m.got = append(m.got, msg)
	m.raw = append(m.raw, string(data))
	n := len(m.got)
	m.mu.Unlock()
	if m.onMessage != nil {
		m.onMessage(n)
	}
	return true
}

func (m *fakeMiner) messages() []protocol.Message {
	select {
	case <-m.finished:
	case <-time.After(30 * time.Second):
		m.t.Fatal("fake miner did not finish")
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]protocol.Message(nil), m.got...)
}

func types(msgs []protocol.Message) []string {
	var out []string
	for _, m := range msgs {
		out = append(out, m.MessageType())
	}
	return out
}

// ---- message builders (raw JSON, as a miner would send it) ----

type job struct {
	uuid  string
	token string
	image string
}

func newJob(image string) job {
	u := uuid.NewString()
	return job{uuid: u, token: u + "-" + uuid.NewString(), image: image}
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func (j job) initial(mod func(map[string]any)) string {
	m := map[string]any{
		"message_type":    "V0InitialJobRequest",
		"job_uuid":        j.uuid,
		"executor_class":  "always_on.test",
		"docker_image":    j.image,
		"timeout_seconds": nil,
		"volume":          nil,
		"job_started_receipt_payload": map[string]any{
			"job_uuid":         j.uuid,
			"miner_hotkey":     "5FHneW46xGXgs5mUiveU4sbTyGBzmstUspZC92UhjJM694ty",
			"validator_hotkey": "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY",
			"timestamp":        "2026-01-21T13:18:47Z",
			"receipt_type":     "JobStartedReceipt",
			"executor_class":   "always_on.test",
			"is_organic":       true,
			"ttl":              30,
		},
		"job_started_receipt_signature": "0x" + strings.Repeat("00", 64),
		"streaming_details":             nil,
		"executor_timing": map[string]any{
			"allowed_leeway": 5, "download_time_limit": 10, "execution_time_limit": 30,
			"upload_time_limit": 10, "streaming_start_time_limit": 5,
		},
	}
	if mod != nil {
		mod(m)
	}
	return mustJSON(m)
}

func (j job) request(mod func(map[string]any)) string {
	m := map[string]any{
		"message_type":              "V0JobRequest",
		"job_uuid":                  j.uuid,
		"executor_class":            "always_on.test",
		"docker_image":              j.image,
		"raw_script":                nil,
		"docker_run_options_preset": "none",
		"docker_run_cmd":            []string{},
		"env":                       map[string]string{},
		"volume":                    nil,
		"output_upload":             nil,
		"artifacts_dir":             nil,
	}
	if mod != nil {
		mod(m)
	}
	return mustJSON(m)
}

func inlineVolume(t *testing.T, files map[string]string) map[string]any {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for name, body := range files {
		w, err := zw.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte(body))
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return map[string]any{"volume_type": "inline", "contents": base64.StdEncoding.EncodeToString(buf.Bytes()), "relative_path": nil}
}

// ---- running the executor ----

type env struct {
	rt      *docker.Runtime
	workDir string
	image   string
}

func newEnv(t *testing.T) env {
	t.Helper()
	jobimagetest.Engine(t)
	img := jobimagetest.Hello(t)
	workDir := t.TempDir()
	rt, err := docker.New(context.Background(), docker.Options{WorkDir: workDir, ExecutorID: "executor-test", DiskPollInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Close() })
	return env{rt: rt, workDir: workDir, image: img}
}

func (e env) run(t *testing.T, m *fakeMiner, mod func(*executor.Config)) error {
	t.Helper()
	return e.runCtx(context.Background(), t, m, mod)
}

func (e env) runCtx(ctx context.Context, t *testing.T, m *fakeMiner, mod func(*executor.Config)) error {
	t.Helper()
	cfg := executor.Config{
		MinerURL:     m.url(),
		Token:        m.token,
		Runtime:      e.rt,
		DialAttempts: 1,
		Egress:       egress.Policy{Allow: egress.Loopback}, // the test's servers are on loopback
	}
	if testing.Verbose() {
		cfg.Logger = testLogger(t)
	}
	if mod != nil {
		mod(&cfg)
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	start := time.Now()
	err := executor.Run(ctx, cfg)
	t.Logf("executor.Run took %v", time.Since(start))
	return err
}

// runRequest runs job j with the default initial request and the job request changed by mod,
// the executor's config changed by cfg, and returns everything the executor sent.
func (e env) runRequest(t *testing.T, j job, mod func(map[string]any), cfg func(*executor.Config)) []protocol.Message {
	t.Helper()
	m := newFakeMiner(t, j.token, step{send: j.initial(nil), expect: 1}, step{send: j.request(mod)})
	if err := e.run(t, m, cfg); err != nil {
		t.Fatal(err)
	}
	return m.messages()
}

// assertClean checks that the job left no container and no files.
func (e env) assertClean(t *testing.T, jobUUID string) {
	t.Helper()
	list, err := e.rt.Client().ContainerList(context.Background(), container.ListOptions{
		All: true, Filters: filters.NewArgs(filters.Arg("label", docker.LabelJobUUID+"="+jobUUID)),
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 0 {
		t.Errorf("%d container(s) left for job %s", len(list), jobUUID)
	}
	entries, err := os.ReadDir(e.workDir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 0 {
		t.Errorf("work directory not empty: %v", entries)
	}
}

func checkTypes(t *testing.T, got []protocol.Message, want ...string) {
	t.Helper()
	if g := strings.Join(types(got), ","); g != strings.Join(want, ",") {
		t.Fatalf("executor sent %s\nwant %s", g, strings.Join(want, ","))
	}
}

// ---- tests ----

func TestHappyPath(t *testing.T) {
	e := newEnv(t)
	j := newJob(e.image)
	m := newFakeMiner(t, j.token,
		step{send: j.initial(func(m map[string]any) {
			m["volume"] = inlineVolume(t, map[string]string{"payload.txt": "12345", "sub/x.txt": "x"})
		}), expect: 1},
		step{send: j.request(func(m map[string]any) {
			m["docker_run_cmd"] = []string{"a", "b"}
			m["env"] = map[string]string{"FOO": "bar"}
		})},
	)
	if err := e.run(t, m, nil); err != nil {
		t.Fatal(err)
	}
	got := m.messages()
	checkTypes(t, got, "V0ExecutorReadyRequest", "V0VolumesReadyRequest", "V0ExecutionDoneRequest", "V0MachineSpecsRequest", "V0JobFinishedRequest")
	if m.path != "/v0.1/executor_interface/"+j.token {
		t.Errorf("dialled %s", m.path)
	}
	for _, msg := range got {
		if u, _ := protocol.JobUUIDOf(msg); u != j.uuid {
			t.Errorf("%s names job %q", msg.MessageType(), u)
		}
	}
	specs := got[3].(*protocol.V0MachineSpecsRequest)
	for _, key := range []string{`"cpu"`, `"ram"`, `"hard_disk"`, `"os"`, `"gpu"`} {
		if !strings.Contains(string(specs.Specs.Specs), key) {
			t.Errorf("machine specs lack %s: %s", key, specs.Specs.Specs)
		}
	}
	fin := got[4].(*protocol.V0JobFinishedRequest)
	for _, want := range []string{"hello from horde a b\n", "volume: payload.txt 5\n", "volume: sub/x.txt 1\n", "output: wrote hello.txt\n"} {
		if !strings.Contains(fin.DockerProcessStdout, want) {
			t.Errorf("stdout lacks %q: %q", want, fin.DockerProcessStdout)
		}
	}
	if fin.DockerProcessStderr != "" {
		t.Errorf("stderr = %q", fin.DockerProcessStderr)
	}
	if !strings.Contains(m.raw[4], `"artifacts":null,"upload_results":null`) {
		t.Errorf("JobFinished frame: %s", m.raw[4])
	}
	e.assertClean(t, j.uuid)
}

func TestNonZeroExit(t *testing.T) {
	e := newEnv(t)
	j := newJob(e.image)
	got := e.runRequest(t, j, func(m map[string]any) { m["docker_run_cmd"] = []string{"--stderr", "bad input", "--exit", "3"} }, nil)
	checkTypes(t, got, "V0ExecutorReadyRequest", "V0VolumesReadyRequest", "V0JobFailedRequest")
	f := got[2].(*protocol.V0JobFailedRequest)
	if f.Reason != protocol.JobFailureReasonNonzeroReturnCode || f.Stage != protocol.JobStageExecution {
		t.Errorf("reason %s stage %s", f.Reason, f.Stage)
	}
	if f.DockerProcessExitStatus == nil || *f.DockerProcessExitStatus != 3 {
		t.Errorf("exit status %v", f.DockerProcessExitStatus)
	}
	if f.DockerProcessStderr == nil || *f.DockerProcessStderr != "bad input\nexiting with status 3\n" {
		t.Errorf("stderr %v", f.DockerProcessStderr)
	}
	if f.DockerProcessStdout == nil || !strings.HasPrefix(*f.DockerProcessStdout, "hello from horde") {
		t.Errorf("stdout %v", f.DockerProcessStdout)
	}
	e.assertClean(t, j.uuid)
}

func TestExecutionTimeout(t *testing.T) {
	e := newEnv(t)
	j := newJob(e.image)
	m := newFakeMiner(t, j.token,
		step{send: j.initial(func(m map[string]any) {
			m["executor_timing"] = map[string]any{
				"allowed_leeway": 0, "download_time_limit": 10, "execution_time_limit": 1,
				"upload_time_limit": 10, "streaming_start_time_limit": 5,
			}
		}), expect: 1},
		step{send: j.request(func(m map[string]any) { m["docker_run_cmd"] = []string{"--sleep", "30s"} })},
	)
	start := time.Now()
	if err := e.run(t, m, nil); err != nil {
		t.Fatal(err)
	}
	got := m.messages()
	checkTypes(t, got, "V0ExecutorReadyRequest", "V0VolumesReadyRequest", "V0JobFailedRequest")
	f := got[2].(*protocol.V0JobFailedRequest)
	if f.Reason != protocol.JobFailureReasonTimeout || f.Stage != protocol.JobStageExecution {
		t.Errorf("reason %s stage %s: %s", f.Reason, f.Stage, f.Message)
	}
	if f.DockerProcessExitStatus != nil {
		t.Errorf("a timed-out job has exit status %d", *f.DockerProcessExitStatus)
	}
	// The container gets the execution limit, not the 10 s carried over from the download stage.
	if took := time.Since(start); took > 8*time.Second {
		t.Errorf("a 1 s execution limit took %v", took)
	}
	e.assertClean(t, j.uuid)
}

func TestLegacyTimeoutSeconds(t *testing.T) {
	e := newEnv(t)
	j := newJob(e.image)
	m := newFakeMiner(t, j.token,
		step{send: j.initial(func(m map[string]any) {
			m["executor_timing"] = nil
			m["timeout_seconds"] = 60
		}), expect: 1},
		step{send: j.request(nil)},
	)
	if err := e.run(t, m, nil); err != nil {
		t.Fatal(err)
	}
	checkTypes(t, m.messages(), "V0ExecutorReadyRequest", "V0VolumesReadyRequest", "V0ExecutionDoneRequest", "V0MachineSpecsRequest", "V0JobFinishedRequest")
	e.assertClean(t, j.uuid)
}

func TestNoTiming(t *testing.T) {
	e := newEnv(t)
	j := newJob(e.image)
	m := newFakeMiner(t, j.token,
		step{send: j.initial(func(m map[string]any) { m["executor_timing"] = nil }), expect: 2},
	)
	if err := e.run(t, m, nil); err != nil {
		t.Fatal(err)
	}
	got := m.messages()
	checkTypes(t, got, "V0ExecutorReadyRequest", "V0HordeFailedRequest")
	h := got[1].(*protocol.V0HordeFailedRequest)
	if h.Reason != protocol.HordeFailureReasonGenericError || !strings.Contains(h.Message, "No timing received") {
		t.Errorf("%s: %s", h.Reason, h.Message)
	}
	e.assertClean(t, j.uuid)
}

func TestZipSlipVolume(t *testing.T) {
	e := newEnv(t)
	j := newJob(e.image)
	m := newFakeMiner(t, j.token,
		step{send: j.initial(func(m map[string]any) {
			m["volume"] = inlineVolume(t, map[string]string{"../../escape.txt": "gotcha"})
		}), expect: 1},
		step{send: j.request(nil)},
	)
	if err := e.run(t, m, nil); err != nil {
		t.Fatal(err)
	}
	got := m.messages()
	checkTypes(t, got, "V0ExecutorReadyRequest", "V0JobFailedRequest")
	f := got[1].(*protocol.V0JobFailedRequest)
	if f.Reason != protocol.JobFailureReasonDownloadFailed || !strings.Contains(f.Message, "..") {
		t.Errorf("%s %q", f.Reason, f.Message)
	}
	e.assertClean(t, j.uuid)
}

func TestImageUnavailable(t *testing.T) {
	e := newEnv(t)
	j := newJob("127.0.0.1:1/horde-test/missing:nope")
	m := newFakeMiner(t, j.token, step{send: j.initial(nil), expect: 1})
	if err := e.run(t, m, nil); err != nil {
		t.Fatal(err)
	}
	got := m.messages()
	checkTypes(t, got, "V0HordeFailedRequest")
	h := got[0].(*protocol.V0HordeFailedRequest)
	if h.Reason != protocol.HordeFailureReasonGenericError || h.ReportedBy != protocol.JobParticipantTypeExecutor ||
		!strings.Contains(h.Message, "127.0.0.1:1/horde-test/missing:nope") {
		t.Errorf("%s %s %q", h.Reason, h.ReportedBy, h.Message)
	}
	e.assertClean(t, j.uuid)
}

// TestChannelRules: a job request before the initial request, a binary frame, a message of an
// unknown type and a duplicate initial request are answered with GenericError, and the job
// still runs.
func TestChannelRules(t *testing.T) {
	e := newEnv(t)
	j := newJob(e.image)
	m := newFakeMiner(t, j.token,
		step{send: j.request(nil), expect: 1},
		step{send: "PING"},
		step{binary: []byte{0x7b}, expect: 1},
		step{send: `{"message_type":"V0Bogus"}`, expect: 1},
		step{send: j.initial(nil), expect: 1},
		step{send: j.initial(nil), expect: 1},
		step{send: j.request(nil)},
	)
	if err := e.run(t, m, nil); err != nil {
		t.Fatal(err)
	}
	got := m.messages()
	checkTypes(t, got, "GenericError", "GenericError", "GenericError", "V0ExecutorReadyRequest", "GenericError",
		"V0VolumesReadyRequest", "V0ExecutionDoneRequest", "V0MachineSpecsRequest", "V0JobFinishedRequest")
	for i, want := range map[int]string{0: "before an initial job request", 1: "Unsupported message: binary frame",
		2: "Malformed message", 4: "duplicate initial job request"} {
		g := got[i].(*protocol.GenericError)
		if g.Details == nil || !strings.Contains(*g.Details, want) {
			t.Errorf("GenericError %d: %v, want %q", i, g.Details, want)
		}
	}
	e.assertClean(t, j.uuid)
}

// TestStartupTimeout uses a fake clock: the miner never sends the initial request, the test
// moves time past the startup limit.
func TestStartupTimeout(t *testing.T) {
	e := newEnv(t)
	j := newJob(e.image)
	clock := clocktest.NewFake(time.Date(2026, 1, 21, 13, 0, 0, 0, time.UTC))
	m := newFakeMiner(t, j.token, step{expect: 1})
	go func() {
		if clock.AwaitTimers(context.Background(), 1) == nil {
			clock.Advance(6 * time.Second)
		}
	}()
	start := time.Now()
	if err := e.run(t, m, func(c *executor.Config) { c.Clock = clock }); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("took %v with a fake clock", took)
	}
	got := m.messages()
	checkTypes(t, got, "V0HordeFailedRequest")
	h := got[0].(*protocol.V0HordeFailedRequest)
	if h.Reason != protocol.HordeFailureReasonGenericError || h.Message != "Timed out waiting for initial job details" {
		t.Errorf("%s %q", h.Reason, h.Message)
	}
	if h.JobUUID != j.uuid {
		t.Errorf("job_uuid %q, want the token's %q", h.JobUUID, j.uuid)
	}
	e.assertClean(t, j.uuid)
}

// TestCancelDuringExecution: cancelling Run's context kills the running job, cleans up, tells
// the miner and returns the context's error.
func TestCancelDuringExecution(t *testing.T) {
	e := newEnv(t)
	j := newJob(e.image)
	m := newFakeMiner(t, j.token,
		step{send: j.initial(nil), expect: 1},
		step{send: j.request(func(m map[string]any) { m["docker_run_cmd"] = []string{"--sleep", "30s"} })},
	)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	m.onMessage = func(n int) {
		if n == 2 { // VolumesReady: the container is about to start
			time.AfterFunc(500*time.Millisecond, cancel)
		}
	}
	start := time.Now()
	err := e.runCtx(ctx, t, m, nil)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Run = %v, want context.Canceled", err)
	}
	if took := time.Since(start); took > 15*time.Second {
		t.Errorf("cancel took %v", took)
	}
	got := m.messages()
	checkTypes(t, got, "V0ExecutorReadyRequest", "V0VolumesReadyRequest", "V0HordeFailedRequest")
	e.assertClean(t, j.uuid)
}

func TestMinerUnreachable(t *testing.T) {
	e := newEnv(t)
	srv := httptest.NewServer(http.NotFoundHandler())
	url := "ws" + strings.TrimPrefix(srv.URL, "http")
	srv.Close()
	err := executor.Run(context.Background(), executor.Config{MinerURL: url, Token: "tok", Runtime: e.rt, DialAttempts: 1})
	if err == nil || !strings.Contains(err.Error(), "connect to miner") {
		t.Fatalf("Run = %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, c := range []executor.Config{
		{},
		{MinerURL: "ws://x"},
		{MinerURL: "ws://x", Token: "t"},
		{MinerURL: "ftp://x", Token: "t"},
	} {
		if err := c.Validate(); err == nil {
			t.Errorf("%+v validated", c)
		}
	}
}
