//! Attachment merging by content hash.

use crate::Attachment;

/// The local attachments plus the remote ones whose content (SHA-256) the local issue does
/// not have yet; the same file is never listed twice, whatever its id or name. New ones get
/// an empty id: the tracker assigns one.
pub fn merge_attachments(local: Vec<Attachment>, remote: &[Attachment]) -> Vec<Attachment> {
    let mut merged = local;
    for attachment in remote {
        if !merged.iter().any(|mine| mine.sha256 == attachment.sha256) {
            merged.push(Attachment {
                id: String::new(),
                ..attachment.clone()
            });
        }
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(id: &str, name: &str, sha256: &str) -> Attachment {
        Attachment {
            id: id.into(),
            file_name: name.into(),
            mime_type: "text/plain".into(),
            size: 1,
            sha256: sha256.into(),
        }
    }

    #[test]
    fn the_same_content_is_listed_once() {
        let local = vec![file("a1", "log.txt", "aa")];
        let remote = vec![file("r1", "renamed.txt", "aa"), file("r2", "new.txt", "bb")];
        let merged = merge_attachments(local, &remote);
        let names: Vec<&str> = merged.iter().map(|a| a.file_name.as_str()).collect();
        assert_eq!(names, ["log.txt", "new.txt"]);
        assert_eq!(merged[1].id, "");
    }
}
