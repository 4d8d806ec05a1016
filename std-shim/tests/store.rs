//! The file stores: reopen, torn tails, corruption, truncation, compaction.

use std::fs::{self, OpenOptions};
use std::io::Write;

use harp::replication::{EntryMeta, LogStore};
use harp::storage::{ElectionRecord, StableStore, MAX_RECORD};
use harp_std::store::{compaction_point, Durability, FileLog, FileStore, LogError};

fn meta(term: u64) -> EntryMeta {
    EntryMeta { term, dtvlsn: 0 }
}

/// A log of `n` entries (VLSN k holds "entry k") in 4 KiB segments.
fn filled(dir: &std::path::Path, n: u64) -> FileLog {
    let (mut log, _) = FileLog::open(dir, Durability::Os, 4096).unwrap();
    for k in 1..=n {
        log.append(k, meta(1), 1, format!("entry {k} {}", "x".repeat(100)).as_bytes()).unwrap();
    }
    log.sync().unwrap();
    log
}

fn data(log: &FileLog, vlsn: u64) -> String {
    String::from_utf8(log.entry(vlsn).unwrap().data.to_vec()).unwrap()
}

#[test]
fn entries_survive_a_reopen_across_segments() {
    let dir = tempfile::tempdir().unwrap();
    let log = filled(dir.path(), 200);
    assert!(log.segment_paths().len() > 4, "rolled over: {:?}", log.segment_paths());
    drop(log);
    let (log, recovery) = FileLog::open(dir.path(), Durability::Os, 4096).unwrap();
    assert_eq!((recovery.entries, recovery.torn_bytes), (200, 0));
    assert_eq!((log.first_vlsn(), log.last_vlsn()), (1, 200));
    assert!(data(&log, 137).starts_with("entry 137 "));
    assert_eq!(log.entry(137).unwrap().meta, meta(1));
}

#[test]
fn a_torn_last_record_is_cut_off_and_the_log_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let log = filled(dir.path(), 50);
    let last = log.segment_paths().pop().unwrap();
    drop(log);
    // A crash in the middle of writing record 51: its first 20 bytes reached the disk.
    let mut file = OpenOptions::new().append(true).open(&last).unwrap();
    file.write_all(&[0x7f; 20]).unwrap();
    drop(file);
    let (mut log, recovery) = FileLog::open(dir.path(), Durability::Os, 4096).unwrap();
    assert_eq!((recovery.entries, recovery.torn_bytes), (50, 20));
    log.append(51, meta(2), 1, b"after the crash").unwrap();
    log.sync().unwrap();
    drop(log);
    let (log, recovery) = FileLog::open(dir.path(), Durability::Os, 4096).unwrap();
    assert_eq!((recovery.entries, recovery.torn_bytes), (51, 0));
    assert_eq!(data(&log, 51), "after the crash");
}

#[test]
fn damage_before_the_tail_is_an_error_naming_segment_and_offset() {
    let dir = tempfile::tempdir().unwrap();
    let log = filled(dir.path(), 200);
    let first = log.segment_paths()[0].clone();
    drop(log);
    let mut bytes = fs::read(&first).unwrap();
    bytes[200] ^= 0x01; // inside the second record
    fs::write(&first, bytes).unwrap();
    match FileLog::open(dir.path(), Durability::Os, 4096) {
        Err(LogError::Corrupt { segment, offset, what }) => {
            assert_eq!(segment, first);
            assert_eq!(offset, 141, "the second record starts after 29 + 108 + 4 bytes");
            assert_eq!(what, "record fails its CRC-32C");
        }
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("a damaged segment was accepted"),
    }
}

#[test]
fn truncation_drops_a_suffix_across_segments_durably() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = filled(dir.path(), 200);
    let segments = log.segment_paths().len();
    log.truncate(61).unwrap();
    assert_eq!(log.last_vlsn(), 60);
    assert!(log.segment_paths().len() < segments);
    log.append(61, meta(3), 1, b"the new master's 61").unwrap();
    log.sync().unwrap();
    drop(log);
    let (log, _) = FileLog::open(dir.path(), Durability::Os, 4096).unwrap();
    assert_eq!(log.last_vlsn(), 61);
    assert_eq!(data(&log, 61), "the new master's 61");
    assert_eq!(log.entry(61).unwrap().meta.term, 3);
    assert!(data(&log, 60).starts_with("entry 60 "));
}

