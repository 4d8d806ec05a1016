//! The owned message (feature `alloc`): the reference's `ProtocolMessage` API verbatim.

use alloc::string::String;
use alloc::vec::Vec;

use crate::wire::{Error, GroupChangeType, MessageRef, NodeType, RepNodeRef};

/// A group member, owning its strings. The borrowed form is [`RepNodeRef`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(deny_unknown_fields))]
pub struct RepNode {
    /// The member's unique name.
    pub name: String,
    /// The member's role.
    pub node_type: NodeType,
    /// Host name or address it listens on.
    pub host: String,
    /// Port it listens on.
    pub port: u16,
    /// Numeric id.
    pub node_id: u32,
}

impl RepNode {
    /// Borrows this member as a [`RepNodeRef`].
    pub fn as_ref(&self) -> RepNodeRef<'_> {
        RepNodeRef {
            name: &self.name,
            node_type: self.node_type,
            host: &self.host,
            port: self.port,
            node_id: self.node_id,
        }
    }
}

impl From<RepNodeRef<'_>> for RepNode {
    fn from(n: RepNodeRef<'_>) -> Self {
        RepNode {
            name: n.name.into(),
            node_type: n.node_type,
            host: n.host.into(),
            port: n.port,
            node_id: n.node_id,
        }
    }
}

/// A message in the replication protocol, owning its strings and payload.
///
/// These messages are exchanged between master and replica nodes for handshaking,
/// heartbeats, log replication, elections, and group management. This is the reference's
/// enum with the same variants, field names and wire format; [`MessageRef`] is the
/// zero-copy form and [`as_ref`](Self::as_ref) / `From<MessageRef>` convert between them.
///
/// ```
/// use harp::ProtocolMessage;
///
/// let msg = ProtocolMessage::Ack { vlsn: 999 };
/// let bytes = msg.encode();
/// assert_eq!(bytes, [6, 0xe7, 3, 0, 0, 0, 0, 0, 0]);
/// assert_eq!(ProtocolMessage::decode(&bytes)?, msg);
/// # Ok::<(), harp::wire::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(deny_unknown_fields))]
#[allow(missing_docs)] // the fields are documented on `MessageRef`
pub enum ProtocolMessage {
    /// Initial handshake from a node joining the replication stream.
    Handshake { node_name: String, group_name: String, node_type: NodeType },
    /// Response to a handshake.
    HandshakeResponse { accepted: bool, reason: Option<String> },
    /// Heartbeat from master to replica.
    Heartbeat { master_vlsn: u64, timestamp_ms: u64 },
    /// Heartbeat response from replica to master.
    HeartbeatResponse { replica_vlsn: u64, timestamp_ms: u64 },
    /// A log entry being replicated from master to replica.
    LogEntry {
        vlsn: u64,
        entry_type: u8,
        #[cfg_attr(feature = "serde", serde(with = "hex_bytes"))]
        data: Vec<u8>,
    },
    /// Acknowledgment of a replicated log entry.
    Ack { vlsn: u64 },
    /// A group membership change request.
    GroupChange { change_type: GroupChangeType, node: RepNode },
    /// Response to a group change request.
    GroupChangeResponse { accepted: bool },
    /// An election proposal from a candidate.
    ElectionProposal {
        node_name: String,
        vlsn: u64,
        priority: u32,
        term: u64,
        /// DTVLSN (the major election-ranking key). 0 = uninitialized.
        dtvlsn: u64,
    },
    /// A vote in response to an election proposal.
    ElectionVote { voter: String, granted: bool, term: u64 },
    /// The result of an election.
    ElectionResult { master: String, term: u64 },
    /// Graceful shutdown notification.
    Shutdown { reason: String },
}

impl ProtocolMessage {
    /// Encodes this message into a byte vector.
    ///
    /// Format: `[tag: u8][payload...]`; see `docs/wire-format.md`.
    ///
    /// # Panics
    ///
    /// Only if a string or the payload is longer than `u32::MAX` bytes, which the wire format
    /// cannot carry and which no decoded message can hold. This signature is the reference's;
    /// [`try_encode`](Self::try_encode) returns that case as an error instead.
    #[allow(clippy::expect_used)] // documented above; unreachable for any decoded message
    pub fn encode(&self) -> Vec<u8> {
        self.try_encode().expect("a field is longer than u32::MAX bytes")
    }

    /// Encodes this message, returning [`Error::LengthOverflow`] for a field longer than
    /// `u32::MAX` bytes.
    pub fn try_encode(&self) -> Result<Vec<u8>, Error> {
        let msg = self.as_ref();
        let mut out = Vec::with_capacity(msg.encoded_len());
        msg.emit(&mut out)?;
        Ok(out)
    }

    /// Decodes a message from a byte slice (strictly: see [`MessageRef::decode`]).
    pub fn decode(data: &[u8]) -> Result<Self, Error> {
        MessageRef::decode(data).map(Self::from)
    }

