//! The TCP stream decoder fed in arbitrary chunks: no panic, nothing buffered beyond the
//! configured maximum, and the same messages (and first error) as one whole-buffer push.
#![no_main]

use harp::frame::stream::StreamDecoder;
use harp::ProtocolMessage;
use libfuzzer_sys::fuzz_target;

const MAX: usize = 512;

fn decode_all(chunks: &[&[u8]]) -> (Vec<ProtocolMessage>, bool) {
    let mut buf = [0u8; MAX + harp::frame::stream::OVERHEAD];
    let mut dec = StreamDecoder::new(&mut buf[..], MAX);
    let mut out = Vec::new();
    for chunk in chunks {
        let mut input = *chunk;
        while !input.is_empty() {
            match dec.push(&mut input) {
                Ok(Some(msg)) => out.push(ProtocolMessage::from(msg)),
                Ok(None) => {}
                Err(_) => return (out, true),
            }
        }
    }
    (out, false)
}

fuzz_target!(|data: &[u8]| {
    let Some((&cut, stream)) = data.split_first() else { return };
    let step = usize::from(cut % 17) + 1;
    let chunks: Vec<&[u8]> = stream.chunks(step).collect();
    assert_eq!(decode_all(&chunks), decode_all(&[stream]), "chunking changes nothing");
});
