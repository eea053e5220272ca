//! A realistic issue, for dry runs (`twinsync plugin check`) and benchmarks.

use super::{Comment, CustomField, FieldValue, Issue, User};

/// An issue like a busy support ticket: `custom_fields` custom fields of mixed types and
/// `comments` comments from two people.
pub fn sample_issue(custom_fields: usize, comments: usize) -> Issue {
    let user = |id: &str, name: &str| User {
        id: id.into(),
        display_name: name.into(),
        email: Some(format!("{id}@example.com")),
    };
    let value = |i: usize| match i % 5 {
        0 => FieldValue::Text(format!("value {i}")),
        1 => FieldValue::Number(i as f64 * 1.5),
        2 => FieldValue::Option(["Gold", "Silver", "Bronze"][i % 3].into()),
        3 => FieldValue::Date(format!("2026-{:02}-{:02}", i % 12 + 1, i % 28 + 1)),
        _ => FieldValue::MultiOption(vec!["web".into(), "mobile".into()]),
    };
    Issue {
        key: Some("SUP-42".into()),
        id: Some("10042".into()),
        project: "SUP".into(),
        issue_type: "Bug".into(),
        summary: "Checkout fails with a timeout for customers in the EU region".into(),
        description: Some(
            "Since the deploy on Monday, about 3% of checkouts in eu-west fail after 30 s. \
             Steps: add two items, pay with a saved card, wait. Expected: confirmation page."
                .into(),
        ),
        status: "In Progress".into(),
        priority: Some("High".into()),
        resolution: None,
        assignee: Some(user("dana", "Dana Scully")),
        reporter: Some(user("fox", "Fox Mulder")),
        labels: vec!["checkout".into(), "eu".into(), "regression".into()],
        components: vec!["payments".into(), "web".into()],
        due_date: Some("2026-12-15".into()),
        parent_key: None,
        comments: (0..comments)
            .map(|i| Comment {
                id: format!("c{i}"),
                author: Some(if i % 2 == 0 { user("dana", "Dana Scully") } else { user("fox", "Fox Mulder") }),
                body: format!("Update {i}: looked at the traces again; the payment provider answers in {} ms.", 200 + i * 37),
                created: format!("2026-11-{:02}T{:02}:15:00Z", i % 27 + 1, i % 24),
                updated: None,
                internal: i % 7 == 3,
            })
            .collect(),
        attachments: Vec::new(),
        custom_fields: (0..custom_fields)
            .map(|i| CustomField {
                name: format!("field {i}"),
                value: value(i),
            })
            .collect(),
        created: Some("2026-11-02T09:00:00Z".into()),
        updated: Some("2026-11-27T18:30:00Z".into()),
    }
}
