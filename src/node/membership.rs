//! Membership changes in a node: the master's `change_membership` and the `GroupChange`s
//! members send it, changes applied in log order (and rebuilt from the base membership and
//! the log), and the notices that tell members without a log (monitors, arbiters) what
//! changed. The rules and their reasons: docs/protocol.md, "Membership changes".

use core::fmt;

use super::{Node, NodeEvent, Peer, Stream, ENTRY_MEMBERSHIP};
use crate::arith::{count, SaturatingU64};
use crate::membership::{Member, MemberId, MemberSet, Membership};
use crate::replication::LogStore;
use crate::storage::StableStore;
use crate::{GroupChangeType, MessageRef, NodeType, RepNodeRef};

/// Why a membership change was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ChangeError {
    /// Only the master changes the membership.
    NotMaster,
    /// The change is invalid or unsafe; the reason says why.
    Refused(ChangeRefusal),
    /// The log store refused the entry.
    Storage,
}

impl fmt::Display for ChangeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChangeError::NotMaster => f.write_str("not the master"),
            ChangeError::Refused(reason) => write!(f, "refused: {reason}"),
            ChangeError::Storage => f.write_str("the log store refused the entry"),
        }
    }
}

/// Why the master refused a membership change ([`Node::change_membership`]).
///
/// A reason is one byte; its text ([`ChangeRefusal::as_str`]) is linked only where it is
/// printed, and `defmt` logs the variant's name without storing it in flash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ChangeRefusal {
    /// An earlier change is not durable yet: one change at a time.
    ChangeInProgress,
    /// No entry of this master's term is durable yet, so a change of an earlier master may
    /// still be pending somewhere (Raft's rule for single-server changes).
    TermNotDurable,
    /// `Add` of a name that is already a member.
    AlreadyMember,
    /// `Remove` or `Update` of a name that is not a member.
    NotMember,
    /// The master cannot remove itself.
    MasterRemovesItself,
    /// The group already has as many members as the node's capacity.
    GroupFull,
    /// Another member already has this node id.
    NodeIdInUse,
    /// The name or host is longer than [`crate::membership::NAME_CAP`] bytes.
    NameTooLong,
    /// `Update` or `Remove` with a node id other than the member's (a name reused since
    /// names another member).
    NodeIdMismatch,
    /// The group would have no electable member.
    NoElectableMember,
    /// The new group would have no quorum of voters heard from lately.
    NoLiveQuorum,
    /// The change does not fit the membership entry's buffer.
    FieldsTooLong,
    /// `Update` of the master's own type: it would stop being master before the change is
    /// durable, and a group whose other members lack the change might elect no one. Hand
    /// mastership over first (a graceful shutdown), then change the member.
    MasterChangesItsType,
    /// `Update` of a type other than between Electable and Secondary: monitors and arbiters
    /// keep no log, so a member that gains or loses one is removed and added again.
    TypeChangeAcrossLog,
    /// `Add` of a name that a removed member had, with a node id below that member's, or
    /// with the same id as another type: node ids never go back, so a view that missed the
    /// removal tells a new member of the name from the old one (the same id is the same
    /// member, added back as it was).
    NodeIdBelowRemoved,
}

impl ChangeRefusal {
    /// The reason as text.
    ///
    /// ```
    /// use harp::node::ChangeRefusal;
    /// assert_eq!(ChangeRefusal::AlreadyMember.as_str(), "already a member");
    /// ```
    pub const fn as_str(self) -> &'static str {
        match self {
            ChangeRefusal::ChangeInProgress => "another membership change is in progress",
            ChangeRefusal::TermNotDurable => "no entry of this master's term is durable yet",
            ChangeRefusal::AlreadyMember => "already a member",
            ChangeRefusal::NotMember => "not a member",
            ChangeRefusal::MasterRemovesItself => "the master cannot remove itself",
            ChangeRefusal::GroupFull => "the group is full",
            ChangeRefusal::NodeIdInUse => "node id already in use",
            ChangeRefusal::NameTooLong => "name or host longer than 32 bytes",
            ChangeRefusal::NodeIdMismatch => "node id does not match the member",
            ChangeRefusal::NoElectableMember => "the group would have no electable member",
            ChangeRefusal::NoLiveQuorum => "the new group would have no quorum of live voters",
            ChangeRefusal::FieldsTooLong => "member fields too long",
            ChangeRefusal::MasterChangesItsType => {
                "the master cannot change its own type (hand mastership over first)"
            }
            ChangeRefusal::TypeChangeAcrossLog => {
                "a type changes only between electable and secondary (remove and add instead)"
            }
            ChangeRefusal::NodeIdBelowRemoved => {
                "a reused name needs a node id above its removed member's"
            }
        }
    }
}

