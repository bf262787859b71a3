package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"

	"github.com/computehorde/horde/internal/executor/docker"
	"github.com/computehorde/horde/internal/jobimage/jobimagetest"
)

var runJobLine = regexp.MustCompile(`(?m)^job ([0-9a-f-]{36}): image `)

// executorRun runs `horde executor run` on a spec and records its job for the leftover check.
func executorRun(t *testing.T, spec string, args ...string) result {
	t.Helper()
	needDocker(t)
	path := filepath.Join(t.TempDir(), "job.json")
	if err := os.WriteFile(path, []byte(spec), 0o644); err != nil {
		t.Fatal(err)
	}
	r := horde(t, runOpts{timeout: 60 * time.Second}, append([]string{"executor", "run", "--spec", path}, args...)...)
	if m := runJobLine.FindStringSubmatch(r.stdout); m != nil {
		jobsMu.Lock()
		ourJobs[m[1]] = true
		jobsMu.Unlock()
	}
	return r
}

func TestCLIExecutorRun(t *testing.T) {
	needDocker(t)
	img := jobimagetest.Hello(t)
	out := t.TempDir()
	r := executorRun(t, `{"docker_image": "`+img+`", "docker_run_cmd": ["from", "the", "cli"], "execution_time_limit": 30}`, "--output", out)
	if r.code != 0 {
		t.Fatalf("want exit 0:\n%s", r)
	}
	wantContains(t, "stdout", r.stdout,
		"  executor_startup  ok", "  volume_download   ok", "  execution         ok", "  result_upload     specs", "  result_upload     ok",
		"outcome: finished in ", "output kept in "+out, "--- stdout ---\nhello from horde from the cli\n")
	if b, err := os.ReadFile(filepath.Join(out, "hello.txt")); err != nil || !strings.HasPrefix(string(b), "hello from horde") {
		t.Errorf("--output lacks hello.txt: %q %v", b, err)
	}
}

func TestCLIExecutorRunJobFails(t *testing.T) {
	needDocker(t)
	img := jobimagetest.Hello(t)
	r := executorRun(t, `{"docker_image": "`+img+`", "docker_run_cmd": ["--stderr", "broken", "--exit", "3"]}`)
	if r.code != exitJobFailed {
		t.Fatalf("want exit %d:\n%s", exitJobFailed, r)
	}
	wantContains(t, "stdout", r.stdout, "  execution         FAILED", "outcome: job failed (the job's fault): nonzero_return_code at stage execution, exit code 3",
		"--- stderr ---\nbroken\n")
}

func TestCLIExecutorRunHordeFails(t *testing.T) {
	needDocker(t)
	img := jobimagetest.Hello(t)
	r := executorRun(t, `{"docker_image": "`+img+`", "executor_class": "spin_up-4min.gpu-24gb", "docker_run_options_preset": "nvidia_all"}`)
	if r.code != exitHordeFailed {
		t.Fatalf("want exit %d:\n%s", exitHordeFailed, r)
	}
	wantContains(t, "stdout", r.stdout, "outcome: horde failure (not the job's fault): security_check_failed at stage executor_startup")
}

func TestCLIExecutorRunBadSpec(t *testing.T) {
	for _, tc := range []struct{ spec, want string }{
		{`{"docker_image": "x", "docker_run_cmd": "echo hi"}`, "docker_run_cmd"},
		{`{"docker_imag": "x"}`, `unknown field "docker_imag"`},
		{`{"docker_image": "x"`, "invalid JSON: unexpected end of input"},
		{`{"docker_image": "x", "execution_time_limit": 9223372036854775807}`, "execution_time_limit: 9223372036854775807 seconds is more than"},
		{`{"docker_image": "My Image"}`, "docker_image"},
		{`{"docker_image": "x", "env": {"": "v"}}`, "env: a variable has an empty name"},
		{`{"docker_image": "x", "artifacts_dir": "/proc/self"}`, "artifacts_dir"},
	} {
		r := executorRun(t, tc.spec)
		if r.code != 2 || r.stdout != "" {
			t.Errorf("spec %s: want exit 2 (usage) and no stdout:\n%s", tc.spec, r)
		}
		wantContains(t, "stderr", r.stderr, "job.json: job spec: ", tc.want)
	}
}

// TestCLIExecutorRunEgress: a volume on this machine is refused unless --allow-egress opens
// loopback.
func TestCLIExecutorRunEgress(t *testing.T) {
	needDocker(t)
	img := jobimagetest.Hello(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "payload") }))
	defer srv.Close()
	spec := `{"docker_image": "` + img + `", "volume": {"volume_type": "single_file", "url": "` + srv.URL + `/f", "relative_path": "f"}}`
	r := executorRun(t, spec)
	if r.code != exitJobFailed {
		t.Fatalf("want exit %d:\n%s", exitJobFailed, r)
	}
	wantContains(t, "stdout", r.stdout, "download_failed at stage volume_download", "connection to 127.0.0.1 refused: loopback address",
		"--allow-egress 127.0.0.1/32")
	r = executorRun(t, spec, "--allow-egress", "127.0.0.1")
	if r.code != 0 {
		t.Fatalf("with --allow-egress: want exit 0:\n%s", r)
	}
	wantContains(t, "stdout", r.stdout, "volume: f 7")
	if r := executorRun(t, spec, "--allow-egress", "127.0.0.1/8"); r.code != 2 || !strings.Contains(r.stderr, "host bits") {
		t.Errorf("a malformed --allow-egress: want exit 2 naming the problem:\n%s", r)
	}
}

