//! The async driver (`harp::driver`) of node n1 over two scripted links (to n2 and n3):
//! arbitrary byte chunks, well-formed frames of real messages (corrupted or not), read
//! failures and closes, with either framing. Every step must finish at its first poll (the
//! links and the timer are always ready or idle: a step that waits on nothing is a hang),
//! and what the driver reports must be what the framing makes of each link's bytes:
//! - the intact frames it handed to the node (`frames_in`), and on a COBS line the damaged
//!   ones it skipped (`bad_frames`), up to where the link ended;
//! - the links it took down, and why: a read error, a close, or (stream framing) the first
//!   bad frame, which is the first error the stream decoder gives on the link's bytes.
#![no_main]

use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::Future;
use std::pin::pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use arbitrary::Arbitrary;
use harp::driver::{Clock, Cobs, Driver, Framing, LinkCause, Step, Stream};
use harp::membership::{Member, MemberId, Membership};
use harp::node::{Node, NodeConfig};
use harp::replication::RamLog;
use harp::storage::RamStore;
use harp::wire::{Message, MessageRef};
use harp::NodeType;
use libfuzzer_sys::fuzz_target;

/// The largest frame the driver accepts.
const F: usize = 256;
const PEERS: [u8; 2] = [1, 2];

#[derive(Debug, Clone, Arbitrary)]
enum Chunk {
    /// Raw bytes, as a line delivers them.
    Bytes(Vec<u8>),
    /// One frame of a real message (`kind` picks it), with byte `flip.0` xor'ed by
    /// `flip.1` (0: intact).
    Frame { kind: u8, a: u64, b: u64, flip: (u16, u8) },
    /// The transport fails.
    Fail,
    /// The peer closes (a read of 0 bytes).
    Close,
}

#[derive(Debug, Arbitrary)]
struct Input {
    stream: bool,
    links: [Vec<Chunk>; 2],
}

/// What each link's transport will deliver: byte chunks, then how it ends (if it does).
#[derive(Debug, Default, Clone)]
struct Script {
    chunks: VecDeque<Vec<u8>>,
    end: Option<LinkCause>,
}

#[derive(Default)]
struct World {
    scripts: [Script; 2],
    now: u64,
}

impl World {
    /// No link has anything left to deliver.
    fn idle(&self) -> bool {
        self.scripts.iter().all(|s| s.chunks.is_empty() && s.end.is_none())
    }
}

type Shared = Rc<RefCell<World>>;

struct Line {
    index: usize,
    world: Shared,
}

impl embedded_io_async::ErrorType for Line {
    type Error = embedded_io_async::ErrorKind;
}

impl embedded_io_async::Read for Line {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
        std::future::poll_fn(|_| {
            let mut world = self.world.borrow_mut();
            let script = &mut world.scripts[self.index];
            if let Some(chunk) = script.chunks.front_mut() {
                let n = chunk.len().min(buf.len());
                buf[..n].copy_from_slice(&chunk[..n]);
                chunk.drain(..n);
                if chunk.is_empty() {
                    script.chunks.pop_front();
                }
                return Poll::Ready(Ok(n));
            }
            match script.end.take() {
                Some(LinkCause::Closed) => Poll::Ready(Ok(0)),
                Some(_) => Poll::Ready(Err(embedded_io_async::ErrorKind::BrokenPipe)),
                None => Poll::Pending,
            }
        })
        .await
    }
}

impl embedded_io_async::Write for Line {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
        Ok(buf.len())
    }

    async fn flush(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }
}

/// Time moves only when the timer fires, and the timer fires only when no link has
/// anything left to deliver: every step is ready at its first poll.
struct SimClock(Shared);

impl Clock for SimClock {
    fn now(&self) -> u64 {
        self.0.borrow().now
    }

    fn sleep_until(&mut self, deadline: u64) -> impl Future<Output = ()> {
        let world = self.0.clone();
        std::future::poll_fn(move |_| {
            let mut world = world.borrow_mut();
            if !world.idle() {
                return Poll::Pending;
            }
            world.now = world.now.max(deadline);
            Poll::Ready(())
        })
    }
}

fn group() -> Membership<3> {
    let mut group = Membership::named("fuzz").unwrap();
    for (id, name) in (1u32..).zip(["n1", "n2", "n3"]) {
        group.add(Member::new(name, NodeType::Electable, 1, id).unwrap()).unwrap();
    }
    group
}

fn message(kind: u8, a: u64, b: u64, from: &str) -> Message<'static> {
    let from: &'static str = if from == "n2" { "n2" } else { "n3" };
    let core = match kind % 8 {
        0 => MessageRef::Handshake { node_name: from, group_name: "fuzz", node_type: NodeType::Electable },
        1 => MessageRef::HandshakeResponse { accepted: a % 2 == 0, reason: None },
        2 => MessageRef::Heartbeat { master_vlsn: a % 64, timestamp_ms: b },
        3 => MessageRef::HeartbeatResponse { replica_vlsn: a % 64, timestamp_ms: b },
        4 => MessageRef::LogEntry { vlsn: a % 64, entry_type: b as u8, data: b"entry" },
        5 => MessageRef::Ack { vlsn: a % 64 },
        6 => MessageRef::ElectionProposal { node_name: from, vlsn: a % 64, priority: 1, term: b % 8, dtvlsn: 0 },
        _ => MessageRef::ElectionResult { master: from, term: b % 8 },
    };
    Message::Core(core)
}