#[test]
fn compaction_is_exact_lasting_and_removes_whole_segments() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = filled(dir.path(), 200);
    let segments = log.segment_paths().len();
    let meta_99 = log.entry(99).unwrap().meta;
    log.compact(100).unwrap();
    assert_eq!(log.first_vlsn(), 100, "exactly the entries before 100 are gone");
    assert!(log.entry(99).is_none() && log.entry(100).is_some());
    assert_eq!(log.meta(99), Some(meta_99), "the last one compacted keeps its metadata");
    assert!(log.segment_paths().len() < segments, "segments holding only them are deleted");
    drop(log);
    let (mut log, _) = FileLog::open(dir.path(), Durability::Os, 4096).unwrap();
    assert_eq!((log.first_vlsn(), log.last_vlsn()), (100, 200), "and stay gone after a restart");
    assert!(log.entry(99).is_none());
    assert_eq!(log.meta(99), Some(meta_99));
    assert!(data(&log, 100).starts_with("entry 100 "));
    log.compact(50).unwrap();
    assert_eq!(log.first_vlsn(), 100, "compacting an earlier point changes nothing");
    log.compact(201).unwrap();
    assert_eq!((log.first_vlsn(), log.last_vlsn()), (201, 200), "everything, and empty");
    log.append(201, meta(1), 1, b"next").unwrap();
    log.sync().unwrap();
    drop(log);
    let (log, _) = FileLog::open(dir.path(), Durability::Os, 4096).unwrap();
    assert_eq!((log.first_vlsn(), log.last_vlsn()), (201, 201));
}

#[test]
fn appends_must_follow_the_last_vlsn() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = filled(dir.path(), 3);
    assert!(matches!(log.append(5, meta(1), 1, b"x"), Err(LogError::Gap { expected: 4, got: 5 })));
}

#[test]
fn the_election_record_is_replaced_atomically() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = FileStore::open(dir.path()).unwrap();
    let mut buf = [0u8; MAX_RECORD];
    assert_eq!(store.read(&mut buf).unwrap(), None, "a new node has no record");
    for term in [1u64, 2, 7] {
        let n =
            ElectionRecord { term, vote: Some(3), ..Default::default() }.encode(&mut buf).unwrap();
        store.write(&buf[..n]).unwrap();
    }
    let mut again = FileStore::open(dir.path()).unwrap();
    let n = again.read(&mut buf).unwrap().unwrap();
    assert_eq!(ElectionRecord::decode(&buf[..n]).unwrap().term, 7);
    let names: Vec<String> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, ["election.rec"], "no temporary file left behind");
}

/// The error `FileLog::open` gives for `dir`, which must be `Corrupt`: (file name, what).
fn corrupt(dir: &std::path::Path) -> (String, &'static str) {
    match FileLog::open(dir, Durability::Os, 4096) {
        Err(LogError::Corrupt { segment, what, .. }) => {
            (segment.file_name().unwrap().to_string_lossy().into_owned(), what)
        }
        Err(e) => panic!("wrong error: {e}"),
        Ok((log, _)) => {
            panic!("accepted as a log of {}..={}", log.first_vlsn(), log.last_vlsn())
        }
    }
}

/// The compaction point `FileLog` writes: VLSN, term, DTVLSN 0, CRC.
fn write_point(dir: &std::path::Path, vlsn: u64, term: u64) {
    fs::write(dir.join("compacted"), compaction_point(vlsn, meta(term))).unwrap();
}

#[test]
fn a_compaction_point_is_checked_by_its_crc_and_its_dtvlsn() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = filled(dir.path(), 200);
    log.compact(100).unwrap();
    drop(log);
    let path = dir.path().join("compacted");
    let good = fs::read(&path).unwrap();
    assert_eq!(
        good,
        compaction_point(
            99,
            FileLog::open(dir.path(), Durability::Os, 4096).unwrap().0.meta(99).unwrap()
        )
    );
    // A flipped bit in the term: before the CRC, it opened with the wrong term at 99, the
    // one a sync point at the log's start is matched against.
    let mut flipped = good.clone();
    flipped[8] ^= 0x04;
    fs::write(&path, &flipped).unwrap();
    assert_eq!(corrupt(dir.path()), ("compacted".into(), "a compaction point failing its CRC"));
    fs::write(&path, &good[..24]).unwrap();
    assert_eq!(corrupt(dir.path()).1, "a compaction point is 28 bytes: VLSN, term, DTVLSN, CRC");
    fs::write(&path, compaction_point(99, EntryMeta { term: 1, dtvlsn: 100 })).unwrap();
    assert_eq!(corrupt(dir.path()).1, "a compaction point whose DTVLSN is past its VLSN");
}

