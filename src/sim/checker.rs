//! The invariants checked after every simulated step.

use crate::election::Rank;
use crate::membership::{MemberId, Membership};
use crate::storage::ElectionRecord;
use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

/// Ground truth gathered from every node's stable store and events.
pub struct Checker {
    /// Member index by node id.
    node_ids: BTreeMap<u32, usize>,
    voters: Vec<usize>,
    quorum: usize,
    designated: Option<usize>,
    /// term -> the node that became master of it.
    masters: BTreeMap<u64, usize>,
    /// Per node: the last record it wrote.
    last_record: Vec<Option<ElectionRecord>>,
    /// Per node: the highest term it ever reported.
    last_term: Vec<u64>,
    /// (term, candidate) -> voters whose store holds that vote.
    votes: BTreeMap<(u64, usize), Vec<usize>>,
    /// The candidate a fault-free first election must choose.
    best: Option<usize>,
}

impl Checker {
    /// A checker for `group`.
    pub fn new<const N: usize>(group: &Membership<N>, designated: Option<MemberId>) -> Self {
        let voters: Vec<usize> =
            group.iter().filter(|(_, m)| m.is_voter()).map(|(id, _)| id.index()).collect();
        Checker {
            node_ids: group.iter().map(|(id, m)| (m.node_id, id.index())).collect(),
            quorum: voters.len() / 2 + 1,
            voters,
            designated: designated.map(MemberId::index),
            masters: BTreeMap::new(),
            last_record: alloc::vec![None; group.len()],
            last_term: alloc::vec![0; group.len()],
            votes: BTreeMap::new(),
            best: None,
        }
    }

    /// Remembers who the best-ranked candidate is before anything happens.
    pub fn record_initial_ranks<const N: usize>(
        &mut self,
        group: &Membership<N>,
        logs: impl Iterator<Item = (u64, u64)>,
    ) {
        let heard: heapless::Vec<(MemberId, Rank), N> = group
            .iter()
            .zip(logs)
            .filter(|((_, m), _)| m.is_voter())
            .map(|((id, m), (vlsn, dtvlsn))| {
                (id, Rank { log_term: 0, vlsn, dtvlsn, priority: m.priority })
            })
            .collect();
        self.best = crate::election::choose(&heard, group).map(MemberId::index);
    }

    /// A node wrote a record: terms never decrease, a vote in a term never changes.
    pub fn on_write(&mut self, node: usize, record: ElectionRecord) -> Result<(), String> {
        let slot = self.last_record.get_mut(node).ok_or("unknown node")?;
        if let Some(last) = *slot {
            if record.term < last.term {
                return Err(format!(
                    "n{node} persisted term {} after term {}",
                    record.term, last.term
                ));
            }
            if record.term == last.term && last.vote.is_some() && record.vote != last.vote {
                return Err(format!(
                    "n{node} changed its vote in term {} from {:?} to {:?}",
                    record.term, last.vote, record.vote
                ));
            }
        }
        *slot = Some(record);
        if let Some(candidate) = record.vote.and_then(|id| self.node_ids.get(&id).copied()) {
            let voters = self.votes.entry((record.term, candidate)).or_default();
            if !voters.contains(&node) {
                voters.push(node);
            }
        }
        Ok(())
    }

    /// A node reports its current term: it never goes backwards, across restarts too.
    pub fn on_term(&mut self, node: usize, term: u64) -> Result<(), String> {
        let is_voter = self.voters.contains(&node);
        let last = self.last_term.get_mut(node).ok_or("unknown node")?;
        // Non-voters keep no stable state: their term restarts at 0 after a crash.
        if is_voter && term < *last {
            return Err(format!("n{node} went back from term {last} to term {term}"));
        }
        *last = term;
        Ok(())
    }

    /// A node became master of `term`: no one else ever was, and a quorum voted for it.
    pub fn on_master(&mut self, node: usize, term: u64) -> Result<(), String> {
        if let Some(&other) = self.masters.get(&term) {
            if other != node {
                return Err(format!("two masters in term {term}: n{other} and n{node}"));
            }
        }
        if self.masters.is_empty() {
            if let Some(best) = self.best.filter(|&b| b != node) {
                return Err(format!(
                    "first (fault-free) election chose n{node}, the best-ranked is n{best}"
                ));
            }
        }
        self.masters.insert(term, node);
        let votes = self.votes.get(&(term, node)).map_or(0, Vec::len);
        let needed =
            if self.designated == Some(node) && self.voters.len() == 2 { 1 } else { self.quorum };
        if votes < needed {
            return Err(format!(
                "n{node} became master of term {term} with {votes} votes, quorum is {needed}"
            ));
        }
        Ok(())
    }
}
