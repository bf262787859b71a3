// Package volume fetches a job's input volume (inline zip, zip URL, single file, Hugging Face
// snapshot, or a list of those) into the directory the job container sees as /volume.
//
// Everything is written through an os.Root opened on the volume directory, so no job-supplied
// name, zip entry or Hugging Face file name can make it write elsewhere, and the size and file
// caps hold for the whole volume, however the bytes arrive.
package volume

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/computehorde/horde/internal/clock"
	"github.com/computehorde/horde/internal/egress"
	"github.com/computehorde/horde/internal/protocol"
)

// Defaults for Config's zero values.
const (
	DefaultMaxBytes            int64 = 2 << 30 // upstream VOLUME_MAX_SIZE_BYTES; total across all sub-volumes
	DefaultMaxFiles                  = 100_000 // total files written across all sub-volumes
	DefaultAttempts                  = 3
	DefaultConcurrency               = 3 // parallel file downloads (Hugging Face snapshots)
	DefaultHuggingFaceEndpoint       = "https://huggingface.co"
)

// ErrTooLarge marks a volume past the size or file-count cap.
var ErrTooLarge = errors.New("input volume too large")

// ErrUnsafe marks a volume rejected for its layout: an absolute path, "..", NUL, a symlink or a
// special file in an archive entry, relative_path or Hugging Face file name.
var ErrUnsafe = errors.New("unsafe path in volume")

// Config tunes a Fetcher. The zero value is usable.
type Config struct {
	MaxBytes    int64 // 0 → DefaultMaxBytes; negative → no cap
	MaxFiles    int   // 0 → DefaultMaxFiles; negative → no cap
	Attempts    int   // per HTTP download; 0 → DefaultAttempts
	Concurrency int   // 0 → DefaultConcurrency
	// HTTPClient, when set, is used as is: it must enforce an egress policy of its own
	// (egress.Policy.Transport). nil → a client with dial/TLS/header timeouts, following
	// redirects, dialling only what Egress allows.
	HTTPClient *http.Client
	// Egress says which addresses downloads may reach; the zero value refuses loopback,
	// private, link-local and the other internal ranges (package egress).
	Egress egress.Policy

	HuggingFaceEndpoint string // "" → DefaultHuggingFaceEndpoint
	HuggingFaceToken    string // the executor's HF_ACCESS_TOKEN, used when the volume has no token

	// Sleep waits d or until ctx ends (backoff between attempts); nil → a real timer.
	Sleep  func(ctx context.Context, d time.Duration) error
	Logger *slog.Logger // nil → discard
}

// Fetcher fetches volumes. It is safe for concurrent use; its HTTP downloads share one
// Concurrency-sized pool, like upstream's class-wide semaphore.
type Fetcher struct {
	maxBytes   int64
	maxFiles   int64
	attempts   int
	client     *http.Client
	hfEndpoint string
	hfToken    string
	sleep      func(ctx context.Context, d time.Duration) error
	log        *slog.Logger
	slots      chan struct{} // one token per HTTP request in flight
}

// New returns a Fetcher for cfg, filling in defaults.
func New(cfg Config) *Fetcher {
	f := &Fetcher{
		maxBytes:   cfg.MaxBytes,
		maxFiles:   int64(cfg.MaxFiles),
		attempts:   cfg.Attempts,
		client:     cfg.HTTPClient,
		hfEndpoint: strings.TrimRight(cfg.HuggingFaceEndpoint, "/"),
		hfToken:    cfg.HuggingFaceToken,
		sleep:      cfg.Sleep,
		log:        cfg.Logger,
	}
	if f.maxBytes == 0 {
		f.maxBytes = DefaultMaxBytes
	}
	if f.maxFiles == 0 {
		f.maxFiles = DefaultMaxFiles
	}
	if f.attempts <= 0 {
		f.attempts = DefaultAttempts
	}
	conc := cfg.Concurrency
	if conc <= 0 {
		conc = DefaultConcurrency
	}
	f.slots = make(chan struct{}, conc)
	if f.client == nil {
		f.client = defaultClient(cfg.Egress)
	}
	if f.hfEndpoint == "" {
		f.hfEndpoint = DefaultHuggingFaceEndpoint
	}
	if f.sleep == nil {
		f.sleep = clock.Sleep
	}
	if f.log == nil {
		f.log = slog.New(slog.DiscardHandler)
	}
	return f
}

