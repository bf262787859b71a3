// Package receiptsync is the validator's side of the receipts transfer (protocol.md §7.3):
// it pulls every miner's receipts pages, GET {axon}/receipts/{page}.jsonl, incrementally with
// Range requests, verifies every line and stores the receipts, other validators' included,
// so that all validators count the same work.
//
// # Transfer
//
// For each (miner, axon, page) the Syncer keeps a checkpoint: the number of page bytes
// already imported, always just after a "\n". A page with checkpoint 0 is fetched whole with
// Accept-Encoding: gzip (decoded here); later pulls send Accept-Encoding: identity and
// Range: bytes={checkpoint}-. Responses:
//   - 200: the whole page (a server that ignores Range included): the first checkpoint bytes
//     are skipped. A page shorter than the checkpoint was replaced: all of it is read again;
//   - 206: the tail; Content-Range must start at the checkpoint, and the body must not be
//     content-encoded (ranges count identity bytes);
//   - 416: nothing new. If its Content-Range says the page is now shorter than the
//     checkpoint, the page was replaced and is fetched again from 0 at once;
//   - 404: an empty page (a miner creates a page with its first receipt);
//   - anything else, redirects included (they are not followed, as upstream), is an error.
//
// Only complete lines are imported: a last line without its "\n" (a write in progress, or a
// body cut short) stays behind the checkpoint and is read again by the next pull. A page may
// hold at most Config.MaxPageBytes bytes; a larger one is refused (ErrPageTooLarge) without
// importing anything from that response, and the checkpoint does not move.
//
// Checkpoints live in memory (the store has no table for them), for two days of pages. After
// a restart the pages are read again from 0; that costs bandwidth and verification only:
// InsertReceipt keeps the first copy of a (type, job) and the repeat counts as a duplicate.
//
// # Verification
//
// A line is imported only if it decodes as a Receipt, carries a miner signature, names the
// miner it was pulled from as miner_hotkey (a miner cannot inject another miner's receipts),
// names a validator Config.IsValidator accepts, and both signatures verify over the payload's
// signing blob. Rejected lines are counted by Reason and skipped; they do not stop the page.
// Accepted receipts go to Store.InsertReceipt: the first copy of a (type, job, seq) wins,
// except that a countersigned copy completes the validator's own copy of the same signed
// receipt (both count as Imported); any other repeat counts as a duplicate.
// Signatures are batch-verified (verify.go) on up to Config.VerifyWorkers cores at once.
//
// # Egress
//
// Miners announce their axons on chain, so their addresses are chosen by other parties. The
// default HTTP client dials through egress.Policy (Config.Egress): a miner announcing
// 127.0.0.1, a private range or the cloud metadata address is refused unless the operator
// allows that range (a devnet on one host needs egress.Loopback). The client uses no proxy
// and follows no redirects.
package receiptsync

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/computehorde/horde/internal/egress"
	"github.com/computehorde/horde/internal/keys"
	"github.com/computehorde/horde/internal/protocol"
	"github.com/computehorde/horde/internal/store"
)

// Defaults of Config.
const (
	DefaultConcurrency  = 16
	DefaultPageTimeout  = 10 * time.Second
	DefaultMaxPageBytes = 16 << 20 // ≈ 25,000 receipts in five minutes
)

// checkpointRetention is how long page checkpoints are kept: miners evict receipts and pages
// after two days (protocol.md §7.3).
const checkpointRetention = 48 * time.Hour

// verifyChunk is how many lines one worker decodes and batch-verifies at a time.
const verifyChunk = 64

// ErrPageTooLarge is a page longer than Config.MaxPageBytes.
var ErrPageTooLarge = errors.New("receiptsync: receipts page too large")

// Store is where imported receipts go. *store.DB implements it.
type Store interface {
	InsertReceipt(ctx context.Context, r store.Receipt) (inserted bool, err error)
}

