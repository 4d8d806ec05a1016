//! The small deterministic PRNG the core draws randomised timeouts from.
//!
//! The core has no OS randomness: the caller seeds it (from a hardware RNG on a board, from
//! the OS on a host, from the seed of a simulation run). SplitMix64 is 64 bits of state and a
//! handful of instructions, which is all a timeout jitter needs; it is not cryptographic.

/// SplitMix64 (Steele, Lea, Flood 2014): a 64-bit state, full period, good equidistribution.
///
/// ```
/// let mut a = harp::rng::SplitMix64::new(7);
/// let mut b = harp::rng::SplitMix64::new(7);
/// assert_eq!(a.next_u64(), b.next_u64());
/// assert!(a.below(10) < 10);
/// ```
#[derive(Debug, Clone)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator whose whole output is a function of `seed`.
    pub const fn new(seed: u64) -> Self {
        SplitMix64 { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A value in `0..bound` (0 when `bound` is 0), by Lemire's multiply-shift.
    pub fn below(&mut self, bound: u64) -> u64 {
        let wide = u128::from(self.next_u64()) * u128::from(bound);
        u64::try_from(wide >> 64).unwrap_or(0)
    }

    /// True with probability `per_million / 1_000_000`.
    pub fn chance(&mut self, per_million: u32) -> bool {
        self.below(1_000_000) < u64::from(per_million)
    }
}
