//! What a well-formed issue or replica looks like, beyond its types: the host checks every
//! processor's output with this, so a bad value is reported as the processor's fault
//! instead of confusing a tracker.

use std::collections::HashSet;

use super::{FieldValue, Issue};

/// Problems named at most; past them, a count. A result with 50,000 bad fields needs no
/// 50,000-line error.
const MAX_PROBLEMS: usize = 20;

/// Every problem with the issue, or `Ok` when there is none. Linear in the size of the
/// issue: it runs on whatever a processor returns.
pub fn validate(issue: &Issue) -> Result<(), String> {
    let mut problems = Vec::new();
    if let Some(date) = &issue.due_date
        && !is_date(date)
    {
        problems.push(format!("due date {date:?} is not a date like 2026-11-27"));
    }
    for (what, time) in [("created", &issue.created), ("updated", &issue.updated)] {
        if let Some(time) = time
            && !is_date_time(time)
        {
            problems.push(format!(
                "{what} {time:?} is not an RFC 3339 UTC time like 2026-11-27T20:12:46Z"
            ));
        }
    }
    for comment in &issue.comments {
        if !comment.created.is_empty() && !is_date_time(&comment.created) {
            problems.push(format!(
                "comment {:?} has creation time {:?}, not an RFC 3339 UTC time",
                comment.id, comment.created
            ));
        }
    }
    for attachment in &issue.attachments {
        if attachment.sha256.len() != 64
            || !attachment
                .sha256
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            problems.push(format!(
                "attachment {:?} has sha256 {:?}, not 64 lower-case hex digits",
                attachment.file_name, attachment.sha256
            ));
        }
    }
    let mut names: HashSet<&str> = HashSet::with_capacity(issue.custom_fields.len());
    for field in &issue.custom_fields {
        if field.name.trim().is_empty() {
            problems.push("a custom field has an empty name".into());
        } else if !names.insert(&field.name) {
            problems.push(format!(
                "custom field {:?} appears more than once",
                field.name
            ));
        }
        match &field.value {
            FieldValue::Date(date) if !is_date(date) => problems.push(format!(
                "custom field {:?}: {date:?} is not a date like 2026-11-27",
                field.name
            )),
            FieldValue::DateTime(time) if !is_date_time(time) => problems.push(format!(
                "custom field {:?}: {time:?} is not an RFC 3339 UTC time",
                field.name
            )),
            FieldValue::Number(n) if !n.is_finite() => problems.push(format!(
                "custom field {:?}: {n} is not a finite number",
                field.name
            )),
            _ => {}
        }
    }
    if problems.is_empty() {
        return Ok(());
    }
    let more = problems.len().saturating_sub(MAX_PROBLEMS);
    problems.truncate(MAX_PROBLEMS);
    if more > 0 {
        problems.push(format!("and {more} more problems"));
    }
    Err(problems.join("; "))
}

/// `YYYY-MM-DD` with a real month and day.
fn is_date(text: &str) -> bool {
    humantime::parse_rfc3339(&format!("{text}T00:00:00Z")).is_ok() && text.len() == 10
}

/// RFC 3339 in UTC (`Z`), with or without fractional seconds.
fn is_date_time(text: &str) -> bool {
    humantime::parse_rfc3339(text).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::sample_issue;

    #[test]
    fn the_sample_issue_is_valid() {
        assert_eq!(validate(&sample_issue(10, 20)), Ok(()));
    }

    #[test]
    fn many_fields_are_checked_in_linear_time_and_problems_are_capped() {
        let mut issue = sample_issue(0, 0);
        for i in 0..200_000 {
            issue.custom_fields.push(crate::model::CustomField {
                name: format!("f{}", i % 100_000),
                value: FieldValue::Null,
            });
        }
        let started = std::time::Instant::now();
        let problems = validate(&issue).unwrap_err();
        // Quadratic, this took minutes; linear, milliseconds (debug build included).
        assert!(started.elapsed().as_secs() < 5, "{:?}", started.elapsed());
        assert!(problems.ends_with("and 99980 more problems"), "{problems}");
    }

    #[test]
    fn every_problem_is_named() {
        let mut issue = sample_issue(2, 1);
        issue.due_date = Some("next tuesday".into());
        issue.comments[0].created = "yesterday".into();
        issue.custom_fields[1].name = issue.custom_fields[0].name.clone();
        issue.set_custom_field("when", FieldValue::DateTime("noon".into()));
        let problems = validate(&issue).unwrap_err();
        for expected in [
            "due date \"next tuesday\"",
            "creation time \"yesterday\"",
            "appears more than once",
            "\"noon\"",
        ] {
            assert!(problems.contains(expected), "{problems}");
        }
    }
}
