package validator

import (
	"context"
	"errors"
	"net"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/computehorde/horde/internal/chain"
	"github.com/computehorde/horde/internal/hwclass"
	"github.com/computehorde/horde/internal/keys"
	"github.com/computehorde/horde/internal/protocol"
	"github.com/computehorde/horde/internal/store"
)

// TestRunJobRefusedSpecs: a job the validator cannot run is refused before it is recorded.
func TestRunJobRefusedSpecs(t *testing.T) {
	e := newEnv(t, nil)
	streaming := testSpec(protocol.ExecutorClassAlwaysOnTest)
	streaming.StreamingDetails = &protocol.StreamingDetails{PublicKey: "-----BEGIN CERTIFICATE-----"}
	for _, tc := range []struct {
		name string
		spec protocol.V2JobRequest
		want string
	}{
		{"unknown class", testSpec("no.such.class"), "unknown executor class"},
		{"streaming", streaming, "streaming jobs are not supported"},
	} {
		if _, err := e.v.RunJob(t.Context(), e.bob.SS58(), tc.spec); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("RunJob with %s: err = %v, want %q", tc.name, err, tc.want)
		}
		if _, err := e.db.GetJob(t.Context(), tc.spec.UUID); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("a job with %s was recorded: %v", tc.name, err)
		}
	}
}

