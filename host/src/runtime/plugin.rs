//! A processor component compiled once, checked against the contract, and kept ready to
//! instantiate.

use std::fmt;

use std::time::{Duration, Instant};

use wasmtime::component::InstancePre;

use super::bindings::{INCOMING, OUTGOING, PACKAGE, incoming, outgoing};
use super::cache::{self, Compiled, sha256_hex};
use super::engine::Runtime;
use super::state::State;
use crate::plugins::manifest::{self, Manifest};

/// Why a file cannot be installed as a processor.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PluginError {
    #[error("`{name}` is not a WebAssembly file (it does not start with the `\\0asm` magic)")]
    NotWasm { name: String },
    #[error(
        "`{name}` is a core WebAssembly module, not a component: build it for \
         `wasm32-wasip2`, or wrap it with `wasm-tools component new`"
    )]
    CoreModule { name: String },
    #[error("`{name}` is not a valid component: {reason}")]
    Invalid { name: String, reason: String },
    #[error("`{name}` is not a twinsync processor: {reason}")]
    Incompatible { name: String, reason: String },
}

/// What a component is, as `twinsync plugin inspect` shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PluginInfo {
    pub name: String,
    pub size: usize,
    pub sha256: String,
    /// `incoming-processor` and/or `outgoing-processor`.
    pub worlds: Vec<&'static str>,
    pub exports: Vec<String>,
    pub imports: Vec<String>,
    /// What the vendor says about it, from its `twinsync-manifest` section (see
    /// `plugins::manifest`); none for a bare component.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manifest: Option<Manifest>,
}

impl fmt::Display for PluginInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} ({} bytes, sha256 {})",
            self.name, self.size, self.sha256
        )?;
        writeln!(f, "implements: {}", self.worlds.join(", "))?;
        writeln!(f, "exports:")?;
        for name in &self.exports {
            writeln!(f, "  {name}")?;
        }
        writeln!(f, "imports:")?;
        for name in &self.imports {
            writeln!(f, "  {name}")?;
        }
        match &self.manifest {
            Some(manifest) => write!(f, "{manifest}"),
            None => writeln!(
                f,
                "package: none (a bare component; see `twinsync plugin pack`)"
            ),
        }
    }
}

/// A compiled processor, ready to instantiate once per event.
pub struct Plugin {
    pub info: PluginInfo,
    /// Whether the compile cache served it.
    pub compiled: Compiled,
    /// Time spent compiling or loading it.
    pub compile_time: Duration,
    pub(super) pre: InstancePre<State>,
    pub(super) incoming: Option<incoming::GuestIndices>,
    pub(super) outgoing: Option<outgoing::GuestIndices>,
}

impl fmt::Debug for Plugin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Plugin").field("info", &self.info).finish()
    }
}

impl Plugin {
    pub fn name(&self) -> &str {
        &self.info.name
    }

    pub fn has_incoming(&self) -> bool {
        self.incoming.is_some()
    }

    pub fn has_outgoing(&self) -> bool {
        self.outgoing.is_some()
    }

    /// Which plugin this is, as events record it: the package's name and version, or the
    /// name it was loaded under; and the hash of its bytes.
    pub fn identity(&self) -> PluginIdentity {
        let manifest = self.info.manifest.as_ref();
        PluginIdentity {
            name: manifest.map_or_else(|| self.info.name.clone(), |m| m.name.clone()),
            version: manifest.map(|m| m.version.clone()),
            sha256: self.info.sha256.clone(),
        }
    }
}

/// The name, version and hash of a plugin, as recorded with each event it processed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PluginIdentity {
    pub name: String,
    /// None for a component without a manifest (a file or a built-in named in the
    /// configuration).
    pub version: Option<String>,
    pub sha256: String,
}

