package upload

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/computehorde/horde/internal/protocol"
)

// CollectArtifacts returns {"<mountPath>/<name>": base64(content)} for each regular file
// directly inside dir that is smaller than MaxArtifactBytes, sorted by name; bigger files,
// subdirectories, symlinks and special files are skipped with a log line. It returns a nil
// map when there are none (or dir does not exist), and ErrTooLarge when the encoded
// artifacts would exceed MaxArtifactsTotalBytes.
func CollectArtifacts(dir, mountPath string, log *slog.Logger) (*protocol.OrderedMap[string], error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	root, err := os.OpenRoot(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("upload: open artifacts directory: %w", err)
	}
	defer root.Close()
	d, err := root.Open(".")
	if err != nil {
		return nil, fmt.Errorf("upload: read artifacts directory: %w", err)
	}
	defer d.Close()

	skips := skipLog{log: log, what: "artifacts"}
	defer skips.done()
	var (
		files []zipEntry
		total int64
	)
	for {
		batch, rerr := d.ReadDir(256)
		for _, de := range batch {
			name := de.Name()
			switch t := de.Type(); {
			case t.IsRegular():
				info, err := de.Info()
				if err != nil {
					return nil, fmt.Errorf("upload: stat artifact %q: %w", name, err)
				}
				if info.Size() >= MaxArtifactBytes {
					skips.skip(name, "size "+strconv.FormatInt(info.Size(), 10)+" bytes, limit "+strconv.Itoa(MaxArtifactBytes-1))
					continue
				}
				// Keys and base64 values only, so the count of tiny files is bounded too.
				total += int64(len(mountPath)+1+len(name)) + int64(base64.StdEncoding.EncodedLen(int(info.Size())))
				if total > MaxArtifactsTotalBytes {
					return nil, fmt.Errorf("%w: artifacts exceed %d bytes encoded", ErrTooLarge, MaxArtifactsTotalBytes)
				}
				files = append(files, zipEntry{name, info})
			default:
				skips.skip(name, fileType(t))
			}
		}
		if errors.Is(rerr, io.EOF) {
			break
		}
		if rerr != nil {
			return nil, fmt.Errorf("upload: read artifacts directory: %w", rerr)
		}
	}
	if len(files) == 0 {
		return nil, nil
	}
	slices.SortFunc(files, func(a, b zipEntry) int { return strings.Compare(a.rel, b.rel) })
	out := &protocol.OrderedMap[string]{}
	for _, e := range files {
		data, err := readArtifact(root, e)
		if err != nil {
			return nil, err
		}
		out.Set(path.Join(mountPath, e.rel), base64.StdEncoding.EncodeToString(data))
	}
	return out, nil
}

func readArtifact(root *os.Root, e zipEntry) ([]byte, error) {
	f, info, err := openRegular(root, e.rel, e.info)
	if err != nil {
		return nil, fmt.Errorf("upload: artifact: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, info.Size()))
	if err != nil {
		return nil, fmt.Errorf("upload: read artifact %q: %w", e.rel, err)
	}
	return data, nil
}
