//! A deterministic simulator of a whole group in one process (feature `sim`).
//!
//! Every node runs the real [`Node`] state machine (election and replication). The
//! simulated network drops, duplicates, delays and reorders messages and partitions the
//! group; nodes crash (memory and unsynced log writes are lost, stable stores survive) and
//! restart; stores fail writes and syncs; every node's clock drifts; a workload appends
//! entries on whichever node is master. A run is a pure function of its seed, and every
//! message goes through the real encoder and decoder.
//!
//! After every step the [`checker`] verifies: at most one master per term, ever, and each
//! term won once; terms and promises never go back, restarts included; a node becomes master
//! of `T` only when a quorum's stable stores hold a vote for it in `T`; every entry reported
//! durable is on every master of that term or a later one, unchanged, and never overwritten
//! or truncated on any node; no log has a
//! gap; no replica acknowledges an entry it has not persisted; the DTVLSN never goes back.
//! After the faults stop, a master that every member follows must exist within
//! [`Options::liveness_bound_ms`], and every replica's log must then equal the master's
//! within [`Options::convergence_bound_ms`].
//!
//! ```
//! let report = harp::sim::run(7, &harp::sim::Options::default());
//! assert!(report.violations.is_empty(), "{:?}", report.violations);
//! assert!(report.elections >= 1);
//! ```

pub mod checker;
mod network;
pub mod stores;

use crate::election::{Config, Event, Role};
use crate::membership::{Member, MemberId, Membership};
use crate::node::{holds_log, Node, NodeConfig, NodeEvent};
use crate::replication::{check_restore, EntryMeta, LogStore, ENTRY_MEMBERSHIP, ENTRY_TERM_START};
use crate::rng::SplitMix64;
use crate::storage::{ElectionRecord, StableStore};
use crate::wire::{Extension, Message};
use crate::{MessageRef, NodeType};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use checker::Checker;
use network::{Kind, Network};
pub use stores::{SimLog, SimStore};

/// One operation of a driven run ([`Sim::apply`]); node numbers wrap around the group size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Let simulated time pass (messages delivered, timers fired).
    Advance {
        /// How long.
        ms: u16,
    },
    /// Crash a node (memory and unsynced log writes lost).
    Crash {
        /// Which.
        node: u8,
    },
    /// Restart a crashed node.
    Restart {
        /// Which.
        node: u8,
    },
    /// Cut the nodes in the bit set off from the others.
    Partition {
        /// The bit set.
        side: u8,
        /// Only what they send is lost; the others still reach them.
        one_way: bool,
    },
    /// Freeze a node's process (a VM paused, a long GC, `SIGSTOP`) for `ms`: it handles
    /// nothing, and what reaches it waits until it resumes.
    Pause {
        /// Which.
        node: u8,
        /// For how long.
        ms: u16,
    },
    /// End the partition.
    Heal,
    /// Turn message loss, duplication and reordering on or off.
    Faults {
        /// On or off.
        on: bool,
    },
    /// Append an entry on the master.
    Append,
    /// Let the master add the spare or remove a member (if membership changes are on).
    ChangeMembership,
    /// Shut the master down gracefully.
    Shutdown,
    /// Every running node compacts its log as the workload does now and then (sometimes
    /// past hosts that are down, which are then restored).
    Compact,
}

/// The largest group the simulator draws.
pub const MAX_NODES: usize = 7;
/// Machines per run: the drawn group's, then new ones that replace removed members (see
/// `Sim::add_machine`).
const MAX_HOSTS: usize = 16;

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
    /// Then the network heals, every node restarts, writes stop, and the run goes on this long.
    pub calm_ms: u64,
    /// After the faults stop, a master followed by every member must exist within this bound.
    pub liveness_bound_ms: u64,
    /// Once it does, every replica's log must equal the master's within this bound, plus
    /// the time to stream what the furthest-behind replica lacks at one window per longest
    /// round trip (at most `2 * max_delay_ms` on the calm network).
    pub convergence_bound_ms: u64,
    /// Mean gap between two appends of the workload.
    pub write_interval_ms: u64,
    /// Largest one-way message delay.
    pub max_delay_ms: u64,
    /// Chance per million that a message is dropped, and that it is duplicated (fault phase).
    pub drop_per_million: u32,
    /// See `drop_per_million`.
    pub duplicate_per_million: u32,
    /// Largest clock drift, in parts per million, either way.
    pub max_drift_ppm: u64,
    /// Let the master add and remove members during the faults (a sweep kind of its own,
    /// `harp sim --membership-changes`; CI sweeps both kinds).
    pub membership_changes: bool,
    /// One partition in three cuts only one direction (see `Sim::partition`). Off, every
    /// partition cuts both ways and no random draw is spent on it.
    pub one_way_partitions: bool,
    /// Some faults freeze a node's process for 0.2–3.2 s (`Sim::pause`). Off, no random
    /// draw is spent on them: with `one_way_partitions` off too, a seed draws the faults it
    /// drew before 2026-12-07, when both came (what the nodes do with them follows their
    /// code of the day).
    pub pauses: bool,
    /// With `membership_changes`: a new machine may take the name of a member whose removal
    /// is durable (its machine retired), under a new node id; a member that kept no log
    /// (monitor, arbiter) comes back as one that keeps it (Electable or Secondary), so nodes
    /// whose logs lack the new addition still take it for a member without a log. Off, no
    /// random draw is spent on it: a seed draws the changes it drew before 2026-12-07.
    pub reused_names: bool,
    /// Record a readable trace of the run.
    pub trace: bool,
    /// Schedule no faults, no calm phase and no writes: a driver (the structure-aware fuzz
    /// target) applies operations one by one with [`Sim::apply`].
    pub manual: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            election: Config::default(),
            quiet_ms: 3_000,
            fault_ms: 8_000,
            calm_ms: 6_000,
            liveness_bound_ms: 4_000,
            convergence_bound_ms: 1_500,
            write_interval_ms: 40,
            max_delay_ms: 25,
            drop_per_million: 50_000,
            duplicate_per_million: 20_000,
            max_drift_ppm: 10_000,
            membership_changes: false,
            one_way_partitions: true,
            pauses: true,
            reused_names: true,
            trace: false,
            manual: false,
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
    /// Of those, the ones that cut one direction only.
    pub one_way_partitions: u32,
    /// Nodes frozen for a while (`Sim::pause`).
    pub pauses: u32,
    /// Appends the workload made (accepted by a master).
    pub writes: u64,
    /// Entries reported durable (the final DTVLSN).
    pub durable_entries: u64,
    /// Durable entries lost (a violation; always 0 in a passing run).
    pub lost_durable: u64,
    /// Messages delivered.
    pub delivered: u64,
    /// Messages dropped (by loss, partition or a down node).
    pub dropped: u64,
    /// For every crash of a master amid the faults: ms until some node became master again.
    pub failovers_ms: Vec<u64>,
    /// Graceful shutdowns of the master.
    pub graceful_stops: u32,
    /// Membership changes the master accepted (adds and removes).
    pub membership_changes: u32,
    /// New machines (names no member had) the master added, and how many of them went into
    /// a slot a removed member had left.
    pub new_machines: (u32, u32),
    /// Of the new machines added, those under the name of a member whose removal was
    /// durable ([`Options::reused_names`]).
    pub reused_names: u32,
    /// Membership notices a member with a log ignored, over every node life: a sender whose
    /// view took it for a member without a log (a reused name its log had not re-added).
    pub misdirected_notices: u32,
    /// Data members turned from Electable into Secondary or back (`Update` changes).
    pub type_changes: u32,
    /// Log compactions (`Node::compact_log`) that dropped entries, and how many of them
    /// dropped a membership change (carried into the node's base membership).
    pub compactions: (u32, u32),
    /// Replicas restored after the master reported them `NeedsRestore`, and restores
    /// `check_restore` refused (the replica no longer needed one).
    pub restores: (u32, u32),
    /// Positions arbiters acknowledged (asked when data nodes left entries undurable).
    pub arbiter_acks: u64,
    /// Messages or events a node's fixed queues had no room for, over every node life: how
    /// well the capacities fit.
    pub overflows: Overflows,
    /// For every graceful shutdown of a master: ms until some node became master again.
    pub graceful_failovers_ms: Vec<u64>,
    /// Milliseconds from the end of the faults (or the last restore after it) to a master
    /// every member follows.
    pub recovery_ms: Option<u64>,
    /// Milliseconds from then until every replica's log equals the master's.
    pub convergence_ms: Option<u64>,
    /// After convergence, the master is crashed once on a quiet network: milliseconds until
    /// another node became master (None if the rest cannot form a quorum).
    pub clean_failover_ms: Option<u64>,
    /// The faults started right after the first election instead of after the quiet
    /// phase (one seed in four), while the group's first DTVLSN record may not have reached
    /// every replica yet.
    pub early_faults: bool,
    /// The readable trace, if asked for.
    pub trace: Vec<String>,
}

