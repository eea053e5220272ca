//! What a store holds during one invocation: WASI with no capabilities, the resource limiter,
//! and the `sync-helper` functions a processor may call.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::Limits;
use super::bindings::{sync_helper, v0_1_0};
use super::log::EventLog;
use super::sandbox::VirtualTime;
use super::wit_types::{self as types, FieldBase, FieldStamp, MergeBase};

/// Look-ups a processor may make about twins on its connection (`local-key-for-remote`,
/// `is-under-sync`). The sync engine answers from its store.
pub trait TwinDirectory: Send + Sync {
    fn local_key_for_remote(&self, connection: &str, remote_key: &str) -> Option<String>;
    fn is_under_sync(&self, connection: &str, local_key: &str) -> bool;
}

/// A directory with no twins, for dry runs and tests.
pub struct NoTwins;

impl TwinDirectory for NoTwins {
    fn local_key_for_remote(&self, _: &str, _: &str) -> Option<String> {
        None
    }
    fn is_under_sync(&self, _: &str, _: &str) -> bool {
        false
    }
}

/// Which export runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Incoming,
    Outgoing,
}

/// What the processor asked about sync back during the invocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SyncBack {
    #[default]
    NotRequested,
    /// Requested and allowed: queue an outgoing event once the result is committed.
    Requested,
    /// Requested on a connection that cannot send back; the processor got an error.
    Refused,
}

/// Raised (as a trap) when a processor calls host functions more often than allowed.
#[derive(Debug)]
pub struct HostCallLimitExceeded;

impl std::fmt::Display for HostCallLimitExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("host call limit exceeded")
    }
}

impl std::error::Error for HostCallLimitExceeded {}

/// Raised (as a trap) when the arguments of a processor's host calls add up to more bytes
/// than its limit allows.
#[derive(Debug)]
pub struct HostDataLimitExceeded {
    pub limit: usize,
    pub size: usize,
}

impl std::fmt::Display for HostDataLimitExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "host calls handed over {} bytes, the limit is {}",
            self.size, self.limit
        )
    }
}

impl std::error::Error for HostDataLimitExceeded {}

/// Raised (as a trap) when a processor calls a host function its side may not call: the
/// call is a bug in the processor, and pretending it worked would hide it.
#[derive(Debug)]
pub struct WrongSide {
    pub function: &'static str,
}

impl std::fmt::Display for WrongSide {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} can only be called from an incoming processor",
            self.function
        )
    }
}

impl std::error::Error for WrongSide {}

/// Host-side state of the `sync-helper` interface for one invocation.
pub struct Helper {
    pub side: Side,
    pub connection: String,
    /// Whether this side may send to the other: false on the receiving end of a
    /// unidirectional connection.
    pub can_send: bool,
    pub directory: Arc<dyn TwinDirectory>,
    pub log: EventLog,
    pub sync_back: SyncBack,
    /// The processor asked to stop syncing the twin.
    pub unexalate: bool,
    /// What `read-merge-base` answers.
    merge_base: MergeBase,
    /// What `setting` answers.
    settings: Arc<BTreeMap<String, String>>,
    /// Conflicts the processor recorded for review.
    pub conflicts: Vec<RecordedConflict>,
    calls: u64,
    max_calls: u64,
    /// Bytes of arguments handed over so far, and the most allowed.
    data_bytes: usize,
    max_data_bytes: usize,
}

impl Helper {
    /// Count one call and the bytes of its arguments. wasmtime bounds what one call may
    /// copy before copying it (the store's hostcall fuel); this bounds all calls together.
    fn count_call(&mut self, arguments: &[&str]) -> wasmtime::Result<()> {
        self.calls += 1;
        if self.calls > self.max_calls {
            return Err(wasmtime::Error::new(HostCallLimitExceeded));
        }
        let bytes: usize = arguments.iter().map(|a| a.len()).sum();
        self.data_bytes = self.data_bytes.saturating_add(bytes);
        if self.data_bytes > self.max_data_bytes {
            return Err(wasmtime::Error::new(HostDataLimitExceeded {
                limit: self.max_data_bytes,
                size: self.data_bytes,
            }));
        }
        Ok(())
    }
}

