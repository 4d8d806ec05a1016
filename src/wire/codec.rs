//! The primitive encodings: a bounds-checked reader and the sinks an encoder writes to.
//!
//! The reader never adds a length read from the wire to a position: it keeps the unread
//! suffix and splits it with `split_at_checked`, so no input overflows on any target width.

use super::error::{Error, Field, WriteError};
use super::{GroupChangeType, NodeType};

/// Reads primitives from a message, tracking the offset for error reports.
pub(crate) struct Reader<'a> {
    rest: &'a [u8],
    len: usize,
}

impl<'a> Reader<'a> {
    #[inline]
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Reader { rest: bytes, len: bytes.len() }
    }

    /// Offset of the next unread byte from the start of the message. `rest` is always a
    /// suffix of the message, so the subtraction never wraps (wrapping: one instruction).
    #[inline]
    pub(crate) fn offset(&self) -> usize {
        self.len.wrapping_sub(self.rest.len())
    }

    #[inline]
    fn take(&mut self, n: usize, field: Field, offset: usize) -> Result<&'a [u8], Error> {
        let Some((head, tail)) = self.rest.split_at_checked(n) else {
            return Err(Error::Truncated { field, offset });
        };
        self.rest = tail;
        Ok(head)
    }

    #[inline]
    fn array<const N: usize>(&mut self, field: Field) -> Result<[u8; N], Error> {
        let offset = self.offset();
        let Some((head, tail)) = self.rest.split_first_chunk::<N>() else {
            return Err(Error::Truncated { field, offset });
        };
        self.rest = tail;
        Ok(*head)
    }

    #[inline]
    pub(crate) fn u8(&mut self, field: Field) -> Result<u8, Error> {
        self.array::<1>(field).map(|[b]| b)
    }

    #[inline]
    pub(crate) fn u16(&mut self, field: Field) -> Result<u16, Error> {
        self.array(field).map(u16::from_le_bytes)
    }

    #[inline]
    pub(crate) fn u32(&mut self, field: Field) -> Result<u32, Error> {
        self.array(field).map(u32::from_le_bytes)
    }

    #[inline]
    pub(crate) fn u64(&mut self, field: Field) -> Result<u64, Error> {
        self.array(field).map(u64::from_le_bytes)
    }

    #[inline]
    pub(crate) fn bool(&mut self, field: Field) -> Result<bool, Error> {
        let offset = self.offset();
        match self.u8(field)? {
            0 => Ok(false),
            1 => Ok(true),
            byte => Err(Error::InvalidBool { field, offset, byte }),
        }
    }

    /// `[len: u32 LE][len bytes]`.
    #[inline]
    pub(crate) fn bytes(&mut self, field: Field) -> Result<&'a [u8], Error> {
        let offset = self.offset();
        let len = self.u32(field)?;
        let n = usize::try_from(len).map_err(|_| Error::LengthOverflow {
            field,
            offset,
            len: u64::from(len),
        })?;
        self.take(n, field, offset)
    }

    // Out of line on 32-bit targets, where UTF-8 validation inlined at each of the ten
    // string fields costs ~0.3 KiB of flash; inlined on hosts, where decode speed counts.
    #[cfg_attr(target_pointer_width = "32", inline(never))]
    #[cfg_attr(not(target_pointer_width = "32"), inline)]
    pub(crate) fn str(&mut self, field: Field) -> Result<&'a str, Error> {
        let bytes = self.bytes(field)?;
        // The string's bytes end at the current offset.
        let offset = self.offset().wrapping_sub(bytes.len());
        utf8(bytes).map_err(|_| Error::InvalidUtf8 { field, offset })
    }

    #[inline]
    pub(crate) fn option_str(&mut self, field: Field) -> Result<Option<&'a str>, Error> {
        if self.bool(field)? {
            self.str(field).map(Some)
        } else {
            Ok(None)
        }
    }

    #[inline]
    pub(crate) fn node_type(&mut self) -> Result<NodeType, Error> {
        let offset = self.offset();
        let code = self.u8(Field::NodeType)?;
        NodeType::from_code(code).ok_or(Error::UnknownNodeType { offset, code })
    }

    #[inline]
    pub(crate) fn change_type(&mut self) -> Result<GroupChangeType, Error> {
        let offset = self.offset();
        let code = self.u8(Field::ChangeType)?;
        GroupChangeType::from_code(code).ok_or(Error::UnknownChangeType { offset, code })
    }

    /// Succeeds only if every byte was read.
    #[inline]
    pub(crate) fn finish(self) -> Result<(), Error> {
        match self.rest.len() {
            0 => Ok(()),
            count => Err(Error::TrailingBytes { offset: self.offset(), count }),
        }
    }
}