// BatchStore is a Store that can also insert many receipts at once, in one transaction
// (upstream bulk-inserts 1000 at a time): on SQLite with synchronous=FULL one commit per
// receipt costs an fsync each. When Config.Store implements it, each chunk of verified
// receipts goes through InsertReceipts: it stores the receipts whose (type, job) is new,
// ignores the others (first copy wins, like InsertReceipt) and returns how many it stored.
// An error wrapping store.ErrInvalid makes the chunk go through InsertReceipt one by one.
type BatchStore interface {
	Store
	InsertReceipts(ctx context.Context, rs []store.Receipt) (inserted int, err error)
}

// Config configures a Syncer.
type Config struct {
	// Store receives the verified receipts. Required.
	Store Store
	// IsValidator reports whether hotkey is a registered validator (e.g. from the metagraph
	// cache). Receipts signed by anyone else are rejected. It must be safe for concurrent
	// use. Required.
	IsValidator func(hotkey string) bool
	// HTTPClient fetches the pages. Nil means a client that dials through Egress, uses no
	// proxy and follows no redirects. A client given here is used as is.
	HTTPClient *http.Client
	// Egress is the dial policy of the default HTTP client.
	Egress egress.Policy
	// Logger; nil discards.
	Logger *slog.Logger
	// Concurrency is how many miners SyncAll and SyncPages pull at once (default 16).
	Concurrency int
	// PageTimeout bounds one page request, body included (default 10 s).
	PageTimeout time.Duration
	// MaxPageBytes bounds a page (identity bytes; default 16 MiB).
	MaxPageBytes int64
	// VerifyWorkers bounds the cores verifying signatures at once, over all pulls
	// (default GOMAXPROCS).
	VerifyWorkers int
	// Now is the clock (default time.Now).
	Now func() time.Time
	// CatchUp is how far back SyncAll reads a miner's pages when it has not pulled them all
	// since: at the first pull of a miner in this process (after a validator restart), and
	// after pulls that failed (the miner was down or unreachable for a while). Receipts on
	// pages that stopped being active meanwhile would otherwise never be read, and this
	// validator's books would miss work the other validators count. Default DefaultCatchUp;
	// it should cover the scoring window.
	CatchUp time.Duration
}

// DefaultCatchUp reads back two hours of pages: more than a scoring window.
const DefaultCatchUp = 2 * time.Hour

// Miner is a miner to pull from: its hotkey and its axon's base URL, "http://ip:port".
type Miner struct {
	Hotkey string
	Base   string
}

// Reason is why a line was rejected.
type Reason string

// Rejection reasons.
const (
	ReasonMalformed             Reason = "malformed"               // not a Receipt
	ReasonNoMinerSignature      Reason = "no_miner_signature"      // miner_signature null
	ReasonWrongMiner            Reason = "wrong_miner"             // miner_hotkey is not the miner pulled from
	ReasonUnknownValidator      Reason = "unknown_validator"       // validator_hotkey is not a registered validator
	ReasonBadMinerSignature     Reason = "bad_miner_signature"     // malformed or does not verify
	ReasonBadValidatorSignature Reason = "bad_validator_signature" // malformed or does not verify
	ReasonInvalid               Reason = "invalid"                 // the store refused it (store.ErrInvalid)
)

// Stats counts what pulls did.
type Stats struct {
	Pages      int   // page requests answered (any status)
	Empty      int   // pages with nothing new: 404, 416 or no new complete line
	Failed     int   // page pulls that failed (transfer, status, size, store)
	Bytes      int64 // page bytes received, after gzip decoding (skipped bytes of a 200 included)
	Lines      int   // complete non-blank lines read
	Imported   int   // receipts verified and stored: new, or completing the validator's own copy
	Duplicates int   // receipts verified but already stored: the first copy wins
	Rejected   map[Reason]int
}

