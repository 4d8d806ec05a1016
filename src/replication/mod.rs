//! Replication: the log a group replicates, and the rules of the stream.
//!
//! The master appends entries to its [`LogStore`] and streams them, in VLSN order and
//! pipelined within a window, to every member that stores data. A replica checks each new
//! stream against its own log ([`Extension::SyncPoint`](crate::wire::Extension)), keeps what
//! matches, truncates what does not, persists, and acknowledges cumulatively. The master
//! counts acknowledgements toward its durability point (DTVLSN). The state machine that does
//! all this is [`Node`](crate::node::Node); the rules and why durable entries survive every
//! failover are in `docs/protocol.md`.

mod log;
mod nor_flash;
mod restore;

pub use log::{
    Entry, EntryMeta, LogStore, RamLog, RamLogError, ENTRY_DTVLSN, ENTRY_MEMBERSHIP,
    ENTRY_TERM_START, RESERVED_ENTRY_TYPES,
};
pub use nor_flash::{FlashLogError, NorFlashLog};
pub use restore::{check_restore, RestoreRefusal};

/// When the master reports an append committed (JE's replica ack policies).
///
/// Whatever the policy, [`NodeEvent::Durable`](crate::node::NodeEvent) is only reported for
/// entries a majority of the electable members persisted: that is the promise that survives
/// failover. The policy decides [`NodeEvent::Committed`](crate::node::NodeEvent).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum AckPolicy {
    /// Every electable member persisted the entry.
    All,
    /// A majority of the voters persisted the entry (JE's default).
    #[default]
    SimpleMajority,
    /// The master persisted the entry; it may be lost in a failover.
    None,
}

/// The highest value that at least `k` of `acks` reach: the VLSN a quorum of `k` has
/// acknowledged (0 when fewer than `k` values, or `k` is 0). Quadratic in a group's few
/// members, and with no sort (whose code would cost firmware kilobytes of flash).
///
/// ```
/// use harp::replication::quorum_point;
/// assert_eq!(quorum_point(&[9, 4, 7], 2), 7);
/// assert_eq!(quorum_point(&[9, 4, 7], 3), 4);
/// assert_eq!(quorum_point(&[9, 4, 7], 4), 0);
/// ```
pub fn quorum_point(acks: &[u64], k: usize) -> u64 {
    if k == 0 {
        return 0;
    }
    let reached_by_k = |v: u64| acks.iter().filter(|&&a| a >= v).count() >= k;
    acks.iter().copied().filter(|&v| reached_by_k(v)).max().unwrap_or(0)
}
