//! Command-line interface: one file per command group.

/// `println!` that returns the error instead of panicking when stdout is gone (the reader
/// of `twinsync events replay ID | head` stopped reading): `main` ends quietly then.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*)
    }};
}

mod demo;
mod history;
mod operate;
mod plugin;
mod serve;
mod tenants;

use std::path::PathBuf;
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

/// Where a node's configuration is, for the commands that act on a node.
#[derive(clap::Args, Clone)]
struct NodeArgs {
    /// The node's configuration file (see `twinsync init`).
    #[arg(
        long,
        short,
        env = "TWINSYNC_CONFIG",
        default_value = "node.toml",
        value_name = "FILE"
    )]
    config: PathBuf,
}

/// The node a command acts on: serve's own (`--config`), or one of its tenants.
#[derive(clap::Args, Clone)]
struct TargetArgs {
    #[command(flatten)]
    node: NodeArgs,
    /// Act on this tenant of the serve process (see `twinsync tenants list`): its database
    /// and tracker only.
    #[arg(long, value_name = "NAME")]
    tenant: Option<String>,
}

impl TargetArgs {
    fn config(&self) -> anyhow::Result<twinsync::config::NodeConfig> {
        twinsync::config::NodeConfig::load(&self.node.config)
    }

    /// The node's database alone.
    fn store(&self) -> anyhow::Result<std::sync::Arc<twinsync::store::NodeStore>> {
        let config = self.config()?;
        match &self.tenant {
            Some(name) => twinsync::tenants::open::open_store(&config, name),
            None => twinsync::setup::open_store(&config),
        }
    }

    /// After a write to a tenant's database: a running `serve` looks at that tenant within
    /// a second (its host looks only at tenants given work, and this write gave it none).
    fn tell_serve(&self) -> anyhow::Result<()> {
        if let Some(name) = &self.tenant {
            twinsync::tenants::Registry::of_node(&self.config()?)?.poke(name)?;
        }
        Ok(())
    }

    /// The node with its tracker and processors.
    fn open(&self) -> anyhow::Result<twinsync::setup::ConfiguredNode> {
        let config = self.config()?;
        match &self.tenant {
            Some(name) => twinsync::tenants::open::open_node(&config, name),
            None => twinsync::setup::open_node(&config),
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Run the sync-back scenario on two local trackers and show the result.
    Demo(demo::DemoArgs),
    /// Run a node: its event workers, the node-to-node protocol and the admin API.
    Serve(NodeArgs),
    /// Write a commented example configuration file.
    Init(serve::InitArgs),
    /// Start syncing issues: by key, or all issues a query selects.
    Exalate(operate::ExalateArgs),
    /// Stop syncing issues: both sides keep the issue and forget the link, after the events
    /// already queued for it.
    Unexalate(operate::UnexalateArgs),
    /// Show pending, in-flight and failed events per connection.
    Queue(operate::ListArgs),
    /// List, show, retry and skip sync errors.
    #[command(subcommand)]
    Errors(operate::ErrorsCommand),
    /// Show an event, or run its processor again on its stored input.
    #[command(subcommand)]
    Events(operate::EventsCommand),
    /// List conflicts held for review, and settle them.
    #[command(subcommand)]
    Conflicts(operate::ConflictsCommand),
    /// List the twins of a node.
    Twins(operate::ListArgs),
    /// A twin's history: each event with what it changed (by twin id or either issue key).
    History(history::HistoryArgs),
    /// Compare each twin with what was last exchanged for it; queue a resync (or record a
    /// sync error) for each one that differs. Prints how many were checked and fixed.
    Verify(operate::VerifyArgs),
    /// Look at processor components and try them before installing.
    #[command(subcommand)]
    Plugin(plugin::PluginCommand),
    /// The tenants `serve` runs beside its own node: list, add, change, show, remove, and
    /// their admin tokens. A running `serve` applies changes within a second.
    #[command(subcommand)]
    Tenants(tenants::TenantsCommand),
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Demo(args) => demo::run(args),
        Command::Serve(args) => serve::serve(&args),
        Command::Init(args) => serve::init(&args),
        Command::Exalate(args) => operate::exalate(&args),
        Command::Unexalate(args) => operate::unexalate(&args),
        Command::Queue(args) => operate::queue(&args),
        Command::Errors(command) => operate::errors(command),
        Command::Events(command) => operate::events(command),
        Command::Twins(args) => operate::twins(&args),
        Command::History(args) => history::run(&args),
        Command::Verify(args) => operate::verify(&args),
        Command::Conflicts(command) => operate::conflicts(command),
        Command::Plugin(command) => plugin::run(command),
        Command::Tenants(command) => tenants::run(command),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // The reader went away (`| head`): what it wanted it has.
        Err(error) if is_broken_pipe(&error) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
