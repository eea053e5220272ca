//! A secret that never shows up in logs or debug output.

use std::path::Path;

use anyhow::{Context, Result, bail};
use serde::Deserialize;

/// A shared secret or token. `Debug` and `Display` print `***`.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// Read a secret from a file; surrounding whitespace is ignored.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the secret file {}", path.display()))?;
        let secret = text.trim();
        if secret.is_empty() {
            bail!("the secret file {} is empty", path.display());
        }
        Ok(Secret(secret.to_string()))
    }

    /// The secret itself, for signing. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}
