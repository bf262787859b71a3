-- Jobs and receipts, PostgreSQL variant: the same tables as 0001_init.sqlite.sql with
-- timestamptz times. JSON is kept as text, byte for byte (jsonb would reorder it).

CREATE TABLE jobs (
    uuid             TEXT NOT NULL PRIMARY KEY,
    role             TEXT NOT NULL CHECK (role IN ('validator', 'miner')),
    validator_hotkey TEXT NOT NULL,
    miner_hotkey     TEXT NOT NULL,
    executor_class   TEXT NOT NULL,
    docker_image     TEXT NOT NULL,
    status           TEXT NOT NULL,
    spec             TEXT NOT NULL,
    result           TEXT,
    created_at       TIMESTAMPTZ NOT NULL,
    updated_at       TIMESTAMPTZ NOT NULL
);

CREATE INDEX jobs_role_status_created ON jobs (role, status, created_at);
CREATE INDEX jobs_created ON jobs (created_at);

CREATE TABLE receipts (
    receipt_type        TEXT NOT NULL,
    job_uuid            TEXT NOT NULL,
    validator_hotkey    TEXT NOT NULL,
    miner_hotkey        TEXT NOT NULL,
    timestamp           TIMESTAMPTZ NOT NULL,
    payload             TEXT NOT NULL,
    validator_signature TEXT NOT NULL,
    miner_signature     TEXT,
    created_at          TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (receipt_type, job_uuid)
);

CREATE INDEX receipts_timestamp ON receipts (timestamp);
CREATE INDEX receipts_miner_timestamp ON receipts (miner_hotkey, timestamp);
