//! A hosted node's membership on disk, and joining a running group.
//!
//! The core rebuilds a node's membership from its *base*, the membership its log starts
//! from, and the membership changes the log holds ([`Node::base_members`]). A hosted node
//! keeps the base in `DATA_DIR/log/members` ([`BaseMembers`], JSON, replaced atomically),
//! inside the log's directory, so that `harp restore` swaps log and base together:
//!
//! - at the first start it is the configured group (`--peer`), or, for a node started with
//!   `--join ADMIN`, the base of a running member's log, fetched with its restore point
//!   ([`join`]);
//! - before a compaction passes a membership change it becomes
//!   [`Node::base_members_before`] the compaction point, written before the log is
//!   compacted: a crash between the two leaves a base onto which the restart replays
//!   changes it already holds, which leaves it as it was (each change sets one member);
//! - a member without a log (monitor, arbiter) rewrites it at each change it learns from
//!   the master's notices: that is its only record of them.
//!
//! After the first start the `--peer` flags are not read again: the group is what this
//! file and the log say, so members added or removed since (`harp member`) stay so.
//!
//! [`Node::base_members`]: harp::node::Node::base_members
//! [`Node::base_members_before`]: harp::node::Node::base_members_before

use std::fs;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use harp::membership::{Member, MemberId, Membership};
use harp::NodeType;
use serde::{Deserialize, Serialize};

use crate::config::HostConfig;
use crate::host::{admin_request, Reply, Request, MAX_MEMBERS};
use crate::restore::{self, LOG_DIR};
use crate::store::{replace_file, sync_dir, Durability};

/// The base membership's file, in the log's directory.
pub const MEMBERS_FILE: &str = "members";

/// How long [`join`] waits for each answer of the member it joins through.
const JOIN_TIMEOUT: Duration = Duration::from_secs(10);

/// One member, as `harp status` lists it and the members file holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberRecord {
    /// Its name.
    pub name: String,
    /// What it may do.
    #[serde(with = "crate::config::node_type")]
    pub node_type: NodeType,
    /// Election priority (a member added by `harp member add` has 1 if electable: the
    /// wire's `RepNode` carries none).
    pub priority: u32,
    /// Its numeric id in the group (persisted votes name members by it).
    pub node_id: u32,
    /// Where it listens for peers.
    pub address: SocketAddr,
}

impl MemberRecord {
    /// The record of a core member; fails if its host is not an IP address.
    pub fn of(member: &Member) -> Result<MemberRecord> {
        let ip: IpAddr = member.host.parse().map_err(|_| {
            anyhow!("member {}: address {:?} is not an IP", member.name, member.host)
        })?;
        Ok(MemberRecord {
            name: member.name.to_string(),
            node_type: member.node_type,
            priority: member.priority,
            node_id: member.node_id,
            address: SocketAddr::new(ip, member.port),
        })
    }

    /// The core's member.
    pub fn to_member(&self) -> Result<Member> {
        Member::new(&self.name, self.node_type, self.priority, self.node_id)
            .and_then(|m| m.with_address(&self.address.ip().to_string(), self.address.port()))
            .map_err(|e| anyhow!("member {}: {e:?}", self.name))
    }
}

/// The node that joined the group after a base: itself as the master added it, and where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Joiner {
    /// Itself, as the group lists it.
    #[serde(flatten)]
    pub member: MemberRecord,
    /// Where the master's log holds its Add, `(log_term, vlsn)`: the node votes only for
    /// candidates whose log reaches it ([`Node::new_joining`](harp::node::Node::new_joining)).
    /// `(0, 0)` when the log it joined from was compacted past the Add (it starts past it).
    #[serde(default)]
    pub added_at: (u64, u64),
}

/// The membership a node's log starts from (see the [module docs](self)).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BaseMembers {
    /// The group's name.
    pub group: String,
    /// Its members, in slot order.
    pub members: Vec<MemberRecord>,
    /// Members removed but still recognised (the core keeps a removed member in its slot
    /// until another takes it; a master announces their removal to monitors and arbiters
    /// that may have missed it).
    #[serde(default)]
    pub former: Vec<MemberRecord>,
    /// A node that joined the group after this base: itself as the master added it, until a
    /// compaction carries its addition into `members`.
    #[serde(default)]
    pub joining: Option<Joiner>,
}

impl BaseMembers {
    /// The record of a core membership.
    pub fn of(membership: &Membership<MAX_MEMBERS>) -> Result<BaseMembers> {
        let slots = (0..MAX_MEMBERS as u8).map(MemberId::new);
        let former = slots.filter(|&id| membership.get(id).is_none());
        Ok(BaseMembers {
            group: membership.group_name().to_string(),
            members: membership.iter().map(|(_, m)| MemberRecord::of(m)).collect::<Result<_>>()?,
            former: former
                .filter_map(|id| membership.known(id))
                .map(MemberRecord::of)
                .collect::<Result<_>>()?,
            joining: None,
        })
    }

