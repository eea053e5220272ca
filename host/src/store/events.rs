//! The sync queue: outgoing events (a local issue to send) and incoming events (a received
//! message to apply), processed in order per twin.

use anyhow::{Context, Result, anyhow, bail};
use serde::Serialize;

use super::bodies::{self, Packed};
use super::sql::{Dialect, Row, Sql, Value, args};

use crate::model::SyncReason;

/// Which way an event goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// A local issue changed (or a sync back was asked for): run the outgoing processor
    /// and send the replica.
    Outgoing,
    /// A message arrived: run the incoming processor and apply the result.
    Incoming,
    /// Stop syncing the twin: tell the other node, then forget the link.
    Unexalate,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Outgoing => "outgoing",
            Kind::Incoming => "incoming",
            Kind::Unexalate => "unexalate",
        }
    }
}

/// Where an event is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum State {
    /// Waiting to be processed (possibly after a transient failure, see `next_attempt_at`).
    Pending,
    /// A sync error: the twin's later events wait until an operator retries or skips it.
    Failed,
    Done,
    /// Not processed: dropped by an operator, or a received change superseded by a later
    /// message of its twin that carries it (see [`supersede`]); the note says which.
    Skipped,
}

/// A queued event.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    pub seq: i64,
    pub id: String,
    pub kind: Kind,
    pub connection: String,
    pub twin_id: String,
    pub reason: SyncReason,
    pub hop: u32,
    /// Incoming events: the message as received.
    pub message: Option<String>,
    pub state: State,
    pub attempts: i64,
    pub error_kind: Option<String>,
    pub error: Option<String>,
    pub log: Option<String>,
    /// What the processor was given (JSON), for `events replay`.
    pub input: Option<String>,
    pub note: Option<String>,
    pub created_at: i64,
    pub first_attempt_at: Option<i64>,
    pub last_attempt_at: Option<i64>,
    pub next_attempt_at: Option<i64>,
}

/// An event to queue.
pub struct NewEvent<'a> {
    pub id: &'a str,
    pub kind: Kind,
    pub connection: &'a str,
    pub twin_id: &'a str,
    pub reason: SyncReason,
    pub hop: u32,
    pub message_seq: Option<i64>,
    /// Incoming: the message as received, packed (see [`bodies::pack`]).
    pub message: Option<&'a Packed>,
}

/// Events with what they carry (see `event_bodies` in the schema).
const FROM_EVENTS: &str = "events LEFT JOIN event_bodies USING (seq)";

const COLUMNS: &str =
    "seq, id, direction, connection, twin_id, reason, hop, message, state, attempts,
    error_kind, error, log, note, created_at, first_attempt_at, last_attempt_at, next_attempt_at, input";

fn from_row(row: &dyn Row) -> Result<Event> {
    let text = |i: usize| row.get::<String>(i);
    Ok(Event {
        seq: row.get(0)?,
        id: row.get(1)?,
        kind: match text(2)?.as_str() {
            "outgoing" => Kind::Outgoing,
            "unexalate" => Kind::Unexalate,
            _ => Kind::Incoming,
        },
        connection: row.get(3)?,
        twin_id: row.get(4)?,
        reason: {
            let reason = text(5)?;
            SyncReason::parse(&reason)
                .ok_or_else(|| anyhow!("column 5: unknown reason `{reason}`"))?
        },
        hop: row.get(6)?,
        message: bodies::unpack(row.value(7)?).context("column 7")?,
        state: match text(8)?.as_str() {
            "pending" => State::Pending,
            "failed" => State::Failed,
            "done" => State::Done,
            _ => State::Skipped,
        },
        attempts: row.get(9)?,
        error_kind: row.get(10)?,
        error: row.get(11)?,
        log: row.get(12)?,
        note: row.get(13)?,
        created_at: row.get(14)?,
        first_attempt_at: row.get(15)?,
        last_attempt_at: row.get(16)?,
        next_attempt_at: row.get(17)?,
        input: bodies::unpack(row.value(18)?).context("column 18")?,
    })
}

