//! The functions twinsync offers to a processor while it runs (`sync-helper` in the WIT).

use crate::LogLevel;
use crate::bindings::twinsync::processor::sync_helper;

/// Ask twinsync to send this issue back to the other side once this incoming processing is
/// committed, as if it had changed locally. Typically called on first sync, so that the
/// source learns the key of the issue just created.
///
/// Fails on a unidirectional connection (nothing can be sent back) and in an outgoing
/// processor. If you ignore the error and return successfully, the event ends as a sync
/// error naming the rule: better to return the error or decide what to do instead.
pub fn sync_back_after_processing() -> Result<(), String> {
    sync_helper::sync_back_after_processing()
}

/// Ask twinsync to stop syncing this twin once this incoming processing is committed. Both
/// sides keep their issue and forget the link; events already queued still sync first.
pub fn unexalate_after_processing() -> Result<(), String> {
    sync_helper::unexalate_after_processing()
}

/// The key of the local issue twinned with the remote issue `remote_key`, if any.
pub fn local_key_for_remote(remote_key: &str) -> Option<String> {
    sync_helper::local_key_for_remote(remote_key)
}

/// Whether the local issue `local_key` is under sync on this connection.
pub fn is_under_sync(local_key: &str) -> bool {
    sync_helper::is_under_sync(local_key)
}

/// Everything a three-way merge may need: the local issue at the last sync, every field's
/// stamps on each side, the policies. All of it is copied into the processor: to settle a
/// few fields, [`read_field_base`] is cheaper.
pub fn read_merge_base() -> crate::MergeBase {
    sync_helper::read_merge_base()
}

/// What a three-way merge needs to settle `field`: its stamps on each side and its policy.
/// [`Merger`](crate::Merger) asks this for each field that differs.
pub fn read_field_base(field: &str) -> crate::FieldBase {
    sync_helper::read_field_base(field)
}

/// Record a conflict on `field` for an operator to resolve (policy `hold-for-review`).
pub fn record_conflict(field: &str, local_value: &str, remote_value: &str) {
    sync_helper::record_conflict(field, local_value, remote_value)
}

/// The plugin's own setting `name`: what the node's operator set for this connection side
/// (`twinsync plugin use ... --setting NAME=VALUE`), else the default in the plugin's
/// manifest (`[settings]`), else none. One plugin serves many tenants this way.
pub fn setting(name: &str) -> Option<String> {
    sync_helper::setting(name)
}

/// Write a line to the event's log, which operators see with the event.
pub fn log(level: LogLevel, message: &str) {
    sync_helper::log(level, message)
}
