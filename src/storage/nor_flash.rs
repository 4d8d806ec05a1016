//! A [`StableStore`] on NOR flash: two erase sectors used in turn, one record per slot.
//!
//! ```text
//! sector 0: | slot 0 | slot 1 | ... | slot k-1 |      k = sector_len / slot_len
//! sector 1: | slot 0 | slot 1 | ... | slot k-1 |
//! slot:     seq u32 LE | len u8 | record (48 B, 0xFF after len) | crc32c u32 LE | 0xFF pad
//! ```
//!
//! Every write programs one fresh slot with a sequence number one higher than any before it;
//! [`read`](StableStore::read) returns the valid slot with the highest number. A write never
//! touches the slot holding the newest record, so a power cut mid-write leaves that record
//! readable (the torn slot fails its CRC-32C and is skipped). Only the sector *not* holding
//! the newest record is ever erased: the first write after start erases it and writes there
//! (so a slot a cut may have half-programmed in an earlier power cycle is never programmed
//! again), and later writes fill its slots in order, switching sectors when it is full. A
//! slot is 57 bytes rounded up to the flash's write unit (60 for 4-byte words), so a 4 KiB
//! sector holds 64 to 71: one erase per that many writes, plus one per start that writes.
//!
//! Reading never mistakes damage for a fresh node: flash holding something other than
//! erased slots and valid records, with no valid record at all, is
//! [`FlashStoreError::Corrupt`], never `None`. The one exception is what a power cut during
//! the very first writes leaves: nothing but a torn slot 0 (the node had not voted, since
//! its write never returned).

use embedded_storage::nor_flash::NorFlash;

use super::{StableStore, MAX_RECORD};
use crate::checksum;

/// Bytes of a slot's fields: sequence number, length, record, CRC-32C.
const SLOT_FIELDS: usize = 4 + 1 + MAX_RECORD + 4;
/// Where the CRC-32C (of the bytes before it) sits in a slot.
const CRC_AT: usize = SLOT_FIELDS - 4;
/// The largest slot: its 57 bytes of fields rounded up to the flash's read and write units, which
/// must therefore divide 64 (true of NOR flash controllers with units of 1 to 64 bytes).
pub const MAX_SLOT: usize = 64;
/// What erased NOR flash reads as.
pub(crate) const ERASED: u8 = 0xFF;

/// A [`StableStore`] in two erase sectors of a [`NorFlash`] (any `embedded-storage` flash
/// driver: embassy's, the STM32, nRF and RP HALs', an external SPI NOR chip's).
///
/// ```
/// use harp::storage::{NorFlashStore, StableStore, MAX_RECORD};
/// # use harp::embedded_storage::nor_flash::{ErrorType, NorFlash, NorFlashErrorKind, ReadNorFlash};
/// # struct Flash([u8; 8192]);
/// # impl ErrorType for Flash { type Error = NorFlashErrorKind; }
/// # impl ReadNorFlash for Flash {
/// #     const READ_SIZE: usize = 1;
/// #     fn read(&mut self, at: u32, out: &mut [u8]) -> Result<(), Self::Error> {
/// #         let at = at as usize;
/// #         out.copy_from_slice(&self.0[at..at + out.len()]);
/// #         Ok(())
/// #     }
/// #     fn capacity(&self) -> usize { self.0.len() }
/// # }
/// # impl NorFlash for Flash {
/// #     const WRITE_SIZE: usize = 4;
/// #     const ERASE_SIZE: usize = 4096;
/// #     fn erase(&mut self, from: u32, to: u32) -> Result<(), Self::Error> {
/// #         self.0[from as usize..to as usize].fill(0xFF);
/// #         Ok(())
/// #     }
/// #     fn write(&mut self, at: u32, bytes: &[u8]) -> Result<(), Self::Error> {
/// #         let at = at as usize;
/// #         self.0[at..at + bytes.len()].copy_from_slice(bytes);
/// #         Ok(())
/// #     }
/// # }
/// // Two 4 KiB sectors from offset 0 of a freshly erased flash.
/// let mut store = NorFlashStore::new(Flash([0xFF; 8192]), 0, 4096)?;
/// let mut buf = [0u8; MAX_RECORD];
/// assert_eq!(store.read(&mut buf)?, None); // a fresh node
/// store.write(b"term 7, voted for 2")?;
///
/// // After a restart: a new store over the same flash finds the record.
/// let mut store = NorFlashStore::new(store.into_inner(), 0, 4096)?;
/// let len = store.read(&mut buf)?.unwrap();
/// assert_eq!(&buf[..len], b"term 7, voted for 2");
/// # Ok::<(), harp::storage::FlashStoreError<NorFlashErrorKind>>(())
/// ```
#[derive(Debug)]
pub struct NorFlashStore<F> {
    flash: F,
    /// Flash offset of sector 0; sector 1 follows it.
    base: u32,
    sector_len: u32,
    /// Bytes per slot: `SLOT_FIELDS` rounded up to the flash's read and write units.
    slot_len: u32,
    slots: u32,
    /// What the first scan learned and writes since keep current; `None` until then.
    state: Option<Known>,
}

