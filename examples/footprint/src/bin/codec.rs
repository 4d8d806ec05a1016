//! The codec alone: decode any of the twelve messages, encode it back.
#![no_std]
#![no_main]

use harp::MessageRef;
use harp_footprint::{consume, input};
use panic_halt as _;

#[cortex_m_rt::entry]
fn main() -> ! {
    let mut out = [0u8; 64];
    loop {
        if let Ok(msg) = MessageRef::decode(input()) {
            consume(msg.encode_into(&mut out));
        }
    }
}
