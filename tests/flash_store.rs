//! `NorFlashStore` on a simulated NOR flash that loses power at a chosen moment: whatever
//! the moment, a restart reads the last record whose write returned, or the one being
//! written, and never an older one, nothing, or an error.
#![cfg(feature = "alloc")]

use harp::election::{Config, Election};
use harp::embedded_storage::nor_flash::NorFlash;
use harp::membership::{Member, Membership};
use harp::storage::{FlashStoreError, NorFlashStore, StableStore, MAX_RECORD};
use harp::wire::Extension;
use harp::{MessageRef, NodeType};

mod sim_flash;
use sim_flash::{SimError, SimFlash, TornErase};

/// 4 slots of 64 bytes per sector, so the runs switch sectors often.
type Flash = SimFlash<4, 256>;
type Store = NorFlashStore<Flash>;

fn store(flash: Flash) -> Store {
    NorFlashStore::new(flash, 256, 256).unwrap()
}

/// The `i`th record of a run: lengths from 0 to 48, contents that differ between records.
fn record(i: usize) -> Vec<u8> {
    (0..i % (MAX_RECORD + 1)).map(|j| (i * 31 + j * 7) as u8).collect()
}

fn read(store: &mut Store) -> Result<Option<Vec<u8>>, FlashStoreError<SimError>> {
    let mut buf = [0u8; MAX_RECORD];
    Ok(store.read(&mut buf)?.map(|len| buf[..len].to_vec()))
}

#[test]
fn a_fresh_flash_reads_as_a_fresh_node() {
    assert_eq!(read(&mut store(Flash::new(1024))), Ok(None));
}

#[test]
fn every_write_reads_back_also_after_restarts() {
    let mut s = store(Flash::new(1024));
    for i in 0..200 {
        s.write(&record(i)).unwrap();
        assert_eq!(read(&mut s), Ok(Some(record(i))), "write {i}");
        if i % 7 == 6 {
            s = store(s.into_inner());
            assert_eq!(read(&mut s), Ok(Some(record(i))), "after the restart at write {i}");
        }
    }
}

#[test]
fn a_sector_is_erased_once_per_sector_of_writes_and_once_per_start() {
    let mut s = store(Flash::new(1024));
    assert_eq!(s.slots_per_sector(), 4);
    for i in 0..40 {
        s.write(&record(i)).unwrap();
    }
    assert_eq!(s.into_inner().erases, 10);
    // Reading alone erases nothing; the first write after a start does.
    let mut s = store(Flash::new(1024));
    s.write(b"a").unwrap();
    let mut s = store(s.into_inner());
    assert_eq!(read(&mut s), Ok(Some(b"a".to_vec())));
    assert_eq!(s.into_inner().erases, 1);
}

/// What a run did before the power went: the last record whose write returned `Ok`, and
/// the one being written when the power went.
struct Cut {
    flash: Flash,
    acknowledged: Option<Vec<u8>>,
    in_flight: Option<Vec<u8>>,
}

/// 30 writes with a restart after every fifth, on a flash that loses power after `budget`
/// units of work (never, for `None`).
fn run(budget: Option<u64>, torn_erase: TornErase) -> Cut {
    let mut flash = Flash::new(1024);
    flash.budget = budget;
    flash.torn_erase = torn_erase;
    let mut s = store(flash);
    let mut acknowledged = None;
    for i in 0..30 {
        if i % 5 == 0 {
            s = store(s.into_inner());
            if let Err(e) = read(&mut s) {
                assert_eq!(e, FlashStoreError::Flash(SimError::PowerLost));
                return Cut { flash: s.into_inner(), acknowledged, in_flight: None };
            }
        }
        match s.write(&record(i)) {
            Ok(()) => acknowledged = Some(record(i)),
            Err(e) => {
                assert_eq!(e, FlashStoreError::Flash(SimError::PowerLost), "write {i}");
                let in_flight = Some(record(i));
                return Cut { flash: s.into_inner(), acknowledged, in_flight };
            }
        }
    }
    Cut { flash: s.into_inner(), acknowledged, in_flight: None }
}

