//! Helpers for tests that also run without the `alloc` feature.

/// Parses hex with optional whitespace, as the vectors in wire-facts.md are written.
pub fn hex(s: &str) -> Vec<u8> {
    let compact: String = s.split_whitespace().collect();
    (0..compact.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&compact[i..i + 2], 16).unwrap())
        .collect()
}