/// The link's bytes as its transport delivers them, and how it ends.
fn script<W: Framing>(chunks: &[Chunk], peer: &str) -> Script {
    let mut script = Script::default();
    if !W::GREETING.is_empty() {
        script.chunks.push_back(W::GREETING.to_vec());
    }
    for chunk in chunks {
        match chunk {
            Chunk::Bytes(bytes) if !bytes.is_empty() => script.chunks.push_back(bytes.clone()),
            Chunk::Bytes(_) => {}
            Chunk::Frame { kind, a, b, flip } => {
                let mut frame = vec![0u8; 2 * F];
                let Ok(n) = W::encode_frame(message(*kind, *a, *b, peer), &mut frame) else {
                    continue;
                };
                frame.truncate(n);
                if let Some(byte) = frame.get_mut(usize::from(flip.0) % n) {
                    *byte ^= flip.1;
                }
                script.chunks.push_back(frame);
            }
            Chunk::Fail => {
                script.end = Some(LinkCause::Io(embedded_io_async::ErrorKind::BrokenPipe));
                break;
            }
            Chunk::Close => {
                script.end = Some(LinkCause::Closed);
                break;
            }
        }
    }
    script
}

/// What the framing makes of a link's whole byte stream: intact frames, damaged ones, and
/// the error that ends the link (stream framing: the first one).
fn expected<W: Framing>(script: &Script) -> (u64, u32, Option<LinkCause>) {
    let mut decoder = W::decoder::<F>();
    let (mut intact, mut damaged) = (0, 0);
    for chunk in &script.chunks {
        let mut input = &chunk[..];
        while !input.is_empty() {
            match W::next_frame(&mut decoder, &mut input) {
                Ok(Some(_)) => intact += 1,
                Ok(None) => break,
                Err(_) if W::RESYNCHRONISES => damaged += 1,
                Err(e) => return (intact, damaged, Some(LinkCause::Frame(e))),
            }
        }
    }
    (intact, damaged, script.end)
}

fn run<W: Framing + Copy>(framing: W, input: &Input) {
    let world: Shared = Rc::default();
    let scripts: Vec<Script> =
        input.links.iter().zip(["n2", "n3"]).map(|(c, peer)| script::<W>(c, peer)).collect();
    let mut node = Node::new(
        group(),
        MemberId::new(0),
        NodeConfig::default(),
        RamStore::new(),
        RamLog::<64, 4096>::new(),
        7,
        0,
    )
    .unwrap();
    let mut driver: Driver<_, _, Line, SimClock, W, 3, F> =
        Driver::new(&mut node, framing, SimClock(world.clone()));
    for (index, peer) in PEERS.into_iter().enumerate() {
        world.borrow_mut().scripts[index] = scripts[index].clone();
        driver.attach(MemberId::new(peer), Line { index, world: world.clone() });
    }
    let mut downs: [Option<LinkCause>; 2] = [None, None];
    let mut timers = 0;
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..10_000 {
        let step = {
            let mut step = pin!(driver.step());
            step.as_mut().poll(&mut cx)
        };
        let Poll::Ready(step) = step else {
            // Nothing to read and no timer set: a real driver waits here, rightly.
            assert!(world.borrow().idle() && driver.node().poll_timeout().is_none(), "a step waited on nothing");
            break;
        };
        match step {
            Step::LinkDown { peer, cause } => {
                let index = peer.index() - 1;
                assert!(downs[index].is_none(), "{peer:?} went down twice");
                assert!(!driver.is_attached(peer));
                downs[index] = Some(cause);
                // What a detached link still had is never read.
                world.borrow_mut().scripts[index] = Script::default();
            }
            Step::Timer => timers += 1,
            Step::Received { .. } => {}
        }
        if world.borrow().idle() && timers > 0 {
            break;
        }
    }
    assert!(world.borrow().idle(), "the links never ran dry");
    let (mut intact, mut damaged) = (0, 0);
    for (index, script) in scripts.iter().enumerate() {
        let (i, d, end) = expected::<W>(script);
        intact += i;
        damaged += d;
        assert_eq!(downs[index], end, "link to n{}", index + 2);
    }
    let stats = *driver.stats();
    assert_eq!(stats.frames_in, intact, "{stats:?}");
    assert_eq!(stats.bad_frames, damaged, "{stats:?}");
}

fuzz_target!(|input: Input| {
    if input.stream {
        run(Stream, &input);
    } else {
        run(Cobs, &input);
    }
});
