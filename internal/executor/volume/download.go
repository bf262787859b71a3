package volume

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/computehorde/horde/internal/egress"
)

// HTTPError is a response whose status ends the attempt. 408, 429 and 5xx are retried; the
// others fail at once.
type HTTPError struct {
	StatusCode int
}

func (e *HTTPError) Error() string {
	if t := http.StatusText(e.StatusCode); t != "" {
		return fmt.Sprintf("HTTP %d %s", e.StatusCode, t)
	}
	return fmt.Sprintf("HTTP %d", e.StatusCode)
}

func (e *HTTPError) transient() bool {
	return e.StatusCode == http.StatusRequestTimeout || e.StatusCode == http.StatusTooManyRequests ||
		e.StatusCode >= 500
}

// errResumeMismatch is a 206 that does not continue where the partial file ends; the file is
// reset and the next attempt starts over.
var errResumeMismatch = errors.New("server resumed at a different offset than requested")

// retry runs op up to f.attempts times, backing off 1 s, 2 s, 4 s … (plus up to 10% jitter)
// after transient failures only.
func (f *Fetcher) retry(ctx context.Context, op func() error) error {
	for attempt := 1; ; attempt++ {
		err := op()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if !transient(err) {
			return err
		}
		if attempt >= f.attempts {
			return fmt.Errorf("giving up after %d attempts: %w", attempt, err)
		}
		d := time.Second << (attempt - 1)
		d += rand.N(d/10 + 1)
		if err := f.sleep(ctx, d); err != nil {
			return err
		}
	}
}

// transient reports whether another attempt may succeed: connection errors, timeouts,
// truncated bodies, and 408/429/5xx.
func transient(err error) bool {
	if he, ok := errors.AsType[*HTTPError](err); ok {
		return he.transient()
	}
	if errors.Is(err, ErrTooLarge) || errors.Is(err, ErrUnsafe) || egress.IsBlocked(err) {
		return false
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) || errors.Is(err, errResumeMismatch) {
		return true
	}
	_, ok := errors.AsType[net.Error](err)
	return ok
}

func (f *Fetcher) acquire(ctx context.Context) error {
	select {
	case f.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (f *Fetcher) release() { <-f.slots }

// checkURL accepts absolute http(s) URLs. Its errors never quote the URL, which may be signed.
func checkURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return errors.New("invalid URL")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("unsupported URL scheme %q (want http or https)", u.Scheme)
	}
	if u.Host == "" {
		return errors.New("invalid URL: no host")
	}
	return nil
}

// get sends one GET. Errors from the client lose their *url.Error wrapper, which quotes the
// full URL (query-string signatures included).
func (f *Fetcher) get(ctx context.Context, rawURL string, header http.Header) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return nil, errors.New("invalid URL")
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := f.client.Do(req)
	if err != nil {
		if ue, ok := errors.AsType[*url.Error](err); ok {
			err = ue.Err
		}
		return nil, fmt.Errorf("GET: %w", err)
	}
	return resp, nil
}

// downloadFile downloads rawURL to name (checked, OS form) under root through a temporary
// file in the same directory, renamed into place once complete, so a failed download leaves
// no partial file.
func (f *Fetcher) downloadFile(ctx context.Context, rawURL string, header http.Header, root *os.Root, name string, b *budget) error {
	if err := mkdirAll(root, filepath.Dir(name)); err != nil {
		return err
	}
	if info, err := root.Lstat(name); err == nil && !info.Mode().IsRegular() {
		return fmt.Errorf("%w: %q exists and is a %s", ErrUnsafe, filepath.ToSlash(name), describeMode(info.Mode()))
	}
	tmp, tmpName, err := createTemp(root, name)
	if err != nil {
		return err
	}
	n, err := f.download(ctx, rawURL, header, tmp, b)
	if err == nil {
		err = tmp.Chmod(0o777)
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		if err = root.Rename(tmpName, name); err != nil {
			err = fmt.Errorf("move download into place: %w", err)
		}
	}
	if err != nil {
		root.Remove(tmpName)
		b.bytes.add(-n)
		return err
	}
	return nil
}

