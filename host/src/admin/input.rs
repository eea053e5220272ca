//! What the admin API is given, checked before anything is written: a field an issue does
//! not have (`sumary`), a value of the wrong type (`null` included), a date that is not a
//! date. Each is refused with the field's name, instead of being stored and failing later
//! at sync time.

use serde_json::{Map, Value};

use crate::model::{Issue, validate};

/// The fields of an issue in JSON.
const FIELDS: &[&str] = &[
    "key",
    "id",
    "project",
    "issue_type",
    "summary",
    "description",
    "status",
    "priority",
    "resolution",
    "assignee",
    "reporter",
    "labels",
    "components",
    "due_date",
    "parent_key",
    "comments",
    "attachments",
    "custom_fields",
    "created",
    "updated",
];

/// Fields every issue has: a patch cannot remove them, and they cannot be empty. (A new
/// issue may leave out its status: the tracker gives it its first one.)
const REQUIRED: &[&str] = &["summary", "status"];

/// The body of `POST /v1/issues`: a new issue.
pub fn new_issue(body: &[u8]) -> Result<Issue, String> {
    let fields = object(body)?;
    check_fields(&fields, false)?;
    let has_status = fields.contains_key("status");
    let issue: Issue =
        serde_json::from_value(Value::Object(fields)).map_err(|e| format!("not an issue: {e}"))?;
    check_issue(&issue, has_status)?;
    Ok(issue)
}

/// The body of `PATCH /v1/issues/{key}`: a JSON merge patch, checked field by field before
/// it is applied with [`patched`].
pub fn patch(body: &[u8]) -> Result<Map<String, Value>, String> {
    let fields = object(body)?;
    check_fields(&fields, true)?;
    Ok(fields)
}

/// The issue a patch made: checked as a whole.
pub fn patched(merged: Value) -> Result<Issue, String> {
    let issue: Issue =
        serde_json::from_value(merged).map_err(|e| format!("the patched issue is invalid: {e}"))?;
    check_issue(&issue, true)?;
    Ok(issue)
}

fn object(body: &[u8]) -> Result<Map<String, Value>, String> {
    match serde_json::from_slice(body) {
        Ok(Value::Object(fields)) => Ok(fields),
        Ok(other) => Err(format!(
            "expected an issue as a JSON object, not {}",
            kind(&other)
        )),
        Err(e) => Err(format!("not JSON: {e}")),
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Each field on its own: known, of the right type, and (outside a patch, where `null`
/// removes an optional field) not `null`.
fn check_fields(fields: &Map<String, Value>, patch: bool) -> Result<(), String> {
    for (name, value) in fields {
        if !FIELDS.contains(&name.as_str()) {
            return Err(format!(
                "unknown field `{name}`; an issue has {}",
                FIELDS.join(", ")
            ));
        }
        if value.is_null() {
            if REQUIRED.contains(&name.as_str()) {
                return Err(format!(
                    "field `{name}` cannot be null: every issue has one"
                ));
            }
            if !patch {
                return Err(format!("field `{name}` is null: leave it out instead"));
            }
            continue;
        }
        let alone = Value::Object(Map::from_iter([(name.clone(), value.clone())]));
        if let Err(e) = serde_json::from_value::<Issue>(alone) {
            return Err(format!("field `{name}`: {e}"));
        }
    }
    Ok(())
}

fn check_issue(issue: &Issue, with_status: bool) -> Result<(), String> {
    let mut required = vec![("summary", &issue.summary)];
    if with_status {
        required.push(("status", &issue.status));
    }
    for (name, value) in required {
        if value.trim().is_empty() {
            return Err(format!("field `{name}` must not be empty"));
        }
    }
    validate(issue).map_err(|problems| format!("invalid issue: {problems}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(body: &str) -> String {
        new_issue(body.as_bytes()).unwrap_err()
    }

    #[test]
    fn every_field_an_issue_has_is_known() {
        let issue = crate::model::sample_issue(3, 3);
        let json = serde_json::to_value(&issue).unwrap();
        for name in json.as_object().unwrap().keys() {
            assert!(FIELDS.contains(&name.as_str()), "{name}");
        }
        assert_eq!(new_issue(json.to_string().as_bytes()).unwrap(), issue);
    }

    #[test]
    fn bad_fields_are_named() {
        let cases = [
            (
                r#"{"sumary": "x", "status": "Open"}"#,
                "unknown field `sumary`",
            ),
            (
                r#"{"summary": "x", "status": null}"#,
                "field `status` cannot be null",
            ),
            (
                r#"{"summary": "x", "status": "Open", "priority": null}"#,
                "field `priority` is null",
            ),
            (
                r#"{"summary": "x", "status": 3}"#,
                "field `status`: invalid type: integer `3`",
            ),
            (
                r#"{"summary": "", "status": "Open"}"#,
                "field `summary` must not be empty",
            ),
            (r#"{"status": "Open"}"#, "field `summary` must not be empty"),
            (
                r#"{"summary": "x", "status": ""}"#,
                "field `status` must not be empty",
            ),
            (
                r#"{"summary": "x", "status": "Open", "due_date": "soon"}"#,
                "due date \"soon\" is not a date",
            ),
            (
                r#"{"summary": "x", "status": "Open", "updated": "yesterday"}"#,
                "updated \"yesterday\"",
            ),
            (
                r#"["summary"]"#,
                "expected an issue as a JSON object, not an array",
            ),
        ];
        for (body, expected) in cases {
            let error = refused(body);
            assert!(error.contains(expected), "{body}: {error}");
        }
    }

    #[test]
    fn a_new_issue_may_leave_its_status_to_the_tracker() {
        assert_eq!(new_issue(br#"{"summary": "x"}"#).unwrap().status, "");
    }

    #[test]
    fn a_patch_removes_optional_fields_only() {
        assert!(patch(br#"{"priority": null}"#).is_ok());
        let error = patch(br#"{"status": null}"#).unwrap_err();
        assert!(error.contains("field `status` cannot be null"), "{error}");
        let error = patch(br#"{"labels": "x"}"#).unwrap_err();
        assert!(error.contains("field `labels`: invalid type"), "{error}");
    }
}
