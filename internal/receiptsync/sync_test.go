package receiptsync

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/computehorde/horde/internal/egress"
	"github.com/computehorde/horde/internal/keys"
	"github.com/computehorde/horde/internal/protocol"
	"github.com/computehorde/horde/internal/store"
)

// fixture: Alice and Eve are registered validators, Bob and Dave miners, Charlie a key the
// metagraph does not list as a validator.
type fixture struct {
	t                              testing.TB
	alice, bob, charlie, dave, eve *keys.Keypair
	validators                     map[string]bool
	db                             *store.DB
	n                              int
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	db, err := store.Open(t.Context(), store.Config{DSN: filepath.Join(t.TempDir(), "validator.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	f := &fixture{t: t, alice: mustKey(t, "//Alice"), bob: mustKey(t, "//Bob"), charlie: mustKey(t, "//Charlie"),
		dave: mustKey(t, "//Dave"), eve: mustKey(t, "//Eve"), db: db}
	f.validators = map[string]bool{f.alice.SS58(): true, f.eve.SS58(): true}
	return f
}

func (f *fixture) syncer(mutate ...func(*Config)) *Syncer {
	f.t.Helper()
	cfg := Config{
		Store:       f.db,
		IsValidator: func(hk string) bool { return f.validators[hk] },
		Egress:      egress.Policy{Allow: egress.Loopback},
	}
	for _, m := range mutate {
		m(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		f.t.Fatal(err)
	}
	return s
}

// payload returns the next receipt payload between validator and miner, rotating through the
// receipt types (WorkInterval included: other validators' intervals are imported too).
func (f *fixture) payload(validator, miner *keys.Keypair) protocol.ReceiptPayload {
	f.n++
	job := fmt.Sprintf("00000000-0000-4000-8000-%012d", f.n)
	ts := protocol.NewTimestamp(time.Date(2026, 1, 21, 13, 18, 47, 123456000, time.UTC).Add(time.Duration(f.n) * time.Second))
	v, m := validator.SS58(), miner.SS58()
	switch f.n % 4 {
	case 0:
		return protocol.JobStartedReceiptPayload{JobUUID: job, MinerHotkey: m, ValidatorHotkey: v, Timestamp: ts,
			ExecutorClass: protocol.ExecutorClassAlwaysOnTest, IsOrganic: true, TTL: 7}
	case 1:
		return protocol.JobAcceptedReceiptPayload{JobUUID: job, MinerHotkey: m, ValidatorHotkey: v, Timestamp: ts,
			TimeAccepted: ts, TTL: 300}
	case 2:
		return protocol.JobFinishedReceiptPayload{JobUUID: job, MinerHotkey: m, ValidatorHotkey: v, Timestamp: ts,
			TimeStarted: ts, TimeTookUS: 1500000, ScoreStr: protocol.FormatScore(12), BlockNumbers: []int{7, 8}}
	default:
		return protocol.WorkIntervalReceiptPayload{JobUUID: job, MinerHotkey: m, ValidatorHotkey: v, Timestamp: ts,
			ExecutorClass: protocol.ExecutorClassAlwaysOnTest, IntervalIndex: 0, IntervalStart: ts, IntervalEnd: ts, WorkedSeconds: 60}
	}
}

// line encodes p signed by vSigner and countersigned by mSigner, with its "\n".
func (f *fixture) line(p protocol.ReceiptPayload, vSigner, mSigner *keys.Keypair) []byte {
	f.t.Helper()
	var msig *string
	if mSigner != nil {
		s := mSigner.Sign(p.BlobForSigning()).Hex()
		msig = &s
	}
	b, err := protocol.Encode(protocol.Receipt{Payload: p, ValidatorSignature: vSigner.Sign(p.BlobForSigning()).Hex(), MinerSignature: msig})
	if err != nil {
		f.t.Fatal(err)
	}
	return append(b, '\n')
}

// good returns n valid lines of miner Bob, signed by Alice and Eve in turn.
func (f *fixture) good(n int) []byte {
	var b []byte
	for i := range n {
		v := f.alice
		if i%2 == 1 {
			v = f.eve
		}
		b = append(b, f.line(f.payload(v, f.bob), v, f.bob)...)
	}
	return b
}

func (f *fixture) stored() int {
	f.t.Helper()
	rs, err := f.db.ListReceipts(f.t.Context(), store.ReceiptFilter{})
	if err != nil {
		f.t.Fatal(err)
	}
	return len(rs)
}

// pageServer serves receipts pages like a miner (internal/miner): ranges through
// http.ServeContent, the whole page gzipped to a request without Range that accepts gzip.
type pageServer struct {
	*httptest.Server
	mu          sync.Mutex
	pages       map[int64][]byte
	ranges      []string // Range header of each request, "" for none
	gzipped     int      // answers sent gzipped
	ignoreRange bool     // answer every request with the whole page
	status      int      // answer every request with this status, when set
}

func newPageServer(t *testing.T) *pageServer {
	ps := &pageServer{pages: make(map[int64][]byte)}
	ps.Server = httptest.NewServer(ps)
	t.Cleanup(ps.Close)
	return ps
}

func (ps *pageServer) set(page int64, body []byte) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	ps.pages[page] = bytes.Clone(body)
}

func (ps *pageServer) appendTo(page int64, b []byte) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	ps.pages[page] = append(ps.pages[page], b...)
}

func (ps *pageServer) lastRange() string {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if len(ps.ranges) == 0 {
		return "(no request)"
	}
	return ps.ranges[len(ps.ranges)-1]
}

func (ps *pageServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	ps.ranges = append(ps.ranges, r.Header.Get("Range"))
	if ps.status != 0 {
		if ps.status/100 == 3 {
			w.Header().Set("Location", "http://169.254.169.254/")
		}
		w.WriteHeader(ps.status)
		return
	}
	name, ok := strings.CutPrefix(r.URL.Path, "/receipts/")
	num, ok2 := strings.CutSuffix(name, ".jsonl")
	page, err := strconv.ParseInt(num, 10, 64)
	body, ok3 := ps.pages[page]
	if !ok || !ok2 || err != nil || !ok3 {
		http.NotFound(w, r)
		return
	}
	if ps.ignoreRange {
		r.Header.Del("Range")
	}
	w.Header().Set("Content-Type", "application/jsonl")
	if r.Header.Get("Range") == "" && strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
		var zb bytes.Buffer
		zw := gzip.NewWriter(&zb)
		_, _ = zw.Write(body)
		_ = zw.Close()
		ps.gzipped++
		w.Header().Set("Content-Encoding", "gzip")
		_, _ = w.Write(zb.Bytes())
		return
	}
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(body))
}

