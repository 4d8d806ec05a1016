//! COBS framing for byte links without message boundaries (UARTs).
//!
//! ```text
//! frame := COBS(message ‖ crc32c(message) as u32 LE) 0x00
//! ```
//!
//! COBS (Consistent Overhead Byte Stuffing, the `cobs` crate) removes every `0x00` from the
//! frame body, so `0x00` marks frame ends: after line noise, a dropped byte or an overlong
//! frame the decoder reports the error once and picks up at the next delimiter.
//!
//! ```
//! use harp::frame::cobs::{encode_frame, CobsDecoder};
//! use harp::MessageRef;
//!
//! let msg = MessageRef::Heartbeat { master_vlsn: 5, timestamp_ms: 6 };
//! let mut line = [0u8; 64];
//! let n = encode_frame(&msg, &mut line)?;
//! assert_eq!(line[n - 1], 0x00);
//! assert!(!line[..n - 1].contains(&0));
//!
//! let mut decoder = CobsDecoder::new([0u8; 64], 32);
//! let mut input = &line[..n];
//! assert_eq!(decoder.push(&mut input)?, Some(msg));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use ::cobs::{max_encoding_length, CobsEncoder, DecodeResult, DecoderState};
use core::convert::Infallible;

use super::{check_crc, decode_body, FrameError, Phase, ReadError};
use crate::wire::{self, Message, MessageRef, Sink, WriteError};

const CRC_LEN: usize = 4;

/// The largest possible COBS frame for `msg` (a `&MessageRef` or a `&Message`), delimiter
/// included (saturating).
pub fn max_frame_len<'m>(msg: impl Into<Message<'m>>) -> usize {
    frame_bound(msg.into().encoded_len().saturating_add(CRC_LEN))
}

/// The largest COBS frame of `len` bytes of message and CRC, delimiter included.
fn frame_bound(len: usize) -> usize {
    max_encoding_length(len).saturating_add(1)
}

/// Feeds a COBS encoder and the frame's CRC from the message encoder.
///
/// Three choices keep the message encoder small on firmware, where it is instantiated for
/// this sink: the CRC is updated here, in the one out-of-line `put`, rather than by a
/// `Checksummed` wrapper that would inline the update at each field's call site; the sink
/// records its first failure instead of returning it, so its `Error` is `Infallible` and the
/// encoder's check after each field compiles to nothing (together ~0.5 KiB); and it counts
/// every byte it is given, also after the buffer ran out, so the size a larger buffer needs
/// comes from this one walk of the message rather than from a second (`encoded_len`).
struct CobsSink<'b> {
    encoder: CobsEncoder<'b>,
    digest: crate::checksum::Digest,
    /// The encoder's own refusal (a field too long for the wire).
    refused: Option<wire::Error>,
    /// The COBS encoder ran out of buffer.
    overflowed: bool,
    pos: usize,
}

impl Sink for CobsSink<'_> {
    type Error = Infallible;

    fn put(&mut self, bytes: &[u8]) -> Result<(), Infallible> {
        self.digest.update(bytes);
        self.pos = self.pos.saturating_add(bytes.len());
        if !self.overflowed && self.encoder.push(bytes).is_err() {
            self.overflowed = true;
        }
        Ok(())
    }

    fn position(&self) -> usize {
        self.pos
    }

    fn refuse(&mut self, e: wire::Error) -> Result<(), Infallible> {
        self.refused.get_or_insert(e);
        Ok(())
    }
}

