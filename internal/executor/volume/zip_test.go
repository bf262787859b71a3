package volume

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/computehorde/horde/internal/protocol"
)

func TestZipUnsafe(t *testing.T) {
	good := zipEntry{name: "good.txt", body: "fine"} // first, to prove nothing is written early
	cases := map[string][]zipEntry{
		"dotdot":        {good, {name: "../evil.txt", body: "x"}},
		"nested dotdot": {good, {name: "a/../../evil.txt", body: "x"}},
		"inner dotdot":  {good, {name: "a/../b.txt", body: "x"}},
		"dotdot dir":    {good, {name: "../evil/", mode: fs.ModeDir | 0o755}},
		"absolute":      {good, {name: "/tmp/evil", body: "x"}},
		"NUL":           {good, {name: "a\x00b", body: "x"}},
		"symlink":       {good, {name: "link", body: "/etc/passwd", mode: fs.ModeSymlink | 0o777}},
		"fifo":          {good, {name: "pipe", mode: fs.ModeNamedPipe | 0o644}},
		"device":        {good, {name: "dev", mode: fs.ModeDevice | 0o644}},
		"root as file":  {good, {name: ".", body: "x"}},
	}
	for name, entries := range cases {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)
			f, _ := newFetcher(t, Config{})
			v := inline(makeZip(t, entries...), nil)
			_, err := f.Fetch(t.Context(), &v, e.vol, e.tmp)
			asError(t, err, protocol.VolumeTypeInline)
			if !errors.Is(err, ErrUnsafe) {
				t.Errorf("error %v, want ErrUnsafe", err)
			}
			if got := e.files(t); len(got) != 0 {
				t.Errorf("written before the check: %v", got)
			}
			e.checkContained(t)
		})
	}
}

func TestUnsafeRelativePath(t *testing.T) {
	data := makeZip(t, zipEntry{name: "a.txt", body: "a"})
	for _, rel := range []string{"../up", "/abs", "x/../../up", "x\x00"} {
		e := newEnv(t)
		f, _ := newFetcher(t, Config{})
		v := multi(inline(data, ptr(rel)))
		_, err := f.Fetch(t.Context(), v, e.vol, e.tmp)
		if !errors.Is(err, ErrUnsafe) || !strings.Contains(err.Error(), "relative_path") {
			t.Errorf("%q: error %v, want ErrUnsafe naming relative_path", rel, err)
		}
		e.checkContained(t)
	}
}

func TestZipNeverFollowsSymlinks(t *testing.T) {
	e := newEnv(t)
	outside := filepath.Join(e.parent, "outside")
	os.Mkdir(outside, 0o700)
	os.Mkdir(e.vol, 0o700)
	if err := os.Symlink(outside, filepath.Join(e.vol, "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(outside, "f"), filepath.Join(e.vol, "flink")); err != nil {
		t.Fatal(err)
	}
	f, _ := newFetcher(t, Config{})
	for _, name := range []string{"link/x", "flink", "link/"} {
		entry := zipEntry{name: name, body: "x"}
		if strings.HasSuffix(name, "/") {
			entry = zipEntry{name: name, mode: fs.ModeDir | 0o755}
		}
		v := inline(makeZip(t, entry), nil)
		if _, err := f.Fetch(t.Context(), &v, e.vol, e.tmp); !errors.Is(err, ErrUnsafe) {
			t.Errorf("%s: error %v, want ErrUnsafe", name, err)
		}
		v = inline(makeZip(t, zipEntry{name: "x", body: "x"}), ptr(name))
		if _, err := f.Fetch(t.Context(), &v, e.vol, e.tmp); !errors.Is(err, ErrUnsafe) {
			t.Errorf("relative_path %s: error %v, want ErrUnsafe", name, err)
		}
	}
	if ents, _ := os.ReadDir(outside); len(ents) != 0 {
		t.Errorf("written through a symlink: %v", ents)
	}
}

func TestZipFileCountCap(t *testing.T) {
	var entries []zipEntry
	for i := range 5 {
		entries = append(entries, zipEntry{name: fmt.Sprintf("f%d", i), body: "x"})
	}
	e := newEnv(t)
	f, _ := newFetcher(t, Config{MaxFiles: 4})
	v := inline(makeZip(t, entries...), nil)
	_, err := f.Fetch(t.Context(), &v, e.vol, e.tmp)
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "4") {
		t.Errorf("error %v, want ErrTooLarge naming the cap", err)
	}
	if got := e.files(t); len(got) != 0 {
		t.Errorf("written: %v", got)
	}
	// Within the cap it goes through.
	f, _ = newFetcher(t, Config{MaxFiles: 5})
	if _, err := f.Fetch(t.Context(), &v, e.vol, e.tmp); err != nil {
		t.Fatal(err)
	}
}

