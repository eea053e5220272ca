//! The commented example `twinsync init` writes.

/// A working configuration for the *Internal* node of the demo pair, with every setting
/// explained.
pub const EXAMPLE: &str = r#"# twinsync node configuration. `twinsync serve --config node.toml` runs this node.

# This node's tracker instance, as the other nodes name it.
instance = "Internal"

# Databases (tracker.db for the reference tracker, twinsync.db for the sync queue) and the
# compile cache live here. Relative to this file.
data-dir = "data/internal"

# error, warn, info, debug or trace.
log-level = "info"

# Events processed in parallel; default: the number of cores.
# workers = 2

# Days a finished event is kept (for `twinsync events` and replays); failed and waiting
# events are kept until they are dealt with. Default: 7.
# keep-events-days = 7

# Minutes between two reconciliations (`twinsync verify`: each twin compared with what was
# last exchanged for it, a resync for each one that differs); 0: never. Default: 10.
# verify-interval-minutes = 10

# The node-to-node protocol listens here (needed when a connection receives).
listen = "127.0.0.1:7401"

# Serve the node-to-node protocol over TLS (PEM files).
# [tls]
# cert = "cert.pem"
# key = "key.pem"

# The admin API (JSON over HTTP), on its own address, protected by its own bearer token.
[admin]
listen = "127.0.0.1:7501"
token = "change-me-admin-token"
# token-file = "admin.token"

# The operator console in the browser, at http://127.0.0.1:7501/console (log in with the
# admin token). Off unless enabled; only on a loopback admin address unless allow-remote.
# [console]
# enabled = true
# secure-cookie = true    # when browsers reach it over HTTPS (through a TLS proxy)

# The tracker this node syncs: the built-in reference tracker (issues keyed INT-1, INT-2...)
[tracker]
kind = "reference"
project = "INT"
# Several processes sharing one reference tracker keep it in PostgreSQL instead of
# DATA_DIR/tracker.db (the tables are created on first use):
# postgres-url = "postgres://twinsync@127.0.0.1:5432/tracker"
# postgres-password-file = "tracker.password"   # or the password in the URL

# Or a project of a Redmine (5.x, REST API enabled); issues are keyed #123 as in Redmine.
# [tracker]
# kind = "redmine"
# url = "https://redmine.example.com"
# # The API key of a Redmine administrator that only twinsync uses; or api-key = "...".
# api-key-file = "redmine.key"
# # The project's identifier, as in https://redmine.example.com/projects/internal
# project = "internal"
# # An issue custom field (format Text, used as a filter, for all projects and trackers)
# # where twinsync records the sync event that wrote an issue last.
# event-field = "twinsync event"
# # How often Redmine is asked for changes.
# poll-interval-ms = 2000

# The tracker tells the node which issues changed, instead of being polled: signed
# `POST /v1/changes` on the `listen` address (see the README, "Embedding twinsync").
# Reconciliation (verify-interval-minutes) finds what a lost notification would miss.
# [webhooks]
# secret-file = "webhook.secret"    # or secret = "..."
# poll-tracker = false              # true: read the change feed as well

# One block per connection to another node.
[[connection]]
# The same name on both nodes.
name = "internal-external"
# The other node's instance name and address.
remote-instance = "External"
remote-url = "http://127.0.0.1:7402"
# bidirectional, send-only or receive-only (seen from this node).
direction = "bidirectional"
# Processors: a built-in one (mirror, remote-key, status-guard) or a path to a .wasm file.
incoming = "remote-key"
outgoing = "remote-key"
# Every message is signed with this secret (HMAC-SHA256); both nodes need the same one.
secret = "change-me-shared-secret"
# secret-file = "internal-external.secret"

# How a field changed on both sides since the last sync is settled. Policies:
# last-writer-wins (both sides pick the value changed last: the default), overwrite
# (always take the remote value, what most sync tools do), remote-wins, local-wins,
# hold-for-review (keep the local value and record a conflict: `twinsync conflicts list`).
# With all but overwrite, a change on one side only is never undone by a stale value from
# the other.
[connection.conflicts]
default = "last-writer-wins"
[connection.conflicts.fields]
status = "hold-for-review"
"custom-field:remote issue key" = "local-wins"

# Per-invocation limits of the processors on this connection (defaults shown).
[connection.limits]
fuel = 100000000          # instructions, roughly
timeout-ms = 2000         # wall-clock time
memory-bytes = 67108864   # linear memory
host-calls = 1000         # calls to sync-helper functions
log-bytes = 65536         # log kept per event; the rest is cut with a marker

# Tenants (`twinsync tenants add`, or POST /v1/tenants) run beside this node, each with its
# own tracker, database and admin token. How they are run (defaults shown):
# [tenants]
# workers = 4               # worker threads shared by all tenants (default: the number of cores)
# workers-per-tenant = 1    # events of one tenant processed at once, at most
# retry-after-secs = 30     # a tenant that is not running (cannot start, a sender failed) is tried again
"#;
