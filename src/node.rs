//! A whole node: election and replication behind one sans-IO surface.
//!
//! Feed it peer messages ([`Node::handle`]) and timer checks ([`Node::handle_timeout`]);
//! append entries on the master ([`Node::append`]); drain what it wants sent
//! ([`Node::poll_transmit`]), what happened ([`Node::poll_event`]) and when to call it next
//! ([`Node::poll_timeout`]). The election is [`Election`]; this module adds the replication
//! stream: the master streams its log to every member that stores data, replicas persist and
//! acknowledge, and the master counts acknowledgements toward its durability point.
//!
//! ```
//! use harp::membership::{Member, Membership};
//! use harp::node::{Node, NodeConfig, NodeEvent};
//! use harp::replication::{LogStore, RamLog};
//! use harp::storage::RamStore;
//! use harp::NodeType;
//!
//! let mut group = Membership::<1>::new();
//! let me = group.add(Member::new("solo", NodeType::Electable, 1, 1)?)?;
//! let mut node = Node::new(group, me, NodeConfig::default(), RamStore::new(), RamLog::<16, 256>::new(), 1, 0)
//!     .unwrap();
//! node.handle_timeout(node.poll_timeout().unwrap()); // elected: a group of one
//! let vlsn = node.append(1, b"hello").unwrap(); // after the master's term-start entry
//! assert_eq!(node.log().entry(vlsn).unwrap().data, b"hello");
//! assert_eq!(node.durable_vlsn(), vlsn); // a majority of one has it
//! assert!(core::iter::from_fn(|| node.poll_event()).any(|e| e == NodeEvent::Durable { vlsn }));
//! # Ok::<(), harp::membership::MembershipError>(())
//! ```

use crate::arith::{count, SaturatingU64};
use crate::election::{Config, Election, Event, Restored, Role, StartError, Transmit};
use crate::membership::{Member, MemberId, MemberSet, Membership};
use crate::replication::{
    quorum_point, AckPolicy, EntryMeta, LogStore, ENTRY_DTVLSN, ENTRY_MEMBERSHIP, ENTRY_TERM_START,
    RESERVED_ENTRY_TYPES,
};
use crate::storage::StableStore;
use crate::wire::{Extension, Message};
use crate::GroupChangeType;
use crate::{MessageRef, NodeType};
use core::fmt;

mod membership;
pub(crate) use membership::holds_log;

use membership::fold_membership;
pub use membership::{ChangeError, ChangeRefusal};

/// How many small replication messages (acks, sync points) wait to be sent at most. A
/// newer ack to the same master replaces one waiting, so a handful suffices; the simulator
/// reports every overflow (`harp sim`: `overflows`), and none occur on its seeds.
pub const PENDING_CAPACITY: usize = 8;
/// The longest shutdown reason kept, in bytes (longer ones are cut at a character boundary).
pub const REASON_CAP: usize = 64;

/// How many node events wait for [`Node::poll_event`] at most.
pub const NODE_EVENT_CAPACITY: usize = 8;

/// A node's configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct NodeConfig {
    /// Election timings and options.
    pub election: Config,
    /// When an append counts as committed.
    pub ack_policy: AckPolicy,
    /// Entries in flight (sent, not yet acknowledged) per replica at most.
    pub window: u64,
    /// When the log is synced: after every entry, or once per batch (group commit).
    pub sync: SyncMode,
}

/// When a node syncs its log ([`LogStore::sync`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum SyncMode {
    /// After every appended or replicated entry (a `RamLog`'s sync is free).
    #[default]
    EachEntry,
    /// Group commit: appends and replicated entries are synced once, in the next
    /// [`Node::poll_transmit`] (before any acknowledgement or entry that depends on them
    /// leaves) or [`Node::handle_timeout`]. One `fsync` covers everything that arrived in
    /// between; nothing is acknowledged or counted before it.
    Batched,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            election: Config::default(),
            ack_policy: AckPolicy::default(),
            window: 32,
            sync: SyncMode::EachEntry,
        }
    }
}

/// Something the application should know about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum NodeEvent {
    /// An election event (became master, master known, stepped down, ...).
    Election(Event),
    /// Entries up to `vlsn` satisfy the ack policy.
    Committed {
        /// The highest committed VLSN.
        vlsn: u64,
    },
    /// Entries up to `vlsn` are durable: persisted by a majority of the voters. They survive
    /// every later crash, partition and election (the DTVLSN advanced).
    Durable {
        /// The new DTVLSN.
        vlsn: u64,
    },
    /// This replica dropped entries from `from` on (never durable ones): the new master's
    /// log differs there.
    Truncated {
        /// The first VLSN dropped.
        from: u64,
    },
    /// `member` needs entries from `needed` on, which the master no longer holds: restore it
    /// ([`check_restore`](crate::replication::check_restore)) before it can rejoin the
    /// stream. Reported once per connection of the replica.
    NeedsRestore {
        /// The replica.
        member: MemberId,
        /// The first VLSN it lacks.
        needed: u64,
    },
    /// The log store failed; nothing that depended on it was acknowledged.
    StorageFailed,
    /// The shutdown finished: peers were told, and the node takes no further part.
    Stopped,
    /// `member` announced it is shutting down.
    PeerShutdown {
        /// Who.
        member: MemberId,
    },
    /// `member` accepted this node's handshake: messages flow both ways once this node has
    /// accepted the member's too.
    Connected {
        /// Who.
        member: MemberId,
    },
    /// `member` refused this node's handshake (wrong group, not a member, type mismatch, or
    /// already connected): nothing is sent to it.
    HandshakeRefused {
        /// Who.
        member: MemberId,
    },
    /// A membership change in the log (or, on a member without a log, in a notice from the
    /// master) was applied: quorums follow the new group.
    MembershipChanged {
        /// The VLSN of the change (0 for a notice).
        vlsn: u64,
    },
    /// This node was removed from the group and stopped.
    Removed,
    /// The master answered a `GroupChange` this node sent.
    GroupChangeAnswered {
        /// Whether it was accepted (and is now durable).
        accepted: bool,
    },
}

/// Why a `Handshake` was refused ([`Node::check_handshake`]); its text is the `reason` of
/// the `HandshakeResponse` that refuses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum HandshakeRefusal {
    /// The handshake names another group.
    WrongGroup,
    /// The name is not a member of the group.
    NotMember,
    /// The name is this node's own.
    SelfConnection,
    /// The node type is not the member's.
    NodeTypeMismatch,
    /// The name is a member, but not the one at the other end of this link.
    NotThisLink,
    /// A live connection under this name exists already.
    AlreadyConnected,
}

impl HandshakeRefusal {
    /// The reason as text, as sent in the `HandshakeResponse`.
    ///
    /// ```
    /// use harp::node::HandshakeRefusal;
    /// assert_eq!(HandshakeRefusal::WrongGroup.as_str(), "wrong group name");
    /// ```
    pub const fn as_str(self) -> &'static str {
        match self {
            HandshakeRefusal::WrongGroup => "wrong group name",
            HandshakeRefusal::NotMember => "not a member of the group",
            HandshakeRefusal::SelfConnection => "a node cannot connect to itself",
            HandshakeRefusal::NodeTypeMismatch => "node type does not match the membership",
            HandshakeRefusal::NotThisLink => "the name is not the connection's",
            HandshakeRefusal::AlreadyConnected => "already connected under this name",
        }
    }
}

impl fmt::Display for HandshakeRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why an append was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum AppendError {
    /// Only the master appends; this is who it is, if known.
    NotMaster {
        /// The current master.
        master: Option<MemberId>,
    },
    /// Entry types at and above [`RESERVED_ENTRY_TYPES`] belong to the protocol.
    ReservedType,
    /// The log store refused the entry (full), or could not persist it yet: then the entry
    /// is in the log, is streamed once a later sync persists it, and `Durable` reports it.
    Storage,
    /// The node is shutting down.
    ShuttingDown,
}

impl fmt::Display for AppendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AppendError::NotMaster { master: Some(m) } => {
                write!(f, "not the master (the master is {m})")
            }
            AppendError::NotMaster { master: None } => {
                f.write_str("not the master (no master known)")
            }
            AppendError::ReservedType => f.write_str("entry types 0xF0 and above are reserved"),
            AppendError::Storage => f.write_str("the log store refused the entry"),
            AppendError::ShuttingDown => f.write_str("the node is shutting down"),
        }
    }
}

/// Why [`Node::compact_log`] compacted nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum CompactError<E> {
    /// Entries after `durable` are not yet durable in the group and synced here.
    NotDurable {
        /// The last VLSN that is both.
        durable: u64,
    },
    /// The log store refused.
    Storage(E),
}