/// Enforces memory, table and instance limits, remembering what it refused so that the
/// error can name the figures.
pub struct Limiter {
    pub memory_limit: usize,
    table_elements: usize,
    instances: usize,
    tables: usize,
    memories: usize,
    /// Bytes of linear memory in use, all memories together, and the most there ever was.
    pub memory_in_use: usize,
    pub peak_memory: usize,
    /// The total a refused grow asked for.
    pub refused_memory: Option<usize>,
    pub refused_table: Option<usize>,
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let total = self.memory_in_use - current.min(self.memory_in_use) + desired;
        if total > self.memory_limit {
            self.refused_memory = Some(total);
            return Ok(false);
        }
        self.memory_in_use = total;
        self.peak_memory = self.peak_memory.max(total);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.table_elements {
            self.refused_table = Some(desired);
            return Ok(false);
        }
        Ok(true)
    }

    fn instances(&self) -> usize {
        self.instances
    }

    fn tables(&self) -> usize {
        self.tables
    }

    fn memories(&self) -> usize {
        self.memories
    }
}

/// The data of a store: one per invocation, dropped after the call.
pub struct State {
    wasi: WasiCtx,
    table: ResourceTable,
    pub limiter: Limiter,
    pub helper: Helper,
    /// The invocation's virtual monotonic clock (see `sandbox`).
    pub time: VirtualTime,
    /// When the invocation started, and how long it may take, sleeping and running together.
    pub started: Instant,
    pub time_limit_ns: u64,
}

impl State {
    pub fn new(wasi: WasiCtx, time: VirtualTime, limits: &Limits, helper: HelperSetup) -> Self {
        State {
            wasi,
            table: ResourceTable::new(),
            time,
            started: Instant::now(),
            time_limit_ns: limits.timeout_ms.saturating_mul(1_000_000),
            limiter: Limiter {
                memory_limit: limits.memory_bytes,
                table_elements: limits.table_elements,
                instances: limits.instances,
                tables: limits.tables,
                memories: limits.memories,
                memory_in_use: 0,
                peak_memory: 0,
                refused_memory: None,
                refused_table: None,
            },
            helper: Helper {
                side: helper.side,
                connection: helper.connection,
                can_send: helper.can_send,
                directory: helper.directory,
                log: helper.log,
                sync_back: SyncBack::NotRequested,
                unexalate: false,
                merge_base: helper.merge_base,
                settings: helper.settings,
                conflicts: Vec::new(),
                calls: 0,
                max_calls: limits.host_calls,
                data_bytes: 0,
                max_data_bytes: limits.host_call_bytes,
            },
        }
    }
}

/// What the caller decides about the helper functions of one invocation.
pub struct HelperSetup {
    /// What `setting` answers (contract 0.2.0).
    pub settings: Arc<BTreeMap<String, String>>,
    pub side: Side,
    pub connection: String,
    pub can_send: bool,
    pub directory: Arc<dyn TwinDirectory>,
    pub log: EventLog,
    pub merge_base: MergeBase,
}

/// A conflict a processor recorded with `record-conflict`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedConflict {
    pub field: String,
    pub local_value: String,
    pub remote_value: String,
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl types::Host for State {}

/// The `sync-helper` functions every contract version has.
impl State {
    fn sync_back(&mut self) -> wasmtime::Result<Result<(), String>> {
        let helper = &mut self.helper;
        helper.count_call(&[])?;
        if helper.side == Side::Outgoing {
            return Ok(Err(
                "sync-back-after-processing can only be called from an incoming processor".into(),
            ));
        }
        if !helper.can_send {
            helper.sync_back = SyncBack::Refused;
            return Ok(Err(format!(
                "sync-back-after-processing is not possible on connection `{}`: it is \
                 unidirectional, so this side cannot send anything back",
                helper.connection
            )));
        }
        if helper.sync_back != SyncBack::Refused {
            helper.sync_back = SyncBack::Requested;
        }
        Ok(Ok(()))
    }

    fn unexalate(&mut self) -> wasmtime::Result<Result<(), String>> {
        let helper = &mut self.helper;
        helper.count_call(&[])?;
        if helper.side == Side::Outgoing {
            return Ok(Err(
                "unexalate-after-processing can only be called from an incoming processor".into(),
            ));
        }
        helper.unexalate = true;
        Ok(Ok(()))
    }

