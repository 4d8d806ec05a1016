//! A deterministic simulator of a whole group in one process (feature `sim`).
//!
//! Every node runs the real [`Election`] state machine. The simulated network drops,
//! duplicates, delays and reorders messages and partitions the group; nodes crash (memory is
//! lost, the stable store survives) and restart; every node's clock drifts. A run is a pure
//! function of its seed. Every message goes through the real encoder and decoder.
//!
//! After every step the [`checker`] verifies: at most one master per term, ever; terms and
//! promises never go backwards on any node, restarts included; a node becomes master of `T`
//! only when a quorum's stable stores hold a vote for it in `T`. After the faults stop, a
//! master that every member follows must exist within [`Options::liveness_bound_ms`].
//!
//! ```
//! let report = harp::sim::run(7, &harp::sim::Options::default());
//! assert!(report.violations.is_empty(), "{:?}", report.violations);
//! assert!(report.elections >= 1);
//! ```

pub mod checker;
mod network;

use crate::election::{Config, Election, Event};
use crate::membership::{Member, MemberId, Membership};
use crate::rng::SplitMix64;
use crate::storage::{ElectionRecord, StableStore, MAX_RECORD};
use crate::wire::Message;
use crate::{MessageRef, NodeType};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use checker::Checker;
use network::{Kind, Network};

/// The largest group the simulator draws.
pub const MAX_NODES: usize = 7;

/// What a run simulates.
#[derive(Debug, Clone)]
pub struct Options {
    /// The election timings every node uses.
    pub election: Config,
    /// Faults start after this long (the first election runs on a quiet network, and the
    /// checker verifies the best-ranked candidate won it).
    pub quiet_ms: u64,
    /// Then faults happen for this long.
    pub fault_ms: u64,
    /// Then the network heals, every node restarts, and the run goes on this long.
    pub calm_ms: u64,
    /// After the faults stop, a master followed by every member must exist within this bound.
    pub liveness_bound_ms: u64,
    /// Largest one-way message delay.
    pub max_delay_ms: u64,
    /// Chance per million that a message is dropped, and that it is duplicated (fault phase).
    pub drop_per_million: u32,
    /// See `drop_per_million`.
    pub duplicate_per_million: u32,
    /// Largest clock drift, in parts per million, either way.
    pub max_drift_ppm: u64,
    /// Record a readable trace of the run.
    pub trace: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            election: Config::default(),
            quiet_ms: 3_000,
            fault_ms: 8_000,
            calm_ms: 5_000,
            liveness_bound_ms: 4_000,
            max_delay_ms: 25,
            drop_per_million: 50_000,
            duplicate_per_million: 20_000,
            max_drift_ppm: 10_000,
            trace: false,
        }
    }
}

/// What one run saw.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// The seed.
    pub seed: u64,
    /// Group size.
    pub nodes: usize,
    /// Safety or liveness violations (empty on success); the run stops at the first.
    pub violations: Vec<String>,
    /// Terms won (BecameMaster events).
    pub elections: u32,
    /// Node crashes.
    pub crashes: u32,
    /// Partitions.
    pub partitions: u32,
    /// Messages delivered.
    pub delivered: u64,
    /// Messages dropped (by loss, partition or a down node).
    pub dropped: u64,
    /// For every crash of a master: milliseconds until some node became master again.
    pub failovers_ms: Vec<u64>,
    /// Milliseconds from the end of the faults to a master every member follows.
    pub recovery_ms: Option<u64>,
    /// After recovery, the master is crashed once on a quiet network: milliseconds until
    /// another node became master (None if the rest cannot form a quorum).
    pub clean_failover_ms: Option<u64>,
    /// The readable trace, if asked for.
    pub trace: Vec<String>,
}

/// A stable store that survives crashes and tells the checker every record written.
#[derive(Debug, Default)]
pub struct SimStore {
    record: Option<Vec<u8>>,
    written: Vec<ElectionRecord>,
    fail_writes: bool,
}

impl StableStore for SimStore {
    type Error = &'static str;

