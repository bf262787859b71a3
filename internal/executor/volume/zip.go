package volume

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// ExtractZip unpacks a zip (from r of size n) into dest (created if missing), writing at most
// maxBytes unpacked bytes and maxFiles entries (negative: no cap). Every entry is checked
// before anything is written: absolute paths, "..", symlinks and special files fail with
// ErrUnsafe, declared sizes and entry counts past the caps with ErrTooLarge; while writing,
// the bytes are counted again, so an archive that inflates past its declared size stops at
// the cap. Everything created is world-readable and writable (like upstream's chmod -R 777),
// so the job can use it under any uid.
func ExtractZip(r io.ReaderAt, n int64, dest string, maxBytes int64, maxFiles int) (Stats, error) {
	root, err := openVolumeDir(dest)
	if err != nil {
		return Stats{}, err
	}
	defer root.Close()
	b := newBudget(maxBytes, int64(maxFiles))
	err = extractZip(context.Background(), r, n, root, ".", b)
	return b.stats(), err
}

// extractZip unpacks the archive into dir (checked, OS form) under root, charging b.
func extractZip(ctx context.Context, r io.ReaderAt, n int64, root *os.Root, dir string, b *budget) error {
	if err := checkEntryBound(r, n, b.files.left()); err != nil {
		return err
	}
	zr, err := zip.NewReader(r, n)
	// ErrInsecurePath (GODEBUG zipinsecurepath=0) comes with a usable reader; the checks below
	// reject those names with a better message.
	if err != nil && !errors.Is(err, zip.ErrInsecurePath) {
		return fmt.Errorf("not a valid zip archive: %w", err)
	}
	names := make([]string, len(zr.File))
	left := b.bytes.left()
	var declared uint64
	for i, f := range zr.File {
		rel, err := safeRelPath(strings.TrimSuffix(f.Name, "/"))
		if err != nil {
			return fmt.Errorf("zip entry: %w", err)
		}
		names[i] = filepath.Join(dir, rel)
		mode := f.Mode()
		switch {
		case mode&fs.ModeSymlink != 0:
			return fmt.Errorf("%w: zip entry %q is a symlink", ErrUnsafe, f.Name)
		case mode.IsDir():
			continue
		case !mode.IsRegular():
			return fmt.Errorf("%w: zip entry %q is a special file (%s)", ErrUnsafe, f.Name, mode.Type())
		case rel == ".":
			return fmt.Errorf("%w: zip entry %q is a file named like the volume root", ErrUnsafe, f.Name)
		case f.Flags&0x1 != 0:
			return fmt.Errorf("zip entry %q is encrypted, which is not supported", f.Name)
		case f.Method != zip.Store && f.Method != zip.Deflate:
			return fmt.Errorf("zip entry %q uses compression method %d; only store (0) and deflate (8) are supported", f.Name, f.Method)
		}
		if left >= 0 && f.UncompressedSize64 > uint64(left)-declared {
			return fmt.Errorf("%w: archive declares more than the %d bytes left of the %d-byte cap", ErrTooLarge, left, b.bytes.max)
		}
		declared += f.UncompressedSize64
	}
	if err := b.files.add(int64(len(zr.File))); err != nil {
		return fmt.Errorf("archive has %d entries: %w", len(zr.File), err)
	}
	if err := mkdirAll(root, dir); err != nil {
		return err
	}
	buf := make([]byte, 256<<10)
	for i, f := range zr.File {
		if err := ctx.Err(); err != nil {
			return err
		}
		if f.Mode().IsDir() {
			if err := mkdirAll(root, names[i]); err != nil {
				return err
			}
			continue
		}
		if err := mkdirAll(root, filepath.Dir(names[i])); err != nil {
			return err
		}
		if err := writeEntry(ctx, root, names[i], f, b, buf); err != nil {
			return err
		}
	}
	return nil
}

// writeEntry writes one regular-file entry to name (buf is copy space), counting bytes as they are written
// instead of trusting the declared size. A failed entry is removed.
func writeEntry(ctx context.Context, root *os.Root, name string, f *zip.File, b *budget, buf []byte) error {
	if info, err := root.Lstat(name); err == nil && !info.Mode().IsRegular() {
		return fmt.Errorf("%w: zip entry %q collides with an existing %s", ErrUnsafe, f.Name, describeMode(info.Mode()))
	}
	rc, err := f.Open()
	if err != nil {
		return fmt.Errorf("zip entry %q: %w", f.Name, err)
	}
	defer rc.Close()
	out, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o666)
	if err != nil {
		return fmt.Errorf("zip entry %q: %w", f.Name, err)
	}
	w := &chargedWriter{ctx: ctx, w: out, b: b}
	_, err = io.CopyBuffer(w, rc, buf)
	if err == nil {
		err = out.Chmod(0o777)
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		root.Remove(name)
		b.bytes.add(-w.n)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("zip entry %q: %w", f.Name, explainEntryError(f, w.n, err))
	}
	return nil
}