    fn local_key(&mut self, remote_key: String) -> wasmtime::Result<Option<String>> {
        self.helper.count_call(&[&remote_key])?;
        let helper = &self.helper;
        Ok(helper
            .directory
            .local_key_for_remote(&helper.connection, &remote_key))
    }

    fn under_sync(&mut self, local_key: String) -> wasmtime::Result<bool> {
        self.helper.count_call(&[&local_key])?;
        let helper = &self.helper;
        Ok(helper
            .directory
            .is_under_sync(&helper.connection, &local_key))
    }

    fn merge_base(&mut self) -> wasmtime::Result<MergeBase> {
        self.helper.count_call(&[])?;
        Ok(self.helper.merge_base.clone())
    }

    fn field_base(&mut self, field: String) -> wasmtime::Result<FieldBase> {
        self.helper.count_call(&[&field])?;
        let base = &self.helper.merge_base;
        let stamp = |stamps: &[FieldStamp]| stamps.iter().find(|s| s.field == field).cloned();
        let policy = base
            .policies
            .iter()
            .find(|p| p.field == field)
            .map_or(base.default_policy, |p| p.policy);
        Ok(FieldBase {
            local: stamp(&base.local_stamps),
            remote: stamp(&base.remote_stamps),
            previous_remote: stamp(&base.previous_remote_stamps),
            policy,
        })
    }

    fn conflict(
        &mut self,
        field: String,
        local_value: String,
        remote_value: String,
    ) -> wasmtime::Result<()> {
        let helper = &mut self.helper;
        helper.count_call(&[&field, &local_value, &remote_value])?;
        if helper.side == Side::Outgoing {
            return Err(wasmtime::Error::new(WrongSide {
                function: "record-conflict",
            }));
        }
        helper.conflicts.push(RecordedConflict {
            field,
            local_value,
            remote_value,
        });
        Ok(())
    }

    fn log_line(&mut self, level: types::LogLevel, message: String) -> wasmtime::Result<()> {
        self.helper.count_call(&[&message])?;
        let level = match level {
            types::LogLevel::Debug => "debug",
            types::LogLevel::Info => "info",
            types::LogLevel::Warn => "warn",
            types::LogLevel::Error => "error",
        };
        self.helper.log.line(level, &message);
        Ok(())
    }
}

/// The `sync-helper` functions of both contract versions, on the shared implementations.
macro_rules! shared_helpers {
    () => {
        fn sync_back_after_processing(&mut self) -> wasmtime::Result<Result<(), String>> {
            self.sync_back()
        }

        fn unexalate_after_processing(&mut self) -> wasmtime::Result<Result<(), String>> {
            self.unexalate()
        }

        fn local_key_for_remote(&mut self, remote_key: String) -> wasmtime::Result<Option<String>> {
            self.local_key(remote_key)
        }

        fn is_under_sync(&mut self, local_key: String) -> wasmtime::Result<bool> {
            self.under_sync(local_key)
        }

        fn read_merge_base(&mut self) -> wasmtime::Result<MergeBase> {
            self.merge_base()
        }

        fn record_conflict(
            &mut self,
            field: String,
            local_value: String,
            remote_value: String,
        ) -> wasmtime::Result<()> {
            self.conflict(field, local_value, remote_value)
        }

        fn log(&mut self, level: types::LogLevel, message: String) -> wasmtime::Result<()> {
            self.log_line(level, message)
        }
    };
}

impl sync_helper::Host for State {
    shared_helpers!();

    fn setting(&mut self, name: String) -> wasmtime::Result<Option<String>> {
        self.helper.count_call(&[&name])?;
        Ok(self.helper.settings.get(&name).cloned())
    }

    fn read_field_base(&mut self, field: String) -> wasmtime::Result<FieldBase> {
        self.field_base(field)
    }
}

/// Contract 0.1.0's `sync-helper`: the same functions, without `setting` and
/// `read-field-base`.
impl v0_1_0::sync_helper::Host for State {
    shared_helpers!();
}
