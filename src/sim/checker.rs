//! The invariants checked after every simulated step.

use super::stores::{LogOp, SimEntry, SimLog};
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
    designated: Option<usize>,
    /// term -> the node that became master of it.
    masters: BTreeMap<u64, usize>,
    /// Per node: the last record it wrote.
    last_record: Vec<Option<ElectionRecord>>,
    /// Per node: the highest term it ever reported.
    last_term: Vec<u64>,
    /// (term, candidate) -> voters that granted it their vote: its own persisted vote, and
    /// the grants other voters sent to it.
    votes: BTreeMap<(u64, usize), Vec<usize>>,
    /// (term, voter) -> the node its grant in that term went to.
    grants: BTreeMap<(u64, usize), usize>,
    /// The candidate a fault-free first election must choose.
    best: Option<usize>,
    /// The durable prefix of the log: every entry any master ever reported durable, with
    /// the term of the master that first reported it.
    durable: Vec<(SimEntry, u64)>,
}

impl Checker {
    /// A new machine at host index `index`, known in votes by `node_id`.
    pub(super) fn add_host(&mut self, node_id: u32, index: usize) {
        self.node_ids.insert(node_id, index);
        if self.last_record.len() <= index {
            self.last_record.resize(index + 1, None);
            self.last_term.resize(index + 1, 0);
        }
    }

    /// A checker for `group`.
    pub fn new<const N: usize>(group: &Membership<N>, designated: Option<MemberId>) -> Self {
        Checker {
            node_ids: group.iter().map(|(id, m)| (m.node_id, id.index())).collect(),
            designated: designated.map(MemberId::index),
            masters: BTreeMap::new(),
            last_record: alloc::vec![None; group.len()],
            last_term: alloc::vec![0; group.len()],
            votes: BTreeMap::new(),
            grants: BTreeMap::new(),
            best: None,
            durable: Vec::new(),
        }
    }

    /// Remembers who the best-ranked candidate is before anything happens.
    pub fn record_initial_ranks<const N: usize>(
        &mut self,
        group: &Membership<N>,
        logs: impl Iterator<Item = (u64, u64, u64)>,
    ) {
        let heard: heapless::Vec<(MemberId, Rank), N> = group
            .iter()
            .zip(logs)
            .filter(|((_, m), _)| m.is_voter())
            .map(|((id, m), (log_term, vlsn, dtvlsn))| {
                (id, Rank { log_term, vlsn, dtvlsn, priority: m.priority })
            })
            .collect();
        // Every voter's choice when all hear all: the first master must be the one they agree on.
        let choices: Vec<Option<MemberId>> =
            heard.iter().map(|(_, own)| crate::election::choose(*own, &heard, group)).collect();
        let agreed =
            choices.first().copied().flatten().filter(|b| choices.iter().all(|c| *c == Some(*b)));
        self.best = agreed.map(MemberId::index);
    }

