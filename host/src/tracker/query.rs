//! A small query language to select issues for bulk exalate:
//! `status=Open project=INT label=customer summary~login`. Terms are ANDed; `=` compares
//! exactly (case-insensitive), `~` looks for a substring; `*` alone selects everything.

use anyhow::{Result, bail};

use crate::model::Issue;

/// A parsed query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    terms: Vec<Term>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Term {
    field: Field,
    contains: bool,
    value: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Key,
    Project,
    Status,
    Type,
    Priority,
    Label,
    Summary,
}

const FIELDS: &str = "key, project, status, type, priority, label, summary";

impl Query {
    pub fn parse(text: &str) -> Result<Query> {
        let mut terms = Vec::new();
        for word in text.split_whitespace() {
            if word == "*" || word.eq_ignore_ascii_case("and") {
                continue;
            }
            let (name, contains, value) = match (word.split_once('~'), word.split_once('=')) {
                (Some((name, value)), _) => (name, true, value),
                (None, Some((name, value))) => (name, false, value),
                (None, None) => bail!(
                    "`{word}` is not a term: write FIELD=VALUE or FIELD~TEXT (fields: {FIELDS})"
                ),
            };
            let field = match name.to_ascii_lowercase().as_str() {
                "key" => Field::Key,
                "project" => Field::Project,
                "status" => Field::Status,
                "type" => Field::Type,
                "priority" => Field::Priority,
                "label" => Field::Label,
                "summary" => Field::Summary,
                other => bail!("unknown field `{other}` in the query (fields: {FIELDS})"),
            };
            terms.push(Term {
                field,
                contains,
                value: value.replace('_', " ").to_lowercase(),
            });
        }
        if terms.is_empty() && text.trim() != "*" {
            bail!("an empty query: give terms like status=Open, or `*` for every issue");
        }
        Ok(Query { terms })
    }

    pub fn matches(&self, issue: &Issue) -> bool {
        self.terms.iter().all(|term| {
            let test = |text: &str| {
                let text = text.to_lowercase();
                if term.contains {
                    text.contains(&term.value)
                } else {
                    text == term.value
                }
            };
            match term.field {
                Field::Key => issue.key.as_deref().is_some_and(test),
                Field::Project => test(&issue.project),
                Field::Status => test(&issue.status),
                Field::Type => test(&issue.issue_type),
                Field::Priority => issue.priority.as_deref().is_some_and(test),
                Field::Label => issue.labels.iter().any(|l| test(l)),
                Field::Summary => test(&issue.summary),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terms_are_anded() {
        let issue = Issue {
            summary: "Login fails".into(),
            status: "In Progress".into(),
            labels: vec!["customer".into()],
            ..Issue::default()
        };
        assert!(
            Query::parse("status=in_progress label=customer")
                .unwrap()
                .matches(&issue)
        );
        assert!(Query::parse("summary~login").unwrap().matches(&issue));
        assert!(
            !Query::parse("status=Open and summary~login")
                .unwrap()
                .matches(&issue)
        );
        assert!(Query::parse("*").unwrap().matches(&issue));
        assert!(Query::parse("colour=red").is_err());
        assert!(Query::parse("").is_err());
    }
}
