//! The NOR-flash log opened over any flash contents (four 256-byte sectors from the input,
//! the rest erased): opening never panics; a log that opens has its entries from
//! `first_vlsn` to `last_vlsn` readable, takes the next entry and reopens with it.
//! (Checksums all match under `cfg(fuzzing)`, so every record of a known kind and a length
//! that fits counts: replay's ordering, truncation, compaction floors and damage checks are
//! what is exercised.)
#![no_main]

mod ram_flash;

use harp::embedded_storage::nor_flash::NorFlashErrorKind;
use ram_flash::RamFlash;
use harp::replication::{EntryMeta, FlashLogError, LogStore, NorFlashLog};
use libfuzzer_sys::fuzz_target;

const SIZE: usize = 1024;

type Flash = RamFlash<SIZE, 256>;

type Log = NorFlashLog<Flash, 16, 512, 4>;

fn open(flash: Flash) -> Result<Log, FlashLogError<NorFlashErrorKind>> {
    let mut log = Log::new(flash, 0, 256);
    log.open()?;
    Ok(log)
}

fn entries(log: &Log) -> Vec<(EntryMeta, u8, Vec<u8>)> {
    assert!(log.first_vlsn() <= log.last_vlsn().saturating_add(1));
    (log.first_vlsn()..=log.last_vlsn())
        .map(|v| {
            let e = log.entry(v).expect("every entry from first to last is readable");
            (e.meta, e.entry_type, e.data.to_vec())
        })
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let flash = Flash::with(data);
    let Ok(mut log) = open(flash) else { return };
    let held = entries(&log);
    let v = log.last_vlsn().saturating_add(1);
    let meta = EntryMeta { term: 1, dtvlsn: 0 };
    match log.append(v, meta, 7, b"next") {
        Ok(()) => {}
        // Out of room in flash or RAM, or a VLSN at the end of the range: refused as it was.
        Err(FlashLogError::Full | FlashLogError::Ram(_) | FlashLogError::TooLarge) => {
            assert_eq!(entries(&log), held);
            return;
        }
        Err(e) => panic!("append to RAM flash failed: {e:?}"),
    }
    let expected = entries(&log);
    let log = open(log.into_inner()).expect("a log it wrote reopens");
    assert_eq!(entries(&log), expected);
});
