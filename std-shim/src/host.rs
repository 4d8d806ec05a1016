//! A hosted node: the core's [`Node`] driven by threads, TCP and files.
//!
//! All protocol decisions stay in the core; this module moves bytes, time and storage:
//!
//! - **one node thread** owns the [`Node`] and sleeps in `recv_timeout` until a peer frame,
//!   an admin request or the node's next deadline (an idle node uses no CPU);
//! - **one TCP connection per peer pair**: the member with the smaller name dials (with
//!   backoff 100 ms → 2 s), the other accepts; each connection starts with the harp preamble,
//!   then stream frames (length, message, CRC-32C), `TCP_NODELAY`, a writer thread with a
//!   buffered socket and a bounded queue, and a reader thread that hands whole frames to the
//!   node thread through a bounded channel (backpressure, bounded memory);
//! - an inbound connection is bound to a member by its first message, which must be a
//!   `Handshake` the node accepts ([`Node::check_handshake`]); anything else closes it with a
//!   log line: a wrong preamble, a frame over `max_frame` (checked before it is buffered), a
//!   bad CRC, a frame left unfinished for 5 s;
//! - the log and election record are [`FileLog`] and [`FileStore`] in `data_dir`.
//!
//! [`Host`] is the embeddable API: start from a [`HostConfig`], [`Host::append`] and wait
//! for durability, [`Host::subscribe`] to durable entries and role changes,
//! [`Host::status`], [`Host::shutdown`].

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use harp::election::{Config, Role};
use harp::frame::stream::{self, PreambleReader, StreamDecoder, PREAMBLE};
use harp::membership::{Member, MemberId, Membership};
use harp::node::{Node, NodeConfig, NodeEvent};
use harp::replication::LogStore;
use harp::wire::Message;
use harp::MessageRef;
use serde::{Deserialize, Serialize};
use tracing::{debug, info, warn};

use crate::config::HostConfig;
use crate::store::{FileLog, FileStore};

/// The largest group a hosted node supports.
pub const MAX_MEMBERS: usize = 7;
/// The entry type of application entries written through [`Host::append`].
pub const APP_ENTRY: u8 = 1;
/// Batches of frames waiting to be written to one peer at most (a batch is what one turn of
/// the node thread sends the peer; the window bounds the entries among them). Beyond, a
/// batch is dropped and counted (the protocol resends after a stall) rather than blocking
/// the node thread.
const WRITE_QUEUE: usize = 256;
/// Frames and requests waiting for the node thread at most (readers block beyond: TCP
/// backpressure).
const INPUT_QUEUE: usize = 4096;
/// A peer that leaves a frame unfinished this long is cut off.
const SLOW_FRAME: Duration = Duration::from_secs(5);
const SEGMENT_BYTES: u64 = 64 << 20;

type HostNode = Node<FileStore, FileLog, MAX_MEMBERS>;
type ConnId = u64;

/// A request to the node thread.
enum Input {
    Up {
        conn: ConnId,
        peer: Option<MemberId>,
        tx: SyncSender<Vec<u8>>,
        socket: TcpStream,
    },
    /// Whole frames' bodies, as one read delivered them.
    Frames {
        conn: ConnId,
        bodies: Vec<Vec<u8>>,
    },
    Down {
        conn: ConnId,
    },
    Admin(Request, Sender<Reply>),
    Subscribe(Sender<Notice>),
}

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
    /// The highest VLSN known durable.
    pub dtvlsn: u64,
    /// Each peer.
    pub peers: Vec<PeerStatus>,
    /// Frames dropped because a peer's write queue was full.
    pub dropped_frames: u64,
    /// Connections refused or cut (bad preamble, frame, handshake, slow client).
    pub refused_connections: u64,
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
}

/// Something a subscriber hears about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// This node's role changed.
    Role {
        /// The new role (`master`, `replica`, ...).
        role: String,
        /// The term.
        term: u64,
        /// The master, if known.
        master: Option<String>,
    },
    /// An application entry became durable (in VLSN order, each once).
    Durable {
        /// Its VLSN.
        vlsn: u64,
        /// Its data.
        data: Vec<u8>,
    },
}