impl fmt::Display for ChangeRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Applies to `members` the membership changes the log holds before `end`.
pub(super) fn fold_membership<L: LogStore, const N: usize>(
    members: &mut Membership<N>,
    log: &L,
    end: u64,
) {
    for_each_change(log, end, &mut |change_type, node| {
        let _ = members.apply(change_type, node);
    });
}

/// Calls `f` with each membership change the log holds before `end`, in log order.
fn for_each_change<L: LogStore>(
    log: &L,
    end: u64,
    f: &mut dyn FnMut(GroupChangeType, &RepNodeRef<'_>),
) {
    let mut v = log.first_vlsn();
    while v < end {
        if let Some(entry) = log.entry(v).filter(|e| e.entry_type == ENTRY_MEMBERSHIP) {
            if let Ok(MessageRef::GroupChange { change_type, node }) =
                crate::wire::decode_core(entry.data)
            {
                f(change_type, &node);
            }
        }
        v = v.plus(1);
    }
}

impl<S: StableStore, L: LogStore, const N: usize> Node<S, L, N> {
    /// Where this node's log holds the Add of the member `name` with `node_id`, as
    /// `(log_term, vlsn)` (the last one, if it was added more than once): what a node
    /// joining as that member is started with ([`new_joining`](Self::new_joining)). `None`
    /// if the log holds no such Add; a log compacted past it starts at a position past it,
    /// so a joiner restored from that log reaches it anyway.
    ///
    /// It reads the log back from its end, so it costs one read per entry after the Add.
    pub fn addition_of(&self, name: &str, node_id: u32) -> Option<(u64, u64)> {
        let first = self.log.first_vlsn().max(1);
        let mut v = self.log.last_vlsn();
        while v >= first {
            let entry = self.log.entry(v).filter(|e| e.entry_type == ENTRY_MEMBERSHIP);
            if let Some(entry) = entry {
                if let Ok(MessageRef::GroupChange { change_type: GroupChangeType::Add, node }) =
                    crate::wire::decode_core(entry.data)
                {
                    if node.name == name && node.node_id == node_id {
                        return Some((entry.meta.term, v));
                    }
                }
            }
            v = v.checked_sub(1)?;
        }
        None
    }

    /// As master: adds, removes or updates a member. The change is written to the log (every
    /// node applies it there, in log order) and takes effect at once; it is durable when
    /// [`NodeEvent::Durable`] passes its VLSN. Refused: one change at a time; the master
    /// cannot remove itself; a change that would leave no quorum of live voters.
    pub fn change_membership(
        &mut self,
        now: u64,
        change: GroupChangeType,
        node: &crate::RepNodeRef<'_>,
    ) -> Result<u64, ChangeError> {
        if !self.is_master() || self.shutdown.is_some() {
            return Err(ChangeError::NotMaster);
        }
        if self.change.is_some_and(|(v, _)| v > self.durable) {
            return Err(ChangeError::Refused(ChangeRefusal::ChangeInProgress));
        }
        // Raft's fix of single-server changes: a new master must first make an entry of its
        // own term durable, or a change from an older configuration may still be pending
        // somewhere and two changes could leave two majorities that do not intersect.
        let term = self.election.term();
        if self.log.meta(self.durable).is_none_or(|m| m.term != term) {
            return Err(ChangeError::Refused(ChangeRefusal::TermNotDurable));
        }
        self.check_change(now, change, node).map_err(ChangeError::Refused)?;
        let mut buf = [0u8; 160];
        let len = MessageRef::GroupChange { change_type: change, node: *node }
            .encode_into(&mut buf)
            .map_err(|_| ChangeError::Refused(ChangeRefusal::FieldsTooLong))?;
        let before = self.log.last_vlsn();
        let appended = self.append_local(ENTRY_MEMBERSHIP, buf.get(..len).unwrap_or_default());
        let vlsn = match appended {
            Ok(vlsn) => vlsn,
            // In the log (and applied) but not yet persisted: it is still the change in flight.
            Err(_) if self.log.last_vlsn() > before => self.log.last_vlsn(),
            Err(_) => return Err(ChangeError::Storage),
        };
        self.change = Some((vlsn, None));
        self.send_membership_history(now);
        Ok(vlsn)
    }

    fn check_change(
        &self,
        now: u64,
        change: GroupChangeType,
        node: &crate::RepNodeRef<'_>,
    ) -> Result<(), ChangeRefusal> {
        let current = self.election.members();
        let present = current.id_of(node.name);
        match (change, present) {
            (GroupChangeType::Add, Some(_)) => return Err(ChangeRefusal::AlreadyMember),
            (GroupChangeType::Add, None) => {
                let former = current.known_id_of(node.name).and_then(|id| current.known(id));
                // The removed member's id is above, or the same but as another member.
                let not_newer = |m: &Member| {
                    m.node_id > node.node_id
                        || (m.node_id == node.node_id && m.node_type != node.node_type)
                };
                if former.is_some_and(not_newer) {
                    return Err(ChangeRefusal::NodeIdBelowRemoved);
                }
            }
            (GroupChangeType::Remove | GroupChangeType::Update, None) => {
                return Err(ChangeRefusal::NotMember)
            }
            (GroupChangeType::Remove, Some(id)) if id == self.election.me() => {
                return Err(ChangeRefusal::MasterRemovesItself)
            }
            (GroupChangeType::Remove, Some(id))
                if current.get(id).is_some_and(|m| m.node_id != node.node_id) =>
            {
                return Err(ChangeRefusal::NodeIdMismatch)
            }
            (GroupChangeType::Update, Some(id)) => {
                let old = current.get(id).map(|m| m.node_type);
                if old != Some(node.node_type) {
                    if id == self.election.me() {
                        return Err(ChangeRefusal::MasterChangesItsType);
                    }
                    if !(old.is_some_and(holds_log) && holds_log(node.node_type)) {
                        return Err(ChangeRefusal::TypeChangeAcrossLog);
                    }
                }
            }
            _ => {}
        }
        let mut next = current.clone();
        next.apply(change, node).map_err(|e| match e {
            crate::membership::MembershipError::Full => ChangeRefusal::GroupFull,
            crate::membership::MembershipError::DuplicateNodeId => ChangeRefusal::NodeIdInUse,
            crate::membership::MembershipError::NameTooLong => ChangeRefusal::NameTooLong,
            _ => ChangeRefusal::NodeIdMismatch,
        })?;
        if !next.iter().any(|(_, m)| m.is_candidate()) {
            return Err(ChangeRefusal::NoElectableMember);
        }
        // An added voter is counted as about to join; otherwise only voters heard lately.
        let joining = usize::from(
            change == GroupChangeType::Add
                && matches!(node.node_type, NodeType::Electable | NodeType::Arbiter),
        );
        let live = self.election.live_voters(&next, now).saturating_add(joining);
        if live < next.majority() {
            return Err(ChangeRefusal::NoLiveQuorum);
        }
        Ok(())
    }

    pub(super) fn on_group_change(
        &mut self,
        now: u64,
        from: MemberId,
        change: GroupChangeType,
        node: &crate::RepNodeRef<'_>,
    ) {
        // A member with a log sends a `GroupChange` only as a notice, to a peer its view
        // takes for a member without one; requests come from members without a log (JE's
        // group admin). A member without a log learns changes from its master (or, while it
        // knows none, from any member that holds a log); a notice to a member with a log
        // comes from a view that lacks this member's type, and is ignored.
        if self.election.members().known(from).is_some_and(Self::stores_data) {
            if self.me_stores_data() {
                count(&mut self.stats.ignored.misdirected_notices);
            } else if self.election.master().is_none_or(|m| m == from) {
                self.on_membership_notice(change, node);
            }
            return;
        }
        if !self.is_master() {
            count(&mut self.stats.ignored.not_master);
            self.answer_change(from, false);
            return;
        }
        match self.change_membership(now, change, node) {
            Ok(vlsn) => self.change = Some((vlsn, Some(from))),
            Err(_) => self.answer_change(from, false),
        }
    }

    pub(super) fn answer_change(&mut self, to: MemberId, accepted: bool) {
        if self.change_answers.push_back((to, accepted)).is_err() {
            count(&mut self.stats.pending_overflows);
        }
    }

    /// Applies the membership change recorded at `vlsn`.
    pub(super) fn apply_membership_entry(&mut self, vlsn: u64, data: &[u8]) {
        let Ok(MessageRef::GroupChange { change_type, node }) = crate::wire::decode_core(data)
        else {
            return self.malformed();
        };
        let mut next = self.election.members().clone();
        if next.apply(change_type, &node).is_err() {
            return self.malformed();
        }
        self.install_members(next);
        self.emit(NodeEvent::MembershipChanged { vlsn });
        let now = self.history_at;
        self.send_membership_history(now);
    }

    /// Recomputes the membership from the base one and every change in the log.
    pub(super) fn replay_membership(&mut self) {
        let mut members = self.base.clone();
        fold_membership(&mut members, &self.log, self.log.last_vlsn().plus(1));
        if !members.same_members(self.election.members()) {
            self.install_members(members);
        }
    }

    /// Hands a new membership to the election and resets what is kept per member slot.
    fn install_members(&mut self, members: Membership<N>) {
        let synced = self.synced;
        for (i, peer) in self.peers.iter_mut().enumerate() {
            let id = MemberId::new(u8::try_from(i).unwrap_or(u8::MAX));
            let same = match (self.election.members().get(id), members.get(id)) {
                (Some(a), Some(b)) => a.name == b.name,
                (None, None) => true,
                _ => false,
            };
            if !same {
                *peer = Peer { next: synced.plus(1), need_sync: true, ..Peer::default() };
            }
            // A link is forgotten only when its slot now holds someone else: the link to a
            // removed member stays (its removal may be undone), it just gets no stream.
            let replaced = match (self.election.members().known(id), members.known(id)) {
                (Some(a), Some(b)) => a.name != b.name,
                _ => false,
            };
            if replaced {
                self.inbound.remove(id);
                self.outbound.remove(id);
                self.greet.remove(id);
            }
        }
        let was_member = self.election.members().get(self.election.me()).is_some();
        // A joining node is found by name and node id (a member its name had before, not
        // removed in this view yet, is someone else): until its Add applies it sits in a
        // slot no member has had, or in none once every slot has been used (never in another
        // member's, nor in a removed member's, which its log may have given to a member).
        if let Some(own) = self.election.joining() {
            let slot =
                members.id_of_member(&own.name, own.node_id).or_else(|| members.unused_slot());
            self.election.set_me(slot.unwrap_or(MemberId::UNPLACED));
        }
        self.election.set_members(members);
        if was_member && self.election.members().get(self.election.me()).is_none() {
            self.stream = Stream::default();
            self.emit(NodeEvent::Removed);
        }
        self.absorb_pending_election_events();
    }

    fn absorb_pending_election_events(&mut self) {
        while let Some(event) = self.election.poll_event() {
            self.emit(NodeEvent::Election(event));
        }
    }

    /// As master: every membership change in the log goes, in log order, to each member
    /// that keeps no log (monitors, arbiters), so they learn of added and removed members.
    /// Applying the history again is harmless: changes are idempotent, and a removal names
    /// its member by node id too, so an old member's removal leaves a reused name's new one.
    pub(super) fn send_membership_history(&mut self, now: u64) {
        self.history_at = now;
        let mut targets = self.election.others(|m| !Self::stores_data(m));
        while let Some(id) = targets.pop_first() {
            self.send_history_to(id);
        }
    }

    /// Queues the membership history for `peer`: if the log was compacted (it may have
    /// dropped changes the peer missed), first the base membership's members that no change
    /// in the log names (each as an `Add`, or a `Remove` if removed; their state has not
    /// changed since, and announcing an older state of a member the log changes would undo
    /// newer changes the peer knows), then every change in the log.
    pub(super) fn send_history_to(&mut self, peer: MemberId) {
        if !self.me_stores_data() {
            return;
        }
        let first = self.log.first_vlsn();
        let mut unchanged = MemberSet::EMPTY;
        // Only a master's base: its log holds every durable change, so the base's state of
        // a member no change in it names is that member's latest; another member's log may
        // lack later changes and its base would undo them.
        if first > 1 && self.is_master() {
            unchanged = self.base.all_known();
            let base = &self.base;
            for_each_change(&self.log, self.log.last_vlsn().plus(1), &mut |_, node| {
                if let Some(id) = base.known_id_of(node.name) {
                    unchanged.remove(id);
                }
            });
        }
        // One cursor per peer: a peer queued again starts over from the base.
        if let Some(cursor) = self.history_to.get_mut(peer.index()) {
            *cursor = Some(first);
        }
        if let Some(slots) = self.history_base.get_mut(peer.index()) {
            *slots = unchanged;
        }
    }

    /// The next notice of the base membership: its recipient and the base slot announced,
    /// one that holds a member (or a removed one). Every change the base holds is durable
    /// (only durable entries are compacted).
    pub(super) fn next_base_notice(&mut self) -> Option<(MemberId, MemberId)> {
        if !self.is_master() {
            self.history_base = [MemberSet::EMPTY; N]; // a master's base only (see above)
            return None;
        }
        for (i, slots) in self.history_base.iter_mut().enumerate() {
            let to = MemberId::new(u8::try_from(i).unwrap_or(u8::MAX));
            if !self.outbound.contains(to) {
                *slots = MemberSet::EMPTY; // queued again when it connects
            } else if let Some(slot) = slots.pop_first() {
                if self.base.known(slot).is_some() {
                    return Some((to, slot));
                }
            }
        }
        None
    }

    /// The recipient and VLSN of the next `GroupChange` notice of the membership history.
    /// Only durable changes are announced: a member without a log could not undo a change
    /// that a failover drops. A cursor that reaches entries not yet durable waits there,
    /// so a change is announced as soon as it is durable (a log compacted soon after
    /// would otherwise no longer hold it at the next periodic announcement).
    pub(super) fn next_history_notice(&mut self) -> Option<(MemberId, u64)> {
        let last = self.log.last_vlsn().min(self.durable);
        for (i, cursor) in self.history_to.iter_mut().enumerate() {
            let Some(mut v) = cursor.take() else { continue };
            while v <= last && self.log.entry(v).is_some_and(|e| e.entry_type != ENTRY_MEMBERSHIP) {
                v = v.plus(1);
            }
            let to = MemberId::new(u8::try_from(i).unwrap_or(u8::MAX));
            if !self.outbound.contains(to) {
                continue;
            }
            if v <= last {
                *cursor = Some(v.plus(1));
                return Some((to, v));
            }
            if v <= self.log.last_vlsn() {
                *cursor = Some(v); // not durable yet
            }
        }
        None
    }

    /// A `GroupChange` from the master to a member that keeps no log: a notice to apply.
    fn on_membership_notice(&mut self, change: GroupChangeType, node: &crate::RepNodeRef<'_>) {
        let mut next = self.election.members().clone();
        if next.apply(change, node).is_ok() && !next.same_members(self.election.members()) {
            self.install_members(next);
            self.emit(NodeEvent::MembershipChanged { vlsn: 0 });
        }
    }

    /// The current membership (the configured one with every change in the log applied).
    pub fn members(&self) -> &Membership<N> {
        self.election.members()
    }
}

/// Whether members of this type keep the replicated log (Electable and Secondary).
pub(crate) fn holds_log(node_type: NodeType) -> bool {
    matches!(node_type, NodeType::Electable | NodeType::Secondary)
}
