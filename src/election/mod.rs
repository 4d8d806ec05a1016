//! Master election: a sans-IO state machine that never elects two masters in one term.
//!
//! Each voter (Electable or Arbiter member) takes part in numbered terms. A voter whose
//! master has gone quiet first asks the other voters whether they would join term `T + 1`
//! (a pre-vote, which changes no term); once a quorum has not heard a master either, it
//! starts `T + 1` by broadcasting an `ElectionProposal` carrying its rank; every voter that
//! hears of a higher term joins it and broadcasts its own proposal. Once a voter has heard
//! every voter (or its collection window closes) it votes, once per term and durably, for
//! the best-ranked candidate it heard (`ElectionVote`). A candidate that collects the votes
//! of a quorum is master of `T` and tells every member (`ElectionResult`). Masters send
//! `Heartbeat`s; a master that hears from no quorum for a lease steps down. The full
//! protocol, with sequences, is in `docs/protocol.md`.
//!
//! Inputs: [`Election::handle`] (a peer's message), [`Election::handle_timeout`],
//! [`Election::set_log_position`], [`Election::start`]/[`Election::stop`]. Outputs, drained by
//! the caller: [`Election::poll_transmit`], [`Election::poll_event`],
//! [`Election::poll_timeout`]. Time is the caller's monotonic clock in milliseconds.
//!
//! ```
//! use harp::election::{Config, Election, Event, Role};
//! use harp::membership::{Member, Membership};
//! use harp::storage::RamStore;
//! use harp::NodeType;
//!
//! let mut group = Membership::<1>::new();
//! let me = group.add(Member::new("solo", NodeType::Electable, 1, 1)?)?;
//! let mut node = Election::new(group, me, Config::default(), RamStore::new(), 42, 0).unwrap();
//! let deadline = node.poll_timeout().unwrap();
//! node.handle_timeout(deadline); // the master is silent: start term 1, vote for itself
//! assert_eq!(node.role(), Role::Master);
//! assert_eq!(node.poll_event(), Some(Event::ElectionStarted { term: 1 }));
//! assert_eq!(node.poll_event(), Some(Event::BecameMaster { term: 1 }));
//! # Ok::<(), harp::membership::MembershipError>(())
//! ```

mod outbox;
mod rank;

pub use outbox::OUTBOX_CAPACITY;
pub use rank::{choose, Rank};

use crate::arith::{count, SaturatingU64};
use crate::membership::{Member, MemberId, MemberSet, Membership};
use crate::rng::SplitMix64;
use crate::storage::{ElectionRecord, RecordError, StableStore, MAX_RECORD};
use crate::wire::{Extension, Message};
use crate::{MessageRef, NodeType};
use core::fmt;
use outbox::{Outbox, Outgoing};

/// A master re-sends its result to every member every this many heartbeat intervals.
pub const RESULT_REFRESH: u64 = 10;

/// How many events wait for [`Election::poll_event`] at most.
pub const EVENT_CAPACITY: usize = 8;

/// Timing and options of an election. All times are milliseconds of the caller's clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Config {
    /// How often a master sends heartbeats.
    pub heartbeat_interval_ms: u64,
    /// The shortest silence after which a voter starts an election; each wait is drawn
    /// uniformly from `[t, 2t)`, which is also the backoff after a split vote.
    pub election_timeout_ms: u64,
    /// How long a voter collects proposals in a new term before voting (it votes earlier
    /// once it has heard every voter). Must exceed a round trip.
    pub collect_ms: u64,
    /// A master that has heard from no quorum for this long steps down. Keep it below
    /// `election_timeout_ms` by more than the clocks drift, so an old master stops before a
    /// new one can be elected.
    pub lease_ms: u64,
    /// In a group of exactly two voters, this node may be master alone (JE's designated
    /// primary). Set it on at most one of the two.
    pub designated_primary: bool,
    /// Quorums are computed over this many voters instead of the real count (JE's
    /// electable-group-size override, for disaster recovery: it weakens the one-master
    /// guarantee by design).
    pub electable_group_size_override: Option<u8>,
    /// Terms more than this far above the current one are impossible (a peer cannot exhaust
    /// the term space with one message).
    pub max_term_jump: u64,
    /// Ask before starting a term (Raft's PreVote): a voter whose master went silent starts
    /// `T + 1` only once a quorum of voters answered that they have not heard a master for an
    /// election timeout either. A voter cut off from the group then never raises its term,
    /// so it cannot depose a working master when it comes back. Every member must understand
    /// extensions 16 and 17 (any harp version that has this option does); a node with it off
    /// still answers pre-proposals.
    pub pre_vote: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            heartbeat_interval_ms: 100,
            election_timeout_ms: 500,
            collect_ms: 60,
            lease_ms: 400,
            designated_primary: false,
            electable_group_size_override: None,
            max_term_jump: 1 << 32,
            pre_vote: true,
        }
    }
}

impl Config {
    /// Checks the relations between the timings.
    pub fn validate(&self) -> Result<(), &'static str> {
        if self.heartbeat_interval_ms == 0 || self.collect_ms == 0 {
            return Err("heartbeat_interval_ms and collect_ms must be above 0");
        }
        if self.lease_ms <= self.heartbeat_interval_ms {
            return Err("lease_ms must exceed heartbeat_interval_ms");
        }
        if self.election_timeout_ms <= self.lease_ms {
            return Err("election_timeout_ms must exceed lease_ms");
        }
        if self.electable_group_size_override == Some(0) || self.max_term_jump == 0 {
            return Err("electable_group_size_override and max_term_jump must be above 0");
        }
        Ok(())
    }
}

/// What the node currently is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Role {
    /// Not taking part (before [`Election::start`] or after [`Election::stop`]).
    Stopped,
    /// Knows no master and is not in an election.
    Unknown,
    /// Taking part in the election of the current term.
    Electing,
    /// Follows `master` in the current term.
    Replica {
        /// The master of the current term.
        master: MemberId,
    },
    /// Master of the current term.
    Master,
}

/// Why a master stopped being one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum StepDown {
    /// A member spoke of a higher term.
    HigherTerm,
    /// No quorum answered heartbeats for a lease.
    LostQuorum,
    /// The node was stopped.
    Stopped,
}

/// Something the caller should know about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Event {
    /// This node started or joined the election of `term`.
    ElectionStarted {
        /// The new term.
        term: u64,
    },
    /// A quorum elected this node master of `term`.
    BecameMaster {
        /// The term it is master of.
        term: u64,
    },
    /// `master` is master of `term`; this node follows it.
    MasterKnown {
        /// The master.
        master: MemberId,
        /// Its term.
        term: u64,
    },
    /// This node was master of `term` and is not any more.
    SteppedDown {
        /// The term it was master of.
        term: u64,
        /// Why.
        reason: StepDown,
    },
    /// The master of `term` went silent (for members that cannot start elections).
    MasterLost {
        /// The term whose master went silent.
        term: u64,
    },
    /// The stable store failed a write; the message that depended on it was not sent.
    StorageFailed,
}

/// Inputs that were ignored, by reason. Nothing a peer sends grows memory or panics; it is
/// counted here.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Ignored {
    /// From an id that is not a member (or from this node itself).
    pub not_member: u32,
    /// An election message from a Secondary or Monitor, or to one.
    pub not_voter: u32,
    /// A proposal or vote whose name is not its sender's.
    pub spoofed: u32,
    /// Term 0, a term beyond `max_term_jump`, or a result naming a node that cannot be master.
    pub impossible: u32,
    /// From an older term (answered with the current term).
    pub stale_term: u32,
    /// Valid but not expected in the current phase (duplicates, late votes).
    pub out_of_phase: u32,
    /// A second master claimed for this node's own term (never happens unless safety broke).
    pub conflicting_master: u32,
    /// Not an election message (replication and membership messages go elsewhere).
    pub not_election: u32,
}