fn power_cut_at_every_moment(torn_erase: TornErase) {
    let whole = run(None, torn_erase).flash.work;
    assert!(whole > 2_000, "the run does {whole} units of work");
    for budget in 0..=whole {
        let Cut { mut flash, acknowledged, in_flight } = run(Some(budget), torn_erase);
        flash.power_on();
        let mut s = store(flash);
        let found = read(&mut s);
        let at = format!("power lost after {budget} units ({torn_erase:?} torn erase)");
        match (&found, &acknowledged) {
            (Ok(Some(r)), _) if Some(r) == in_flight.as_ref() => {}
            (Ok(found), Some(_)) => assert_eq!(found, &acknowledged, "{at}"),
            (Ok(None), None) => {}
            // A cut in the first erase of a store that never held a record leaves damage
            // and no record, which the store cannot tell from a damaged store: not a fresh
            // node, but an error until an operator formats it.
            (Err(FlashStoreError::Corrupt { .. }), None) if in_flight.is_some() => {
                assert!(s.flash_mut().erases <= 1, "{at}: {found:?}");
                s.format().unwrap();
            }
            _ => panic!("{at}: read {found:?}, acknowledged {acknowledged:?}"),
        }
        // The store goes on: a new record lands and outlives a restart.
        s.write(b"after the cut").unwrap();
        let mut s = store(s.into_inner());
        assert_eq!(read(&mut s), Ok(Some(b"after the cut".to_vec())), "{at}");
    }
}

#[test]
fn a_power_cut_at_any_moment_keeps_the_acknowledged_record() {
    power_cut_at_every_moment(TornErase::Prefix);
}

#[test]
fn a_power_cut_that_leaves_an_erase_random_keeps_the_acknowledged_record() {
    power_cut_at_every_moment(TornErase::Random);
}

#[test]
fn a_failed_write_moves_on_and_never_hides_a_later_one() {
    // Each way a driver's failed write can land: nothing, part of the slot, all of it.
    for lands in [0, 1, 10, 40, 64] {
        let mut s = store(Flash::new(1024));
        s.write(b"first").unwrap();
        let mut flash = s.into_inner();
        flash.fail_next_write = Some(lands);
        let mut s = store(flash);
        assert_eq!(s.write(b"failed"), Err(FlashStoreError::Flash(SimError::Failed)));
        let found = read(&mut s).unwrap().unwrap();
        if lands == 64 {
            assert_eq!(found, b"failed", "a failed write that landed whole is readable");
        } else {
            assert_eq!(found, b"first", "{lands} bytes landed");
        }
        // The next write takes a new slot (the mock panics on a second write of a word)
        // and wins, also after a restart.
        s.write(b"second").unwrap();
        assert_eq!(read(&mut s), Ok(Some(b"second".to_vec())));
        let mut s = store(s.into_inner());
        assert_eq!(read(&mut s), Ok(Some(b"second".to_vec())), "{lands} bytes landed");
    }
}

#[test]
fn failed_writes_that_fill_a_sector_never_erase_the_newest_record() {
    for lands in [0, 64] {
        let mut s = store(Flash::new(1024));
        s.write(b"kept").unwrap();
        // After a restart the first write erases the other sector; four failures fill it.
        let mut s = store(s.into_inner());
        for _ in 0..4 {
            s.flash_mut().fail_next_write = Some(lands);
            assert_eq!(s.write(b"lost"), Err(FlashStoreError::Flash(SimError::Failed)));
        }
        // The next write erases that sector again, not the one holding "kept".
        s.flash_mut().budget = Some(s.flash_mut().work); // the power goes in that erase
        assert!(s.write(b"next").is_err());
        let mut flash = s.into_inner();
        assert_eq!(flash.last_erase, Some((512, 768)), "the sector after the one holding kept");
        flash.power_on();
        let found = read(&mut store(flash)).unwrap().unwrap();
        // Failed writes that landed whole may be read (they were never acknowledged).
        let expected: &[&[u8]] = if lands == 0 { &[b"kept"] } else { &[b"kept", b"lost"] };
        assert!(expected.contains(&found.as_slice()), "{lands} landed: {found:?}");
    }
}

#[test]
fn damage_without_any_record_is_an_error_until_formatted() {
    let mut flash = Flash::new(1024);
    // Something else used the sectors: bytes that are neither erased nor a record.
    for i in 256..768 {
        flash.mem[i] = i as u8;
    }
    let mut s = store(flash);
    assert_eq!(read(&mut s), Err(FlashStoreError::Corrupt { sector: 0, slot: 0 }));
    assert!(s.write(b"x").is_err(), "a write does not paper over the damage");
    s.format().unwrap();
    assert_eq!(read(&mut s), Ok(None));
    s.write(b"x").unwrap();
    assert_eq!(read(&mut store(s.into_inner())), Ok(Some(b"x".to_vec())));
}

