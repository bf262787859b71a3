package executor

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"unicode/utf8"
)

// TruncateOutput applies upstream's message cap to s: a text of more than MaxOutputChars
// characters becomes its first MaxOutputChars/2 characters, " ... ", and its last
// MaxOutputChars/2 characters. Characters are runes (Python str indices); an invalid UTF-8 byte
// counts as one.
func TruncateOutput(s string) string {
	if len(s) <= MaxOutputChars || utf8.RuneCountInString(s) <= MaxOutputChars {
		return s
	}
	return firstRunes(s, MaxOutputChars/2) + " ... " + lastRunes(s, MaxOutputChars/2)
}

// ReadOutputFile returns TruncateOutput of the file at path without reading more than a few
// megabytes of it, however large it is.
func ReadOutputFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return "", err
	}
	// A rune is at most utf8.UTFMax bytes, so a file this small may still fit under the cap
	// and is read whole; a larger one certainly exceeds it.
	const window = utf8.UTFMax * (MaxOutputChars / 2)
	if info.Size() <= 2*window {
		b, err := io.ReadAll(f)
		if err != nil {
			return "", fmt.Errorf("read %s: %w", path, err)
		}
		return TruncateOutput(string(b)), nil
	}
	head := make([]byte, window)
	if _, err := io.ReadFull(f, head); err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	tail := make([]byte, window)
	if _, err := f.ReadAt(tail, info.Size()-window); err != nil && err != io.EOF {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	// Drop a partial rune at the start of the tail window.
	for i := 0; i < utf8.UTFMax-1 && len(tail) > 0 && !utf8.RuneStart(tail[0]); i++ {
		tail = tail[1:]
	}
	return firstRunes(string(head), MaxOutputChars/2) + " ... " + lastRunes(string(tail), MaxOutputChars/2), nil
}

func firstRunes(s string, n int) string {
	i := 0
	for n > 0 && i < len(s) {
		_, size := utf8.DecodeRuneInString(s[i:])
		i += size
		n--
	}
	return s[:i]
}

func lastRunes(s string, n int) string {
	i := len(s)
	for n > 0 && i > 0 {
		_, size := utf8.DecodeLastRuneInString(s[:i])
		i -= size
		n--
	}
	return s[i:]
}

// keepOutput copies the job's output directory to dest, and its artifacts directory (if any
// file is in it) to dest/artifacts, at most maxBytes in all (≤ 0: no cap). Symlinks and
// special files the job left are skipped: they could point anywhere on the host.
func keepOutput(ws Workspace, dest string, maxBytes int64) error {
	left := &copyBudget{left: maxBytes, max: maxBytes}
	if err := copyTree(ws.OutputDir, dest, left); err != nil {
		return err
	}
	if ws.ArtifactsDir == "" {
		return nil
	}
	if entries, err := os.ReadDir(ws.ArtifactsDir); err != nil || len(entries) == 0 {
		return nil
	}
	return copyTree(ws.ArtifactsDir, filepath.Join(dest, "artifacts"), left)
}

// copyBudget is what keepOutput may still copy: the job's disk cap, which its output can
// exceed by what it wrote between the watchdog's last poll and its kill. max ≤ 0: no cap.
type copyBudget struct{ left, max int64 }

// errOutputCapped stops a copy that reached the budget.
var errOutputCapped = errors.New("output copy reached the job's disk cap")

func copyTree(src, dest string, b *copyBudget) error {
	root, err := os.OpenRoot(src)
	if err != nil {
		return err
	}
	defer root.Close()
	return filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		target := filepath.Join(dest, rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(target, 0o755)
		case !d.Type().IsRegular():
			return nil
		}
		in, err := root.Open(rel)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
		if err != nil {
			return err
		}
		var r io.Reader = in
		if b.max > 0 {
			r = io.LimitReader(in, b.left)
		}
		n, err := out.ReadFrom(r)
		b.left -= n
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
		if b.max > 0 && b.left <= 0 {
			if rest, _ := in.Read(make([]byte, 1)); rest > 0 {
				return fmt.Errorf("%w of %d bytes: %s is cut short and the files after it are not copied", errOutputCapped, b.max, rel)
			}
		}
		return nil
	})
}
