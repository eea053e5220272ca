//! Reconciliation: finding twins whose sides differ although nothing is under way, so that
//! a divergence is never silent.
//!
//! For each settled twin (no event open), the node builds the replica its outgoing
//! processor would send now from the tracker's issue, with the stamps that issue's fields
//! would get, and compares it with what it last sent and last applied (the replicas
//! exchanged, whose digests both nodes keep). Anything the other side does not have (a
//! tracker changed behind twinsync's back, a write the change feed never reported, a
//! stamp that does not match what was exchanged) is a mismatch: on a connection this side
//! sends on, it queues a resync event, which sends the issue as it is with its stamps, so
//! the other side takes it or settles it by its policy; where this side cannot send, it
//! records a sync error naming the twin.

use anyhow::Result;
use serde::Serialize;

use super::comment_ids;
use super::connection::Connection;
use super::node::Node;
use super::outgoing::nothing_new;
use crate::clock::rfc3339;
use crate::model::fields;
use crate::model::{Issue, SyncContext, SyncReason};
use crate::runtime::{Call, MergeBase};
use crate::store::events::{self, Kind, NewEvent};
use crate::store::sql::args;
use crate::store::twins::{self, Twin};
use crate::store::{conflicts, links};

/// What one verification found.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Verification {
    /// Twins compared.
    pub checked: usize,
    /// Twins with an event under way: they are being synced, not compared.
    pub busy: usize,
    /// Mismatches repaired by a resync event.
    pub fixed: usize,
    /// Mismatches recorded as sync errors (this side cannot send, or the check failed).
    pub errors: usize,
    /// Each mismatch.
    pub mismatches: Vec<Mismatch>,
}

/// A twin whose sides differ.
#[derive(Debug, Clone, Serialize)]
pub struct Mismatch {
    pub twin: String,
    pub connection: String,
    pub local_key: String,
    /// The fields the other side does not have as they are here (empty: comments, or
    /// stamps only).
    pub fields: Vec<String>,
    /// `resync` (an outgoing event queued) or `sync-error`.
    pub action: &'static str,
    pub reason: String,
    /// Digests of the replica last sent and last applied (received) for the twin.
    pub sent_digest: Option<String>,
    pub applied_digest: Option<String>,
}

/// How many twins `verify` reads at a time.
const VERIFY_PAGE: usize = 500;

impl Node {
    /// Compare every settled twin (of `connection`, or of every connection) with what was
    /// last exchanged for it, and repair what differs (see the module's description).
    pub fn verify(&self, connection: Option<&str>) -> Result<Verification> {
        self.verify_in_pages(connection, VERIFY_PAGE)
    }

    /// [`Node::verify`], reading `page` twins at a time.
    pub fn verify_in_pages(&self, connection: Option<&str>, page: usize) -> Result<Verification> {
        // Changes the feed has not reported yet become events first: those twins are busy,
        // not broken.
        self.poll_changes()?;
        let mut report = Verification::default();
        // A page of twins at a time: a node with a million twins must not hold them all,
        // with their replicas, in memory (it took 8 GB).
        let mut after: Option<String> = None;
        loop {
            let page = self
                .store
                .read(|db| twins::page(db, after.as_deref(), page.max(1)))?;
            let Some(last) = page.last() else {
                break;
            };
            after = Some(last.twin_id.clone());
            for twin in page
                .iter()
                .filter(|t| connection.is_none_or(|c| t.connection == c))
            {
                self.verify_twin(twin, &mut report)?;
            }
        }
        Ok(report)
    }

