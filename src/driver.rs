//! An async driver (feature `async`): runs a [`Node`] over `embedded-io-async` byte links,
//! one per peer, in the Embassy style: an async UART with COBS framing, or a TCP socket with
//! stream framing.
//!
//! The driver borrows the node (which a firmware builds in its `static` with
//! [`Node::start_in`], so it never crosses the stack), and owns one link per peer and a
//! [`Clock`]. Its framing is a type, [`Cobs`] or [`Stream`], so an image links only the
//! one it uses. Each [`Driver::step`] sends everything the node has to send, then waits
//! for whichever comes first: bytes on any link, or the node's next timer. It hands what
//! arrived to the node and returns what happened ([`Step`]); between steps the application
//! uses the node ([`Driver::node_mut`]: append, change membership, poll events). Nothing
//! here allocates; every buffer is sized by the const parameter `F` (the largest frame on
//! the wire).
//!
//! Requirements on the transport: its `read` must be cancel-safe (dropping an unfinished
//! read loses no bytes, as with Embassy's `BufferedUart` and `TcpSocket`), because a
//! timer that fires first drops the pending reads. A link's peer is known when it is
//! attached (the UART's wiring, or the address dialed); the node's handshake then checks
//! that the peer agrees.
//!
//! ```
//! # async fn example<T, C>(node: &'static mut harp::node::Node<harp::storage::RamStore, harp::replication::RamLog<16, 1024>, 3>, uart_to_n2: T, clock: C)
//! # where T: embedded_io_async::Read + embedded_io_async::Write, C: harp::driver::Clock {
//! use harp::driver::{Cobs, Driver};
//! use harp::membership::MemberId;
//!
//! // node: from Node::start_in(NODE.uninit(), ..), NODE a static_cell::StaticCell
//! let mut driver: Driver<_, _, T, C, Cobs, 3, 512> = Driver::new(node, Cobs, clock);
//! driver.attach(MemberId::new(1), uart_to_n2);
//! loop {
//!     let step = driver.step().await;
//!     while let Some(event) = driver.node_mut().poll_event() {
//!         // react: a new master, entries durable, ...
//!         # let _ = event;
//!     }
//!     # let _ = step; break;
//! }
//! # }
//! ```

use core::future::{pending, Future};
use core::pin::pin;

use embassy_futures::select::{select, select_slice, Either};
use embedded_io_async::{Read, Write};

use crate::frame::cobs::{self, CobsDecoder};
use crate::frame::stream::{self, PreambleReader, StreamDecoder, PREAMBLE};
use crate::frame::FrameError;
use crate::membership::{MemberId, MemberSet};
use crate::node::Node;
use crate::replication::LogStore;
use crate::storage::StableStore;
use crate::wire::Message;

/// Bytes read from a link at a time.
const READ_CHUNK: usize = 64;

/// The time source a driver needs: the current time in milliseconds, and a wait.
pub trait Clock {
    /// Milliseconds since some fixed start (monotonic).
    fn now(&self) -> u64;

    /// Completes at `deadline` (in [`now`](Clock::now)'s milliseconds) or soon after.
    fn sleep_until(&mut self, deadline: u64) -> impl Future<Output = ()>;
}

/// How messages are cut into frames on a driver's links: [`Cobs`] or [`Stream`].
///
/// A type rather than a value, so that a board links only the framing it uses: the stream
/// framing a UART board never runs cost it 3.4 KiB of flash when the choice was an `enum`
/// (`scripts/footprint`, image `node5_async`). Implemented by those two only.
pub trait Framing: sealed::Sealed {
    /// The receive side of one link, with an `F`-byte frame buffer.
    type Decoder<const F: usize>;

    /// Bytes a new link sends before its first frame.
    const GREETING: &'static [u8];

    /// Whether a bad frame costs only itself (the decoder resynchronises at the next
    /// delimiter) rather than the link.
    const RESYNCHRONISES: bool;

