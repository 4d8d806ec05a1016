//! Stream and COBS framing: any chunking, corruption, limits.
#![cfg(feature = "alloc")]

mod common;

use harp::frame::cobs::{self, CobsDecoder};
use harp::frame::stream::{self, PreambleReader, StreamDecoder, PREAMBLE};
use harp::frame::FrameError;
use harp::{MessageRef, ProtocolMessage};
use proptest::prelude::*;

fn stream_bytes(msgs: &[ProtocolMessage]) -> Vec<u8> {
    let mut out = Vec::new();
    for m in msgs {
        stream::write_frame(&mut out, m.as_ref()).unwrap();
    }
    out
}

fn cobs_bytes(msgs: &[ProtocolMessage]) -> Vec<u8> {
    let mut out = Vec::new();
    for m in msgs {
        let mut buf = vec![0u8; cobs::max_frame_len(m.as_ref())];
        let n = cobs::encode_frame(m.as_ref(), &mut buf).unwrap();
        out.extend_from_slice(&buf[..n]);
    }
    out
}

/// Feeds `bytes` cut at `cuts` through a decoder's `push`, collecting every message.
fn feed_chunks(
    bytes: &[u8],
    cuts: &[usize],
    mut push: impl FnMut(&mut &[u8]) -> Result<Option<ProtocolMessage>, FrameError>,
) -> Vec<ProtocolMessage> {
    let mut got = Vec::new();
    for mut chunk in common::chunks(bytes, cuts) {
        while !chunk.is_empty() {
            got.extend(push(&mut chunk).unwrap());
        }
    }
    got
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 500, ..ProptestConfig::default() })]

    #[test]
    fn stream_frames_survive_any_chunking(msgs in proptest::collection::vec(common::message(), 1..6), cuts in proptest::collection::vec(any::<usize>(), 0..40)) {
        let bytes = stream_bytes(&msgs);
        let mut dec = StreamDecoder::new(vec![0u8; 8192], 8184);
        let got = feed_chunks(&bytes, &cuts, |c| dec.push(c).map(|m| m.map(ProtocolMessage::from)));
        prop_assert_eq!(got, msgs);
        prop_assert!(dec.is_idle());
    }

    /// `next_frame` (in place when a frame lies whole in the input) gives what `push`
    /// gives, for any chunking.
    #[test]
    fn next_frame_matches_push_for_any_chunking(msgs in proptest::collection::vec(common::message(), 1..6), cuts in proptest::collection::vec(any::<usize>(), 0..40)) {
        let bytes = stream_bytes(&msgs);
        let mut dec = StreamDecoder::new(vec![0u8; 8192], 8184);
        let got = feed_chunks(&bytes, &cuts, |c| {
            let body = dec.next_frame(c)?;
            Ok(body.map(|b| ProtocolMessage::decode(b).unwrap()))
        });
        prop_assert_eq!(got, msgs);
        prop_assert!(dec.is_idle());
    }

    #[test]
    fn cobs_frames_survive_any_chunking(msgs in proptest::collection::vec(common::message(), 1..6), cuts in proptest::collection::vec(any::<usize>(), 0..40)) {
        let bytes = cobs_bytes(&msgs);
        let mut dec = CobsDecoder::new(vec![0u8; 8192], 8188);
        let got = feed_chunks(&bytes, &cuts, |c| dec.push(c).map(|m| m.map(ProtocolMessage::from)));
        prop_assert_eq!(got, msgs);
    }

    /// Garbage between COBS frames costs at most the frame it lands in; later frames decode.
    #[test]
    fn cobs_resynchronises_after_noise(msg in common::message(), noise in proptest::collection::vec(any::<u8>(), 0..40)) {
        let mut bytes = noise.clone();
        bytes.push(0);
        bytes.extend(cobs_bytes(std::slice::from_ref(&msg)));
        let mut dec = CobsDecoder::new(vec![0u8; 8192], 8188);
        let mut input = &bytes[..];
        let mut last = None;
        while !input.is_empty() {
            if let Ok(Some(m)) = dec.push(&mut input) { last = Some(ProtocolMessage::from(m)); }
        }
        prop_assert_eq!(last, Some(msg));
    }

    /// Random bytes never panic either decoder.
    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let mut s = StreamDecoder::new([0u8; 128], 120);
        let mut c = CobsDecoder::new([0u8; 128], 124);
        let mut a = &bytes[..];
        while !a.is_empty() { if s.push(&mut a).is_err() { break; } }
        let mut b = &bytes[..];
        while !b.is_empty() { let _ = c.push(&mut b); }
    }
}

#[test]
fn too_large_length_is_refused_before_buffering() {
    let mut dec = StreamDecoder::new([0u8; 64], 56);
    let mut input: &[u8] = &[0xff, 0xff, 0xff, 0xff, 1, 2, 3];
    assert_eq!(dec.push(&mut input), Err(FrameError::TooLarge { len: u32::MAX as u64, max: 56 }));
    assert_eq!(input, &[1, 2, 3], "nothing after the length prefix was consumed");
    // The stream is not trusted any more until reset.
    assert!(dec.push(&mut &[0u8; 4][..]).is_err());
    dec.reset();
    let mut buf = [0u8; 32];
    let n = stream::encode_frame(MessageRef::Ack { vlsn: 3 }, &mut buf).unwrap();
    assert_eq!(dec.push(&mut &buf[..n]).unwrap(), Some(MessageRef::Ack { vlsn: 3 }));
}

