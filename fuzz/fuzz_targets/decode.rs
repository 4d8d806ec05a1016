//! Message decoding: no input panics; whatever decodes re-encodes to the same bytes; the
//! owned and borrowed forms agree (and so does `Message`, which adds the extensions).
#![no_main]

use harp::wire::Message;
use harp::{MessageRef, ProtocolMessage};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match MessageRef::decode(data) {
        Ok(msg) => {
            let mut buf = vec![0u8; msg.encoded_len()];
            let n = msg.encode_into(&mut buf).expect("encoded_len is enough");
            assert_eq!(&buf[..n], data, "canonical re-encoding");
            let owned = ProtocolMessage::decode(data).expect("owned decodes what borrowed does");
            assert_eq!(owned.as_ref(), msg);
            assert_eq!(owned.encode(), data);
        }
        Err(_) => assert!(ProtocolMessage::decode(data).is_err(), "owned rejects it too"),
    }
    if let Ok(msg) = Message::decode(data) {
        let mut buf = vec![0u8; msg.encoded_len()];
        let n = msg.encode_into(&mut buf).expect("encoded_len is enough");
        assert_eq!(&buf[..n], data);
    }
});
