package gpu

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const h100 = "NVIDIA H100 80GB HBM3, 550.54.15, 81559, 9.0, 700.00, 1980, 2619, GPU-5e3a7c1b-0f2d-4c1e-9a8b-1234567890ab, 1654922012345\n"

var h100GPU = GPU{
	Name: "NVIDIA H100 80GB HBM3", Driver: "550.54.15", MemoryMiB: 81559, ComputeCap: "9.0",
	PowerLimit: "700.00", GraphicsClock: "1980", MemoryClock: "2619",
	UUID: "GPU-5e3a7c1b-0f2d-4c1e-9a8b-1234567890ab", Serial: "1654922012345",
}

func TestParseCSV(t *testing.T) {
	a6000 := "NVIDIA RTX A6000, 550.54.15, 49140, 8.6, 300.00, 210, 405, GPU-0a1b2c3d-4e5f-6789-abcd-ef0123456789, [N/A]\n"
	a6000GPU := GPU{
		Name: "NVIDIA RTX A6000", Driver: "550.54.15", MemoryMiB: 49140, ComputeCap: "8.6",
		PowerLimit: "300.00", GraphicsClock: "210", MemoryClock: "405",
		UUID: "GPU-0a1b2c3d-4e5f-6789-abcd-ef0123456789",
	}
	tests := []struct {
		name string
		in   string
		want []GPU
	}{
		{"empty", "", nil},
		{"one GPU", h100, []GPU{h100GPU}},
		{"two GPUs", h100 + a6000, []GPU{h100GPU, a6000GPU}},
		{"blank lines and CRLF", "\r\n" + strings.ReplaceAll(h100, "\n", "\r\n") + "\n\n", []GPU{h100GPU}},
		{"extra spaces", "  NVIDIA H100 80GB HBM3 ,550.54.15,   81559 ,9.0,700.00,1980,2619 , GPU-5e3a7c1b-0f2d-4c1e-9a8b-1234567890ab,1654922012345   ", []GPU{h100GPU}},
		{"unit left on memory", strings.Replace(h100, "81559", "81559 MiB", 1), []GPU{h100GPU}},
		{
			"unavailable values",
			"Tesla T4, 535.104.05, [N/A], 7.5, [Not Supported], N/A, [Unknown Error], GPU-1, [N/A]",
			[]GPU{{Name: "Tesla T4", Driver: "535.104.05", ComputeCap: "7.5", UUID: "GPU-1"}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseCSV([]byte(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestParseCSVErrors(t *testing.T) {
	tests := []struct {
		name, in string
		want     []string // substrings of the error
	}{
		{"garbage line", h100 + "No devices were found\n", []string{"line 2", `"No devices were found"`, "want 9", "got 1"}},
		{"too many fields", "a,b,1,d,e,f,g,h,i,j", []string{"line 1", "got 10"}},
		{"memory not a number", strings.Replace(h100, "81559", "80GB", 1), []string{"line 1", `memory.total "80GB"`}},
		{"negative memory", strings.Replace(h100, "81559", "-1", 1), []string{"line 1", `memory.total "-1"`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseCSV([]byte(tc.in))
			if err == nil {
				t.Fatalf("no error; got %+v", got)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestParseCSVClipsLongLine(t *testing.T) {
	_, err := ParseCSV([]byte(strings.Repeat("x", 10000)))
	if err == nil {
		t.Fatal("no error")
	}
	if len(err.Error()) > 500 {
		t.Fatalf("want a short error, got %d bytes: %.100q", len(err.Error()), err)
	}
}

// fakeBin writes an executable shell script into a fresh temp dir.
func fakeBin(t *testing.T, name, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// smiArgs is what the fake nvidia-smi insists on, so the tests also pin
// the command line.
const smiArgs = `[ "$*" = "--query-gpu=name,driver_version,memory.total,compute_cap,power.limit,clocks.gr,clocks.mem,uuid,serial --format=csv,noheader,nounits" ] || { echo "bad args: $*" >&2; exit 64; }`

func TestNvidiaSMIGPUs(t *testing.T) {
	smi := fakeBin(t, "nvidia-smi", smiArgs+"\nprintf '%s' '"+h100+h100+"'")
	got, err := NvidiaSMI{SMIPath: smi}.GPUs(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if want := []GPU{h100GPU, h100GPU}; !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
}

func TestNvidiaSMIOnPath(t *testing.T) {
	smi := fakeBin(t, "nvidia-smi", smiArgs+"\nprintf '%s' '"+h100+"'")
	t.Setenv("PATH", filepath.Dir(smi))
	got, err := NvidiaSMI{}.GPUs(context.Background())
	if err != nil || len(got) != 1 {
		t.Fatalf("got %+v, %v", got, err)
	}
}

func TestNvidiaSMIMissing(t *testing.T) {
	t.Run("configured path", func(t *testing.T) {
		got, err := NvidiaSMI{SMIPath: filepath.Join(t.TempDir(), "nvidia-smi")}.GPUs(context.Background())
		if got != nil || err != nil {
			t.Fatalf("got %+v, %v; want nil, nil", got, err)
		}
	})
	t.Run("PATH", func(t *testing.T) {
		t.Setenv("PATH", t.TempDir())
		got, err := NvidiaSMI{}.GPUs(context.Background())
		if got != nil || err != nil {
			t.Fatalf("got %+v, %v; want nil, nil", got, err)
		}
	})
}

func TestNvidiaSMINotExecutable(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nvidia-smi")
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := NvidiaSMI{SMIPath: path}.GPUs(context.Background())
	if err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("want an error naming %s, got %v", path, err)
	}
}

func TestNvidiaSMIFails(t *testing.T) {
	smi := fakeBin(t, "nvidia-smi", `echo "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver." >&2; exit 9`)
	_, err := NvidiaSMI{SMIPath: smi}.GPUs(context.Background())
	if err == nil {
		t.Fatal("no error")
	}
	for _, w := range []string{smi, "exit status 9", "couldn't communicate with the NVIDIA driver"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not contain %q", err, w)
		}
	}
}

func TestNvidiaSMIBadOutput(t *testing.T) {
	smi := fakeBin(t, "nvidia-smi", `echo "No devices were found"`)
	_, err := NvidiaSMI{SMIPath: smi}.GPUs(context.Background())
	if err == nil || !strings.Contains(err.Error(), smi) || !strings.Contains(err.Error(), "line 1") {
		t.Fatalf("want an error naming %s and line 1, got %v", smi, err)
	}
}

func TestNvidiaSMIOutputCapped(t *testing.T) {
	smi := fakeBin(t, "nvidia-smi", `yes`)
	_, err := NvidiaSMI{SMIPath: smi}.GPUs(context.Background())
	if !errors.Is(err, errOutputTooLarge) || !strings.Contains(err.Error(), strconv.Itoa(maxStdout)) {
		t.Fatalf("want errOutputTooLarge naming the limit, got %v", err)
	}
}

// hangingBin is a script whose child sleeps; it records the child's pid so
// the test can check the whole process group died, not just the shell.
func hangingBin(t *testing.T, name string) (path, pidFile string) {
	t.Helper()
	pidFile = filepath.Join(t.TempDir(), "pid")
	return fakeBin(t, name, "sleep 30 &\necho $! > "+pidFile+"\nwait"), pidFile
}

func TestNvidiaSMIHangs(t *testing.T) {
	t.Run("timeout", func(t *testing.T) {
		smi, pidFile := hangingBin(t, "nvidia-smi")
		start := time.Now()
		_, err := NvidiaSMI{SMIPath: smi, Timeout: 200 * time.Millisecond}.GPUs(context.Background())
		if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "200ms time limit") {
			t.Fatalf("want a deadline error naming the limit, got %v", err)
		}
		checkKilled(t, start, pidFile)
	})
	t.Run("context cancelled", func(t *testing.T) {
		smi, pidFile := hangingBin(t, "nvidia-smi")
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		stop := time.AfterFunc(200*time.Millisecond, cancel)
		defer stop.Stop()
		start := time.Now()
		_, err := NvidiaSMI{SMIPath: smi}.GPUs(ctx)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("want context.Canceled, got %v", err)
		}
		checkKilled(t, start, pidFile)
	})
}

// checkKilled asserts the call returned promptly and that the hanging
// script's grandchild is gone (or a zombie awaiting a reaper).
func checkKilled(t *testing.T, start time.Time, pidFile string) {
	t.Helper()
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("returned after %v", d)
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatalf("script never started its child: %v", err)
	}
	pid := strings.TrimSpace(string(b))
	for deadline := time.Now().Add(2 * time.Second); ; {
		stat, err := os.ReadFile("/proc/" + pid + "/stat")
		if err != nil || strings.Contains(string(stat), ") Z ") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("child %s still running: %s", pid, stat)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

const toolkitOutput = "NVIDIA Container Runtime Hook version 1.17.4\ncommit: 9b69590c7428470a72f2ae05f826412976af1395\n"

func TestToolkitVersion(t *testing.T) {
	tk := fakeBin(t, "nvidia-container-toolkit", `[ "$*" = "--version" ] || exit 64`+"\nprintf '%s' '"+toolkitOutput+"'")
	got, err := NvidiaSMI{ToolkitPath: tk}.ToolkitVersion(context.Background())
	if err != nil || got != "1.17.4" {
		t.Fatalf("got %q, %v; want 1.17.4", got, err)
	}

	t.Setenv("PATH", filepath.Dir(tk))
	got, err = NvidiaSMI{}.ToolkitVersion(context.Background())
	if err != nil || got != "1.17.4" {
		t.Fatalf("on PATH: got %q, %v; want 1.17.4", got, err)
	}
}

func TestToolkitVersionErrors(t *testing.T) {
	t.Run("missing", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "nvidia-container-toolkit")
		got, err := NvidiaSMI{ToolkitPath: path}.ToolkitVersion(context.Background())
		if got != "" || !errors.Is(err, ErrNoToolkit) || !strings.Contains(err.Error(), path) {
			t.Fatalf("got %q, %v; want ErrNoToolkit naming %s", got, err, path)
		}
	})
	t.Run("missing on PATH", func(t *testing.T) {
		t.Setenv("PATH", t.TempDir())
		_, err := NvidiaSMI{}.ToolkitVersion(context.Background())
		if !errors.Is(err, ErrNoToolkit) {
			t.Fatalf("want ErrNoToolkit, got %v", err)
		}
	})
	t.Run("fails", func(t *testing.T) {
		tk := fakeBin(t, "nvidia-container-toolkit", "echo boom >&2; exit 1")
		_, err := NvidiaSMI{ToolkitPath: tk}.ToolkitVersion(context.Background())
		if err == nil || errors.Is(err, ErrNoToolkit) || !strings.Contains(err.Error(), "boom") {
			t.Fatalf("want an exit error with stderr, got %v", err)
		}
	})
	t.Run("no output", func(t *testing.T) {
		tk := fakeBin(t, "nvidia-container-toolkit", "exit 0")
		_, err := NvidiaSMI{ToolkitPath: tk}.ToolkitVersion(context.Background())
		if err == nil || !strings.Contains(err.Error(), "no version") {
			t.Fatalf("want a no-version error, got %v", err)
		}
	})
	t.Run("hangs", func(t *testing.T) {
		tk, pidFile := hangingBin(t, "nvidia-container-toolkit")
		start := time.Now()
		_, err := NvidiaSMI{ToolkitPath: tk, Timeout: 100 * time.Millisecond}.ToolkitVersion(context.Background())
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("want context.DeadlineExceeded, got %v", err)
		}
		checkKilled(t, start, pidFile)
	})
}

func TestNone(t *testing.T) {
	var d Detector = None{}
	if got, err := d.GPUs(context.Background()); got != nil || err != nil {
		t.Fatalf("GPUs: %+v, %v", got, err)
	}
	if v, err := d.ToolkitVersion(context.Background()); v != "" || !errors.Is(err, ErrNoToolkit) {
		t.Fatalf("ToolkitVersion: %q, %v", v, err)
	}
}

func TestCheckToolkit(t *testing.T) {
	tests := []struct {
		version string
		want    error
	}{
		{"1.17.4", nil},
		{"v1.17.4", nil},
		{"1.17.5", nil},
		{"1.18.0", nil},
		{"1.18", nil},
		{"2.0.0-rc.1", nil},
		{"1.17.3", ErrToolkitTooOld},
		{"1.16.2", ErrToolkitTooOld},
		{"1.17.4-rc.1", ErrToolkitTooOld},
		{"0.99.99", ErrToolkitTooOld},
		{"abc", ErrBadToolkitVersion},
		{"", ErrBadToolkitVersion},
		{"1", ErrBadToolkitVersion},
		{"1.17.4.1", ErrBadToolkitVersion},
		{"1.x.4", ErrBadToolkitVersion},
		{"1.17.-4", ErrBadToolkitVersion},
		{"1.17.4-", ErrBadToolkitVersion},
		{"1.17.04", ErrBadToolkitVersion},
	}
	for _, tc := range tests {
		t.Run(tc.version, func(t *testing.T) {
			err := CheckToolkit(tc.version)
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if err == nil {
				return
			}
			for _, w := range []string{strconv.Quote(tc.version), MinToolkitVersion, "CVE-2025-23359"} {
				if tc.want == ErrToolkitTooOld {
					w = strings.Trim(w, `"`)
				}
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not name %s", err, w)
				}
			}
		})
	}
}
