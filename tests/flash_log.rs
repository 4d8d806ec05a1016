//! `NorFlashLog` on a simulated NOR flash that loses power at a chosen moment: whatever the
//! moment, the reopened log is the log as it was before the change in flight, or after it,
//! entry for entry, with the same compaction point.
#![cfg(feature = "alloc")]

mod sim_flash;
use sim_flash::{SimError, SimFlash, TornErase};

use harp::replication::{EntryMeta, FlashLogError, LogStore, NorFlashLog, RamLog};

/// 4-byte words, 256-byte sectors, six of them from offset 0.
type Flash = SimFlash<4, 256>;
type Log = NorFlashLog<Flash, 16, 512, 6>;

fn open(flash: Flash) -> Result<Log, FlashLogError<SimError>> {
    let mut log = Log::new(flash, 0, 256);
    log.open()?;
    Ok(log)
}

/// Everything a reader can see of a log.
#[derive(Debug, PartialEq, Eq, Clone)]
struct Snapshot {
    first: u64,
    last: u64,
    compacted: EntryMeta,
    entries: Vec<(EntryMeta, u8, Vec<u8>)>,
}

fn snapshot(log: &impl LogStore) -> Snapshot {
    let entries = (log.first_vlsn()..=log.last_vlsn())
        .map(|v| {
            let e = log.entry(v).unwrap_or_else(|| panic!("entry {v} missing"));
            (e.meta, e.entry_type, e.data.to_vec())
        })
        .collect();
    Snapshot {
        first: log.first_vlsn(),
        last: log.last_vlsn(),
        compacted: log.compacted_meta(),
        entries,
    }
}

fn meta(vlsn: u64) -> EntryMeta {
    EntryMeta { term: 1 + vlsn / 10, dtvlsn: vlsn.saturating_sub(2) }
}

fn data(vlsn: u64, round: u64) -> Vec<u8> {
    (0..(vlsn * 7 + round) % 29).map(|j| (vlsn * 13 + j + round) as u8).collect()
}

#[test]
fn a_fresh_flash_opens_as_an_empty_log_and_entries_outlive_a_restart() {
    let mut log = open(Flash::new(1536)).unwrap();
    assert_eq!((log.first_vlsn(), log.last_vlsn()), (1, 0));
    for v in 1..=5 {
        log.append(v, meta(v), 7, &data(v, 0)).unwrap();
    }
    log.sync().unwrap();
    let before = snapshot(&log);
    let log = open(log.into_inner()).unwrap();
    assert_eq!(snapshot(&log), before);
}

#[test]
fn a_log_that_is_not_opened_refuses_changes() {
    let mut log = Log::new(Flash::new(1536), 0, 256);
    assert_eq!(log.append(1, meta(1), 7, b"x"), Err(FlashLogError::Failed));
}

/// One step of the scenario: what it does to the log.
#[derive(Debug, Clone, Copy)]
enum Step {
    Append,
    Truncate { keep: u64 },
    Compact { keep: u64 },
    Restart,
}

/// 60 steps: appends, a truncation of the newest entries now and then, compactions that
/// keep the newest few, and restarts.
fn scenario() -> Vec<Step> {
    (0..60u64)
        .map(|k| match k % 11 {
            3 => Step::Compact { keep: 3 },
            5 => Step::Restart,
            7 => Step::Truncate { keep: 2 },
            9 => Step::Compact { keep: 1 },
            _ => Step::Append,
        })
        .collect()
}

/// `len` random steps from `seed`: long runs of appends, deep truncations, compactions that
/// keep many or few entries, restarts.
fn random_scenario(seed: u64, len: usize) -> Vec<Step> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move |n: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n
    };
    (0..len)
        .map(|_| match next(20) {
            0 | 1 => Step::Truncate { keep: next(8) },
            2 | 3 => Step::Compact { keep: next(10) },
            4 | 5 => Step::Restart,
            _ => Step::Append,
        })
        .collect()
}

fn apply<L: LogStore>(log: &mut L, step: Step, round: u64) -> Result<(), L::Error> {
    match step {
        Step::Append => {
            let v = log.last_vlsn() + 1;
            log.append(v, meta(v), (v % 3) as u8, &data(v, round))?;
            log.sync()
        }
        Step::Truncate { keep } => log.truncate(log.last_vlsn().saturating_sub(keep) + 1),
        Step::Compact { keep } => log.compact(log.last_vlsn().saturating_sub(keep) + 1),
        Step::Restart => Ok(()),
    }
}

/// What a run did before the power went: the log before the step in flight and, if the
/// step would have changed it, after.
struct Cut {
    flash: Flash,
    before: Snapshot,
    after: Option<Snapshot>,
}

