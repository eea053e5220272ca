//! One `twinsync serve` (or embedding host) per data directory: the process holds an
//! exclusive lock on `DATA_DIR/serve.lock` while it runs (the operating system lets go of it
//! when the process ends, however it ends). Operator commands do not take it: they work
//! beside a running node.

use std::fs::{File, TryLockError};
use std::path::Path;

use anyhow::{Context, Result, bail};

/// The lock, held until dropped.
pub struct DataDirLock {
    _file: File,
}

impl DataDirLock {
    pub fn take(data_dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("cannot create the data directory {}", data_dir.display()))?;
        let path = data_dir.join("serve.lock");
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => Ok(DataDirLock { _file: file }),
            Err(TryLockError::WouldBlock) => bail!(
                "another twinsync (`twinsync serve` or an embedding host) is running on the data directory {} (it holds {}): \
                 stop it first, or give this node a data directory of its own",
                data_dir.display(),
                path.display()
            ),
            Err(TryLockError::Error(error)) => {
                Err(error).with_context(|| format!("cannot lock {}", path.display()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_same_directory_is_refused_until_the_first_goes() {
        let dir = tempfile::tempdir().unwrap();
        let first = DataDirLock::take(dir.path()).unwrap();
        let error = DataDirLock::take(dir.path()).err().unwrap().to_string();
        assert!(
            error.contains("another twinsync (`twinsync serve` or an embedding host) is running"),
            "{error}"
        );
        drop(first);
        DataDirLock::take(dir.path()).unwrap();
    }
}
