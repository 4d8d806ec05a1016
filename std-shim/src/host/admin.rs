//! The admin address: one JSON request per connection, answered by the node thread.
//!
//! `harp status / append / member / shutdown` and `harp restore` speak it
//! ([`admin_request`]); [`Host`](super::Host) asks the node thread the same requests in
//! process. Each connection gets a thread that hands its request to the node thread and
//! writes the answer; requests that wait for durability (appends, membership changes) are
//! answered when the node reports it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Sender, SyncSender};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use harp::election::Role;
use harp::membership::{Member, MemberId};
use harp::replication::LogStore;
use mio::Waker;
use serde::{Deserialize, Serialize};
use tracing::{debug, info, warn};

use super::{role_name, Input, Waiter, Worker, APP_ENTRY, MAX_MEMBERS};
use crate::members::{BaseMembers, MemberRecord};
use crate::restore::RestorePoint;

/// An admin request (one JSON line on the admin address).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "kebab-case")]
pub enum Request {
    /// The node's state.
    Status,
    /// Append entries (UTF-8 strings) on the master and wait until they are durable.
    Append {
        /// The entries.
        data: Vec<String>,
    },
    /// Stop gracefully.
    Shutdown,
    /// Application entries from `from` on (at most `limit`), as held in this node's log.
    Entries {
        /// The first VLSN.
        from: u64,
        /// How many VLSNs to look at.
        limit: u64,
    },
    /// Where this node's log starts: what `harp restore` gives a replica that fell behind
    /// the group's retained logs, and a joining node starts from. Log retention then keeps
    /// the entries after it until `member` connects, for at most a minute.
    RestorePoint {
        /// The member that will start from it (a joining node names itself); none: held
        /// for the minute.
        #[serde(default)]
        member: Option<String>,
    },
    /// On the master: adds a member (`harp member add`) and waits until the change is
    /// durable. Start the new node with `--join` afterwards.
    AddMember {
        /// Its name.
        name: String,
        /// Where it will listen for peers.
        address: SocketAddr,
        /// What it may do.
        #[serde(with = "crate::config::node_type", default = "electable")]
        node_type: harp::NodeType,
    },
    /// On the master: removes a member (`harp member remove`), which must be shut down
    /// first, and waits until the change is durable.
    RemoveMember {
        /// Its name.
        name: String,
    },
    /// On the master: moves a member to a new address, or changes its type (`harp member
    /// update`), and waits until the change is durable. Restart the node at that address.
    UpdateMember {
        /// Its name.
        name: String,
        /// Where it listens from now on.
        address: SocketAddr,
        /// Its new type; unchanged if absent.
        #[serde(default, with = "crate::config::node_type::optional")]
        node_type: Option<harp::NodeType>,
    },
}

fn electable() -> harp::NodeType {
    harp::NodeType::Electable
}

/// The answer to a [`Request`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Reply {
    /// [`Request::Status`].
    Status(Status),
    /// [`Request::Append`]: every entry is durable.
    Appended {
        /// The VLSNs given to the entries, in order.
        vlsns: Vec<u64>,
    },
    /// The request could not be done.
    Error {
        /// Why.
        error: String,
        /// The master, if known (ask it instead).
        #[serde(default)]
        master: Option<String>,
    },
    /// [`Request::Shutdown`] accepted.
    Stopping {
        /// Always true.
        stopping: bool,
    },
    /// [`Request::Entries`]: (VLSN, data) of the application entries found, and the last
    /// VLSN in the log.
    Entries {
        /// The entries.
        entries: Vec<(u64, String)>,
        /// The log's last VLSN.
        last: u64,
        /// The log's first VLSN (the entries before it were compacted).
        #[serde(default)]
        first: u64,
    },
    /// [`Request::RestorePoint`].
    RestorePoint {
        /// The last entry this node's log compacted (or VLSN 0).
        restore_point: RestorePoint,
        /// The membership the log starts from.
        #[serde(default)]
        members: Option<BaseMembers>,
        /// Where this node's log holds the Add of the member the request named,
        /// `(log_term, vlsn)` (none: no such member, or the log was compacted past it).
        #[serde(default)]
        added_at: Option<(u64, u64)>,
    },
    /// [`Request::AddMember`] or [`Request::RemoveMember`]: the change is durable.
    Changed {
        /// The VLSN of the change in the log.
        changed_at: u64,
    },
}

