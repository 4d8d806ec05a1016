//! The async driver on the host: three nodes over in-memory async byte links (tokio duplex
//! pipes through embedded-io-adapters), on tokio's paused clock. Election, replication,
//! a crash of the master and the failover, for both framings.
#![cfg(feature = "async")]

use std::cell::RefCell;
use std::future::Future;
use std::rc::Rc;
use std::time::Duration;

use embedded_io_adapters::tokio_1::FromTokio;
use harp::driver::{Clock, Cobs, Driver, Framing, LinkCause, Step, Stream};
use harp::election::Role;
use harp::membership::{Member, MemberId, Membership};
use harp::node::{Node, NodeConfig};
use harp::replication::{LogStore, RamLog};
use harp::storage::RamStore;
use harp::NodeType;
use tokio::io::DuplexStream;
use tokio::task::LocalSet;
use tokio::time::Instant;

type Link = FromTokio<DuplexStream>;
type GroupNode = Node<RamStore, RamLog<256, 16384>, 3>;
type GroupDriver<'n, W> = Driver<'n, RamStore, RamLog<256, 16384>, Link, TokioClock, W, 3, 512>;

/// Milliseconds on tokio's (paused, auto-advancing) clock.
#[derive(Clone, Copy)]
struct TokioClock {
    start: Instant,
}

