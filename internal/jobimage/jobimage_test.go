package jobimage_test

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/computehorde/horde/internal/executor"
	"github.com/computehorde/horde/internal/executor/docker"
	"github.com/computehorde/horde/internal/jobimage"
	"github.com/computehorde/horde/internal/jobimage/jobimagetest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	jobimagetest.Cleanup()
	os.Exit(code)
}

func TestCheckStaticRejectsDynamic(t *testing.T) {
	for _, p := range []string{"/bin/ls", "/usr/bin/env"} {
		if _, err := os.Stat(p); err != nil {
			continue
		}
		_, err := jobimage.CheckStatic(p)
		if !errors.Is(err, jobimage.ErrNotStatic) {
			t.Fatalf("CheckStatic(%s) = %v, want ErrNotStatic", p, err)
		}
		if !strings.Contains(err.Error(), p+" is dynamically linked; build it with CGO_ENABLED=0") {
			t.Errorf("error does not name the cause and fix: %v", err)
		}
		return
	}
	t.Skip("no dynamically linked executable found to test with")
}

func TestCheckStaticRejectsNonELF(t *testing.T) {
	p := filepath.Join(t.TempDir(), "script.sh")
	if err := os.WriteFile(p, []byte("#!/bin/sh\necho hi\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := jobimage.CheckStatic(p); err == nil || !strings.Contains(err.Error(), "not an ELF executable") {
		t.Fatalf("CheckStatic(script) = %v", err)
	}
}

func TestBuildRejectsDynamicBeforeLoading(t *testing.T) {
	// A nil client: Build must fail on the binary check before touching the engine.
	err := jobimage.Build(context.Background(), nil, jobimage.Spec{Tag: "horde-test/never:1", Binary: "/bin/ls"})
	if !errors.Is(err, jobimage.ErrNotStatic) {
		t.Fatalf("Build(/bin/ls) = %v, want ErrNotStatic", err)
	}
}

func TestCompileStaticHello(t *testing.T) {
	bin := jobimagetest.HelloBinary(t)
	arch, err := jobimage.CheckStatic(bin)
	if err != nil {
		t.Fatal(err)
	}
	if arch == "" {
		t.Fatal("no architecture")
	}
}

func TestBuildRunAndSkipReload(t *testing.T) {
	cli := jobimagetest.Engine(t)
	bin := jobimagetest.HelloBinary(t)
	tag := jobimagetest.RandomTag()
	t.Cleanup(func() {
		if err := jobimagetest.RemoveImage(cli, tag); err != nil {
			t.Errorf("remove %s: %v", tag, err)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	spec := jobimage.Spec{Tag: tag, Binary: bin, Cmd: []string{"default-arg"}}
	start := time.Now()
	first, err := jobimage.Assemble(ctx, cli, spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("first build+load: %v", time.Since(start))
	if !first.Loaded {
		t.Fatal("first build did not load")
	}
	start = time.Now()
	second, err := jobimage.Assemble(ctx, cli, spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("second build (skipped load): %v", time.Since(start))
	if second.Loaded || second.ImageID != first.ImageID {
		t.Fatalf("second build: %+v, first %+v; want a skipped load of the same image", second, first)
	}
	// A different default command is different content: it must reload.
	spec.Cmd = []string{"other-arg"}
	third, err := jobimage.Assemble(ctx, cli, spec)
	if err != nil {
		t.Fatal(err)
	}
	if !third.Loaded || third.ContentDigest == first.ContentDigest {
		t.Fatalf("changed Cmd was not reloaded: %+v", third)
	}

	inspect, err := cli.ImageInspect(ctx, tag)
	if err != nil {
		t.Fatal(err)
	}
	if got := inspect.Config.Labels[jobimage.LabelContent]; got != third.ContentDigest {
		t.Errorf("label %s = %q, want %q", jobimage.LabelContent, got, third.ContentDigest)
	}
	if got := inspect.Config.Entrypoint; len(got) != 1 || got[0] != "/bin/hello" {
		t.Errorf("entrypoint = %v", got)
	}

	rt, err := docker.New(ctx, docker.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	res := runOnce(t, rt, executor.RunSpec{ID: "jobimage-test-" + tag[len(jobimagetest.TagPrefix):], JobUUID: "jobimage-test", Image: tag, Timeout: time.Minute})
	if res.ExitCode != 0 || !strings.HasPrefix(res.Stdout, "hello from horde other-arg\n") {
		t.Fatalf("run: %+v", res)
	}
	// The image's /volume, /output and /tmp exist; /output is the writable bind mount.
	if !strings.Contains(res.Stdout, "output: wrote hello.txt") {
		t.Errorf("job could not write /output: %q", res.Stdout)
	}
}

func runOnce(t *testing.T, rt executor.Runtime, spec executor.RunSpec) executor.RunResult {
	t.Helper()
	ctx := context.Background()
	if _, err := rt.Prepare(ctx, spec.ID, 0); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := rt.Remove(ctx, spec.ID); err != nil {
			t.Error(err)
		}
	}()
	if err := rt.Start(ctx, spec); err != nil {
		t.Fatal(err)
	}
	res, err := rt.Wait(ctx, spec.ID)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// TestArchiveLayout checks the docker-archive and its layer without an engine, through a
// client that records what it is asked to load.
func TestArchiveLayout(t *testing.T) {
	bin := jobimagetest.HelloBinary(t)
	rec := &recordingClient{}
	if err := jobimage.Build(context.Background(), rec, jobimage.Spec{Tag: "horde-test/layout:1", Binary: bin}); err == nil {
		t.Fatal("recording client cannot complete a build; want the post-load inspect error")
	}
	if rec.archive == nil {
		t.Fatal("nothing was loaded")
	}
	files := readTar(t, rec.archive)
	if _, ok := files["manifest.json"]; !ok {
		t.Fatalf("no manifest.json in %v", keys(files))
	}
	var layer []byte
	for name, data := range files {
		if strings.HasSuffix(name, "/layer.tar") {
			layer = data
		}
	}
	if layer == nil {
		t.Fatalf("no layer.tar in %v", keys(files))
	}
	tr := tar.NewReader(bytes.NewReader(layer))
	modes := map[string]int64{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		modes[h.Name] = h.Mode
	}
	want := map[string]int64{"bin/": 0o755, "bin/hello": 0o755, "tmp/": 0o1777, "volume/": 0o755, "output/": 0o755}
	for name, mode := range want {
		if got, ok := modes[name]; !ok || got != mode {
			t.Errorf("layer entry %s: mode %o (present %v), want %o", name, got, ok, mode)
		}
	}
}

func readTar(t *testing.T, data []byte) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			b, _ := io.ReadAll(tr)
			out[h.Name] = b
		}
	}
}

func keys(m map[string][]byte) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
