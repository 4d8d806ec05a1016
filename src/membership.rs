//! The group: who its members are, what each may do, and how many make a quorum.
//!
//! A [`Membership`] is a fixed-capacity list of [`Member`]s (`N` at most 32). Members are
//! addressed inside the core by [`MemberId`], their index in the list; the wire names them by
//! their `name`. Only Electable nodes and Arbiters vote and count toward quorums.

use crate::NodeType;
use core::fmt;
use heapless::String;

/// The longest member or group name, in bytes.
pub const NAME_CAP: usize = 32;

/// A member's index in its [`Membership`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct MemberId(u8);

impl MemberId {
    /// No slot: where a joining node sits while its Add has not placed it and the group has
    /// no free slot. No membership holds it and no [`MemberSet`] contains it.
    pub const UNPLACED: MemberId = MemberId(u8::MAX);

    /// The id of the member at `index`.
    pub const fn new(index: u8) -> Self {
        MemberId(index)
    }

    /// The member's index in its membership.
    pub const fn index(self) -> usize {
        self.0 as usize
    }
}

impl fmt::Display for MemberId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// One member of the group.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Member {
    /// The name the wire uses for this node (unique in the group).
    pub name: String<NAME_CAP>,
    /// What the node may do.
    pub node_type: NodeType,
    /// Election priority: higher wins a rank tie; 0 never becomes master.
    pub priority: u32,
    /// A stable numeric id (unique in the group); persisted votes name members by it.
    pub node_id: u32,
    /// Where the node listens (for hosted transports; empty when unused).
    pub host: String<NAME_CAP>,
    /// The port it listens on (0 when unused).
    pub port: u16,
}

impl Member {
    /// No member: what a slot briefly holds while its member moves.
    const VACANT: Member = Member {
        name: String::new(),
        node_type: NodeType::Monitor,
        priority: 0,
        node_id: 0,
        host: String::new(),
        port: 0,
    };

    /// A member; fails if the name is longer than [`NAME_CAP`].
    #[cfg_attr(target_pointer_width = "32", inline(always))]
    pub fn new(
        name: &str,
        node_type: NodeType,
        priority: u32,
        node_id: u32,
    ) -> Result<Self, MembershipError> {
        let name = String::try_from(name).map_err(|_| MembershipError::NameTooLong)?;
        Ok(Member { name, node_type, priority, node_id, host: String::new(), port: 0 })
    }

    /// The same member, listening at `host:port`.
    pub fn with_address(mut self, host: &str, port: u16) -> Result<Self, MembershipError> {
        self.host = String::try_from(host).map_err(|_| MembershipError::NameTooLong)?;
        self.port = port;
        Ok(self)
    }

    /// The member a `GroupChange` describes. RepNode has no priority: an Electable member
    /// added this way gets priority 1, any other 0.
    pub fn from_rep_node(node: &crate::RepNodeRef<'_>) -> Result<Self, MembershipError> {
        let priority = u32::from(node.node_type == NodeType::Electable);
        Member::new(node.name, node.node_type, priority, node.node_id)?
            .with_address(node.host, node.port)
    }

    /// This member as the wire's RepNode.
    pub fn as_rep_node(&self) -> crate::RepNodeRef<'_> {
        crate::RepNodeRef {
            name: &self.name,
            node_type: self.node_type,
            host: &self.host,
            port: self.port,
            node_id: self.node_id,
        }
    }

    /// Votes in elections and counts toward quorums (Electable and Arbiter).
    #[cfg_attr(target_pointer_width = "32", inline(never))]
    pub fn is_voter(&self) -> bool {
        matches!(self.node_type, NodeType::Electable | NodeType::Arbiter)
    }

    /// May become master: Electable with a priority above 0.
    pub fn is_candidate(&self) -> bool {
        self.node_type == NodeType::Electable && self.priority > 0
    }
}

