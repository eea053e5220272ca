//! Whose an id is. Every id a node makes starts with its instance name: events (and so the
//! messages made from them) are `INSTANCE-DATABASE-N`, twins `INSTANCE-DATABASE-tN`, with
//! `DATABASE` a few hex digits and `N` a number. Read from the right, the instance is
//! everything before the second-to-last `-`, so each id has exactly one owner and the ids
//! of two instances never meet. A node takes from a peer only ids the peer owns: a peer
//! cannot name (and so cannot take or block) the node's own future ids, nor another peer's.

/// The instance that made event (or message) id `id`, if it has the shape of one.
pub fn event_owner(id: &str) -> Option<&str> {
    owner(id, all_digits)
}

/// The instance that made twin id `id` (the side that exalated), if it has the shape of one.
pub fn twin_owner(id: &str) -> Option<&str> {
    owner(id, |n| n.strip_prefix('t').is_some_and(all_digits))
}

fn owner(id: &str, number: impl Fn(&str) -> bool) -> Option<&str> {
    let mut parts = id.rsplitn(3, '-');
    let (n, database, instance) = (parts.next()?, parts.next()?, parts.next()?);
    let hex = !database.is_empty() && database.bytes().all(|b| b.is_ascii_hexdigit());
    (number(n) && hex && !instance.is_empty()).then_some(instance)
}

fn all_digits(text: &str) -> bool {
    !text.is_empty() && text.len() <= 19 && text.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_id_has_one_owner() {
        assert_eq!(event_owner("Internal-3f2a1c-42"), Some("Internal"));
        assert_eq!(twin_owner("Internal-3f2a1c-t7"), Some("Internal"));
        // Instance names may hold dashes: the owner is read from the right.
        assert_eq!(event_owner("Big-Corp-00ff-1"), Some("Big-Corp"));
        assert_eq!(twin_owner("Big-Corp-00ff-t1"), Some("Big-Corp"));
        // An event id is not a twin id and the other way round.
        assert_eq!(event_owner("Internal-3f2a1c-t7"), None);
        assert_eq!(twin_owner("Internal-3f2a1c-42"), None);
        for bad in [
            "",
            "Internal",
            "Internal-1",
            "-abc-1",
            "Internal--1",
            "Internal-xyz-1",
            "Internal-abc-",
            "Internal-abc-1x",
            "Internal-abc-99999999999999999999",
        ] {
            assert_eq!(event_owner(bad), None, "{bad:?}");
        }
        assert_eq!(twin_owner("Internal-abc-t"), None);
        assert_eq!(twin_owner("Internal-t1"), None);
    }
}