/// Encodes `msg` (a `&MessageRef` or a `&Message`) as one COBS frame (delimiter included)
/// into `buf`; returns its length.
///
/// A buffer of [`max_frame_len`] bytes always suffices; a shorter one works when the frame
/// fits. When it does not, the error's `required` is [`max_frame_len`].
#[cfg_attr(target_pointer_width = "32", inline(never))]
pub fn encode_frame<'m>(msg: impl Into<Message<'m>>, buf: &mut [u8]) -> Result<usize, wire::Error> {
    let msg = msg.into();
    let available = buf.len();
    // The last byte is kept for the delimiter.
    let body = buf.get_mut(..available.saturating_sub(1)).unwrap_or_default();
    let encoder = CobsEncoder::new(body);
    let digest = crate::checksum::digest();
    let mut sink = CobsSink { encoder, digest, refused: None, overflowed: false, pos: 0 };
    let Ok(()) = msg.emit(&mut sink);
    let crc = sink.digest.clone().finalize();
    // The CRC goes through the same `put` (the digest also takes its bytes, unread after).
    let Ok(()) = sink.put(&crc.to_le_bytes());
    if let Some(refusal) = sink.refused {
        return Err(refusal);
    }
    // Every byte of message and CRC was counted, also those that did not fit.
    let counted = sink.pos;
    let fitted = (!sink.overflowed).then(|| sink.encoder.finalize());
    // COBS reserves a code byte after a zero without writing it: `n` past the body means
    // that byte (and the delimiter) did not fit.
    let Some((n, delimiter)) = fitted.and_then(|n| Some((n, buf.get_mut(n)?))) else {
        let required = frame_bound(counted);
        return Err(wire::Error::BufferTooSmall { required, available });
    };
    *delimiter = 0;
    Ok(n.saturating_add(1))
}

/// Encodes `msg` as a COBS frame in `scratch` and writes it; `scratch` must hold the frame
/// ([`max_frame_len`] bytes always do).
pub fn write_frame<'m, W: embedded_io::Write>(
    writer: &mut W,
    msg: impl Into<Message<'m>>,
    scratch: &mut [u8],
) -> Result<(), WriteError<W::Error>> {
    let n = encode_frame(msg, scratch)?;
    writer.write_all(scratch.get(..n).unwrap_or_default()).map_err(WriteError::Io)
}

/// An incremental COBS frame decoder, in a buffer the caller provides.
///
/// The buffer holds the decoded message and its CRC: `max_frame + 4` bytes. A frame that
/// grows past `max_frame` is [`FrameError::TooLarge`]; its remaining bytes are discarded up
/// to the next delimiter. Every error is reported once, after which the decoder is in sync
/// again.
#[derive(Debug)]
pub struct CobsDecoder<B> {
    buf: B,
    max_frame: usize,
    filled: usize,
    cobs: DecoderState,
    phase: Phase,
}

impl<B: AsMut<[u8]> + AsRef<[u8]>> CobsDecoder<B> {
    /// A decoder for messages of at most `max_frame` bytes, clamped to what `buf` can hold.
    pub fn new(buf: B, max_frame: usize) -> Self {
        let capacity = buf.as_ref().len().saturating_sub(CRC_LEN);
        CobsDecoder {
            buf,
            max_frame: max_frame.min(capacity),
            filled: 0,
            cobs: DecoderState::Idle,
            phase: Phase::Filling,
        }
    }

    /// The largest message this decoder accepts.
    pub fn max_frame(&self) -> usize {
        self.max_frame
    }

    /// Forgets any partial frame; the next byte is taken as the start of a frame.
    pub fn reset(&mut self) {
        self.filled = 0;
        self.cobs = DecoderState::Idle;
        self.phase = Phase::Filling;
    }

