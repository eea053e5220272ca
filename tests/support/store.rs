//! The node store the scenario tests run on: SQLite (`DIR/twinsync.db`) by default, a
//! PostgreSQL database of the test binary's throwaway cluster with
//! `TWINSYNC_TEST_STORE=postgres`. The same tests run on both (`scripts/test` runs the
//! scenario suites a second time on PostgreSQL): one source, two backends.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use twinsync::store::NodeStore;

/// Set to `postgres` to run the scenario tests on PostgreSQL.
pub const STORE: &str = "TWINSYNC_TEST_STORE";

/// Whether this run puts the nodes' state in PostgreSQL.
pub fn on_postgres() -> bool {
    match std::env::var(STORE).as_deref() {
        Ok("postgres") => true,
        Ok("sqlite") | Err(_) => false,
        Ok(other) => panic!("{STORE}={other}: expected `sqlite` or `postgres`"),
    }
}

/// The store of the node whose files are in `dir`; opened again on the same database when
/// the node restarts (the database's URL is kept in `dir/store.url`).
pub fn open(dir: &Path) -> Arc<NodeStore> {
    std::fs::create_dir_all(dir).expect("node directory");
    if !on_postgres() {
        return Arc::new(NodeStore::open(&dir.join("twinsync.db")).expect("SQLite store"));
    }
    let remembered = dir.join("store.url");
    let url = match std::fs::read_to_string(&remembered) {
        Ok(url) => url,
        Err(_) => {
            let url = crate::postgres::database().unwrap_or_else(|| {
                panic!("{STORE}=postgres, but PostgreSQL cannot be had here (see above)")
            });
            std::fs::write(&remembered, &url).expect("remember the store's URL");
            MADE.lock()
                .unwrap_or_else(|e| e.into_inner())
                .push((dir.to_path_buf(), url.clone()));
            url
        }
    };
    Arc::new(NodeStore::connect(&url, None, None).expect("PostgreSQL store"))
}

/// The PostgreSQL databases made for nodes, by the node's directory.
static MADE: Mutex<Vec<(PathBuf, String)>> = Mutex::new(Vec::new());

/// Drops, when it is dropped, the PostgreSQL databases of the nodes under its directory: a
/// field of what owns the nodes (`Pair`, `Sim`).
pub struct Cleanup(pub PathBuf);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let mut made = MADE.lock().unwrap_or_else(|e| e.into_inner());
        made.retain(|(dir, url)| {
            let ours = dir.starts_with(&self.0);
            if ours {
                crate::postgres::drop_database(url);
            }
            !ours
        });
    }
}
