//! A hosted node: the core's [`Node`] driven by threads, TCP and files.
//!
//! All protocol decisions stay in the core; this module moves bytes, time and storage:
//!
//! - **one node thread** owns the [`Node`] and every socket: it sleeps in a `mio` poll until
//!   a socket is ready, an admin request arrives or the node's next deadline (an idle node
//!   uses no CPU), reads whole frames straight into `Node::handle` and writes what the node
//!   transmits straight to the sockets, without blocking (no thread hand-off on the
//!   replication path);
//! - **one TCP connection per peer pair**: the member with the smaller name dials (with
//!   backoff 100 ms → 2 s), the other accepts; each connection starts with the harp preamble,
//!   then stream frames (length, message, CRC-32C), `TCP_NODELAY`, a bounded output buffer
//!   per connection, the socket read and written through `embedded-io-adapters` (the
//!   embedded-io traits the core's framing is written against); a peer that does not read is not read from either past TCP's window
//!   (backpressure, bounded memory);
//! - an inbound connection is bound to a member by its first message, which must be a
//!   `Handshake` the node accepts ([`Node::check_handshake`]); anything else closes it with a
//!   log line: a wrong preamble, a frame over `max_frame` (checked before it is buffered), a
//!   bad CRC, a frame left unfinished for 5 s;
//! - the log and election record are [`FileLog`] and [`FileStore`] in `data_dir`.
//!
//! [`Host`] is the embeddable API: start from a [`HostConfig`], [`Host::append`] and wait
//! for durability, [`Host::subscribe`] to durable entries and role changes,
//! [`Host::status`], [`Host::shutdown`]. The admin address speaks [`Request`] and
//! [`Reply`] (one JSON line each; [`admin_request`] is the client).

use std::collections::HashMap;
use std::io;
use std::net::{Shutdown, SocketAddr};
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use embedded_io_adapters::std::FromStd;
use harp::election::{Config, Role};
use harp::embedded_io;
use harp::frame::stream::{self, PreambleReader, StreamDecoder, PREAMBLE};
use harp::membership::{MemberId, Membership};
use harp::node::{CompactError, Node, NodeConfig, NodeEvent};
use harp::replication::{self, LogStore};
use harp::wire::Message;
use harp::MessageRef;
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};
use tracing::{debug, error, info, warn};

mod admin;

pub use admin::{admin_request, PeerStatus, Reply, Request, Status};
use admin::{spawn_admin, Inbox};

use crate::config::HostConfig;
use crate::members::{self, BaseMembers, Joiner, MemberRecord};
use crate::restore::{self, LOG_DIR};
use crate::store::{DirLock, FileLog, FileStore};

/// The largest group a hosted node supports.
pub const MAX_MEMBERS: usize = 7;
/// The entry type of application entries written through [`Host::append`].
pub const APP_ENTRY: u8 = 1;
/// Unsent bytes per connection at most (the replication window bounds the entries among
/// them). Beyond, a frame is dropped and counted (the protocol resends after a stall)
/// rather than blocking the node thread.
const WRITE_LIMIT: usize = 16 << 20;
/// Admin requests waiting for the node thread at most (their senders block beyond).
const INPUT_QUEUE: usize = 1024;
/// Inbound connections not yet bound to a member by a `Handshake`, at most; beyond, a new
/// one is refused at once, so a flood of connections cannot exhaust memory. Each must
/// handshake within `SLOW_FRAME`, so idle ones cannot hold the slots either. (Members'
/// links are not counted: at most one per member.)
const MAX_UNBOUND: usize = 32;
/// A peer that leaves a frame unfinished this long is cut off.
const SLOW_FRAME: Duration = Duration::from_secs(5);
/// A connection whose socket takes none of the bytes waiting for it this long is cut (the
/// peer stopped reading); the link is redialled or re-accepted and the stream resyncs.
const WRITE_STALL: Duration = Duration::from_secs(10);
/// How long log retention keeps the log from a restore point this node handed out (to a
/// node joining through it, or to `harp restore`) at most: long enough for that node to
/// start and connect, after which the streaming floor keeps what it still needs.
const RESTORE_POINT_HOLD_MS: u64 = 60_000;
/// An outbound connect that has not completed after this long is abandoned (and retried).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Redial backoff: from this, doubling after each failure...
const MIN_BACKOFF: Duration = Duration::from_millis(100);
/// ... up to this.
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// Bytes taken from a socket per `read`.
const READ_CHUNK: usize = 64 * 1024;
const WAKER: Token = Token(0);
const LISTENER: Token = Token(1);
const SEGMENT_BYTES: u64 = 64 << 20;

type HostNode = Node<FileStore, FileLog, MAX_MEMBERS>;
type ConnId = u64;

/// Retention keeps the log from `vlsn` (the entries after a restore point handed out) until
/// `member` is connected, or until `until` (see [`RESTORE_POINT_HOLD_MS`]).
#[derive(Debug)]
struct RestoreHold {
    vlsn: u64,
    until: u64,
    member: Option<String>,
}

/// A request to the node thread.
enum Input {
    Admin(Request, Sender<Reply>),
    Subscribe(Sender<Notice>),
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
    input: Inbox,
    node_thread: Option<JoinHandle<Result<()>>>,
    stop: Arc<AtomicBool>,
}