    /// The group as configured: members sorted by name (every node numbers them alike),
    /// node ids 1, 2, ... in that order.
    pub fn from_config(config: &HostConfig) -> BaseMembers {
        let mut all: Vec<(&str, NodeType, u32, SocketAddr)> = config
            .peers
            .iter()
            .map(|p| (p.name.as_str(), p.node_type, p.priority, p.address))
            .collect();
        all.push((&config.name, config.node_type, config.priority, config.listen));
        all.sort_by(|a, b| a.0.cmp(b.0));
        let members = (1u32..)
            .zip(all)
            .map(|(node_id, (name, node_type, priority, address))| MemberRecord {
                name: name.to_string(),
                node_type,
                priority,
                node_id,
                address,
            })
            .collect();
        BaseMembers { group: config.group.clone(), members, former: Vec::new(), joining: None }
    }

    /// This base, with `own` as the node that joined after it, unless it already holds it
    /// (by name and node id: a member of its name with another id is one removed since,
    /// whose name the group reused).
    pub fn joined_by(mut self, own: Option<Joiner>) -> BaseMembers {
        let holds = |own: &Joiner| {
            let own = &own.member;
            self.members.iter().any(|m| m.name == own.name && m.node_id == own.node_id)
        };
        self.joining = own.filter(|own| !holds(own));
        self
    }

    /// The core membership.
    pub fn membership(&self) -> Result<Membership<MAX_MEMBERS>> {
        let mut group = Membership::named(&self.group).map_err(|e| anyhow!("group name: {e:?}"))?;
        for record in &self.members {
            group.add(record.to_member()?).map_err(|e| anyhow!("member {}: {e:?}", record.name))?;
        }
        // Added after every member (a removed slot is free to an add), then removed. One
        // whose name came back as a member is that member now.
        for record in &self.former {
            if let Ok(id) = group.add(record.to_member()?) {
                let _ = group.remove(id);
            }
        }
        Ok(group)
    }

