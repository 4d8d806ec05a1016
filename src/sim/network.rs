//! The simulated network and the event queue: delays, loss, duplication, partitions.

use super::Options;
use crate::rng::SplitMix64;
use alloc::collections::BinaryHeap;
use alloc::vec::Vec;
use core::cmp::{Ordering, Reverse};

/// Something that happens at a simulated instant.
#[derive(Debug)]
pub(super) enum Kind {
    /// `link` is the link's epoch when the message was sent: a crash of either end breaks
    /// the link (as a TCP connection breaks), and what was in flight on it is lost.
    Deliver {
        from: usize,
        to: usize,
        link: u64,
        bytes: Vec<u8>,
    },
    Timer {
        node: usize,
    },
    Fault,
    Restart {
        node: usize,
    },
    Heal,
    Calm,
    CrashMaster,
    Write,
    Halt {
        node: usize,
        /// When its graceful shutdown began (a later shutdown has its own `Halt`).
        since: u64,
    },
    Retire {
        node: usize,
        vlsn: u64,
    },
    Restore {
        node: usize,
    },
}

#[derive(Debug)]
struct Scheduled {
    at: u64,
    seq: u64,
    kind: Kind,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scheduled {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

/// The event queue and the links between nodes.
pub(super) struct Network {
    queue: BinaryHeap<Reverse<Scheduled>>,
    seq: u64,
    /// Nodes in the set are cut off from nodes outside it (0: no partition).
    side: u32,
    /// Only what the nodes in `side` send to the others is lost; the others still reach
    /// them (a one-way partition: a half-broken link, a firewall rule in one direction).
    one_way: bool,
    /// When the current partition began.
    since: u64,
    /// Loss and duplication happen only while faults are on.
    pub(super) faulty: bool,
    max_delay_ms: u64,
    drop_per_million: u32,
    duplicate_per_million: u32,
    pub(super) delivered: u64,
    pub(super) dropped: u64,
    /// Per link (from * 32 + to): the latest delivery time scheduled, to keep links FIFO.
    link_tail: alloc::collections::BTreeMap<usize, u64>,
    /// Per node: how many times it crashed (the epoch of its links).
    epochs: Vec<u64>,
}

impl Network {
    pub(super) fn new(opts: &Options) -> Self {
        Network {
            queue: BinaryHeap::new(),
            seq: 0,
            side: 0,
            one_way: false,
            since: 0,
            faulty: false,
            max_delay_ms: opts.max_delay_ms.max(1),
            drop_per_million: opts.drop_per_million,
            duplicate_per_million: opts.duplicate_per_million,
            delivered: 0,
            dropped: 0,
            link_tail: alloc::collections::BTreeMap::new(),
            epochs: Vec::new(),
        }
    }

    pub(super) fn schedule(&mut self, at: u64, kind: Kind) {
        self.seq += 1;
        self.queue.push(Reverse(Scheduled { at, seq: self.seq, kind }));
    }

    /// The next event due no later than `until`.
    pub(super) fn next_before(&mut self, until: u64) -> Option<(u64, Kind)> {
        if self.queue.peek().is_some_and(|Reverse(s)| s.at <= until) {
            return self.next();
        }
        None
    }

    pub(super) fn next(&mut self) -> Option<(u64, Kind)> {
        self.queue.pop().map(|Reverse(s)| (s.at, s.kind))
    }

    /// Cuts the nodes in `side` off from the others from `now` on (replacing any partition):
    /// both ways, or with `one_way` only what they send.
    pub(super) fn partition(&mut self, side: u32, one_way: bool, now: u64) {
        self.side = side;
        self.one_way = one_way;
        self.since = now;
    }

    /// When the current partition began, if there is one.
    pub(super) fn partitioned_since(&self) -> Option<u64> {
        (self.side != 0).then_some(self.since)
    }

    /// The longest a message sent at `t` can take to arrive (a duplicate included):
    /// `8 * max_delay_ms` while faults are on, a link's FIFO order aside.
    pub(super) fn longest_flight_ms(&self) -> u64 {
        8 * self.max_delay_ms
    }

    pub(super) fn heal(&mut self) {
        self.side = 0;
    }

    /// Whether a message from `from` reaches `to` (the partition aside from loss).
    pub(super) fn reaches(&self, from: usize, to: usize) -> bool {
        let on = |i: usize| self.side & (1u32 << i) != 0;
        on(from) == on(to) || (self.one_way && !on(from))
    }

    /// Whether `a` and `b` reach each other both ways.
    pub(super) fn connected(&self, a: usize, b: usize) -> bool {
        self.reaches(a, b) && self.reaches(b, a)
    }

    /// Puts a message on the wire; returns true if it was lost. A partition is checked when
    /// the message is sent (a message already in flight when a partition starts arrives).
    /// The current epoch of the link between `a` and `b` (either direction).
    pub(super) fn link_epoch(&self, a: usize, b: usize) -> u64 {
        self.epochs.get(a).copied().unwrap_or(0) + self.epochs.get(b).copied().unwrap_or(0)
    }

    /// Node `i` crashed: every link to it breaks.
    pub(super) fn break_links(&mut self, i: usize) {
        if self.epochs.len() <= i {
            self.epochs.resize(i + 1, 0);
        }
        if let Some(e) = self.epochs.get_mut(i) {
            *e += 1;
        }
    }

    pub(super) fn send(
        &mut self,
        rng: &mut SplitMix64,
        now: u64,
        from: usize,
        to: usize,
        bytes: Vec<u8>,
    ) -> bool {
        let link = self.link_epoch(from, to);
        if !self.reaches(from, to) || (self.faulty && rng.chance(self.drop_per_million)) {
            self.dropped += 1;
            return true;
        }
        // Links are FIFO, as TCP and UART links are, except that while faults are on a
        // message sometimes overtakes the ones before it (1 %).
        let spread = if self.faulty { self.max_delay_ms * 4 } else { self.max_delay_ms };
        let mut at = now + 1 + rng.below(spread);
        let tail = self.link_tail.entry(from * 32 + to).or_insert(0);
        if !(self.faulty && rng.chance(10_000)) {
            at = at.max(*tail);
        }
        *tail = (*tail).max(at);
        if self.faulty && rng.chance(self.duplicate_per_million) {
            let again = at + rng.below(spread);
            self.schedule(again, Kind::Deliver { from, to, link, bytes: bytes.clone() });
        }
        self.schedule(at, Kind::Deliver { from, to, link, bytes });
        false
    }
}
