package upload

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"strings"
	"syscall"
)

// cleanRelPath checks a relative_path from the job request and returns it cleaned.
func cleanRelPath(rel string) (string, error) {
	switch {
	case rel == "":
		return "", fmt.Errorf("%w: empty relative_path", ErrUnsafe)
	case strings.ContainsRune(rel, 0):
		return "", fmt.Errorf("%w: relative_path %q contains NUL", ErrUnsafe, rel)
	case strings.HasPrefix(rel, "/"):
		return "", fmt.Errorf("%w: relative_path %q is absolute", ErrUnsafe, rel)
	}
	for el := range strings.SplitSeq(rel, "/") {
		if el == ".." {
			return "", fmt.Errorf("%w: relative_path %q contains \"..\"", ErrUnsafe, rel)
		}
	}
	clean := path.Clean(rel)
	if clean == "." {
		return "", fmt.Errorf("%w: relative_path %q names the output directory itself", ErrUnsafe, rel)
	}
	return clean, nil
}

// lstatRegular checks rel (clean, relative) without following any symlink: every parent
// must be a real directory and rel itself a regular file.
func lstatRegular(root *os.Root, rel string) (fs.FileInfo, error) {
	parts := strings.Split(rel, "/")
	var info fs.FileInfo
	for i := range parts {
		p := strings.Join(parts[:i+1], "/")
		var err error
		info, err = root.Lstat(p)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%w: %q does not exist", ErrMissingFile, rel)
		}
		if err != nil {
			return nil, fmt.Errorf("check %q: %w", rel, err)
		}
		last := i == len(parts)-1
		switch {
		case info.Mode()&fs.ModeSymlink != 0:
			return nil, fmt.Errorf("%w: %q is a symlink", ErrUnsafe, p)
		case !last && !info.IsDir():
			return nil, fmt.Errorf("%w: %q does not exist (%q is not a directory)", ErrMissingFile, rel, p)
		case last && !info.Mode().IsRegular():
			return nil, fmt.Errorf("%w: %q is not a regular file (%v)", ErrUnsafe, rel, fileType(info.Mode()))
		}
	}
	return info, nil
}

// openRegular opens the regular file rel, checked with lstatRegular unless want is its
// Lstat result already. Non-blocking mode means that even a FIFO swapped in after the check
// could not block the open; the fstat then refuses anything but the checked file.
func openRegular(root *os.Root, rel string, want fs.FileInfo) (*os.File, fs.FileInfo, error) {
	if want == nil {
		var err error
		if want, err = lstatRegular(root, rel); err != nil {
			return nil, nil, err
		}
	}
	f, err := root.OpenFile(rel, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("open %q: %w", rel, err)
	}
	got, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("stat %q: %w", rel, err)
	}
	if !got.Mode().IsRegular() || !os.SameFile(want, got) {
		f.Close()
		return nil, nil, fmt.Errorf("%w: %q changed while being opened", ErrUnsafe, rel)
	}
	return f, got, nil
}

func fileType(m fs.FileMode) string {
	switch t := m.Type(); {
	case t.IsDir():
		return "directory"
	case t&fs.ModeNamedPipe != 0:
		return "named pipe"
	case t&fs.ModeSocket != 0:
		return "socket"
	case t&fs.ModeDevice != 0:
		return "device"
	case t&fs.ModeSymlink != 0:
		return "symlink"
	default:
		return "mode " + t.String()
	}
}

// maxSkipLines is how many skipped entries are logged one by one; a job planting a million
// symlinks must not flood the log.
const maxSkipLines = 20

type skipLog struct {
	log  *slog.Logger
	what string
	n    int
}

func (s *skipLog) skip(rel, why string) {
	s.n++
	if s.n <= maxSkipLines {
		s.log.Warn("output entry skipped", "for", s.what, "path", rel, "reason", why)
	}
}

func (s *skipLog) done() {
	if s.n > maxSkipLines {
		s.log.Warn("more output entries skipped", "for", s.what, "count", s.n-maxSkipLines)
	}
}
