//! Golden vectors: every variant, the examples of wire-facts.md and edge cases, checked in
//! both directions (encode gives exactly these bytes; these bytes decode to exactly this).

use harp::{GroupChangeType, MessageRef, NodeType, RepNodeRef};

mod util;
use util::hex;

fn check(msg: MessageRef<'_>, expected_hex: &str) {
    let expected = hex(expected_hex);
    assert_eq!(msg.encoded_len(), expected.len(), "encoded_len of {msg:?}");
    let mut buf = vec![0u8; expected.len()];
    let n = msg.encode_into(&mut buf).unwrap();
    assert_eq!(&buf[..n], &expected[..], "encoding of {msg:?}");
    assert_eq!(MessageRef::decode(&expected).unwrap(), msg, "decoding of {expected_hex}");
    #[cfg(feature = "alloc")]
    {
        let owned = harp::ProtocolMessage::from(msg);
        assert_eq!(owned.encode(), expected);
        assert_eq!(harp::ProtocolMessage::decode(&expected).unwrap(), owned);
        assert_eq!(owned.as_ref(), msg);
    }
}

/// The examples of ../shared/wire-facts.md, verbatim.
#[test]
fn wire_facts_examples() {
    check(
        MessageRef::Handshake { node_name: "n1", group_name: "g", node_type: NodeType::Secondary },
        "01 02000000 6e31 01000000 67 02",
    );
    check(MessageRef::HandshakeResponse { accepted: true, reason: None }, "02 01 00");
    check(
        MessageRef::HandshakeResponse { accepted: false, reason: Some("no") },
        "02 00 01 02000000 6e6f",
    );
    check(
        MessageRef::Heartbeat { master_vlsn: 0x0102030405060708, timestamp_ms: 1 },
        "03 0807060504030201 0100000000000000",
    );
    check(
        MessageRef::LogEntry { vlsn: 7, entry_type: 0x2a, data: &[0xde, 0xad] },
        "05 0700000000000000 2a 02000000 dead",
    );
    check(MessageRef::Ack { vlsn: 999 }, "06 e703000000000000");
    check(
        MessageRef::GroupChange {
            change_type: GroupChangeType::Remove,
            node: RepNodeRef {
                name: "a",
                node_type: NodeType::Arbiter,
                host: "h",
                port: 5001,
                node_id: 7,
            },
        },
        "07 01 01000000 61 03 01000000 68 8913 07000000",
    );
    check(
        MessageRef::ElectionProposal {
            node_name: "n1",
            vlsn: 100,
            priority: 1,
            term: 3,
            dtvlsn: 90,
        },
        "09 02000000 6e31 6400000000000000 01000000 0300000000000000 5a00000000000000",
    );
    check(
        MessageRef::ElectionVote { voter: "n2", granted: true, term: 3 },
        "0a 02000000 6e32 01 0300000000000000",
    );
    check(
        MessageRef::ElectionResult { master: "n1", term: 3 },
        "0b 02000000 6e31 0300000000000000",
    );
    check(MessageRef::Shutdown { reason: "" }, "0c 00000000");
}

#[test]
fn empty_strings_and_every_node_type() {
    for (node_type, code) in [
        (NodeType::Electable, "00"),
        (NodeType::Monitor, "01"),
        (NodeType::Secondary, "02"),
        (NodeType::Arbiter, "03"),
    ] {
        check(
            MessageRef::Handshake { node_name: "", group_name: "", node_type },
            &format!("01 00000000 00000000 {code}"),
        );
    }
}

#[test]
fn multibyte_utf8_strings() {
    // "ü" is c3 bc, "→" is e2 86 92, "🦀" is f0 9f a6 80.
    check(MessageRef::Shutdown { reason: "ü→🦀" }, "0c 09000000 c3bc e28692 f09fa680");
    check(
        MessageRef::HandshakeResponse { accepted: false, reason: Some("名") },
        "02 00 01 03000000 e5908d",
    );
    check(MessageRef::HandshakeResponse { accepted: true, reason: Some("") }, "02 01 01 00000000");
}

#[test]
fn zero_and_max_integers() {
    check(
        MessageRef::Heartbeat { master_vlsn: 0, timestamp_ms: 0 },
        "03 0000000000000000 0000000000000000",
    );
    check(
        MessageRef::HeartbeatResponse { replica_vlsn: u64::MAX, timestamp_ms: u64::MAX },
        "04 ffffffffffffffff ffffffffffffffff",
    );
    check(MessageRef::Ack { vlsn: 0 }, "06 0000000000000000");
    check(MessageRef::Ack { vlsn: u64::MAX }, "06 ffffffffffffffff");
    check(
        MessageRef::ElectionProposal {
            node_name: "x",
            vlsn: u64::MAX,
            priority: u32::MAX,
            term: u64::MAX,
            dtvlsn: u64::MAX,
        },
        "09 01000000 78 ffffffffffffffff ffffffff ffffffffffffffff ffffffffffffffff",
    );
    check(
        MessageRef::ElectionProposal { node_name: "", vlsn: 0, priority: 0, term: 0, dtvlsn: 0 },
        "09 00000000 0000000000000000 00000000 0000000000000000 0000000000000000",
    );
    check(
        MessageRef::ElectionVote { voter: "v", granted: false, term: u64::MAX },
        "0a 01000000 76 00 ffffffffffffffff",
    );
    check(MessageRef::ElectionResult { master: "", term: 0 }, "0b 00000000 0000000000000000");
}