/// Why a membership could not be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum MembershipError {
    /// More members than the capacity `N` (or than 32).
    Full,
    /// A name longer than [`NAME_CAP`] bytes.
    NameTooLong,
    /// Two members with the same name.
    DuplicateName,
    /// Two members with the same node id.
    DuplicateNodeId,
    /// No member by that name (or with that node id).
    NotAMember,
}

impl fmt::Display for MembershipError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MembershipError::Full => "membership is full",
            MembershipError::NameTooLong => "name longer than 32 bytes",
            MembershipError::DuplicateName => "two members share a name",
            MembershipError::DuplicateNodeId => "two members share a node id",
            MembershipError::NotAMember => "no such member",
        })
    }
}

/// A set of members, one bit per [`MemberId`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct MemberSet(u32);

impl MemberSet {
    /// No members.
    pub const EMPTY: MemberSet = MemberSet(0);

    /// Adds `id`; ids above 31 are never members of a set.
    #[cfg_attr(target_pointer_width = "32", inline(never))]
    pub fn insert(&mut self, id: MemberId) {
        self.0 |= 1u32.checked_shl(u32::from(id.0)).unwrap_or(0);
    }

    /// Removes `id`.
    pub fn remove(&mut self, id: MemberId) {
        self.0 &= !1u32.checked_shl(u32::from(id.0)).unwrap_or(0);
    }

    /// Whether `id` is in the set.
    #[cfg_attr(target_pointer_width = "32", inline(always))]
    pub fn contains(self, id: MemberId) -> bool {
        self.0 & 1u32.checked_shl(u32::from(id.0)).unwrap_or(0) != 0
    }

    /// How many members are in the set.
    #[cfg_attr(target_pointer_width = "32", inline(never))]
    pub fn len(self) -> usize {
        self.0.count_ones() as usize
    }

    /// The members in both sets.
    pub fn intersection(self, other: MemberSet) -> MemberSet {
        MemberSet(self.0 & other.0)
    }

    /// The members in either set.
    pub fn union(self, other: MemberSet) -> MemberSet {
        MemberSet(self.0 | other.0)
    }

    /// The members of this set that are not in `other`.
    pub fn difference(self, other: MemberSet) -> MemberSet {
        MemberSet(self.0 & !other.0)
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Removes and returns the lowest member.
    pub fn pop_first(&mut self) -> Option<MemberId> {
        if self.0 == 0 {
            return None;
        }
        let index = self.0.trailing_zeros();
        self.0 &= self.0.wrapping_sub(1);
        u8::try_from(index).ok().map(MemberId)
    }
}

/// The members of a group, at most `N` (and at most 32).
///
/// ```
/// use harp::membership::{Member, Membership};
/// use harp::NodeType;
///
/// let mut group = Membership::<3>::new();
/// let a = group.add(Member::new("a", NodeType::Electable, 1, 1)?)?;
/// group.add(Member::new("b", NodeType::Electable, 1, 2)?)?;
/// group.add(Member::new("mon", NodeType::Monitor, 0, 3)?)?;
/// assert_eq!(group.id_of("a"), Some(a));
/// assert_eq!(group.voter_count(), 2); // monitors never count
/// assert_eq!(group.majority(), 2);
/// # Ok::<(), harp::membership::MembershipError>(())
/// ```
#[derive(Debug, Clone, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Membership<const N: usize> {
    name: String<NAME_CAP>,
    /// Member slots; a removed member leaves its slot (so ids stay stable), still recognised
    /// there until another member takes the slot.
    slots: heapless::Vec<Slot, N>,
}

/// One member slot. A removed member stays recognised (a removal can be undone by a
/// failover, and the master holding the shorter log must still be followed) until the slot
/// is reused; holding it in the slot rather than beside it halves a membership's RAM.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
enum Slot {
    Current(Member),
    Former(Member),
}

impl Slot {
    fn current(&self) -> Option<&Member> {
        match self {
            Slot::Current(m) => Some(m),
            Slot::Former(_) => None,
        }
    }

    fn known(&self) -> &Member {
        match self {
            Slot::Current(m) | Slot::Former(m) => m,
        }
    }
}

