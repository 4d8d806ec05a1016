//! A [`LogStore`] that survives power loss: the entries in RAM (a [`RamLog`]) and every
//! change also recorded in a ring of NOR flash sectors, replayed at start.
//!
//! ```text
//! sector:  magic u32 "hrpl" | seq u32 | crc32c u32 | 0xFF pad to the unit | records ... | 0xFF
//! record:  kind u8 | type u8 | 0xFFFF | len u32 | vlsn u64 | term u64 | dtvlsn u64
//!          | data (len bytes) | crc32c u32 | 0xFF pad to the unit
//! kinds:   1 entry (vlsn, meta, type, data), 2 truncate (at vlsn), 3 compaction (first
//!          kept vlsn; term and dtvlsn of the entry before it; data: the floor, u32)
//! ```
//!
//! Every change is programmed into the newest sector (the *head*) before it is made in RAM,
//! so when [`append`](LogStore::append) returns the entry is durable ([`sync`](LogStore::sync)
//! has nothing left to do). Sectors are numbered as they are opened. At start the valid
//! sectors are replayed oldest first, each up to its first record that fails its CRC-32C (a
//! power cut mid-record), and the first change after start opens a fresh sector, so no torn
//! word is ever programmed again.
//!
//! A compaction record carries a *floor*: the number of the oldest sector still in use, all
//! older ones holding only compacted entries or entries a truncation removed. Replay starts
//! at the newest compaction's point and ignores the sectors below its floor, and only those
//! are ever erased for reuse, so a sector's truncation record never disappears while the
//! entries it removed are still replayed. When only one sector is free, appends that need a
//! new sector first write such a record if it frees the oldest sector, and otherwise fail
//! with [`FlashLogError::Full`] until the node compacts
//! ([`Node::compact_log`](crate::node::Node::compact_log)); the last free sector is kept for
//! that compaction.
//!
//! Replay is checked: an entry that does not follow the one before it, unless a later
//! truncation removes it, is [`FlashLogError::Damaged`], never a shorter log.

use embedded_storage::nor_flash::NorFlash;

use super::log::{Entry, EntryMeta, LogStore, RamLog, RamLogError};
use crate::checksum;
use crate::storage::nor_flash::{unit_of, ERASED};

const MAGIC: u32 = u32::from_le_bytes(*b"hrpl");
const SECTOR_HEADER: usize = 12;
const RECORD_HEADER: usize = 32;
const CRC_LEN: usize = 4;
/// The staging buffer that turns a record into whole write units.
const STAGE: usize = 64;

const ENTRY: u8 = 1;
const TRUNCATE: u8 = 2;
const COMPACT: u8 = 3;

/// A [`LogStore`] of at most `E` entries and `B` payload bytes in RAM, recorded in `S`
/// sectors of a [`NorFlash`] so that it survives power loss.
///
/// The flash must hold what the RAM holds: give it at least two sectors more than the
/// entries between two compactions take, since a sector is reused only once every entry in
/// it is compacted or removed, and each start opens a fresh sector.
///
/// ```
/// use harp::replication::{EntryMeta, LogStore, NorFlashLog};
/// # use harp::embedded_storage::nor_flash::{ErrorType, NorFlash, NorFlashErrorKind, ReadNorFlash};
/// # struct Flash([u8; 4096]);
/// # impl ErrorType for Flash { type Error = NorFlashErrorKind; }
/// # impl ReadNorFlash for Flash {
/// #     const READ_SIZE: usize = 1;
/// #     fn read(&mut self, at: u32, out: &mut [u8]) -> Result<(), Self::Error> {
/// #         out.copy_from_slice(&self.0[at as usize..at as usize + out.len()]);
/// #         Ok(())
/// #     }
/// #     fn capacity(&self) -> usize { self.0.len() }
/// # }
/// # impl NorFlash for Flash {
/// #     const WRITE_SIZE: usize = 4;
/// #     const ERASE_SIZE: usize = 1024;
/// #     fn erase(&mut self, from: u32, to: u32) -> Result<(), Self::Error> {
/// #         self.0[from as usize..to as usize].fill(0xFF);
/// #         Ok(())
/// #     }
/// #     fn write(&mut self, at: u32, bytes: &[u8]) -> Result<(), Self::Error> {
/// #         self.0[at as usize..at as usize + bytes.len()].copy_from_slice(bytes);
/// #         Ok(())
/// #     }
/// # }
/// // Four 1 KiB sectors from offset 0; 32 entries and 1 KiB of payload in RAM.
/// let mut log = NorFlashLog::<_, 32, 1024, 4>::new(Flash([0xFF; 4096]), 0, 1024);
/// log.open()?;
/// log.append(1, EntryMeta { term: 1, dtvlsn: 0 }, 7, b"hello")?;
///
/// // After a power loss: the same flash, replayed.
/// let mut log = NorFlashLog::<_, 32, 1024, 4>::new(log.into_inner(), 0, 1024);
/// log.open()?;
/// assert_eq!(log.entry(1).unwrap().data, b"hello");
/// # Ok::<(), harp::replication::FlashLogError<NorFlashErrorKind>>(())
/// ```
#[derive(Debug)]
pub struct NorFlashLog<F, const E: usize, const B: usize, const S: usize> {
    flash: F,
    base: u32,
    sector_len: u32,
    unit: u32,
    ram: RamLog<E, B>,
    sectors: [Sector; S],
    /// The sector and offset the next record goes to; `None`: the next record opens a
    /// fresh sector.
    head: Option<(usize, u32)>,
    next_seq: u32,
    /// The first flash failure: every later change is refused.
    failed: bool,
}

