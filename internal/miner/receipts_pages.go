package miner

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/computehorde/horde/internal/protocol"
	"github.com/computehorde/horde/internal/store"
)

// Receipts pages (protocol.md §7.3, miner_executor.md "Serving receipts"): upstream miners
// append every receipt they countersign, as one Receipt.model_dump_json() line, to the page
// file {floor(unix_time/300)}.jsonl of the moment they store it, and nginx serves those
// files at /receipts/{page}.jsonl (gzip_static for the closed pages). Validators pull them
// without auth: the first fetch of a page with Accept-Encoding: gzip, later ones with
// Accept-Encoding: "" and Range: bytes={bytes seen}-; 404 and 416 mean nothing (new) there.
//
// horde renders the same pages from the store: page N holds the receipts stored (CreatedAt)
// in [N*300 s, (N+1)*300 s) that carry this miner's hotkey and its countersignature (all
// types, including horde's WorkInterval extension), in storing order, each line being
// protocol.Encode(Receipt) + "\n". A page therefore only grows at its end, which the
// validators' range requests rely on. Rows stored less than receiptsSettle ago are held
// back, so that a write still queued with an earlier CreatedAt cannot later land in front of
// bytes a validator has already seen.
//
// Responses:
//   - a name that is not "{decimal page}.jsonl", or a page after the current one: 404;
//   - a page with no receipts: 404, like a page file upstream never created;
//   - otherwise 200 with the page, or 206/416 for a Range request (http.ServeContent),
//     Content-Type application/jsonl, an ETag, and Vary: Accept-Encoding;
//   - gzip: a request without Range whose Accept-Encoding allows gzip gets the whole page
//     gzipped (Content-Encoding: gzip), for open pages as well as closed ones. Ranges always
//     apply to the identity bytes: a request with Range is answered uncompressed, so
//     Content-Range counts the bytes of the page itself, as upstream validators expect;
//   - the pages still being written (the current one and the one before, upstream's
//     N_ACTIVE_PAGES) are sent with Cache-Control: no-cache and no Last-Modified (an
//     append within the same second would not change it; the ETag does); older pages with
//     Cache-Control: public, max-age=3600 and Last-Modified = their last receipt's
//     storing time.
const (
	receiptsPagePattern = "GET /receipts/{page}"
	receiptsSettle      = time.Second
	// Rendered pages are cached: created_at has no index, so rendering reads the table.
	receiptsOpenTTL    = time.Second
	receiptsClosedTTL  = 5 * time.Minute
	receiptsCacheBytes = 32 << 20
)

// receiptPagesHandler returns the handler of GET /receipts/{page}.jsonl.
func (m *Miner) receiptPagesHandler() http.Handler {
	return newReceiptPages(m.cfg.Store, m.hotkey, time.Now, m.log)
}

type receiptPages struct {
	db    *store.DB
	miner string // own hotkey: only its receipts are published
	now   func() time.Time
	log   *slog.Logger

	mu         sync.Mutex
	cache      map[int64]*renderedPage // guarded by mu
	cacheBytes int                     // guarded by mu
}

func newReceiptPages(db *store.DB, minerHotkey string, now func() time.Time, log *slog.Logger) *receiptPages {
	return &receiptPages{db: db, miner: minerHotkey, now: now, log: log, cache: make(map[int64]*renderedPage)}
}

// renderedPage is one page as served at one moment. It is never modified once cached,
// except for the lazily computed gzip form.
type renderedPage struct {
	body    []byte    // identity bytes, lines ending in "\n"
	etag    string    // strong ETag of body
	modtime time.Time // CreatedAt of the last line
	closed  bool      // no longer appended to
	expires time.Time

	gzOnce sync.Once
	gz     []byte
}

func (p *renderedPage) gzipped() []byte {
	p.gzOnce.Do(func() {
		var b bytes.Buffer
		zw := gzip.NewWriter(&b)
		_, _ = zw.Write(p.body) // writes to a bytes.Buffer do not fail
		_ = zw.Close()
		p.gz = b.Bytes()
	})
	return p.gz
}

func (h *receiptPages) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	now := h.now()
	name := r.PathValue("page")
	page, ok := parseReceiptPageName(name)
	if !ok {
		http.Error(w, fmt.Sprintf("no receipts page %q: pages are /receipts/{page}.jsonl, page = floor(unix_time / 300), "+
			"a non-negative decimal integer", name), http.StatusNotFound)
		return
	}
	if current := protocol.ReceiptPage(now); page > current {
		http.Error(w, fmt.Sprintf("receipts page %d is in the future (the current page is %d)", page, current), http.StatusNotFound)
		return
	}
	p, err := h.page(r.Context(), page, now)
	if err != nil {
		h.log.Error("cannot render receipts page", "page", page, "err", err)
		http.Error(w, "cannot read receipts", http.StatusInternalServerError)
		return
	}
	if len(p.body) == 0 {
		http.Error(w, fmt.Sprintf("no receipts in page %d", page), http.StatusNotFound)
		return
	}
	hdr := w.Header()
	hdr.Set("Content-Type", "application/jsonl")
	hdr.Add("Vary", "Accept-Encoding")
	body, etag, modtime := p.body, p.etag, time.Time{}
	if p.closed {
		hdr.Set("Cache-Control", "public, max-age=3600")
		modtime = p.modtime
	} else {
		hdr.Set("Cache-Control", "no-cache")
	}
	if r.Header.Get("Range") == "" && acceptsGzip(r.Header) {
		body = p.gzipped()
		etag = strings.TrimSuffix(etag, `"`) + `-gzip"`
		hdr.Set("Content-Encoding", "gzip")
		// ServeContent leaves Content-Length unset when Content-Encoding is.
		hdr.Set("Content-Length", strconv.Itoa(len(body)))
	}
	hdr.Set("ETag", etag)
	http.ServeContent(w, r, "", modtime, bytes.NewReader(body))
}

