//! The `twinsync` command run as an operator runs it, for the tests of the command line: a
//! command that must succeed gives its output, one that must fail its error.

use std::borrow::BorrowMut;
use std::path::Path;
use std::process::{Command, Output};

/// `twinsync ARGS` (a [`Command`], not run yet), the binary cargo built for the calling
/// test: a macro for the same reason as [`twinsync_binary!`](crate::twinsync_binary).
#[macro_export]
macro_rules! twinsync {
    ($args:expr) => {
        $crate::cli::command($crate::twinsync_binary!(), $args)
    };
}

/// `binary ARGS` with the tests' compile cache: plugin commands compile components, and
/// only the first test run after a change should pay for it.
pub fn command(binary: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(binary);
    command
        .args(args)
        .env("TWINSYNC_CACHE_DIR", crate::compile_cache_dir());
    command
}

/// Run a command that must succeed; its standard output.
pub fn ok(mut command: impl BorrowMut<Command>) -> String {
    let command = command.borrow_mut();
    let output = run(command);
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{command:?}: {text}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    text
}

/// Run a command that must fail; its standard error.
pub fn fails(mut command: impl BorrowMut<Command>) -> String {
    let command = command.borrow_mut();
    let output = run(command);
    assert!(
        !output.status.success(),
        "{command:?} succeeded: {}",
        String::from_utf8_lossy(&output.stdout)
    );
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Run a command to its end, whatever its exit status.
pub fn run(command: &mut Command) -> Output {
    command
        .output()
        .unwrap_or_else(|error| panic!("cannot run {command:?}: {error}"))
}