/// What the log knows of one sector.
#[derive(Debug, Clone, Copy, Default)]
struct Sector {
    /// Its number in opening order; `None`: free (erased, or erasable before reuse).
    seq: Option<u32>,
    /// The highest VLSN of an entry in it that no truncation has removed since (0: none).
    max_vlsn: u64,
    /// Where its valid records end.
    end: u32,
}

/// Why a [`NorFlashLog`] refused an operation or could not open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum FlashLogError<E> {
    /// The flash driver failed; the log refuses every later change (reset the board: the
    /// log reopens with every change whose call returned).
    Flash(E),
    /// A change after a flash failure, or before [`NorFlashLog::open`].
    Failed,
    /// The layout does not fit this flash; `what` says which rule it breaks.
    Layout {
        /// The broken rule.
        what: &'static str,
    },
    /// No free sector for the next record: compact the log.
    Full,
    /// The RAM log refused (full, or an append out of order).
    Ram(RamLogError),
    /// A record larger than a sector.
    TooLarge,
    /// A replayed record that cannot follow the ones before it (a VLSN out of order): the
    /// flash holds something else, or was damaged.
    Damaged {
        /// The sector (its index in the ring).
        sector: usize,
        /// The record's offset in the sector.
        offset: u32,
    },
}

impl<E: core::fmt::Debug> core::fmt::Display for FlashLogError<E> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            FlashLogError::Flash(e) => write!(f, "flash driver error: {e:?}"),
            FlashLogError::Failed => f.write_str("flash log stopped by an earlier failure"),
            FlashLogError::Layout { what } => write!(f, "flash log layout: {what}"),
            FlashLogError::Full => f.write_str("flash log full: compact it"),
            FlashLogError::Ram(e) => write!(f, "flash log's RAM: {e:?}"),
            FlashLogError::TooLarge => f.write_str("record larger than a flash sector"),
            FlashLogError::Damaged { sector, offset } => {
                write!(f, "flash log damaged: sector {sector}, record at offset {offset}")
            }
        }
    }
}

/// A record's fixed fields.
#[derive(Debug, Clone, Copy)]
struct Record {
    kind: u8,
    entry_type: u8,
    len: u32,
    vlsn: u64,
    meta: EntryMeta,
}

impl Record {
    fn encode(&self) -> [u8; RECORD_HEADER] {
        let mut out = [ERASED; RECORD_HEADER];
        let head = [self.kind, self.entry_type, ERASED, ERASED];
        let parts: [&[u8]; 5] = [
            &head,
            &self.len.to_le_bytes(),
            &self.vlsn.to_le_bytes(),
            &self.meta.term.to_le_bytes(),
            &self.meta.dtvlsn.to_le_bytes(),
        ];
        let mut at = 0;
        for part in parts {
            let end = at + part.len();
            if let Some(dst) = out.get_mut(at..end) {
                dst.copy_from_slice(part);
            }
            at = end;
        }
        out
    }

