//! twinsync keeps issues in two trackers in sync. Each tracker runs a node; the mapping
//! between them is done by processors, WebAssembly components implementing the WIT contract
//! in `wit/processor.wit`, run in a sandbox.
//!
//! # Embedding twinsync
//!
//! A tracker written in Rust runs twinsync in its own process through a [`Host`]. The host
//! takes **tenants** ([`TenantConfig`]): each is a node with its own tracker, database and
//! connections. All tenants share one WebAssembly engine and compile cache, and each
//! distinct processor is compiled once for the whole host. Tenants reach each other by
//! instance name, in process.
//!
//! The embedder implements [`Tracker`] for its issue store (get, create, update, a change
//! feed, search), and either lets each tenant poll the feed or pushes the keys of changed
//! issues itself ([`TenantConfig::push_changes`], [`Tenant::issues_changed`]).
//! [`Host::subscribe`] tells it what happens: each event synced, each sync error.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//!
//! use twinsync::model::Issue;
//! use twinsync::tracker::{Origin, ReferenceTracker, Tracker};
//! use twinsync::{ConnectionConfig, Host, HostConfig, HostEvent, Processor, TenantConfig};
//!
//! # fn main() -> anyhow::Result<()> {
//! let dir = tempfile::tempdir()?;
//! let host = Host::start(HostConfig::new(dir.path()))?;
//! let events = host.subscribe();
//!
//! // Two tenants, each on its own tracker (here the reference tracker, in SQLite files).
//! let acme_issues = Arc::new(ReferenceTracker::new(&dir.path().join("acme.db"), "ACME")?);
//! let vendor_issues = Arc::new(ReferenceTracker::new(&dir.path().join("vendor.db"), "VND")?);
//! let acme = host.add_tenant(
//!     TenantConfig::new("acme", "Acme", acme_issues.clone())
//!         .connection(ConnectionConfig::new("acme-vendor", "Vendor")
//!             .processor(Processor::builtin("remote-key")))
//!         .push_changes(),
//! )?;
//! host.add_tenant(
//!     TenantConfig::new("vendor", "Vendor", vendor_issues.clone())
//!         .connection(ConnectionConfig::new("acme-vendor", "Acme")
//!             .processor(Processor::builtin("remote-key"))),
//! )?;
//! // One processor, compiled once for both tenants.
//! assert_eq!(host.compiled_processors(), 1);
//!
//! let issue = Issue { summary: "Printer on fire".into(), status: "Open".into(), ..Issue::default() };
//! let key = acme_issues.create(&issue, Origin::User)?.key.unwrap();
//! acme.exalate("acme-vendor", &key)?;
//!
//! // The vendor's side creates its issue.
//! loop {
//!     match events.recv_timeout(Duration::from_secs(60))? {
//!         HostEvent::Synced { tenant, note, .. } if tenant == "vendor" => {
//!             println!("vendor: {note}");
//!             break;
//!         }
//!         HostEvent::SyncError { message, .. } => panic!("{message}"),
//!         _ => {}
//!     }
//! }
//! let twins = host.tenant("vendor").unwrap().twins()?;
//! assert_eq!(vendor_issues.get(&twins[0].local_key)?.unwrap().summary, "Printer on fire");
//!
//! // Acme's tracker pushes its changes instead of being polled.
//! let mut changed = acme_issues.get(&key)?.unwrap();
//! changed.status = "Closed".into();
//! acme_issues.update(&changed, Origin::User)?;
//! acme.issues_changed(&[key.as_str()])?;
//! # Ok(())
//! # }
//! ```
//!
//! `host/examples/embed.rs` is a complete example with an in-memory tracker
//! (`cargo run -p twinsync --example embed`).
//!
//! # What is public
//!
//! The embedding API is what the crate root documents ([`Host`], [`Tenant`], their
//! configuration and events) and the modules [`tracker`] (the [`Tracker`] trait and the
//! trackers twinsync ships) and [`model`] (issues, as trackers and processors see them).
//!
//! The other modules are public but hidden from these docs (`#[doc(hidden)]`): the
//! `twinsync` binary, the scenario tests in `tests/` and the benchmarks drive the engine
//! through them (nodes, the queue, the runtime, the transports). They are not a stable
//! API and change without notice. Modules nothing outside the crate uses are private.

pub(crate) mod admin;
mod allocator;
pub(crate) mod console;
pub(crate) mod hex;

mod embed;
pub mod model;
pub mod tracker;

pub use embed::{
    ConnectionConfig, EventKind, Host, HostConfig, HostEvent, MAX_PUSHED_KEYS, Processor, Pushed,
    QueueInfo, Quota, QuotaLimit, SUBSCRIBER_BACKLOG, SyncErrorInfo, Tenant, TenantConfig,
    TwinInfo,
};
pub use runtime::{ConflictPolicy, Limits};
pub use sync::{Flow, Policies};
pub use tracker::Tracker;

pub use allocator::{Allocator, keep_freed_c_memory};

// Internals: public for the binary, tests/ and the benchmarks (see "What is public" above).
#[doc(hidden)]
pub mod builtin;
#[doc(hidden)]
pub mod clock;
#[doc(hidden)]
pub mod config;
#[doc(hidden)]
pub mod ops;
#[doc(hidden)]
pub mod plugins;
#[doc(hidden)]
pub mod runtime;
#[doc(hidden)]
pub mod service;
#[doc(hidden)]
pub mod setup;
#[doc(hidden)]
pub mod store;
#[doc(hidden)]
pub mod sync;
#[doc(hidden)]
pub mod tenants;
#[doc(hidden)]
pub mod transport;
#[doc(hidden)]
pub mod webhooks;
