//! Shared test helpers: proptest strategies for every message.
#![allow(dead_code)]

use harp::{GroupChangeType, NodeType, ProtocolMessage, RepNode};
use proptest::prelude::*;

pub fn node_type() -> impl Strategy<Value = NodeType> {
    prop_oneof![
        Just(NodeType::Electable),
        Just(NodeType::Monitor),
        Just(NodeType::Secondary),
        Just(NodeType::Arbiter)
    ]
}

pub fn change_type() -> impl Strategy<Value = GroupChangeType> {
    prop_oneof![
        Just(GroupChangeType::Add),
        Just(GroupChangeType::Remove),
        Just(GroupChangeType::Update)
    ]
}

/// Strings including multi-byte UTF-8 and the empty string.
pub fn text() -> impl Strategy<Value = String> {
    prop_oneof![Just(String::new()), "[a-z0-9]{1,12}", "\\PC{0,24}"]
}

pub fn payload() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(Vec::new()),
        proptest::collection::vec(any::<u8>(), 0..64),
        proptest::collection::vec(any::<u8>(), 0..4096)
    ]
}

/// Integers with the edges well represented.
pub fn int64() -> impl Strategy<Value = u64> {
    prop_oneof![Just(0u64), Just(u64::MAX), any::<u64>(), 0u64..1000]
}

pub fn rep_node() -> impl Strategy<Value = RepNode> {
    (text(), node_type(), text(), any::<u16>(), any::<u32>()).prop_map(
        |(name, node_type, host, port, node_id)| RepNode { name, node_type, host, port, node_id },
    )
}

pub fn message() -> impl Strategy<Value = ProtocolMessage> {
    prop_oneof![
        (text(), text(), node_type()).prop_map(|(node_name, group_name, node_type)| {
            ProtocolMessage::Handshake { node_name, group_name, node_type }
        }),
        (any::<bool>(), proptest::option::of(text()))
            .prop_map(|(accepted, reason)| ProtocolMessage::HandshakeResponse { accepted, reason }),
        (int64(), int64()).prop_map(|(master_vlsn, timestamp_ms)| ProtocolMessage::Heartbeat {
            master_vlsn,
            timestamp_ms
        }),
        (int64(), int64()).prop_map(|(replica_vlsn, timestamp_ms)| {
            ProtocolMessage::HeartbeatResponse { replica_vlsn, timestamp_ms }
        }),
        (int64(), any::<u8>(), payload()).prop_map(|(vlsn, entry_type, data)| {
            ProtocolMessage::LogEntry { vlsn, entry_type, data }
        }),
        int64().prop_map(|vlsn| ProtocolMessage::Ack { vlsn }),
        (change_type(), rep_node())
            .prop_map(|(change_type, node)| ProtocolMessage::GroupChange { change_type, node }),
        any::<bool>().prop_map(|accepted| ProtocolMessage::GroupChangeResponse { accepted }),
        (text(), int64(), any::<u32>(), int64(), int64()).prop_map(
            |(node_name, vlsn, priority, term, dtvlsn)| ProtocolMessage::ElectionProposal {
                node_name,
                vlsn,
                priority,
                term,
                dtvlsn
            }
        ),
        (text(), any::<bool>(), int64()).prop_map(|(voter, granted, term)| {
            ProtocolMessage::ElectionVote { voter, granted, term }
        }),
        (text(), int64())
            .prop_map(|(master, term)| ProtocolMessage::ElectionResult { master, term }),
        text().prop_map(|reason| ProtocolMessage::Shutdown { reason }),
    ]
}

/// Splits `bytes` into chunks at the given cut points (any sizes, one byte included).
pub fn chunks<'a>(bytes: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    points.push(0);
    points.push(bytes.len());
    points.sort_unstable();
    points.dedup();
    points.windows(2).map(|w| &bytes[w[0]..w[1]]).collect()
}
