//! Negative vectors: one per error kind (and per place it can arise), each checked for the
//! exact error, field and offset.

use harp::wire::{Error, Field};
use harp::{MessageRef, NodeType};

mod util;
use util::hex;

fn decode_err(h: &str) -> Error {
    let bytes = hex(h);
    let err = MessageRef::decode(&bytes).unwrap_err();
    #[cfg(feature = "alloc")]
    assert_eq!(harp::ProtocolMessage::decode(&bytes).unwrap_err(), err, "owned and borrowed agree");
    err
}

#[test]
fn empty_input_is_truncated_at_the_tag() {
    assert_eq!(MessageRef::decode(&[]), Err(Error::Truncated { field: Field::Tag, offset: 0 }));
}

#[test]
fn unknown_tags() {
    for tag in [0u8, 13, 0x80, 0xff] {
        assert_eq!(MessageRef::decode(&[tag]), Err(Error::UnknownTag { tag }));
    }
}

#[test]
fn truncated_inside_each_kind_of_field() {
    // u64
    assert_eq!(decode_err("06 e70300"), Error::Truncated { field: Field::AckVlsn, offset: 1 });
    // a length prefix
    assert_eq!(decode_err("0c 0000"), Error::Truncated { field: Field::ShutdownReason, offset: 1 });
    // string contents: the offset is the field's (its length prefix)
    assert_eq!(
        decode_err("01 02000000 6e31 05000000 6767"),
        Error::Truncated { field: Field::HandshakeGroupName, offset: 7 }
    );
    // a trailing u8 enum
    assert_eq!(
        decode_err("01 02000000 6e31 01000000 67"),
        Error::Truncated { field: Field::NodeType, offset: 12 }
    );
    // a u16 and a u32 inside RepNode
    assert_eq!(
        decode_err("07 01 01000000 61 03 01000000 68 89"),
        Error::Truncated { field: Field::RepNodePort, offset: 13 }
    );
    assert_eq!(
        decode_err("07 01 01000000 61 03 01000000 68 8913 0700"),
        Error::Truncated { field: Field::RepNodeNodeId, offset: 15 }
    );
    // payload
    assert_eq!(
        decode_err("05 0700000000000000 2a 03000000 dead"),
        Error::Truncated { field: Field::LogEntryData, offset: 10 }
    );
    // a bool
    assert_eq!(
        decode_err("08"),
        Error::Truncated { field: Field::GroupChangeResponseAccepted, offset: 1 }
    );
}

#[test]
fn invalid_utf8() {
    assert_eq!(
        decode_err("0c 02000000 c328"),
        Error::InvalidUtf8 { field: Field::ShutdownReason, offset: 5 }
    );
    assert_eq!(
        decode_err("01 02000000 6e31 01000000 ff 00"),
        Error::InvalidUtf8 { field: Field::HandshakeGroupName, offset: 11 }
    );
    // ASCII up to the invalid byte: the ASCII fast path must not accept a prefix
    assert_eq!(
        decode_err("0c 04000000 6f6b ff21"),
        Error::InvalidUtf8 { field: Field::ShutdownReason, offset: 5 }
    );
    // a lone surrogate encoded as UTF-8 is not valid
    assert_eq!(
        decode_err("0b 03000000 eda080 0300000000000000"),
        Error::InvalidUtf8 { field: Field::ElectionResultMaster, offset: 5 }
    );
}

#[test]
fn text_beyond_ascii_decodes_as_written() {
    for reason in ["nœud-é", "ok", "", "名前", "a\u{7f}b"] {
        let mut buf = [0u8; 32];
        let len = MessageRef::Shutdown { reason }.encode_into(&mut buf).unwrap();
        let decoded = MessageRef::decode(&buf[..len]);
        assert_eq!(decoded, Ok(MessageRef::Shutdown { reason }), "{reason}");
    }
}