func TestRunJobHappyPath(t *testing.T) {
	for _, tc := range []struct {
		class  protocol.ExecutorClass
		preset protocol.DockerRunOptionsPreset
	}{
		{protocol.ExecutorClassAlwaysOnTest, protocol.DockerRunOptionsPresetNone},
		{protocol.ExecutorClassAlwaysOnGPU24GB, protocol.DockerRunOptionsPresetNvidiaAll},
	} {
		t.Run(string(tc.class), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, nil) // upstream's default limits: 7 s reservation, 5 s startup, 5 s leeway
			m := e.startMiner(func(p *minerPeer, job string) {
				p.accept(job)
				p.ready(job)
				e.clock.Advance(time.Second) // the job takes a second
				p.finish(job)
			})
			spec := testSpec(tc.class)
			before := protocol.NewTimestamp(e.clock.Now()).Time
			res := e.run(t.Context(), spec)
			after := e.clock.Now()
			p := m.wait()

			if res.Status != protocol.JobStatusCompleted || res.Failed() || res.Stdout != "hello horde\n" || res.Stderr != "a warning\n" {
				t.Errorf("result = %+v, want completed with the miner's stdout and stderr", *res)
			}
			if res.Took != time.Second {
				t.Errorf("Took = %v, want the second the job took on the clock", res.Took)
			}
			e.checkStored(spec, res)

			// The whole exchange, in order.
			var types []string
			for _, m := range p.got {
				types = append(types, m.MessageType())
			}
			want := []string{"ValidatorAuthForMiner", "V0InitialJobRequest", "V0JobAcceptedReceiptRequest", "V0JobRequest", "V0JobFinishedReceiptRequest"}
			if !slices.Equal(types, want) {
				t.Errorf("the validator sent %v, want %v", types, want)
			}

			// The initial request and its JobStarted receipt.
			in := p.initial
			if in.JobUUID != spec.UUID || in.ExecutorClass != tc.class || in.DockerImage == nil || *in.DockerImage != spec.DockerImage {
				t.Errorf("initial request job %s class %s image %v", in.JobUUID, in.ExecutorClass, in.DockerImage)
			}
			if !reflect.DeepEqual(in.Volume, spec.Volume) || in.StreamingDetails != nil {
				t.Errorf("initial request volume %+v streaming %+v; want the job's volume, no streaming", in.Volume, in.StreamingDetails)
			}
			if in.TimeoutSeconds == nil || *in.TimeoutSeconds != 300 {
				t.Errorf("initial request timeout_seconds = %v, want upstream's legacy 300", in.TimeoutSeconds)
			}
			wantTiming := protocol.ExecutorTiming{AllowedLeeway: 5, DownloadTimeLimit: 1, ExecutionTimeLimit: 2, UploadTimeLimit: 3}
			if in.ExecutorTiming == nil || *in.ExecutorTiming != wantTiming {
				t.Errorf("executor_timing = %+v, want %+v", in.ExecutorTiming, wantTiming)
			}
			st := in.JobStartedReceiptPayload
			if st.JobUUID != spec.UUID || st.MinerHotkey != e.bob.SS58() || st.ValidatorHotkey != e.alice.SS58() ||
				st.ExecutorClass != tc.class || !st.IsOrganic || st.TTL != 7 {
				t.Errorf("JobStarted receipt = %+v", st)
			}
			if st.Timestamp.Before(before) || st.Timestamp.After(after) {
				t.Errorf("JobStarted timestamp %v is not from the injected clock [%v, %v]", st.Timestamp, before, after)
			}
			if err := keys.Verify(e.alice.SS58(), st.BlobForSigning(), in.JobStartedReceiptSignature); err != nil {
				t.Errorf("JobStarted receipt signature: %v", err)
			}

			// The JobAccepted receipt: ttl = readiness (3 s spin-up + 5 s) + all timing fields.
			acc := sent[protocol.V0JobAcceptedReceiptRequest](p)
			if len(acc) != 1 {
				t.Fatalf("%d JobAccepted receipts, want 1", len(acc))
			}
			ap := acc[0].Payload
			if ap.JobUUID != spec.UUID || ap.MinerHotkey != e.bob.SS58() || ap.ValidatorHotkey != e.alice.SS58() ||
				ap.TTL != 3+5+5+1+2+3 || !ap.TimeAccepted.Equal(ap.Timestamp.Time) {
				t.Errorf("JobAccepted receipt = %+v", ap)
			}
			if ap.Timestamp.Before(st.Timestamp.Time) || ap.Timestamp.After(after) {
				t.Errorf("JobAccepted timestamp %v is not from the injected clock", ap.Timestamp)
			}
			if err := keys.Verify(e.alice.SS58(), ap.BlobForSigning(), acc[0].Signature); err != nil {
				t.Errorf("JobAccepted receipt signature: %v", err)
			}

			// The job request.
			req := sent[protocol.V0JobRequest](p)[0]
			if req.JobUUID != spec.UUID || req.ExecutorClass != tc.class || req.DockerImage != spec.DockerImage ||
				req.DockerRunOptionsPreset != tc.preset || !slices.Equal(req.DockerRunCmd, spec.Args) ||
				!reflect.DeepEqual(req.Env, spec.Env) || req.Volume != nil || req.RawScript != nil ||
				req.OutputUpload != nil || req.ArtifactsDir != nil {
				t.Errorf("V0JobRequest = %+v; want the job's class, image, args and env, preset %s, no volume", *req, tc.preset)
			}

			// Paid: download + execution + upload seconds.
			p.checkFinishedReceipt(spec.UUID, "6.000000")
			fp := sent[protocol.V0JobFinishedReceiptRequest](p)[0].Payload
			// time_started is before connecting (upstream measures time_took_us from there).
			if fp.TimeStarted.Before(before) || fp.TimeStarted.After(st.Timestamp.Time) || fp.Timestamp.After(after) ||
				(fp.Timestamp.Sub(fp.TimeStarted.Time)-fp.TimeTook()).Abs() > time.Microsecond { // both truncated to µs
				t.Errorf("JobFinished receipt time_started %v timestamp %v time_took %v; want the job's span on the injected clock",
					fp.TimeStarted, fp.Timestamp, fp.TimeTook())
			}
		})
	}
}

