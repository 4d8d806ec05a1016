//! CRC-32C (Castagnoli, the iSCSI polynomial) for frames and persisted records.
//!
//! The lookup-table size is the user's trade between flash and speed, chosen by cargo
//! feature so that only one table is linked:
//!
//! | feature | table | flash for the table | speed |
//! |---|---|---|---|
//! | `crc-no-table` | none (bitwise) | 0 B | slowest |
//! | *(neither)* | 256 entries | 1 KiB | middle |
//! | `crc-slice16` | 16 × 256 entries | 16 KiB | fastest table |
//! | `crc-hw` | the CPU's CRC-32C instruction (SSE 4.2, ARMv8 CRC), detected at run time, slice-by-8 fallback | – | fastest by far; needs `std` (hosted builds use it) |
//!
//! `crc-hw` goes through the `crc32c` crate (the instructions need `unsafe`, which this
//! crate forbids itself) and wins over the table features; if both table features are on,
//! `crc-slice16` wins over `crc-no-table`. The other two variants stay reachable as
//! [`NO_TABLE`], [`TABLE_256`] and [`SLICE_16`] (a `const` costs no flash unless used), which
//! is how the benchmarks compare them in one run.
//!
//! ```
//! // The CRC-32C check value of the catalogue.
//! assert_eq!(harp::checksum::crc32c(b"123456789"), 0xE306_9283);
//! ```

use crc::{Crc, NoTable, Table, CRC_32_ISCSI};

/// The table implementation selected by the crate features.
#[cfg(feature = "crc-slice16")]
pub type Implementation = Table<16>;
/// The table implementation selected by the crate features.
#[cfg(all(feature = "crc-no-table", not(feature = "crc-slice16")))]
pub type Implementation = NoTable;
/// The table implementation selected by the crate features.
#[cfg(not(any(feature = "crc-no-table", feature = "crc-slice16")))]
pub type Implementation = Table<1>;

/// The CRC-32C engine every harp checksum goes through.
pub static CRC32C: Crc<u32, Implementation> = Crc::<u32, Implementation>::new(&CRC_32_ISCSI);

/// CRC-32C without a table (smallest flash).
pub const NO_TABLE: Crc<u32, NoTable> = Crc::<u32, NoTable>::new(&CRC_32_ISCSI);
/// CRC-32C with a 256-entry table.
pub const TABLE_256: Crc<u32, Table<1>> = Crc::<u32, Table<1>>::new(&CRC_32_ISCSI);
/// CRC-32C with slice-by-16 tables.
pub const SLICE_16: Crc<u32, Table<16>> = Crc::<u32, Table<16>>::new(&CRC_32_ISCSI);

/// An incremental CRC-32C computation ([`digest`] starts one).
#[derive(Clone)]
pub struct Digest(DigestState);

#[cfg(not(feature = "crc-hw"))]
type DigestState = crc::Digest<'static, u32, Implementation>;
/// With `crc-hw`: the CRC of the bytes so far.
#[cfg(feature = "crc-hw")]
type DigestState = u32;

impl Digest {
    /// Adds `bytes`.
    #[inline]
    pub fn update(&mut self, bytes: &[u8]) {
        #[cfg(feature = "crc-hw")]
        {
            self.0 = crc32c::crc32c_append(self.0, bytes);
        }
        #[cfg(not(feature = "crc-hw"))]
        self.0.update(bytes);
    }

    /// The CRC-32C of every byte added.
    #[inline]
    pub fn finalize(self) -> u32 {
        #[cfg(feature = "crc-hw")]
        return self.0;
        #[cfg(not(feature = "crc-hw"))]
        self.0.finalize()
    }
}

/// The CRC-32C of `bytes`.
#[inline]
pub fn crc32c(bytes: &[u8]) -> u32 {
    #[cfg(feature = "crc-hw")]
    return crc32c::crc32c(bytes);
    #[cfg(not(feature = "crc-hw"))]
    CRC32C.checksum(bytes)
}

/// Starts an incremental CRC-32C.
pub fn digest() -> Digest {
    #[cfg(feature = "crc-hw")]
    return Digest(0);
    #[cfg(not(feature = "crc-hw"))]
    Digest(CRC32C.digest())
}

/// Whether a computed checksum matches the stored one.
///
/// Under `cfg(fuzzing)` every checksum matches, so a fuzzer reaches the decoders behind it.
pub fn matches(computed: u32, stored: u32) -> bool {
    cfg!(fuzzing) || computed == stored
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_tables_agree_on_the_check_value() {
        for crc in [NO_TABLE.checksum(b"123456789"), TABLE_256.checksum(b"123456789")] {
            assert_eq!(crc, 0xE306_9283);
        }
        assert_eq!(SLICE_16.checksum(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
    }

    #[test]
    fn incremental_equals_one_shot() {
        let mut d = digest();
        d.update(b"1234");
        d.update(b"56789");
        assert_eq!(d.finalize(), 0xE306_9283);
    }
}