impl<E: fmt::Debug> fmt::Display for CompactError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CompactError::NotDurable { durable } => {
                write!(f, "only entries up to the durable VLSN {durable} can be compacted")
            }
            CompactError::Storage(e) => write!(f, "the log store refused to compact: {e:?}"),
        }
    }
}

/// Replication inputs that were ignored, by reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ReplicationIgnored {
    /// A LogEntry or SyncPoint from a node that is not the master of the current term, or
    /// a term start of a later term than this node's (it missed that election: it enters
    /// the term and asks to be synced again).
    pub not_master: u32,
    /// An Ack, SyncNack or HeartbeatResponse to a node that is not master, or from a member
    /// that does not store data.
    pub not_replica: u32,
    /// An entry before the replica's stream was synced, or a duplicate.
    pub out_of_order: u32,
    /// An ack or position beyond what was sent, a malformed protocol entry (a term start
    /// below the stream's run, too), or an entry that would overwrite a durable one.
    pub impossible: u32,
    /// A message from a peer whose handshake this node has not accepted.
    pub not_connected: u32,
    /// A `Handshake` refused (wrong group, not a member, type mismatch, already connected).
    pub handshakes_refused: u32,
    /// A `GroupChange` from a member with a log to this member, which has one too: a notice
    /// from a view that takes this member for one without a log (only members without a log
    /// may request a change).
    pub misdirected_notices: u32,
}

/// Counters of the replication stream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct NodeStats {
    /// Entries this node appended as master.
    pub appended: u64,
    /// Entries received and persisted as replica.
    pub replicated: u64,
    /// Entries dropped by truncation.
    pub truncated: u64,
    /// Log store failures.
    pub storage_failures: u32,
    /// Replication messages not queued (outbox full).
    pub pending_overflows: u32,
    /// Messages not sent because the peer has not accepted this node's handshake.
    pub unconnected_drops: u32,
    /// Acknowledgements not sent because the batch they depended on failed to sync.
    pub unsynced_acks: u32,
    /// Events not queued (the caller did not drain them).
    pub event_overflows: u32,
    /// Ignored inputs, by reason.
    pub ignored: ReplicationIgnored,
}

/// What the master knows of one member's replication ([`Node::progress`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Progress {
    /// The highest VLSN it acknowledged in this term (an arbiter: the position it recorded).
    pub matched: u64,
    /// Its last heartbeat round trip, in ms (None before it echoed one).
    pub round_trip_ms: Option<u32>,
    /// It lacks entries the master no longer holds ([`NodeEvent::NeedsRestore`]).
    pub needs_restore: bool,
}

#[derive(Debug, Clone, Copy, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
struct Peer {
    /// The next VLSN to send.
    next: u64,
    /// The highest VLSN the replica acknowledged in this term.
    matched: u64,
    /// When the replica last made progress.
    acked_at: u64,
    /// A SyncPoint must precede the next entry.
    need_sync: bool,
    /// The VLSN the last SyncPoint asked about.
    question: u64,
    /// Streaming stopped: the replica needs a restore.
    restore: bool,
    /// The last SyncPoint asked at the entry below the first one held (the log is
    /// compacted there): a SyncNack to it means the replica lacks compacted entries.
    asked_at_start: bool,
    /// A SyncNack seemed to refuse the start once: it is asked again before a restore is
    /// reported, since with two questions in flight that SyncNack may have answered the
    /// earlier one.
    refused_start: bool,
    /// An arbiter: the VLSN it was last asked to acknowledge, and when.
    asked: u64,
    asked_at: u64,
}

#[derive(Debug, Clone, Copy, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
struct Stream {
    master: Option<MemberId>,
    synced: bool,
    next: u64,
    run_term: u64,
}

#[derive(Debug, Clone)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
struct Shutdown {
    reason: heapless::String<REASON_CAP>,
    /// A master gives up waiting for a replica to catch up at this time.
    deadline: u64,
    done: bool,
}

#[derive(Debug, Clone, Copy)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
enum Pending {
    Ack {
        vlsn: u64,
    },
    SyncNack {
        vlsn: u64,
    },
    /// Master to arbiter: acknowledge this position; arbiter to master: acknowledged.
    Position {
        vlsn: u64,
        log_term: u64,
    },
}

/// Takes the first member's pending item from a per-member table, with that member.
fn take_first<T, const N: usize>(table: &mut [Option<T>; N]) -> Option<(MemberId, T)> {
    table.iter_mut().enumerate().find_map(|(i, slot)| {
        let item = slot.take()?;
        Some((MemberId::new(u8::try_from(i).ok()?), item))
    })
}

/// What [`Node::restore_joining`] checked and read for a node joining the group: its
/// election record, and the member it joins as. Hand it to [`Node::start_joining`] or
/// [`Node::start_joining_in`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Joining {
    restored: Restored,
    own: Member,
}

/// A node of a group of at most `N` members, with stable store `S` and log store `L`.
pub struct Node<S, L, const N: usize> {
    election: Election<S, N>,
    log: L,
    config: NodeConfig,
    peers: [Peer; N],
    stream: Stream,
    durable: u64,
    committed: u64,
    /// The last VLSN known persisted in the own log (the master's own acknowledgement).
    synced: u64,
    recorded: u64,
    last_payload: u64,
    pending: heapless::Deque<(MemberId, Pending), PENDING_CAPACITY>,
    cursor: usize,
    /// A shutdown under way (master: waiting for a replica to catch up), and its reason.
    shutdown: Option<Shutdown>,
    /// Members still to be sent the `Shutdown` notice.
    notify: MemberSet,
    /// Peers whose `Handshake` this node accepted: their messages are handled.
    inbound: MemberSet,
    /// Peers that accepted this node's `Handshake`: messages to them are sent.
    outbound: MemberSet,
    /// Peers to send a `Handshake` to, and when it was last sent.
    greet: MemberSet,
    greeted_at: u64,
    /// Per member: the answer to its `Handshake` still to send (the refusal, or `None` for
    /// an acceptance); one per member, the last verdict.
    answers: [Option<Option<HandshakeRefusal>>; N],
    /// The membership the log starts from (the configured one, with the changes compaction
    /// discarded); the changes in the log apply on top.
    base: Membership<N>,
    /// As master: the membership change in flight (its VLSN) and who asked for it.
    change: Option<(u64, Option<MemberId>)>,
    /// `GroupChangeResponse`s to send.
    change_answers: heapless::Deque<(MemberId, bool), N>,
    /// As master: members without a log (monitors, arbiters) being sent the membership
    /// history as `GroupChange` notices, and the VLSN to continue from.
    history_to: [Option<u64>; N],
    /// The slots of the base membership still to announce to each such member, before the
    /// log's changes: a change compacted away while it was down reaches it this way.
    history_base: [MemberSet; N],
    /// As master: when the membership history was last sent to members without a log.
    history_at: u64,
    /// As master: the DTVLSN that has not advanced while entries wait, and since when (an
    /// arbiter is asked once it stalls for a heartbeat interval).
    stalled: Option<(u64, u64)>,
    events: heapless::Deque<NodeEvent, NODE_EVENT_CAPACITY>,
    stats: NodeStats,
}

impl<S: StableStore, L: LogStore, const N: usize> Node<S, L, N> {
    /// Restores a node from its stores and starts it at `now` (see [`Election::new`]).
    /// `members` is the membership the log starts from: the configured group, or after the
    /// log was compacted, what [`base_members`](Self::base_members) said then.
    #[cfg_attr(target_pointer_width = "32", inline(always))]
    pub fn new(
        members: Membership<N>,
        me: MemberId,
        config: NodeConfig,
        mut stable: S,
        log: L,
        seed: u64,
        now: u64,
    ) -> Result<Self, StartError<S::Error>> {
        let restored = Self::restore(&members, me, &config, &mut stable)?;
        Ok(Self::start(restored, members, config, stable, log, seed, now))
    }

