//! One invocation: a fresh store with its limits, instantiate, call, drop. Nothing survives
//! from one event to the next, and a store that trapped is thrown away with the rest.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, UNIX_EPOCH};

use sha2::{Digest, Sha256};
use wasmtime::component::Instance;
use wasmtime::{Store, Trap, WasmBacktrace};
use wasmtime_wasi::{Deterministic, HostMonotonicClock, HostWallClock, WasiCtx};

use super::Limits;
use super::crash::panic_message;
use super::engine::Runtime;
use super::failure::ProcessorFailure;
use super::log::EventLog;
use super::plugin::Plugin;
use super::state::{
    HelperSetup, HostCallLimitExceeded, RecordedConflict, Side, State, SyncBack, TwinDirectory,
};
use super::wit_types as wit;
use super::wit_types::MergeBase;
use crate::model::{Issue, Replica, SyncContext};

/// Everything an invocation needs besides the processor's own arguments.
pub struct Call<'a> {
    pub ctx: SyncContext,
    pub limits: &'a Limits,
    /// Whether this side may send to the other (decides what sync back answers).
    pub can_send: bool,
    pub directory: Arc<dyn TwinDirectory>,
    /// What `read-merge-base` answers (incoming only; empty otherwise).
    pub merge_base: MergeBase,
}

/// The result of an invocation, with what the processor printed and asked for.
#[derive(Debug)]
pub struct Outcome<T> {
    pub result: Result<T, ProcessorFailure>,
    pub log: String,
    pub sync_back: SyncBack,
    /// The processor asked to stop syncing the twin.
    pub unexalate: bool,
    /// Conflicts recorded for review.
    pub conflicts: Vec<RecordedConflict>,
    pub fuel_used: u64,
    /// The most linear memory the instance had, in bytes.
    pub peak_memory: usize,
}

impl<T> Outcome<T> {
    /// An invocation that failed before the processor ran.
    fn refused(failure: ProcessorFailure) -> Self {
        Outcome {
            result: Err(failure),
            log: String::new(),
            sync_back: SyncBack::NotRequested,
            unexalate: false,
            conflicts: Vec::new(),
            fuel_used: 0,
            peak_memory: 0,
        }
    }

    /// The same outcome with its result passed through `f`.
    pub fn and_then<U>(self, f: impl FnOnce(T) -> Result<U, ProcessorFailure>) -> Outcome<U> {
        Outcome {
            result: self.result.and_then(f),
            log: self.log,
            sync_back: self.sync_back,
            unexalate: self.unexalate,
            conflicts: self.conflicts,
            fuel_used: self.fuel_used,
            peak_memory: self.peak_memory,
        }
    }
}

impl Plugin {
    /// Run the incoming processor on a received replica.
    pub fn run_incoming(
        &self,
        runtime: &Runtime,
        call: Call<'_>,
        replica: &Replica,
        previous: Option<&Replica>,
        issue: &Issue,
    ) -> Outcome<Issue> {
        let Some(indices) = &self.incoming else {
            return not_exported(self, "incoming");
        };
        let limits = call.limits;
        let input = replica.text_size() + previous.map_or(0, Issue::text_size) + issue.text_size();
        let outcome = invoke(
            self,
            runtime,
            call,
            Side::Incoming,
            input,
            |store, instance, ctx| {
                let guest = indices.load(&mut *store, instance)?;
                guest.call_process(&mut *store, &ctx, replica, previous, issue)
            },
        );
        outcome.and_then(|issue| {
            check_output(&issue, limits)?;
            Ok(issue)
        })
    }

    /// Run the outgoing processor on a local issue.
    pub fn run_outgoing(
        &self,
        runtime: &Runtime,
        call: Call<'_>,
        issue: &Issue,
    ) -> Outcome<Option<Replica>> {
        let Some(indices) = &self.outgoing else {
            return not_exported(self, "outgoing");
        };
        let limits = call.limits;
        let input = issue.text_size();
        let outcome = invoke(
            self,
            runtime,
            call,
            Side::Outgoing,
            input,
            |store, instance, ctx| {
                let guest = indices.load(&mut *store, instance)?;
                guest.call_process(&mut *store, &ctx, issue)
            },
        );
        outcome.and_then(|replica| {
            if let Some(replica) = &replica {
                check_output(replica, limits)?;
            }
            Ok(replica)
        })
    }
}

fn not_exported<T>(plugin: &Plugin, side: &str) -> Outcome<T> {
    Outcome::refused(ProcessorFailure::Incompatible {
        reason: format!(
            "`{}` does not implement the {side} processor",
            plugin.name()
        ),
    })
}

/// What every processor output must satisfy: size first (cheap), then content.
fn check_output(issue: &Issue, limits: &Limits) -> Result<(), ProcessorFailure> {
    check_output_size(issue.text_size(), limits)?;
    crate::model::validate(issue).map_err(|reason| ProcessorFailure::InvalidOutput { reason })
}

fn check_output_size(size: usize, limits: &Limits) -> Result<(), ProcessorFailure> {
    if size > limits.output_bytes {
        return Err(ProcessorFailure::OutputTooLarge {
            limit: limits.output_bytes,
            size,
        });
    }
    Ok(())
}