/// A node's state, as `harp status` prints it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// The node's name.
    pub name: String,
    /// `master`, `replica`, `electing`, `unknown` or `stopped`.
    pub role: String,
    /// The current term.
    pub term: u64,
    /// The master's name, if known.
    pub master: Option<String>,
    /// The last VLSN in the log.
    pub vlsn: u64,
    /// The first VLSN the log holds (the ones before it were compacted).
    #[serde(default)]
    pub first: u64,
    /// The highest VLSN known durable.
    pub dtvlsn: u64,
    /// The group's members (this node's view: its log's, or a master's notices').
    #[serde(default)]
    pub members: Vec<MemberRecord>,
    /// Each peer.
    pub peers: Vec<PeerStatus>,
    /// Frames dropped because a peer's write queue was full.
    pub dropped_frames: u64,
    /// Connections refused or cut (bad preamble, frame, handshake, slow client).
    pub refused_connections: u64,
    /// The election's counters since the node started: pre-vote rounds, terms started,
    /// votes, and the inputs it ignored, by reason.
    #[serde(default)]
    pub election: harp::election::Stats,
    /// The replication stream's counters since the node started.
    #[serde(default)]
    pub replication: harp::node::NodeStats,
}

/// One peer in a [`Status`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeerStatus {
    /// Its name.
    pub name: String,
    /// Handshakes accepted both ways.
    pub connected: bool,
    /// As master: the VLSN it acknowledged.
    pub matched: Option<u64>,
    /// As master: its last heartbeat round trip.
    pub rtt_ms: Option<u32>,
    /// As master: it lacks entries this log compacted (`harp restore` brings it back).
    #[serde(default)]
    pub needs_restore: bool,
}

impl Worker {
    /// Answers an admin request (at once, or once what it waits for is durable).
    pub(super) fn on_admin(&mut self, request: Request, reply: Sender<Reply>) {
        match request {
            Request::Status => {
                let _ = reply.send(Reply::Status(self.status()));
            }
            Request::Shutdown => {
                info!(node = %self.name, "shutdown requested");
                self.node.shutdown(self.now(), "operator shutdown");
                let _ = reply.send(Reply::Stopping { stopping: true });
            }
            Request::Append { data } => self.append(data, reply),
            Request::Entries { from, limit } => {
                let log = self.node.log();
                let to =
                    from.saturating_add(limit.min(100_000)).min(log.last_vlsn().saturating_add(1));
                let entries = (from.max(log.first_vlsn())..to)
                    .filter_map(|v| {
                        log.entry(v)
                            .filter(|e| e.entry_type == APP_ENTRY)
                            .map(|e| (v, String::from_utf8_lossy(e.data).into_owned()))
                    })
                    .collect();
                let (first, last) = (log.first_vlsn(), log.last_vlsn());
                let _ = reply.send(Reply::Entries { entries, last, first });
            }
            Request::RestorePoint { member } => {
                let restore_point = RestorePoint::of(self.node.log());
                let added_at = member.as_deref().and_then(|name| self.addition_of(name));
                self.hold_restore_point(member);
                let answer = match BaseMembers::of(self.node.base_members()) {
                    Ok(base) => {
                        Reply::RestorePoint { restore_point, members: Some(base), added_at }
                    }
                    Err(e) => Reply::Error { error: format!("{e:#}"), master: None },
                };
                let _ = reply.send(answer);
            }
            Request::AddMember { name, address, node_type } => {
                self.add_member(&name, address, node_type, reply)
            }
            Request::RemoveMember { name } => self.remove_member(&name, reply),
            Request::UpdateMember { name, address, node_type } => {
                self.update_member(&name, address, node_type, reply)
            }
        }
    }

    /// As master: gives `name` a new address (and type): the same member and numeric id.
    fn update_member(
        &mut self,
        name: &str,
        address: SocketAddr,
        node_type: Option<harp::NodeType>,
        reply: Sender<Reply>,
    ) {
        let members = self.node.members();
        let current = members.id_of(name).and_then(|id| members.get(id));
        let (current_type, node_id) =
            current.map_or((harp::NodeType::Electable, 0), |m| (m.node_type, m.node_id));
        let node_type = node_type.unwrap_or(current_type);
        let host = address.ip().to_string();
        let node = harp::RepNodeRef { name, node_type, host: &host, port: address.port(), node_id };
        self.change(harp::GroupChangeType::Update, &node, reply);
    }

    /// As master: adds `name`, listening at `address`, with a numeric id above every id
    /// this node knows (votes name members by it).
    fn add_member(
        &mut self,
        name: &str,
        address: SocketAddr,
        node_type: harp::NodeType,
        reply: Sender<Reply>,
    ) {
        let members = self.node.members();
        let known = (0..MAX_MEMBERS as u8).filter_map(|i| members.known(MemberId::new(i)));
        let node_id = known.map(|m| m.node_id).max().unwrap_or(0).saturating_add(1);
        let host = address.ip().to_string();
        let node = harp::RepNodeRef { name, node_type, host: &host, port: address.port(), node_id };
        self.change(harp::GroupChangeType::Add, &node, reply);
    }