    fn decode(bytes: &[u8; RECORD_HEADER]) -> Self {
        let [kind, entry_type, ..] = *bytes;
        let u32_at = |at: usize| bytes.get(at..).and_then(|b| b.first_chunk::<4>()).copied();
        let u64_at = |at: usize| bytes.get(at..).and_then(|b| b.first_chunk::<8>()).copied();
        let u64_at = |at| u64_at(at).map_or(0, u64::from_le_bytes);
        Record {
            kind,
            entry_type,
            len: u32_at(4).map_or(0, u32::from_le_bytes),
            vlsn: u64_at(8),
            meta: EntryMeta { term: u64_at(16), dtvlsn: u64_at(24) },
        }
    }

    /// Bytes the record takes in flash: fields, data and CRC, rounded up to `unit`.
    fn size(len: u32, unit: u32) -> Option<u32> {
        let total = len.checked_add((RECORD_HEADER + CRC_LEN) as u32)?;
        total.div_ceil(unit).checked_mul(unit)
    }
}

const FREE: Sector = Sector { seq: None, max_vlsn: 0, end: 0 };

impl<F: NorFlash, const E: usize, const B: usize, const S: usize> NorFlashLog<F, E, B, S> {
    /// A log in the `S` sectors of `sector_len` bytes from flash offset `base`, not yet
    /// read: [`open`](Self::open) it before use (until then it is empty and refuses every
    /// change). `const`, so it can be built in a `static`.
    pub const fn new(flash: F, base: u32, sector_len: u32) -> Self {
        NorFlashLog {
            flash,
            base,
            sector_len,
            unit: 1,
            ram: RamLog::new(),
            sectors: [FREE; S],
            head: None,
            next_seq: 1,
            failed: true,
        }
    }

    /// Checks the layout and replays the sectors: afterwards the log holds every change
    /// whose call returned before the last power loss (a fresh, erased flash is an empty
    /// log). `base` and `sector_len` must be multiples of the erase size, `S` at least 2,
    /// the sectors within the flash, and its read and write units must divide 64 bytes.
    pub fn open(&mut self) -> Result<(), FlashLogError<F::Error>> {
        // Until the replay succeeds, the log refuses changes (also on a second open).
        self.failed = true;
        self.check_layout()?;
        self.replay()?;
        self.failed = false;
        Ok(())
    }

    /// The flash driver back.
    pub fn into_inner(self) -> F {
        self.flash
    }

    /// The flash driver, for the parts of the flash outside the log's sectors.
    pub fn flash_mut(&mut self) -> &mut F {
        &mut self.flash
    }

    /// How many sectors are free for new records now.
    pub fn free_sectors(&self) -> usize {
        self.sectors.iter().filter(|s| s.seq.is_none()).count()
    }

    fn check_layout(&mut self) -> Result<(), FlashLogError<F::Error>> {
        let layout = |what| FlashLogError::Layout { what };
        let unit = unit_of::<F>().ok_or(layout("read or write unit does not divide 64 bytes"))?;
        let erase = u32::try_from(F::ERASE_SIZE).map_err(|_| layout("erase size over 4 GiB"))?;
        if erase == 0
            || !self.base.is_multiple_of(erase)
            || !self.sector_len.is_multiple_of(erase)
            || !self.sector_len.is_multiple_of(unit)
        {
            return Err(layout("base or sector length not a multiple of the erase size"));
        }
        if S < 2 {
            return Err(layout("fewer than two sectors"));
        }
        // The largest record the log itself writes is a compaction (its floor: 4 bytes).
        let compaction = Record::size(4, unit);
        let smallest = compaction.and_then(|r| r.checked_add(self.header_len(unit)));
        if smallest.is_none_or(|smallest| smallest > self.sector_len) {
            return Err(layout("sector smaller than a header and a compaction record"));
        }
        let all = u32::try_from(S).ok().and_then(|n| n.checked_mul(self.sector_len));
        let end = all.and_then(|all| self.base.checked_add(all));
        let end = end.and_then(|end| usize::try_from(end).ok());
        if end.is_none_or(|end| end > self.flash.capacity()) {
            return Err(layout("sectors extend past the end of the flash"));
        }
        self.unit = unit;
        Ok(())
    }

    fn header_len(&self, unit: u32) -> u32 {
        (SECTOR_HEADER as u32).div_ceil(unit).saturating_mul(unit)
    }

