//! Writing a twin's history (see `store::history`): what each event did to the local issue,
//! field by field, computed while the event is prepared and appended when it commits or
//! fails, in the same transaction.

use crate::store::sql::{Sql, args};
use anyhow::Result;

use super::effect::{Effect, Prepared};
use super::node::Node;
use crate::model::fields;
use crate::model::{FieldValue, Issue};
use crate::store::events::{Event, Kind};
use crate::store::history::{self, AddedComment, FieldChange, NewEntry};

/// Values longer than this are cut in the history (it shows what changed, it is no backup).
const MAX_VALUE_BYTES: usize = 4096;

/// What an incoming event changed in the local issue: each field with its old and new
/// value, and the comments it added. `before` is the default issue on first sync.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Diff {
    pub changes: Vec<FieldChange>,
    pub comments: Vec<AddedComment>,
}

impl Diff {
    pub(crate) fn between(before: &Issue, after: &Issue) -> Diff {
        let changes = fields::changed(before, after)
            .into_iter()
            .map(|field| FieldChange {
                old: shown(before, &field),
                new: shown(after, &field),
                field,
            })
            .collect();
        // A set: an issue with thousands of comments costs linear time, not quadratic.
        let known: std::collections::HashSet<&str> =
            before.comments.iter().map(|c| c.id.as_str()).collect();
        let comments = after
            .comments
            .iter()
            .filter(|c| !known.contains(c.id.as_str()))
            .map(|c| AddedComment {
                id: c.id.clone(),
                author: c.author.as_ref().map(|a| a.display_name.clone()),
                body: cut(&c.body),
            })
            .collect();
        Diff { changes, comments }
    }
}

/// A field's value as people read it.
fn shown(issue: &Issue, field: &str) -> Option<String> {
    let text = |s: &str| (!s.is_empty()).then(|| cut(s));
    let list = |items: &[String]| (!items.is_empty()).then(|| cut(&items.join(", ")));
    match field {
        "summary" => text(&issue.summary),
        "description" => issue.description.as_deref().and_then(text),
        "status" => text(&issue.status),
        "priority" => issue.priority.as_deref().and_then(text),
        "resolution" => issue.resolution.as_deref().and_then(text),
        "assignee" => issue
            .assignee
            .as_ref()
            .map(|u| cut(&format!("{} ({})", u.display_name, u.id))),
        "issue-type" => text(&issue.issue_type),
        "labels" => list(&issue.labels),
        "components" => list(&issue.components),
        "due-date" => issue.due_date.as_deref().and_then(text),
        "parent-key" => issue.parent_key.as_deref().and_then(text),
        other => {
            let value = issue.custom_field(other.strip_prefix("custom-field:")?)?;
            Some(cut(&match value {
                FieldValue::Text(s)
                | FieldValue::Date(s)
                | FieldValue::DateTime(s)
                | FieldValue::Option(s) => s.clone(),
                FieldValue::Number(n) => n.to_string(),
                FieldValue::Boolean(b) => b.to_string(),
                FieldValue::User(u) => format!("{} ({})", u.display_name, u.id),
                FieldValue::MultiOption(items) => items.join(", "),
                FieldValue::Null => return None,
            }))
        }
    }
}

/// At most [`MAX_VALUE_BYTES`], cut at a character boundary, with a marker.
fn cut(text: &str) -> String {
    if text.len() <= MAX_VALUE_BYTES {
        return text.to_string();
    }
    let mut end = MAX_VALUE_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes in all)", &text[..end], text.len())
}

fn direction(kind: Kind) -> &'static str {
    match kind {
        Kind::Outgoing => "outgoing",
        Kind::Incoming => "incoming",
        Kind::Unexalate => "unexalate",
    }
}

