package executor_test

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/computehorde/horde/internal/executor"
	"github.com/computehorde/horde/internal/executor/docker"
	"github.com/computehorde/horde/internal/executor/docker/dockertest"
	"github.com/computehorde/horde/internal/executor/volume"
	"github.com/computehorde/horde/internal/protocol"
)

// ---- a local S3 with real presigned URLs ----

type localS3 struct {
	mc     *minio.Client
	bucket string
}

func newLocalS3(t *testing.T) localS3 {
	t.Helper()
	backend := s3mem.New()
	srv := httptest.NewServer(gofakes3.New(backend).Server())
	t.Cleanup(srv.Close)
	const bucket = "horde-outputs"
	if err := backend.CreateBucket(bucket); err != nil {
		t.Fatal(err)
	}
	mc, err := minio.New(strings.TrimPrefix(srv.URL, "http://"), &minio.Options{
		Creds: credentials.NewStaticV4("HORDETESTKEY", "horde-test-secret", ""), Secure: false, Region: "us-east-1",
	})
	if err != nil {
		t.Fatal(err)
	}
	return localS3{mc: mc, bucket: bucket}
}

func (s localS3) presignPut(t *testing.T, key string) string {
	t.Helper()
	u, err := s.mc.PresignedPutObject(context.Background(), s.bucket, key, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return u.String()
}

func (s localS3) presignPost(t *testing.T, key string) (string, map[string]string) {
	t.Helper()
	p := minio.NewPostPolicy()
	if err := errors.Join(p.SetBucket(s.bucket), p.SetKey(key), p.SetExpires(time.Now().Add(time.Hour)),
		p.SetContentLengthRange(0, 64<<20)); err != nil {
		t.Fatal(err)
	}
	u, fields, err := s.mc.PresignedPostPolicy(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	return u.String(), fields
}

func (s localS3) get(t *testing.T, key string) []byte {
	t.Helper()
	obj, err := s.mc.GetObject(context.Background(), s.bucket, key, minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer obj.Close()
	b, err := io.ReadAll(obj)
	if err != nil {
		t.Fatalf("read back %s: %v", key, err)
	}
	return b
}

func zipOf(t *testing.T, files map[string][]byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for name, body := range files {
		w, err := zw.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(body)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func unzip(t *testing.T, data []byte) map[string][]byte {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		out[f.Name], _ = io.ReadAll(rc)
		rc.Close()
	}
	return out
}

// TestVolumeFromHTTPOutputToS3: the job reads a volume served by a local HTTP server (a zip and
// a single file), writes outputs and an artifact, and its outputs go to a local S3 server through
// real presigned PUT and POST URLs; every object read back is identical to what the job wrote.
func TestVolumeFromHTTPOutputToS3(t *testing.T) {
	e := newEnv(t)
	s3 := newLocalS3(t)
	payload := make([]byte, 3<<20+17)
	rand.Read(payload)
	zipped := zipOf(t, map[string][]byte{"payload.bin": payload, "docs/readme.txt": []byte("read me")})
	files := http.NewServeMux()
	files.HandleFunc("/data.zip", func(w http.ResponseWriter, r *http.Request) { w.Write(zipped) })
	files.HandleFunc("/config.json", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(`{"k":1}`)) })
	srv := httptest.NewServer(files)
	t.Cleanup(srv.Close)

	putURL := s3.presignPut(t, "jobs/copy.bin")
	postURL, postFields := s3.presignPost(t, "jobs/hello.txt")
	zipURL := s3.presignPut(t, "jobs/system_output.zip")

	j := newJob(e.image)
	got := e.runRequest(t, j, func(m map[string]any) {
		m["volume"] = map[string]any{"volume_type": "multi_volume", "volumes": []any{
			map[string]any{"volume_type": "zip_url", "contents": srv.URL + "/data.zip", "relative_path": "in"},
			map[string]any{"volume_type": "single_file", "url": srv.URL + "/config.json", "relative_path": "in/config.json"},
		}}
		m["docker_run_cmd"] = []string{"--copy", "/volume/in/payload.bin:/output/copy.bin", "--write", "/artifacts/note.txt:42"}
		m["artifacts_dir"] = "/artifacts"
		m["output_upload"] = map[string]any{
			"output_upload_type": "multi_upload",
			"uploads": []any{
				map[string]any{"output_upload_type": "single_file_put", "url": putURL, "relative_path": "copy.bin", "signed_headers": nil},
				map[string]any{"output_upload_type": "single_file_post", "url": postURL, "relative_path": "hello.txt", "form_fields": postFields, "signed_headers": nil},
			},
			"system_output": map[string]any{"output_upload_type": "zip_and_http_put", "url": zipURL},
		}
	}, nil)
	checkTypes(t, got, "V0ExecutorReadyRequest", "V0VolumesReadyRequest", "V0ExecutionDoneRequest", "V0MachineSpecsRequest", "V0JobFinishedRequest")
	fin := got[4].(*protocol.V0JobFinishedRequest)
	for _, want := range []string{"volume: in/payload.bin 3145745\n", "volume: in/config.json 7\n", "volume: in/docs/readme.txt 7\n", "copy /volume/in/payload.bin: 3145745 bytes\n"} {
		if !strings.Contains(fin.DockerProcessStdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, fin.DockerProcessStdout)
		}
	}
	if !bytes.Equal(s3.get(t, "jobs/copy.bin"), payload) {
		t.Error("the object uploaded by presigned PUT differs from the volume file the job copied")
	}
	if hello := s3.get(t, "jobs/hello.txt"); !strings.HasPrefix(string(hello), "hello from horde --copy") {
		t.Errorf("the object uploaded by presigned POST = %q", hello)
	}
	system := unzip(t, s3.get(t, "jobs/system_output.zip"))
	if _, ok := system["copy.bin"]; ok {
		t.Error("system_output repeats a file uploaded on its own")
	}
	if !strings.Contains(string(system["stdout.txt"]), "hello from horde") {
		t.Errorf("system_output lacks the full stdout: %v", keysOf(system))
	}
	if fin.UploadResults == nil || fin.UploadResults.Len() != 3 {
		t.Fatalf("upload_results = %v", fin.UploadResults)
	}
	for _, key := range []string{"copy.bin", "hello.txt", "system_output"} {
		if v, ok := fin.UploadResults.Get(key); !ok || !strings.HasPrefix(v, `{"headers": {`) {
			t.Errorf("upload_results[%s] = %q", key, v)
		}
	}
	if fin.Artifacts == nil {
		t.Fatal("no artifacts")
	}
	note, ok := fin.Artifacts.Get("/artifacts/note.txt")
	if b, _ := base64.StdEncoding.DecodeString(note); !ok || len(b) != 42 {
		t.Errorf("artifact /artifacts/note.txt = %q", note)
	}
	e.assertClean(t, j.uuid)
}

func keysOf[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestUnreachableVolume: download_failed at volume_download, naming the volume.
func TestUnreachableVolume(t *testing.T) {
	e := newEnv(t)
	srv := httptest.NewServer(http.NotFoundHandler())
	dead := srv.URL + "/gone.zip?X-Amz-Signature=secret"
	srv.Close()
	j := newJob(e.image)
	m := newFakeMiner(t, j.token,
		step{send: j.initial(func(m map[string]any) {
			m["volume"] = map[string]any{"volume_type": "zip_url", "contents": dead, "relative_path": nil}
		}), expect: 1},
		step{send: j.request(nil)},
	)
	err := e.run(t, m, func(c *executor.Config) {
		c.Volumes = volume.New(volume.Config{Egress: c.Egress, Attempts: 2, Sleep: func(context.Context, time.Duration) error { return nil }})
	})
	if err != nil {
		t.Fatal(err)
	}
	got := m.messages()
	checkTypes(t, got, "V0ExecutorReadyRequest", "V0JobFailedRequest")
	f := got[1].(*protocol.V0JobFailedRequest)
	if f.Reason != protocol.JobFailureReasonDownloadFailed || f.Stage != protocol.JobStageVolumeDownload ||
		!strings.Contains(f.Message, "/gone.zip") || strings.Contains(f.Message, "secret") {
		t.Errorf("%s %s %q", f.Reason, f.Stage, f.Message)
	}
	e.assertClean(t, j.uuid)
}

// TestOversizedVolume: a zip that unpacks past the cap fails as "Input volume too large".
func TestOversizedVolume(t *testing.T) {
	e := newEnv(t)
	j := newJob(e.image)
	big := zipOf(t, map[string][]byte{"zeros.bin": make([]byte, 8<<20)})
	got := e.runRequest(t, j, func(m map[string]any) {
		m["volume"] = map[string]any{"volume_type": "inline", "contents": base64.StdEncoding.EncodeToString(big), "relative_path": nil}
	}, func(c *executor.Config) { c.Volumes = volume.New(volume.Config{MaxBytes: 1 << 20}) })
	checkTypes(t, got, "V0ExecutorReadyRequest", "V0JobFailedRequest")
	f := got[1].(*protocol.V0JobFailedRequest)
	if f.Reason != protocol.JobFailureReasonDownloadFailed || !strings.HasPrefix(f.Message, "Input volume too large") {
		t.Errorf("%s %q", f.Reason, f.Message)
	}
	e.assertClean(t, j.uuid)
}

// TestUploadRejected: the upload server answers 400; the job ran, so the failure carries its
// exit status and output.
func TestUploadRejected(t *testing.T) {
	e := newEnv(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no such bucket", http.StatusBadRequest)
	}))
	t.Cleanup(srv.Close)
	j := newJob(e.image)
	got := e.runRequest(t, j, func(m map[string]any) {
		m["output_upload"] = map[string]any{"output_upload_type": "zip_and_http_put", "url": srv.URL + "/out.zip"}
	}, nil)
	checkTypes(t, got, "V0ExecutorReadyRequest", "V0VolumesReadyRequest", "V0ExecutionDoneRequest", "V0JobFailedRequest")
	f := got[3].(*protocol.V0JobFailedRequest)
	if f.Reason != protocol.JobFailureReasonUploadFailed || f.Stage != protocol.JobStageResultUpload ||
		!strings.Contains(f.Message, "400") {
		t.Errorf("%s %s %q", f.Reason, f.Stage, f.Message)
	}
	if f.DockerProcessExitStatus == nil || *f.DockerProcessExitStatus != 0 || f.DockerProcessStdout == nil {
		t.Errorf("upload failure lacks the container result: %+v", f)
	}
	e.assertClean(t, j.uuid)
}