// Add adds o's counts to s.
func (s *Stats) Add(o Stats) {
	s.Pages += o.Pages
	s.Empty += o.Empty
	s.Failed += o.Failed
	s.Bytes += o.Bytes
	s.Lines += o.Lines
	s.Imported += o.Imported
	s.Duplicates += o.Duplicates
	for r, n := range o.Rejected {
		s.reject(r, n)
	}
}

// RejectedTotal is the number of rejected lines, all reasons together.
func (s Stats) RejectedTotal() int {
	n := 0
	for _, c := range s.Rejected {
		n += c
	}
	return n
}

func (s *Stats) reject(r Reason, n int) {
	if s.Rejected == nil {
		s.Rejected = make(map[Reason]int)
	}
	s.Rejected[r] += n
}

// Syncer pulls receipts pages. It is safe for concurrent use.
type Syncer struct {
	cfg    Config
	client *http.Client
	log    *slog.Logger
	cpu    chan struct{} // verification slots

	mu          sync.Mutex
	checkpoints map[pageKey]int64 // guarded by mu
	// pulled is, per miner (hotkey and base), the current page at its last pull in which
	// every page asked for was read: pages from the one before it on may have gained
	// receipts since. Guarded by mu.
	pulled map[minerAt]int64

	validatorKeys sync.Map // hotkey string -> keys.PublicKey, for accepted validators only
}

type pageKey struct {
	miner, base string
	page        int64
}

type minerAt struct{ miner, base string }

// New returns a Syncer.
func New(cfg Config) (*Syncer, error) {
	if cfg.Store == nil {
		return nil, errors.New("receiptsync: Config.Store is required")
	}
	if cfg.IsValidator == nil {
		return nil, errors.New("receiptsync: Config.IsValidator is required")
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = DefaultConcurrency
	}
	if cfg.PageTimeout <= 0 {
		cfg.PageTimeout = DefaultPageTimeout
	}
	if cfg.MaxPageBytes <= 0 {
		cfg.MaxPageBytes = DefaultMaxPageBytes
	}
	if cfg.VerifyWorkers <= 0 {
		cfg.VerifyWorkers = runtime.GOMAXPROCS(0)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.CatchUp <= 0 {
		cfg.CatchUp = DefaultCatchUp
	}
	s := &Syncer{cfg: cfg, client: cfg.HTTPClient, log: cfg.Logger, cpu: make(chan struct{}, cfg.VerifyWorkers),
		checkpoints: make(map[pageKey]int64), pulled: make(map[minerAt]int64)}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.client == nil {
		tr := cfg.Egress.Transport(egress.DefaultDialer())
		tr.MaxIdleConnsPerHost = 2
		s.client = &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		}}
	}
	return s, nil
}

// Checkpoint returns how many bytes of the page at base the Syncer has imported for miner.
func (s *Syncer) Checkpoint(miner, base string, page int64) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.checkpoints[pageKey{miner, strings.TrimRight(base, "/"), page}]
}

// PageCheckpoint is one page's checkpoint, as Checkpoints exports it for saving.
type PageCheckpoint struct {
	Miner string `json:"miner"`
	Base  string `json:"base"`
	Page  int64  `json:"page"`
	Bytes int64  `json:"bytes"`
}

// Checkpoints returns every page checkpoint, to save across a restart.
func (s *Syncer) Checkpoints() []PageCheckpoint {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]PageCheckpoint, 0, len(s.checkpoints))
	for k, n := range s.checkpoints {
		out = append(out, PageCheckpoint{Miner: k.miner, Base: k.base, Page: k.page, Bytes: n})
	}
	return out
}

// Restore sets the checkpoints a previous run saved, so that a restart does not read every
// active page again; negative ones are ignored. A checkpoint past a page's end (the page was
// replaced) is handled as during a run: the page is read again from its start.
func (s *Syncer) Restore(cps []PageCheckpoint) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range cps {
		if c.Bytes > 0 {
			s.checkpoints[pageKey{c.Miner, strings.TrimRight(c.Base, "/"), c.Page}] = c.Bytes
		}
	}
}