#[test]
fn a_damaged_older_record_does_not_hide_the_newest() {
    let mut s = store(Flash::new(1024));
    for i in 0..6 {
        s.write(&record(i + 10)).unwrap();
    }
    // Sector 0 (offset 256) holds the first four records; flip a bit in its first.
    let mut flash = s.into_inner();
    flash.mem[256 + 8] ^= 0x10;
    assert_eq!(read(&mut store(flash)), Ok(Some(record(15))));
}

#[test]
fn layouts_that_do_not_fit_the_flash_are_refused() {
    let layout = layout_of::<Flash>;
    let new = |base, len| NorFlashStore::new(Flash::new(1024), base, len);
    assert!(layout(new(128, 256)).contains("erase size"));
    assert!(layout(new(256, 300)).contains("erase size"));
    assert!(layout(new(512, 512)).contains("past the end"));
    assert!(layout(new(0, 0)).contains("smaller than one slot"));
    assert!(layout(new(u32::MAX - 255, 256)).contains("past the end"));
    let wide = NorFlashStore::new(SimFlash::<128, 256>::new(1024), 0, 256);
    assert!(layout_of(wide).contains("divide 64"));
    assert!(new(0, 512).is_ok());
}

fn layout_of<F: NorFlash>(r: Result<NorFlashStore<F>, FlashStoreError<F::Error>>) -> &'static str {
    match r {
        Err(FlashStoreError::Layout { what }) => what,
        _ => panic!("accepted"),
    }
}

#[test]
fn a_restarted_voter_reads_its_term_and_vote_from_flash() {
    let mut group = Membership::<7>::new();
    for (i, name) in ["a", "b", "c"].iter().enumerate() {
        group.add(Member::new(name, NodeType::Electable, 1, 1 + i as u32).unwrap()).unwrap();
    }
    let [a, b, c] = ["a", "b", "c"].map(|name| group.id_of(name).unwrap());
    let flash_store = store(Flash::new(1024));
    let mut node = Election::new(group.clone(), a, Config::default(), flash_store, 1, 0).unwrap();
    // Its election timer fires; b grants the pre-vote: a starts term 1 and votes for itself.
    let deadline = node.poll_timeout().unwrap();
    node.handle_timeout(deadline);
    node.handle_ext(deadline, b, &Extension::PreVote { term: 1 });
    // b and c propose themselves; b ranks higher, and a votes for it.
    let proposal = |name, vlsn| MessageRef::ElectionProposal {
        node_name: name,
        vlsn,
        priority: 1,
        term: 1,
        dtvlsn: 0,
    };
    node.handle(deadline, b, &proposal("b", 20));
    node.handle(deadline, c, &proposal("c", 0));
    assert_eq!((node.term(), node.vote()), (1, Some(b)));

    let flash = node.into_store().into_inner();
    let node = Election::new(group, a, Config::default(), store(flash), 1, 0).unwrap();
    assert_eq!((node.term(), node.vote()), (1, Some(b)));
}

/// A slot as the store lays it out (60 bytes for a 4-byte write unit), CRC included.
fn slot_bytes(seq: u32, record: &[u8]) -> Vec<u8> {
    let mut slot = seq.to_le_bytes().to_vec();
    slot.push(record.len() as u8);
    slot.extend_from_slice(record);
    slot.resize(4 + 1 + MAX_RECORD, 0xFF);
    let crc = harp::checksum::crc32c(&slot);
    slot.extend_from_slice(&crc.to_le_bytes());
    slot.resize(60, 0xFF);
    slot
}

#[test]
fn a_record_numbered_u32_max_reads_and_only_the_next_write_fails() {
    // Found by the flash_store fuzz target: reading failed with Exhausted.
    let mut flash = Flash::new(1024);
    flash.mem[256..316].copy_from_slice(&slot_bytes(u32::MAX, b"last"));
    let mut s = store(flash);
    assert_eq!(read(&mut s), Ok(Some(b"last".to_vec())));
    assert_eq!(s.write(b"more"), Err(FlashStoreError::Exhausted));
    assert_eq!(read(&mut s), Ok(Some(b"last".to_vec())));
}

#[test]
fn the_layout_is_the_documented_one() {
    // A slot written by hand in the documented layout is read; the store's own slot for
    // the same record and number is byte for byte the same.
    let mut flash = Flash::new(1024);
    flash.mem[512..572].copy_from_slice(&slot_bytes(41, b"by hand"));
    let mut s = store(flash);
    assert_eq!(read(&mut s), Ok(Some(b"by hand".to_vec())));
    s.write(b"by the store").unwrap();
    // The newest record was in sector 1: the write erased sector 0 and took its slot 0.
    assert_eq!(s.flash_mut().mem[256..316], slot_bytes(42, b"by the store")[..]);
}