/// Set up a store for one call, run `body`, and turn whatever happened into an outcome.
fn invoke<R>(
    plugin: &Plugin,
    runtime: &Runtime,
    call: Call<'_>,
    side: Side,
    input_size: usize,
    body: impl FnOnce(
        &mut Store<State>,
        &Instance,
        wit::SyncContext,
    ) -> wasmtime::Result<Result<R, wit::ProcessorError>>,
) -> Outcome<R> {
    let limits = call.limits;
    let log = EventLog::new(limits.log_bytes);
    if input_size > limits.input_bytes {
        return Outcome::refused(ProcessorFailure::InputTooLarge {
            limit: limits.input_bytes,
            size: input_size,
        });
    }
    let wasi = sandbox(&call.ctx, &log);
    let helper = HelperSetup {
        side,
        connection: call.ctx.connection.clone(),
        can_send: call.can_send,
        directory: call.directory,
        log: log.clone(),
        merge_base: call.merge_base,
    };
    let ctx = call.ctx;
    let mut store = Store::new(&runtime.engine, State::new(wasi, limits, helper));
    store.limiter(|state| &mut state.limiter);
    let setup = store
        .set_fuel(limits.fuel)
        .map(|()| store.set_epoch_deadline(Runtime::deadline_ticks(limits.timeout_ms)));
    let result = setup.and_then(|()| {
        let instance = plugin.pre.instantiate(&mut store)?;
        body(&mut store, &instance, ctx)
    });
    let fuel_used = limits.fuel - store.get_fuel().unwrap_or(0);
    let state = store.into_data();
    let log = log.text();
    let sync_back = state.helper.sync_back;
    let result = match result {
        Err(error) => Err(classify(error, &state, limits, &log)),
        Ok(Err(error)) => Err(ProcessorFailure::Processor {
            message: error.message,
        }),
        // The processor got an error from sync back and carried on as if it had worked.
        Ok(Ok(_)) if sync_back == SyncBack::Refused => {
            Err(ProcessorFailure::SyncBackOnUnidirectional {
                connection: state.helper.connection.clone(),
            })
        }
        Ok(Ok(value)) => Ok(value),
    };
    Outcome {
        result,
        log,
        sync_back,
        unexalate: state.helper.unexalate,
        conflicts: state.helper.conflicts,
        fuel_used,
        peak_memory: state.limiter.peak_memory,
    }
}

/// A WASI context that grants nothing: no files, no environment, no network, and a clock and
/// random source fixed by the event, so that the same input always gives the same output.
fn sandbox(ctx: &SyncContext, log: &EventLog) -> WasiCtx {
    let now = humantime::parse_rfc3339(&ctx.now)
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .unwrap_or_default();
    let seed = Sha256::digest(ctx.event_id.as_bytes()).to_vec();
    let mut builder = WasiCtx::builder();
    builder
        .stdout(log.clone())
        .stderr(log.clone())
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .wall_clock(FixedClock(now))
        .monotonic_clock(StepClock(AtomicU64::new(0)))
        .insecure_random_seed(u128::from_le_bytes(
            seed[..16].try_into().unwrap_or_default(),
        ))
        .insecure_random(Deterministic::new(seed.clone()))
        .secure_random(Deterministic::new(seed));
    builder.build()
}

/// Map a failed call to its cause.
fn classify(error: wasmtime::Error, state: &State, limits: &Limits, log: &str) -> ProcessorFailure {
    if error.downcast_ref::<HostCallLimitExceeded>().is_some() {
        return ProcessorFailure::HostCallLimit {
            limit: limits.host_calls,
        };
    }
    if let Some(requested) = state.limiter.refused_memory {
        return ProcessorFailure::MemoryLimit {
            limit: limits.memory_bytes,
            requested,
        };
    }
    if let Some(requested) = state.limiter.refused_table {
        return ProcessorFailure::ResourceLimit {
            what: format!(
                "the processor asked for {requested} table elements, the limit is {}",
                limits.table_elements
            ),
        };
    }
    match error.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => ProcessorFailure::InstructionLimit { limit: limits.fuel },
        Some(Trap::Interrupt) => ProcessorFailure::Timeout {
            limit_ms: limits.timeout_ms,
        },
        Some(Trap::StackOverflow) => ProcessorFailure::StackOverflow,
        // Languages like Rust and C keep a second stack in linear memory; running past its
        // start shows up as an out-of-bounds access deep inside one recursive function.
        Some(Trap::MemoryOutOfBounds) if is_runaway_recursion(&error) => {
            ProcessorFailure::StackOverflow
        }
        Some(trap) => match panic_message(log) {
            Some(message) => ProcessorFailure::Panic { message },
            None => ProcessorFailure::Trap {
                message: trap.to_string(),
            },
        },
        None => {
            let message = format!("{error:#}");
            if message.contains("resource limit exceeded") || message.contains("count limit") {
                ProcessorFailure::ResourceLimit { what: message }
            } else {
                ProcessorFailure::Trap { message }
            }
        }
    }
}

/// Whether the trap happened with the same function on every frame of the backtrace.
fn is_runaway_recursion(error: &wasmtime::Error) -> bool {
    let Some(trace) = error.downcast_ref::<WasmBacktrace>() else {
        return false;
    };
    let frames = trace.frames();
    frames.len() >= 16
        && frames
            .iter()
            .all(|f| f.func_index() == frames[0].func_index())
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

/// A monotonic clock that advances one microsecond per reading: deterministic, and still
/// moving so that guests measuring elapsed time do not divide by zero.
struct StepClock(AtomicU64);

impl HostMonotonicClock for StepClock {
    fn resolution(&self) -> u64 {
        1_000
    }
    fn now(&self) -> u64 {
        self.0.fetch_add(1_000, Ordering::Relaxed)
    }
}
