package executor

import (
	"archive/zip"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Volume limits (upstream: VOLUME_MAX_SIZE_BYTES = 2 GiB).
const (
	// DefaultMaxVolumeBytes caps the unpacked size of a job's volume.
	DefaultMaxVolumeBytes int64 = 2 << 30
	// MaxVolumeFiles caps the number of entries in one zip volume.
	MaxVolumeFiles = 100_000
)

// ErrUnsafeVolume marks a volume rejected for its layout: an entry or relative path that is
// absolute or contains "..", a symlink, or a special file.
var ErrUnsafeVolume = errors.New("executor: unsafe volume")

// ErrVolumeTooLarge marks a volume whose unpacked size exceeds the cap.
var ErrVolumeTooLarge = errors.New("executor: input volume too large")

// safeRelPath checks a path taken from a job (zip entry name, relative_path) and returns it in
// OS form. It must be relative, have no ".." element and stay under its root.
func safeRelPath(p string) (string, error) {
	if p == "" {
		return "", fmt.Errorf("%w: empty path", ErrUnsafeVolume)
	}
	if strings.HasPrefix(p, "/") || strings.Contains(p, "\x00") {
		return "", fmt.Errorf("%w: path %q is absolute or contains NUL", ErrUnsafeVolume, p)
	}
	for _, el := range strings.Split(p, "/") {
		if el == ".." {
			return "", fmt.Errorf("%w: path %q contains \"..\"", ErrUnsafeVolume, p)
		}
	}
	local := filepath.FromSlash(p)
	if !filepath.IsLocal(local) {
		return "", fmt.Errorf("%w: path %q leaves the volume", ErrUnsafeVolume, p)
	}
	return filepath.Clean(local), nil
}

// joinRel returns root joined with the job-supplied relative path rel ("" or nil means root).
func joinRel(root, rel string) (string, error) {
	if rel == "" {
		return root, nil
	}
	clean, err := safeRelPath(strings.TrimSuffix(rel, "/"))
	if err != nil {
		return "", err
	}
	return filepath.Join(root, clean), nil
}

// ExtractZip unpacks the zip archive data into dest (created if missing), refusing entries that
// would leave dest (absolute paths, ".."), symlinks and special files (ErrUnsafeVolume), and
// stopping once more than maxBytes would be written (ErrVolumeTooLarge). Everything created is
// made world-readable and writable, like upstream's chmod 777, so the job can use it under any
// user. It returns the number of bytes written.
func ExtractZip(data []byte, dest string, maxBytes int64) (int64, error) {
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return 0, fmt.Errorf("executor: volume is not a valid zip archive: %w", err)
	}
	if len(zr.File) > MaxVolumeFiles {
		return 0, fmt.Errorf("%w: %d entries (at most %d)", ErrVolumeTooLarge, len(zr.File), MaxVolumeFiles)
	}
	// Check every entry before writing anything, including the declared sizes.
	var declared uint64
	for _, f := range zr.File {
		if _, err := safeRelPath(strings.TrimSuffix(f.Name, "/")); err != nil {
			return 0, err
		}
		mode := f.Mode()
		if mode&fs.ModeSymlink != 0 {
			return 0, fmt.Errorf("%w: entry %q is a symlink", ErrUnsafeVolume, f.Name)
		}
		if !mode.IsDir() && !mode.IsRegular() {
			return 0, fmt.Errorf("%w: entry %q is a special file (%s)", ErrUnsafeVolume, f.Name, mode.Type())
		}
		declared += f.UncompressedSize64
		if maxBytes > 0 && declared > uint64(maxBytes) {
			return 0, fmt.Errorf("%w: more than %d bytes unpacked", ErrVolumeTooLarge, maxBytes)
		}
	}
	if err := mkdirAll(dest); err != nil {
		return 0, err
	}
	var written int64
	for _, f := range zr.File {
		rel, _ := safeRelPath(strings.TrimSuffix(f.Name, "/"))
		target := filepath.Join(dest, rel)
		if f.Mode().IsDir() {
			if err := mkdirAll(target); err != nil {
				return written, err
			}
			continue
		}
		if err := mkdirAll(filepath.Dir(target)); err != nil {
			return written, err
		}
		limit := int64(-1)
		if maxBytes > 0 {
			limit = maxBytes - written
		}
		n, err := extractFile(f, target, limit)
		written += n
		if err != nil {
			return written, err
		}
	}
	return written, nil
}

// extractFile writes one zip entry to target, failing with ErrVolumeTooLarge past limit bytes
// (negative: no limit). The declared size is not trusted.
func extractFile(f *zip.File, target string, limit int64) (int64, error) {
	rc, err := f.Open()
	if err != nil {
		return 0, fmt.Errorf("executor: volume entry %q: %w", f.Name, err)
	}
	defer rc.Close()
	// Never follow a link; earlier entries cannot have made one, but be sure.
	if info, err := os.Lstat(target); err == nil && !info.Mode().IsRegular() {
		return 0, fmt.Errorf("%w: entry %q collides with a non-file", ErrUnsafeVolume, f.Name)
	}
	out, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o666)
	if err != nil {
		return 0, fmt.Errorf("executor: volume entry %q: %w", f.Name, err)
	}
	var src io.Reader = rc
	if limit >= 0 {
		src = io.LimitReader(rc, limit+1)
	}
	n, err := io.Copy(out, src)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return n, fmt.Errorf("executor: volume entry %q: %w", f.Name, err)
	}
	if limit >= 0 && n > limit {
		return n, fmt.Errorf("%w: entry %q goes past the cap", ErrVolumeTooLarge, f.Name)
	}
	if err := os.Chmod(target, 0o777); err != nil {
		return n, err
	}
	return n, nil
}

func mkdirAll(dir string) error {
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return fmt.Errorf("executor: create volume directory: %w", err)
	}
	// MkdirAll's mode is filtered by the umask.
	return os.Chmod(dir, 0o777)
}
