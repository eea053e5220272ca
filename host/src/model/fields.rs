//! Issues field by field: the names a three-way merge and conflict policies use, and which
//! fields differ between two versions of an issue.

use std::collections::BTreeMap;

use super::{FieldValue, Issue};

/// The core fields by name, as policies and field times name them (custom fields are
/// `custom-field:NAME`). Comments and attachments are merged as sets, not by policy.
pub const CORE_FIELDS: &[&str] = &[
    "summary",
    "description",
    "status",
    "priority",
    "resolution",
    "assignee",
    "issue-type",
    "labels",
    "components",
    "due-date",
    "parent-key",
];

/// A field's value, comparable across issues.
fn value(issue: &Issue, field: &str) -> Option<String> {
    let text = |s: &str| Some(s.to_string());
    match field {
        "summary" => text(&issue.summary),
        "description" => issue.description.clone(),
        "status" => text(&issue.status),
        "priority" => issue.priority.clone(),
        "resolution" => issue.resolution.clone(),
        "assignee" => issue.assignee.as_ref().map(|u| u.id.clone()),
        "issue-type" => text(&issue.issue_type),
        "labels" => Some(issue.labels.join("\u{1f}")),
        "components" => Some(issue.components.join("\u{1f}")),
        "due-date" => issue.due_date.clone(),
        "parent-key" => issue.parent_key.clone(),
        other => {
            let name = other.strip_prefix("custom-field:")?;
            issue.custom_field(name).map(|v| format!("{v:?}"))
        }
    }
}

/// Every field name of an issue: the core ones and its custom fields.
pub fn names(issue: &Issue) -> impl Iterator<Item = String> + '_ {
    CORE_FIELDS.iter().map(|f| f.to_string()).chain(
        issue
            .custom_fields
            .iter()
            .map(|f| format!("custom-field:{}", f.name)),
    )
}

/// The fields whose values differ between `before` and `after`.
pub fn changed(before: &Issue, after: &Issue) -> Vec<String> {
    // Several times per event: only the names of the fields that differ are built.
    let core = CORE_FIELDS
        .iter()
        .filter(|field| !same(before, after, field))
        .map(|field| field.to_string());
    let custom = (before.custom_fields.iter())
        .chain(&after.custom_fields)
        .map(|field| field.name.as_str())
        .filter(|name| !same_custom(before, after, name))
        .map(|name| format!("custom-field:{name}"));
    let mut fields: Vec<String> = core.chain(custom).collect();
    fields.sort();
    fields.dedup();
    fields
}

/// Whether core field `field` compares equal in both issues, as [`value`] compares it,
/// without building the values where equal fields show it.
fn same(before: &Issue, after: &Issue, field: &str) -> bool {
    let equal = match field {
        "summary" => before.summary == after.summary,
        "description" => before.description == after.description,
        "status" => before.status == after.status,
        "priority" => before.priority == after.priority,
        "resolution" => before.resolution == after.resolution,
        "issue-type" => before.issue_type == after.issue_type,
        "assignee" => {
            before.assignee.as_ref().map(|u| &u.id) == after.assignee.as_ref().map(|u| &u.id)
        }
        "due-date" => before.due_date == after.due_date,
        "parent-key" => before.parent_key == after.parent_key,
        // Joined, two lists can compare equal where they differ (a name holding the
        // separator): equal lists say so, others are compared as `value` does.
        "labels" => before.labels == after.labels,
        "components" => before.components == after.components,
        _ => false,
    };
    equal || value(before, field) == value(after, field)
}

/// Whether custom field `name` compares equal in both issues, as [`value`] compares it.
fn same_custom(before: &Issue, after: &Issue, name: &str) -> bool {
    let (a, b) = (before.custom_field(name), after.custom_field(name));
    // Equal values print alike, except numbers (0.0 and -0.0 are equal).
    let equal = a == b && !matches!(a, Some(FieldValue::Number(_)));
    equal || a.map(|v| format!("{v:?}")) == b.map(|v| format!("{v:?}"))
}

/// Set `field` of `to` to its value in `from`. Returns false for an unknown field name.
pub fn copy(field: &str, from: &Issue, to: &mut Issue) -> bool {
    match field {
        "summary" => to.summary = from.summary.clone(),
        "description" => to.description = from.description.clone(),
        "status" => to.status = from.status.clone(),
        "priority" => to.priority = from.priority.clone(),
        "resolution" => to.resolution = from.resolution.clone(),
        "assignee" => to.assignee = from.assignee.clone(),
        "issue-type" => to.issue_type = from.issue_type.clone(),
        "labels" => to.labels = from.labels.clone(),
        "components" => to.components = from.components.clone(),
        "due-date" => to.due_date = from.due_date.clone(),
        "parent-key" => to.parent_key = from.parent_key.clone(),
        other => {
            let Some(name) = other.strip_prefix("custom-field:") else {
                return false;
            };
            match from.custom_field(name) {
                Some(value) => to.set_custom_field(name, value.clone()),
                None => to.custom_fields.retain(|f| f.name != name),
            }
        }
    }
    true
}

/// Which write a field's value comes from (see `types.field-stamp` in the WIT).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Stamp {
    pub at: i64,
    pub by: String,
    // Left out while empty, as most stamps are: stamps are stored with every twin and
    // issue and sent with every replica, and these two were a third of their JSON.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub replaced_at: i64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub replaced_by: String,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

