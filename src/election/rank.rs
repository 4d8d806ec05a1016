//! Ranking candidates, as JE HA does, and choosing whom to vote for.

use crate::membership::{MemberId, Membership};
use crate::NodeType;
use core::cmp::Ordering;

/// What a proposal says about its sender: how far its log goes and its priority.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Rank {
    /// The term in which the node's last log entry was written (0: empty log). Compared
    /// first: see `docs/protocol.md` for why JE's order alone could lose durable entries.
    pub log_term: u64,
    /// The last VLSN in the node's log.
    pub vlsn: u64,
    /// The highest VLSN the node's log records as durable on a majority (0: none yet).
    pub dtvlsn: u64,
    /// The node's election priority (0: never master).
    pub priority: u32,
}

impl Rank {
    /// The log position JE ranks by: `(dtvlsn, vlsn)` as (major, minor).
    ///
    /// JE reads a DTVLSN of 0 as unknown (a log written before DTVLSNs existed) and ranks it
    /// at `(vlsn, 0)`. Every harp log records its DTVLSN, so 0 means that no durable entry is
    /// recorded yet and ranks as such: JE's special case would put a shorter log of the same
    /// last term ahead of a longer one, and a voter holding the longer one never votes for
    /// it, so two voters could each insist on their own log forever (docs/protocol.md).
    ///
    /// ```
    /// use harp::election::Rank;
    /// let known = Rank { log_term: 1, vlsn: 7, dtvlsn: 5, priority: 1 };
    /// let none_yet = Rank { log_term: 1, vlsn: 10, dtvlsn: 0, priority: 1 };
    /// assert_eq!(known.log_position(), (5, 7));
    /// assert_eq!(none_yet.log_position(), (0, 10));
    /// assert!(known.cmp_rank(&none_yet).is_gt());
    /// ```
    pub const fn log_position(&self) -> (u64, u64) {
        (self.dtvlsn, self.vlsn)
    }

    /// Compares the last entries' terms, then JE's log positions, then priorities (higher
    /// wins each time).
    pub fn cmp_rank(&self, other: &Rank) -> Ordering {
        self.cmp_log(other).then_with(|| self.priority.cmp(&other.priority))
    }

    /// Compares the last entries only: their terms, then their VLSNs (Raft's "at least as
    /// up to date"). An arbiter's acknowledged position is compared this way: a log at or
    /// past `(log_term, vlsn)` holds the entry there.
    #[cfg_attr(target_pointer_width = "32", inline(always))]
    pub fn cmp_entries(&self, other: &Rank) -> Ordering {
        (self.log_term, self.vlsn).cmp(&(other.log_term, other.vlsn))
    }

    /// Compares logs only: the last entry's term, then JE's log position.
    pub fn cmp_log(&self, other: &Rank) -> Ordering {
        (self.log_term, self.log_position()).cmp(&(other.log_term, other.log_position()))
    }
}

/// Orders two candidates: by rank, and on a full tie the smaller name wins (deterministic).
fn cmp_candidates(a: (&str, &Rank), b: (&str, &Rank)) -> Ordering {
    a.1.cmp_rank(b.1).then_with(|| b.0.cmp(a.0))
}

/// Whom a voter whose own log position is `own` votes for, given the proposals it heard in
/// a term (usually its own among them).
///
/// Candidates are Electable members whose proposal has a priority above 0 and that hold
/// every entry the voter holds: their last entry's term and VLSN at least `own`'s (Raft's
/// "at least as up to date"; for an arbiter, the position it acknowledged). `own` is passed
/// apart from `heard`: a voter whose own slot changed during the election (an arbiter that
/// learned its own addition) no longer finds its proposal there, and must not compare
/// candidates with an empty log instead of its own. A voter
/// never helps elect a master that lacks entries it holds: they may be durable. Among them
/// the best-ranked (JE's order, [`Rank::cmp_rank`]) is chosen. JE's arbiter rule: an
/// arbiter's rank matters only when exactly one non-arbiter was heard; if the arbiter's log
/// is then ahead of that node's, no one is chosen this round (the lone node may lack entries
/// the arbiter acknowledged). The voter's own type does not change the rule, so a joining
/// node (not in `members` yet) chooses as any member does.
///
/// ```
/// use harp::election::{choose, Rank};
/// use harp::membership::{Member, Membership};
/// use harp::NodeType;
///
/// let mut group: Membership<3> = Membership::new();
/// let x = group.add(Member::new("x", NodeType::Electable, 1, 1).unwrap()).unwrap();
/// let arb = group.add(Member::new("arb", NodeType::Arbiter, 0, 2).unwrap()).unwrap();
/// let at = |vlsn| Rank { log_term: 1, vlsn, dtvlsn: 0, priority: 1 };
/// // The arbiter acknowledged VLSN 9: it never votes for x, whose log ends at 5.
/// assert_eq!(choose(at(9), &[(x, at(5)), (arb, at(9))], &group), None);
/// assert_eq!(choose(at(9), &[(x, at(9))], &group), Some(x));
/// ```
pub fn choose<const N: usize>(
    own: Rank,
    heard: &[(MemberId, Rank)],
    members: &Membership<N>,
) -> Option<MemberId> {
    let node = |id: MemberId| members.get(id);
    let name = |id: MemberId| node(id).map_or("", |m| m.name.as_str());
    let of_type =
        |t: NodeType| heard.iter().filter(move |(id, _)| node(*id).map(|m| m.node_type) == Some(t));
    // Last entries, not the rank: what a proposal says of DTVLSNs must never make a voter
    // help elect a log that lacks entries it holds (with JE's `(vlsn, 0)` for a DTVLSN of 0,
    // the group fuzz target found one elected so).
    let reaches_own = |rank: &Rank| rank.cmp_entries(&own).is_ge();
    let (best, best_rank) = of_type(NodeType::Electable)
        .filter(|(_, rank)| rank.priority > 0 && reaches_own(rank))
        .max_by(|(a, ra), (b, rb)| cmp_candidates((name(*a), ra), (name(*b), rb)))?;
    let lone_data_node = of_type(NodeType::Electable).count() == 1;
    let arbiter_ahead =
        of_type(NodeType::Arbiter).any(|(_, arbiter)| arbiter.cmp_entries(best_rank).is_gt());
    if lone_data_node && arbiter_ahead {
        return None;
    }
    Some(*best)
}
