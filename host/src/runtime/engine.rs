//! The one wasmtime engine of a node, its linker, and the epoch ticker that enforces
//! wall-clock limits.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use anyhow::{Context, Result};
use wasmtime::component::{HasSelf, Linker};
use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use super::bindings::{sync_helper, v0_1_0};
use super::sandbox;
use super::state::State;
use super::{wit_types, wit_types_v1};

/// How often the epoch advances: the granularity of the wall-clock limit.
pub const EPOCH_TICK: Duration = Duration::from_millis(5);

/// Engine-wide settings. Limits that can differ per connection live in
/// [`Limits`](super::Limits); these cannot, because wasmtime fixes them per engine.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Bytes of native stack WebAssembly may use before a stack overflow trap.
    pub max_wasm_stack: usize,
    /// Pre-reserved instance slots (the pooling allocator), or `None` to allocate each
    /// instance's memory on demand.
    pub pool: Option<PoolConfig>,
    /// Where compiled components are cached across restarts; `None` compiles every time.
    pub cache_dir: Option<PathBuf>,
    /// The key of the random bytes processors get: each event's stream is derived from it
    /// and the event's id, so a replay on this node gets the same bytes and nobody can
    /// predict them from the id. `None` draws one for this process.
    pub random_key: Option<[u8; 32]>,
}

/// The pooling allocator: memory for `instances` invocations at once is reserved up front
/// and reused, with copy-on-write initialisation, so that an invocation maps nothing new.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// Invocations that can run at once: at least the number of workers.
    pub instances: u32,
    /// The largest linear memory an instance may have: per-connection memory limits cannot
    /// go above it.
    pub max_memory_bytes: usize,
    /// Bytes of each memory that may stay mapped between invocations, reset by copying
    /// instead of being unmapped: cheaper than fresh page faults for what a call touches.
    /// Only the pages an invocation wrote are reset and kept (see `engine_config`).
    pub keep_resident_bytes: usize,
}

impl PoolConfig {
    /// A pool for `workers` invocations running at once.
    pub fn for_workers(workers: usize) -> Self {
        PoolConfig {
            // Room for a dry run or a replay next to busy workers.
            instances: workers as u32 + 2,
            max_memory_bytes: 256 << 20,
            // All of what a Python (12.3 MiB) or JavaScript (9.1 MiB) processor's memory
            // holds; a Rust one touches about 128 KiB per event.
            keep_resident_bytes: 16 << 20,
        }
    }
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            max_wasm_stack: 512 << 10,
            pool: Some(PoolConfig::for_workers(available_cores())),
            cache_dir: None,
            random_key: None,
        }
    }
}

/// Cores of this machine (1 if unknown).
pub fn available_cores() -> usize {
    thread::available_parallelism().map_or(1, |n| n.get())
}

/// Compiles processors and runs them. Cheap to share: clone the `Arc` it lives in.
pub struct Runtime {
    pub(super) engine: Engine,
    pub(super) linker: Linker<State>,
    pub(super) cache_dir: Option<PathBuf>,
    pooled: bool,
    max_memory: Option<usize>,
    random_key: [u8; 32],
    /// Set when the node shuts down: running processors stop at the next epoch tick.
    shutdown: Arc<AtomicBool>,
}

impl Runtime {
    /// An engine as configured. If the pool's address space cannot be reserved (a small
    /// `ulimit -v`, say), falls back to on-demand allocation and says so on stderr.
    pub fn new(config: &RuntimeConfig) -> Result<Self> {
        let (engine, pooled) = match &config.pool {
            Some(pool) => match Engine::new(&engine_config(config, Some(pool))) {
                Ok(engine) => (engine, true),
                Err(error) => {
                    eprintln!(
                        "twinsync: cannot reserve the instance pool ({error:#}); allocating instances on demand"
                    );
                    (build(engine_config(config, None))?, false)
                }
            },
            None => (build(engine_config(config, None))?, false),
        };

        let mut linker = Linker::new(&engine);
        // WASI with nothing granted: each store gets a context without preopens, environment,
        // network or real clocks (see `invoke`). std needs these imports to link.
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
        sandbox::add_virtual_sleep(&mut linker)?;
        // The contract versions side by side: a component links against its own (one built
        // for 0.2.0 against 0.2.1's, which has everything 0.2.0 had: semver-compatible names
        // resolve to each other).
        sync_helper::add_to_linker::<State, HasSelf<State>>(&mut linker, |state| state)?;
        wit_types::add_to_linker::<State, HasSelf<State>>(&mut linker, |state| state)?;
        v0_1_0::sync_helper::add_to_linker::<State, HasSelf<State>>(&mut linker, |state| state)?;
        wit_types_v1::add_to_linker::<State, HasSelf<State>>(&mut linker, |state| state)?;

        start_epoch_ticker(&engine);
        Ok(Runtime {
            engine,
            linker,
            cache_dir: config.cache_dir.clone(),
            pooled,
            max_memory: config
                .pool
                .as_ref()
                .filter(|_| pooled)
                .map(|p| p.max_memory_bytes),
            random_key: config.random_key.unwrap_or_else(rand::random),
            shutdown: Arc::default(),
        })
    }