func TestRunJobOutcomes(t *testing.T) {
	short := func(c *Config) { c.ReservationTimeLimit = 300 * time.Millisecond }
	// always_on.test spins up in 3 s; the class registry (Config.Classes) takes that to 0 so
	// that the readiness wait is the 300 ms startup limit alone.
	instant, err := hwclass.Default().Apply(hwclass.Config{Classes: map[protocol.ExecutorClass]hwclass.ClassConfig{
		protocol.ExecutorClassAlwaysOnTest: {SpinUp: new(hwclass.Duration(0))},
	}})
	if err != nil {
		t.Fatal(err)
	}
	noSpinUp := func(c *Config) { c.Classes, c.ExecutorStartupTimeLimit = instant, 300*time.Millisecond }
	shortLeeway := func(c *Config) { c.Leeway = 300 * time.Millisecond }
	noStageTime := func(s *protocol.V2JobRequest) { s.DownloadTimeLimit, s.ExecutionTimeLimit, s.UploadTimeLimit = 0, 0, 0 }
	secondPerStage := func(s *protocol.V2JobRequest) { s.DownloadTimeLimit, s.ExecutionTimeLimit, s.UploadTimeLimit = 1, 1, 1 }
	other := uuid.NewString()

	tests := []struct {
		name   string
		tweak  func(*Config)
		spec   func(*protocol.V2JobRequest)
		script minerScript
		want   JobResult // Status, ReportedBy, Reason, Stage, Stdout, Stderr and ExitStatus are compared
		msg    string    // in the result's Message
		log    string    // in the validator's log
		score  string    // the JobFinished receipt's score_str; "" when the connection is gone
	}{
		{
			name: "decline busy",
			script: func(p *minerPeer, job string) {
				p.send(&protocol.V0DeclineJobRequest{JobUUID: job, Reason: protocol.JobRejectionReasonBusy, Message: "all executors busy"})
			},
			want:  JobResult{Status: protocol.JobStatusRejected, ReportedBy: protocol.JobParticipantTypeMiner, Reason: "busy"},
			msg:   "all executors busy",
			score: "0.000000",
		},
		{
			name:   "no answer to the initial request",
			tweak:  short,
			script: func(p *minerPeer, job string) { p.expire(300 * time.Millisecond) },
			want: JobResult{Status: protocol.JobStatusHordeFailed, ReportedBy: protocol.JobParticipantTypeValidator,
				Reason: string(protocol.HordeFailureReasonInitialResponseTimedOut)},
			msg:   "accept or decline",
			score: "0.000000",
		},
		{
			name:   "accepted but no executor ready",
			tweak:  noSpinUp,
			script: func(p *minerPeer, job string) { p.accept(job); p.expire(300 * time.Millisecond) },
			want: JobResult{Status: protocol.JobStatusHordeFailed, ReportedBy: protocol.JobParticipantTypeValidator,
				Reason: string(protocol.HordeFailureReasonExecutorReadinessResponseTimedOut)},
			msg:   "executor ready",
			score: "0.000000",
		},
		{
			name:   "volumes never ready",
			tweak:  shortLeeway,
			spec:   noStageTime,
			script: func(p *minerPeer, job string) { p.accept(job); p.ready(job); p.expire(300 * time.Millisecond) },
			want: JobResult{Status: protocol.JobStatusHordeFailed, ReportedBy: protocol.JobParticipantTypeValidator,
				Reason: string(protocol.HordeFailureReasonVolumesTimedOut)},
			msg:   "V0VolumesReadyRequest",
			score: "0.000000",
		},
		{
			name:  "execution never done",
			tweak: shortLeeway,
			spec:  secondPerStage,
			script: func(p *minerPeer, job string) {
				p.accept(job)
				p.ready(job)
				p.send(&protocol.V0VolumesReadyRequest{JobUUID: job})
				p.expire(300*time.Millisecond + 2*time.Second) // leeway, download and execution
			},
			want: JobResult{Status: protocol.JobStatusHordeFailed, ReportedBy: protocol.JobParticipantTypeValidator,
				Reason: string(protocol.HordeFailureReasonExecutionTimedOut)},
			msg:   "V0ExecutionDoneRequest",
			score: "0.000000",
		},
		{
			name:  "no final response",
			tweak: shortLeeway,
			spec:  secondPerStage,
			script: func(p *minerPeer, job string) {
				p.accept(job)
				p.ready(job)
				p.send(&protocol.V0VolumesReadyRequest{JobUUID: job})
				p.send(&protocol.V0ExecutionDoneRequest{JobUUID: job})
				p.expire(300*time.Millisecond + 3*time.Second) // leeway and all three stages
			},
			want: JobResult{Status: protocol.JobStatusHordeFailed, ReportedBy: protocol.JobParticipantTypeValidator,
				Reason: string(protocol.HordeFailureReasonFinalResponseTimedOut)},
			msg:   "V0JobFinishedRequest",
			score: "0.000000",
		},
		{
			name: "job failed with a nonzero return code",
			script: func(p *minerPeer, job string) {
				p.accept(job)
				p.ready(job)
				p.send(&protocol.V0VolumesReadyRequest{JobUUID: job})
				p.send(&protocol.V0JobFailedRequest{
					JobUUID: job, Message: "process exited with 3", Reason: protocol.JobFailureReasonNonzeroReturnCode,
					Stage: protocol.JobStageExecution, DockerProcessExitStatus: new(3),
					DockerProcessStdout: new("partial"), DockerProcessStderr: new("boom"),
				})
			},
			want: JobResult{Status: protocol.JobStatusFailed, ReportedBy: protocol.JobParticipantTypeExecutor,
				Reason: string(protocol.JobFailureReasonNonzeroReturnCode), Stage: protocol.JobStageExecution,
				ExitStatus: new(3), Stdout: "partial", Stderr: "boom"},
			msg:   "process exited with 3",
			score: "0.000000",
		},
		{
			name: "executor spin-up failed, reported by the miner",
			script: func(p *minerPeer, job string) {
				p.accept(job)
				p.send(&protocol.V0HordeFailedRequest{JobUUID: job, ReportedBy: protocol.JobParticipantTypeMiner,
					Reason: protocol.HordeFailureReasonExecutorSpinupFailed, Message: "executor did not start"})
			},
			want: JobResult{Status: protocol.JobStatusHordeFailed, ReportedBy: protocol.JobParticipantTypeMiner,
				Reason: string(protocol.HordeFailureReasonExecutorSpinupFailed)},
			msg:   "executor did not start",
			score: "0.000000",
		},
		{
			name: "horde failure relayed from the executor",
			script: func(p *minerPeer, job string) {
				p.accept(job)
				p.ready(job)
				p.send(&protocol.V0HordeFailedRequest{JobUUID: job, ReportedBy: protocol.JobParticipantTypeExecutor,
					Reason: protocol.HordeFailureReasonSecurityCheckFailed, Message: "security check failed"})
			},
			want: JobResult{Status: protocol.JobStatusHordeFailed, ReportedBy: protocol.JobParticipantTypeExecutor,
				Reason: string(protocol.HordeFailureReasonSecurityCheckFailed)},
			msg:   "security check failed",
			score: "0.000000",
		},
		{
			name: "legacy executor failure",
			script: func(p *minerPeer, job string) {
				p.accept(job)
				p.ready(job)
				p.send(&protocol.V0ExecutorFailedRequest{JobUUID: job})
			},
			want: JobResult{Status: protocol.JobStatusHordeFailed, ReportedBy: protocol.JobParticipantTypeExecutor,
				Reason: string(protocol.HordeFailureReasonGenericError)},
			msg:   "V0ExecutorFailedRequest",
			score: "0.000000",
		},
		{
			name: "another job's messages are ignored",
			script: func(p *minerPeer, job string) {
				p.send(&protocol.V0DeclineJobRequest{JobUUID: other, Reason: protocol.JobRejectionReasonBusy})
				p.send(&protocol.V0HordeFailedRequest{JobUUID: other, ReportedBy: protocol.JobParticipantTypeMiner,
					Reason: protocol.HordeFailureReasonExecutorSpinupFailed})
				p.accept(job)
				p.send(&protocol.V0JobFailedRequest{JobUUID: other, Reason: protocol.JobFailureReasonTimeout})
				p.ready(job)
				p.send(&protocol.V0JobFinishedRequest{JobUUID: other, DockerProcessStdout: "not mine"})
				p.finish(job)
			},
			want:  JobResult{Status: protocol.JobStatusCompleted, Stdout: "hello horde\n", Stderr: "a warning\n"},
			log:   "message for another job ignored",
			score: "6.000000",
		},
		{
			name: "a GenericError from the miner is logged and the job goes on",
			script: func(p *minerPeer, job string) {
				p.send(&protocol.GenericError{Details: new("executor pool hiccup")})
				p.accept(job)
				p.send(&protocol.GenericError{Details: new("second hiccup")})
				p.ready(job)
				p.finish(job)
			},
			want:  JobResult{Status: protocol.JobStatusCompleted, Stdout: "hello horde\n", Stderr: "a warning\n"},
			log:   "executor pool hiccup",
			score: "6.000000",
		},
		{
			name: "malformed messages are answered with GenericError and the job goes on",
			script: func(p *minerPeer, job string) {
				for _, frame := range []string{
					`{"message_type":"V0NoSuchMessage","job_uuid":"` + job + `"}`,
					`not json`,
					`{"message_type":"V0AcceptJobRequest"}`, // job_uuid missing
					// A well-formed validator→miner message is not in the miner→validator union.
					`{"message_type":"ValidatorAuthForMiner","validator_hotkey":"a","miner_hotkey":"b","timestamp":1,"signature":"0x"}`,
				} {
					p.sendRaw(frame)
					ge := expect[protocol.GenericError](p)
					if ge.Details == nil || !strings.HasPrefix(*ge.Details, "Malformed message") {
						p.fail("answer to %s: GenericError %v, want details \"Malformed message…\"", frame, ge.Details)
					}
				}
				happyMiner(p, job)
			},
			want:  JobResult{Status: protocol.JobStatusCompleted, Stdout: "hello horde\n", Stderr: "a warning\n"},
			log:   "malformed message from miner",
			score: "6.000000",
		},
		{
			name: "the miner refuses the validator",
			script: func(p *minerPeer, job string) {
				p.send(&protocol.UnauthorizedError{Code: protocol.UnauthorizedErrorCodeUnknownValidator})
			},
			want: JobResult{Status: protocol.JobStatusHordeFailed, ReportedBy: protocol.JobParticipantTypeValidator,
				Reason: string(protocol.HordeFailureReasonMinerConnectionFailed)},
			msg:   "UNKNOWN_VALIDATOR",
			score: "0.000000",
		},
		{
			name:   "executor ready before accepting",
			script: func(p *minerPeer, job string) { p.send(&protocol.V0ExecutorReadyRequest{JobUUID: job}) },
			want: JobResult{Status: protocol.JobStatusHordeFailed, ReportedBy: protocol.JobParticipantTypeValidator,
				Reason: string(protocol.HordeFailureReasonGenericError)},
			msg:   "instead of accepting",
			score: "0.000000",
		},
		{
			name: "stage messages out of order wait for their stage",
			script: func(p *minerPeer, job string) {
				p.accept(job)
				p.ready(job)
				p.send(&protocol.V0JobFinishedRequest{JobUUID: job, DockerProcessStdout: "early"})
				p.send(&protocol.V0ExecutionDoneRequest{JobUUID: job})
				p.send(&protocol.V0VolumesReadyRequest{JobUUID: job})
			},
			want:  JobResult{Status: protocol.JobStatusCompleted, Stdout: "early"},
			score: "6.000000",
		},
		{
			name:  "a result alone does not complete the job",
			tweak: shortLeeway,
			spec:  noStageTime,
			script: func(p *minerPeer, job string) {
				p.accept(job)
				p.ready(job)
				p.send(&protocol.V0JobFinishedRequest{JobUUID: job, DockerProcessStdout: "never ran"})
				p.expire(300 * time.Millisecond)
			},
			want: JobResult{Status: protocol.JobStatusHordeFailed, ReportedBy: protocol.JobParticipantTypeValidator,
				Reason: string(protocol.HordeFailureReasonVolumesTimedOut)},
			score: "0.000000",
		},
		{
			name: "the miner drops the connection mid-job",
			script: func(p *minerPeer, job string) {
				p.accept(job)
				p.ready(job)
				_ = p.conn.CloseNow()
			},
			want: JobResult{Status: protocol.JobStatusHordeFailed, ReportedBy: protocol.JobParticipantTypeValidator,
				Reason: string(protocol.HordeFailureReasonMinerConnectionFailed)},
			msg: "connection to miner lost",
		},
		{
			name: "the miner closes the connection mid-job",
			script: func(p *minerPeer, job string) {
				p.accept(job)
				p.ready(job)
				p.send(&protocol.V0VolumesReadyRequest{JobUUID: job})
				_ = p.conn.Close("going away")
			},
			want: JobResult{Status: protocol.JobStatusHordeFailed, ReportedBy: protocol.JobParticipantTypeValidator,
				Reason: string(protocol.HordeFailureReasonMinerConnectionFailed)},
			msg: "connection to miner lost",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, tc.tweak)
			m := e.startMiner(tc.script)
			spec := testSpec(protocol.ExecutorClassAlwaysOnTest)
			if tc.spec != nil {
				tc.spec(&spec)
			}
			res := e.run(t.Context(), spec)
			p := m.wait()

			got := JobResult{Status: res.Status, ReportedBy: res.ReportedBy, Reason: res.Reason, Stage: res.Stage,
				Stdout: res.Stdout, Stderr: res.Stderr, ExitStatus: res.ExitStatus}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("result = %+v (message %q)\n  want %+v", *res, res.Message, tc.want)
			}
			if res.Failed() != (tc.want.Status != protocol.JobStatusCompleted) {
				t.Errorf("Failed() = %v for status %s", res.Failed(), res.Status)
			}
			if !strings.Contains(res.Message, tc.msg) {
				t.Errorf("result message %q does not mention %q", res.Message, tc.msg)
			}
			if !strings.Contains(e.logs.String(), tc.log) {
				t.Errorf("the validator's log does not mention %q", tc.log)
			}
			e.checkStored(spec, res)
			if tc.score != "" {
				p.checkFinishedReceipt(spec.UUID, tc.score)
			}
		})
	}
}

