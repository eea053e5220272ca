//! The processors a tenant's spec names: built-in ones, or packages of the serving node's
//! plugin store (`plugin:NAME@VERSION`), read from `DATA_DIR/plugins/SHA256.wasm` and
//! checked against their hash. The embed host compiles each distinct component once.

use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};

use super::spec::{ProcessorRef, TenantSpec};
use crate::embed::Processor;
use crate::store::NodeStore;

/// The processor `spec` names; `store` is the serving node's database (its plugin store).
pub fn resolve(spec: &str, store: &NodeStore, data_dir: &Path) -> Result<Processor> {
    match ProcessorRef::parse(spec)? {
        ProcessorRef::Builtin(name) => Ok(Processor::builtin(name)),
        ProcessorRef::Plugin { name, version } => {
            let installed = store
                .read(|db| crate::plugins::store::get(db, name, version))?
                .ok_or_else(|| {
                    anyhow!(
                        "processor `{spec}`: no {name}@{version} in the plugin store (see `twinsync plugin list`)"
                    )
                })?;
            let path = data_dir
                .join("plugins")
                .join(format!("{}.wasm", installed.sha256));
            let bytes = std::fs::read(&path)
                .with_context(|| format!("processor `{spec}`: cannot read {}", path.display()))?;
            if crate::runtime::sha256_hex(&bytes) != installed.sha256 {
                bail!(
                    "processor `{spec}`: {} does not match its hash",
                    path.display()
                );
            }
            Ok(Processor::wasm(&format!("{name}@{version}"), bytes))
        }
    }
}

/// The bytes of a processor, for a node built outside the host (the CLI's `--tenant`).
pub fn wasm(processor: &Processor) -> Result<(&str, &[u8])> {
    match processor {
        Processor::Builtin(name) => Ok((
            name,
            crate::builtin::get(name).ok_or_else(|| anyhow!("no built-in processor `{name}`"))?,
        )),
        Processor::Wasm { name, bytes } => Ok((name, bytes)),
    }
}

/// Everything about a spec that can be checked before it is stored: its fields (see
/// `TenantSpec::check`), and that the plugins it names are in the plugin store.
pub fn check(
    spec: &TenantSpec,
    host_instance: &str,
    store: &NodeStore,
    data_dir: &Path,
) -> Result<()> {
    spec.check(host_instance)?;
    for c in &spec.connections {
        for p in [&c.incoming, &c.outgoing].into_iter().flatten() {
            if let ProcessorRef::Plugin { .. } = ProcessorRef::parse(p)? {
                resolve(p, store, data_dir).map_err(|e| {
                    e.context(format!("tenant `{}`: connection `{}`", spec.name, c.name))
                })?;
            }
        }
    }
    Ok(())
}