/// What the store knows of the flash once it has scanned it.
#[derive(Debug, Clone, Copy)]
struct Known {
    /// The sequence number the next write takes (every attempt takes one, so no two slots
    /// ever share a number, even when a failed write did land); `None` once used up.
    next_seq: Option<u32>,
    /// The sector holding the newest valid record; the other one is the one to erase.
    newest_sector: Option<u32>,
    /// The slot the next write programs, in a sector erased since start; `None`: the next
    /// write erases the other sector first.
    cursor: Option<(u32, u32)>,
}

/// Why a [`NorFlashStore`] cannot be used or did not complete an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum FlashStoreError<E> {
    /// The flash driver failed (a write or erase that fails may have changed the slot or
    /// sector; the store moves on to another and never returns a half-written record).
    Flash(E),
    /// The layout does not fit this flash; `what` says which rule it breaks.
    Layout {
        /// The broken rule.
        what: &'static str,
    },
    /// The sectors hold neither erased slots nor valid records, so the flash has been
    /// damaged or used by something else. A node must not start as if it had never voted:
    /// [`NorFlashStore::format`] erases the sectors, if the operator knows this node never
    /// voted (or rejoins it as a new member).
    Corrupt {
        /// The sector (0 or 1) of the first damaged slot.
        sector: u32,
        /// Its slot within the sector.
        slot: u32,
    },
    /// A record longer than [`MAX_RECORD`] bytes.
    TooLarge {
        /// Its length.
        len: usize,
    },
    /// Sequence numbers are used up (after 2^32 writes, far beyond any flash's endurance).
    Exhausted,
}

impl<E: core::fmt::Debug> core::fmt::Display for FlashStoreError<E> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            FlashStoreError::Flash(e) => write!(f, "flash driver error: {e:?}"),
            FlashStoreError::Layout { what } => write!(f, "flash store layout: {what}"),
            FlashStoreError::Corrupt { sector, slot } => write!(
                f,
                "flash store damaged at sector {sector}, slot {slot}, and no valid record found"
            ),
            FlashStoreError::TooLarge { len } => {
                write!(f, "record of {len} bytes is longer than {MAX_RECORD}")
            }
            FlashStoreError::Exhausted => f.write_str("flash store sequence numbers used up"),
        }
    }
}

/// What one slot holds.
enum Slot {
    Erased,
    Valid { seq: u32 },
    Damaged,
}

/// The result of reading every slot.
struct Scan {
    /// The newest valid record: its sequence number, sector and slot bytes.
    newest: Option<(u32, u32, [u8; MAX_SLOT])>,
    /// The first damaged slot (sector, slot).
    damaged: Option<(u32, u32)>,
    /// Whether any damaged slot is not a slot 0.
    damaged_past_first_slot: bool,
}

