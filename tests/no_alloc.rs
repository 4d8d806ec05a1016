//! The codec and framing paths allocate nothing: a counting global allocator proves it.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use harp::frame::{cobs, stream};
use harp::{MessageRef, NodeType};

struct Counting;
static ALLOCS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::SeqCst);
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
    let before = ALLOCS.load(Ordering::SeqCst);
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
    assert_eq!(ALLOCS.load(Ordering::SeqCst) - before, 0, "allocations on the codec paths");
}
