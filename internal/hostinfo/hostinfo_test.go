package hostinfo

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"

	"github.com/computehorde/horde/internal/gpu"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const cpuinfoFixture = `processor	: 0
vendor_id	: AuthenticAMD
model name	: AMD EPYC 7763 64-Core Processor
cpu MHz		: 2445.406
flags		: fpu vme de pse

processor	: 1
vendor_id	: AuthenticAMD
model name	: AMD EPYC 7763 64-Core Processor
cpu MHz		: 3500.000
flags		: fpu vme de pse

`

const meminfoFixture = `MemTotal:       16303428 kB
MemFree:         1234567 kB
MemAvailable:   12000000 kB
Buffers:          123456 kB
HugePages_Total:       0
Hugepagesize:       2048 kB
`

const osReleaseFixture = `# comment
PRETTY_NAME="Ubuntu 22.04.4 LTS"
NAME="Ubuntu"
VERSION_ID="22.04"
ID=ubuntu
`

// fixture writes the given files (name → contents; a missing name is not
// written) into a temp dir and returns sources pointing at them.
func fixture(t *testing.T, files map[string]string) sources {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return sources{
		cpuinfo:   filepath.Join(dir, "cpuinfo"),
		meminfo:   filepath.Join(dir, "meminfo"),
		osRelease: []string{filepath.Join(dir, "etc-os-release"), filepath.Join(dir, "usr-lib-os-release")},
	}
}

func goodFiles() map[string]string {
	return map[string]string{"cpuinfo": cpuinfoFixture, "meminfo": meminfoFixture, "etc-os-release": osReleaseFixture}
}

// decode unmarshals the JSON of Collect's result, failing on anything but one JSON object.
func decode(t *testing.T, s Specs) map[string]json.RawMessage {
	t.Helper()
	raw := s.JSON()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("Collect returned invalid JSON %s: %v", raw, err)
	}
	return m
}

func TestCollectFixtures(t *testing.T) {
	disk := t.TempDir()
	raw := fixture(t, goodFiles()).collect(context.Background(), gpu.None{}, disk).JSON()

	var st syscall.Statfs_t
	if err := syscall.Statfs(disk, &st); err != nil {
		t.Fatal(err)
	}
	var got specs
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatal(err)
	}
	if got.Disk == nil || got.Disk.Total != st.Blocks*uint64(st.Frsize)/1024 || got.Disk.Total == 0 ||
		got.Disk.Used > got.Disk.Total || got.Disk.Free > got.Disk.Total {
		t.Errorf("hard_disk %+v does not match statfs %+v", got.Disk, st)
	}
	got.Disk = nil
	osName := "Ubuntu 22.04.4 LTS"
	want := specs{
		GPU: &gpuPart{Details: []gpuDetail{}},
		CPU: &cpuPart{Count: 2, Model: "AMD EPYC 7763 64-Core Processor", Clocks: []float64{2445.406, 3500}},
		RAM: &ramPart{Total: 16303428, Free: 1234567, Available: 12000000, Used: 16303428 - 1234567},
		OS:  &osName,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %s", raw)
	}
	// Upstream's key order and empty lists, not nulls.
	if !strings.HasPrefix(string(raw), `{"gpu":{"count":0,"details":[]},"cpu":{"count":2,`) {
		t.Errorf("unexpected shape: %s", raw)
	}
	for _, key := range []string{`"ram":{"total":16303428,"free":1234567,"available":12000000,"used":15068861}`, `"hard_disk":{"total":`, `"os":"Ubuntu 22.04.4 LTS"}`} {
		if !strings.Contains(string(raw), key) {
			t.Errorf("output lacks %s: %s", key, raw)
		}
	}
}

