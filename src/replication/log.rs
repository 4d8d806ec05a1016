//! The replicated log: the [`LogStore`] trait and a bounded in-RAM implementation.

use core::fmt;

/// Entry types at and above this value are reserved for the protocol.
pub const RESERVED_ENTRY_TYPES: u8 = 0xF0;
/// The first entry a new master writes in its term (`data`: the term, u64 LE). It commits
/// the entries before it and tells replicas the term of the entries that follow.
pub const ENTRY_TERM_START: u8 = 0xFF;
/// A DTVLSN record (`data`: the durable VLSN, u64 LE), as JE keeps its DTVLSN in the log.
pub const ENTRY_DTVLSN: u8 = 0xFE;
/// A membership change (`data`: the `GroupChange` message, wire-encoded). Every node applies
/// it when it is in its log, so all apply the same changes in the same order.
pub const ENTRY_MEMBERSHIP: u8 = 0xFD;

/// What the log keeps beside each entry's payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct EntryMeta {
    /// The term of the master that wrote the entry.
    pub term: u64,
    /// The highest DTVLSN recorded in the log up to and including this entry.
    pub dtvlsn: u64,
}

/// One entry, borrowed from a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry<'a> {
    /// Term and recorded DTVLSN.
    pub meta: EntryMeta,
    /// The application's (or the protocol's, at and above [`RESERVED_ENTRY_TYPES`]) type.
    pub entry_type: u8,
    /// The payload.
    pub data: &'a [u8],
}

/// Where a node keeps its replicated log: entries at VLSNs `first_vlsn()..=last_vlsn()`,
/// with no gaps.
///
/// `append` may buffer; [`sync`](LogStore::sync) makes everything appended durable, and the
/// node calls it before it acknowledges or counts an entry. Entries appended but not synced
/// may be lost in a crash.
pub trait LogStore {
    /// The store's error.
    type Error: fmt::Debug;

    /// The first entry still held (entries before it were compacted); `last_vlsn() + 1`
    /// when the log is empty.
    fn first_vlsn(&self) -> u64;

    /// The last entry's VLSN, 0 for an empty log.
    fn last_vlsn(&self) -> u64;

    /// The entry at `vlsn`, if held.
    fn entry(&self, vlsn: u64) -> Option<Entry<'_>>;

    /// Appends the entry at `vlsn`, which must be `last_vlsn() + 1`.
    fn append(
        &mut self,
        vlsn: u64,
        meta: EntryMeta,
        entry_type: u8,
        data: &[u8],
    ) -> Result<(), Self::Error>;

    /// Removes every entry at or after `vlsn`.
    fn truncate(&mut self, vlsn: u64) -> Result<(), Self::Error>;

    /// Makes every appended entry durable.
    fn sync(&mut self) -> Result<(), Self::Error>;

    /// The metadata of the entry at `vlsn` (VLSN 0 is the empty prefix: term 0).
    fn meta(&self, vlsn: u64) -> Option<EntryMeta> {
        if vlsn == 0 {
            return Some(EntryMeta::default());
        }
        self.entry(vlsn).map(|e| e.meta)
    }
}

/// A log borrowed mutably is a log: firmware can keep the log in its own `static` (or its
/// own RAM region) and lend it to the node.
impl<L: LogStore + ?Sized> LogStore for &mut L {
    type Error = L::Error;

    #[cfg_attr(target_pointer_width = "32", inline(never))]
    fn first_vlsn(&self) -> u64 {
        (**self).first_vlsn()
    }

    #[cfg_attr(target_pointer_width = "32", inline(never))]
    fn last_vlsn(&self) -> u64 {
        (**self).last_vlsn()
    }

    #[cfg_attr(target_pointer_width = "32", inline(never))]
    fn entry(&self, vlsn: u64) -> Option<Entry<'_>> {
        (**self).entry(vlsn)
    }

    fn append(
        &mut self,
        vlsn: u64,
        meta: EntryMeta,
        entry_type: u8,
        data: &[u8],
    ) -> Result<(), Self::Error> {
        (**self).append(vlsn, meta, entry_type, data)
    }

    fn truncate(&mut self, vlsn: u64) -> Result<(), Self::Error> {
        (**self).truncate(vlsn)
    }

    fn sync(&mut self) -> Result<(), Self::Error> {
        (**self).sync()
    }

    fn meta(&self, vlsn: u64) -> Option<EntryMeta> {
        (**self).meta(vlsn)
    }
}

/// Why a [`RamLog`] refused an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum RamLogError {
    /// No room for another entry or its payload (compact durable entries first).
    Full,
    /// An append not at `last_vlsn() + 1`.
    Gap {
        /// The VLSN the log expected.
        expected: u64,
        /// The VLSN given.
        got: u64,
    },
    /// A payload longer than `u32::MAX` bytes.
    TooLarge,
}

