package volume

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/computehorde/horde/internal/protocol"
)

// maxRepoInfoBytes caps the revision JSON; a repository with 100,000 files lists in ~10 MB.
const maxRepoInfoBytes = 64 << 20

// hfRepo names one revision of a Hugging Face repository.
type hfRepo struct{ typ, id, revision string }

func newHFRepo(v *protocol.HuggingfaceVolume) hfRepo {
	r := hfRepo{typ: "model", id: v.RepoID, revision: "main"}
	if v.RepoType != nil && *v.RepoType != "" {
		r.typ = *v.RepoType
	}
	if v.Revision != nil && *v.Revision != "" {
		r.revision = *v.Revision
	}
	return r
}

func (r hfRepo) String() string { return r.typ + ":" + r.id + "@" + r.revision }

// check accepts repo ids the Hub does ("name" or "namespace/name" of letters, digits, "-",
// "_", "."), so the id can go into URLs unescaped.
func (r hfRepo) check() error {
	switch r.typ {
	case "model", "dataset", "space":
	default:
		return fmt.Errorf("unknown repo_type %q (want model, dataset or space)", r.typ)
	}
	parts := strings.Split(r.id, "/")
	if len(parts) > 2 {
		return fmt.Errorf("invalid repo_id %q: want \"name\" or \"namespace/name\"", r.id)
	}
	for _, p := range parts {
		if p == "" || p == "." || p == ".." || strings.Trim(p, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") != "" {
			return fmt.Errorf("invalid repo_id %q: want \"name\" or \"namespace/name\" of letters, digits, '-', '_' and '.'", r.id)
		}
	}
	return nil
}

func (r hfRepo) infoURL(endpoint string) string {
	return endpoint + "/api/" + r.typ + "s/" + r.id + "/revision/" + url.PathEscape(r.revision)
}

func (r hfRepo) fileURL(endpoint, sha, name string) string {
	prefix := ""
	if r.typ != "model" {
		prefix = r.typ + "s/"
	}
	segs := strings.Split(name, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return endpoint + "/" + prefix + r.id + "/resolve/" + url.PathEscape(sha) + "/" + strings.Join(segs, "/")
}

type hfRepoInfo struct {
	SHA      string `json:"sha"`
	Siblings []struct {
		RFilename string `json:"rfilename"`
	} `json:"siblings"`
}

// fetchHuggingFace does what huggingface_hub.snapshot_download does for upstream: resolve the
// revision to a commit, list its files, and download those that allow_patterns select.
func (f *Fetcher) fetchHuggingFace(ctx context.Context, v *protocol.HuggingfaceVolume, root *os.Root, b *budget) error {
	repo := newHFRepo(v)
	if err := repo.check(); err != nil {
		return err
	}
	dir, err := relDir(v.RelativePath)
	if err != nil {
		return err
	}
	header := http.Header{}
	token := f.hfToken
	if v.Token != nil && *v.Token != "" {
		token = *v.Token
	}
	if token != "" {
		header.Set("Authorization", "Bearer "+token)
	}
	info, err := f.hfRepoInfo(ctx, repo, header)
	if err != nil {
		return err
	}
	var patterns []string
	if v.AllowPatterns != nil {
		// Upstream semantics: a given but empty list selects nothing.
		patterns = append([]string{}, v.AllowPatterns.Patterns...)
	}
	type file struct{ rfilename, name string }
	var files []file
	for _, s := range info.Siblings {
		if !hfAllowed(s.RFilename, patterns) {
			continue
		}
		rel, err := safeRelPath(s.RFilename)
		if err != nil {
			return fmt.Errorf("repository file: %w", err)
		}
		if rel == "." {
			return fmt.Errorf("%w: repository file %q names the directory itself", ErrUnsafe, s.RFilename)
		}
		files = append(files, file{s.RFilename, filepath.Join(dir, rel)})
	}
	if err := b.files.add(int64(len(files))); err != nil {
		return fmt.Errorf("%d files selected: %w", len(files), err)
	}
	if err := mkdirAll(root, dir); err != nil {
		return err
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu       sync.Mutex
		firstErr error
		wg       sync.WaitGroup
	)
	work := make(chan file)
	for range min(cap(f.slots), len(files)) {
		wg.Go(func() {
			for fl := range work {
				u := repo.fileURL(f.hfEndpoint, info.SHA, fl.rfilename)
				if err := f.downloadFile(ctx, u, header, root, fl.name, b); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = fmt.Errorf("file %q: %w", fl.rfilename, err)
					}
					mu.Unlock()
					cancel()
				}
			}
		})
	}