impl<F: NorFlash> NorFlashStore<F> {
    /// A store in the two sectors of `sector_len` bytes at flash offset `base` and
    /// `base + sector_len`. `base` and `sector_len` must be multiples of the flash's erase
    /// size, the two sectors must lie within the flash, and its read and write units must
    /// divide 64 ([`MAX_SLOT`]). Nothing is read or written yet.
    pub fn new(flash: F, base: u32, sector_len: u32) -> Result<Self, FlashStoreError<F::Error>> {
        let layout = |what| FlashStoreError::Layout { what };
        let unit = lcm(F::READ_SIZE, F::WRITE_SIZE).ok_or(layout("read or write unit is 0"))?;
        if !MAX_SLOT.is_multiple_of(unit) {
            return Err(layout("read or write unit does not divide 64 bytes"));
        }
        let erase = u32::try_from(F::ERASE_SIZE).map_err(|_| layout("erase size over 4 GiB"))?;
        if erase == 0 || !base.is_multiple_of(erase) || !sector_len.is_multiple_of(erase) {
            return Err(layout("base or sector length not a multiple of the erase size"));
        }
        let slot_len = SLOT_FIELDS.div_ceil(unit).saturating_mul(unit);
        // Both below 64 (checked above), so they fit.
        let (slot_len, unit) = (slot_len as u32, unit as u32);
        if !base.is_multiple_of(unit) || !sector_len.is_multiple_of(unit) {
            return Err(layout("base or sector length not a multiple of the read/write unit"));
        }
        let slots = sector_len / slot_len;
        if slots == 0 {
            return Err(layout("sector smaller than one slot"));
        }
        let end = sector_len.checked_mul(2).and_then(|both| base.checked_add(both));
        let end = end.and_then(|end| usize::try_from(end).ok());
        if end.is_none_or(|end| end > flash.capacity()) {
            return Err(layout("sectors extend past the end of the flash"));
        }
        Ok(NorFlashStore { flash, base, sector_len, slot_len, slots, state: None })
    }

    /// The flash driver back (after a simulated restart, or to use it for something else).
    pub fn into_inner(self) -> F {
        self.flash
    }

    /// The flash driver, for the parts of the flash outside the store's two sectors (writing
    /// inside them breaks the store's invariants).
    pub fn flash_mut(&mut self) -> &mut F {
        &mut self.flash
    }

    /// How many writes fill one sector (one erase per this many writes).
    pub fn slots_per_sector(&self) -> u32 {
        self.slots
    }

    /// Erases both sectors: the store then reads as a fresh node's. For provisioning, or
    /// for recovering from [`FlashStoreError::Corrupt`] when the node is known never to have
    /// voted (otherwise it must rejoin as a new member).
    pub fn format(&mut self) -> Result<(), FlashStoreError<F::Error>> {
        self.state = None;
        self.erase(0)?;
        self.erase(1)?;
        // Both sectors are erased: the first write needs no erase of its own.
        self.state = Some(Known { next_seq: Some(1), newest_sector: None, cursor: Some((0, 0)) });
        Ok(())
    }

    /// What the store knows of the flash, scanning it the first time.
    fn known(&mut self) -> Result<Known, FlashStoreError<F::Error>> {
        if let Some(known) = self.state {
            return Ok(known);
        }
        let scan = self.scan()?;
        Ok(self.learn(&scan))
    }

    /// Takes what a scan found as what the store knows (the first time it scans).
    fn learn(&mut self, scan: &Scan) -> Known {
        if let Some(known) = self.state {
            return known;
        }
        let (next_seq, newest_sector) = match scan.newest {
            Some((seq, sector, _)) => (seq.checked_add(1), Some(sector)),
            None => (Some(1), None),
        };
        let known = Known { next_seq, newest_sector, cursor: None };
        self.state = Some(known);
        known
    }

