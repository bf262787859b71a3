package executor

import (
	"archive/zip"
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

type zipEntry struct {
	name string
	body string
	mode fs.FileMode
}

func makeZip(t *testing.T, entries ...zipEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, e := range entries {
		h := &zip.FileHeader{Name: e.name, Method: zip.Deflate}
		if e.mode != 0 {
			h.SetMode(e.mode)
		}
		w, err := zw.CreateHeader(h)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write([]byte(e.body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestExtractZip(t *testing.T) {
	dest := filepath.Join(t.TempDir(), "vol")
	data := makeZip(t,
		zipEntry{name: "dir/", mode: fs.ModeDir | 0o755},
		zipEntry{name: "dir/a.txt", body: "hello"},
		zipEntry{name: "b/c/d.bin", body: strings.Repeat("x", 1000)},
	)
	n, err := ExtractZip(data, dest, 0)
	if err != nil {
		t.Fatal(err)
	}
	if n != 1005 {
		t.Errorf("wrote %d bytes, want 1005", n)
	}
	b, err := os.ReadFile(filepath.Join(dest, "dir", "a.txt"))
	if err != nil || string(b) != "hello" {
		t.Fatalf("a.txt = %q, %v", b, err)
	}
	info, err := os.Stat(filepath.Join(dest, "b", "c", "d.bin"))
	if err != nil || info.Mode().Perm() != 0o777 {
		t.Errorf("d.bin: %v, %v", info.Mode(), err)
	}
}

func TestExtractZipRejectsUnsafe(t *testing.T) {
	cases := map[string][]zipEntry{
		"dotdot":        {{name: "../evil.txt", body: "x"}},
		"nested dotdot": {{name: "a/../../evil.txt", body: "x"}},
		"inner dotdot":  {{name: "a/../b.txt", body: "x"}},
		"absolute":      {{name: "/etc/evil", body: "x"}},
		"symlink":       {{name: "link", body: "/etc/passwd", mode: fs.ModeSymlink | 0o777}},
		"fifo":          {{name: "pipe", mode: fs.ModeNamedPipe | 0o644}},
	}
	for name, entries := range cases {
		t.Run(name, func(t *testing.T) {
			root := t.TempDir()
			dest := filepath.Join(root, "vol")
			_, err := ExtractZip(makeZip(t, entries...), dest, 0)
			if !errors.Is(err, ErrUnsafeVolume) {
				t.Fatalf("ExtractZip = %v, want ErrUnsafeVolume", err)
			}
			// Nothing was written anywhere, not even inside dest.
			var found []string
			filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
				if p != root {
					found = append(found, p)
				}
				return nil
			})
			if len(found) != 0 {
				t.Errorf("files written: %v", found)
			}
		})
	}
}

func TestExtractZipSizeCap(t *testing.T) {
	data := makeZip(t, zipEntry{name: "a", body: strings.Repeat("a", 600)}, zipEntry{name: "b", body: strings.Repeat("b", 600)})
	if _, err := ExtractZip(data, t.TempDir(), 1000); !errors.Is(err, ErrVolumeTooLarge) {
		t.Fatalf("ExtractZip over the cap = %v, want ErrVolumeTooLarge", err)
	}
	if _, err := ExtractZip(data, t.TempDir(), 1200); err != nil {
		t.Fatalf("ExtractZip at the cap: %v", err)
	}
}

// TestExtractZipLyingSize: a zip entry whose declared size is smaller than its real content
// still stops at the cap.
func TestExtractZipLyingSize(t *testing.T) {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, err := zw.CreateRaw(&zip.FileHeader{Name: "bomb", Method: zip.Store, UncompressedSize64: 10, CompressedSize64: 5000, CRC32: 0})
	if err != nil {
		t.Fatal(err)
	}
	w.Write(bytes.Repeat([]byte("z"), 5000))
	zw.Close()
	_, err = ExtractZip(buf.Bytes(), t.TempDir(), 100)
	if err == nil {
		t.Fatal("lying zip extracted")
	}
}

func TestJoinRel(t *testing.T) {
	for rel, want := range map[string]string{"": "/v", "a": "/v/a", "a/b/": "/v/a/b", "./a": "/v/a"} {
		got, err := joinRel("/v", rel)
		if err != nil || got != want {
			t.Errorf("joinRel(%q) = %q, %v; want %q", rel, got, err, want)
		}
	}
	for _, rel := range []string{"..", "../a", "/abs", "a/../../b", "a/.."} {
		if _, err := joinRel("/v", rel); err == nil {
			t.Errorf("joinRel(%q) accepted", rel)
		}
	}
}