    /// Borrows this message as a [`MessageRef`] (no copy).
    pub fn as_ref(&self) -> MessageRef<'_> {
        match self {
            ProtocolMessage::Handshake { node_name, group_name, node_type } => {
                MessageRef::Handshake { node_name, group_name, node_type: *node_type }
            }
            ProtocolMessage::HandshakeResponse { accepted, reason } => {
                MessageRef::HandshakeResponse { accepted: *accepted, reason: reason.as_deref() }
            }
            ProtocolMessage::Heartbeat { master_vlsn, timestamp_ms } => {
                MessageRef::Heartbeat { master_vlsn: *master_vlsn, timestamp_ms: *timestamp_ms }
            }
            ProtocolMessage::HeartbeatResponse { replica_vlsn, timestamp_ms } => {
                MessageRef::HeartbeatResponse {
                    replica_vlsn: *replica_vlsn,
                    timestamp_ms: *timestamp_ms,
                }
            }
            ProtocolMessage::LogEntry { vlsn, entry_type, data } => {
                MessageRef::LogEntry { vlsn: *vlsn, entry_type: *entry_type, data }
            }
            ProtocolMessage::Ack { vlsn } => MessageRef::Ack { vlsn: *vlsn },
            ProtocolMessage::GroupChange { change_type, node } => {
                MessageRef::GroupChange { change_type: *change_type, node: node.as_ref() }
            }
            ProtocolMessage::GroupChangeResponse { accepted } => {
                MessageRef::GroupChangeResponse { accepted: *accepted }
            }
            ProtocolMessage::ElectionProposal { node_name, vlsn, priority, term, dtvlsn } => {
                MessageRef::ElectionProposal {
                    node_name,
                    vlsn: *vlsn,
                    priority: *priority,
                    term: *term,
                    dtvlsn: *dtvlsn,
                }
            }
            ProtocolMessage::ElectionVote { voter, granted, term } => {
                MessageRef::ElectionVote { voter, granted: *granted, term: *term }
            }
            ProtocolMessage::ElectionResult { master, term } => {
                MessageRef::ElectionResult { master, term: *term }
            }
            ProtocolMessage::Shutdown { reason } => MessageRef::Shutdown { reason },
        }
    }
}

impl From<MessageRef<'_>> for ProtocolMessage {
    fn from(m: MessageRef<'_>) -> Self {
        match m {
            MessageRef::Handshake { node_name, group_name, node_type } => {
                ProtocolMessage::Handshake {
                    node_name: node_name.into(),
                    group_name: group_name.into(),
                    node_type,
                }
            }
            MessageRef::HandshakeResponse { accepted, reason } => {
                ProtocolMessage::HandshakeResponse { accepted, reason: reason.map(String::from) }
            }
            MessageRef::Heartbeat { master_vlsn, timestamp_ms } => {
                ProtocolMessage::Heartbeat { master_vlsn, timestamp_ms }
            }
            MessageRef::HeartbeatResponse { replica_vlsn, timestamp_ms } => {
                ProtocolMessage::HeartbeatResponse { replica_vlsn, timestamp_ms }
            }
            MessageRef::LogEntry { vlsn, entry_type, data } => {
                ProtocolMessage::LogEntry { vlsn, entry_type, data: data.into() }
            }
            MessageRef::Ack { vlsn } => ProtocolMessage::Ack { vlsn },
            MessageRef::GroupChange { change_type, node } => {
                ProtocolMessage::GroupChange { change_type, node: node.into() }
            }
            MessageRef::GroupChangeResponse { accepted } => {
                ProtocolMessage::GroupChangeResponse { accepted }
            }
            MessageRef::ElectionProposal { node_name, vlsn, priority, term, dtvlsn } => {
                ProtocolMessage::ElectionProposal {
                    node_name: node_name.into(),
                    vlsn,
                    priority,
                    term,
                    dtvlsn,
                }
            }
            MessageRef::ElectionVote { voter, granted, term } => {
                ProtocolMessage::ElectionVote { voter: voter.into(), granted, term }
            }
            MessageRef::ElectionResult { master, term } => {
                ProtocolMessage::ElectionResult { master: master.into(), term }
            }
            MessageRef::Shutdown { reason } => ProtocolMessage::Shutdown { reason: reason.into() },
        }
    }
}

/// `LogEntry.data` as a lowercase hex string in human-readable formats (JSON), raw bytes in
/// binary ones.
#[cfg(feature = "serde")]
mod hex_bytes {
    use alloc::string::String;
    use alloc::vec::Vec;
    use serde::{de::Error as _, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(data: &[u8], s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&hex::encode(data))
        } else {
            s.serialize_bytes(data)
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        if d.is_human_readable() {
            let text = String::deserialize(d)?;
            hex::decode(&text).map_err(|e| D::Error::custom(alloc::format!("data is not hex: {e}")))
        } else {
            Vec::<u8>::deserialize(d)
        }
    }
}