/// Whether a new local change of this twin is already covered: its last open event is an
/// outgoing local change that has not started and waits behind another open event. That
/// event reads the issue when it runs, so it will send this change too. (Only the first
/// open event of a twin is ever being processed: one behind it has read nothing yet.)
pub fn local_change_waiting(db: &dyn Sql, twin_id: &str) -> Result<bool> {
    let rows: Vec<(String, String, String, i64)> = db.rows(
        "SELECT direction, reason, state, attempts FROM events
         WHERE twin_id = ?1 AND state IN ('pending', 'failed') ORDER BY seq DESC LIMIT 2",
        args![twin_id],
        |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)),
    )?;
    Ok(rows.len() == 2
        && matches!(&rows[0], (direction, reason, state, 0)
            if direction == "outgoing" && reason == "local-change" && state == "pending"))
}

/// A received local change that waits behind another open event of its twin: nothing has
/// read it yet (only the first open event of a twin is ever being processed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiting {
    pub seq: i64,
    pub id: String,
    pub hop: u32,
    pub message_seq: i64,
    pub created_at: i64,
    /// The message as received.
    pub message: String,
}

/// The last message received for a twin on a connection: its event, and whether that
/// event has not started and is a local change (then it may wait: see
/// [`incoming_waiting`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LastReceived {
    pub seq: i64,
    pub message_seq: i64,
    pub untouched_change: bool,
}

/// The last message received for a twin on a connection, if any: one indexed read, which
/// every received message makes to check its number.
pub fn last_received(
    db: &dyn Sql,
    connection: &str,
    twin_id: &str,
) -> Result<Option<LastReceived>> {
    db.row(
        "SELECT seq, message_seq, state, attempts, reason FROM events
         WHERE twin_id = ?1 AND direction = 'incoming' AND message_seq IS NOT NULL
           AND connection = ?2
         ORDER BY message_seq DESC LIMIT 1",
        args![twin_id, connection],
        |row| {
            Ok(LastReceived {
                seq: row.get(0)?,
                message_seq: row.get(1)?,
                untouched_change: row.get::<String>(2)? == "pending"
                    && row.get::<i64>(3)? == 0
                    && row.get::<String>(4)? == "local-change",
            })
        },
    )
}

/// The last message received for a twin, if its event waits: it is the twin's last open
/// event, and another open event is before it.
pub fn incoming_waiting(
    db: &dyn Sql,
    twin_id: &str,
    last: &LastReceived,
) -> Result<Option<Waiting>> {
    if !last.untouched_change {
        return Ok(None);
    }
    let open: Vec<i64> = db.rows(
        "SELECT seq FROM events
         WHERE twin_id = ?1 AND state IN ('pending', 'failed') ORDER BY seq DESC LIMIT 2",
        args![twin_id],
        |row| row.get(0),
    )?;
    if !(open.len() == 2 && open[0] == last.seq) {
        return Ok(None);
    }
    let seq = last.seq;
    let waiting = db.row(
        "SELECT id, hop, message_seq, created_at, message FROM events JOIN event_bodies USING (seq)
         WHERE seq = ?1",
        args![seq],
        |row| {
            let Some(message) = bodies::unpack(row.value(4)?)? else {
                return Ok(None);
            };
            Ok(Some(Waiting {
                seq,
                id: row.get(0)?,
                hop: row.get(1)?,
                message_seq: row.get(2)?,
                created_at: row.get(3)?,
                message,
            }))
        },
    )?;
    Ok(waiting.flatten())
}