/// A running hosted node (see the [module docs](self)).
pub struct Host {
    input: SyncSender<Input>,
    node_thread: Option<JoinHandle<Result<()>>>,
    stop: Arc<AtomicBool>,
    listen: SocketAddr,
}

impl Host {
    /// Opens the stores in `config.data_dir`, binds the listen (and admin) address and
    /// starts the node. Fails before anything runs on a bad configuration or store.
    pub fn start(config: HostConfig) -> Result<Host> {
        config.validate()?;
        let (members, me) = membership(&config)?;
        let store = FileStore::open(&config.data_dir.join("election"))
            .with_context(|| format!("opening {}", config.data_dir.display()))?;
        let (log, recovery) =
            FileLog::open(&config.data_dir.join("log"), config.durability, SEGMENT_BYTES)
                .map_err(|e| anyhow!("opening the log: {e}"))?;
        if recovery.torn_bytes > 0 {
            warn!(bytes = recovery.torn_bytes, "cut a torn record off the log (a crash mid-write)");
        }
        info!(entries = recovery.entries, last = log.last_vlsn(), "log opened");
        let node_config = NodeConfig {
            election: Config {
                heartbeat_interval_ms: config.heartbeat_ms,
                election_timeout_ms: config.election_timeout_ms,
                ..Config::default()
            },
            ack_policy: config.ack_policy()?,
            window: config.window,
            // Group commit: one fsync per batch of appends or replicated entries.
            sync: harp::node::SyncMode::Batched,
        };
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
            ^ u64::from(std::process::id());
        let node = Node::new(members.clone(), me, node_config, store, log, seed, 0)
            .map_err(|e| anyhow!("starting the node: {e:?}"))?;
        let listener = TcpListener::bind(config.listen)
            .with_context(|| format!("binding {}", config.listen))?;
        let admin = match config.admin {
            Some(addr) => {
                Some(TcpListener::bind(addr).with_context(|| format!("binding admin {addr}"))?)
            }
            None => None,
        };
        let (input, inputs) = mpsc::sync_channel(INPUT_QUEUE);
        let stop = Arc::new(AtomicBool::new(false));
        let links = Links { input: input.clone(), stop: stop.clone(), max_frame: config.max_frame };
        spawn_listener(listener, links.clone());
        for (id, member) in members.iter().filter(|(id, _)| *id != me) {
            if config.name.as_str() < member.name.as_str() {
                let addr = address_of(&config, &member.name)?;
                spawn_dialer(id, member.name.to_string(), addr, links.clone());
            }
        }
        if let Some(admin) = admin {
            spawn_admin(admin, input.clone(), stop.clone());
        }
        let name = config.name.clone();
        let worker = Worker::new(node, members, name, stop.clone());
        let node_thread = thread::Builder::new()
            .name(format!("harp-node-{}", config.name))
            .spawn(move || worker.run(inputs))?;
        Ok(Host { input, node_thread: Some(node_thread), stop, listen: config.listen })
    }

    /// Appends `entries` on this node (it must be the master) and waits until all are
    /// durable; returns their VLSNs.
    pub fn append(&self, entries: Vec<String>) -> Result<Vec<u64>> {
        match self.ask(Request::Append { data: entries })? {
            Reply::Appended { vlsns } => Ok(vlsns),
            Reply::Error { error, master } => Err(anyhow!("{error} (master: {master:?})")),
            other => Err(anyhow!("unexpected reply {other:?}")),
        }
    }

    /// The node's state.
    pub fn status(&self) -> Result<Status> {
        match self.ask(Request::Status)? {
            Reply::Status(s) => Ok(s),
            other => Err(anyhow!("unexpected reply {other:?}")),
        }
    }

    /// Durable application entries and role changes, from now on.
    pub fn subscribe(&self) -> Result<Receiver<Notice>> {
        let (tx, rx) = mpsc::channel();
        self.input.send(Input::Subscribe(tx)).map_err(|_| anyhow!("the node has stopped"))?;
        Ok(rx)
    }