fn run(steps: &[Step], budget: Option<u64>, torn_erase: TornErase) -> Cut {
    let mut flash = Flash::new(1536);
    flash.budget = budget;
    flash.torn_erase = torn_erase;
    let mut log = open(flash).unwrap();
    // The run's own model: the same changes in RAM alone (the same capacity, so the same
    // refusals for lack of RAM).
    let mut model = RamLog::<16, 512>::new();
    for (round, &step) in steps.iter().enumerate() {
        let before = snapshot(&log);
        if let Step::Restart = step {
            match open(log.into_inner()) {
                Ok(reopened) => log = reopened,
                Err(e) => {
                    assert_eq!(e, FlashLogError::Flash(SimError::PowerLost));
                    return Cut { flash: Flash::new(0), before, after: None };
                }
            }
            assert_eq!(snapshot(&log), before, "a restart changes nothing");
            continue;
        }
        match apply(&mut log, step, round as u64) {
            Ok(()) => {
                apply(&mut model, step, round as u64).unwrap();
                assert_eq!(snapshot(&log), snapshot(&model), "step {round} {step:?}");
            }
            // Out of flash or RAM: refused, and the log is as it was.
            Err(FlashLogError::Full | FlashLogError::Ram(_)) => {
                assert_eq!(snapshot(&log), before, "step {round} {step:?}");
            }
            Err(e) => {
                assert_eq!(e, FlashLogError::Flash(SimError::PowerLost), "step {round} {step:?}");
                let after = apply(&mut model, step, round as u64).ok().map(|()| snapshot(&model));
                return Cut { flash: log.into_inner(), before, after };
            }
        }
    }
    Cut { flash: log.into_inner(), before: snapshot(&model), after: None }
}

fn power_cut_at_every_moment(torn_erase: TornErase) {
    assert!(run(&scenario(), None, torn_erase).flash.work > 3_000);
    power_cuts(&scenario(), 1, torn_erase);
}

/// Cuts the power after every `stride`th unit of work of `steps`.
fn power_cuts(steps: &[Step], stride: usize, torn_erase: TornErase) {
    let whole = run(steps, None, torn_erase).flash.work;
    assert!(whole > 500, "the run does {whole} units of work");
    for budget in (0..=whole).step_by(stride) {
        let Cut { mut flash, before, after } = run(steps, Some(budget), torn_erase);
        if flash.mem.is_empty() {
            continue; // the cut came during a reopen, which reads only: covered below
        }
        flash.power_on();
        let at = format!("power lost after {budget} units ({torn_erase:?} torn erase)");
        let mut log = open(flash).unwrap_or_else(|e| panic!("{at}: {e:?}"));
        let found = snapshot(&log);
        // (A cut always lands inside the change's last word, which the CRC catches, so
        // `after` is only ever the answer if that changes.)
        if Some(&found) != after.as_ref() {
            assert_eq!(found, before, "{at}");
        }
        // The log goes on: the next entry lands and outlives a restart.
        let v = log.last_vlsn() + 1;
        if let Err(FlashLogError::Full | FlashLogError::Ram(_)) = log.append(v, meta(v), 1, b"") {
            // Out of room: compacting everything makes room (the last sector is kept for it).
            log.compact(v).unwrap_or_else(|e| panic!("{at}: compacting a full log: {e:?}"));
        }
        log.truncate(v).unwrap_or_else(|e| panic!("{at}: {e:?}"));
        log.append(v, meta(v), 1, b"after the cut").unwrap_or_else(|e| panic!("{at}: {e:?}"));
        let expected = snapshot(&log);
        let log = open(log.into_inner()).unwrap();
        assert_eq!(snapshot(&log), expected, "{at}");
    }
}

#[test]
fn a_power_cut_at_any_moment_leaves_the_log_before_or_after_the_change() {
    power_cut_at_every_moment(TornErase::Prefix);
}

#[test]
fn a_power_cut_that_leaves_an_erase_random_leaves_the_log_before_or_after() {
    power_cut_at_every_moment(TornErase::Random);
}

#[test]
fn random_scenarios_with_power_cuts_match_a_log_that_never_loses_power() {
    // HARP_FLASH_LOG_SEEDS=400 HARP_FLASH_LOG_STRIDE=1 for the long run (docs/testing.md).
    let env =
        |name, default| std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default);
    let (seeds, stride) = (env("HARP_FLASH_LOG_SEEDS", 16), env("HARP_FLASH_LOG_STRIDE", 9));
    for seed in 1..=seeds as u64 {
        let steps = random_scenario(seed, 150);
        let torn = if seed % 2 == 0 { TornErase::Prefix } else { TornErase::Random };
        power_cuts(&steps, stride, torn);
    }
}

#[test]
fn without_compaction_the_flash_fills_and_compaction_frees_it() {
    let mut log = open(Flash::new(1536)).unwrap();
    let mut v = 1;
    let full = loop {
        match log.append(v, meta(v), 0, &[v as u8; 45]) {
            Ok(()) => v += 1,
            Err(e) => break e,
        }
    };
    // Two 84-byte records to a sector, one sector kept for a compaction: 10 entries (the
    // RAM would hold 16 entries, 512 bytes).
    assert_eq!((full, v - 1), (FlashLogError::Full, 10));
    assert_eq!(log.free_sectors(), 1, "the last sector is kept for a compaction");
    let held = snapshot(&log);
    log.compact(v - 1).unwrap();
    assert!(log.free_sectors() > 1, "the compaction freed sectors");
    log.append(v, meta(v), 0, b"room again").unwrap();
    let expected = snapshot(&log);
    assert_eq!(expected.first, v - 1);
    assert_eq!(held.entries.last(), expected.entries.first());
    assert_eq!(snapshot(&open(log.into_inner()).unwrap()), expected);
}

