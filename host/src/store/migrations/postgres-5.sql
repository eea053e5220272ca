-- Version 5: when the retry an operator's decision on a conflict queued sent it
-- (store/conflicts.rs, `sent`). Decisions made before were stamped as they were made.
ALTER TABLE conflicts ADD COLUMN sent_at BIGINT;
UPDATE conflicts SET sent_at = resolved_at WHERE resolved_at IS NOT NULL;
CREATE INDEX conflicts_unsent ON conflicts (twin_id) WHERE sent_at IS NULL;