#[test]
fn invalid_bools_and_presence_bytes() {
    assert_eq!(
        decode_err("02 02 00"),
        Error::InvalidBool { field: Field::HandshakeResponseAccepted, offset: 1, byte: 2 }
    );
    assert_eq!(
        decode_err("02 01 ff"),
        Error::InvalidBool { field: Field::HandshakeResponseReason, offset: 2, byte: 0xff }
    );
    assert_eq!(
        decode_err("08 80"),
        Error::InvalidBool { field: Field::GroupChangeResponseAccepted, offset: 1, byte: 0x80 }
    );
    assert_eq!(
        decode_err("0a 02000000 6e32 02 0300000000000000"),
        Error::InvalidBool { field: Field::ElectionVoteGranted, offset: 7, byte: 2 }
    );
}

#[test]
fn unknown_node_and_change_types() {
    assert_eq!(
        decode_err("01 00000000 00000000 04"),
        Error::UnknownNodeType { offset: 9, code: 4 }
    );
    assert_eq!(
        decode_err("07 03 01000000 61 03 01000000 68 8913 07000000"),
        Error::UnknownChangeType { offset: 1, code: 3 }
    );
    assert_eq!(
        decode_err("07 01 01000000 61 ff 01000000 68 8913 07000000"),
        Error::UnknownNodeType { offset: 7, code: 0xff }
    );
}

#[test]
fn trailing_bytes() {
    assert_eq!(decode_err("02 01 00 00"), Error::TrailingBytes { offset: 3, count: 1 });
    assert_eq!(
        decode_err("06 e703000000000000 0102"),
        Error::TrailingBytes { offset: 9, count: 2 }
    );
    assert_eq!(decode_err("0c 00000000 00"), Error::TrailingBytes { offset: 5, count: 1 });
}

#[test]
fn huge_lengths_are_truncation_not_overflow() {
    // A 4 GiB - 1 length prefix on a short input: no arithmetic overflow, no allocation.
    assert_eq!(
        decode_err("0c ffffffff 41"),
        Error::Truncated { field: Field::ShutdownReason, offset: 1 }
    );
    assert_eq!(
        decode_err("05 0100000000000000 00 ffffffff"),
        Error::Truncated { field: Field::LogEntryData, offset: 10 }
    );
}

#[test]
fn buffer_too_small_states_the_size_required() {
    let msg =
        MessageRef::Handshake { node_name: "n1", group_name: "g", node_type: NodeType::Electable };
    let mut buf = [0xAAu8; 12];
    assert_eq!(
        msg.encode_into(&mut buf),
        Err(Error::BufferTooSmall { required: 13, available: 12 })
    );
    let mut full = [0u8; 13];
    assert_eq!(msg.encode_into(&mut full), Ok(13));
    let written = buf.iter().position(|&b| b == 0xAA).unwrap_or(buf.len());
    assert_eq!(buf[..written], full[..written], "at most a prefix of the encoding is written");

    let mut v = heapless::Vec::<u8, 16>::new();
    v.extend_from_slice(&[1, 2, 3, 4]).unwrap();
    assert_eq!(
        msg.encode_heapless(&mut v),
        Err(Error::BufferTooSmall { required: 13, available: 12 })
    );
    assert_eq!(v.as_slice(), &[1, 2, 3, 4], "vector unchanged on error");
}

#[test]
fn a_log_entry_fits_exactly_or_states_the_size_required() {
    // The encoder's LogEntry fast path: one length check, then the header and the payload.
    let msg = MessageRef::LogEntry { vlsn: 7, entry_type: 2, data: &[0xCD; 10] };
    let mut exact = [0u8; 24];
    assert_eq!(msg.encode_into(&mut exact), Ok(24));
    assert_eq!(exact[..14], hex("05 0700000000000000 02 0a000000")[..]);
    assert_eq!(MessageRef::decode(&exact), Ok(msg));
    let mut roomy = [0xAAu8; 40];
    assert_eq!(msg.encode_into(&mut roomy), Ok(24));
    assert_eq!(roomy[..24], exact, "only the message's bytes are written");
    assert!(roomy[24..].iter().all(|&b| b == 0xAA));
    let mut short = [0u8; 23];
    assert_eq!(
        msg.encode_into(&mut short),
        Err(Error::BufferTooSmall { required: 24, available: 23 })
    );
}

