//! What each connection's sender last saw of the other node: when a message was last
//! taken, and the last failure. In memory, for the console's overview ("peer reachable").

use std::collections::HashMap;
use std::sync::Mutex;

/// One connection's link to the other node.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Link {
    /// When the other node last took a message (ms since epoch).
    pub last_ok: Option<i64>,
    /// When sending last failed, and why.
    pub last_error: Option<(i64, String)>,
}

impl Link {
    /// Reachable unless the last attempt failed; `None` before any attempt.
    pub fn reachable(&self) -> Option<bool> {
        match (&self.last_ok, &self.last_error) {
            (None, None) => None,
            (Some(_), None) => Some(true),
            (None, Some(_)) => Some(false),
            (Some(ok), Some((failed, _))) => Some(ok > failed),
        }
    }
}

/// The links of every sending connection.
#[derive(Debug, Default)]
pub struct Peers(Mutex<HashMap<String, Link>>);

impl Peers {
    fn update(&self, connection: &str, f: impl FnOnce(&mut Link)) {
        let mut links = self.0.lock().unwrap_or_else(|e| e.into_inner());
        f(links.entry(connection.to_string()).or_default());
    }

    pub fn reached(&self, connection: &str, now_ms: i64) {
        self.update(connection, |link| link.last_ok = Some(now_ms));
    }

    pub fn failed(&self, connection: &str, now_ms: i64, why: String) {
        self.update(connection, |link| link.last_error = Some((now_ms, why)));
    }

    /// The link of `connection`; the default before its sender tried anything.
    pub fn get(&self, connection: &str) -> Link {
        let links = self.0.lock().unwrap_or_else(|e| e.into_inner());
        links.get(connection).cloned().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_attempt_decides() {
        let peers = Peers::default();
        assert_eq!(peers.get("c").reachable(), None);
        peers.failed("c", 1, "refused".into());
        assert_eq!(peers.get("c").reachable(), Some(false));
        peers.reached("c", 2);
        assert_eq!(peers.get("c").reachable(), Some(true));
        peers.failed("c", 3, "refused".into());
        assert_eq!(peers.get("c").reachable(), Some(false));
    }
}