// download GETs rawURL into file (new and empty), charging every byte to b, retrying
// transient failures and resuming them with Range. It returns the bytes in file, all
// charged to b, failure or not.
func (f *Fetcher) download(ctx context.Context, rawURL string, header http.Header, file *os.File, b *budget) (int64, error) {
	if err := checkURL(rawURL); err != nil {
		return 0, err
	}
	t := &transfer{f: f, url: rawURL, header: header.Clone(), file: file, b: b}
	if t.header == nil {
		t.header = http.Header{}
	}
	// Transparent gzip would make byte offsets (Range) and Content-Length meaningless.
	t.header.Set("Accept-Encoding", "identity")
	err := f.retry(ctx, func() error { return t.attempt(ctx) })
	return t.have, err
}

// transfer is one download's state across attempts.
type transfer struct {
	f       *Fetcher
	url     string
	header  http.Header
	file    *os.File
	b       *budget
	have    int64  // bytes in file, charged to b
	ifRange string // validator of the response the partial file came from
}

func (t *transfer) attempt(ctx context.Context) error {
	if err := t.f.acquire(ctx); err != nil {
		return err
	}
	defer t.f.release()
	resp, err := t.request(ctx)
	if err != nil {
		return err
	}
	defer func() { resp.Body.Close() }()
	if resp.StatusCode == http.StatusRequestedRangeNotSatisfiable && t.have > 0 {
		if total, ok := rangeTotal(resp.Header.Get("Content-Range")); ok && total == t.have {
			return nil // the earlier attempt had everything but did not see the end
		}
		resp.Body.Close()
		if err := t.restart(); err != nil {
			return err
		}
		if resp, err = t.request(ctx); err != nil {
			return err
		}
	}
	switch {
	case resp.StatusCode == http.StatusPartialContent && t.have > 0:
		if start, ok := rangeStart(resp.Header.Get("Content-Range")); !ok || start != t.have {
			if err := t.restart(); err != nil {
				return err
			}
			return errResumeMismatch
		}
	case resp.StatusCode == http.StatusPartialContent:
		return errors.New("server sent partial content (206) to a request without Range")
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		// A full body: the server ignored Range, or this is the first attempt.
		if err := t.restart(); err != nil {
			return err
		}
		t.ifRange = validator(resp.Header)
	default:
		return &HTTPError{StatusCode: resp.StatusCode}
	}
	if left := t.b.bytes.left(); left >= 0 && resp.ContentLength > left {
		return fmt.Errorf("%w: the server announces %d bytes, %d are left of the %d-byte cap",
			ErrTooLarge, resp.ContentLength, left, t.b.bytes.max)
	}
	w := &chargedWriter{ctx: ctx, w: t.file, b: t.b}
	_, err = io.CopyBuffer(w, resp.Body, make([]byte, 256<<10))
	t.have += w.n
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if errors.Is(err, ErrTooLarge) {
			return err
		}
		return fmt.Errorf("download interrupted after %d bytes: %w", t.have, err)
	}
	return nil
}

// request sends the GET, asking for the rest when part of the file is already here.
func (t *transfer) request(ctx context.Context) (*http.Response, error) {
	h := t.header
	if t.have > 0 {
		h = h.Clone()
		h.Set("Range", "bytes="+strconv.FormatInt(t.have, 10)+"-")
		if t.ifRange != "" {
			h.Set("If-Range", t.ifRange)
		}
	}
	return t.f.get(ctx, t.url, h)
}

// restart empties the file and gives its bytes back to the budget.
func (t *transfer) restart() error {
	if t.have == 0 {
		return nil
	}
	if err := t.file.Truncate(0); err != nil {
		return fmt.Errorf("restart download: %w", err)
	}
	if _, err := t.file.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("restart download: %w", err)
	}
	t.b.bytes.add(-t.have)
	t.have, t.ifRange = 0, ""
	return nil
}

// validator returns what If-Range may carry: a strong ETag, else Last-Modified.
func validator(h http.Header) string {
	if etag := h.Get("ETag"); etag != "" && !strings.HasPrefix(etag, "W/") {
		return etag
	}
	return h.Get("Last-Modified")
}

// rangeStart parses the first byte position of "bytes first-last/total".
func rangeStart(cr string) (int64, bool) {
	rest, ok := strings.CutPrefix(cr, "bytes ")
	if !ok {
		return 0, false
	}
	first, _, ok := strings.Cut(rest, "-")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(strings.TrimSpace(first), 10, 64)
	return n, err == nil
}

// rangeTotal parses the complete length of "bytes */total" (a 416's Content-Range).
func rangeTotal(cr string) (int64, bool) {
	rest, ok := strings.CutPrefix(cr, "bytes */")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(strings.TrimSpace(rest), 10, 64)
	return n, err == nil
}
