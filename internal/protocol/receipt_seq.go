package protocol

// ReceiptSeq tells apart receipts of one type for one job, as stores key them: a
// WorkInterval receipt's interval index, 0 for every other type (one per job).
func ReceiptSeq(p ReceiptPayload) int {
	switch w := p.(type) {
	case *WorkIntervalReceiptPayload:
		return w.IntervalIndex
	case WorkIntervalReceiptPayload:
		return w.IntervalIndex
	}
	return 0
}
