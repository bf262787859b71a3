package miner

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/computehorde/horde/internal/keys"
	"github.com/computehorde/horde/internal/protocol"
	"github.com/computehorde/horde/internal/store"
)

// countersigned returns p as the miner stores it after countersigning (see storeReceipt).
func countersigned(t *testing.T, validator, miner *keys.Keypair, p protocol.ReceiptPayload) store.Receipt {
	t.Helper()
	payload, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	c := p.Header()
	return store.Receipt{
		Type: string(p.ReceiptType()), JobUUID: c.JobUUID, ValidatorHotkey: c.ValidatorHotkey, MinerHotkey: c.MinerHotkey,
		Timestamp: c.Timestamp.Time, Payload: payload,
		ValidatorSignature: validator.Sign(p.BlobForSigning()).Hex(),
		MinerSignature:     miner.Sign(p.BlobForSigning()).Hex(),
	}
}

type pagesFixture struct {
	t                *testing.T
	db               *store.DB
	mux              *http.ServeMux
	alice, bob, dave *keys.Keypair
	n                int
}

// add stores a countersigned receipt of the next kind in the rotation, generated now, and
// returns its "type/job" key.
func (f *pagesFixture) add(mutate ...func(*store.Receipt)) string {
	f.t.Helper()
	f.n++
	job := fmt.Sprintf("00000000-0000-4000-8000-%012d", f.n)
	ts := protocol.NewTimestamp(time.Now())
	var p protocol.ReceiptPayload
	switch f.n % 3 {
	case 0:
		p = protocol.JobStartedReceiptPayload{JobUUID: job, MinerHotkey: f.bob.SS58(), ValidatorHotkey: f.alice.SS58(),
			Timestamp: ts, ExecutorClass: protocol.ExecutorClassAlwaysOnTest, IsOrganic: true, TTL: 7}
	case 1:
		p = protocol.JobAcceptedReceiptPayload{JobUUID: job, MinerHotkey: f.bob.SS58(), ValidatorHotkey: f.alice.SS58(),
			Timestamp: ts, TimeAccepted: ts, TTL: 300}
	default:
		p = protocol.JobFinishedReceiptPayload{JobUUID: job, MinerHotkey: f.bob.SS58(), ValidatorHotkey: f.alice.SS58(),
			Timestamp: ts, TimeStarted: ts, TimeTookUS: 1234567, ScoreStr: protocol.FormatScore(1.5), BlockNumbers: []int{3, 4}}
	}
	r := countersigned(f.t, f.alice, f.bob, p)
	for _, m := range mutate {
		m(&r)
	}
	if _, err := f.db.InsertReceipt(f.t.Context(), r); err != nil {
		f.t.Fatal(err)
	}
	return r.Type + "/" + r.JobUUID
}

