package localrun

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/computehorde/horde/internal/executor"
	"github.com/computehorde/horde/internal/keys"
	"github.com/computehorde/horde/internal/protocol"
	"github.com/computehorde/horde/internal/wsconn"
)

// Event is one message the executor sent, with when it came.
type Event struct {
	// Stage is the stage the message ends (executor_startup for V0ExecutorReadyRequest, …);
	// for a failure, the stage it names.
	Stage   protocol.JobStage
	Message protocol.Message
	// At is the time since the run started; Took the time since the previous event.
	At, Took time.Duration
}

// Result is what a run produced.
type Result struct {
	Events []Event
	// Final is the terminal message: *V0JobFinishedRequest, *V0JobFailedRequest or
	// *V0HordeFailedRequest.
	Final protocol.Message
	// Specs is the machine specs the executor reported (nil if none).
	Specs *protocol.V0MachineSpecsRequest
	// Total runs from the start of Run to the terminal message; JobTime from sending
	// V0JobRequest to the terminal message (what a validator waits for once the job is sent).
	Total, JobTime time.Duration
}

// Succeeded reports whether the job finished.
func (r Result) Succeeded() bool {
	_, ok := r.Final.(*protocol.V0JobFinishedRequest)
	return ok
}

// Options configures Run.
type Options struct {
	// Runtime runs the container. Required.
	Runtime executor.Runtime
	// Configure, if set, adjusts the executor's configuration (logger, fetchers, KeepOutput…)
	// before the run; MinerURL, Token and Runtime are set by Run.
	Configure func(*executor.Config)
	// OnEvent, if set, is called for each event as it happens.
	OnEvent func(Event)
}

// Run runs the job (req with the time limits timing, as [ParseSpec] returns them) through a
// fresh executor connected to a loopback miner and returns what the executor reported. An error means the run itself could not happen (no listener, the executor
// could not connect or report); a job that failed is a Result whose Final says why.
func Run(ctx context.Context, req protocol.V0JobRequest, timing protocol.ExecutorTiming, opts Options) (Result, error) {
	if opts.Runtime == nil {
		return Result{}, errors.New("localrun: Options.Runtime is nil")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return Result{}, fmt.Errorf("localrun: listen on loopback: %w", err)
	}
	if req.JobUUID == "" {
		req.JobUUID = uuid.NewString()
	}
	m := &miner{req: req, timing: timing, token: req.JobUUID + "-" + uuid.NewString(), start: time.Now(), onEvent: opts.OnEvent}
	srv := &http.Server{Handler: m, ReadHeaderTimeout: 10 * time.Second}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = srv.Serve(ln)
	}()
	defer func() {
		srv.Close()
		wg.Wait()
	}()

	cfg := executor.Config{}
	if opts.Configure != nil {
		opts.Configure(&cfg)
	}
	cfg.MinerURL = "ws://" + ln.Addr().String()
	cfg.Token = m.token
	cfg.Runtime = opts.Runtime
	cfg.DialAttempts = 1
	runErr := executor.Run(ctx, cfg)

	m.mu.Lock()
	defer m.mu.Unlock()
	res := m.result
	if runErr != nil {
		return res, fmt.Errorf("localrun: executor: %w", runErr)
	}
	if res.Final == nil {
		if m.err != nil {
			return res, fmt.Errorf("localrun: %w", m.err)
		}
		return res, errors.New("localrun: the executor ended without reporting an outcome")
	}
	return res, nil
}

// miner plays the miner's side of one executor connection: initial request, job request after
// ExecutorReady, and a record of everything until the terminal message.
type miner struct {
	req     protocol.V0JobRequest
	timing  protocol.ExecutorTiming
	token   string
	start   time.Time
	onEvent func(Event)

	mu      sync.Mutex
	served  bool
	result  Result
	err     error
	sentJob time.Time
	last    time.Duration
}

func (m *miner) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/v0.1/executor_interface/"+m.token {
		http.Error(w, "unknown executor token", http.StatusForbidden)
		return
	}
	m.mu.Lock()
	if m.served {
		m.mu.Unlock()
		http.Error(w, "executor token already used", http.StatusForbidden)
		return
	}
	m.served = true
	m.mu.Unlock()
	conn, err := wsconn.Accept(w, r)
	if err != nil {
		m.fail(fmt.Errorf("accept executor: %w", err))
		return
	}
	defer conn.CloseNow()
	if err := m.converse(r.Context(), conn); err != nil {
		m.fail(err)
	}
	conn.Close("job done")
}