/// The keys of a twin as the node knows them now.
fn keys(db: &dyn Sql, twin_id: &str) -> Result<(Option<String>, Option<String>)> {
    Ok(db
        .row(
            "SELECT local_key, remote_key FROM twins WHERE twin_id = ?1",
            args![twin_id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?
        .unwrap_or((None, None)))
}

/// The `sender_key` of a stored message, if it can be read.
fn sender_key(message: &str) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Sender {
        sender_key: String,
    }
    serde_json::from_str::<Sender>(message)
        .ok()
        .map(|s| s.sender_key)
}

impl Node {
    /// The name and SHA-256 of the processor that handles `event`'s direction.
    fn processor_of(&self, event: &Event) -> Option<(String, String)> {
        let connection = self.connection(&event.connection)?;
        let plugin = match event.kind {
            Kind::Incoming => connection.incoming.as_ref(),
            Kind::Outgoing => connection.outgoing.as_ref(),
            Kind::Unexalate => None,
        }?;
        Some((plugin.info.name.clone(), plugin.info.sha256.clone()))
    }

    /// Append the history entry of an event that finished. Called inside the commit's
    /// transaction, before its effects (an unexalate forgets the twin's keys).
    pub(super) fn record_done(
        &self,
        tx: &dyn Sql,
        event: &Event,
        prepared: &Prepared,
        now: i64,
    ) -> Result<()> {
        // An applied event carries its twin's keys (the sender's key came with the message),
        // an outgoing one those it read with the twin; the others look them up.
        let (local_key, remote_key, diff) = match &prepared.effect {
            Effect::Applied { twin, diff, .. } => (
                Some(twin.local_key.clone()),
                twin.remote_key.clone(),
                Some(diff),
            ),
            Effect::Outgoing {
                keys: (local_key, remote_key),
                ..
            } => (Some(local_key.clone()), remote_key.clone(), None),
            _ => {
                let (local_key, remote_key) = keys(tx, &event.twin_id)?;
                (local_key, remote_key, None)
            }
        };
        // An event that finished before its processor ran (it stores no input) names none.
        let processor = prepared
            .input
            .as_ref()
            .and_then(|_| self.processor_of(event));
        let empty = Diff::default();
        let diff = diff.unwrap_or(&empty);
        history::append(
            tx,
            &NewEntry {
                twin_id: &event.twin_id,
                connection: &event.connection,
                local_key: local_key.as_deref(),
                remote_key: remote_key.as_deref(),
                event_id: &event.id,
                direction: direction(event.kind),
                reason: event.reason.as_str(),
                hop: event.hop,
                outcome: "done",
                note: &prepared.note,
                processor: processor.as_ref().map(|(n, h)| (n.as_str(), h.as_str())),
                changes: &diff.changes,
                comments: &diff.comments,
            },
            now,
        )
    }

    /// Append a history entry for an event that did not finish: it became a sync error
    /// (`failed`), or an operator retried or skipped it.
    pub(crate) fn record_step(
        &self,
        tx: &dyn Sql,
        event: &Event,
        outcome: &str,
        note: &str,
        now: i64,
    ) -> Result<()> {
        record_step(tx, event, outcome, note, self.processor_of(event), now)
    }
}

/// Like [`Node::record_step`], for callers without a node (operator commands): no
/// processor named.
pub(crate) fn record_step(
    tx: &dyn Sql,
    event: &Event,
    outcome: &str,
    note: &str,
    processor: Option<(String, String)>,
    now: i64,
) -> Result<()> {
    let (local_key, mut remote_key) = keys(tx, &event.twin_id)?;
    if remote_key.is_none() {
        // A first sync that failed: no twin yet, but the message names the sender's issue.
        remote_key = event.message.as_deref().and_then(sender_key);
    }
    history::append(
        tx,
        &NewEntry {
            twin_id: &event.twin_id,
            connection: &event.connection,
            local_key: local_key.as_deref(),
            remote_key: remote_key.as_deref(),
            event_id: &event.id,
            direction: direction(event.kind),
            reason: event.reason.as_str(),
            hop: event.hop,
            outcome,
            note,
            processor: processor.as_ref().map(|(n, h)| (n.as_str(), h.as_str())),
            changes: &[],
            comments: &[],
        },
        now,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Comment;

    #[test]
    fn a_diff_names_each_changed_field_with_both_values_and_the_new_comments() {
        let before = Issue {
            summary: "Login fails".into(),
            status: "Open".into(),
            labels: vec!["customer".into()],
            comments: vec![Comment {
                id: "1".into(),
                author: None,
                body: "old".into(),
                created: String::new(),
                updated: None,
                internal: false,
            }],
            ..Issue::default()
        };
        let mut after = before.clone();
        after.status = "Closed".into();
        after.labels.push("urgent".into());
        after.set_custom_field("remote issue key", FieldValue::Text("EXT-1".into()));
        after.comments.push(Comment {
            id: "2".into(),
            body: "<script>x</script>".into(),
            ..before.comments[0].clone()
        });
        let diff = Diff::between(&before, &after);
        let change = |field: &str, old: Option<&str>, new: Option<&str>| FieldChange {
            field: field.into(),
            old: old.map(Into::into),
            new: new.map(Into::into),
        };
        assert_eq!(
            diff.changes,
            vec![
                change("custom-field:remote issue key", None, Some("EXT-1")),
                change("labels", Some("customer"), Some("customer, urgent")),
                change("status", Some("Open"), Some("Closed")),
            ]
        );
        assert_eq!(
            diff.comments,
            vec![AddedComment {
                id: "2".into(),
                author: None,
                body: "<script>x</script>".into()
            }]
        );
        assert_eq!(Diff::between(&after, &after), Diff::default());
    }

    #[test]
    fn long_values_are_cut_at_a_character_boundary() {
        let long = "é".repeat(MAX_VALUE_BYTES);
        let shown = cut(&long);
        assert!(shown.len() < MAX_VALUE_BYTES + 40, "{}", shown.len());
        assert!(shown.ends_with(&format!("({} bytes in all)", long.len())));
    }
}
