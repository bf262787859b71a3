package executor_test

// What a hostile or careless job spec tried (issue "Executor hardening"), each through a real
// executor on the real Docker engine.

import (
	"io"
	"io/fs"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/registry"

	"github.com/computehorde/horde/internal/egress"
	"github.com/computehorde/horde/internal/egress/egresstest"
	"github.com/computehorde/horde/internal/executor"
	"github.com/computehorde/horde/internal/executor/volume"
	"github.com/computehorde/horde/internal/protocol"
)

// secret is what a server on the miner's own network would hand out.
var secret = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "secret") })

func jobFailure(t *testing.T, got []protocol.Message, want ...string) *protocol.V0JobFailedRequest {
	t.Helper()
	checkTypes(t, got, want...)
	f, ok := got[len(got)-1].(*protocol.V0JobFailedRequest)
	if !ok {
		t.Fatalf("last message %T, want V0JobFailedRequest", got[len(got)-1])
	}
	return f
}

func wantInMessage(t *testing.T, msg string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(msg, w) {
			t.Errorf("message %q lacks %q", msg, w)
		}
	}
}

// TestEgressVolumeRefused: volumes at the cloud metadata address, a private address and
// loopback are refused before any connection, as the job's download failure naming the
// address and the rule. 169.254.169.254 and 10.0.0.1 go through a dialer whose pre-connect
// hook refuses everything (nothing may leave the machine), after the policy; loopback goes to
// a real listener with the executor's own default policy.
func TestEgressVolumeRefused(t *testing.T) {
	e := newEnv(t)
	var hook egresstest.Dialer
	hooked := func(c *executor.Config) {
		c.Volumes = volume.New(volume.Config{HTTPClient: hook.Client(egress.Policy{})})
	}
	loopback := egresstest.Serve(t, "127.0.0.1:0", secret)
	for _, tc := range []struct {
		name   string
		volume map[string]any
		cfg    func(*executor.Config)
		wants  []string
	}{
		{"metadata", map[string]any{"volume_type": "zip_url", "contents": "http://169.254.169.254/latest/meta-data/iam/", "relative_path": nil},
			hooked, []string{"169.254.169.254", "link-local"}},
		{"private", map[string]any{"volume_type": "single_file", "url": "http://10.0.0.1/creds", "relative_path": "creds"},
			hooked, []string{"10.0.0.1", "private (RFC 1918)"}},
		{"loopback", map[string]any{"volume_type": "single_file", "url": loopback.URL + "/admin", "relative_path": "admin"},
			func(c *executor.Config) { c.Egress = egress.Policy{} }, []string{"127.0.0.1", "loopback", "--allow-egress"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j := newJob(e.image)
			got := e.runRequest(t, j, func(m map[string]any) { m["volume"] = tc.volume }, tc.cfg)
			f := jobFailure(t, got, "V0ExecutorReadyRequest", "V0JobFailedRequest")
			if f.Reason != protocol.JobFailureReasonDownloadFailed || f.Stage != protocol.JobStageVolumeDownload {
				t.Errorf("%s at %s, want download_failed at volume_download", f.Reason, f.Stage)
			}
			wantInMessage(t, f.Message, tc.wants...)
			e.assertClean(t, j.uuid)
		})
	}
	if hook.Reached() != 0 || loopback.Conns() != 0 {
		t.Errorf("connections attempted: %d past the policy, %d accepted on loopback; want none", hook.Reached(), loopback.Conns())
	}
}

// TestEgressUploadRefused: an output upload to loopback is refused with the executor's default
// policy: the job ran, its upload failed naming the address, and the listener saw nothing.
func TestEgressUploadRefused(t *testing.T) {
	e := newEnv(t)
	srv := egresstest.Serve(t, "127.0.0.1:0", secret)
	j := newJob(e.image)
	got := e.runRequest(t, j, func(m map[string]any) {
		m["output_upload"] = map[string]any{"output_upload_type": "zip_and_http_put", "url": srv.URL + "/out.zip"}
	}, func(c *executor.Config) { c.Egress = egress.Policy{} })
	f := jobFailure(t, got, "V0ExecutorReadyRequest", "V0VolumesReadyRequest", "V0ExecutionDoneRequest", "V0JobFailedRequest")
	if f.Reason != protocol.JobFailureReasonUploadFailed {
		t.Errorf("reason %s", f.Reason)
	}
	wantInMessage(t, f.Message, "127.0.0.1", "loopback")
	if n := srv.Conns(); n != 0 {
		t.Errorf("the loopback listener saw %d connections", n)
	}
	e.assertClean(t, j.uuid)
}

