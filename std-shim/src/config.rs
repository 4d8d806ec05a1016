//! A hosted node's configuration: from a TOML file, command-line flags, or code.
//!
//! ```toml
//! name = "n1"
//! group = "demo"
//! listen = "127.0.0.1:7001"
//! admin = "127.0.0.1:8001"
//! data_dir = "/var/lib/harp/n1"
//! ack_policy = "simple-majority"   # or "all", "none"
//! durability = "fsync"             # or "os"
//! retain_entries = 1000000         # compact older entries (default: keep the whole log)
//! # join = "10.0.0.1:8001"         # a new member: join through this member's admin address
//!
//! [[peers]]
//! name = "n2"
//! address = "127.0.0.1:7002"
//! node_type = "electable"          # "secondary", "monitor", "arbiter"
//! priority = 1
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use harp::NodeType;
use serde::{Deserialize, Serialize};

use crate::store::Durability;

/// One member as configured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerConfig {
    /// Its name (unique in the group).
    pub name: String,
    /// Where it listens for peers.
    pub address: SocketAddr,
    /// What it may do.
    #[serde(default = "electable", with = "node_type")]
    pub node_type: NodeType,
    /// Election priority (0: never master).
    #[serde(default = "one")]
    pub priority: u32,
}

/// A node's configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostConfig {
    /// This node's name.
    pub name: String,
    /// The group's name (a handshake with another group is refused).
    pub group: String,
    /// This node's type.
    #[serde(default = "electable", with = "node_type")]
    pub node_type: NodeType,
    /// This node's election priority.
    #[serde(default = "one")]
    pub priority: u32,
    /// The address peers connect to.
    pub listen: SocketAddr,
    /// The admin address (`harp status/append/shutdown`); none if absent.
    #[serde(default)]
    pub admin: Option<SocketAddr>,
    /// The other members: the group at the node's first start (afterwards the node's
    /// membership is what its data directory keeps, see [`crate::members`]).
    #[serde(default)]
    pub peers: Vec<PeerConfig>,
    /// Where the log and the election record live.
    pub data_dir: PathBuf,
    /// When appended entries count as on disk.
    #[serde(default)]
    pub durability: Durability,
    /// `all`, `simple-majority` or `none`.
    #[serde(default = "majority")]
    pub ack_policy: String,
    /// Heartbeat interval, ms.
    #[serde(default = "heartbeat")]
    pub heartbeat_ms: u64,
    /// Silence before an election, ms.
    #[serde(default = "election_timeout")]
    pub election_timeout_ms: u64,
    /// The largest message accepted from a peer, bytes.
    #[serde(default = "max_frame")]
    pub max_frame: usize,
    /// Entries in flight (sent, not yet acknowledged) per replica at most.
    #[serde(default = "window")]
    pub window: u64,
    /// Log retention: keep at least this many of the newest entries and compact the older
    /// ones once they are durable and delivered to subscribers (see docs/hosted.md). A
    /// replica that falls further behind than this needs `harp restore`. Absent: keep the
    /// whole log.
    #[serde(default)]
    pub retain_entries: Option<u64>,
    /// Joins a running group through this admin address of one of its members (the master
    /// must have added this node with `harp member add`): on the first start, with an
    /// empty data directory, the log starts where that member's starts, from its
    /// membership (see docs/hosted.md). `peers` must then be empty.
    #[serde(default)]
    pub join: Option<String>,
}

fn electable() -> NodeType {
    NodeType::Electable
}
fn one() -> u32 {
    1
}
fn majority() -> String {
    "simple-majority".into()
}
fn heartbeat() -> u64 {
    100
}
fn election_timeout() -> u64 {
    500
}
fn max_frame() -> usize {
    1 << 20
}
fn window() -> u64 {
    1024
}

pub(crate) mod node_type {
    use harp::NodeType;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &NodeType, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(super::type_name(*t))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<NodeType, D::Error> {
        let name = String::deserialize(d)?;
        super::parse_type(&name).map_err(serde::de::Error::custom)
    }

    /// The same, for a type that may be absent.
    pub mod optional {
        use harp::NodeType;
        use serde::{Deserialize, Deserializer, Serializer};