    /// Compare one settled twin and repair it if it differs (see [`Node::verify`]).
    fn verify_twin(&self, twin: &Twin, report: &mut Verification) -> Result<()> {
        if self
            .store
            .read(|db| events::open_for_twin(db, &twin.twin_id))?
        {
            report.busy += 1;
            return Ok(());
        }
        report.checked += 1;
        let Some(conn) = self.connection(&twin.connection) else {
            return Ok(());
        };
        let resync = conn.can_send();
        // A decision on a conflict goes with the twin's next outgoing event; if none came
        // (its retry was dropped, say), this sends it. (A side that cannot send has nothing
        // to send it with: that is no mismatch to record again on every run.)
        let unsent: Vec<String> = if resync {
            self.store
                .read(|db| conflicts::unsent(db, &twin.twin_id))?
                .into_iter()
                .map(|decided| decided.field)
                .collect()
        } else {
            Vec::new()
        };
        let (fields, reason) = if !unsent.is_empty() {
            (
                unsent,
                "an operator's decision on a conflict was not sent yet".to_string(),
            )
        } else {
            match self.compare(twin, &conn) {
                Ok(None) => return Ok(()),
                Ok(Some(fields)) => (
                    fields,
                    "the tracker's issue differs from what was last exchanged".to_string(),
                ),
                Err(reason) => (Vec::new(), reason),
            }
        };
        let now = self.now_ms();
        let queued = self.store.write(|tx| {
            // Checked again in the write: an event may have come meanwhile, and then
            // the twin is being synced, not broken.
            if events::open_for_twin(tx, &twin.twin_id)? {
                return Ok(false);
            }
            let id = self.next_event_id(tx)?;
            events::insert(
                tx,
                &NewEvent {
                    id: &id,
                    kind: Kind::Outgoing,
                    connection: &twin.connection,
                    twin_id: &twin.twin_id,
                    reason: SyncReason::Retry,
                    hop: 0,
                    message_seq: None,
                    message: None,
                },
                now,
            )?;
            if !resync {
                let seq: i64 = tx.one("SELECT seq FROM events WHERE id = ?1", args![&id])?;
                let message = format!(
                    "verify: twin {} ({}) differs from what was last exchanged ({}), and this side cannot send on connection `{}`: {reason}",
                    twin.twin_id,
                    twin.local_key,
                    if fields.is_empty() {
                        "comments or stamps".to_string()
                    } else {
                        fields.join(", ")
                    },
                    twin.connection
                );
                events::fail(tx, seq, "verify-mismatch", &message, "", None, now)?;
            }
            Ok(true)
        })?;
        if !queued {
            report.checked -= 1;
            report.busy += 1;
            return Ok(());
        }
        if resync {
            report.fixed += 1;
        } else {
            report.errors += 1;
        }
        tracing::warn!(
            twin = %twin.twin_id,
            connection = %twin.connection,
            "verify: {} differs from what was last exchanged ({}): {}",
            twin.local_key,
            fields.join(", "),
            if resync { "resync queued" } else { "sync error recorded" }
        );
        report.mismatches.push(Mismatch {
            twin: twin.twin_id.clone(),
            connection: twin.connection.clone(),
            local_key: twin.local_key.clone(),
            fields,
            action: if resync { "resync" } else { "sync-error" },
            reason,
            sent_digest: twin.last_sent.as_ref().map(digest),
            applied_digest: twin.last_received.as_ref().map(digest),
        });
        Ok(())
    }

    /// `None` when the other side has everything the twin's issue says; else the fields
    /// that differ. `Err`: the comparison itself failed (the reason).
    fn compare(&self, twin: &Twin, connection: &Connection) -> Result<Option<Vec<String>>, String> {
        let issue = self
            .tracker
            .get(&twin.local_key)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("the local issue {} no longer exists", twin.local_key))?;
        let now = self.now_ms();
        let mut stamps = twin.local_stamps.clone();
        let unseen = match &twin.stamped {
            Some(stamped) => fields::changed(stamped, &issue),
            None => Vec::new(),
        };
        fields::stamp_local_writes(
            &mut stamps,
            twin.stamped.as_ref(),
            &issue,
            now,
            &self.instance,
        );
        let Some(plugin) = connection.outgoing.as_ref() else {
            // Nothing is ever sent from here: only the tracker's own record can be compared.
            return Ok((!unseen.is_empty()).then_some(unseen));
        };
        let ctx = SyncContext {
            connection: connection.name.clone(),
            local_instance: self.instance.clone(),
            remote_instance: connection.remote_instance.clone(),
            direction: connection.direction(),
            first_sync: false,
            event_id: format!("verify-{}", twin.twin_id),
            reason: SyncReason::Retry,
            hop: 0,
            now: rfc3339(crate::clock::from_millis(now)),
            origin: self.origin_of(&twin.twin_id),
        };
        let call = Call {
            ctx,
            limits: &connection.limits,
            can_send: connection.can_send(),
            directory: self.store.clone(),
            merge_base: MergeBase::default(),
        };
        let outcome = plugin.run_outgoing(&self.runtime, call, &issue);
        self.burned(outcome.fuel_used);
        let replica = outcome
            .result
            .map_err(|e| format!("the outgoing processor failed: {e}"))?;
        let Some(mut replica) = replica else {
            return Ok((!unseen.is_empty()).then_some(unseen));
        };
        let comment_links = self
            .store
            .read(|db| links::all(db, &twin.twin_id))
            .map_err(|e| e.to_string())?;
        comment_ids::for_remote(&mut replica, &comment_links);
        if unseen.is_empty() && nothing_new(twin, &replica, &stamps) {
            return Ok(None);
        }
        let mut differing = unseen;
        if differing.is_empty() {
            let known: &[Option<&Issue>] = &[twin.last_sent.as_ref(), twin.last_received.as_ref()];
            differing = fields::names(&replica)
                .filter(|f| {
                    known
                        .iter()
                        .flatten()
                        .all(|k| fields::changed(k, &replica).contains(f))
                })
                .collect();
        }
        Ok(Some(differing))
    }
}

/// A replica's digest: SHA-256 of its content (`updated` left out, as `same_content` does).
pub fn digest(replica: &Issue) -> String {
    use sha2::Digest;
    let mut replica = replica.clone();
    replica.updated = None;
    let json = serde_json::to_string(&replica).unwrap_or_default();
    crate::hex::encode(&sha2::Sha256::digest(json.as_bytes())[..16])
}
