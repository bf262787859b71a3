-- A role's small state that must outlive a restart but is not a job or a receipt (a
-- validator's benchmark results, manifests under the 2-hour rule, penalties, receipt
-- checkpoints): one JSON document per name.

CREATE TABLE IF NOT EXISTS state (
    name       TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);