// ActivePages returns the pages miners may still append to at now, oldest first: the current
// page and the ReceiptActivePages-1 before it.
func ActivePages(now time.Time) []int64 {
	cur := protocol.ReceiptPage(now)
	pages := make([]int64, 0, protocol.ReceiptActivePages)
	for p := cur - protocol.ReceiptActivePages + 1; p <= cur; p++ {
		pages = append(pages, p)
	}
	return pages
}

// SyncAll pulls, Config.Concurrency miners at a time, every miner's pages that may hold
// receipts it has not read: the active pages (ActivePages) of a miner it pulled completely in
// the last round, and for any other (first seen by this process, or whose last pulls failed)
// every page since its last complete pull, at most Config.CatchUp back. Checkpoints keep the
// pages already read from being imported twice. The error joins the miners' errors;
// Stats.Failed counts them too.
func (s *Syncer) SyncAll(ctx context.Context, miners []Miner) (Stats, error) {
	now := s.cfg.Now()
	cur := protocol.ReceiptPage(now)
	oldest := protocol.ReceiptPage(now.Add(-s.cfg.CatchUp))
	return s.syncEach(ctx, miners, func(m Miner) []int64 {
		s.mu.Lock()
		last, ok := s.pulled[minerAt{m.Hotkey, strings.TrimRight(m.Base, "/")}]
		s.mu.Unlock()
		// Pages active at the last complete pull (last-1 and last) may have grown since.
		from := last - protocol.ReceiptActivePages + 1
		if !ok || from < oldest {
			from = oldest
		}
		from = min(from, cur-protocol.ReceiptActivePages+1)
		pages := make([]int64, 0, cur-from+1)
		for p := from; p <= cur; p++ {
			pages = append(pages, p)
		}
		return pages
	}, cur)
}

// SyncPages pulls the given pages of every miner, Config.Concurrency miners at a time, like
// SyncAll.
func (s *Syncer) SyncPages(ctx context.Context, miners []Miner, pages []int64) (Stats, error) {
	return s.syncEach(ctx, miners, func(Miner) []int64 { return pages }, -1)
}

// syncEach pulls pagesOf(m) of every miner m; when cur is a page number (not -1), a miner
// whose pages were all read is recorded as pulled up to cur.
func (s *Syncer) syncEach(ctx context.Context, miners []Miner, pagesOf func(Miner) []int64, cur int64) (Stats, error) {
	s.prune()
	var (
		mu    sync.Mutex
		total Stats
		errs  []error
		wg    sync.WaitGroup
	)
	sem := make(chan struct{}, s.cfg.Concurrency)
	for _, m := range miners {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return total, errors.Join(append(errs, ctx.Err())...)
		}
		wg.Go(func() {
			defer func() { <-sem }()
			st, err := s.SyncMiner(ctx, m.Hotkey, m.Base, pagesOf(m))
			if err == nil && cur >= 0 && ctx.Err() == nil {
				k := minerAt{m.Hotkey, strings.TrimRight(m.Base, "/")}
				s.mu.Lock()
				s.pulled[k] = max(s.pulled[k], cur)
				s.mu.Unlock()
			}
			mu.Lock()
			defer mu.Unlock()
			total.Add(st)
			if err != nil {
				errs = append(errs, fmt.Errorf("miner %s: %w", m.Hotkey, err))
			}
		})
	}
	wg.Wait()
	return total, errors.Join(errs...)
}

// prune forgets the checkpoints of pages older than checkpointRetention.
func (s *Syncer) prune() {
	oldest := protocol.ReceiptPage(s.cfg.Now().Add(-checkpointRetention))
	s.mu.Lock()
	defer s.mu.Unlock()
	for k := range s.checkpoints {
		if k.page < oldest {
			delete(s.checkpoints, k)
		}
	}
}