    fn read(&mut self, buf: &mut [u8; MAX_RECORD]) -> Result<Option<usize>, &'static str> {
        let Some(record) = &self.record else { return Ok(None) };
        let dst = buf.get_mut(..record.len()).ok_or("record too large")?;
        dst.copy_from_slice(record);
        Ok(Some(record.len()))
    }

    fn write(&mut self, record: &[u8]) -> Result<(), &'static str> {
        if self.fail_writes {
            return Err("injected write failure");
        }
        let decoded = ElectionRecord::decode(record).map_err(|_| "unreadable record")?;
        self.record = Some(record.to_vec());
        self.written.push(decoded);
        Ok(())
    }
}

type SimElection = Election<SimStore, MAX_NODES>;

/// A node's clock: `offset + t * (1 + ppm / 10^6)` for simulated time `t`.
#[derive(Debug, Clone, Copy)]
struct Clock {
    offset: u64,
    ppm: i64,
}

impl Clock {
    fn local(self, t: u64) -> u64 {
        let scaled = i128::from(t) * (1_000_000 + i128::from(self.ppm)) / 1_000_000;
        self.offset.saturating_add(u64::try_from(scaled).unwrap_or(0))
    }

    /// The first simulated time at which the local clock reads at least `local`.
    fn sim_time(self, local: u64) -> u64 {
        let since = i128::from(local.saturating_sub(self.offset));
        let rate = 1_000_000 + i128::from(self.ppm);
        u64::try_from((since * 1_000_000 + rate - 1) / rate).unwrap_or(u64::MAX)
    }
}

struct Node {
    election: Option<SimElection>,
    parked: Option<SimStore>,
    clock: Clock,
    timer: Option<u64>,
    vlsn: u64,
    dtvlsn: u64,
}

/// The simulation of one seed.
pub struct Sim {
    opts: Options,
    rng: SplitMix64,
    now: u64,
    group: Membership<MAX_NODES>,
    designated: Option<MemberId>,
    nodes: Vec<Node>,
    net: Network,
    checker: Checker,
    report: Report,
    master_crashed_at: Option<u64>,
    clean_crash_at: Option<u64>,
}

/// Runs one seed to the end and reports what happened.
pub fn run(seed: u64, opts: &Options) -> Report {
    let mut sim = Sim::new(seed, opts.clone());
    sim.run_to_end();
    sim.report
}

impl Sim {
    /// Draws a group from the seed and starts every node at time 0.
    pub fn new(seed: u64, opts: Options) -> Self {
        let mut rng = SplitMix64::new(seed);
        let (group, designated) = draw_group(&mut rng);
        let size = group.len();
        let net = Network::new(&opts);
        let mut sim = Sim {
            rng,
            now: 0,
            designated,
            nodes: Vec::new(),
            checker: Checker::new(&group, designated),
            report: Report { seed, nodes: size, ..Report::default() },
            group,
            net,
            opts,
            master_crashed_at: None,
            clean_crash_at: None,
        };
        for i in 0..size {
            let drift = sim.opts.max_drift_ppm;
            let ppm = i64::try_from(sim.rng.below(2 * drift + 1)).unwrap_or(0)
                - i64::try_from(drift).unwrap_or(0);
            let clock = Clock { offset: sim.rng.below(1 << 40), ppm };
            // Arbiters and monitors store no data: their log starts empty.
            let stores_data = sim
                .group
                .get(member(i))
                .is_some_and(|m| matches!(m.node_type, NodeType::Electable | NodeType::Secondary));
            let vlsn = if stores_data { sim.rng.below(100) } else { 0 };
            let node = Node {
                election: None,
                parked: Some(SimStore::default()),
                clock,
                timer: None,
                vlsn,
                dtvlsn: vlsn / 2,
            };
            sim.nodes.push(node);
            sim.boot(i);
        }
        sim.checker.record_initial_ranks(&sim.group, sim.nodes.iter().map(|n| (n.vlsn, n.dtvlsn)));
        let fault_start = sim.opts.quiet_ms;
        sim.net.schedule(fault_start, Kind::Fault);
        let calm = fault_start.saturating_add(sim.opts.fault_ms);
        sim.net.schedule(calm, Kind::Calm);
        let described = describe(&sim.group, designated);
        sim.trace(|| format!("group: {described}"));
        sim
    }