type SimNode = Node<SimStore, SimLog, MAX_NODES>;

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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HostState {
    /// Configured as a member: runs (or restarts after a crash).
    Active,
    /// Not a member yet: may be added by a membership change.
    Spare,
    /// Removed from the group: never runs again.
    Retired,
}

struct Host {
    node: Option<SimNode>,
    parked: Option<(SimStore, SimLog)>,
    clock: Clock,
    timer: Option<u64>,
    /// The membership this host's node is configured with.
    base: Membership<MAX_NODES>,
    /// Where the Add that brought this host in sits in its master's log, `(term, vlsn)`: a
    /// node started to join votes only for logs that reach it.
    added_at: (u64, u64),
    state: HostState,
    /// A restore is scheduled (the master reported it `NeedsRestore`).
    restore_pending: bool,
    /// When its node was asked to shut down gracefully (until it crashes or its process
    /// exits).
    shutting_down: Option<u64>,
    /// Who it is: name `n<index>`, type, priority, node id.
    identity: Member,
    /// Its node's `election::Stats::campaigns` after the last step (terms it started).
    campaigns: u32,
    /// Its process is frozen until then: what reaches it waits, its timer too.
    paused_until: Option<u64>,
}

/// The simulation of one seed.
pub struct Sim {
    opts: Options,
    rng: SplitMix64,
    now: u64,
    /// Every host of the run, members or not (names, types, node ids).
    roster: Membership<MAX_NODES>,
    designated: Option<MemberId>,
    hosts: Vec<Host>,
    net: Network,
    checker: Checker,
    report: Report,
    writes_on: bool,
    master_crashed_at: Option<u64>,
    clean_crash_at: Option<u64>,
    graceful_at: Option<u64>,
    recovered_at: Option<u64>,
    /// The convergence bound of this run, set at recovery (see `convergence_bound_ms`).
    convergence_allowed_ms: u64,
    /// From then until the planned failover the group must stay stable: every member
    /// followed one master for two election timeouts on a calm network.
    stable_from: Option<u64>,
    /// The last restore after the faults stopped (the liveness clocks start again there).
    restored_at: u64,
}

/// What fixed queues had no room for (the node's and its election's counters, summed).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Overflows {
    /// `NodeStats::pending_overflows`: acks, answers and notices not queued.
    pub pending: u64,
    /// `NodeStats::event_overflows`.
    pub node_events: u64,
    /// `election::Stats::outbox_overflows`.
    pub outbox: u64,
    /// `election::Stats::event_overflows`.
    pub election_events: u64,
}

impl Overflows {
    fn of<S: StableStore, L: LogStore, const N: usize>(node: &Node<S, L, N>) -> Self {
        let (n, e) = (node.stats(), node.election().stats());
        Overflows {
            pending: n.pending_overflows.into(),
            node_events: n.event_overflows.into(),
            outbox: e.outbox_overflows.into(),
            election_events: e.event_overflows.into(),
        }
    }

