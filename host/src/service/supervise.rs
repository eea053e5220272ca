//! Supervision of the node's work loops. A loop that panics, or returns while the node is
//! not stopping, takes the node down with an error (and a non-zero exit status, so that a
//! service manager starts it again): a node whose listeners answered while nothing was
//! processed would take messages it never applies. Restarting the loop in place could
//! repeat the same panic for ever, with nobody told.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};

/// What the first failed loop reported, and a way to wait for it.
#[derive(Default)]
pub struct Supervisor {
    failure: Mutex<Option<String>>,
    notify: tokio::sync::Notify,
}

impl Supervisor {
    /// Run `work` on a thread called `name`. If it panics, or returns before `stop` is set,
    /// the supervisor records why and wakes [`Supervisor::failed`].
    pub fn spawn(
        self: &Arc<Self>,
        name: String,
        stop: Arc<AtomicBool>,
        work: impl FnOnce() + Send + 'static,
    ) -> std::io::Result<JoinHandle<()>> {
        let supervisor = self.clone();
        thread::Builder::new().name(name.clone()).spawn(move || {
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work));
            let why = match outcome {
                Err(panic) => format!("{name} panicked: {}", panic_message(&*panic)),
                Ok(()) if !stop.load(Ordering::Relaxed) => format!("{name} stopped by itself"),
                Ok(()) => return,
            };
            tracing::error!("{why}; the node stops so that it can be started again");
            supervisor
                .failure
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get_or_insert(why);
            supervisor.notify.notify_one();
        })
    }

    /// Wait until a loop failed; returns what it reported.
    pub async fn failed(&self) -> String {
        loop {
            if let Some(why) = self
                .failure
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone()
            {
                return why;
            }
            self.notify.notified().await;
        }
    }
}

/// What a caught panic said.
pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn a_panicking_loop_is_reported() {
        let supervisor = Arc::new(Supervisor::default());
        let stop = Arc::new(AtomicBool::new(false));
        let thread = supervisor
            .spawn("the event loop".into(), stop, || panic!("boom"))
            .unwrap();
        thread.join().unwrap();
        let why = runtime().block_on(supervisor.failed());
        assert_eq!(why, "the event loop panicked: boom");
    }

    #[test]
    fn a_loop_that_returns_early_is_reported_and_one_that_was_stopped_is_not() {
        let supervisor = Arc::new(Supervisor::default());
        let stop = Arc::new(AtomicBool::new(true));
        supervisor
            .spawn("a sender".into(), stop, || {})
            .unwrap()
            .join()
            .unwrap();
        assert!(supervisor.failure.lock().unwrap().is_none());
        let running = Arc::new(AtomicBool::new(false));
        supervisor
            .spawn("a sender".into(), running, || {})
            .unwrap()
            .join()
            .unwrap();
        let why = runtime().block_on(supervisor.failed());
        assert_eq!(why, "a sender stopped by itself");
    }
}