    /// As master: removes `name`, which must not be running. As JE's `removeMember` refuses
    /// an active member: a running member would not learn of its removal (the master streams
    /// it nothing from the change on) and would stand for election alone.
    fn remove_member(&mut self, name: &str, reply: Sender<Reply>) {
        let members = self.node.members();
        let id = members.id_of(name);
        if id.is_some_and(|id| self.node.is_connected(id)) {
            let error = format!(
                "{name} is running (connected to the master): shut it down first \
                 (harp shutdown ITS_ADMIN_ADDRESS)"
            );
            let _ = reply.send(Reply::Error { error, master: None });
            return;
        }
        let member = id.and_then(|id| members.get(id)).cloned();
        // An unknown name goes to the core too, which refuses it as it refuses any change
        // (not the master, a change in progress, not a member).
        let unknown = harp::RepNodeRef {
            name,
            node_type: harp::NodeType::Electable,
            host: "",
            port: 0,
            node_id: 0,
        };
        let node = member.as_ref().map_or(unknown, Member::as_rep_node);
        self.change(harp::GroupChangeType::Remove, &node, reply);
    }

    /// As master: makes a membership change and answers once it is durable.
    fn change(
        &mut self,
        change: harp::GroupChangeType,
        node: &harp::RepNodeRef<'_>,
        reply: Sender<Reply>,
    ) {
        match self.node.change_membership(self.now(), change, node) {
            Ok(vlsn) => {
                info!(change = ?change, member = node.name, vlsn, "membership change");
                let answer = Reply::Changed { changed_at: vlsn };
                self.waiters.push(Waiter { last: vlsn, answer, reply });
            }
            Err(harp::node::ChangeError::NotMaster) => {
                let master = self.node.election().master().map(|m| self.peer_name(m));
                let _ = reply.send(Reply::Error { error: "not the master".into(), master });
            }
            Err(e) => {
                let _ = reply.send(Reply::Error { error: e.to_string(), master: None });
            }
        }
    }

    fn append(&mut self, data: Vec<String>, reply: Sender<Reply>) {
        if self.node.role() != Role::Master {
            let master = self.node.election().master().map(|m| self.peer_name(m));
            let _ = reply.send(Reply::Error { error: "not the master".into(), master });
            return;
        }
        let mut vlsns = Vec::with_capacity(data.len());
        for d in &data {
            match self.node.append(APP_ENTRY, d.as_bytes()) {
                Ok(v) => vlsns.push(v),
                Err(e) => {
                    let _ = reply.send(Reply::Error {
                        error: format!("append refused: {e:?}"),
                        master: None,
                    });
                    return;
                }
            }
        }
        match vlsns.last() {
            Some(&last) => {
                self.waiters.push(Waiter { last, answer: Reply::Appended { vlsns }, reply })
            }
            None => {
                let _ = reply.send(Reply::Appended { vlsns });
            }
        }
    }

    fn status(&self) -> Status {
        let me = self.node.election().me();
        let members = self.node.members();
        let peers = members
            .iter()
            .filter(|(id, _)| *id != me)
            .map(|(id, m)| {
                let progress = self.node.progress(id);
                PeerStatus {
                    name: m.name.to_string(),
                    connected: self.node.is_connected(id),
                    matched: progress.map(|p| p.matched),
                    rtt_ms: progress.and_then(|p| p.round_trip_ms),
                    needs_restore: progress.is_some_and(|p| p.needs_restore),
                }
            })
            .collect();
        Status {
            name: self.name.clone(),
            role: role_name(self.node.role()).into(),
            term: self.node.election().term(),
            master: self.node.election().master().map(|m| self.peer_name(m)),
            vlsn: self.node.log().last_vlsn(),
            first: self.node.log().first_vlsn(),
            dtvlsn: self.node.durable_vlsn(),
            members: members.iter().filter_map(|(_, m)| MemberRecord::of(m).ok()).collect(),
            peers,
            dropped_frames: self.dropped_frames,
            refused_connections: self.refused,
            election: *self.node.election().stats(),
            replication: *self.node.stats(),
        }
    }
}

// ----- the admin address -----

/// The way into the node thread: a bounded channel, and a waker for its poll.
#[derive(Clone)]
pub(super) struct Inbox {
    pub(super) tx: SyncSender<Input>,
    pub(super) waker: Arc<Waker>,
    /// Admin connections whose reply is not written yet.
    pub(super) answering: Arc<AtomicUsize>,
}

impl Inbox {
    pub(super) fn send(&self, input: Input) -> Result<()> {
        self.tx.send(input).map_err(|_| anyhow!("the node has stopped"))?;
        self.waker.wake().map_err(|e| anyhow!("waking the node: {e}"))
    }
}

