//! `twinsync serve` and `twinsync init`.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;
use tracing_subscriber::EnvFilter;
use twinsync::config::{EXAMPLE, NodeConfig};

use super::NodeArgs;

pub fn serve(args: &NodeArgs) -> Result<()> {
    let config = NodeConfig::load(&args.config)?;
    // RUST_LOG, when set, overrides the file's log level.
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&config.log_level))
        .with_context(|| {
            format!(
                "{}: `log-level = \"{}\"` is not a log level",
                args.config.display(),
                config.log_level
            )
        })?;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
    twinsync::service::serve(&config)
}

#[derive(Args)]
pub struct InitArgs {
    /// Where to write the example.
    #[arg(default_value = "node.toml", value_name = "FILE")]
    path: PathBuf,
    /// Replace the file if it exists.
    #[arg(long)]
    force: bool,
}

pub fn init(args: &InitArgs) -> Result<()> {
    if args.path.exists() && !args.force {
        bail!("{} exists; use --force to replace it", args.path.display());
    }
    std::fs::write(&args.path, EXAMPLE)
        .with_context(|| format!("cannot write {}", args.path.display()))?;
    println!(
        "wrote {}: an example for node \"Internal\". Edit it, then run `twinsync serve --config {}`.",
        args.path.display(),
        args.path.display()
    );
    Ok(())
}
