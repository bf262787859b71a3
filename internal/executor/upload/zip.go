package upload

import (
	"archive/zip"
	"bufio"
	"compress/flate"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"
)

// tempZip is a zip of the outputs in the temp directory.
type tempZip struct {
	path string
	size int64
}

type zipEntry struct {
	rel  string // slash-separated, relative to the output directory
	info fs.FileInfo
}

// buildZip zips every regular file under root except those in exclude into a new file in
// tempDir. The caps are checked while walking, before anything is written.
func (u *Uploader) buildZip(ctx context.Context, root *os.Root, exclude map[string]bool, tempDir string) (z *tempZip, err error) {
	entries, err := u.scanOutputs(ctx, root, exclude)
	if err != nil {
		return nil, err
	}
	f, err := os.CreateTemp(tempDir, "output-*.zip")
	if err != nil {
		return nil, fmt.Errorf("create zip: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	bw := bufio.NewWriterSize(f, 256<<10)
	zw := zip.NewWriter(bw)
	// Outputs can be 2 GiB; the fastest level keeps zipping well ahead of the upload. Files
	// are written one at a time, so one compressor serves them all: a new one per file
	// would allocate its ~1 MB of state a thousand times.
	var fw *flate.Writer
	zw.RegisterCompressor(zip.Deflate, func(w io.Writer) (io.WriteCloser, error) {
		if fw == nil {
			var err error
			fw, err = flate.NewWriter(w, flate.BestSpeed)
			return fw, err
		}
		fw.Reset(w)
		return fw, nil
	})
	buf := make([]byte, 64<<10)
	for _, e := range entries {
		if err := addFile(ctx, zw, root, e, buf); err != nil {
			return nil, err
		}
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("write zip: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return nil, fmt.Errorf("write zip: %w", err)
	}
	info, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("stat zip: %w", err)
	}
	if info.Size() > u.cfg.MaxZipBytes {
		return nil, fmt.Errorf("%w: zip is %d bytes, limit %d", ErrTooLarge, info.Size(), u.cfg.MaxZipBytes)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("write zip: %w", err)
	}
	return &tempZip{path: f.Name(), size: info.Size()}, nil
}

func (u *Uploader) removeZip(z *tempZip) {
	if err := os.Remove(z.path); err != nil {
		u.log.Warn("could not remove the output zip", "path", z.path, "error", err)
	}
}

func addFile(ctx context.Context, zw *zip.Writer, root *os.Root, e zipEntry, buf []byte) error {
	src, info, err := openRegular(root, e.rel, e.info)
	if err != nil {
		return err
	}
	defer src.Close()
	hdr, err := zip.FileInfoHeader(info)
	if err != nil {
		return fmt.Errorf("zip %q: %w", e.rel, err)
	}
	hdr.Name, hdr.Method = e.rel, zip.Deflate
	w, err := zw.CreateHeader(hdr)
	if err != nil {
		return fmt.Errorf("zip %q: %w", e.rel, err)
	}
	// The checked size, not whatever the file may have grown to: the caps hold.
	if _, err := io.CopyBuffer(w, ctxReader{ctx, io.LimitReader(src, info.Size())}, buf); err != nil {
		return fmt.Errorf("zip %q: %w", e.rel, err)
	}
	return nil
}

// scanOutputs lists the regular files under root, less exclude, in walk order (a
// directory's files sorted by name, then its subdirectories). Symlinks and special files are
// skipped with a log line, never followed or opened.
func (u *Uploader) scanOutputs(ctx context.Context, root *os.Root, exclude map[string]bool) ([]zipEntry, error) {
	var (
		entries []zipEntry
		total   int64
	)
	skips := skipLog{log: u.log, what: "zip"}
	defer skips.done()
	var walk func(dir string) error
	walk = func(dir string) error {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("interrupted: %w", context.Cause(ctx))
		}
		d, err := root.Open(dir)
		if err != nil {
			return fmt.Errorf("read output directory %q: %w", dir, err)
		}
		var files []zipEntry
		var subdirs []string
		for {
			batch, rerr := d.ReadDir(256)
			for _, de := range batch {
				rel := path.Join(dir, de.Name())
				switch t := de.Type(); {
				case t&fs.ModeSymlink != 0:
					skips.skip(rel, "symlink")
				case t.IsDir():
					subdirs = append(subdirs, rel)
				case t.IsRegular():
					if exclude[rel] {
						continue
					}
					info, err := de.Info()
					if err != nil {
						d.Close()
						return fmt.Errorf("stat %q: %w", rel, err)
					}
					if len(entries)+len(files) >= u.cfg.MaxZipFiles {
						d.Close()
						return fmt.Errorf("%w: more than %d files to zip", ErrTooLarge, u.cfg.MaxZipFiles)
					}
					if total += info.Size(); total > u.cfg.MaxZipBytes {
						d.Close()
						return fmt.Errorf("%w: files to zip exceed %d bytes", ErrTooLarge, u.cfg.MaxZipBytes)
					}
					files = append(files, zipEntry{rel, info})
				default:
					skips.skip(rel, fileType(t))
				}
			}
			if errors.Is(rerr, io.EOF) {
				break
			}
			if rerr != nil {
				d.Close()
				return fmt.Errorf("read output directory %q: %w", dir, rerr)
			}
		}
		d.Close()
		slices.SortFunc(files, func(a, b zipEntry) int { return strings.Compare(a.rel, b.rel) })
		entries = append(entries, files...)
		slices.Sort(subdirs)
		for _, sd := range subdirs {
			if err := walk(sd); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk("."); err != nil {
		return nil, err
	}
	return entries, nil
}

// ctxReader stops a long copy once ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, fmt.Errorf("interrupted: %w", context.Cause(c.ctx))
	}
	return c.r.Read(p)
}