func (f *pagesFixture) get(path string, header ...string) *httptest.ResponseRecorder {
	f.t.Helper()
	req := httptest.NewRequest(http.MethodGet, path, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	w := httptest.NewRecorder()
	f.mux.ServeHTTP(w, req)
	return w
}

// parsePage parses a page body as a validator does, failing on any bad line, and returns
// the "type/job" keys in order.
func parsePage(t *testing.T, body []byte, miner string) []string {
	t.Helper()
	if len(body) > 0 && body[len(body)-1] != '\n' {
		t.Errorf("page does not end in a newline: %q", body)
	}
	rs, bad := protocol.ParseReceiptsPage(body)
	for _, e := range bad {
		t.Errorf("bad line: %v", e)
	}
	var keys []string
	for _, r := range rs {
		if h := r.Payload.Header(); h.MinerHotkey != miner {
			t.Errorf("receipt of miner %s served", h.MinerHotkey)
		}
		enc, err := protocol.Encode(r)
		if err != nil || !bytes.Contains(body, append(enc, '\n')) {
			t.Errorf("line is not the receipt's model_dump_json() form: %s (%v)", enc, err)
		}
		keys = append(keys, string(r.Payload.ReceiptType())+"/"+r.Payload.Header().JobUUID)
	}
	return keys
}

func TestReceiptPages(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// The bubble's clock starts at 2000-01-01T00:00:00Z, a page boundary; the store's
		// CreatedAt and the handler both read it.
		db, err := store.Open(t.Context(), store.Config{DSN: "sqlite::memory:"})
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		f := &pagesFixture{t: t, db: db, alice: mustKey(t, "//Alice"), bob: mustKey(t, "//Bob"), dave: mustKey(t, "//Dave")}
		f.mux = http.NewServeMux()
		f.mux.Handle(receiptsPagePattern, newReceiptPages(db, f.bob.SS58(), time.Now, slog.New(slog.NewTextHandler(t.Output(), nil))))
		page1 := protocol.ReceiptPage(time.Now())
		path1, path2 := protocol.ReceiptPagePath(page1), protocol.ReceiptPagePath(page1+1)

		// Page 1: three countersigned receipts, plus rows that are not published: one not
		// countersigned (a validator-side row) and one of another miner.
		var want1 []string
		for range 3 {
			time.Sleep(40 * time.Second)
			want1 = append(want1, f.add())
		}
		f.add(func(r *store.Receipt) { r.MinerSignature = "" })
		f.add(func(r *store.Receipt) { r.MinerHotkey = f.dave.SS58() })
		// Page 2, from its first instant.
		time.Sleep(protocol.ReceiptPageDuration - 2*time.Minute)
		var want2 []string
		for range 2 {
			want2 = append(want2, f.add())
			time.Sleep(time.Millisecond) // rows stored in the same microsecond go by type, then job
		}
		time.Sleep(2 * time.Second)

		w := f.get(path1)
		if w.Code != http.StatusOK {
			t.Fatalf("GET %s: %d %s", path1, w.Code, w.Body)
		}
		if got := parsePage(t, w.Body.Bytes(), f.bob.SS58()); strings.Join(got, " ") != strings.Join(want1, " ") {
			t.Errorf("page 1 = %v, want %v", got, want1)
		}
		for k, v := range map[string]string{"Content-Type": "application/jsonl", "Cache-Control": "no-cache",
			"Vary": "Accept-Encoding", "Accept-Ranges": "bytes", "Last-Modified": "", "Content-Encoding": ""} {
			if got := w.Header().Get(k); got != v {
				t.Errorf("open page: %s = %q, want %q", k, got, v)
			}
		}
		page2 := f.get(path2).Body.Bytes()
		if got := parsePage(t, page2, f.bob.SS58()); strings.Join(got, " ") != strings.Join(want2, " ") {
			t.Errorf("page 2 = %v, want %v", got, want2)
		}

		// Appending: a receipt is held back for receiptsSettle, then shows up at the end of
		// the page, and a range request from the old length returns exactly its line.
		added := f.add()
		time.Sleep(500 * time.Millisecond) // less than receiptsSettle
		fresh := http.NewServeMux()        // without the cache of f.mux
		fresh.Handle(receiptsPagePattern, newReceiptPages(db, f.bob.SS58(), time.Now, slog.New(slog.NewTextHandler(t.Output(), nil))))
		w = httptest.NewRecorder()
		fresh.ServeHTTP(w, httptest.NewRequest(http.MethodGet, path2, nil))
		if !bytes.Equal(w.Body.Bytes(), page2) {
			t.Errorf("a receipt younger than receiptsSettle is served")
		}
		time.Sleep(receiptsSettle + receiptsOpenTTL)
		grown := f.get(path2).Body.Bytes()
		if !bytes.HasPrefix(grown, page2) || len(grown) == len(page2) {
			t.Fatalf("page 2 did not grow at its end:\n%s\nthen\n%s", page2, grown)
		}
		// A validator's later fetch: no gzip, Range from its checkpoint.
		w = f.get(path2, "Range", fmt.Sprintf("bytes=%d-", len(page2)), "Accept-Encoding", "")
		wantRange := fmt.Sprintf("bytes %d-%d/%d", len(page2), len(grown)-1, len(grown))
		if w.Code != http.StatusPartialContent || w.Header().Get("Content-Range") != wantRange {
			t.Fatalf("range: %d, Content-Range %q, want 206 %q", w.Code, w.Header().Get("Content-Range"), wantRange)
		}
		if got := parsePage(t, w.Body.Bytes(), f.bob.SS58()); len(got) != 1 || got[0] != added {
			t.Errorf("range tail = %v, want [%s]", got, added)
		}
		// Range with gzip accepted: still the identity bytes.
		w = f.get(path2, "Range", fmt.Sprintf("bytes=%d-", len(page2)), "Accept-Encoding", "gzip")
		if w.Code != http.StatusPartialContent || w.Header().Get("Content-Encoding") != "" || !bytes.Equal(w.Body.Bytes(), grown[len(page2):]) {
			t.Errorf("range with gzip accepted: %d %q %q", w.Code, w.Header().Get("Content-Encoding"), w.Body)
		}
		// Nothing new: 416, which validators read as empty.
		w = f.get(path2, "Range", fmt.Sprintf("bytes=%d-", len(grown)))
		if w.Code != http.StatusRequestedRangeNotSatisfiable || w.Header().Get("Content-Range") != "bytes */"+strconv.Itoa(len(grown)) {
			t.Errorf("range at the end: %d %q", w.Code, w.Header().Get("Content-Range"))
		}

		// gzip round trip, as a validator's first fetch.
		w = f.get(path2, "Accept-Encoding", "gzip, deflate")
		if w.Code != http.StatusOK || w.Header().Get("Content-Encoding") != "gzip" ||
			w.Header().Get("Content-Length") != strconv.Itoa(w.Body.Len()) {
			t.Fatalf("gzip: %d, headers %v", w.Code, w.Header())
		}
		zr, err := gzip.NewReader(w.Body)
		if err != nil {
			t.Fatal(err)
		}
		if inflated, err := io.ReadAll(zr); err != nil || !bytes.Equal(inflated, grown) {
			t.Errorf("gunzipped page differs (%v):\n%s\nwant\n%s", err, inflated, grown)
		}
		if f.get(path2, "Accept-Encoding", "gzip;q=0, identity").Header().Get("Content-Encoding") != "" {
			t.Error("gzip sent although refused with q=0")
		}
		// Conditional request on the ETag.
		etag := f.get(path2).Header().Get("ETag")
		if w := f.get(path2, "If-None-Match", etag); etag == "" || w.Code != http.StatusNotModified {
			t.Errorf("If-None-Match %q: %d", etag, w.Code)
		}

		// Two pages later page 1 is closed: cacheable, with Last-Modified.
		time.Sleep(2 * protocol.ReceiptPageDuration)
		w = f.get(path1)
		if w.Code != http.StatusOK || w.Header().Get("Cache-Control") != "public, max-age=3600" || w.Header().Get("Last-Modified") == "" {
			t.Errorf("closed page: %d %v", w.Code, w.Header())
		}
		if got := parsePage(t, w.Body.Bytes(), f.bob.SS58()); strings.Join(got, " ") != strings.Join(want1, " ") {
			t.Errorf("closed page 1 = %v, want %v", got, want1)
		}

		// 404s: names that are no page, a page with no receipts, a future page.
		current := protocol.ReceiptPage(time.Now())
		for _, path := range []string{
			"/receipts/abc.jsonl", "/receipts/-1.jsonl", "/receipts/+5.jsonl", "/receipts/0" + path1[len("/receipts/"):],
			"/receipts/" + strconv.FormatInt(page1, 10), "/receipts/" + strconv.FormatInt(page1, 10) + ".jsonl.gz",
			"/receipts/1e3.jsonl", "/receipts/99999999999999999999.jsonl", "/receipts/.jsonl",
			protocol.ReceiptPagePath(page1 - 1), protocol.ReceiptPagePath(current), protocol.ReceiptPagePath(current + 1),
		} {
			if w := f.get(path); w.Code != http.StatusNotFound || w.Body.Len() == 0 {
				t.Errorf("GET %s: %d %q, want 404 with a reason", path, w.Code, w.Body)
			}
		}
		if body := f.get(protocol.ReceiptPagePath(current + 1)).Body.String(); !strings.Contains(body, "future") {
			t.Errorf("future page: %q", body)
		}
	})
}

