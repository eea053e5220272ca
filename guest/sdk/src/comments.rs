//! Comment merging that never duplicates a comment.

use crate::Comment;

/// Merge the comments of a received replica into the local issue's comments.
///
/// - A remote comment that is new since `previous` is added, unless the local issue already
///   holds the same comment (same creation time and text): that is the echo of a comment
///   this side sent, or one added before.
/// - A remote comment edited since `previous` updates the local copy it was made from.
/// - Nothing is ever removed: a comment deleted on one side stays on the other.
///
/// New comments get an empty id: the tracker assigns one when it stores the issue.
pub fn merge_comments(
    local: Vec<Comment>,
    remote: &[Comment],
    previous: Option<&[Comment]>,
) -> Vec<Comment> {
    let previous = previous.unwrap_or(&[]);
    let mut merged = local;
    for comment in remote {
        let before = previous.iter().find(|old| old.id == comment.id);
        // Locate our copy by what the comment looked like when we last saw it.
        let known = before.unwrap_or(comment);
        match merged.iter_mut().find(|mine| same_comment(mine, known)) {
            Some(mine) if before.is_some_and(|old| old.body != comment.body) => {
                mine.body = comment.body.clone();
                mine.updated = comment.updated.clone();
            }
            Some(_) => {}
            None if before.is_none() => merged.push(Comment {
                id: String::new(),
                author: comment.author.clone(),
                body: comment.body.clone(),
                created: comment.created.clone(),
                updated: comment.updated.clone(),
                internal: false,
            }),
            // Seen before but gone locally: someone deleted our copy on purpose.
            None => {}
        }
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
    fn adds_new_remote_comments_once() {
        let remote = vec![comment("r1", "hello", "2026-01-01T00:00:00Z")];
        let first = merge_comments(vec![], &remote, None);
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].id, "");
        // The tracker stored it with a local id; the same replica arrives again.
        let stored = vec![comment("l7", "hello", "2026-01-01T00:00:00Z")];
        let again = merge_comments(stored.clone(), &remote, Some(&remote));
        assert_eq!(again, stored);
        // Even without `previous`, the content match prevents a duplicate.
        assert_eq!(merge_comments(stored.clone(), &remote, None), stored);
    }

    #[test]
    fn echo_of_a_local_comment_is_not_added() {
        let local = vec![comment("l1", "mine", "2026-01-01T00:00:00Z")];
        let echoed = vec![comment("r9", "mine", "2026-01-01T00:00:00Z")];
        assert_eq!(merge_comments(local.clone(), &echoed, None), local);
    }

    #[test]
    fn remote_edit_updates_local_copy_and_deletions_are_kept() {
        let previous = vec![
            comment("r1", "draft", "2026-01-01T00:00:00Z"),
            comment("r2", "gone", "2026-01-02T00:00:00Z"),
        ];
        let local = vec![
            comment("l1", "draft", "2026-01-01T00:00:00Z"),
            comment("l2", "gone", "2026-01-02T00:00:00Z"),
        ];
        let remote = vec![comment("r1", "final", "2026-01-01T00:00:00Z")];
        let merged = merge_comments(local, &remote, Some(&previous));
        assert_eq!(merged.len(), 2);
        assert_eq!(merged[0].id, "l1");
        assert_eq!(merged[0].body, "final");
        assert_eq!(merged[1].body, "gone");
    }
}
