package jobimage

import (
	"debug/elf"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// dynamicExecutable returns a dynamically linked executable of the host with its PT_INTERP,
// or skips: these tests resolve real host libraries.
func dynamicExecutable(t *testing.T) (path, interp string) {
	t.Helper()
	for _, p := range []string{"/bin/ls", "/usr/bin/env"} {
		if _, interp, err := inspectELF(p); err == nil && interp != "" {
			return p, interp
		}
	}
	t.Skip("no dynamically linked executable found on this host to test with")
	return "", ""
}

func needed(t *testing.T, path string) []string {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	names, err := f.DynString(elf.DT_NEEDED)
	if err != nil {
		t.Fatal(err)
	}
	return names
}

func TestResolveHostExecutable(t *testing.T) {
	exe, interp := dynamicExecutable(t)
	rt, err := resolveRuntime(exe, interp)
	if err != nil {
		t.Fatal(err)
	}
	byBase := map[string]string{}
	for _, f := range rt.files {
		if !filepath.IsAbs(f.path) || len(f.data) == 0 {
			t.Errorf("bad file %q (%d bytes)", f.path, len(f.data))
		}
		if _, dup := byBase[filepath.Base(f.path)]; dup {
			t.Errorf("%s copied twice (the loader's own soname must not be searched for)", filepath.Base(f.path))
		}
		byBase[filepath.Base(f.path)] = f.path
	}
	if !slices.ContainsFunc(rt.files, func(f hostFile) bool { return f.path == interp }) {
		t.Errorf("loader %s not among %v", interp, byBase)
	}
	// Every DT_NEEDED entry, of the executable and of each library, is there: the closure.
	for _, f := range rt.files {
		if f.path == interp {
			continue
		}
		for _, n := range needed(t, f.path) {
			if byBase[n] == "" && n != filepath.Base(interp) {
				t.Errorf("%s needs %s, not copied", f.path, n)
			}
		}
	}
	for _, n := range needed(t, exe) {
		if byBase[n] == "" {
			t.Errorf("%s needs %s, not copied", exe, n)
		}
	}
	if len(rt.libDirs) == 0 {
		t.Error("no library directories for LD_LIBRARY_PATH")
	}
	if !slices.IsSortedFunc(rt.files, func(a, b hostFile) int { return strings.Compare(a.path, b.path) }) {
		t.Error("files not sorted by path: the layer would not be deterministic")
	}
	t.Logf("%s: %v, LD_LIBRARY_PATH=%s", exe, byBase, strings.Join(rt.libDirs, ":"))
}

func TestResolveMissingLibrary(t *testing.T) {
	exe, interp := dynamicExecutable(t)
	f, err := elf.Open(exe)
	if err != nil {
		t.Fatal(err)
	}
	empty := t.TempDir()
	r := &libResolver{machine: f.Machine, class: f.Class, defaultDirs: []string{empty}}
	f.Close()
	_, err = r.resolve(exe, interp)
	first := needed(t, exe)[0]
	if err == nil || !strings.Contains(err.Error(), exe+" needs the shared library "+first+", which is not in "+empty) ||
		!strings.Contains(err.Error(), "CGO_ENABLED=0") {
		t.Fatalf("resolve with no library directories = %v; want an error naming %s and the fix", err, first)
	}

	r.defaultDirs = nil
	if _, err := r.resolve(exe, filepath.Join(empty, "ld.so")); err == nil || !strings.Contains(err.Error(), "needs the dynamic loader") {
		t.Fatalf("resolve with a missing loader = %v", err)
	}
}

func TestReadLdSoConf(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "conf.d"), 0o755); err != nil {
		t.Fatal(err)
	}
	write("ld.so.conf", "# top\n/opt/a\ninclude conf.d/*.conf\nhwcap 0 nosegneg\n/opt/b, /opt/c\t/opt/d=libc6\nrelative/ignored\n")
	write("conf.d/2.conf", "/opt/z # trailing comment\n")
	write("conf.d/1.conf", "/opt/y/\n")
	got, err := readLdSoConf(filepath.Join(dir, "ld.so.conf"), 0)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"/opt/a", "/opt/y", "/opt/z", "/opt/b", "/opt/c", "/opt/d"}
	if !slices.Equal(got, want) {
		t.Errorf("dirs = %v, want %v", got, want)
	}
	if got, err := readLdSoConf(filepath.Join(dir, "missing"), 0); err != nil || got != nil {
		t.Errorf("missing file: %v, %v", got, err)
	}
}