// bomb is 50 MiB of zeros deflated to about 50 KiB. Compressing 50 MiB is slow under the
// race detector, so one flushed block of 1 MiB of zeros, which decodes the same after any run
// of zeros, is repeated.
var bomb = sync.OnceValue(func() []byte {
	var out bytes.Buffer
	w, _ := flate.NewWriter(&out, flate.BestCompression)
	zeros := make([]byte, 1<<20)
	w.Write(zeros)
	w.Flush()
	first := out.Len()
	w.Write(zeros)
	w.Flush()
	block := bytes.Clone(out.Bytes()[first:])
	for range 48 {
		out.Write(block)
	}
	w.Close() // the final, empty block
	return out.Bytes()
})

// bombZip stores 50 MiB of zeros (about 50 KiB deflated) declaring size bytes.
func bombZip(t *testing.T, size uint64) []byte {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	comp := bomb()
	w, err := zw.CreateRaw(&zip.FileHeader{Name: "zeros", Method: zip.Deflate,
		CRC32: crc32.ChecksumIEEE(make([]byte, 50<<20)), CompressedSize64: uint64(len(comp)), UncompressedSize64: size})
	if err != nil {
		t.Fatal(err)
	}
	w.Write(comp)
	zw.Close()
	return buf.Bytes()
}

func TestZipBomb(t *testing.T) {
	const limit = 10 << 20
	if n, err := io.Copy(io.Discard, flate.NewReader(bytes.NewReader(bomb()))); n != 50<<20 || err != nil {
		t.Fatalf("bomb inflates to %d bytes (%v)", n, err)
	}
	for name, declared := range map[string]uint64{"honest": 50 << 20, "lying": 1 << 20} {
		t.Run(name, func(t *testing.T) {
			data := bombZip(t, declared)
			if len(data) > 200<<10 {
				t.Fatalf("bomb is %d bytes", len(data))
			}
			e := newEnv(t)
			f, _ := newFetcher(t, Config{MaxBytes: limit})
			v := inline(data, nil)
			st, err := f.Fetch(t.Context(), &v, e.vol, e.tmp)
			asError(t, err, protocol.VolumeTypeInline)
			if declared > limit && !errors.Is(err, ErrTooLarge) {
				t.Errorf("error %v, want ErrTooLarge", err)
			}
			if declared < limit && !strings.Contains(fmt.Sprint(err), "inflates past the 1048576 bytes its header declares") {
				t.Errorf("error %v, want it to say the data exceeds the declared size", err)
			}
			if err == nil || st.Bytes > limit {
				t.Errorf("error %v, stats %+v", err, st)
			}
			if got := e.files(t); len(got) != 0 {
				t.Errorf("partial entry left: %d files", len(got))
			}
			e.checkContained(t)
		})
	}
}

// rawZip builds an archive of empty stored files by hand, declaring count entries in the
// end record (archive/zip compares only the low 16 bits with what it reads).
func rawZip(names []string, count int) []byte {
	var body, dir bytes.Buffer
	le := binary.LittleEndian
	for _, n := range names {
		off := body.Len()
		h := le.AppendUint32(nil, 0x04034b50)
		h = le.AppendUint16(h, 20)
		h = append(h, make([]byte, 20)...) // flags, method, time, date, crc, sizes
		h = le.AppendUint16(h, uint16(len(n)))
		h = le.AppendUint16(h, 0)
		body.Write(append(h, n...))
		c := le.AppendUint32(nil, 0x02014b50)
		c = le.AppendUint16(c, 20)
		c = le.AppendUint16(c, 20)
		c = append(c, make([]byte, 20)...)
		c = le.AppendUint16(c, uint16(len(n)))
		c = append(c, make([]byte, 12)...) // extra, comment, disk, attrs
		c = le.AppendUint32(c, uint32(off))
		dir.Write(append(c, n...))
	}
	end := le.AppendUint32(nil, 0x06054b50)
	end = le.AppendUint32(end, 0)
	end = le.AppendUint16(end, uint16(count))
	end = le.AppendUint16(end, uint16(count))
	end = le.AppendUint32(end, uint32(dir.Len()))
	end = le.AppendUint32(end, uint32(body.Len()))
	end = le.AppendUint16(end, 0)
	return append(append(body.Bytes(), dir.Bytes()...), end...)
}

