//! The compile cache: a compiled component on disk, keyed by the wasm's SHA-256 and the
//! engine's compatibility hash, so that a restart does not compile again. Each entry carries
//! a checksum of its content; a changed, truncated or corrupt entry is compiled again and
//! rewritten, never loaded blindly.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

const MAGIC: &[u8; 8] = b"TWSYNC01";
const HEADER: usize = MAGIC.len() + 32;

/// Where a component came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Compiled {
    /// Compiled now; no cache configured.
    Fresh,
    /// Compiled now and written to the cache (it was missing, stale or corrupt).
    Cached,
    /// Loaded from the cache.
    FromCache,
}

/// Compile `wasm`, or load it from the cache in `dir`.
pub fn compile(
    engine: &Engine,
    dir: Option<&Path>,
    wasm: &[u8],
    sha256: &str,
) -> wasmtime::Result<(Component, Compiled)> {
    let Some(dir) = dir else {
        return Ok((Component::new(engine, wasm)?, Compiled::Fresh));
    };
    let path = entry_path(engine, dir, sha256);
    if let Some(component) = load(engine, &path) {
        return Ok((component, Compiled::FromCache));
    }
    let component = Component::new(engine, wasm)?;
    // A cache that cannot be written costs a compile next time, nothing more.
    if let Ok(artifact) = component.serialize() {
        let _ = store(&path, &artifact);
    }
    Ok((component, Compiled::Cached))
}

fn entry_path(engine: &Engine, dir: &Path, sha256: &str) -> PathBuf {
    let mut hasher = DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut hasher);
    dir.join(format!("{sha256}-{:016x}.cwasm", hasher.finish()))
}

fn load(engine: &Engine, path: &Path) -> Option<Component> {
    let bytes = std::fs::read(path).ok()?;
    if bytes.len() < HEADER || &bytes[..MAGIC.len()] != MAGIC {
        return None;
    }
    let (checksum, artifact) = bytes[MAGIC.len()..].split_at(32);
    if Sha256::digest(artifact).as_slice() != checksum {
        return None;
    }
    // SAFETY: the artifact is one this program serialized with an engine of the same
    // compatibility hash (part of the file name), and its checksum matches, so it is the
    // unchanged output of `Component::serialize`. The cache directory belongs to the node.
    unsafe { Component::deserialize(engine, artifact) }.ok()
}

fn store(path: &Path, artifact: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut bytes = Vec::with_capacity(HEADER + artifact.len());
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&Sha256::digest(artifact));
    bytes.extend_from_slice(artifact);
    // Write then rename, so that a reader never sees half an entry.
    let temp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&temp, &bytes)?;
    std::fs::rename(&temp, path)
}

/// The checksum of `wasm` as the cache names it.
pub fn sha256_hex(wasm: &[u8]) -> String {
    crate::hex::encode(&Sha256::digest(wasm))
}
