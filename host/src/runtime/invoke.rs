//! One invocation: a fresh store with its limits, instantiate, call, drop. Nothing survives
//! from one event to the next, and a store that trapped is thrown away with the rest.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use wasmtime::component::Instance;
use wasmtime::{Mutability, Store, Trap, UpdateDeadline, Val, WasmBacktrace, WasmCoreDump};
use wasmtime_wasi::I32Exit;

use super::Limits;
use super::crash::panic_message;
use super::engine::Runtime;
use super::failure::ProcessorFailure;
use super::log::EventLog;
use super::plugin::{IncomingIndices, OutgoingIndices, Plugin};
use super::sandbox::{self, SleptPastDeadline, VirtualTime};
use super::state::{
    HelperSetup, HostCallLimitExceeded, HostDataLimitExceeded, RecordedConflict, Side, State,
    SyncBack, TwinDirectory, WrongSide,
};
use super::wit_types as wit;
use super::wit_types::MergeBase;
use super::wit_types_v1;
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
        let first_sync = call.ctx.first_sync;
        let input = replica.text_size() + previous.map_or(0, Issue::text_size) + issue.text_size();
        invoke(
            self,
            runtime,
            call,
            Side::Incoming,
            input,
            |store, instance, ctx| match indices {
                IncomingIndices::V0_1_0(export) => {
                    let process = export.func(&mut *store, instance)?;
                    let ctx = wit_types_v1::SyncContext::from(&ctx);
                    let params = (&ctx, replica, previous, issue);
                    Ok(process.call(&mut *store, params)?.0)
                }
                IncomingIndices::V0_2(export) => {
                    let process = export.func(&mut *store, instance)?;
                    Ok(process
                        .call(&mut *store, (&ctx, replica, previous, issue))?
                        .0)
                }
            },
            |result| {
                check_output(result, limits)?;
                check_incoming(issue, result, first_sync)
            },
        )
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
        invoke(
            self,
            runtime,
            call,
            Side::Outgoing,
            input,
            |store, instance, ctx| match indices {
                OutgoingIndices::V0_1_0(export) => {
                    let process = export.func(&mut *store, instance)?;
                    let ctx = wit_types_v1::SyncContext::from(&ctx);
                    Ok(process.call(&mut *store, (&ctx, issue))?.0)
                }
                OutgoingIndices::V0_2(export) => {
                    let process = export.func(&mut *store, instance)?;
                    Ok(process.call(&mut *store, (&ctx, issue))?.0)
                }
            },
            |replica| match replica {
                Some(replica) => {
                    check_output(replica, limits)?;
                    check_outgoing(issue, replica)
                }
                None => Ok(()),
            },
        )
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

/// What an incoming processor may not do to the local issue. Checked here, where every
/// run goes through (the node, `plugin check`, replays), so that they all agree.
fn check_incoming(local: &Issue, result: &Issue, first_sync: bool) -> Result<(), ProcessorFailure> {
    let invalid = |reason: String| Err(ProcessorFailure::InvalidOutput { reason });
    if first_sync && result.key.is_some() {
        return invalid(format!(
            "on first sync the issue does not exist yet, but the processor returned key {:?}; leave the key empty, the tracker assigns it",
            result.key.as_deref().unwrap_or_default()
        ));
    }
    if !first_sync && result.key != local.key {
        return invalid(format!(
            "the processor changed the issue's key from {:?} to {:?}",
            local.key.as_deref().unwrap_or_default(),
            result.key.as_deref().unwrap_or_default()
        ));
    }
    if result.summary.trim().is_empty() {
        return invalid("the summary is empty".into());
    }
    Ok(())
}

/// A replica speaks for one local issue: the other side links its twin by this key.
fn check_outgoing(local: &Issue, replica: &Replica) -> Result<(), ProcessorFailure> {
    if replica.key != local.key {
        return Err(ProcessorFailure::InvalidOutput {
            reason: format!(
                "the replica's key {:?} is not the local issue's key {:?}; a replica keeps the \
                 key of the issue it was made from",
                replica.key.as_deref().unwrap_or_default(),
                local.key.as_deref().unwrap_or_default()
            ),
        });
    }
    Ok(())
}

