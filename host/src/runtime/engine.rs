//! The one wasmtime engine of a node, its linker, and the epoch ticker that enforces
//! wall-clock limits.

use std::thread;
use std::time::Duration;

use anyhow::{Context, Result};
use wasmtime::component::{HasSelf, Linker};
use wasmtime::{Config, Engine};

use super::bindings::{sync_helper, types};
use super::state::State;

/// How often the epoch advances: the granularity of the wall-clock limit.
pub const EPOCH_TICK: Duration = Duration::from_millis(5);

/// Engine-wide settings. Limits that can differ per connection live in
/// [`Limits`](super::Limits); these cannot, because wasmtime fixes them per engine.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Bytes of native stack WebAssembly may use before a stack overflow trap.
    pub max_wasm_stack: usize,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            max_wasm_stack: 512 << 10,
        }
    }
}

/// Compiles processors and runs them. Cheap to share: clone the `Arc` it lives in.
pub struct Runtime {
    pub(super) engine: Engine,
    pub(super) linker: Linker<State>,
}

impl Runtime {
    pub fn new(config: &RuntimeConfig) -> Result<Self> {
        let mut wasm = Config::new();
        wasm.wasm_component_model(true)
            .consume_fuel(true)
            .epoch_interruption(true)
            .max_wasm_stack(config.max_wasm_stack);
        let engine = Engine::new(&wasm)
            .map_err(anyhow::Error::from)
            .context("cannot configure the WebAssembly engine")?;

        let mut linker = Linker::new(&engine);
        // WASI with nothing granted: each store gets a context without preopens, environment,
        // network or real clocks (see `invoke`). std needs these imports to link.
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
        sync_helper::add_to_linker::<State, HasSelf<State>>(&mut linker, |state| state)?;
        types::add_to_linker::<State, HasSelf<State>>(&mut linker, |state| state)?;

        start_epoch_ticker(&engine);
        Ok(Runtime { engine, linker })
    }

    /// Epoch ticks to allow for a wall-clock limit.
    pub(super) fn deadline_ticks(timeout_ms: u64) -> u64 {
        timeout_ms.div_ceil(EPOCH_TICK.as_millis() as u64) + 1
    }
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
