//! A doorbell between threads: whoever creates work rings it, the threads waiting for work
//! wake up at once instead of at their next poll.

use std::sync::{Condvar, Mutex};
use std::time::Duration;

#[derive(Default)]
pub struct Wake {
    rings: Mutex<u64>,
    bell: Condvar,
}

impl Wake {
    /// Wake every waiting thread.
    pub fn ring(&self) {
        *self.rings.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        self.bell.notify_all();
    }

    /// The current ring count, to pass to `wait`.
    pub fn rings(&self) -> u64 {
        *self.rings.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sleep until the bell rings after `seen` (a value of `rings`), or `timeout` passes.
    pub fn wait(&self, seen: u64, timeout: Duration) {
        let rings = self.rings.lock().unwrap_or_else(|e| e.into_inner());
        let _ = self
            .bell
            .wait_timeout_while(rings, timeout, |rings| *rings == seen);
    }
}