#[test]
fn after_a_flash_failure_every_change_is_refused_and_a_reopen_keeps_what_returned() {
    let mut log = open(Flash::new(1536)).unwrap();
    log.append(1, meta(1), 0, b"one").unwrap();
    let kept = snapshot(&log);
    log.flash_mut().fail_next_write = Some(3);
    assert_eq!(log.append(2, meta(2), 0, b"two"), Err(FlashLogError::Flash(SimError::Failed)));
    assert_eq!(snapshot(&log), kept, "the failed append is not in the log");
    assert_eq!(log.append(2, meta(2), 0, b"two"), Err(FlashLogError::Failed));
    assert_eq!(log.sync(), Err(FlashLogError::Failed));
    assert_eq!(snapshot(&open(log.into_inner()).unwrap()), kept);
}

/// Copies sector `sector` of another log, which appended `entries` entries of 60 bytes
/// (two to a sector), over `log`'s fourth sector.
fn foreign_sector(log: &mut Log, entries: u64, sector: usize) {
    let mut other = open(Flash::new(1536)).unwrap();
    for v in 1..=entries {
        other.append(v, meta(v), 0, &[v as u8; 60]).unwrap();
    }
    let other = other.into_inner();
    let from = sector * 256;
    log.flash_mut().mem[768..1024].copy_from_slice(&other.mem[from..from + 256]);
}

#[test]
fn entries_out_of_order_in_flash_are_damage() {
    let mut log = open(Flash::new(1536)).unwrap();
    log.append(1, meta(1), 0, b"one").unwrap();
    // Another log's second sector (number 2, from VLSN 3) over this log's fourth: it
    // replays right after entry 1.
    foreign_sector(&mut log, 3, 1);
    let flash = log.into_inner();
    assert_eq!(open(flash).err(), Some(FlashLogError::Damaged { sector: 3, offset: 12 }));
}

#[test]
fn a_log_that_fails_to_reopen_refuses_changes() {
    let mut log = open(Flash::new(1536)).unwrap();
    log.append(1, meta(1), 0, b"one").unwrap();
    // Another log's third sector (number 3, from VLSN 5) over this log's fourth: damage.
    foreign_sector(&mut log, 5, 2);
    assert!(matches!(log.open(), Err(FlashLogError::Damaged { .. })));
    assert_eq!(log.append(2, meta(2), 0, b"two"), Err(FlashLogError::Failed));
}

#[test]
fn layouts_that_do_not_fit_are_refused() {
    let refused = |base, len| {
        let mut log = Log::new(Flash::new(1536), base, len);
        match log.open() {
            Err(FlashLogError::Layout { what }) => what,
            other => panic!("accepted: {other:?}"),
        }
    };
    assert!(refused(128, 256).contains("erase size"));
    assert!(refused(256, 256).contains("past the end"));
    assert!(refused(u32::MAX - 255, 256).contains("past the end"));
    let mut two = NorFlashLog::<Flash, 4, 64, 1>::new(Flash::new(1536), 0, 256);
    assert!(matches!(two.open(), Err(FlashLogError::Layout { what: "fewer than two sectors" })));
    // A 12-byte header and a 40-byte compaction record (32 + 4 + 4) need 52 bytes.
    let tiny = |len| NorFlashLog::<SimFlash<4, 16>, 4, 64, 2>::new(SimFlash::new(256), 0, len);
    let small = tiny(48).open();
    assert_eq!(
        small,
        Err(FlashLogError::Layout { what: "sector smaller than a header and a compaction record" })
    );
    let mut fits = tiny(64);
    fits.open().unwrap();
    fits.append(1, meta(1), 0, b"12 bytes fit").unwrap();
    fits.compact(2).unwrap();
    assert_eq!((fits.first_vlsn(), fits.last_vlsn()), (2, 1));
}

#[test]
fn wear_goes_round_the_ring_however_often_the_board_restarts() {
    // Each start: open, one entry, compact it. Every start opens a fresh sector; they must
    // take turns, not the two lowest free ones again and again.
    let mut flash = Flash::new(1536);
    for v in 1..=60 {
        let mut log = open(flash).unwrap();
        log.append(v, meta(v), 0, &data(v, 0)).unwrap();
        log.compact(v + 1).unwrap();
        flash = log.into_inner();
    }
    assert_eq!(flash.erases_per_unit, vec![10; 6], "each of the six sectors erased 10 times");
    let log = open(flash).unwrap();
    assert_eq!((log.first_vlsn(), log.last_vlsn()), (61, 60));
}
