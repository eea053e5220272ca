//! A connection as one node sees it: who is on the other end, which way changes flow, and
//! which processors run.

use std::sync::Arc;

use anyhow::{Result, bail};

use crate::model::Direction;
use crate::runtime::{Limits, Plugin};

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
