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
///
/// Errors: the node acknowledges nothing that depends on a failed call (it emits
/// `NodeEvent::StorageFailed`) and tries again later. An `append` that fails must leave the
/// log as it was. A `sync` that succeeds must mean the entries are durable, also after an
/// earlier `sync` of them failed: an OS may drop the pages it could not write back and
/// report the next `fsync` as successful, so a store on such a file system should refuse
/// every change after a failure (`harp-std`'s `FileLog` does, and its node then stops).
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

    /// Discards every entry before `vlsn` (the node asks only for durable ones, through
    /// [`Node::compact_log`](crate::node::Node::compact_log)). Exact and lasting: afterwards
    /// `first_vlsn()` is `vlsn`, also after a restart, because the node's base membership is
    /// the one as of `vlsn - 1`; and [`meta`](LogStore::meta) still answers for `vlsn - 1`.
    /// A store that cannot compact returns an error.
    fn compact(&mut self, vlsn: u64) -> Result<(), Self::Error>;

    /// The metadata of the entry at `first_vlsn() - 1`: the last one compacted, kept when
    /// its entry goes (the master's sync point right below the first entry it holds, and
    /// the node's own log position when everything is compacted, are made of it); the
    /// empty prefix's (term 0) while nothing was compacted.
    fn compacted_meta(&self) -> EntryMeta;

    /// The metadata of the entry at `vlsn`, held or the last one compacted (VLSN 0 is the
    /// empty prefix: term 0).
    fn meta(&self, vlsn: u64) -> Option<EntryMeta> {
        if vlsn.checked_add(1) == Some(self.first_vlsn()) {
            return Some(self.compacted_meta());
        }
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

    fn compact(&mut self, vlsn: u64) -> Result<(), Self::Error> {
        (**self).compact(vlsn)
    }

    fn compacted_meta(&self) -> EntryMeta {
        (**self).compacted_meta()
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
/// The payloads sit in a ring: an entry's bytes are contiguous, placed after the newest or,
/// when they do not fit before the end, at the start if the oldest entry has moved past
/// them. Compaction only forgets headers, so it moves no bytes and costs no `memmove`
/// (1.6 KiB of flash on Thumb).
///
/// ```
/// use harp::replication::{EntryMeta, LogStore, RamLog};
/// let mut log = RamLog::<4, 64>::new();
/// log.append(1, EntryMeta { term: 1, dtvlsn: 0 }, 7, b"hello")?;
/// assert_eq!(log.last_vlsn(), 1);
/// assert_eq!(log.entry(1).unwrap().data, b"hello");
/// # Ok::<(), harp::replication::RamLogError>(())
/// ```
#[derive(Debug, Clone)]
pub struct RamLog<const E: usize, const B: usize> {
    first: u64,
    /// The metadata of the entry at `first - 1` (the last one compacted).
    before: EntryMeta,
    /// Oldest first; each header's `offset..offset + len` in `bytes`.
    headers: heapless::Deque<Header, E>,
    bytes: [u8; B],
}

impl<const E: usize, const B: usize> Default for RamLog<E, B> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const E: usize, const B: usize> RamLog<E, B> {
    /// An empty log starting at VLSN 1.
    pub const fn new() -> Self {
        RamLog {
            first: 1,
            before: EntryMeta { term: 0, dtvlsn: 0 },
            headers: heapless::Deque::new(),
            bytes: [0; B],
        }
    }

    /// An empty log right after the entry at `vlsn`, which had `meta`: the log of a node
    /// that compacted everything through `vlsn`, what a replica behind every member's
    /// retained log is restored to (see [`check_restore`](super::check_restore)).
    ///
    /// ```
    /// use harp::replication::{EntryMeta, LogStore, RamLog};
    /// let meta = EntryMeta { term: 3, dtvlsn: 40 };
    /// let log = RamLog::<4, 64>::after(41, meta);
    /// assert_eq!((log.first_vlsn(), log.last_vlsn(), log.meta(41)), (42, 41, Some(meta)));
    /// ```
    pub const fn after(vlsn: u64, meta: EntryMeta) -> Self {
        let mut log = Self::new();
        log.first = vlsn.saturating_add(1);
        log.before = meta;
        log
    }

    /// Drops every entry before `vlsn` (only ever durable ones: a replica that needs them
    /// later is told to restore from elsewhere); afterwards `first_vlsn()` is `vlsn`, or
    /// `last_vlsn() + 1` if that is lower. A log a node holds is compacted through
    /// [`Node::compact_log`](crate::node::Node::compact_log), which carries the membership
    /// changes among the dropped entries forward.
    pub fn compact(&mut self, vlsn: u64) {
        while self.first < vlsn {
            let Some(dropped) = self.headers.pop_front() else { break };
            self.before = dropped.meta;
            self.first = self.first.saturating_add(1);
        }
    }

    /// Where `len` payload bytes go: after the newest entry, else at the start of the ring
    /// if the oldest entry begins past them; `None` if neither has room.
    fn place(&self, len: usize) -> Option<usize> {
        let (Some(oldest), Some(newest)) = (self.headers.front(), self.headers.back()) else {
            return (len <= B).then_some(0);
        };
        let head = oldest.offset as usize;
        let tail = (newest.offset as usize).checked_add(newest.len as usize)?;
        let fits = |start: usize, end: usize| start.checked_add(len).is_some_and(|e| e <= end);
        if newest.offset < oldest.offset {
            // Wrapped: the free bytes are between the newest and the oldest.
            return fits(tail, head).then_some(tail);
        }
        if fits(tail, B) {
            Some(tail)
        } else {
            fits(0, head).then_some(0)
        }
    }

    /// Where the entry at `vlsn` with `len` payload bytes goes, if it is the next one and
    /// there is room (nothing is changed yet).
    fn reserve(
        &self,
        vlsn: u64,
        meta: EntryMeta,
        entry_type: u8,
        len: usize,
    ) -> Result<Header, RamLogError> {
        let expected = self.last_vlsn().saturating_add(1);
        if vlsn != expected {
            return Err(RamLogError::Gap { expected, got: vlsn });
        }
        let len = u32::try_from(len).map_err(|_| RamLogError::TooLarge)?;
        if self.headers.is_full() {
            return Err(RamLogError::Full);
        }
        let start = self.place(len as usize).ok_or(RamLogError::Full)?;
        let offset = u32::try_from(start).map_err(|_| RamLogError::TooLarge)?;
        Ok(Header { meta, entry_type, offset, len })
    }

    fn payload_mut(&mut self, h: &Header) -> Option<&mut [u8]> {
        let start = h.offset as usize;
        self.bytes.get_mut(start..start.checked_add(h.len as usize)?)
    }

    /// Appends the entry at `vlsn` whose `len` payload bytes `fill` writes in place (a
    /// flash log replaying its records reads them straight into RAM). If `fill` fails,
    /// nothing is appended and its error is returned inside `Ok`.
    pub(crate) fn append_with<X>(
        &mut self,
        vlsn: u64,
        meta: EntryMeta,
        entry_type: u8,
        len: usize,
        fill: impl FnOnce(&mut [u8]) -> Result<(), X>,
    ) -> Result<Result<(), X>, RamLogError> {
        let header = self.reserve(vlsn, meta, entry_type, len)?;
        if let Err(e) = fill(self.payload_mut(&header).ok_or(RamLogError::Full)?) {
            return Ok(Err(e));
        }
        self.headers.push_back(header).map_err(|_| RamLogError::Full)?;
        Ok(Ok(()))
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
        let index = usize::try_from(vlsn.checked_sub(self.first)?).ok()?;
        let h = self.headers.get(index)?;
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
        // Not through `reserve`: the split cost 4 B of the node image's flash.
        let expected = self.last_vlsn().saturating_add(1);
        if vlsn != expected {
            return Err(RamLogError::Gap { expected, got: vlsn });
        }
        let len = u32::try_from(data.len()).map_err(|_| RamLogError::TooLarge)?;
        if self.headers.is_full() {
            return Err(RamLogError::Full);
        }
        let start = self.place(data.len()).ok_or(RamLogError::Full)?;
        let offset = u32::try_from(start).map_err(|_| RamLogError::TooLarge)?;
        let end = start.checked_add(data.len()).ok_or(RamLogError::TooLarge)?;
        self.bytes.get_mut(start..end).ok_or(RamLogError::Full)?.copy_from_slice(data);
        self.headers
            .push_back(Header { meta, entry_type, offset, len })
            .map_err(|_| RamLogError::Full)
    }

    fn truncate(&mut self, vlsn: u64) -> Result<(), RamLogError> {
        while self.last_vlsn() >= vlsn && self.headers.pop_back().is_some() {}
        Ok(())
    }

    fn sync(&mut self) -> Result<(), RamLogError> {
        Ok(())
    }

    fn compact(&mut self, vlsn: u64) -> Result<(), RamLogError> {
        RamLog::compact(self, vlsn);
        Ok(())
    }

    fn compacted_meta(&self) -> EntryMeta {
        self.before
    }
}

#[cfg(test)]
mod tests {
    use super::{EntryMeta, LogStore, RamLog, RamLogError};

    const META: EntryMeta = EntryMeta { term: 1, dtvlsn: 0 };

    fn data<const E: usize, const B: usize>(log: &RamLog<E, B>, vlsn: u64) -> &[u8] {
        log.entry(vlsn).unwrap().data
    }

    #[test]
    fn payloads_wrap_around_the_ring_once_the_oldest_is_compacted() {
        let mut log = RamLog::<8, 16>::new();
        for (vlsn, bytes) in [(1, b"aaaaa"), (2, b"bbbbb"), (3, b"ccccc")] {
            log.append(vlsn, META, 7, bytes).unwrap();
        }
        assert_eq!(log.append(4, META, 7, b"ddddd"), Err(RamLogError::Full), "1 byte left");
        log.compact(2);
        assert_eq!(log.first_vlsn(), 2);
        log.append(4, META, 7, b"ddddd").unwrap(); // where entry 1 was
        assert_eq!([data(&log, 2), data(&log, 3), data(&log, 4)], [b"bbbbb", b"ccccc", b"ddddd"]);
        assert_eq!(log.append(5, META, 7, b"e"), Err(RamLogError::Full), "up to entry 2");
        log.compact(3);
        log.append(5, META, 7, b"eeeee").unwrap();
        assert_eq!(data(&log, 5), b"eeeee");
        assert_eq!(data(&log, 3), b"ccccc", "nothing moved");
    }

    #[test]
    fn truncation_frees_the_newest_entries_bytes() {
        let mut log = RamLog::<8, 16>::new();
        log.append(1, META, 7, b"aaaaaaaa").unwrap();
        log.append(2, META, 7, b"bbbbbbbb").unwrap();
        log.compact(2);
        log.append(3, META, 7, b"cccccccc").unwrap(); // wrapped to the start
        log.truncate(3).unwrap();
        assert_eq!(log.last_vlsn(), 2);
        log.append(3, META, 7, b"dddddddd").unwrap();
        assert_eq!((data(&log, 2), data(&log, 3)), (&b"bbbbbbbb"[..], &b"dddddddd"[..]));
    }

    #[test]
    fn the_last_compacted_entrys_metadata_stays() {
        let mut log = RamLog::<8, 16>::new();
        assert_eq!(log.meta(0), Some(EntryMeta::default()), "the empty prefix");
        log.append(1, EntryMeta { term: 3, dtvlsn: 0 }, 7, b"a").unwrap();
        log.append(2, EntryMeta { term: 4, dtvlsn: 1 }, 7, b"b").unwrap();
        log.compact(3);
        assert_eq!(log.meta(2), Some(EntryMeta { term: 4, dtvlsn: 1 }), "right below the first");
        assert_eq!(log.meta(1), None, "further down it is gone");
    }

    #[test]
    fn compaction_is_exact_and_stops_at_the_end() {
        let mut log = RamLog::<8, 16>::new();
        for vlsn in 1..=3 {
            log.append(vlsn, META, 7, b"").unwrap();
        }
        log.compact(3);
        assert_eq!((log.first_vlsn(), log.last_vlsn()), (3, 3));
        log.compact(9);
        assert_eq!((log.first_vlsn(), log.last_vlsn()), (4, 3), "empty, next VLSN 4");
        log.append(4, META, 7, &[1; 16]).unwrap();
        assert_eq!(data(&log, 4), [1; 16], "an empty ring starts over at its start");
        assert_eq!(log.append(5, META, 7, &[2; 17]), Err(RamLogError::Full));
    }
}
