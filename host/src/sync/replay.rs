//! Running an event's processor again on its input, changing nothing: how an operator
//! reproduces a sync error. Processors see a fixed clock and random source per event, so the
//! same input gives the same result.

use std::borrow::Cow;

use anyhow::{Context, Result, anyhow, bail};
use serde::Serialize;

use std::sync::Arc;

use super::connection::Connection;
use super::failure::ProcessorInput;
use super::message::SyncMessage;
use super::node::Node;
use crate::model::{Issue, Replica};
use crate::runtime::{Call, Outcome, Plugin, ProcessorFailure, SyncBack};
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

/// An event's processor input, ready to run again: what `events replay` and `plugin try`
/// run. The one place that decides which input an event is replayed with (see
/// [`Node::replay_input`]).
pub struct ReplayInput {
    pub event: events::Event,
    pub connection: Arc<Connection>,
    /// `stored` (kept with the event) or `reconstructed` (from the message, the twin and
    /// the tracker as they are now).
    pub source: &'static str,
    input: ProcessorInput<'static>,
}

impl Node {
    /// Run the processor of event `id` again, as the connection is configured now.
    pub fn replay(&self, id: &str) -> Result<Replay> {
        let event = self
            .store
            .read(|db| events::get(db, id))?
            .ok_or_else(|| anyhow!("there is no event `{id}` on this node"))?;
        let input = self.replay_input(event)?;
        let plugin = input.live_plugin()?;
        let outcome = self.run_again(&plugin, &input)?;
        Ok(Replay {
            event: input.event.id,
            direction: input.event.kind,
            input_source: input.source,
            error_kind: outcome.result.as_ref().err().map(|e| e.kind()),
            error: outcome.result.as_ref().err().map(ToString::to_string),
            result: outcome.result.ok(),
            sync_back_requested: outcome.sync_back == SyncBack::Requested,
            fuel_used: outcome.fuel_used,
            peak_memory_bytes: outcome.peak_memory,
            log: outcome.log,
        })
    }

    /// The input `event`'s processor is run on again: the one stored with the event, or
    /// rebuilt from what the node has now.
    pub fn replay_input(&self, event: events::Event) -> Result<ReplayInput> {
        if event.kind == Kind::Unexalate {
            bail!(NO_PROCESSOR);
        }
        let connection = self.connection(&event.connection).ok_or_else(|| {
            anyhow!(
                "connection `{}` is not configured on this node",
                event.connection
            )
        })?;
        let twin = self.store.read(|db| twins::get(db, &event.twin_id))?;
        let (input, source) = match &event.input {
            Some(json) => (
                serde_json::from_str::<ProcessorInput<'static>>(json)
                    .context("the stored input is unreadable")?,
                "stored",
            ),
            None => (
                self.reconstruct(&event, twin.as_ref(), &connection)?,
                "reconstructed",
            ),
        };
        Ok(ReplayInput {
            event,
            connection,
            source,
            input,
        })
    }

    /// Run `plugin` (the live one or a candidate) on a replay input, under the
    /// connection's limits (lowered to what the plugin asks for). Changes nothing.
    pub fn run_again(
        &self,
        plugin: &Plugin,
        run: &ReplayInput,
    ) -> Result<Outcome<serde_json::Value>> {
        let input = &run.input;
        let limits = match &plugin.info.manifest {
            Some(manifest) => manifest.limits.within(&run.connection.limits),
            None => run.connection.limits.clone(),
        };
        let call = Call {
            ctx: input.ctx.clone(),
            limits: &limits,
            can_send: run.connection.can_send(),
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
        Ok(match run.event.kind {
            Kind::Incoming => {
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
            Kind::Outgoing => plugin
                .run_outgoing(&self.runtime, call, &input.issue)
                .and_then(json),
            Kind::Unexalate => bail!(NO_PROCESSOR),
        })
    }

    /// The input an event would get now, for events that did not keep theirs.
    fn reconstruct(
        &self,
        event: &events::Event,
        twin: Option<&Twin>,
        connection: &Connection,
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

impl ReplayInput {
    /// The processor the connection runs now for this event's side.
    pub fn live_plugin(&self) -> Result<Arc<Plugin>> {
        let (plugin, side) = match self.event.kind {
            Kind::Incoming => (&self.connection.incoming, "incoming"),
            _ => (&self.connection.outgoing, "outgoing"),
        };
        plugin.clone().ok_or_else(|| {
            anyhow!(
                "connection `{}` has no {side} processor",
                self.connection.name
            )
        })
    }
}