    fn end(&self) -> u64 {
        self.opts.quiet_ms.saturating_add(self.opts.fault_ms).saturating_add(self.opts.calm_ms)
    }

    fn trace(&mut self, line: impl FnOnce() -> String) {
        if self.opts.trace {
            let text = line();
            self.report.trace.push(format!("{:>7} {}", self.now, text));
        }
    }

    fn config_for(&self, i: usize) -> Config {
        let mut config = self.opts.election;
        config.designated_primary = self.designated == Some(member(i));
        config
    }

    /// Starts node `i` from its parked stable store.
    fn boot(&mut self, i: usize) {
        let config = self.config_for(i);
        let seed = self.rng.next_u64();
        let Some(node) = self.nodes.get_mut(i) else { return };
        let Some(store) = node.parked.take() else { return };
        let local = node.clock.local(self.now);
        match Election::new(self.group.clone(), member(i), config, store, seed, local) {
            Ok(mut e) => {
                e.set_log_position(0, node.vlsn, node.dtvlsn);
                node.election = Some(e);
                node.timer = None;
                self.after_step(i);
            }
            Err(e) => self.violation(format!("n{i} could not restart: {e}")),
        }
    }

    fn violation(&mut self, what: String) {
        self.trace(|| format!("VIOLATION: {what}"));
        self.report.violations.push(what);
    }

    /// Runs until the end of the calm phase or the first violation.
    pub fn run_to_end(&mut self) {
        let end = self.end();
        while self.report.violations.is_empty() {
            let Some((at, kind)) = self.net.next() else { break };
            if at > end {
                break;
            }
            self.now = at;
            self.step(kind);
            self.check_liveness();
        }
        if self.report.violations.is_empty() && self.report.recovery_ms.is_none() {
            let bound = self.opts.liveness_bound_ms;
            self.violation(format!(
                "no master followed by every member within {bound} ms of the faults stopping"
            ));
        }
        self.report.delivered = self.net.delivered;
        self.report.dropped = self.net.dropped;
    }

    fn step(&mut self, kind: Kind) {
        match kind {
            Kind::Deliver { from, to, bytes } => self.deliver(from, to, &bytes),
            Kind::Timer { node } => self.fire_timer(node),
            Kind::Fault => self.inject_fault(),
            Kind::Restart { node } => self.restart(node),
            Kind::Heal => {
                self.trace(|| String::from("network heals"));
                self.net.heal();
            }
            Kind::Calm => self.calm(),
            Kind::CrashMaster => self.crash_master(),
        }
    }

    fn deliver(&mut self, from: usize, to: usize, bytes: &[u8]) {
        if !self.net.connected(from, to) {
            self.net.dropped += 1;
            return;
        }
        let Some(node) = self.nodes.get_mut(to) else { return };
        let Some(election) = node.election.as_mut() else {
            self.net.dropped += 1;
            return;
        };
        let msg = match Message::decode(bytes) {
            Ok(msg) => msg,
            Err(e) => {
                self.violation(format!("n{from} sent bytes that do not decode: {e}"));
                return;
            }
        };
        self.net.delivered += 1;
        let local = node.clock.local(self.now);
        election.handle_message(local, member(from), &msg);
        let follows_sender = election.master() == Some(member(from));
        if let (Message::Core(MessageRef::Heartbeat { master_vlsn, .. }), true) =
            (msg, follows_sender)
        {
            // A stand-in for replication until the replication stream exists: the follower
            // takes the master's log end and (as JE's stream carries it) its DTVLSN.
            let master_dtvlsn = self.nodes.get(from).map_or(0, |m| m.dtvlsn);
            if let Some(node) = self.nodes.get_mut(to) {
                node.vlsn = master_vlsn;
                node.dtvlsn = master_dtvlsn.min(master_vlsn);
                if let Some(e) = node.election.as_mut() {
                    e.set_log_position(0, node.vlsn, node.dtvlsn);
                }
            }
        }
        self.trace(|| format!("n{from} -> n{to} {msg:?}"));
        self.after_step(to);
    }