    /// The part of [`new`](Self::new) that can fail, and holds nothing big: checks that `me`
    /// is a member and the configuration, and reads the election record from `stable`.
    ///
    /// [`start`](Self::start) then builds the node and cannot fail, so a firmware can build
    /// it straight into a `static` ([`start_in`](Self::start_in)) instead of through the
    /// stack copies a `Result` costs:
    ///
    /// ```
    /// use harp::membership::{Member, MemberId, Membership};
    /// use harp::node::{Node, NodeConfig};
    /// use harp::replication::RamLog;
    /// use harp::storage::RamStore;
    /// use harp::NodeType;
    ///
    /// let mut group = Membership::<3>::new();
    /// for (id, name) in [(1, "n1"), (2, "n2"), (3, "n3")] {
    ///     group.add(Member::new(name, NodeType::Electable, 1, id).unwrap()).unwrap();
    /// }
    /// let (me, config, mut store) = (MemberId::new(0), NodeConfig::default(), RamStore::new());
    /// let mut log = RamLog::<64, 4096>::new();
    /// type GroupNode<'a> = Node<RamStore, &'a mut RamLog<64, 4096>, 3>;
    /// let restored = GroupNode::restore(&group, me, &config, &mut store)?;
    /// // On a board, NODE a static_cell::StaticCell: Node::start_in(NODE.uninit(), restored, ..)
    /// let node = Node::start(restored, group, config, store, &mut log, 7, 0);
    /// assert_eq!(node.election().term(), 0);
    /// # Ok::<(), harp::election::StartError<harp::storage::RecordTooLarge>>(())
    /// ```
    pub fn restore(
        members: &Membership<N>,
        me: MemberId,
        config: &NodeConfig,
        stable: &mut S,
    ) -> Result<Restored, StartError<S::Error>> {
        Election::restore(members, me, &config.election, stable)
    }

    /// [`start`](Self::start) straight into `slot`, which a `static` provides (with
    /// `static_cell`: `Node::start_in(NODE.uninit(), ..)`): the node is built where it lives,
    /// never on the stack. A node the slot held before is overwritten, not dropped.
    #[allow(clippy::too_many_arguments)] // the slot, then exactly `start`'s seven
    pub fn start_in(
        slot: &mut core::mem::MaybeUninit<Self>,
        restored: Restored,
        members: Membership<N>,
        config: NodeConfig,
        stable: S,
        log: L,
        seed: u64,
        now: u64,
    ) -> &mut Self {
        slot.write(Self::start(restored, members, config, stable, log, seed, now))
    }

    /// Starts the node that [`restore`](Self::restore) checked, with the same `members`,
    /// `config` and `stable`: as [`new`](Self::new) does after its checks.
    #[cfg_attr(target_pointer_width = "32", inline(never))]
    pub fn start(
        restored: Restored,
        members: Membership<N>,
        config: NodeConfig,
        stable: S,
        log: L,
        seed: u64,
        now: u64,
    ) -> Self {
        let base = members.clone();
        let election =
            Election::start_restored(restored, members, config.election, stable, seed, now);
        Self::assemble(election, base, config, log)
    }

    /// A node joining the group as `own`, which `members` (the group before the addition)
    /// does not hold yet. It takes part in nothing but the stream until the master's Add
    /// reaches its log; if a failover undoes the addition it stays outside. The operator
    /// starts it when the master has accepted the change, with `added_at`: the
    /// `(log_term, vlsn)` of the Add in the master's log (the VLSN
    /// [`change_membership`](Self::change_membership) returned, in the master's term then;
    /// [`addition_of`](Self::addition_of) finds it in any log that holds it). It votes only
    /// for candidates whose log reaches the Add (see [`restore_joining`](Self::restore_joining)).
    ///
    /// This is [`restore_joining`](Self::restore_joining) then
    /// [`start_joining`](Self::start_joining), as [`new`](Self::new) is `restore` then
    /// `start`: a firmware builds a joining node in its `static` with
    /// [`start_joining_in`](Self::start_joining_in).
    #[allow(clippy::too_many_arguments)] // `new`'s seven, and where the node was added
    pub fn new_joining(
        members: Membership<N>,
        own: Member,
        added_at: (u64, u64),
        config: NodeConfig,
        mut stable: S,
        log: L,
        seed: u64,
        now: u64,
    ) -> Result<Self, StartError<S::Error>> {
        let joining = Self::restore_joining(&members, own, added_at, &config, &mut stable)?;
        Ok(Self::start_joining(joining, members, config, stable, log, seed, now))
    }

    /// The part of [`new_joining`](Self::new_joining) that can fail, as
    /// [`restore`](Self::restore) is for [`new`](Self::new): checks the configuration and
    /// reads the election record from `stable`, and records there, durably, the promise to
    /// vote only for candidates whose log reaches `added_at` (the Add's `(log_term, vlsn)`).
    /// The wire names a voter by name alone: a candidate whose log lacks the Add counts the
    /// vote as whoever its view gives the name, a removed member when the name was reused,
    /// and could be elected without a durable entry. The record's term becomes at least the
    /// Add's too, so the node never follows a master of an earlier term (which would count
    /// its acknowledgements the same way). The [`Joining`] it returns holds the record and
    /// `own`, and nothing big.
    ///
    /// ```
    /// use harp::membership::{Member, Membership};
    /// use harp::node::{Node, NodeConfig};
    /// use harp::replication::RamLog;
    /// use harp::storage::RamStore;
    /// use harp::NodeType;
    ///
    /// // A second node for a group of one, started when its master accepted the Add.
    /// let mut group = Membership::<2>::new();
    /// group.add(Member::new("solo", NodeType::Electable, 1, 1).unwrap()).unwrap();
    /// let own = Member::new("second", NodeType::Electable, 1, 2).unwrap();
    /// let (config, mut store) = (NodeConfig::default(), RamStore::new());
    /// let mut log = RamLog::<8, 512>::new();
    /// type Second<'a> = Node<RamStore, &'a mut RamLog<8, 512>, 2>;
    /// // Added at VLSN 5, in term 1.
    /// let joining = Second::restore_joining(&group, own, (1, 5), &config, &mut store)?;
    /// // On a board: Node::start_joining_in(NODE.uninit(), joining, ..)
    /// let node = Node::start_joining(joining, group, config, store, &mut log, 7, 0);
    /// assert!(node.members().id_of("second").is_none(), "a member once the Add is in its log");
    /// # Ok::<(), harp::election::StartError<harp::storage::RecordTooLarge>>(())
    /// ```
    pub fn restore_joining(
        members: &Membership<N>,
        own: Member,
        added_at: (u64, u64),
        config: &NodeConfig,
        stable: &mut S,
    ) -> Result<Joining, StartError<S::Error>> {
        let restored = Election::restore_learner(members, added_at, &config.election, stable)?;
        Ok(Joining { restored, own })
    }

    /// [`start_joining`](Self::start_joining) straight into `slot`, as
    /// [`start_in`](Self::start_in) is for [`start`](Self::start). A node the slot held
    /// before is overwritten, not dropped.
    #[allow(clippy::too_many_arguments)] // the slot, then exactly `start_joining`'s seven
    pub fn start_joining_in(
        slot: &mut core::mem::MaybeUninit<Self>,
        joining: Joining,
        members: Membership<N>,
        config: NodeConfig,
        stable: S,
        log: L,
        seed: u64,
        now: u64,
    ) -> &mut Self {
        slot.write(Self::start_joining(joining, members, config, stable, log, seed, now))
    }

    /// Starts the joining node that [`restore_joining`](Self::restore_joining) checked,
    /// with the same `members`, `config` and `stable`: as
    /// [`new_joining`](Self::new_joining) does after its checks.
    #[cfg_attr(target_pointer_width = "32", inline(never))]
    pub fn start_joining(
        joining: Joining,
        members: Membership<N>,
        config: NodeConfig,
        stable: S,
        log: L,
        seed: u64,
        now: u64,
    ) -> Self {
        let Joining { restored, own } = joining;
        let base = members.clone();
        let mut election =
            Election::start_restored(restored, members, config.election, stable, seed, now);
        election.set_joining(Some(own));
        Self::assemble(election, base, config, log)
    }

    #[cfg_attr(target_pointer_width = "32", inline(never))]
    fn assemble(election: Election<S, N>, base: Membership<N>, config: NodeConfig, log: L) -> Self {
        let durable = log.meta(log.last_vlsn()).map_or(0, |m| m.dtvlsn);
        let synced = log.last_vlsn();
        let mut node = Node {
            election,
            log,
            config,
            peers: [Peer::default(); N],
            stream: Stream::default(),
            durable,
            committed: durable,
            synced,
            recorded: durable,
            last_payload: 0,
            pending: heapless::Deque::new(),
            cursor: 0,
            shutdown: None,
            notify: MemberSet::EMPTY,
            inbound: MemberSet::EMPTY,
            outbound: MemberSet::EMPTY,
            greet: MemberSet::EMPTY,
            greeted_at: 0,
            answers: [None; N],
            base,
            change: None,
            change_answers: heapless::Deque::new(),
            history_to: [None; N],
            history_base: [MemberSet::EMPTY; N],
            history_at: 0,
            stalled: None,
            events: heapless::Deque::new(),
            stats: NodeStats::default(),
        };
        node.publish_position();
        node.replay_membership();
        node
    }

    // ----- queries -----

    /// The election state machine.
    pub fn election(&self) -> &Election<S, N> {
        &self.election
    }

    /// The election state machine, mutably (local events such as `stop`).
    pub fn election_mut(&mut self) -> &mut Election<S, N> {
        &mut self.election
    }

