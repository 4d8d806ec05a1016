//! The message codec: the twelve messages of the reference, byte for byte.
//!
//! A message is `[tag: u8][fields in declaration order]`: integers fixed-width
//! little-endian, strings and payloads as `[len: u32 LE][bytes]`, booleans and presence bytes
//! as exactly `0x00`/`0x01`. The layout of every message is in `docs/wire-format.md`.
//!
//! [`MessageRef`] is the zero-copy form: decoding borrows strings and payloads from the
//! input and never allocates. Decoding is strict: anything but `0x00`/`0x01` in a boolean,
//! an unknown enum code, or a byte after the last field is an [`Error`], so every message has
//! exactly one encoding.

mod codec;
mod error;
mod ext;

pub(crate) use codec::{Checksummed, Sink, SliceSink};
pub use error::{Error, Field, WriteError};
pub use ext::{Extension, Message};

use codec::{IoSink, Reader};

/// A sink writing through an `embedded_io::Write` (for the framing module).
/// [`MessageRef::decode`] out of line, for the crate's own callers (framing, the node,
/// [`Message::decode`]): one copy of the decoder in a firmware image, while applications
/// still get it inlined.
#[inline(never)]
pub(crate) fn decode_core(bytes: &[u8]) -> Result<MessageRef<'_>, Error> {
    MessageRef::decode(bytes)
}

pub(crate) fn codec_io_sink<W: embedded_io::Write>(
    writer: &mut W,
) -> impl Sink<Error = WriteError<W::Error>> + '_ {
    IoSink { writer, written: 0 }
}

/// The role a node plays in the group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum NodeType {
    /// Votes, counts toward quorums, stores data, may become master. Wire code 0.
    Electable,
    /// Stores no data; only learns who the master is. Wire code 1.
    Monitor,
    /// Stores data and receives the stream; never votes or counts. Wire code 2.
    Secondary,
    /// Votes and acknowledges but stores no data and never becomes master. Wire code 3.
    Arbiter,
}

impl NodeType {
    /// The wire code of this node type.
    pub const fn code(self) -> u8 {
        match self {
            NodeType::Electable => 0,
            NodeType::Monitor => 1,
            NodeType::Secondary => 2,
            NodeType::Arbiter => 3,
        }
    }

    /// The node type with this wire code, if any.
    pub const fn from_code(code: u8) -> Option<Self> {
        match code {
            0 => Some(NodeType::Electable),
            1 => Some(NodeType::Monitor),
            2 => Some(NodeType::Secondary),
            3 => Some(NodeType::Arbiter),
            _ => None,
        }
    }
}

/// The kind of a membership change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum GroupChangeType {
    /// Add a member. Wire code 0.
    Add,
    /// Remove a member. Wire code 1.
    Remove,
    /// Update a member's address or type. Wire code 2.
    Update,
}

impl GroupChangeType {
    /// The wire code of this change type.
    pub const fn code(self) -> u8 {
        match self {
            GroupChangeType::Add => 0,
            GroupChangeType::Remove => 1,
            GroupChangeType::Update => 2,
        }
    }

    /// The change type with this wire code, if any.
    pub const fn from_code(code: u8) -> Option<Self> {
        match code {
            0 => Some(GroupChangeType::Add),
            1 => Some(GroupChangeType::Remove),
            2 => Some(GroupChangeType::Update),
            _ => None,
        }
    }
}

/// A group member as carried by `GroupChange`, borrowing its strings.
///
/// Wire layout: `name: str, node_type: u8, host: str, port: u16, node_id: u32`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct RepNodeRef<'a> {
    /// The member's unique name.
    pub name: &'a str,
    /// The member's role.
    pub node_type: NodeType,
    /// Host name or address it listens on.
    pub host: &'a str,
    /// Port it listens on.
    pub port: u16,
    /// Numeric id.
    pub node_id: u32,
}

