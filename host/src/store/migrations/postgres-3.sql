-- Version 3: each outbox message's twin beside its body, which SQLite stores compressed
-- (store/outbox.rs). Messages stored before have their twin read from their text.
ALTER TABLE outbox ADD COLUMN twin_id TEXT;