    /// The replicated log.
    pub fn log(&self) -> &L {
        &self.log
    }

    /// The log, mutably (for tests and simulators that inject store faults).
    pub fn log_mut(&mut self) -> &mut L {
        &mut self.log
    }

    /// Gives back the stable store and the log (what survives a crash).
    pub fn into_stores(self) -> (S, L) {
        (self.election.into_store(), self.log)
    }

    /// The membership the log starts from: the configured one, with every change the log
    /// no longer holds applied. The node rebuilds its membership from it and the changes in
    /// the log (at start-up, and when a divergent suffix is truncated), so after
    /// [`compact_log`](Self::compact_log) persist it beside the log and pass it to
    /// [`Node::new`] on restart. A member without a log (monitor, arbiter) learns changes
    /// from the master's notices and has no other record of them: its base is its current
    /// membership, to persist at each [`NodeEvent::MembershipChanged`] (the master's
    /// history after a restart starts at its log's start, so changes compacted while it
    /// was down are not sent again).
    pub fn base_members(&self) -> &Membership<N> {
        if self.me_stores_data() {
            &self.base
        } else {
            self.election.members()
        }
    }

    /// Compacts the log: discards its entries before `vlsn`, which must be durable in the
    /// group and synced here (`vlsn <= min(durable_vlsn(), synced) + 1`), and carries the
    /// membership changes among them into [`base_members`](Self::base_members). Compacting
    /// past a replica's position means it gets [`NodeEvent::NeedsRestore`]. Nothing changes
    /// if the store refuses.
    pub fn compact_log(&mut self, vlsn: u64) -> Result<(), CompactError<L::Error>> {
        let durable = self.durable.min(self.synced);
        if vlsn > durable.plus(1) {
            return Err(CompactError::NotDurable { durable });
        }
        if vlsn <= self.log.first_vlsn() {
            return Ok(());
        }
        let mut base = self.base.clone();
        fold_membership(&mut base, &self.log, vlsn);
        self.log.compact(vlsn).map_err(CompactError::Storage)?;
        self.base = base;
        Ok(())
    }

    /// The base membership [`compact_log(vlsn)`](Self::compact_log) leaves: this node's
    /// base with the membership changes the log holds before `vlsn` applied. A host that
    /// keeps the base beside the log writes this first, then compacts, so a crash between
    /// the two leaves a base that replaying the remaining changes on restart keeps right
    /// (each change sets one member's state).
    pub fn base_members_before(&self, vlsn: u64) -> Membership<N> {
        let mut base = self.base_members().clone();
        fold_membership(&mut base, &self.log, vlsn);
        base
    }

    /// What this node is now.
    pub fn role(&self) -> Role {
        self.election.role()
    }

    /// The highest VLSN known durable (the DTVLSN).
    pub fn durable_vlsn(&self) -> u64 {
        self.durable
    }

    /// The highest VLSN committed under the ack policy (on the master).
    pub fn committed_vlsn(&self) -> u64 {
        self.committed
    }

    /// As master: how far `member` is (its acknowledged VLSN, counted toward durability
    /// for voters) and its last heartbeat round trip.
    pub fn progress(&self, member: MemberId) -> Option<Progress> {
        if !self.is_master() || member == self.election.me() {
            return None;
        }
        let peer = self.peers.get(member.index())?;
        self.member(member)?;
        Some(Progress {
            matched: peer.matched,
            round_trip_ms: self.election.round_trip_ms(member),
            needs_restore: peer.restore,
        })
    }

    /// Replication counters.
    pub fn stats(&self) -> &NodeStats {
        &self.stats
    }

    fn is_master(&self) -> bool {
        self.election.role() == Role::Master
    }

    fn member(&self, id: MemberId) -> Option<&Member> {
        self.election.members().get(id)
    }

    fn stores_data(member: &Member) -> bool {
        holds_log(member.node_type)
    }

    /// Who this node is: its entry in the current membership, else the member it joins as
    /// (a joining node may sit in a slot a removed member left), else its own removed entry
    /// or the configured one (a removal can still be undone).
    fn identity(&self) -> Option<&Member> {
        let me = self.election.me();
        let members = self.election.members();
        members
            .get(me)
            .or(self.election.joining())
            .or_else(|| members.known(me))
            .or_else(|| self.base.get(me))
    }

    /// Whether this node keeps a log (by its [`identity`](Self::identity)).
    fn me_stores_data(&self) -> bool {
        self.identity().is_some_and(Self::stores_data)
    }

    // ----- outputs -----

