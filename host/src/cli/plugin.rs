//! `twinsync plugin ...`: look at processor components.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Subcommand;
use twinsync::runtime::{Runtime, RuntimeConfig};

#[derive(Subcommand)]
pub enum PluginCommand {
    /// Show which worlds a component implements and what it imports.
    Inspect {
        /// The component (`.wasm`).
        file: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

pub fn run(command: PluginCommand) -> Result<()> {
    match command {
        PluginCommand::Inspect { file, json } => {
            let wasm =
                std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let runtime = Runtime::new(&RuntimeConfig::default())?;
            let plugin = runtime.load(&file.display().to_string(), &wasm)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&plugin.info)?);
            } else {
                print!("{}", plugin.info);
            }
            Ok(())
        }
    }
}