feed:
	for _, fl := range files {
		select {
		case work <- fl:
		case <-ctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
	return firstErr
}

// hfRepoInfo fetches the revision's commit and file list (GET /api/{type}s/{id}/revision/{rev}).
func (f *Fetcher) hfRepoInfo(ctx context.Context, repo hfRepo, header http.Header) (*hfRepoInfo, error) {
	var info hfRepoInfo
	err := f.retry(ctx, func() error {
		if err := f.acquire(ctx); err != nil {
			return err
		}
		defer f.release()
		resp, err := f.get(ctx, repo.infoURL(f.hfEndpoint), header)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		switch resp.StatusCode {
		case http.StatusOK:
		case http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound:
			// Not retried: the Hub says so for missing, private and gated repositories alike.
			reason := ""
			if code := resp.Header.Get("X-Error-Code"); code != "" && strings.Trim(code, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") == "" {
				reason = " (" + code + ")"
			}
			return fmt.Errorf("repository or revision not found, or not accessible with the token given%s: %w",
				reason, &HTTPError{StatusCode: resp.StatusCode})
		default:
			return fmt.Errorf("revision info: %w", &HTTPError{StatusCode: resp.StatusCode})
		}
		info = hfRepoInfo{}
		if err := json.NewDecoder(io.LimitReader(resp.Body, maxRepoInfoBytes)).Decode(&info); err != nil {
			return fmt.Errorf("decode revision info: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if info.SHA == "" {
		return nil, errors.New("revision info names no commit (empty sha)")
	}
	return &info, nil
}

// hfAllowed applies huggingface_hub's allow_patterns filter: nil selects everything;
// otherwise a file is kept when any pattern matches it with fnmatch, where a pattern
// ending in "/" selects everything below that directory.
func hfAllowed(name string, patterns []string) bool {
	if patterns == nil {
		return true
	}
	for _, p := range patterns {
		if strings.HasSuffix(p, "/") {
			p += "*"
		}
		if fnmatch(name, p) {
			return true
		}
	}
	return false
}

// fnmatch is Python's fnmatch.fnmatchcase: "*" matches any run of characters ("/"
// included), "?" any one character, "[seq]" / "[!seq]" a character in / not in seq (with
// a-z ranges); a "[" without a closing "]" is literal, and nothing else is special.
func fnmatch(name, pattern string) bool {
	n, p := []rune(name), []rune(pattern)
	ni, pi := 0, 0
	starP, starN := -1, 0 // where to resume after the last "*"
	for ni < len(n) {
		if pi < len(p) {
			switch c := p[pi]; c {
			case '*':
				starP, starN = pi, ni
				pi++
				continue
			case '?':
				pi++
				ni++
				continue
			case '[':
				if set, next, ok := parseSet(p, pi); ok {
					if set.match(n[ni]) {
						pi, ni = next, ni+1
						continue
					}
					break
				}
				fallthrough
			default:
				if c == n[ni] {
					pi++
					ni++
					continue
				}
			}
		}
		if starP < 0 {
			return false
		}
		// Let the last "*" swallow one more character and try again from there.
		starN++
		pi, ni = starP+1, starN
	}
	for pi < len(p) && p[pi] == '*' {
		pi++
	}
	return pi == len(p)
}

type runeSet struct {
	negate bool
	ranges [][2]rune
}

func (s runeSet) match(c rune) bool {
	for _, r := range s.ranges {
		if r[0] <= c && c <= r[1] {
			return !s.negate
		}
	}
	return s.negate
}

// parseSet parses the bracket expression at p[i] == '[' like Python's fnmatch.translate: a
// leading "!" negates, a "]" right after "[" or "[!" is literal, "x-y" is a range (empty when
// x > y) and a "-" first or last is literal. ok is false when no "]" closes it.
func parseSet(p []rune, i int) (runeSet, int, bool) {
	j := i + 1
	var s runeSet
	if j < len(p) && p[j] == '!' {
		s.negate = true
		j++
	}
	start := j
	if j < len(p) && p[j] == ']' {
		j++
	}
	for j < len(p) && p[j] != ']' {
		j++
	}
	if j >= len(p) {
		return runeSet{}, 0, false
	}
	body := p[start:j]
	for k := 0; k < len(body); {
		if k+2 < len(body) && body[k+1] == '-' {
			s.ranges = append(s.ranges, [2]rune{body[k], body[k+2]})
			k += 3
			continue
		}
		s.ranges = append(s.ranges, [2]rune{body[k], body[k]})
		k++
	}
	return s, j + 1, true
}