/// The bytes as text if they are valid UTF-8. Names on the wire are ASCII in practice; on
/// hosts, checking that first (`is_ascii`, a few instructions for a short name) is cheaper
/// than `core::str::from_utf8`'s general validation, which still decides every other input
/// (BENCHMARKS.md: an election proposal's round trip, 226 -> 196 instructions). Firmware
/// keeps `from_utf8` alone: the fast path would cost ~90 B of flash.
#[inline]
pub(crate) fn utf8(bytes: &[u8]) -> Result<&str, core::str::Utf8Error> {
    #[cfg(not(target_pointer_width = "32"))]
    if let Ok(ascii) = ascii::AsAsciiStr::as_ascii_str(bytes) {
        return Ok(ascii.as_str());
    }
    core::str::from_utf8(bytes)
}

/// A destination for encoded bytes. The encoder is written once against this trait and
/// serves slices, heapless vectors, `embedded_io` writers, CRC digests and COBS encoders.
pub(crate) trait Sink {
    /// What a failed `put` returns. A sink that can record the failure and report it after
    /// the message (the COBS encoder) uses `Infallible`, so the encoder's checks after each
    /// field compile to nothing.
    type Error;

    /// Appends `bytes`.
    fn put(&mut self, bytes: &[u8]) -> Result<(), Self::Error>;

    /// How many bytes were put so far (for error offsets).
    fn position(&self) -> usize;

    /// The message cannot be encoded (`e` says why); the encoder stops after this.
    fn refuse(&mut self, e: Error) -> Result<(), Self::Error>;

    #[inline]
    fn put_u8(&mut self, v: u8) -> Result<(), Self::Error> {
        self.put(&[v])
    }

    /// A `u64`, little-endian: one call per field on 32-bit targets, where each inlined
    /// copy costs a byte swap of two registers and a stack spill.
    #[cfg_attr(target_pointer_width = "32", inline(never))]
    fn put_u64(&mut self, v: u64) -> Result<(), Self::Error> {
        self.put(&v.to_le_bytes())
    }

    #[inline]
    fn put_bool(&mut self, v: bool) -> Result<(), Self::Error> {
        self.put_u8(u8::from(v))
    }

    /// `[len: u32 LE][bytes]`; a length above `u32::MAX` is an error, never a truncation.
    #[inline]
    fn put_bytes(&mut self, v: &[u8], field: Field) -> Result<(), Self::Error> {
        let Ok(len) = u32::try_from(v.len()) else {
            let len = u64::try_from(v.len()).unwrap_or(u64::MAX);
            return self.refuse(Error::LengthOverflow { field, offset: self.position(), len });
        };
        self.put(&len.to_le_bytes())?;
        self.put(v)
    }
}

/// Writes into a caller's slice, splitting off the written prefix as it goes (the shape the
/// optimiser turns into straight stores).
pub(crate) struct SliceSink<'b> {
    rest: &'b mut [u8],
    capacity: usize,
}

impl<'b> SliceSink<'b> {
    #[inline]
    pub(crate) fn new(buf: &'b mut [u8]) -> Self {
        SliceSink { capacity: buf.len(), rest: buf }
    }
}

