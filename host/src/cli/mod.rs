//! Command-line interface: one file per command group.

mod demo;
mod plugin;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// twinsync keeps issues in two trackers in sync. The mapping between the trackers is done by
/// processors: WebAssembly components that run sandboxed, one fresh instance per event.
#[derive(Parser)]
#[command(name = "twinsync", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the sync-back scenario on two local trackers and show the result.
    Demo(demo::DemoArgs),
    /// Look at processor components.
    #[command(subcommand)]
    Plugin(plugin::PluginCommand),
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Demo(args) => demo::run(args),
        Command::Plugin(command) => plugin::run(command),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Load a processor given as the name of a built-in one (`mirror`, `remote-key`,
/// `status-guard`) or as the path of a `.wasm` file.
fn load_processor(
    runtime: &twinsync::runtime::Runtime,
    spec: &str,
) -> anyhow::Result<std::sync::Arc<twinsync::runtime::Plugin>> {
    let plugin = match twinsync::builtin::get(spec) {
        Some(wasm) => runtime.load(spec, wasm)?,
        None => {
            let wasm = std::fs::read(spec).map_err(|e| {
                anyhow::anyhow!(
                    "cannot read processor `{spec}`: {e} (give a .wasm file or one of the built-in processors: {})",
                    builtin_names()
                )
            })?;
            runtime.load(spec, &wasm)?
        }
    };
    Ok(std::sync::Arc::new(plugin))
}

fn builtin_names() -> String {
    twinsync::builtin::ALL
        .iter()
        .map(|(name, _)| *name)
        .collect::<Vec<_>>()
        .join(", ")
}
