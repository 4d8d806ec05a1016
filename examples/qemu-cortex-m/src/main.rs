//! A three-node harp group on one Cortex-M3 (QEMU's lm3s6965evb), with no allocator.
//!
//! Three [`Node`]s share the chip; their "network" is a byte queue per direction, and every
//! message crosses it as a stream frame (length, message, CRC-32C) that the receiver's
//! [`StreamDecoder`] checks and [`Message::decode`] decodes: the real codec and framing, as
//! over TCP. Time is simulated (milliseconds), so the run is deterministic.
//!
//! The story: a master is elected; a batch of entries is replicated and reported durable;
//! the master "crashes" (it stops, its links go quiet); the two survivors elect a new master,
//! which must hold every durable entry; it writes more; the old master restarts from its
//! flash (its election record through [`NorFlashStore`], its log through [`NorFlashLog`],
//! each in its own partition of the node's one flash chip), rejoins as a replica and catches
//! up. The result is printed with defmt (over semihosting) and the firmware exits with a
//! semihosting status: 0 when every check held.
//!
//! Run it: `cargo run --release -p harp-qemu-cortex-m` in `examples/` (see docs/firmware.md).
#![no_std]
#![no_main]

use core::cell::RefCell;
use core::fmt::Write as _;

use cortex_m_semihosting::debug::{self, EXIT_FAILURE, EXIT_SUCCESS};
use defmt_semihosting as _;
use embassy_embedded_hal::flash::partition::BlockingPartition;
use embassy_sync::blocking_mutex::{raw::CriticalSectionRawMutex, Mutex};
use harp::election::Role;
use harp::embedded_storage::nor_flash::{ErrorType, NorFlash, NorFlashErrorKind, ReadNorFlash};
use harp::frame::stream::{self, StreamDecoder};
use harp::heapless::{String, Vec};
use harp::membership::{Member, MemberId, Membership};
use harp::node::{Node, NodeConfig, NodeEvent};
use harp::replication::{LogStore, NorFlashLog};
use harp::storage::NorFlashStore;
use harp::wire::Message;
use harp::NodeType;
use static_cell::ConstStaticCell;

/// Members of the group.
const N: usize = 3;
/// Entries written before the crash, and after it.
const BATCH: usize = 24;
/// Give up on a phase after this much simulated time.
const PHASE_LIMIT_MS: u64 = 10_000;

/// Each node's flash chip: the election record's two 1 KiB pages (the lm3s6965's erase
/// unit), then the log's six. A board shares its one flash driver the same way: a mutex
/// around it, and a partition for each store, which sees its own range from offset 0.
type Chip = Mutex<CriticalSectionRawMutex, RefCell<Flash<{ (STORE_PAGES + LOG_PAGES) * PAGE }>>>;
type Partition = BlockingPartition<
    'static,
    CriticalSectionRawMutex,
    Flash<{ (STORE_PAGES + LOG_PAGES) * PAGE }>,
>;
/// Each node's log: 64 entries and 1 KiB of payload in RAM, recorded in its partition of
/// flash, from which a restart replays it.
type Log = NorFlashLog<Partition, 64, 1024, LOG_PAGES>;
/// Each node's election record, in its partition.
type Store = NorFlashStore<Partition>;
type GroupNode = Node<Store, &'static mut Log, N>;
const PAGE: usize = 1024;
const STORE_PAGES: usize = 2;
const LOG_PAGES: usize = 6;

/// `SIZE` bytes of NOR flash, emulated in RAM (QEMU's lm3s6965 cannot program its flash):
/// a board passes its HAL's flash driver instead, which implements the same `NorFlash`
/// trait. Programming only clears bits; a word is programmed once between erases.
struct Flash<const SIZE: usize> {
    bytes: [u8; SIZE],
}

impl<const SIZE: usize> Flash<SIZE> {
    const fn erased() -> Self {
        Flash { bytes: [0xFF; SIZE] }
    }

    fn range(&self, at: u32, len: usize) -> Result<core::ops::Range<usize>, NorFlashErrorKind> {
        let at = at as usize;
        let end = at.checked_add(len).filter(|&end| end <= self.bytes.len());
        end.map(|end| at..end).ok_or(NorFlashErrorKind::OutOfBounds)
    }
}