    pub(super) fn random_key(&self) -> &[u8; 32] {
        &self.random_key
    }

    /// Stop every running processor within one epoch tick; their events stay queued as they
    /// were (`interrupted`). For shutting down: the runtime runs nothing after this.
    pub fn interrupt_all(&self) {
        self.shutdown.store(true, Ordering::Relaxed);
    }

    pub(super) fn is_shutting_down(&self) -> bool {
        self.shutdown.load(Ordering::Relaxed)
    }

    pub(super) fn shutdown_signal(&self) -> Arc<AtomicBool> {
        self.shutdown.clone()
    }

    /// `pooling` or `on-demand`: how instances get their memory.
    pub fn allocator(&self) -> &'static str {
        if self.pooled { "pooling" } else { "on-demand" }
    }

    /// The largest memory limit a connection may set, if the allocator has one.
    pub fn max_memory(&self) -> Option<usize> {
        self.max_memory
    }
}

fn build(config: Config) -> Result<Engine> {
    Engine::new(&config)
        .map_err(anyhow::Error::from)
        .context("cannot configure the WebAssembly engine")
}

fn engine_config(config: &RuntimeConfig, pool: Option<&PoolConfig>) -> Config {
    let mut wasm = Config::new();
    wasm.wasm_component_model(true)
        .consume_fuel(true)
        .epoch_interruption(true)
        .max_wasm_stack(config.max_wasm_stack)
        // Handles to the instance's globals, kept with a trap, so that an out-of-bounds
        // access can be told apart from a stack overflow in linear memory (see `invoke`).
        // Nothing is copied unless the dump is serialised, which the host never does.
        .coredump_on_trap(true)
        .memory_init_cow(true);
    if let Some(pool) = pool {
        // One pool for every processor, large or small: each of the `slots` component
        // instances has room for the largest component we accept. A Rust processor uses 3
        // core instances, 1 memory and 2 tables; a componentize-js one 4, 1 and 2; a
        // componentize-py one 14 (CPython is linked dynamically: one core instance per
        // library), 1 and 2, and more with each native module it bundles. Totals are
        // `slots` times the per-component maximum, so that however many Python processors
        // run at once, a Rust one never finds the core instances or memories used up: the
        // only shared limit is the number of invocations, and `instances` leaves room for
        // every worker. Reserved slots cost address space, not memory.
        //
        // Large components share the pool rather than being allocated on demand: measured
        // with `cargo bench --bench languages`, a fresh on-demand instance costs them as
        // much and Rust 1.6 times as much (map, fault in and unmap every time), while a
        // pool slot keeps the component's copy-on-write image mapped and, with PAGEMAP_SCAN
        // (Linux 6.7+; elsewhere the first `keep_resident_bytes` are reset with memset),
        // resets only the pages an invocation wrote and keeps them, which saves Python 0.3
        // ms and JavaScript 0.6 ms of page faults per event (see BENCHMARKS.md).
        const MAX_CORE_INSTANCES: u32 = 32;
        const MAX_MEMORIES: u32 = 4;
        const MAX_TABLES: u32 = 8;
        let slots = pool.instances;
        let mut pooling = PoolingAllocationConfig::new();
        pooling
            .total_component_instances(slots)
            .total_core_instances(slots * MAX_CORE_INSTANCES)
            .total_memories(slots * MAX_MEMORIES)
            .total_tables(slots * MAX_TABLES)
            .max_core_instances_per_component(MAX_CORE_INSTANCES)
            .max_memories_per_component(MAX_MEMORIES)
            .max_tables_per_component(MAX_TABLES)
            .max_memory_size(pool.max_memory_bytes)
            .linear_memory_keep_resident(pool.keep_resident_bytes)
            .pagemap_scan(Enabled::Auto)
            .table_keep_resident(64 << 10);
        wasm.allocation_strategy(InstanceAllocationStrategy::Pooling(pooling));
    }
    wasm
}

/// Advance the engine's epoch every tick until the engine is dropped.
fn start_epoch_ticker(engine: &Engine) {
    let weak = engine.weak();
    thread::Builder::new()
        .name("twinsync-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                thread::sleep(EPOCH_TICK);
            }
        })
        .expect("cannot start the epoch ticker thread");
}
