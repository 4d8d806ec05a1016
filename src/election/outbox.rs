//! The queue of messages an election wants sent, kept as small intents (no strings) and
//! rendered into [`MessageRef`](crate::MessageRef)s borrowing the membership's names.

use crate::membership::{MemberId, MemberSet};

/// How many envelopes the outbox holds; a broadcast is one envelope. Every input produces at
/// most three, so a caller that drains after each input never fills it.
pub const OUTBOX_CAPACITY: usize = 8;

/// A message the election will send, before names are filled in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub(crate) enum Outgoing {
    /// Carries the node's rank as of when it is sent.
    Proposal {
        term: u64,
    },
    /// The extension that carries the term of the node's last entry with its proposal.
    LogTerm {
        term: u64,
    },
    /// "Would you join `term`?" (extension 16, `PreProposal`), before a voter starts it, or
    /// (`granted`) "yes, I would" (extension 17, `PreVote`).
    PreVote {
        granted: bool,
        term: u64,
    },
    Vote {
        granted: bool,
        term: u64,
    },
    Result {
        master: MemberId,
        term: u64,
    },
    Heartbeat {
        master_vlsn: u64,
        timestamp_ms: u64,
    },
    HeartbeatResponse {
        replica_vlsn: u64,
        timestamp_ms: u64,
    },
}

#[derive(Debug, Clone, Copy)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
struct Envelope {
    to: MemberSet,
    msg: Outgoing,
}

/// A bounded FIFO of envelopes; a full outbox refuses (and the caller counts it).
#[derive(Debug, Default)]
pub(crate) struct Outbox {
    queue: heapless::Deque<Envelope, OUTBOX_CAPACITY>,
}

impl Outbox {
    /// Queues `msg` for every member of `to`; false if the outbox is full.
    pub(crate) fn push(&mut self, to: MemberSet, msg: Outgoing) -> bool {
        to.is_empty() || self.queue.push_back(Envelope { to, msg }).is_ok()
    }

    /// The next (recipient, message), in the order they were queued.
    #[cfg_attr(target_pointer_width = "32", inline(always))]
    pub(crate) fn pop(&mut self) -> Option<(MemberId, Outgoing)> {
        loop {
            let front = self.queue.front_mut()?;
            let msg = front.msg;
            if let Some(to) = front.to.pop_first() {
                if front.to.is_empty() {
                    self.queue.pop_front();
                }
                return Some((to, msg));
            }
            self.queue.pop_front();
        }
    }

    /// The next (recipient, message) without removing it.
    pub(crate) fn peek(&self) -> Option<(MemberId, Outgoing)> {
        self.queue.iter().find_map(|e| {
            let mut to = e.to;
            to.pop_first().map(|id| (id, e.msg))
        })
    }

    /// Whether nothing is waiting.
    pub(crate) fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
}
