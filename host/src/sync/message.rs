//! What one node sends another: versioned JSON messages.

use serde::{Deserialize, Serialize};

use crate::model::fields::FieldStamps;
use crate::model::{Replica, SyncReason};

/// The message format version this node writes and accepts.
pub const MESSAGE_VERSION: u32 = 1;

/// What a message asks the receiver to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MessageKind {
    /// Apply this replica (creating the issue on first sync).
    Update,
    /// Stop syncing this twin: forget the link, keep the issue.
    Unexalate,
}

/// One sync event on its way to the other node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncMessage {
    /// Always [`MESSAGE_VERSION`].
    pub version: u32,
    /// Unique id; the receiver applies a message with a given id at most once.
    pub id: String,
    /// The connection's name, the same on both nodes.
    pub connection: String,
    /// The twin's id, chosen by the side that exalated the issue.
    pub twin: String,
    /// 1, 2, 3... per twin and sender: the receiver applies them in this order.
    pub seq: i64,
    pub kind: MessageKind,
    pub reason: SyncReason,
    /// Sync backs in a row that led to this message.
    pub hop: u32,
    /// The key on the sending side.
    pub sender_key: String,
    /// The replica, for `update` messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replica: Option<Replica>,
    /// Which write each field's value comes from: how the receiver tells a later change
    /// from a concurrent one.
    #[serde(default, skip_serializing_if = "FieldStamps::is_empty")]
    pub stamps: FieldStamps,
    /// What the sender last applied of this twin's messages from the receiver: the
    /// receiver compares it with what it last sent (see [`Applied`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied: Option<Applied>,
}

/// The last message of the other side a node applied for a twin: its number, and a digest
/// of its replica. The receiver of a message with this, if the last message it sent for the
/// twin has that number, checks that the digest is that of the replica it sent: a
/// difference means the two sides disagree on what was exchanged, and is repaired with a
/// resync instead of staying silent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Applied {
    pub seq: i64,
    pub digest: String,
}

impl SyncMessage {
    /// Check what JSON alone cannot: the version and the fields a kind needs.
    pub fn validate(&self) -> Result<(), String> {
        if self.version != MESSAGE_VERSION {
            return Err(format!(
                "message version {} is not supported (this node speaks version {MESSAGE_VERSION})",
                self.version
            ));
        }
        if self.id.is_empty() || self.twin.is_empty() || self.connection.is_empty() {
            return Err("id, twin and connection must not be empty".into());
        }
        if self.seq < 1 {
            return Err(format!("seq must be 1 or more, not {}", self.seq));
        }
        if self.kind == MessageKind::Update && self.replica.is_none() {
            return Err("an update message needs a replica".into());
        }
        Ok(())
    }
}

/// The receiver's answer to a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "kebab-case")]
pub enum Receipt {
    /// Stored durably; it will be applied, or superseded by a later message of its twin
    /// that carries its changes (received while it waited).
    Accepted,
    /// Seen before: stored or applied already. Nothing was done.
    Duplicate,
    /// An earlier message of the twin has not arrived: send from `expected` again.
    OutOfOrder { expected: i64 },
    /// Refused for good, with the reason (unknown connection, invalid message, an id or a
    /// number that contradicts a message received before...).
    Refused { reason: String },
    /// Not the connection's to send: an id of another instance, a twin of another
    /// connection. Refused for good.
    Forbidden { reason: String },
}

impl Receipt {
    /// Whether the sender may forget the message.
    pub fn is_acknowledgement(&self) -> bool {
        matches!(self, Receipt::Accepted | Receipt::Duplicate)
    }
}