func TestZipEntryCountIsBoundedBeforeLoading(t *testing.T) {
	names := make([]string, 65537)
	for i := range names {
		names[i] = fmt.Sprint(i)
	}
	data := rawZip(names, 1) // 65537 entries declared as 1
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil || len(zr.File) != 65537 {
		t.Fatalf("premise: archive/zip loads %d entries (%v)", len(zr.File), err)
	}
	dest := filepath.Join(t.TempDir(), "vol")
	_, err = ExtractZip(bytes.NewReader(data), int64(len(data)), dest, -1, 100)
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "central directory holds more than 100") {
		t.Errorf("error %v, want the entry bound to refuse it before loading", err)
	}
	// The bound is exact for an ordinary archive.
	small := rawZip(names[:10], 10)
	if err := checkEntryBound(bytes.NewReader(small), int64(len(small)), 10); err != nil {
		t.Errorf("10 entries against a cap of 10: %v", err)
	}
	if err := checkEntryBound(bytes.NewReader(small), int64(len(small)), 9); !errors.Is(err, ErrTooLarge) {
		t.Errorf("10 entries against a cap of 9: %v", err)
	}
}

func TestZipUnsupportedEntries(t *testing.T) {
	for name, h := range map[string]*zip.FileHeader{
		"bzip2":     {Name: "a", Method: 12},
		"encrypted": {Name: "a", Method: zip.Store, Flags: 0x1},
	} {
		var buf bytes.Buffer
		zw := zip.NewWriter(&buf)
		w, _ := zw.CreateRaw(h)
		w.Write([]byte("xx"))
		zw.Close()
		dest := filepath.Join(t.TempDir(), "vol")
		_, err := ExtractZip(bytes.NewReader(buf.Bytes()), int64(buf.Len()), dest, -1, -1)
		if err == nil || !strings.Contains(err.Error(), `zip entry "a"`) {
			t.Errorf("%s: error %v", name, err)
		}
	}
}

func TestExtractZip(t *testing.T) {
	data := makeZip(t, zipEntry{name: "x/", mode: fs.ModeDir | 0o755}, zipEntry{name: "x/y", body: "12345"})
	dest := filepath.Join(t.TempDir(), "a", "b")
	st, err := ExtractZip(bytes.NewReader(data), int64(len(data)), dest, -1, -1)
	if err != nil || st != (Stats{Bytes: 5, Files: 2}) {
		t.Fatalf("stats %+v, %v", st, err)
	}
	if b, _ := os.ReadFile(filepath.Join(dest, "x", "y")); string(b) != "12345" {
		t.Errorf("x/y = %q", b)
	}
	if _, err := ExtractZip(bytes.NewReader(data), int64(len(data)), dest, 4, -1); !errors.Is(err, ErrTooLarge) {
		t.Errorf("4-byte cap: %v", err)
	}
}

func BenchmarkExtractZip(b *testing.B) {
	var entries []zipEntry
	for i := range 100 {
		entries = append(entries, zipEntry{name: fmt.Sprintf("d%d/f%d.bin", i%10, i), body: string(randomBytes(64 << 10))})
	}
	data := makeZip(b, entries...)
	dir := b.TempDir()
	b.SetBytes(100 * 64 << 10)
	i := 0
	for b.Loop() {
		i++
		dest := filepath.Join(dir, fmt.Sprint(i))
		if _, err := ExtractZip(bytes.NewReader(data), int64(len(data)), dest, -1, -1); err != nil {
			b.Fatal(err)
		}
	}
}