    /// A decoder for a new link.
    fn decoder<const F: usize>() -> Self::Decoder<F>;

    /// The next complete frame's body from `input`.
    fn next_frame<'d, const F: usize>(
        decoder: &'d mut Self::Decoder<F>,
        input: &mut &[u8],
    ) -> Result<Option<&'d [u8]>, FrameError>;

    /// Encodes `message` as one frame into `out`; its length.
    fn encode_frame(message: Message<'_>, out: &mut [u8]) -> Result<usize, crate::wire::Error>;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::Cobs {}
    impl Sealed for super::Stream {}
}

/// COBS frames ending in `0x00` ([`crate::frame::cobs`]): UARTs and other lossy lines. A
/// bad frame is skipped and counted ([`DriverStats::bad_frames`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Cobs;

/// Length-prefixed frames after a connection preamble ([`crate::frame::stream`]): TCP. A
/// bad preamble, length or CRC takes the link down ([`LinkCause::Frame`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Stream;

impl Framing for Cobs {
    type Decoder<const F: usize> = CobsDecoder<[u8; F]>;
    const GREETING: &'static [u8] = &[];
    const RESYNCHRONISES: bool = true;

    fn decoder<const F: usize>() -> Self::Decoder<F> {
        CobsDecoder::new([0; F], F)
    }

    fn next_frame<'d, const F: usize>(
        decoder: &'d mut Self::Decoder<F>,
        input: &mut &[u8],
    ) -> Result<Option<&'d [u8]>, FrameError> {
        decoder.push_frame(input)
    }

    #[inline] // generated only where a driver uses it: images without one stay the same
    fn encode_frame(message: Message<'_>, out: &mut [u8]) -> Result<usize, crate::wire::Error> {
        cobs::encode_frame(message, out)
    }
}

impl Framing for Stream {
    type Decoder<const F: usize> = (PreambleReader, StreamDecoder<[u8; F]>);
    const GREETING: &'static [u8] = &PREAMBLE;
    const RESYNCHRONISES: bool = false;

    fn decoder<const F: usize>() -> Self::Decoder<F> {
        (PreambleReader::new(), StreamDecoder::new([0; F], F))
    }

    fn next_frame<'d, const F: usize>(
        (preamble, frames): &'d mut Self::Decoder<F>,
        input: &mut &[u8],
    ) -> Result<Option<&'d [u8]>, FrameError> {
        if !preamble.push(input)? {
            return Ok(None);
        }
        frames.push_frame(input)
    }

    #[inline] // as for Cobs
    fn encode_frame(message: Message<'_>, out: &mut [u8]) -> Result<usize, crate::wire::Error> {
        stream::encode_frame(message, out)
    }
}

/// What one [`Driver::step`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Step {
    /// The node's timer fired and was handled.
    Timer,
    /// Bytes from `from` were handled: `frames` complete messages among them.
    Received {
        /// The peer.
        from: MemberId,
        /// Complete frames handed to the node.
        frames: usize,
    },
    /// The link to `peer` failed and was detached (the node was told); attach a new one to
    /// reconnect.
    LinkDown {
        /// The peer.
        peer: MemberId,
        /// Why.
        cause: LinkCause,
    },
}

/// Why a link was detached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum LinkCause {
    /// The peer closed it (a read returned 0 bytes).
    Closed,
    /// The transport failed.
    Io(embedded_io::ErrorKind),
    /// The byte stream cannot be trusted any more (wrong preamble, bad CRC, oversized
    /// frame on a stream link).
    Frame(FrameError),
}

/// Counters of what the driver moved and refused.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct DriverStats {
    /// Frames handed to the node.
    pub frames_in: u64,
    /// Frames written to links.
    pub frames_out: u64,
    /// Frames refused on a COBS link (bad CRC, bad stuffing, too large): skipped.
    pub bad_frames: u32,
    /// Intact frames whose message did not decode: skipped.
    pub bad_messages: u32,
    /// Messages for a peer with no link attached: not sent (the protocol resends).
    pub unlinked: u32,
    /// Messages too large for the frame buffer `F`: not sent.
    pub oversized: u32,
}