// SyncMiner pulls the given pages of the miner with hotkey minerHotkey from its axon at base
// ("http://ip:port") and imports their new complete lines. A page that fails does not stop
// the others; the error joins the pages' errors.
func (s *Syncer) SyncMiner(ctx context.Context, minerHotkey, base string, pages []int64) (Stats, error) {
	var st Stats
	minerKey, err := keys.ParsePublicKey(minerHotkey)
	if err != nil {
		st.Failed++
		return st, fmt.Errorf("receiptsync: miner hotkey: %w", err)
	}
	base = strings.TrimRight(base, "/")
	if u, err := url.Parse(base); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		st.Failed++
		return st, fmt.Errorf("receiptsync: miner %s: axon base %q is not an http(s)://host:port URL", minerHotkey, base)
	}
	m := pull{s: s, miner: minerHotkey, minerKey: minerKey, base: base}
	var errs []error
	for _, page := range pages {
		if err := m.page(ctx, page, &st); err != nil {
			st.Failed++
			s.log.Debug("receipts page pull failed", "miner", minerHotkey, "page", page, "err", err)
			errs = append(errs, fmt.Errorf("page %d: %w", page, err))
		}
		if ctx.Err() != nil {
			break
		}
	}
	return st, errors.Join(errs...)
}

// pull is one SyncMiner call.
type pull struct {
	s        *Syncer
	miner    string
	minerKey keys.PublicKey
	base     string
}

func (m *pull) page(ctx context.Context, page int64, st *Stats) error {
	key := pageKey{m.miner, m.base, page}
	s := m.s
	for attempt := 0; ; attempt++ {
		s.mu.Lock()
		start := s.checkpoints[key]
		s.mu.Unlock()

		body, from, reset, err := m.fetch(ctx, page, start, st)
		if err != nil {
			return err
		}
		if reset {
			s.log.Info("receipts page shrank; reading it again", "miner", m.miner, "page", page, "checkpoint", start)
			s.setCheckpoint(key, start, 0)
			if attempt == 0 {
				continue
			}
			return nil
		}
		end := bytes.LastIndexByte(body, '\n') + 1
		if end == 0 {
			st.Empty++
			return nil
		}
		if err := m.importLines(ctx, page, body[:end], st); err != nil {
			return err
		}
		s.setCheckpoint(key, start, from+int64(end))
		return nil
	}
}

// setCheckpoint moves the checkpoint of key from old to new, unless another pull moved it
// meanwhile.
func (s *Syncer) setCheckpoint(key pageKey, old, new int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.checkpoints[key] == old {
		if new == 0 {
			delete(s.checkpoints, key)
		} else {
			s.checkpoints[key] = new
		}
	}
}