#[test]
fn an_election_proposal_off_by_one_takes_the_precise_path() {
    // The decoder's ElectionProposal fast path accepts exactly name + 28 fixed bytes; every
    // other input must get the field-by-field path's error, field and offset.
    let full = "09 02000000 6e33 0100000000000000 05000000 0200000000000000 0300000000000000";
    let msg =
        MessageRef::ElectionProposal { node_name: "n3", vlsn: 1, priority: 5, term: 2, dtvlsn: 3 };
    assert_eq!(MessageRef::decode(&hex(full)), Ok(msg));
    assert_eq!(
        decode_err(&full[..full.len() - 2]),
        Error::Truncated { field: Field::ElectionProposalDtvlsn, offset: 27 }
    );
    assert_eq!(decode_err(&format!("{full} 00")), Error::TrailingBytes { offset: 35, count: 1 });
    assert_eq!(
        decode_err(&full.replacen("6e33", "6eff", 1)),
        Error::InvalidUtf8 { field: Field::ElectionProposalNodeName, offset: 5 }
    );
    assert_eq!(
        decode_err(&full.replacen("02000000", "ffffffff", 1)),
        Error::Truncated { field: Field::ElectionProposalNodeName, offset: 1 }
    );
    // And the encoder's: the exact size fits, one byte less states the size required.
    let mut exact = [0u8; 35];
    assert_eq!(msg.encode_into(&mut exact), Ok(35));
    assert_eq!(exact[..], hex(full)[..]);
    let mut short = [0u8; 34];
    assert_eq!(
        msg.encode_into(&mut short),
        Err(Error::BufferTooSmall { required: 35, available: 34 })
    );
}

#[test]
fn errors_display_what_and_where() {
    let e = decode_err("01 02000000 6e31 05000000 6767");
    assert_eq!(
        e.to_string(),
        "truncated: input ends inside Handshake.group_name (starting at byte 7)"
    );
    assert_eq!(
        Error::BufferTooSmall { required: 13, available: 12 }.to_string(),
        "buffer too small: the encoding needs 13 bytes, the buffer has 12"
    );
    assert_eq!(
        decode_err("02 01 ff").to_string(),
        "invalid boolean 0xff in HandshakeResponse.reason at byte 2 (expected 0x00 or 0x01)"
    );
}

/// Encoding a payload longer than u32::MAX is an error, not a truncation. The payload is a
/// zero-filled allocation the OS maps lazily, so this needs no real 4 GiB of memory.
#[cfg(all(feature = "alloc", target_pointer_width = "64"))]
#[test]
fn oversized_fields_are_an_error_on_encode() {
    let len = u32::MAX as usize + 1;
    let data = vec![0u8; len];
    let msg = harp::ProtocolMessage::LogEntry { vlsn: 1, entry_type: 0, data };
    assert_eq!(
        msg.try_encode(),
        Err(Error::LengthOverflow { field: Field::LogEntryData, offset: 10, len: len as u64 })
    );
    let mut sink = Vec::new();
    assert!(matches!(
        msg.as_ref().write_to(&mut sink),
        Err(harp::wire::WriteError::Encode(Error::LengthOverflow {
            field: Field::LogEntryData,
            ..
        }))
    ));
}

/// The pre-vote extensions (tags 16 and 17) fail like the others: a term cut short names
/// its field and offset, a byte after it is trailing, and 18 is the first unknown tag.
#[test]
fn pre_vote_extensions_cut_short_or_too_long() {
    use harp::wire::Message;
    let ext_err = |h: &str| Message::decode(&hex(h)).unwrap_err();
    assert_eq!(
        ext_err("10 01000000000000"),
        Error::Truncated { field: Field::PreProposalTerm, offset: 1 }
    );
    assert_eq!(ext_err("11"), Error::Truncated { field: Field::PreVoteTerm, offset: 1 });
    assert_eq!(ext_err("11 0100000000000000 00"), Error::TrailingBytes { offset: 9, count: 1 });
    assert_eq!(ext_err("12 0100000000000000"), Error::UnknownTag { tag: 18 });
    assert_eq!(Field::PreVoteTerm.name(), "PreVote.term");
}
