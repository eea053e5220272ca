//! Running an event's processor again on its input, changing nothing: how an operator
//! reproduces a sync error. Processors see a fixed clock and random source per event, so the
//! same input gives the same result.

use std::borrow::Cow;

use anyhow::{Context, Result, anyhow, bail};
use serde::Serialize;

use super::failure::ProcessorInput;
use super::message::SyncMessage;
use super::node::Node;
use crate::model::{Issue, Replica};
use crate::runtime::{Call, ProcessorFailure, SyncBack};
use crate::store::events::{self, Kind};
use crate::store::twins::{self, Twin};

/// What a replay did.
#[derive(Debug, Serialize)]
pub struct Replay {
    pub event: String,
    pub direction: Kind,
    /// `stored` (the exact input, kept with the event) or `reconstructed` (from the
    /// message, the twin and the tracker as they are now, for events stored without it).
    pub input_source: &'static str,
    /// The issue (incoming) or replica (outgoing; null: nothing to send) returned.
    pub result: Option<serde_json::Value>,
    pub error: Option<String>,
    pub error_kind: Option<&'static str>,
    pub sync_back_requested: bool,
    pub fuel_used: u64,
    pub peak_memory_bytes: usize,
    pub log: String,
}

impl Node {
    /// Run the processor of event `id` again, as the connection is configured now.
    pub fn replay(&self, id: &str) -> Result<Replay> {
        let event = self
            .store
            .read(|db| events::get(db, id))?
            .ok_or_else(|| anyhow!("there is no event `{id}` on this node"))?;
        let connection = self.connection(&event.connection).ok_or_else(|| {
            anyhow!(
                "connection `{}` is not configured on this node",
                event.connection
            )
        })?;
        let twin = self.store.read(|db| twins::get(db, &event.twin_id))?;
        let (input, source) = match &event.input {
            Some(json) => (
                serde_json::from_str::<ProcessorInput<'_>>(json)
                    .context("the stored input is unreadable")?,
                "stored",
            ),
            None => (
                self.reconstruct(&event, twin.as_ref(), &connection)?,
                "reconstructed",
            ),
        };
        let call = Call {
            ctx: input.ctx.clone(),
            limits: &connection.limits,
            can_send: connection.can_send(),
            directory: self.store.clone(),
            // The merge base the event had, when it was stored (every event since inputs
            // are stored); a reconstructed input has none, and a three-way merge may then
            // decide otherwise.
            merge_base: input
                .merge_base
                .as_deref()
                .map(|base| base.merge_base())
                .unwrap_or_default(),
        };
        let outcome = match event.kind {
            Kind::Incoming => {
                let plugin = connection
                    .incoming
                    .as_ref()
                    .ok_or_else(|| anyhow!("no incoming processor"))?;
                let replica = input
                    .replica
                    .as_deref()
                    .ok_or_else(|| anyhow!("the input has no replica"))?;
                plugin
                    .run_incoming(
                        &self.runtime,
                        call,
                        replica,
                        input.previous.as_deref(),
                        &input.issue,
                    )
                    .and_then(json)
            }
            Kind::Outgoing => {
                let plugin = connection
                    .outgoing
                    .as_ref()
                    .ok_or_else(|| anyhow!("no outgoing processor"))?;
                plugin
                    .run_outgoing(&self.runtime, call, &input.issue)
                    .and_then(json)
            }
            Kind::Unexalate => bail!(NO_PROCESSOR),
        };
        Ok(Replay {
            event: event.id,
            direction: event.kind,
            input_source: source,
            error_kind: outcome.result.as_ref().err().map(|e| e.kind()),
            error: outcome.result.as_ref().err().map(ToString::to_string),
            result: outcome.result.ok(),
            sync_back_requested: outcome.sync_back == SyncBack::Requested,
            fuel_used: outcome.fuel_used,
            peak_memory_bytes: outcome.peak_memory,
            log: outcome.log,
        })
    }

    /// The input an event would get now, for events that did not keep theirs.
    fn reconstruct(
        &self,
        event: &events::Event,
        twin: Option<&Twin>,
        connection: &super::Connection,
    ) -> Result<ProcessorInput<'static>> {
        let local = |twin: &Twin| -> Result<Issue> {
            self.tracker
                .get(&twin.local_key)?
                .ok_or_else(|| anyhow!("the local issue {} no longer exists", twin.local_key))
        };
        match event.kind {
            Kind::Outgoing => {
                let Some(twin) = twin else {
                    bail!("the twin of this event is no longer under sync")
                };
                Ok(ProcessorInput {
                    ctx: self.context(connection, event, false),
                    replica: None,
                    previous: None,
                    issue: Cow::Owned(local(twin)?),
                    merge_base: None,
                })
            }
            Kind::Incoming => {
                let message: SyncMessage =
                    serde_json::from_str(event.message.as_deref().unwrap_or_default())
                        .context("the stored message is unreadable")?;
                let replica: Option<Replica> = message.replica;
                Ok(ProcessorInput {
                    ctx: self.context(connection, event, twin.is_none()),
                    replica: replica.map(Cow::Owned),
                    previous: twin.and_then(Twin::previous).cloned().map(Cow::Owned),
                    issue: Cow::Owned(match twin {
                        Some(twin) => local(twin)?,
                        None => Issue::default(),
                    }),
                    merge_base: None,
                })
            }
            Kind::Unexalate => bail!(NO_PROCESSOR),
        }
    }
}

const NO_PROCESSOR: &str = "an unexalate event runs no processor: there is nothing to replay";

/// A processor's result as JSON, whichever side ran.
fn json(value: impl Serialize) -> Result<serde_json::Value, ProcessorFailure> {
    Ok(serde_json::to_value(value).unwrap_or_default())
}
