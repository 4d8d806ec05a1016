//! The node of `node5` driven by the async driver (`harp::driver`, feature `async`) over
//! four COBS links, polled by the smallest executor there is (a no-op waker and `wfi`):
//! against `node5`, what the driver adds. The links' bytes and readiness, and the clock's,
//! are hidden from the optimiser, so every branch of a step stays.
//!
//! Its start-up and its application's calls between steps are `node5`'s, copied on purpose:
//! moved into the shared lib, the same calls changed `node5`'s code by 108 B through the
//! optimiser's inlining alone, and `node5` is the reference the goals are measured on.
#![no_std]
#![no_main]

use core::future::{poll_fn, Future};
use core::pin::pin;
use core::task::{Context, Poll, Waker};

use harp::driver::{Clock, Cobs, Driver};
use harp::membership::MemberId;
use harp::node::{Node, NodeConfig};
use harp::replication::RamLog;
use harp::storage::{RamStore, StableStore};
use harp::{GroupChangeType, NodeType, RepNodeRef};
use harp_footprint::{consume, five_members, input, unknown};
use panic_halt as _;
use static_cell::StaticCell;

type Log = RamLog<32, 2048>;
type FiveNode = Node<RamStore, &'static mut Log, 5>;
type FiveDriver = Driver<'static, RamStore, &'static mut Log, Uart, Board, Cobs, 5, 512>;

#[no_mangle]
static LOG: StaticCell<Log> = StaticCell::new();
#[no_mangle]
static NODE: StaticCell<FiveNode> = StaticCell::new();
#[no_mangle]
static DRIVER: StaticCell<FiveDriver> = StaticCell::new();

/// A UART whose bytes, and whether they are there yet, are unknown.
struct Uart(u8);

impl embedded_io_async::ErrorType for Uart {
    type Error = embedded_io_async::ErrorKind;
}

impl embedded_io_async::Read for Uart {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
        ready_when(u64::from(self.0)).await;
        let bytes = input();
        let n = bytes.len().min(buf.len());
        buf.get_mut(..n).unwrap_or_default().copy_from_slice(bytes.get(..n).unwrap_or_default());
        match unknown(6) {
            0 => Err(embedded_io_async::ErrorKind::Other),
            _ => Ok(n),
        }
    }
}

impl embedded_io_async::Write for Uart {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
        ready_when(7).await;
        consume((self.0, buf));
        Ok(buf.len())
    }

    async fn flush(&mut self) -> Result<(), Self::Error> {
        ready_when(8).await;
        Ok(())
    }
}

/// The board's millisecond clock and its timer.
struct Board;

impl Clock for Board {
    fn now(&self) -> u64 {
        unknown(1)
    }

    fn sleep_until(&mut self, deadline: u64) -> impl Future<Output = ()> {
        ready_when(deadline)
    }
}

/// A future that completes when an unknown condition says so (an interrupt, in a board).
fn ready_when(what: u64) -> impl Future<Output = ()> {
    poll_fn(move |_| if unknown(what) == 0 { Poll::Ready(()) } else { Poll::Pending })
}

/// Runs `future` to completion, sleeping until an interrupt between polls.
fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        cortex_m::asm::wfi();
    }
}

#[cortex_m_rt::entry]
fn main() -> ! {
    let log = LOG.init(Log::new());
    let me = MemberId::new(unknown(0) as u8);
    let mut store = RamStore::new();
    let _ = store.write(input().get(..unknown(4) as usize).unwrap_or_default());
    let (group, config) = (five_members(), NodeConfig::default());
    let Ok(restored) = FiveNode::restore(&group, me, &config, &mut store) else {
        loop {
            cortex_m::asm::wfi();
        }
    };
    let node = Node::start_in(NODE.uninit(), restored, group, config, store, log, 7, 0);
    let driver = DRIVER.uninit().write(Driver::new(node, Cobs, Board));
    for peer in 0..5u8 {
        if MemberId::new(peer) != me {
            driver.attach(MemberId::new(peer), Uart(peer));
        }
    }
    loop {
        consume(block_on(driver.step()));
        // Between steps the application uses the node, as `node5`'s loop does.
        let node = driver.node_mut();
        let now = unknown(1);
        consume(node.append(1, input()));
        let joiner = RepNodeRef {
            name: "n6",
            node_type: NodeType::Electable,
            host: "",
            port: 0,
            node_id: 6,
        };
        consume(node.change_membership(now, GroupChangeType::Add, &joiner));
        if unknown(3) == 0 {
            node.shutdown(now, "maintenance");
        }
        while let Some(event) = node.poll_event() {
            consume(event);
        }
        consume(node.compact_log(unknown(5)));
        consume((node.durable_vlsn(), node.role(), *driver.stats()));
    }
}
