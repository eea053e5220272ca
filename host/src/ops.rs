//! What operators see and do, for the CLI and the admin API alike: the queue per
//! connection, sync errors, events, twins, and retrying or skipping.

use anyhow::{Result, bail};
use serde::Serialize;

use crate::store::events::{self, Event};
use crate::store::sql::Sql;
use crate::store::{NodeStore, conflicts, outbox, twins};

/// Events per state for one connection.
#[derive(Debug, Default, Clone, Serialize, PartialEq, Eq)]
pub struct QueueRow {
    pub connection: String,
    /// Waiting to be processed (including those waiting to retry after a passing failure).
    pub pending: i64,
    /// Processed and sent, not yet acknowledged by the other node.
    pub in_flight: i64,
    /// Sync errors, waiting for an operator.
    pub failed: i64,
    pub done: i64,
    pub skipped: i64,
}

/// The queue of every connection.
pub fn queue(store: &NodeStore) -> Result<Vec<QueueRow>> {
    store.read(|db| {
        let mut rows: Vec<QueueRow> = Vec::new();
        for (connection, state, count) in events::counts(db)? {
            let row = row_for(&mut rows, &connection);
            match state.as_str() {
                "pending" => row.pending = count,
                "failed" => row.failed = count,
                "done" => row.done = count,
                _ => row.skipped = count,
            }
        }
        for (connection, count) in outbox::counts(db)? {
            row_for(&mut rows, &connection).in_flight = count;
        }
        rows.sort_by(|a, b| a.connection.cmp(&b.connection));
        Ok(rows)
    })
}

fn row_for<'a>(rows: &'a mut Vec<QueueRow>, connection: &str) -> &'a mut QueueRow {
    match rows.iter().position(|r| r.connection == connection) {
        Some(i) => &mut rows[i],
        None => {
            rows.push(QueueRow {
                connection: connection.to_string(),
                ..QueueRow::default()
            });
            rows.last_mut().expect("just pushed")
        }
    }
}

/// A sync error as `errors list` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ErrorRow {
    pub event: String,
    pub connection: String,
    pub twin: String,
    /// The local issue of the twin, if the twin exists here.
    pub issue: Option<String>,
    pub direction: events::Kind,
    pub kind: String,
    pub reason: String,
    pub attempts: i64,
    pub first_attempt: Option<String>,
    pub last_attempt: Option<String>,
}

/// Every sync error, oldest first.
pub fn errors(store: &NodeStore) -> Result<Vec<ErrorRow>> {
    store.read(|db| {
        events::in_state(db, "failed")?
            .into_iter()
            .map(|event| error_row(db, event))
            .collect()
    })
}

fn error_row(db: &dyn Sql, event: Event) -> Result<ErrorRow> {
    let issue = twins::get(db, &event.twin_id)?.map(|t| t.local_key);
    let time = |ms: Option<i64>| ms.map(|ms| crate::clock::rfc3339(crate::clock::from_millis(ms)));
    Ok(ErrorRow {
        issue,
        direction: event.kind,
        kind: event.error_kind.unwrap_or_default(),
        reason: event.error.unwrap_or_default(),
        attempts: event.attempts,
        first_attempt: time(event.first_attempt_at),
        last_attempt: time(event.last_attempt_at),
        event: event.id,
        connection: event.connection,
        twin: event.twin_id,
    })
}

/// A state to list events in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum EventState {
    Pending,
    Failed,
    Done,
    Skipped,
}

impl EventState {
    fn as_str(self) -> &'static str {
        match self {
            EventState::Pending => "pending",
            EventState::Failed => "failed",
            EventState::Done => "done",
            EventState::Skipped => "skipped",
        }
    }
}

/// An event as `events list` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct EventRow {
    pub id: String,
    pub kind: events::Kind,
    pub state: events::State,
    pub connection: String,
    pub twin: String,
    pub created: String,
    /// What processing did, or the error.
    pub outcome: String,
}

/// Events, oldest first: of one twin, in one state, or all.
pub fn events(
    store: &NodeStore,
    twin: Option<&str>,
    state: Option<EventState>,
) -> Result<Vec<EventRow>> {
    let found = store.read(|db| events::list(db, twin, state.map(EventState::as_str)))?;
    Ok(found
        .into_iter()
        .map(|e| EventRow {
            outcome: match (&e.error_kind, &e.error, &e.note) {
                (Some(kind), Some(error), _) => format!("{kind}: {error}"),
                (_, _, Some(note)) => note.clone(),
                _ => String::new(),
            },
            created: crate::clock::rfc3339(crate::clock::from_millis(e.created_at)),
            id: e.id,
            kind: e.kind,
            state: e.state,
            connection: e.connection,
            twin: e.twin_id,
        })
        .collect())
}

