package upload

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/computehorde/horde/internal/egress"
)

// errorBodyBytes is how much of a failed response's body goes into its error.
const errorBodyBytes = 200

// send uploads size bytes of f as t says, retrying as configured, and returns the result
// JSON string.
func (u *Uploader) send(ctx context.Context, t target, f *os.File, size int64) (string, error) {
	start := time.Now()
	b, err := newBody(t, f, size)
	if err != nil {
		return "", t.fail(err)
	}
	var (
		res      string
		status   int
		attempts int
		retry    bool
		stopped  bool // interrupted during a backoff
	)
	for {
		if attempts > 0 {
			if serr := u.sleep(ctx, time.Second<<min(attempts-1, 16)); serr != nil {
				err, stopped = fmt.Errorf("interrupted after attempt %d (%v): %w", attempts, err, serr), true
				break
			}
		}
		attempts++
		res, status, retry, err = u.attempt(ctx, t, b)
		if err == nil || !retry || attempts >= u.cfg.Attempts {
			break
		}
	}
	took := time.Since(start).Round(time.Millisecond)
	if err != nil {
		if attempts > 1 && !stopped {
			err = fmt.Errorf("%w (after %d attempts)", err, attempts)
		}
		u.log.Warn("output upload failed", "key", t.key, "url", t.safeURL, "bytes", size,
			"status", status, "attempts", attempts, "duration", took, "error", err)
		return "", t.fail(err)
	}
	u.log.Info("output uploaded", "key", t.key, "url", t.safeURL, "bytes", size,
		"status", status, "attempts", attempts, "duration", took)
	return res, nil
}

// attempt makes one request. retry says whether a failure may succeed on another try:
// connection errors, timeouts, 5xx, 408 and 429.
func (u *Uploader) attempt(ctx context.Context, t target, b body) (res string, status int, retry bool, err error) {
	actx, cancel := context.WithTimeout(ctx, u.cfg.RequestTimeout)
	defer cancel()
	method := http.MethodPut
	if t.post {
		method = http.MethodPost
	}
	req, err := http.NewRequestWithContext(actx, method, t.url, b.open())
	if err != nil {
		return "", 0, false, fmt.Errorf("build request: %w", stripURLError(err))
	}
	req.ContentLength = b.length
	if b.length == 0 {
		req.Body = http.NoBody // else Go would send an empty body chunked
	}
	req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(b.open()), nil }
	if b.contentType != "" {
		req.Header.Set("Content-Type", b.contentType)
	}
	// Signed headers win over ours, as in httpx.
	for k, v := range all(t.headers) {
		if strings.EqualFold(k, "Host") {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}

	resp, err := u.client.Do(req)
	if err != nil {
		err = stripURLError(err)
		switch {
		case ctx.Err() != nil:
			return "", 0, false, fmt.Errorf("interrupted: %w", context.Cause(ctx))
		case actx.Err() != nil:
			return "", 0, true, fmt.Errorf("no response within %v: %w", u.cfg.RequestTimeout, err)
		case egress.IsBlocked(err):
			return "", 0, false, err
		}
		return "", 0, true, err
	}
	defer resp.Body.Close()
	data, rerr := io.ReadAll(io.LimitReader(resp.Body, MaxResponseBytes))
	status = resp.StatusCode
	if status < 200 || status > 299 {
		return "", status, status >= 500 || status == http.StatusRequestTimeout || status == http.StatusTooManyRequests,
			&StatusError{Code: status, Status: statusText(resp), Body: excerpt(data)}
	}
	if rerr != nil {
		if ctx.Err() != nil {
			return "", status, false, fmt.Errorf("interrupted reading the response: %w", context.Cause(ctx))
		}
		return "", status, true, fmt.Errorf("read response: %w", stripURLError(rerr))
	}
	return resultJSON(resp.Header, data), status, false, nil
}

// body is a request body that can be replayed from the file for every attempt, never held
// in memory whole.
type body struct {
	f           *os.File
	size        int64
	prefix      []byte // multipart header parts before the file content
	suffix      []byte // closing multipart boundary
	length      int64
	contentType string
}

func newBody(t target, f *os.File, size int64) (body, error) {
	b := body{f: f, size: size, length: size}
	if !t.post {
		return b, nil
	}
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	// Form fields first, in order: S3 POST policies require "key" and friends before the file.
	for k, v := range all(t.form) {
		if err := mw.WriteField(k, v); err != nil {
			return b, fmt.Errorf("write form field %q: %w", k, err)
		}
	}
	if _, err := mw.CreateFormFile("file", t.filename); err != nil {
		return b, fmt.Errorf("write file part header: %w", err)
	}
	b.prefix = bytes.Clone(buf.Bytes())
	buf.Reset()
	if err := mw.Close(); err != nil {
		return b, fmt.Errorf("write closing boundary: %w", err)
	}
	b.suffix = bytes.Clone(buf.Bytes())
	b.length = int64(len(b.prefix)) + size + int64(len(b.suffix))
	b.contentType = mw.FormDataContentType()
	return b, nil
}

