//! Comment merging that never duplicates or loses a comment.

use crate::Comment;

/// Merge the comments of a received replica into the local issue's comments.
///
/// The host names comments for the processor (see `merge-base` in the WIT): a remote comment
/// with id `local:ID` is the local comment `ID` (ours, or our copy of theirs); any other is
/// only on the other side so far.
///
/// - A comment only on the other side is added, with the id `remote:ID` so that the host
///   links the copy to it; unless the local issue already has the same comment (same
///   creation time and text), or it was seen before (it was deleted here on purpose).
/// - A comment edited on the other side since `previous` updates the local one.
/// - Nothing is ever removed.
pub fn merge_comments(
    local: Vec<Comment>,
    remote: &[Comment],
    previous: Option<&[Comment]>,
) -> Vec<Comment> {
    let previous = previous.unwrap_or(&[]);
    let mut merged = local;
    for comment in remote {
        let before = previous.iter().find(|old| old.id == comment.id);
        if let Some(own) = comment.id.strip_prefix("local:") {
            let edited = before.is_some_and(|old| old.body != comment.body);
            if let Some(mine) = merged.iter_mut().find(|mine| mine.id == own)
                && edited
            {
                mine.body = comment.body.clone();
                mine.updated = comment.updated.clone();
            }
            continue;
        }
        let copy_id = format!("remote:{}", comment.id);
        let have = merged
            .iter()
            .any(|mine| mine.id == copy_id || same_comment(mine, comment));
        if have || before.is_some() {
            continue;
        }
        merged.push(Comment {
            id: copy_id,
            author: comment.author.clone(),
            body: comment.body.clone(),
            created: comment.created.clone(),
            updated: comment.updated.clone(),
            internal: false,
        });
    }
    merged
}

fn same_comment(a: &Comment, b: &Comment) -> bool {
    a.created == b.created && a.body.trim() == b.body.trim()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn comment(id: &str, body: &str, created: &str) -> Comment {
        Comment {
            id: id.into(),
            author: None,
            body: body.into(),
            created: created.into(),
            updated: None,
            internal: false,
        }
    }

    #[test]
    fn a_remote_comment_is_added_once_and_marked_for_linking() {
        let remote = vec![comment("r1", "hello", "2026-01-01T00:00:00Z")];
        let first = merge_comments(vec![], &remote, None);
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].id, "remote:r1");
        // The host linked the stored copy l7 to r1: it now arrives as `local:l7`.
        let stored = vec![comment("l7", "hello", "2026-01-01T00:00:00Z")];
        let linked = vec![comment("local:l7", "hello", "2026-01-01T00:00:00Z")];
        assert_eq!(
            merge_comments(stored.clone(), &linked, Some(&linked)),
            stored
        );
        // Without a link, the content match still prevents a duplicate.
        assert_eq!(merge_comments(stored.clone(), &remote, None), stored);
    }

    #[test]
    fn our_own_comment_coming_back_is_not_added() {
        let local = vec![comment("l1", "mine", "2026-01-01T00:00:00Z")];
        let echoed = vec![comment("local:l1", "mine", "2026-01-01T00:00:00Z")];
        assert_eq!(merge_comments(local.clone(), &echoed, None), local);
    }

    #[test]
    fn remote_edits_update_and_deletions_are_kept() {
        let previous = vec![
            comment("local:l1", "draft", "2026-01-01T00:00:00Z"),
            comment("r2", "gone", "t"),
        ];
        let local = vec![comment("l1", "draft", "2026-01-01T00:00:00Z")];
        let remote = vec![
            comment("local:l1", "final", "2026-01-01T00:00:00Z"),
            comment("r2", "gone", "t"),
        ];
        let merged = merge_comments(local, &remote, Some(&previous));
        assert_eq!(
            merged.len(),
            1,
            "r2 was seen before and deleted here: not added again"
        );
        assert_eq!(merged[0].body, "final");
    }
}
