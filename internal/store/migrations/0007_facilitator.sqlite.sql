-- The facilitator's state: a double-entry credit ledger, users' API keys, and the jobs users
-- submit with their status events. Every statement is IF NOT EXISTS so that a database
-- rolled back to an earlier schema version in tests can apply it again.
--
-- Ledger: each transfer is two append-only entries under one key, the debit (amount < 0)
-- and the credit (amount > 0); the two partial unique indexes allow one of each per key, which
-- is what makes a transfer idempotent. ledger_balances holds each account's running sum so
-- that the "no negative user balance" check is one guarded UPDATE, not a SUM over history.

CREATE TABLE IF NOT EXISTS ledger_entries (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    tx_key     TEXT NOT NULL,
    kind       TEXT NOT NULL,
    account    TEXT NOT NULL,
    amount     INTEGER NOT NULL CHECK (amount <> 0),
    job_uuid   TEXT NOT NULL DEFAULT '',
    note       TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL
) STRICT;

CREATE UNIQUE INDEX IF NOT EXISTS ledger_entries_debit ON ledger_entries (tx_key) WHERE amount < 0;
CREATE UNIQUE INDEX IF NOT EXISTS ledger_entries_credit ON ledger_entries (tx_key) WHERE amount > 0;
CREATE INDEX IF NOT EXISTS ledger_entries_account ON ledger_entries (account, id);
CREATE INDEX IF NOT EXISTS ledger_entries_job ON ledger_entries (job_uuid, id);

CREATE TABLE IF NOT EXISTS ledger_balances (
    account    TEXT NOT NULL PRIMARY KEY,
    balance    INTEGER NOT NULL,
    updated_at TEXT NOT NULL
) STRICT;

-- API keys: only the SHA-256 of the secret is kept, as lowercase hex.
CREATE TABLE IF NOT EXISTS api_keys (
    id          TEXT NOT NULL PRIMARY KEY,
    user_hotkey TEXT NOT NULL,
    name        TEXT NOT NULL,
    key_hash    TEXT NOT NULL UNIQUE,
    created_at  TEXT NOT NULL,
    revoked_at  TEXT
) STRICT;

CREATE INDEX IF NOT EXISTS api_keys_user ON api_keys (user_hotkey, created_at);

-- Jobs as the facilitator tracks them. An empty idempotency_key means none, hence the
-- partial unique index.
CREATE TABLE IF NOT EXISTS fac_jobs (
    uuid             TEXT NOT NULL PRIMARY KEY,
    user_hotkey      TEXT NOT NULL,
    executor_class   TEXT NOT NULL,
    status           TEXT NOT NULL,
    spec             TEXT NOT NULL,
    target_validator TEXT NOT NULL DEFAULT '',
    validator        TEXT NOT NULL DEFAULT '',
    dispatcher       TEXT NOT NULL DEFAULT '',
    idempotency_key  TEXT NOT NULL DEFAULT '',
    price            INTEGER NOT NULL,
    max_cost         INTEGER NOT NULL,
    charged          INTEGER NOT NULL DEFAULT 0,
    result           TEXT,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    dispatched_at    TEXT
) STRICT;

CREATE INDEX IF NOT EXISTS fac_jobs_user_created ON fac_jobs (user_hotkey, created_at, uuid);
CREATE INDEX IF NOT EXISTS fac_jobs_status_class_created ON fac_jobs (status, executor_class, created_at, uuid);
CREATE UNIQUE INDEX IF NOT EXISTS fac_jobs_idempotency ON fac_jobs (user_hotkey, idempotency_key) WHERE idempotency_key <> '';

-- A job's status history, upstream's JobStatus: one row per (job, status), numbered in
-- arrival order.
CREATE TABLE IF NOT EXISTS fac_job_events (
    job_uuid TEXT NOT NULL REFERENCES fac_jobs (uuid),
    seq      INTEGER NOT NULL,
    status   TEXT NOT NULL,
    at       TEXT NOT NULL,
    detail   TEXT,
    PRIMARY KEY (job_uuid, seq),
    UNIQUE (job_uuid, status)
) STRICT;