impl<const N: usize> Membership<N> {
    /// An empty membership of a group with no name.
    pub const fn new() -> Self {
        Membership { name: String::new(), slots: heapless::Vec::new() }
    }

    /// An empty membership of the group called `name` (handshakes must name it).
    pub fn named(name: &str) -> Result<Self, MembershipError> {
        let name = String::try_from(name).map_err(|_| MembershipError::NameTooLong)?;
        Ok(Membership { name, slots: heapless::Vec::new() })
    }

    /// The group's name.
    pub fn group_name(&self) -> &str {
        &self.name
    }

    /// Adds a member (into the first empty slot) and returns its id.
    pub fn add(&mut self, member: Member) -> Result<MemberId, MembershipError> {
        if self.iter().any(|(_, m)| m.name == member.name) {
            return Err(MembershipError::DuplicateName);
        }
        if self.iter().any(|(_, m)| m.node_id == member.node_id) {
            return Err(MembershipError::DuplicateNodeId);
        }
        if let Some(index) = self.slots.iter().position(|s| s.current().is_none()) {
            let id = u8::try_from(index).map_err(|_| MembershipError::Full)?;
            if let Some(slot) = self.slots.get_mut(index) {
                *slot = Slot::Current(member);
            }
            return Ok(MemberId(id));
        }
        let id =
            u8::try_from(self.slots.len()).ok().filter(|&i| i < 32).ok_or(MembershipError::Full)?;
        self.slots.push(Slot::Current(member)).map_err(|_| MembershipError::Full)?;
        Ok(MemberId(id))
    }

    /// Removes the member `id` and returns it: it stays recognised in its slot
    /// ([`known`](Self::known)) until another member is added there.
    pub fn remove(&mut self, id: MemberId) -> Result<&Member, MembershipError> {
        let slot = self.slots.get_mut(id.index()).ok_or(MembershipError::NotAMember)?;
        let Slot::Current(member) = slot else { return Err(MembershipError::NotAMember) };
        // Moved into the former slot, not cloned.
        *slot = Slot::Former(core::mem::replace(member, Member::VACANT));
        Ok(slot.known())
    }

    /// The id the next [`add`](Self::add) will give.
    pub fn next_slot(&self) -> Option<MemberId> {
        let index =
            self.slots.iter().position(|s| s.current().is_none()).unwrap_or(self.slots.len());
        Self::slot_id(index)
    }

    /// The id of slot `index`, if this membership has such a slot.
    fn slot_id(index: usize) -> Option<MemberId> {
        u8::try_from(index).ok().filter(|&i| usize::from(i) < N.min(32)).map(MemberId)
    }

    /// A slot no member, current or removed, has had: where a joining node waits for its
    /// Add (a removed member's slot may hold a member again in a log it has not received,
    /// and that member's messages would be taken for its own). None once every slot has
    /// been used.
    pub fn unused_slot(&self) -> Option<MemberId> {
        Self::slot_id(self.slots.len())
    }

    /// The member with this id, or the one removed from its slot (still recognised).
    #[cfg_attr(target_pointer_width = "32", inline(never))]
    pub fn known(&self, id: MemberId) -> Option<&Member> {
        self.slots.get(id.index()).map(Slot::known)
    }

    /// The id of the member, or removed member, called `name`.
    pub fn known_id_of(&self, name: &str) -> Option<MemberId> {
        self.id_of(name).or_else(|| {
            let index = self.slots.iter().position(|s| s.known().name == name)?;
            u8::try_from(index).ok().map(MemberId)
        })
    }

    /// Replaces the type and address of the member with `member`'s name and node id.
    pub fn update(&mut self, member: &Member) -> Result<MemberId, MembershipError> {
        let id = self.id_of(&member.name).ok_or(MembershipError::NotAMember)?;
        let Some(Slot::Current(slot)) = self.slots.get_mut(id.index()) else {
            return Err(MembershipError::NotAMember);
        };
        if slot.node_id != member.node_id {
            return Err(MembershipError::NotAMember);
        }
        slot.node_type = member.node_type;
        slot.host = member.host.clone();
        slot.port = member.port;
        if member.node_type != NodeType::Electable {
            slot.priority = 0;
        }
        Ok(id)
    }