/// A protocol message whose strings and payloads borrow from the decoded input.
///
/// The variants and field names are the reference's `ProtocolMessage`; see
/// `ProtocolMessage` (feature `alloc`) for the owned form.
///
/// ```
/// use harp::MessageRef;
///
/// // LogEntry{vlsn:7, entry_type:0x2a, data:[de ad]} from wire-facts.md
/// let bytes = [5, 7, 0, 0, 0, 0, 0, 0, 0, 0x2a, 2, 0, 0, 0, 0xde, 0xad];
/// let msg = MessageRef::decode(&bytes)?;
/// assert_eq!(msg, MessageRef::LogEntry { vlsn: 7, entry_type: 0x2a, data: &[0xde, 0xad] });
///
/// let mut out = heapless::Vec::<u8, 32>::new();
/// msg.encode_heapless(&mut out)?;
/// assert_eq!(out.as_slice(), &bytes);
/// # Ok::<(), harp::wire::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum MessageRef<'a> {
    /// Tag 1. Initial handshake from a node joining the replication stream.
    Handshake {
        /// The connecting node's name.
        node_name: &'a str,
        /// The group it believes it belongs to.
        group_name: &'a str,
        /// Its node type.
        node_type: NodeType,
    },
    /// Tag 2. Response to a handshake.
    HandshakeResponse {
        /// Whether the connection is accepted.
        accepted: bool,
        /// Why not, when refused.
        reason: Option<&'a str>,
    },
    /// Tag 3. Heartbeat from master to replica.
    Heartbeat {
        /// The master's last VLSN.
        master_vlsn: u64,
        /// The master's clock, echoed back by the replica.
        timestamp_ms: u64,
    },
    /// Tag 4. Heartbeat response from replica to master.
    HeartbeatResponse {
        /// The replica's last durable VLSN.
        replica_vlsn: u64,
        /// The heartbeat's timestamp, echoed.
        timestamp_ms: u64,
    },
    /// Tag 5. A log entry being replicated from master to replica.
    LogEntry {
        /// Position of the entry in the replicated log.
        vlsn: u64,
        /// Application- or protocol-defined entry type.
        entry_type: u8,
        /// The entry's payload.
        data: &'a [u8],
    },
    /// Tag 6. Acknowledgment of a replicated log entry.
    Ack {
        /// The acknowledged VLSN.
        vlsn: u64,
    },
    /// Tag 7. A group membership change request.
    GroupChange {
        /// Add, remove or update.
        change_type: GroupChangeType,
        /// The member concerned.
        node: RepNodeRef<'a>,
    },
    /// Tag 8. Response to a group change request.
    GroupChangeResponse {
        /// Whether the change was applied.
        accepted: bool,
    },
    /// Tag 9. An election proposal from a candidate.
    ElectionProposal {
        /// The candidate.
        node_name: &'a str,
        /// The candidate's last VLSN.
        vlsn: u64,
        /// The candidate's priority (0 = never master).
        priority: u32,
        /// The election term.
        term: u64,
        /// DTVLSN, the major ranking key (after the last entry's term). 0 = none known
        /// durable (JE: unknown).
        dtvlsn: u64,
    },
    /// Tag 10. A vote in response to an election proposal.
    ElectionVote {
        /// The voting node.
        voter: &'a str,
        /// Whether the vote is granted.
        granted: bool,
        /// The term voted in.
        term: u64,
    },
    /// Tag 11. The result of an election.
    ElectionResult {
        /// The elected master.
        master: &'a str,
        /// The term it was elected in.
        term: u64,
    },
    /// Tag 12. Graceful shutdown notification.
    Shutdown {
        /// Why the node stops.
        reason: &'a str,
    },
}

/// A `LogEntry`'s bytes before its payload: tag, VLSN, entry type, payload length.
const LOG_ENTRY_HEADER: usize = 1 + 8 + 1 + 4;
/// An `ElectionProposal`'s bytes after its name: vlsn, priority, term, dtvlsn.
#[cfg(not(target_pointer_width = "32"))]
const EP_FIXED: usize = 8 + 4 + 8 + 8;

/// Bytes of a `str` or `bytes` field: the u32 prefix and the contents (saturating).
fn field_len(len: usize) -> usize {
    len.saturating_add(4)
}