impl Host {
    /// Opens the stores in `config.data_dir`, binds the listen (and admin) address and
    /// starts the node. Fails before anything runs on a bad configuration or store.
    pub fn start(config: HostConfig) -> Result<Host> {
        config.validate()?;
        let lock = DirLock::acquire(&config.data_dir)
            .with_context(|| format!("locking {}", config.data_dir.display()))?;
        restore::finish_interrupted(&config.data_dir)?;
        let base = members::load_or_init(&config)?;
        let store = FileStore::open(&config.data_dir.join("election"))
            .with_context(|| format!("opening {}", config.data_dir.display()))?;
        let (log, recovery) =
            FileLog::open(&config.data_dir.join(LOG_DIR), config.durability, SEGMENT_BYTES)
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
        let group = base.membership()?;
        // A joining node is the base's member of its name only if that member has its node
        // id too: a reused name may still name the removed member in an older base.
        let own = base.joining.as_ref().filter(|own| own.member.name == config.name);
        let me = match own {
            Some(own) => group.id_of_member(&own.member.name, own.member.node_id),
            None => group.id_of(&config.name),
        };
        let node = match (me, own) {
            (Some(me), _) => Node::new(group, me, node_config, store, log, seed, 0),
            (None, Some(Joiner { member, added_at })) => {
                let own = member.to_member()?;
                Node::new_joining(group, own, *added_at, node_config, store, log, seed, 0)
            }
            (None, None) => bail!(
                "{} is not a member of group {} (removed from it?)",
                config.name,
                config.group
            ),
        }
        .map_err(|e| anyhow!("starting the node: {e:?}"))?;
        let mut listener = TcpListener::bind(config.listen)
            .with_context(|| format!("binding {}", config.listen))?;
        let admin = match config.admin {
            Some(addr) => {
                if !addr.ip().is_loopback() {
                    warn!(%addr, "the admin address is not a loopback one: whoever reaches it can append, change the membership and stop the node (docs/hosted.md, \"Trust\")");
                }
                Some(
                    std::net::TcpListener::bind(addr)
                        .with_context(|| format!("binding admin {addr}"))?,
                )
            }
            None => None,
        };
        let poll = Poll::new()?;
        poll.registry().register(&mut listener, LISTENER, Interest::READABLE)?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let (tx, inputs) = mpsc::sync_channel(INPUT_QUEUE);
        let input = Inbox { tx, waker, answering: Default::default() };
        let stop = Arc::new(AtomicBool::new(false));
        if let Some(admin) = admin {
            spawn_admin(admin, input.clone(), stop.clone());
        }
        let notified = node.durable_vlsn();
        let mut worker = Worker {
            node,
            name: config.name.clone(),
            start: Instant::now(),
            poll,
            listener,
            inputs,
            max_frame: config.max_frame,
            conns: HashMap::new(),
            next_conn: 2, // tokens 0 and 1 are the waker and the listener
            by_peer: [None; MAX_MEMBERS],
            dials: std::array::from_fn(|_| None),
            linked: std::array::from_fn(|_| None),
            data_dir: config.data_dir.clone(),
            durability: config.durability,
            read_buf: vec![0u8; READ_CHUNK],
            frames: Vec::new(),
            framed: HashMap::new(),
            waiters: Vec::new(),
            subscribers: Vec::new(),
            notified,
            role: None,
            stop: stop.clone(),
            dropped_frames: 0,
            refused: 0,
            retain: config.retain_entries,
            retention_failing: false,
            restore_hold: None,
            _lock: lock,
        };
        worker.sync_links();
        let node_thread = thread::Builder::new()
            .name(format!("harp-node-{}", config.name))
            .spawn(move || worker.run())?;
        Ok(Host { input, node_thread: Some(node_thread), stop })
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
        self.input.send(Input::Subscribe(tx))?;
        Ok(rx)
    }

    /// Asks the node thread.
    pub fn ask(&self, request: Request) -> Result<Reply> {
        let (tx, rx) = mpsc::channel();
        self.input.send(Input::Admin(request, tx))?;
        rx.recv().map_err(|_| anyhow!("the node stopped before answering"))
    }

    /// A handle that requests a graceful shutdown from another thread.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle { input: self.input.clone() }
    }

    /// Stops gracefully (a master first lets a replica catch up) and waits for the node.
    pub fn shutdown(mut self) -> Result<()> {
        let _ = self.ask(Request::Shutdown);
        self.join()
    }

    /// Waits until the node stops (after a shutdown request, e.g. from `harp shutdown`).
    /// Admin replies still being written (the one to `harp shutdown`, say) get up to a
    /// second, so a process that ends after this does not cut them off.
    pub fn join(&mut self) -> Result<()> {
        let result = match self.node_thread.take() {
            Some(t) => t.join().map_err(|_| anyhow!("the node thread panicked"))?,
            None => Ok(()),
        };
        self.stop.store(true, Ordering::SeqCst);
        let deadline = Instant::now() + Duration::from_secs(1);
        while self.input.answering.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(1));
        }
        result
    }
}

/// Asks a running [`Host`] to stop gracefully, as [`Host::shutdown`] does, from any thread
/// (a signal handler's, say) and without waiting. Cloneable.
#[derive(Clone)]
pub struct ShutdownHandle {
    input: Inbox,
}

impl ShutdownHandle {
    /// Requests the graceful shutdown; [`Host::join`] returns once it is done. Fails if the
    /// node already stopped.
    pub fn shutdown(&self) -> Result<()> {
        let (reply, _) = mpsc::channel();
        self.input.send(Input::Admin(Request::Shutdown, reply))
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.input.waker.wake();
    }
}

/// The member the link of slot `id` is to, if any: not this node (`me`), and not a slot
/// whose name the view now gives another slot (a reused name's Add moved it there): that
/// slot's connection is dropped, and the peer's next handshake binds to the name's slot.
fn linked_member(
    members: &Membership<MAX_MEMBERS>,
    id: MemberId,
    me: MemberId,
) -> Option<&harp::membership::Member> {
    members.known(id).filter(|m| id != me && members.known_id_of(&m.name) == Some(id))
}

