//! The WASI a processor sees: nothing granted (no files, environment, network), a wall clock
//! fixed at the event's time, a virtual monotonic clock, and a random stream keyed per node
//! and seeded per event. The same input always gives the same output, so a failure can be
//! replayed from its stored input.
//!
//! Time is virtual because real time is something a processor has no use for and the host
//! cannot afford: a WASI sleep (`subscribe-duration`, then `poll`) runs in host code, where
//! the epoch deadline cannot interrupt it, so one processor sleeping for an hour would hold
//! a worker for an hour. Here a sleep returns at once and moves the virtual clock forward;
//! sleeping past the invocation's time limit ends the call as a timeout, at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use rand::SeedableRng;
use rand::rngs::StdRng;
use sha2::Sha256;
use wasmtime::StoreContextMut;
use wasmtime::component::{Linker, Resource};
use wasmtime_wasi::p2::{DynPollable, Pollable, subscribe};
use wasmtime_wasi::{HostMonotonicClock, HostWallClock, WasiCtx, WasiView};

use super::log::EventLog;
use super::state::State;
use crate::model::SyncContext;

/// The WASI version whose clock functions the sandbox replaces; guests built against any
/// 0.2.x release link to it (the linker matches semver-compatible imports).
const MONOTONIC_CLOCK: &str = "wasi:clocks/monotonic-clock@0.2.12";

/// Nanoseconds on an invocation's virtual monotonic clock. Every reading advances it by a
/// microsecond (so that guests measuring elapsed time never divide by zero); every sleep
/// advances it by the time slept.
#[derive(Clone, Default)]
pub struct VirtualTime(Arc<AtomicU64>);

impl VirtualTime {
    fn now(&self) -> u64 {
        self.0.fetch_add(1_000, Ordering::Relaxed)
    }

    /// Sleep until `nanos` past the start, or for `nanos` more: returns the new time.
    fn advance_to(&self, when: u64) -> u64 {
        self.0.fetch_max(when, Ordering::Relaxed).max(when)
    }

    fn elapsed(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Raised (as a trap) when a processor sleeps past its time limit: reported as `timeout`.
#[derive(Debug)]
pub struct SleptPastDeadline {
    pub slept_ns: u64,
}

impl std::fmt::Display for SleptPastDeadline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the processor slept for {} ns", self.slept_ns)
    }
}

impl std::error::Error for SleptPastDeadline {}

/// A WASI context that grants nothing: no files, no environment, no network, a clock fixed
/// at the event's time, and a random source derived from `random_key` and the event id.
pub fn wasi_context(
    ctx: &SyncContext,
    log: &EventLog,
    time: &VirtualTime,
    random_key: &[u8; 32],
) -> WasiCtx {
    let now = humantime::parse_rfc3339(&ctx.now)
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .unwrap_or_default();
    let seed = event_seed(random_key, &ctx.event_id);
    let mut builder = WasiCtx::builder();
    builder
        .stdout(log.clone())
        .stderr(log.clone())
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .wall_clock(FixedClock(now))
        .monotonic_clock(StepClock(time.clone()))
        .insecure_random_seed(u128::from_le_bytes(
            seed[..16].try_into().unwrap_or_default(),
        ))
        .insecure_random(StdRng::from_seed(seed))
        // A different stream for `wasi:random/random`: the two must not repeat each other.
        .secure_random(StdRng::from_seed(event_seed(&seed, "secure")));
    builder.build()
}

/// HMAC-SHA256 of the event id under the node's key: the seed of the event's random stream
/// (ChaCha). Same event, same bytes; without the key, the id says nothing about them.
fn event_seed(key: &[u8; 32], event_id: &str) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key");
    mac.update(event_id.as_bytes());
    mac.finalize().into_bytes().into()
}

/// Replace the monotonic clock's `subscribe-*` functions with virtual sleeps that never
/// block. Call after WASI is linked.
pub fn add_virtual_sleep(linker: &mut Linker<State>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let mut clock = linker.instance(MONOTONIC_CLOCK)?;
    clock.func_wrap(
        "subscribe-duration",
        |store: StoreContextMut<'_, State>, (nanos,): (u64,)| {
            let time = &store.data().time;
            let when = time.elapsed().saturating_add(nanos);
            sleep_until(store, when)
        },
    )?;
    clock.func_wrap(
        "subscribe-instant",
        |store: StoreContextMut<'_, State>, (when,): (u64,)| sleep_until(store, when),
    )?;
    linker.allow_shadowing(false);
    Ok(())
}

/// Move the virtual clock to `when` and hand back a pollable that is ready at once; past the
/// time limit, stop the processor.
fn sleep_until(
    mut store: StoreContextMut<'_, State>,
    when: u64,
) -> wasmtime::Result<(Resource<DynPollable>,)> {
    let state = store.data_mut();
    let now = state.time.advance_to(when);
    // Time slept and time spent running count together against the limit.
    let ran = u64::try_from(state.started.elapsed().as_nanos()).unwrap_or(u64::MAX);
    if now.saturating_add(ran) > state.time_limit_ns {
        return Err(wasmtime::Error::new(SleptPastDeadline { slept_ns: now }));
    }
    let table = state.ctx().table;
    let ready = table.push(Ready)?;
    Ok((subscribe(table, ready)?,))
}

/// A pollable that is always ready: the end of a virtual sleep.
struct Ready;

#[async_trait::async_trait]
impl Pollable for Ready {
    async fn ready(&mut self) {}
}

/// The wall clock of an event: always the event's time.
struct FixedClock(Duration);

impl HostWallClock for FixedClock {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }
    fn now(&self) -> Duration {
        self.0
    }
}

/// The monotonic clock WASI reads: the invocation's virtual time.
struct StepClock(VirtualTime);

impl HostMonotonicClock for StepClock {
    fn resolution(&self) -> u64 {
        1_000
    }
    fn now(&self) -> u64 {
        self.0.now()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_streams_do_not_repeat_and_depend_on_the_key() {
        use rand::Rng;
        let mut a = StdRng::from_seed(event_seed(&[1; 32], "event-1"));
        let mut bytes = vec![0u8; 4096];
        a.fill_bytes(&mut bytes);
        // No 32-byte period (the old stream repeated SHA-256 of the id).
        assert_ne!(bytes[..32], bytes[32..64]);
        assert_ne!(
            event_seed(&[1; 32], "event-1"),
            event_seed(&[2; 32], "event-1")
        );
        assert_eq!(
            event_seed(&[1; 32], "event-1"),
            event_seed(&[1; 32], "event-1")
        );
    }

    #[test]
    fn virtual_time_only_moves_forward() {
        let time = VirtualTime::default();
        assert_eq!(time.advance_to(5_000), 5_000);
        assert_eq!(time.advance_to(1_000), 5_000);
        assert_eq!(time.now(), 5_000);
        assert_eq!(time.elapsed(), 6_000);
    }
}
