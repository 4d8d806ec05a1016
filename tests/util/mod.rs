//! Helpers for tests that also run without the `alloc` feature. Each test binary uses some.
#![allow(dead_code)]

/// Parses hex with optional whitespace, as the vectors in wire-facts.md are written.
pub fn hex(s: &str) -> Vec<u8> {
    let compact: String = s.split_whitespace().collect();
    (0..compact.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&compact[i..i + 2], 16).unwrap())
        .collect()
}

/// A stable store whose election record says `term` and `vote` (a node id).
pub fn store_with(term: u64, vote: Option<u32>) -> harp::storage::RamStore {
    use harp::storage::{ElectionRecord, RamStore, StableStore, MAX_RECORD};
    let mut store = RamStore::new();
    let mut buf = [0u8; MAX_RECORD];
    let len = ElectionRecord { term, vote, ..Default::default() }.encode(&mut buf).unwrap();
    store.write(&buf[..len]).unwrap();
    store
}