/// Whether members of this type keep the log (monitors and arbiters do not).
fn holds_log(node_type: harp::NodeType) -> bool {
    matches!(node_type, harp::NodeType::Electable | harp::NodeType::Secondary)
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

/// One TCP connection, owned by the node thread.
struct Conn {
    /// The socket, read and written through the embedded-io traits the core's framing is
    /// written against.
    socket: FromStd<TcpStream>,
    /// The member it is bound to (dialed, or named by an accepted `Handshake`).
    peer: Option<MemberId>,
    /// Set while an outbound connect is in progress: when it started.
    connecting: Option<Instant>,
    opened: Instant,
    /// The slot in `Worker::dials` of the dial that opened it.
    dial: Option<usize>,
    preamble: PreambleReader,
    greeted: bool,
    decoder: StreamDecoder<Vec<u8>>,
    /// Since when a frame has been left unfinished.
    partial_since: Option<Instant>,
    /// Bytes not yet taken by the socket (from `out_at` on).
    out: Vec<u8>,
    out_at: usize,
    /// Since when bytes have been waiting without the socket taking any.
    stalled_since: Option<Instant>,
}

impl Conn {
    fn new(socket: TcpStream, max_frame: usize) -> Self {
        Conn {
            socket: FromStd::new(socket),
            peer: None,
            connecting: None,
            opened: Instant::now(),
            dial: None,
            preamble: PreambleReader::new(),
            greeted: false,
            decoder: StreamDecoder::new(vec![0u8; max_frame + stream::OVERHEAD], max_frame),
            partial_since: None,
            out: PREAMBLE.to_vec(),
            out_at: 0,
            stalled_since: None,
        }
    }

    fn pending(&self) -> usize {
        self.out.len().saturating_sub(self.out_at)
    }

    /// Writes what the socket takes without blocking; an error means the link is dead.
    fn flush(&mut self) -> io::Result<()> {
        if self.connecting.is_some() {
            return Ok(());
        }
        let before = self.out_at;
        while self.out_at < self.out.len() {
            match embedded_io::Write::write(&mut self.socket, &self.out[self.out_at..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.out_at += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.stalled_since = match (self.pending(), self.out_at > before) {
            (0, _) => None,
            (_, true) => Some(Instant::now()),
            (_, false) => self.stalled_since.or(Some(Instant::now())),
        };
        if self.out_at == self.out.len() {
            self.out.clear();
            self.out_at = 0;
        } else if self.out_at > self.out.len() / 2 {
            self.out.drain(..self.out_at);
            self.out_at = 0;
        }
        Ok(())
    }
}

/// A peer this node dials (the member with the smaller name dials), in its member slot.
struct Dial {
    name: String,
    addr: SocketAddr,
    conn: Option<ConnId>,
    next_attempt: Instant,
    backoff: Duration,
}

impl Dial {
    /// The link is gone or the connect failed: try again after the backoff, which doubles.
    fn retry_later(&mut self, now: Instant) {
        self.conn = None;
        self.next_attempt = now + self.backoff;
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
    }
}

/// What a frame did to its connection's binding.
enum Bound {
    Unchanged,
    /// An accepted `Handshake` bound it to this member.
    Peer(MemberId),
    /// Refused: close it, after sending these bytes.
    Refused(&'static str, Vec<u8>),
}

/// An admin request waiting until the entries through `last` are durable, and its answer.
struct Waiter {
    last: u64,
    answer: Reply,
    reply: Sender<Reply>,
}

struct Worker {
    node: HostNode,
    name: String,
    start: Instant,
    poll: Poll,
    listener: TcpListener,
    inputs: Receiver<Input>,
    max_frame: usize,
    conns: HashMap<ConnId, Conn>,
    next_conn: ConnId,
    by_peer: [Option<ConnId>; MAX_MEMBERS],
    /// By member slot: the peers this node dials.
    dials: [Option<Dial>; MAX_MEMBERS],
    /// By member slot: the member (name, address) the slot's link and dial are for, as of
    /// the last [`Worker::sync_links`].
    linked: [Option<(String, Option<SocketAddr>)>; MAX_MEMBERS],
    data_dir: std::path::PathBuf,
    durability: crate::store::Durability,
    read_buf: Vec<u8>,
    /// Frames encoded in one turn of `send_all`...
    frames: Vec<u8>,
    /// ... and where each log entry's frame is among them, by VLSN.
    framed: HashMap<u64, Range<usize>>,
    waiters: Vec<Waiter>,
    subscribers: Vec<Sender<Notice>>,
    notified: u64,
    role: Option<(Role, u64)>,
    stop: Arc<AtomicBool>,
    dropped_frames: u64,
    refused: u64,
    /// [`HostConfig::retain_entries`].
    retain: Option<u64>,
    /// The last compaction failed (warned about once).
    retention_failing: bool,
    /// The entries after a restore point handed out, kept for the node starting from it.
    restore_hold: Option<RestoreHold>,
    /// The data directory's lock, let go when the node thread ends.
    _lock: DirLock,
}

impl Worker {
    fn now(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    fn run(mut self) -> Result<()> {
        let mut events = Events::with_capacity(256);
        let mut stopped = false;
        let mut failure = None;
        while !stopped && failure.is_none() && !self.stop.load(Ordering::SeqCst) {
            let wait = self.wait();
            if let Err(e) = self.poll.poll(&mut events, Some(wait)) {
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e.into());
                }
            }
            for event in events.iter() {
                match event.token() {
                    WAKER => {}
                    LISTENER => self.accept(),
                    Token(id) => self.on_ready(id as ConnId, event),
                }
            }
            while let Ok(input) = self.inputs.try_recv() {
                self.on_input(input);
            }
            let now = self.now();
            if self.node.poll_timeout().is_some_and(|t| t <= now) {
                self.node.handle_timeout(now);
            }
            self.check_links();
            self.send_all();
            stopped = self.after_events();
            self.retain_log();
            failure = self.node.log().failure().map(str::to_owned);
        }
        for (_, mut conn) in self.conns.drain() {
            let _ = conn.flush();
            let _ = conn.socket.inner().shutdown(Shutdown::Both);
        }
        for w in self.waiters.drain(..) {
            let _ = w.reply.send(Reply::Error { error: "the node stopped".into(), master: None });
        }
        self.stop.store(true, Ordering::SeqCst);
        if let Some(failure) = failure {
            error!(node = %self.name, %failure, "the log failed: stopped");
            return Err(anyhow!(
                "the log failed ({failure}): the node stopped, so it acknowledges nothing the \
                 disk may not hold; its files keep what was written whole, and a restart \
                 recovers it once the disk works"
            ));
        }
        info!(node = %self.name, "stopped");
        Ok(())
    }

    /// How long the poll may sleep: until the node's deadline, the next dial, or a second
    /// (the granularity of the connect and slow-frame checks).
    fn wait(&self) -> Duration {
        let now = self.now();
        let node = self.node.poll_timeout().map_or(1000, |t| t.saturating_sub(now)).min(1000);
        let dial = self
            .dials
            .iter()
            .flatten()
            .filter(|d| d.conn.is_none())
            .map(|d| d.next_attempt.saturating_duration_since(Instant::now()))
            .min()
            .unwrap_or(Duration::MAX);
        Duration::from_millis(node).min(dial)
    }

    fn on_input(&mut self, input: Input) {
        match input {
            Input::Admin(request, reply) => self.on_admin(request, reply),
            Input::Subscribe(tx) => self.subscribers.push(tx),
        }
    }

    // ----- links -----

    fn register(&mut self, mut conn: Conn) -> Option<ConnId> {
        let id = self.next_conn;
        self.next_conn += 1;
        let interest = Interest::READABLE | Interest::WRITABLE;
        match self.poll.registry().register(conn.socket.inner_mut(), Token(id as usize), interest) {
            Ok(()) => {
                self.conns.insert(id, conn);
                Some(id)
            }
            Err(e) => {
                warn!(%e, "could not watch a connection");
                None
            }
        }
    }

    fn accept(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((socket, from)) => {
                    if self.conns.values().filter(|c| c.peer.is_none()).count() >= MAX_UNBOUND {
                        warn!(%from, limit = MAX_UNBOUND, "refused a connection: too many without a handshake");
                        self.refused += 1;
                        continue;
                    }
                    let _ = socket.set_nodelay(true);
                    debug!(%from, "accepted a connection");
                    self.register(Conn::new(socket, self.max_frame));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    warn!(%e, "accept failed");
                    return;
                }
            }
        }
    }

    /// Dials every peer whose backoff has passed, and cuts connects and frames that take
    /// too long.
    fn check_links(&mut self) {
        let now = Instant::now();
        for i in 0..self.dials.len() {
            let Some(d) = &self.dials[i] else { continue };
            if d.conn.is_some() || d.next_attempt > now {
                continue;
            }
            let (addr, peer) = (d.addr, MemberId::new(i as u8));
            let opened = match TcpStream::connect(addr) {
                Ok(socket) => {
                    let mut conn = Conn::new(socket, self.max_frame);
                    conn.peer = Some(peer);
                    conn.connecting = Some(now);
                    conn.dial = Some(i);
                    self.register(conn)
                }
                Err(e) => {
                    debug!(peer = %d.name, %e, "connect failed; retrying");
                    None
                }
            };
            let Some(d) = &mut self.dials[i] else { continue };
            match opened {
                Some(conn) => d.conn = Some(conn),
                None => d.retry_later(now),
            }
        }
        const UNFINISHED: &str = "a frame left unfinished for 5 s (slow or stuck peer)";
        let late: Vec<(ConnId, &'static str)> = self
            .conns
            .iter()
            .filter_map(|(&id, c)| {
                if c.connecting.is_some_and(|t| now.duration_since(t) > CONNECT_TIMEOUT) {
                    Some((id, "connect timed out"))
                } else if c.partial_since.is_some_and(|t| now.duration_since(t) > SLOW_FRAME) {
                    Some((id, UNFINISHED))
                } else if c.stalled_since.is_some_and(|t| now.duration_since(t) > WRITE_STALL) {
                    Some((id, "the peer took none of our bytes for 10 s"))
                } else if c.peer.is_none() && now.duration_since(c.opened) > SLOW_FRAME {
                    // A first frame still unfinished is why there is no handshake (its bytes
                    // came a moment after the connection opened, so its own clock is behind).
                    let unfinished = c.partial_since.is_some();
                    Some((id, if unfinished { UNFINISHED } else { "no handshake within 5 s" }))
                } else {
                    None
                }
            })
            .collect();
        for (id, reason) in late {
            self.drop_conn(id, reason);
        }
    }

    /// Makes the links follow the membership: a slot whose member changed loses its link
    /// and dial, and this node dials each member with a larger name at the address the
    /// membership gives (the other side dials this node). A removed member keeps its link
    /// while it is still recognised (its removal may be undone).
    fn sync_links(&mut self) {
        let me = self.node.election().me();
        for i in 0..MAX_MEMBERS {
            let id = MemberId::new(i as u8);
            let member = linked_member(self.node.members(), id, me);
            let want =
                member.map(|m| (m.name.to_string(), MemberRecord::of(m).ok().map(|r| r.address)));
            if self.linked[i] == want {
                continue;
            }
            if let Some(conn) = self.by_peer[i] {
                self.drop_conn(conn, "its member slot now holds another member");
            }
            if let Some(conn) = self.dials[i].as_ref().and_then(|d| d.conn) {
                self.drop_conn(conn, "its member slot now holds another member");
            }
            self.dials[i] = match &want {
                Some((name, Some(addr))) if self.name < *name => Some(Dial {
                    name: name.clone(),
                    addr: *addr,
                    conn: None,
                    next_attempt: Instant::now(),
                    backoff: MIN_BACKOFF,
                }),
                Some((name, None)) => {
                    warn!(peer = %name, "no IP address for this member: it is not dialled");
                    None
                }
                _ => None,
            };
            self.linked[i] = want;
        }
    }

    fn on_ready(&mut self, id: ConnId, event: &mio::event::Event) {
        if event.is_writable() && !self.finish_connect(id) {
            return;
        }
        if event.is_readable() || event.is_read_closed() || event.is_error() {
            // A close or an error is read to its end; plain data only until a short read.
            self.read(id, event.is_read_closed() || event.is_error());
        }
        if let Some(c) = self.conns.get_mut(&id) {
            if let Err(e) = c.flush() {
                self.drop_conn(id, &e.to_string());
            }
        }
    }

    /// Completes an outbound connect; false if the connection is gone.
    fn finish_connect(&mut self, id: ConnId) -> bool {
        let Some(c) = self.conns.get_mut(&id) else { return false };
        if c.connecting.is_none() {
            return true;
        }
        if let Ok(Some(e)) | Err(e) = c.socket.inner().take_error() {
            self.drop_conn(id, &format!("connect failed: {e}"));
            return false;
        }
        match c.socket.inner().peer_addr() {
            Ok(addr) => {
                c.connecting = None;
                let _ = c.socket.inner().set_nodelay(true);
                let peer = c.peer;
                let dial = c.dial;
                if let Some(d) = dial.and_then(|i| self.dials.get_mut(i)?.as_mut()) {
                    d.backoff = MIN_BACKOFF;
                    info!(peer = %d.name, %addr, "connected");
                }
                if let Some(peer) = peer {
                    self.bind(id, peer);
                    self.node.connect(peer);
                }
                true
            }
            Err(e) if e.kind() == io::ErrorKind::NotConnected => true, // not yet
            Err(e) => {
                self.drop_conn(id, &format!("connect failed: {e}"));
                false
            }
        }
    }

    /// Reads until the socket has nothing more, handing every whole frame to the node as
    /// it is cut (in place in the read buffer when it lies whole there).
    ///
    /// A read that fills less than the buffer emptied the socket's receive queue, so unless
    /// `to_close` the loop stops there rather than spend a system call on the `WouldBlock`
    /// that would follow (as tokio does): bytes that arrive later raise a new edge-triggered
    /// event. A close or an error the event reports is read through to the end (0 or the
    /// error), since no new event would come for it.
    fn read(&mut self, id: ConnId, to_close: bool) {
        // The connection leaves the map while its frames are handled, so the node and the
        // connection can be borrowed together.
        let Some(mut c) = self.conns.remove(&id) else { return };
        let mut buf = std::mem::take(&mut self.read_buf);
        let end = loop {
            if c.connecting.is_some() {
                break None;
            }
            let n = match embedded_io::Read::read(&mut c.socket, &mut buf) {
                Ok(0) => break Some("closed by the peer".to_string()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break None,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => break Some(e.to_string()),
            };
            if let Err(reason) = self.on_bytes(id, &mut c, &buf[..n]) {
                break Some(reason);
            }
            if n < buf.len() && !to_close {
                break None;
            }
        };
        self.read_buf = buf;
        self.conns.insert(id, c);
        if let Some(reason) = end {
            self.drop_conn(id, &reason);
        }
    }

    /// Handles the frames in `input`; an error ends the connection.
    fn on_bytes(&mut self, id: ConnId, c: &mut Conn, mut input: &[u8]) -> Result<(), String> {
        let now = self.now();
        if !c.greeted {
            c.greeted = c.preamble.push(&mut input).map_err(|e| {
                self.refused += 1;
                e.to_string()
            })?;
        }
        while c.greeted && !input.is_empty() {
            match c.decoder.next_frame(&mut input) {
                Ok(Some(body)) => {
                    let peer = c.peer;
                    match self.on_frame(now, id, peer, body) {
                        Bound::Peer(member) => {
                            c.peer = Some(member);
                        }
                        Bound::Refused(reason, answer) => {
                            c.out.extend_from_slice(&answer);
                            return Err(reason.into());
                        }
                        Bound::Unchanged => {}
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    self.refused += 1;
                    return Err(format!("bad frame: {e}"));
                }
            }
        }
        let idle = c.greeted && c.decoder.is_idle();
        c.partial_since = if idle { None } else { c.partial_since.or(Some(Instant::now())) };
        Ok(())
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
        let member = self.node.members().known(id);
        member.map_or_else(|| format!("#{}", id.index()), |m| m.name.to_string())
    }

    /// Hands one frame from connection `conn` (bound to `peer`, if known) to the node. An
    /// unbound connection's first frame must be a `Handshake` the node accepts.
    fn on_frame(&mut self, now: u64, conn: ConnId, peer: Option<MemberId>, body: &[u8]) -> Bound {
        let msg = match Message::decode(body) {
            Ok(msg) => msg,
            Err(e) => {
                debug!(%e, "ignored a message that does not decode");
                return Bound::Unchanged;
            }
        };
        match (peer, msg) {
            (Some(peer), msg) => {
                self.node.handle(now, peer, &msg);
                Bound::Unchanged
            }
            (None, Message::Core(MessageRef::Handshake { node_name, group_name, node_type })) => {
                match self.node.check_handshake(node_name, group_name, node_type) {
                    Ok(id) => {
                        if let Some(slot) = self.by_peer.get_mut(id.index()) {
                            *slot = Some(conn);
                        }
                        self.node.connect(id);
                        self.node.handle(now, id, &msg);
                        Bound::Peer(id)
                    }
                    Err(refusal) => {
                        let reason = refusal.as_str();
                        warn!(node_name, group_name, reason, "refused a connection's handshake");
                        self.refused += 1;
                        let answer =
                            MessageRef::HandshakeResponse { accepted: false, reason: Some(reason) };
                        let mut frame = vec![0u8; stream::frame_len(answer)];
                        let n = stream::encode_frame(answer, &mut frame).unwrap_or(0);
                        frame.truncate(n);
                        Bound::Refused("handshake refused", frame)
                    }
                }
            }
            (None, other) => {
                warn!(message = ?other, "refused a connection that did not start with a handshake");
                self.refused += 1;
                Bound::Refused("no handshake", Vec::new())
            }
        }
    }

    /// Whether `conn` is the live link of `peer`.
    fn is_link(&self, conn: ConnId, peer: Option<MemberId>) -> bool {
        peer.and_then(|p| self.by_peer.get(p.index()).copied().flatten()) == Some(conn)
    }

    /// Closes a connection (flushing what the socket takes at once), tells the node if it
    /// was a member's link, and schedules the redial if this node dialed it. The reason is
    /// logged first: a peer (or a test) that sees the close can already read it in the log.
    fn drop_conn(&mut self, id: ConnId, reason: &str) {
        let Some(mut c) = self.conns.remove(&id) else { return };
        match c.peer {
            Some(peer) if self.is_link(id, Some(peer)) => {
                info!(peer = %self.peer_name(peer), reason, "link down");
                self.by_peer[peer.index()] = None;
                self.node.disconnect(peer);
            }
            Some(peer) if c.connecting.is_some() => {
                debug!(peer = %self.peer_name(peer), reason, "connect failed; retrying");
            }
            _ => warn!(reason, "closed an inbound connection"),
        }
        let _ = c.flush();
        let _ = self.poll.registry().deregister(c.socket.inner_mut());
        let _ = c.socket.inner().shutdown(Shutdown::Both);
        if let Some(d) = c.dial.and_then(|i| self.dials.get_mut(i)?.as_mut()) {
            d.retry_later(Instant::now());
        }
    }

    /// Encodes everything the node has to send straight into each peer's output, then
    /// writes every output the socket takes. A log entry streamed to several replicas in
    /// one turn is framed (and checksummed) once.
    fn send_all(&mut self) {
        let mut touched = [false; MAX_MEMBERS];
        let mut framed = std::mem::take(&mut self.framed);
        let mut frames = std::mem::take(&mut self.frames);
        while let Some(t) = self.node.poll_transmit() {
            let Some(conn) = self.by_peer.get(t.to.index()).copied().flatten() else { continue };
            let Some(c) = self.conns.get_mut(&conn) else { continue };
            let entry = match t.message {
                Message::Core(MessageRef::LogEntry { vlsn, .. }) => Some(vlsn),
                _ => None,
            };
            let frame = match entry.and_then(|v| framed.get(&v)) {
                Some(span) => &frames[span.clone()],
                None => {
                    let at = frames.len();
                    frames.resize(at + stream::frame_len(t.message), 0);
                    match stream::encode_frame(t.message, &mut frames[at..]) {
                        Ok(n) => frames.truncate(at + n),
                        Err(_) => frames.truncate(at),
                    }
                    if let Some(vlsn) = entry {
                        framed.insert(vlsn, at..frames.len());
                    }
                    &frames[at..]
                }
            };
            if c.pending().saturating_add(frame.len()) > WRITE_LIMIT {
                self.dropped_frames += 1;
                if self.dropped_frames.is_power_of_two() {
                    warn!(dropped = self.dropped_frames, "write buffer full: frames dropped");
                }
                continue;
            }
            c.out.extend_from_slice(frame);
            if entry.is_none() {
                frames.truncate(frames.len() - frame.len());
            }
            if let Some(flag) = touched.get_mut(t.to.index()) {
                *flag = true;
            }
        }
        frames.clear();
        framed.clear();
        self.frames = frames;
        self.framed = framed;
        for (i, _) in touched.iter().enumerate().filter(|(_, t)| **t) {
            let Some(conn) = self.by_peer[i] else { continue };
            if let Some(Err(e)) = self.conns.get_mut(&conn).map(Conn::flush) {
                self.drop_conn(conn, &e.to_string());
            }
        }
    }

    /// Handles the node's events; true once the node has stopped.
    fn after_events(&mut self) -> bool {
        let mut stopped = false;
        while let Some(event) = self.node.poll_event() {
            match event {
                NodeEvent::Stopped => stopped = true,
                NodeEvent::Removed => {
                    info!(node = %self.name, "removed from the group: stopping");
                    stopped = true;
                }
                NodeEvent::MembershipChanged { vlsn } => self.on_membership_changed(vlsn),
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
                let error = "this node stopped being master before the entries (or change) were durable (they may still become durable)";
                let _ = w.reply.send(Reply::Error { error: error.into(), master: None });
            }
        }
        stopped
    }

    /// A membership change was applied: the links follow it, and a member without a log
    /// keeps its new view, its only record of the change (see [`crate::members`]).
    fn on_membership_changed(&mut self, vlsn: u64) {
        let names: Vec<&str> = self.node.members().iter().map(|(_, m)| m.name.as_str()).collect();
        info!(vlsn, members = ?names, "membership changed");
        self.sync_links();
        if vlsn == 0 {
            // A notice: this member keeps no log, and its view is its base.
            if let Err(e) = self.save_base(self.node.base_members().clone()) {
                warn!(error = %format!("{e:#}"), "could not keep the membership");
            }
        }
    }

    /// Keeps `base` as the membership the log starts from ([`crate::members`]).
    fn save_base(&self, base: Membership<MAX_MEMBERS>) -> Result<()> {
        let dir = self.data_dir.join(LOG_DIR);
        // A joining node keeps its own record until the base holds it.
        let joining = BaseMembers::load(&dir)?.and_then(|kept| kept.joining);
        BaseMembers::of(&base)?.joined_by(joining).save(&dir, self.durability)
    }

    /// Log retention ([`HostConfig::retain_entries`]): once a quarter more than that many
    /// entries are held, compacts the log down to that many (in batches, so the compaction
    /// point's file is written once per batch), never past what is durable, synced here and
    /// delivered to subscribers, nor past what a connected replica still has to be sent.
    /// A compaction past a membership change first keeps the base membership it leaves.
    fn retain_log(&mut self) {
        let Some(retain) = self.retain else { return };
        let log = self.node.log();
        let (first, next) = (log.first_vlsn(), log.last_vlsn().saturating_add(1));
        if next.saturating_sub(first) <= retain.saturating_add(retain / 4) {
            return;
        }
        let target = next
            .saturating_sub(retain)
            .min(self.notified.saturating_add(1))
            .min(self.streaming_floor())
            .min(self.restore_hold_floor());
        let result = match self.compact_before(target) {
            Err(CompactError::NotDurable { durable }) => {
                self.compact_before(durable.saturating_add(1))
            }
            other => other,
        };
        match result {
            Ok(()) => {
                self.retention_failing = false;
                debug!(first = self.node.log().first_vlsn(), "log compacted");
            }
            Err(e) if !self.retention_failing => {
                self.retention_failing = true; // said once, until a compaction succeeds
                warn!(%e, "compacting the log failed");
            }
            Err(_) => {}
        }
    }

    /// Compacts the log before `vlsn`; if a membership change is among the entries it drops,
    /// the base membership this leaves is kept first.
    fn compact_before(&mut self, vlsn: u64) -> Result<(), CompactError<crate::store::LogError>> {
        let log = self.node.log();
        let changes = (log.first_vlsn()..vlsn)
            .any(|v| log.entry(v).is_some_and(|e| e.entry_type == replication::ENTRY_MEMBERSHIP));
        if changes {
            self.save_base(self.node.base_members_before(vlsn)).map_err(|e| {
                let what = format!("keeping the membership: {e:#}");
                CompactError::Storage(crate::store::LogError::Io(io::Error::other(what)))
            })?;
        }
        self.node.compact_log(vlsn)
    }

    /// A node given this log's restore point (`member`, joining through it, or one
    /// `harp restore` prepares) still has to start and connect: until it is connected (then
    /// the streaming floor keeps what it lacks), for at most [`RESTORE_POINT_HOLD_MS`],
    /// retention keeps the entries after the point. Without the hold, a joiner that took
    /// longer to connect than the master took to compact found its next entry gone and
    /// needed a restore (a CI run of
    /// `members_are_added_and_removed_through_the_master_and_it_lasts` on a loaded machine).
    /// One hold at a time: a second request keeps the lower point and the later deadline,
    /// and names a member only if both name the same one.
    fn hold_restore_point(&mut self, member: Option<String>) {
        let (vlsn, until) = (self.node.log().first_vlsn(), self.now() + RESTORE_POINT_HOLD_MS);
        let hold = match self.restore_hold.take() {
            Some(old) => RestoreHold {
                vlsn: old.vlsn.min(vlsn),
                until,
                member: member.filter(|name| old.member.as_ref() == Some(name)),
            },
            None => RestoreHold { vlsn, until, member },
        };
        self.restore_hold = Some(hold);
    }

    /// Where this node's log holds the Add of the member it now lists as `name` (what a
    /// node joining as it votes past: [`Node::addition_of`]).
    fn addition_of(&self, name: &str) -> Option<(u64, u64)> {
        let members = self.node.members();
        let member = members.id_of(name).and_then(|id| members.get(id))?;
        self.node.addition_of(name, member.node_id)
    }

    /// The lowest VLSN a restore point handed out still holds (`u64::MAX`: none); a hold
    /// ends when its member connects or its minute is over.
    fn restore_hold_floor(&mut self) -> u64 {
        let Some(hold) = &self.restore_hold else { return u64::MAX };
        let members = self.node.members();
        let connected = hold
            .member
            .as_deref()
            .and_then(|name| members.id_of(name))
            .is_some_and(|id| self.node.is_connected(id));
        if connected || self.now() >= hold.until {
            self.restore_hold = None;
            return u64::MAX;
        }
        hold.vlsn
    }

    /// As master: the lowest VLSN a connected replica with a log has yet to acknowledge
    /// (retention keeps it, so a replica catching up is not cut off while its link is up;
    /// one that stops reading loses its link after `WRITE_STALL`, and with it this claim).
    fn streaming_floor(&self) -> u64 {
        let me = self.node.election().me();
        self.node
            .members()
            .iter()
            .filter(|(id, m)| *id != me && self.node.is_connected(*id) && holds_log(m.node_type))
            .filter_map(|(id, _)| self.node.progress(id))
            .filter(|p| !p.needs_restore)
            .map(|p| p.matched.saturating_add(1))
            .min()
            .unwrap_or(u64::MAX)
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
                let _ = w.reply.send(w.answer);
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
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A removed member's slot keeps its link while its name is nobody else's; once a
    /// reused name's Add gives the name another slot, the link is that slot's.
    #[test]
    fn a_link_belongs_to_the_slot_that_has_its_name() {
        use harp::membership::Member;
        use harp::NodeType::Electable;
        let mut group = Membership::<MAX_MEMBERS>::named("g").unwrap();
        for (name, node_id) in [("n0", 1), ("n1", 2), ("n5", 3)] {
            group.add(Member::new(name, Electable, 1, node_id).unwrap()).unwrap();
        }
        let (me, n1, old_n5) = (MemberId::new(0), MemberId::new(1), MemberId::new(2));
        group.remove(n1).unwrap();
        group.remove(old_n5).unwrap();
        assert!(linked_member(&group, me, me).is_none(), "no link to itself");
        assert!(linked_member(&group, old_n5, me).is_some(), "removed, still recognised");
        let new_n5 = group.add(Member::new("n5", Electable, 1, 9).unwrap()).unwrap();
        assert_eq!(new_n5, n1, "the Add took the first free slot");
        assert!(linked_member(&group, old_n5, me).is_none(), "its name moved");
        assert_eq!(linked_member(&group, new_n5, me).map(|m| m.node_id), Some(9));
    }
    use crate::store::faults::{inject, Fault};
    use std::io::Read;

    /// Polls `check` every 10 ms until it gives something, for at most 10 s.
    fn wait_for<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(found) = check() {
                return found;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            thread::sleep(Duration::from_millis(10));
        }
    }

    fn log_of(host: &Host) -> Vec<(u64, String)> {
        match host.ask(Request::Entries { from: 1, limit: 1000 }).unwrap() {
            Reply::Entries { entries, .. } => entries,
            other => panic!("{other:?}"),
        }
    }

    /// A master whose disk fills up stops (it acknowledges nothing more), the others elect
    /// a master and go on, and the stopped node, restarted once the disk works, recovers its
    /// log and catches up: every entry reported durable is on every member.
    #[test]
    fn a_node_whose_log_fails_stops_and_comes_back_when_restarted() {
        let dir = tempfile::tempdir().unwrap();
        let listen: Vec<_> = (0..3).map(|_| crate::free_local_addr().unwrap()).collect();
        let configs = HostConfig::group(&["a", "b", "c"], "faults", &listen, dir.path());
        let mut hosts: Vec<Option<Host>> =
            configs.iter().map(|c| Some(Host::start(c.clone()).unwrap())).collect();
        let role = |h: &Option<Host>| h.as_ref().and_then(|h| h.status().ok()).map(|s| s.role);
        let master = wait_for("a master", || {
            hosts.iter().position(|h| role(h).as_deref() == Some("master"))
        });
        let mut durable = hosts[master].as_ref().unwrap().append(vec!["one".into()]).unwrap();

        let log_dir = configs[master].data_dir.join(LOG_DIR);
        inject(&log_dir, Some(Fault::DiskFullAfter(0)));
        let failing = hosts[master].take().unwrap();
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let answer = failing.append(vec!["two".into()]);
            tx.send((failing, answer)).unwrap();
        });
        let (mut failed, answer) = rx.recv_timeout(Duration::from_secs(10)).expect("an answer");
        let refused = answer.unwrap_err().to_string();
        assert!(refused.contains("stopped"), "{refused}");
        let stopped = failed.join().unwrap_err().to_string();
        assert!(stopped.contains("the log failed") && stopped.contains("no space"), "{stopped}");

        let next = wait_for("a new master", || {
            hosts.iter().position(|h| role(h).as_deref() == Some("master"))
        });
        durable.extend(hosts[next].as_ref().unwrap().append(vec!["three".into()]).unwrap());
        inject(&log_dir, None);
        hosts[master] = Some(Host::start(configs[master].clone()).unwrap());
        let last = *durable.last().unwrap();
        let logs = wait_for("the restarted node to catch up", || {
            let logs: Vec<_> = hosts.iter().map(|h| log_of(h.as_ref().unwrap())).collect();
            logs.iter().all(|l| l.last().is_some_and(|(v, _)| *v >= last)).then_some(logs)
        });
        for log in &logs {
            assert_eq!(log, &logs[0], "the members' logs agree");
            for vlsn in &durable {
                assert!(log.iter().any(|(v, _)| v == vlsn), "durable VLSN {vlsn} kept");
            }
        }
        for host in hosts.into_iter().flatten() {
            host.shutdown().unwrap();
        }
    }

    /// A connection whose peer stops reading is marked stalled (and `check_links` cuts it
    /// after `WRITE_STALL`); once the peer reads everything, it is not.
    #[test]
    fn a_peer_that_stops_reading_stalls_the_connection() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let socket = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        socket.set_nonblocking(true).unwrap();
        let (mut peer, _) = listener.accept().unwrap();
        let mut conn = Conn::new(TcpStream::from_std(socket), 1024);
        conn.out.extend(std::iter::repeat_n(7u8, 64 << 20));
        conn.flush().unwrap();
        assert!(conn.pending() > 0, "64 MiB do not fit in the socket buffers");
        let since = conn.stalled_since.expect("bytes wait");
        conn.flush().unwrap();
        assert_eq!(conn.stalled_since, Some(since), "no progress: the stall clock keeps running");
        let reader = thread::spawn(move || {
            let mut sink = vec![0u8; 1 << 20];
            let mut total = 0;
            while total < PREAMBLE.len() + (64 << 20) {
                total += peer.read(&mut sink).unwrap();
            }
        });
        while conn.pending() > 0 {
            conn.flush().unwrap();
            thread::sleep(Duration::from_millis(1));
        }
        reader.join().unwrap();
        assert_eq!(conn.stalled_since, None);
    }
}