    /// Consumes bytes from the front of `input` up to and including the end of one frame,
    /// and returns its message. `input` is advanced past what was consumed; call again while
    /// it is not empty. Returns `Ok(None)` when `input` ran out inside a frame.
    pub fn push(&mut self, input: &mut &[u8]) -> Result<Option<MessageRef<'_>>, FrameError> {
        decode_body(self.push_frame(input)?)
    }

    /// As [`push`](Self::push), but returns the frame's checked body undecoded (decode it
    /// with [`Message::decode`] to accept harp's extensions too).
    pub fn push_frame(&mut self, input: &mut &[u8]) -> Result<Option<&[u8]>, FrameError> {
        if matches!(self.phase, Phase::Delivered) {
            self.reset();
        }
        while let Some((&byte, rest)) = input.split_first() {
            *input = rest;
            if self.take(byte)? {
                return self.finish_frame().map(Some);
            }
        }
        Ok(None)
    }

    /// Reads from `reader` one byte at a time (never past the frame's delimiter, as a UART
    /// driver needs) until a frame is complete, and returns its message; `Ok(None)` if the
    /// stream ended between frames.
    pub fn read_from<R: embedded_io::Read>(
        &mut self,
        reader: &mut R,
    ) -> Result<Option<MessageRef<'_>>, ReadError<R::Error>> {
        Ok(decode_body(self.read_frame_from(reader)?)?)
    }

    /// As [`read_from`](Self::read_from), but returns the frame's checked body undecoded.
    pub fn read_frame_from<R: embedded_io::Read>(
        &mut self,
        reader: &mut R,
    ) -> Result<Option<&[u8]>, ReadError<R::Error>> {
        if matches!(self.phase, Phase::Delivered) {
            self.reset();
        }
        loop {
            let mut byte = [0u8; 1];
            if reader.read(&mut byte).map_err(ReadError::Io)? == 0 {
                return match self.filled {
                    0 => Ok(None),
                    received => Err(ReadError::UnexpectedEof { received }),
                };
            }
            let [b] = byte;
            if self.take(b)? {
                return Ok(Some(self.finish_frame()?));
            }
        }
    }

    /// Takes one byte from the line: discarded while skipping to a delimiter, else decoded.
    /// Returns whether a frame is complete.
    fn take(&mut self, byte: u8) -> Result<bool, FrameError> {
        if self.phase != Phase::Skipping {
            return self.feed(byte);
        }
        if byte == 0 {
            self.reset();
        }
        Ok(false)
    }

    /// Feeds one encoded byte; returns whether a frame is complete.
    fn feed(&mut self, byte: u8) -> Result<bool, FrameError> {
        match self.cobs.feed(byte) {
            // The state machine only fails on a premature 0x00, which is itself a delimiter:
            // the decoder is already in sync for the next frame.
            Err(_) => {
                self.reset();
                Err(FrameError::Corrupt)
            }
            Ok(DecodeResult::NoData) => Ok(false),
            Ok(DecodeResult::DataStart) => {
                self.filled = 0;
                Ok(false)
            }
            Ok(DecodeResult::DataContinue(b)) => self.store(b).map(|()| false),
            Ok(DecodeResult::DataComplete) => Ok(true),
        }
    }

    fn store(&mut self, b: u8) -> Result<(), FrameError> {
        let limit = self.max_frame.saturating_add(CRC_LEN);
        match self.buf.as_mut().get_mut(self.filled).filter(|_| self.filled < limit) {
            Some(slot) => {
                *slot = b;
                self.filled += 1;
                Ok(())
            }
            None => {
                let len = u64::try_from(self.filled.saturating_add(1)).unwrap_or(u64::MAX);
                self.cobs = DecoderState::Idle;
                self.phase = Phase::Skipping;
                Err(FrameError::TooLarge {
                    len: len.saturating_sub(CRC_LEN as u64),
                    max: self.max_frame,
                })
            }
        }
    }

    /// Checks the complete frame's CRC and returns its body.
    fn finish_frame(&mut self) -> Result<&[u8], FrameError> {
        self.phase = Phase::Delivered;
        let len = self.filled;
        let body_len = len.checked_sub(CRC_LEN).ok_or(FrameError::TooShort { len })?;
        let frame = self.buf.as_ref().get(..len).unwrap_or_default();
        let (message, crc) = frame.split_at_checked(body_len).unwrap_or_default();
        let stored = crc.first_chunk::<4>().map_or(0, |c| u32::from_le_bytes(*c));
        check_crc(message, stored)?;
        Ok(message)
    }
}
