//! What can go wrong when encoding or decoding a message, and where.

use core::fmt;

/// A codec error: what is wrong and where.
///
/// `field` names the message field being read or written ([`Field::HandshakeGroupName`]) and
/// `offset` is the byte offset of that field from the start of the message, so a bad capture
/// can be found with a hex dump.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Error {
    /// The input ended inside a field.
    Truncated {
        /// The field being read.
        field: Field,
        /// Where the field starts.
        offset: usize,
    },
    /// The first byte is not one of the twelve message tags (1..=12).
    UnknownTag {
        /// The byte found.
        tag: u8,
    },
    /// A string field is not valid UTF-8.
    InvalidUtf8 {
        /// The field being read.
        field: Field,
        /// Where the string's bytes start (after its length prefix).
        offset: usize,
    },
    /// A boolean or presence byte is neither `0x00` nor `0x01`.
    InvalidBool {
        /// The field being read.
        field: Field,
        /// Where the byte is.
        offset: usize,
        /// The byte found.
        byte: u8,
    },
    /// A node type byte is not 0..=3.
    UnknownNodeType {
        /// Where the byte is.
        offset: usize,
        /// The byte found.
        code: u8,
    },
    /// A group change type byte is not 0..=2.
    UnknownChangeType {
        /// Where the byte is.
        offset: usize,
        /// The byte found.
        code: u8,
    },
    /// Bytes remain after the last field of the message.
    TrailingBytes {
        /// Where the extra bytes start.
        offset: usize,
        /// How many there are.
        count: usize,
    },
    /// A length does not fit: on decode, a length prefix larger than this target's address
    /// space; on encode, a string or payload longer than `u32::MAX` bytes, or a message whose
    /// size overflows `usize`.
    LengthOverflow {
        /// The field whose length overflows.
        field: Field,
        /// Where the field's length prefix is (or would be).
        offset: usize,
        /// The length that does not fit.
        len: u64,
    },
    /// The output buffer cannot hold the encoded message.
    BufferTooSmall {
        /// The number of bytes the encoding needs.
        required: usize,
        /// The number of bytes the buffer has.
        available: usize,
    },
}

/// The message field an [`Error`] is about: one byte in the error, its name only when
/// printed, so firmware that never formats an error links none of the names.
///
/// ```
/// use harp::wire::Field;
/// assert_eq!(Field::ElectionProposalNodeName.name(), "ElectionProposal.node_name");
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Field {
    /// The tag byte.
    Tag,
    /// `Handshake.node_name`.
    HandshakeNodeName,
    /// `Handshake.group_name`.
    HandshakeGroupName,
    /// A node type byte (`Handshake` and `RepNode`).
    NodeType,
    /// `HandshakeResponse.accepted`.
    HandshakeResponseAccepted,
    /// `HandshakeResponse.reason`.
    HandshakeResponseReason,
    /// `Heartbeat.master_vlsn`.
    HeartbeatMasterVlsn,
    /// `Heartbeat.timestamp_ms`.
    HeartbeatTimestampMs,
    /// `HeartbeatResponse.replica_vlsn`.
    HeartbeatResponseReplicaVlsn,
    /// `HeartbeatResponse.timestamp_ms`.
    HeartbeatResponseTimestampMs,
    /// `LogEntry.vlsn`.
    LogEntryVlsn,
    /// `LogEntry.entry_type`.
    LogEntryEntryType,
    /// `LogEntry.data`.
    LogEntryData,
    /// `Ack.vlsn`.
    AckVlsn,
    /// `GroupChange.change_type`.
    ChangeType,
    /// `RepNode.name`.
    RepNodeName,
    /// `RepNode.host`.
    RepNodeHost,
    /// `RepNode.port`.
    RepNodePort,
    /// `RepNode.node_id`.
    RepNodeNodeId,
    /// `GroupChangeResponse.accepted`.
    GroupChangeResponseAccepted,
    /// `ElectionProposal.node_name`.
    ElectionProposalNodeName,
    /// `ElectionProposal.vlsn`.
    ElectionProposalVlsn,
    /// `ElectionProposal.priority`.
    ElectionProposalPriority,
    /// `ElectionProposal.term`.
    ElectionProposalTerm,
    /// `ElectionProposal.dtvlsn`.
    ElectionProposalDtvlsn,
    /// `ElectionVote.voter`.
    ElectionVoteVoter,
    /// `ElectionVote.granted`.
    ElectionVoteGranted,
    /// `ElectionVote.term`.
    ElectionVoteTerm,
    /// `ElectionResult.master`.
    ElectionResultMaster,
    /// `ElectionResult.term`.
    ElectionResultTerm,
    /// `Shutdown.reason`.
    ShutdownReason,
    /// `LogTerm.term`.
    LogTermTerm,
    /// `LogTerm.log_term`.
    LogTermLogTerm,
    /// `SyncPoint.vlsn`.
    SyncPointVlsn,
    /// `SyncPoint.log_term`.
    SyncPointLogTerm,
    /// `SyncNack.vlsn`.
    SyncNackVlsn,
    /// `PreProposal.term`.
    PreProposalTerm,
    /// `PreVote.term`.
    PreVoteTerm,
    /// A stream frame's length prefix (framing, not a message field).
    FrameLength,
}