// TestMemoryLimitKilled: a job that allocates past its class's memory is killed by the kernel
// and reported as such.
func TestMemoryLimitKilled(t *testing.T) {
	e := newEnv(t)
	j := newJob(e.image)
	got := e.runRequest(t, j, func(m map[string]any) { m["docker_run_cmd"] = []string{"--alloc-mb", "1024"} }, nil) // always_on.test: 512 MiB
	checkTypes(t, got, "V0ExecutorReadyRequest", "V0VolumesReadyRequest", "V0JobFailedRequest")
	f := got[2].(*protocol.V0JobFailedRequest)
	if f.Reason != protocol.JobFailureReasonNonzeroReturnCode || !strings.Contains(f.Message, "out of memory") ||
		f.DockerProcessExitStatus == nil || *f.DockerProcessExitStatus != 137 {
		t.Errorf("%s %q exit %v", f.Reason, f.Message, f.DockerProcessExitStatus)
	}
	e.assertClean(t, j.uuid)
}

// TestDiskLimitKilled: a job that writes past its disk cap is killed.
func TestDiskLimitKilled(t *testing.T) {
	e := newEnv(t)
	j := newJob(e.image)
	got := e.runRequest(t, j, func(m map[string]any) {
		m["docker_run_cmd"] = []string{"--write", "/output/fill.bin:100000000000"}
	}, func(c *executor.Config) { c.MaxDiskBytes = 32 << 20 })
	checkTypes(t, got, "V0ExecutorReadyRequest", "V0VolumesReadyRequest", "V0JobFailedRequest")
	f := got[2].(*protocol.V0JobFailedRequest)
	if f.Reason != protocol.JobFailureReasonNonzeroReturnCode || !strings.Contains(f.Message, "to disk") {
		t.Errorf("%s %q", f.Reason, f.Message)
	}
	e.assertClean(t, j.uuid)
}

