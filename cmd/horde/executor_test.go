package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

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
		{`{"docker_image": "x"`, "malformed JSON"},
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
