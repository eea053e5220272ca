//! A processor component compiled once, checked against the contract, and kept ready to
//! instantiate.

use std::fmt;

use std::time::{Duration, Instant};

use wasmtime::component::InstancePre;

use std::collections::BTreeMap;
use std::sync::Arc;

use super::bindings::{SUPPORTED_VERSIONS, v0_1_0, v0_2_0, v0_2_1};
use super::cache::{self, Compiled, sha256_hex};
use super::engine::Runtime;
use super::exports::{Export, IncomingV1, IncomingV2, OutgoingV1, OutgoingV2};
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
    /// The version of `twinsync:processor` it was built for (what it exports).
    pub contract: &'static str,
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
        writeln!(
            f,
            "implements: {} (contract twinsync:processor@{})",
            self.worlds.join(", "),
            self.contract
        )?;
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

/// The versions of the contract a component can be built for; the host runs each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Contract {
    /// `twinsync:processor@0.1.0`, frozen in `wit/since_v0_1_0/`.
    V0_1_0,
    /// `twinsync:processor@0.2.0`: the context's `origin`, the `setting` host call.
    V0_2_0,
    /// `twinsync:processor@0.2.1`: the `read-field-base` host call.
    V0_2_1,
}

impl Contract {
    pub fn version(self) -> &'static str {
        match self {
            Contract::V0_1_0 => v0_1_0::VERSION,
            Contract::V0_2_0 => v0_2_0::VERSION,
            Contract::V0_2_1 => v0_2_1::VERSION,
        }
    }

    fn parse(version: &str) -> Option<Contract> {
        match version {
            v0_1_0::VERSION => Some(Contract::V0_1_0),
            v0_2_0::VERSION => Some(Contract::V0_2_0),
            v0_2_1::VERSION => Some(Contract::V0_2_1),
            _ => None,
        }
    }

    fn incoming(self) -> &'static str {
        match self {
            Contract::V0_1_0 => v0_1_0::INCOMING,
            Contract::V0_2_0 => v0_2_0::INCOMING,
            Contract::V0_2_1 => v0_2_1::INCOMING,
        }
    }

    fn outgoing(self) -> &'static str {
        match self {
            Contract::V0_1_0 => v0_1_0::OUTGOING,
            Contract::V0_2_0 => v0_2_0::OUTGOING,
            Contract::V0_2_1 => v0_2_1::OUTGOING,
        }
    }
}

/// A component's incoming export, per contract version (0.2.0 and 0.2.1 have the same).
#[derive(Clone)]
pub(super) enum IncomingIndices {
    V0_1_0(Export<IncomingV1>),
    V0_2(Export<IncomingV2>),
}

/// A component's outgoing export, per contract version (0.2.0 and 0.2.1 have the same).
#[derive(Clone)]
pub(super) enum OutgoingIndices {
    V0_1_0(Export<OutgoingV1>),
    V0_2(Export<OutgoingV2>),
}

/// A compiled processor, ready to instantiate once per event.
#[derive(Clone)]
pub struct Plugin {
    pub info: PluginInfo,
    /// Whether the compile cache served it.
    pub compiled: Compiled,
    /// Time spent compiling or loading it.
    pub compile_time: Duration,
    pub(super) pre: InstancePre<State>,
    pub(super) incoming: Option<IncomingIndices>,
    pub(super) outgoing: Option<OutgoingIndices>,
    /// What the `setting` host call answers: the manifest's defaults, overridden by the
    /// node's operator per connection side (see [`Plugin::with_settings`]).
    pub settings: Arc<BTreeMap<String, String>>,
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

    /// The same plugin with these settings over the manifest's defaults.
    pub fn with_settings(&self, overrides: &BTreeMap<String, String>) -> Plugin {
        let mut settings = (*self.settings).clone();
        settings.extend(overrides.iter().map(|(k, v)| (k.clone(), v.clone())));
        Plugin {
            settings: Arc::new(settings),
            ..self.clone()
        }
    }

