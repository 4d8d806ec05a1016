//! The COBS decoder fed in arbitrary chunks: no panic, bounded buffer, and the same
//! messages as one whole-buffer push (it resynchronises at every 0x00).
#![no_main]

use harp::frame::cobs::CobsDecoder;
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
    assert_eq!(decode_all(&chunks), decode_all(&[stream]), "chunking changes nothing");
});