// explainEntryError says what archive/zip's terse errors mean for one entry: its
// "not a valid zip file" while reading means the data inflates past the size the header
// declares, an unexpected EOF that it ends before it.
func explainEntryError(f *zip.File, wrote int64, err error) error {
	switch {
	case errors.Is(err, zip.ErrFormat):
		return fmt.Errorf("its data inflates past the %d bytes its header declares (%d written before it was stopped); the archive is corrupt or forged: %w",
			f.UncompressedSize64, wrote, err)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("its data ends after %d of the %d bytes its header declares; the archive is truncated or corrupt: %w", wrote, f.UncompressedSize64, err)
	case errors.Is(err, zip.ErrChecksum):
		return fmt.Errorf("its data fails the CRC-32 check its header declares; the archive is corrupt: %w", err)
	}
	return err
}

func describeMode(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "directory"
	case m&fs.ModeSymlink != 0:
		return "symlink"
	case m.IsRegular():
		return "file"
	default:
		return "special file"
	}
}

// chargedWriter charges every write to the budget before making it, so nothing past the cap
// reaches the disk, and stops once ctx ends.
type chargedWriter struct {
	ctx context.Context
	w   io.Writer
	b   *budget
	n   int64 // bytes written (and charged)
}

func (c *chargedWriter) Write(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	if err := c.b.bytes.add(int64(len(p))); err != nil {
		return 0, err
	}
	n, err := c.w.Write(p)
	c.b.bytes.add(int64(n - len(p)))
	c.n += int64(n)
	return n, err
}

// Zip record signatures and sizes (APPNOTE.TXT 4.3.12, 4.3.16).
const (
	zipDirHeaderSig = 0x02014b50
	zipDirEndSig    = 0x06054b50
	zipDirHeaderLen = 46
	zipDirEndLen    = 22
)

// checkEntryBound refuses an archive whose central directory could hold more than maxEntries
// entries (negative: no cap) before archive/zip loads it: that loads every header into memory
// (some hundreds of bytes each) and, reading headers until one fails to parse, ignores all but
// the low 16 bits of the declared count, so a small count cannot be trusted. The bound counts
// header signatures from the earliest offset archive/zip may start the directory at to the
// end, which is exact for ordinary archives and never too low.
func checkEntryBound(r io.ReaderAt, size int64, maxEntries int64) error {
	if maxEntries < 0 {
		return nil
	}
	start := zipDirStart(r, size)
	if (size-start)/zipDirHeaderLen <= maxEntries {
		return nil // too small to hold more headers than allowed
	}
	var count int64
	sig := binary.LittleEndian.AppendUint32(nil, zipDirHeaderSig)
	buf := make([]byte, 1<<20)
	for off := start; off < size; {
		n, err := r.ReadAt(buf, off)
		if err != nil && err != io.EOF {
			return fmt.Errorf("read zip archive: %w", err)
		}
		if n == 0 {
			break
		}
		// Signatures cannot overlap themselves, so counting per chunk and carrying the last
		// len(sig)-1 bytes over finds each exactly once.
		count += int64(bytes.Count(buf[:n], sig))
		if count > maxEntries {
			return fmt.Errorf("%w: the archive's central directory holds more than %d entries", ErrTooLarge, maxEntries)
		}
		if err == io.EOF || off+int64(n) >= size {
			break
		}
		off += int64(n - len(sig) + 1)
	}
	return nil
}

// zipDirStart returns the earliest offset archive/zip may read the central directory from,
// or 0 where that depends on records it would look up further (zip64) or none is found.
func zipDirStart(r io.ReaderAt, size int64) int64 {
	tail := min(size, 65*1024)
	buf := make([]byte, tail)
	if _, err := r.ReadAt(buf, size-tail); err != nil && err != io.EOF {
		return 0
	}
	// Same search as archive/zip: the last signature whose comment fits in the file.
	for i := len(buf) - zipDirEndLen; i >= 0; i-- {
		if binary.LittleEndian.Uint32(buf[i:]) != zipDirEndSig {
			continue
		}
		if i+zipDirEndLen+int(binary.LittleEndian.Uint16(buf[i+20:])) > len(buf) {
			continue
		}
		records := binary.LittleEndian.Uint16(buf[i+10:])
		dirSize := int64(binary.LittleEndian.Uint32(buf[i+12:]))
		dirOff := int64(binary.LittleEndian.Uint32(buf[i+16:]))
		if records == 0xffff || dirSize == 0xffff || dirSize == 0xffffffff || dirOff == 0xffffffff {
			return 0 // zip64
		}
		// archive/zip starts at dirOff or at end-minus-size (archives with a prefix).
		return max(min(dirOff, size-tail+int64(i)-dirSize), 0)
	}
	return 0
}
