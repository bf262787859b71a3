-- Scoring sums the worked seconds of countersigned WorkInterval receipts per miner and
-- executor class (store.DB.WorkedSeconds). Both live in the payload JSON: without this
-- index every tempo parses every payload (about 8 s per million receipts). The index holds
-- the two values, in miner and class order, for countersigned WorkInterval receipts only,
-- so the sum reads the index alone and needs no sort. The query repeats the index's WHERE
-- word for word, uses the same expressions and names the index (INDEXED BY); keep them in
-- step. A worked_seconds that is not a JSON number is NULL here, as on PostgreSQL.

CREATE INDEX IF NOT EXISTS receipts_work ON receipts (
    miner_hotkey,
    (payload ->> '$.executor_class'),
    timestamp,
    (CASE WHEN json_type(payload, '$.worked_seconds') IN ('integer', 'real') THEN payload ->> '$.worked_seconds' END)
) WHERE receipt_type = 'WorkInterval' AND miner_signature IS NOT NULL AND miner_signature <> '';