// fetch gets page from byte start on. It returns the new bytes and their offset in the page
// (nil for nothing new), or reset when a 416 says the page is now shorter than start.
func (m *pull) fetch(ctx context.Context, page, start int64, st *Stats) (body []byte, from int64, reset bool, err error) {
	s := m.s
	ctx, cancel := context.WithTimeout(ctx, s.cfg.PageTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.base+protocol.ReceiptPagePath(page), nil)
	if err != nil {
		return nil, 0, false, err
	}
	if start > 0 {
		req.Header.Set("Range", "bytes="+strconv.FormatInt(start, 10)+"-")
		req.Header.Set("Accept-Encoding", "identity")
	} else {
		// Set by hand, so the transport leaves decoding to us and the size bound applies to
		// the decoded bytes.
		req.Header.Set("Accept-Encoding", "gzip")
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, 0, false, err
	}
	defer func() {
		_, _ = io.CopyN(io.Discard, resp.Body, 4<<10) // lets a short remainder keep the connection
		_ = resp.Body.Close()
	}()
	st.Pages++
	enc := strings.ToLower(strings.TrimSpace(resp.Header.Get("Content-Encoding")))
	switch resp.StatusCode {
	case http.StatusNotFound:
		return nil, 0, false, nil
	case http.StatusRequestedRangeNotSatisfiable:
		if total, ok := rangeTotal(resp.Header.Get("Content-Range")); ok && total < start {
			return nil, 0, true, nil
		}
		return nil, 0, false, nil
	case http.StatusPartialContent:
		if start == 0 {
			return nil, 0, false, errors.New("206 Partial Content to a request without Range")
		}
		if enc != "" && enc != "identity" {
			return nil, 0, false, fmt.Errorf("206 Partial Content with Content-Encoding %q; ranges must count identity bytes", enc)
		}
		first, ok := rangeFirst(resp.Header.Get("Content-Range"))
		if !ok || first != start {
			return nil, 0, false, fmt.Errorf("206 Partial Content with Content-Range %q, asked for bytes=%d-",
				resp.Header.Get("Content-Range"), start)
		}
		body, err := readBounded(resp.Body, s.cfg.MaxPageBytes-start)
		st.Bytes += int64(len(body))
		if err != nil {
			return nil, 0, false, err
		}
		return body, start, false, nil
	case http.StatusOK:
		r := io.Reader(resp.Body)
		switch enc {
		case "", "identity":
		case "gzip", "x-gzip":
			if start > 0 {
				return nil, 0, false, errors.New("gzip-encoded answer to a Range request sent with Accept-Encoding: identity")
			}
			// The compressed bytes are bounded too, a little above the decoded bound.
			zr, err := gzip.NewReader(io.LimitReader(resp.Body, s.cfg.MaxPageBytes+64<<10))
			if err != nil {
				return nil, 0, false, fmt.Errorf("gzip body: %w", err)
			}
			defer func() { _ = zr.Close() }()
			r = zr
		default:
			return nil, 0, false, fmt.Errorf("unsupported Content-Encoding %q", enc)
		}
		body, err := readBounded(r, s.cfg.MaxPageBytes)
		st.Bytes += int64(len(body))
		if err != nil {
			return nil, 0, false, err
		}
		if int64(len(body)) < start {
			s.log.Info("receipts page shrank; reading it again", "miner", m.miner, "page", page, "checkpoint", start, "length", len(body))
			return body, 0, false, nil
		}
		return body[start:], start, false, nil
	default:
		return nil, 0, false, fmt.Errorf("GET %s: status %s", protocol.ReceiptPagePath(page), resp.Status)
	}
}

// readBounded reads r to its end, failing with ErrPageTooLarge after limit bytes.
func readBounded(r io.Reader, limit int64) ([]byte, error) {
	if limit < 0 {
		limit = 0
	}
	body, err := io.ReadAll(io.LimitReader(r, limit+1))
	if int64(len(body)) > limit {
		return nil, ErrPageTooLarge
	}
	if err != nil {
		return nil, fmt.Errorf("reading body: %w", err)
	}
	return body, nil
}

// rangeFirst returns a of Content-Range "bytes a-b/total".
func rangeFirst(cr string) (int64, bool) {
	rest, ok := strings.CutPrefix(strings.TrimSpace(cr), "bytes ")
	if !ok {
		return 0, false
	}
	a, _, ok := strings.Cut(rest, "-")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(strings.TrimSpace(a), 10, 64)
	return n, err == nil && n >= 0
}

// rangeTotal returns total of Content-Range "bytes */total" or "bytes a-b/total".
func rangeTotal(cr string) (int64, bool) {
	_, total, ok := strings.Cut(cr, "/")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(strings.TrimSpace(total), 10, 64)
	return n, err == nil && n >= 0
}

// checked is one line after verification: rec when accepted, else why not.
type checked struct {
	rec    store.Receipt
	reason Reason
	err    error // detail of a rejection, for the log
}