/// Message `by`, a later one of the same twin, takes the place of `waiting` in the queue:
/// it carries the waiting message's changes, and the twin's place in line is kept (queued
/// last, it would wait behind every twin's events queued since); its time is its own (the
/// processor's `now`). The waiting message stays as a skipped event after it, with its
/// body: a redelivery of it is still recognised.
pub fn supersede(db: &dyn Sql, waiting: &Waiting, by: &NewEvent<'_>, now_ms: i64) -> Result<()> {
    let (Some(message_seq), Some(message)) = (by.message_seq, by.message) else {
        bail!("only a received message supersedes another");
    };
    // Guarded as `incoming_waiting` found it, untouched: the same message, never run (an
    // event that ran has an input), even if first in line should never be broken.
    let taken = db.execute(
        "UPDATE events SET id = ?2, reason = ?3, hop = ?4, message_seq = ?5, created_at = ?6
         WHERE seq = ?1 AND id = ?7 AND state = 'pending' AND attempts = 0
           AND NOT EXISTS (SELECT 1 FROM event_bodies b WHERE b.seq = ?1 AND b.input IS NOT NULL)",
        args![
            waiting.seq,
            by.id,
            by.reason.as_str(),
            by.hop,
            message_seq,
            now_ms,
            waiting.id.as_str()
        ],
    )?;
    if taken != 1 {
        bail!(
            "event {} no longer waits: it cannot be superseded",
            waiting.seq
        );
    }
    let note = format!(
        "superseded by `{}`, a later message of the twin applied in its place",
        by.id
    );
    let skipped = db.insert_keyed(
        "INSERT INTO events (id, direction, connection, twin_id, reason, hop, message_seq,
            created_at, state, note, last_attempt_at)
         VALUES (?1, 'incoming', ?2, ?3, 'local-change', ?4, ?5, ?6, 'skipped', ?7, ?8)",
        args![
            waiting.id.as_str(),
            by.connection,
            by.twin_id,
            waiting.hop,
            waiting.message_seq,
            waiting.created_at,
            note.as_str(),
            now_ms
        ],
        "seq",
    )?;
    db.execute(
        "INSERT INTO event_bodies (seq, message)
         SELECT CAST(?1 AS BIGINT), message FROM event_bodies WHERE seq = ?2",
        args![skipped, waiting.seq],
    )?;
    db.execute(
        "UPDATE event_bodies SET message = ?2 WHERE seq = ?1",
        &[waiting.seq.into(), message.value()],
    )?;
    Ok(())
}

pub fn insert(db: &dyn Sql, event: &NewEvent<'_>, now_ms: i64) -> Result<()> {
    let seq = db.insert_keyed(
        "INSERT INTO events (id, direction, connection, twin_id, reason, hop, message_seq, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        args![
            event.id,
            event.kind.as_str(),
            event.connection,
            event.twin_id,
            event.reason.as_str(),
            event.hop,
            event.message_seq,
            now_ms
        ],
        "seq",
    )?;
    if let Some(message) = event.message {
        db.execute(
            "INSERT INTO event_bodies (seq, message) VALUES (?1, ?2)",
            &[seq.into(), message.value()],
        )?;
    }
    Ok(())
}

/// The first unfinished event of a twin, as the ready query finds it: enough to decide
/// whether to hand it out, without reading the message and the input it carries.
#[derive(Debug, Clone)]
pub struct Head {
    pub seq: i64,
    pub twin_id: String,
    /// The twin's local issue, if the twin exists here.
    pub local_key: Option<String>,
}

/// Events that can run now: pending, not waiting for a retry time, and first in their twin's
/// queue (no earlier event of the twin is pending or failed). At most one per twin.
pub fn ready_heads(db: &dyn Sql, now_ms: i64, limit: usize) -> Result<Vec<Head>> {
    db.rows(
        "SELECT e.seq, e.twin_id, t.local_key FROM events e
         LEFT JOIN twins t ON t.twin_id = e.twin_id AND t.connection = e.connection
         WHERE e.state = 'pending'
           AND (e.next_attempt_at IS NULL OR e.next_attempt_at <= ?1)
           AND NOT EXISTS (
               SELECT 1 FROM events p
               WHERE p.twin_id = e.twin_id AND p.seq < e.seq AND p.state IN ('pending', 'failed'))
         ORDER BY e.seq LIMIT ?2",
        args![now_ms, limit],
        |row| {
            Ok(Head {
                seq: row.get(0)?,
                twin_id: row.get(1)?,
                local_key: row.get(2)?,
            })
        },
    )
}

/// [`ready_heads`], each read whole, with the local issue of its twin.
pub fn ready(db: &dyn Sql, now_ms: i64, limit: usize) -> Result<Vec<(Event, Option<String>)>> {
    let mut ready = Vec::new();
    for head in ready_heads(db, now_ms, limit)? {
        if let Some(event) = by_seq(db, head.seq)? {
            ready.push((event, head.local_key));
        }
    }
    Ok(ready)
}

/// The event numbered `seq`.
pub fn by_seq(db: &dyn Sql, seq: i64) -> Result<Option<Event>> {
    static SQL: std::sync::LazyLock<String> =
        std::sync::LazyLock::new(|| format!("SELECT {COLUMNS} FROM {FROM_EVENTS} WHERE seq = ?1"));
    db.row(&SQL, args![seq], from_row)
}