// TestAbsurdTimeLimits: limits that overflowed the deadline arithmetic (the job "timed out" at
// 0 ms) are refused when the initial request arrives, naming the field; nothing is started.
func TestAbsurdTimeLimits(t *testing.T) {
	e := newEnv(t)
	for name, mod := range map[string]func(map[string]any){
		"execution_time_limit": func(m map[string]any) {
			m["executor_timing"].(map[string]any)["execution_time_limit"] = int64(9223372036854775807)
		},
		"download_time_limit": func(m map[string]any) {
			m["executor_timing"].(map[string]any)["download_time_limit"] = int64(1_000_000_000_000)
		},
		"timeout_seconds": func(m map[string]any) {
			m["executor_timing"] = nil
			m["timeout_seconds"] = int64(1_000_000_000_000)
		},
		"upload_time_limit (negative)": func(m map[string]any) { m["executor_timing"].(map[string]any)["upload_time_limit"] = -5 },
	} {
		t.Run(name, func(t *testing.T) {
			j := newJob(e.image)
			m := newFakeMiner(t, j.token, step{send: j.initial(mod), expect: 1})
			if err := e.run(t, m, nil); err != nil {
				t.Fatal(err)
			}
			f := jobFailure(t, m.messages(), "V0JobFailedRequest")
			if f.Stage != protocol.JobStageExecutorStartup || f.Reason != protocol.JobFailureReasonUnknown {
				t.Errorf("%s at %s", f.Reason, f.Stage)
			}
			wantInMessage(t, f.Message, "Invalid job request: "+strings.Fields(name)[0])
			e.assertClean(t, j.uuid)
		})
	}
}

// TestStartBoundedByDeadline: an engine that does not create the container (here it never
// answers; a 10 MB env once kept it busy for 30 s) no longer holds the job past its execution
// deadline: the executor gives up when the stage's time is spent and reports a horde failure.
func TestStartBoundedByDeadline(t *testing.T) {
	e := newEnv(t)
	rt, proxy := e.proxiedRuntime(t)
	proxy.Stall(t, "/containers/create")
	j := newJob(e.image)
	m := newFakeMiner(t, j.token,
		step{send: j.initial(func(m map[string]any) {
			m["executor_timing"] = map[string]any{"allowed_leeway": 0, "download_time_limit": 1, "execution_time_limit": 2,
				"upload_time_limit": 1, "streaming_start_time_limit": 0}
		}), expect: 1},
		step{send: j.request(nil)},
	)
	if err := e.run(t, m, func(c *executor.Config) { c.Runtime = rt }); err != nil {
		t.Fatal(err)
	}
	got := m.messages()
	checkTypes(t, got, "V0ExecutorReadyRequest", "V0VolumesReadyRequest", "V0HordeFailedRequest")
	h := got[2].(*protocol.V0HordeFailedRequest)
	wantInMessage(t, h.Message, "did not create and start the job container before the execution deadline")
	if !strings.Contains(string(h.Context), `"stage":"execution"`) {
		t.Errorf("context %s", h.Context)
	}
	e.assertClean(t, j.uuid)
}