// collectWithSMI collects the fixture host's specs with script standing in for nvidia-smi.
func collectWithSMI(t *testing.T, script string) Specs {
	t.Helper()
	smi := filepath.Join(t.TempDir(), "nvidia-smi")
	if err := os.WriteFile(smi, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return fixture(t, goodFiles()).collect(context.Background(), gpu.NvidiaSMI{SMIPath: smi}, t.TempDir())
}

func TestCollectGPUs(t *testing.T) {
	s := collectWithSMI(t, "#!/bin/sh\nprintf '%s\\n' 'NVIDIA H100 80GB HBM3, 550.54.15, 81559, 9.0, 700.00, 1980, 2619, GPU-5e3a, 1654922012345' 'NVIDIA H100 80GB HBM3, 550.54.15, 81559, 9.0, [N/A], 1980, 2619, GPU-77aa, [N/A]'\n")
	if n := s.GPUCount(); n != 2 {
		t.Errorf("GPUCount() = %d, want 2", n)
	}
	m := decode(t, s)
	want := `{"count":2,"details":[` +
		`{"name":"NVIDIA H100 80GB HBM3","driver":"550.54.15","capacity":81559,"cuda":"9.0","power_limit":"700.00","graphics_speed":"1980","memory_speed":"2619","uuid":"GPU-5e3a","serial":"1654922012345"},` +
		`{"name":"NVIDIA H100 80GB HBM3","driver":"550.54.15","capacity":81559,"cuda":"9.0","power_limit":"","graphics_speed":"1980","memory_speed":"2619","uuid":"GPU-77aa","serial":""}]}`
	if string(m["gpu"]) != want {
		t.Fatalf("gpu:\n got %s\nwant %s", m["gpu"], want)
	}
}

func TestCollectGPUError(t *testing.T) {
	s := collectWithSMI(t, "#!/bin/sh\necho 'NVIDIA-SMI has failed because it could not communicate with the NVIDIA driver.' >&2\nexit 9\n")
	if n := s.GPUCount(); n != 0 {
		t.Errorf("GPUCount() = %d with nvidia-smi failing, want 0", n)
	}
	m := decode(t, s)
	if _, ok := m["gpu"]; ok {
		t.Errorf("gpu present despite the error: %s", m["gpu"])
	}
	var msg string
	if err := json.Unmarshal(m["gpu_scrape_error"], &msg); err != nil || !strings.Contains(msg, "exit status 9") || !strings.Contains(msg, "NVIDIA driver") {
		t.Errorf("gpu_scrape_error = %s", m["gpu_scrape_error"])
	}
	for _, part := range []string{"cpu", "ram", "hard_disk", "os"} {
		if _, ok := m[part]; !ok {
			t.Errorf("%s missing", part)
		}
	}
}

func TestCollectNilDetector(t *testing.T) {
	m := decode(t, fixture(t, goodFiles()).collect(context.Background(), nil, t.TempDir()))
	if string(m["gpu"]) != `{"count":0,"details":[]}` {
		t.Fatalf("gpu = %s", m["gpu"])
	}
}

// TestCollectBroken feeds one broken part at a time: that part turns into
// its *_scrape_error naming the cause, and the rest still come through.
func TestCollectBroken(t *testing.T) {
	tests := []struct {
		name    string
		edit    func(files map[string]string)
		setup   func(t *testing.T, src sources)
		disk    func(t *testing.T) string
		part    string
		wantErr []string
	}{
		{
			name: "cpuinfo missing", edit: func(f map[string]string) { delete(f, "cpuinfo") },
			part: "cpu", wantErr: []string{"cpuinfo", "no such file"},
		},
		{
			name: "cpuinfo without processors", edit: func(f map[string]string) { f["cpuinfo"] = "model name : x\n" },
			part: "cpu", wantErr: []string{"cpuinfo", `no "processor" entries`},
		},
		{
			name: "cpu MHz garbage", edit: func(f map[string]string) { f["cpuinfo"] = strings.Replace(cpuinfoFixture, "3500.000", "fast", 1) },
			part: "cpu", wantErr: []string{"line 10", `"fast"`},
		},
		{
			name: "cpu MHz NaN", edit: func(f map[string]string) { f["cpuinfo"] = strings.Replace(cpuinfoFixture, "3500.000", "NaN", 1) },
			part: "cpu", wantErr: []string{"line 10", `"NaN"`},
		},
		{
			name: "cpuinfo too big", edit: func(f map[string]string) { f["cpuinfo"] = strings.Repeat("x", maxProcFile+1) },
			part: "cpu", wantErr: []string{"cpuinfo", "larger than 8388608 bytes"},
		},
		{
			name: "meminfo missing", edit: func(f map[string]string) { delete(f, "meminfo") },
			part: "ram", wantErr: []string{"meminfo", "no such file"},
		},
		{
			name: "meminfo lacks MemAvailable", edit: func(f map[string]string) { f["meminfo"] = "MemTotal: 10 kB\nMemFree: 5 kB\n" },
			part: "ram", wantErr: []string{"meminfo lacks MemAvailable"},
		},
		{
			name: "meminfo empty", edit: func(f map[string]string) { f["meminfo"] = "" },
			part: "ram", wantErr: []string{"lacks MemTotal, MemFree, MemAvailable"},
		},
		{
			name: "meminfo bad number", edit: func(f map[string]string) { f["meminfo"] = strings.Replace(meminfoFixture, "1234567", "12x", 1) },
			part: "ram", wantErr: []string{"line 2", "MemFree", `"12x kB"`},
		},
		{
			name: "meminfo wrong unit", edit: func(f map[string]string) { f["meminfo"] = strings.Replace(meminfoFixture, "16303428 kB", "16 GB", 1) },
			part: "ram", wantErr: []string{"line 1", "MemTotal", `"16 GB"`},
		},
		{
			name: "disk path missing", disk: func(t *testing.T) string { return filepath.Join(t.TempDir(), "gone") },
			part: "hard_disk", wantErr: []string{"statfs", "gone", "no such file"},
		},
		{
			name: "no os-release", edit: func(f map[string]string) { delete(f, "etc-os-release") },
			part: "os", wantErr: []string{"no os-release file", "etc-os-release", "usr-lib-os-release"},
		},
		{
			name: "os-release unterminated quote", edit: func(f map[string]string) { f["etc-os-release"] = "PRETTY_NAME=\"Ubuntu\n" },
			part: "os", wantErr: []string{"line 1", "unterminated quote"},
		},
		{
			name: "os-release garbage line", edit: func(f map[string]string) { f["etc-os-release"] = "ID=x\nhello world\n" },
			part: "os", wantErr: []string{"line 2", `"hello world"`, "KEY=VALUE"},
		},
		{
			name: "os-release is a directory", edit: func(f map[string]string) { delete(f, "etc-os-release") },
			setup: func(t *testing.T, src sources) {
				if err := os.Mkdir(src.osRelease[0], 0o755); err != nil {
					t.Fatal(err)
				}
			},
			part: "os", wantErr: []string{"etc-os-release", "is a directory"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			files := goodFiles()
			if tc.edit != nil {
				tc.edit(files)
			}
			src := fixture(t, files)
			if tc.setup != nil {
				tc.setup(t, src)
			}
			disk := t.TempDir()
			if tc.disk != nil {
				disk = tc.disk(t)
			}
			m := decode(t, src.collect(context.Background(), gpu.None{}, disk))
			if v, ok := m[tc.part]; ok {
				t.Errorf("%s present despite the error: %s", tc.part, v)
			}
			var msg string
			if err := json.Unmarshal(m[tc.part+"_scrape_error"], &msg); err != nil {
				t.Fatalf("no %s_scrape_error string in %v", tc.part, keys(m))
			}
			for _, w := range tc.wantErr {
				if !strings.Contains(msg, w) {
					t.Errorf("%s_scrape_error %q does not contain %q", tc.part, msg, w)
				}
			}
			if len(msg) > 1000 {
				t.Errorf("%s_scrape_error is %d bytes long", tc.part, len(msg))
			}
			for _, other := range []string{"gpu", "cpu", "ram", "hard_disk", "os"} {
				if _, ok := m[other]; !ok && other != tc.part {
					t.Errorf("%s missing too: %v", other, keys(m))
				}
			}
		})
	}
}

func keys(m map[string]json.RawMessage) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}

