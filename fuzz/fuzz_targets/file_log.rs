//! A hosted node's log directory as a crash, a failing disk or an operator's mistake can
//! leave it: segment files of records (whole, torn, bit-flipped, skipping or repeating a
//! VLSN, misnamed) and a compaction point of any bytes. `FileLog::open` never panics on it,
//! and a log it opens is one the node can go on with: a gap-free run of readable entries
//! whose metadata answers at `first_vlsn() - 1` too, which takes the next append and, after
//! a sync, reopens holding the same entries and the new one.
#![no_main]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use arbitrary::Arbitrary;
use harp::checksum::crc32c;
use harp::replication::{EntryMeta, LogStore};
use harp_std::store::{compaction_point, Durability, FileLog};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
struct Record {
    /// Added to the VLSN after the previous record's (0: in sequence).
    skew: i8,
    term: u64,
    dtvlsn: u64,
    entry_type: u8,
    data: Vec<u8>,
    /// A byte of the record flipped: (offset, xor mask).
    damage: Option<(u16, u8)>,
    /// The record cut to this many bytes.
    cut: Option<u16>,
}

#[derive(Debug, Arbitrary)]
struct Segment {
    /// Its file name's VLSN, if not the first record's.
    name: Option<u64>,
    records: Vec<Record>,
}

#[derive(Debug, Arbitrary)]
enum Compacted {
    /// VLSN, term and DTVLSN (at most the VLSN), as the log writes it, with its CRC.
    Point(u64, u64, u64),
    /// Any bytes.
    Raw(Vec<u8>),
}

#[derive(Debug, Arbitrary)]
struct Dir {
    /// The first record's VLSN.
    first: u64,
    segments: Vec<Segment>,
    compacted: Option<Compacted>,
}

fn record_bytes(vlsn: u64, r: &Record) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&(r.data.len() as u32).to_le_bytes());
    out.extend_from_slice(&vlsn.to_le_bytes());
    out.extend_from_slice(&r.term.to_le_bytes());
    out.extend_from_slice(&r.dtvlsn.to_le_bytes());
    out.push(r.entry_type);
    out.extend_from_slice(&r.data);
    let crc = crc32c(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    if let Some((at, mask)) = r.damage {
        let len = out.len();
        if let Some(b) = out.get_mut(usize::from(at) % len) {
            *b ^= mask;
        }
    }
    if let Some(cut) = r.cut {
        out.truncate(usize::from(cut));
    }
    out
}

/// One directory per fuzzing process, written afresh for each input and removed once it passes.
fn scratch() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        std::env::temp_dir().join(format!("harp-fuzz-file-log-{}", std::process::id()))
    })
}

fn write_dir(dir: &Path, input: &Dir) {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).unwrap();
    let mut next = input.first;
    for segment in input.segments.iter().take(4) {
        let mut bytes = Vec::new();
        let mut first_in_file = None;
        for r in segment.records.iter().take(16) {
            let vlsn = next.wrapping_add_signed(i64::from(r.skew));
            next = vlsn.wrapping_add(1);
            first_in_file.get_or_insert(vlsn);
            bytes.extend(record_bytes(vlsn, r));
        }
        let name = segment.name.or(first_in_file).unwrap_or(next);
        std::fs::write(dir.join(format!("{name:020}.seg")), bytes).unwrap();
    }
    match &input.compacted {
        Some(Compacted::Point(vlsn, term, dtvlsn)) => {
            let meta = EntryMeta { term: *term, dtvlsn: (*dtvlsn).min(*vlsn) };
            let point = compaction_point(*vlsn, meta);
            std::fs::write(dir.join("compacted"), point).unwrap();
        }
        Some(Compacted::Raw(bytes)) => std::fs::write(dir.join("compacted"), bytes).unwrap(),
        None => {}
    }
}

/// Every entry of the log: (VLSN, meta, type, data).
fn contents(log: &FileLog) -> Vec<(u64, EntryMeta, u8, Vec<u8>)> {
    let (first, last) = (log.first_vlsn(), log.last_vlsn());
    assert!(first >= 1, "first_vlsn {first}: VLSN 0 is the empty prefix");
    assert_eq!(first.checked_sub(1).and_then(|v| v.checked_add(1)), Some(first));
    assert!(
        last.checked_add(1).is_some_and(|next| first <= next),
        "first {first} > last {last} + 1"
    );
    assert!(log.meta(first - 1).is_some(), "no metadata below the first entry {first}");
    (first..=last)
        .map(|vlsn| {
            let e = log
                .entry(vlsn)
                .unwrap_or_else(|| panic!("entry {vlsn} of {first}..={last} missing"));
            (vlsn, e.meta, e.entry_type, e.data.to_vec())
        })
        .collect()
}

fuzz_target!(|input: Dir| {
    let dir = scratch();
    write_dir(dir, &input);
    check(dir);
    // Passed: leave no directory behind (a failing input's stays, to be looked at).
    let _ = std::fs::remove_dir_all(dir);
});

/// The log in `dir` opens, takes the next entry, and reopens with it; or does not open.
fn check(dir: &Path) {
    let Ok((mut log, _)) = FileLog::open(dir, Durability::Os, 4096) else { return };
    let mut expected = contents(&log);
    // The node goes on: one more entry (in the log's last term), synced.
    let next = log.last_vlsn() + 1;
    let meta = log.meta(log.last_vlsn()).unwrap_or_default();
    let appended = log.append(next, meta, 7, b"after recovery").and_then(|()| log.sync());
    match appended {
        Ok(()) => {}
        Err(_) if next == u64::MAX => return, // no record is at u64::MAX: none would follow
        Err(e) => panic!("the opened log refuses the append at {next}: {e}"),
    }
    expected.push((next, meta, 7, b"after recovery".to_vec()));
    drop(log);
    let (log, recovery) = match FileLog::open(dir, Durability::Os, 4096) {
        Ok(opened) => opened,
        Err(e) => panic!("a log that took an append does not reopen: {e}"),
    };
    assert_eq!(recovery.torn_bytes, 0, "a clean stop left a torn record");
    assert_eq!(contents(&log), expected, "the reopened log differs");
}