func defaultClient(policy egress.Policy) *http.Client {
	// No overall timeout: volumes can be gigabytes; the caller's context bounds the download.
	t := policy.Transport(egress.DefaultDialer())
	t.TLSHandshakeTimeout = 15 * time.Second
	t.ResponseHeaderTimeout = time.Minute
	return &http.Client{Transport: t}
}

// Stats says what a fetch wrote.
type Stats struct {
	Bytes int64 // file contents written (unpacked bytes for zips)
	Files int   // files written, zip directory entries included
}

// Error is a failed fetch, naming the (sub-)volume at fault.
type Error struct {
	Index, Count int // 1-based position in a multi_volume and its length; 1,1 otherwise
	Type         protocol.VolumeType
	Source       string // URL without query/fragment/userinfo, or HF "repo_type:repo_id@revision"
	Err          error  // wraps ErrTooLarge / ErrUnsafe / *HTTPError / ctx errors
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("volume")
	if e.Count > 1 {
		fmt.Fprintf(&b, " %d/%d", e.Index, e.Count)
	}
	if e.Type != "" {
		b.WriteString(" (" + string(e.Type))
		if e.Source != "" {
			b.WriteString(" " + e.Source)
		}
		b.WriteString(")")
	}
	if e.Err != nil {
		b.WriteString(": " + e.Err.Error())
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// Fetch downloads/unpacks v into volumeDir (created if missing) using tempDir ("" → the OS
// default) for partial zip downloads; it removes what it put there. Sub-volumes of a
// multi_volume go sequentially into the same root. Any failure is a *Error. On failure
// volumeDir may hold what earlier sub-volumes wrote; the caller discards it with the job.
func (f *Fetcher) Fetch(ctx context.Context, v *protocol.Volume, volumeDir, tempDir string) (Stats, error) {
	if v == nil {
		return Stats{}, &Error{Index: 1, Count: 1, Err: errors.New("no volume given")}
	}
	vols := []protocol.Volume{*v}
	if v.Type() == protocol.VolumeTypeMultiVolume {
		vols = v.Multi.Volumes
	}
	root, err := openVolumeDir(volumeDir)
	if err != nil {
		return Stats{}, &Error{Index: 1, Count: 1, Type: v.Type(), Err: err}
	}
	defer root.Close()

	b := newBudget(f.maxBytes, f.maxFiles)
	for i := range vols {
		sub := &vols[i]
		e := &Error{Index: i + 1, Count: len(vols), Type: sub.Type(), Source: source(sub)}
		if err := ctx.Err(); err != nil {
			e.Err = err
			return b.stats(), e
		}
		start, before := time.Now(), b.stats()
		err := f.fetchOne(ctx, sub, root, tempDir, b)
		after := b.stats()
		attrs := []any{"index", e.Index, "count", e.Count, "type", e.Type, "source", e.Source,
			"bytes", after.Bytes - before.Bytes, "files", after.Files - before.Files,
			"duration", time.Since(start).Round(time.Millisecond)}
		if err != nil {
			e.Err = err
			f.log.WarnContext(ctx, "volume fetch failed", append(attrs, "error", err.Error())...)
			return after, e
		}
		f.log.InfoContext(ctx, "volume fetched", attrs...)
	}
	return b.stats(), nil
}

// openVolumeDir creates dir if needed, makes it world-writable like everything under it, and
// opens it as the root all writes go through.
func openVolumeDir(dir string) (*os.Root, error) {
	if dir == "" {
		return nil, errors.New("no volume directory given")
	}
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return nil, fmt.Errorf("create volume directory: %w", err)
	}
	if err := os.Chmod(dir, 0o777); err != nil {
		return nil, fmt.Errorf("chmod volume directory: %w", err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("open volume directory: %w", err)
	}
	return root, nil
}

func (f *Fetcher) fetchOne(ctx context.Context, v *protocol.Volume, root *os.Root, tempDir string, b *budget) error {
	switch v.Type() {
	case protocol.VolumeTypeInline:
		return f.fetchInline(ctx, v.Inline, root, b)
	case protocol.VolumeTypeZipURL:
		return f.fetchZipURL(ctx, v.ZipURL, root, tempDir, b)
	case protocol.VolumeTypeSingleFile:
		return f.fetchSingleFile(ctx, v.SingleFile, root, b)
	case protocol.VolumeTypeHuggingfaceVolume:
		return f.fetchHuggingFace(ctx, v.Huggingface, root, b)
	case protocol.VolumeTypeMultiVolume:
		return errors.New("multi_volume cannot be nested")
	default:
		return errors.New("malformed volume: exactly one volume type must be set")
	}
}

// source names where a volume comes from, without secrets.
func source(v *protocol.Volume) string {
	switch v.Type() {
	case protocol.VolumeTypeZipURL:
		return redactURL(v.ZipURL.Contents)
	case protocol.VolumeTypeSingleFile:
		return redactURL(v.SingleFile.URL)
	case protocol.VolumeTypeHuggingfaceVolume:
		return newHFRepo(v.Huggingface).String()
	}
	return ""
}

func (f *Fetcher) fetchInline(ctx context.Context, v *protocol.InlineVolume, root *os.Root, b *budget) error {
	dir, err := relDir(v.RelativePath)
	if err != nil {
		return err
	}
	data, err := decodeBase64(v.Contents)
	if err != nil {
		return fmt.Errorf("contents are not valid base64: %w", err)
	}
	return extractZip(ctx, bytes.NewReader(data), int64(len(data)), root, dir, b)
}

func (f *Fetcher) fetchZipURL(ctx context.Context, v *protocol.ZipURLVolume, root *os.Root, tempDir string, b *budget) error {
	dir, err := relDir(v.RelativePath)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(tempDir, "volume-*.zip")
	if err != nil {
		return fmt.Errorf("create temporary file for the zip: %w", err)
	}
	defer func() {
		tmp.Close()
		os.Remove(tmp.Name())
	}()
	// The archive is held to the remaining budget while it downloads, then its bytes are
	// given back and the unpacked contents are counted instead.
	n, err := f.download(ctx, v.Contents, nil, tmp, b)
	b.bytes.add(-n)
	if err != nil {
		return err
	}
	return extractZip(ctx, tmp, n, root, dir, b)
}

func (f *Fetcher) fetchSingleFile(ctx context.Context, v *protocol.SingleFileVolume, root *os.Root, b *budget) error {
	if v.RelativePath == "" || strings.HasSuffix(v.RelativePath, "/") {
		return fmt.Errorf("%w: relative_path %q must name a file", ErrUnsafe, v.RelativePath)
	}
	name, err := safeRelPath(v.RelativePath)
	if err != nil {
		return err
	}
	if name == "." {
		return fmt.Errorf("%w: relative_path %q must name a file", ErrUnsafe, v.RelativePath)
	}
	if err := b.files.add(1); err != nil {
		return err
	}
	return f.downloadFile(ctx, v.URL, nil, root, name, b)
}

// decodeBase64 accepts standard base64 with or without padding and ignores whitespace.
func decodeBase64(s string) ([]byte, error) {
	s = strings.Map(func(r rune) rune {
		if r == ' ' || r == '\t' || r == '\r' || r == '\n' {
			return -1
		}
		return r
	}, s)
	return base64.RawStdEncoding.DecodeString(strings.TrimRight(s, "="))
}

// budget is the byte and file allowance of one Fetch, shared by concurrent downloads.
type budget struct{ bytes, files allowance }

func newBudget(maxBytes, maxFiles int64) *budget {
	return &budget{bytes: allowance{max: maxBytes, unit: "byte"}, files: allowance{max: maxFiles, unit: "file"}}
}

// allowance is one capped count of a budget.
type allowance struct {
	max  int64  // negative: no cap
	unit string // for errors: "byte", "file"
	used atomic.Int64
}

// add charges n (negative n gives it back), refusing a charge past the cap.
func (a *allowance) add(n int64) error {
	if total := a.used.Add(n); n > 0 && a.max >= 0 && total > a.max {
		a.used.Add(-n)
		return fmt.Errorf("%w: over the %d-%s cap", ErrTooLarge, a.max, a.unit)
	}
	return nil
}

// left is what may still be charged; negative means no cap.
func (a *allowance) left() int64 {
	if a.max < 0 {
		return -1
	}
	return max(a.max-a.used.Load(), 0)
}

func (b *budget) stats() Stats {
	return Stats{Bytes: b.bytes.used.Load(), Files: int(b.files.used.Load())}
}