    /// The next message to send: election messages first, then acknowledgements and sync
    /// messages, then log entries (round-robin over the replicas, within each one's window).
    #[cfg_attr(target_pointer_width = "32", inline(never))]
    pub fn poll_transmit(&mut self) -> Option<Transmit<'_>> {
        self.sync_batch();
        // A node removed by a change still in flight, or joining, introduces itself as such.
        if self.identity().is_none() {
            self.greet = MemberSet::EMPTY;
        }
        if let Some(to) = self.greet.pop_first() {
            let me = self.identity()?;
            let message = MessageRef::Handshake {
                node_name: me.name.as_str(),
                group_name: self.election.members().group_name(),
                node_type: me.node_type,
            };
            return self.transmit(to, Message::Core(message));
        }
        if let Some((to, accepted)) = self.change_answers.pop_front() {
            return self.transmit(to, Message::Core(MessageRef::GroupChangeResponse { accepted }));
        }
        if let Some((to, refusal)) = take_first(&mut self.answers) {
            let reason = refusal.map(HandshakeRefusal::as_str);
            let message = MessageRef::HandshakeResponse { accepted: refusal.is_none(), reason };
            return self.transmit(to, Message::Core(message));
        }
        if let Some((to, slot)) = self.next_base_notice() {
            let change_type = match self.base.get(slot) {
                Some(_) => GroupChangeType::Add,
                None => GroupChangeType::Remove,
            };
            let node = self.base.known(slot).map(Member::as_rep_node)?; // known: see below
            return self.transmit(to, Message::Core(MessageRef::GroupChange { change_type, node }));
        }
        if let Some((to, vlsn)) = self.next_history_notice() {
            // Membership entries are validated before they are appended, so this decodes.
            return match self.log.entry(vlsn).map(|e| crate::wire::decode_core(e.data)) {
                Some(Ok(change @ MessageRef::GroupChange { .. })) => {
                    self.transmit(to, Message::Core(change))
                }
                _ => None,
            };
        }
        while let Some(to) = self.election.next_recipient() {
            if self.outbound.contains(to) {
                return self.election.poll_transmit();
            }
            self.election.skip_transmit();
            count(&mut self.stats.unconnected_drops);
        }
        while let Some(to) = self.notify.pop_first() {
            if self.outbound.contains(to) {
                let reason = self.shutdown.as_ref().map_or("", |s| s.reason.as_str());
                return self.transmit(to, Message::Core(MessageRef::Shutdown { reason }));
            }
        }
        while let Some((to, pending)) = self.pending.pop_front() {
            if !self.outbound.contains(to) {
                count(&mut self.stats.unconnected_drops);
                continue;
            }
            let message = match pending {
                Pending::Ack { vlsn } if vlsn > self.synced => {
                    // Group commit: its sync failed; the master resyncs this replica.
                    count(&mut self.stats.unsynced_acks);
                    continue;
                }
                Pending::Ack { vlsn } => Message::Core(MessageRef::Ack { vlsn }),
                Pending::SyncNack { vlsn } => Message::Ext(Extension::SyncNack { vlsn }),
                Pending::Position { vlsn, log_term } => {
                    Message::Ext(Extension::SyncPoint { vlsn, log_term })
                }
            };
            return self.transmit(to, message);
        }
        let (to, what) = self.next_stream_message()?;
        let message = match what {
            StreamOut::SyncPoint { vlsn, log_term } => {
                Message::Ext(Extension::SyncPoint { vlsn, log_term })
            }
            StreamOut::Entry { vlsn } => {
                let entry = self.log.entry(vlsn)?;
                Message::Core(MessageRef::LogEntry {
                    vlsn,
                    entry_type: entry.entry_type,
                    data: entry.data,
                })
            }
        };
        self.transmit(to, message)
    }

    fn transmit<'a>(&'a self, to: MemberId, message: Message<'a>) -> Option<Transmit<'a>> {
        let recipient = self.election.members().known(to)?;
        Some(Transmit { to, recipient, message })
    }

    /// Picks the next replica with something to send and advances its stream.
    fn next_stream_message(&mut self) -> Option<(MemberId, StreamOut)> {
        if !self.is_master() {
            return None;
        }
        // Only what the master itself persisted is streamed: every entry a replica holds is
        // then also on the disk of the master that wrote it, which keeps that master (a
        // candidate) at least as far along as any replica (including priority-0 ones).
        let last = self.synced;
        let first = self.log.first_vlsn();
        for step in 0..N {
            let index = (self.cursor + step) % N.max(1);
            let id = MemberId::new(u8::try_from(index).ok()?);
            let connected = self.outbound.contains(id);
            if id == self.election.me()
                || !connected
                || !self.member(id).is_some_and(Self::stores_data)
            {
                continue;
            }
            let window = self.config.window;
            let peer = self.peers.get_mut(index)?;
            if peer.restore && !peer.need_sync {
                continue; // until a resync asks it again
            }
            // A sync point needs the metadata of the entry before `next` (held, the last one
            // compacted, or the empty prefix); an entry needs the entry itself. Past what
            // this log still holds, ask at its start instead: everything before it is
            // durable, so the same on every log that holds it, and a replica that agrees
            // there needs nothing compacted (one that does not is told in its SyncNack).
            if peer.next < first {
                peer.next = first;
                peer.need_sync = true;
            }
            let after = peer.next.minus(1);
            if peer.need_sync {
                peer.need_sync = false;
                peer.question = after;
                peer.asked_at_start = first > 1 && after.plus(1) == first;
                let log_term = self.log.meta(after).map_or(0, |m| m.term);
                self.cursor = index + 1;
                return Some((id, StreamOut::SyncPoint { vlsn: after, log_term }));
            }
            if peer.next <= last && peer.next.minus(peer.matched.plus(1)) < window {
                let vlsn = peer.next;
                peer.next = vlsn.plus(1);
                self.cursor = index + 1;
                return Some((id, StreamOut::Entry { vlsn }));
            }
        }
        None
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<NodeEvent> {
        self.events.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) must next be called.
    #[cfg_attr(target_pointer_width = "32", inline(never))]
    pub fn poll_timeout(&self) -> Option<u64> {
        let election = self.election.poll_timeout()?;
        let greet = self.greeted_at.plus(self.greet_interval());
        let next = if self.unanswered().is_empty() { election } else { election.min(greet) };
        // A master's shutdown ends at its deadline, whatever else is due.
        let stop = self.shutdown.as_ref().filter(|s| !s.done).map_or(u64::MAX, |s| s.deadline);
        Some(next.min(stop))
    }

    #[cfg_attr(target_pointer_width = "32", inline(never))]
    fn greet_interval(&self) -> u64 {
        self.config.election.heartbeat_interval_ms.saturating_mul(5)
    }

    fn emit(&mut self, event: NodeEvent) {
        if self.events.push_back(event).is_err() {
            count(&mut self.stats.event_overflows);
        }
    }

    fn queue(&mut self, to: MemberId, pending: Pending) {
        // A newer cumulative ack to the same master replaces one still waiting.
        if let (Pending::Ack { vlsn }, Some((last_to, Pending::Ack { vlsn: queued }))) =
            (pending, self.pending.back_mut())
        {
            if *last_to == to {
                *queued = (*queued).max(vlsn);
                return;
            }
        }
        if self.pending.push_back((to, pending)).is_err() {
            count(&mut self.stats.pending_overflows);
        }
    }

    // ----- local inputs -----

    /// Advances timers (heartbeats, elections) and, on the master, restarts stalled streams
    /// and records the DTVLSN in the log.
    #[cfg_attr(target_pointer_width = "32", inline(never))]
    pub fn handle_timeout(&mut self, now: u64) {
        self.election.handle_timeout(now);
        self.absorb_election_events(now);
        self.greet_again(now);
        if self.synced < self.log.last_vlsn() && self.sync_log() {
            // A sync that failed earlier went through: the appended entries now count.
            self.advance_commit();
        }
        if self.is_master() {
            self.resync_stalled(now);
            self.ask_arbiters(now);
            self.record_dtvlsn();
            let every = self
                .config
                .election
                .heartbeat_interval_ms
                .saturating_mul(crate::election::RESULT_REFRESH);
            if now >= self.history_at.plus(every) {
                self.send_membership_history(now);
            }
        }
        self.check_shutdown(now);
    }

    /// A link to `peer` is up (the transport connected, or the peer connected to us): send
    /// it our `Handshake`. Until the peer accepts it nothing else is sent to it, and until
    /// this node accepts the peer's own `Handshake` nothing from it is handled.
    pub fn connect(&mut self, peer: MemberId) {
        // A member removed by a change still in flight stays reachable: it may be the next
        // master if the change is undone.
        if peer != self.election.me() && self.election.members().known(peer).is_some() {
            self.outbound.remove(peer);
            self.greet.insert(peer);
        }
    }

    /// The link to `peer` is gone: both directions must be handshaken again. If `peer` was
    /// this replica's master, the election no longer waits the random extra on top of the
    /// election timeout ([`Election::master_link_lost`]). A replica that needed a restore
    /// is reported again ([`NodeEvent::NeedsRestore`]) if it still does when it is back (it
    /// may have been restored, and that may have fallen short).
    pub fn disconnect(&mut self, peer: MemberId) {
        if let Some(p) = self.peers.get_mut(peer.index()) {
            (p.restore, p.refused_start) = (false, false);
        }
        self.election.master_link_lost(peer);
        self.inbound.remove(peer);
        self.outbound.remove(peer);
        self.greet.remove(peer);
    }

    /// Whether `peer` accepted this node's handshake and this node accepted the peer's.
    pub fn is_connected(&self, peer: MemberId) -> bool {
        self.inbound.contains(peer) && self.outbound.contains(peer)
    }

    /// Checks a `Handshake` on a new inbound connection: the member it identifies, or the
    /// reason it is refused. A transport uses this to bind the connection to a member; a
    /// second live connection under a name already connected is refused.
    pub fn check_handshake(
        &self,
        node_name: &str,
        group_name: &str,
        node_type: NodeType,
    ) -> Result<MemberId, HandshakeRefusal> {
        let id = self.identify(node_name, group_name, node_type)?;
        if self.inbound.contains(id) {
            return Err(HandshakeRefusal::AlreadyConnected);
        }
        Ok(id)
    }

    /// The member a handshake names, if it may join: the right group, a member, its type.
    fn identify(
        &self,
        node_name: &str,
        group_name: &str,
        node_type: NodeType,
    ) -> Result<MemberId, HandshakeRefusal> {
        let members = self.election.members();
        if group_name != members.group_name() {
            return Err(HandshakeRefusal::WrongGroup);
        }
        // A member removed by a change still in flight may connect: the change can be undone.
        let id = members.known_id_of(node_name).ok_or(HandshakeRefusal::NotMember)?;
        // By name too: a joiner's view may hold an older member under the name it took.
        if id == self.election.me() || self.identity().is_some_and(|m| m.name == node_name) {
            return Err(HandshakeRefusal::SelfConnection);
        }
        // Electable and Secondary may differ: an `Update` between them is in one log and not
        // yet in the other, and the stream reconciles them (refused, a member that was away
        // during the change could never receive it).
        let known = members.known(id).map(|m| m.node_type);
        if known != Some(node_type) && !(known.is_some_and(holds_log) && holds_log(node_type)) {
            return Err(HandshakeRefusal::NodeTypeMismatch);
        }
        Ok(id)
    }

    /// A `Handshake` on the link to `from` (a repeat on the same link is answered again).
    fn on_handshake(
        &mut self,
        from: MemberId,
        node_name: &str,
        group_name: &str,
        node_type: NodeType,
    ) {
        let verdict = match self.identify(node_name, group_name, node_type) {
            Ok(id) if id == from => None,
            Ok(_) => Some(HandshakeRefusal::NotThisLink),
            Err(reason) => Some(reason),
        };
        if verdict.is_some() {
            count(&mut self.stats.ignored.handshakes_refused);
        } else {
            self.inbound.insert(from);
            if !self.outbound.contains(from) {
                self.greet.insert(from);
            }
        }
        // One answer per peer: a repeated handshake is answered once, with the last verdict.
        if let Some(answer) = self.answers.get_mut(from.index()) {
            *answer = Some(verdict);
        }
    }

    fn on_handshake_response(&mut self, from: MemberId, accepted: bool) {
        if self.election.members().known(from).is_none() || from == self.election.me() {
            count(&mut self.stats.ignored.not_connected);
        } else if accepted {
            if !self.outbound.contains(from) {
                self.outbound.insert(from);
                self.emit(NodeEvent::Connected { member: from });
                // A member without a log may have missed changes. Only one known to keep no
                // log: a member its view has removed may be a master now, which would take
                // the notices for requests and make them again (a removal undone).
                if self.election.members().known(from).is_some_and(|m| !Self::stores_data(m)) {
                    self.send_history_to(from);
                }
            }
        } else {
            self.emit(NodeEvent::HandshakeRefused { member: from });
        }
    }

    /// Re-sends the handshake to peers that have not accepted it yet (it may have been lost).
    fn greet_again(&mut self, now: u64) {
        if now < self.greeted_at.plus(self.greet_interval()) {
            return;
        }
        self.greeted_at = now;
        self.greet = self.greet.union(self.unanswered());
    }

    /// The members (and removed members still recognised) that have not accepted this
    /// node's handshake.
    fn unanswered(&self) -> MemberSet {
        let mut others = self.election.members().all_known();
        others.remove(self.election.me());
        others.difference(self.outbound)
    }

    /// Shuts the node down gracefully: a master stops taking appends and first lets its most
    /// up-to-date electable replica catch up (for at most two election timeouts, and not at
    /// all if no other member could be master) so that replica can take over with nothing
    /// lost; then every peer is sent `Shutdown{reason}` (replicas elect at once) and the node
    /// stops ([`NodeEvent::Stopped`]).
    #[cfg_attr(target_pointer_width = "32", inline(always))]
    pub fn shutdown(&mut self, now: u64, reason: &str) {
        if self.shutdown.is_some() {
            return;
        }
        let mut kept = heapless::String::new();
        for c in reason.chars() {
            if kept.push(c).is_err() {
                break;
            }
        }
        let wait = self.config.election.election_timeout_ms.saturating_mul(2);
        self.shutdown = Some(Shutdown { reason: kept, deadline: now.plus(wait), done: false });
        self.check_shutdown(now);
    }

    fn check_shutdown(&mut self, now: u64) {
        let Some(state) = self.shutdown.as_ref().filter(|s| !s.done) else { return };
        if self.is_master() && now < state.deadline && !self.successor_caught_up() {
            return;
        }
        if let Some(state) = self.shutdown.as_mut() {
            state.done = true;
        }
        let mut everyone = self.election.members().all();
        everyone.remove(self.election.me());
        self.notify = everyone;
        self.election.stop();
        self.absorb_election_events(now);
        self.stream = Stream::default();
        self.emit(NodeEvent::Stopped);
    }

    /// Whether some electable replica holds everything this master persisted, or none could
    /// take over at all (a group of one, or of this node and members that cannot be master):
    /// then waiting gains nothing.
    fn successor_caught_up(&self) -> bool {
        let mut successors = self.election.others(Member::is_candidate);
        let none = successors.is_empty();
        while let Some(id) = successors.pop_first() {
            if self.peers.get(id.index()).is_some_and(|p| p.matched >= self.synced) {
                return true;
            }
        }
        none
    }

    /// Appends an entry as master and returns its VLSN. It is streamed to the replicas;
    /// [`NodeEvent::Committed`] and [`NodeEvent::Durable`] report when it is safe.
    pub fn append(&mut self, entry_type: u8, data: &[u8]) -> Result<u64, AppendError> {
        if entry_type >= RESERVED_ENTRY_TYPES {
            return Err(AppendError::ReservedType);
        }
        if self.shutdown.is_some() {
            return Err(AppendError::ShuttingDown);
        }
        if !self.is_master() {
            return Err(AppendError::NotMaster { master: self.election.master() });
        }
        let vlsn = self.append_local(entry_type, data)?;
        self.stats.appended = self.stats.appended.plus(1);
        Ok(vlsn)
    }

    /// Appends to the own log in the current term and persists it.
    fn append_local(&mut self, entry_type: u8, data: &[u8]) -> Result<u64, AppendError> {
        let last = self.log.last_vlsn();
        let vlsn = last.checked_add(1).ok_or(AppendError::Storage)?;
        let prev = self.log.meta(last).unwrap_or_default();
        let meta = EntryMeta {
            term: self.election.term(),
            dtvlsn: recorded_dtvlsn(prev, entry_type, data),
        };
        if self.log.append(vlsn, meta, entry_type, data).is_err() {
            self.storage_failed();
            return Err(AppendError::Storage);
        }
        // The election ranks this node by what its log holds, synced or not: a stale rank
        // could let it vote for a candidate that lacks its entries.
        self.publish_position();
        if entry_type == ENTRY_MEMBERSHIP {
            self.apply_membership_entry(vlsn, data);
        }
        if entry_type != ENTRY_DTVLSN {
            self.last_payload = vlsn;
        }
        if self.config.sync == SyncMode::Batched {
            return Ok(vlsn); // synced, streamed and counted from the next poll_transmit
        }
        if !self.sync_log() {
            // The entry stays in the log and is streamed once a later sync persists it.
            return Err(AppendError::Storage);
        }
        self.publish_position();
        self.advance_commit();
        Ok(vlsn)
    }

    /// Group commit: syncs what was appended since the last sync, then counts it.
    fn sync_batch(&mut self) {
        if self.config.sync == SyncMode::Batched && self.synced < self.log.last_vlsn() {
            if self.sync_log() {
                self.publish_position();
                self.advance_commit();
            } else {
                self.stream.synced = false;
            }
        }
    }

    /// Syncs the log; the own acknowledgement only moves when that succeeded.
    fn sync_log(&mut self) -> bool {
        if self.log.sync().is_err() {
            self.storage_failed();
            return false;
        }
        self.synced = self.log.last_vlsn();
        true
    }

    fn storage_failed(&mut self) {
        count(&mut self.stats.storage_failures);
        // A failing store reports once until the application takes the event
        // (`NodeStats::storage_failures` counts every failure): a store that fails every
        // sync must not crowd out the events that say what the group is doing.
        if !self.events.iter().any(|e| matches!(e, NodeEvent::StorageFailed)) {
            self.emit(NodeEvent::StorageFailed);
        }
    }

    /// Tells the election where the log ends (it proposes with this rank).
    fn publish_position(&mut self) {
        let last = self.log.last_vlsn();
        let meta = self.log.meta(last).unwrap_or_default();
        self.election.set_log_position(meta.term, last, meta.dtvlsn);
        self.durable = self.durable.max(meta.dtvlsn);
        let position = if self.stream.synced { self.stream.next.minus(1) } else { 0 };
        self.election.set_stream_position(position);
    }

    // ----- election events -----

    fn absorb_election_events(&mut self, now: u64) {
        while let Some(event) = self.election.poll_event() {
            match event {
                Event::BecameMaster { term } => self.begin_term(now, term),
                // A member without a log keeps its view: masters announce only durable
                // changes, which no failover undoes.
                Event::MasterKnown { master, .. } => {
                    self.stream = Stream { master: Some(master), ..Stream::default() };
                }
                _ => self.stream = Stream::default(),
            }
            self.emit(NodeEvent::Election(event));
        }
    }

    /// As new master: write the term-start entry, then sync every replica from there.
    fn begin_term(&mut self, now: u64, term: u64) {
        self.stream = Stream::default();
        let start = self.log.last_vlsn().plus(1);
        for peer in self.peers.iter_mut() {
            *peer = Peer { next: start, acked_at: now, need_sync: true, ..Peer::default() };
        }
        // A failure is reported by append_local; the master then commits nothing.
        let _ = self.append_local(ENTRY_TERM_START, &term.to_le_bytes());
        self.send_membership_history(now);
    }

    /// Replicas silent for two heartbeat intervals while behind are synced again (a lost
    /// SyncPoint, entry or ack would otherwise stall them).
    fn resync_stalled(&mut self, now: u64) {
        let last = self.synced;
        let first = self.log.first_vlsn();
        let patience = self.config.election.heartbeat_interval_ms.saturating_mul(2);
        for peer in self.peers.iter_mut() {
            // One that needs a restore is asked again too: it may have been restored, or a
            // cautious answer may have made it look so.
            let behind = peer.matched < last;
            if behind && peer.acked_at.plus(patience) <= now {
                // From what it acknowledged, or from the first entry held if that is later:
                // everything before it is durable, so the same on every log that holds it.
                peer.next = peer.matched.plus(1).max(first);
                peer.need_sync = true;
                peer.acked_at = now;
            }
        }
    }

    /// Writes a DTVLSN record when durability advanced past entries not yet covered by one.
    fn record_dtvlsn(&mut self) {
        if self.durable > self.recorded && self.last_payload > self.recorded {
            let durable = self.durable;
            if self.append_local(ENTRY_DTVLSN, &durable.to_le_bytes()).is_ok() {
                self.recorded = durable;
            }
        }
    }

    // ----- peer messages -----

    /// Handles a message from member `from` received at `now`.
    #[cfg_attr(target_pointer_width = "32", inline(never))]
    pub fn handle(&mut self, now: u64, from: MemberId, msg: &Message<'_>) {
        if self.shutdown.as_ref().is_some_and(|s| s.done) {
            return;
        }
        // A master whose heartbeat round is overdue runs it before it acts on a message.
        // After a freeze (a paused VM, a long GC) the round finds the lease lapsed and
        // steps down, instead of counting acknowledgements that waited in its socket while
        // another master took over the group (its events are absorbed below).
        self.election.heartbeat_if_due(now);
        match *msg {
            Message::Core(MessageRef::Handshake { node_name, group_name, node_type }) => {
                return self.on_handshake(from, node_name, group_name, node_type);
            }
            Message::Core(MessageRef::HandshakeResponse { accepted, .. }) => {
                return self.on_handshake_response(from, accepted);
            }
            _ if !self.inbound.contains(from) && !self.link_moved_to(from) => {
                count(&mut self.stats.ignored.not_connected);
                return;
            }
            _ => {}
        }
        match *msg {
            Message::Core(MessageRef::LogEntry { vlsn, entry_type, data }) => {
                self.on_entry(now, from, vlsn, entry_type, data)
            }
            Message::Core(MessageRef::Ack { vlsn }) => self.on_ack(now, from, vlsn),
            Message::Ext(Extension::SyncPoint { vlsn, log_term }) => {
                if self.identity().is_some_and(|m| m.node_type == NodeType::Arbiter) {
                    self.on_position_request(from, vlsn, log_term)
                } else if self.is_master() {
                    self.on_position_ack(from, vlsn, log_term)
                } else {
                    self.on_sync_point(from, vlsn, log_term)
                }
            }
            Message::Ext(Extension::SyncNack { vlsn }) => self.on_sync_nack(from, vlsn),
            Message::Core(MessageRef::HeartbeatResponse { replica_vlsn, .. })
                if self.is_master() && replica_vlsn > self.log.last_vlsn() =>
            {
                count(&mut self.stats.ignored.impossible);
            }
            Message::Core(MessageRef::Shutdown { .. }) => self.on_peer_shutdown(now, from),
            Message::Core(MessageRef::GroupChange { change_type, node }) => {
                self.on_group_change(now, from, change_type, &node)
            }
            Message::Core(MessageRef::GroupChangeResponse { accepted }) => {
                self.emit(NodeEvent::GroupChangeAnswered { accepted })
            }
            _ => self.election.handle_message(now, from, msg),
        }
        self.absorb_election_events(now);
        self.check_shutdown(now);
    }

    /// Whether `to`'s name had its handshake accepted in another slot, whose link then
    /// moves to `to`. Links are known by name (the wire names a peer; a transport knows a
    /// link by the name it handshook with), and a membership change can move a name: a
    /// reused name's Add, accepted while the name was a removed member's slot, or that Add
    /// undone. The peer, whose handshake was accepted, never sends another, so this node
    /// ignored all it sent (seed 480,102,212 with membership changes).
    fn link_moved_to(&mut self, to: MemberId) -> bool {
        let members = self.election.members();
        let Some(name) = members.known(to).map(|m| &m.name) else { return false };
        let mut accepted = self.inbound;
        while let Some(a) = accepted.pop_first() {
            if members.known(a).is_some_and(|m| m.name == *name) {
                self.inbound.remove(a);
                self.inbound.insert(to);
                return true;
            }
        }
        false
    }

    fn on_peer_shutdown(&mut self, now: u64, from: MemberId) {
        if self.election.members().known(from).is_none() || from == self.election.me() {
            count(&mut self.stats.ignored.not_replica);
            return;
        }
        self.emit(NodeEvent::PeerShutdown { member: from });
        self.election.master_left(now, from);
    }

    /// As replica: is `from` the master whose stream this node follows?
    fn accept_from_master(&mut self, from: MemberId) -> bool {
        let ok = self.stream.master == Some(from)
            && self.election.master() == Some(from)
            && self.me_stores_data();
        if !ok {
            count(&mut self.stats.ignored.not_master);
        }
        ok
    }

    fn on_sync_point(&mut self, from: MemberId, vlsn: u64, log_term: u64) {
        if !self.accept_from_master(from) {
            return;
        }
        let compacted = vlsn < self.log.first_vlsn();
        let matches = compacted || self.log.meta(vlsn).is_some_and(|m| m.term == log_term);
        if matches {
            if !self.sync_log() {
                return;
            }
            self.stream =
                Stream { master: Some(from), synced: true, next: vlsn.plus(1), run_term: log_term };
            self.queue(from, Pending::Ack { vlsn });
        } else {
            self.stream.synced = false;
            let hint = self.agreement_hint(vlsn);
            self.queue(from, Pending::SyncNack { vlsn: hint });
        }
    }

    /// Where this log may still agree with a master it disagrees with at `vlsn`: before the
    /// run of entries of the term held at `vlsn` (or at the own end, if shorter).
    fn agreement_hint(&self, vlsn: u64) -> u64 {
        let last = self.log.last_vlsn();
        if vlsn > last {
            return last;
        }
        let bad = self.log.meta(vlsn).map_or(0, |m| m.term);
        let first = self.log.first_vlsn();
        let mut x = vlsn.minus(1);
        while x >= first && self.log.meta(x).is_some_and(|m| m.term == bad) {
            x = x.minus(1);
        }
        // What this log compacted was durable: the same in every log, the master's too.
        x.max(first.minus(1))
    }

    fn on_entry(&mut self, now: u64, from: MemberId, vlsn: u64, entry_type: u8, data: &[u8]) {
        if !self.accept_from_master(from) {
            return;
        }
        if !self.stream.synced || vlsn < self.stream.next {
            count(&mut self.stats.ignored.out_of_order);
            return;
        }
        if vlsn > self.stream.next {
            // Entries went missing: ask the master to resume where this log is whole.
            self.stream.synced = false;
            let hint = self.stream.next.minus(1);
            self.queue(from, Pending::SyncNack { vlsn: hint });
            return;
        }
        let term = match entry_type {
            ENTRY_TERM_START => match <[u8; 8]>::try_from(data) {
                Ok(bytes) => u64::from_le_bytes(bytes),
                Err(_) => return self.malformed(),
            },
            _ => self.stream.run_term,
        };
        if term < self.stream.run_term {
            return self.malformed();
        }
        if term > self.election.term() {
            // The master started a term this node missed. Stored, the entry would put the
            // log past every term the node has entered, and it may have overtaken the
            // term's sync point: the node learns the term as from the master's result, and
            // asks to be synced again in it.
            count(&mut self.stats.ignored.not_master);
            self.election.follow_into(now, from, term);
            return self.queue(from, Pending::SyncNack { vlsn: self.stream.next.minus(1) });
        }
        if !self.store_replicated(vlsn, term, entry_type, data) {
            return;
        }
        self.stream.next = vlsn.plus(1);
        self.stream.run_term = term;
        if self.config.sync == SyncMode::EachEntry && !self.sync_log() {
            self.stream.synced = false;
            return;
        }
        self.publish_position();
        self.queue(from, Pending::Ack { vlsn });
    }

    fn malformed(&mut self) {
        count(&mut self.stats.ignored.impossible);
    }

    /// Makes the own entry at `vlsn` the master's: keeps a match, truncates a conflict,
    /// appends what is new. False if the entry could not be stored.
    fn store_replicated(&mut self, vlsn: u64, term: u64, entry_type: u8, data: &[u8]) -> bool {
        if vlsn < self.log.first_vlsn() {
            return true; // compacted, hence durable, hence the same
        }
        if let Some(held) = self.log.meta(vlsn).filter(|_| vlsn <= self.log.last_vlsn()) {
            if held.term == term {
                return true;
            }
            if vlsn <= self.durable {
                // A master never contradicts a durable entry; refuse rather than lose it.
                self.malformed();
                return false;
            }
            let dropped = self.log.last_vlsn().minus(vlsn).plus(1);
            if self.log.truncate(vlsn).is_err() {
                self.storage_failed();
                return false;
            }
            self.synced = self.synced.min(vlsn.minus(1));
            self.publish_position();
            self.stats.truncated = self.stats.truncated.plus(dropped);
            self.emit(NodeEvent::Truncated { from: vlsn });
            self.replay_membership(); // a change in the dropped suffix is undone
        }
        let prev = self.log.meta(vlsn.minus(1)).unwrap_or_default();
        let meta = EntryMeta { term, dtvlsn: recorded_dtvlsn(prev, entry_type, data) };
        let appended = self.log.append(vlsn, meta, entry_type, data);
        self.publish_position();
        if appended.is_err() {
            self.stream.synced = false;
            self.storage_failed();
            return false;
        }
        self.stats.replicated = self.stats.replicated.plus(1);
        if entry_type == ENTRY_MEMBERSHIP {
            self.apply_membership_entry(vlsn, data);
        }
        true
    }

    /// As master: a replica that stores data, or None (counted).
    fn replica_peer(&mut self, from: MemberId) -> Option<&mut Peer> {
        let ok = self.is_master()
            && from != self.election.me()
            && self.member(from).is_some_and(Self::stores_data);
        if !ok {
            count(&mut self.stats.ignored.not_replica);
            return None;
        }
        self.peers.get_mut(from.index())
    }

    fn on_ack(&mut self, now: u64, from: MemberId, vlsn: u64) {
        let Some(peer) = self.replica_peer(from) else { return };
        if vlsn >= peer.next {
            // An acknowledgement of entries never sent in this term.
            count(&mut self.stats.ignored.impossible);
            return;
        }
        if vlsn > peer.matched {
            peer.matched = vlsn;
            peer.acked_at = now;
        }
        peer.asked_at_start = false; // it agreed
        peer.refused_start = false;
        peer.restore = false;
        self.advance_commit();
    }

    // ----- arbiters -----

    /// As master: once the data nodes have left synced entries undurable for a heartbeat
    /// interval (a replica is down or slow), asks each connected arbiter to acknowledge the
    /// last synced entry, as JE's arbiters acknowledge writes; asks again after an election
    /// timeout without an answer. An arbiter's acknowledgement counts like a replica's.
    fn ask_arbiters(&mut self, now: u64) {
        let target = self.synced;
        if self.durable >= target {
            self.stalled = None;
            return;
        }
        let since = match self.stalled {
            Some((durable, since)) if durable == self.durable => since,
            _ => {
                self.stalled = Some((self.durable, now));
                now
            }
        };
        let config = self.config.election;
        let Some(log_term) = self.log.meta(target).map(|m| m.term) else { return };
        if now < since.plus(config.heartbeat_interval_ms) {
            return;
        }
        for index in 0..N {
            let Some(id) = u8::try_from(index).ok().map(MemberId::new) else { continue };
            let arbiter = self.member(id).is_some_and(|m| m.node_type == NodeType::Arbiter);
            let Some(peer) = self.peers.get_mut(index) else { continue };
            let unanswered = now >= peer.asked_at.plus(config.election_timeout_ms);
            let ask = peer.matched < target && (peer.asked < target || unanswered);
            if arbiter && ask && self.outbound.contains(id) {
                peer.asked = target;
                peer.asked_at = now;
                self.queue(id, Pending::Position { vlsn: target, log_term });
            }
        }
    }

    /// As arbiter: the master asks it to acknowledge `(log_term, vlsn)`; it records the
    /// position durably (from then on it votes only for logs that reach it) and answers.
    fn on_position_request(&mut self, from: MemberId, vlsn: u64, log_term: u64) {
        if self.election.master() != Some(from) {
            count(&mut self.stats.ignored.not_master);
            return;
        }
        if self.election.acknowledge_position(log_term, vlsn) {
            self.queue(from, Pending::Position { vlsn, log_term });
        }
    }

    /// As master: an arbiter acknowledged `(log_term, vlsn)`. It counts when that is an entry
    /// of this log as written (same term), which the arbiter's promise then protects.
    fn on_position_ack(&mut self, from: MemberId, vlsn: u64, log_term: u64) {
        let arbiter = self.member(from).is_some_and(|m| m.node_type == NodeType::Arbiter);
        if !arbiter {
            count(&mut self.stats.ignored.not_replica);
            return;
        }
        let ours = vlsn <= self.synced && self.log.meta(vlsn).is_some_and(|m| m.term == log_term);
        let Some(peer) = self.peers.get_mut(from.index()).filter(|_| ours) else {
            count(&mut self.stats.ignored.impossible);
            return;
        };
        peer.matched = peer.matched.max(vlsn);
        self.advance_commit();
    }

    fn on_sync_nack(&mut self, from: MemberId, vlsn: u64) {
        let (first, last) = (self.log.first_vlsn(), self.log.last_vlsn());
        let Some(asked) = self.replica_peer(from).map(|p| p.question) else { return };
        let resume = vlsn.min(last);
        let question = self.run_end_after(resume, asked);
        let Some(peer) = self.replica_peer(from) else { return };
        peer.next = question.plus(1);
        peer.matched = peer.matched.min(resume);
        peer.need_sync = true;
        // Asked at the start of this log, it disagrees or ends before it: what it lacks was
        // compacted here. (A lower hint to a later question may be a cautious one: the
        // start is asked next.) Twice in a row, so that a SyncNack to an earlier question
        // still in flight is not taken for the answer.
        if peer.next < first && peer.asked_at_start {
            if !peer.refused_start {
                peer.refused_start = true;
                return; // the start is asked again at once
            }
            peer.need_sync = false; // asked again at the next resync only
            if !peer.restore {
                peer.restore = true;
                self.emit(NodeEvent::NeedsRestore { member: from, needed: resume.plus(1) });
            }
        }
    }

    /// Where to ask next after a replica that disagreed at `asked` (the last question) said
    /// that its log may agree up to `hint`, before its run of the term it holds at `asked`
    /// (Raft's fast backup, the master's half). If this log's entry after `hint` has another
    /// term than the one at `asked`, the replica's run may be that term's, shared with this
    /// log up to where this log's run of it ends: ask there, so a replica that holds most of
    /// a long term is not streamed it again. Any question is safe (a replica agrees only
    /// where it holds the same term); each one lands lower than the last, so the search ends.
    #[cfg_attr(target_pointer_width = "32", inline(never))]
    fn run_end_after(&self, hint: u64, asked: u64) -> u64 {
        let term_at = |v: u64| self.log.meta(v).map(|m| m.term);
        let (mut low, mut high) = (hint.plus(1), asked);
        let run = term_at(low).filter(|_| low >= self.log.first_vlsn() && low < high);
        if run.is_none() || run == term_at(high) {
            return hint;
        }
        // Terms never decrease along a log: bisect for the last entry of `run` before `asked`
        // (past the log's end, `meta` is `None`: not `run`).
        while high - low > 1 {
            let mid = low + (high - low) / 2;
            if term_at(mid) == run {
                low = mid;
            } else {
                high = mid;
            }
        }
        low
    }

    // ----- durability -----

    /// Recomputes the DTVLSN and the committed point from the acknowledgements.
    fn advance_commit(&mut self) {
        if !self.is_master() {
            return;
        }
        let me = self.election.me();
        let own = self.synced;
        let mut acks: heapless::Vec<u64, N> = heapless::Vec::new();
        let mut all_electable = u64::MAX;
        for (id, member) in self.election.members().iter() {
            let acked =
                if id == me { own } else { self.peers.get(id.index()).map_or(0, |p| p.matched) };
            if member.node_type == NodeType::Electable {
                all_electable = all_electable.min(acked);
            }
            if member.is_voter() {
                let _ = acks.push(acked);
            }
        }
        // The master's own copy always counts: a designated primary (quorum 1) may later be
        // elected alone, so what it reports durable must be on its own disk.
        let majority = quorum_point(&acks, self.election.quorum()).min(own);
        let term = self.election.term();
        // Only an entry of the current term is counted directly (it carries every entry
        // before it); an older term's entry on a majority could still be overwritten.
        let in_term = |log: &L, v: u64| log.meta(v).is_some_and(|m| m.term == term);
        if majority > self.durable && in_term(&self.log, majority) {
            self.durable = majority;
            self.emit(NodeEvent::Durable { vlsn: majority });
            if let Some((vlsn, requester)) = self.change.filter(|(v, _)| *v <= majority) {
                self.change = None;
                if let Some(to) = requester.filter(|_| vlsn > 0) {
                    self.answer_change(to, true);
                }
            }
        }
        let (committed, needs_term) = match self.config.ack_policy {
            AckPolicy::All => (all_electable, true),
            AckPolicy::SimpleMajority => (self.durable, false),
            AckPolicy::None => (own, false),
        };
        let committed =
            if needs_term && !in_term(&self.log, committed) { self.committed } else { committed };
        if committed > self.committed {
            self.committed = committed;
            self.emit(NodeEvent::Committed { vlsn: committed });
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum StreamOut {
    SyncPoint { vlsn: u64, log_term: u64 },
    Entry { vlsn: u64 },
}

/// The DTVLSN recorded up to an entry: the previous entry's, raised by a DTVLSN record.
#[cfg_attr(target_pointer_width = "32", inline(never))]
fn recorded_dtvlsn(prev: EntryMeta, entry_type: u8, data: &[u8]) -> u64 {
    match (entry_type, <[u8; 8]>::try_from(data)) {
        (ENTRY_DTVLSN, Ok(bytes)) => prev.dtvlsn.max(u64::from_le_bytes(bytes)),
        _ => prev.dtvlsn,
    }
}