impl Field {
    /// The field as `Message.field` (as in the reference's field names), or the primitive's
    /// name for fields shared by several messages (`tag`, `node_type`, `change_type`).
    pub const fn name(self) -> &'static str {
        match self {
            Field::Tag => "tag",
            Field::HandshakeNodeName => "Handshake.node_name",
            Field::HandshakeGroupName => "Handshake.group_name",
            Field::NodeType => "node_type",
            Field::HandshakeResponseAccepted => "HandshakeResponse.accepted",
            Field::HandshakeResponseReason => "HandshakeResponse.reason",
            Field::HeartbeatMasterVlsn => "Heartbeat.master_vlsn",
            Field::HeartbeatTimestampMs => "Heartbeat.timestamp_ms",
            Field::HeartbeatResponseReplicaVlsn => "HeartbeatResponse.replica_vlsn",
            Field::HeartbeatResponseTimestampMs => "HeartbeatResponse.timestamp_ms",
            Field::LogEntryVlsn => "LogEntry.vlsn",
            Field::LogEntryEntryType => "LogEntry.entry_type",
            Field::LogEntryData => "LogEntry.data",
            Field::AckVlsn => "Ack.vlsn",
            Field::ChangeType => "change_type",
            Field::RepNodeName => "RepNode.name",
            Field::RepNodeHost => "RepNode.host",
            Field::RepNodePort => "RepNode.port",
            Field::RepNodeNodeId => "RepNode.node_id",
            Field::GroupChangeResponseAccepted => "GroupChangeResponse.accepted",
            Field::ElectionProposalNodeName => "ElectionProposal.node_name",
            Field::ElectionProposalVlsn => "ElectionProposal.vlsn",
            Field::ElectionProposalPriority => "ElectionProposal.priority",
            Field::ElectionProposalTerm => "ElectionProposal.term",
            Field::ElectionProposalDtvlsn => "ElectionProposal.dtvlsn",
            Field::ElectionVoteVoter => "ElectionVote.voter",
            Field::ElectionVoteGranted => "ElectionVote.granted",
            Field::ElectionVoteTerm => "ElectionVote.term",
            Field::ElectionResultMaster => "ElectionResult.master",
            Field::ElectionResultTerm => "ElectionResult.term",
            Field::ShutdownReason => "Shutdown.reason",
            Field::LogTermTerm => "LogTerm.term",
            Field::LogTermLogTerm => "LogTerm.log_term",
            Field::SyncPointVlsn => "SyncPoint.vlsn",
            Field::SyncPointLogTerm => "SyncPoint.log_term",
            Field::SyncNackVlsn => "SyncNack.vlsn",
            Field::PreProposalTerm => "PreProposal.term",
            Field::PreVoteTerm => "PreVote.term",
            Field::FrameLength => "frame length",
        }
    }
}

impl fmt::Debug for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Error::Truncated { field, offset } => {
                write!(f, "truncated: input ends inside {field} (starting at byte {offset})")
            }
            Error::UnknownTag { tag } => {
                write!(f, "unknown message tag {tag} at byte 0 (expected 1..=12)")
            }
            Error::InvalidUtf8 { field, offset } => {
                write!(f, "invalid UTF-8 in {field} (string at byte {offset})")
            }
            Error::InvalidBool { field, offset, byte } => write!(
                f,
                "invalid boolean 0x{byte:02x} in {field} at byte {offset} (expected 0x00 or 0x01)"
            ),
            Error::UnknownNodeType { offset, code } => {
                write!(f, "unknown node type {code} at byte {offset} (expected 0..=3)")
            }
            Error::UnknownChangeType { offset, code } => {
                write!(f, "unknown group change type {code} at byte {offset} (expected 0..=2)")
            }
            Error::TrailingBytes { offset, count } => {
                write!(f, "{count} trailing byte(s) after the message, starting at byte {offset}")
            }
            Error::LengthOverflow { field, offset, len } => {
                write!(f, "length {len} of {field} at byte {offset} does not fit")
            }
            Error::BufferTooSmall { required, available } => write!(
                f,
                "buffer too small: the encoding needs {required} bytes, the buffer has {available}"
            ),
        }
    }
}

impl core::error::Error for Error {}

/// An error writing a message to an [`embedded_io::Write`]r.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum WriteError<E> {
    /// The message cannot be encoded.
    Encode(Error),
    /// The writer failed.
    Io(E),
}

impl<E> From<Error> for WriteError<E> {
    fn from(e: Error) -> Self {
        WriteError::Encode(e)
    }
}

impl<E: fmt::Debug> fmt::Display for WriteError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WriteError::Encode(e) => write!(f, "{e}"),
            WriteError::Io(e) => write!(f, "write failed: {e:?}"),
        }
    }
}

impl<E: fmt::Debug> core::error::Error for WriteError<E> {}
