//! Framing: how messages travel over byte streams.
//!
//! * [`stream`]: for TCP and other reliable streams. A connection starts with a
//!   [`PREAMBLE`](stream::PREAMBLE) (magic `HARP` and the protocol version), then carries
//!   frames `[len: u32 LE][message][crc32c: u32 LE]`, the CRC covering the length and the
//!   message. The length is checked against the maximum before anything is buffered.
//! * [`cobs`]: for byte links without message boundaries (UARTs). A frame is
//!   `COBS(message ‖ crc32c(message) LE) ‖ 0x00`; the decoder resynchronises at the next
//!   `0x00` after any corruption.
//!
//! Both decoders take input in chunks of any size (one byte at a time included), work in a
//! buffer the caller provides (`[u8; N]`, `&mut [u8]`, anything `AsMut<[u8]>`), and never
//! allocate or panic.

pub mod cobs;
pub mod stream;

use core::fmt;

use crate::wire::{self, MessageRef};

/// Decodes a checked frame body as a reference message (`None` stays `None`).
fn decode_body(body: Option<&[u8]>) -> Result<Option<MessageRef<'_>>, FrameError> {
    body.map(wire::decode_core).transpose().map_err(FrameError::from)
}

/// A framing error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum FrameError {
    /// The connection preamble does not start with the magic `HARP`: the peer does not speak
    /// this protocol.
    BadMagic {
        /// Offset of the wrong byte in the preamble.
        offset: usize,
        /// The byte found.
        byte: u8,
    },
    /// The peer speaks another version of the protocol.
    UnsupportedVersion {
        /// The version the peer announced.
        version: u16,
    },
    /// A frame announces (or, for COBS, reaches) more bytes than the maximum frame size.
    TooLarge {
        /// The announced or reached length.
        len: u64,
        /// The maximum.
        max: usize,
    },
    /// A frame's CRC-32C does not match its contents.
    Checksum {
        /// The CRC stored in the frame.
        stored: u32,
        /// The CRC computed over the received bytes.
        computed: u32,
    },
    /// A COBS frame's byte stuffing is invalid.
    Corrupt,
    /// A COBS frame is shorter than its checksum.
    TooShort {
        /// The decoded length.
        len: usize,
    },
    /// The frame is intact but its message does not decode.
    Message(wire::Error),
}

impl From<wire::Error> for FrameError {
    fn from(e: wire::Error) -> Self {
        FrameError::Message(e)
    }
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::BadMagic { offset, byte } => write!(
                f,
                "bad preamble: byte {offset} is 0x{byte:02x}, the peer does not speak harp"
            ),
            FrameError::UnsupportedVersion { version } => write!(
                f,
                "unsupported protocol version {version} (this node speaks {})",
                stream::PROTOCOL_VERSION
            ),
            FrameError::TooLarge { len, max } => {
                write!(f, "frame of {len} bytes exceeds the maximum of {max}")
            }
            FrameError::Checksum { stored, computed } => write!(
                f,
                "frame checksum mismatch: stored 0x{stored:08x}, computed 0x{computed:08x}"
            ),
            FrameError::Corrupt => write!(f, "invalid COBS byte stuffing"),
            FrameError::TooShort { len } => {
                write!(f, "COBS frame of {len} bytes is shorter than its 4-byte checksum")
            }
            FrameError::Message(e) => write!(f, "bad message in frame: {e}"),
        }
    }
}

impl core::error::Error for FrameError {}

/// An error reading frames from an [`embedded_io::Read`]er.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ReadError<E> {
    /// The bytes read are not a valid frame.
    Frame(FrameError),
    /// The reader failed.
    Io(E),
    /// The stream ended inside a frame.
    UnexpectedEof {
        /// How many bytes of the frame had arrived.
        received: usize,
    },
}

impl<E> From<FrameError> for ReadError<E> {
    fn from(e: FrameError) -> Self {
        ReadError::Frame(e)
    }
}

impl<E: fmt::Debug> fmt::Display for ReadError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::Frame(e) => write!(f, "{e}"),
            ReadError::Io(e) => write!(f, "read failed: {e:?}"),
            ReadError::UnexpectedEof { received } => {
                write!(f, "stream ended inside a frame after {received} bytes")
            }
        }
    }
}

impl<E: fmt::Debug> core::error::Error for ReadError<E> {}

/// Verifies a stored CRC-32C against the bytes it covers.
fn check_crc(covered: &[u8], stored: u32) -> Result<(), FrameError> {
    let computed = crate::checksum::crc32c(covered);
    if crate::checksum::matches(computed, stored) {
        Ok(())
    } else {
        Err(FrameError::Checksum { stored, computed })
    }
}

/// What a decoder does on its next input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
enum Phase {
    /// Collecting the bytes of a frame.
    Filling,
    /// A frame was returned; the next input starts a new one.
    Delivered,
    /// The stream cannot be trusted any more; every call returns this error until `reset`.
    Failed(FrameError),
    /// (COBS) Discarding bytes until the next `0x00` delimiter.
    Skipping,
}
