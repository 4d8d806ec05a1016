//! The COBS decoder fed in arbitrary chunks: no panic, bounded buffer, and the same
//! messages as one whole-buffer push (it resynchronises at every 0x00). Every message it
//! yields encodes back to a frame that decodes to it, and into a shorter buffer exactly when
//! the frame fits (else `BufferTooSmall` with `max_frame_len`).
#![no_main]

use harp::frame::cobs::{self, CobsDecoder};
use harp::wire::Error;
use harp::ProtocolMessage;
use libfuzzer_sys::fuzz_target;

const MAX: usize = 512;

fn decode_all(chunks: &[&[u8]]) -> Vec<Result<ProtocolMessage, ()>> {
    let mut buf = [0u8; MAX + 4];
    let mut dec = CobsDecoder::new(&mut buf[..], MAX);
    let mut out = Vec::new();
    for chunk in chunks {
        let mut input = *chunk;
        while !input.is_empty() {
            match dec.push(&mut input) {
                Ok(Some(msg)) => out.push(Ok(ProtocolMessage::from(msg))),
                Ok(None) => {}
                Err(_) => out.push(Err(())),
            }
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&cut, stream)) = data.split_first() else { return };
    let step = usize::from(cut % 13) + 1;
    let chunks: Vec<&[u8]> = stream.chunks(step).collect();
    let whole = decode_all(&[stream]);
    assert_eq!(decode_all(&chunks), whole, "chunking changes nothing");
    for msg in whole.iter().flatten() {
        check_encode(msg, usize::from(cut));
    }
});

fn check_encode(msg: &ProtocolMessage, cut: usize) {
    let max = cobs::max_frame_len(msg.as_ref());
    let mut full = vec![0u8; max];
    let len = cobs::encode_frame(msg.as_ref(), &mut full).expect("max_frame_len suffices");
    assert_eq!(decode_all(&[&full[..len]]), [Ok(msg.clone())], "the frame decodes back");
    let size = cut.wrapping_mul(7) % (max + 1);
    let mut buf = vec![0u8; size];
    match cobs::encode_frame(msg.as_ref(), &mut buf) {
        Ok(n) => assert!(size >= len && buf[..n] == full[..len]),
        Err(e) => {
            assert!(size < len);
            assert_eq!(e, Error::BufferTooSmall { required: max, available: size });
        }
    }
}