    /// Reads every slot of both sectors.
    fn scan(&mut self) -> Result<Scan, FlashStoreError<F::Error>> {
        let mut scan = Scan { newest: None, damaged: None, damaged_past_first_slot: false };
        let mut bytes = [ERASED; MAX_SLOT];
        for sector in 0..2 {
            for slot in 0..self.slots {
                match self.read_slot(sector, slot, &mut bytes)? {
                    Slot::Erased => {}
                    Slot::Valid { seq } => {
                        if scan.newest.is_none_or(|(newest, _, _)| seq > newest) {
                            scan.newest = Some((seq, sector, bytes));
                        }
                    }
                    Slot::Damaged => {
                        scan.damaged.get_or_insert((sector, slot));
                        scan.damaged_past_first_slot |= slot > 0;
                    }
                }
            }
        }
        if let (None, Some((sector, slot))) = (&scan.newest, scan.damaged) {
            // Only the first writes' power cuts leave damage and no record: a torn slot 0.
            if scan.damaged_past_first_slot {
                return Err(FlashStoreError::Corrupt { sector, slot });
            }
        }
        Ok(scan)
    }

    /// Reads one slot into `bytes` and says what it holds.
    fn read_slot(
        &mut self,
        sector: u32,
        slot: u32,
        bytes: &mut [u8; MAX_SLOT],
    ) -> Result<Slot, FlashStoreError<F::Error>> {
        let at = self.slot_offset(sector, slot)?;
        let len = self.slot_len as usize;
        let used =
            bytes.get_mut(..len).ok_or(FlashStoreError::Layout { what: "slot over 64 B" })?;
        self.flash.read(at, used).map_err(FlashStoreError::Flash)?;
        if used.iter().all(|&b| b == ERASED) {
            return Ok(Slot::Erased);
        }
        Ok(match check_slot(bytes) {
            Some(seq) => Slot::Valid { seq },
            None => Slot::Damaged,
        })
    }

    fn slot_offset(&self, sector: u32, slot: u32) -> Result<u32, FlashStoreError<F::Error>> {
        let in_sector = slot.checked_mul(self.slot_len);
        let sector_at = sector.checked_mul(self.sector_len).and_then(|s| s.checked_add(self.base));
        in_sector
            .zip(sector_at)
            .and_then(|(a, b)| a.checked_add(b))
            .ok_or(FlashStoreError::Layout { what: "slot offset past 4 GiB" })
    }

    fn erase(&mut self, sector: u32) -> Result<(), FlashStoreError<F::Error>> {
        let from = self.slot_offset(sector, 0)?;
        let to = from
            .checked_add(self.sector_len)
            .ok_or(FlashStoreError::Layout { what: "sector end past 4 GiB" })?;
        self.flash.erase(from, to).map_err(FlashStoreError::Flash)
    }
}

/// A slot's sequence number if its CRC-32C and length check out.
fn check_slot(bytes: &[u8; MAX_SLOT]) -> Option<u32> {
    let (fields, rest) = bytes.split_at_checked(CRC_AT)?;
    let stored = u32::from_le_bytes(*rest.first_chunk::<4>()?);
    if !checksum::matches(checksum::crc32c(fields), stored) {
        return None;
    }
    let (seq, len) = fields.split_first_chunk::<4>()?;
    (usize::from(*len.first()?) <= MAX_RECORD).then_some(u32::from_le_bytes(*seq))
}

/// A slot holding `record` under sequence number `seq`.
fn fill_slot(seq: u32, record: &[u8]) -> Option<[u8; MAX_SLOT]> {
    let mut bytes = [ERASED; MAX_SLOT];
    let (fields, crc) = bytes.split_at_mut_checked(CRC_AT)?;
    let (head, body) = fields.split_at_mut_checked(5)?;
    let (seq_bytes, len) = head.split_first_chunk_mut::<4>()?;
    *seq_bytes = seq.to_le_bytes();
    *len.first_mut()? = u8::try_from(record.len()).ok()?;
    body.get_mut(..record.len())?.copy_from_slice(record);
    let sum = checksum::crc32c(fields).to_le_bytes();
    crc.first_chunk_mut::<4>()?.copy_from_slice(&sum);
    Some(bytes)
}