impl<const SIZE: usize> ErrorType for Flash<SIZE> {
    type Error = NorFlashErrorKind;
}

impl<const SIZE: usize> ReadNorFlash for Flash<SIZE> {
    const READ_SIZE: usize = 1;

    fn read(&mut self, at: u32, out: &mut [u8]) -> Result<(), NorFlashErrorKind> {
        out.copy_from_slice(&self.bytes[self.range(at, out.len())?]);
        Ok(())
    }

    fn capacity(&self) -> usize {
        self.bytes.len()
    }
}

impl<const SIZE: usize> NorFlash for Flash<SIZE> {
    const WRITE_SIZE: usize = 4;
    const ERASE_SIZE: usize = PAGE;

    fn erase(&mut self, from: u32, to: u32) -> Result<(), NorFlashErrorKind> {
        let range = self.range(from, to.saturating_sub(from) as usize)?;
        self.bytes[range].fill(0xFF);
        Ok(())
    }

    fn write(&mut self, at: u32, data: &[u8]) -> Result<(), NorFlashErrorKind> {
        let range = self.range(at, data.len())?;
        for (cell, byte) in self.bytes[range].iter_mut().zip(data) {
            if *cell != 0xFF {
                return Err(NorFlashErrorKind::Other); // programmed twice
            }
            *cell = *byte;
        }
        Ok(())
    }
}

// Everything big lives in statics built at compile time (`ConstStaticCell`): nothing this
// size is ever assembled on the stack and copied.
static CHIPS: [Chip; N] = [const { Mutex::new(RefCell::new(Flash::erased())) }; N];
/// One log per chip (spelled out: each refers to its own chip).
static LOGS: ConstStaticCell<[Log; N]> =
    ConstStaticCell::new([log_on(&CHIPS[0]), log_on(&CHIPS[1]), log_on(&CHIPS[2])]);
static GROUP: ConstStaticCell<Group> = ConstStaticCell::new(Group::new());

/// The record's partition of a chip: its first pages (checked at compile time to be whole
/// erase units).
const fn store_partition(chip: &'static Chip) -> Partition {
    BlockingPartition::new(chip, 0, (STORE_PAGES * PAGE) as u32)
}

/// A log in the rest of a chip (`const`, so the logs are built in their static).
const fn log_on(chip: &'static Chip) -> Log {
    let partition =
        BlockingPartition::new(chip, (STORE_PAGES * PAGE) as u32, (LOG_PAGES * PAGE) as u32);
    Log::new(partition, 0, PAGE as u32)
}

/// One direction of a link: the framed bytes in flight.
struct Link {
    bytes: Vec<u8, 1024>,
    /// Frames that did not fit (the link is lossy when full; the protocol retransmits).
    overflows: u32,
}

impl Link {
    const fn new() -> Self {
        Link { bytes: Vec::new(), overflows: 0 }
    }
}

/// Exchanges at one instant before the clock moves on anyway.
const ROUNDS_PER_INSTANT: u32 = 1_000;