    fn sector_at(&self, sector: usize, offset: u32) -> Option<u32> {
        let index = u32::try_from(sector).ok()?;
        index.checked_mul(self.sector_len)?.checked_add(self.base)?.checked_add(offset)
    }

    fn offset_error(&self) -> FlashLogError<F::Error> {
        FlashLogError::Layout { what: "offset past 4 GiB" }
    }

    /// A sector's number, if its header is valid.
    fn read_header(&mut self, sector: usize) -> Result<Option<u32>, FlashLogError<F::Error>> {
        let at = self.sector_at(sector, 0).ok_or(self.offset_error())?;
        let mut header = [0u8; SECTOR_HEADER];
        read_at(&mut self.flash, self.unit, at, &mut header)?;
        let [m0, m1, m2, m3, s0, s1, s2, s3, c0, c1, c2, c3] = header;
        let crc = checksum::crc32c(header.get(..8).unwrap_or_default());
        let valid = u32::from_le_bytes([m0, m1, m2, m3]) == MAGIC
            && checksum::matches(crc, u32::from_le_bytes([c0, c1, c2, c3]));
        Ok(valid.then_some(u32::from_le_bytes([s0, s1, s2, s3])))
    }

    /// The record at `offset` in `sector` and the offset after it, if it is whole and valid.
    fn read_record(
        &mut self,
        sector: usize,
        offset: u32,
    ) -> Result<Option<(Record, u32)>, FlashLogError<F::Error>> {
        let at = self.sector_at(sector, offset).ok_or(self.offset_error())?;
        let mut fields = [0u8; RECORD_HEADER];
        if offset.saturating_add(RECORD_HEADER as u32) > self.sector_len {
            return Ok(None);
        }
        read_at(&mut self.flash, self.unit, at, &mut fields)?;
        let record = Record::decode(&fields);
        let size = Record::size(record.len, self.unit);
        let end = size.and_then(|size| offset.checked_add(size));
        let Some(end) = end.filter(|&end| end <= self.sector_len) else { return Ok(None) };
        if !matches!(record.kind, ENTRY | TRUNCATE | COMPACT) {
            return Ok(None);
        }
        let mut digest = checksum::digest();
        digest.update(&fields);
        let data_at = at.saturating_add(RECORD_HEADER as u32);
        let mut chunk = [0u8; STAGE];
        let mut done = 0u32;
        while done < record.len {
            let n = (record.len - done).min(STAGE as u32);
            let part = chunk.get_mut(..n as usize).unwrap_or_default();
            read_at(&mut self.flash, self.unit, data_at.saturating_add(done), part)?;
            digest.update(part);
            done = done.saturating_add(n);
        }
        let mut stored = [0u8; CRC_LEN];
        read_at(&mut self.flash, self.unit, data_at.saturating_add(record.len), &mut stored)?;
        let valid = checksum::matches(digest.finalize(), u32::from_le_bytes(stored));
        Ok(valid.then_some((record, end)))
    }

    /// The used sectors, oldest first (by number, then index). A selection rather than a
    /// sort: `S` is small, and core's sort costs kilobytes of firmware flash.
    fn in_order(&self) -> heapless::Vec<usize, S> {
        let mut order = heapless::Vec::new();
        let mut prev: Option<(u32, usize)> = None;
        loop {
            let used = self.sectors.iter().enumerate();
            let keys = used.filter_map(|(i, s)| Some((s.seq?, i)));
            let Some(next) = keys.filter(|&key| prev.is_none_or(|p| key > p)).min() else {
                break;
            };
            if order.push(next.1).is_err() {
                break;
            }
            prev = Some(next);
        }
        order
    }

