//! A full node of a five-member group on a UART: election, replication, membership changes,
//! extensions, COBS framing. Node, log and receive buffer live in statics so their RAM is
//! counted; the log (`LOG`, sized by the user) is reported apart.
#![no_std]
#![no_main]

use harp::frame::cobs;
use harp::membership::MemberId;
use harp::node::{Node, NodeConfig};
use harp::replication::RamLog;
use harp::storage::{RamStore, StableStore};
use harp::wire::Message;
use harp::{GroupChangeType, NodeType, RepNodeRef};
use harp_footprint::{consume, five_members, input, unknown};
use panic_halt as _;
use static_cell::StaticCell;

type Log = RamLog<32, 2048>;
type FiveNode = Node<RamStore, &'static mut Log, 5>;

#[no_mangle]
static LOG: StaticCell<Log> = StaticCell::new();
#[no_mangle]
static NODE: StaticCell<FiveNode> = StaticCell::new();
#[no_mangle]
static UART_RX: StaticCell<[u8; 512]> = StaticCell::new();

#[cortex_m_rt::entry]
fn main() -> ! {
    let log = LOG.init(Log::new());
    let me = MemberId::new(unknown(0) as u8);
    // The election record a restart finds (in flash on a real board): unknown here, so the
    // image holds the code that reads and checks it.
    let mut store = RamStore::new();
    let _ = store.write(input().get(..unknown(4) as usize).unwrap_or_default());
    // The checks that can fail first; then the node is built in its static, not on the stack.
    let (group, config) = (five_members(), NodeConfig::default());
    let Ok(restored) = FiveNode::restore(&group, me, &config, &mut store) else {
        loop {
            cortex_m::asm::wfi();
        }
    };
    let node = Node::start_in(NODE.uninit(), restored, group, config, store, log, 7, 0);
    let mut uart = cobs::CobsDecoder::new(UART_RX.init([0; 512]), 508);
    let mut out = [0u8; 600];
    loop {
        let now = unknown(1);
        let from = MemberId::new(unknown(2) as u8);
        node.connect(from);
        let mut bytes = input();
        if let Ok(Some(body)) = uart.push_frame(&mut bytes) {
            if let Ok(msg) = Message::decode(body) {
                node.handle(now, from, &msg);
            }
        }
        node.handle_timeout(now);
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
        while let Some(t) = node.poll_transmit() {
            consume((t.to, cobs::encode_frame(t.message, &mut out)));
        }
        while let Some(event) = node.poll_event() {
            consume(event);
        }
        // A board's log is finite: the durable prefix is compacted.
        consume(node.compact_log(unknown(5)));
        consume((node.poll_timeout(), node.durable_vlsn(), node.role()));
    }
}
