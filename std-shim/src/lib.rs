//! harp-std: the hosted (std) side of harp: durable files for a node's stores, and the
//! inspector and simulator commands of the `harp` tool.

#![warn(missing_docs)]

pub mod bench;
pub mod config;
pub mod demo;
pub mod host;
pub mod members;
pub mod restore;
pub mod sim;
pub mod store;

use std::net::{SocketAddr, TcpListener};

use anyhow::{anyhow, Context, Result};
use harp::frame::stream::{PreambleReader, StreamDecoder, PREAMBLE};
use harp::{MessageRef, ProtocolMessage};

/// Decodes a hex string (whitespace allowed) into one message as a JSON line.
pub fn decode_hex(text: &str) -> Result<String> {
    let compact: String = text.split_whitespace().collect();
    let bytes = hex::decode(&compact).map_err(|e| anyhow!("invalid hex: {e}"))?;
    let msg = ProtocolMessage::decode(&bytes).map_err(|e| anyhow!("invalid message: {e}"))?;
    Ok(serde_json::to_string(&msg)?)
}

/// Encodes a JSON message into lowercase hex.
pub fn encode_json(text: &str) -> Result<String> {
    let msg: ProtocolMessage =
        serde_json::from_str(text).map_err(|e| anyhow!("invalid message JSON: {e}"))?;
    Ok(hex::encode(msg.try_encode().map_err(|e| anyhow!("cannot encode: {e}"))?))
}

/// Decodes a captured stream (optional preamble, then stream frames) into JSON lines.
pub fn decode_framed(bytes: &[u8], max_frame: usize) -> Result<Vec<String>> {
    let mut input = bytes;
    if input.starts_with(&PREAMBLE[..4]) {
        PreambleReader::new().push(&mut input).map_err(|e| anyhow!("at byte 0: {e}"))?;
    }
    let mut decoder = StreamDecoder::new(vec![0u8; max_frame + 8], max_frame);
    let mut lines = Vec::new();
    while !input.is_empty() {
        let offset = bytes.len() - input.len();
        match decoder.push(&mut input) {
            Ok(Some(msg)) => lines.push(serde_json::to_string(&ProtocolMessage::from(msg))?),
            Ok(None) => {
                return Err(anyhow!("stream ends inside the frame starting at byte {offset}"))
            }
            Err(e) => return Err(anyhow!("frame {} at byte {offset}: {e}", lines.len())),
        }
    }
    Ok(lines)
}

/// Reads a capture file and decodes it frame by frame.
pub fn decode_framed_file(path: &str, max_frame: usize) -> Result<Vec<String>> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {path}"))?;
    decode_framed(&bytes, max_frame)
}

/// Encodes messages as a framed capture (preamble + frames), the input of `decode --framed`.
pub fn encode_framed(messages: &[MessageRef<'_>]) -> Result<Vec<u8>> {
    let mut out = PREAMBLE.to_vec();
    for msg in messages {
        harp::frame::stream::write_frame(&mut out, msg).map_err(|e| anyhow!("{e}"))?;
    }
    Ok(out)
}

/// A loopback address whose TCP port is free now, for `harp demo`, `harp bench` and the
/// tests to give a node to listen on. It is drawn below the OS's range of ephemeral ports
/// (32768 and up on Linux): a port `bind(0)` hands out and the caller releases can be taken
/// as the source port of another node's outgoing connection before the node meant to
/// listen on it has bound it, and that node then fails to start. A process is never given
/// the same port twice: a port is free again as soon as the check releases it, and a group
/// drawn from one process (ten ports for the hosted tests) once got one port for a node's
/// admin endpoint and another's peer listener, and one node never started.
pub fn free_local_addr() -> std::io::Result<SocketAddr> {
    use std::collections::BTreeSet;
    use std::hash::{BuildHasher, RandomState};
    use std::sync::Mutex;
    static GIVEN: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    let mut given = GIVEN.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    for attempt in 0..1_000u32 {
        let draw = RandomState::new().hash_one((attempt, std::process::id()));
        let port = 20_000 + u16::try_from(draw % 12_000).unwrap_or(0);
        if given.contains(&port) {
            continue;
        }
        if let Ok(listener) = TcpListener::bind(("127.0.0.1", port)) {
            given.insert(port);
            return listener.local_addr();
        }
    }
    Err(std::io::Error::other("no free port in 20000..32000 on 127.0.0.1"))
}

#[cfg(test)]
mod tests {
    /// 500 draws from 12,000 ports repeat one almost surely (1 − e^−10.4) unless the
    /// process remembers what it gave.
    #[test]
    fn a_process_is_never_given_one_port_twice() {
        let mut ports: Vec<u16> =
            (0..500).map(|_| super::free_local_addr().unwrap().port()).collect();
        ports.sort_unstable();
        ports.dedup();
        assert_eq!(ports.len(), 500);
    }
}