// TestRunJobMinerUnreachable covers the failures before any job message: no receipt is owed.
func TestRunJobMinerUnreachable(t *testing.T) {
	closedPort := func(e *env) string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		e.serveAxon(port)
		return e.bob.SS58()
	}
	for _, tc := range []struct {
		name  string
		miner func(e *env) string // sets the chain up, returns the miner's hotkey
		msg   string
	}{
		{"connection refused", closedPort, "refused"},
		{"miner not registered", func(e *env) string { return mustKey(t, "//Charlie").SS58() }, "not registered"},
		{"no axon served", func(e *env) string { return e.bob.SS58() }, "no axon"},
		{"no metagraph yet", func(e *env) string {
			mc, err := chain.NewMetagraphCache(chain.CacheConfig{Chain: e.chain, NetUID: netuid})
			if err != nil {
				t.Fatal(err)
			}
			e.v.cfg.Metagraph = mc // never refreshed
			return e.bob.SS58()
		}, "cannot read metagraph"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, nil)
			spec := testSpec(protocol.ExecutorClassAlwaysOnTest)
			res, err := e.v.RunJob(t.Context(), tc.miner(e), spec)
			if err != nil {
				t.Fatalf("RunJob: %v", err)
			}
			if res.Status != protocol.JobStatusHordeFailed || res.ReportedBy != protocol.JobParticipantTypeValidator ||
				res.Reason != string(protocol.HordeFailureReasonMinerConnectionFailed) || !strings.Contains(res.Message, tc.msg) {
				t.Errorf("result = %+v; want horde_failed miner_connection_failed mentioning %q", *res, tc.msg)
			}
			e.checkStored(spec, res)
		})
	}
}

