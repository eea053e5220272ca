//! A connection as one node sees it: who is on the other end, which way changes flow, and
//! which processors run.

use std::sync::Arc;

use anyhow::{Result, bail};

use std::collections::BTreeMap;

use crate::model::Direction;
use crate::runtime::{ConflictPolicy, FieldPolicy, Limits, Plugin};

/// How conflicts are settled on a connection: a default and per-field exceptions (field
/// names as in `model::fields`, `custom-field:NAME` for custom fields).
///
/// Without configuration, `last-writer-wins`: both sides settle every conflict the same way,
/// so they never stay different silently (`overwrite`, what most sync tools do, remains
/// available, but two changes crossing each other leave each side with the other's value).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Policies {
    #[serde(default = "default_policy")]
    pub default: ConflictPolicy,
    #[serde(default)]
    pub fields: BTreeMap<String, ConflictPolicy>,
}

/// The policy of a field no configuration names.
pub const DEFAULT_POLICY: ConflictPolicy = ConflictPolicy::LastWriterWins;

fn default_policy() -> ConflictPolicy {
    DEFAULT_POLICY
}

impl Default for Policies {
    fn default() -> Self {
        Policies::all(DEFAULT_POLICY)
    }
}

impl Policies {
    /// One policy for every field.
    pub fn all(policy: ConflictPolicy) -> Self {
        Policies {
            default: policy,
            fields: BTreeMap::new(),
        }
    }

    pub fn as_list(&self) -> Vec<FieldPolicy> {
        self.fields
            .iter()
            .map(|(field, policy)| FieldPolicy {
                field: field.clone(),
                policy: *policy,
            })
            .collect()
    }
}

/// Which way changes flow on a connection, seen from this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Flow {
    /// This node sends and receives.
    Bidirectional,
    /// This node only sends (the other end of a unidirectional connection receives).
    SendOnly,
    /// This node only receives: it cannot sync back.
    ReceiveOnly,
}

/// A connection to another node.
#[derive(Debug, Clone)]
pub struct Connection {
    pub name: String,
    pub remote_instance: String,
    pub flow: Flow,
    /// Runs for received replicas; required unless the flow is send-only.
    pub incoming: Option<Arc<Plugin>>,
    /// Runs for local changes; required unless the flow is receive-only.
    pub outgoing: Option<Arc<Plugin>>,
    pub limits: Limits,
    /// How incoming processors settle conflicts on this connection.
    pub policies: Policies,
}

impl Connection {
    /// A connection with the processors its flow needs, checked.
    pub fn new(
        name: &str,
        remote_instance: &str,
        flow: Flow,
        incoming: Option<Arc<Plugin>>,
        outgoing: Option<Arc<Plugin>>,
        limits: Limits,
    ) -> Result<Self> {
        let connection = Connection {
            name: name.into(),
            remote_instance: remote_instance.into(),
            flow,
            incoming: if flow == Flow::SendOnly {
                None
            } else {
                incoming
            },
            outgoing: if flow == Flow::ReceiveOnly {
                None
            } else {
                outgoing
            },
            limits,
            policies: Policies::default(),
        };
        if connection.can_receive() {
            match &connection.incoming {
                None => bail!("connection `{name}` receives, so it needs an incoming processor"),
                Some(p) if !p.has_incoming() => bail!(
                    "connection `{name}`: `{}` cannot be the incoming processor, it does not implement world `incoming-processor`",
                    p.name()
                ),
                Some(_) => {}
            }
        }
        if connection.can_send() {
            match &connection.outgoing {
                None => bail!("connection `{name}` sends, so it needs an outgoing processor"),
                Some(p) if !p.has_outgoing() => bail!(
                    "connection `{name}`: `{}` cannot be the outgoing processor, it does not implement world `outgoing-processor`",
                    p.name()
                ),
                Some(_) => {}
            }
        }
        Ok(connection)
    }

    /// The same connection with these conflict policies.
    pub fn with_policies(mut self, policies: Policies) -> Self {
        self.policies = policies;
        self
    }

    pub fn can_send(&self) -> bool {
        self.flow != Flow::ReceiveOnly
    }

    pub fn can_receive(&self) -> bool {
        self.flow != Flow::SendOnly
    }

    /// The connection's shape, as processors see it.
    pub fn direction(&self) -> Direction {
        match self.flow {
            Flow::Bidirectional => Direction::Bidirectional,
            Flow::SendOnly | Flow::ReceiveOnly => Direction::Unidirectional,
        }
    }
}