    fn fire_timer(&mut self, i: usize) {
        let Some(node) = self.nodes.get_mut(i) else { return };
        if node.timer != Some(self.now) {
            return; // superseded
        }
        node.timer = None;
        let Some(election) = node.election.as_mut() else { return };
        if election.master() == Some(member(i)) {
            node.dtvlsn = node.vlsn;
            node.vlsn = node.vlsn.saturating_add(1 + self.rng.below(3));
            election.set_log_position(0, node.vlsn, node.dtvlsn);
        }
        election.handle_timeout(node.clock.local(self.now));
        self.after_step(i);
    }

    /// Sends what node `i` queued, observes its events, re-arms its timer, checks invariants.
    fn after_step(&mut self, i: usize) {
        let now = self.now;
        let Some(node) = self.nodes.get_mut(i) else { return };
        let Some(election) = node.election.as_mut() else { return };
        let mut outgoing = Vec::new();
        while let Some(t) = election.poll_transmit() {
            let mut buf = [0u8; 256];
            match t.message.encode_into(&mut buf) {
                Ok(len) => {
                    outgoing.push((t.to.index(), buf.get(..len).unwrap_or_default().to_vec()))
                }
                Err(e) => outgoing.push((usize::MAX, format!("{e}").into_bytes())),
            }
        }
        let mut events = Vec::new();
        while let Some(event) = election.poll_event() {
            events.push(event);
        }
        let writes = core::mem::take(&mut election.store_mut().written);
        let term = election.term();
        let deadline = election.poll_timeout().map(|local| node.clock.sim_time(local).max(now));
        if let Some(at) = deadline {
            if node.timer != Some(at) {
                node.timer = Some(at);
                self.net.schedule(at, Kind::Timer { node: i });
            }
        }
        for write in writes {
            if let Err(what) = self.checker.on_write(i, write) {
                self.violation(what);
            }
        }
        if let Err(what) = self.checker.on_term(i, term) {
            self.violation(what);
        }
        for event in events {
            self.observe(i, event);
        }
        for (to, bytes) in outgoing {
            if to == usize::MAX {
                self.violation(format!(
                    "n{i} could not encode a message: {}",
                    String::from_utf8_lossy(&bytes)
                ));
                continue;
            }
            let dropped = self.net.send(&mut self.rng, now, i, to, bytes);
            if dropped {
                self.trace(|| format!("n{i} -> n{to} lost"));
            }
        }
    }

    fn observe(&mut self, i: usize, event: Event) {
        self.trace(|| format!("n{i} {event:?}"));
        if let Event::BecameMaster { term } = event {
            self.report.elections += 1;
            if let Some(at) = self.clean_crash_at.take() {
                self.report.clean_failover_ms = Some(self.now.saturating_sub(at));
            }
            if let Some(at) = self.master_crashed_at.take() {
                self.report.failovers_ms.push(self.now.saturating_sub(at));
            }
            if let Err(what) = self.checker.on_master(i, term) {
                self.violation(what);
            }
        }
    }

    fn inject_fault(&mut self) {
        let calm_at = self.opts.quiet_ms.saturating_add(self.opts.fault_ms);
        self.net.faulty = true;
        let size = self.nodes.len();
        match self.rng.below(10) {
            0..=3 => {
                let victim = self.rng.below(size as u64) as usize;
                self.crash(victim);
            }
            4..=6 if size > 1 => {
                let mut side = 0u32;
                while side == 0 || side.count_ones() as usize == size {
                    side = (self.rng.next_u64() as u32) & ((1u32 << size) - 1);
                }
                self.report.partitions += 1;
                self.trace(|| format!("partition: {{{}}} | rest", members_of(side)));
                self.net.partition(side);
                let heal_at = self.now.saturating_add(200 + self.rng.below(3_000));
                self.net.schedule(heal_at, Kind::Heal);
            }
            7 => {
                let i = self.rng.below(size as u64) as usize;
                self.set_store_failing(i, true);
            }
            _ => {
                for i in 0..size {
                    self.set_store_failing(i, false);
                }
            }
        }
        let next = self.now.saturating_add(100 + self.rng.below(1_000));
        if next < calm_at {
            self.net.schedule(next, Kind::Fault);
        }
    }

