// Package jobimagetest gives tests a Docker engine and the hello job image (jobs/hello), built
// offline with package jobimage.
//
// Tests that need Docker call Engine(t): without a reachable engine they are skipped with a
// message, unless CI is set to a true value, in which case they fail. The hello image is built
// once per test process under a random tag; call Cleanup from TestMain to remove it:
//
//	func TestMain(m *testing.M) {
//		code := m.Run()
//		jobimagetest.Cleanup()
//		os.Exit(code)
//	}
package jobimagetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"

	"github.com/computehorde/horde/internal/jobimage"
)

// HelloPackage is the import path of the hello job.
const HelloPackage = "github.com/computehorde/horde/jobs/hello"

// TagPrefix starts the tag of every image this package builds.
const TagPrefix = "horde-test/hello:"

var (
	engineOnce sync.Once
	engineErr  error

	helloMu   sync.Mutex
	helloTag  string
	helloBin  string
	helloDir  string
	helloErr  error
	helloDone bool
)

// inCI reports whether CI is set to a true value (as GitHub Actions and most CI systems do).
func inCI() bool {
	v, err := strconv.ParseBool(os.Getenv("CI"))
	return err == nil && v
}

// Engine returns a client of the Docker engine named by the environment, closed at the end of
// the test. Without a reachable engine the test is skipped, or failed when CI is true.
func Engine(t testing.TB) *client.Client {
	t.Helper()
	engineOnce.Do(func() {
		cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
		if err != nil {
			engineErr = err
			return
		}
		defer cli.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := cli.Ping(ctx); err != nil {
			engineErr = fmt.Errorf("docker engine at %s: %w", cli.DaemonHost(), err)
		}
	})
	if engineErr != nil {
		msg := fmt.Sprintf("these tests need a Docker engine (start one with `dockerd &` or set DOCKER_HOST): %v", engineErr)
		if inCI() {
			t.Fatal(msg + " (CI is set, so this is a failure, not a skip)")
		}
		t.Skip(msg)
	}
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// HelloBinary compiles jobs/hello statically (once per process) and returns the executable's path.
func HelloBinary(t testing.TB) string {
	t.Helper()
	helloMu.Lock()
	defer helloMu.Unlock()
	if helloBin == "" && helloErr == nil {
		helloBin, helloErr = compileHello()
	}
	if helloErr != nil {
		t.Fatal(helloErr)
	}
	return helloBin
}

func compileHello() (string, error) {
	dir, err := os.MkdirTemp("", "horde-hello-")
	if err != nil {
		return "", err
	}
	helloDir = dir
	bin := filepath.Join(dir, "hello")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := jobimage.CompileStatic(ctx, HelloPackage, bin); err != nil {
		return "", err
	}
	return bin, nil
}

// Hello returns the tag of the hello image (entrypoint /bin/hello), building it on first use.
func Hello(t testing.TB) string {
	t.Helper()
	cli := Engine(t)
	bin := HelloBinary(t)
	helloMu.Lock()
	defer helloMu.Unlock()
	if !helloDone {
		helloDone = true
		helloTag = RandomTag()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		helloErr = jobimage.Build(ctx, cli, jobimage.Spec{Tag: helloTag, Binary: bin})
	}
	if helloErr != nil {
		t.Fatal(helloErr)
	}
	return helloTag
}

// RandomTag returns TagPrefix plus a random suffix.
func RandomTag() string {
	var b [6]byte
	rand.Read(b[:])
	return TagPrefix + hex.EncodeToString(b[:])
}

// RemoveImage removes tag from the engine, ignoring "not found".
func RemoveImage(cli *client.Client, tag string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := cli.ImageRemove(ctx, tag, image.RemoveOptions{Force: true, PruneChildren: true})
	if err != nil && !cerrdefs.IsNotFound(err) {
		return err
	}
	return nil
}

// Cleanup removes the hello image and the compiled executable. Call it from TestMain after
// m.Run.
func Cleanup() {
	helloMu.Lock()
	defer helloMu.Unlock()
	if helloTag != "" {
		if cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation()); err == nil {
			if err := RemoveImage(cli, helloTag); err != nil {
				fmt.Fprintf(os.Stderr, "jobimagetest: remove %s: %v\n", helloTag, err)
			}
			cli.Close()
		}
		helloTag, helloDone = "", false
	}
	if helloDir != "" {
		os.RemoveAll(helloDir)
		helloDir, helloBin = "", ""
	}
}