impl Runtime {
    /// Compile and check a processor. `name` is how errors and logs refer to it (usually the
    /// file name).
    pub fn load(&self, name: &str, wasm: &[u8]) -> Result<Plugin, PluginError> {
        check_header(name, wasm)?;
        let sha256 = sha256_hex(wasm);
        let started = Instant::now();
        let (component, compiled) =
            cache::compile(&self.engine, self.cache_dir.as_deref(), wasm, &sha256).map_err(
                |e| PluginError::Invalid {
                    name: name.into(),
                    reason: format!("{e:#}"),
                },
            )?;
        let compile_time = started.elapsed();
        let ty = component.component_type();
        let exports: Vec<String> = ty
            .exports(&self.engine)
            .map(|(n, _)| n.to_string())
            .collect();
        let imports: Vec<String> = ty
            .imports(&self.engine)
            .map(|(n, _)| n.to_string())
            .collect();
        let incompatible = |reason: String| PluginError::Incompatible {
            name: name.into(),
            reason,
        };

        let has = |wanted: &str| exports.iter().any(|e| e == wanted);
        if !has(INCOMING) && !has(OUTGOING) {
            return Err(incompatible(missing_world_reason(&exports)));
        }
        let unknown: Vec<&String> = imports.iter().filter(|i| !is_provided(i)).collect();
        if !unknown.is_empty() {
            return Err(incompatible(unprovided_reason(&unknown)));
        }
        let pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|e| incompatible(format!("its imports cannot be satisfied: {e:#}")))?;
        let typed = |what: &str, e: wasmtime::Error| {
            incompatible(format!(
                "its `{what}` export does not match the contract {PACKAGE}: {e:#}"
            ))
        };
        let incoming = if has(INCOMING) {
            Some(incoming::GuestIndices::new(&pre).map_err(|e| typed(INCOMING, e))?)
        } else {
            None
        };
        let outgoing = if has(OUTGOING) {
            Some(outgoing::GuestIndices::new(&pre).map_err(|e| typed(OUTGOING, e))?)
        } else {
            None
        };
        let mut worlds = Vec::new();
        if incoming.is_some() {
            worlds.push("incoming-processor");
        }
        if outgoing.is_some() {
            worlds.push("outgoing-processor");
        }
        let manifest = read_manifest(name, wasm, &worlds)?;
        let info = PluginInfo {
            name: name.into(),
            size: wasm.len(),
            sha256,
            worlds,
            exports,
            imports,
            manifest,
        };
        Ok(Plugin {
            info,
            compiled,
            compile_time,
            pre,
            incoming,
            outgoing,
        })
    }
}

/// The package's manifest, checked against what the component is: the contract it was
/// built for and the worlds it implements.
fn read_manifest(
    name: &str,
    wasm: &[u8],
    worlds: &[&str],
) -> Result<Option<Manifest>, PluginError> {
    let Some(manifest) = manifest::read(wasm).map_err(|reason| PluginError::Invalid {
        name: name.into(),
        reason,
    })?
    else {
        return Ok(None);
    };
    let incompatible = |reason: String| PluginError::Incompatible {
        name: name.into(),
        reason,
    };
    if manifest.contract != super::bindings::CONTRACT_VERSION {
        return Err(incompatible(format!(
            "its manifest says it was built for contract {}, but it implements {PACKAGE}",
            manifest.contract
        )));
    }
    for world in &manifest.worlds {
        if !worlds.contains(&world.as_str()) {
            return Err(incompatible(format!(
                "its manifest says it implements `{world}`, but it does not export it"
            )));
        }
    }
    Ok(Some(manifest))
}

fn check_header(name: &str, wasm: &[u8]) -> Result<(), PluginError> {
    if !wasm.starts_with(b"\0asm") || wasm.len() < 8 {
        return Err(PluginError::NotWasm { name: name.into() });
    }
    // Bytes 4..8: version 1 for core modules; components use a different layer byte.
    if wasm[4..8] == [1, 0, 0, 0] {
        return Err(PluginError::CoreModule { name: name.into() });
    }
    Ok(())
}

/// Explain which world is missing, and spot a processor built for another contract version.
fn missing_world_reason(exports: &[String]) -> String {
    let other_version: Vec<&String> = exports
        .iter()
        .filter(|e| e.starts_with("twinsync:processor/"))
        .collect();
    if !other_version.is_empty() {
        return format!(
            "it was built for another version of the contract (it exports {}); this host \
             implements {PACKAGE}",
            join(&other_version)
        );
    }
    let found = if exports.is_empty() {
        "nothing".to_string()
    } else {
        exports.join(", ")
    };
    format!(
        "it implements neither world `incoming-processor` nor `outgoing-processor`: it exports \
         {found}, and a processor must export `{INCOMING}` or `{OUTGOING}`"
    )
}

/// The WASI 0.2 packages this host links (all with nothing granted). Not `wasi:http`:
/// processors have no network.
const WASI_PACKAGES: [&str; 6] = ["cli", "clocks", "filesystem", "io", "random", "sockets"];

/// Imports this host links: our own package and the WASI 0.2 packages above.
fn is_provided(import: &str) -> bool {
    if import.starts_with("twinsync:processor/") {
        return import.ends_with("@0.1.0");
    }
    let Some(rest) = import.strip_prefix("wasi:") else {
        return false;
    };
    let package = rest.split('/').next().unwrap_or_default();
    WASI_PACKAGES.contains(&package) && rest.contains("@0.2.")
}

/// Which imports are missing, what the host has, and how to build without them.
fn unprovided_reason(unknown: &[&String]) -> String {
    let mut reason = format!(
        "it imports what this host does not provide: {} (this host provides {PACKAGE} \
         sync-helper and WASI 0.2 {} with no capabilities)",
        join(unknown),
        WASI_PACKAGES.map(|p| format!("wasi:{p}")).join(", ")
    );
    if unknown.iter().any(|i| i.starts_with("wasi:http/")) {
        reason.push_str(
            "; processors have no network, so leave wasi:http out when building (for \
             componentize-js: `--disable http fetch-event`)",
        );
    }
    reason
}

fn join(items: &[&String]) -> String {
    items
        .iter()
        .map(|s| format!("`{s}`"))
        .collect::<Vec<_>>()
        .join(", ")
}