    /// The member with this id.
    pub fn get(&self, id: MemberId) -> Option<&Member> {
        self.slots.get(id.index()).and_then(Slot::current)
    }

    /// The id of the member called `name`.
    pub fn id_of(&self, name: &str) -> Option<MemberId> {
        self.iter().find(|(_, m)| m.name == name).map(|(id, _)| id)
    }

    /// The id of the member called `name` with this node id: a member of that name with
    /// another id is someone else (a name may be reused once its member's removal is
    /// durable).
    ///
    /// ```
    /// use harp::membership::{Member, Membership};
    /// use harp::NodeType;
    /// let mut group = Membership::<4>::new();
    /// group.add(Member::new("n1", NodeType::Monitor, 0, 5).unwrap()).unwrap();
    /// assert!(group.id_of_member("n1", 5).is_some());
    /// assert_eq!(group.id_of_member("n1", 9), None, "a new n1 is not the monitor");
    /// ```
    pub fn id_of_member(&self, name: &str, node_id: u32) -> Option<MemberId> {
        self.id_of(name).filter(|id| self.get(*id).is_some_and(|m| m.node_id == node_id))
    }

    /// The id of the member with this node id.
    pub fn id_of_node(&self, node_id: u32) -> Option<MemberId> {
        self.iter().find(|(_, m)| m.node_id == node_id).map(|(id, _)| id)
    }

    /// The number of members.
    pub fn len(&self) -> usize {
        self.iter().count()
    }

    /// Whether there are no members.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every member with its id.
    pub fn iter(&self) -> impl Iterator<Item = (MemberId, &Member)> {
        self.slots.iter().zip(0u8..).filter_map(|(s, i)| s.current().map(|m| (MemberId(i), m)))
    }

    /// Every member, as a set.
    pub fn all(&self) -> MemberSet {
        self.select(|_| true)
    }

    /// Every member and every removed member still recognised (a removal can be undone
    /// until it is durable), as a set.
    pub fn all_known(&self) -> MemberSet {
        let mut set = MemberSet::EMPTY;
        (0u8..).take(self.slots.len()).for_each(|i| set.insert(MemberId(i)));
        set
    }

    /// The members for which `keep` holds, as a set. `keep` is a function, not a generic
    /// closure, so one copy of this code serves every filter (flash on small targets).
    ///
    /// ```
    /// use harp::membership::{Member, Membership};
    /// use harp::NodeType;
    /// let mut group = Membership::<3>::named("g").unwrap();
    /// group.add(Member::new("a", NodeType::Electable, 1, 1).unwrap()).unwrap();
    /// group.add(Member::new("m", NodeType::Monitor, 0, 2).unwrap()).unwrap();
    /// assert_eq!(group.select(Member::is_voter).len(), 1);
    /// ```
    #[cfg_attr(target_pointer_width = "32", inline(never))]
    pub fn select(&self, keep: fn(&Member) -> bool) -> MemberSet {
        let mut set = MemberSet::EMPTY;
        self.iter().filter(|(_, m)| keep(m)).for_each(|(id, _)| set.insert(id));
        set
    }

    /// The voters (Electable and Arbiter members), as a set.
    pub fn voters(&self) -> MemberSet {
        self.select(Member::is_voter)
    }

    /// The number of voters.
    pub fn voter_count(&self) -> usize {
        self.voters().len()
    }

    /// A strict majority of the voters.
    pub fn majority(&self) -> usize {
        self.voter_count() / 2 + 1
    }

    /// Whether both hold the same members (by name, type and node id), whatever their slots.
    pub fn same_members(&self, other: &Membership<N>) -> bool {
        let covers = |a: &Self, b: &Self| {
            a.iter().all(|(_, m)| {
                b.id_of(&m.name)
                    .and_then(|id| b.get(id))
                    .is_some_and(|o| o.node_type == m.node_type && o.node_id == m.node_id)
            })
        };
        covers(self, other) && covers(other, self)
    }

