//! The languages processors are written in, and where the tests find each one's processors.
//!
//! Every language has the same four: `mirror`, `remote-key`, `status-guard` and the test
//! processor `scripted` (JavaScript also `bare`, a test processor written without the
//! helpers). Rust's are built by cargo (the build scripts); the others by
//! `scripts/build-polyglot` into `target/guests/polyglot/DIR/NAME.wasm`, which
//! `./scripts/test` runs before `cargo test`. To add a language: teach build-polyglot to
//! build its processors into a new DIR, add a line to the conformance suite
//! (`tests/conformance.rs`) with `Language::polyglot("Name", "DIR")`, and the language to
//! [`ALL`] for the benchmark (`host/benches/languages.rs`).

use std::path::{Path, PathBuf};

/// A language, and how to find its processors.
#[derive(Debug, Clone, Copy)]
pub struct Language {
    /// As people write it: `Rust`, `Python`, `JavaScript`.
    pub name: &'static str,
    /// The folder of `target/guests/polyglot/` that holds its processors; `None` for the
    /// ones cargo builds (Rust).
    polyglot_dir: Option<&'static str>,
}

pub const RUST: Language = Language {
    name: "Rust",
    polyglot_dir: None,
};
pub const PYTHON: Language = Language::polyglot("Python", "python");
pub const JAVASCRIPT: Language = Language::polyglot("JavaScript", "js");

/// Every language, for the benchmark.
pub const ALL: [Language; 3] = [RUST, PYTHON, JAVASCRIPT];

/// Where `scripts/build-polyglot` writes the components it builds.
pub fn polyglot_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/guests/polyglot")
}

impl Language {
    /// A language whose processors `scripts/build-polyglot` builds into `dir`.
    pub const fn polyglot(name: &'static str, dir: &'static str) -> Language {
        Language {
            name,
            polyglot_dir: Some(dir),
        }
    }

    /// How [`processor`](crate::processor) and [`Side`](crate::Side) name this language's
    /// processor `name`: the name itself for Rust, the path of the `.wasm` file otherwise.
    pub fn processor(&self, name: &str) -> String {
        match self.polyglot_dir {
            None => name.to_string(),
            Some(dir) => polyglot_dir()
                .join(dir)
                .join(format!("{name}.wasm"))
                .display()
                .to_string(),
        }
    }
}
