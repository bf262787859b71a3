package protocol

import (
	"bytes"
	"fmt"
	"strconv"
	"time"
)

// Receipt transfer (protocol.md §7.3). A miner publishes the receipts it countersigns
// in pages of five minutes, served over plain HTTP at /receipts/{page}.jsonl: one
// [Receipt] per line, encoded as upstream's Receipt.model_dump_json() (that is,
// [Encode]), each line ending in "\n". A receipt lands in the page that is current
// when the miner stores it, page = floor(unix_time / 300), and a page only ever grows
// at its end, so a puller fetches a page once and then only its new bytes with
// "Range: bytes={length so far}-".

// ReceiptPageDuration is the time one receipts page covers (upstream's PAGE_TIME).
const ReceiptPageDuration = 5 * time.Minute

// ReceiptActivePages is how many of the newest pages a miner may still append to
// (upstream's N_ACTIVE_PAGES): pages up to ReceiptPage(now)-ReceiptActivePages are
// closed, and they are the ones upstream miners also publish gzipped.
const ReceiptActivePages = 2

const receiptPageSeconds = int64(ReceiptPageDuration / time.Second)

// ReceiptPage returns the number of the page that t falls in: floor(unix seconds / 300).
func ReceiptPage(t time.Time) int64 {
	s := t.Unix()
	p := s / receiptPageSeconds
	if s%receiptPageSeconds < 0 {
		p--
	}
	return p
}

// ReceiptPageStart returns the first instant of page; the page ends
// ReceiptPageDuration later (exclusive).
func ReceiptPageStart(page int64) time.Time {
	return time.Unix(page*receiptPageSeconds, 0).UTC()
}

// ReceiptPagePath returns the URL path a miner serves page at: "/receipts/{page}.jsonl".
func ReceiptPagePath(page int64) string {
	return "/receipts/" + strconv.FormatInt(page, 10) + ".jsonl"
}

// ParseReceiptLine decodes one line of a receipts page and checks it as upstream's
// transfer does: the receipt must carry a miner signature, and both the miner's and the
// validator's signatures must verify against the hotkeys in the payload. Surrounding
// whitespace (the line's "\n") is ignored. Whether the hotkeys are acceptable (the miner
// the page came from, a known validator) is left to the caller.
func ParseReceiptLine(line []byte) (Receipt, error) {
	r, err := DecodeReceipt(line)
	if err != nil {
		return Receipt{}, err
	}
	if r.MinerSignature == nil {
		return Receipt{}, fmt.Errorf("protocol: receipt line: %w: miner_signature is null", ErrNoSignature)
	}
	if err := r.VerifyMinerSignature(); err != nil {
		return Receipt{}, err
	}
	if err := r.VerifyValidatorSignature(); err != nil {
		return Receipt{}, err
	}
	return r, nil
}

// ReceiptLineError is a line of a receipts page that [ParseReceiptsPage] skipped.
type ReceiptLineError struct {
	Line int // 1-based line number within the data passed in
	Err  error
}

func (e *ReceiptLineError) Error() string {
	return fmt.Sprintf("receipts page line %d: %v", e.Line, e.Err)
}

func (e *ReceiptLineError) Unwrap() error { return e.Err }

// ParseReceiptsPage parses a receipts page, or the tail of one fetched with a Range
// request, line by line with [ParseReceiptLine]. Like upstream, a bad line is skipped
// and reported in lineErrs (in line order) while the other lines still count. Blank
// lines are ignored; a last line without its "\n" is parsed like the others.
func ParseReceiptsPage(data []byte) (receipts []Receipt, lineErrs []*ReceiptLineError) {
	for n := 1; len(data) > 0; n++ {
		line := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			data = nil
		}
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		r, err := ParseReceiptLine(line)
		if err != nil {
			lineErrs = append(lineErrs, &ReceiptLineError{Line: n, Err: err})
			continue
		}
		receipts = append(receipts, r)
	}
	return receipts, lineErrs
}