pub fn get(db: &dyn Sql, id: &str) -> Result<Option<Event>> {
    let sql = format!("SELECT {COLUMNS} FROM {FROM_EVENTS} WHERE id = ?1");
    db.row(&sql, args![id], from_row)
}

/// Events in a state, oldest first.
pub fn in_state(db: &dyn Sql, state: &str) -> Result<Vec<Event>> {
    let sql = format!("SELECT {COLUMNS} FROM {FROM_EVENTS} WHERE state = ?1 ORDER BY seq");
    db.rows(&sql, args![state], from_row)
}

/// Events of a twin, in a state, or both (`None`: any), oldest first.
pub fn list(db: &dyn Sql, twin: Option<&str>, state: Option<&str>) -> Result<Vec<Event>> {
    // The casts tell PostgreSQL the parameters' type, which a bare `?1 IS NULL` does not.
    let sql = format!(
        "SELECT {COLUMNS} FROM {FROM_EVENTS}
         WHERE (CAST(?1 AS TEXT) IS NULL OR twin_id = ?1)
           AND (CAST(?2 AS TEXT) IS NULL OR state = ?2)
         ORDER BY seq"
    );
    db.rows(&sql, args![twin, state], from_row)
}

/// Every event, oldest first.
pub fn all(db: &dyn Sql) -> Result<Vec<Event>> {
    let sql = format!("SELECT {COLUMNS} FROM {FROM_EVENTS} ORDER BY seq");
    db.rows(&sql, &[], from_row)
}

/// Delete up to `limit` events that finished (done or skipped) before `before_ms`; how many
/// went. (No `ORDER BY`: in index order the scan stops at `limit` old events instead of
/// sorting every finished one.) The last message received for each twin stays: a redelivered
/// older one is recognised by its number being lower.
pub fn forget_finished(db: &dyn Sql, before_ms: i64, limit: usize) -> Result<usize> {
    db.execute(
        "DELETE FROM events WHERE seq IN (
           SELECT e.seq FROM events e
           WHERE e.state IN ('done', 'skipped')
             AND coalesce(e.last_attempt_at, e.created_at) < ?1
             AND NOT (e.direction = 'incoming' AND e.message_seq = (
                 SELECT max(r.message_seq) FROM events r
                 WHERE r.twin_id = e.twin_id AND r.direction = 'incoming'))
           LIMIT ?2)",
        args![before_ms, limit],
    )
}

/// What the queue holds under an event id, as far as telling a redelivered message from a
/// different one goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub connection: String,
    pub kind: &'static str,
    pub twin_id: String,
    /// Incoming events: the sender's number for the twin, and the message as received.
    pub message_seq: Option<i64>,
    pub message: Option<String>,
}

/// The event stored under `id`, if any.
pub fn stored(db: &dyn Sql, id: &str) -> Result<Option<Stored>> {
    db.row(
        "SELECT connection, direction, twin_id, message_seq, message
         FROM events LEFT JOIN event_bodies USING (seq) WHERE id = ?1",
        args![id],
        |r| {
            Ok(Stored {
                connection: r.get(0)?,
                kind: match r.get::<String>(1)?.as_str() {
                    "incoming" => "incoming",
                    "outgoing" => "outgoing",
                    _ => "unexalate",
                },
                twin_id: r.get(2)?,
                message_seq: r.get(3)?,
                message: bodies::unpack(r.value(4)?)?,
            })
        },
    )
}

/// The id of the message received as number `seq` of a twin on a connection, if it is
/// still stored.
pub fn received_as(
    db: &dyn Sql,
    connection: &str,
    twin_id: &str,
    seq: i64,
) -> Result<Option<String>> {
    db.value(
        "SELECT id FROM events
         WHERE twin_id = ?1 AND direction = 'incoming' AND message_seq = ?2 AND connection = ?3",
        args![twin_id, seq, connection],
    )
}