// Through the miner's own handler: a receipt countersigned during a real job is served on
// the page of the moment it was stored.
func TestReceiptPagesServedByMiner(t *testing.T) {
	h := newHarness(t, happyExecutor)
	c := h.authed()
	ctx := t.Context()
	id := "3f9a6c1e-5b7d-4e2a-8c0f-9d1e2b3a4c5d"
	before := time.Now()
	send(ctx, t, c, h.initialRequest(id, protocol.ExecutorClassAlwaysOnTest))
	if _, ok := h.read(c).(*protocol.V0AcceptJobRequest); !ok {
		t.Fatal("want V0AcceptJobRequest")
	}
	if _, ok := h.read(c).(*protocol.V0ExecutorReadyRequest); !ok {
		t.Fatal("want V0ExecutorReadyRequest")
	}
	send(ctx, t, c, &protocol.V0JobRequest{JobUUID: id, ExecutorClass: protocol.ExecutorClassAlwaysOnTest,
		DockerImage: "img", DockerRunOptionsPreset: protocol.DockerRunOptionsPresetNone, DockerRunCmd: []string{}})
	for _, want := range []string{"V0VolumesReadyRequest", "V0ExecutionDoneRequest", "V0JobFinishedRequest"} {
		if got := h.read(c).MessageType(); got != want {
			t.Fatalf("got %s, want %s", got, want)
		}
	}
	h.execs.wg.Wait()
	r, err := h.db.GetReceipt(ctx, string(protocol.ReceiptTypeJobStarted), id)
	if err != nil {
		t.Fatalf("JobStarted receipt not stored: %v", err)
	}
	base := "http" + strings.TrimPrefix(h.url, "ws")
	deadline := time.Now().Add(10 * time.Second)
	for {
		var found []protocol.Receipt
		for page := protocol.ReceiptPage(before); page <= protocol.ReceiptPage(time.Now()); page++ {
			resp, err := http.Get(base + protocol.ReceiptPagePath(page))
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				rs, bad := protocol.ParseReceiptsPage(body)
				if len(bad) > 0 {
					t.Fatalf("bad lines: %v", bad)
				}
				found = append(found, rs...)
			}
		}
		if len(found) == 1 && found[0].Payload.Header().JobUUID == id && *found[0].MinerSignature == r.MinerSignature {
			if found[0].Payload.ReceiptType() != protocol.ReceiptTypeJobStarted {
				t.Errorf("served %+v", found[0])
			}
			return
		}
		if len(found) > 1 || time.Now().After(deadline) {
			t.Fatalf("pages hold %d receipts, want the JobStarted receipt of %s", len(found), id)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
