//! The footer twinsync puts under a comment it writes into Redmine.
//!
//! Redmine records every journal as written by the API user, at the moment it is written. A
//! comment copied from the other tracker has its own author and time, and the sync engine
//! recognises a comment it already holds by creation time and text (`merge_comments`): a
//! copy whose time changed would come back from the other side as a new comment, a
//! duplicate. So the note keeps them on its last line, which people read as attribution and
//! twinsync reads back:
//!
//! ```text
//! [twinsync] comment by Ada Lovelace at 2026-11-27T20:42:31Z, event Internal-12
//! ```
//!
//! The event names the sync event that wrote the note: the change feed counts such
//! journals as twinsync's own changes, and a repeated event does not write them twice.

const MARK: &str = "[twinsync] comment";

/// What the footer records; every part is optional.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Footer {
    pub author: Option<String>,
    /// RFC 3339.
    pub created: Option<String>,
    pub event: Option<String>,
}

/// The note for `body` with `footer` under it (no footer when it would say nothing).
pub(super) fn compose(body: &str, footer: &Footer) -> String {
    if *footer == Footer::default() {
        return body.to_string();
    }
    let mut line = MARK.to_string();
    if let Some(author) = &footer.author {
        line.push_str(" by ");
        line.push_str(&author.replace(['\r', '\n'], " "));
    }
    if let Some(created) = &footer.created {
        line.push_str(" at ");
        line.push_str(created);
    }
    if let Some(event) = &footer.event {
        line.push_str(", event ");
        line.push_str(event);
    }
    format!("{body}\n\n{line}")
}

/// A note's text (line ends normalised to `\n`) and its footer, if it has one.
pub(super) fn split(notes: &str) -> (String, Option<Footer>) {
    let notes = notes.replace("\r\n", "\n");
    let (body, last) = match notes.rsplit_once("\n\n") {
        Some((body, last)) => (body, last),
        None => ("", notes.as_str()),
    };
    match last.strip_prefix(MARK).and_then(parse) {
        Some(footer) if !last.contains('\n') => (body.to_string(), Some(footer)),
        _ => (notes.clone(), None),
    }
}

/// The part of a footer line after the mark, read from the right: `, event E`, ` at TIME`,
/// then ` by AUTHOR`.
fn parse(mut rest: &str) -> Option<Footer> {
    let mut footer = Footer::default();
    if let Some((head, event)) = rest.rsplit_once(", event ") {
        footer.event = Some(event.to_string());
        rest = head;
    }
    if let Some((head, time)) = rest.rsplit_once(" at ")
        && humantime::parse_rfc3339(time).is_ok()
    {
        footer.created = Some(time.to_string());
        rest = head;
    }
    if let Some(author) = rest.strip_prefix(" by ") {
        footer.author = Some(author.to_string());
    } else if !rest.is_empty() {
        return None;
    }
    Some(footer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_footer_reads_back_as_written() {
        let full = Footer {
            author: Some("Ada at Home, by the sea".into()),
            created: Some("2026-11-27T20:42:31Z".into()),
            event: Some("Internal-12".into()),
        };
        let note = compose("Line one\n\nLine two", &full);
        assert_eq!(split(&note), ("Line one\n\nLine two".into(), Some(full)));

        let only_event = Footer {
            event: Some("External-3".into()),
            ..Footer::default()
        };
        assert_eq!(
            split(&compose("x", &only_event)),
            ("x".into(), Some(only_event))
        );
        assert_eq!(compose("plain", &Footer::default()), "plain");
    }

    #[test]
    fn notes_without_a_footer_are_left_alone() {
        for notes in [
            "Just a comment",
            "Ends with a mention of\n\n[twinsync] comments in general",
            "[twinsync] comment by\nsomeone",
        ] {
            assert_eq!(split(notes), (notes.to_string(), None), "{notes}");
        }
        assert_eq!(split("a\r\nb"), ("a\nb".into(), None));
    }
}
