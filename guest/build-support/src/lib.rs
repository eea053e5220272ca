//! Used by the build scripts of `twinsync` and `twinsync-tests` to compile guest processors
//! from source, once per build, into `target/guests/`.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "wasm32-wasip2";
const PROFILE: &str = "guest";

/// A guest crate to build: its package name, and whether it is a binary (a WASI command)
/// rather than a library component.
pub struct Guest {
    pub package: &'static str,
    pub binary: bool,
}

/// Build `guests` for wasm32-wasip2 and give the crate being built the path of each `.wasm`
/// as the environment variable `{env_prefix}{PACKAGE}` (upper case, `-` as `_`), for
/// `env!`. Tells cargo to run the build script again when the guests or the WIT change.
pub fn build(env_prefix: &str, guests: &[Guest]) {
    for (guest, path) in guests.iter().zip(compile(guests)) {
        let var = guest.package.to_uppercase().replace('-', "_");
        println!("cargo:rustc-env={env_prefix}{var}={}", path.display());
    }
}

fn compile(guests: &[Guest]) -> Vec<PathBuf> {
    let manifest_dir =
        PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("run from a build script"));
    let root = manifest_dir
        .parent()
        .expect("crates live one level below the workspace root");
    for watched in ["guest", "wit", "Cargo.lock"] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }
    check_target_installed();

    let target_dir = env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
        .join("guests");
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(root)
        .args([
            "build",
            "--target",
            TARGET,
            "--profile",
            PROFILE,
            "--target-dir",
        ])
        .arg(&target_dir);
    for guest in guests {
        command.args(["-p", guest.package]);
    }
    // The outer build's flags and wrappers are for the host target, not for guests.
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
    ] {
        command.env_remove(var);
    }
    let status = command
        .status()
        .unwrap_or_else(|e| panic!("cannot run cargo to build the guest processors: {e}"));
    if !status.success() {
        panic!("building the guest processors for {TARGET} failed (see the cargo output above)");
    }

    let out = target_dir.join(TARGET).join(PROFILE);
    guests
        .iter()
        .map(|guest| {
            let file = if guest.binary {
                format!("{}.wasm", guest.package)
            } else {
                format!("{}.wasm", guest.package.replace('-', "_"))
            };
            let path = out.join(file);
            assert!(
                path.exists(),
                "cargo built {} but {} is missing",
                guest.package,
                path.display()
            );
            path
        })
        .collect()
}

/// Fail early, with the fix, when the wasm32-wasip2 standard library is not installed.
fn check_target_installed() {
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let libdir = Command::new(rustc)
        .args(["--print", "target-libdir", "--target", TARGET])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_string());
    let installed =
        libdir.is_some_and(|dir| Path::new(&dir).join("libstd.rlib").exists() || has_std(&dir));
    if !installed {
        panic!(
            "\n\nThe Rust target {TARGET} is not installed, and twinsync's processors are built for it.\n\
             Install it with:\n\n    rustup target add {TARGET}\n\n"
        );
    }
}

fn has_std(dir: &str) -> bool {
    std::fs::read_dir(dir).is_ok_and(|entries| {
        entries
            .flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with("libstd-"))
    })
}