func (m *miner) fail(err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err == nil {
		m.err = err
	}
}

func (m *miner) converse(ctx context.Context, conn *wsconn.Conn) error {
	initial, err := m.initialRequest()
	if err != nil {
		return err
	}
	if err := conn.Send(ctx, initial); err != nil {
		return err
	}
	for {
		frame, err := conn.ReadFrame(ctx)
		if err != nil {
			return fmt.Errorf("executor connection ended before the job did: %w", err)
		}
		msg, err := protocol.DecodeExecutorToMiner(frame)
		if err != nil {
			return fmt.Errorf("executor sent a malformed message: %w", err)
		}
		terminal := m.record(msg)
		if _, ok := msg.(*protocol.V0ExecutorReadyRequest); ok {
			m.mu.Lock()
			m.sentJob = time.Now()
			m.mu.Unlock()
			if err := conn.Send(ctx, &m.req); err != nil {
				return err
			}
		}
		if terminal {
			return nil
		}
	}
}

// record notes msg and reports whether it ends the job.
func (m *miner) record(msg protocol.Message) bool {
	now := time.Now()
	m.mu.Lock()
	at := now.Sub(m.start)
	ev := Event{Message: msg, At: at, Took: at - m.last}
	m.last = at
	terminal := false
	switch msg := msg.(type) {
	case *protocol.V0ExecutorReadyRequest:
		ev.Stage = protocol.JobStageExecutorStartup
	case *protocol.V0VolumesReadyRequest:
		ev.Stage = protocol.JobStageVolumeDownload
	case *protocol.V0ExecutionDoneRequest:
		ev.Stage = protocol.JobStageExecution
	case *protocol.V0MachineSpecsRequest:
		ev.Stage = protocol.JobStageResultUpload
		m.result.Specs = msg
	case *protocol.V0JobFinishedRequest:
		ev.Stage, terminal = protocol.JobStageResultUpload, true
	case *protocol.V0JobFailedRequest:
		ev.Stage, terminal = msg.Stage, true
	case *protocol.V0HordeFailedRequest:
		ev.Stage, terminal = stageOf(msg), true
	}
	m.result.Events = append(m.result.Events, ev)
	if terminal {
		m.result.Final = msg
		m.result.Total = at
		if !m.sentJob.IsZero() {
			m.result.JobTime = now.Sub(m.sentJob)
		}
	}
	onEvent := m.onEvent
	m.mu.Unlock()
	if onEvent != nil {
		onEvent(ev)
	}
	return terminal
}

// stageOf reads the stage a horde failure names in its context.
func stageOf(m *protocol.V0HordeFailedRequest) protocol.JobStage {
	var c struct {
		Stage string `json:"stage"`
	}
	if len(m.Context) > 0 && json.Unmarshal(m.Context, &c) == nil && c.Stage != "" {
		return protocol.JobStage(c.Stage)
	}
	return protocol.JobStageUnknown
}

// localKeys sign the JobStarted receipt the initial request carries; the executor does not
// check it, but the request should be what a real miner forwards.
var localKeys = sync.OnceValues(func() (*keys.Keypair, error) { return keys.FromURI("//HordeLocalValidator") })

func (m *miner) initialRequest() (*protocol.V0InitialJobRequest, error) {
	validator, err := localKeys()
	if err != nil {
		return nil, err
	}
	req := m.req
	payload := protocol.JobStartedReceiptPayload{
		JobUUID:         req.JobUUID,
		MinerHotkey:     validator.SS58(),
		ValidatorHotkey: validator.SS58(),
		Timestamp:       protocol.NewTimestamp(time.Now()),
		ExecutorClass:   req.ExecutorClass,
		IsOrganic:       true,
		TTL:             m.timing.Total(),
	}
	blob := payload.BlobForSigning()
	image := req.DockerImage
	timing := m.timing
	return &protocol.V0InitialJobRequest{
		JobUUID:                    req.JobUUID,
		ExecutorClass:              req.ExecutorClass,
		DockerImage:                &image,
		JobStartedReceiptPayload:   payload,
		JobStartedReceiptSignature: validator.Sign(blob).Hex(),
		ExecutorTiming:             &timing,
	}, nil
}