/// One event, with its message, input and log.
pub fn event(store: &NodeStore, id: &str) -> Result<Event> {
    match store.read(|db| events::get(db, id))? {
        Some(event) => Ok(event),
        None => bail!(
            "there is no event `{id}` on this node (see `twinsync errors list` or `twinsync queue`)"
        ),
    }
}

/// Put a failed event back in the queue. Its twin's later events follow it. A message the
/// other node refused is sent again as it is.
pub fn retry(store: &NodeStore, id: &str) -> Result<()> {
    store.write(|tx| {
        retry_one(tx, id)?;
        operator_step(tx, id, "retried", "put back in the queue by an operator")
    })
}

fn retry_one(tx: &dyn Sql, id: &str) -> Result<()> {
    if outbox::is_held(tx, id)? {
        outbox::release(tx, id)?;
        return events::resume_sent(tx, id);
    }
    events::retry(tx, id)
}

/// The twin's history notes what an operator did to one of its events.
fn operator_step(tx: &dyn Sql, id: &str, outcome: &str, note: &str) -> Result<()> {
    let now = crate::clock::millis(std::time::SystemTime::now());
    match events::get(tx, id)? {
        Some(event) => crate::sync::history::record_step(tx, &event, outcome, note, None, now),
        None => Ok(()),
    }
}

/// Put every failed event back in the queue; returns how many.
pub fn retry_all(store: &NodeStore) -> Result<usize> {
    store.write(|tx| {
        let failed = events::in_state(tx, "failed")?;
        for event in &failed {
            retry_one(tx, &event.id)?;
            operator_step(
                tx,
                &event.id,
                "retried",
                "put back in the queue by an operator",
            )?;
        }
        Ok(failed.len())
    })
}

/// Drop a failed event; its twin goes on with the next one.
pub fn skip(store: &NodeStore, id: &str) -> Result<()> {
    store.write(|tx| {
        // A message the other node refused leaves the outbox; the twin's next one takes
        // its number.
        if outbox::is_held(tx, id)? {
            outbox::drop_held(tx, id)?;
        }
        events::skip(tx, id)?;
        operator_step(tx, id, "skipped", "dropped by an operator")
    })
}

/// A twin as `twins` lists it.
#[derive(Debug, Clone, Serialize)]
pub struct TwinRow {
    pub twin: String,
    pub connection: String,
    pub local_key: String,
    pub remote_key: Option<String>,
    pub messages_sent: i64,
}

/// Twins listed in one page by default, and at most (`GET /v1/twins?limit=`).
pub const TWINS_PAGE: usize = 500;
pub const MAX_TWINS_PAGE: usize = 5_000;

/// Up to `limit` twins after the twin id `after`, in twin id order, and the cursor of the
/// next page (`None`: this was the last one). One page is in memory at a time, however
/// many twins the node has.
pub fn twins_page(
    store: &NodeStore,
    after: Option<&str>,
    limit: usize,
) -> Result<(Vec<TwinRow>, Option<String>)> {
    // One more than asked for: whether there is a next page, without an empty last one.
    let mut rows = store.read(|db| twins::listed_page(db, after, limit.saturating_add(1)))?;
    let next = if rows.len() > limit {
        rows.truncate(limit);
        rows.last().map(|t| t.twin_id.clone())
    } else {
        None
    };
    let rows = rows
        .into_iter()
        .map(|t| TwinRow {
            twin: t.twin_id,
            connection: t.connection,
            local_key: t.local_key,
            remote_key: t.remote_key,
            messages_sent: t.sent_seq,
        })
        .collect();
    Ok((rows, next))
}

/// Every twin at once: for a node known to be small (an embedder's tenant). Listing a
/// node's twins for an operator goes by [`twins_page`].
pub fn twins(store: &NodeStore) -> Result<Vec<TwinRow>> {
    Ok(store
        .read(|db| twins::list(db))?
        .into_iter()
        .map(|t| TwinRow {
            twin: t.twin_id,
            connection: t.connection,
            local_key: t.local_key,
            remote_key: t.remote_key,
            messages_sent: t.sent_seq,
        })
        .collect())
}

/// Open conflicts held for review, with the local issue of each.
#[derive(Debug, Clone, Serialize)]
pub struct ConflictRow {
    pub id: i64,
    pub connection: String,
    pub twin: String,
    pub issue: Option<String>,
    pub field: String,
    pub local_value: String,
    pub remote_value: String,
    pub since: String,
}

pub fn conflicts(store: &NodeStore) -> Result<Vec<ConflictRow>> {
    store.read(|db| {
        conflicts::open(db)?
            .into_iter()
            .map(|c| {
                Ok(ConflictRow {
                    issue: twins::get(db, &c.twin_id)?.map(|t| t.local_key),
                    since: crate::clock::rfc3339(crate::clock::from_millis(c.created_at)),
                    id: c.id,
                    connection: c.connection,
                    twin: c.twin_id,
                    field: c.field,
                    local_value: c.local_value,
                    remote_value: c.remote_value,
                })
            })
            .collect()
    })
}
