//! Shared pieces of the footprint images: an input the optimiser cannot see through, and a
//! five-member group. Each binary in `src/bin/` links one slice of harp; `scripts/footprint`
//! measures them with `llvm-size` against `baseline` (the runtime and vector table alone).
#![no_std]

use core::hint::black_box;
use harp::membership::{Member, Membership};
use harp::NodeType;

/// Bytes the optimiser must treat as unknown (they stand for what a UART delivers).
static INPUT: [u8; 64] = [0; 64];

/// The input, hidden from constant folding.
pub fn input() -> &'static [u8] {
    black_box(&INPUT[..])
}

/// A number hidden from constant folding (a clock, a length, a VLSN).
pub fn unknown(x: u64) -> u64 {
    black_box(x)
}

/// Keeps `x` alive as if it were sent somewhere.
pub fn consume<T>(x: T) {
    black_box(x);
}

/// A group of five electable members.
pub fn five_members() -> Membership<5> {
    let mut group = Membership::new();
    let names = ["n1", "n2", "n3", "n4", "n5"];
    for (id, name) in (1u32..).zip(names) {
        if let Ok(member) = Member::new(name, NodeType::Electable, 1, id) {
            let _ = group.add(member);
        }
    }
    group
}
