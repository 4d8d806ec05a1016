//! What can go wrong when encoding or decoding a message, and where.

use core::fmt;

/// A codec error: what is wrong and where.
///
/// `field` names the message field being read or written (`"Handshake.group_name"`) and
/// `offset` is the byte offset of that field from the start of the message, so a bad capture
/// can be found with a hex dump.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Error {
    /// The input ended inside a field.
    Truncated {
        /// The field being read.
        field: &'static str,
        /// Where the field starts.
        offset: usize,
    },
    /// The first byte is not one of the twelve message tags (1..=12).
    UnknownTag {
        /// The byte found.
        tag: u8,
    },
    /// A string field is not valid UTF-8.
    InvalidUtf8 {
        /// The field being read.
        field: &'static str,
        /// Where the string's bytes start (after its length prefix).
        offset: usize,
    },
    /// A boolean or presence byte is neither `0x00` nor `0x01`.
    InvalidBool {
        /// The field being read.
        field: &'static str,
        /// Where the byte is.
        offset: usize,
        /// The byte found.
        byte: u8,
    },
    /// A node type byte is not 0..=3.
    UnknownNodeType {
        /// Where the byte is.
        offset: usize,
        /// The byte found.
        code: u8,
    },
    /// A group change type byte is not 0..=2.
    UnknownChangeType {
        /// Where the byte is.
        offset: usize,
        /// The byte found.
        code: u8,
    },
    /// Bytes remain after the last field of the message.
    TrailingBytes {
        /// Where the extra bytes start.
        offset: usize,
        /// How many there are.
        count: usize,
    },
    /// A length does not fit: on decode, a length prefix larger than this target's address
    /// space; on encode, a string or payload longer than `u32::MAX` bytes, or a message whose
    /// size overflows `usize`.
    LengthOverflow {
        /// The field whose length overflows.
        field: &'static str,
        /// Where the field's length prefix is (or would be).
        offset: usize,
        /// The length that does not fit.
        len: u64,
    },
    /// The output buffer cannot hold the encoded message.
    BufferTooSmall {
        /// The number of bytes the encoding needs.
        required: usize,
        /// The number of bytes the buffer has.
        available: usize,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Error::Truncated { field, offset } => {
                write!(f, "truncated: input ends inside {field} (starting at byte {offset})")
            }
            Error::UnknownTag { tag } => {
                write!(f, "unknown message tag {tag} at byte 0 (expected 1..=12)")
            }
            Error::InvalidUtf8 { field, offset } => {
                write!(f, "invalid UTF-8 in {field} (string at byte {offset})")
            }
            Error::InvalidBool { field, offset, byte } => write!(
                f,
                "invalid boolean 0x{byte:02x} in {field} at byte {offset} (expected 0x00 or 0x01)"
            ),
            Error::UnknownNodeType { offset, code } => {
                write!(f, "unknown node type {code} at byte {offset} (expected 0..=3)")
            }
            Error::UnknownChangeType { offset, code } => {
                write!(f, "unknown group change type {code} at byte {offset} (expected 0..=2)")
            }
            Error::TrailingBytes { offset, count } => {
                write!(f, "{count} trailing byte(s) after the message, starting at byte {offset}")
            }
            Error::LengthOverflow { field, offset, len } => {
                write!(f, "length {len} of {field} at byte {offset} does not fit")
            }
            Error::BufferTooSmall { required, available } => write!(
                f,
                "buffer too small: the encoding needs {required} bytes, the buffer has {available}"
            ),
        }
    }
}

impl core::error::Error for Error {}

/// An error writing a message to an [`embedded_io::Write`]r.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum WriteError<E> {
    /// The message cannot be encoded.
    Encode(Error),
    /// The writer failed.
    Io(E),
}

impl<E> From<Error> for WriteError<E> {
    fn from(e: Error) -> Self {
        WriteError::Encode(e)
    }
}

impl<E: fmt::Debug> fmt::Display for WriteError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WriteError::Encode(e) => write!(f, "{e}"),
            WriteError::Io(e) => write!(f, "write failed: {e:?}"),
        }
    }
}

impl<E: fmt::Debug> core::error::Error for WriteError<E> {}