// TestRawScript: the script is mounted read-only at /script.py.
func TestRawScript(t *testing.T) {
	e := newEnv(t)
	j := newJob(e.image)
	script := "print('hello from a raw script')\n"
	got := e.runRequest(t, j, func(m map[string]any) {
		m["raw_script"] = script
		m["docker_run_cmd"] = []string{"--copy", "/script.py:/output/script.py", "--write", "/script.py:1"}
	}, nil)
	checkTypes(t, got, "V0ExecutorReadyRequest", "V0VolumesReadyRequest", "V0ExecutionDoneRequest", "V0MachineSpecsRequest", "V0JobFinishedRequest")
	out := got[4].(*protocol.V0JobFinishedRequest).DockerProcessStdout
	if !strings.Contains(out, "copy /script.py: 33 bytes\n") || !strings.Contains(out, "write /script.py: failed") {
		t.Errorf("stdout:\n%s", out)
	}
	e.assertClean(t, j.uuid)
}

// TestGPUClassNeedsToolkit: a GPU class on a host without the NVIDIA Container Toolkit fails the
// security check before anything runs: the miner's fault, not the job's.
func TestGPUClassNeedsToolkit(t *testing.T) {
	e := newEnv(t)
	j := newJob(e.image)
	m := newFakeMiner(t, j.token, step{send: j.initial(func(m map[string]any) {
		m["executor_class"] = "spin_up-4min.gpu-24gb"
	}), expect: 1})
	if err := e.run(t, m, nil); err != nil {
		t.Fatal(err)
	}
	got := m.messages()
	checkTypes(t, got, "V0HordeFailedRequest")
	h := got[0].(*protocol.V0HordeFailedRequest)
	if h.Reason != protocol.HordeFailureReasonSecurityCheckFailed || !strings.Contains(h.Message, "NVIDIA Container Toolkit") ||
		!strings.Contains(string(h.Context), `"stage":"executor_startup"`) {
		t.Errorf("%s %q %s", h.Reason, h.Message, h.Context)
	}
	e.assertClean(t, j.uuid)
}

