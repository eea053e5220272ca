//! Where installed packages' bytes live: one file per content hash under the data
//! directory (`plugins/SHA256.wasm`), written once and checked against its name whenever
//! it is read, and the compiled plugins loaded from them.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, bail};

use crate::runtime::{Plugin, Runtime};

/// The content-addressed files of a node's plugin store, and a runtime to load them.
pub struct Library {
    dir: PathBuf,
    runtime: Arc<Runtime>,
    /// Plugins loaded so far, by hash: switching back to a version loads nothing.
    loaded: Mutex<HashMap<String, Arc<Plugin>>>,
}

impl Library {
    pub fn new(dir: PathBuf, runtime: Arc<Runtime>) -> Self {
        Library {
            dir,
            runtime,
            loaded: Mutex::default(),
        }
    }

    pub fn runtime(&self) -> &Arc<Runtime> {
        &self.runtime
    }

    fn path(&self, sha256: &str) -> PathBuf {
        self.dir.join(format!("{sha256}.wasm"))
    }

    /// Keep `wasm` (whose hash is `sha256`) in the store; nothing happens if it is there.
    pub fn save(&self, sha256: &str, wasm: &[u8]) -> Result<()> {
        let path = self.path(sha256);
        if path.exists() {
            return Ok(());
        }
        std::fs::create_dir_all(&self.dir)
            .with_context(|| format!("cannot create {}", self.dir.display()))?;
        // Write then rename: a reader never finds half a file under the final name.
        let temp = path.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&temp, wasm).with_context(|| format!("cannot write {}", temp.display()))?;
        std::fs::rename(&temp, &path).with_context(|| format!("cannot write {}", path.display()))
    }

    /// Delete the file of `sha256`.
    pub fn delete(&self, sha256: &str) -> Result<()> {
        self.loaded
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(sha256);
        match std::fs::remove_file(self.path(sha256)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }

    /// The plugin stored under `sha256`, compiled (from the compile cache if it can be).
    /// A file whose content does not match its hash is refused, never run.
    pub fn load(&self, sha256: &str, id: &str) -> Result<Arc<Plugin>> {
        if let Some(plugin) = self
            .loaded
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(sha256)
        {
            return Ok(plugin.clone());
        }
        let path = self.path(sha256);
        let wasm = std::fs::read(&path).with_context(|| {
            format!(
                "cannot read {id} from the plugin store ({})",
                path.display()
            )
        })?;
        let actual = crate::runtime::sha256_hex(&wasm);
        if actual != sha256 {
            bail!(
                "{id} in the plugin store was changed on disk ({} has sha256 {actual}, \
                 installed as {sha256}): install it again",
                path.display()
            );
        }
        let plugin = Arc::new(self.runtime.load(id, &wasm)?);
        self.loaded
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(sha256.to_string(), plugin.clone());
        Ok(plugin)
    }
}