func TestOSName(t *testing.T) {
	tests := []struct{ name, body, want string }{
		{"pretty name", osReleaseFixture, "Ubuntu 22.04.4 LTS"},
		{"single quotes", "PRETTY_NAME='Debian GNU/Linux 12 (bookworm)'\n", "Debian GNU/Linux 12 (bookworm)"},
		{"unquoted", "PRETTY_NAME=Alpine\n", "Alpine"},
		{"escapes", `PRETTY_NAME="My \"OS\" \$1 \\ \n"` + "\n", `My "OS" $1 \ \n`},
		{"CRLF", "PRETTY_NAME=\"Fedora 40\"\r\n", "Fedora 40"},
		{"NAME fallback", "NAME=\"Arch Linux\"\nID=arch\n", "Arch Linux"},
		{"spec default", "ID=x\n", "Linux"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src := fixture(t, map[string]string{"usr-lib-os-release": tc.body}) // also checks the fallback path
			got, err := osName(src.osRelease)
			if err != nil || *got != tc.want {
				t.Fatalf("got %v, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestDiskDefaultsToWorkingDir(t *testing.T) {
	got, err := diskSpecs("")
	if err != nil || got.Total == 0 {
		t.Fatalf("got %+v, %v", got, err)
	}
}

// TestCollectHost runs against this machine's real /proc, /etc and disk.
func TestCollectHost(t *testing.T) {
	raw := Collect(context.Background(), gpu.None{}, t.TempDir()).JSON()
	t.Logf("%s", raw)
	var got specs
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatal(err)
	}
	if got.GPUErr+got.CPUErr+got.RAMErr+got.DiskErr+got.OSErr != "" {
		t.Fatalf("scrape errors: %s", raw)
	}
	switch {
	case got.GPU.Count != 0:
		t.Errorf("gpu = %+v", got.GPU)
	case got.CPU.Count < 1 || got.CPU.Model == "":
		t.Errorf("cpu = %+v", got.CPU)
	case got.RAM.Total <= 0 || got.RAM.Free > got.RAM.Total || got.RAM.Available > got.RAM.Total:
		t.Errorf("ram = %+v", got.RAM)
	case got.Disk.Total == 0 || got.Disk.Free > got.Disk.Total:
		t.Errorf("hard_disk = %+v", got.Disk)
	case *got.OS == "":
		t.Error("os is empty")
	}
}

func BenchmarkCollect(b *testing.B) {
	ctx, disk := context.Background(), b.TempDir()
	for b.Loop() {
		Collect(ctx, gpu.None{}, disk)
	}
}
