//! Property tests: round trips, canonical form, and no panic on any input.
#![cfg(feature = "alloc")]

mod common;

use harp::{MessageRef, ProtocolMessage};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// decode(encode(m)) == m, for the owned and the borrowed form.
    #[test]
    fn round_trip(msg in common::message()) {
        let bytes = msg.encode();
        prop_assert_eq!(bytes.len(), msg.as_ref().encoded_len());
        prop_assert_eq!(ProtocolMessage::decode(&bytes).unwrap(), msg.clone());
        prop_assert_eq!(MessageRef::decode(&bytes).unwrap(), msg.as_ref());
    }

    /// Every encoder (slice, heapless, embedded-io writer, owned) writes the same bytes.
    #[test]
    fn all_encoders_agree(msg in common::message()) {
        let owned = msg.encode();
        let borrowed = msg.as_ref();

        let mut slice = vec![0u8; owned.len() + 3];
        let n = borrowed.encode_into(&mut slice).unwrap();
        prop_assert_eq!(&slice[..n], &owned[..]);

        let mut writer: Vec<u8> = Vec::new();
        borrowed.write_to(&mut writer).unwrap();
        prop_assert_eq!(&writer, &owned);

        let mut hv = heapless::Vec::<u8, 8192>::new();
        borrowed.encode_heapless(&mut hv).unwrap();
        prop_assert_eq!(hv.as_slice(), &owned[..]);
    }

    /// Any bytes that decode re-encode to the same bytes (the encoding is canonical), and
    /// no bytes make the decoder panic. Inputs start with a valid tag most of the time so the
    /// field decoders are reached.
    #[test]
    fn decodable_bytes_are_canonical(tag in 0u8..=18, rest in proptest::collection::vec(any::<u8>(), 0..64)) {
        let mut bytes = vec![tag];
        bytes.extend_from_slice(&rest);
        check_canonical(&bytes)?;
    }

    /// Mutations of valid encodings (byte flips, truncation, extension) never panic, and
    /// anything that still decodes is canonical.
    #[test]
    fn mutated_messages(msg in common::message(), flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..4), cut in any::<usize>(), extra in proptest::collection::vec(any::<u8>(), 0..3)) {
        let mut bytes = msg.encode();
        for (at, x) in flips {
            let i = at % bytes.len();
            bytes[i] ^= x;
        }
        bytes.truncate(cut % (bytes.len() + 1) + usize::from(cut % 2 == 0) * bytes.len());
        bytes.extend_from_slice(&extra);
        check_canonical(&bytes)?;
    }
}

fn check_canonical(bytes: &[u8]) -> Result<(), TestCaseError> {
    match MessageRef::decode(bytes) {
        Ok(msg) => {
            let mut out = vec![0u8; msg.encoded_len()];
            msg.encode_into(&mut out).unwrap();
            prop_assert_eq!(&out[..], bytes);
            prop_assert_eq!(ProtocolMessage::decode(bytes).unwrap(), ProtocolMessage::from(msg));
        }
        Err(e) => prop_assert_eq!(ProtocolMessage::decode(bytes).unwrap_err(), e),
    }
    // The extensions too (tags 13 and up): whatever `Message` decodes is canonical.
    if let Ok(msg) = harp::wire::Message::decode(bytes) {
        let mut out = vec![0u8; msg.encoded_len()];
        prop_assert_eq!(msg.encode_into(&mut out), Ok(bytes.len()));
        prop_assert_eq!(&out[..], bytes);
    }
    Ok(())
}