impl<'a> MessageRef<'a> {
    /// The message's tag byte (1..=12).
    #[inline]
    pub const fn tag(&self) -> u8 {
        match self {
            MessageRef::Handshake { .. } => 1,
            MessageRef::HandshakeResponse { .. } => 2,
            MessageRef::Heartbeat { .. } => 3,
            MessageRef::HeartbeatResponse { .. } => 4,
            MessageRef::LogEntry { .. } => 5,
            MessageRef::Ack { .. } => 6,
            MessageRef::GroupChange { .. } => 7,
            MessageRef::GroupChangeResponse { .. } => 8,
            MessageRef::ElectionProposal { .. } => 9,
            MessageRef::ElectionVote { .. } => 10,
            MessageRef::ElectionResult { .. } => 11,
            MessageRef::Shutdown { .. } => 12,
        }
    }

    /// The variant's name, for logs.
    pub const fn name(&self) -> &'static str {
        match self {
            MessageRef::Handshake { .. } => "Handshake",
            MessageRef::HandshakeResponse { .. } => "HandshakeResponse",
            MessageRef::Heartbeat { .. } => "Heartbeat",
            MessageRef::HeartbeatResponse { .. } => "HeartbeatResponse",
            MessageRef::LogEntry { .. } => "LogEntry",
            MessageRef::Ack { .. } => "Ack",
            MessageRef::GroupChange { .. } => "GroupChange",
            MessageRef::GroupChangeResponse { .. } => "GroupChangeResponse",
            MessageRef::ElectionProposal { .. } => "ElectionProposal",
            MessageRef::ElectionVote { .. } => "ElectionVote",
            MessageRef::ElectionResult { .. } => "ElectionResult",
            MessageRef::Shutdown { .. } => "Shutdown",
        }
    }

    /// The number of bytes [`encode_into`](Self::encode_into) writes.
    ///
    /// Saturates at `usize::MAX` for a message too large to encode (a field over `u32::MAX`
    /// bytes), which no buffer can hold, so encoding it still fails with an error.
    #[inline]
    pub fn encoded_len(&self) -> usize {
        let body = match *self {
            MessageRef::Handshake { node_name, group_name, .. } => field_len(node_name.len())
                .saturating_add(field_len(group_name.len()))
                .saturating_add(1),
            MessageRef::HandshakeResponse { reason: None, .. } => 2,
            MessageRef::HandshakeResponse { reason: Some(r), .. } => {
                field_len(r.len()).saturating_add(2)
            }
            MessageRef::Heartbeat { .. } | MessageRef::HeartbeatResponse { .. } => 16,
            MessageRef::LogEntry { data, .. } => field_len(data.len()).saturating_add(9),
            MessageRef::Ack { .. } => 8,
            MessageRef::GroupChange { node, .. } => field_len(node.name.len())
                .saturating_add(field_len(node.host.len()))
                .saturating_add(1 + 1 + 2 + 4),
            MessageRef::GroupChangeResponse { .. } => 1,
            MessageRef::ElectionProposal { node_name, .. } => {
                field_len(node_name.len()).saturating_add(28)
            }
            MessageRef::ElectionVote { voter, .. } => field_len(voter.len()).saturating_add(9),
            MessageRef::ElectionResult { master, .. } => field_len(master.len()).saturating_add(8),
            MessageRef::Shutdown { reason } => field_len(reason.len()),
        };
        body.saturating_add(1)
    }

    /// Decodes one message that fills `bytes` exactly, borrowing its strings and payload.
    ///
    /// Never panics and never allocates, whatever the input.
    #[inline]
    pub fn decode(bytes: &'a [u8]) -> Result<Self, Error> {
        if let Some(entry) = Self::decode_log_entry(bytes) {
            return Ok(entry);
        }
        #[cfg(not(target_pointer_width = "32"))]
        if let Some(proposal) = Self::decode_election_proposal(bytes) {
            return Ok(proposal);
        }
        let mut r = Reader::new(bytes);
        let msg = Self::decode_fields(&mut r)?;
        r.finish()?;
        Ok(msg)
    }

    /// The replication stream's fast path: a well-formed `LogEntry` in one header check.
    /// Anything else (other tags, and every malformed entry, for its precise error) takes
    /// the field-by-field path.
    #[inline]
    fn decode_log_entry(bytes: &'a [u8]) -> Option<Self> {
        let (head, data) = bytes.split_first_chunk::<LOG_ENTRY_HEADER>()?;
        let [5, v0, v1, v2, v3, v4, v5, v6, v7, entry_type, l0, l1, l2, l3] = *head else {
            return None;
        };
        let len = usize::try_from(u32::from_le_bytes([l0, l1, l2, l3])).ok()?;
        (len == data.len()).then_some(MessageRef::LogEntry {
            vlsn: u64::from_le_bytes([v0, v1, v2, v3, v4, v5, v6, v7]),
            entry_type,
            data,
        })
    }

    /// Elections' fast path on hosts: a well-formed `ElectionProposal` with one length check
    /// for its 28 fixed bytes. Anything else takes the field-by-field path.
    #[cfg(not(target_pointer_width = "32"))]
    #[inline]
    fn decode_election_proposal(bytes: &'a [u8]) -> Option<Self> {
        let ([9, l0, l1, l2, l3], rest) = bytes.split_first_chunk::<5>()? else {
            return None;
        };
        let len = usize::try_from(u32::from_le_bytes([*l0, *l1, *l2, *l3])).ok()?;
        let (name, tail) = rest.split_at_checked(len)?;
        let tail: &[u8; EP_FIXED] = tail.try_into().ok()?;
        let (vlsn, tail) = tail.split_first_chunk::<8>()?;
        let (priority, tail) = tail.split_first_chunk::<4>()?;
        let (term, dtvlsn) = tail.split_first_chunk::<8>()?;
        Some(MessageRef::ElectionProposal {
            node_name: codec::utf8(name).ok()?,
            vlsn: u64::from_le_bytes(*vlsn),
            priority: u32::from_le_bytes(*priority),
            term: u64::from_le_bytes(*term),
            dtvlsn: u64::from_le_bytes(dtvlsn.try_into().ok()?),
        })
    }

    #[inline]
    fn decode_fields(r: &mut Reader<'a>) -> Result<Self, Error> {
        Ok(match r.u8(Field::Tag)? {
            1 => MessageRef::Handshake {
                node_name: r.str(Field::HandshakeNodeName)?,
                group_name: r.str(Field::HandshakeGroupName)?,
                node_type: r.node_type()?,
            },
            2 => MessageRef::HandshakeResponse {
                accepted: r.bool(Field::HandshakeResponseAccepted)?,
                reason: r.option_str(Field::HandshakeResponseReason)?,
            },
            3 => MessageRef::Heartbeat {
                master_vlsn: r.u64(Field::HeartbeatMasterVlsn)?,
                timestamp_ms: r.u64(Field::HeartbeatTimestampMs)?,
            },
            4 => MessageRef::HeartbeatResponse {
                replica_vlsn: r.u64(Field::HeartbeatResponseReplicaVlsn)?,
                timestamp_ms: r.u64(Field::HeartbeatResponseTimestampMs)?,
            },
            5 => MessageRef::LogEntry {
                vlsn: r.u64(Field::LogEntryVlsn)?,
                entry_type: r.u8(Field::LogEntryEntryType)?,
                data: r.bytes(Field::LogEntryData)?,
            },
            6 => MessageRef::Ack { vlsn: r.u64(Field::AckVlsn)? },
            7 => MessageRef::GroupChange {
                change_type: r.change_type()?,
                node: RepNodeRef {
                    name: r.str(Field::RepNodeName)?,
                    node_type: r.node_type()?,
                    host: r.str(Field::RepNodeHost)?,
                    port: r.u16(Field::RepNodePort)?,
                    node_id: r.u32(Field::RepNodeNodeId)?,
                },
            },
            8 => MessageRef::GroupChangeResponse {
                accepted: r.bool(Field::GroupChangeResponseAccepted)?,
            },
            9 => MessageRef::ElectionProposal {
                node_name: r.str(Field::ElectionProposalNodeName)?,
                vlsn: r.u64(Field::ElectionProposalVlsn)?,
                priority: r.u32(Field::ElectionProposalPriority)?,
                term: r.u64(Field::ElectionProposalTerm)?,
                dtvlsn: r.u64(Field::ElectionProposalDtvlsn)?,
            },
            10 => MessageRef::ElectionVote {
                voter: r.str(Field::ElectionVoteVoter)?,
                granted: r.bool(Field::ElectionVoteGranted)?,
                term: r.u64(Field::ElectionVoteTerm)?,
            },
            11 => MessageRef::ElectionResult {
                master: r.str(Field::ElectionResultMaster)?,
                term: r.u64(Field::ElectionResultTerm)?,
            },
            12 => MessageRef::Shutdown { reason: r.str(Field::ShutdownReason)? },
            tag => return Err(Error::UnknownTag { tag }),
        })
    }

    /// Encodes into the front of `buf` and returns the number of bytes written.
    ///
    /// A buffer shorter than [`encoded_len`](Self::encoded_len) is
    /// [`Error::BufferTooSmall`], stating the size required; the buffer may then hold a
    /// prefix of the encoding (the size is computed only on that error path, so a
    /// successful encode walks the message once).
    #[inline]
    pub fn encode_into(&self, buf: &mut [u8]) -> Result<usize, Error> {
        if let MessageRef::LogEntry { vlsn, entry_type, data } = *self {
            if let Some(n) = Self::encode_log_entry(vlsn, entry_type, data, buf) {
                return Ok(n);
            }
        }
        #[cfg(not(target_pointer_width = "32"))]
        if let MessageRef::ElectionProposal { node_name, vlsn, priority, term, dtvlsn } = *self {
            let fixed = (vlsn, priority, term, dtvlsn);
            if let Some(n) = Self::encode_election_proposal(node_name, fixed, buf) {
                return Ok(n);
            }
        }
        let available = buf.len();
        let mut sink = SliceSink::new(buf);
        match self.emit(&mut sink) {
            Ok(()) => Ok(sink.position()),
            Err(Error::BufferTooSmall { .. }) => {
                Err(Error::BufferTooSmall { required: self.encoded_len(), available })
            }
            Err(e) => Err(e),
        }
    }

    /// The replication stream's fast path: a `LogEntry` header written as one 14-byte
    /// array after one length check. `None` (the field-by-field path then reports the
    /// error) if the buffer is too small or the payload's length does not fit its prefix.
    #[inline]
    fn encode_log_entry(vlsn: u64, entry_type: u8, data: &[u8], buf: &mut [u8]) -> Option<usize> {
        let len = u32::try_from(data.len()).ok()?;
        let total = data.len().checked_add(LOG_ENTRY_HEADER)?;
        let (head, body) = buf.get_mut(..total)?.split_first_chunk_mut::<LOG_ENTRY_HEADER>()?;
        let [v0, v1, v2, v3, v4, v5, v6, v7] = vlsn.to_le_bytes();
        let [l0, l1, l2, l3] = len.to_le_bytes();
        *head = [5, v0, v1, v2, v3, v4, v5, v6, v7, entry_type, l0, l1, l2, l3];
        body.copy_from_slice(data);
        Some(total)
    }

    /// Elections' fast path on hosts: an `ElectionProposal` written after one length check,
    /// its 28 fixed bytes as one array. `None`: the field-by-field path reports the error.
    #[cfg(not(target_pointer_width = "32"))]
    #[inline]
    fn encode_election_proposal(
        name: &str,
        (vlsn, priority, term, dtvlsn): (u64, u32, u64, u64),
        buf: &mut [u8],
    ) -> Option<usize> {
        let [l0, l1, l2, l3] = u32::try_from(name.len()).ok()?.to_le_bytes();
        let total = name.len().checked_add(5 + EP_FIXED)?;
        let (head, rest) = buf.get_mut(..total)?.split_first_chunk_mut::<5>()?;
        *head = [9, l0, l1, l2, l3];
        let (text, tail) = rest.split_at_mut_checked(name.len())?;
        text.copy_from_slice(name.as_bytes());
        let tail: &mut [u8; EP_FIXED] = tail.try_into().ok()?;
        let (vlsn_bytes, tail) = tail.split_first_chunk_mut::<8>()?;
        *vlsn_bytes = vlsn.to_le_bytes();
        let (priority_bytes, tail) = tail.split_first_chunk_mut::<4>()?;
        *priority_bytes = priority.to_le_bytes();
        let (term_bytes, dtvlsn_bytes) = tail.split_first_chunk_mut::<8>()?;
        *term_bytes = term.to_le_bytes();
        dtvlsn_bytes.copy_from_slice(&dtvlsn.to_le_bytes());
        Some(total)
    }

    /// Appends the encoding to a `heapless::Vec`; on error the vector is unchanged.
    pub fn encode_heapless<const N: usize>(
        &self,
        out: &mut heapless::Vec<u8, N>,
    ) -> Result<(), Error> {
        let start = out.len();
        let required = self.encoded_len();
        let available = N.saturating_sub(start);
        if required > available {
            return Err(Error::BufferTooSmall { required, available });
        }
        out.resize_default(start.saturating_add(required))
            .map_err(|_| Error::BufferTooSmall { required, available })?;
        let written = self.encode_into(out.get_mut(start..).unwrap_or_default());
        if written.is_err() {
            out.truncate(start);
        }
        written.map(|_| ())
    }

    /// Writes the encoding to an [`embedded_io::Write`]r, field by field, with no buffer.
    pub fn write_to<W: embedded_io::Write>(
        &self,
        writer: &mut W,
    ) -> Result<(), WriteError<W::Error>> {
        self.emit(&mut IoSink { writer, written: 0 })
    }

    /// Puts the encoding, field by field, into any sink.
    #[inline]
    pub(crate) fn emit<S: Sink>(&self, s: &mut S) -> Result<(), S::Error> {
        s.put_u8(self.tag())?;
        match *self {
            MessageRef::Handshake { node_name, group_name, node_type } => {
                s.put_bytes(node_name.as_bytes(), Field::HandshakeNodeName)?;
                s.put_bytes(group_name.as_bytes(), Field::HandshakeGroupName)?;
                s.put_u8(node_type.code())
            }
            MessageRef::HandshakeResponse { accepted, reason } => {
                s.put_bool(accepted)?;
                s.put_bool(reason.is_some())?;
                match reason {
                    Some(r) => s.put_bytes(r.as_bytes(), Field::HandshakeResponseReason),
                    None => Ok(()),
                }
            }
            MessageRef::Heartbeat { master_vlsn: a, timestamp_ms: b }
            | MessageRef::HeartbeatResponse { replica_vlsn: a, timestamp_ms: b } => {
                s.put_u64(a)?;
                s.put_u64(b)
            }
            MessageRef::LogEntry { vlsn, entry_type, data } => {
                s.put_u64(vlsn)?;
                s.put_u8(entry_type)?;
                s.put_bytes(data, Field::LogEntryData)
            }
            MessageRef::Ack { vlsn } => s.put_u64(vlsn),
            MessageRef::GroupChange { change_type, node } => {
                s.put_u8(change_type.code())?;
                s.put_bytes(node.name.as_bytes(), Field::RepNodeName)?;
                s.put_u8(node.node_type.code())?;
                s.put_bytes(node.host.as_bytes(), Field::RepNodeHost)?;
                s.put(&node.port.to_le_bytes())?;
                s.put(&node.node_id.to_le_bytes())
            }
            MessageRef::GroupChangeResponse { accepted } => s.put_bool(accepted),
            MessageRef::ElectionProposal { node_name, vlsn, priority, term, dtvlsn } => {
                s.put_bytes(node_name.as_bytes(), Field::ElectionProposalNodeName)?;
                s.put_u64(vlsn)?;
                s.put(&priority.to_le_bytes())?;
                s.put_u64(term)?;
                s.put_u64(dtvlsn)
            }
            MessageRef::ElectionVote { voter, granted, term } => {
                s.put_bytes(voter.as_bytes(), Field::ElectionVoteVoter)?;
                s.put_bool(granted)?;
                s.put_u64(term)
            }
            MessageRef::ElectionResult { master, term } => {
                s.put_bytes(master.as_bytes(), Field::ElectionResultMaster)?;
                s.put_u64(term)
            }
            MessageRef::Shutdown { reason } => {
                s.put_bytes(reason.as_bytes(), Field::ShutdownReason)
            }
        }
    }
}