    /// A node wrote a record: terms never decrease, a vote in a term never changes. A vote
    /// for itself counts for it here; a vote for another counts when its grant is sent
    /// ([`Checker::on_grant`]): the record names the candidate by the node id the voter's view
    /// gives its name, and a view older than a reuse of that name gives the old member's.
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
        if record.vote.and_then(|id| self.node_ids.get(&id)) == Some(&node) {
            self.count_vote(record.term, node, node);
        }
        Ok(())
    }

    /// `voter` sent a granted vote in `term` to the machine `candidate`: the vote the
    /// candidate counts. A voter grants one machine per term.
    pub fn on_grant(&mut self, voter: usize, term: u64, candidate: usize) -> Result<(), String> {
        if let Some(&other) = self.grants.get(&(term, voter)).filter(|&&c| c != candidate) {
            return Err(format!(
                "n{voter} granted its vote in term {term} to n{other} and to n{candidate}"
            ));
        }
        self.grants.insert((term, voter), candidate);
        self.count_vote(term, voter, candidate);
        Ok(())
    }

    fn count_vote(&mut self, term: u64, voter: usize, candidate: usize) {
        let voters = self.votes.entry((term, candidate)).or_default();
        if !voters.contains(&voter) {
            voters.push(voter);
        }
    }

    /// A node reports its current term: while it votes, it never goes backwards, across
    /// restarts too. Non-voters keep no stable state (their term restarts after a crash),
    /// so a term learnt while not voting binds nothing: a member turned Secondary whose
    /// change a crash then lost votes again from the term it last persisted as a voter.
    pub fn on_term(&mut self, node: usize, term: u64, voting: bool) -> Result<(), String> {
        let last = self.last_term.get_mut(node).ok_or("unknown node")?;
        if voting {
            if term < *last {
                return Err(format!("n{node} went back from term {last} to term {term}"));
            }
            *last = term;
        }
        Ok(())
    }

    /// A node became master of `term` with `members` as its group: no one else ever was, and
    /// a quorum of that group's voters voted for it.
    pub fn on_master<const N: usize>(
        &mut self,
        node: usize,
        term: u64,
        members: &Membership<N>,
    ) -> Result<(), String> {
        if let Some(&other) = self.masters.get(&term) {
            if other != node {
                return Err(format!("two masters in term {term}: n{other} and n{node}"));
            }
            // One that stepped down (or restarted) has given the term up: winning it again
            // with late votes would make a master the group may have replaced.
            return Err(format!("n{node} became master of term {term} a second time"));
        }
        if self.masters.is_empty() {
            if let Some(best) = self.best.filter(|&b| b != node) {
                return Err(format!(
                    "first (fault-free) election chose n{node}, the best-ranked is n{best}"
                ));
            }
        }
        self.masters.insert(term, node);
        let voters: Vec<usize> = members
            .iter()
            .filter(|(_, m)| m.is_voter())
            .filter_map(|(_, m)| self.node_ids.get(&m.node_id).copied())
            .collect();
        let votes = self
            .votes
            .get(&(term, node))
            .map_or(0, |v| v.iter().filter(|voter| voters.contains(voter)).count());
        let designated = self.designated == Some(node) && voters.len() == 2;
        let needed = if designated { 1 } else { voters.len() / 2 + 1 };
        if votes < needed {
            return Err(format!(
                "n{node} became master of term {term} with {votes} votes, quorum is {needed}"
            ));
        }
        Ok(())
    }

    /// How many entries were reported durable.
    pub fn durable_entries(&self) -> u64 {
        self.durable.len() as u64
    }

    /// The master of `term` reported entries up to `vlsn` durable: the DTVLSN never goes
    /// back, and the entries are the ones reported before (none changed).
    pub fn on_durable(
        &mut self,
        node: usize,
        term: u64,
        vlsn: u64,
        log: &SimLog,
    ) -> Result<(), String> {
        let known = self.durable.len() as u64;
        if vlsn < known {
            return Err(format!("n{node} reported DTVLSN {vlsn} after {known} was reported"));
        }
        // Entries already recorded cannot have changed on this master without an append or a
        // truncation, which `on_log_op` checks; only the new ones are read.
        for v in known.saturating_add(1)..=vlsn {
            let Some(entry) = log.get(v) else {
                return Err(format!("n{node} reported VLSN {v} durable but does not hold it"));
            };
            match self.durable.get((v - 1) as usize) {
                Some((d, _)) if d != entry => {
                    return Err(format!(
                        "durable entry {v} changed: n{node} holds {entry:?}, was {d:?}"
                    ))
                }
                Some(_) => {}
                None => self.durable.push((entry.clone(), term)),
            }
        }
        Ok(())
    }

    /// A node became master of `term`: its log holds every entry a master of that term or
    /// an earlier one reported durable, unchanged (Raft's leader completeness). An entry
    /// reported durable in a later term may be missing: a candidate frozen with a vote for
    /// its term waiting in its socket wins that term after the group has moved on, and
    /// steps down once it hears the later term. It makes nothing durable meanwhile: every
    /// quorum it could gather holds a member of the quorum that made the later entries
    /// durable, which has moved past its term and refuses it (were it otherwise,
    /// `on_durable` would see a durable entry change).
    pub fn on_new_master(&self, node: usize, term: u64, log: &SimLog) -> Result<(), String> {
        for (i, (d, reported_in)) in self.durable.iter().enumerate() {
            let v = i as u64 + 1;
            if *reported_in <= term && log.get(v) != Some(d) {
                return Err(format!(
                    "lost durable entry {v}: new master n{node} of term {term} holds {:?}",
                    log.get(v)
                ));
            }
        }
        Ok(())
    }

    /// A node's log changed: no gaps, terms never go back along a log, no durable entry
    /// overwritten or truncated.
    pub fn on_log_op(&self, node: usize, op: &LogOp) -> Result<(), String> {
        let durable = |v: u64| {
            self.durable.get(usize::try_from(v.checked_sub(1)?).ok()?).map(|(entry, _)| entry)
        };
        match op {
            LogOp::Gap { vlsn } => Err(format!("n{node} tried to append at {vlsn}, leaving a gap")),
            // A replica cut off with a deposed master may still take that master's entries
            // at a durable VLSN (it is replaced when it rejoins, and its older log term keeps
            // it from winning); but an entry of the same term at the same VLSN is the same
            // entry (log matching).
            LogOp::Append { vlsn, entry, term_before } if entry.meta.term < *term_before => {
                Err(format!(
                    "n{node} appended {entry:?} at {vlsn} after an entry of term {term_before}"
                ))
            }
            LogOp::Append { vlsn, entry, .. } => match durable(*vlsn) {
                Some(d) if d.meta.term == entry.meta.term && d != entry => Err(format!(
                    "n{node} holds {entry:?} at durable VLSN {vlsn} in its term, durable is {d:?}"
                )),
                _ => Ok(()),
            },
            LogOp::Truncate { from, first } => match durable(*from) {
                Some(d) if first.as_ref() == Some(d) => {
                    Err(format!("n{node} truncated durable entry {from}"))
                }
                _ => Ok(()),
            },
        }
    }

    /// Node `node`'s log `old` is replaced by one compacted through `prefix.len()`, with
    /// `prefix` as its history: the prefix must be durable history (every entry reported
    /// durable in it unchanged), and `old` must not lose a durable entry past it.
    pub fn on_restore(&self, node: usize, old: &SimLog, prefix: &[SimEntry]) -> Result<(), String> {
        for (i, ((d, _), p)) in self.durable.iter().zip(prefix).enumerate() {
            if d != p {
                return Err(format!(
                    "n{node} restored to a point past VLSN {}, which is not the durable entry",
                    i + 1
                ));
            }
        }
        let point = prefix.len();
        for (i, ((d, _), o)) in self.durable.iter().zip(&old.entries).enumerate().skip(point) {
            if d == o {
                return Err(format!("n{node}'s restore discarded durable entry {}", i + 1));
            }
        }
        Ok(())
    }

    /// An arbiter acknowledged the entry at `position` (log term, VLSN): its persisted
    /// record must already promise that position or a later one.
    pub fn on_arbiter_ack(
        &self,
        node: usize,
        position: (u64, u64),
        persisted: (u64, u64),
    ) -> Result<(), String> {
        if persisted < position {
            return Err(format!(
                "arbiter n{node} acknowledged {position:?} with only {persisted:?} persisted"
            ));
        }
        Ok(())
    }

    /// A replica acknowledged `vlsn`: it must have persisted it.
    pub fn on_ack(&self, node: usize, vlsn: u64, log: &SimLog) -> Result<(), String> {
        if vlsn > log.synced_vlsn() {
            return Err(format!("n{node} acked {vlsn} with only {} persisted", log.synced_vlsn()));
        }
        Ok(())
    }
}