    /// Applies a membership change as the replicated log records it. Replaying a change
    /// already reflected (an Add of a present member, a Remove of an absent one) does nothing.
    ///
    /// A name may be reused once its member's removal is durable, under a node id above the
    /// removed member's (a master refuses a lower one, and the same one but for the same
    /// member added back as it was; `harp member add` gives one above every id the group
    /// knows, as JE's master does). So an Add whose name is present with a lower node id
    /// replaces that member (this view missed its removal, which a compacted log no longer
    /// holds); with the same or a higher id it is the past (a history heard again) and does
    /// nothing. A Remove names its member by node id too.
    pub fn apply(
        &mut self,
        change: crate::GroupChangeType,
        node: &crate::RepNodeRef<'_>,
    ) -> Result<(), MembershipError> {
        use crate::GroupChangeType::{Add, Update};
        let member = Member::from_rep_node(node)?;
        if change == Update {
            return self.update(&member).map(|_| ());
        }
        // Whether the present member of the name goes: a Remove names it by node id too (a
        // reused name's new member stays), an Add replaces only an older one.
        let goes = |m: &Member| match change {
            Add => m.node_id < member.node_id,
            _ => m.node_id == member.node_id,
        };
        if let Some(id) = self.id_of(&member.name) {
            if !self.get(id).is_some_and(goes) {
                return Ok(());
            }
            self.remove(id)?;
        }
        if change == Add {
            self.add(member)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::{MemberId, MemberSet};

    /// How two membership flags combine into one.
    type Flags = fn(bool, bool) -> bool;

    /// The set whose members are the bits of `bits` (member i: bit i).
    fn set_of(bits: u32) -> MemberSet {
        let mut set = MemberSet::EMPTY;
        (0u8..32).filter(|i| bits >> i & 1 == 1).for_each(|i| set.insert(MemberId::new(i)));
        set
    }

    /// The members of `set`, in order, drained through `pop_first`.
    fn drain(mut set: MemberSet) -> [bool; 32] {
        let mut members = [false; 32];
        let mut last = None;
        while let Some(id) = set.pop_first() {
            assert!(last < Some(id.index()), "pop_first goes up: {last:?} then {id}");
            members[id.index()] = true;
            last = Some(id.index());
        }
        members
    }

    /// Every set operation, on every pair of sets of six members, agrees with the same
    /// operation on membership flags.
    #[test]
    fn set_operations_agree_with_membership_flags() {
        for a in 0u32..64 {
            for b in 0u32..64 {
                let (x, y) = (set_of(a), set_of(b));
                let (fx, fy) = (drain(x), drain(y));
                let cases: [(MemberSet, Flags); 3] = [
                    (x.intersection(y), |p, q| p && q),
                    (x.union(y), |p, q| p || q),
                    (x.difference(y), |p, q| p && !q),
                ];
                for (result, op) in cases {
                    let expected: [bool; 32] = core::array::from_fn(|i| op(fx[i], fy[i]));
                    assert_eq!(drain(result), expected, "{a:06b} {b:06b}");
                    assert_eq!(result.len(), expected.iter().filter(|&&m| m).count());
                    assert_eq!(result.is_empty(), !expected.contains(&true));
                    for (i, &member) in (0u8..).zip(expected.iter()) {
                        assert_eq!(result.contains(MemberId::new(i)), member);
                    }
                }
            }
        }
    }

    /// Insert and remove change one member; ids past 31 are never members.
    #[test]
    fn insert_and_remove_change_one_member() {
        let mut set = set_of(0b1010);
        set.insert(MemberId::new(0));
        set.remove(MemberId::new(3));
        assert_eq!(set, set_of(0b0011));
        set.insert(MemberId::new(32));
        set.insert(MemberId::new(255));
        assert_eq!(set, set_of(0b0011));
        assert!(!set.contains(MemberId::new(32)));
        set.remove(MemberId::new(200));
        assert_eq!(set.len(), 2);
    }
}
