//! Stream framing for TCP: a preamble per connection, then length-prefixed frames.
//!
//! ```text
//! connection := PREAMBLE frame*
//! PREAMBLE   := "HARP" version:u16 LE            (6 bytes, version 1)
//! frame      := len:u32 LE  message[len]  crc:u32 LE
//! crc        := CRC-32C(len bytes ‖ message)
//! ```
//!
//! ```
//! use harp::frame::stream::{encode_frame, StreamDecoder};
//! use harp::MessageRef;
//!
//! let mut wire = [0u8; 64];
//! let n = encode_frame(&MessageRef::Ack { vlsn: 9 }, &mut wire)?;
//!
//! // Feed the frame one byte at a time into a decoder with a 256-byte buffer.
//! let mut decoder = StreamDecoder::new([0u8; 256], 248);
//! let mut got = None;
//! for byte in wire[..n].chunks(1) {
//!     let mut input = byte;
//!     if let Some(msg) = decoder.push(&mut input)? {
//!         got = Some(msg.tag());
//!     }
//! }
//! assert_eq!(got, Some(6));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use super::{check_crc, decode_body, FrameError, Phase, ReadError};
use crate::wire::{self, Checksummed, Field, Message, MessageRef, Sink, SliceSink, WriteError};

/// The four magic bytes every harp connection starts with.
pub const MAGIC: [u8; 4] = *b"HARP";
/// The version of the protocol this crate speaks.
pub const PROTOCOL_VERSION: u16 = 1;
/// The connection preamble: [`MAGIC`] then [`PROTOCOL_VERSION`] (u16 LE).
pub const PREAMBLE: [u8; 6] = {
    let v = PROTOCOL_VERSION.to_le_bytes();
    [MAGIC[0], MAGIC[1], MAGIC[2], MAGIC[3], v[0], v[1]]
};
/// Bytes a frame adds around its message: the length prefix and the CRC.
pub const OVERHEAD: usize = 8;

const HEADER: usize = 4;
const CRC: usize = 4;

/// Checks a peer's preamble byte by byte, so a peer that does not speak harp is rejected at
/// its first wrong byte.
#[derive(Debug, Clone, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct PreambleReader {
    seen: usize,
    version: [u8; 2],
}

impl PreambleReader {
    /// A reader expecting the first byte of the preamble.
    pub const fn new() -> Self {
        PreambleReader { seen: 0, version: [0; 2] }
    }

    /// Consumes preamble bytes from the front of `input` (and no more). Returns `true` once
    /// the whole preamble has arrived and is valid.
    pub fn push(&mut self, input: &mut &[u8]) -> Result<bool, FrameError> {
        while self.seen < PREAMBLE.len() {
            let Some((&byte, rest)) = input.split_first() else { return Ok(false) };
            *input = rest;
            match (
                MAGIC.get(self.seen),
                self.version.get_mut(self.seen.saturating_sub(MAGIC.len())),
            ) {
                (Some(&expected), _) if byte != expected => {
                    return Err(FrameError::BadMagic { offset: self.seen, byte })
                }
                (None, Some(slot)) => *slot = byte,
                _ => {}
            }
            self.seen += 1;
        }
        match u16::from_le_bytes(self.version) {
            PROTOCOL_VERSION => Ok(true),
            version => Err(FrameError::UnsupportedVersion { version }),
        }
    }

    /// Reads and checks the preamble from a reader, consuming exactly its six bytes.
    pub fn read_from<R: embedded_io::Read>(reader: &mut R) -> Result<(), ReadError<R::Error>> {
        let mut buf = [0u8; PREAMBLE.len()];
        let mut check = PreambleReader::new();
        let mut filled = 0;
        while filled < buf.len() {
            let spare = buf.get_mut(filled..).unwrap_or_default();
            let n = reader.read(spare).map_err(ReadError::Io)?;
            if n == 0 {
                return Err(ReadError::UnexpectedEof { received: filled });
            }
            let mut fresh = spare.get(..n).unwrap_or_default();
            check.push(&mut fresh)?;
            filled += n;
        }
        Ok(())
    }
}

/// Writes the connection preamble.
pub fn write_preamble<W: embedded_io::Write>(writer: &mut W) -> Result<(), W::Error> {
    writer.write_all(&PREAMBLE)
}

/// The size of `msg`'s frame: its encoding plus [`OVERHEAD`] (saturating). `msg` is a
/// `&MessageRef` or a `&Message` (extensions are framed alike).
pub fn frame_len<'m>(msg: impl Into<Message<'m>>) -> usize {
    msg.into().encoded_len().saturating_add(OVERHEAD)
}