// testRegistry serves the registry API on loopback through answer, which may refuse requests;
// the rest go to an empty in-process registry (every image is unknown to it).
func testRegistry(t *testing.T, answer func(w http.ResponseWriter, r *http.Request) bool) string {
	t.Helper()
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if answer != nil && answer(w, r) {
			return
		}
		reg.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// TestUserMistakesAreTheJobs: a malformed image reference or request field, or an image its
// registry does not have or will not hand out, is the job's failure (V0JobFailedRequest), never
// a horde failure that would penalise an honest miner; a registry that is down is the horde's.
func TestUserMistakesAreTheJobs(t *testing.T) {
	e := newEnv(t)
	missing := testRegistry(t, nil)
	locked := testRegistry(t, func(w http.ResponseWriter, r *http.Request) bool {
		w.Header().Set("WWW-Authenticate", `Basic realm="horde-test"`)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		io.WriteString(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`)
		return true
	})
	broken := testRegistry(t, func(w http.ResponseWriter, r *http.Request) bool {
		http.Error(w, "database on fire", http.StatusInternalServerError)
		return true
	})
	setImage := func(img any) func(map[string]any) { return func(m map[string]any) { m["docker_image"] = img } }
	for _, tc := range []struct {
		name         string
		initial, req func(map[string]any)
		types        []string
		reason       protocol.JobFailureReason // "" = a horde failure
		stage        protocol.JobStage
		wants        []string
	}{
		{name: "image with spaces", initial: setImage("my image"), types: []string{"V0JobFailedRequest"},
			reason: protocol.JobFailureReasonDownloadFailed, stage: protocol.JobStageExecutorStartup, wants: []string{`docker_image: "my image" is not a valid image reference`}},
		{name: "upper-case image", initial: setImage(nil), req: setImage("Horde/Hello:Latest"),
			types:  []string{"V0ExecutorReadyRequest", "V0JobFailedRequest"},
			reason: protocol.JobFailureReasonDownloadFailed, stage: protocol.JobStageVolumeDownload, wants: []string{"must be lowercase"}},
		{name: "no image", initial: setImage(nil), req: setImage(""),
			types:  []string{"V0ExecutorReadyRequest", "V0VolumesReadyRequest", "V0JobFailedRequest"},
			reason: protocol.JobFailureReasonDownloadFailed, stage: protocol.JobStageExecution, wants: []string{"docker_image: empty"}},
		{name: "empty env key", req: func(m map[string]any) { m["env"] = map[string]string{"": "x"} },
			types:  []string{"V0ExecutorReadyRequest", "V0JobFailedRequest"},
			reason: protocol.JobFailureReasonUnknown, stage: protocol.JobStageVolumeDownload, wants: []string{"env: a variable has an empty name"}},
		{name: "artifacts in /proc", req: func(m map[string]any) { m["artifacts_dir"] = "/proc/self" },
			types:  []string{"V0ExecutorReadyRequest", "V0JobFailedRequest"},
			reason: protocol.JobFailureReasonUnknown, stage: protocol.JobStageVolumeDownload, wants: []string{`artifacts_dir: "/proc/self" is under /proc`}},
		{name: "relative artifacts", req: func(m map[string]any) { m["artifacts_dir"] = "../x" },
			types:  []string{"V0ExecutorReadyRequest", "V0JobFailedRequest"},
			reason: protocol.JobFailureReasonUnknown, stage: protocol.JobStageVolumeDownload, wants: []string{`artifacts_dir: "../x" must be an absolute`}},
		{name: "image not in its registry", initial: setImage(missing + "/horde/missing:v1"), types: []string{"V0JobFailedRequest"},
			reason: protocol.JobFailureReasonDownloadFailed, stage: protocol.JobStageExecutorStartup, wants: []string{missing + "/horde/missing:v1", "image not found"}},
		{name: "registry refuses", initial: setImage(locked + "/horde/private:v1"), types: []string{"V0JobFailedRequest"},
			reason: protocol.JobFailureReasonDownloadFailed, stage: protocol.JobStageExecutorStartup, wants: []string{locked + "/horde/private:v1", "authentication"}},
		{name: "registry down", initial: setImage(broken + "/horde/hello:v1"), types: []string{"V0HordeFailedRequest"},
			wants: []string{"Failed to pull image " + broken + "/horde/hello:v1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j := newJob(e.image)
			script := []step{{send: j.initial(tc.initial), expect: 1}}
			if len(tc.types) > 1 {
				script = append(script, step{send: j.request(tc.req)})
			}
			m := newFakeMiner(t, j.token, script...)
			if err := e.run(t, m, nil); err != nil {
				t.Fatal(err)
			}
			got := m.messages()
			checkTypes(t, got, tc.types...)
			switch last := got[len(got)-1].(type) {
			case *protocol.V0JobFailedRequest:
				if tc.reason == "" || last.Reason != tc.reason || last.Stage != tc.stage {
					t.Errorf("job failure %s at %s, want %q at %s", last.Reason, last.Stage, tc.reason, tc.stage)
				}
				wantInMessage(t, last.Message, tc.wants...)
			case *protocol.V0HordeFailedRequest:
				if tc.reason != "" {
					t.Errorf("horde failure %s %q, want the job's failure %s", last.Reason, last.Message, tc.reason)
				}
				wantInMessage(t, last.Message, tc.wants...)
			}
			e.assertClean(t, j.uuid)
		})
	}
}

// TestKeepOutputCapped: a job that writes past its disk cap is killed, and the copy of its
// output (`horde executor run --output`) holds at most the cap.
func TestKeepOutputCapped(t *testing.T) {
	e := newEnv(t)
	const limit = 4 << 20
	keep := t.TempDir()
	j := newJob(e.image)
	got := e.runRequest(t, j, func(m map[string]any) {
		m["docker_run_cmd"] = []string{"--write", "/output/a:3000000", "--write", "/output/b:3000000", "--write", "/output/c:3000000"}
	}, func(c *executor.Config) {
		c.MaxDiskBytes = limit
		c.KeepOutput = keep
	})
	f := jobFailure(t, got, "V0ExecutorReadyRequest", "V0VolumesReadyRequest", "V0JobFailedRequest")
	wantInMessage(t, f.Message, "to disk")
	var kept int64
	filepath.WalkDir(keep, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				kept += fi.Size()
			}
		}
		return nil
	})
	if kept == 0 || kept > limit {
		t.Errorf("kept %d bytes of output, want some and at most the %d-byte cap", kept, limit)
	}
	if _, err := os.Stat(filepath.Join(keep, "a")); err != nil {
		t.Errorf("the first file was not kept: %v", err)
	}
	e.assertClean(t, j.uuid)
}
