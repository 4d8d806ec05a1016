//! CRC-32C (Castagnoli, the iSCSI polynomial) for frames and persisted records.
//!
//! The lookup-table size is the user's trade between flash and speed, chosen by cargo
//! feature so that only one table is linked:
//!
//! | feature | table | flash for the table | speed |
//! |---|---|---|---|
//! | `crc-no-table` | none (bitwise) | 0 B | slowest |
//! | *(neither)* | 256 entries | 1 KiB | middle |
//! | `crc-slice16` | 16 × 256 entries | 16 KiB | fastest (hosted builds use it) |
//!
//! If both features are on, `crc-slice16` wins. The other two variants stay reachable as
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

/// An incremental CRC-32C computation.
pub type Digest = crc::Digest<'static, u32, Implementation>;

/// The CRC-32C of `bytes`.
pub fn crc32c(bytes: &[u8]) -> u32 {
    CRC32C.checksum(bytes)
}

/// Starts an incremental CRC-32C.
pub fn digest() -> Digest {
    CRC32C.digest()
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