    /// Rebuilds the RAM log from the sectors.
    fn replay(&mut self) -> Result<(), FlashLogError<F::Error>> {
        self.ram = RamLog::new();
        self.sectors = [FREE; S];
        self.head = None;
        self.next_seq = 1;
        let header_len = self.header_len(self.unit);
        for i in 0..S {
            if let Some(seq) = self.read_header(i)? {
                if let Some(sector) = self.sectors.get_mut(i) {
                    *sector = Sector { seq: Some(seq), max_vlsn: 0, end: header_len };
                }
                self.next_seq = self.next_seq.max(seq.saturating_add(1));
            }
        }
        // Pass 1: where each sector's valid records end, and the newest compaction.
        let mut newest: Option<(Record, u32)> = None;
        for i in self.in_order() {
            let mut offset = header_len;
            let seq = self.sectors.get(i).and_then(|s| s.seq).unwrap_or(0);
            while let Some((record, next)) = self.read_record(i, offset)? {
                let damaged = FlashLogError::Damaged { sector: i, offset };
                match (record.kind, record.len) {
                    // A floor above its own sector's number was never written by this log.
                    (COMPACT, 4) => match self.read_floor(i, offset)? {
                        floor if floor <= seq => newest = Some((record, floor)),
                        _ => return Err(damaged),
                    },
                    (ENTRY, _) | (TRUNCATE, 0) => {}
                    _ => return Err(damaged),
                }
                if let Some(sector) = self.sectors.get_mut(i) {
                    sector.end = next;
                }
                offset = next;
            }
        }
        // Sectors below the newest compaction's floor hold nothing live: free to reuse.
        if let Some((record, floor)) = newest {
            self.ram = RamLog::after(record.vlsn.saturating_sub(1), record.meta);
            for sector in self.sectors.iter_mut().filter(|s| s.seq.is_some_and(|q| q < floor)) {
                *sector = FREE;
            }
        }
        // Pass 2: every change in order, from the newest compaction on.
        let mut skipped = None;
        for i in self.in_order() {
            let mut offset = header_len;
            let end = self.sectors.get(i).map_or(0, |s| s.end);
            while offset < end {
                let Some((record, next)) = self.read_record(i, offset)? else { break };
                self.apply(i, offset, record, &mut skipped)?;
                offset = next;
            }
        }
        // A sector opened just before a power cut holds no record: reuse it.
        for sector in self.sectors.iter_mut().filter(|s| s.end <= header_len) {
            *sector = FREE;
        }
        // An entry that did not follow and no later truncation removed: one was lost.
        match skipped {
            Some((_, sector, offset)) => Err(FlashLogError::Damaged { sector, offset }),
            None => Ok(()),
        }
    }

    /// The floor a compaction record at `offset` in `sector` carries as its data.
    fn read_floor(&mut self, sector: usize, offset: u32) -> Result<u32, FlashLogError<F::Error>> {
        let at = self.sector_at(sector, offset).ok_or(self.offset_error())?;
        let mut floor = [0u8; 4];
        read_at(&mut self.flash, self.unit, at.saturating_add(RECORD_HEADER as u32), &mut floor)?;
        Ok(u32::from_le_bytes(floor))
    }

    /// Applies one replayed record to the RAM log.
    ///
    /// An entry past the next VLSN is skipped: it is one a later truncation removes, whose
    /// predecessors were in a sector reused since (all compacted or removed themselves).
    /// `skipped` keeps the lowest such entry until a truncation at or below it comes.
    fn apply(
        &mut self,
        sector: usize,
        offset: u32,
        r: Record,
        skipped: &mut Option<(u64, usize, u32)>,
    ) -> Result<(), FlashLogError<F::Error>> {
        let next = self.ram.last_vlsn().saturating_add(1);
        if let Some(s) = self.sectors.get_mut(sector).filter(|_| r.kind == ENTRY) {
            s.max_vlsn = s.max_vlsn.max(r.vlsn);
        }
        match r.kind {
            ENTRY if r.vlsn < self.ram.first_vlsn() => Ok(()),
            ENTRY if r.vlsn > next => {
                if skipped.is_none_or(|(lowest, _, _)| r.vlsn < lowest) {
                    *skipped = Some((r.vlsn, sector, offset));
                }
                Ok(())
            }
            ENTRY if r.vlsn < next => Err(FlashLogError::Damaged { sector, offset }),
            ENTRY => {
                let at = self.sector_at(sector, offset).ok_or(self.offset_error())?;
                let data_at = at.saturating_add(RECORD_HEADER as u32);
                let (flash, unit) = (&mut self.flash, self.unit);
                let len = r.len as usize;
                let appended = self.ram.append_with(r.vlsn, r.meta, r.entry_type, len, |buf| {
                    read_at(flash, unit, data_at, buf)
                });
                appended.map_err(FlashLogError::Ram)?
            }
            TRUNCATE => {
                if skipped.is_some_and(|(lowest, _, _)| r.vlsn <= lowest) {
                    *skipped = None;
                }
                self.forget_from(r.vlsn);
                // Below the compaction point it empties the log (`RamLog` stops at first).
                self.ram.truncate(r.vlsn).map_err(FlashLogError::Ram)
            }
            _ => {
                RamLog::compact(&mut self.ram, r.vlsn);
                Ok(())
            }
        }
    }
}