impl Sink for SliceSink<'_> {
    type Error = Error;

    #[inline]
    fn put(&mut self, bytes: &[u8]) -> Result<(), Error> {
        let rest = core::mem::take(&mut self.rest);
        let at = self.capacity.wrapping_sub(rest.len()); // `position()`, with `rest` taken
        let Some((head, tail)) = rest.split_at_mut_checked(bytes.len()) else {
            let required = at.saturating_add(bytes.len());
            return Err(Error::BufferTooSmall { required, available: self.capacity });
        };
        head.copy_from_slice(bytes);
        self.rest = tail;
        Ok(())
    }

    #[inline]
    fn position(&self) -> usize {
        self.capacity.wrapping_sub(self.rest.len())
    }

    #[inline]
    fn refuse(&mut self, e: Error) -> Result<(), Error> {
        Err(e)
    }
}

/// Writes through an `embedded_io::Write`.
pub(crate) struct IoSink<'w, W> {
    pub(crate) writer: &'w mut W,
    pub(crate) written: usize,
}

impl<W: embedded_io::Write> Sink for IoSink<'_, W> {
    type Error = WriteError<W::Error>;

    #[inline]
    fn put(&mut self, bytes: &[u8]) -> Result<(), Self::Error> {
        self.writer.write_all(bytes).map_err(WriteError::Io)?;
        self.written = self.written.saturating_add(bytes.len());
        Ok(())
    }

    #[inline]
    fn position(&self) -> usize {
        self.written
    }

    #[inline]
    fn refuse(&mut self, e: Error) -> Result<(), Self::Error> {
        Err(WriteError::Encode(e))
    }
}

/// Feeds a CRC-32C digest while forwarding to an inner sink.
pub(crate) struct Checksummed<'s, S> {
    pub(crate) inner: &'s mut S,
    pub(crate) digest: crate::checksum::Digest,
}

impl<S: Sink> Sink for Checksummed<'_, S> {
    type Error = S::Error;

    #[inline]
    fn put(&mut self, bytes: &[u8]) -> Result<(), S::Error> {
        self.digest.update(bytes);
        self.inner.put(bytes)
    }

    #[inline]
    fn position(&self) -> usize {
        self.inner.position()
    }

    #[inline]
    fn refuse(&mut self, e: Error) -> Result<(), S::Error> {
        self.inner.refuse(e)
    }
}

#[cfg(feature = "alloc")]
impl Sink for alloc::vec::Vec<u8> {
    type Error = Error;

    #[inline]
    fn put(&mut self, bytes: &[u8]) -> Result<(), Error> {
        self.extend_from_slice(bytes);
        Ok(())
    }

    #[inline]
    fn position(&self) -> usize {
        self.len()
    }

    #[inline]
    fn refuse(&mut self, e: Error) -> Result<(), Error> {
        Err(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slice_sink_that_runs_out_states_the_size_it_needed() {
        let mut buf = [0u8; 6];
        let mut sink = SliceSink::new(&mut buf);
        assert_eq!(sink.put(&[1, 2, 3, 4]), Ok(()));
        assert_eq!(sink.position(), 4);
        assert_eq!(sink.put(&[5, 6, 7]), Err(Error::BufferTooSmall { required: 7, available: 6 }));
    }

    #[test]
    fn reader_offsets_count_from_the_start_of_the_message() {
        let bytes = [1, 0, 0, 0, b'x', 9];
        let mut r = Reader::new(&bytes);
        assert_eq!(r.offset(), 0);
        assert_eq!(r.str(Field::ShutdownReason), Ok("x"));
        assert_eq!(r.offset(), 5);
        assert_eq!(r.u16(Field::Tag), Err(Error::Truncated { field: Field::Tag, offset: 5 }));
        assert_eq!(r.finish(), Err(Error::TrailingBytes { offset: 5, count: 1 }));
    }
}