    fn add(&mut self, other: Overflows) {
        self.pending += other.pending;
        self.node_events += other.node_events;
        self.outbox += other.outbox;
        self.election_events += other.election_events;
    }
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
        // From a stream of its own, so the other seeds run as they did before it existed.
        let early_faults = !opts.manual && SplitMix64::new(!seed).below(4) == 0;
        let (roster, members, designated) = draw_group(&mut rng);
        let size = roster.len();
        let net = Network::new(&opts);
        let mut sim = Sim {
            rng,
            now: 0,
            designated,
            hosts: Vec::new(),
            checker: Checker::new(&roster, designated),
            report: Report { seed, nodes: size, early_faults, ..Report::default() },
            roster,
            net,
            opts,
            writes_on: true,
            master_crashed_at: None,
            clean_crash_at: None,
            graceful_at: None,
            recovered_at: None,
            convergence_allowed_ms: 0,
            stable_from: None,
            restored_at: 0,
        };
        let history = sim.draw_history();
        // Term 1's master (a candidate) holds all of it; the others some prefix.
        let candidates: Vec<usize> =
            members.iter().filter(|(_, m)| m.is_candidate()).map(|(id, _)| id.index()).collect();
        let old_master = candidates.get(sim.rng.below(candidates.len() as u64) as usize).copied();
        let mut initial = Vec::new();
        let identities: Vec<Member> = sim.roster.iter().map(|(_, m)| m.clone()).collect();
        for (i, identity) in identities.into_iter().enumerate() {
            let clock = sim.draw_clock();
            let log = sim.initial_log(i, &history, old_master == Some(i));
            initial.push((log.entries.last().map_or(0, |e| e.meta.term), log.last_vlsn(), 0));
            let store =
                SimStore::with(ElectionRecord { term: 1, vote: None, ..Default::default() });
            let active = members.get(member(i)).is_some();
            let state = if active { HostState::Active } else { HostState::Spare };
            let base = members.clone();
            sim.hosts.push(Host {
                node: None,
                parked: Some((store, log)),
                clock,
                timer: None,
                base,
                added_at: (0, 0),
                state,
                restore_pending: false,
                shutting_down: None,
                identity,
                campaigns: 0,
                paused_until: None,
            });
            if active {
                sim.boot(i);
            }
        }
        let initial: Vec<_> = initial
            .into_iter()
            .enumerate()
            .filter(|(i, _)| members.get(member(*i)).is_some())
            .map(|(_, r)| r)
            .collect();
        if !sim.opts.manual {
            // Only an undriven run keeps the first election fault-free.
            sim.checker.record_initial_ranks(&members, initial.into_iter());
        }
        if !sim.opts.manual {
            if !early_faults {
                sim.net.schedule(sim.opts.quiet_ms, Kind::Fault);
            } // else at the first election (`observe`)
            sim.net.schedule(sim.calm_at(), Kind::Calm);
            sim.net.schedule(1, Kind::Write);
        }
        let described = describe(&sim.roster, &members, designated);
        sim.trace(|| format!("group: {described}"));
        sim
    }

    /// The group existed before the run: term 1 wrote a history that reached each data
    /// node to a different length.
    fn draw_history(&mut self) -> Vec<stores::SimEntry> {
        let meta = EntryMeta { term: 1, dtvlsn: 0 };
        let mut history = alloc::vec![stores::SimEntry {
            meta,
            entry_type: ENTRY_TERM_START,
            data: 1u64.to_le_bytes().to_vec()
        }];
        for i in 0..self.rng.below(40) {
            history.push(stores::SimEntry {
                meta,
                entry_type: 1,
                data: format!("h{i}").into_bytes(),
            });
        }
        history
    }

    fn initial_log(&mut self, i: usize, history: &[stores::SimEntry], whole: bool) -> SimLog {
        let stores_data = self.roster.get(member(i)).is_some_and(|m| holds_log(m.node_type));
        // (The hosts are not built yet: the roster is who they will be.)
        let len = match (stores_data, whole) {
            (false, _) => 0,
            (true, true) => history.len(),
            (true, false) => self.rng.below(history.len() as u64 + 1) as usize,
        };
        let entries: Vec<_> = history.iter().take(len).cloned().collect();
        SimLog { synced: entries.len(), entries, ..SimLog::default() }
    }

    fn calm_at(&self) -> u64 {
        if self.opts.manual {
            return u64::MAX; // a driven run has no calm phase and no liveness check
        }
        self.opts.quiet_ms.saturating_add(self.opts.fault_ms)
    }

    /// Whether, at `at`, the group has recovered and its replicas are still within the
    /// time allowed to converge.
    fn catching_up_at(&self, at: u64) -> bool {
        let deadline = |since: u64| since.saturating_add(self.convergence_allowed_ms);
        self.report.convergence_ms.is_none() && self.recovered_at.is_some_and(|t| at <= deadline(t))
    }

    fn end(&self) -> u64 {
        self.calm_at().saturating_add(self.opts.calm_ms)
    }

    fn trace(&mut self, line: impl FnOnce() -> String) {
        if self.opts.trace {
            let text = line();
            self.report.trace.push(format!("{:>7} {}", self.now, text));
        }
    }

    fn config_for(&self, i: usize) -> NodeConfig {
        let mut config = NodeConfig { election: self.opts.election, ..NodeConfig::default() };
        config.election.designated_primary = self.designated == Some(member(i));
        // Group commit on about half the nodes (by the seed's bits): both modes, and mixed.
        if (self.report.seed >> (i % 16)) & 1 == 1 {
            config.sync = crate::node::SyncMode::Batched;
        }
        config
    }

    /// Starts node `i` from its parked stores.
    fn boot(&mut self, i: usize) {
        let config = self.config_for(i);
        let seed = self.rng.next_u64();
        let now = self.now;
        let Some(host) = self.hosts.get_mut(i) else { return };
        if host.state != HostState::Active {
            return;
        }
        let Some((store, log)) = host.parked.take() else { return };
        let local = host.clock.local(now);
        // A member of its base under its name and node id starts as that member; one whose
        // name the base gives to a member removed since (a reused name) joins.
        let me = host.base.id_of_member(&host.identity.name, host.identity.node_id);
        let started = match me {
            Some(me) => Node::new(host.base.clone(), me, config, store, log, seed, local),
            // Started for an addition: it joins as a learner, a member once its log says so.
            None => {
                let own = host.identity.clone();
                let (base, at) = (host.base.clone(), host.added_at);
                Node::new_joining(base, own, at, config, store, log, seed, local)
            }
        };
        match started {
            Ok(mut node) => {
                let peers: Vec<MemberId> = node.members().iter().map(|(id, _)| id).collect();
                for peer in peers {
                    node.connect(peer); // the transport opens a link to every member
                }
                host.node = Some(node);
                host.timer = None;
                host.campaigns = 0;
                self.after_step(i);
            }
            Err(e) => self.violation(format!("n{i} could not restart: {e}")),
        }
    }

    fn violation(&mut self, what: String) {
        self.trace(|| format!("VIOLATION: {what}"));
        if what.contains("durable") {
            self.report.lost_durable += 1;
        }
        self.report.violations.push(what);
    }

    fn check(&mut self, result: Result<(), String>) {
        if let Err(what) = result {
            self.violation(what);
        }
    }

    /// Applies one operation of a driven run (see [`Options::manual`]); the safety checks
    /// run after every simulated step, and [`Sim::violations`] reports what they found.
    pub fn apply(&mut self, op: Op) {
        let size = self.hosts.len().max(1);
        match op {
            Op::Advance { ms } => {
                let until = self.now.saturating_add(u64::from(ms));
                while self.report.violations.is_empty() {
                    let Some((at, kind)) = self.net.next_before(until) else { break };
                    self.now = at;
                    self.step(kind);
                }
                self.now = until;
            }
            Op::Crash { node } => self.crash(usize::from(node) % size),
            Op::Restart { node } => self.restart(usize::from(node) % size),
            Op::Partition { side, one_way } => {
                let mask = (u32::from(side) & ((1u32 << size) - 1)).max(1);
                self.net.partition(mask, one_way, self.now);
            }
            Op::Pause { node, ms } => self.pause(usize::from(node) % size, u64::from(ms)),
            Op::Heal => self.net.heal(),
            Op::Faults { on } => self.net.faulty = on,
            Op::Append => {
                self.writes_on = true;
                self.write_once();
            }
            Op::ChangeMembership => self.membership_change(),
            Op::Shutdown => self.graceful_stop(),
            Op::Compact => self.compact_logs(),
        }
    }

    /// Every host's node (`n0`, `n1`, … in order), `None` while it is down or not started:
    /// what a driven run looks at between operations.
    pub fn nodes(&self) -> impl Iterator<Item = Option<&Node<SimStore, SimLog, MAX_NODES>>> {
        self.hosts.iter().map(|h| h.node.as_ref())
    }

    /// What the safety checks found so far.
    pub fn violations(&self) -> &[String] {
        &self.report.violations
    }

    /// The readable trace so far (empty unless [`Options::trace`] is on): what to read when
    /// a driven run finds a violation.
    pub fn trace_lines(&self) -> &[String] {
        &self.report.trace
    }

    /// Runs until the end of the calm phase (later while a long catch-up is within its
    /// bound) or the first violation.
    pub fn run_to_end(&mut self) {
        while self.report.violations.is_empty() {
            let Some((at, kind)) = self.net.next() else { break };
            if at > self.end() && !self.catching_up_at(at) {
                break;
            }
            self.now = at;
            self.step(kind);
            self.check_liveness();
        }
        if self.report.violations.is_empty() {
            if self.report.recovery_ms.is_none() {
                self.no_recovery();
            } else if self.report.convergence_ms.is_none() {
                let bound = self.convergence_allowed_ms;
                self.violation(format!(
                    "replica logs did not converge within {bound} ms of recovery"
                ));
            }
        }
        for node in self.hosts.iter().filter_map(|h| h.node.as_ref()) {
            self.report.overflows.add(Overflows::of(node));
            self.report.misdirected_notices += node.stats().ignored.misdirected_notices;
        }
        self.report.durable_entries = self.checker.durable_entries();
        self.report.delivered = self.net.delivered;
        self.report.dropped = self.net.dropped;
    }

    fn step(&mut self, kind: Kind) {
        match kind {
            Kind::Deliver { from, to, link, bytes } => {
                if let Some(until) = self.paused_until(to) {
                    // It waits in the socket; links stay FIFO (later ones queue behind).
                    self.net.schedule(until, Kind::Deliver { from, to, link, bytes });
                } else if link == self.net.link_epoch(from, to) {
                    self.deliver(from, to, &bytes);
                } else {
                    self.net.dropped += 1; // the link broke while it was in flight
                }
            }
            Kind::Timer { node } => self.fire_timer(node),
            Kind::Fault => self.inject_fault(),
            Kind::Restart { node } => self.restart(node),
            Kind::Heal => {
                self.trace(|| String::from("network heals"));
                self.net.heal();
            }
            Kind::Calm => self.calm(),
            Kind::CrashMaster => self.crash_master(),
            Kind::Write => self.write(),
            Kind::Retire { node, vlsn } => self.retire(node, vlsn),
            Kind::Restore { node } => match self.paused_until(node) {
                Some(until) => self.net.schedule(until, Kind::Restore { node }),
                None => self.restore(node),
            },
            Kind::Halt { node, since } => {
                // The process exits after its graceful shutdown (unless it crashed since),
                // which ends by its deadline, two election timeouts (plus the clock's drift).
                if self.hosts.get(node).is_some_and(|h| h.shutting_down == Some(since)) {
                    if self.is_stopped(node) {
                        self.crash(node);
                    } else {
                        let late =
                            format!("n{node}'s graceful shutdown did not end by its deadline");
                        self.violation(late);
                    }
                }
            }
        }
    }

    /// The node that is master and can act as one: a frozen process (`pause`) answers no
    /// client, operator or peer, so one that still believes it is master is passed over.
    fn master(&self) -> Option<usize> {
        (0..self.hosts.len()).find(|&i| {
            self.paused_until(i).is_none() && self.node(i).is_some_and(|n| n.role() == Role::Master)
        })
    }

    /// The workload: one append on the master (if any), then the next in a while. One
    /// write in 32 is a burst of up to 96 appends at once, as a batching client makes,
    /// which fills the replicas' windows (32 entries by default).
    fn write(&mut self) {
        if !self.writes_on {
            return;
        }
        let burst = if self.rng.below(32) == 0 { 1 + self.rng.below(96) } else { 1 };
        for _ in 0..burst {
            self.write_once();
        }
        if self.rng.below(8) == 0 {
            self.compact_logs();
        }
        let gap = 1 + self.rng.below(2 * self.opts.write_interval_ms);
        self.net.schedule(self.now + gap, Kind::Write);
    }

    fn write_once(&mut self) {
        if let Some(i) = self.master() {
            let data = format!("w{}-n{i}", self.report.writes).into_bytes();
            if let Some(node) = self.hosts.get_mut(i).and_then(|h| h.node.as_mut()) {
                if let Ok(vlsn) = node.append(1, &data) {
                    self.report.writes += 1;
                    self.trace(|| format!("n{i} append -> {vlsn}"));
                }
                self.after_step(i);
            }
        }
    }

    /// Every running node compacts its log up to what every host's log holds synced and
    /// knows durable (the DTVLSN its last synced entry records: those entries are the same
    /// on every log that holds them), and keeps its base membership for its next boot, as a
    /// board persists it beside the log. One time in four only the running hosts count, as
    /// a hosted node's retention does not wait for a member that is down: one that comes
    /// back behind every log is restored (`restore`).
    fn compact_logs(&mut self) {
        let durable_held = |log: &SimLog| log.get(log.synced_vlsn()).map_or(0, |e| e.meta.dtvlsn);
        let past_down_hosts = self.rng.below(4) == 0;
        let floor = |h: &Host| match (&h.node, &h.parked) {
            (Some(node), _) => Some(durable_held(node.log())),
            (None, Some(_)) if past_down_hosts => None,
            (None, Some((_, log))) => Some(durable_held(log)),
            (None, None) => None,
        };
        let floor = self.hosts.iter().filter_map(floor).min().unwrap_or(0);
        for i in 0..self.hosts.len() {
            if self.paused_until(i).is_some() {
                continue; // a frozen process compacts nothing
            }
            let Some(host) = self.hosts.get_mut(i) else { continue };
            let Some(node) = host.node.as_mut() else { continue };
            let first = node.log().first_vlsn();
            let dropped_change = (first..=floor)
                .any(|v| node.log().entry(v).is_some_and(|e| e.entry_type == ENTRY_MEMBERSHIP));
            if node.compact_log(floor + 1).is_ok() && node.log().first_vlsn() > first {
                host.base = node.base_members().clone();
                let now_first = node.log().first_vlsn();
                self.report.compactions.0 += 1;
                self.report.compactions.1 += u32::from(dropped_change);
                self.trace(|| format!("n{i} compacts its log: it starts at {now_first}"));
            }
        }
    }

    fn deliver(&mut self, from: usize, to: usize, bytes: &[u8]) {
        if !self.net.reaches(from, to) {
            self.net.dropped += 1;
            return;
        }
        let Some(from_name) = self.name_of(from) else { return };
        let Some(host) = self.hosts.get_mut(to) else { return };
        let Some(node) = host.node.as_mut() else {
            self.net.dropped += 1;
            return;
        };
        let msg = match Message::decode(bytes) {
            Ok(msg) => msg,
            Err(e) => return self.violation(format!("n{from} sent bytes that do not decode: {e}")),
        };
        self.net.delivered += 1;
        // The transport knows a peer by the name it handshook with; ids are local to a node.
        let from_id = node.members().known_id_of(&from_name).unwrap_or(MemberId::new(u8::MAX));
        node.handle(host.clock.local(self.now), from_id, &msg);
        if self.opts.trace {
            self.trace(|| format!("n{from} -> n{to} {msg:?}"));
        }
        self.after_step(to);
    }

    fn fire_timer(&mut self, i: usize) {
        let Some(host) = self.hosts.get_mut(i) else { return };
        if host.timer != Some(self.now) {
            return; // superseded
        }
        if let Some(until) = host.paused_until.filter(|&t| t > self.now) {
            host.timer = Some(until); // it fires when the process resumes
            return self.net.schedule(until, Kind::Timer { node: i });
        }
        host.timer = None;
        let Some(node) = host.node.as_mut() else { return };
        let local = host.clock.local(self.now);
        node.handle_timeout(local);
        // A node woken at its deadline must move it on: one that asks to be woken again at
        // once would spin a firmware loop (or a host's poll) at full speed.
        if node.poll_timeout().is_some_and(|next| next <= local) {
            self.violation(format!("n{i} asks to be woken again at once (a busy loop)"));
        }
        self.after_step(i);
    }

    /// Sends what node `i` queued, observes its events and store writes, re-arms its timer.
    fn after_step(&mut self, i: usize) {
        let now = self.now;
        let Some(host) = self.hosts.get_mut(i) else { return };
        let Some(node) = host.node.as_mut() else { return };
        let mut outgoing = Vec::new();
        let mut acks = Vec::new();
        let me = node.election().me();
        let arbiter =
            node.election().members().known(me).is_some_and(|m| m.node_type == NodeType::Arbiter);
        let mut promises = Vec::new();
        let mut grants = Vec::new();
        while let Some(t) = node.poll_transmit() {
            match t.message {
                Message::Core(MessageRef::Ack { vlsn }) => acks.push(vlsn),
                Message::Core(MessageRef::ElectionVote { granted: true, term, .. }) => {
                    grants.push((t.recipient.name.clone(), term));
                }
                Message::Ext(Extension::SyncPoint { vlsn, log_term }) if arbiter => {
                    promises.push((log_term, vlsn));
                }
                _ => {}
            }
            let mut buf = [0u8; 512];
            let encoded = t
                .message
                .encode_into(&mut buf)
                .map(|len| buf.get(..len).unwrap_or_default().to_vec());
            outgoing.push((t.recipient.name.clone(), encoded));
        }
        let acknowledged = node.election().store().persisted().map_or((0, 0), |r| r.acknowledged);
        let events: Vec<NodeEvent> = core::iter::from_fn(|| node.poll_event()).collect();
        let writes = core::mem::take(&mut node.election_mut().store_mut().written);
        let ops = core::mem::take(&mut node.log_mut().ops);
        let term = node.election().term();
        let voting = node.election().votes_now();
        let campaigned = node.election().stats().campaigns > host.campaigns;
        host.campaigns = node.election().stats().campaigns;
        let deadline = node.poll_timeout().map(|local| host.clock.sim_time(local).max(now));
        if let Some(at) = deadline.filter(|&at| host.timer != Some(at)) {
            host.timer = Some(at);
            self.net.schedule(at, Kind::Timer { node: i });
        }
        for write in writes {
            let result = self.checker.on_write(i, write);
            self.check(result);
        }
        for (name, term) in grants {
            // The grant goes where the network takes the name: the machine that proposed.
            let Some(candidate) = host_named(&self.hosts, &name) else { continue };
            let result = self.checker.on_grant(i, term, candidate);
            self.check(result);
        }
        let result = self.checker.on_term(i, term, voting);
        self.check(result);
        for op in &ops {
            let result = self.checker.on_log_op(i, op);
            self.check(result);
        }
        for vlsn in acks {
            let result = self.log_of(i).map_or(Ok(()), |log| self.checker.on_ack(i, vlsn, log));
            self.check(result);
        }
        self.report.arbiter_acks += promises.len() as u64;
        for position in promises {
            let result = self.checker.on_arbiter_ack(i, position, acknowledged);
            self.check(result);
        }
        for event in events {
            self.observe(i, event);
        }
        if campaigned {
            self.check_not_cut_off(i, term);
        }
        for (name, encoded) in outgoing {
            let to = host_named(&self.hosts, &name).unwrap_or(usize::MAX);
            match encoded {
                Ok(bytes) => {
                    if self.net.send(&mut self.rng, now, i, to, bytes) {
                        self.trace(|| format!("n{i} -> n{to} lost"));
                    }
                }
                Err(e) => self.violation(format!("n{i} could not encode a message: {e}")),
            }
        }
    }

    /// Host `i`'s name (`n<i>` unless it took a retired member's).
    fn name_of(&self, i: usize) -> Option<heapless::String<{ crate::membership::NAME_CAP }>> {
        self.hosts.get(i).map(|h| h.identity.name.clone())
    }

    /// Whether host `i` took the name of a member whose machine retired.
    fn name_reused(&self, i: usize) -> bool {
        let Some(name) = self.hosts.get(i).map(|h| &h.identity.name) else { return false };
        self.hosts.iter().take(i).any(|h| h.identity.name == *name)
    }

    /// The node running on host `i`, if it is up.
    fn node(&self, i: usize) -> Option<&SimNode> {
        self.hosts.get(i).and_then(|h| h.node.as_ref())
    }

    fn log_of(&self, i: usize) -> Option<&SimLog> {
        self.node(i).map(|n| n.log())
    }

    /// Whether host `i` runs a node that shut down gracefully and waits for its process to exit.
    fn is_stopped(&self, i: usize) -> bool {
        self.node(i).is_some_and(|n| n.role() == Role::Stopped)
    }

    fn observe(&mut self, i: usize, event: NodeEvent) {
        self.trace(|| format!("n{i} {event:?}"));
        match event {
            NodeEvent::Election(Event::BecameMaster { term }) => {
                self.report.elections += 1;
                if self.report.early_faults && self.report.elections == 1 {
                    self.start_early_faults();
                }
                if let Some(at) = self.master_crashed_at.take() {
                    self.report.failovers_ms.push(self.now.saturating_sub(at));
                }
                if let Some(at) = self.clean_crash_at.take() {
                    self.report.clean_failover_ms = Some(self.now.saturating_sub(at));
                }
                if let Some(at) = self.graceful_at.take() {
                    self.report.graceful_failovers_ms.push(self.now.saturating_sub(at));
                }
                let members = self.node(i).map(|n| n.members().clone());
                let result = members.map_or(Ok(()), |m| self.checker.on_master(i, term, &m));
                self.check(result);
                let result =
                    self.log_of(i).map_or(Ok(()), |log| self.checker.on_new_master(i, term, log));
                self.check(result);
            }
            NodeEvent::MembershipChanged { .. } => {
                // Persisted as a board does: a member without a log has no other record.
                if let Some(h) = self.hosts.get_mut(i) {
                    if let Some(base) = h.node.as_ref().map(|n| n.base_members().clone()) {
                        h.base = base;
                    }
                }
            }
            NodeEvent::NeedsRestore { member, .. } => {
                let name =
                    self.node(i).and_then(|n| n.members().known(member)).map(|m| m.name.clone());
                let host = name.and_then(|n| host_named(&self.hosts, &n));
                if let Some(k) = host {
                    if let Some(h) = self.hosts.get_mut(k).filter(|h| !h.restore_pending) {
                        h.restore_pending = true;
                        let at = self.now.saturating_add(10 + self.rng.below(100));
                        self.net.schedule(at, Kind::Restore { node: k });
                    }
                }
            }
            NodeEvent::Election(Event::ElectionStarted { term }) => self.check_stable(i, term),
            NodeEvent::Durable { vlsn } => {
                // Field by field: the checker is borrowed mutably beside the host's log.
                let node = self.hosts.get(i).and_then(|h| h.node.as_ref());
                let result = match node {
                    Some(n) => self.checker.on_durable(i, n.election().term(), vlsn, n.log()),
                    None => Ok(()),
                };
                self.check(result);
            }
            _ => {}
        }
    }

    /// A member of the master's group that starts an election while the group is stable
    /// (see `stable_from`) is a liveness bug: a spurious election deposes a working master.
    /// (A machine outside the group, whose addition a failover undid, may campaign: nobody
    /// answers it.)
    fn check_stable(&mut self, i: usize, term: u64) {
        if self.stable_from.is_none_or(|t| self.now < t) {
            return;
        }
        let Some(name) = self.name_of(i) else { return };
        let Some(m) = self.master() else { return };
        if self.node(m).is_some_and(|n| n.members().id_of(&name).is_some()) {
            self.violation(format!(
                "{name} started term {term} though every member followed master n{m} on a calm network"
            ));
        }
    }

    /// A voter that has been cut off from a quorum of its own voters since before its last
    /// pre-vote round began (plus the longest a grant sent before the partition can take to
    /// arrive) never starts a term: it cannot have collected a quorum of grants, so its term,
    /// had it risen, would depose a working master when the partition heals. A master's
    /// shutdown announcement starts a term without a pre-vote, so runs with a recent
    /// graceful stop are not checked. A node frozen since the partition began counts from
    /// when it resumed: grants sent before the partition waited for it, and its round's
    /// deadline (its own clock's) passed while it was frozen.
    fn check_not_cut_off(&mut self, i: usize, term: u64) {
        let timeout = self.opts.election.election_timeout_ms;
        // A round lasts at most two election timeouts of the node's clock (which drifts).
        let round = 2 * timeout + 2 * timeout * self.opts.max_drift_ppm / 1_000_000 + 1;
        let window = round + self.net.longest_flight_ms();
        let Some(since) = self.net.partitioned_since() else { return };
        let resumed = self.hosts.get(i).and_then(|h| h.paused_until).unwrap_or(0);
        let since = since.max(resumed);
        let shutdown_recently = self.graceful_at.is_some_and(|g| self.now <= g + 4 * timeout);
        if self.now < since + window || shutdown_recently {
            return;
        }
        let Some(node) = self.node(i) else { return };
        let quorum = node.election().quorum();
        let members = node.members();
        let voters = members.voters();
        let reachable = self
            .hosts
            .iter()
            .enumerate()
            .filter(|(j, h)| {
                self.net.connected(i, *j)
                    && members.id_of(&h.identity.name).is_some_and(|id| voters.contains(id))
            })
            .count();
        if reachable < quorum {
            self.violation(format!(
                "n{i} started term {term} though cut off from a quorum of its voters for {} ms \
                 ({reachable} reachable, {quorum} needed)",
                self.now - since
            ));
        }
    }

    /// An early-fault run's faults start within 100 ms of the first master's election
    /// (which the checker still sees fault-free): the first entries and the first DTVLSN
    /// record are then still on their way, a window the quiet phase otherwise hides.
    fn start_early_faults(&mut self) {
        let at = self.now.saturating_add(1 + self.rng.below(100));
        if at < self.calm_at() {
            self.trace(|| format!("faults start at {at} (early)"));
            self.net.schedule(at, Kind::Fault);
        }
    }

    fn inject_fault(&mut self) {
        self.net.faulty = true;
        let size = self.hosts.len();
        // Pauses, when on, are a fifteenth kind of fault (off, the draws are as before).
        match self.rng.below(if self.opts.pauses { 15 } else { 14 }) {
            0..=3 => {
                let victim = self.rng.below(size as u64) as usize;
                self.crash(victim);
            }
            4..=6 if size > 1 => self.partition(size),
            7 => {
                let i = self.rng.below(size as u64) as usize;
                self.set_store_failing(i, true);
            }
            8 => {
                let i = self.rng.below(size as u64) as usize;
                self.set_sync_failing(i, true);
            }
            9 => self.graceful_stop(),
            10 => self.membership_change(),
            14 => {
                let victim = self.rng.below(size as u64) as usize;
                let ms = 200 + self.rng.below(3_000);
                self.pause(victim, ms);
            }
            _ => {
                for i in 0..size {
                    self.set_store_failing(i, false);
                    self.set_sync_failing(i, false);
                }
            }
        }
        let next = self.now.saturating_add(100 + self.rng.below(1_000));
        if next < self.calm_at() {
            self.net.schedule(next, Kind::Fault);
        }
    }

    /// Freezes node `i`'s process for `ms` (ending by the calm phase at the latest), as a
    /// paused VM, a long GC or `SIGSTOP` would: its timer and what reaches it wait until it
    /// resumes, and then it finds its deadlines long past. A master frozen past its lease
    /// resumes believing it is master until it hears otherwise. A node shutting down
    /// gracefully is not frozen (its process must exit by its deadline).
    fn pause(&mut self, i: usize, ms: u64) {
        let until = self.now.saturating_add(ms).min(self.calm_at());
        let Some(host) = self.hosts.get_mut(i) else { return };
        if host.node.is_none() || host.shutting_down.is_some() || until <= self.now {
            return;
        }
        host.paused_until = Some(host.paused_until.map_or(until, |t| t.max(until)));
        self.report.pauses += 1;
        self.trace(|| format!("n{i} is frozen until {until}"));
    }

    /// When node `i`'s process resumes, if it is frozen now.
    fn paused_until(&self, i: usize) -> Option<u64> {
        self.hosts.get(i).and_then(|h| h.paused_until).filter(|&t| t > self.now)
    }

    fn partition(&mut self, size: usize) {
        let mut side = 0u32;
        while side == 0 || side.count_ones() as usize == size {
            side = (self.rng.next_u64() as u32) & ((1u32 << size) - 1);
        }
        // One in three cuts only what the side sends: it still hears the others (a master
        // that hears its replicas' votes but whose heartbeats are lost, or the reverse).
        let one_way = self.opts.one_way_partitions && self.rng.below(3) == 0;
        self.report.partitions += 1;
        self.report.one_way_partitions += u32::from(one_way);
        let cut = if one_way { "-/->" } else { "|" };
        self.trace(|| format!("partition: {{{}}} {cut} rest", members_of(side)));
        self.net.partition(side, one_way, self.now);
        let heal_at = self.now.saturating_add(200 + self.rng.below(3_000));
        self.net.schedule(heal_at, Kind::Heal);
    }

    /// The master adds the spare host, or removes a member (not itself).
    fn membership_change(&mut self) {
        if !self.opts.membership_changes || self.designated.is_some() {
            return; // a designated primary's two-voter group stays as it is
        }
        let Some(m) = self.master() else { return };
        let spare = self.hosts.iter().position(|h| h.state == HostState::Spare);
        let data_member = |h: &Host| {
            h.state == HostState::Active
                && matches!(h.identity.node_type, NodeType::Electable | NodeType::Secondary)
        };
        let data_members: Vec<usize> =
            (0..self.hosts.len()).filter(|&j| self.hosts.get(j).is_some_and(data_member)).collect();
        let (change, target) = match spare {
            Some(i) => (crate::GroupChangeType::Add, i),
            // One change in four turns a data member (the master too) from Electable into
            // Secondary or back: it starts or stops voting, as an add or a remove would.
            None if !data_members.is_empty() && self.rng.below(4) == 0 => {
                let pick = self.rng.below(data_members.len() as u64) as usize;
                let Some(&j) = data_members.get(pick) else { return };
                (crate::GroupChangeType::Update, j)
            }
            None => {
                let active: Vec<usize> = (0..self.hosts.len())
                    .filter(|&j| {
                        j != m && self.hosts.get(j).is_some_and(|h| h.state == HostState::Active)
                    })
                    .collect();
                let Some(&j) = active.get(self.rng.below(active.len() as u64) as usize) else {
                    return;
                };
                (crate::GroupChangeType::Remove, j)
            }
        };
        let Some(mut who) = self.hosts.get(target).map(|h| h.identity.clone()) else { return };
        if change == crate::GroupChangeType::Update {
            who.node_type = match who.node_type {
                NodeType::Electable => NodeType::Secondary,
                _ => NodeType::Electable,
            };
        }
        let now = self.now;
        let Some(host) = self.hosts.get_mut(m) else { return };
        let local = host.clock.local(now);
        let Some(node) = host.node.as_mut() else { return };
        let before = node.members().clone();
        let left_slot = before.next_slot().is_some_and(|slot| before.known(slot).is_some());
        let result = node.change_membership(local, change, &who.as_rep_node());
        let term = node.election().term();
        // An added node is started with the group as it was (it joins through the log).
        let members = before;
        self.trace(|| format!("n{m} {change:?} n{target}: {result:?}"));
        self.after_step(m);
        match (change, result) {
            (crate::GroupChangeType::Add, Ok(vlsn)) => {
                self.report.membership_changes += 1;
                if target >= self.report.nodes {
                    self.report.new_machines.0 += 1;
                    self.report.new_machines.1 += u32::from(left_slot);
                    self.report.reused_names += u32::from(self.name_reused(target));
                }
                if let Some(h) = self.hosts.get_mut(target) {
                    h.state = HostState::Active;
                    h.base = members;
                    h.added_at = (term, vlsn);
                }
                self.boot(target);
            }
            (crate::GroupChangeType::Remove, Ok(vlsn)) => {
                self.report.membership_changes += 1;
                self.net.schedule(now + 1_500, Kind::Retire { node: target, vlsn });
            }
            (crate::GroupChangeType::Update, Ok(_)) => {
                self.report.membership_changes += 1;
                self.report.type_changes += 1;
                if let Some(h) = self.hosts.get_mut(target) {
                    h.identity = who; // who it is from now on (unless a failover undoes it)
                }
            }
            _ => {}
        }
    }

    /// A removed member's process is shut down for good once its removal (at `vlsn`) is
    /// durable; if the removal was lost in a failover it stays a member.
    fn retire(&mut self, i: usize, vlsn: u64) {
        let Some(name) = self.name_of(i) else { return };
        let Some(m) = self.master().and_then(|j| self.hosts.get(j)?.node.as_ref()) else {
            self.net.schedule(self.now + 500, Kind::Retire { node: i, vlsn });
            return;
        };
        if m.members().id_of(&name).is_some() {
            return; // the removal was lost: it is a member again
        }
        if m.durable_vlsn() < vlsn {
            self.net.schedule(self.now + 500, Kind::Retire { node: i, vlsn });
            return;
        }
        {
            self.trace(|| format!("{name} retires (removed from the group)"));
            self.crash(i);
            if let Some(h) = self.hosts.get_mut(i) {
                h.state = HostState::Retired;
            }
            self.add_machine();
        }
    }

    /// A machine's clock: a random offset, and a drift of up to `max_drift_ppm` either way.
    fn draw_clock(&mut self) -> Clock {
        let drift = self.opts.max_drift_ppm;
        let ppm = i64::try_from(self.rng.below(2 * drift + 1)).unwrap_or(0)
            - i64::try_from(drift).unwrap_or(0);
        Clock { offset: self.rng.below(1 << 40), ppm }
    }

    /// A new machine, for a later change to add: it joins with empty stores, into whatever
    /// slot the master gives it (a slot a removed member left, once the group has used them
    /// all). Its name is one no member ever had, or (one time in two, with
    /// [`Options::reused_names`]) a retired member's, which comes back as a member with a
    /// log if it kept none. Up to [`MAX_HOSTS`] machines per run.
    fn add_machine(&mut self) {
        let k = self.hosts.len();
        if k >= MAX_HOSTS {
            return;
        }
        let (name, node_type) = match self.reusable_name() {
            Some((name, old)) if holds_log(old) => (name, self.draw_type()),
            Some((name, _)) if self.rng.below(3) == 0 => (name, NodeType::Secondary),
            Some((name, _)) => (name, NodeType::Electable),
            None => (format!("n{k}"), self.draw_type()),
        };
        let priority = match node_type {
            NodeType::Electable => self.rng.below(4) as u32,
            _ => 0,
        };
        let node_id = 100 + k as u32;
        let Ok(identity) = Member::new(&name, node_type, priority, node_id) else { return };
        let clock = self.draw_clock();
        self.checker.add_host(node_id, k);
        self.hosts.push(Host {
            node: None,
            parked: Some((SimStore::default(), SimLog::default())),
            clock,
            timer: None,
            base: Membership::default(), // the group as the change that adds it finds it
            added_at: (0, 0),
            state: HostState::Spare,
            restore_pending: false,
            shutting_down: None,
            identity,
            campaigns: 0,
            paused_until: None,
        });
        self.trace(|| {
            format!("n{k} is a new {node_type:?} machine named {name}, not a member yet")
        });
    }

    /// The type of a new machine with a name no member had.
    fn draw_type(&mut self) -> NodeType {
        match self.rng.below(10) {
            0..=5 => NodeType::Electable,
            6 => NodeType::Arbiter,
            7 => NodeType::Secondary,
            _ => NodeType::Monitor,
        }
    }

    /// One time in two (with [`Options::reused_names`] and membership changes), the name of
    /// a retired member that no machine goes by now, and that member's last type.
    fn reusable_name(&mut self) -> Option<(String, NodeType)> {
        if !(self.opts.reused_names && self.opts.membership_changes) {
            return None;
        }
        let free: Vec<(String, NodeType)> = self
            .hosts
            .iter()
            .filter(|h| h.state == HostState::Retired)
            .filter(|h| {
                host_named(&self.hosts, &h.identity.name)
                    .and_then(|i| self.hosts.get(i))
                    .is_some_and(|h| h.state == HostState::Retired)
            })
            .map(|h| (String::from(h.identity.name.as_str()), h.identity.node_type))
            .collect();
        if free.is_empty() || self.rng.below(2) == 0 {
            return None;
        }
        free.get(self.rng.below(free.len() as u64) as usize).cloned()
    }

    /// The master is shut down gracefully, then its process exits.
    fn graceful_stop(&mut self) {
        let exit = self.now + 2 * self.opts.election.election_timeout_ms + 100;
        if exit >= self.calm_at() {
            return; // the process must be gone before the faults stop
        }
        let Some(i) = self.master() else { return };
        self.trace(|| format!("n{i} shuts down gracefully"));
        let now = self.now;
        if let Some(host) = self.hosts.get_mut(i) {
            if let Some(node) = host.node.as_mut() {
                node.shutdown(host.clock.local(now), "maintenance");
                host.shutting_down = Some(now);
            }
        }
        self.report.graceful_stops += 1;
        self.graceful_at = Some(now);
        self.after_step(i);
        self.net.schedule(exit, Kind::Halt { node: i, since: now });
    }

    fn set_store_failing(&mut self, i: usize, failing: bool) {
        if let Some(n) = self.hosts.get_mut(i).and_then(|h| h.node.as_mut()) {
            n.election_mut().store_mut().fail_writes = failing;
        }
        if failing {
            self.trace(|| format!("n{i} stable store starts failing writes"));
        }
    }

    fn set_sync_failing(&mut self, i: usize, failing: bool) {
        if let Some(n) = self.hosts.get_mut(i).and_then(|h| h.node.as_mut()) {
            n.log_mut().fail_sync = failing;
        }
        if failing {
            self.trace(|| format!("n{i} log store starts failing syncs"));
        }
    }

    fn crash(&mut self, i: usize) {
        let Some(host) = self.hosts.get_mut(i) else { return };
        host.shutting_down = None;
        host.paused_until = None; // the frozen process is gone
        let Some(node) = host.node.take() else { return };
        let name = host.identity.name.clone();
        for other in self.hosts.iter_mut().filter_map(|h| h.node.as_mut()) {
            if let Some(id) = other.members().known_id_of(&name) {
                other.disconnect(id); // its links break
            }
        }
        self.net.break_links(i);
        let Some(host) = self.hosts.get_mut(i) else { return };
        let was_master = node.role() == Role::Master;
        self.report.overflows.add(Overflows::of(&node));
        self.report.misdirected_notices += node.stats().ignored.misdirected_notices;
        let (mut store, mut log) = node.into_stores();
        store.fail_writes = false;
        log.fail_sync = false;
        log.crash();
        host.parked = Some((store, log));
        host.timer = None;
        self.report.crashes += 1;
        if was_master {
            self.master_crashed_at = Some(self.now);
        }
        self.trace(|| format!("n{i} crashes{}", if was_master { " (master)" } else { "" }));
        let back = self.now.saturating_add(100 + self.rng.below(3_000));
        self.net.schedule(back, Kind::Restart { node: i });
    }

    /// An operator restores host `k`, which the master reported behind every retained log:
    /// it is stopped, its log replaced by one compacted through the master's restore point
    /// (the master's compacted entries stand for the history; the node sees none of them)
    /// and its base membership by the master's, if `check_restore` allows; then it starts
    /// again. The checker verifies the point is durable and nothing durable was discarded.
    /// Without a master it waits for one (and one that became master needs none); after
    /// the faults stop, a restore is an operator's
    /// action like a fault, so the recovery and convergence clocks start again after it.
    fn restore(&mut self, k: usize) {
        let source = match self.master() {
            None => {
                let again = self.now.saturating_add(100);
                return self.net.schedule(again, Kind::Restore { node: k });
            }
            Some(m) => m,
        };
        let Some(host) = self.hosts.get_mut(k) else { return };
        host.restore_pending = false;
        if source == k {
            return; // master since: its log is the one the others follow
        }
        if self.now >= self.calm_at() {
            // Recovery and convergence are measured again from here; a planned failover
            // waits for them (see `crash_master`).
            self.recovered_at = None;
            self.report.recovery_ms = None;
            self.report.convergence_ms = None;
            self.restored_at = self.now;
        }
        let Some(node) = self.node(source) else { return };
        let (log, base) = (node.log(), node.base_members().clone());
        let point = log.first_vlsn().saturating_sub(1);
        let term = log.compacted_meta().term;
        let prefix: Vec<_> = log.entries.iter().take(point as usize).cloned().collect();
        self.crash(k);
        let back = self.now.saturating_add(10 + self.rng.below(200));
        self.net.schedule(back, Kind::Restart { node: k }); // refused or done, it starts again
        let Some((_, old)) = self.hosts.get(k).and_then(|h| h.parked.as_ref()) else { return };
        if let Err(refusal) = check_restore(old, point, term) {
            self.report.restores.1 += 1;
            return self.trace(|| format!("n{k} restore from n{source} refused: {refusal}"));
        }
        let result = self.checker.on_restore(k, old, &prefix);
        self.check(result);
        let Some(host) = self.hosts.get_mut(k) else { return };
        if let Some((_, log)) = host.parked.as_mut() {
            *log = SimLog {
                entries: prefix,
                compacted: point,
                synced: point as usize,
                ..SimLog::default()
            };
        }
        host.base = base;
        self.report.restores.0 += 1;
        self.trace(|| format!("n{k} restored from n{source}: its log starts after {point}"));
    }

    fn restart(&mut self, i: usize) {
        if self.hosts.get(i).is_some_and(|h| h.node.is_none()) {
            if self.hosts.get(i).is_some_and(|h| h.state == HostState::Active) {
                self.trace(|| format!("n{i} restarts"));
            }
            self.boot(i); // draws a seed even for a retired host (seeds replay as before)
        }
    }

    /// Crashes the master on a quiet network once, to measure a clean failover (only when the
    /// other voters can still form a quorum without it), on a group that has recovered and
    /// converged: a restore since the convergence that planned it measures both again, and
    /// the next convergence plans it anew (a failover amid that recovery would count in it).
    fn crash_master(&mut self) {
        let planned = self.clean_crash_at.is_some() || self.report.clean_failover_ms.is_some();
        if planned || self.recovered_at.is_none() || self.report.convergence_ms.is_none() {
            return;
        }
        let Some(master) = self.master() else { return };
        let voters = self
            .hosts
            .get(master)
            .and_then(|h| h.node.as_ref())
            .map_or(0, |n| n.members().voter_count());
        if voters < 3 {
            return;
        }
        self.trace(|| String::from("planned failover: crash the master on a quiet network"));
        self.stable_from = None;
        self.crash(master);
        self.master_crashed_at = None;
        self.clean_crash_at = Some(self.now);
    }

    fn calm(&mut self) {
        self.trace(|| String::from("faults stop: network heals, every node is up, writes stop"));
        self.net.faulty = false;
        self.writes_on = false;
        self.net.heal();
        for i in 0..self.hosts.len() {
            self.set_store_failing(i, false);
            self.set_sync_failing(i, false);
            let stopped = self.is_stopped(i);
            if stopped {
                self.crash(i); // a node shut down gracefully is started again
            }
            self.restart(i);
        }
    }

    fn no_recovery(&mut self) {
        let bound = self.opts.liveness_bound_ms;
        let states: Vec<String> = self
            .hosts
            .iter()
            .enumerate()
            .map(|(i, h)| match &h.node {
                Some(n) => {
                    let names: Vec<&str> =
                        n.members().iter().map(|(_, m)| m.name.as_str()).collect();
                    format!(
                        "n{i}: {:?} in term {} with [{}]",
                        n.role(),
                        n.election().term(),
                        names.join(" ")
                    )
                }
                None => format!("n{i}: down"),
            })
            .collect();
        self.violation(format!(
            "no master followed by every member within {bound} ms of the faults stopping (or the \
             last restore) ({})",
            states.join(", ")
        ));
    }

    /// After the faults stop (or the last restore after that): a master every member follows
    /// must appear within the liveness bound, and then every data node's log must equal the
    /// master's within the convergence bound.
    fn check_liveness(&mut self) {
        let calm_at = self.calm_at();
        if self.now < calm_at || !self.report.violations.is_empty() {
            return;
        }
        match (self.recovered_at, self.report.convergence_ms) {
            (None, _) => {
                let waited = self.now.saturating_sub(calm_at.max(self.restored_at));
                if self.everyone_follows_one_master() {
                    self.report.recovery_ms = Some(waited);
                    self.recovered_at = Some(self.now);
                    let settle = 2 * self.opts.election.election_timeout_ms;
                    self.stable_from = Some(self.now.max(calm_at).saturating_add(settle));
                    let backlog = self.catch_up_ms();
                    self.convergence_allowed_ms =
                        self.opts.convergence_bound_ms.saturating_add(backlog);
                } else if waited > self.opts.liveness_bound_ms {
                    self.no_recovery();
                }
            }
            (Some(since), None) => {
                let waited = self.now.saturating_sub(since);
                if self.logs_converged() {
                    self.report.convergence_ms = Some(waited);
                    let at = self.now.saturating_add(self.opts.election.election_timeout_ms);
                    self.net.schedule(at, Kind::CrashMaster);
                } else if waited > self.convergence_allowed_ms {
                    let bound = self.convergence_allowed_ms;
                    let detail = self.divergence();
                    self.violation(format!(
                        "replica logs did not converge within {bound} ms of recovery ({detail})"
                    ));
                }
            }
            _ => {}
        }
    }

    /// The hosts that are members of `members` (by name).
    fn member_hosts<'a>(
        &'a self,
        members: &'a Membership<MAX_NODES>,
    ) -> impl Iterator<Item = (usize, &'a Host)> + 'a {
        self.hosts.iter().enumerate().filter(move |(_, h)| {
            h.state != HostState::Retired && members.id_of(&h.identity.name).is_some()
        })
    }

    /// Some master is followed, in its term, by every member of its group, all up.
    fn everyone_follows_one_master(&self) -> bool {
        let Some(m) = self.master().and_then(|i| self.hosts.get(i)?.node.as_ref()) else {
            return false;
        };
        let (me, term) = (m.election().me(), m.election().term());
        let master_name = m.members().get(me).map(|x| x.name.clone());
        self.member_hosts(m.members()).all(|(_, h)| {
            h.node.as_ref().is_some_and(|n| {
                let follows = n
                    .election()
                    .master()
                    .and_then(|id| n.members().known(id))
                    .map(|x| x.name.clone());
                follows == master_name && n.election().term() == term
            })
        })
    }

    /// Each member's log end and group, for a convergence failure report.
    fn divergence(&self) -> String {
        let parts: Vec<String> = self
            .hosts
            .iter()
            .enumerate()
            .filter_map(|(i, h)| {
                let n = h.node.as_ref()?;
                let names: Vec<&str> = n.members().iter().map(|(_, m)| m.name.as_str()).collect();
                Some(format!(
                    "n{i}: {:?} last {} [{}]",
                    n.role(),
                    n.log().last_vlsn(),
                    names.join(" ")
                ))
            })
            .collect();
        parts.join(", ")
    }

    /// How long the master needs to stream what its furthest-behind data member lacks
    /// (past the last entry where their logs agree), one window per longest round trip.
    fn catch_up_ms(&self) -> u64 {
        let Some(m) = self.master().and_then(|i| self.hosts.get(i)?.node.as_ref()) else {
            return 0;
        };
        let master = m.log();
        let behind = |log: &SimLog| {
            let floor = master.first_vlsn().max(log.first_vlsn()).saturating_sub(1);
            let mut v = master.last_vlsn().min(log.last_vlsn());
            while v > floor && master.meta(v).map(|e| e.term) != log.meta(v).map(|e| e.term) {
                v -= 1;
            }
            master.last_vlsn().saturating_sub(v)
        };
        let backlog = self
            .member_hosts(m.members())
            .filter_map(|(_, h)| h.node.as_ref())
            .filter(|n| stores_data(n))
            .map(|n| behind(n.log()))
            .max()
            .unwrap_or(0);
        let window = self.config_for(0).window.max(1);
        backlog.saturating_mul(2 * self.opts.max_delay_ms).div_ceil(window)
    }

    /// Every data member's log equals the master's, and every member holds the same group.
    fn logs_converged(&self) -> bool {
        let Some(m) = self.master().and_then(|i| self.hosts.get(i)?.node.as_ref()) else {
            return false;
        };
        let master = m.log();
        self.member_hosts(m.members()).all(|(_, h)| match h.node.as_ref() {
            Some(n) => {
                // Members without a log (monitors, arbiters) keep their configured view.
                !stores_data(n)
                    || (n.members().same_members(m.members()) && n.log().entries == master.entries)
            }
            None => false,
        })
    }
}

