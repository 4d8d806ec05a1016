//! Saturating `u64` arithmetic on times (milliseconds) and VLSNs.
//!
//! The node and the election add and subtract `u64`s at ~40 places (deadlines, the next
//! VLSN, gaps between positions). On a 32-bit core one saturating `u64` operation is ~10
//! instructions, so inlining it everywhere cost ~0.5 KiB of flash; on those targets these
//! are calls. On 64-bit targets they are ordinary inlined `saturating_*` calls.

/// `plus`/`minus`: `saturating_add`/`saturating_sub` on `u64`, out of line on 32-bit targets.
pub(crate) trait SaturatingU64 {
    /// `self + n`, saturating at `u64::MAX`.
    fn plus(self, n: u64) -> u64;
    /// `self - n`, saturating at 0.
    fn minus(self, n: u64) -> u64;
}

impl SaturatingU64 for u64 {
    #[cfg_attr(target_pointer_width = "32", inline(never))]
    #[cfg_attr(not(target_pointer_width = "32"), inline)]
    fn plus(self, n: u64) -> u64 {
        self.saturating_add(n)
    }

    #[cfg_attr(target_pointer_width = "32", inline(never))]
    #[cfg_attr(not(target_pointer_width = "32"), inline)]
    fn minus(self, n: u64) -> u64 {
        self.saturating_sub(n)
    }
}

/// One more on a statistics counter, saturating at `u32::MAX` (out of line on 32-bit
/// targets: the node counts at ~50 places).
#[cfg_attr(target_pointer_width = "32", inline(never))]
#[cfg_attr(not(target_pointer_width = "32"), inline)]
pub(crate) fn count(counter: &mut u32) {
    *counter = counter.saturating_add(1);
}

#[cfg(test)]
mod tests {
    use super::{count, SaturatingU64};

    #[test]
    fn saturates_at_both_ends() {
        assert_eq!(5u64.plus(7), 12);
        assert_eq!((u64::MAX - 1).plus(5), u64::MAX);
        assert_eq!(7u64.minus(5), 2);
        assert_eq!(5u64.minus(7), 0);
        let mut counter = u32::MAX - 1;
        count(&mut counter);
        count(&mut counter);
        assert_eq!(counter, u32::MAX);
    }
}