/// Admin connections served at once (a thread each, held until the reply is written:
/// an `append` waits for durability, an idle client for its 10 s read timeout). Beyond, a
/// connection is answered with an error at once and closed, so a flood of them cannot
/// exhaust the process.
pub(super) const MAX_ADMIN_CONNECTIONS: usize = 256;

pub(super) fn spawn_admin(listener: std::net::TcpListener, input: Inbox, stop: Arc<AtomicBool>) {
    let _ = thread::Builder::new().name("harp-admin".into()).spawn(move || {
        for stream in listener.incoming() {
            if stop.load(Ordering::SeqCst) {
                return;
            }
            let Ok(socket) = stream else { continue };
            if input.answering.load(Ordering::SeqCst) >= MAX_ADMIN_CONNECTIONS {
                refuse_admin(&socket);
                continue;
            }
            let (input, answering) = (input.clone(), input.answering.clone());
            answering.fetch_add(1, Ordering::SeqCst);
            let spawned = thread::Builder::new().name("harp-admin-conn".into()).spawn(move || {
                if let Err(e) = serve_admin(socket, &input) {
                    debug!(%e, "admin connection ended");
                }
                input.answering.fetch_sub(1, Ordering::SeqCst);
            });
            if spawned.is_err() {
                answering.fetch_sub(1, Ordering::SeqCst);
                warn!("could not start an admin connection's thread");
            }
        }
    });
}

/// Answers a connection over [`MAX_ADMIN_CONNECTIONS`] with an error (a few bytes into a
/// fresh socket's buffer: the write does not block) and closes it. The client's request is
/// read first for at most 20 ms: a socket closed with unread bytes is reset, and a reset
/// can reach the client before the answer does.
fn refuse_admin(mut socket: &std::net::TcpStream) {
    let limit = MAX_ADMIN_CONNECTIONS;
    warn!(limit, "refused an admin connection: too many open");
    let _ = socket.set_read_timeout(Some(Duration::from_millis(20)));
    let _ = BufReader::new(socket).take(1 << 16).read_line(&mut String::new());
    let error = format!("too many admin connections (at most {limit} at once); try again");
    if let Ok(reply) = serde_json::to_string(&Reply::Error { error, master: None }) {
        let _ = writeln!(socket, "{reply}");
    }
    let _ = socket.shutdown(std::net::Shutdown::Write);
}

fn serve_admin(socket: std::net::TcpStream, input: &Inbox) -> Result<()> {
    socket.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut line = String::new();
    BufReader::new(socket.try_clone()?).take(1 << 20).read_line(&mut line)?;
    let reply = match serde_json::from_str::<Request>(&line) {
        Ok(request) => {
            let (tx, rx) = mpsc::channel();
            input.send(Input::Admin(request, tx))?;
            rx.recv().map_err(|_| anyhow!("node stopped"))?
        }
        Err(e) => Reply::Error { error: format!("bad request: {e}"), master: None },
    };
    let mut out = &socket;
    writeln!(out, "{}", serde_json::to_string(&reply)?)?;
    Ok(())
}

/// Sends one admin request to `addr` and returns the reply (what `harp status`, `harp
/// append` and `harp shutdown` do).
pub fn admin_request(addr: &str, request: &Request, timeout: Duration) -> Result<Reply> {
    let addr: SocketAddr = addr.parse().with_context(|| format!("bad address {addr:?}"))?;
    let socket = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        .with_context(|| format!("connecting to {addr}"))?;
    socket.set_read_timeout(Some(timeout))?;
    let mut out = &socket;
    writeln!(out, "{}", serde_json::to_string(request)?)?;
    let mut line = String::new();
    BufReader::new(&socket)
        .read_line(&mut line)
        .with_context(|| format!("reading the reply from {addr}"))?;
    serde_json::from_str(&line).with_context(|| format!("bad reply {line:?}"))
}

#[cfg(test)]
mod tests {
    use super::Request;

    /// The documented form `{"cmd":"restore-point"}` still reads (no member named, the
    /// hold lasts its minute); a joining node names itself.
    #[test]
    fn a_restore_point_request_may_name_the_member_it_is_for() {
        let plain: Request = serde_json::from_str(r#"{"cmd":"restore-point"}"#).unwrap();
        assert!(matches!(plain, Request::RestorePoint { member: None }), "{plain:?}");
        let named: Request =
            serde_json::from_str(r#"{"cmd":"restore-point","member":"n4"}"#).unwrap();
        assert!(matches!(named, Request::RestorePoint { member: Some(ref m) } if m == "n4"));
        let sent = serde_json::to_string(&Request::RestorePoint { member: None }).unwrap();
        assert_eq!(sent, r#"{"cmd":"restore-point","member":null}"#);
    }
}