/// Whether the node is a data member (Electable or Secondary) in its own view.
fn stores_data(n: &SimNode) -> bool {
    n.members().get(n.election().me()).is_some_and(|me| holds_log(me.node_type))
}

fn member(i: usize) -> MemberId {
    MemberId::new(u8::try_from(i).unwrap_or(u8::MAX))
}

fn members_of(side: u32) -> String {
    (0..32).filter(|b| side & (1 << b) != 0).map(|b| format!("n{b}")).collect::<Vec<_>>().join(",")
}

/// The host that goes by `name`: the last that took it (a name is reused only once its
/// machine retired, and new machines come last, so the others with it are retired), else
/// (while the group's hosts are being built) host `k` for `n<k>`.
fn host_named(hosts: &[Host], name: &str) -> Option<usize> {
    (0..hosts.len())
        .rev()
        .find(|&i| hosts.get(i).is_some_and(|h| h.identity.name == name))
        .or_else(|| name.strip_prefix('n')?.parse().ok())
}

/// Draws 1 to 7 hosts of mixed types and priorities (at least one can become master); in
/// some runs the last host is a spare, not a member at first, that a change may add.
fn draw_group(
    rng: &mut SplitMix64,
) -> (Membership<MAX_NODES>, Membership<MAX_NODES>, Option<MemberId>) {
    let size = 1 + rng.below(MAX_NODES as u64) as usize;
    let mut roster = Membership::named("sim").unwrap_or_default();
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
        if let Ok(m) = Member::new(&format!("n{i}"), node_type, priority, 100 + i as u32) {
            let _ = roster.add(m);
        }
    }
    let mut members = roster.clone();
    if size >= 3 && rng.below(2) == 0 {
        let _ = members.remove(member(size - 1));
    }
    let voters = members.voter_count();
    let electables = members.select(|m| m.node_type == NodeType::Electable).len();
    let designated = (voters == 2 && electables == 2 && rng.below(2) == 0).then(|| member(0));
    (roster, members, designated)
}