fn frame_header(msg: &Message<'_>) -> Result<[u8; HEADER], wire::Error> {
    let len = msg.encoded_len();
    let len = u32::try_from(len).map_err(|_| wire::Error::LengthOverflow {
        field: Field::FrameLength,
        offset: 0,
        len: u64::try_from(len).unwrap_or(u64::MAX),
    })?;
    Ok(len.to_le_bytes())
}

/// Puts header, message and CRC into a sink.
fn emit_frame<S: Sink>(msg: &Message<'_>, sink: &mut S) -> Result<(), S::Error> {
    let header = match frame_header(msg) {
        Ok(header) => header,
        Err(e) => return sink.refuse(e),
    };
    let mut crc = crate::checksum::digest();
    crc.update(&header);
    sink.put(&header)?;
    let mut body = Checksummed { inner: sink, digest: crc };
    msg.emit(&mut body)?;
    let crc = body.digest.finalize();
    sink.put(&crc.to_le_bytes())
}

/// Encodes `msg` (a `&MessageRef` or a `&Message`) as one frame into the front of `buf`;
/// returns the frame's length.
pub fn encode_frame<'m>(msg: impl Into<Message<'m>>, buf: &mut [u8]) -> Result<usize, wire::Error> {
    let msg = msg.into();
    let required = frame_len(msg);
    if buf.len() < required {
        return Err(wire::Error::BufferTooSmall { required, available: buf.len() });
    }
    let mut sink = SliceSink::new(buf);
    emit_frame(&msg, &mut sink)?;
    Ok(sink.position())
}

/// Writes `msg` (a `&MessageRef` or a `&Message`) as one frame, streaming it through the
/// writer with no intermediate buffer.
pub fn write_frame<'m, W: embedded_io::Write>(
    writer: &mut W,
    msg: impl Into<Message<'m>>,
) -> Result<(), WriteError<W::Error>> {
    emit_frame(&msg.into(), &mut wire::codec_io_sink(writer))
}

/// An incremental decoder of stream frames, in a buffer the caller provides.
///
/// The buffer must hold the largest frame: `max_frame + OVERHEAD` bytes. A length prefix
/// above `max_frame` is [`FrameError::TooLarge`] before any of the frame is buffered. After
/// a checksum or size error the stream cannot be trusted: the decoder returns that error
/// until [`reset`](Self::reset) (close the connection). A frame whose message does not
/// decode is reported and skipped; the stream stays in sync.
#[derive(Debug)]
pub struct StreamDecoder<B> {
    buf: B,
    max_frame: usize,
    filled: usize,
    body: Option<usize>,
    phase: Phase,
}

impl<B: AsMut<[u8]> + AsRef<[u8]>> StreamDecoder<B> {
    /// A decoder for messages of at most `max_frame` bytes, clamped to what `buf` can hold.
    pub fn new(buf: B, max_frame: usize) -> Self {
        let capacity = buf.as_ref().len().saturating_sub(OVERHEAD);
        StreamDecoder {
            buf,
            max_frame: max_frame.min(capacity),
            filled: 0,
            body: None,
            phase: Phase::Filling,
        }
    }

    /// The largest message this decoder accepts.
    pub fn max_frame(&self) -> usize {
        self.max_frame
    }

    /// Whether no frame is partly received (a clean place for the stream to end).
    pub fn is_idle(&self) -> bool {
        self.filled == 0 || matches!(self.phase, Phase::Delivered)
    }

    /// Forgets any partial frame and any error.
    pub fn reset(&mut self) {
        self.filled = 0;
        self.body = None;
        self.phase = Phase::Filling;
    }