impl Clock for TokioClock {
    fn now(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    fn sleep_until(&mut self, deadline: u64) -> impl Future<Output = ()> {
        tokio::time::sleep_until(self.start + Duration::from_millis(deadline))
    }
}

/// What each node's task reports after every step.
#[derive(Default, Clone)]
struct Seen {
    role: Option<Role>,
    durable: u64,
    /// Every entry in the node's log: (vlsn, data).
    log: Vec<(u64, Vec<u8>)>,
    link_downs: Vec<(MemberId, LinkCause)>,
}

#[derive(Default)]
struct Shared {
    seen: [Seen; 3],
    /// Entries the application should write on whichever node is master.
    to_write: usize,
    written: Vec<(u64, Vec<u8>)>,
    stop: bool,
}

fn members() -> Membership<3> {
    let mut group = Membership::named("async").unwrap();
    for (id, name) in (1u32..).zip(["n1", "n2", "n3"]) {
        group.add(Member::new(name, NodeType::Electable, 1, id).unwrap()).unwrap();
    }
    group
}

/// Member `i`'s node, fresh (its seed is `i + 1`).
fn member(i: u8) -> GroupNode {
    Node::new(
        members(),
        MemberId::new(i),
        NodeConfig::default(),
        RamStore::new(),
        RamLog::new(),
        u64::from(i) + 1,
        0,
    )
    .unwrap()
}

fn snapshot(node: &GroupNode) -> Vec<(u64, Vec<u8>)> {
    let log = node.log();
    (log.first_vlsn()..=log.last_vlsn())
        .filter_map(|v| log.entry(v).filter(|e| e.entry_type == 1).map(|e| (v, e.data.to_vec())))
        .collect()
}

/// Runs node `i` until told to stop, writing entries while it is master.
async fn run<W: Framing>(
    mut driver: GroupDriver<'static, W>,
    i: usize,
    shared: Rc<RefCell<Shared>>,
) {
    loop {
        let step = driver.step().await;
        while driver.node_mut().poll_event().is_some() {}
        let mut s = shared.borrow_mut();
        if let Step::LinkDown { peer, cause } = step {
            s.seen[i].link_downs.push((peer, cause));
        }
        if driver.node().role() == Role::Master && s.to_write > 0 {
            let data = format!("entry {}", s.written.len()).into_bytes();
            if let Ok(vlsn) = driver.node_mut().append(1, &data) {
                s.to_write -= 1;
                s.written.push((vlsn, data));
            }
        }
        let node = driver.node();
        s.seen[i] = Seen {
            role: Some(node.role()),
            durable: node.durable_vlsn(),
            log: snapshot(node),
            link_downs: std::mem::take(&mut s.seen[i].link_downs),
        };
        if s.stop {
            return;
        }
    }
}

/// Waits (on the paused clock) until `done` holds; fails after `limit`.
async fn wait_for(shared: &Rc<RefCell<Shared>>, limit: Duration, done: impl Fn(&Shared) -> bool) {
    let deadline = Instant::now() + limit;
    while !done(&shared.borrow()) {
        assert!(Instant::now() < deadline, "condition not reached within {limit:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn master(s: &Shared) -> Option<usize> {
    (0..3).find(|&i| s.seen[i].role == Some(Role::Master))
}

async fn a_group_elects_replicates_and_fails_over<W: Framing + Copy + 'static>(framing: W) {
    let clock = TokioClock { start: Instant::now() };
    // Each node lives as long as the test (on a board: in its static); its driver borrows it.
    let mut drivers: Vec<GroupDriver<W>> =
        (0..3).map(|i| Driver::new(Box::leak(Box::new(member(i))), framing, clock)).collect();
    for (a, b) in [(0usize, 1usize), (0, 2), (1, 2)] {
        let (x, y) = tokio::io::duplex(4096);
        drivers[a].attach(MemberId::new(b as u8), FromTokio::new(x));
        drivers[b].attach(MemberId::new(a as u8), FromTokio::new(y));
    }
    let shared = Rc::new(RefCell::new(Shared { to_write: 50, ..Shared::default() }));
    let tasks: Vec<_> = drivers
        .into_iter()
        .enumerate()
        .map(|(i, d)| tokio::task::spawn_local(run(d, i, shared.clone())))
        .collect();

    // A master is elected, and all 50 entries become durable and reach every node.
    wait_for(&shared, Duration::from_secs(10), |s| {
        let Some(m) = master(s) else { return false };
        let last = s.written.last().map_or(u64::MAX, |w| w.0);
        s.to_write == 0 && s.seen[m].durable >= last && s.seen.iter().all(|n| n.log.len() == 50)
    })
    .await;
    let first = master(&shared.borrow()).unwrap();
    let durable = shared.borrow().written.clone();
    for i in 0..3 {
        assert_eq!(shared.borrow().seen[i].log, durable, "n{} differs", i + 1);
    }

    // The master crashes: its task and links are dropped; the survivors see the links close
    // and elect a new master within the failover bound, which holds every durable entry.
    tasks[first].abort();
    shared.borrow_mut().seen[first] = Seen::default();
    let crashed = Instant::now();
    wait_for(&shared, Duration::from_secs(5), |s| master(s).is_some_and(|m| m != first)).await;
    let failover = crashed.elapsed();
    let second = {
        let s = shared.borrow();
        let second = master(&s).unwrap();
        assert!(failover < Duration::from_secs(2), "failover took {failover:?}");
        for w in &durable {
            assert!(s.seen[second].log.contains(w), "new master lost durable entry {}", w.0);
        }
        for i in (0..3).filter(|&i| i != first) {
            let closed = s.seen[i].link_downs.iter().any(|&(peer, cause)| {
                peer == MemberId::new(first as u8) && cause == LinkCause::Closed
            });
            assert!(closed, "n{} did not see the link to the old master close", i + 1);
        }
        second
    };

    // The new master keeps writing with two of three nodes.
    shared.borrow_mut().to_write = 10;
    wait_for(&shared, Duration::from_secs(5), |s| {
        let last = s.written.last().map_or(0, |w| w.0);
        s.to_write == 0 && s.seen[second].durable >= last
    })
    .await;
    shared.borrow_mut().stop = true;
    for (i, task) in tasks.into_iter().enumerate() {
        if i != first {
            task.await.unwrap();
        }
    }
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn stream_framing_over_async_links() {
    LocalSet::new().run_until(a_group_elects_replicates_and_fails_over(Stream)).await;
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn cobs_framing_over_async_links() {
    LocalSet::new().run_until(a_group_elects_replicates_and_fails_over(Cobs)).await;
}

/// A peer that is not harp (a wrong preamble) loses its stream link; the node keeps going.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_wrong_preamble_takes_the_link_down() {
    use tokio::io::AsyncWriteExt;
    let clock = TokioClock { start: Instant::now() };
    let mut node = member(0);
    let mut driver: GroupDriver<Stream> = Driver::new(&mut node, Stream, clock);
    let (x, mut y) = tokio::io::duplex(4096);
    driver.attach(MemberId::new(1), FromTokio::new(x));
    y.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
    let step = loop {
        match driver.step().await {
            Step::Timer => continue,
            other => break other,
        }
    };
    assert!(
        matches!(step, Step::LinkDown { peer, cause: LinkCause::Frame(harp::frame::FrameError::BadMagic { offset: 0, byte: b'G' }) } if peer == MemberId::new(1)),
        "{step:?}"
    );
    assert!(!driver.is_attached(MemberId::new(1)));
}

/// A damaged frame on a COBS line is skipped and counted; the link stays, and the next
/// frame on it is handled.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_damaged_cobs_frame_is_skipped_and_the_line_stays_up() {
    use harp::wire::MessageRef;
    use tokio::io::AsyncWriteExt;
    let clock = TokioClock { start: Instant::now() };
    let mut node = member(0);
    let mut driver: GroupDriver<Cobs> = Driver::new(&mut node, Cobs, clock);
    let (x, mut y) = tokio::io::duplex(4096);
    driver.attach(MemberId::new(1), FromTokio::new(x));
    let mut frame = [0u8; 64];
    let hello = MessageRef::Handshake {
        node_name: "n2",
        group_name: "async",
        node_type: NodeType::Electable,
    };
    let n = harp::frame::cobs::encode_frame(hello, &mut frame).unwrap();
    let mut damaged = frame[..n].to_vec();
    damaged[2] ^= 0x40; // a flipped bit: the CRC fails
    y.write_all(&damaged).await.unwrap();
    y.write_all(&frame[..n]).await.unwrap();
    let accepted = MessageRef::HandshakeResponse { accepted: true, reason: None };
    let n = harp::frame::cobs::encode_frame(accepted, &mut frame).unwrap();
    y.write_all(&frame[..n]).await.unwrap();
    let mut frames = 0;
    while frames < 2 {
        match driver.step().await {
            Step::Received { from, frames: f } => {
                assert_eq!(from, MemberId::new(1));
                frames += f;
            }
            Step::Timer => {}
            down @ Step::LinkDown { .. } => panic!("a COBS line stays up: {down:?}"),
        }
    }
    assert_eq!(frames, 2, "the intact frames");
    assert_eq!(driver.stats().bad_frames, 1, "the damaged one");
    assert!(driver.is_attached(MemberId::new(1)));
    assert!(
        driver.node().is_connected(MemberId::new(1)),
        "n2's handshake and its answer were handled"
    );
}