#[test]
fn stream_checksum_mismatch_is_an_error() {
    let mut buf = [0u8; 32];
    let n = stream::encode_frame(MessageRef::Ack { vlsn: 3 }, &mut buf).unwrap();
    buf[6] ^= 0x10;
    let mut dec = StreamDecoder::new([0u8; 64], 56);
    assert!(matches!(dec.push(&mut &buf[..n]), Err(FrameError::Checksum { .. })));
}

#[test]
fn next_frame_refuses_a_bad_checksum_or_length_in_place_and_stays_failed() {
    let mut bytes = stream_bytes(&[ProtocolMessage::Ack { vlsn: 1 }]);
    *bytes.last_mut().unwrap() ^= 1;
    let mut dec = StreamDecoder::new(vec![0u8; 64], 32);
    let mut input = &bytes[..];
    assert!(matches!(dec.next_frame(&mut input), Err(FrameError::Checksum { .. })));
    let good = stream_bytes(&[ProtocolMessage::Ack { vlsn: 2 }]);
    let mut input = &good[..];
    assert!(dec.next_frame(&mut input).is_err(), "failed until reset");
    dec.reset();
    assert_eq!(dec.next_frame(&mut input).unwrap().map(|b| b.len()), Some(9));
    let huge = 33u32.to_le_bytes();
    let mut input = &huge[..];
    assert_eq!(dec.next_frame(&mut input), Err(FrameError::TooLarge { len: 33, max: 32 }));
}

#[test]
fn frame_with_bad_message_keeps_the_stream_in_sync() {
    // A frame whose CRC is right but whose message has an unknown tag.
    let body = [13u8];
    let mut frame = (body.len() as u32).to_le_bytes().to_vec();
    frame.extend_from_slice(&body);
    let crc = harp::checksum::crc32c(&frame);
    frame.extend_from_slice(&crc.to_le_bytes());
    let mut ok = [0u8; 32];
    let n = stream::encode_frame(MessageRef::Ack { vlsn: 4 }, &mut ok).unwrap();
    frame.extend_from_slice(&ok[..n]);
    let mut dec = StreamDecoder::new([0u8; 64], 56);
    let mut input = &frame[..];
    assert_eq!(
        dec.push(&mut input),
        Err(FrameError::Message(harp::wire::Error::UnknownTag { tag: 13 }))
    );
    assert_eq!(dec.push(&mut input).unwrap(), Some(MessageRef::Ack { vlsn: 4 }));
}

#[test]
fn preamble_rejects_at_the_first_wrong_byte() {
    let mut p = PreambleReader::new();
    assert_eq!(p.push(&mut &b"HT"[..]), Err(FrameError::BadMagic { offset: 1, byte: b'T' }));
    let mut p = PreambleReader::new();
    assert_eq!(
        p.push(&mut &b"HARP\x02\x00"[..]),
        Err(FrameError::UnsupportedVersion { version: 2 })
    );
    let mut p = PreambleReader::new();
    let mut input = &[PREAMBLE.as_slice(), &[9]].concat()[..];
    let mut i = input;
    assert_eq!(p.push(&mut i), Ok(true));
    assert_eq!(i, &[9]);
    input = &PREAMBLE[..3];
    assert_eq!(PreambleReader::new().push(&mut input), Ok(false));
}

#[test]
fn read_from_embedded_io_reader() {
    let msgs = [ProtocolMessage::Ack { vlsn: 1 }, ProtocolMessage::Shutdown { reason: "x".into() }];
    let mut bytes = PREAMBLE.to_vec();
    bytes.extend(stream_bytes(&msgs));
    let mut reader = &bytes[..];
    PreambleReader::read_from(&mut reader).unwrap();
    let mut dec = StreamDecoder::new([0u8; 64], 56);
    assert_eq!(
        dec.read_from(&mut reader).unwrap().map(ProtocolMessage::from),
        Some(msgs[0].clone())
    );
    assert_eq!(
        dec.read_from(&mut reader).unwrap().map(ProtocolMessage::from),
        Some(msgs[1].clone())
    );
    assert_eq!(dec.read_from(&mut reader).unwrap(), None, "clean EOF between frames");
    let mut short = &bytes[6..10];
    assert!(matches!(
        dec.read_from(&mut short),
        Err(harp::frame::ReadError::UnexpectedEof { received: 4 })
    ));
}

#[test]
fn cobs_overlong_frame_is_skipped_to_the_next_delimiter() {
    let big = ProtocolMessage::LogEntry { vlsn: 1, entry_type: 0, data: vec![7; 100] };
    let small = ProtocolMessage::Ack { vlsn: 2 };
    let bytes = cobs_bytes(&[big, small.clone()]);
    let mut dec = CobsDecoder::new([0u8; 64], 60);
    let mut input = &bytes[..];
    assert!(matches!(dec.push(&mut input), Err(FrameError::TooLarge { max: 60, .. })));
    assert_eq!(dec.push(&mut input).unwrap().map(ProtocolMessage::from), Some(small));
}

