//! Tenants in `twinsync serve`: a durable registry of tenants (`DATA_DIR/tenants.db`), an
//! embed [`Host`](crate::Host) that runs them beside serve's own node, and what scopes the
//! admin API to one tenant.
//!
//! - [`spec`]: what a tenant is made of, as the admin API and the CLI give it, and its checks.
//! - [`registry`]: the `tenants` table: specs and token hashes.
//! - [`token`]: tenant tokens (random, stored as SHA-256, compared in constant time).
//! - [`hosting`]: applies the registry to the running host (add, restart, remove) and finds
//!   the tenant a token belongs to.
//! - [`trackers`]: the tracker a spec names (the reference tracker, or a Redmine project).
//! - [`processors`]: the processors a spec names (built in, or from the plugin store).
//! - [`open`]: a tenant's node outside the host, for the CLI's `--tenant NAME`.
//! - [`routing`]: `/t/{tenant}/v1/messages`: the node-to-node protocol for each tenant.
//! - `api`: `/v1/tenants...` on the admin API, for the host token only.
//! - `plugins`: `/v1/plugins...` for a tenant's token: the host's packages, and switching
//!   its own connections between them.

pub(crate) mod api;
pub mod hosting;
pub mod open;
pub(crate) mod plugins;
pub mod processors;
pub mod registry;
pub mod routing;
pub mod spec;
pub mod token;
pub mod trackers;

pub use hosting::Tenants;
pub use registry::Registry;
pub use spec::TenantSpec;