    fn set_store_failing(&mut self, i: usize, failing: bool) {
        if let Some(e) = self.nodes.get_mut(i).and_then(|n| n.election.as_mut()) {
            e.store_mut().fail_writes = failing;
        }
        if failing {
            self.trace(|| format!("n{i} stable store starts failing writes"));
        }
    }

    fn crash(&mut self, i: usize) {
        let Some(node) = self.nodes.get_mut(i) else { return };
        let Some(election) = node.election.take() else { return };
        let was_master = election.master() == Some(member(i));
        let mut store = election.into_store();
        store.fail_writes = false;
        node.parked = Some(store);
        node.timer = None;
        self.report.crashes += 1;
        if was_master {
            self.master_crashed_at = Some(self.now);
        }
        self.trace(|| format!("n{i} crashes{}", if was_master { " (master)" } else { "" }));
        let back = self.now.saturating_add(100 + self.rng.below(3_000));
        self.net.schedule(back, Kind::Restart { node: i });
    }

    fn restart(&mut self, i: usize) {
        if self.nodes.get(i).is_some_and(|n| n.election.is_none()) {
            self.trace(|| format!("n{i} restarts"));
            self.boot(i);
        }
    }

    /// Crashes the master on a quiet network once, to measure a clean failover (only when the
    /// other voters can still form a quorum without it).
    fn crash_master(&mut self) {
        let Some(master) = self
            .nodes
            .iter()
            .position(|n| n.election.as_ref().is_some_and(|e| e.master() == Some(e.me())))
        else {
            return;
        };
        let voters = self.group.voter_count();
        if voters < 3 {
            return;
        }
        self.trace(|| String::from("planned failover: crash the master on a quiet network"));
        self.crash(master);
        self.master_crashed_at = None;
        self.clean_crash_at = Some(self.now);
    }

    fn calm(&mut self) {
        self.trace(|| String::from("faults stop: network heals, every node is up"));
        self.net.faulty = false;
        self.net.heal();
        for i in 0..self.nodes.len() {
            self.set_store_failing(i, false);
            self.restart(i);
        }
    }

    /// After the faults stop: records when a master every member follows first exists, and
    /// fails the run if that takes longer than the bound.
    fn check_liveness(&mut self) {
        let calm_at = self.opts.quiet_ms.saturating_add(self.opts.fault_ms);
        if self.now < calm_at
            || self.report.recovery_ms.is_some()
            || !self.report.violations.is_empty()
        {
            return;
        }
        let elections: Vec<&SimElection> =
            self.nodes.iter().filter_map(|n| n.election.as_ref()).collect();
        let stable = elections.len() == self.nodes.len()
            && elections.iter().any(|m| {
                m.master() == Some(m.me())
                    && elections.iter().all(|e| e.master() == Some(m.me()) && e.term() == m.term())
            });
        let waited = self.now.saturating_sub(calm_at);
        if stable {
            self.report.recovery_ms = Some(waited);
            let at = self.now.saturating_add(self.opts.election.election_timeout_ms);
            self.net.schedule(at, Kind::CrashMaster);
        } else if waited > self.opts.liveness_bound_ms {
            let bound = self.opts.liveness_bound_ms;
            let states: Vec<String> = self
                .nodes
                .iter()
                .enumerate()
                .map(|(i, n)| match &n.election {
                    Some(e) => format!("n{i}: {:?} in term {}", e.role(), e.term()),
                    None => format!("n{i}: down"),
                })
                .collect();
            self.violation(format!(
                "no master followed by every member within {bound} ms of the faults stopping ({})",
                states.join(", ")
            ));
        }
    }
}

fn member(i: usize) -> MemberId {
    MemberId::new(u8::try_from(i).unwrap_or(u8::MAX))
}

fn members_of(side: u32) -> String {
    (0..32).filter(|b| side & (1 << b) != 0).map(|b| format!("n{b}")).collect::<Vec<_>>().join(",")
}