const page = 5896671

func TestFullThenIncrementalImport(t *testing.T) {
	f := newFixture(t)
	ps := newPageServer(t)
	body := f.good(10)
	ps.set(page, body)
	s := f.syncer()
	ctx := t.Context()

	st, err := s.SyncMiner(ctx, f.bob.SS58(), ps.URL, []int64{page})
	if err != nil {
		t.Fatal(err)
	}
	if st.Imported != 10 || st.Lines != 10 || st.Duplicates != 0 || st.RejectedTotal() != 0 || st.Bytes != int64(len(body)) {
		t.Fatalf("first pull: %+v", st)
	}
	if got := ps.lastRange(); got != "" {
		t.Errorf("first pull sent Range %q", got)
	}
	if ps.gzipped != 1 {
		t.Errorf("first pull was not gzipped")
	}
	if got := s.Checkpoint(f.bob.SS58(), ps.URL, page); got != int64(len(body)) {
		t.Errorf("checkpoint = %d, want %d", got, len(body))
	}
	if n := f.stored(); n != 10 {
		t.Errorf("stored %d receipts, want 10", n)
	}

	// Three more lines: only they are fetched and imported.
	more := f.good(3)
	ps.appendTo(page, more)
	st, err = s.SyncMiner(ctx, f.bob.SS58(), ps.URL+"/", []int64{page})
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("bytes=%d-", len(body)); ps.lastRange() != want {
		t.Errorf("second pull sent Range %q, want %q", ps.lastRange(), want)
	}
	if st.Imported != 3 || st.Lines != 3 || st.Duplicates != 0 || st.Bytes != int64(len(more)) {
		t.Fatalf("second pull: %+v", st)
	}
	if got, want := s.Checkpoint(f.bob.SS58(), ps.URL, page), int64(len(body)+len(more)); got != want {
		t.Errorf("checkpoint = %d, want %d", got, want)
	}

	// Nothing new: 416, nothing imported.
	st, err = s.SyncMiner(ctx, f.bob.SS58(), ps.URL, []int64{page})
	if err != nil {
		t.Fatal(err)
	}
	if st.Empty != 1 || st.Imported != 0 || st.Lines != 0 {
		t.Fatalf("third pull: %+v", st)
	}
	if n := f.stored(); n != 13 {
		t.Errorf("stored %d receipts, want 13", n)
	}
	r, err := f.db.GetReceipt(ctx, "WorkInterval", "00000000-0000-4000-8000-000000000003")
	if err != nil {
		t.Fatal(err)
	}
	if r.MinerSignature == "" || r.ValidatorHotkey != f.alice.SS58() || r.MinerHotkey != f.bob.SS58() {
		t.Errorf("stored interval receipt = %+v", r)
	}
	// The stored row gives back the served line, byte for byte (what a miner re-serving it,
	// or a validator re-verifying it, needs).
	raw := fmt.Sprintf(`{"payload":%s,"validator_signature":%q,"miner_signature":%q}`, r.Payload, r.ValidatorSignature, r.MinerSignature)
	dec, err := protocol.DecodeReceipt([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	enc, err := protocol.Encode(dec)
	if err != nil {
		t.Fatal(err)
	}
	if served := bytes.Split(body, []byte("\n"))[2]; !bytes.Equal(enc, served) {
		t.Errorf("stored receipt re-encodes to\n%s\nserved line was\n%s", enc, served)
	}
}

func TestPartialLastLineLeftForLater(t *testing.T) {
	f := newFixture(t)
	ps := newPageServer(t)
	whole := f.good(3)
	last := bytes.LastIndexByte(whole[:len(whole)-1], '\n') + 1
	cut := last + (len(whole)-last)/2
	ps.set(page, whole[:cut])
	s := f.syncer()

	st, err := s.SyncMiner(t.Context(), f.bob.SS58(), ps.URL, []int64{page})
	if err != nil {
		t.Fatal(err)
	}
	if st.Imported != 2 || st.RejectedTotal() != 0 {
		t.Fatalf("first pull: %+v", st)
	}
	if got := s.Checkpoint(f.bob.SS58(), ps.URL, page); got != int64(last) {
		t.Fatalf("checkpoint = %d, want %d (after the last complete line)", got, last)
	}
	ps.set(page, whole)
	st, err = s.SyncMiner(t.Context(), f.bob.SS58(), ps.URL, []int64{page})
	if err != nil {
		t.Fatal(err)
	}
	if st.Imported != 1 || st.RejectedTotal() != 0 || ps.lastRange() != fmt.Sprintf("bytes=%d-", last) {
		t.Fatalf("second pull: %+v, Range %q", st, ps.lastRange())
	}
	if got := s.Checkpoint(f.bob.SS58(), ps.URL, page); got != int64(len(whole)) {
		t.Errorf("checkpoint = %d, want %d", got, len(whole))
	}
}

func TestRejectedLines(t *testing.T) {
	f := newFixture(t)
	ps := newPageServer(t)
	var body []byte
	body = append(body, f.good(2)...)

	// Forged validator signature: claims Alice, signed by Charlie.
	body = append(body, f.line(f.payload(f.alice, f.bob), f.charlie, f.bob)...)
	// Forged miner signature: Bob's receipt countersigned by Dave.
	body = append(body, f.line(f.payload(f.alice, f.bob), f.alice, f.dave)...)
	// Dave's receipt, validly signed, served by Bob.
	body = append(body, f.line(f.payload(f.alice, f.dave), f.alice, f.dave)...)
	// A validator the metagraph does not know, validly signed.
	body = append(body, f.line(f.payload(f.charlie, f.bob), f.charlie, f.bob)...)
	// Not countersigned.
	body = append(body, f.line(f.payload(f.alice, f.bob), f.alice, nil)...)
	// Not a receipt; a blank line (ignored); a malformed signature.
	body = append(body, "{\"payload\": 1}\n\n"...)
	bad := f.line(f.payload(f.alice, f.bob), f.alice, f.bob)
	bad = bytes.Replace(bad, []byte(`"miner_signature":"0x`), []byte(`"miner_signature":"0xzz`), 1)
	body = append(body, bad...)
	body = append(body, f.good(2)...)
	ps.set(page, body)

	s := f.syncer()
	st, err := s.SyncMiner(t.Context(), f.bob.SS58(), ps.URL, []int64{page})
	if err != nil {
		t.Fatal(err)
	}
	want := map[Reason]int{
		ReasonBadValidatorSignature: 1, ReasonBadMinerSignature: 2, ReasonWrongMiner: 1,
		ReasonUnknownValidator: 1, ReasonNoMinerSignature: 1, ReasonMalformed: 1,
	}
	if st.Imported != 4 || st.Lines != 11 || fmt.Sprint(st.Rejected) != fmt.Sprint(want) {
		t.Fatalf("stats %+v, want 4 imported and rejected %v", st, want)
	}
	if n := f.stored(); n != 4 {
		t.Errorf("stored %d receipts, want 4", n)
	}
	if got := s.Checkpoint(f.bob.SS58(), ps.URL, page); got != int64(len(body)) {
		t.Errorf("checkpoint = %d, want %d: rejected lines are not read again", got, len(body))
	}
}

func TestOversizedPageRefused(t *testing.T) {
	f := newFixture(t)
	ps := newPageServer(t)
	body := f.good(4)
	ps.set(page, body)
	s := f.syncer(func(c *Config) { c.MaxPageBytes = int64(len(body)) - 1 })

	st, err := s.SyncMiner(t.Context(), f.bob.SS58(), ps.URL, []int64{page})
	if !errors.Is(err, ErrPageTooLarge) {
		t.Fatalf("err = %v, want ErrPageTooLarge", err)
	}
	if st.Imported != 0 || st.Failed != 1 || s.Checkpoint(f.bob.SS58(), ps.URL, page) != 0 || f.stored() != 0 {
		t.Fatalf("stats %+v, checkpoint %d", st, s.Checkpoint(f.bob.SS58(), ps.URL, page))
	}

	// The bound is on the page, not on one response: a tail that takes it over is refused too.
	s = f.syncer(func(c *Config) { c.MaxPageBytes = int64(len(body)) + 10 })
	if _, err := s.SyncMiner(t.Context(), f.bob.SS58(), ps.URL, []int64{page}); err != nil {
		t.Fatal(err)
	}
	ps.appendTo(page, f.good(1))
	if _, err := s.SyncMiner(t.Context(), f.bob.SS58(), ps.URL, []int64{page}); !errors.Is(err, ErrPageTooLarge) {
		t.Fatalf("tail: err = %v, want ErrPageTooLarge", err)
	}
	if got := s.Checkpoint(f.bob.SS58(), ps.URL, page); got != int64(len(body)) {
		t.Errorf("checkpoint = %d, want %d", got, len(body))
	}
}

func TestMissingPageIsEmpty(t *testing.T) {
	f := newFixture(t)
	ps := newPageServer(t)
	st, err := f.syncer().SyncMiner(t.Context(), f.bob.SS58(), ps.URL, []int64{page, page + 1})
	if err != nil {
		t.Fatal(err)
	}
	if st.Pages != 2 || st.Empty != 2 || st.Failed != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestDuplicatesNotCountedTwice(t *testing.T) {
	f := newFixture(t)
	ps := newPageServer(t)
	body := f.good(5)
	ps.set(page, body)

	// The validator keeps its own copies (no miner signature) of two receipts: one with the
	// validator signature the page carries, which the pulled copy completes, and one signed
	// again (sr25519 signatures are randomised), which stays as it is: the pulled copy is a
	// duplicate.
	lines := bytes.Split(body, []byte("\n"))
	own := func(line []byte, resign bool) store.Receipt {
		r, err := protocol.DecodeReceipt(line)
		if err != nil {
			t.Fatal(err)
		}
		h := r.Payload.Header()
		sig := r.ValidatorSignature
		if resign {
			sig = f.alice.Sign(r.Payload.BlobForSigning()).Hex()
		}
		rec := store.Receipt{Type: string(r.Payload.ReceiptType()), Seq: protocol.ReceiptSeq(r.Payload), JobUUID: h.JobUUID,
			ValidatorHotkey: h.ValidatorHotkey, MinerHotkey: h.MinerHotkey, Timestamp: h.Timestamp.Time,
			Payload: []byte(`{}`), ValidatorSignature: sig}
		if _, err := f.db.InsertReceipt(t.Context(), rec); err != nil {
			t.Fatal(err)
		}
		return rec
	}
	completed, kept := own(lines[0], false), own(lines[2], true) // both signed by Alice

	st, err := f.syncer().SyncMiner(t.Context(), f.bob.SS58(), ps.URL, []int64{page})
	if err != nil {
		t.Fatal(err)
	}
	if st.Imported != 4 || st.Duplicates != 1 {
		t.Fatalf("stats %+v", st)
	}
	if got, err := f.db.GetReceipt(t.Context(), completed.Type, completed.JobUUID); err != nil || got.MinerSignature == "" {
		t.Errorf("own copy not completed: %+v, %v", got, err)
	}
	if got, err := f.db.GetReceipt(t.Context(), kept.Type, kept.JobUUID); err != nil || got.MinerSignature != "" ||
		got.ValidatorSignature != kept.ValidatorSignature {
		t.Errorf("own copy replaced: %+v, %v", got, err)
	}

	// A restarted validator (a new Syncer, no checkpoints) reads the page again: nothing is
	// stored twice.
	st, err = f.syncer().SyncMiner(t.Context(), f.bob.SS58(), ps.URL, []int64{page})
	if err != nil {
		t.Fatal(err)
	}
	if st.Imported != 0 || st.Duplicates != 5 || f.stored() != 5 {
		t.Fatalf("after restart: %+v, stored %d", st, f.stored())
	}
}

// Each interval of a job is its own receipt (store key (type, job, seq)).
func TestWorkIntervalsOfOneJob(t *testing.T) {
	f := newFixture(t)
	ps := newPageServer(t)
	ts := protocol.NewTimestamp(time.Date(2026, 1, 21, 13, 0, 0, 0, time.UTC))
	var body []byte
	for i := range 3 {
		p := protocol.WorkIntervalReceiptPayload{JobUUID: "00000000-0000-4000-8000-00000000abcd", MinerHotkey: f.bob.SS58(),
			ValidatorHotkey: f.eve.SS58(), Timestamp: ts, ExecutorClass: protocol.ExecutorClassAlwaysOnTest,
			IntervalIndex: i, IntervalStart: ts, IntervalEnd: ts, WorkedSeconds: 600}
		body = append(body, f.line(p, f.eve, f.bob)...)
	}
	ps.set(page, body)
	st, err := f.syncer().SyncMiner(t.Context(), f.bob.SS58(), ps.URL, []int64{page})
	if err != nil || st.Imported != 3 || f.stored() != 3 {
		t.Fatalf("stats %+v, err %v, stored %d", st, err, f.stored())
	}
}

func TestServerIgnoringRange(t *testing.T) {
	f := newFixture(t)
	ps := newPageServer(t)
	body := f.good(3)
	ps.set(page, body)
	s := f.syncer()
	if _, err := s.SyncMiner(t.Context(), f.bob.SS58(), ps.URL, []int64{page}); err != nil {
		t.Fatal(err)
	}
	ps.ignoreRange = true
	ps.appendTo(page, f.good(2))
	st, err := s.SyncMiner(t.Context(), f.bob.SS58(), ps.URL, []int64{page})
	if err != nil {
		t.Fatal(err)
	}
	if st.Imported != 2 || st.Lines != 2 || st.Duplicates != 0 {
		t.Fatalf("stats %+v: the first checkpoint bytes of a 200 must be skipped", st)
	}
}

func TestShrunkPageReadAgain(t *testing.T) {
	f := newFixture(t)
	ps := newPageServer(t)
	ps.set(page, f.good(4))
	s := f.syncer()
	if _, err := s.SyncMiner(t.Context(), f.bob.SS58(), ps.URL, []int64{page}); err != nil {
		t.Fatal(err)
	}
	// The miner lost its page and starts it again, shorter: 416 with a smaller total.
	fresh := f.good(2)
	ps.set(page, fresh)
	st, err := s.SyncMiner(t.Context(), f.bob.SS58(), ps.URL, []int64{page})
	if err != nil {
		t.Fatal(err)
	}
	if st.Imported != 2 {
		t.Fatalf("stats %+v", st)
	}
	if got := s.Checkpoint(f.bob.SS58(), ps.URL, page); got != int64(len(fresh)) {
		t.Errorf("checkpoint = %d, want %d", got, len(fresh))
	}
}

func TestStatusErrors(t *testing.T) {
	f := newFixture(t)
	ps := newPageServer(t)
	for _, status := range []int{http.StatusFound, http.StatusInternalServerError} {
		ps.status = status
		st, err := f.syncer().SyncMiner(t.Context(), f.bob.SS58(), ps.URL, []int64{page})
		if err == nil || !strings.Contains(err.Error(), strconv.Itoa(status)) || st.Failed != 1 {
			t.Errorf("status %d: err %v, stats %+v", status, err, st)
		}
	}
}

func TestEgressPolicy(t *testing.T) {
	f := newFixture(t)
	ps := newPageServer(t)
	ps.set(page, f.good(1))
	s := f.syncer(func(c *Config) { c.Egress = egress.Policy{} })
	_, err := s.SyncMiner(t.Context(), f.bob.SS58(), ps.URL, []int64{page})
	if !egress.IsBlocked(err) {
		t.Fatalf("err = %v, want a dial refused by the egress policy", err)
	}
	if _, err := s.SyncMiner(t.Context(), f.bob.SS58(), "ftp://example.com", []int64{page}); err == nil {
		t.Error("an ftp:// axon was accepted")
	}
}

func TestSyncAll(t *testing.T) {
	f := newFixture(t)
	now := time.Date(2026, 1, 21, 13, 18, 47, 0, time.UTC)
	active := ActivePages(now)
	if len(active) != protocol.ReceiptActivePages || active[len(active)-1] != protocol.ReceiptPage(now) {
		t.Fatalf("ActivePages = %v", active)
	}
	bobSrv, daveSrv := newPageServer(t), newPageServer(t)
	bobSrv.set(active[0], f.good(2))
	bobSrv.set(active[1], f.good(3))
	bobSrv.set(active[0]-1, f.good(1)) // closed, but never pulled by this process: caught up
	var dave []byte
	for range 4 {
		dave = append(dave, f.line(f.payload(f.eve, f.dave), f.eve, f.dave)...)
	}
	daveSrv.set(active[1], dave)
	s := f.syncer(func(c *Config) { c.Now = func() time.Time { return now }; c.Concurrency = 1 })

	miners := []Miner{{f.bob.SS58(), bobSrv.URL}, {f.dave.SS58(), daveSrv.URL}, {f.charlie.SS58(), "http://127.0.0.1:1"}}
	st, err := s.SyncAll(context.Background(), miners)
	if err == nil || !strings.Contains(err.Error(), f.charlie.SS58()) {
		t.Errorf("err = %v, want the unreachable miner's error", err)
	}
	// A first pull reads two hours (25 pages) of each miner: 6 receipts of Bob's, 4 of Dave's;
	// each of Charlie's 25 pages fails.
	if st.Imported != 10 || st.Failed != 25 || st.Pages != 50 || st.Empty != 46 {
		t.Fatalf("first pull: stats %+v", st)
	}
	// Five minutes later only the pages that may have grown are read from Bob and Dave: the
	// two that were active and the new one; Charlie, never pulled, is still caught up on.
	now = now.Add(protocol.ReceiptPageDuration)
	bobSrv.set(active[1]+1, f.good(1))
	st, _ = s.SyncAll(context.Background(), miners)
	if st.Imported != 1 || st.Failed != 25 || st.Pages != 6 {
		t.Fatalf("second pull: stats %+v", st)
	}
}

// TestSyncAllCatchesUpAfterAGap: receipts a miner wrote while its pulls failed, on pages that
// stopped being active before it answered again, are still read once it does.
func TestSyncAllCatchesUpAfterAGap(t *testing.T) {
	f := newFixture(t)
	now := time.Date(2026, 1, 21, 13, 18, 47, 0, time.UTC)
	srv := newPageServer(t)
	s := f.syncer(func(c *Config) { c.Now = func() time.Time { return now } })
	miners := []Miner{{f.bob.SS58(), srv.URL}}
	if _, err := s.SyncAll(context.Background(), miners); err != nil {
		t.Fatal(err)
	}
	srv.mu.Lock()
	srv.status = http.StatusServiceUnavailable
	srv.mu.Unlock()
	gap := protocol.ReceiptPage(now) + 2
	for range 6 { // half an hour of failed pulls
		now = now.Add(protocol.ReceiptPageDuration)
		if _, err := s.SyncAll(context.Background(), miners); err == nil {
			t.Fatal("a pull from a failing miner succeeded")
		}
	}
	srv.set(gap, f.good(3)) // written while unreachable; inactive by now
	srv.mu.Lock()
	srv.status = 0
	srv.mu.Unlock()
	st, err := s.SyncAll(context.Background(), miners)
	if err != nil || st.Imported != 3 {
		t.Fatalf("after the gap: %+v, %v; want the 3 receipts of page %d", st, err, gap)
	}
}

// batchStore is a BatchStore over the SQLite store, as store.DB might implement it.
type batchStore struct {
	*store.DB
	batches int
	fail    error
}

func (b *batchStore) InsertReceipts(ctx context.Context, rs []store.Receipt) (int, error) {
	if b.fail != nil {
		return 0, b.fail
	}
	b.batches++
	n := 0
	for _, r := range rs {
		ok, err := b.InsertReceipt(ctx, r)
		if err != nil {
			return 0, err
		}
		if ok {
			n++
		}
	}
	return n, nil
}

func TestBatchStore(t *testing.T) {
	f := newFixture(t)
	ps := newPageServer(t)
	body := f.good(verifyChunk + 3)
	ps.set(page, body)
	bs := &batchStore{DB: f.db}
	s := f.syncer(func(c *Config) { c.Store = bs })
	st, err := s.SyncMiner(t.Context(), f.bob.SS58(), ps.URL, []int64{page})
	if err != nil {
		t.Fatal(err)
	}
	if st.Imported != verifyChunk+3 || bs.batches != 2 {
		t.Fatalf("stats %+v, %d batches", st, bs.batches)
	}
	st, err = f.syncer(func(c *Config) { c.Store = bs }).SyncMiner(t.Context(), f.bob.SS58(), ps.URL, []int64{page})
	if err != nil || st.Duplicates != verifyChunk+3 || st.Imported != 0 {
		t.Fatalf("again: stats %+v, err %v", st, err)
	}

	// A store failure fails the page and leaves the checkpoint where it was.
	ps.appendTo(page, f.good(2))
	bs.fail = errors.New("disk full")
	if _, err := s.SyncMiner(t.Context(), f.bob.SS58(), ps.URL, []int64{page}); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("err = %v", err)
	}
	if got := s.Checkpoint(f.bob.SS58(), ps.URL, page); got != int64(len(body)) {
		t.Errorf("checkpoint = %d after a store failure, want %d", got, len(body))
	}
	// ErrInvalid: the chunk goes row by row.
	bs.fail = store.ErrInvalid
	st, err = s.SyncMiner(t.Context(), f.bob.SS58(), ps.URL, []int64{page})
	if err != nil || st.Imported != 2 {
		t.Fatalf("stats %+v, err %v", st, err)
	}
}

// TestCheckpointsRestored: a Syncer given the checkpoints another saved reads on from them
// with Range, as the first would have.
func TestCheckpointsRestored(t *testing.T) {
	f := newFixture(t)
	ps := newPageServer(t)
	body := f.good(10)
	ps.set(page, body)
	first := f.syncer()
	if _, err := first.SyncMiner(t.Context(), f.bob.SS58(), ps.URL, []int64{page}); err != nil {
		t.Fatal(err)
	}
	saved := first.Checkpoints()
	if len(saved) != 1 || saved[0].Bytes != int64(len(body)) || saved[0].Page != page {
		t.Fatalf("checkpoints %+v", saved)
	}
	more := f.good(2)
	ps.appendTo(page, more)
	again := f.syncer()
	again.Restore(append(saved, PageCheckpoint{Miner: "x", Base: "http://x", Page: 1, Bytes: -5}))
	st, err := again.SyncMiner(t.Context(), f.bob.SS58(), ps.URL, []int64{page})
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("bytes=%d-", len(body)); ps.lastRange() != want || st.Imported != 2 || st.Lines != 2 {
		t.Errorf("after the restore: Range %q (want %q), %+v", ps.lastRange(), want, st)
	}
	if got := again.Checkpoints(); len(got) != 1 {
		t.Errorf("a negative checkpoint was restored: %+v", got)
	}
}