#[test]
fn a_segment_named_vlsn_0_is_damage_not_a_log_starting_there() {
    // Found by the file_log fuzz target: an empty `0.seg` opened as a log whose first
    // VLSN was 0, the empty prefix.
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join(format!("{:020}.seg", 0)), b"").unwrap();
    assert_eq!(corrupt(dir.path()).1, "a segment named VLSN 0 (VLSNs start at 1)");
}

#[test]
fn a_segment_missing_between_two_is_damage() {
    // Caught before too, one record later ("VLSN out of sequence"); now it names the file.
    let dir = tempfile::tempdir().unwrap();
    let log = filled(dir.path(), 200);
    let paths = log.segment_paths();
    drop(log);
    fs::remove_file(&paths[2]).unwrap();
    let (name, what) = corrupt(dir.path());
    assert_eq!(name, paths[3].file_name().unwrap().to_string_lossy());
    assert_eq!(what, "the segment's name does not continue the one before it");
}

#[test]
fn a_segment_renamed_is_damage() {
    let dir = tempfile::tempdir().unwrap();
    let log = filled(dir.path(), 200);
    let last = log.segment_paths().pop().unwrap();
    drop(log);
    // The last segment under a name one higher than its first record: before, its records
    // were read at the VLSNs they carry and compaction trusted the name.
    let first: u64 = last.file_stem().unwrap().to_str().unwrap().parse().unwrap();
    fs::rename(&last, dir.path().join(format!("{:020}.seg", first + 1))).unwrap();
    assert_eq!(corrupt(dir.path()).1, "the segment's name does not continue the one before it");
}

#[test]
fn segments_that_start_after_the_compaction_point_are_damage() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = filled(dir.path(), 200);
    log.compact(100).unwrap();
    let first_segment = log.segment_paths()[0].clone();
    drop(log);
    fs::remove_file(first_segment).unwrap(); // it held entry 100
    let (name, what) = corrupt(dir.path());
    assert_eq!(name, "compacted");
    assert_eq!(what, "the segments start after the compaction point: one is missing");
}

#[test]
fn a_compaction_point_past_the_end_leaves_an_empty_log_that_goes_on() {
    // A caller compacted through entries not yet synced, and a crash lost them: the
    // segments left hold only compacted entries. Before, the next append went into the
    // last of them, after entries 150 short of it, and the log did not open again.
    let dir = tempfile::tempdir().unwrap();
    drop(filled(dir.path(), 50));
    write_point(dir.path(), 200, 3);
    let (mut log, _) = FileLog::open(dir.path(), Durability::Os, 4096).unwrap();
    assert_eq!((log.first_vlsn(), log.last_vlsn()), (201, 200));
    assert_eq!(log.meta(200), Some(meta(3)));
    assert!(log.segment_paths().is_empty(), "{:?}", log.segment_paths());
    log.append(201, meta(3), 1, b"after the point").unwrap();
    log.sync().unwrap();
    drop(log);
    let (log, _) = FileLog::open(dir.path(), Durability::Os, 4096).unwrap();
    assert_eq!((log.first_vlsn(), log.last_vlsn()), (201, 201));
    assert_eq!(data(&log, 201), "after the point");
}

#[test]
fn vlsns_at_the_end_of_the_range_are_errors_not_overflows() {
    let dir = tempfile::tempdir().unwrap();
    write_point(dir.path(), u64::MAX, 1);
    assert_eq!(
        corrupt(dir.path()),
        ("compacted".into(), "a compaction point at the last VLSN there is")
    );
    write_point(dir.path(), u64::MAX - 1, 1);
    let (mut log, _) = FileLog::open(dir.path(), Durability::Os, 4096).unwrap();
    assert_eq!((log.first_vlsn(), log.last_vlsn()), (u64::MAX, u64::MAX - 1));
    match log.append(u64::MAX, meta(1), 1, b"no VLSN follows it") {
        Err(LogError::Gap { expected, got }) => assert_eq!((expected, got), (u64::MAX, u64::MAX)),
        other => panic!("an entry at u64::MAX: {other:?}"),
    }
}
