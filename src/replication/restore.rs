//! Restoring a replica that fell behind every member's retained log.
//!
//! Compaction ([`Node::compact_log`](crate::node::Node::compact_log)) drops only durable
//! entries, so a member's log starts at a *restore point*: its last compacted entry (VLSN,
//! term, DTVLSN), durable in the group. A replica that lacks entries every member has
//! compacted (the master reports [`NodeEvent::NeedsRestore`](crate::node::NodeEvent)) does
//! not need those entries back: its log is replaced by an empty one compacted through such
//! a point ([`RamLog::after`](super::RamLog::after); hosted nodes: `harp restore`), its
//! base membership by the one of the member the point comes from
//! ([`Node::base_members`](crate::node::Node::base_members)), and the master streams it the
//! rest. Its stable store (term, vote) stays its own. [`check_restore`] says when that
//! replacement is safe.

use core::fmt;

use super::LogStore;

/// Why [`check_restore`] refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum RestoreRefusal {
    /// The log already starts after the point (it was compacted further): it needs no
    /// restore from there.
    StartsAfter {
        /// The log's first VLSN.
        first: u64,
    },
    /// The log holds the point's entry (the same term at its VLSN): it agrees with the
    /// group there and is streamed to without a restore, and entries it holds past the
    /// point may be durable.
    Agrees,
}

impl fmt::Display for RestoreRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RestoreRefusal::StartsAfter { first } => {
                write!(f, "the log starts at VLSN {first}, after the restore point")
            }
            RestoreRefusal::Agrees => f.write_str("the log already agrees with the restore point"),
        }
    }
}

/// Whether `log` may be replaced by an empty log compacted through a restore point: the
/// entry at `vlsn`, written in `term`, durable in the group. Allowed when the log lacks that
/// entry or holds a different one there: then nothing it holds past `vlsn` is durable (a
/// durable entry past it would come with the group's entry at `vlsn`, by log matching:
/// entries of the same term at the same VLSN have the same history), so the replacement
/// loses nothing the group needs; entries up to `vlsn` are in the group's durable prefix.
///
/// ```
/// use harp::replication::{check_restore, EntryMeta, LogStore, RamLog, RestoreRefusal};
/// let mut log = RamLog::<8, 64>::new();
/// log.append(1, EntryMeta { term: 1, dtvlsn: 0 }, 1, b"a").unwrap();
/// assert_eq!(check_restore(&log, 5, 2), Ok(())); // behind the point: restore
/// assert_eq!(check_restore(&log, 1, 2), Ok(())); // diverges at the point: restore
/// assert_eq!(check_restore(&log, 1, 1), Err(RestoreRefusal::Agrees));
/// ```
pub fn check_restore<L: LogStore>(log: &L, vlsn: u64, term: u64) -> Result<(), RestoreRefusal> {
    let first = log.first_vlsn();
    if first > vlsn.saturating_add(1) {
        return Err(RestoreRefusal::StartsAfter { first });
    }
    if log.meta(vlsn).is_some_and(|m| m.term == term) {
        return Err(RestoreRefusal::Agrees);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replication::{EntryMeta, RamLog};

    fn log(terms: &[u64]) -> RamLog<8, 64> {
        let mut log = RamLog::new();
        for (vlsn, &term) in (1..).zip(terms) {
            log.append(vlsn, EntryMeta { term, dtvlsn: 0 }, 1, b"e").unwrap();
        }
        log
    }

    #[test]
    fn a_log_behind_the_point_or_diverging_at_it_may_be_restored() {
        assert_eq!(check_restore(&log(&[1, 1]), 5, 2), Ok(()), "ends before the point");
        assert_eq!(check_restore(&log(&[1, 1, 1, 1, 1, 1]), 5, 2), Ok(()), "other term there");
        assert_eq!(check_restore(&RamLog::<8, 64>::new(), 5, 2), Ok(()), "empty");
    }

    #[test]
    fn a_log_agreeing_at_the_point_or_starting_after_it_is_refused() {
        let agrees = log(&[1, 2, 2, 2, 2, 2, 2]);
        assert_eq!(check_restore(&agrees, 5, 2), Err(RestoreRefusal::Agrees), "held, same term");
        let mut compacted = agrees.clone();
        compacted.compact(6); // first 6: entry 5 is its compaction point, still known
        assert_eq!(check_restore(&compacted, 5, 2), Err(RestoreRefusal::Agrees));
        compacted.compact(7);
        let first = RestoreRefusal::StartsAfter { first: 7 };
        assert_eq!(check_restore(&compacted, 5, 2), Err(first), "compacted past the point");
        assert_eq!(check_restore(&RamLog::<8, 64>::new(), 0, 0), Err(RestoreRefusal::Agrees));
    }
}