// importLines verifies data, complete lines only, and stores the accepted receipts in line
// order. Chunks of lines are verified on the Syncer's verification slots while earlier
// chunks are being stored. It fails only when the store does (store.ErrInvalid aside).
func (m *pull) importLines(ctx context.Context, page int64, data []byte, st *Stats) error {
	var lines [][]byte
	for line := range bytes.SplitSeq(data, []byte("\n")) {
		if len(bytes.TrimSpace(line)) > 0 {
			lines = append(lines, line)
		}
	}
	st.Lines += len(lines)
	results := make([]checked, len(lines))
	nChunks := (len(lines) + verifyChunk - 1) / verifyChunk
	done := make([]chan struct{}, nChunks)
	for i := range done {
		done[i] = make(chan struct{})
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	defer wg.Wait()
	defer close(stop) // after a store error, verify no more chunks
	wg.Go(func() {
		for c := range nChunks {
			lo, hi := c*verifyChunk, min((c+1)*verifyChunk, len(lines))
			select {
			case m.s.cpu <- struct{}{}:
			case <-stop:
				return
			}
			wg.Go(func() {
				defer close(done[c])
				defer func() { <-m.s.cpu }()
				m.checkLines(lines[lo:hi], results[lo:hi])
			})
		}
	})

	var firstErr error
	var rejected int
	for c := range nChunks {
		<-done[c]
		chunk := results[c*verifyChunk : min((c+1)*verifyChunk, len(lines))]
		if err := m.store(ctx, chunk, st); err != nil {
			return err
		}
		for i := range chunk {
			if r := &chunk[i]; r.reason != "" {
				st.reject(r.reason, 1)
				rejected++
				if firstErr == nil {
					firstErr = fmt.Errorf("%s: %w", r.reason, r.err)
				}
			}
		}
	}
	if rejected > 0 {
		m.s.log.Warn("receipts rejected", "miner", m.miner, "page", page, "rejected", rejected, "lines", len(lines),
			"first", firstErr)
	}
	return nil
}

// store stores the accepted receipts of chunk, in one InsertReceipts call when the store
// has it. A receipt the store refuses as invalid is marked rejected (ReasonInvalid).
func (m *pull) store(ctx context.Context, chunk []checked, st *Stats) error {
	if bs, ok := m.s.cfg.Store.(BatchStore); ok {
		var recs []store.Receipt
		for i := range chunk {
			if chunk[i].reason == "" {
				recs = append(recs, chunk[i].rec)
			}
		}
		if len(recs) == 0 {
			return nil
		}
		n, err := bs.InsertReceipts(ctx, recs)
		if err == nil {
			st.Imported += n
			st.Duplicates += len(recs) - n
			return nil
		}
		if !errors.Is(err, store.ErrInvalid) {
			return err
		}
		// One of them is invalid: find it row by row.
	}
	for i := range chunk {
		r := &chunk[i]
		if r.reason != "" {
			continue
		}
		inserted, err := m.s.cfg.Store.InsertReceipt(ctx, r.rec)
		switch {
		case errors.Is(err, store.ErrInvalid):
			r.reason, r.err = ReasonInvalid, err
		case err != nil:
			return err
		case inserted:
			st.Imported++
		default:
			st.Duplicates++
		}
	}
	return nil
}

// checkLines decodes, checks and verifies lines into out (same length).
func (m *pull) checkLines(lines [][]byte, out []checked) {
	type pending struct {
		i       int
		r       protocol.Receipt
		checks  [2]int // indices in sigs: miner, validator
		payload protocol.ReceiptPayload
	}
	var (
		sigs    = make([]sigCheck, 0, 2*len(lines))
		todo    = make([]pending, 0, len(lines))
		known   = make(map[string]bool, 4) // IsValidator answers within this chunk
		reasonf = func(i int, r Reason, err error) { out[i] = checked{reason: r, err: err} }
	)
	for i, line := range lines {
		r, err := protocol.DecodeReceipt(line)
		if err != nil {
			reasonf(i, ReasonMalformed, err)
			continue
		}
		if r.MinerSignature == nil {
			reasonf(i, ReasonNoMinerSignature, protocol.ErrNoSignature)
			continue
		}
		h := r.Payload.Header()
		if h.MinerHotkey != m.miner {
			reasonf(i, ReasonWrongMiner, fmt.Errorf("miner_hotkey %s", h.MinerHotkey))
			continue
		}
		ok, seen := known[h.ValidatorHotkey]
		if !seen {
			ok = m.s.cfg.IsValidator(h.ValidatorHotkey)
			known[h.ValidatorHotkey] = ok
		}
		if !ok {
			reasonf(i, ReasonUnknownValidator, fmt.Errorf("validator_hotkey %s", h.ValidatorHotkey))
			continue
		}
		vkey, err := m.s.validatorKey(h.ValidatorHotkey)
		if err != nil {
			reasonf(i, ReasonMalformed, err)
			continue
		}
		msig, err := keys.ParseSignature(*r.MinerSignature)
		if err != nil {
			reasonf(i, ReasonBadMinerSignature, err)
			continue
		}
		vsig, err := keys.ParseSignature(r.ValidatorSignature)
		if err != nil {
			reasonf(i, ReasonBadValidatorSignature, err)
			continue
		}
		blob := r.Payload.BlobForSigning()
		t := messageTranscript(blob)
		sigs = append(sigs,
			sigCheck{pub: m.minerKey, sig: msig, msg: blob, t: t},
			sigCheck{pub: vkey, sig: vsig, msg: blob, t: t})
		todo = append(todo, pending{i: i, r: r, checks: [2]int{len(sigs) - 2, len(sigs) - 1}, payload: r.Payload})
	}
	verifyBatch(sigs)
	for _, p := range todo {
		switch {
		case !sigs[p.checks[0]].ok:
			reasonf(p.i, ReasonBadMinerSignature, keys.ErrBadSignature)
			continue
		case !sigs[p.checks[1]].ok:
			reasonf(p.i, ReasonBadValidatorSignature, keys.ErrBadSignature)
			continue
		}
		payload, err := marshalPayload(p.payload)
		if err != nil {
			reasonf(p.i, ReasonMalformed, err)
			continue
		}
		h := p.payload.Header()
		out[p.i] = checked{rec: store.Receipt{
			Type:               string(p.payload.ReceiptType()),
			Seq:                protocol.ReceiptSeq(p.payload),
			JobUUID:            h.JobUUID,
			ValidatorHotkey:    h.ValidatorHotkey,
			MinerHotkey:        h.MinerHotkey,
			Timestamp:          h.Timestamp.Time,
			Payload:            payload,
			ValidatorSignature: p.r.ValidatorSignature,
			MinerSignature:     *p.r.MinerSignature,
		}}
	}
}

// marshalPayload encodes a payload as the miner stores it (json.Marshal, i.e. the payload's
// pydantic encoding), calling MarshalJSON directly to skip encoding/json's re-validation.
func marshalPayload(p protocol.ReceiptPayload) (json.RawMessage, error) {
	if m, ok := p.(json.Marshaler); ok {
		return m.MarshalJSON()
	}
	return json.Marshal(p)
}

// validatorKey parses an accepted validator's SS58 hotkey, once.
func (s *Syncer) validatorKey(hotkey string) (keys.PublicKey, error) {
	if k, ok := s.validatorKeys.Load(hotkey); ok {
		return k.(keys.PublicKey), nil
	}
	k, err := keys.ParsePublicKey(hotkey)
	if err != nil {
		return k, fmt.Errorf("validator_hotkey: %w", err)
	}
	s.validatorKeys.Store(hotkey, k)
	return k, nil
}