/// Set up a store for one call, run `body`, check its result with `check`, and turn
/// whatever happened into an outcome. The time limit covers all of it: the call, the
/// copy of the result, and the host's checks of it.
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
    check: impl FnOnce(&R) -> Result<(), ProcessorFailure>,
) -> Outcome<R> {
    let limits = call.limits;
    let log = EventLog::new(limits.log_bytes);
    if input_size > limits.input_bytes {
        return Outcome::refused(ProcessorFailure::InputTooLarge {
            limit: limits.input_bytes,
            size: input_size,
        });
    }
    let time = VirtualTime::default();
    let wasi = sandbox::wasi_context(&call.ctx, &log, &time, runtime.random_key());
    let helper = HelperSetup {
        side,
        connection: call.ctx.connection.clone(),
        can_send: call.can_send,
        directory: call.directory,
        log: log.clone(),
        merge_base: call.merge_base,
        settings: plugin.settings.clone(),
    };
    let ctx = call.ctx;
    let mut store = Store::new(&runtime.engine, State::new(wasi, time, limits, helper));
    store.limiter(|state| &mut state.limiter);
    // Bounds what one host call, or the result, may make the host copy: checked before
    // each copy (see `Limits::lift_budget`).
    store.set_hostcall_fuel(limits.lift_budget());
    let started = store.data().started;
    let time_limit = Duration::from_millis(limits.timeout_ms);
    let deadline = started + time_limit;
    let shutdown = runtime.shutdown_signal();
    // Every epoch tick while WebAssembly runs: stop at the deadline, or at once when the
    // node shuts down.
    store.epoch_deadline_callback(move |_| {
        if shutdown.load(Ordering::Relaxed) || Instant::now() >= deadline {
            Err(Trap::Interrupt.into())
        } else {
            Ok(UpdateDeadline::Continue(1))
        }
    });
    store.set_epoch_deadline(1);
    let result = store.set_fuel(limits.fuel).and_then(|()| {
        let instance = plugin.pre.instantiate(&mut store)?;
        body(&mut store, &instance, ctx)
    });
    let fuel_used = limits.fuel - store.get_fuel().unwrap_or(0);
    let stack_wrapped = result
        .as_ref()
        .err()
        .is_some_and(|error| shadow_stack_wrapped(&mut store, error));
    let state = store.into_data();
    let sync_back = state.helper.sync_back;
    let result = match result {
        Err(error) => Err(classify(
            error,
            &state,
            limits,
            &log,
            runtime,
            stack_wrapped,
        )),
        Ok(Err(error)) => Err(ProcessorFailure::Processor {
            message: error.message,
        }),
        // The processor got an error from sync back and carried on as if it had worked.
        Ok(Ok(_)) if sync_back == SyncBack::Refused => {
            Err(ProcessorFailure::SyncBackOnUnidirectional {
                connection: state.helper.connection.clone(),
            })
        }
        Ok(Ok(value)) => check(&value).map(|()| value),
    };
    // Checking the result is host work done for the processor: it counts against its time.
    let result = match result {
        Ok(_) if started.elapsed() > time_limit => Err(ProcessorFailure::Timeout {
            limit_ms: limits.timeout_ms,
        }),
        other => other,
    };
    Outcome {
        result,
        log: log.text(),
        sync_back,
        unexalate: state.helper.unexalate,
        conflicts: state.helper.conflicts,
        fuel_used,
        peak_memory: state.limiter.peak_memory,
    }
}

/// Map a failed call to its cause, in one line; what wasmtime said in full (the wasm
/// backtrace) goes to the event's log.
fn classify(
    error: wasmtime::Error,
    state: &State,
    limits: &Limits,
    log: &EventLog,
    runtime: &Runtime,
    stack_wrapped: bool,
) -> ProcessorFailure {
    let failure = cause(&error, state, limits, &log.text(), runtime, stack_wrapped);
    if let Some(trace) = error.downcast_ref::<WasmBacktrace>()
        && !trace.frames().is_empty()
    {
        log.line("host", &format!("{}: {error:?}", failure.kind()));
    }
    failure
}