func (b body) open() io.Reader {
	content := io.NewSectionReader(b.f, 0, b.size)
	if b.prefix == nil {
		return content
	}
	return io.MultiReader(bytes.NewReader(b.prefix), content, bytes.NewReader(b.suffix))
}

// resultJSON renders the response as upstream's json.dumps({"headers": dict(headers),
// "body": text}): header names lower-cased (sorted, as Go does not keep their order),
// repeated values joined with ", ".
func resultJSON(h http.Header, data []byte) string {
	merged := make(map[string][]string, len(h))
	for k, vs := range h {
		lk := strings.ToLower(k)
		merged[lk] = append(merged[lk], vs...)
	}
	names := make([]string, 0, len(merged))
	for k := range merged {
		names = append(names, k)
	}
	sort.Strings(names)
	var sb strings.Builder
	sb.WriteString(`{"headers": {`)
	for i, k := range names {
		if i > 0 {
			sb.WriteString(", ")
		}
		pyQuote(&sb, k)
		sb.WriteString(": ")
		pyQuote(&sb, strings.Join(merged[k], ", "))
	}
	sb.WriteString(`}, "body": `)
	pyQuote(&sb, string(data))
	sb.WriteByte('}')
	return sb.String()
}

const hexDigits = "0123456789abcdef"

// pyQuote writes s as Python's json.dumps does with ensure_ascii: everything outside
// printable ASCII as \uXXXX (lower-case hex, surrogate pairs above U+FFFF), invalid UTF-8
// bytes as U+FFFD.
func pyQuote(sb *strings.Builder, s string) {
	sb.WriteByte('"')
	u4 := func(r rune) {
		sb.WriteString(`\u`)
		for shift := 12; shift >= 0; shift -= 4 {
			sb.WriteByte(hexDigits[(r>>shift)&0xf])
		}
	}
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		i += n
		switch {
		case r == '"':
			sb.WriteString(`\"`)
		case r == '\\':
			sb.WriteString(`\\`)
		case r == '\n':
			sb.WriteString(`\n`)
		case r == '\r':
			sb.WriteString(`\r`)
		case r == '\t':
			sb.WriteString(`\t`)
		case r == '\b':
			sb.WriteString(`\b`)
		case r == '\f':
			sb.WriteString(`\f`)
		case r >= 0x20 && r < 0x7f:
			sb.WriteByte(byte(r))
		case r < 0x10000:
			u4(r)
		default:
			r -= 0x10000
			u4(0xd800 + (r>>10)&0x3ff)
			u4(0xdc00 + r&0x3ff)
		}
	}
	sb.WriteByte('"')
}

func statusText(resp *http.Response) string {
	if _, reason, ok := strings.Cut(resp.Status, " "); ok && strings.TrimSpace(reason) != "" {
		return resp.Status
	}
	return strconv.Itoa(resp.StatusCode) + " " + http.StatusText(resp.StatusCode)
}

// excerpt returns the start of a response body for an error message.
func excerpt(data []byte) string {
	if len(data) > errorBodyBytes {
		data = data[:errorBodyBytes]
	}
	return strings.TrimSpace(strings.ToValidUTF8(string(data), "\uFFFD"))
}

// stripURLError drops the *url.Error wrapper, whose message holds the full URL with its
// presigned query.
func stripURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// redactURL returns raw without user info, query and fragment, for errors and logs.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		s, _, _ := strings.Cut(raw, "?")
		s, _, _ = strings.Cut(s, "#")
		if scheme, rest, ok := strings.Cut(s, "://"); ok {
			if i := strings.LastIndex(rest, "@"); i >= 0 {
				s = scheme + "://" + rest[i+1:]
			}
		}
		return s
	}
	u.User, u.RawQuery, u.ForceQuery, u.Fragment, u.RawFragment = nil, "", false, "", ""
	return u.String()
}

func checkURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("invalid URL: %w", stripURLError(err))
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("invalid URL: scheme %q, want http or https", u.Scheme)
	}
	if u.Host == "" {
		return errors.New("invalid URL: no host")
	}
	return nil
}

// validHeaderName reports whether s is an HTTP token (RFC 9110).
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

// validHeaderValue reports whether s has no control characters but tab.
func validHeaderValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// printable reports whether s has no control characters, so it cannot break out of a
// multipart header line.
func printable(s string) bool {
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}