/// The unit every read and write of `F` is aligned to: the least common multiple of its read
/// and write units, if that divides 64 (the staging buffers' size).
pub(crate) fn unit_of<F: NorFlash>() -> Option<u32> {
    let unit = lcm(F::READ_SIZE, F::WRITE_SIZE)?;
    MAX_SLOT.is_multiple_of(unit).then_some(unit as u32)
}

/// The least common multiple of two unit sizes; `None` if either is 0.
fn lcm(a: usize, b: usize) -> Option<usize> {
    if a == 0 || b == 0 {
        return None;
    }
    let (mut x, mut y) = (a, b);
    while y != 0 {
        (x, y) = (y, x % y);
    }
    (a / x).checked_mul(b)
}

impl<F: NorFlash> StableStore for NorFlashStore<F> {
    type Error = FlashStoreError<F::Error>;

    /// Scans both sectors and copies the newest valid record into `buf`.
    fn read(&mut self, buf: &mut [u8; MAX_RECORD]) -> Result<Option<usize>, Self::Error> {
        let scan = self.scan()?;
        self.learn(&scan);
        let Some((_, _, bytes)) = scan.newest else {
            return Ok(None);
        };
        let len = bytes.get(4).map_or(0, |&l| usize::from(l));
        let record = bytes.get(5..).and_then(|b| b.get(..len));
        let out = buf.get_mut(..len);
        match (record, out) {
            (Some(record), Some(out)) => out.copy_from_slice(record),
            _ => return Err(FlashStoreError::TooLarge { len }),
        }
        Ok(Some(len))
    }

    /// Programs the next slot (erasing the other sector first when the current one is full
    /// or this is the first write since start).
    fn write(&mut self, record: &[u8]) -> Result<(), Self::Error> {
        let too_large = FlashStoreError::TooLarge { len: record.len() };
        if record.len() > MAX_RECORD {
            return Err(too_large);
        }
        let mut known = self.known()?;
        let seq = known.next_seq.ok_or(FlashStoreError::Exhausted)?;
        known.next_seq = seq.checked_add(1);
        let (sector, slot) = match known.cursor {
            Some(cursor) => cursor,
            None => {
                let other = match known.newest_sector {
                    Some(0) => 1,
                    _ => 0,
                };
                // The sequence number is spent even if the erase fails (it is never reused).
                self.state = Some(known);
                self.erase(other)?;
                (other, 0)
            }
        };
        // The slot is spent whatever the write does: a failed write may have programmed it.
        let next = slot.checked_add(1).filter(|&next| next < self.slots);
        known.cursor = next.map(|next| (sector, next));
        self.state = Some(known);
        let bytes = fill_slot(seq, record).ok_or(too_large)?;
        let at = self.slot_offset(sector, slot)?;
        let used = bytes.get(..self.slot_len as usize).unwrap_or_default();
        self.flash.write(at, used).map_err(FlashStoreError::Flash)?;
        known.newest_sector = Some(sector);
        self.state = Some(known);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_filled_slot_checks_out_and_any_flipped_bit_does_not() {
        let bytes = fill_slot(7, b"record").unwrap();
        assert_eq!(check_slot(&bytes), Some(7));
        for byte in 0..SLOT_FIELDS {
            for bit in 0..8 {
                let mut flipped = bytes;
                flipped[byte] ^= 1 << bit;
                assert_eq!(check_slot(&flipped), None, "byte {byte} bit {bit}");
            }
        }
    }

    #[test]
    fn a_length_past_the_record_field_is_not_a_record() {
        let mut bytes = fill_slot(1, b"").unwrap();
        bytes[4] = MAX_RECORD as u8 + 1;
        let sum = checksum::crc32c(&bytes[..CRC_AT]).to_le_bytes();
        bytes[CRC_AT..SLOT_FIELDS].copy_from_slice(&sum);
        assert_eq!(check_slot(&bytes), None);
    }

    #[test]
    fn lcm_of_units() {
        assert_eq!(lcm(1, 4), Some(4));
        assert_eq!(lcm(4, 8), Some(8));
        assert_eq!(lcm(6, 4), Some(12));
        assert_eq!(lcm(0, 4), None);
    }
}