fn describe(
    roster: &Membership<MAX_NODES>,
    members: &Membership<MAX_NODES>,
    designated: Option<MemberId>,
) -> String {
    let mut parts = Vec::new();
    for (id, m) in roster.iter() {
        let dp = if designated == Some(id) { " designated-primary" } else { "" };
        let dp = if members.get(id).is_none() { " spare" } else { dp };
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
    /// Of those, the ones that cut one direction only.
    pub one_way_partitions: u64,
    /// Nodes frozen for a while, over all runs.
    pub pauses: u64,
    /// Every clean failover time (master crashed on a quiet network).
    pub failovers_ms: Vec<u64>,
    /// Every failover time during the fault phase (master crashed amid other faults).
    pub fault_failovers_ms: Vec<u64>,
    /// Every failover time after a graceful shutdown of the master.
    pub graceful_failovers_ms: Vec<u64>,
    /// Every recovery time seen (end of faults to a followed master).
    pub recoveries_ms: Vec<u64>,
    /// Every convergence time seen (recovery to identical logs).
    pub convergences_ms: Vec<u64>,
    /// Appends the workloads made.
    pub writes: u64,
    /// Entries reported durable, over all runs.
    pub durable_entries: u64,
    /// Durable entries lost, over all runs (must be 0).
    pub lost_durable: u64,
    /// Membership changes accepted, over all runs.
    pub membership_changes: u64,
    /// New machines added, and those added into a slot a removed member left, over all runs.
    pub new_machines: (u64, u64),
    /// New machines added under a retired member's name, over all runs.
    pub reused_names: u64,
    /// Membership notices ignored as misdirected ([`Report::misdirected_notices`]).
    pub misdirected_notices: u64,
    /// Electable/Secondary type changes, over all runs.
    pub type_changes: u64,
    /// Log compactions, and those that dropped a membership change, over all runs.
    pub compactions: (u64, u64),
    /// Restores done and refused, over all runs.
    pub restores: (u64, u64),
    /// Arbiter acknowledgements, all seeds.
    pub arbiter_acks: u64,
    /// Queue overflows (see [`Report::overflows`]), all seeds.
    pub overflows: Overflows,
    /// Runs whose faults started right after the first election ([`Report::early_faults`]).
    pub early_fault_runs: u64,
    /// The slowest run of each timing, to replay with `harp sim --seed`.
    pub slowest: Slowest,
}

/// The slowest clean failover, recovery and convergence of a sweep, each as (ms, seed).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Slowest {
    /// The longest [`Report::clean_failover_ms`].
    pub failover: Option<(u64, u64)>,
    /// The longest [`Report::recovery_ms`].
    pub recovery: Option<(u64, u64)>,
    /// The longest [`Report::convergence_ms`].
    pub convergence: Option<(u64, u64)>,
}

