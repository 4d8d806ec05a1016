//! The codec plus both framings (stream frames for TCP, COBS for UARTs), decode and encode.
#![no_std]
#![no_main]

use harp::frame::{cobs, stream};
use harp_footprint::{consume, input};
use panic_halt as _;

#[cortex_m_rt::entry]
fn main() -> ! {
    let mut tcp = stream::StreamDecoder::new([0u8; 128], 120);
    let mut uart = cobs::CobsDecoder::new([0u8; 128], 124);
    let mut out = [0u8; 160];
    loop {
        let mut bytes = input();
        if let Ok(Some(msg)) = tcp.push(&mut bytes) {
            consume(stream::encode_frame(msg, &mut out));
        }
        let mut bytes = input();
        if let Ok(Some(msg)) = uart.push(&mut bytes) {
            consume(cobs::encode_frame(msg, &mut out));
        }
    }
}