struct Link<T, W: Framing, const F: usize> {
    io: T,
    decoder: W::Decoder<F>,
    chunk: [u8; READ_CHUNK],
    /// A stream link still owes the peer its preamble.
    greet: bool,
}

/// A node driven over async links (see the [module docs](self)).
pub struct Driver<'n, S, L, T, C, W: Framing, const N: usize, const F: usize> {
    node: &'n mut Node<S, L, N>,
    links: [Option<Link<T, W, F>>; N],
    /// Zero-sized: the framing is the type `W`.
    _framing: W,
    clock: C,
    scratch: [u8; F],
    stats: DriverStats,
}

impl<'n, S, L, T, C, W, const N: usize, const F: usize> Driver<'n, S, L, T, C, W, N, F>
where
    S: StableStore,
    L: LogStore,
    T: Read + Write,
    C: Clock,
    W: Framing,
{
    /// A driver for `node` with no link attached yet. The node stays where it is (a
    /// `static` on a board) and is the caller's again when the driver is dropped.
    #[cfg_attr(target_pointer_width = "32", inline(never))]
    pub fn new(node: &'n mut Node<S, L, N>, framing: W, clock: C) -> Self {
        Driver {
            node,
            links: [const { None }; N],
            _framing: framing,
            clock,
            scratch: [0; F],
            stats: DriverStats::default(),
        }
    }

    /// The node.
    pub fn node(&self) -> &Node<S, L, N> {
        self.node
    }

    /// The node, to append, change membership or poll events between steps.
    pub fn node_mut(&mut self) -> &mut Node<S, L, N> {
        self.node
    }

    /// The clock.
    pub fn clock(&self) -> &C {
        &self.clock
    }

    /// Counters.
    pub fn stats(&self) -> &DriverStats {
        &self.stats
    }

    /// Attaches `io` as the link to `peer` (replacing any old one) and starts the
    /// handshake over it.
    pub fn attach(&mut self, peer: MemberId, io: T) {
        if let Some(slot) = self.links.get_mut(peer.index()) {
            let greet = !W::GREETING.is_empty();
            *slot = Some(Link { io, decoder: W::decoder(), chunk: [0; READ_CHUNK], greet });
            self.node.disconnect(peer);
            self.node.connect(peer);
        }
    }

    /// Detaches the link to `peer` and gives its transport back.
    pub fn detach(&mut self, peer: MemberId) -> Option<T> {
        let link = self.links.get_mut(peer.index())?.take()?;
        self.node.disconnect(peer);
        Some(link.io)
    }

    /// Whether a link to `peer` is attached.
    pub fn is_attached(&self, peer: MemberId) -> bool {
        self.links.get(peer.index()).is_some_and(Option::is_some)
    }

    /// Sends what the node has to send, then waits for the first of: bytes on a link, the
    /// node's timer. Handles it and says what it was.
    pub async fn step(&mut self) -> Step {
        if let Some(down) = self.send_all().await {
            return down;
        }
        let deadline = self.node.poll_timeout();
        let woke = {
            let Driver { links, clock, .. } = self;
            let timer = async {
                match deadline {
                    Some(at) => clock.sleep_until(at).await,
                    None => pending::<()>().await,
                }
            };
            let reads = pin!(links.each_mut().map(read_some));
            select(timer, select_slice(reads)).await
        };
        match woke {
            Either::First(()) => {
                self.node.handle_timeout(self.clock.now());
                Step::Timer
            }
            Either::Second((result, index)) => self.received(index, result),
        }
    }

    /// Hands the bytes read from link `index` to the node.
    fn received(&mut self, index: usize, result: Result<usize, LinkCause>) -> Step {
        let peer = member_at(index);
        let read = match result {
            Ok(0) => Err(LinkCause::Closed),
            other => other,
        };
        let n = match read {
            Ok(n) => n,
            Err(cause) => return self.link_down(peer, cause),
        };
        let now = self.clock.now();
        let Driver { node, links, stats, .. } = self;
        let Some(Some(link)) = links.get_mut(index) else { return Step::Timer };
        let mut input = link.chunk.get(..n).unwrap_or_default();
        let mut frames = 0;
        while !input.is_empty() {
            match W::next_frame(&mut link.decoder, &mut input) {
                Ok(Some(body)) => {
                    frames += 1;
                    stats.frames_in = stats.frames_in.saturating_add(1);
                    match Message::decode(body) {
                        Ok(msg) => node.handle(now, peer, &msg),
                        Err(_) => stats.bad_messages = stats.bad_messages.saturating_add(1),
                    }
                }
                Ok(None) => break,
                Err(FrameError::Message(_)) => {
                    stats.bad_messages = stats.bad_messages.saturating_add(1);
                }
                Err(_) if W::RESYNCHRONISES => {
                    stats.bad_frames = stats.bad_frames.saturating_add(1);
                }
                Err(e) => return self.link_down(peer, LinkCause::Frame(e)),
            }
        }
        Step::Received { from: peer, frames }
    }

    fn link_down(&mut self, peer: MemberId, cause: LinkCause) -> Step {
        if let Some(slot) = self.links.get_mut(peer.index()) {
            *slot = None;
        }
        self.node.disconnect(peer);
        Step::LinkDown { peer, cause }
    }

    /// Writes every message the node has queued, then flushes the links written to; the
    /// first link that fails is detached.
    async fn send_all(&mut self) -> Option<Step> {
        let mut written = MemberSet::EMPTY;
        for (index, slot) in self.links.iter_mut().enumerate() {
            let Some(link) = slot.as_mut().filter(|l| l.greet) else { continue };
            link.greet = false;
            let peer = member_at(index);
            written.insert(peer);
            if let Err(e) = link.io.write_all(W::GREETING).await.map_err(io_cause) {
                return Some(self.link_down(peer, e));
            }
        }
        while let Some((to, len)) = self.encode_next() {
            let Some(Some(link)) = self.links.get_mut(to.index()) else {
                self.stats.unlinked = self.stats.unlinked.saturating_add(1);
                continue;
            };
            let frame = self.scratch.get(..len).unwrap_or_default();
            if let Err(e) = link.io.write_all(frame).await.map_err(io_cause) {
                return Some(self.link_down(to, e));
            }
            written.insert(to);
            self.stats.frames_out = self.stats.frames_out.saturating_add(1);
        }
        while let Some(peer) = written.pop_first() {
            let Some(Some(link)) = self.links.get_mut(peer.index()) else { continue };
            if let Err(e) = link.io.flush().await.map_err(io_cause) {
                return Some(self.link_down(peer, e));
            }
        }
        None
    }

    /// Encodes the node's next message into the scratch buffer: its recipient and length.
    /// A message too large for `F` is counted and skipped.
    fn encode_next(&mut self) -> Option<(MemberId, usize)> {
        loop {
            let transmit = self.node.poll_transmit()?;
            match W::encode_frame(transmit.message, &mut self.scratch) {
                Ok(len) => return Some((transmit.to, len)),
                Err(_) => self.stats.oversized = self.stats.oversized.saturating_add(1),
            }
        }
    }
}

/// Reads a chunk from a link; a missing link never completes.
async fn read_some<T: Read, W: Framing, const F: usize>(
    link: &mut Option<Link<T, W, F>>,
) -> Result<usize, LinkCause> {
    match link {
        Some(link) => link.io.read(&mut link.chunk).await.map_err(io_cause),
        None => pending().await,
    }
}

fn member_at(index: usize) -> MemberId {
    MemberId::new(u8::try_from(index).unwrap_or(u8::MAX))
}

fn io_cause<E: embedded_io::Error>(e: E) -> LinkCause {
    LinkCause::Io(e.kind())
}
