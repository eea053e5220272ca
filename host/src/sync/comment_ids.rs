//! Comment ids across the two sides. Each side names comments by its own ids; a twin's
//! links say which local comment is a copy of which remote one. Replicas travel with the
//! sender's ids, except that a copy of a comment of the receiver carries `twin:ID` (the
//! receiver's own id). Processors see, in what they receive, `local:ID` for any comment
//! the local side already has, and return `remote:ID` for a comment they add from the
//! other side; the host then links the tracker's new comment to `ID`.

use crate::model::Issue;

/// (local id, remote id) pairs of one twin.
pub type Links = [(String, String)];

/// A received replica (or `previous`), as the incoming processor sees it.
pub fn for_processor(issue: &mut Issue, links: &Links) {
    for comment in &mut issue.comments {
        if let Some(own) = comment.id.strip_prefix("twin:") {
            comment.id = format!("local:{own}");
        } else if let Some((local, _)) = links.iter().find(|(_, remote)| *remote == comment.id) {
            comment.id = format!("local:{local}");
        }
    }
}

/// A replica about to be sent: copies of the other side's comments carry its ids.
pub fn for_remote(replica: &mut Issue, links: &Links) {
    for comment in &mut replica.comments {
        if let Some((_, remote)) = links.iter().find(|(local, _)| *local == comment.id) {
            comment.id = format!("twin:{remote}");
        }
    }
}

/// Links for the comments a processor added from the other side (`remote:ID`), once the
/// tracker has stored them under ids of its own. `before` is the local issue the processor
/// got: the comments it did not have are the new ones, in the order the result lists them.
pub fn new_links(before: &Issue, result: &Issue, stored: &Issue) -> Vec<(String, String)> {
    let mut fresh = stored
        .comments
        .iter()
        .filter(|c| !before.comments.iter().any(|b| b.id == c.id));
    let mut links = Vec::new();
    for comment in &result.comments {
        let known = before.comments.iter().any(|b| b.id == comment.id);
        if known {
            continue;
        }
        let Some(stored) = fresh.next() else { break };
        if let Some(remote) = comment.id.strip_prefix("remote:") {
            links.push((stored.id.clone(), remote.to_string()));
        }
    }
    links
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Comment;

    fn issue(ids: &[&str]) -> Issue {
        Issue {
            comments: ids
                .iter()
                .map(|id| Comment {
                    id: id.to_string(),
                    author: None,
                    body: format!("body of {id}"),
                    created: String::new(),
                    updated: None,
                    internal: false,
                })
                .collect(),
            ..Issue::default()
        }
    }

    #[test]
    fn ids_round_trip_between_the_sides() {
        let links = vec![("c7".to_string(), "r3".to_string())];
        let mut received = issue(&["r3", "r4", "twin:c1"]);
        for_processor(&mut received, &links);
        let ids: Vec<&str> = received.comments.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["local:c7", "r4", "local:c1"]);

        let mut sent = issue(&["c1", "c7"]);
        for_remote(&mut sent, &links);
        let ids: Vec<&str> = sent.comments.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["c1", "twin:r3"]);
    }

    #[test]
    fn new_comments_are_linked_to_where_they_came_from() {
        let before = issue(&["c1"]);
        let result = issue(&["c1", "remote:r4", ""]);
        let stored = issue(&["c1", "c8", "c9"]);
        assert_eq!(
            new_links(&before, &result, &stored),
            [("c8".to_string(), "r4".to_string())]
        );
    }
}
