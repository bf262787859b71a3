-- Scoring sums the worked seconds of countersigned WorkInterval receipts per miner and
-- executor class (store.DB.WorkedSeconds). Both live in the payload JSON, and parsing every
-- payload each tempo costs about 3 s per million receipts; PostgreSQL cannot answer from an
-- expression index without reading the payload, so the two values become generated columns
-- (computed once, when a row is written; NULL for other receipt types), covered by a
-- partial index for an index-only scan. worked_seconds that is not a JSON number gives NULL,
-- and the value is bounded so that no payload can make an insert fail. Adding the columns
-- rewrites the table once. The query repeats the index's WHERE word for word; keep them in
-- step.

ALTER TABLE receipts
    ADD COLUMN IF NOT EXISTS work_class TEXT GENERATED ALWAYS AS (
        CASE WHEN receipt_type = 'WorkInterval' THEN payload::json ->> 'executor_class' END
    ) STORED,
    ADD COLUMN IF NOT EXISTS work_seconds BIGINT GENERATED ALWAYS AS (
        CASE WHEN receipt_type = 'WorkInterval' AND json_typeof(payload::json -> 'worked_seconds') = 'number'
            THEN trunc(least(greatest((payload::json ->> 'worked_seconds')::numeric, -1e15), 1e15))::bigint END
    ) STORED;

CREATE INDEX IF NOT EXISTS receipts_work ON receipts (timestamp, miner_hotkey, work_class, work_seconds)
    WHERE receipt_type = 'WorkInterval' AND miner_signature IS NOT NULL AND miner_signature <> '';