#[test]
fn cobs_read_from_embedded_io_reader() {
    let msgs = [ProtocolMessage::Ack { vlsn: 1 }, ProtocolMessage::Shutdown { reason: "x".into() }];
    let bytes = cobs_bytes(&msgs);
    let mut reader = &bytes[..];
    let mut dec = CobsDecoder::new([0u8; 64], 60);
    assert_eq!(
        dec.read_from(&mut reader).unwrap().map(ProtocolMessage::from),
        Some(msgs[0].clone())
    );
    assert_eq!(
        dec.read_from(&mut reader).unwrap().map(ProtocolMessage::from),
        Some(msgs[1].clone())
    );
    assert_eq!(dec.read_from(&mut reader).unwrap(), None);
}

#[test]
fn extensions_travel_in_both_framings_and_decode_as_messages() {
    use harp::wire::{Extension, Message};
    let sent = [
        Message::Ext(Extension::SyncPoint { vlsn: 7, log_term: 3 }),
        Message::Core(MessageRef::Ack { vlsn: 7 }),
        Message::Ext(Extension::SyncNack { vlsn: 8 }),
    ];
    let mut wire = Vec::new();
    let mut line = Vec::new();
    for m in &sent {
        stream::write_frame(&mut wire, m).unwrap();
        let mut buf = vec![0u8; cobs::max_frame_len(m)];
        let n = cobs::encode_frame(m, &mut buf).unwrap();
        line.extend_from_slice(&buf[..n]);
    }
    let mut stream_decoder = StreamDecoder::new([0u8; 64], 56);
    let mut cobs_decoder = CobsDecoder::new([0u8; 64], 60);
    let (mut input, mut cobs_input) = (&wire[..], &line[..]);
    for m in &sent {
        let body = stream_decoder.push_frame(&mut input).unwrap().unwrap();
        assert_eq!(Message::decode(body).unwrap(), *m);
        let body = cobs_decoder.push_frame(&mut cobs_input).unwrap().unwrap();
        assert_eq!(Message::decode(body).unwrap(), *m);
    }
    assert!(input.is_empty() && cobs_input.is_empty());
    // The reference-only `push` reports an extension as an unknown tag and stays in sync.
    let mut decoder = StreamDecoder::new([0u8; 64], 56);
    let mut input = &wire[..];
    assert!(matches!(
        decoder.push(&mut input),
        Err(FrameError::Message(harp::wire::Error::UnknownTag { tag: 14 }))
    ));
    assert_eq!(decoder.push(&mut input).unwrap(), Some(MessageRef::Ack { vlsn: 7 }));
}

/// Encodes `msg` into every buffer size from 0 to [`cobs::max_frame_len`]: each one either
/// holds the frame (the same bytes as the largest buffer) or refuses it stating
/// `max_frame_len` as the size required; it holds it exactly when the frame fits.
fn check_cobs_encode_in_every_buffer_size(msg: MessageRef<'_>) {
    let max = cobs::max_frame_len(msg);
    let mut full = vec![0u8; max];
    let len = cobs::encode_frame(msg, &mut full).unwrap();
    assert_eq!(full[len - 1], 0);
    for size in 0..max {
        let mut buf = vec![0xAAu8; size];
        match cobs::encode_frame(msg, &mut buf) {
            Ok(n) => {
                assert!(size >= len, "{size}-byte buffer for a {len}-byte frame");
                assert_eq!(buf[..n], full[..len]);
            }
            Err(e) => {
                assert!(size < len, "{size}-byte buffer refused a {len}-byte frame: {e}");
                let expected = harp::wire::Error::BufferTooSmall { required: max, available: size };
                assert_eq!(e, expected);
            }
        }
    }
}

#[test]
fn cobs_encoding_fits_any_buffer_the_frame_fits_and_states_the_bound_otherwise() {
    // Zero bytes make COBS reserve code bytes; a payload of zeros ends runs everywhere.
    for len in [0usize, 1, 2, 253, 254, 255, 508] {
        check_cobs_encode_in_every_buffer_size(MessageRef::LogEntry {
            vlsn: 0,
            entry_type: 0,
            data: &vec![0u8; len],
        });
        check_cobs_encode_in_every_buffer_size(MessageRef::LogEntry {
            vlsn: u64::MAX,
            entry_type: 1,
            data: &vec![0x11u8; len],
        });
    }
    // Many vlsns: some CRCs end in a zero byte, the case where the last code byte is
    // reserved past the body.
    for vlsn in 0..2000 {
        check_cobs_encode_in_every_buffer_size(MessageRef::Ack { vlsn });
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn cobs_encoding_of_any_message_fits_exactly_the_buffers_its_frame_fits(m in common::message()) {
        check_cobs_encode_in_every_buffer_size(m.as_ref());
    }
}