// page returns the page as it stands at now, from the cache when fresh enough.
func (h *receiptPages) page(ctx context.Context, page int64, now time.Time) (*renderedPage, error) {
	closed := page <= protocol.ReceiptPage(now)-protocol.ReceiptActivePages
	h.mu.Lock()
	if p := h.cache[page]; p != nil && now.Before(p.expires) && p.closed == closed {
		h.mu.Unlock()
		return p, nil
	}
	h.mu.Unlock()

	from := protocol.ReceiptPageStart(page)
	to := from.Add(protocol.ReceiptPageDuration)
	if settled := now.Add(-receiptsSettle); settled.Before(to) {
		to = settled
	}
	var rows []store.Receipt
	if from.Before(to) {
		var err error
		if rows, err = h.db.ReceiptsStoredBetween(ctx, from, to); err != nil {
			return nil, err
		}
	}
	p := &renderedPage{closed: closed, expires: now.Add(receiptsOpenTTL)}
	if closed {
		p.expires = now.Add(receiptsClosedTTL)
	}
	var buf bytes.Buffer
	for _, row := range rows {
		if row.MinerSignature == "" || row.MinerHotkey != h.miner {
			continue
		}
		line, err := receiptLine(row)
		if err != nil {
			h.log.Warn("stored receipt left out of its page", "page", page, "type", row.Type, "job", row.JobUUID, "err", err)
			continue
		}
		buf.Write(line)
		buf.WriteByte('\n')
		p.modtime = row.CreatedAt
	}
	p.body = buf.Bytes()
	sum := sha256.Sum256(p.body)
	p.etag = `"` + hex.EncodeToString(sum[:12]) + `"`
	h.remember(page, p, now)
	return p, nil
}

// remember caches p, dropping expired pages and then the soonest to expire while the cache
// holds more than receiptsCacheBytes.
func (h *receiptPages) remember(page int64, p *renderedPage, now time.Time) {
	if len(p.body) > receiptsCacheBytes/4 {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if old := h.cache[page]; old != nil {
		h.cacheBytes -= len(old.body)
	}
	h.cache[page] = p
	h.cacheBytes += len(p.body)
	for k, c := range h.cache {
		if !now.Before(c.expires) {
			delete(h.cache, k)
			h.cacheBytes -= len(c.body)
		}
	}
	for h.cacheBytes > receiptsCacheBytes {
		var victim int64
		var first *renderedPage
		for k, c := range h.cache {
			if first == nil || c.expires.Before(first.expires) {
				victim, first = k, c
			}
		}
		delete(h.cache, victim)
		h.cacheBytes -= len(first.body)
	}
}

// receiptLine returns a stored receipt as upstream's page line (without the "\n"): the
// Receipt re-encoded by the protocol package, i.e. Receipt.model_dump_json().
func receiptLine(row store.Receipt) ([]byte, error) {
	raw, err := json.Marshal(struct {
		Payload            json.RawMessage `json:"payload"`
		ValidatorSignature string          `json:"validator_signature"`
		MinerSignature     string          `json:"miner_signature"`
	}{row.Payload, row.ValidatorSignature, row.MinerSignature})
	if err != nil {
		return nil, err
	}
	r, err := protocol.DecodeReceipt(raw)
	if err != nil {
		return nil, err
	}
	if string(r.Payload.ReceiptType()) != row.Type || r.Payload.Header().JobUUID != row.JobUUID {
		return nil, errors.New("payload does not match the row's type and job")
	}
	return protocol.Encode(r)
}

// parseReceiptPageName parses "{page}.jsonl" with page a canonical non-negative decimal
// integer (no sign, no leading zeros), as upstream's page file names are.
func parseReceiptPageName(name string) (int64, bool) {
	s, ok := strings.CutSuffix(name, ".jsonl")
	if !ok || s == "" || len(s) > 18 || (len(s) > 1 && s[0] == '0') {
		return 0, false
	}
	for i := range len(s) {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}

// acceptsGzip reports whether an Accept-Encoding header allows gzip (RFC 9110 §12.5.3):
// "gzip" or "x-gzip" with a non-zero q, or else "*" with a non-zero q.
func acceptsGzip(h http.Header) bool {
	gz, star := -1.0, -1.0
	for _, v := range h.Values("Accept-Encoding") {
		for part := range strings.SplitSeq(v, ",") {
			coding, params, _ := strings.Cut(part, ";")
			q := 1.0
			for param := range strings.SplitSeq(params, ";") {
				k, val, _ := strings.Cut(param, "=")
				if strings.EqualFold(strings.TrimSpace(k), "q") {
					f, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
					if err != nil || f < 0 {
						f = 0
					}
					q = f
				}
			}
			switch strings.ToLower(strings.TrimSpace(coding)) {
			case "gzip", "x-gzip":
				gz = max(gz, q)
			case "*":
				star = max(star, q)
			}
		}
	}
	if gz >= 0 {
		return gz > 0
	}
	return star > 0
}