impl Slowest {
    fn of(report: &Report) -> Slowest {
        let with_seed = |ms: Option<u64>| ms.map(|ms| (ms, report.seed));
        Slowest {
            failover: with_seed(report.clean_failover_ms),
            recovery: with_seed(report.recovery_ms),
            convergence: with_seed(report.convergence_ms),
        }
    }

    fn merge(&mut self, other: Slowest) {
        self.failover = self.failover.max(other.failover);
        self.recovery = self.recovery.max(other.recovery);
        self.convergence = self.convergence.max(other.convergence);
    }
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
        self.one_way_partitions += u64::from(report.one_way_partitions);
        self.pauses += u64::from(report.pauses);
        self.failovers_ms.extend(report.clean_failover_ms);
        self.fault_failovers_ms.extend_from_slice(&report.failovers_ms);
        self.graceful_failovers_ms.extend_from_slice(&report.graceful_failovers_ms);
        self.recoveries_ms.extend(report.recovery_ms);
        self.convergences_ms.extend(report.convergence_ms);
        self.writes += report.writes;
        self.durable_entries += report.durable_entries;
        self.lost_durable += report.lost_durable;
        self.membership_changes += u64::from(report.membership_changes);
        self.new_machines.0 += u64::from(report.new_machines.0);
        self.new_machines.1 += u64::from(report.new_machines.1);
        self.reused_names += u64::from(report.reused_names);
        self.misdirected_notices += u64::from(report.misdirected_notices);
        self.type_changes += u64::from(report.type_changes);
        self.compactions.0 += u64::from(report.compactions.0);
        self.compactions.1 += u64::from(report.compactions.1);
        self.restores.0 += u64::from(report.restores.0);
        self.restores.1 += u64::from(report.restores.1);
        self.arbiter_acks += report.arbiter_acks;
        self.overflows.add(report.overflows);
        self.early_fault_runs += u64::from(report.early_faults);
        self.slowest.merge(Slowest::of(report));
    }

    /// Adds another summary (from another thread).
    pub fn merge(&mut self, other: Summary) {
        self.seeds += other.seeds;
        self.violations.extend(other.violations);
        self.elections += other.elections;
        self.crashes += other.crashes;
        self.partitions += other.partitions;
        self.one_way_partitions += other.one_way_partitions;
        self.pauses += other.pauses;
        self.failovers_ms.extend(other.failovers_ms);
        self.fault_failovers_ms.extend(other.fault_failovers_ms);
        self.graceful_failovers_ms.extend(other.graceful_failovers_ms);
        self.recoveries_ms.extend(other.recoveries_ms);
        self.convergences_ms.extend(other.convergences_ms);
        self.writes += other.writes;
        self.durable_entries += other.durable_entries;
        self.lost_durable += other.lost_durable;
        self.membership_changes += other.membership_changes;
        self.new_machines.0 += other.new_machines.0;
        self.new_machines.1 += other.new_machines.1;
        self.reused_names += other.reused_names;
        self.misdirected_notices += other.misdirected_notices;
        self.type_changes += other.type_changes;
        self.compactions.0 += other.compactions.0;
        self.compactions.1 += other.compactions.1;
        self.restores.0 += other.restores.0;
        self.restores.1 += other.restores.1;
        self.arbiter_acks += other.arbiter_acks;
        self.overflows.add(other.overflows);
        self.early_fault_runs += other.early_fault_runs;
        self.slowest.merge(other.slowest);
    }

    /// Why the sweep proves nothing, if it saw no crash, partition, election or durable entry.
    pub fn vacuous(&self) -> Option<&'static str> {
        match (self.crashes, self.partitions, self.elections, self.durable_entries) {
            (0, _, _, _) => Some("the sweep saw no crash"),
            (_, 0, _, _) => Some("the sweep saw no partition"),
            (_, _, 0, _) => Some("the sweep saw no election"),
            (_, _, _, 0) => Some("the sweep saw no durable entry"),
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
