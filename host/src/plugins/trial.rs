//! `plugin try`: a candidate plugin run on a connection's recorded events next to the live
//! one, each on the event's replay input (the same input `events replay` uses, from
//! [`Node::replay_input`]), reporting per event what the candidate would do differently.
//! Nothing is written: neither run touches the tracker, the queue or the outbox.

use std::time::Instant;

use anyhow::{Result, anyhow};
use serde::Serialize;
use serde_json::Value;

use crate::runtime::{Outcome, Plugin};
use crate::store::events::{self, Event};
use crate::sync::Node;

/// Events [`Node::try_plugin`] runs when not told which.
pub const DEFAULT_LAST: usize = 50;

/// Which recorded events to try a candidate on.
#[derive(Debug, Clone)]
pub enum Pick {
    /// The last N incoming and outgoing events of the connection (N is capped at 10,000).
    Last(usize),
    /// These events.
    Events(Vec<String>),
}

/// One plugin's run on an event.
#[derive(Debug, Serialize)]
pub struct Run {
    pub ok: bool,
    pub error: Option<String>,
    pub error_kind: Option<&'static str>,
    pub fuel_used: u64,
    pub time_us: u128,
}

/// A field on which the candidate's result differs from the live one's.
#[derive(Debug, Serialize, PartialEq)]
pub struct FieldDiff {
    /// `summary`, `labels`, `custom-field:NAME`, ... (`result` when one side returned
    /// nothing to send).
    pub field: String,
    pub live: Value,
    pub candidate: Value,
}

/// One event, tried.
#[derive(Debug, Serialize)]
pub struct TrialEvent {
    pub event: String,
    pub direction: events::Kind,
    /// The event's input: `stored` or `reconstructed` (see `events replay`).
    pub input_source: &'static str,
    pub live_plugin: String,
    pub live: Run,
    pub candidate: Run,
    /// Field by field, where both produced a result.
    pub changes: Vec<FieldDiff>,
    /// The candidate fails where the live plugin does not.
    pub new_error: bool,
    /// Why the event could not be tried (no input, say); then the runs are empty.
    pub skipped: Option<String>,
}

/// What trying a candidate found.
#[derive(Debug, Serialize)]
pub struct Trial {
    pub connection: String,
    pub candidate: String,
    pub events: Vec<TrialEvent>,
    /// Events whose result differs, and events where only the candidate fails.
    pub changed: usize,
    pub new_errors: usize,
}

impl Node {
    /// Run `candidate` on events of `connection` next to the plugin the connection runs
    /// now, and compare. Writes nothing.
    pub fn try_plugin(&self, candidate: &Plugin, connection: &str, pick: &Pick) -> Result<Trial> {
        if !self.connections().iter().any(|c| c.name == connection) {
            return Err(anyhow!(
                "connection `{connection}` is not configured on this node"
            ));
        }
        let picked: Vec<Event> = match pick {
            Pick::Last(n) => self
                .store()
                .read(|db| events::recent_of_connection(db, connection, (*n).min(10_000)))?,
            Pick::Events(ids) => {
                let mut picked = Vec::new();
                for id in ids {
                    let event = self
                        .store()
                        .read(|db| events::get(db, id))?
                        .ok_or_else(|| anyhow!("there is no event `{id}` on this node"))?;
                    if event.connection != connection {
                        return Err(anyhow!(
                            "event `{id}` is on connection `{}`, not `{connection}`",
                            event.connection
                        ));
                    }
                    picked.push(event);
                }
                picked
            }
        };
        let candidate_name = candidate.identity();
        let mut trial = Trial {
            connection: connection.into(),
            candidate: match &candidate_name.version {
                Some(v) => format!("{}@{v}", candidate_name.name),
                None => candidate_name.name.clone(),
            },
            events: Vec::new(),
            changed: 0,
            new_errors: 0,
        };
        for event in picked {
            let tried = self.try_one(candidate, event);
            if tried.new_error {
                trial.new_errors += 1;
            }
            if !tried.changes.is_empty() {
                trial.changed += 1;
            }
            trial.events.push(tried);
        }
        Ok(trial)
    }

