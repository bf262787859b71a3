package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/computehorde/horde/internal/keys"
)

func TestReceiptPageNumbers(t *testing.T) {
	for _, tc := range []struct {
		t    time.Time
		want int64
	}{
		{time.Unix(0, 0), 0},
		{time.Unix(299, 999999999), 0},
		{time.Unix(300, 0), 1},
		{time.Date(2026, 1, 21, 13, 18, 47, 0, time.UTC), 1769001527 / 300},
		{time.Date(2026, 1, 21, 15, 18, 47, 0, time.FixedZone("EET", 2*3600)), 1769001527 / 300},
		{time.Unix(-1, 0), -1},
	} {
		if got := ReceiptPage(tc.t); got != tc.want {
			t.Errorf("ReceiptPage(%v) = %d, want %d", tc.t, got, tc.want)
		}
		if start := ReceiptPageStart(tc.want); tc.t.Before(start) || !tc.t.Before(start.Add(ReceiptPageDuration)) {
			t.Errorf("%v is outside page %d [%v, +5m)", tc.t, tc.want, start)
		}
	}
	if got := ReceiptPagePath(5896671); got != "/receipts/5896671.jsonl" {
		t.Errorf("ReceiptPagePath = %q", got)
	}
}

// Receipts exactly as upstream's pydantic emits them (Receipt.model_dump_json(), which is
// what upstream's page files hold, one per line) parse, verify, and re-encode to the same
// bytes.
func TestParseReceiptLineUpstreamBytes(t *testing.T) {
	vf := loadVectors(t)
	var lines [][]byte
	for _, m := range vf.Messages {
		var msg struct {
			Receipts []json.RawMessage `json:"receipts"`
		}
		if err := json.Unmarshal([]byte(m.JSON), &msg); err != nil {
			continue
		}
		for _, r := range msg.Receipts {
			lines = append(lines, r)
		}
	}
	if len(lines) == 0 {
		t.Fatal("no receipts in the upstream vectors")
	}
	for _, line := range lines {
		r, err := ParseReceiptLine(append(bytes.Clone(line), '\n'))
		if err != nil {
			t.Errorf("ParseReceiptLine(%s): %v", line, err)
			continue
		}
		enc, err := Encode(r)
		if err != nil || !bytes.Equal(enc, line) {
			t.Errorf("re-encoded line differs (err %v)\n got: %s\nwant: %s", err, enc, line)
		}
	}
}

func signedReceipt(t *testing.T, validator, miner *keys.Keypair, p ReceiptPayload) []byte {
	t.Helper()
	sig := miner.Sign(p.BlobForSigning()).Hex()
	line, err := Encode(Receipt{Payload: p, ValidatorSignature: validator.Sign(p.BlobForSigning()).Hex(), MinerSignature: &sig})
	if err != nil {
		t.Fatal(err)
	}
	return line
}

func TestParseReceiptsPage(t *testing.T) {
	alice, err := keys.FromURI("//Alice")
	if err != nil {
		t.Fatal(err)
	}
	bob, err := keys.FromURI("//Bob")
	if err != nil {
		t.Fatal(err)
	}
	ts := NewTimestamp(time.Date(2026, 1, 21, 13, 18, 47, 123456000, time.UTC))
	started := JobStartedReceiptPayload{JobUUID: "7a4c0f5e-2d3b-4e8a-9c61-0b5f3e2d1a94", MinerHotkey: bob.SS58(),
		ValidatorHotkey: alice.SS58(), Timestamp: ts, ExecutorClass: ExecutorClassAlwaysOnTest, IsOrganic: true, TTL: 7}
	finished := JobFinishedReceiptPayload{JobUUID: started.JobUUID, MinerHotkey: bob.SS58(), ValidatorHotkey: alice.SS58(),
		Timestamp: ts, TimeStarted: ts, TimeTookUS: 1500000, ScoreStr: FormatScore(12), BlockNumbers: []int{7, 8}}

	good1 := signedReceipt(t, alice, bob, started)
	good2 := signedReceipt(t, alice, bob, finished)
	swapped := signedReceipt(t, bob, alice, started) // signatures by the wrong keys
	unsigned, err := Encode(Receipt{Payload: started, ValidatorSignature: alice.Sign(started.BlobForSigning()).Hex()})
	if err != nil {
		t.Fatal(err)
	}
	page := bytes.Join([][]byte{
		good1,
		good2[len(good2)/2:], // the tail of a line, as a misaligned range would give
		swapped,
		unsigned,
		[]byte(""), // a blank line is ignored
		[]byte(`{"payload":{"receipt_type":"Unknown"}}`),
		good2, // last line, without its "\n"
	}, []byte("\n"))

	got, bad := ParseReceiptsPage(page)
	if len(got) != 2 || got[0].Payload.ReceiptType() != ReceiptTypeJobStarted || got[1].Payload.ReceiptType() != ReceiptTypeJobFinished {
		t.Fatalf("receipts = %+v", got)
	}
	if p, ok := got[1].Payload.(JobFinishedReceiptPayload); !ok || len(p.BlockNumbers) != 2 || p.ScoreStr != "12.000000" {
		t.Errorf("finished payload = %+v", got[1].Payload)
	}
	var lines []int
	for _, e := range bad {
		lines = append(lines, e.Line)
	}
	if want := []int{2, 3, 4, 6}; !slices.Equal(lines, want) {
		t.Errorf("bad lines %v, want %v (%v)", lines, want, bad)
	}
	if len(bad) == 4 {
		if !errors.Is(bad[1], keys.ErrBadSignature) {
			t.Errorf("wrong signer: %v, want keys.ErrBadSignature", bad[1])
		}
		if !errors.Is(bad[2], ErrNoSignature) {
			t.Errorf("unsigned: %v, want ErrNoSignature", bad[2])
		}
		if !strings.Contains(bad[0].Error(), "line 2") {
			t.Errorf("error %q does not name its line", bad[0])
		}
	}
	if got, bad := ParseReceiptsPage(nil); len(got) != 0 || len(bad) != 0 {
		t.Errorf("empty page: %v, %v", got, bad)
	}
}
