//! `twinsync demo`: the seed scenario of sync back, on two reference trackers in one process.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::Args;
use twinsync::clock::SystemClock;
use twinsync::model::{Comment, Issue};
use twinsync::runtime::Limits;
use twinsync::setup::reference_node;
use twinsync::store::{events, twins};
use twinsync::sync::{Connection, Flow, Node};
use twinsync::tracker::{Origin, Tracker};
use twinsync::transport::local::LocalNetwork;

const CONNECTION: &str = "internal-external";
const REMOTE_KEY_FIELD: &str = "remote issue key";

#[derive(Args)]
pub struct DemoArgs {
    /// Keep both trackers and queues in this directory (SQLite files). By default a temporary
    /// directory is used and removed at the end.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// The processor both sides run: a built-in name or a .wasm file.
    #[arg(long, default_value = "remote-key", value_name = "NAME|FILE")]
    processor: String,
}

pub fn run(args: DemoArgs) -> Result<()> {
    let temp;
    let dir = match &args.data_dir {
        Some(dir) => dir.clone(),
        None => {
            temp = tempfile::tempdir().context("cannot create a temporary directory")?;
            temp.path().to_path_buf()
        }
    };
    println!("twinsync demo: sync back after processing, between two trackers");
    match &args.data_dir {
        Some(_) => println!("data directory: {}", dir.display()),
        None => println!(
            "data directory: {} (temporary; --data-dir DIR keeps it)",
            dir.display()
        ),
    }

    // The compile cache, as for `plugin check`: a Python or JavaScript processor compiles once.
    let runtime = super::plugin::cached_runtime()?;
    let processor =
        twinsync::setup::load_processor(&runtime, &args.processor, std::path::Path::new("."))?;
    println!("processor on both sides: {}\n", processor.name());
    let connection = |remote: &str| {
        Connection::new(
            CONNECTION,
            remote,
            Flow::Bidirectional,
            Some(processor.clone()),
            Some(processor.clone()),
            Limits::default(),
        )
    };
    let clock = Arc::new(SystemClock);
    let internal = reference_node(
        &dir.join("internal"),
        "Internal",
        "INT",
        runtime.clone(),
        vec![connection("External")?],
        clock.clone(),
    )?;
    let external = reference_node(
        &dir.join("external"),
        "External",
        "EXT",
        runtime.clone(),
        vec![connection("Internal")?],
        clock,
    )?;

    let issue = Issue {
        summary: "Customer cannot log in after password reset".into(),
        description: Some("Reported by ACME: the reset link logs them out again.".into()),
        status: "Open".into(),
        priority: Some("High".into()),
        labels: vec!["customer".into(), "login".into()],
        comments: vec![Comment {
            id: String::new(),
            author: None,
            body: "Escalated to the vendor.".into(),
            created: String::new(),
            updated: None,
            internal: false,
        }],
        ..Issue::default()
    };
    let created = internal.tracker.create(&issue, Origin::User)?;
    let key = created.key.clone().unwrap_or_default();
    println!(
        "1. Internal: created {key} \"{}\" ({})",
        created.summary, created.status
    );
    // The change feed also has the creation: start the node past it, so that only the
    // exalate sends the issue.
    internal.node.poll_changes()?;
    let twin = internal.node.exalate(CONNECTION, &key)?;
    println!("2. Internal: exalated {key} over `{CONNECTION}` (twin {twin})");

    let network = LocalNetwork::new(vec![internal.node.clone(), external.node.clone()]);
    let stats = network.run_until_idle(100)?;
    println!(
        "3. queues drained: {} events processed, {} messages delivered, {} sync errors\n",
        stats.events_done + stats.events_failed,
        stats.messages,
        stats.events_failed
    );
    print_events(&internal.node)?;
    print_events(&external.node)?;

    let remote_twin = external.node.store().read(|db| twins::get(db, &twin))?;
    let Some(remote_twin) = remote_twin else {
        bail!("External did not create a twin of {key}: see the events above");
    };
    let ext_issue = external
        .tracker
        .get(&remote_twin.local_key)?
        .context("External's issue is gone")?;
    let int_issue = internal
        .tracker
        .get(&key)?
        .context("Internal's issue is gone")?;
    let ext_key = ext_issue.key.clone().unwrap_or_default();
    println!();
    print_issue("External", &ext_issue);
    print_issue("Internal", &int_issue);
    println!();
    match int_issue.custom_text(REMOTE_KEY_FIELD) {
        Some(stored) if stored == ext_key => {
            println!(
                "Internal's \"{REMOTE_KEY_FIELD}\" holds External's key {ext_key}: the sync back worked."
            );
            Ok(())
        }
        other => bail!(
            "Internal's \"{REMOTE_KEY_FIELD}\" is {other:?}, not External's key {ext_key}: see the events above"
        ),
    }
}

fn print_events(node: &Node) -> Result<()> {
    println!("{} events:", node.instance());
    for event in node.store().read(|db| events::all(db))? {
        let outcome = event.note.or(event.error).unwrap_or_default();
        println!(
            "  {:<12} {:<8} {:<14} hop {}  {:?}: {outcome}",
            event.id,
            format!("{:?}", event.kind).to_lowercase(),
            event.reason.as_str(),
            event.hop,
            event.state,
        );
    }
    Ok(())
}

fn print_issue(side: &str, issue: &Issue) {
    println!(
        "{side:<9} {} \"{}\"  status {}  comments {}  {REMOTE_KEY_FIELD}: {}",
        issue.key.as_deref().unwrap_or("?"),
        issue.summary,
        issue.status,
        issue.comments.len(),
        issue.custom_text(REMOTE_KEY_FIELD).unwrap_or("(none)")
    );
}