    fn try_one(&self, candidate: &Plugin, event: Event) -> TrialEvent {
        let skipped = |event: &Event, why: String| TrialEvent {
            event: event.id.clone(),
            direction: event.kind,
            input_source: "none",
            live_plugin: String::new(),
            live: Run::none(),
            candidate: Run::none(),
            changes: Vec::new(),
            new_error: false,
            skipped: Some(why),
        };
        let input = match self.replay_input(event.clone()) {
            Ok(input) => input,
            Err(error) => return skipped(&event, format!("{error:#}")),
        };
        let live_plugin = match input.live_plugin() {
            Ok(plugin) => plugin,
            Err(error) => return skipped(&event, format!("{error:#}")),
        };
        let run = |plugin: &Plugin| {
            let started = Instant::now();
            let outcome = self.run_again(plugin, &input);
            (outcome, started.elapsed().as_micros())
        };
        let (live, live_us) = run(&live_plugin);
        let (tried, tried_us) = run(candidate);
        let (live, tried) = match (live, tried) {
            (Ok(live), Ok(tried)) => (live, tried),
            (Err(error), _) | (_, Err(error)) => return skipped(&event, format!("{error:#}")),
        };
        let changes = match (&live.result, &tried.result) {
            (Ok(a), Ok(b)) => diff(a, b),
            _ => Vec::new(),
        };
        let id = live_plugin.identity();
        TrialEvent {
            event: event.id,
            direction: event.kind,
            input_source: input.source,
            live_plugin: match id.version {
                Some(v) => format!("{}@{v}", id.name),
                None => id.name,
            },
            new_error: live.result.is_ok() && tried.result.is_err(),
            live: Run::of(&live, live_us),
            candidate: Run::of(&tried, tried_us),
            changes,
            skipped: None,
        }
    }
}

impl Run {
    fn of(outcome: &Outcome<Value>, time_us: u128) -> Run {
        Run {
            ok: outcome.result.is_ok(),
            error: outcome.result.as_ref().err().map(ToString::to_string),
            error_kind: outcome.result.as_ref().err().map(|e| e.kind()),
            fuel_used: outcome.fuel_used,
            time_us,
        }
    }

    fn none() -> Run {
        Run {
            ok: false,
            error: None,
            error_kind: None,
            fuel_used: 0,
            time_us: 0,
        }
    }
}

/// The fields on which two results (issues or replicas as JSON; null: nothing to send)
/// differ. Custom fields compare by name, so their order does not matter.
pub fn diff(live: &Value, candidate: &Value) -> Vec<FieldDiff> {
    let (Some(a), Some(b)) = (live.as_object(), candidate.as_object()) else {
        return if live == candidate {
            Vec::new()
        } else {
            vec![FieldDiff {
                field: "result".into(),
                live: live.clone(),
                candidate: candidate.clone(),
            }]
        };
    };
    let mut changes = Vec::new();
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    for key in keys {
        let (x, y) = (
            a.get(key).unwrap_or(&Value::Null),
            b.get(key).unwrap_or(&Value::Null),
        );
        if key == "custom_fields" {
            changes.extend(diff_custom_fields(x, y));
        } else if x != y {
            changes.push(FieldDiff {
                field: key.replace('_', "-"),
                live: x.clone(),
                candidate: y.clone(),
            });
        }
    }
    changes
}

fn diff_custom_fields(live: &Value, candidate: &Value) -> Vec<FieldDiff> {
    let by_name = |v: &Value| -> std::collections::BTreeMap<String, Value> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|f| {
                let name = f.get("name")?.as_str()?.to_string();
                Some((name, f.get("value").cloned().unwrap_or(Value::Null)))
            })
            .collect()
    };
    let (a, b) = (by_name(live), by_name(candidate));
    let mut names: Vec<&String> = a.keys().chain(b.keys()).collect();
    names.sort();
    names.dedup();
    names
        .into_iter()
        .filter_map(|name| {
            let (x, y) = (
                a.get(name).cloned().unwrap_or(Value::Null),
                b.get(name).cloned().unwrap_or(Value::Null),
            );
            (x != y).then(|| FieldDiff {
                field: format!("custom-field:{name}"),
                live: x,
                candidate: y,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn differences_are_per_field_and_custom_fields_by_name() {
        let live = json!({"summary": "a", "labels": ["x"], "custom_fields": [
            {"name": "k", "value": {"text": "1"}}, {"name": "same", "value": "null"}]});
        let candidate = json!({"summary": "a", "labels": ["x", "y"], "custom_fields": [
            {"name": "same", "value": "null"}, {"name": "k", "value": {"text": "2"}}]});
        let changes = diff(&live, &candidate);
        let fields: Vec<&str> = changes.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(fields, ["custom-field:k", "labels"]);
        assert!(diff(&live, &live).is_empty());
        assert_eq!(diff(&live, &Value::Null)[0].field, "result");
    }
}