func TestRunJobCancelled(t *testing.T) {
	e := newEnv(t, nil)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	m := e.startMiner(func(p *minerPeer, job string) {
		p.accept(job)
		cancel() // the validator is stopped while it waits for the executor
	})
	spec := testSpec(protocol.ExecutorClassAlwaysOnTest)
	res := e.run(ctx, spec)
	m.wait()
	if res.Status != protocol.JobStatusHordeFailed || res.Reason != string(protocol.HordeFailureReasonUnhandledException) ||
		!strings.Contains(res.Message, "validator stopped") {
		t.Errorf("result = %+v; want horde_failed unhandled_exception \"validator stopped\"", *res)
	}
	e.checkStored(spec, res) // recorded although the context is done
}

// TestStageDeadlinesCarryOver checks that the stage deadlines are one cumulative budget on the
// injected clock: the script moves the clock by 30 s of the 60 s download budget, and the
// remainder carries over to the zero-second execution and upload stages. (With per-stage
// deadlines the execution stage would time out at once.) The clock moves only after the
// validator has fixed the deadline's base and sent the job request, so the outcome does not
// depend on when the validator reads the clock.
func TestStageDeadlinesCarryOver(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Leeway = time.Second })
	spec := testSpec(protocol.ExecutorClassAlwaysOnTest)
	spec.DownloadTimeLimit, spec.ExecutionTimeLimit, spec.UploadTimeLimit = 60, 0, 0
	const jump = 30 * time.Second
	m := e.startMiner(func(p *minerPeer, job string) {
		p.accept(job)
		p.ready(job)
		e.clock.Advance(jump)
		p.send(&protocol.V0VolumesReadyRequest{JobUUID: job})
		p.send(&protocol.V0ExecutionDoneRequest{JobUUID: job})
		p.send(&protocol.V0JobFinishedRequest{JobUUID: job, DockerProcessStdout: "in time"})
	})
	res := e.run(t.Context(), spec)
	p := m.wait()
	if res.Status != protocol.JobStatusCompleted || res.Stdout != "in time" {
		t.Errorf("result = %+v; want completed", *res)
	}
	if res.Took != jump {
		t.Errorf("Took = %v; want the clock's jump of %v", res.Took, jump)
	}
	p.checkFinishedReceipt(spec.UUID, "60.000000")
}