    /// Asks the node thread.
    pub fn ask(&self, request: Request) -> Result<Reply> {
        let (tx, rx) = mpsc::channel();
        self.input.send(Input::Admin(request, tx)).map_err(|_| anyhow!("the node has stopped"))?;
        rx.recv().map_err(|_| anyhow!("the node stopped before answering"))
    }

    /// Stops gracefully (a master first lets a replica catch up) and waits for the node.
    pub fn shutdown(mut self) -> Result<()> {
        let _ = self.ask(Request::Shutdown);
        self.join()
    }

    /// Waits until the node stops (after a shutdown request, e.g. from `harp shutdown`).
    pub fn join(&mut self) -> Result<()> {
        let result = match self.node_thread.take() {
            Some(t) => t.join().map_err(|_| anyhow!("the node thread panicked"))?,
            None => Ok(()),
        };
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(&self.listen, Duration::from_millis(100)); // wake accept
        result
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// The group as configured: members sorted by name (every node numbers them alike), node
/// ids 1, 2, ... in that order.
fn membership(config: &HostConfig) -> Result<(Membership<MAX_MEMBERS>, MemberId)> {
    let mut all: Vec<(String, harp::NodeType, u32, SocketAddr)> =
        config.peers.iter().map(|p| (p.name.clone(), p.node_type, p.priority, p.address)).collect();
    all.push((config.name.clone(), config.node_type, config.priority, config.listen));
    all.sort_by(|a, b| a.0.cmp(&b.0));
    let mut group = Membership::named(&config.group).map_err(|e| anyhow!("group name: {e:?}"))?;
    for (node_id, (name, node_type, priority, addr)) in (1u32..).zip(&all) {
        let member = Member::new(name, *node_type, *priority, node_id)
            .and_then(|m| m.with_address(&addr.ip().to_string(), addr.port()))
            .map_err(|e| anyhow!("member {name}: {e:?}"))?;
        group.add(member).map_err(|e| anyhow!("member {name}: {e:?}"))?;
    }
    let me = group.id_of(&config.name).ok_or_else(|| anyhow!("this node is not a member"))?;
    Ok((group, me))
}

fn address_of(config: &HostConfig, name: &str) -> Result<SocketAddr> {
    config
        .peers
        .iter()
        .find(|p| p.name == name)
        .map(|p| p.address)
        .ok_or_else(|| anyhow!("no address for {name}"))
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Master => "master",
        Role::Replica { .. } => "replica",
        Role::Electing => "electing",
        Role::Unknown => "unknown",
        Role::Stopped => "stopped",
    }
}

// ----- the node thread -----

struct Conn {
    tx: SyncSender<Vec<u8>>,
    peer: Option<MemberId>,
    socket: TcpStream,
}

struct Waiter {
    last: u64,
    vlsns: Vec<u64>,
    reply: Sender<Reply>,
}

struct Worker {
    node: HostNode,
    members: Membership<MAX_MEMBERS>,
    name: String,
    start: Instant,
    conns: HashMap<ConnId, Conn>,
    by_peer: [Option<ConnId>; MAX_MEMBERS],
    waiters: Vec<Waiter>,
    subscribers: Vec<Sender<Notice>>,
    notified: u64,
    role: Option<(Role, u64)>,
    stop: Arc<AtomicBool>,
    dropped_frames: u64,
    refused: u64,
}

impl Worker {
    fn new(
        node: HostNode,
        members: Membership<MAX_MEMBERS>,
        name: String,
        stop: Arc<AtomicBool>,
    ) -> Self {
        let notified = node.durable_vlsn();
        Worker {
            node,
            members,
            name,
            start: Instant::now(),
            conns: HashMap::new(),
            by_peer: [None; MAX_MEMBERS],
            waiters: Vec::new(),
            subscribers: Vec::new(),
            notified,
            role: None,
            stop,
            dropped_frames: 0,
            refused: 0,
        }
    }

