-- A job has one receipt of each upstream type, but one WorkInterval receipt per 10-minute
-- interval: the key gains seq (the interval's index; 0 for every other type), so a job's
-- second interval is no longer dropped as a duplicate of its first. SQLite cannot change a
-- primary key in place, hence the copy.

CREATE TABLE receipts_new (
    receipt_type        TEXT NOT NULL,
    job_uuid            TEXT NOT NULL,
    seq                 INTEGER NOT NULL DEFAULT 0,
    validator_hotkey    TEXT NOT NULL,
    miner_hotkey        TEXT NOT NULL,
    timestamp           TEXT NOT NULL,
    payload             TEXT NOT NULL,
    validator_signature TEXT NOT NULL,
    miner_signature     TEXT,
    created_at          TEXT NOT NULL,
    PRIMARY KEY (receipt_type, job_uuid, seq)
) STRICT;

INSERT INTO receipts_new (receipt_type, job_uuid, seq, validator_hotkey, miner_hotkey, timestamp, payload,
    validator_signature, miner_signature, created_at)
SELECT receipt_type, job_uuid, 0, validator_hotkey, miner_hotkey, timestamp, payload,
    validator_signature, miner_signature, created_at FROM receipts;

DROP TABLE receipts;
ALTER TABLE receipts_new RENAME TO receipts;

CREATE INDEX receipts_timestamp ON receipts (timestamp);
CREATE INDEX receipts_miner_timestamp ON receipts (miner_hotkey, timestamp);
CREATE INDEX receipts_created_at ON receipts (created_at);