/// Reads `out.len()` bytes at flash offset `at` through reads aligned to `unit` (which
/// divides the staging buffer's 64 bytes).
fn read_at<F: NorFlash>(
    flash: &mut F,
    unit: u32,
    at: u32,
    out: &mut [u8],
) -> Result<(), FlashLogError<F::Error>> {
    let mut done = 0usize;
    while done < out.len() {
        let pos = u32::try_from(done).ok().and_then(|d| at.checked_add(d));
        let pos = pos.ok_or(FlashLogError::Layout { what: "offset past 4 GiB" })?;
        let skip = (pos % unit) as usize;
        let left = out.len().saturating_sub(done);
        let window = skip.saturating_add(left).min(STAGE);
        let window = window.div_ceil(unit as usize).saturating_mul(unit as usize);
        let mut stage = [ERASED; STAGE];
        let stage = stage.get_mut(..window).unwrap_or_default();
        flash.read(pos.saturating_sub(skip as u32), stage).map_err(FlashLogError::Flash)?;
        let got = stage.get(skip..).unwrap_or_default();
        let n = got.len().min(left).max(1);
        let dst = out.get_mut(done..done.saturating_add(n)).unwrap_or_default();
        dst.copy_from_slice(got.get(..dst.len()).unwrap_or_default());
        done = done.saturating_add(n);
    }
    Ok(())
}

/// Programs a record as whole write units: its bytes go through a 64-byte staging buffer,
/// the last unit padded with 0xFF, so no word is written twice.
struct Programmer<'f, F> {
    flash: &'f mut F,
    at: u32,
    unit: usize,
    stage: [u8; STAGE],
    filled: usize,
}