    /// Consumes bytes from the front of `input` until one frame is complete, and returns
    /// its message. `input` is advanced past what was consumed; call again while it is not
    /// empty. Returns `Ok(None)` when `input` ran out inside a frame.
    pub fn push(&mut self, input: &mut &[u8]) -> Result<Option<MessageRef<'_>>, FrameError> {
        decode_body(self.push_frame(input)?)
    }

    /// As [`push`](Self::push), but returns the frame's checked body undecoded (decode it
    /// with [`Message::decode`] to accept harp's extensions too).
    pub fn push_frame(&mut self, input: &mut &[u8]) -> Result<Option<&[u8]>, FrameError> {
        self.begin()?;
        loop {
            let spare = self.spare();
            let n = spare.len().min(input.len());
            if n == 0 {
                return Ok(None);
            }
            let Some((head, rest)) = input.split_at_checked(n) else { return Ok(None) };
            if let Some(dst) = spare.get_mut(..n) {
                dst.copy_from_slice(head);
            }
            *input = rest;
            if self.advance(n)? {
                return self.finish_frame().map(Some);
            }
        }
    }

    /// As [`push_frame`](Self::push_frame), but a frame that lies whole in `input` (the
    /// common case on a fast link, where one read holds many frames) is checked and
    /// returned in place, without a copy through the buffer. Only a frame split across
    /// inputs is assembled in the buffer. Same results and errors as `push_frame` for any
    /// chunking.
    ///
    /// ```
    /// use harp::frame::stream::{encode_frame, StreamDecoder};
    /// use harp::MessageRef;
    ///
    /// let msg = MessageRef::Ack { vlsn: 7 };
    /// let mut bytes = [0u8; 32];
    /// let n = encode_frame(msg, &mut bytes)?;
    /// let mut dec = StreamDecoder::new([0u8; 64], 32);
    /// let mut input = &bytes[..n];
    /// let body = dec.next_frame(&mut input)?.unwrap();
    /// assert_eq!(MessageRef::decode(body)?, msg);
    /// assert!(input.is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn next_frame<'r, 'i: 'r>(
        &'r mut self,
        input: &mut &'i [u8],
    ) -> Result<Option<&'r [u8]>, FrameError> {
        self.begin()?;
        let whole: &'i [u8] = input;
        if let (0, Some(header)) = (self.filled, whole.first_chunk::<HEADER>()) {
            let body = self.body_len(u32::from_le_bytes(*header))?;
            let covered_end = HEADER.saturating_add(body);
            let split = whole
                .split_at_checked(covered_end.saturating_add(CRC))
                .and_then(|(frame, rest)| Some((frame.split_at_checked(covered_end)?, rest)));
            if let Some(((covered, crc), rest)) = split {
                let stored = crc.first_chunk::<CRC>().map_or(0, |b| u32::from_le_bytes(*b));
                if let Err(e) = check_crc(covered, stored) {
                    return self.fail(e);
                }
                *input = rest;
                return Ok(covered.get(HEADER..));
            }
        }
        self.push_frame(input)
    }

    /// Reads exactly one frame from `reader` (never reading past it) and returns its
    /// message, or `Ok(None)` if the stream ended cleanly before the frame's first byte.
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
        self.begin()?;
        loop {
            let n = reader.read(self.spare()).map_err(ReadError::Io)?;
            if n == 0 {
                return match self.filled {
                    0 => Ok(None),
                    received => Err(ReadError::UnexpectedEof { received }),
                };
            }
            if self.advance(n)? {
                return Ok(Some(self.finish_frame()?));
            }
        }
    }

    fn begin(&mut self) -> Result<(), FrameError> {
        match self.phase {
            Phase::Failed(e) => Err(e),
            Phase::Delivered => {
                self.reset();
                Ok(())
            }
            Phase::Filling | Phase::Skipping => Ok(()),
        }
    }

    /// The bytes still missing for the current part (header, then body and CRC).
    fn spare(&mut self) -> &mut [u8] {
        let target = self.body.map_or(HEADER, |len| len.saturating_add(OVERHEAD));
        self.buf.as_mut().get_mut(self.filled..target).unwrap_or_default()
    }

    /// Accounts for `n` new bytes; returns whether the frame is complete.
    fn advance(&mut self, n: usize) -> Result<bool, FrameError> {
        self.filled = self.filled.saturating_add(n);
        if self.body.is_none() && self.filled == HEADER {
            self.body = Some(self.body_len(self.read_u32(0))?);
        }
        Ok(self.body.is_some_and(|len| self.filled == len.saturating_add(OVERHEAD)))
    }

    /// A frame header's body length, if within the maximum (else the decoder fails).
    fn body_len(&mut self, len: u32) -> Result<usize, FrameError> {
        match usize::try_from(len) {
            Ok(body) if body <= self.max_frame => Ok(body),
            _ => self.fail(FrameError::TooLarge { len: u64::from(len), max: self.max_frame }),
        }
    }

    fn read_u32(&self, at: usize) -> u32 {
        let bytes = self.buf.as_ref().get(at..).and_then(|b| b.first_chunk::<4>());
        bytes.map_or(0, |b| u32::from_le_bytes(*b))
    }

    fn fail<T>(&mut self, e: FrameError) -> Result<T, FrameError> {
        self.phase = Phase::Failed(e);
        Err(e)
    }

    /// Checks the complete frame's CRC and returns its body.
    fn finish_frame(&mut self) -> Result<&[u8], FrameError> {
        let len = self.body.unwrap_or(0);
        let covered_end = HEADER.saturating_add(len);
        let stored = self.read_u32(covered_end);
        let covered = self.buf.as_ref().get(..covered_end).unwrap_or_default();
        if let Err(e) = check_crc(covered, stored) {
            return self.fail(e);
        }
        self.phase = Phase::Delivered;
        Ok(self.buf.as_ref().get(HEADER..covered_end).unwrap_or_default())
    }
}