#[derive(Debug, Clone, Copy)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
struct Header {
    meta: EntryMeta,
    entry_type: u8,
    offset: u32,
    len: u32,
}

/// A log in RAM: at most `E` entries and `B` payload bytes. Appends are durable at once
/// (there is nothing to sync); [`compact`](RamLog::compact) drops a durable prefix.
///
/// ```
/// use harp::replication::{EntryMeta, LogStore, RamLog};
/// let mut log = RamLog::<4, 64>::new();
/// log.append(1, EntryMeta { term: 1, dtvlsn: 0 }, 7, b"hello")?;
/// assert_eq!(log.last_vlsn(), 1);
/// assert_eq!(log.entry(1).unwrap().data, b"hello");
/// # Ok::<(), harp::replication::RamLogError>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct RamLog<const E: usize, const B: usize> {
    first: u64,
    headers: heapless::Vec<Header, E>,
    bytes: heapless::Vec<u8, B>,
}

impl<const E: usize, const B: usize> RamLog<E, B> {
    /// An empty log starting at VLSN 1.
    pub const fn new() -> Self {
        RamLog { first: 1, headers: heapless::Vec::new(), bytes: heapless::Vec::new() }
    }

    /// Drops every entry before `vlsn` (only ever durable ones: a replica that needs them
    /// later is told to restore from elsewhere). Not past a membership entry
    /// ([`ENTRY_MEMBERSHIP`](super::ENTRY_MEMBERSHIP)): the node rebuilds its membership from
    /// the ones the log holds (docs/firmware.md, "Log store").
    pub fn compact(&mut self, vlsn: u64) {
        let drop = usize::try_from(vlsn.saturating_sub(self.first)).unwrap_or(usize::MAX);
        let drop = drop.min(self.headers.len());
        let cut = self.headers.get(drop).map_or(self.bytes.len(), |h| h.offset as usize);
        let cut = cut.min(self.bytes.len());
        self.bytes.copy_within(cut.., 0);
        self.bytes.truncate(self.bytes.len().saturating_sub(cut));
        self.headers.rotate_left(drop);
        self.headers.truncate(self.headers.len().saturating_sub(drop));
        let shift = u32::try_from(cut).unwrap_or(u32::MAX);
        self.headers.iter_mut().for_each(|h| h.offset = h.offset.saturating_sub(shift));
        self.first = self.first.saturating_add(drop as u64);
    }

    fn index(&self, vlsn: u64) -> Option<usize> {
        usize::try_from(vlsn.checked_sub(self.first)?).ok().filter(|&i| i < self.headers.len())
    }
}

impl<const E: usize, const B: usize> LogStore for RamLog<E, B> {
    type Error = RamLogError;

    fn first_vlsn(&self) -> u64 {
        self.first
    }

    // Out of line: the node asks at ~20 places, and two saturating u64 operations inlined
    // at each cost ~0.3 KiB of firmware flash.
    #[inline(never)]
    fn last_vlsn(&self) -> u64 {
        (self.first.saturating_add(self.headers.len() as u64)).saturating_sub(1)
    }

    fn entry(&self, vlsn: u64) -> Option<Entry<'_>> {
        let h = self.headers.get(self.index(vlsn)?)?;
        let start = h.offset as usize;
        let data = self.bytes.get(start..start.checked_add(h.len as usize)?)?;
        Some(Entry { meta: h.meta, entry_type: h.entry_type, data })
    }

    fn append(
        &mut self,
        vlsn: u64,
        meta: EntryMeta,
        entry_type: u8,
        data: &[u8],
    ) -> Result<(), RamLogError> {
        let expected = self.last_vlsn().saturating_add(1);
        if vlsn != expected {
            return Err(RamLogError::Gap { expected, got: vlsn });
        }
        let len = u32::try_from(data.len()).map_err(|_| RamLogError::TooLarge)?;
        let offset = u32::try_from(self.bytes.len()).map_err(|_| RamLogError::TooLarge)?;
        if self.headers.is_full() {
            return Err(RamLogError::Full);
        }
        self.bytes.extend_from_slice(data).map_err(|_| RamLogError::Full)?;
        self.headers.push(Header { meta, entry_type, offset, len }).map_err(|_| RamLogError::Full)
    }

    fn truncate(&mut self, vlsn: u64) -> Result<(), RamLogError> {
        let keep = usize::try_from(vlsn.saturating_sub(self.first)).unwrap_or(usize::MAX);
        if let Some(h) = self.headers.get(keep) {
            self.bytes.truncate(h.offset as usize);
            self.headers.truncate(keep);
        }
        Ok(())
    }

    fn sync(&mut self) -> Result<(), RamLogError> {
        Ok(())
    }
}