#[test]
fn every_change_type_and_extreme_rep_nodes() {
    for (change_type, code) in [
        (GroupChangeType::Add, "00"),
        (GroupChangeType::Remove, "01"),
        (GroupChangeType::Update, "02"),
    ] {
        check(
            MessageRef::GroupChange {
                change_type,
                node: RepNodeRef {
                    name: "",
                    node_type: NodeType::Electable,
                    host: "",
                    port: 0,
                    node_id: 0,
                },
            },
            &format!("07 {code} 00000000 00 00000000 0000 00000000"),
        );
    }
    check(
        MessageRef::GroupChange {
            change_type: GroupChangeType::Update,
            node: RepNodeRef {
                name: "mon",
                node_type: NodeType::Monitor,
                host: "::1",
                port: u16::MAX,
                node_id: u32::MAX,
            },
        },
        "07 02 03000000 6d6f6e 01 03000000 3a3a31 ffff ffffffff",
    );
}

#[test]
fn group_change_responses() {
    check(MessageRef::GroupChangeResponse { accepted: true }, "08 01");
    check(MessageRef::GroupChangeResponse { accepted: false }, "08 00");
}

#[test]
fn empty_and_large_payloads() {
    check(
        MessageRef::LogEntry { vlsn: 1, entry_type: 0, data: &[] },
        "05 0100000000000000 00 00000000",
    );
    check(
        MessageRef::LogEntry { vlsn: 2, entry_type: 0xff, data: &[0] },
        "05 0200000000000000 ff 01000000 00",
    );
    let data: Vec<u8> = (0..70_000u32).map(|i| (i * 31 % 251) as u8).collect();
    let expected = format!("05 0300000000000000 07 70110100 {}", hex_string(&data));
    check(MessageRef::LogEntry { vlsn: 3, entry_type: 7, data: &data }, &expected);
}

fn hex_string(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn tags_and_names_match_the_reference_numbering() {
    let samples = [
        MessageRef::Handshake { node_name: "", group_name: "", node_type: NodeType::Electable },
        MessageRef::HandshakeResponse { accepted: true, reason: None },
        MessageRef::Heartbeat { master_vlsn: 0, timestamp_ms: 0 },
        MessageRef::HeartbeatResponse { replica_vlsn: 0, timestamp_ms: 0 },
        MessageRef::LogEntry { vlsn: 0, entry_type: 0, data: &[] },
        MessageRef::Ack { vlsn: 0 },
        MessageRef::GroupChange {
            change_type: GroupChangeType::Add,
            node: RepNodeRef {
                name: "",
                node_type: NodeType::Electable,
                host: "",
                port: 0,
                node_id: 0,
            },
        },
        MessageRef::GroupChangeResponse { accepted: true },
        MessageRef::ElectionProposal { node_name: "", vlsn: 0, priority: 0, term: 0, dtvlsn: 0 },
        MessageRef::ElectionVote { voter: "", granted: true, term: 0 },
        MessageRef::ElectionResult { master: "", term: 0 },
        MessageRef::Shutdown { reason: "" },
    ];
    for (i, msg) in samples.iter().enumerate() {
        assert_eq!(usize::from(msg.tag()), i + 1);
        let mut buf = [0u8; 64];
        msg.encode_into(&mut buf).unwrap();
        assert_eq!(usize::from(buf[0]), i + 1, "{}", msg.name());
    }
}

/// harp's extensions (tags 13..=17, docs/wire-format.md), through `wire::Message`: each
/// encodes to exactly these bytes and decodes back; `MessageRef` rejects them as unknown.
#[test]
fn extension_vectors() {
    use harp::wire::{Error, Extension, Message};
    let cases = [
        (
            Extension::LogTerm { term: 3, log_term: u64::MAX },
            "0d 0300000000000000 ffffffffffffffff",
        ),
        (Extension::SyncPoint { vlsn: 0, log_term: 0 }, "0e 0000000000000000 0000000000000000"),
        (Extension::SyncNack { vlsn: 0x0102030405060708 }, "0f 0807060504030201"),
        (Extension::PreProposal { term: 1 }, "10 0100000000000000"),
        (Extension::PreVote { term: u64::MAX }, "11 ffffffffffffffff"),
    ];
    for (ext, h) in cases {
        let expected = hex(h);
        let msg = Message::Ext(ext);
        assert_eq!(msg.encoded_len(), expected.len(), "encoded_len of {ext:?}");
        let mut buf = vec![0u8; expected.len()];
        assert_eq!(msg.encode_into(&mut buf), Ok(expected.len()));
        assert_eq!(buf, expected, "encoding of {ext:?}");
        assert_eq!(Message::decode(&expected), Ok(msg), "decoding of {h}");
        assert_eq!(MessageRef::decode(&expected), Err(Error::UnknownTag { tag: ext.tag() }));
    }
}