// TestMinerDropsDuringExecution: when the miner goes away mid-job nobody can be told the
// result, so the job is stopped and everything removed at once.
func TestMinerDropsDuringExecution(t *testing.T) {
	e := newEnv(t)
	j := newJob(e.image)
	m := newFakeMiner(t, j.token,
		step{send: j.initial(nil), expect: 1},
		step{send: j.request(func(m map[string]any) { m["docker_run_cmd"] = []string{"--sleep", "60s"} }), expect: 1},
		step{before: func() { e.waitRunning(t, j.uuid) }, hangUp: true},
	)
	start := time.Now()
	err := e.run(t, m, nil)
	if err == nil || !strings.Contains(err.Error(), "miner closed the connection") {
		t.Fatalf("Run = %v, want the miner's disconnection", err)
	}
	if took := time.Since(start); took > 20*time.Second {
		t.Errorf("took %v to notice the miner left", took)
	}
	e.assertClean(t, j.uuid)
}

// waitRunning waits until the container of job jobUUID runs. It may be called off the test's
// goroutine, so it reports with Error.
func (e env) waitRunning(t *testing.T, jobUUID string) {
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		list, err := e.rt.Client().ContainerList(context.Background(), container.ListOptions{
			Filters: filters.NewArgs(filters.Arg("label", docker.LabelJobUUID+"="+jobUUID), filters.Arg("status", "running")),
		})
		if err != nil {
			t.Error(err)
			return
		}
		if len(list) > 0 {
			return
		}
	}
	t.Errorf("the container of job %s did not start", jobUUID)
}

