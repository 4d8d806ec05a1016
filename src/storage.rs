//! Stable storage for the election's promises.
//!
//! A node's current term and its vote in that term must survive a crash, or a restarted node
//! could vote twice in one term. The election writes an [`ElectionRecord`] through a
//! [`StableStore`] *before* it sends any message that depends on it. The record is
//! postcard-encoded and followed by a CRC-32C (little-endian) of those bytes; a record that
//! fails the check is an error the node reports ([`RecordError`]), never a fresh start.
//!
//! Stores: [`RamStore`] (tests, boards without persistent storage) and [`NorFlashStore`]
//! (two sectors of any `embedded-storage` NOR flash, safe against power cuts). Hosted nodes
//! keep the record in a file (`harp-std`).

use crate::checksum;
use core::fmt;
use serde::{Deserialize, Serialize};

pub(crate) mod nor_flash;
pub use nor_flash::{FlashStoreError, NorFlashStore, MAX_SLOT};

/// The longest encoded record: postcard varints (10 + 1 + 5 bytes) plus the CRC.
pub const MAX_RECORD: usize = 48;

/// The election state that must survive restarts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ElectionRecord {
    /// The highest term this node has joined; it never decreases.
    pub term: u64,
    /// The node id of the candidate this node voted for in `term`, once it has voted.
    pub vote: Option<u32>,
    /// The log position `(log_term, vlsn)` this node promised to vote only at or past: an
    /// arbiter's acknowledged position (it promised its master), or the master's Add of a
    /// node that joined the group (`Node::restore_joining`). `(0, 0)`: no promise.
    pub acknowledged: (u64, u64),
}

/// Why a stored record cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum RecordError {
    /// Shorter than its checksum (`len` bytes).
    TooShort {
        /// The stored length.
        len: usize,
    },
    /// The CRC-32C does not match the record.
    Checksum {
        /// The CRC stored after the record.
        stored: u32,
        /// The CRC of the record's bytes.
        computed: u32,
    },
    /// The checksum matches but the bytes are not a record (written by another version?).
    Malformed,
    /// The store's buffer could not hold the record.
    TooLarge,
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecordError::TooShort { len } => write!(f, "election record of {len} bytes is too short"),
            RecordError::Checksum { stored, computed } => write!(
                f,
                "election record fails its CRC-32C (stored {stored:#010x}, computed {computed:#010x})"
            ),
            RecordError::Malformed => f.write_str("election record does not decode"),
            RecordError::TooLarge => f.write_str("election record larger than its buffer"),
        }
    }
}

impl ElectionRecord {
    /// Encodes the record and its CRC into `buf`; returns the length.
    ///
    /// ```
    /// use harp::storage::{ElectionRecord, MAX_RECORD};
    /// let rec = ElectionRecord { term: 9, vote: Some(2), acknowledged: (0, 0) };
    /// let mut buf = [0u8; MAX_RECORD];
    /// let len = rec.encode(&mut buf)?;
    /// assert_eq!(ElectionRecord::decode(&buf[..len])?, rec);
    /// # Ok::<(), harp::storage::RecordError>(())
    /// ```
    #[cfg_attr(target_pointer_width = "32", inline(always))]
    pub fn encode(&self, buf: &mut [u8; MAX_RECORD]) -> Result<usize, RecordError> {
        let body_len = postcard::to_slice(self, buf).map_err(|_| RecordError::TooLarge)?.len();
        let (body, rest) = buf.split_at_mut_checked(body_len).ok_or(RecordError::TooLarge)?;
        let crc = checksum::crc32c(body).to_le_bytes();
        let tail = rest.get_mut(..4).ok_or(RecordError::TooLarge)?;
        tail.copy_from_slice(&crc);
        body_len.checked_add(4).ok_or(RecordError::TooLarge)
    }

    /// Decodes and checks a stored record.
    pub fn decode(bytes: &[u8]) -> Result<Self, RecordError> {
        let (body, crc) =
            bytes.split_last_chunk::<4>().ok_or(RecordError::TooShort { len: bytes.len() })?;
        let stored = u32::from_le_bytes(*crc);
        let computed = checksum::crc32c(body);
        if !checksum::matches(computed, stored) {
            return Err(RecordError::Checksum { stored, computed });
        }
        match postcard::take_from_bytes::<ElectionRecord>(body) {
            Ok((record, [])) => Ok(record),
            _ => Err(RecordError::Malformed),
        }
    }
}

/// Where a node keeps its [`ElectionRecord`]: a flash page, a file, a RAM cell.
///
/// `write` must replace the record atomically and durably before it returns (on a host:
/// write a new file, fsync, rename); `read` returns the last record written, or `None` if
/// none ever was.
pub trait StableStore {
    /// The store's I/O error.
    type Error: fmt::Debug;

    /// Copies the last record into `buf` and returns its length, or `None` if there is none.
    fn read(&mut self, buf: &mut [u8; MAX_RECORD]) -> Result<Option<usize>, Self::Error>;

    /// Replaces the record with `record`, durably.
    fn write(&mut self, record: &[u8]) -> Result<(), Self::Error>;
}

/// A store borrowed mutably is a store (keep it in its own `static`, lend it to the node).
impl<S: StableStore + ?Sized> StableStore for &mut S {
    type Error = S::Error;

    fn read(&mut self, buf: &mut [u8; MAX_RECORD]) -> Result<Option<usize>, Self::Error> {
        (**self).read(buf)
    }

    fn write(&mut self, record: &[u8]) -> Result<(), Self::Error> {
        (**self).write(record)
    }
}

/// A [`StableStore`] in RAM: for tests and for boards without flash (it does not survive a
/// power cycle, which such a node must then treat as a new member).
#[derive(Debug, Clone, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct RamStore {
    record: heapless::Vec<u8, MAX_RECORD>,
    written: bool,
}

impl RamStore {
    /// An empty store.
    pub const fn new() -> Self {
        RamStore { record: heapless::Vec::new(), written: false }
    }

    /// The raw bytes of the last record (for tests that corrupt them).
    pub fn bytes_mut(&mut self) -> &mut heapless::Vec<u8, MAX_RECORD> {
        &mut self.record
    }
}

/// A record longer than [`MAX_RECORD`] bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct RecordTooLarge;

impl StableStore for RamStore {
    type Error = RecordTooLarge;

    fn read(&mut self, buf: &mut [u8; MAX_RECORD]) -> Result<Option<usize>, RecordTooLarge> {
        if !self.written {
            return Ok(None);
        }
        let dst = buf.get_mut(..self.record.len()).ok_or(RecordTooLarge)?;
        dst.copy_from_slice(&self.record);
        Ok(Some(self.record.len()))
    }

    fn write(&mut self, record: &[u8]) -> Result<(), RecordTooLarge> {
        self.record = heapless::Vec::from_slice(record).map_err(|_| RecordTooLarge)?;
        self.written = true;
        Ok(())
    }
}