// TestCLIExecutorRunKilled: `horde executor run` killed with -9 mid-job leaves its container
// running and its workspace behind; once their deadline (labelled on both) has passed, the
// next `horde executor run` on the host removes them.
func TestCLIExecutorRunKilled(t *testing.T) {
	needDocker(t)
	cli := jobimagetest.Engine(t)
	img := jobimagetest.Hello(t)
	work := t.TempDir()
	marker := fmt.Sprintf("killed-run-%d", time.Now().UnixNano())
	path := filepath.Join(t.TempDir(), "job.json")
	spec := `{"docker_image": "` + img + `", "docker_run_cmd": ["--sleep", "1h", "` + jobMarker + `", "` + marker + `"],
		"allowed_leeway": 1, "download_time_limit": 1, "execution_time_limit": 3, "upload_time_limit": 1}`
	if err := os.WriteFile(path, []byte(spec), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(hordeBin, "executor", "run", "--spec", path, "--work-dir", work, "--cleanup-grace", "1s")
	var out lockedBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})

	// Wait for the job's container, then kill the executor process as hard as possible.
	ctx := context.Background()
	var leftover container.Summary
	for start := time.Now(); leftover.ID == ""; time.Sleep(50 * time.Millisecond) {
		if time.Since(start) > 30*time.Second {
			t.Fatalf("no running job container after 30 s:\n%s", out.String())
		}
		list, err := cli.ContainerList(ctx, container.ListOptions{Filters: filters.NewArgs(filters.Arg("label", docker.LabelDeadline))})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range list {
			if strings.Contains(c.Command, marker) {
				leftover = c
			}
		}
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	workspaces := func() []string {
		m, _ := filepath.Glob(filepath.Join(work, "horde-job-*"))
		return m
	}
	info, err := cli.ContainerInspect(ctx, leftover.ID)
	if err != nil || !info.State.Running || len(workspaces()) != 1 {
		t.Fatalf("after kill -9: container running %v (%v), workspaces %v; want both left behind", info.State != nil && info.State.Running, err, workspaces())
	}
	deadline, err := time.Parse(time.RFC3339Nano, info.Config.Labels[docker.LabelDeadline])
	if err != nil {
		t.Fatal(err)
	}
	if left := time.Until(deadline); left > 10*time.Second {
		t.Fatalf("deadline %v away, want the job's 5 s plus a 1 s grace at most", left)
	}
	// The job's deadline has to pass: nobody may touch a job that could still be alive.
	time.Sleep(time.Until(deadline) + 10*time.Millisecond)

	r := executorRun(t, `{"docker_image": "`+img+`", "execution_time_limit": 30}`, "--work-dir", work)
	if r.code != 0 {
		t.Fatalf("next run: want exit 0:\n%s", r)
	}
	if _, err := cli.ContainerInspect(ctx, leftover.ID); err == nil {
		t.Error("the abandoned container survived the next run")
	}
	if ws := workspaces(); len(ws) != 0 {
		t.Errorf("abandoned workspaces survived the next run: %v", ws)
	}
}

func TestExecutorServeGPUs(t *testing.T) {
	env := func(v string) func(string) string {
		return func(k string) string {
			if k == envExecutorGPUs {
				return v
			}
			return ""
		}
	}
	for _, tc := range []struct {
		flag, env string
		want      []string
	}{
		{"", "", nil},
		{"0,1", "", []string{"0", "1"}},
		{"", "2,3", []string{"2", "3"}},
		{"1", "2,3", []string{"1"}}, // the flag wins
		{"GPU-5d1e", "", []string{"GPU-5d1e"}},
	} {
		got, err := executorGPUs(tc.flag, env(tc.env))
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("--gpus %q, $%s %q: %q, %v; want %q", tc.flag, envExecutorGPUs, tc.env, got, err, tc.want)
		}
	}
	for _, tc := range []struct{ flag, env, want string }{
		{"0,0", "", "listed twice"},
		{"", "1,", "entry 2 is empty"},
		{"0;1", "", "not a device index"},
	} {
		_, err := executorGPUs(tc.flag, env(tc.env))
		if err == nil || !errors.Is(err, errUsage) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "--gpus") {
			t.Errorf("--gpus %q, $%s %q: %v; want a usage error saying %q", tc.flag, envExecutorGPUs, tc.env, err, tc.want)
		}
	}
}
