//! The TCP stream decoder fed in arbitrary chunks: no panic, nothing buffered beyond the
//! configured maximum, and the same messages (and first error) as one whole-buffer push,
//! through both `push` (always buffered) and `next_frame` (in place when a frame is whole).
#![no_main]

use harp::frame::stream::StreamDecoder;
use harp::frame::FrameError;
use harp::{MessageRef, ProtocolMessage};
use libfuzzer_sys::fuzz_target;

const MAX: usize = 512;

fn decode_all(chunks: &[&[u8]], in_place: bool) -> (Vec<ProtocolMessage>, bool) {
    let mut buf = [0u8; MAX + harp::frame::stream::OVERHEAD];
    let mut dec = StreamDecoder::new(&mut buf[..], MAX);
    let mut out = Vec::new();
    for chunk in chunks {
        let mut input = *chunk;
        while !input.is_empty() {
            let msg = if in_place {
                dec.next_frame(&mut input).and_then(|body| {
                    body.map(MessageRef::decode).transpose().map_err(FrameError::from)
                })
            } else {
                dec.push(&mut input)
            };
            match msg {
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
    let whole = decode_all(&[stream], false);
    assert_eq!(decode_all(&chunks, false), whole, "chunking changes nothing");
    assert_eq!(decode_all(&chunks, true), whole, "next_frame gives what push gives");
    assert_eq!(decode_all(&[stream], true), whole, "in place, whole");
});