    fn now(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    fn run(mut self, inputs: Receiver<Input>) -> Result<()> {
        let mut stopped = false;
        while !stopped {
            let now = self.now();
            let wait = self.node.poll_timeout().map_or(1000, |t| t.saturating_sub(now)).min(1000);
            match inputs.recv_timeout(Duration::from_millis(wait)) {
                Ok(input) => self.on_input(input),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            let now = self.now();
            if self.node.poll_timeout().is_some_and(|t| t <= now) {
                self.node.handle_timeout(now);
            }
            self.send_all();
            stopped = self.after_events();
        }
        for conn in self.conns.values() {
            let _ = conn.socket.shutdown(Shutdown::Both);
        }
        for w in self.waiters.drain(..) {
            let _ = w.reply.send(Reply::Error { error: "the node stopped".into(), master: None });
        }
        self.stop.store(true, Ordering::SeqCst);
        info!(node = %self.name, "stopped");
        Ok(())
    }

    fn on_input(&mut self, input: Input) {
        match input {
            Input::Up { conn, peer, tx, socket } => {
                self.conns.insert(conn, Conn { tx, peer: None, socket });
                if let Some(peer) = peer {
                    self.bind(conn, peer);
                    self.node.connect(peer);
                }
            }
            Input::Frames { conn, bodies } => {
                for body in bodies {
                    self.on_frame(conn, &body);
                }
            }
            Input::Down { conn } => {
                if let Some(c) = self.conns.remove(&conn) {
                    if let Some(peer) = c.peer {
                        if self.by_peer.get(peer.index()).copied().flatten() == Some(conn) {
                            self.by_peer[peer.index()] = None;
                            self.node.disconnect(peer);
                            info!(peer = %self.peer_name(peer), "link down");
                        }
                    }
                }
            }
            Input::Admin(request, reply) => self.on_admin(request, reply),
            Input::Subscribe(tx) => self.subscribers.push(tx),
        }
    }

    fn bind(&mut self, conn: ConnId, peer: MemberId) {
        if let Some(c) = self.conns.get_mut(&conn) {
            c.peer = Some(peer);
        }
        if let Some(slot) = self.by_peer.get_mut(peer.index()) {
            *slot = Some(conn);
        }
    }

    fn peer_name(&self, id: MemberId) -> String {
        self.members.known(id).map_or_else(|| format!("#{}", id.index()), |m| m.name.to_string())
    }

    fn on_frame(&mut self, conn: ConnId, body: &[u8]) {
        let Some(peer) = self.conns.get(&conn).map(|c| c.peer) else { return };
        let msg = match Message::decode(body) {
            Ok(msg) => msg,
            Err(e) => {
                debug!(%e, "ignored a message that does not decode");
                return;
            }
        };
        let now = self.now();
        match (peer, msg) {
            (Some(peer), msg) => self.node.handle(now, peer, &msg),
            (None, Message::Core(MessageRef::Handshake { node_name, group_name, node_type })) => {
                match self.node.check_handshake(node_name, group_name, node_type) {
                    Ok(id) => {
                        self.bind(conn, id);
                        self.node.connect(id);
                        self.node.handle(now, id, &msg);
                    }
                    Err(reason) => {
                        warn!(node_name, group_name, reason, "refused a connection's handshake");
                        self.refused += 1;
                        let answer =
                            MessageRef::HandshakeResponse { accepted: false, reason: Some(reason) };
                        self.write(conn, &Message::Core(answer));
                        self.close(conn);
                    }
                }
            }
            (None, other) => {
                warn!(message = ?other, "refused a connection that did not start with a handshake");
                self.refused += 1;
                self.close(conn);
            }
        }
    }

    fn close(&mut self, conn: ConnId) {
        if let Some(c) = self.conns.remove(&conn) {
            let _ = c.socket.shutdown(Shutdown::Both);
        }
    }

    /// Encodes `msg` as a stream frame onto `conn`'s write queue.
    fn write(&mut self, conn: ConnId, msg: &Message<'_>) {
        let mut frame = vec![0u8; stream::frame_len(msg)];
        if let Ok(n) = stream::encode_frame(msg, &mut frame) {
            frame.truncate(n);
            self.enqueue(conn, frame);
        }
    }

    /// Puts bytes on `conn`'s write queue; a full queue drops them, counted and logged.
    fn enqueue(&mut self, conn: ConnId, bytes: Vec<u8>) {
        let Some(c) = self.conns.get(&conn) else { return };
        if let Err(TrySendError::Full(_)) = c.tx.try_send(bytes) {
            self.dropped_frames += 1;
            if self.dropped_frames.is_power_of_two() {
                let peer = c.peer.map(|p| self.peer_name(p)).unwrap_or_default();
                warn!(dropped = self.dropped_frames, peer, "write queue full: frames dropped");
            }
        }
    }

    /// Encodes everything the node has to send, one buffer of frames per peer (one queue
    /// item, one wake-up of its writer), and queues it.
    fn send_all(&mut self) {
        let mut out: Vec<Option<Vec<u8>>> = vec![None; MAX_MEMBERS];
        while let Some(t) = self.node.poll_transmit() {
            let Some(buf) = out.get_mut(t.to.index()) else { continue };
            let buf = buf.get_or_insert_with(Vec::new);
            let at = buf.len();
            buf.resize(at + stream::frame_len(t.message), 0);
            match stream::encode_frame(t.message, &mut buf[at..]) {
                Ok(n) => buf.truncate(at + n),
                Err(_) => buf.truncate(at),
            }
        }
        let out =
            out.into_iter().enumerate().filter_map(|(i, b)| Some((MemberId::new(i as u8), b?)));
        for (to, frames) in out {
            if let Some(conn) = self.by_peer.get(to.index()).copied().flatten() {
                self.enqueue(conn, frames);
            }
        }
    }

    /// Handles the node's events; true once the node has stopped.
    fn after_events(&mut self) -> bool {
        let mut stopped = false;
        while let Some(event) = self.node.poll_event() {
            match event {
                NodeEvent::Stopped | NodeEvent::Removed => stopped = true,
                NodeEvent::HandshakeRefused { member } => {
                    warn!(peer = %self.peer_name(member), "our handshake was refused");
                }
                NodeEvent::NeedsRestore { member, needed } => {
                    warn!(peer = %self.peer_name(member), needed, "replica needs a restore");
                }
                NodeEvent::StorageFailed => warn!("a store write failed"),
                _ => {}
            }
        }
        self.report_role();
        self.report_durable();
        if !matches!(self.node.role(), Role::Master) {
            for w in self.waiters.drain(..) {
                let error = "this node stopped being master before the entries were durable (they may still become durable)";
                let _ = w.reply.send(Reply::Error { error: error.into(), master: None });
            }
        }
        stopped
    }

    fn report_role(&mut self) {
        let role = self.node.role();
        let term = self.node.election().term();
        if self.role == Some((role, term)) {
            return;
        }
        self.role = Some((role, term));
        let master = self.node.election().master().map(|m| self.peer_name(m));
        let leader = master.as_deref().unwrap_or("none");
        info!(node = %self.name, role = role_name(role), term, master = leader, "role");
        let notice = Notice::Role { role: role_name(role).into(), term, master };
        self.subscribers.retain(|s| s.send(notice.clone()).is_ok());
    }

    fn report_durable(&mut self) {
        let durable = self.node.durable_vlsn().min(self.node.log().last_vlsn());
        if self.waiters.iter().any(|w| w.last <= durable) {
            let (done, waiting): (Vec<Waiter>, Vec<Waiter>) =
                self.waiters.drain(..).partition(|w| w.last <= durable);
            self.waiters = waiting;
            for w in done {
                let _ = w.reply.send(Reply::Appended { vlsns: w.vlsns });
            }
        }
        let from = self.notified.saturating_add(1).max(self.node.log().first_vlsn());
        if durable > self.notified && !self.subscribers.is_empty() {
            for vlsn in from..=durable {
                let Some(entry) = self.node.log().entry(vlsn).filter(|e| e.entry_type == APP_ENTRY)
                else {
                    continue;
                };
                let notice = Notice::Durable { vlsn, data: entry.data.to_vec() };
                self.subscribers.retain(|s| s.send(notice.clone()).is_ok());
            }
        }
        self.notified = self.notified.max(durable);
    }

    fn on_admin(&mut self, request: Request, reply: Sender<Reply>) {
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
                let _ = reply.send(Reply::Entries { entries, last: log.last_vlsn() });
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
            Some(&last) => self.waiters.push(Waiter { last, vlsns, reply }),
            None => {
                let _ = reply.send(Reply::Appended { vlsns });
            }
        }
    }

    fn status(&self) -> Status {
        let me = self.node.election().me();
        let peers = self
            .members
            .iter()
            .filter(|(id, _)| *id != me)
            .map(|(id, m)| {
                let progress = self.node.progress(id);
                PeerStatus {
                    name: m.name.to_string(),
                    connected: self.node.is_connected(id),
                    matched: progress.map(|p| p.matched),
                    rtt_ms: progress.and_then(|p| p.round_trip_ms),
                }
            })
            .collect();
        Status {
            name: self.name.clone(),
            role: role_name(self.node.role()).into(),
            term: self.node.election().term(),
            master: self.node.election().master().map(|m| self.peer_name(m)),
            vlsn: self.node.log().last_vlsn(),
            dtvlsn: self.node.durable_vlsn(),
            peers,
            dropped_frames: self.dropped_frames,
            refused_connections: self.refused,
        }
    }
}

// ----- connections -----

#[derive(Clone)]
struct Links {
    input: SyncSender<Input>,
    stop: Arc<AtomicBool>,
    max_frame: usize,
}

fn next_conn() -> ConnId {
    use std::sync::atomic::AtomicU64;
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

fn spawn_listener(listener: TcpListener, links: Links) {
    let _ = thread::Builder::new().name("harp-listen".into()).spawn(move || {
        for stream in listener.incoming() {
            if links.stop.load(Ordering::SeqCst) {
                return;
            }
            match stream {
                Ok(socket) => {
                    let links = links.clone();
                    let _ = thread::Builder::new().name("harp-conn".into()).spawn(move || {
                        let from = socket.peer_addr().ok();
                        if let Err(e) = run_conn(socket, None, &links) {
                            warn!(?from, reason = %e, "closed an inbound connection");
                        }
                    });
                }
                Err(e) => warn!(%e, "accept failed"),
            }
        }
    });
}

fn spawn_dialer(peer: MemberId, name: String, addr: SocketAddr, links: Links) {
    let _ = thread::Builder::new().name(format!("harp-dial-{name}")).spawn(move || {
        let mut backoff = Duration::from_millis(100);
        while !links.stop.load(Ordering::SeqCst) {
            match TcpStream::connect_timeout(&addr, Duration::from_secs(1)) {
                Ok(socket) => {
                    backoff = Duration::from_millis(100);
                    info!(peer = %name, %addr, "connected");
                    if let Err(e) = run_conn(socket, Some(peer), &links) {
                        info!(peer = %name, reason = %e, "link to peer closed");
                    }
                }
                Err(e) => debug!(peer = %name, %e, "connect failed; retrying"),
            }
            thread::sleep(backoff);
            backoff = (backoff * 2).min(Duration::from_secs(2));
        }
    });
}

/// Runs one connection: a writer thread, and this thread reading frames until the
/// connection ends; the node thread hears of it going up and down.
fn run_conn(socket: TcpStream, peer: Option<MemberId>, links: &Links) -> io::Result<()> {
    socket.set_nodelay(true)?;
    socket.set_read_timeout(Some(Duration::from_secs(1)))?;
    socket.set_write_timeout(Some(Duration::from_secs(10)))?;
    let conn = next_conn();
    let (tx, rx) = mpsc::sync_channel::<Vec<u8>>(WRITE_QUEUE);
    let writer = socket.try_clone()?;
    thread::Builder::new().name("harp-write".into()).spawn(move || write_loop(writer, rx))?;
    let up = Input::Up { conn, peer, tx, socket: socket.try_clone()? };
    links.input.send(up).map_err(|_| io::Error::other("node stopped"))?;
    let result = read_loop(socket, conn, links);
    let _ = links.input.send(Input::Down { conn });
    result
}

fn write_loop(socket: TcpStream, rx: Receiver<Vec<u8>>) {
    let mut out = BufWriter::with_capacity(64 * 1024, &socket);
    let result = (|| -> io::Result<()> {
        out.write_all(&PREAMBLE)?;
        out.flush()?;
        while let Ok(frame) = rx.recv() {
            out.write_all(&frame)?;
            while let Ok(more) = rx.try_recv() {
                out.write_all(&more)?;
            }
            out.flush()?;
        }
        Ok(())
    })();
    if let Err(e) = result {
        debug!(%e, "write side closed");
    }
    let _ = socket.shutdown(Shutdown::Both);
}

fn read_loop(mut socket: TcpStream, conn: ConnId, links: &Links) -> io::Result<()> {
    let mut preamble = PreambleReader::new();
    let mut greeted = false;
    let mut decoder =
        StreamDecoder::new(vec![0u8; links.max_frame + stream::OVERHEAD], links.max_frame);
    let mut buf = vec![0u8; 64 * 1024];
    let mut partial_since: Option<Instant> = None;
    loop {
        if links.stop.load(Ordering::SeqCst) {
            return Ok(());
        }
        let n = match socket.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                if partial_since.is_some_and(|t| t.elapsed() > SLOW_FRAME) {
                    return Err(io::Error::other(
                        "a frame left unfinished for 5 s (slow or stuck peer)",
                    ));
                }
                continue;
            }
            Err(e) => return Err(e),
        };
        let mut input = &buf[..n];
        if !greeted {
            greeted = preamble
                .push(&mut input)
                .map_err(|e| io::Error::other(format!("bad preamble: {e}")))?;
        }
        let mut bodies = Vec::new();
        let mut failed = None;
        while greeted && !input.is_empty() {
            match decoder.push_frame(&mut input) {
                Ok(Some(body)) => bodies.push(body.to_vec()),
                Ok(None) => break,
                Err(e) => {
                    failed = Some(io::Error::other(format!("bad frame: {e}")));
                    break;
                }
            }
        }
        if !bodies.is_empty() {
            let frames = Input::Frames { conn, bodies };
            links.input.send(frames).map_err(|_| io::Error::other("node stopped"))?;
        }
        if let Some(e) = failed {
            return Err(e);
        }
        let idle = greeted && decoder.is_idle();
        partial_since = if idle { None } else { partial_since.or(Some(Instant::now())) };
    }
}

// ----- the admin address -----

fn spawn_admin(listener: TcpListener, input: SyncSender<Input>, stop: Arc<AtomicBool>) {
    let _ = thread::Builder::new().name("harp-admin".into()).spawn(move || {
        for stream in listener.incoming() {
            if stop.load(Ordering::SeqCst) {
                return;
            }
            let Ok(socket) = stream else { continue };
            let input = input.clone();
            let _ = thread::Builder::new().name("harp-admin-conn".into()).spawn(move || {
                if let Err(e) = serve_admin(socket, &input) {
                    debug!(%e, "admin connection ended");
                }
            });
        }
    });
}

fn serve_admin(socket: TcpStream, input: &SyncSender<Input>) -> Result<()> {
    socket.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut line = String::new();
    BufReader::new(socket.try_clone()?).take(1 << 20).read_line(&mut line)?;
    let reply = match serde_json::from_str::<Request>(&line) {
        Ok(request) => {
            let (tx, rx) = mpsc::channel();
            input.send(Input::Admin(request, tx)).map_err(|_| anyhow!("node stopped"))?;
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
    let socket = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
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