impl Stamp {
    /// The order of writes: time first, then instance name.
    pub fn key(&self) -> (i64, &str) {
        (self.at, &self.by)
    }

    /// Whether this stamp names the write `other` replaced.
    pub fn was_replaced_by(&self, other: &Stamp) -> bool {
        other.replaced_at == self.at && other.replaced_by == self.by
    }
}

/// The stamp of each field of an issue.
pub type FieldStamps = BTreeMap<String, Stamp>;

/// Stamp the fields written locally since the issue was last stamped (`stamped`: the issue
/// as its stamps describe it; none: everything is new). Returns whether anything was
/// written.
pub fn stamp_local_writes(
    stamps: &mut FieldStamps,
    stamped: Option<&Issue>,
    issue: &Issue,
    now: i64,
    instance: &str,
) -> bool {
    let written: Vec<String> = match stamped {
        Some(before) => changed(before, issue),
        None => names(issue).collect(),
    };
    for field in &written {
        stamp_write(stamps, field, now, instance);
    }
    !written.is_empty()
}

/// Stamp a local write of `field` at `now` on `instance`: unique, and after the write it
/// replaces even if the clock is behind.
pub fn stamp_write(stamps: &mut FieldStamps, field: &str, now: i64, instance: &str) {
    let replaced = stamps.get(field).cloned().unwrap_or_default();
    let at = now.max(replaced.at + 1);
    stamps.insert(
        field.to_string(),
        Stamp {
            at,
            by: instance.to_string(),
            replaced_at: replaced.at,
            replaced_by: replaced.by,
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{CustomField, User};

    #[test]
    fn a_stamp_leaves_out_an_empty_replacement_and_reads_either_form() {
        let fresh = Stamp {
            at: 5,
            by: "A".into(),
            ..Stamp::default()
        };
        let json = serde_json::to_string(&fresh).unwrap();
        assert_eq!(json, r#"{"at":5,"by":"A"}"#);
        let spelled_out = r#"{"at":5,"by":"A","replaced_at":0,"replaced_by":""}"#;
        assert_eq!(serde_json::from_str::<Stamp>(spelled_out).unwrap(), fresh);

        let replacing = Stamp {
            replaced_at: 4,
            replaced_by: "B".into(),
            ..fresh
        };
        let json = serde_json::to_string(&replacing).unwrap();
        assert_eq!(
            json,
            r#"{"at":5,"by":"A","replaced_at":4,"replaced_by":"B"}"#
        );
        assert_eq!(serde_json::from_str::<Stamp>(&json).unwrap(), replacing);
    }

    #[test]
    fn a_write_is_stamped_after_the_one_it_replaces() {
        let mut stamps = FieldStamps::new();
        stamp_write(&mut stamps, "status", 100, "A");
        let first = stamps["status"].clone();
        // The clock went back: the next write still comes after.
        stamp_write(&mut stamps, "status", 50, "A");
        let second = stamps["status"].clone();
        assert!(second.key() > first.key());
        assert!(first.was_replaced_by(&second));
    }

    #[test]
    fn changed_names_core_and_custom_fields() {
        let before = Issue {
            summary: "a".into(),
            status: "Open".into(),
            ..Issue::default()
        };
        let mut after = before.clone();
        after.status = "Done".into();
        after.set_custom_field("tier", FieldValue::Text("Gold".into()));
        assert_eq!(changed(&before, &after), ["custom-field:tier", "status"]);
        assert!(changed(&before, &before).is_empty());
    }

    /// `changed` finds what comparing every field's `value` finds, on the cases where
    /// equal Rust values and equal `value`s part: lists that join alike, numbers that are
    /// equal but print apart (or print alike but are not equal), a user's other details,
    /// custom fields on one side only or named twice.
    #[test]
    fn changed_finds_what_comparing_every_value_finds() {
        fn by_value(before: &Issue, after: &Issue) -> Vec<String> {
            let mut fields: Vec<String> = names(before).chain(names(after)).collect();
            fields.sort();
            fields.dedup();
            fields.retain(|f| value(before, f) != value(after, f));
            fields
        }
        let custom = |name: &str, value: FieldValue| CustomField {
            name: name.into(),
            value,
        };
        let user = |id: &str, name: &str| User {
            id: id.into(),
            display_name: name.into(),
            email: None,
        };
        let issues = [
            Issue::default(),
            Issue {
                labels: vec!["a\u{1f}b".into()],
                components: vec!["x".into()],
                assignee: Some(user("u1", "Ann")),
                custom_fields: vec![
                    custom("n", FieldValue::Number(0.0)),
                    custom("t", FieldValue::Text("x".into())),
                ],
                ..Issue::default()
            },
            Issue {
                labels: vec!["a".into(), "b".into()],
                components: vec!["x".into()],
                assignee: Some(user("u1", "Ann B.")),
                custom_fields: vec![
                    custom("n", FieldValue::Number(-0.0)),
                    custom("t", FieldValue::Option("x".into())),
                    custom("t", FieldValue::Text("y".into())),
                ],
                ..Issue::default()
            },
            Issue {
                summary: "s".into(),
                description: Some(String::new()),
                assignee: Some(user("u2", "Ann")),
                custom_fields: vec![
                    custom("n", FieldValue::Number(f64::NAN)),
                    custom("u", FieldValue::User(user("u1", "Ann"))),
                ],
                ..Issue::default()
            },
        ];
        for before in &issues {
            for after in &issues {
                assert_eq!(changed(before, after), by_value(before, after));
            }
        }
    }
}