fn cause(
    error: &wasmtime::Error,
    state: &State,
    limits: &Limits,
    log: &str,
    runtime: &Runtime,
    stack_wrapped: bool,
) -> ProcessorFailure {
    if error.downcast_ref::<HostCallLimitExceeded>().is_some() {
        return ProcessorFailure::HostCallLimit {
            limit: limits.host_calls,
        };
    }
    if let Some(exceeded) = error.downcast_ref::<HostDataLimitExceeded>() {
        return ProcessorFailure::HostDataLimit {
            limit: exceeded.limit,
            size: exceeded.size,
        };
    }
    if let Some(wrong) = error.downcast_ref::<WrongSide>() {
        return ProcessorFailure::Misuse {
            message: wrong.to_string(),
        };
    }
    if error.downcast_ref::<SleptPastDeadline>().is_some() {
        return ProcessorFailure::Timeout {
            limit_ms: limits.timeout_ms,
        };
    }
    if let Some(exit) = error.downcast_ref::<I32Exit>() {
        return match panic_message(log) {
            Some(message) => ProcessorFailure::Panic { message },
            None => ProcessorFailure::Trap {
                message: format!("the processor called exit with status {}", exit.0),
            },
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
    if is_lift_budget_exhausted(error) {
        // With wasm frames on the stack the copy was of a host call's arguments; without,
        // of the result, after the processor returned.
        let in_host_call = error
            .downcast_ref::<WasmBacktrace>()
            .is_some_and(|trace| !trace.frames().is_empty());
        return if in_host_call {
            ProcessorFailure::HostDataLimit {
                limit: limits.host_call_bytes,
                size: limits.lift_budget(),
            }
        } else {
            ProcessorFailure::OutputTooLargeToCopy {
                limit: limits.output_bytes,
                budget: limits.lift_budget(),
            }
        };
    }
    match error.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => ProcessorFailure::InstructionLimit { limit: limits.fuel },
        Some(Trap::Interrupt) if runtime.is_shutting_down() => ProcessorFailure::Interrupted,
        Some(Trap::Interrupt) => ProcessorFailure::Timeout {
            limit_ms: limits.timeout_ms,
        },
        Some(Trap::StackOverflow) => ProcessorFailure::StackOverflow,
        // Languages like Rust and C keep a second stack in linear memory; running past its
        // start shows up as an out-of-bounds access deep inside one recursive function, or
        // with the stack pointer below address 0 (wrapped round to the top of the space).
        Some(Trap::MemoryOutOfBounds) if stack_wrapped || is_runaway_recursion(error) => {
            ProcessorFailure::StackOverflow
        }
        Some(trap) => match panic_message(log) {
            Some(message) => ProcessorFailure::Panic { message },
            None => ProcessorFailure::Trap {
                message: trap.to_string(),
            },
        },
        None => {
            let message = error.root_cause().to_string();
            let message = message.lines().next().unwrap_or_default().to_string();
            if message.contains("resource limit exceeded") || message.contains("count limit") {
                ProcessorFailure::ResourceLimit { what: message }
            } else {
                ProcessorFailure::Trap { message }
            }
        }
    }
}

/// wasmtime refused to copy more out of the guest (its "hostcall fuel"; the error type is
/// private, its message is not).
fn is_lift_budget_exhausted(error: &wasmtime::Error) -> bool {
    error
        .chain()
        .any(|cause| cause.to_string().contains("fuel allocated for hostcalls"))
}

/// Whether a trap left a mutable 32-bit global (the shadow stack pointer of Rust, C and
/// the like) in the top 16 MiB of the address space: the stack ran below address 0 and
/// wrapped. Read from the globals the trap's core dump holds handles to.
fn shadow_stack_wrapped(store: &mut Store<State>, error: &wasmtime::Error) -> bool {
    if error.downcast_ref::<Trap>() != Some(&Trap::MemoryOutOfBounds) {
        return false;
    }
    let Some(dump) = error.downcast_ref::<WasmCoreDump>() else {
        return false;
    };
    dump.globals().iter().any(|global| {
        global.ty(&*store).mutability() == Mutability::Var
            && matches!(global.get(&mut *store), Val::I32(sp) if sp as u32 >= 0xFF00_0000)
    })
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