/// Draws 1 to 7 members of mixed types and priorities; at least one can become master.
fn draw_group(rng: &mut SplitMix64) -> (Membership<MAX_NODES>, Option<MemberId>) {
    let size = 1 + rng.below(MAX_NODES as u64) as usize;
    let mut group = Membership::new();
    for i in 0..size {
        let node_type = match (i, rng.below(10)) {
            (0, _) | (_, 0..=5) => NodeType::Electable,
            (_, 6) => NodeType::Arbiter,
            (_, 7) => NodeType::Secondary,
            _ => NodeType::Monitor,
        };
        let priority = match (i, node_type, rng.below(8)) {
            (0, _, _) => 1 + rng.below(3) as u32,
            (_, NodeType::Electable, 0) => 0,
            (_, NodeType::Electable, _) => 1 + rng.below(3) as u32,
            _ => 0,
        };
        let name = format!("n{i}");
        if let Ok(m) = Member::new(&name, node_type, priority, 100 + i as u32) {
            let _ = group.add(m);
        }
    }
    let voters = group.voter_count();
    let electables = group.select(|m| m.node_type == NodeType::Electable).len();
    let designated = (voters == 2 && electables == 2 && rng.below(2) == 0).then(|| member(0));
    (group, designated)
}

fn describe(group: &Membership<MAX_NODES>, designated: Option<MemberId>) -> String {
    let mut parts = Vec::new();
    for (id, m) in group.iter() {
        let dp = if designated == Some(id) { " designated-primary" } else { "" };
        parts.push(format!("{}={:?}/p{}{}", m.name, m.node_type, m.priority, dp));
    }
    parts.join(" ")
}

/// The totals of many runs.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// Seeds run.
    pub seeds: u64,
    /// (seed, first violation) of every failing seed.
    pub violations: Vec<(u64, String)>,
    /// Terms won, over all runs.
    pub elections: u64,
    /// Crashes, over all runs.
    pub crashes: u64,
    /// Partitions, over all runs.
    pub partitions: u64,
    /// Every clean failover time (master crashed on a quiet network).
    pub failovers_ms: Vec<u64>,
    /// Every failover time during the fault phase (master crashed amid other faults).
    pub fault_failovers_ms: Vec<u64>,
    /// Every recovery time seen (end of faults to a followed master).
    pub recoveries_ms: Vec<u64>,
}

impl Summary {
    /// Adds one run.
    pub fn add(&mut self, report: &Report) {
        self.seeds += 1;
        if let Some(first) = report.violations.first() {
            self.violations.push((report.seed, first.clone()));
        }
        self.elections += u64::from(report.elections);
        self.crashes += u64::from(report.crashes);
        self.partitions += u64::from(report.partitions);
        self.failovers_ms.extend(report.clean_failover_ms);
        self.fault_failovers_ms.extend_from_slice(&report.failovers_ms);
        self.recoveries_ms.extend(report.recovery_ms);
    }

    /// Adds another summary (from another thread).
    pub fn merge(&mut self, other: Summary) {
        self.seeds += other.seeds;
        self.violations.extend(other.violations);
        self.elections += other.elections;
        self.crashes += other.crashes;
        self.partitions += other.partitions;
        self.failovers_ms.extend(other.failovers_ms);
        self.fault_failovers_ms.extend(other.fault_failovers_ms);
        self.recoveries_ms.extend(other.recoveries_ms);
    }

    /// Why the sweep proves nothing, if it saw no crash, partition or election.
    pub fn vacuous(&self) -> Option<&'static str> {
        match (self.crashes, self.partitions, self.elections) {
            (0, _, _) => Some("the sweep saw no crash"),
            (_, 0, _) => Some("the sweep saw no partition"),
            (_, _, 0) => Some("the sweep saw no election"),
            _ => None,
        }
    }

    /// The `p`-th percentile (0..=100) of `values`, by nearest rank.
    pub fn percentile(values: &[u64], p: u64) -> Option<u64> {
        let mut sorted = values.to_vec();
        sorted.sort_unstable();
        let last = sorted.len().checked_sub(1)?;
        let rank = (last as u64 * p).div_ceil(100) as usize;
        sorted.get(rank.min(last)).copied()
    }
}

/// Runs seeds `seeds` one after another.
pub fn sweep(seeds: core::ops::Range<u64>, opts: &Options) -> Summary {
    let mut summary = Summary::default();
    for seed in seeds {
        summary.add(&run(seed, opts));
    }
    summary
}