/// Counters of what the election did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Stats {
    /// Elections started or joined.
    pub elections: u32,
    /// Pre-vote rounds this node began (its election timer fired; see [`Config::pre_vote`]).
    pub pre_votes: u32,
    /// Terms this node started itself: a pre-vote quorum answered, its master announced a
    /// shutdown, or pre-votes are off.
    pub campaigns: u32,
    /// Votes cast.
    pub votes: u32,
    /// Terms in which this node voted for no one (no candidate, or JE's arbiter rule).
    pub abstentions: u32,
    /// Terms this node won.
    pub terms_won: u32,
    /// Times this node stepped down as master.
    pub step_downs: u32,
    /// Stable-store writes that failed.
    pub storage_failures: u32,
    /// Messages not queued because the outbox was full (the peer sees them as lost).
    pub outbox_overflows: u32,
    /// Events not queued because the caller did not drain them.
    pub event_overflows: u32,
    /// Ignored inputs, by reason.
    pub ignored: Ignored,
}

/// A message to send: the caller encodes `message` (e.g. with
/// [`stream::encode_frame`](crate::frame::stream::encode_frame) or
/// [`cobs::encode_frame`](crate::frame::cobs::encode_frame)) and sends it to `to`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transmit<'a> {
    /// The recipient.
    pub to: MemberId,
    /// The recipient's member entry (its name, to route by).
    pub recipient: &'a Member,
    /// The message, borrowing names from the election's membership.
    pub message: Message<'a>,
}

/// What [`Election::restore`] checked and read: who the node is, and the term, vote and
/// acknowledged position of its election record. Small and `Copy`; hand it to
/// [`Election::start_restored`] or [`Node::start`](crate::node::Node::start).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Restored {
    me: MemberId,
    priority: u32,
    term: u64,
    vote: Option<u32>,
    acknowledged: (u64, u64),
}

/// Why an election could not start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartError<E> {
    /// `me` is not a member.
    NotAMember,
    /// The configuration is inconsistent.
    Config(&'static str),
    /// The stable store could not be read.
    Storage(E),
    /// The stored record fails its check: the node must not vote with it.
    Record(RecordError),
}

