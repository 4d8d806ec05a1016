//! The NOR-flash stable store over any flash contents (two 256-byte sectors from the input,
//! the rest erased): reading never panics and returns at most `MAX_RECORD` bytes; unless the
//! flash is reported damaged, the next write takes and reads back, also after a restart.
//! (Checksums all match under `cfg(fuzzing)`, so every non-erased slot with a plausible
//! length counts as a record: the store's ordering by sequence number is what is tested.)
#![no_main]

mod ram_flash;

use harp::embedded_storage::nor_flash::NorFlashErrorKind;
use ram_flash::RamFlash;
use harp::storage::{FlashStoreError, NorFlashStore, StableStore, MAX_RECORD};
use libfuzzer_sys::fuzz_target;

const SIZE: usize = 512;

type Flash = RamFlash<SIZE, 256>;

fn read(store: &mut NorFlashStore<Flash>) -> Result<Option<Vec<u8>>, FlashStoreError<NorFlashErrorKind>> {
    let mut buf = [0u8; MAX_RECORD];
    let found = store.read(&mut buf)?;
    Ok(found.map(|len| {
        assert!(len <= MAX_RECORD);
        buf[..len].to_vec()
    }))
}

fuzz_target!(|data: &[u8]| {
    let flash = Flash::with(data);
    let record: Vec<u8> = data.get(SIZE..).unwrap_or_default().iter().take(MAX_RECORD).copied().collect();
    let mut store = NorFlashStore::new(flash, 0, 256).expect("the layout fits");
    match read(&mut store) {
        Ok(_) => {}
        Err(FlashStoreError::Corrupt { .. }) => store.format().expect("RAM formats"),
        Err(e) => panic!("reading RAM flash failed: {e:?}"),
    }
    match store.write(&record) {
        Ok(()) => {}
        // The flash held a slot numbered u32::MAX: no number is left above it.
        Err(FlashStoreError::Exhausted) => return,
        Err(e) => panic!("write failed: {e:?}"),
    }
    assert_eq!(read(&mut store).expect("reads"), Some(record.clone()));
    let mut store = NorFlashStore::new(store.into_inner(), 0, 256).expect("the layout fits");
    assert_eq!(read(&mut store).expect("reads after a restart"), Some(record));
});
