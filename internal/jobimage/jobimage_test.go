package jobimage_test

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
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

// TestArchiveLayoutDynamic assembles an image from a dynamically linked host executable without
// an engine: the loader and libraries are in the layer at the host's paths, LD_LIBRARY_PATH
// names their directories, and the same input gives the same bytes.
func TestArchiveLayoutDynamic(t *testing.T) {
	exe := ""
	for _, p := range []string{"/bin/ls", "/usr/bin/env"} {
		if _, err := jobimage.CheckStatic(p); errors.Is(err, jobimage.ErrNotStatic) {
			exe = p
			break
		}
	}
	if exe == "" {
		t.Skip("no dynamically linked executable found on this host to test with")
	}
	assemble := func() []byte {
		rec := &recordingClient{}
		if err := jobimage.Build(context.Background(), rec, jobimage.Spec{Tag: "horde-test/dynamic:1", Binary: exe}); err == nil {
			t.Fatal("recording client cannot complete a build; want the post-load inspect error")
		}
		if rec.archive == nil {
			t.Fatal("nothing was loaded")
		}
		return rec.archive
	}
	archive := assemble()
	if !bytes.Equal(archive, assemble()) {
		t.Error("two builds of the same executable gave different archives")
	}
	files := readTar(t, archive)
	var layer, config []byte
	for name, data := range files {
		switch {
		case strings.HasSuffix(name, "/layer.tar"):
			layer = data
		case name != "manifest.json" && strings.HasSuffix(name, ".json"):
			config = data
		}
	}
	entries := readTar(t, layer)
	base := filepath.Base(exe)
	if _, ok := entries["bin/"+base]; !ok {
		t.Fatalf("no bin/%s in the layer: %v", base, keys(entries))
	}
	var libs []string
	for name := range entries {
		if !strings.HasPrefix(name, "bin/") {
			libs = append(libs, name)
		}
	}
	if !slices.ContainsFunc(libs, func(n string) bool { return strings.HasPrefix(filepath.Base(n), "ld-") }) ||
		!slices.ContainsFunc(libs, func(n string) bool { return filepath.Base(n) == "libc.so.6" }) {
		t.Errorf("loader or libc missing from the layer: %v", libs)
	}
	if !bytes.Contains(config, []byte(`"LD_LIBRARY_PATH=/`)) {
		t.Errorf("image config sets no LD_LIBRARY_PATH: %s", config)
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

// cgoProgram is a Go program that links against libc through cgo, so a plain build of it is
// dynamically linked.
const cgoProgram = `package main

/*
#include <stdlib.h>
static int answer(void) { return abs(-42); }
*/
import "C"

import (
	"fmt"
	"os"
)

func main() { fmt.Printf("dynamic hello %d %v\n", int(C.answer()), os.Args[1:]) }
`

// TestBuildRunDynamic builds a cgo program the way plain `go build` does, assembles its image
// and runs it on the engine; and the same for a host executable with a deeper library tree.
func TestBuildRunDynamic(t *testing.T) {
	cli := jobimagetest.Engine(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	dir := t.TempDir()
	src, bin := filepath.Join(dir, "main.go"), filepath.Join(dir, "dyn")
	if err := os.WriteFile(src, []byte(cgoProgram), 0o644); err != nil {
		t.Fatal(err)
	}
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, src)
	build.Dir = dir
	build.Env = append(os.Environ(), "CGO_ENABLED=1")
	if out, err := build.CombinedOutput(); err != nil {
		t.Skipf("cannot build a cgo program here (no C toolchain? install gcc): %v\n%s", err, out)
	}
	if _, err := jobimage.CheckStatic(bin); !errors.Is(err, jobimage.ErrNotStatic) {
		t.Fatalf("the cgo build is not dynamically linked (CheckStatic: %v); the test proves nothing", err)
	}

	rt, err := docker.New(ctx, docker.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()

	for _, c := range []struct {
		name, binary string
		cmd          []string
		want         string
	}{
		{"cgo", bin, []string{"a", "b"}, "dynamic hello 42 [a b]\n"},
		{"ls", "/bin/ls", []string{"/"}, "volume\n"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, err := os.Stat(c.binary); err != nil {
				t.Skip(err)
			}
			tag := jobimagetest.RandomTag()
			t.Cleanup(func() {
				if err := jobimagetest.RemoveImage(cli, tag); err != nil {
					t.Errorf("remove %s: %v", tag, err)
				}
			})
			if err := jobimage.Build(ctx, cli, jobimage.Spec{Tag: tag, Binary: c.binary, Cmd: c.cmd}); err != nil {
				t.Fatal(err)
			}
			res := runOnce(t, rt, executor.RunSpec{ID: "jobimage-test-" + tag[len(jobimagetest.TagPrefix):], JobUUID: "jobimage-test", Image: tag, Timeout: time.Minute})
			if res.ExitCode != 0 || !strings.Contains(res.Stdout, c.want) {
				t.Fatalf("run: %+v; want exit 0 and %q in stdout", res, c.want)
			}
		})
	}
}