/// The last message of a twin received before event `before` (a sequence number), if it
/// was applied: its number.
pub fn last_applied_before(db: &dyn Sql, twin_id: &str, before: i64) -> Result<Option<i64>> {
    // `NULLS LAST` is SQLite's order already; PostgreSQL puts NULLs first in `DESC`.
    let last: Option<(i64, String)> = db.row(
        "SELECT message_seq, state FROM events
         WHERE twin_id = ?1 AND direction = 'incoming' AND seq < ?2
         ORDER BY message_seq DESC NULLS LAST LIMIT 1",
        args![twin_id, before],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    Ok(last.and_then(|(message_seq, state)| (state == "done").then_some(message_seq)))
}

/// The event is processed.
pub fn finish(db: &dyn Sql, seq: i64, note: &str, log: &str, now_ms: i64) -> Result<()> {
    db.execute(
        "UPDATE events SET state = 'done', note = ?2, log = ?3, error_kind = NULL, error = NULL,
            attempts = attempts + 1, first_attempt_at = coalesce(first_attempt_at, ?4), last_attempt_at = ?4,
            next_attempt_at = NULL
         WHERE seq = ?1",
        args![seq, note, non_empty(log), now_ms],
    )?;
    Ok(())
}

/// Keep what the event's processor was given (JSON), for replays and for a repeat of the
/// event after a crash.
pub fn save_input(db: &dyn Sql, seq: i64, input: &Packed) -> Result<()> {
    set_input(db, seq, Some(input))
}

fn set_input(db: &dyn Sql, seq: i64, input: Option<&Packed>) -> Result<()> {
    db.execute(
        "INSERT INTO event_bodies (seq, input) VALUES (?1, ?2)
         ON CONFLICT (seq) DO UPDATE SET input = excluded.input",
        &[seq.into(), input.map_or(Value::Null, Packed::value)],
    )?;
    Ok(())
}

/// Whether a twin has an event not finished (pending, or a sync error).
pub fn open_for_twin(db: &dyn Sql, twin_id: &str) -> Result<bool> {
    db.exists(
        "SELECT 1 FROM events WHERE twin_id = ?1 AND state IN ('pending', 'failed') LIMIT 1",
        args![twin_id],
    )
}

/// An incoming event of another twin of local issue `local_key` that stored its input and
/// has not finished: it may have written the issue without the node knowing yet.
pub fn writing(db: &dyn Sql, local_key: &str, twin_id: &str) -> Result<Option<String>> {
    let sql = match db.dialect() {
        // The plan is forced (CROSS JOIN, `+` on the terms no index should serve): the
        // issue's few twins, then their open events through `events_open_by_twin`, never
        // every pending event of the node or every event the twin ever had.
        Dialect::Sqlite => {
            "SELECT e.id FROM twins t CROSS JOIN events e ON e.twin_id = t.twin_id
             WHERE t.local_key = ?1 AND t.twin_id != ?2
               AND e.state IN ('pending', 'failed') AND +e.state = 'pending'
               AND +e.direction = 'incoming'
               AND (SELECT b.input FROM event_bodies b WHERE b.seq = e.seq) IS NOT NULL
             LIMIT 1"
        }
        // PostgreSQL has neither `CROSS JOIN ... ON` nor `+` on text, and plans this
        // from its statistics.
        Dialect::Postgres => {
            "SELECT e.id FROM twins t JOIN events e ON e.twin_id = t.twin_id
             WHERE t.local_key = ?1 AND t.twin_id != ?2
               AND e.state = 'pending' AND e.direction = 'incoming'
               AND (SELECT b.input FROM event_bodies b WHERE b.seq = e.seq) IS NOT NULL
             LIMIT 1"
        }
    };
    db.value(sql, args![local_key, twin_id])
}

/// The event failed: a sync error holding back its twin until an operator acts. `input`
/// is what the processor was given, if it ran.
pub fn fail(
    db: &dyn Sql,
    seq: i64,
    kind: &str,
    error: &str,
    log: &str,
    input: Option<&str>,
    now_ms: i64,
) -> Result<()> {
    // A rare path: packed here, in the transaction.
    let input = input
        .map(|input| bodies::pack(db.dialect(), input))
        .transpose()?;
    set_input(db, seq, input.as_ref())?;
    record_attempt(db, seq, "failed", kind, error, log, now_ms, None)
}

/// The event failed for a passing reason: it stays pending and runs again at `next_at`.
pub fn defer(
    db: &dyn Sql,
    seq: i64,
    kind: &str,
    error: &str,
    log: &str,
    now_ms: i64,
    next_at: i64,
) -> Result<()> {
    record_attempt(db, seq, "pending", kind, error, log, now_ms, Some(next_at))
}

#[allow(clippy::too_many_arguments)]
fn record_attempt(
    db: &dyn Sql,
    seq: i64,
    state: &str,
    kind: &str,
    error: &str,
    log: &str,
    now_ms: i64,
    next_at: Option<i64>,
) -> Result<()> {
    db.execute(
        "UPDATE events SET state = ?2, error_kind = ?3, error = ?4, log = ?5, attempts = attempts + 1,
            first_attempt_at = coalesce(first_attempt_at, ?6), last_attempt_at = ?6, next_attempt_at = ?7
         WHERE seq = ?1",
        args![seq, state, kind, error, non_empty(log), now_ms, next_at],
    )?;
    Ok(())
}

/// Put a failed (or waiting) event back in the queue to run now.
pub fn retry(db: &dyn Sql, id: &str) -> Result<()> {
    let changed = db.execute(
        "UPDATE events SET state = 'pending', next_attempt_at = NULL
         WHERE id = ?1 AND state IN ('failed', 'pending')",
        args![id],
    )?;
    if changed == 0 {
        bail!("no failed event with id `{id}`");
    }
    Ok(())
}

/// A failed event whose message the other node refused is done again: the message goes
/// out again as it was made.
pub fn resume_sent(db: &dyn Sql, id: &str) -> Result<()> {
    db.execute(
        "UPDATE events SET state = 'done', next_attempt_at = NULL WHERE id = ?1 AND state = 'failed'",
        args![id],
    )?;
    Ok(())
}

/// Drop a failed event; its twin's later events go on.
pub fn skip(db: &dyn Sql, id: &str) -> Result<()> {
    let changed = db.execute(
        "UPDATE events SET state = 'skipped' WHERE id = ?1 AND state IN ('failed', 'pending')",
        args![id],
    )?;
    if changed == 0 {
        bail!("no failed event with id `{id}`");
    }
    Ok(())
}

/// Number of events per connection and state.
pub fn counts(db: &dyn Sql) -> Result<Vec<(String, String, i64)>> {
    db.rows(
        "SELECT connection, state, count(*) FROM events GROUP BY connection, state ORDER BY 1, 2",
        &[],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )
}

fn non_empty(text: &str) -> Option<&str> {
    (!text.is_empty()).then_some(text)
}

/// The last `limit` incoming and outgoing events of a connection (those a processor ran
/// for, or will), newest first: what `plugin try` replays. An event that finished without
/// running its processor (one that found nothing new, a message superseded) stored no
/// input, and is left out.
pub fn recent_of_connection(db: &dyn Sql, connection: &str, limit: usize) -> Result<Vec<Event>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM {FROM_EVENTS} WHERE connection = ?1 AND direction IN ('incoming', 'outgoing')
           AND (state = 'pending' OR state = 'failed' OR input IS NOT NULL)
         ORDER BY seq DESC LIMIT ?2"
    );
    db.rows(&sql, args![connection, limit], from_row)
}