    /// What the processor's output depends on besides its input, its bytes and its
    /// settings, as a short hex string: two events with the same fingerprint ran the same
    /// code with the same settings.
    pub fn fingerprint(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut hash = Sha256::new();
        hash.update(self.info.sha256.as_bytes());
        for (name, value) in self.settings.iter() {
            for part in [name, value] {
                hash.update((part.len() as u64).to_le_bytes());
                hash.update(part.as_bytes());
            }
        }
        crate::hex::encode(&hash.finalize()[..16])
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
        let (exports, imports) = self.interfaces_of(&component);
        let incompatible = |reason: String| PluginError::Incompatible {
            name: name.into(),
            reason,
        };

        let has = |wanted: &str| exports.iter().any(|e| e == wanted);
        let contract = contract_of(&exports).map_err(incompatible)?;
        let unknown: Vec<&String> = imports
            .iter()
            .filter(|i| !is_provided(i, contract))
            .collect();
        if !unknown.is_empty() {
            return Err(incompatible(unprovided_reason(&unknown)));
        }
        let pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|e| incompatible(format!("its imports cannot be satisfied: {e:#}")))?;
        let typed = |what: &str, e: wasmtime::Error| {
            incompatible(format!(
                "its `{what}` export does not match the contract twinsync:processor@{}: {e:#}",
                contract.version()
            ))
        };
        let (incoming_name, outgoing_name) = (contract.incoming(), contract.outgoing());
        let incoming = if !has(incoming_name) {
            None
        } else {
            let typed = |e| typed(incoming_name, e);
            Some(match contract {
                Contract::V0_1_0 => {
                    IncomingIndices::V0_1_0(Export::find(&pre, v0_1_0::INCOMING).map_err(typed)?)
                }
                Contract::V0_2_0 | Contract::V0_2_1 => {
                    IncomingIndices::V0_2(Export::find(&pre, incoming_name).map_err(typed)?)
                }
            })
        };
        let outgoing = if !has(outgoing_name) {
            None
        } else {
            let typed = |e| typed(outgoing_name, e);
            Some(match contract {
                Contract::V0_1_0 => {
                    OutgoingIndices::V0_1_0(Export::find(&pre, v0_1_0::OUTGOING).map_err(typed)?)
                }
                Contract::V0_2_0 | Contract::V0_2_1 => {
                    OutgoingIndices::V0_2(Export::find(&pre, outgoing_name).map_err(typed)?)
                }
            })
        };
        let mut worlds = Vec::new();
        if incoming.is_some() {
            worlds.push("incoming-processor");
        }
        if outgoing.is_some() {
            worlds.push("outgoing-processor");
        }
        let manifest = read_manifest(name, wasm, &worlds, contract)?;
        let settings = manifest
            .as_ref()
            .map(|m| m.settings.clone())
            .unwrap_or_default();
        let info = PluginInfo {
            name: name.into(),
            size: wasm.len(),
            sha256,
            worlds,
            exports,
            imports,
            contract: contract.version(),
            manifest,
        };
        Ok(Plugin {
            info,
            compiled,
            compile_time,
            pre,
            incoming,
            outgoing,
            settings: Arc::new(settings),
        })
    }
}

impl Runtime {
    /// What a component exports and imports, whether or not it is a processor this host
    /// can run: for `plugin inspect` to show a component it refuses.
    pub fn interfaces(
        &self,
        name: &str,
        wasm: &[u8],
    ) -> Result<(Vec<String>, Vec<String>), PluginError> {
        check_header(name, wasm)?;
        let (component, _) = cache::compile(
            &self.engine,
            self.cache_dir.as_deref(),
            wasm,
            &sha256_hex(wasm),
        )
        .map_err(|e| PluginError::Invalid {
            name: name.into(),
            reason: format!("{e:#}"),
        })?;
        Ok(self.interfaces_of(&component))
    }

    fn interfaces_of(
        &self,
        component: &wasmtime::component::Component,
    ) -> (Vec<String>, Vec<String>) {
        let ty = component.component_type();
        let names = |items: &mut dyn Iterator<Item = String>| items.collect::<Vec<_>>();
        (
            names(&mut ty.exports(&self.engine).map(|(n, _)| n.to_string())),
            names(&mut ty.imports(&self.engine).map(|(n, _)| n.to_string())),
        )
    }
}

/// The contract version a component was built for, from the names of its processor
/// exports; a version this host does not run is refused with the list of those it does.
fn contract_of(exports: &[String]) -> Result<Contract, String> {
    let mut versions: Vec<&str> = exports
        .iter()
        .filter_map(|e| {
            e.strip_prefix("twinsync:processor/incoming@")
                .or_else(|| e.strip_prefix("twinsync:processor/outgoing@"))
        })
        .collect();
    versions.sort_unstable();
    versions.dedup();
    match versions.as_slice() {
        [] => Err(missing_world_reason(exports)),
        [version] => Contract::parse(version).ok_or_else(|| {
            format!(
                "it was built for contract twinsync:processor@{version}, which this host does \
                 not run; it runs versions {}",
                SUPPORTED_VERSIONS.join(", ")
            )
        }),
        several => Err(format!(
            "it exports processors of several contract versions ({}); build it for one",
            several.join(", ")
        )),
    }
}

/// The package's manifest, checked against what the component is: the contract it was
/// built for and the worlds it implements.
fn read_manifest(
    name: &str,
    wasm: &[u8],
    worlds: &[&str],
    contract: Contract,
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
    if manifest.contract != contract.version() {
        return Err(incompatible(format!(
            "its manifest says it was built for contract {}, but it implements \
             twinsync:processor@{}; if it was rebuilt against a newer SDK, set \
             `contract = \"{}\"` in its plugin.toml",
            manifest.contract,
            contract.version(),
            contract.version()
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

/// Explain which world is missing.
fn missing_world_reason(exports: &[String]) -> String {
    let found = if exports.is_empty() {
        "nothing".to_string()
    } else {
        exports.join(", ")
    };
    format!(
        "it implements neither world `incoming-processor` nor `outgoing-processor`: it exports \
         {found}, and a processor must export `{}` or `{}` (or those of another contract \
         version this host runs: {})",
        v0_2_1::INCOMING,
        v0_2_1::OUTGOING,
        SUPPORTED_VERSIONS.join(", ")
    )
}

/// The WASI 0.2 packages this host links (all with nothing granted). Not `wasi:http`:
/// processors have no network.
const WASI_PACKAGES: [&str; 6] = ["cli", "clocks", "filesystem", "io", "random", "sockets"];

/// Imports this host links: our own package, of the version the component exports, and
/// the WASI 0.2 packages above.
fn is_provided(import: &str, contract: Contract) -> bool {
    if let Some(rest) = import.strip_prefix("twinsync:processor/") {
        return rest.rsplit('@').next() == Some(contract.version());
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
        "it imports what this host does not provide: {} (this host provides \
         twinsync:processor sync-helper of the version the processor exports, and WASI 0.2 \
         {} with no capabilities)",
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