        pub fn serialize<S: Serializer>(t: &Option<NodeType>, s: S) -> Result<S::Ok, S::Error> {
            match t {
                Some(t) => super::serialize(t, s),
                None => s.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<NodeType>, D::Error> {
            let name = Option::<String>::deserialize(d)?;
            let parse = |name: String| crate::config::parse_type(&name);
            name.map(parse).transpose().map_err(serde::de::Error::custom)
        }
    }
}

/// `electable`, `secondary`, `monitor` or `arbiter`.
pub fn parse_type(name: &str) -> Result<NodeType> {
    Ok(match name {
        "electable" => NodeType::Electable,
        "secondary" => NodeType::Secondary,
        "monitor" => NodeType::Monitor,
        "arbiter" => NodeType::Arbiter,
        other => bail!("unknown node type {other:?} (electable, secondary, monitor, arbiter)"),
    })
}

/// The lowercase name of a node type.
pub fn type_name(t: NodeType) -> &'static str {
    match t {
        NodeType::Electable => "electable",
        NodeType::Secondary => "secondary",
        NodeType::Monitor => "monitor",
        NodeType::Arbiter => "arbiter",
    }
}

impl HostConfig {
    /// A configuration with every optional setting at its default: an electable node of
    /// priority 1, no admin address, no peers yet, fsync durability, SIMPLE_MAJORITY,
    /// heartbeats every 100 ms, elections after 500 ms, frames up to 1 MiB, the whole log
    /// kept.
    pub fn new(name: &str, group: &str, listen: SocketAddr, data_dir: PathBuf) -> Self {
        HostConfig {
            name: name.into(),
            group: group.into(),
            node_type: electable(),
            priority: one(),
            listen,
            admin: None,
            peers: Vec::new(),
            data_dir,
            durability: Durability::default(),
            ack_policy: majority(),
            heartbeat_ms: heartbeat(),
            election_timeout_ms: election_timeout(),
            max_frame: max_frame(),
            window: window(),
            retain_entries: None,
            join: None,
        }
    }

    /// Configurations for a group of electable nodes `names` listening on `listen`, data in
    /// `dir/<name>` (each node lists the others as peers).
    pub fn group(
        names: &[&str],
        group: &str,
        listen: &[SocketAddr],
        dir: &std::path::Path,
    ) -> Vec<Self> {
        names
            .iter()
            .zip(listen)
            .map(|(name, addr)| {
                let mut config = HostConfig::new(name, group, *addr, dir.join(name));
                config.peers = names
                    .iter()
                    .zip(listen)
                    .filter(|(other, _)| *other != name)
                    .map(|(other, address)| PeerConfig {
                        name: (*other).into(),
                        address: *address,
                        node_type: NodeType::Electable,
                        priority: 1,
                    })
                    .collect();
                config
            })
            .collect()
    }

    /// Reads a TOML file.
    pub fn from_toml_file(path: &std::path::Path) -> Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let config: HostConfig =
            toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        config.validate()?;
        Ok(config)
    }

    /// The ack policy.
    pub fn ack_policy(&self) -> Result<harp::replication::AckPolicy> {
        use harp::replication::AckPolicy;
        Ok(match self.ack_policy.as_str() {
            "all" => AckPolicy::All,
            "simple-majority" => AckPolicy::SimpleMajority,
            "none" => AckPolicy::None,
            other => bail!("unknown ack policy {other:?} (all, simple-majority, none)"),
        })
    }

    /// Checks everything that can be checked before starting; the error is one line.
    pub fn validate(&self) -> Result<()> {
        let mut names = vec![self.name.as_str()];
        for p in &self.peers {
            if names.contains(&p.name.as_str()) {
                bail!("member name {:?} appears twice", p.name);
            }
            names.push(&p.name);
            if p.address == self.listen {
                bail!("peer {} has this node's listen address {}", p.name, p.address);
            }
        }
        if names.len() > crate::host::MAX_MEMBERS {
            bail!("{} members: at most {} are supported", names.len(), crate::host::MAX_MEMBERS);
        }
        for name in &names {
            if name.is_empty() || name.len() > harp::membership::NAME_CAP {
                bail!("member name {name:?} must be 1 to {} bytes", harp::membership::NAME_CAP);
            }
        }
        if self.group.is_empty() || self.group.len() > harp::membership::NAME_CAP {
            bail!("group name must be 1 to {} bytes", harp::membership::NAME_CAP);
        }
        self.ack_policy()?;
        if self.heartbeat_ms == 0 || self.election_timeout_ms < 2 * self.heartbeat_ms {
            bail!("election_timeout_ms must be at least twice heartbeat_ms (and heartbeat_ms > 0)");
        }
        if self.join.is_some() && !self.peers.is_empty() {
            bail!("a joining node takes the group from the member it joins through: no peers");
        }
        let any_electable = self.node_type == NodeType::Electable
            || self.peers.iter().any(|p| p.node_type == NodeType::Electable);
        if !any_electable && self.join.is_none() {
            bail!("the group has no electable member: no master could ever be elected");
        }
        if self.window == 0 {
            bail!("window must be at least 1");
        }
        if self.retain_entries == Some(0) {
            bail!("retain_entries must be at least 1 (leave it out to keep the whole log)");
        }
        if self.max_frame < 1024 {
            bail!("max_frame must be at least 1024 bytes");
        }
        Ok(())
    }
}
