// Package upload sends a finished job's outputs where its output_upload says (a zip of the
// output directory or single files, by multipart POST or raw PUT, typically to presigned S3
// URLs) and collects its artifacts.
//
// The job wrote the output directory, so its contents are hostile: symlinks are never
// followed, only regular files are opened (a planted FIFO cannot block the executor), and
// nothing is written outside the temp directory.
package upload

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"net/http"
	"os"
	"path"
	"sync"
	"time"

	"github.com/computehorde/horde/internal/clock"
	"github.com/computehorde/horde/internal/egress"
	"github.com/computehorde/horde/internal/protocol"
)

// Limits and defaults, upstream's where it has them.
const (
	// DefaultMaxZipBytes caps the files zipped for one zip upload (upstream
	// OUTPUT_ZIP_UPLOAD_MAX_SIZE_BYTES).
	DefaultMaxZipBytes int64 = 2 << 30
	// DefaultMaxZipFiles caps the number of files in one zip upload.
	DefaultMaxZipFiles = 1000
	// DefaultAttempts is how many times a request is tried; backoff 1 s, then 2 s.
	DefaultAttempts = 3
	// DefaultConcurrency bounds the single-file uploads of a multi_upload in flight at once.
	DefaultConcurrency = 3
	// DefaultRequestTimeout bounds one attempt of one request, body and response included.
	DefaultRequestTimeout = 300 * time.Second
	// MaxResponseBytes is how much of a response body is read; the rest is dropped.
	MaxResponseBytes = 10 << 20
	// MaxArtifactBytes: an artifact file must be smaller than this to be returned.
	MaxArtifactBytes = 1_000_000
	// MaxArtifactsTotalBytes caps the encoded artifacts of one job: more could never fit in
	// the JobFinished frame the miner accepts.
	MaxArtifactsTotalBytes = protocol.MaxFrameSize
)

// Result keys of the zip uploads.
const (
	KeyOutputZip    = "output.zip"
	KeySystemOutput = "system_output"
)

var (
	// ErrTooLarge marks outputs over a cap: a zip's files or bytes, or the artifacts' total.
	ErrTooLarge = errors.New("upload: outputs too large")
	// ErrMissingFile marks a single-file upload whose file does not exist.
	ErrMissingFile = errors.New("upload: output file missing")
	// ErrUnsafe marks a path that is absolute, has "..", is or passes through a symlink, or
	// names something other than a regular file.
	ErrUnsafe = errors.New("upload: unsafe output path")
)

// Error is the failure of one upload, named by its result key and its URL without the query
// string (which carries presigned signatures) or user info.
type Error struct {
	Key string
	URL string
	Err error
}