impl<E: fmt::Debug> fmt::Display for StartError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::NotAMember => f.write_str("this node is not a member of the group"),
            StartError::Config(why) => write!(f, "invalid election config: {why}"),
            StartError::Storage(e) => write!(f, "stable store read failed: {e:?}"),
            StartError::Record(e) => write!(f, "stable store holds a bad record: {e}"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
enum Phase {
    Stopped,
    Follower { master: Option<MemberId> },
    Electing { collect_until: u64, decided: bool },
    Master { next_heartbeat: u64 },
}

/// The election state machine of one node in a group of at most `N` members.
pub struct Election<S, const N: usize> {
    members: Membership<N>,
    me: MemberId,
    config: Config,
    store: S,
    rng: SplitMix64,
    term: u64,
    /// The node id voted for in `term` (a node id, not a slot: the member may since have
    /// been removed, and the promise still holds).
    vote: Option<u32>,
    phase: Phase,
    /// Ranks heard in proposals for the current term.
    heard: heapless::Vec<(MemberId, Rank), N>,
    /// Per member: the last `LogTerm` extension it sent, as (election term, log term).
    log_terms: [(u64, u64); N],
    /// Members whose vote for this node in the current term arrived.
    votes: MemberSet,
    election_deadline: u64,
    /// The random part of `election_deadline` (dropped when the master's link breaks).
    election_jitter: u64,
    /// From when this node grants pre-votes: an election timeout after it last heard its
    /// master, took part in an election or started; at once when its master's link broke or
    /// its master announced a shutdown.
    grants_from: u64,
    /// The term of this node's pre-vote round (0: none; else always `term + 1`) and the
    /// voters that granted it, itself included.
    pre_term: u64,
    pre_grants: MemberSet,
    /// As master: the newest heartbeat timestamp each member echoed.
    acked: [u64; N],
    /// As master: each member's last measured heartbeat round trip, in ms.
    round_trips: [Option<u32>; N],
    /// As master: when each member was last sent the result.
    told: [u64; N],
    log: Rank,
    /// The position this node promised to vote only at or past (its election record's
    /// `acknowledged`): the Add of a node that joined; an arbiter's grows with `log`.
    floor: (u64, u64),
    joining: Option<Member>,
    stream_vlsn: u64,
    outbox: Outbox,
    events: heapless::Deque<Event, EVENT_CAPACITY>,
    stats: Stats,
}

impl<S: StableStore, const N: usize> Election<S, N> {
    const FITS_MEMBER_SET: () = assert!(N <= 32, "a group has at most 32 members");

    /// Restores a node from its stable store and starts it at `now`, as a follower that
    /// knows no master. `seed` drives its randomised timeouts.
    ///
    /// A record that fails its check is [`StartError::Record`]: the node does not vote
    /// with a promise it cannot trust, and it never silently starts fresh.
    pub fn new(
        members: Membership<N>,
        me: MemberId,
        config: Config,
        mut store: S,
        seed: u64,
        now: u64,
    ) -> Result<Self, StartError<S::Error>> {
        let restored = Self::restore(&members, me, &config, &mut store)?;
        Ok(Self::start_restored(restored, members, config, store, seed, now))
    }

    /// The part of [`new`](Self::new) that can fail, and holds nothing big: checks that `me`
    /// is a member and the configuration, and reads the election record. With
    /// [`start_restored`](Self::start_restored), which cannot fail, a firmware builds the
    /// state straight where it lives (see [`Node::restore`](crate::node::Node::restore)).
    pub fn restore(
        members: &Membership<N>,
        me: MemberId,
        config: &Config,
        store: &mut S,
    ) -> Result<Restored, StartError<S::Error>> {
        let priority = members.get(me).ok_or(StartError::NotAMember)?.priority;
        Self::restore_as(me, priority, config, store)
    }

    /// A node that is not (yet) in `members`: it takes no part in elections until a change
    /// applied through [`set_members`](Self::set_members) puts it in slot `me` (the first
    /// empty slot of `members`, where an Add places it, or [`MemberId::UNPLACED`] while
    /// every slot holds a member: the log it is streamed may free one before its Add).
    /// `added_at` is the `(log_term, vlsn)` of the master's Add of this node: the node
    /// promises, durably, to vote only for candidates whose log reaches it (see
    /// [`restore_learner`](Self::restore_learner)). `Node::new_joining` uses this.
    pub fn new_learner(
        members: Membership<N>,
        added_at: (u64, u64),
        config: Config,
        mut store: S,
        seed: u64,
        now: u64,
    ) -> Result<Self, StartError<S::Error>> {
        let restored = Self::restore_learner(&members, added_at, &config, &mut store)?;
        Ok(Self::start_restored(restored, members, config, store, seed, now))
    }

    /// The part of [`new_learner`](Self::new_learner) that can fail, as
    /// [`restore`](Self::restore) is for [`new`](Self::new): checks the configuration and
    /// reads the election record, for a node in slot `members.unused_slot()` (or unplaced)
    /// with priority 0 until it joins. [`start_restored`](Self::start_restored) then starts
    /// it; `Node::restore_joining` uses this.
    ///
    /// Before it returns, the record promises `added_at` (the position of the master's Add
    /// of this node, `(log_term, vlsn)`): the node votes only for candidates whose log
    /// reaches it, as an arbiter votes only past what it acknowledged. The wire names a
    /// voter by name alone, so a candidate whose log lacks the Add would count the vote as
    /// that of whoever its view gives the name (a removed member, when the name is reused)
    /// and could win without a quorum that holds every durable entry. The record's term
    /// becomes at least the Add's, so the node never follows a master of an earlier term,
    /// which lacks the Add and would count its acknowledgements the same way.
    ///
    /// ```
    /// use harp::election::Election;
    /// use harp::membership::{Member, Membership};
    /// use harp::storage::{ElectionRecord, RamStore, StableStore, MAX_RECORD};
    /// use harp::NodeType;
    ///
    /// let mut group = Membership::<3>::new();
    /// group.add(Member::new("a", NodeType::Electable, 1, 1).unwrap()).unwrap();
    /// let mut store = RamStore::new();
    /// // The master wrote the Add at VLSN 40 in term 3.
    /// let config = Default::default();
    /// Election::restore_learner(&group, (3, 40), &config, &mut store)?;
    /// let mut buf = [0u8; MAX_RECORD];
    /// let len = store.read(&mut buf).unwrap().unwrap();
    /// let record = ElectionRecord::decode(&buf[..len]).unwrap();
    /// assert_eq!((record.term, record.acknowledged), (3, (3, 40)));
    /// # Ok::<(), harp::election::StartError<harp::storage::RecordTooLarge>>(())
    /// ```
    pub fn restore_learner(
        members: &Membership<N>,
        added_at: (u64, u64),
        config: &Config,
        store: &mut S,
    ) -> Result<Restored, StartError<S::Error>> {
        let me = members.unused_slot().unwrap_or(MemberId::UNPLACED);
        let restored = Self::restore_as(me, 0, config, store)?;
        let Restored { term, vote, acknowledged, .. } = restored;
        // At least the Add's term too: a master of an earlier term lacks the Add, and one
        // whose view gives the name to a removed member would count this node's acks as
        // that member's (a node that never voted in that term has no vote to keep).
        let (term, vote) = if added_at.0 > term { (added_at.0, None) } else { (term, vote) };
        if added_at <= acknowledged && term == restored.term {
            return Ok(restored);
        }
        let acknowledged = acknowledged.max(added_at);
        Self::store_record(store, ElectionRecord { term, vote, acknowledged })?;
        Ok(Restored { term, vote, acknowledged, ..restored })
    }

    fn restore_as(
        me: MemberId,
        priority: u32,
        config: &Config,
        store: &mut S,
    ) -> Result<Restored, StartError<S::Error>> {
        let () = Self::FITS_MEMBER_SET;
        config.validate().map_err(StartError::Config)?;
        let (term, vote, acknowledged) = Self::read_record(store)?;
        Ok(Restored { me, priority, term, vote, acknowledged })
    }

    /// Starts the election that [`restore`](Self::restore) checked (with the same `members`,
    /// `config` and `store`), at `now`, as a follower that knows no master.
    pub fn start_restored(
        restored: Restored,
        members: Membership<N>,
        config: Config,
        store: S,
        seed: u64,
        now: u64,
    ) -> Self {
        let Restored { me, priority, term, vote, acknowledged: (log_term, vlsn) } = restored;
        // An arbiter's log position is the one it acknowledged (other nodes set theirs).
        let log = Rank { log_term, vlsn, dtvlsn: 0, priority };
        let mut election = Election {
            members,
            me,
            config,
            store,
            rng: SplitMix64::new(seed),
            term,
            vote,
            phase: Phase::Stopped,
            heard: heapless::Vec::new(),
            log_terms: [(0, 0); N],
            votes: MemberSet::EMPTY,
            election_deadline: 0,
            election_jitter: 0,
            grants_from: 0,
            pre_term: 0,
            pre_grants: MemberSet::EMPTY,
            acked: [0; N],
            round_trips: [None; N],
            told: [0; N],
            log,
            floor: (log_term, vlsn),
            joining: None,
            stream_vlsn: 0,
            outbox: Outbox::default(),
            events: heapless::Deque::new(),
            stats: Stats::default(),
        };
        election.start(now);
        election
    }

    /// Reads (term, vote, acknowledged position) from the store. A vote names a node id,
    /// which binds its term even if that node has been removed since.
    #[allow(clippy::type_complexity)]
    fn read_record(store: &mut S) -> Result<(u64, Option<u32>, (u64, u64)), StartError<S::Error>> {
        let mut buf = [0u8; MAX_RECORD];
        let Some(len) = store.read(&mut buf).map_err(StartError::Storage)? else {
            return Ok((0, None, (0, 0)));
        };
        let bytes = buf.get(..len).ok_or(StartError::Record(RecordError::TooLarge))?;
        let record = ElectionRecord::decode(bytes).map_err(StartError::Record)?;
        Ok((record.term, record.vote, record.acknowledged))
    }

    // ----- queries -----

    /// The current term.
    pub fn term(&self) -> u64 {
        self.term
    }

    /// Whom this node voted for in the current term.
    pub fn vote(&self) -> Option<MemberId> {
        self.vote.and_then(|node_id| self.members.id_of_node(node_id))
    }

    /// What the node is now.
    #[cfg_attr(target_pointer_width = "32", inline(always))]
    pub fn role(&self) -> Role {
        match self.phase {
            Phase::Stopped => Role::Stopped,
            Phase::Follower { master: None } => Role::Unknown,
            Phase::Follower { master: Some(master) } => Role::Replica { master },
            Phase::Electing { .. } => Role::Electing,
            Phase::Master { .. } => Role::Master,
        }
    }

    /// The master of the current term, if known (this node itself when it is master).
    pub fn master(&self) -> Option<MemberId> {
        match self.phase {
            Phase::Master { .. } => Some(self.me),
            Phase::Follower { master } => master,
            _ => None,
        }
    }

    /// This node's id.
    pub fn me(&self) -> MemberId {
        self.me
    }

    /// The group.
    pub fn members(&self) -> &Membership<N> {
        &self.members
    }

    /// Replaces the membership (a replicated change was applied). State kept for members
    /// that left or whose slot changed hands is dropped; quorums follow the new voters. A
    /// node that is no longer a member takes no part in elections (until a truncated
    /// removal makes it a member again).
    pub fn set_members(&mut self, members: Membership<N>) {
        for i in 0..N {
            let id = MemberId::new(u8::try_from(i).unwrap_or(u8::MAX));
            let same = match (self.members.get(id), members.get(id)) {
                (Some(old), Some(new)) => old.name == new.name && old.is_voter() == new.is_voter(),
                (None, None) => true,
                _ => false,
            };
            if !same {
                self.heard.retain(|(h, _)| *h != id);
                self.votes.remove(id);
                if let Some(a) = self.acked.get_mut(i) {
                    *a = 0;
                }
                if let Some(t) = self.log_terms.get_mut(i) {
                    *t = (0, 0);
                }
            }
        }
        let was_master = matches!(self.phase, Phase::Master { .. });
        let was_voter = self.is_voter();
        self.members = members;
        self.log.priority = self.members.get(self.me).map_or(0, |m| m.priority);
        if !was_voter && self.is_voter() {
            // A node that starts voting persists the term it knows before it can vote in it,
            // with its vote as recorded: the member it voted for may not be in this view (a
            // joiner replaying the log meets memberships older than its vote), and a vote
            // lost could be given again in the same term.
            let (term, vote) = (self.term, self.vote);
            self.write_record(term, vote, self.acknowledged());
        }
        if was_master && !self.own().is_voter() {
            self.step_down(StepDown::Stopped);
        }
    }

    /// Moves this node to slot `me` (a joining node's slot is where the log's Add put it).
    pub fn set_me(&mut self, me: MemberId) {
        if me != self.me {
            self.me = me;
            self.heard.clear();
            self.votes = MemberSet::EMPTY;
            self.log.priority = self.members.get(me).map_or(0, |m| m.priority);
        }
    }

    /// As master: the round trip of the last heartbeat `member` echoed, in ms (its
    /// `HeartbeatResponse` carries the heartbeat's timestamp back).
    pub fn round_trip_ms(&self, member: MemberId) -> Option<u32> {
        self.round_trips.get(member.index()).copied().flatten()
    }

    /// Voters of `members` this master heard from within its lease (itself included).
    pub fn live_voters(&self, members: &Membership<N>, now: u64) -> usize {
        let lease = self.config.lease_ms;
        members
            .iter()
            .filter(|(_, m)| m.is_voter())
            .filter(|(id, _)| {
                *id == self.me || self.acked.get(id.index()).is_some_and(|&a| a.plus(lease) >= now)
            })
            .count()
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// What the election has done and ignored.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The stable store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The stable store, mutably (for tests and simulators that inject store failures;
    /// writing a record behind the election's back voids its guarantees).
    pub fn store_mut(&mut self) -> &mut S {
        &mut self.store
    }

    /// Gives the stable store back (what survives a crash).
    pub fn into_store(self) -> S {
        self.store
    }

    /// The votes this node needs to become master: a strict majority of the voters (or of
    /// the overridden group size), or 1 for a designated primary of a two-voter group.
    pub fn quorum(&self) -> usize {
        let voters = self.members.voter_count();
        if self.config.designated_primary && voters == 2 && self.own().is_candidate() {
            return 1;
        }
        let size = self.config.electable_group_size_override.map_or(voters, usize::from);
        size / 2 + 1
    }

    fn own(&self) -> &Member {
        // A joining node is who it joins as until the log puts it in the group (Raft: a
        // server answers vote requests whatever its own configuration says).
        self.members.get(self.me).or(self.joining.as_ref()).unwrap_or_else(|| unreachable_member())
    }

    /// Who this node joins the group as, until the log makes it a member.
    pub(crate) fn joining(&self) -> Option<&Member> {
        self.joining.as_ref()
    }

    /// Marks this node as joining the group as `own` (it votes when asked, as Raft servers
    /// do, so a group whose log already counts it can elect a master).
    pub fn set_joining(&mut self, own: Option<Member>) {
        self.joining = own;
        self.log.priority = self.own().priority;
    }

    fn is_voter(&self) -> bool {
        self.own().is_voter()
    }

    /// Whether this node answers proposals with a (persisted) vote: voters, and Secondary
    /// members too, as Raft servers answer whatever their own configuration says. A
    /// candidate counts only the votes of its own view's voters, so a Secondary's vote
    /// counts only where an `Update` it has not received yet made it Electable: without it,
    /// a group that counts it could never elect a master. It never campaigns.
    fn answers_votes(&self) -> bool {
        let own = self.own();
        own.is_voter() || own.node_type == NodeType::Secondary
    }

    /// Whether this node votes now (a voter of its current membership).
    pub fn votes_now(&self) -> bool {
        self.is_voter()
    }

    // ----- outputs -----

    /// The next message to send, if any.
    pub fn poll_transmit(&mut self) -> Option<Transmit<'_>> {
        let (to, out) = self.outbox.pop()?;
        let recipient = self.members.known(to).unwrap_or_else(|| unreachable_member());
        Some(Transmit { to, recipient, message: self.render(out) })
    }

    /// The recipient of the next message to send, without taking it.
    pub fn next_recipient(&self) -> Option<MemberId> {
        self.outbox.peek().map(|(to, _)| to)
    }

    /// Drops the next message to send (its recipient cannot be reached); the peer sees it as
    /// lost.
    pub fn skip_transmit(&mut self) {
        self.outbox.pop();
    }

    /// Encodes the next message to send into `buf` and returns its recipient and length.
    ///
    /// If `buf` is too small the message stays queued and the error states the size needed.
    ///
    /// ```
    /// # use harp::election::{Config, Election};
    /// # use harp::membership::{Member, Membership};
    /// # use harp::storage::RamStore;
    /// # use harp::{MessageRef, NodeType};
    /// # use harp::wire::{Extension, Message};
    /// let mut group = Membership::<2>::new();
    /// let a = group.add(Member::new("a", NodeType::Electable, 1, 1)?)?;
    /// group.add(Member::new("b", NodeType::Electable, 1, 2)?)?;
    /// let mut node = Election::new(group, a, Config::default(), RamStore::new(), 7, 0).unwrap();
    /// let deadline = node.poll_timeout().unwrap();
    /// node.handle_timeout(deadline); // asks b whether it would join term 1
    /// let mut buf = [0u8; 64];
    /// let (to, len) = node.poll_encoded(&mut buf).unwrap().unwrap();
    /// assert_eq!(node.members().get(to).unwrap().name, "b");
    /// assert_eq!(Message::decode(&buf[..len]), Ok(Message::Ext(Extension::PreProposal { term: 1 })));
    /// node.handle_ext(deadline + 1, to, &Extension::PreVote { term: 1 }); // b would: term 1 starts
    /// let (_, len) = node.poll_encoded(&mut buf).unwrap().unwrap(); // LogTerm, then the proposal
    /// assert_eq!(Message::decode(&buf[..len]), Ok(Message::Ext(Extension::LogTerm { term: 1, log_term: 0 })));
    /// let (_, len) = node.poll_encoded(&mut buf).unwrap().unwrap();
    /// assert!(matches!(MessageRef::decode(&buf[..len]), Ok(MessageRef::ElectionProposal { term: 1, .. })));
    /// # Ok::<(), harp::membership::MembershipError>(())
    /// ```
    pub fn poll_encoded(
        &mut self,
        buf: &mut [u8],
    ) -> Result<Option<(MemberId, usize)>, crate::wire::Error> {
        let Some((to, out)) = self.outbox.peek() else { return Ok(None) };
        let len = self.render(out).encode_into(buf)?;
        self.outbox.pop();
        Ok(Some((to, len)))
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) must next be called (None: stopped).
    pub fn poll_timeout(&self) -> Option<u64> {
        match self.phase {
            Phase::Stopped => None,
            Phase::Master { next_heartbeat } => Some(next_heartbeat),
            Phase::Electing { collect_until, decided: false } => {
                Some(collect_until.min(self.election_deadline))
            }
            Phase::Electing { .. } | Phase::Follower { .. } => Some(self.election_deadline),
        }
    }

    /// Whether messages are waiting in the outbox.
    pub fn has_transmit(&self) -> bool {
        !self.outbox.is_empty()
    }

    fn render(&self, out: Outgoing) -> Message<'_> {
        let name = |id: MemberId| self.members.known(id).map_or("", |m| m.name.as_str());
        // A node joining into a slot a removed member left is who it joins as, not the
        // removed member its view still recognises there.
        let own = self
            .members
            .get(self.me)
            .or(self.joining.as_ref())
            .map_or_else(|| name(self.me), |m| m.name.as_str());
        Message::Core(match out {
            Outgoing::LogTerm { term } => {
                return Message::Ext(Extension::LogTerm { term, log_term: self.log.log_term })
            }
            Outgoing::PreVote { granted, term } => {
                return Message::Ext(if granted {
                    Extension::PreVote { term }
                } else {
                    Extension::PreProposal { term }
                })
            }
            Outgoing::Proposal { term } => MessageRef::ElectionProposal {
                node_name: own,
                vlsn: self.log.vlsn,
                priority: self.log.priority,
                term,
                dtvlsn: self.log.dtvlsn,
            },
            Outgoing::Vote { granted, term } => {
                MessageRef::ElectionVote { voter: own, granted, term }
            }
            Outgoing::Result { master, term } => {
                MessageRef::ElectionResult { master: name(master), term }
            }
            Outgoing::Heartbeat { master_vlsn, timestamp_ms } => {
                MessageRef::Heartbeat { master_vlsn, timestamp_ms }
            }
            Outgoing::HeartbeatResponse { replica_vlsn, timestamp_ms } => {
                MessageRef::HeartbeatResponse { replica_vlsn, timestamp_ms }
            }
        })
    }

    fn send(&mut self, to: MemberSet, msg: Outgoing) {
        if !self.outbox.push(to, msg) {
            count(&mut self.stats.outbox_overflows);
        }
    }

    fn send_to(&mut self, to: MemberId, msg: Outgoing) {
        let mut set = MemberSet::EMPTY;
        set.insert(to);
        self.send(set, msg);
    }

    fn emit(&mut self, event: Event) {
        if self.events.push_back(event).is_err() {
            count(&mut self.stats.event_overflows);
        }
    }

    /// The members other than this node for which `keep` holds.
    pub(crate) fn others(&self, keep: fn(&Member) -> bool) -> MemberSet {
        let mut set = self.members.select(keep);
        set.remove(self.me);
        set
    }

    // ----- local inputs -----

    /// Starts (or restarts) taking part, as a follower that knows no master.
    pub fn start(&mut self, now: u64) {
        if matches!(self.phase, Phase::Stopped) {
            self.phase = Phase::Follower { master: None };
            // A master may be working that this node has not heard yet: no pre-vote for an
            // election timeout, as if it had just heard one.
            self.contact(now);
        }
    }

    /// Stops taking part: a master steps down; nothing is sent until [`start`](Self::start).
    pub fn stop(&mut self) {
        if let Phase::Master { .. } = self.phase {
            self.step_down(StepDown::Stopped);
        }
        self.phase = Phase::Stopped;
    }

    /// The node's log moved: proposals from now on carry this position (`log_term` is the
    /// term in which the last entry was written).
    ///
    /// A log whose last term is past the node's term (its election record was lost, or the
    /// log came from another node) moves the node to that term as one that voted in it: it
    /// may have, for the master that wrote the entries, so it grants no vote in that term,
    /// and its own next term is above every term in its log.
    pub fn set_log_position(&mut self, log_term: u64, vlsn: u64, dtvlsn: u64) {
        let own = self.own();
        if own.node_type == NodeType::Arbiter {
            return; // an arbiter holds no log: its position is what it acknowledged
        }
        if log_term > self.term {
            self.vote = Some(own.node_id);
            self.term = log_term;
        }
        self.log.log_term = log_term;
        self.log.vlsn = vlsn;
        self.log.dtvlsn = dtvlsn;
    }

    /// As an arbiter: promises, durably, to vote only for candidates whose log reaches the
    /// master's entry `(log_term, vlsn)`, so that entry may count as acknowledged. The
    /// position only grows (in `(log_term, vlsn)` order); true when it covers the entry
    /// (an acknowledgement may be sent), false if this node is no arbiter or the store failed.
    pub fn acknowledge_position(&mut self, log_term: u64, vlsn: u64) -> bool {
        if self.own().node_type != NodeType::Arbiter || log_term > self.term {
            return false;
        }
        if (log_term, vlsn) <= (self.log.log_term, self.log.vlsn) {
            return true;
        }
        if !self.write_record(self.term, self.vote, (log_term, vlsn)) {
            return false;
        }
        self.log.log_term = log_term;
        self.log.vlsn = vlsn;
        true
    }

    /// How far this node's log matches its master's stream (what `HeartbeatResponse`
    /// reports; 0 when not synced).
    pub fn set_stream_position(&mut self, vlsn: u64) {
        self.stream_vlsn = vlsn;
    }

    /// The log position this node proposes with.
    pub fn log_position(&self) -> Rank {
        self.log
    }

    /// As master: runs the heartbeat round if it is due at `now`, and with it the lease
    /// check (a master that has not heard a quorum within `lease_ms` steps down). A node
    /// calls it before it acts on a message, in case its caller has not run the timer yet
    /// (after a freeze: a paused VM, a long GC).
    pub fn heartbeat_if_due(&mut self, now: u64) {
        if let Phase::Master { next_heartbeat } = self.phase {
            if now >= next_heartbeat {
                self.heartbeat_round(now);
            }
        }
    }

    /// Advances timers: heartbeats and the lease as master, the vote at the end of the
    /// collection window, a new election when the master has been silent too long.
    pub fn handle_timeout(&mut self, now: u64) {
        match self.phase {
            Phase::Stopped => {}
            Phase::Master { .. } => self.heartbeat_if_due(now),
            Phase::Electing { collect_until, decided: false } if now >= collect_until => {
                self.decide_vote(now);
                // Unless the vote made it master: after a freeze both deadlines have passed,
                // and the election timer would end the term it just won.
                if !matches!(self.phase, Phase::Master { .. }) {
                    self.check_election_timer(now);
                }
            }
            Phase::Electing { .. } | Phase::Follower { .. } => self.check_election_timer(now),
        }
    }

    /// The master announced it is shutting down (`Shutdown`): elect at once instead of
    /// waiting for the heartbeat timeout, without a pre-vote (there is no working master to
    /// disrupt, and voters that have not read the announcement yet would refuse one).
    /// Ignored unless `from` is this node's master.
    pub fn master_left(&mut self, now: u64, from: MemberId) {
        if self.follows(from) {
            self.election_deadline = now;
            self.grants_from = 0;
            if self.is_voter() {
                self.start_election(now);
            } else {
                self.check_election_timer(now);
            }
        }
    }

    /// The transport lost its link to `peer`. If `peer` is this follower's master, the
    /// master has probably crashed (a dead process's sockets close at once), so the wait
    /// drops to the shortest silence allowed: `election_timeout_ms` after the master was
    /// last heard, without the random extra. Split votes need no jitter to resolve here:
    /// every voter votes for the best-ranked proposal it heard, so followers that start
    /// together still agree. Nothing else changes, so a link that merely flapped costs at
    /// most an election its master can win again; a heartbeat restores the full wait.
    pub fn master_link_lost(&mut self, peer: MemberId) {
        if self.follows(peer) {
            self.election_deadline = self.election_deadline.minus(self.election_jitter);
            self.election_jitter = 0;
            // Pre-votes are granted at once: this node no longer hears its master either.
            self.grants_from = 0;
        }
    }

    /// Whether this node is a follower of `master`.
    fn follows(&self, master: MemberId) -> bool {
        matches!(self.phase, Phase::Follower { master: Some(m) } if m == master)
    }

    fn check_election_timer(&mut self, now: u64) {
        if now < self.election_deadline {
            return;
        }
        if self.is_voter() {
            self.campaign(now);
        } else {
            if let Phase::Follower { master: Some(_) } = self.phase {
                self.phase = Phase::Follower { master: None };
                self.emit(Event::MasterLost { term: self.term });
            }
            self.reset_election_timer(now);
        }
    }

    /// This node heard its master (or took part in an election, or started) at `now`: the
    /// election timer restarts, pre-votes are refused for an election timeout, and its own
    /// pre-vote round ends.
    fn contact(&mut self, now: u64) {
        self.grants_from = now.plus(self.config.election_timeout_ms);
        self.pre_term = 0;
        self.reset_election_timer(now);
    }

    fn reset_election_timer(&mut self, now: u64) {
        let timeout = self.config.election_timeout_ms;
        self.election_jitter = self.rng.below(timeout);
        let wait = timeout.plus(self.election_jitter);
        self.election_deadline = now.plus(wait);
    }

    // ----- terms, votes, persistence -----

    /// Writes (term, vote) durably; false (and nothing changes) if the store failed.
    fn persist(&mut self, term: u64, vote: Option<MemberId>) -> bool {
        let node_id = vote.and_then(|v| self.members.get(v)).map(|m| m.node_id);
        self.write_record(term, node_id, self.acknowledged())
    }

    /// The position this node promised to vote only at or past: what an arbiter
    /// acknowledged, the Add of a node that joined (`(0, 0)` for other nodes).
    fn acknowledged(&self) -> (u64, u64) {
        if self.own().node_type == NodeType::Arbiter {
            (self.log.log_term, self.log.vlsn)
        } else {
            self.floor
        }
    }

    /// The rank this node votes with: its log, raised to what it promised.
    fn voting_rank(&self) -> Rank {
        let (log_term, vlsn) = self.acknowledged().max((self.log.log_term, self.log.vlsn));
        Rank { log_term, vlsn, ..self.log }
    }

    /// Writes the record (nodes that vote only); on success adopts its term and vote.
    fn write_record(&mut self, term: u64, node_id: Option<u32>, acknowledged: (u64, u64)) -> bool {
        if self.answers_votes() {
            let record = ElectionRecord { term, vote: node_id, acknowledged };
            if Self::store_record(&mut self.store, record).is_err() {
                count(&mut self.stats.storage_failures);
                self.emit(Event::StorageFailed);
                return false;
            }
        }
        self.term = term;
        self.vote = node_id;
        true
    }

    /// Encodes `record` and writes it to `store`.
    fn store_record(store: &mut S, record: ElectionRecord) -> Result<(), StartError<S::Error>> {
        let mut buf = [0u8; MAX_RECORD];
        let len = record.encode(&mut buf).map_err(StartError::Record)?;
        store.write(buf.get(..len).unwrap_or_default()).map_err(StartError::Storage)
    }

    /// Moves to a higher term (persisted first). Whatever the node knew of its old term is
    /// stale now, so a master steps down and a replica forgets its master even when the
    /// store fails (then the node stays in its old term, knowing no master, and retries when
    /// it next hears of the higher term).
    fn enter_term(&mut self, term: u64) -> bool {
        if let Phase::Master { .. } = self.phase {
            self.step_down(StepDown::HigherTerm);
        }
        self.heard.clear();
        self.votes = MemberSet::EMPTY;
        self.pre_term = 0;
        self.phase = Phase::Follower { master: None };
        self.persist(term, None)
    }

    #[cfg_attr(target_pointer_width = "32", inline(always))]
    fn plausible(&self, term: u64) -> bool {
        term != 0 && term <= self.term.plus(self.config.max_term_jump)
    }

    fn step_down(&mut self, reason: StepDown) {
        count(&mut self.stats.step_downs);
        self.phase = Phase::Follower { master: None };
        self.emit(Event::SteppedDown { term: self.term, reason });
    }

    // ----- the election -----

    /// The election timer fired: ask the other voters whether they would join the next
    /// term (a pre-vote round), or start it at once when pre-votes are off. The round lasts
    /// until the timer fires again; a quorum of grants starts the term.
    fn campaign(&mut self, now: u64) {
        if !self.config.pre_vote {
            return self.start_election(now);
        }
        count(&mut self.stats.pre_votes);
        self.pre_term = self.term.plus(1);
        self.pre_grants = MemberSet::EMPTY;
        self.pre_grants.insert(self.me);
        self.reset_election_timer(now);
        let voters = self.others(Member::is_voter);
        self.send(voters, Outgoing::PreVote { granted: false, term: self.pre_term });
        self.check_pre_votes(now);
    }

    /// Starts the round's term once a quorum of this node's voters granted it.
    #[cfg_attr(target_pointer_width = "32", inline(always))]
    fn check_pre_votes(&mut self, now: u64) {
        if self.pre_grants.intersection(self.members.voters()).len() >= self.quorum() {
            self.start_election(now);
        }
    }

    /// Starts the next term.
    fn start_election(&mut self, now: u64) {
        let Some(term) = self.term.checked_add(1) else {
            count(&mut self.stats.ignored.impossible);
            self.reset_election_timer(now);
            return;
        };
        if self.enter_term(term) {
            count(&mut self.stats.campaigns);
            self.take_part(now);
        } else {
            self.reset_election_timer(now);
        }
    }

    /// Joins the election of the current term: announce our rank, collect the others'.
    fn take_part(&mut self, now: u64) {
        count(&mut self.stats.elections);
        self.phase =
            Phase::Electing { collect_until: now.plus(self.config.collect_ms), decided: false };
        self.contact(now);
        self.emit(Event::ElectionStarted { term: self.term });
        self.record_rank(self.me, self.log);
        if self.is_voter() {
            let voters = self.others(Member::is_voter);
            self.send(voters, Outgoing::LogTerm { term: self.term });
            self.send(voters, Outgoing::Proposal { term: self.term });
        }
        self.decide_if_all_heard(now);
    }

    fn record_rank(&mut self, from: MemberId, rank: Rank) {
        match self.heard.iter_mut().find(|(id, _)| *id == from) {
            Some(entry) => entry.1 = rank,
            // At most one entry per member and at most N members: never full.
            None => self.heard.push((from, rank)).unwrap_or(()),
        }
    }

    fn decide_if_all_heard(&mut self, now: u64) {
        let all = self.members.voters();
        let heard = self.heard.iter().filter(|(id, _)| all.contains(*id)).count();
        if heard == all.len() {
            self.decide_vote(now);
        }
    }

    /// Votes, once and durably, for the best candidate heard (or abstains).
    fn decide_vote(&mut self, now: u64) {
        let Phase::Electing { collect_until, decided: false } = self.phase else { return };
        self.phase = Phase::Electing { collect_until, decided: true };
        let Some(choice) = choose(self.voting_rank(), &self.heard, &self.members) else {
            count(&mut self.stats.abstentions);
            return;
        };
        if !self.persist(self.term, Some(choice)) {
            return;
        }
        count(&mut self.stats.votes);
        if choice == self.me {
            self.count_vote(now, self.me);
        } else {
            self.send_to(choice, Outgoing::Vote { granted: true, term: self.term });
        }
    }

    fn count_vote(&mut self, now: u64, from: MemberId) {
        // Only a member of its own configuration can be elected: a joining node votes, but
        // its view does not count it, so its votes would be counted against the wrong group.
        // Only in its election: a master that stepped down (its lease lapsed while it was
        // frozen) must not win the same term again with a vote that waited in its socket.
        let member = self.members.get(self.me).is_some_and(Member::is_candidate);
        if !member || !matches!(self.phase, Phase::Electing { .. }) {
            count(&mut self.stats.ignored.out_of_phase);
            return;
        }
        self.votes.insert(from);
        if self.votes.len() >= self.quorum() {
            self.become_master(now);
        }
    }

    fn become_master(&mut self, now: u64) {
        count(&mut self.stats.terms_won);
        self.pre_term = 0;
        self.phase = Phase::Master { next_heartbeat: now };
        self.acked = [0; N];
        self.told = [now; N];
        let mut voted = self.votes;
        while let Some(v) = voted.pop_first() {
            if let Some(a) = self.acked.get_mut(v.index()) {
                *a = now;
            }
        }
        self.emit(Event::BecameMaster { term: self.term });
        let everyone = self.others(|_| true);
        self.send(everyone, Outgoing::Result { master: self.me, term: self.term });
        self.heartbeat_round(now);
    }

    /// As master: check the lease, send heartbeats, re-send the result to members that do
    /// not follow.
    fn heartbeat_round(&mut self, now: u64) {
        if self.live_voters(&self.members, now) < self.quorum() {
            self.step_down(StepDown::LostQuorum);
            self.reset_election_timer(now);
            return;
        }
        let interval = self.config.heartbeat_interval_ms;
        let everyone = self.others(|_| true);
        let heartbeat = Outgoing::Heartbeat { master_vlsn: self.log.vlsn, timestamp_ms: now };
        self.send(everyone, heartbeat);
        // Members silent for two intervals may have missed the result: tell them again, at
        // most once per two intervals. Everyone is re-told every `RESULT_REFRESH` intervals:
        // a heartbeat carries no term, so a replica that missed the result of a later term of
        // the same master would otherwise keep answering in its old term.
        let patience = interval.saturating_mul(2);
        let refresh = interval.saturating_mul(RESULT_REFRESH);
        let mut laggards = MemberSet::EMPTY;
        let mut all = everyone;
        while let Some(id) = all.pop_first() {
            let acked = self.acked.get(id.index()).copied().unwrap_or(0);
            let Some(told) = self.told.get_mut(id.index()) else { continue };
            let silent = acked.plus(patience) < now;
            if (silent && told.plus(patience) < now) || told.plus(refresh) <= now {
                *told = now;
                laggards.insert(id);
            }
        }
        self.send(laggards, Outgoing::Result { master: self.me, term: self.term });
        self.phase = Phase::Master { next_heartbeat: now.plus(interval) };
    }

    /// Follows `master`, as told by `from` at `now`. Only the master itself counts as
    /// contact (the election timer restarts, pre-votes are refused for a timeout, this node's
    /// pre-vote round ends): a result another member relays names the master but may be
    /// about one that has since gone, so the timer keeps measuring the master's own silence.
    /// (Relays answering each other's pre-votes would otherwise keep a group whose master
    /// stepped down from ever electing another.)
    fn follow(&mut self, now: u64, master: MemberId, from: MemberId) {
        let news = !self.follows(master);
        if news {
            self.phase = Phase::Follower { master: Some(master) };
            self.emit(Event::MasterKnown { master, term: self.term });
        }
        if from == master {
            self.contact(now);
        }
    }

    /// Tells a peer that is behind what this node knows of the current term.
    fn answer_stale(&mut self, to: MemberId) {
        match self.master() {
            Some(master) => self.send_to(to, Outgoing::Result { master, term: self.term }),
            None if self.answers_votes() => {
                self.send_to(to, Outgoing::Vote { granted: false, term: self.term })
            }
            None => {}
        }
    }

    // ----- peer messages -----

    /// Handles a reference message or an extension from member `from` received at `now`.
    pub fn handle_message(&mut self, now: u64, from: MemberId, msg: &Message<'_>) {
        match msg {
            Message::Core(m) => self.handle(now, from, m),
            Message::Ext(e) => self.handle_ext(now, from, e),
        }
    }

    /// Handles an extension message received at `now`: the election uses `LogTerm`,
    /// `PreProposal` and `PreVote`.
    pub fn handle_ext(&mut self, now: u64, from: MemberId, ext: &Extension) {
        if matches!(self.phase, Phase::Stopped) {
            return;
        }
        let sender_votes = self.members.get(from).filter(|_| from != self.me).map(Member::is_voter);
        match (*ext, sender_votes) {
            (_, None) => count(&mut self.stats.ignored.not_member),
            (Extension::PreProposal { term }, Some(votes)) => {
                if self.accept_from(true, votes, !votes, term) {
                    self.on_pre_proposal(now, from, term);
                }
            }
            // Its term must be this node's round's, which is plausible and implies it votes.
            (Extension::PreVote { term }, Some(true)) => self.on_pre_vote(now, from, term),
            (Extension::PreVote { .. }, Some(false)) => count(&mut self.stats.ignored.not_voter),
            (Extension::LogTerm { term, log_term }, Some(true))
                if self.plausible(term) && log_term <= term =>
            {
                if let Some(slot) = self.log_terms.get_mut(from.index()) {
                    *slot = (term, log_term);
                }
                // A proposal that arrived first is re-ranked with what the sender says.
                if let Some(entry) = self.heard.iter_mut().find(|(id, _)| *id == from) {
                    if term == self.term {
                        entry.1.log_term = log_term;
                    }
                }
            }
            (Extension::LogTerm { .. }, Some(true)) => count(&mut self.stats.ignored.impossible),
            (Extension::LogTerm { .. }, Some(false)) => count(&mut self.stats.ignored.not_voter),
            _ => count(&mut self.stats.ignored.not_election),
        }
    }

    /// The log term `from` announced for election term `term` (0, the lowest, if unknown:
    /// an unknown log can only lose ranks, never win them).
    fn announced_log_term(&self, from: MemberId, term: u64) -> u64 {
        match self.log_terms.get(from.index()) {
            Some(&(t, log_term)) if t == term => log_term,
            _ => 0,
        }
    }

    /// Handles a message from member `from` received at `now`.
    pub fn handle(&mut self, now: u64, from: MemberId, msg: &MessageRef<'_>) {
        if matches!(self.phase, Phase::Stopped) {
            return;
        }
        // A member removed by a change still in flight is recognised: if the change is undone
        // by a failover, it may be the master to follow.
        let Some(sender) = self.members.known(from).filter(|_| from != self.me) else {
            count(&mut self.stats.ignored.not_member);
            return;
        };
        let current = self.members.get(from).is_some();
        let (sender_name_ok, sender_votes) = (sender.name.as_str(), sender.is_voter() && current);
        let campaigner = current && !sender_votes;
        match *msg {
            MessageRef::ElectionProposal { node_name, vlsn, priority, term, dtvlsn } => {
                let names_sender = node_name == sender_name_ok;
                if self.accept_from(names_sender, sender_votes, campaigner, term) {
                    let log_term = self.announced_log_term(from, term);
                    self.on_proposal(now, from, term, Rank { log_term, vlsn, dtvlsn, priority });
                } else if names_sender && !sender_votes {
                    self.on_outsider_proposal(now, term);
                }
            }
            MessageRef::ElectionVote { voter, granted, term } => {
                if self.accept_from(voter == sender_name_ok, sender_votes, campaigner, term) {
                    self.on_vote(now, from, granted, term);
                }
            }
            MessageRef::ElectionResult { master, term } => self.on_result(now, from, master, term),
            MessageRef::Heartbeat { timestamp_ms, .. } => {
                self.on_heartbeat(now, from, timestamp_ms)
            }
            MessageRef::HeartbeatResponse { timestamp_ms, .. } => {
                self.on_heartbeat_response(now, from, timestamp_ms)
            }
            _ => count(&mut self.stats.ignored.not_election),
        }
    }

    /// A proposal for a later term from a member this view does not count (one it removed,
    /// or made a non-voter, in a change the member has not learnt): a voter that knows no
    /// master joins that term and proposes itself. The member's elections move the voters
    /// that still count it to ever higher terms, and this node, which learnt each term only
    /// from their refusals, stayed one behind them and was refused every time (seed
    /// 420,116,438 with membership changes: a removed arbiter kept a group of two from
    /// electing). Joining, it can win the election the member started.
    fn on_outsider_proposal(&mut self, now: u64, term: u64) {
        let joins = self.master().is_none() && self.is_voter() && self.plausible(term);
        if joins && term > self.term && self.enter_term(term) {
            self.take_part(now);
        }
    }

    /// The checks every proposal and vote must pass; counts the failures.
    ///
    /// One from a current member this master's log made a non-voter (`campaigner`: an
    /// `Update` to Secondary it has not received) in a later term is not counted, but the
    /// master steps down into that term: that member refuses the master's older term, so
    /// it would never follow it and never receive the change; the election that follows,
    /// which its own proposals cannot win, gives it a master of a term it accepts.
    fn accept_from(
        &mut self,
        name_matches: bool,
        sender_votes: bool,
        campaigner: bool,
        term: u64,
    ) -> bool {
        let (plausible, i_vote) = (self.plausible(term), self.answers_votes());
        let master = matches!(self.phase, Phase::Master { .. });
        if master && campaigner && name_matches && plausible && term > self.term {
            self.enter_term(term);
        }
        let ignored = &mut self.stats.ignored;
        let counter = if !name_matches {
            &mut ignored.spoofed
        } else if !sender_votes || !i_vote {
            &mut ignored.not_voter
        } else if !plausible {
            &mut ignored.impossible
        } else {
            return true;
        };
        count(counter);
        false
    }

    fn on_proposal(&mut self, now: u64, from: MemberId, term: u64, rank: Rank) {
        if term < self.term {
            count(&mut self.stats.ignored.stale_term);
            self.answer_stale(from);
            return;
        }
        if term > self.term {
            if !self.enter_term(term) {
                return;
            }
            self.record_rank(from, rank);
            self.take_part(now);
            return;
        }
        self.record_rank(from, rank);
        match self.phase {
            Phase::Electing { decided: false, .. } => self.decide_if_all_heard(now),
            Phase::Follower { master: None } if self.vote.is_none() => self.take_part(now),
            Phase::Master { .. } | Phase::Follower { master: Some(_) } => self.answer_stale(from),
            _ => count(&mut self.stats.ignored.out_of_phase),
        }
    }

    /// Another voter would start `term`: grant it if this node has not heard a master for
    /// an election timeout and is none itself; otherwise say nothing, or who the master is.
    fn on_pre_proposal(&mut self, now: u64, from: MemberId, term: u64) {
        if term <= self.term {
            count(&mut self.stats.ignored.stale_term);
            return self.answer_stale(from);
        }
        let master = matches!(self.phase, Phase::Master { .. });
        if now >= self.grants_from && !master {
            self.send_to(from, Outgoing::PreVote { granted: true, term });
        } else if let Some(master) = self.master() {
            self.send_to(from, Outgoing::Result { master, term: self.term });
        }
    }

    /// A voter granted this node's pre-vote round for `term`.
    fn on_pre_vote(&mut self, now: u64, from: MemberId, term: u64) {
        if term != self.pre_term || self.pre_term == 0 {
            count(&mut self.stats.ignored.out_of_phase);
            return;
        }
        self.pre_grants.insert(from);
        self.check_pre_votes(now);
    }

    fn on_vote(&mut self, now: u64, from: MemberId, granted: bool, term: u64) {
        if term > self.term {
            if granted {
                // Nobody grants a vote in a term this node never proposed in.
                count(&mut self.stats.ignored.impossible);
            } else if self.enter_term(term) {
                self.reset_election_timer(now);
            }
            return;
        }
        if granted && term == self.term {
            if let Phase::Master { .. } = self.phase {
                count(&mut self.stats.ignored.out_of_phase);
            } else {
                self.count_vote(now, from);
            }
            return;
        }
        if let Phase::Master { .. } = self.phase {
            // The voter does not follow this master: tell it the result again.
            self.send_to(from, Outgoing::Result { master: self.me, term: self.term });
        } else {
            count(&mut self.stats.ignored.stale_term);
        }
    }

    fn on_result(&mut self, now: u64, from: MemberId, master_name: &str, term: u64) {
        let master = self.members.known_id_of(master_name);
        // A Secondary in this view may be the master: the `Update` that made it one may be in
        // a divergent suffix of this log, which only the master's stream can cut.
        let electable = master
            .and_then(|m| self.members.known(m))
            .is_some_and(|m| crate::node::holds_log(m.node_type));
        let (Some(master), true, true) = (master, electable, self.plausible(term)) else {
            count(&mut self.stats.ignored.impossible);
            return;
        };
        if term < self.term {
            count(&mut self.stats.ignored.stale_term);
            self.answer_stale(from);
            return;
        }
        if term > self.term && !self.enter_term(term) {
            return;
        }
        match self.phase {
            _ if master == self.me => {
                // Our own result echoed back, or one from before a restart: nothing to learn.
                if !matches!(self.phase, Phase::Master { .. }) {
                    count(&mut self.stats.ignored.out_of_phase);
                }
            }
            Phase::Master { .. } => {
                count(&mut self.stats.ignored.conflicting_master);
            }
            _ => self.follow(now, master, from),
        }
    }

    /// The master this node follows wrote the term start of `term`, a later term than this
    /// node's: it missed that election, and follows the master into the term (as on its
    /// result), unless the term is implausible or cannot be persisted.
    pub(crate) fn follow_into(&mut self, now: u64, master: MemberId, term: u64) {
        if self.plausible(term) && self.enter_term(term) {
            self.follow(now, master, master);
        }
    }

    fn on_heartbeat(&mut self, now: u64, from: MemberId, timestamp_ms: u64) {
        match self.phase {
            Phase::Follower { master: Some(master) } if master == from => {
                self.contact(now);
                let replica_vlsn = self.stream_vlsn;
                self.send_to(from, Outgoing::HeartbeatResponse { replica_vlsn, timestamp_ms });
            }
            // Another node believes it is master: whichever of us is behind must learn it.
            _ => {
                count(&mut self.stats.ignored.out_of_phase);
                self.answer_stale(from);
            }
        }
    }

    fn on_heartbeat_response(&mut self, now: u64, from: MemberId, timestamp_ms: u64) {
        let Phase::Master { .. } = self.phase else {
            count(&mut self.stats.ignored.out_of_phase);
            return;
        };
        if timestamp_ms > now {
            // An echo of a heartbeat this node never sent.
            count(&mut self.stats.ignored.impossible);
            return;
        }
        if let Some(acked) = self.acked.get_mut(from.index()) {
            *acked = (*acked).max(timestamp_ms);
        }
        if let Some(rtt) = self.round_trips.get_mut(from.index()) {
            *rtt = Some(u32::try_from(now.minus(timestamp_ms)).unwrap_or(u32::MAX));
        }
    }
}

#[cold]
fn unreachable_member() -> &'static Member {
    // Only reachable if `me` stopped being a member, which no code path does.
    static NOBODY: Member = Member {
        name: heapless::String::new(),
        node_type: crate::NodeType::Monitor,
        priority: 0,
        node_id: u32::MAX,
        host: heapless::String::new(),
        port: 0,
    };
    &NOBODY
}
