//! The runtime alone: vector table, reset handler, panic handler. Every other image is
//! measured against this one.
#![no_std]
#![no_main]

use panic_halt as _;

#[cortex_m_rt::entry]
fn main() -> ! {
    loop {
        harp_footprint::consume(harp_footprint::input());
    }
}