func (e *Error) Error() string {
	return fmt.Sprintf("upload %q to %s: %v", e.Key, e.URL, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// StatusError is a response with a non-2xx status.
type StatusError struct {
	Code   int
	Status string // e.g. "400 Bad Request"
	Body   string // the first 200 bytes of the response body
}

func (e *StatusError) Error() string {
	if e.Body == "" {
		return "HTTP " + e.Status
	}
	return "HTTP " + e.Status + ": " + e.Body
}

// Config tunes an Uploader; zero fields take the defaults above.
type Config struct {
	MaxZipBytes    int64
	MaxZipFiles    int
	Attempts       int
	Concurrency    int
	RequestTimeout time.Duration
	// HTTPClient sends the requests as is: it must enforce an egress policy of its own
	// (egress.Policy.Transport). nil means a client that does not follow redirects (a 3xx
	// fails the upload, as upstream's httpx does) and dials only what Egress allows.
	HTTPClient *http.Client
	// Egress says which addresses uploads may reach; the zero value refuses loopback,
	// private, link-local and the other internal ranges (package egress).
	Egress egress.Policy
	// Sleep waits between attempts; nil means a real timer.
	Sleep  func(ctx context.Context, d time.Duration) error
	Logger *slog.Logger
}

// Uploader sends outputs. It is safe for concurrent use.
type Uploader struct {
	cfg       Config
	client    *http.Client
	ownClient bool
	sleep     func(ctx context.Context, d time.Duration) error
	log       *slog.Logger
}

// New returns an Uploader with cfg's zero fields defaulted.
func New(cfg Config) *Uploader {
	if cfg.MaxZipBytes <= 0 {
		cfg.MaxZipBytes = DefaultMaxZipBytes
	}
	if cfg.MaxZipFiles <= 0 {
		cfg.MaxZipFiles = DefaultMaxZipFiles
	}
	if cfg.Attempts <= 0 {
		cfg.Attempts = DefaultAttempts
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = DefaultConcurrency
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = DefaultRequestTimeout
	}
	u := &Uploader{cfg: cfg, client: cfg.HTTPClient, sleep: cfg.Sleep, log: cfg.Logger}
	if u.client == nil {
		u.client, u.ownClient = defaultClient(cfg.Egress), true
	}
	if u.sleep == nil {
		u.sleep = clock.Sleep
	}
	if u.log == nil {
		u.log = slog.New(slog.DiscardHandler)
	}
	return u
}

func defaultClient(policy egress.Policy) *http.Client {
	t := policy.Transport(egress.DefaultDialer())
	// Report the server's own headers; Go would drop Content-Encoding when it decompresses.
	t.DisableCompression = true
	return &http.Client{
		Transport:     t,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// Upload sends the outputs in outputDir as up says, using tempDir for zip files (removed
// after), and returns upload_results: key → JSON string {"headers": {...}, "body": "..."}.
// Keys are "output.zip" for a zip upload, relative_path for a single file, and
// "system_output" for a multi_upload's zip. A nil up uploads nothing and returns nil. Every
// failure of a listed upload is an *Error.
func (u *Uploader) Upload(ctx context.Context, up *protocol.OutputUpload, outputDir, tempDir string) (*protocol.OrderedMap[string], error) {
	if up == nil {
		return nil, nil
	}
	if u.ownClient {
		// One job per executor: nothing to reuse the connections for, and idle ones would
		// keep goroutines alive.
		defer u.client.CloseIdleConnections()
	}
	root, err := os.OpenRoot(outputDir)
	if err != nil {
		return nil, fmt.Errorf("upload: open output directory: %w", err)
	}
	defer root.Close()

	results := &protocol.OrderedMap[string]{}
	switch up.Type() {
	case protocol.OutputUploadTypeZipAndHTTPPost, protocol.OutputUploadTypeZipAndHTTPPut:
		t, err := zipTarget(*up, KeyOutputZip)
		if err != nil {
			return nil, err
		}
		res, err := u.uploadZip(ctx, root, t, nil, tempDir)
		if err != nil {
			return nil, err
		}
		results.Set(t.key, res)
	case protocol.OutputUploadTypeSingleFilePost, protocol.OutputUploadTypeSingleFilePut:
		t, err := singleTarget(*up)
		if err != nil {
			return nil, err
		}
		res, err := u.uploadFile(ctx, root, t)
		if err != nil {
			return nil, err
		}
		results.Set(t.key, res)
	case protocol.OutputUploadTypeMultiUpload:
		if err := u.uploadMulti(ctx, root, up.Multi, tempDir, results); err != nil {
			return nil, err
		}
	default:
		return nil, errors.New("upload: output_upload must set exactly one upload type")
	}
	return results, nil
}

// uploadMulti checks every single file and builds the system_output zip before sending
// anything, so bad input fails without a partial upload; then it sends the single files
// concurrently and the zip last.
func (u *Uploader) uploadMulti(ctx context.Context, root *os.Root, m *protocol.MultiUpload, tempDir string, results *protocol.OrderedMap[string]) error {
	targets := make([]target, len(m.Uploads))
	uploaded := make(map[string]bool, len(m.Uploads))
	for i, sub := range m.Uploads {
		t, err := singleTarget(sub)
		if err != nil {
			return fmt.Errorf("multi_upload entry %d: %w", i, err)
		}
		if _, err := lstatRegular(root, t.path); err != nil {
			return t.fail(err)
		}
		targets[i] = t
		uploaded[t.path] = true
	}
	var zipFile *tempZip
	var zt target
	if m.SystemOutput != nil {
		var err error
		if zt, err = zipTarget(*m.SystemOutput, KeySystemOutput); err != nil {
			return err
		}
		if zipFile, err = u.buildZip(ctx, root, uploaded, tempDir); err != nil {
			return zt.fail(err)
		}
		defer u.removeZip(zipFile)
	}

	res, err := u.uploadAll(ctx, root, targets)
	if err != nil {
		return err
	}
	for i, t := range targets {
		results.Set(t.key, res[i])
	}
	if zipFile != nil {
		r, err := u.sendZip(ctx, zt, zipFile)
		if err != nil {
			return err
		}
		results.Set(zt.key, r)
	}
	return nil
}

// uploadAll sends the single files with at most Concurrency in flight; the first failure
// cancels the rest and is returned.
func (u *Uploader) uploadAll(ctx context.Context, root *os.Root, targets []target) ([]string, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	out := make([]string, len(targets))
	sem := make(chan struct{}, u.cfg.Concurrency)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
loop:
	for i := range targets {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			break loop
		}
		wg.Go(func() {
			defer func() { <-sem }()
			res, err := u.uploadFile(ctx, root, targets[i])
			if err != nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
				cancel()
				return
			}
			out[i] = res
		})
	}
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("upload: multi_upload interrupted: %w", context.Cause(ctx))
	}
	return out, nil
}

// uploadFile sends one output file.
func (u *Uploader) uploadFile(ctx context.Context, root *os.Root, t target) (string, error) {
	f, info, err := openRegular(root, t.path, nil)
	if err != nil {
		return "", t.fail(err)
	}
	defer f.Close()
	return u.send(ctx, t, f, info.Size())
}

// uploadZip zips the output directory, less exclude, and sends it.
func (u *Uploader) uploadZip(ctx context.Context, root *os.Root, t target, exclude map[string]bool, tempDir string) (string, error) {
	z, err := u.buildZip(ctx, root, exclude, tempDir)
	if err != nil {
		return "", t.fail(err)
	}
	defer u.removeZip(z)
	return u.sendZip(ctx, t, z)
}

func (u *Uploader) sendZip(ctx context.Context, t target, z *tempZip) (string, error) {
	f, err := os.Open(z.path)
	if err != nil {
		return "", t.fail(fmt.Errorf("reopen zip: %w", err))
	}
	defer f.Close()
	return u.send(ctx, t, f, z.size)
}

// target is one validated upload.
type target struct {
	key      string // result key
	url      string // as given, query included
	safeURL  string // for errors and logs
	post     bool   // multipart POST, else raw PUT
	form     *protocol.OrderedMap[string]
	headers  *protocol.OrderedMap[string]
	path     string // cleaned relative path of a single file
	filename string // name of the multipart file part
}

func (t target) fail(err error) error {
	return &Error{Key: t.key, URL: t.safeURL, Err: err}
}

func zipTarget(up protocol.OutputUpload, key string) (target, error) {
	var t target
	switch {
	case up.Type() == protocol.OutputUploadTypeZipAndHTTPPost:
		t = target{url: up.ZipAndHTTPPost.URL, post: true, form: up.ZipAndHTTPPost.FormFields}
	case up.Type() == protocol.OutputUploadTypeZipAndHTTPPut:
		t = target{url: up.ZipAndHTTPPut.URL}
	default:
		return t, fmt.Errorf("upload: %s: want zip_and_http_post or zip_and_http_put, got %q", key, up.Type())
	}
	t.key, t.filename, t.safeURL = key, KeyOutputZip, redactURL(t.url)
	return t, t.validate()
}

func singleTarget(up protocol.OutputUpload) (target, error) {
	var t target
	var rel string
	switch {
	case up.Type() == protocol.OutputUploadTypeSingleFilePost:
		p := up.SingleFilePost
		t = target{url: p.URL, post: true, form: p.FormFields, headers: p.SignedHeaders}
		rel = p.RelativePath
	case up.Type() == protocol.OutputUploadTypeSingleFilePut:
		p := up.SingleFilePut
		t = target{url: p.URL, headers: p.SignedHeaders}
		rel = p.RelativePath
	default:
		return t, fmt.Errorf("upload: want single_file_post or single_file_put, got %q", up.Type())
	}
	t.key, t.safeURL = rel, redactURL(t.url)
	clean, err := cleanRelPath(rel)
	if err != nil {
		return t, t.fail(err)
	}
	t.path, t.filename = clean, path.Base(clean)
	return t, t.validate()
}

func (t target) validate() error {
	if err := checkURL(t.url); err != nil {
		return t.fail(err)
	}
	for k := range all(t.form) {
		if !printable(k) {
			return t.fail(fmt.Errorf("form field name %q has control characters", k))
		}
	}
	if t.post && !printable(t.filename) {
		return t.fail(fmt.Errorf("%w: file name %q has control characters", ErrUnsafe, t.filename))
	}
	for k, v := range all(t.headers) {
		if !validHeaderName(k) {
			return t.fail(fmt.Errorf("signed header name %q is not a valid HTTP header name", k))
		}
		if !validHeaderValue(v) {
			// The value is likely a signature: name the header only.
			return t.fail(fmt.Errorf("signed header %q has a value with control characters", k))
		}
	}
	return nil
}

// all iterates m, which may be nil.
func all(m *protocol.OrderedMap[string]) iter.Seq2[string, string] {
	if m == nil {
		return func(func(string, string) bool) {}
	}
	return m.All()
}