impl<F: NorFlash> Programmer<'_, F> {
    fn push(&mut self, mut bytes: &[u8]) -> Result<(), F::Error> {
        while !bytes.is_empty() {
            let room = self.stage.get_mut(self.filled..).unwrap_or_default();
            let n = room.len().min(bytes.len());
            let (now, later) = bytes.split_at(n);
            room.get_mut(..n).unwrap_or_default().copy_from_slice(now);
            self.filled = self.filled.saturating_add(n);
            bytes = later;
            if self.filled == STAGE {
                self.flush()?;
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), F::Error> {
        let len = self.filled.div_ceil(self.unit).saturating_mul(self.unit);
        if len == 0 {
            return Ok(());
        }
        if let Some(pad) = self.stage.get_mut(self.filled..len) {
            pad.fill(ERASED);
        }
        self.flash.write(self.at, self.stage.get(..len).unwrap_or_default())?;
        self.at = self.at.saturating_add(len as u32);
        self.filled = 0;
        Ok(())
    }
}

impl<F: NorFlash, const E: usize, const B: usize, const S: usize> NorFlashLog<F, E, B, S> {
    /// Programs `record` (with `data`) at the head, opening a sector when the head has no
    /// room (only a compaction may take the last free sector).
    fn write(&mut self, record: Record, data: &[u8]) -> Result<(), FlashLogError<F::Error>> {
        let at = self.room_for(record)?;
        self.program(at, record, data)
    }

    /// Where `record` goes: the head, or a sector opened for it. Only a compaction that
    /// frees the oldest sector may take the last free one, so one is always left for the
    /// compaction that makes room.
    fn room_for(&mut self, record: Record) -> Result<(usize, u32), FlashLogError<F::Error>> {
        if self.failed {
            return Err(FlashLogError::Failed);
        }
        let header_len = self.header_len(self.unit);
        let size = Record::size(record.len, self.unit).ok_or(FlashLogError::TooLarge)?;
        if size > self.sector_len.saturating_sub(header_len) {
            return Err(FlashLogError::TooLarge);
        }
        let sector_len = self.sector_len;
        let fits = move |&(_, offset): &(usize, u32)| offset.saturating_add(size) <= sector_len;
        if let Some(head) = self.head.filter(fits) {
            return Ok(head);
        }
        let first = self.ram.first_vlsn();
        if record.kind != COMPACT && self.free_sectors() < 2 && self.frees_oldest(first) {
            // The oldest sectors hold only compacted or removed entries: a compaction record
            // at the same point moves the floor past them.
            self.record_compaction(first)?;
            if let Some(head) = self.head.filter(fits) {
                return Ok(head);
            }
        }
        self.open_sector(record.kind == COMPACT && self.frees_oldest(record.vlsn))
    }

    /// Programs `record` at `(sector, offset)`, which `room_for` gave.
    fn program(
        &mut self,
        (sector, offset): (usize, u32),
        record: Record,
        data: &[u8],
    ) -> Result<(), FlashLogError<F::Error>> {
        let size = Record::size(record.len, self.unit).ok_or(FlashLogError::TooLarge)?;
        let at = self.sector_at(sector, offset).ok_or(self.offset_error())?;
        let fields = record.encode();
        let mut digest = checksum::digest();
        digest.update(&fields);
        digest.update(data);
        let crc = digest.finalize().to_le_bytes();
        let mut p = Programmer {
            flash: &mut self.flash,
            at,
            unit: self.unit as usize,
            stage: [ERASED; STAGE],
            filled: 0,
        };
        let programmed = p.push(&fields).and_then(|()| p.push(data)).and_then(|()| p.push(&crc));
        if let Err(e) = programmed.and_then(|()| p.flush()) {
            self.failed = true;
            return Err(FlashLogError::Flash(e));
        }
        let end = offset.saturating_add(size);
        self.head = Some((sector, end));
        if let Some(s) = self.sectors.get_mut(sector) {
            s.end = end;
            if record.kind == ENTRY {
                s.max_vlsn = s.max_vlsn.max(record.vlsn);
            }
        }
        Ok(())
    }

    /// Erases a free sector and writes its header; it becomes the head.
    fn open_sector(&mut self, last_allowed: bool) -> Result<(usize, u32), FlashLogError<F::Error>> {
        let free = self.free_sectors();
        if free == 0 || (free == 1 && !last_allowed) {
            return Err(FlashLogError::Full);
        }
        // The next free sector after the head (after a start, after the newest sector), so
        // wear goes round the ring however often the board restarts.
        let newest = self.head.map(|(i, _)| i).or_else(|| self.in_order().last().copied());
        let after = newest.map_or(0, |i| i.saturating_add(1));
        let sector = (0..S)
            .map(|k| after.saturating_add(k) % S)
            .find(|&i| self.sectors.get(i).is_some_and(|s| s.seq.is_none()))
            .ok_or(FlashLogError::Full)?;
        let seq = self.next_seq;
        let next_seq = seq.checked_add(1).ok_or(FlashLogError::Full)?;
        let from = self.sector_at(sector, 0).ok_or(self.offset_error())?;
        let to = from.checked_add(self.sector_len).ok_or(self.offset_error())?;
        let header = sector_header(seq);
        self.next_seq = next_seq;
        let mut p = Programmer {
            flash: &mut self.flash,
            at: from,
            unit: self.unit as usize,
            stage: [ERASED; STAGE],
            filled: 0,
        };
        let opened =
            p.flash.erase(from, to).and_then(|()| p.push(&header)).and_then(|()| p.flush());
        if let Err(e) = opened {
            self.failed = true;
            return Err(FlashLogError::Flash(e));
        }
        let header_len = self.header_len(self.unit);
        if let Some(s) = self.sectors.get_mut(sector) {
            *s = Sector { seq: Some(seq), max_vlsn: 0, end: header_len };
        }
        self.head = Some((sector, header_len));
        Ok((sector, header_len))
    }

    /// Whether a compaction to `vlsn` recorded in a new sector frees the oldest sector.
    fn frees_oldest(&self, vlsn: u64) -> bool {
        let oldest = self.in_order().first().copied();
        oldest.and_then(|i| self.sectors.get(i)).is_some_and(|s| s.max_vlsn < vlsn)
    }

    /// Entries at and after `vlsn` are gone from every sector (a sector whose entries are
    /// all gone or compacted can be reused).
    fn forget_from(&mut self, vlsn: u64) {
        for s in self.sectors.iter_mut().filter(|s| s.seq.is_some()) {
            s.max_vlsn = s.max_vlsn.min(vlsn.saturating_sub(1));
        }
    }

    /// Records a compaction to `vlsn` (at or above the first entry held) with its floor, the
    /// number of the oldest sector still in use, compacts the RAM log and frees the sectors
    /// below the floor: replay ignores them from then on, so they can be erased.
    fn record_compaction(&mut self, vlsn: u64) -> Result<(), FlashLogError<F::Error>> {
        let meta = self.ram.meta(vlsn.saturating_sub(1)).unwrap_or_default();
        let record = Record { kind: COMPACT, entry_type: 0, len: 4, vlsn, meta };
        let at = self.room_for(record)?;
        let floor = self.floor(vlsn, at.0);
        self.program(at, record, &floor.to_le_bytes())?;
        RamLog::compact(&mut self.ram, vlsn);
        for s in self.sectors.iter_mut().filter(|s| s.seq.is_some_and(|q| q < floor)) {
            *s = FREE;
        }
        Ok(())
    }

    /// The number of the oldest sector a compaction to `vlsn` recorded in `target` leaves in
    /// use: every older one holds only entries below `vlsn` or removed by a truncation.
    fn floor(&self, vlsn: u64, target: usize) -> u32 {
        let mut floor = self.sectors.get(target).and_then(|s| s.seq).unwrap_or(0);
        for i in self.in_order() {
            let Some(s) = self.sectors.get(i) else { break };
            if i == target || s.max_vlsn >= vlsn {
                floor = s.seq.unwrap_or(floor);
                break;
            }
        }
        floor
    }
}

impl<F: NorFlash, const E: usize, const B: usize, const S: usize> LogStore
    for NorFlashLog<F, E, B, S>
{
    type Error = FlashLogError<F::Error>;

    fn first_vlsn(&self) -> u64 {
        self.ram.first_vlsn()
    }

    fn last_vlsn(&self) -> u64 {
        self.ram.last_vlsn()
    }

    fn entry(&self, vlsn: u64) -> Option<Entry<'_>> {
        self.ram.entry(vlsn)
    }

    /// Programs the entry, then holds it in RAM: durable when this returns.
    fn append(
        &mut self,
        vlsn: u64,
        meta: EntryMeta,
        entry_type: u8,
        data: &[u8],
    ) -> Result<(), Self::Error> {
        if self.failed {
            return Err(FlashLogError::Failed);
        }
        let len = u32::try_from(data.len()).map_err(|_| FlashLogError::TooLarge)?;
        // RAM first, so a refusal there changes nothing; undone if the flash refuses.
        self.ram.append(vlsn, meta, entry_type, data).map_err(FlashLogError::Ram)?;
        let record = Record { kind: ENTRY, entry_type, len, vlsn, meta };
        if let Err(e) = self.write(record, data) {
            let _ = self.ram.truncate(vlsn);
            return Err(e);
        }
        Ok(())
    }

    fn truncate(&mut self, vlsn: u64) -> Result<(), Self::Error> {
        if vlsn > self.ram.last_vlsn() {
            return Ok(());
        }
        let record =
            Record { kind: TRUNCATE, entry_type: 0, len: 0, vlsn, meta: EntryMeta::default() };
        self.write(record, &[])?;
        self.forget_from(vlsn);
        self.ram.truncate(vlsn).map_err(FlashLogError::Ram)
    }

    /// Nothing to do: every change is programmed before its call returns.
    fn sync(&mut self) -> Result<(), Self::Error> {
        if self.failed {
            return Err(FlashLogError::Failed);
        }
        Ok(())
    }

    /// Records the compaction point and the oldest sector still in use, then frees the
    /// sectors below it.
    fn compact(&mut self, vlsn: u64) -> Result<(), Self::Error> {
        let vlsn = vlsn.min(self.ram.last_vlsn().saturating_add(1));
        if vlsn <= self.ram.first_vlsn() {
            return Ok(());
        }
        self.record_compaction(vlsn)
    }

    fn compacted_meta(&self) -> EntryMeta {
        self.ram.compacted_meta()
    }
}

/// A sector's header: magic, number, and the CRC-32C of both.
fn sector_header(seq: u32) -> [u8; SECTOR_HEADER] {
    let [m0, m1, m2, m3] = MAGIC.to_le_bytes();
    let [s0, s1, s2, s3] = seq.to_le_bytes();
    let [c0, c1, c2, c3] = checksum::crc32c(&[m0, m1, m2, m3, s0, s1, s2, s3]).to_le_bytes();
    [m0, m1, m2, m3, s0, s1, s2, s3, c0, c1, c2, c3]
}
