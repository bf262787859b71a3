-- Receipts pages (GET /receipts/{page}.jsonl) select receipts by the time they were stored:
-- without an index every page render reads the whole table.

CREATE INDEX IF NOT EXISTS receipts_created_at ON receipts (created_at);
