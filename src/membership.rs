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
}

impl Member {
    /// A member; fails if the name is longer than [`NAME_CAP`].
    pub fn new(
        name: &str,
        node_type: NodeType,
        priority: u32,
        node_id: u32,
    ) -> Result<Self, MembershipError> {
        let name = String::try_from(name).map_err(|_| MembershipError::NameTooLong)?;
        Ok(Member { name, node_type, priority, node_id })
    }

    /// Votes in elections and counts toward quorums (Electable and Arbiter).
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
}

impl fmt::Display for MembershipError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MembershipError::Full => "membership is full",
            MembershipError::NameTooLong => "name longer than 32 bytes",
            MembershipError::DuplicateName => "two members share a name",
            MembershipError::DuplicateNodeId => "two members share a node id",
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
    pub fn insert(&mut self, id: MemberId) {
        self.0 |= 1u32.checked_shl(u32::from(id.0)).unwrap_or(0);
    }

    /// Removes `id`.
    pub fn remove(&mut self, id: MemberId) {
        self.0 &= !1u32.checked_shl(u32::from(id.0)).unwrap_or(0);
    }

    /// Whether `id` is in the set.
    pub fn contains(self, id: MemberId) -> bool {
        self.0 & 1u32.checked_shl(u32::from(id.0)).unwrap_or(0) != 0
    }

    /// How many members are in the set.
    pub fn len(self) -> usize {
        self.0.count_ones() as usize
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
    members: heapless::Vec<Member, N>,
}

impl<const N: usize> Membership<N> {
    /// An empty membership of a group with no name.
    pub const fn new() -> Self {
        Membership { name: String::new(), members: heapless::Vec::new() }
    }

    /// An empty membership of the group called `name` (handshakes must name it).
    pub fn named(name: &str) -> Result<Self, MembershipError> {
        let name = String::try_from(name).map_err(|_| MembershipError::NameTooLong)?;
        Ok(Membership { name, members: heapless::Vec::new() })
    }

    /// The group's name.
    pub fn group_name(&self) -> &str {
        &self.name
    }

    /// Adds a member and returns its id.
    pub fn add(&mut self, member: Member) -> Result<MemberId, MembershipError> {
        if self.members.iter().any(|m| m.name == member.name) {
            return Err(MembershipError::DuplicateName);
        }
        if self.members.iter().any(|m| m.node_id == member.node_id) {
            return Err(MembershipError::DuplicateNodeId);
        }
        let id = u8::try_from(self.members.len())
            .ok()
            .filter(|&i| i < 32)
            .ok_or(MembershipError::Full)?;
        self.members.push(member).map_err(|_| MembershipError::Full)?;
        Ok(MemberId(id))
    }

    /// The member with this id.
    pub fn get(&self, id: MemberId) -> Option<&Member> {
        self.members.get(id.index())
    }

    /// The id of the member called `name`.
    pub fn id_of(&self, name: &str) -> Option<MemberId> {
        let index = self.members.iter().position(|m| m.name == name)?;
        u8::try_from(index).ok().map(MemberId)
    }

    /// The id of the member with this node id.
    pub fn id_of_node(&self, node_id: u32) -> Option<MemberId> {
        let index = self.members.iter().position(|m| m.node_id == node_id)?;
        u8::try_from(index).ok().map(MemberId)
    }

    /// The number of members.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether there are no members.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Every member with its id.
    pub fn iter(&self) -> impl Iterator<Item = (MemberId, &Member)> {
        self.members.iter().zip(0u8..).map(|(m, i)| (MemberId(i), m))
    }

    /// Every member, as a set.
    pub fn all(&self) -> MemberSet {
        self.select(|_| true)
    }

    /// The members for which `keep` holds, as a set.
    pub fn select(&self, keep: impl Fn(&Member) -> bool) -> MemberSet {
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
}
