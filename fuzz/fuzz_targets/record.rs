//! The stable-store record decoder: no panic on any bytes; a record that decodes encodes
//! back to a record that decodes to the same value.
#![no_main]

use harp::storage::{ElectionRecord, MAX_RECORD};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(record) = ElectionRecord::decode(data) {
        let mut buf = [0u8; MAX_RECORD];
        let n = record.encode(&mut buf).expect("a decoded record fits");
        assert_eq!(ElectionRecord::decode(&buf[..n]), Ok(record));
    }
});