// TestFiveJobsBackToBack leaves no container, network or temporary directory behind.
func TestFiveJobsBackToBack(t *testing.T) {
	e := newEnv(t)
	cli := e.rt.Client()
	netsBefore, err := cli.NetworkList(context.Background(), network.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		j := newJob(e.image)
		cmd := []string{"--write", "/output/x.bin:100000"}
		if i%2 == 1 {
			cmd = append(cmd, "--exit", "1")
		}
		m := newFakeMiner(t, j.token,
			step{send: j.initial(nil), expect: 1},
			step{send: j.request(func(m map[string]any) { m["docker_run_cmd"] = cmd })},
		)
		if err := e.run(t, m, nil); err != nil {
			t.Fatal(err)
		}
		m.messages()
		e.assertClean(t, j.uuid)
	}
	left, err := cli.ContainerList(context.Background(), container.ListOptions{
		All: true, Filters: filters.NewArgs(filters.Arg("label", docker.LabelExecutor+"=executor-test")),
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range left {
		t.Errorf("container %s (%s) left behind", c.ID[:12], c.Labels[docker.LabelJobUUID])
	}
	netsAfter, err := cli.NetworkList(context.Background(), network.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(netsAfter) != len(netsBefore) {
		t.Errorf("networks: %d before, %d after", len(netsBefore), len(netsAfter))
	}
	if entries, _ := os.ReadDir(e.workDir); len(entries) != 0 {
		t.Errorf("work dir holds %d entries", len(entries))
	}
}

// TestMalformedJobRequest: a job request that cannot be read is a horde failure at once, not a
// download timeout blamed on the job.
func TestMalformedJobRequest(t *testing.T) {
	e := newEnv(t)
	j := newJob(e.image)
	m := newFakeMiner(t, j.token,
		step{send: j.initial(nil), expect: 1},
		step{send: j.request(func(m map[string]any) { m["docker_run_cmd"] = "echo hi" })},
	)
	start := time.Now()
	if err := e.run(t, m, nil); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("took %v; the download limit is 10 s", took)
	}
	got := m.messages()
	checkTypes(t, got, "V0ExecutorReadyRequest", "GenericError", "V0HordeFailedRequest")
	h := got[2].(*protocol.V0HordeFailedRequest)
	if h.Reason != protocol.HordeFailureReasonGenericError || !strings.Contains(h.Message, "malformed V0JobRequest") ||
		!strings.Contains(h.Message, "docker_run_cmd") {
		t.Errorf("%s %q", h.Reason, h.Message)
	}
	e.assertClean(t, j.uuid)
}

// proxiedRuntime is a runtime like e's that reaches the engine through a dockertest.Proxy, which
// can play an engine that dies or stalls.
func (e env) proxiedRuntime(t *testing.T) (*docker.Runtime, *dockertest.Proxy) {
	t.Helper()
	host := e.rt.Client().DaemonHost()
	if !strings.HasPrefix(host, "unix://") {
		t.Skipf("the proxy needs a unix-socket engine, not %s", host)
	}
	proxy := dockertest.StartProxy(t, strings.TrimPrefix(host, "unix://"))
	cli, err := client.NewClientWithOpts(client.WithHost("unix://"+proxy.Path), client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	rt, err := docker.NewWithClient(cli, docker.Options{WorkDir: e.workDir, ExecutorID: "executor-test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Close() })
	return rt, proxy
}

// TestEngineLostMidJob: the Docker engine goes away while the job runs. The executor reports a
// horde failure at the execution stage, keeps trying to remove the container until the engine
// is back, and leaves nothing behind.
func TestEngineLostMidJob(t *testing.T) {
	e := newEnv(t)
	rt, proxy := e.proxiedRuntime(t)
	j := newJob(e.image)
	m := newFakeMiner(t, j.token,
		step{send: j.initial(nil), expect: 1},
		step{send: j.request(func(m map[string]any) { m["docker_run_cmd"] = []string{"--sleep", "60s"} })},
	)
	go func() {
		select {
		case <-proxy.Waits(): // the container runs and the executor waits for it
		case <-time.After(30 * time.Second):
			return
		}
		proxy.Cut()
		time.Sleep(time.Second) // the engine is away for a second
		if err := proxy.Resume(); err != nil {
			t.Error(err)
		}
	}()
	start := time.Now()
	if err := e.run(t, m, func(c *executor.Config) { c.Runtime = rt }); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 20*time.Second {
		t.Errorf("took %v", took)
	}
	got := m.messages()
	checkTypes(t, got, "V0ExecutorReadyRequest", "V0VolumesReadyRequest", "V0HordeFailedRequest")
	h := got[2].(*protocol.V0HordeFailedRequest)
	if h.Reason != protocol.HordeFailureReasonGenericError || !strings.Contains(h.Message, "engine connection lost") ||
		!strings.Contains(string(h.Context), `"stage":"execution"`) {
		t.Errorf("%s %q %s", h.Reason, h.Message, h.Context)
	}
	e.assertClean(t, j.uuid)
}
