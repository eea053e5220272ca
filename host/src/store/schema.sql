-- A twin: one local issue synced with one remote issue over one connection.
--
-- Its JSON columns, and those of `issue_stamps`, are stored compressed (zstd with the bodies'
-- dictionary, a BLOB) as events' bodies are: every event of the twin rewrites them
-- (`bodies.rs`, `twins.rs`). Text from earlier versions reads as it is.
CREATE TABLE IF NOT EXISTS twins (
    twin_id TEXT PRIMARY KEY,        -- the same on both nodes: chosen by the side that exalated
    connection TEXT NOT NULL,
    local_key TEXT NOT NULL,
    remote_key TEXT,                 -- unknown until the other side has sent something
    sent_seq INTEGER NOT NULL DEFAULT 0,  -- number of the last message sent for this twin
    exalate_replica TEXT,            -- JSON: the first replica this side sent
    last_sent TEXT,                  -- JSON: the last replica this side sent
    sent_stamps TEXT,                -- JSON: field -> stamp, as last sent
    last_received TEXT,              -- JSON: the last replica this side received
    local_base TEXT,                 -- JSON: the local issue after the last sync (merge base)
    remote_stamps TEXT,              -- JSON: field -> stamp, of the last replica received
    created_at INTEGER NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS twins_by_local ON twins (connection, local_key);
-- An issue's twins on every connection (a change passes on to each of them).
CREATE INDEX IF NOT EXISTS twins_by_issue ON twins (local_key);
CREATE INDEX IF NOT EXISTS twins_by_remote ON twins (connection, remote_key);

-- The stamp of each field of a local issue: which write its value comes from (JSON: field ->
-- stamp). Per issue, not per twin: an issue synced on two connections passes on the stamps it
-- received, which is what keeps last-writer-wins consistent along a chain of nodes.
CREATE TABLE IF NOT EXISTS issue_stamps (
    local_key TEXT PRIMARY KEY,
    stamps TEXT NOT NULL,
    stamped TEXT,                    -- JSON: the issue as its stamps describe it; a field that
                                     -- differs from it now was written here since
    stamped_by TEXT                  -- the twin (and processor) whose outgoing event for a local
                                     -- change wrote these last, having read the issue as
                                     -- `stamped`; NULL when anything else did
);

-- Which local comment is a copy of which remote one, per twin: a comment is never added
-- twice, and the other side recognises its own comments in our replicas.
CREATE TABLE IF NOT EXISTS comment_links (
    twin_id TEXT NOT NULL,
    local_id TEXT NOT NULL,
    remote_id TEXT NOT NULL,
    PRIMARY KEY (twin_id, local_id)
);
CREATE INDEX IF NOT EXISTS comment_links_by_remote ON comment_links (twin_id, remote_id);

-- Fields changed on both sides, held for an operator (the hold-for-review policy).
CREATE TABLE IF NOT EXISTS conflicts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    twin_id TEXT NOT NULL,
    connection TEXT NOT NULL,
    field TEXT NOT NULL,
    local_value TEXT NOT NULL,
    remote_value TEXT NOT NULL,
    event_id TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    resolved_at INTEGER,
    resolution TEXT,                 -- local, remote, or converged
    sent_at INTEGER                  -- when the retry the decision queued sent it (local or
                                     -- remote); NULL until then
);
CREATE INDEX IF NOT EXISTS conflicts_open ON conflicts (twin_id, field) WHERE resolved_at IS NULL;

-- Twins that were unexalated: messages still on their way for them are ignored instead of
-- creating the issue again.
CREATE TABLE IF NOT EXISTS unexalated (
    twin_id TEXT PRIMARY KEY,
    connection TEXT NOT NULL,
    local_key TEXT NOT NULL,
    remote_key TEXT,
    at INTEGER NOT NULL
);

-- The sync queue. Events of one twin are processed in `seq` order; a failed event holds
-- back the later events of its twin, and only those.
--
-- The checks compare with `=` rather than `IN (...)`: SQLite evaluates a list of three or
-- more values by building a temporary table of it, on every insert and every change of
-- state (see `spell_out_event_checks` in `mod.rs`).
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,         -- event id; for incoming events the sender's message id
    direction TEXT NOT NULL
        CHECK (direction = 'outgoing' OR direction = 'incoming' OR direction = 'unexalate'),
    connection TEXT NOT NULL,
    twin_id TEXT NOT NULL,
    reason TEXT NOT NULL,
    hop INTEGER NOT NULL DEFAULT 0,
    message_seq INTEGER,             -- incoming: the sender's number for this twin
    state TEXT NOT NULL DEFAULT 'pending'
        CHECK (state = 'pending' OR state = 'failed' OR state = 'done' OR state = 'skipped'),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER,         -- ms since epoch; a transient failure waits until then
    error_kind TEXT,
    error TEXT,
    log TEXT,
    note TEXT,                       -- what processing did, for people
    created_at INTEGER NOT NULL,
    first_attempt_at INTEGER,
    last_attempt_at INTEGER
);
CREATE INDEX IF NOT EXISTS events_by_state ON events (state, seq);
-- Only the events still open: finding whether a twin has an earlier one stays cheap however
-- many done events the twin has.
CREATE INDEX IF NOT EXISTS events_open_by_twin ON events (twin_id, seq) WHERE state IN ('pending', 'failed');
-- The last message received per twin, for ordering and duplicates.
CREATE INDEX IF NOT EXISTS events_received_by_twin ON events (twin_id, message_seq) WHERE direction = 'incoming';

-- What an event carries that is written once: the message received, and what its processor
-- was given. Kept apart from the event's row, so that the event's changes of state rewrite a
-- row of a hundred bytes rather than these kilobytes (and the pages they overflow into).
-- Both are compressed (zstd, a BLOB) when written; text from earlier versions reads as it is
-- (`bodies.rs`).
CREATE TABLE IF NOT EXISTS event_bodies (
    seq INTEGER PRIMARY KEY,         -- the event's
    message TEXT,                    -- incoming: the message as received (JSON)
    input TEXT                       -- what the processor was given (JSON), stored before an
                                     -- incoming event writes to the tracker
);
CREATE TRIGGER IF NOT EXISTS event_bodies_go_with_their_event AFTER DELETE ON events
BEGIN
    DELETE FROM event_bodies WHERE seq = old.seq;
END;

-- Messages waiting for the other node's acknowledgement, in the order they were made.
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    connection TEXT NOT NULL,
    body TEXT NOT NULL,              -- JSON, compressed (a BLOB) as events' bodies are
    twin_id TEXT                     -- the message's; NULL in messages stored before it was
                                     -- kept (read from their text, which names it)
);
CREATE INDEX IF NOT EXISTS outbox_by_connection ON outbox (connection, seq);
-- Messages the other node refused for good (a 4xx other than 409): each is a sync error of
-- its twin (its event is failed), it stays in the outbox, and the twin's later messages wait
-- behind it; the connection's other twins go on.
CREATE TABLE IF NOT EXISTS outbox_held (
    id TEXT PRIMARY KEY,             -- the message's id (its event's id)
    connection TEXT NOT NULL,
    twin_id TEXT NOT NULL,
    reason TEXT NOT NULL,
    at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS outbox_held_by_twin ON outbox_held (connection, twin_id);

CREATE TABLE IF NOT EXISTS meta (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