/// When the first pending event that waits to retry after a passing failure becomes ready
/// (ms), if one waits: a scheduler that is not told about it looks again then.
pub fn next_retry_at(db: &dyn Sql, now_ms: i64) -> Result<Option<i64>> {
    db.one(
        "SELECT min(next_attempt_at) FROM events
         WHERE state = 'pending' AND next_attempt_at > ?1",
        args![now_ms],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue() -> rusqlite::Connection {
        let db = rusqlite::Connection::open_in_memory().unwrap();
        db.execute_batch(crate::store::SCHEMA).unwrap();
        let message = bodies::pack(Dialect::Sqlite, "{}").unwrap();
        for (id, twin, message_seq) in [
            ("a1", "a", Some(1)),
            ("a2", "a", Some(2)),
            ("b1", "b", None),
        ] {
            let event = NewEvent {
                id,
                kind: if message_seq.is_some() {
                    Kind::Incoming
                } else {
                    Kind::Outgoing
                },
                connection: "c",
                twin_id: twin,
                reason: SyncReason::LocalChange,
                hop: 0,
                message_seq,
                message: message_seq.map(|_| &message),
            };
            insert(&db, &event, 0).unwrap();
        }
        db
    }

    /// Each filter of `events list` alone, both, and none (the statement binds a missing
    /// one as NULL).
    #[test]
    fn list_filters_by_twin_and_state() {
        let db = queue();
        finish(&db, 1, "", "", 5).unwrap();
        let ids = |twin, state| {
            list(&db, twin, state)
                .unwrap()
                .into_iter()
                .map(|e| e.id)
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(None, None), ["a1", "a2", "b1"]);
        assert_eq!(ids(Some("a"), None), ["a1", "a2"]);
        assert_eq!(ids(None, Some("pending")), ["a2", "b1"]);
        assert_eq!(ids(Some("a"), Some("done")), ["a1"]);
        assert!(ids(Some("b"), Some("done")).is_empty());
    }

    /// Only a received change behind another open event of its twin waits: the first may
    /// be under way. A later message takes its place in line, and it stays, skipped, with
    /// its message.
    #[test]
    fn a_later_message_takes_the_place_of_a_waiting_one() {
        let waits = |db: &rusqlite::Connection, twin: &str| {
            let last = last_received(db, "c", twin).unwrap()?;
            incoming_waiting(db, twin, &last).unwrap()
        };
        let db = queue();
        let waiting = waits(&db, "a").unwrap();
        assert_eq!((waiting.seq, waiting.id.as_str()), (2, "a2"));
        assert_eq!((waiting.message_seq, waiting.message.as_str()), (2, "{}"));
        assert_eq!(waits(&db, "b"), None, "nothing received");
        let body = bodies::pack(Dialect::Sqlite, "{\"n\":3}").unwrap();
        let later = NewEvent {
            id: "a3",
            kind: Kind::Incoming,
            connection: "c",
            twin_id: "a",
            reason: SyncReason::LocalChange,
            hop: 0,
            message_seq: Some(3),
            message: Some(&body),
        };
        supersede(&db, &waiting, &later, 7).unwrap();
        let carrier = get(&db, "a3").unwrap().unwrap();
        assert_eq!((carrier.seq, carrier.state), (2, State::Pending));
        assert_eq!(carrier.created_at, 7, "received now");
        assert_eq!(carrier.message.as_deref(), Some("{\"n\":3}"));
        let skipped = get(&db, "a2").unwrap().unwrap();
        assert_eq!(skipped.state, State::Skipped);
        assert!(skipped.seq > 3, "{skipped:?}");
        assert!(skipped.note.unwrap().contains("`a3`"));
        assert_eq!(skipped.message.as_deref(), Some("{}"));
        assert_eq!(
            last_received(&db, "c", "a").unwrap().unwrap().message_seq,
            3
        );
        assert_eq!(
            received_as(&db, "c", "a", 2).unwrap().as_deref(),
            Some("a2")
        );
        // Waiting again, behind a1: the next message takes its place as well.
        assert_eq!(waits(&db, "a").unwrap().id, "a3");
        // a2 is not in line any more (a3 is): superseding it again changes nothing.
        let before = all(&db).unwrap().len();
        let again = supersede(&db, &waiting, &later, 8).unwrap_err();
        assert!(again.to_string().contains("no longer waits"), "{again}");
        assert_eq!(all(&db).unwrap().len(), before);
        // Nor is an event that ran (its input is stored).
        let waiting = waits(&db, "a").unwrap();
        save_input(&db, waiting.seq, &body).unwrap();
        let c4 = NewEvent {
            id: "a4",
            message_seq: Some(4),
            ..later
        };
        assert!(supersede(&db, &waiting, &c4, 9).is_err(), "a3 ran");

        let db = queue();
        finish(&db, 1, "", "", 5).unwrap();
        assert_eq!(waits(&db, "a"), None, "a2 is first");
    }

    /// The last message received before an event counts only once it was applied.
    #[test]
    fn last_applied_before_is_the_highest_received_if_done() {
        let db = queue();
        assert_eq!(last_applied_before(&db, "a", 3).unwrap(), None);
        finish(&db, 2, "", "", 5).unwrap();
        assert_eq!(last_applied_before(&db, "a", 3).unwrap(), Some(2));
        assert_eq!(last_applied_before(&db, "a", 2).unwrap(), None);
        assert_eq!(
            last_received(&db, "c", "a").unwrap().unwrap().message_seq,
            2
        );
        assert_eq!(last_received(&db, "c", "b").unwrap(), None);
    }
}