    /// The base kept in `log_dir`, if there is one.
    pub fn load(log_dir: &Path) -> Result<Option<BaseMembers>> {
        let path = log_dir.join(MEMBERS_FILE);
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .with_context(|| format!("reading {}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    /// Replaces the base kept in `log_dir` (atomically; synced with `Fsync` durability).
    pub fn save(&self, log_dir: &Path, durability: Durability) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(self)?;
        replace_file(log_dir, MEMBERS_FILE, &bytes, durability)
            .with_context(|| format!("writing {}", log_dir.join(MEMBERS_FILE).display()))
    }
}

/// The base membership of the node `config` describes: the one its log keeps, else (a
/// first start) the configured group or, with `config.join`, the one a running member
/// gives ([`join`]), which is then kept.
pub fn load_or_init(config: &HostConfig) -> Result<BaseMembers> {
    let log_dir = config.data_dir.join(LOG_DIR);
    if let Some(base) = BaseMembers::load(&log_dir)? {
        if base.group != config.group {
            bail!("{} is a member of group {:?}, not {:?}", config.name, base.group, config.group);
        }
        return Ok(base);
    }
    if let Some(admin) = &config.join {
        if log_dir.exists() {
            bail!(
                "--join: {} already holds a log; a node joins with an empty data directory",
                config.data_dir.display()
            );
        }
        return join(config, admin);
    }
    let base = BaseMembers::from_config(config);
    fs::create_dir_all(&log_dir).with_context(|| format!("creating {}", log_dir.display()))?;
    base.save(&log_dir, Durability::Fsync)?;
    Ok(base)
}

/// Prepares the empty data directory of a node joining a running group through `admin`, a
/// running member's admin address. That member must already list the node (`harp member
/// add` on the master); the node's log starts where the member's log starts (its restore
/// point), from the member's base membership, and the master streams it the rest. The log
/// is built in a staging directory and renamed into place, so a join cut short by a crash
/// leaves no log and simply runs again.
pub fn join(config: &HostConfig, admin: &str) -> Result<BaseMembers> {
    let status = match admin_request(admin, &Request::Status, JOIN_TIMEOUT)? {
        Reply::Status(status) => status,
        other => bail!("{admin}: unexpected reply {other:?}"),
    };
    let own = status.members.iter().find(|m| m.name == config.name).cloned().ok_or_else(|| {
        anyhow!(
            "{admin} ({}) does not list {} as a member: add it on the master first \
             (harp member add MASTER_ADMIN {}={}), or join through the master if it was \
             added and this member has not heard yet",
            status.name,
            config.name,
            config.name,
            config.listen
        )
    })?;
    if own.node_type != config.node_type || own.address != config.listen {
        bail!(
            "the group added {} as {} at {}, but this node is configured as {} at {}",
            config.name,
            crate::config::type_name(own.node_type),
            own.address,
            crate::config::type_name(config.node_type),
            config.listen
        );
    }
    let request = Request::RestorePoint { member: Some(config.name.clone()) };
    let (point, base, added_at) = match admin_request(admin, &request, JOIN_TIMEOUT)? {
        Reply::RestorePoint { restore_point, members: Some(base), added_at } => {
            (restore_point, base, added_at)
        }
        other => bail!("{admin}: unexpected reply {other:?}"),
    };
    // The member lists the node, so its log holds the Add, or starts past it.
    let added_at = added_at.unwrap_or_default();
    if base.group != config.group {
        bail!("{admin} is a member of group {:?}, not {:?}", base.group, config.group);
    }
    let base = base.joined_by(Some(Joiner { member: own, added_at }));
    fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating {}", config.data_dir.display()))?;
    restore::finish_interrupted(&config.data_dir)?;
    let staged = restore::stage_log(&config.data_dir, point, &base)?;
    fs::rename(&staged, config.data_dir.join(LOG_DIR))?;
    sync_dir(&config.data_dir)?;
    Ok(base)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> HostConfig {
        let mut config = HostConfig::new("n2", "g", "127.0.0.1:7002".parse().unwrap(), "d".into());
        for (name, port) in [("n3", 7003), ("n1", 7001)] {
            config.peers.push(crate::config::PeerConfig {
                name: name.into(),
                address: SocketAddr::from(([127, 0, 0, 1], port)),
                node_type: NodeType::Electable,
                priority: 1,
            });
        }
        config
    }

    #[test]
    fn the_configured_group_is_numbered_by_name_and_survives_a_round_trip() {
        let base = BaseMembers::from_config(&config());
        let names: Vec<(&str, u32)> =
            base.members.iter().map(|m| (m.name.as_str(), m.node_id)).collect();
        assert_eq!(names, [("n1", 1), ("n2", 2), ("n3", 3)]);
        let group = base.membership().unwrap();
        assert_eq!(BaseMembers::of(&group).unwrap(), base);
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(BaseMembers::load(dir.path()).unwrap(), None);
        base.save(dir.path(), Durability::Fsync).unwrap();
        assert_eq!(BaseMembers::load(dir.path()).unwrap(), Some(base));
    }

    /// A joiner under a reused name: a base that still holds the removed member of that
    /// name (another node id) does not hold the joiner, so it keeps its own record.
    #[test]
    fn a_base_holding_a_removed_member_s_name_keeps_the_joiner_under_it() {
        let base = BaseMembers::from_config(&config());
        let old = base.members.iter().find(|m| m.name == "n3").cloned().unwrap();
        let reused = MemberRecord { node_id: 9, node_type: NodeType::Secondary, ..old.clone() };
        let reused = Joiner { member: reused, added_at: (3, 17) };
        assert_eq!(base.clone().joined_by(Some(reused.clone())).joining, Some(reused));
        let old = Joiner { member: old, added_at: (1, 2) };
        assert_eq!(base.joined_by(Some(old)).joining, None, "the base holds it");
    }

    #[test]
    fn a_removed_member_still_recognised_survives_a_round_trip() {
        let mut group = BaseMembers::from_config(&config()).membership().unwrap();
        let n2 = group.id_of("n2").unwrap();
        group.remove(n2).unwrap();
        let record = BaseMembers::of(&group).unwrap();
        assert_eq!(record.former.iter().map(|m| m.name.as_str()).collect::<Vec<_>>(), ["n2"]);
        let back = record.membership().unwrap();
        assert!(back.id_of("n2").is_none(), "not a member");
        assert!(back.known_id_of("n2").is_some(), "still recognised");
        assert_eq!(BaseMembers::of(&back).unwrap(), record);
    }

    #[test]
    fn a_first_start_keeps_the_configured_group_and_later_starts_read_it_back() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = config();
        config.data_dir = dir.path().to_path_buf();
        let first = load_or_init(&config).unwrap();
        config.peers.pop(); // the flags are not read again
        assert_eq!(load_or_init(&config).unwrap(), first);
        config.group = "other".into();
        let err = load_or_init(&config).unwrap_err().to_string();
        assert!(err.contains("member of group \"g\""), "{err}");
    }

    #[test]
    fn a_damaged_members_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(MEMBERS_FILE), b"{\"group\":").unwrap();
        let err = format!("{:#}", BaseMembers::load(dir.path()).unwrap_err());
        assert!(err.contains("members"), "{err}");
    }

    #[test]
    fn joining_with_a_log_already_there_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = config();
        config.data_dir = dir.path().to_path_buf();
        config.join = Some("127.0.0.1:1".into());
        fs::create_dir_all(dir.path().join(LOG_DIR)).unwrap();
        let err = load_or_init(&config).unwrap_err().to_string();
        assert!(err.contains("already holds a log"), "{err}");
    }
}
