package volume

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
)

// safeRelPath checks a job-supplied path (zip entry, relative_path, Hugging Face file name) and
// returns it cleaned, in OS form. It must be relative, free of NUL and of any ".." element (even
// one that would stay inside: upstream never produces them, so they only appear in attacks).
func safeRelPath(p string) (string, error) {
	if p == "" {
		return "", fmt.Errorf("%w: empty path", ErrUnsafe)
	}
	if strings.HasPrefix(p, "/") || strings.Contains(p, "\x00") {
		return "", fmt.Errorf("%w: path %q is absolute or contains NUL", ErrUnsafe, p)
	}
	for _, el := range strings.Split(p, "/") {
		if el == ".." {
			return "", fmt.Errorf("%w: path %q contains \"..\"", ErrUnsafe, p)
		}
	}
	local := filepath.FromSlash(p)
	if !filepath.IsLocal(local) {
		return "", fmt.Errorf("%w: path %q leaves the volume", ErrUnsafe, p)
	}
	return filepath.Clean(local), nil
}

// relDir checks an optional directory relative_path; nil or "" is the volume root (".").
func relDir(rel *string) (string, error) {
	if rel == nil || strings.TrimSuffix(*rel, "/") == "" {
		return ".", nil
	}
	dir, err := safeRelPath(strings.TrimSuffix(*rel, "/"))
	if err != nil {
		return "", fmt.Errorf("relative_path: %w", err)
	}
	return dir, nil
}

// mkdirAll creates dir (checked, OS form) under root one element at a time, refusing any
// element that exists as something other than a directory, so no symlink is ever followed.
// What it creates is made world-writable (umask-proof), so any uid in the job container can
// use it.
func mkdirAll(root *os.Root, dir string) error {
	if dir == "." {
		return nil
	}
	cur := ""
	for _, el := range strings.Split(dir, string(filepath.Separator)) {
		cur = filepath.Join(cur, el)
		err := root.Mkdir(cur, 0o777)
		if err == nil {
			if err := root.Chmod(cur, 0o777); err != nil {
				return fmt.Errorf("chmod directory %q: %w", filepath.ToSlash(cur), err)
			}
			continue
		}
		if !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("create directory %q: %w", filepath.ToSlash(cur), err)
		}
		info, err := root.Lstat(cur)
		if err != nil {
			return fmt.Errorf("create directory %q: %w", filepath.ToSlash(cur), err)
		}
		if !info.IsDir() {
			return fmt.Errorf("%w: %q exists and is a %s, not a directory", ErrUnsafe, filepath.ToSlash(cur), describeMode(info.Mode()))
		}
	}
	return nil
}

// createTemp creates a new, empty file next to name (OS form, under root) for a download that
// is renamed into place once complete. O_EXCL never follows or reuses an existing entry.
func createTemp(root *os.Root, name string) (*os.File, string, error) {
	for range 3 {
		tmp := filepath.Join(filepath.Dir(name), ".volume-part-"+rand.Text()[:16])
		f, err := root.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o666)
		if err == nil {
			return f, tmp, nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return nil, "", fmt.Errorf("create temporary file for %q: %w", filepath.ToSlash(name), err)
		}
	}
	return nil, "", fmt.Errorf("create temporary file for %q: names keep colliding", filepath.ToSlash(name))
}

// redactURL returns raw without userinfo, query and fragment (presigned URLs carry their
// signature in the query), for errors and logs.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "<invalid URL>"
	}
	u.User, u.RawQuery, u.ForceQuery, u.Fragment, u.RawFragment = nil, "", false, "", ""
	return u.String()
}
