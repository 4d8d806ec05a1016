//! The codec, framing and election paths allocate nothing: a counting global allocator
//! (counting per thread, so tests running in parallel do not disturb each other) proves it.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use harp::election::{Config, Election, Role};
use harp::membership::{Member, Membership};
use harp::storage::RamStore;

use harp::frame::{cobs, stream};
use harp::{MessageRef, NodeType};

struct Counting;

thread_local! {
    static ALLOCS: Cell<usize> = const { Cell::new(0) };
}

fn allocations() -> usize {
    ALLOCS.with(Cell::get)
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.with(|c| c.set(c.get() + 1));
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn codec_and_framing_never_allocate() {
    let data = [0xabu8; 16 * 1024];
    let msgs = [
        MessageRef::Heartbeat { master_vlsn: 1, timestamp_ms: 2 },
        MessageRef::ElectionProposal { node_name: "n1", vlsn: 3, priority: 1, term: 4, dtvlsn: 2 },
        MessageRef::LogEntry { vlsn: 9, entry_type: 0, data: &data },
        MessageRef::Handshake { node_name: "n", group_name: "g", node_type: NodeType::Arbiter },
    ];
    let mut buf = [0u8; 17 * 1024];
    let mut dec_buf = [0u8; 17 * 1024];
    let mut cobs_buf = [0u8; 17 * 1024];
    let before = allocations();
    for msg in &msgs {
        let n = msg.encode_into(&mut buf).unwrap();
        assert_eq!(&MessageRef::decode(&buf[..n]).unwrap(), msg);
        let mut hv = heapless::Vec::<u8, 128>::new();
        let _ = msg.encode_heapless(&mut hv);

        let n = stream::encode_frame(msg, &mut buf).unwrap();
        let mut dec = stream::StreamDecoder::new(&mut dec_buf[..], 17 * 1024 - 8);
        let mut input = &buf[..n];
        assert_eq!(dec.push(&mut input).unwrap().as_ref(), Some(msg));

        let n = cobs::encode_frame(msg, &mut buf).unwrap();
        let mut dec = cobs::CobsDecoder::new(&mut cobs_buf[..], 17 * 1024 - 4);
        let mut input = &buf[..n];
        assert_eq!(dec.push(&mut input).unwrap().as_ref(), Some(msg));
        let mut sink = &mut buf[..];
        msg.write_to(&mut sink).unwrap();
    }
    assert_eq!(allocations() - before, 0, "allocations on the codec paths");
}

#[test]
fn a_whole_election_never_allocates() {
    let mut group = Membership::<3>::new();
    for (i, name) in ["a", "b", "c"].iter().enumerate() {
        group.add(Member::new(name, NodeType::Electable, 1 + i as u32, i as u32).unwrap()).unwrap();
    }
    let mut nodes: [Election<RamStore, 3>; 3] = core::array::from_fn(|i| {
        let me = harp::membership::MemberId::new(i as u8);
        Election::new(group.clone(), me, Config::default(), RamStore::new(), i as u64, 0).unwrap()
    });
    let before = allocations();
    let mut buf = [0u8; 128];
    let mut now = 0;
    while !nodes.iter().any(|n| n.role() == Role::Master) && now < 10_000 {
        now += 1;
        for i in 0..3 {
            if nodes[i].poll_timeout().is_some_and(|t| t <= now) {
                nodes[i].handle_timeout(now);
            }
            while let Some((to, len)) = nodes[i].poll_encoded(&mut buf).unwrap() {
                let msg = harp::wire::Message::decode(&buf[..len]).unwrap();
                nodes[to.index()].handle_message(
                    now,
                    harp::membership::MemberId::new(i as u8),
                    &msg,
                );
            }
            while nodes[i].poll_event().is_some() {}
        }
    }
    assert_eq!(allocations() - before, 0, "allocations on the election paths");
    assert!(nodes.iter().any(|n| n.role() == Role::Master), "an election happened");
}
