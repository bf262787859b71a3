-- A job has one receipt of each upstream type, but one WorkInterval receipt per 10-minute
-- interval: the key gains seq (the interval's index; 0 for every other type), so a job's
-- second interval is no longer dropped as a duplicate of its first.

ALTER TABLE receipts ADD COLUMN IF NOT EXISTS seq INTEGER NOT NULL DEFAULT 0;
ALTER TABLE receipts DROP CONSTRAINT IF EXISTS receipts_pkey;
ALTER TABLE receipts ADD PRIMARY KEY (receipt_type, job_uuid, seq);