/// Three nodes, their links (`links[from][to_slot(from, to)]`: none to itself) and the
/// simulated clock.
struct Group {
    nodes: [Option<GroupNode>; N],
    /// The stores of a crashed node, until it restarts.
    parked: [Option<(Store, &'static mut Log)>; N],
    links: [[Link; N - 1]; N],
    now: u64,
    frames: u32,
    bytes: u32,
}

fn members() -> Membership<N> {
    let mut group = Membership::named("firmware").unwrap_or_default();
    for (id, name) in (1u32..).zip(["n1", "n2", "n3"]) {
        if let Ok(member) = Member::new(name, NodeType::Electable, 1, id) {
            let _ = group.add(member);
        }
    }
    group
}

/// Where the link from `from` to `to` (another node) sits in `links[from]`.
fn to_slot(from: usize, to: usize) -> usize {
    if to < from {
        to
    } else {
        to - 1
    }
}

fn id(index: usize) -> MemberId {
    MemberId::new(index as u8)
}

impl Group {
    const fn new() -> Self {
        Group {
            nodes: [const { None }; N],
            parked: [const { None }; N],
            links: [const { [const { Link::new() }; N - 1] }; N],
            now: 0,
            frames: 0,
            bytes: 0,
        }
    }

    fn start_node(&mut self, i: usize, mut store: Store, log: &'static mut Log) -> bool {
        let seed = 0x5eed_0000 + i as u64 + self.now;
        let (members, config) = (members(), NodeConfig::default());
        // What can fail first (it reads the election record); then the node is built in its
        // slot, not moved there through the stack inside a `Result`.
        let Ok(restored) = GroupNode::restore(&members, id(i), &config, &mut store) else {
            return false;
        };
        self.nodes[i] = Some(Node::start(restored, members, config, store, log, seed, self.now));
        for j in 0..N {
            if j != i && self.nodes[j].is_some() {
                self.links[i][to_slot(i, j)] = Link::new();
                self.links[j][to_slot(j, i)] = Link::new();
                self.connect(i, j);
                self.connect(j, i);
            }
        }
        true
    }

    fn connect(&mut self, i: usize, j: usize) {
        if let Some(node) = self.nodes[i].as_mut() {
            node.connect(id(j));
        }
    }

    /// Node `i` stops dead: no shutdown message; its peers see the link drop.
    fn crash(&mut self, i: usize) {
        if let Some(node) = self.nodes[i].take() {
            self.parked[i] = Some(node.into_stores());
        }
        for j in 0..N {
            if j != i {
                self.links[i][to_slot(i, j)] = Link::new();
                self.links[j][to_slot(j, i)] = Link::new();
            }
            if let Some(node) = self.nodes[j].as_mut() {
                node.disconnect(id(i));
            }
        }
    }

    /// Node `i` starts again with what survives a power cycle, its flash: the store scans
    /// its sectors again, and the log is replayed from its own (its RAM copy is rebuilt).
    fn restart(&mut self, i: usize) -> bool {
        let Some((store, log)) = self.parked[i].take() else { return false };
        if log.open().is_err() {
            return false;
        }
        match NorFlashStore::new(store.into_inner(), 0, PAGE as u32) {
            Ok(store) => self.start_node(i, store, log),
            Err(_) => false,
        }
    }

    /// Moves every queued message: sends what each node has, delivers what each link holds.
    /// Returns whether anything moved.
    fn exchange(&mut self) -> bool {
        let mut moved = false;
        let mut frame = [0u8; 256];
        for i in 0..N {
            let Some(node) = self.nodes[i].as_mut() else { continue };
            while let Some(t) = node.poll_transmit() {
                let to = t.to.index();
                let Ok(n) = stream::encode_frame(t.message, &mut frame) else { continue };
                let link = &mut self.links[i][to_slot(i, to)];
                if link.bytes.extend_from_slice(&frame[..n]).is_err() {
                    link.overflows += 1;
                }
                moved = true;
            }
        }
        let now = self.now;
        for from in 0..N {
            for to in (0..N).filter(|&to| to != from) {
                let (links, nodes) = (&mut self.links, &mut self.nodes);
                let link = &mut links[from][to_slot(from, to)];
                if link.bytes.is_empty() {
                    continue;
                }
                moved = true;
                let Some(node) = nodes[to].as_mut() else {
                    link.bytes.clear();
                    continue;
                };
                // The receiver's end of the link: it checks each frame's length and CRC.
                let mut decoder = StreamDecoder::new([0u8; 256], 248);
                let mut input = &link.bytes[..];
                while !input.is_empty() {
                    match decoder.push_frame(&mut input) {
                        Ok(Some(body)) => {
                            self.frames += 1;
                            self.bytes += body.len() as u32;
                            if let Ok(msg) = Message::decode(body) {
                                node.handle(now, id(from), &msg);
                            }
                        }
                        Ok(None) | Err(_) => break,
                    }
                }
                link.bytes.clear();
            }
        }
        moved
    }

    /// Runs until `done` holds or `limit` ms pass; returns whether `done` held.
    fn run_until(&mut self, limit: u64, mut done: impl FnMut(&mut Self) -> bool) -> bool {
        let deadline = self.now + limit;
        loop {
            let mut rounds = 0;
            while self.exchange() && rounds < ROUNDS_PER_INSTANT {
                rounds += 1;
            }
            if done(self) {
                return true;
            }
            let next = self
                .nodes
                .iter()
                .flatten()
                .filter_map(|n| n.poll_timeout())
                .min()
                .unwrap_or(deadline)
                .max(self.now + 1);
            if next > deadline {
                return false;
            }
            self.now = next;
            for node in self.nodes.iter_mut().flatten() {
                if node.poll_timeout().is_some_and(|t| t <= self.now) {
                    node.handle_timeout(self.now);
                }
            }
        }
    }

    fn master(&self) -> Option<usize> {
        (0..N).find(|&i| self.nodes[i].as_ref().is_some_and(|n| n.role() == Role::Master))
    }

    fn drain_events(&mut self) {
        for node in self.nodes.iter_mut().flatten() {
            while let Some(event) = node.poll_event() {
                if let NodeEvent::Election(e) = event {
                    defmt::debug!("t={=u64} ms: {}", self.now, e);
                }
            }
        }
    }

    /// Appends `count` entries on `master` and waits until the last is durable; returns the
    /// VLSNs written.
    fn write_batch(
        &mut self,
        master: usize,
        first: usize,
        count: usize,
    ) -> Option<Vec<u64, BATCH>> {
        let mut vlsns = Vec::new();
        for k in first..first + count {
            let data = payload(k);
            let node = self.nodes[master].as_mut()?;
            let vlsn = node.append(1, data.as_bytes()).ok()?;
            vlsns.push(vlsn).ok()?;
            // Let the stream move between appends, as a real application would.
            while self.exchange() {}
        }
        let last = *vlsns.last()?;
        let durable = self.run_until(PHASE_LIMIT_MS, |g| {
            g.nodes[master].as_ref().is_some_and(|n| n.durable_vlsn() >= last)
        });
        durable.then_some(vlsns)
    }

    /// Whether node `i` holds entry `k` of the workload at `vlsn`.
    fn holds(&self, i: usize, vlsn: u64, k: usize) -> bool {
        let Some(node) = self.nodes[i].as_ref() else { return false };
        node.log().entry(vlsn).is_some_and(|e| e.data == payload(k).as_bytes())
    }
}

/// The `k`th entry's payload.
fn payload(k: usize) -> String<24> {
    let mut s = String::new();
    let _ = write!(s, "entry {k:05}");
    s
}

fn fail(what: &str) -> ! {
    defmt::error!("FAILED: {=str}", what);
    debug::exit(EXIT_FAILURE);
    loop {
        cortex_m::asm::wfi();
    }
}

/// Stack measurement: the free stack is painted at start; the untouched part at the end is
/// what was never used. (The only `unsafe` here: raw reads and writes of the free stack.)
mod stack {
    const PAINT: u32 = 0xC0FF_EE00;

    extern "C" {
        static mut _stack_end: u32;
        static _stack_start: u32;
    }

    fn bottom() -> *mut u32 {
        core::ptr::addr_of_mut!(_stack_end)
    }

    fn top() -> usize {
        core::ptr::addr_of!(_stack_start) as usize
    }

    /// Paints from the stack's lowest address up to a little below the current frame.
    pub fn paint() {
        let sp = cortex_m::register::msp::read() as usize - 256;
        let mut p = bottom();
        while (p as usize) < sp {
            // SAFETY: between the end of .bss and below the live stack: unused RAM.
            unsafe { p.write_volatile(PAINT) };
            p = p.wrapping_add(1);
        }
    }

    /// The most stack ever used since `paint`, in bytes.
    pub fn high_water() -> usize {
        let mut p = bottom();
        // SAFETY: reads RAM between the end of .bss and the stack top.
        while (p as usize) < top() && unsafe { p.read_volatile() } == PAINT {
            p = p.wrapping_add(1);
        }
        top() - p as usize
    }
}

/// A fault ends the run as a failure rather than hanging until the runner's timeout. (A
/// stack overflow, which flip-link turns into a fault at the bottom of RAM, leaves no stack
/// for this handler: the core locks up, and QEMU exits with an error status.)
#[cortex_m_rt::exception]
unsafe fn HardFault(frame: &cortex_m_rt::ExceptionFrame) -> ! {
    defmt::error!("hard fault at pc {=u32:#x}", frame.pc());
    fail("hard fault")
}

#[cortex_m_rt::entry]
fn main() -> ! {
    stack::paint();
    let logs = LOGS.take();
    let group = GROUP.take();
    defmt::info!("starting {=usize} nodes", N);
    for (i, (chip, log)) in CHIPS.iter().zip(logs.iter_mut()).enumerate() {
        let Ok(store) = NorFlashStore::new(store_partition(chip), 0, PAGE as u32) else {
            fail("the flash store does not fit the flash")
        };
        if log.open().is_err() {
            fail("the flash log does not open");
        }
        if !group.start_node(i, store, log) {
            fail("a node did not start");
        }
    }
    defmt::info!(
        "harp on a Cortex-M3: {=usize} nodes, {=usize} bytes of state each (log apart)",
        N,
        core::mem::size_of::<GroupNode>()
    );

    // 1. A master is elected.
    if !group.run_until(PHASE_LIMIT_MS, |g| g.master().is_some()) {
        fail("no master elected");
    }
    group.drain_events();
    let Some(first) = group.master() else { fail("no master") };
    defmt::info!("elected: n{=usize} is master at t={=u64} ms", first + 1, group.now);

    // 2. A batch is replicated and durable.
    let Some(before) = group.write_batch(first, 0, BATCH) else { fail("first batch not durable") };
    let durable = group.nodes[first].as_ref().map_or(0, |n| n.durable_vlsn());
    defmt::info!("replicated: {=usize} entries durable (DTVLSN {=u64})", before.len(), durable);

    // 3. The master crashes; the survivors elect a new one.
    let Some(promised) =
        group.nodes[first].as_ref().map(|n| (n.election().term(), n.election().vote()))
    else {
        fail("no master")
    };
    group.crash(first);
    let crashed_at = group.now;
    if !group.run_until(PHASE_LIMIT_MS, |g| g.master().is_some_and(|m| m != first)) {
        fail("no new master after the crash");
    }
    group.drain_events();
    let Some(second) = group.master() else { fail("no master") };
    defmt::info!(
        "failover: n{=usize} crashed, n{=usize} is master after {=u64} ms",
        first + 1,
        second + 1,
        group.now - crashed_at
    );

    // 4. No durable entry is lost: the new master holds every one.
    for (k, &vlsn) in before.iter().enumerate() {
        if !group.holds(second, vlsn, k) {
            fail("the new master lost a durable entry");
        }
    }
    defmt::info!("checked: all {=usize} durable entries are on the new master", before.len());

    // 5. The new master writes more, with one node down (a majority of two).
    let Some(after) = group.write_batch(second, BATCH, BATCH) else {
        fail("second batch not durable")
    };

    // 6. The old master restarts from its stores and catches up as a replica. Its term and
    //    vote come back from its flash.
    if !group.restart(first) {
        fail("the old master did not restart");
    }
    let restored = group.nodes[first].as_ref().map(|n| (n.election().term(), n.election().vote()));
    if restored != Some(promised) {
        fail("the restarted node lost its term or vote");
    }
    for (k, &vlsn) in before.iter().enumerate() {
        if !group.holds(first, vlsn, k) {
            fail("the restarted node's log lost an entry it held");
        }
    }
    defmt::info!(
        "restarted: n{=usize} read term {=u64}, its vote and its {=usize} entries back from flash",
        first + 1,
        promised.0,
        before.len()
    );
    let last = after.last().copied().unwrap_or(0);
    let caught_up = group.run_until(PHASE_LIMIT_MS, |g| {
        g.nodes[first].as_ref().is_some_and(|n| {
            matches!(n.role(), Role::Replica { .. }) && n.log().last_vlsn() >= last
        })
    });
    if !caught_up {
        fail("the old master did not catch up");
    }
    for i in 0..N {
        let all = before.iter().chain(after.iter()).enumerate();
        for (k, &vlsn) in all {
            if !group.holds(i, vlsn, k) {
                fail("a node lacks a durable entry after the catch-up");
            }
        }
    }
    let overflows: u32 = group.links.iter().flatten().map(|l| l.overflows).sum();
    defmt::info!(
        "caught up: n{=usize} rejoined; {=usize} durable entries on every node; {=u32} frames, {=u32} message bytes, {=u32} link overflows, {=u64} ms simulated",
        first + 1,
        before.len() + after.len(),
        group.frames,
        group.bytes,
        overflows,
        group.now
    );
    defmt::info!("stack: {=usize} bytes used at most", stack::high_water());
    defmt::info!("PASS");
    debug::exit(EXIT_SUCCESS);
    loop {
        cortex_m::asm::wfi();
    }
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    fail("panic")
}
