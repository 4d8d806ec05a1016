//! Hosted nodes as real processes on loopback: `harp node` ×3, `kill -9`, failover,
//! restart from files, and bad input against a running node.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use harp_std::host::{admin_request, Reply, Request, Status};

/// The first three start the group; the others join it later (`harp member add`), the
/// last as an arbiter.
const NAMES: [&str; 6] = ["n1", "n2", "n3", "n4", "n5", "n6"];
const ARBITER: usize = 4;
/// The members every node is configured with at its first start.
const FOUNDERS: usize = 3;
/// The failover bound checked: the election timeout (500 ms) at most twice over, plus the
/// collection window and scheduling slack on a loaded 2-core machine.
const FAILOVER_BOUND: Duration = Duration::from_millis(3000);

struct Group {
    dir: tempfile::TempDir,
    listen: Vec<SocketAddr>,
    admin: Vec<String>,
    children: Vec<Option<Child>>,
    /// Flags every node gets.
    extra: Vec<String>,
    /// The node a joining node joins through.
    join: Option<usize>,
    /// By pair of founders (the one that dials first): the relay their link goes through,
    /// if the group was started with relays.
    relays: Vec<((usize, usize), Relay)>,
    /// Node `ARBITER` runs as an arbiter (until a test reuses its name for a data node).
    arbiter: bool,
}

fn free_port() -> SocketAddr {
    harp_std::free_local_addr().unwrap()
}

impl Group {
    fn start() -> Group {
        Group::start_with(&[])
    }

    fn start_with(extra: &[&str]) -> Group {
        let mut g = Group::unstarted(extra);
        g.spawn_founders();
        g
    }

    /// A group whose founders reach each other through relays the test can cut
    /// ([`Group::cut`]).
    fn start_relayed() -> Group {
        let mut g = Group::unstarted(&[]);
        for a in 0..FOUNDERS {
            for b in a + 1..FOUNDERS {
                g.relays.push(((a, b), Relay::start(g.listen[b])));
            }
        }
        g.spawn_founders();
        g
    }

    fn unstarted(extra: &[&str]) -> Group {
        Group {
            dir: tempfile::tempdir().unwrap(),
            listen: NAMES.iter().map(|_| free_port()).collect(),
            admin: NAMES.iter().map(|_| free_port().to_string()).collect(),
            children: NAMES.iter().map(|_| None).collect(),
            join: None,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            relays: Vec::new(),
            arbiter: true,
        }
    }

    fn spawn_founders(&mut self) {
        for i in 0..FOUNDERS {
            self.spawn(i);
        }
    }

    /// The relay between founders `a` and `b`, if the group has relays.
    fn relay(&self, a: usize, b: usize) -> Option<&Relay> {
        let pair = (a.min(b), a.max(b));
        self.relays.iter().find(|(p, _)| *p == pair).map(|(_, r)| r)
    }

    /// Partitions founder `a` from each of `peers` (see [`Relay`]).
    fn cut(&self, a: usize, peers: &[usize]) {
        for &b in peers {
            self.relay(a, b).expect("a group started with relays").cut();
        }
    }

    /// Ends the partitions [`Group::cut`] made between `a` and `peers`.
    fn heal(&self, a: usize, peers: &[usize]) {
        for &b in peers {
            self.relay(a, b).expect("a group started with relays").heal();
        }
    }

    fn log_path(&self, i: usize) -> PathBuf {
        self.dir.path().join(format!("{}.log", NAMES[i]))
    }

    fn data_dir(&self, i: usize) -> PathBuf {
        self.dir.path().join(NAMES[i])
    }

    /// Starts node `i`: a founder with the founders as peers, the others joining through
    /// the admin address of node `Group::join`.
    fn spawn(&mut self, i: usize) {
        let log =
            std::fs::OpenOptions::new().create(true).append(true).open(self.log_path(i)).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_harp"));
        cmd.args(["node", "--name", NAMES[i], "--group", "test", "--durability", "os"])
            .args(["--listen", &self.listen[i].to_string(), "--admin", &self.admin[i]])
            .args(["--data-dir", &self.data_dir(i).display().to_string()])
            .args(&self.extra);
        if i >= FOUNDERS {
            cmd.args(["--join", &self.admin[self.join.expect("a member to join through")]]);
        }
        if i == ARBITER && self.arbiter {
            cmd.args(["--type", "arbiter"]);
        }
        for j in (0..FOUNDERS).filter(|&j| j != i && i < FOUNDERS) {
            // The member with the smaller name dials; through the pair's relay, if any.
            let addr = self.relay(i, j).filter(|_| i < j).map_or(self.listen[j], |r| r.addr);
            cmd.args(["--peer", &format!("{}={addr}", NAMES[j])]);
        }
        let child = cmd.env("RUST_LOG", "info").stdout(Stdio::null()).stderr(log).spawn().unwrap();
        self.children[i] = Some(child);
    }

    fn kill(&mut self, i: usize) {
        let mut child = self.children[i].take().unwrap();
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
    }

    fn signal(&self, i: usize, signal: rustix::process::Signal) {
        let pid = rustix::process::Pid::from_child(self.children[i].as_ref().unwrap());
        rustix::process::kill_process(pid, signal).unwrap();
    }

    fn status(&self, i: usize) -> Option<Status> {
        match admin_request(&self.admin[i], &Request::Status, Duration::from_secs(2)) {
            Ok(Reply::Status(s)) => Some(s),
            _ => None,
        }
    }

    fn live(&self) -> Vec<usize> {
        (0..NAMES.len()).filter(|&i| self.children[i].is_some()).collect()
    }

    /// The master every live node follows, once there is one.
    fn wait_master(&self, limit: Duration) -> usize {
        self.wait_master_of(&self.live(), limit)
    }

    /// The master nodes `of` all follow, once there is one.
    fn wait_master_of(&self, of: &[usize], limit: Duration) -> usize {
        let deadline = Instant::now() + limit;
        loop {
            let statuses: Vec<(usize, Status)> =
                of.iter().filter_map(|&i| self.status(i).map(|s| (i, s))).collect();
            if let Some((m, name)) =
                statuses.iter().find(|(_, s)| s.role == "master").map(|(i, s)| (*i, s.name.clone()))
            {
                if statuses.len() == of.len()
                    && statuses.iter().all(|(_, s)| s.master.as_deref() == Some(&name))
                {
                    return m;
                }
            }
            assert!(Instant::now() < deadline, "no master within {limit:?}: {statuses:?}");
            thread::sleep(Duration::from_millis(5));
        }
    }

    fn append(&self, i: usize, data: Vec<String>) -> Result<Vec<u64>, String> {
        match admin_request(&self.admin[i], &Request::Append { data }, Duration::from_secs(30)) {
            Ok(Reply::Appended { vlsns }) => Ok(vlsns),
            other => Err(format!("{other:?}")),
        }
    }

    fn entries(&self, i: usize, from: u64, to: u64) -> Vec<(u64, String)> {
        match admin_request(
            &self.admin[i],
            &Request::Entries { from, limit: to - from + 1 },
            Duration::from_secs(10),
        ) {
            Ok(Reply::Entries { entries, .. }) => entries,
            other => panic!("{other:?}"),
        }
    }

    /// Every durable entry is on node `i`, unchanged.
    fn assert_holds(&self, i: usize, durable: &[(u64, String)]) {
        let (from, to) = (durable[0].0, durable.last().unwrap().0);
        // In pages: a node answers at most 100,000 VLSNs a request.
        let held: std::collections::HashMap<u64, String> = (from..=to)
            .step_by(50_000)
            .flat_map(|page| self.entries(i, page, to.min(page + 49_999)))
            .collect();
        for (vlsn, data) in durable {
            assert_eq!(held.get(vlsn), Some(data), "{} lacks durable entry {vlsn}", NAMES[i]);
        }
    }

    fn log_text(&self, i: usize) -> String {
        std::fs::read_to_string(self.log_path(i)).unwrap_or_default()
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        for c in self.children.iter_mut().flatten() {
            let _ = c.kill();
            let _ = c.wait();
        }
        // A failed test keeps its nodes' logs and data directories for the post-mortem.
        // (A CI machine keeps nothing: the end of each log is printed too.)
        if thread::panicking() {
            self.dir.disable_cleanup(true);
            for (i, name) in NAMES.iter().enumerate() {
                let log = self.log_text(i);
                let tail: Vec<&str> = log.lines().rev().take(30).collect();
                if !tail.is_empty() {
                    eprintln!("--- the end of {name}'s log");
                    tail.iter().rev().for_each(|line| eprintln!("{line}"));
                }
            }
            eprintln!("the nodes' logs and data are kept in {}", self.dir.path().display());
        }
    }
}

/// A founder's link to another through the test: the founder with the smaller name dials
/// the relay, which connects to the other (one connection per pair). A cut makes the link
/// silent, as a partition does: everything its connections carry from then on is lost,
/// closes included, and a connection opened during the cut is accepted and never answered.
/// A heal closes the connections the cut silenced, as TCP gives them up in the end, so
/// that the nodes dial again.
struct Relay {
    addr: SocketAddr,
    state: Arc<Mutex<RelayState>>,
}

#[derive(Default)]
struct RelayState {
    cut: bool,
    /// Since the last heal: each connection's two sockets (the second none if it opened
    /// during a cut) and whether what it carries is lost.
    conns: Vec<(TcpStream, Option<TcpStream>, Arc<AtomicBool>)>,
}

impl Relay {
    fn start(target: SocketAddr) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(RelayState::default()));
        let shared = state.clone();
        thread::spawn(move || {
            for dialer in listener.incoming().flatten() {
                let mut state = shared.lock().unwrap();
                let lost = Arc::new(AtomicBool::new(state.cut));
                // Refused while the target is down, as a direct connect would be.
                let Some(far) = (if state.cut {
                    Some(None)
                } else {
                    TcpStream::connect(target).ok().map(Some)
                }) else {
                    continue;
                };
                let _ = dialer.set_nodelay(true);
                let clone = |s: &TcpStream| s.try_clone().unwrap();
                if let Some(far) = &far {
                    let _ = far.set_nodelay(true);
                    let (from, to) = (clone(far), Some(clone(&dialer)));
                    let lost = lost.clone();
                    thread::spawn(move || relay_bytes(from, to, &lost));
                }
                let (from, to) = (clone(&dialer), far.as_ref().map(clone));
                let lost_too = lost.clone();
                thread::spawn(move || relay_bytes(from, to, &lost_too));
                state.conns.push((dialer, far, lost));
            }
        });
        Relay { addr, state }
    }

    fn cut(&self) {
        let mut state = self.state.lock().unwrap();
        state.cut = true;
        for (_, _, lost) in &state.conns {
            lost.store(true, Ordering::SeqCst);
        }
    }

    fn heal(&self) {
        let mut state = self.state.lock().unwrap();
        state.cut = false;
        // Every connection still listed was silenced by the cut (or is closed already).
        for (a, b, _) in state.conns.drain(..) {
            let _ = a.shutdown(Shutdown::Both);
            if let Some(b) = b {
                let _ = b.shutdown(Shutdown::Both);
            }
        }
    }
}

/// Copies `from` into `to` until either closes; once `lost` is set, drops what it reads
/// and does not pass a close on.
fn relay_bytes(mut from: TcpStream, mut to: Option<TcpStream>, lost: &AtomicBool) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if lost.load(Ordering::SeqCst) {
            continue;
        }
        if let Some(to) = &mut to {
            if to.write_all(&buf[..n]).is_err() {
                break;
            }
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    if let Some(to) = to.filter(|_| !lost.load(Ordering::SeqCst)) {
        let _ = to.shutdown(Shutdown::Both);
    }
}

/// The next number of a xorshift64 sequence (the test's own randomness, from a seed).
fn xorshift(x: &mut u64) -> u64 {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    *x
}

fn batch(from: usize, n: usize) -> Vec<String> {
    (from..from + n).map(|k| format!("entry-{k:06}")).collect()
}

/// Writes `total` entries in batches of 500; returns (vlsn, data) of each, all durable.
fn write(g: &Group, master: usize, from: usize, total: usize) -> Vec<(u64, String)> {
    let mut out = Vec::new();
    for start in (from..from + total).step_by(500) {
        let data = batch(start, 500.min(from + total - start));
        let vlsns = g.append(master, data.clone()).unwrap();
        out.extend(vlsns.into_iter().zip(data));
    }
    out
}

fn wait_caught_up(g: &Group, i: usize, vlsn: u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !g.status(i).is_some_and(|s| s.role == "replica" && s.vlsn >= vlsn) {
        assert!(Instant::now() < deadline, "{} did not catch up: {:?}", NAMES[i], g.status(i));
        thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn ten_thousand_entries_survive_a_kill_9_of_the_master_and_the_old_master_catches_up() {
    let mut g = Group::start();
    let first = g.wait_master(Duration::from_secs(10));
    let durable = write(&g, first, 0, 10_000);
    assert_eq!(durable.len(), 10_000);

    g.kill(first);
    let killed = Instant::now();
    let second = g.wait_master(Duration::from_secs(10));
    let failover = killed.elapsed();
    assert_ne!(second, first);
    assert!(failover < FAILOVER_BOUND, "failover took {failover:?}");
    // The promise: the new master holds every entry reported durable. The other survivor
    // may still be catching up from it (durable means a majority, not everyone).
    g.assert_holds(second, &durable);
    let other = g.live().into_iter().find(|&i| i != second).unwrap();
    wait_caught_up(&g, other, durable.last().unwrap().0);
    g.assert_holds(other, &durable);

    let more = write(&g, second, 10_000, 1_000);
    g.spawn(first);
    wait_caught_up(&g, first, more.last().unwrap().0);
    for i in 0..3 {
        g.assert_holds(i, &durable);
        g.assert_holds(i, &more);
    }
    assert!(g.log_text(second).contains("role=\"master\""), "role changes are logged");
}

/// `systemctl stop` or Ctrl-C: SIGTERM makes the master stop gracefully (it exits 0, not
/// killed by the signal), a replica takes over, and nothing durable is lost; started again,
/// the old master catches up.
#[test]
fn sigterm_stops_the_master_gracefully_and_a_replica_takes_over() {
    let mut g = Group::start();
    let first = g.wait_master(Duration::from_secs(10));
    let durable = write(&g, first, 0, 1_000);
    g.signal(first, rustix::process::Signal::TERM);
    let signalled = Instant::now();
    let exit = wait_exit(&mut g, first);
    assert!(exit.success(), "a graceful stop exits 0: {exit}");
    let log = g.log_text(first);
    assert!(log.contains("stopping gracefully") && log.contains("signal=\"SIGTERM\""), "{log}");
    let second = g.wait_master(Duration::from_secs(10));
    assert!(signalled.elapsed() < FAILOVER_BOUND, "handed over in {:?}", signalled.elapsed());
    g.assert_holds(second, &durable);
    let more = write(&g, second, 1_000, 100);
    g.spawn(first);
    wait_caught_up(&g, first, more.last().unwrap().0);
    g.assert_holds(first, &durable);
    g.assert_holds(first, &more);
}

#[test]
fn a_master_killed_in_the_middle_of_a_write_stream_loses_nothing_reported_durable() {
    let mut g = Group::start();
    let first = g.wait_master(Duration::from_secs(10));
    let admin = g.admin[first].clone();
    let durable = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (durable, stop) = (durable.clone(), stop.clone());
        thread::spawn(move || {
            let mut k = 0;
            while !stop.load(Ordering::SeqCst) {
                let data = batch(k, 50);
                match admin_request(
                    &admin,
                    &Request::Append { data: data.clone() },
                    Duration::from_secs(5),
                ) {
                    Ok(Reply::Appended { vlsns }) => {
                        durable.lock().unwrap().extend(vlsns.into_iter().zip(data))
                    }
                    _ => return, // the master is gone: nothing of this batch was reported durable
                }
                k += 50;
            }
        })
    };
    while durable.lock().unwrap().len() < 2_000 {
        thread::sleep(Duration::from_millis(5));
    }
    g.kill(first); // mid-stream: a batch is in flight
    stop.store(true, Ordering::SeqCst);
    writer.join().unwrap();
    let second = g.wait_master(Duration::from_secs(10));
    let durable = durable.lock().unwrap().clone();
    g.assert_holds(second, &durable);
    g.spawn(first);
    let last = g.status(second).unwrap().vlsn;
    wait_caught_up(&g, first, last);
    g.assert_holds(first, &durable);
}

/// A writer that keeps appending batches of unique entries to whichever node is master, and
/// records what each reply reported durable.
struct Writer {
    durable: Arc<Mutex<Vec<(u64, String)>>>,
    stop: Arc<AtomicBool>,
    thread: thread::JoinHandle<()>,
}

impl Writer {
    fn start(admin: Vec<String>) -> Writer {
        let durable = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (durable, stop) = (durable.clone(), stop.clone());
            thread::spawn(move || {
                let (mut target, mut k) = (0, 0);
                while !stop.load(Ordering::SeqCst) {
                    // Every attempt has entries of its own: a batch that failed may still
                    // become durable, unreported, and must not be mistaken for a later one.
                    let data = batch(k, 20);
                    k += 20;
                    let request = Request::Append { data: data.clone() };
                    match admin_request(&admin[target], &request, Duration::from_secs(3)) {
                        Ok(Reply::Appended { vlsns }) => {
                            durable.lock().unwrap().extend(vlsns.into_iter().zip(data));
                            // Paced, so that a long run's logs stay small.
                            thread::sleep(Duration::from_millis(2));
                        }
                        Ok(Reply::Error { master: Some(name), .. }) => {
                            target = NAMES.iter().position(|n| *n == name).unwrap_or(target)
                        }
                        _ => {
                            target = (target + 1) % FOUNDERS;
                            thread::sleep(Duration::from_millis(20));
                        }
                    }
                }
            })
        };
        Writer { durable, stop, thread }
    }

    fn reported(&self) -> usize {
        self.durable.lock().unwrap().len()
    }

    /// Stops writing; what was reported durable, by VLSN.
    fn finish(self) -> Vec<(u64, String)> {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.join().unwrap();
        let mut durable = self.durable.lock().unwrap().clone();
        durable.sort();
        durable
    }
}

/// Rounds of faults under a writer that appends through whichever node is master, in
/// turn: `kill -9` of a replica; of the master; of the master while the other replica is
/// paused (`SIGSTOP`) and behind, so that the election after it is between a replica that
/// holds every durable entry and one that does not (the old master restarts once it is
/// over; the replica behind is in turn the one a tie would elect and the other); the
/// master paused until the replicas elect another, then resumed in its old term; the
/// master partitioned from both replicas (what its links carry is lost) until they elect
/// another and write on, then healed; and a replica partitioned from the master alone or,
/// in turn, from both, while the writes go on; and `kill -9` of all three at once. Each
/// killed node restarts from its files after a random pause. The founders' links go
/// through relays ([`Relay`]) that make the partitions. At the end every entry ever
/// reported durable is on all three nodes, and no VLSN was reported durable for two
/// different entries. `HARP_CHAOS_ROUNDS` (default 14) and `HARP_CHAOS_SEED` run it longer
/// or otherwise.
#[test]
fn kills_pauses_and_partitions_under_a_write_stream_lose_nothing_reported_durable() {
    use rustix::process::Signal;
    let env =
        |name, default| std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default);
    let rounds: u64 = env("HARP_CHAOS_ROUNDS", 14);
    let seed: u64 = env("HARP_CHAOS_SEED", 0x9e37_79b9_7f4a_7c15);
    let mut x = seed | 1;
    let mut random = move |n: u64| xorshift(&mut x) % n;
    let mut g = Group::start_relayed();
    g.wait_master(Duration::from_secs(10));
    let writer = Writer::start(g.admin.clone());
    // Waits until `n` more entries were reported durable.
    let reported = |n: usize, round: u64| {
        let (before, deadline) = (writer.reported(), Instant::now() + Duration::from_secs(15));
        while writer.reported() < before + n {
            assert!(Instant::now() < deadline, "round {round} (seed {seed}): writes stalled");
            thread::sleep(Duration::from_millis(5));
        }
    };
    let mut done = [0; 7]; // rounds of each kind
    for round in 0..rounds {
        let master = g.wait_master(Duration::from_secs(15));
        reported(100, round); // writes are flowing when the fault comes
        thread::sleep(Duration::from_millis(random(200)));
        let kind = round as usize % 7;
        let others = [(master + 1) % FOUNDERS, (master + 2) % FOUNDERS];
        // Shown if the test fails (the harness keeps a passing test's output to itself).
        eprintln!("round {round}: kind {kind}, master {}", NAMES[master]);
        match kind {
            0 => {
                let replica = others[random(2) as usize];
                g.kill(replica);
                thread::sleep(Duration::from_millis(random(300)));
                g.spawn(replica);
            }
            1 => {
                g.kill(master);
                thread::sleep(Duration::from_millis(random(300)));
                g.spawn(master);
            }
            2 => {
                // Behind is, in turn, the replica a tie would elect and the other.
                let mut by_name = others;
                by_name.sort_by_key(|&i| NAMES[i]);
                let behind = by_name[done[2] % 2];
                g.signal(behind, Signal::STOP);
                // The master and the other replica go on without it, past the 1,024
                // entries the master sends ahead (which would wait in its socket).
                reported(2_500, round);
                g.kill(master);
                g.signal(behind, Signal::CONT);
                // The election is the two replicas' alone: the old master, which holds
                // every entry, comes back only once it is over.
                g.wait_master(Duration::from_secs(15));
                thread::sleep(Duration::from_millis(random(300)));
                g.spawn(master);
            }
            3 => {
                // The master stops, as if cut off, until the replicas elect another and
                // write on; it resumes in its old term with appends waiting, and must step
                // down without reporting them durable.
                g.signal(master, Signal::STOP);
                g.wait_master_of(&others, Duration::from_secs(15));
                reported(100, round);
                thread::sleep(Duration::from_millis(random(200)));
                g.signal(master, Signal::CONT);
            }
            4 => {
                // The master runs on, cut off: what it sends its replicas from now on is
                // lost, and the appends it takes must not be reported durable. The
                // replicas elect another and write on; then the partition heals.
                g.cut(master, &others);
                g.wait_master_of(&others, Duration::from_secs(15));
                reported(100, round);
                thread::sleep(Duration::from_millis(random(200)));
                g.heal(master, &others);
            }
            5 => {
                // A replica cut off from the master alone (it still reaches the other
                // replica, which must not let it start a term) or, in turn, from both:
                // the master and the other replica go on; the replica catches up after.
                let pick = random(2) as usize;
                let (replica, other) = (others[pick], others[1 - pick]);
                let cut_off_from =
                    if done[5] % 2 == 0 { vec![master] } else { vec![master, other] };
                g.cut(replica, &cut_off_from);
                reported(300, round);
                thread::sleep(Duration::from_millis(random(300)));
                g.heal(replica, &cut_off_from);
            }
            _ => {
                // The whole group loses power at once, and every node restarts from its
                // files: a durable entry is then only as safe as each node's recovery.
                for i in 0..FOUNDERS {
                    g.kill(i);
                }
                thread::sleep(Duration::from_millis(random(300)));
                for i in 0..FOUNDERS {
                    g.spawn(i);
                }
            }
        }
        done[kind] += 1;
    }
    g.wait_master(Duration::from_secs(15));
    let durable = writer.finish();
    assert!(durable.len() as u64 >= rounds * 100, "only {} entries reported", durable.len());
    for pair in durable.windows(2) {
        assert_ne!(pair[0].0, pair[1].0, "VLSN reported durable twice (seed {seed}): {pair:?}");
    }
    let master = g.wait_master(Duration::from_secs(15));
    let last = g.status(master).unwrap().vlsn;
    for i in (0..FOUNDERS).filter(|&i| i != master) {
        wait_caught_up(&g, i, last);
    }
    for i in 0..FOUNDERS {
        g.assert_holds(i, &durable);
    }
    eprintln!(
        "{rounds} rounds, seed {seed}: kills of a replica {}, of the master {}, of the master \
         with a replica behind {}; the master paused until replaced {}, partitioned until \
         replaced {}; a replica partitioned {}; the whole group {}; {} entries reported \
         durable, all of them on every node",
        done[0],
        done[1],
        done[2],
        done[3],
        done[4],
        done[5],
        done[6],
        durable.len()
    );
}

/// Sends `bytes` on a new connection to `addr` and returns whether the node closed it.
fn closed_after(addr: SocketAddr, bytes: &[u8], wait: Duration) -> bool {
    let s = TcpStream::connect(addr).unwrap();
    closed_on(s, bytes, wait)
}

/// Whether the node closed `s` within `wait` after `bytes` were sent on it.
fn closed_on(mut s: TcpStream, bytes: &[u8], wait: Duration) -> bool {
    s.write_all(bytes).unwrap();
    s.set_read_timeout(Some(wait)).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue, // the node's preamble or a refusal
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false, // still open after `wait`
        }
    }
}

fn frame(msg: &harp::MessageRef<'_>) -> Vec<u8> {
    let mut out = harp::frame::stream::PREAMBLE.to_vec();
    harp::frame::stream::write_frame(&mut out, msg).unwrap();
    out
}

fn rss_kb(child: &Child) -> u64 {
    let status =
        std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

#[test]
fn bad_input_is_refused_with_a_log_line_and_the_group_keeps_serving() {
    use harp::{MessageRef, NodeType};
    let g = Group::start();
    let master = g.wait_master(Duration::from_secs(10));
    let target = (master + 1) % 3; // attack a replica; the group must keep replicating
    let addr = g.listen[target];
    let rss_before = rss_kb(g.children[target].as_ref().unwrap());
    let wait = Duration::from_secs(3);

    let mut random = vec![0u8; 4096];
    let mut x = 0x2545_f491_4f6c_dd1du64;
    for b in random.iter_mut() {
        *b = xorshift(&mut x) as u8;
    }
    assert!(closed_after(addr, &random, wait), "random bytes");
    assert!(closed_after(addr, b"HARQ\x01\x00", wait), "wrong preamble");
    let mut huge = harp::frame::stream::PREAMBLE.to_vec();
    huge.extend_from_slice(&u32::MAX.to_le_bytes());
    assert!(closed_after(addr, &huge, wait), "a 4 GiB length prefix");
    let mut bad_crc = frame(&MessageRef::Heartbeat { master_vlsn: 1, timestamp_ms: 2 });
    *bad_crc.last_mut().unwrap() ^= 0xff;
    assert!(closed_after(addr, &bad_crc, wait), "a bad CRC");
    let wrong_group = frame(&MessageRef::Handshake {
        node_name: "n1",
        group_name: "other",
        node_type: NodeType::Electable,
    });
    assert!(closed_after(addr, &wrong_group, wait), "wrong group");
    let stranger = frame(&MessageRef::Handshake {
        node_name: "mallory",
        group_name: "test",
        node_type: NodeType::Electable,
    });
    assert!(closed_after(addr, &stranger, wait), "unknown node name");
    let mut slow = harp::frame::stream::PREAMBLE.to_vec();
    slow.extend_from_slice(&100u32.to_le_bytes());
    slow.extend_from_slice(&[9; 10]); // 10 of 100 bytes, then silence
    assert!(closed_after(addr, &slow, Duration::from_secs(8)), "a slow client");
    // Half a frame and the sender's end closed with it, in one go: the node reads the
    // data and the close together and ends the connection at once, not when the slow
    // frame's 5 s run out.
    let mut half = frame(&MessageRef::Heartbeat { master_vlsn: 1, timestamp_ms: 2 });
    half.truncate(half.len() - 3);
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(&half).unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    assert!(closed_on(s, &[], Duration::from_secs(2)), "half a frame, then closed");
    // A flood of silent connections: beyond 32 without a handshake they are refused at
    // once, and the rest are cut after 5 s, so they cannot lock the group's links out.
    let mut flood: Vec<TcpStream> = (0..32).map(|_| TcpStream::connect(addr).unwrap()).collect();
    assert!(closed_after(addr, &[], Duration::from_secs(1)), "the 33rd is refused at once");
    assert!(closed_after(addr, &[], Duration::from_secs(1)), "and so is the 34th");
    let mut buf = [0u8; 64];
    let first = &mut flood[0];
    first.set_read_timeout(Some(Duration::from_secs(8))).unwrap();
    let preamble = first.read(&mut buf).unwrap();
    assert!(preamble > 0, "the node greets with its preamble");
    assert_eq!(first.read(&mut buf).unwrap_or(0), 0, "a silent connection is cut after 5 s");
    drop(flood);

    let log = g.log_text(target);
    for expected in [
        "bad preamble",
        "exceeds the maximum",
        "checksum mismatch",
        "wrong group name",
        "not a member",
        "unfinished",
        "closed by the peer",
        "too many without a handshake",
        "no handshake within 5 s",
    ] {
        assert!(log.contains(expected), "no log line with {expected:?} in:\n{log}");
    }
    // Still serving: the group replicates through the attacked replica.
    let vlsns = g.append(master, batch(0, 100)).unwrap();
    let last = *vlsns.last().unwrap();
    wait_caught_up(&g, target, last);
    let status = g.status(target).unwrap();
    assert!(status.refused_connections >= 2, "{status:?}");
    let rss_after = rss_kb(g.children[target].as_ref().unwrap());
    assert!(
        rss_after < rss_before + 64 * 1024,
        "memory grew from {rss_before} kB to {rss_after} kB"
    );
}

#[test]
fn a_node_restarts_after_a_torn_last_record() {
    let mut g = Group::start();
    let master = g.wait_master(Duration::from_secs(10));
    let durable = write(&g, master, 0, 1_000);
    let victim = (master + 1) % 3;
    g.kill(victim);
    let log_dir = g.data_dir(victim).join("log");
    let last_segment = std::fs::read_dir(&log_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .max()
        .unwrap();
    let mut f = std::fs::OpenOptions::new().append(true).open(&last_segment).unwrap();
    f.write_all(&[0xAB; 17]).unwrap(); // half a record: a crash in the middle of a write
    drop(f);
    g.spawn(victim);
    wait_caught_up(&g, victim, durable.last().unwrap().0);
    g.assert_holds(victim, &durable);
    assert!(g.log_text(victim).contains("torn record"), "the cut is logged");
}

/// The embeddable API in one process: three `Host`s, a subscriber, an append.
#[test]
fn the_embeddable_api_appends_waits_for_durability_and_notifies_subscribers() {
    use harp_std::config::HostConfig;
    use harp_std::host::{Host, Notice};
    let dir = tempfile::tempdir().unwrap();
    let listen: Vec<SocketAddr> = (0..3).map(|_| free_port()).collect();
    let hosts: Vec<Host> = HostConfig::group(&NAMES[..FOUNDERS], "api", &listen, dir.path())
        .into_iter()
        .map(|config| Host::start(config).unwrap())
        .collect();
    let notices: Vec<_> = hosts.iter().map(|h| h.subscribe().unwrap()).collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    let master = loop {
        if let Some(m) = hosts.iter().position(|h| h.status().unwrap().role == "master") {
            break m;
        }
        assert!(Instant::now() < deadline, "no master");
        thread::sleep(Duration::from_millis(10));
    };
    let vlsns = hosts[master].append(vec!["alpha".into(), "beta".into()]).unwrap();
    assert_eq!(vlsns.len(), 2);
    let replica = (master + 1) % 3;
    assert!(hosts[replica]
        .append(vec!["x".into()])
        .unwrap_err()
        .to_string()
        .contains("not the master"));
    for (i, rx) in notices.iter().enumerate() {
        let mut durable = Vec::new();
        let mut roles = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        while durable.len() < 2 {
            match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(Notice::Durable { vlsn, data }) => durable.push((vlsn, data)),
                Ok(Notice::Role { role, .. }) => roles.push(role),
                Err(e) => panic!("{} heard {durable:?} then {e}", NAMES[i]),
            }
        }
        assert_eq!(
            durable,
            [(vlsns[0], b"alpha".to_vec()), (vlsns[1], b"beta".to_vec())],
            "{}",
            NAMES[i]
        );
        let expected = if i == master { "master" } else { "replica" };
        assert!(roles.iter().any(|r| r == expected), "{}: {roles:?}", NAMES[i]);
    }
    for h in hosts {
        h.shutdown().unwrap();
    }
}

/// Runs `harp restore` of node `i`'s data directory from node `from`.
fn restore(g: &Group, i: usize, from: usize) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_harp"))
        .args(["restore", "--data-dir", &g.data_dir(i).display().to_string()])
        .args(["--from", &g.admin[from]])
        .output()
        .unwrap()
}

fn wait_for_log_line(g: &Group, i: usize, line: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !g.log_text(i).contains(line) {
        assert!(Instant::now() < deadline, "{} never logged {line:?}", NAMES[i]);
        thread::sleep(Duration::from_millis(20));
    }
}

/// Log retention bounds every log; a replica away for longer than the retention cannot be
/// streamed to, and `harp restore` from the master brings it back.
#[test]
fn retention_bounds_the_log_and_a_replica_behind_it_is_restored() {
    let mut g = Group::start_with(&["--retain-entries", "200"]);
    let master = g.wait_master(Duration::from_secs(10));
    write(&g, master, 0, 100);
    let lagging = (master + 1) % 3;
    let other = (master + 2) % 3;
    g.kill(lagging);
    let durable = write(&g, master, 100, 1_500);
    let last = durable.last().unwrap().0;
    let s = g.status(master).unwrap();
    assert!(s.vlsn >= last && s.vlsn + 1 - s.first <= 250, "the master's log is bounded: {s:?}");
    let held = match admin_request(
        &g.admin[master],
        &Request::Entries { from: 1, limit: 10 },
        Duration::from_secs(5),
    ) {
        Ok(Reply::Entries { entries, first, .. }) => (entries, first),
        other => panic!("{other:?}"),
    };
    assert_eq!(held, (vec![], s.first), "compacted entries are gone, and the reply says so");
    wait_caught_up(&g, other, last);

    let err = restore(&g, other, master);
    assert!(!err.status.success(), "a running node's directory is refused");
    assert!(String::from_utf8_lossy(&err.stderr).contains("in use"), "{err:?}");

    g.spawn(lagging);
    wait_for_log_line(&g, master, "replica needs a restore");
    let behind = g.status(lagging).unwrap();
    assert!(behind.vlsn < s.first, "it cannot catch up by streaming: {behind:?}");
    let flagged = |g: &Group| {
        let s = g.status(master).unwrap();
        s.peers.iter().find(|p| p.name == NAMES[lagging]).map(|p| p.needs_restore)
    };
    assert_eq!(flagged(&g), Some(true), "harp status names it");
    g.kill(lagging);
    let done = restore(&g, lagging, master);
    assert!(done.status.success(), "{done:?}");
    assert!(String::from_utf8_lossy(&done.stdout).contains("now starts after VLSN"), "{done:?}");

    g.spawn(lagging);
    wait_caught_up(&g, lagging, last);
    g.assert_holds(lagging, &durable[durable.len() - 150..]);
    assert_eq!(flagged(&g), Some(false), "streamed to again");
    let more = write(&g, master, 1_600, 300);
    wait_caught_up(&g, lagging, more.last().unwrap().0);
    g.assert_holds(lagging, &more[100..]);
    // Its own retention follows what it learns is durable (a heartbeat later).
    let deadline = Instant::now() + Duration::from_secs(10);
    while let Some(s) = g.status(lagging).filter(|s| s.vlsn + 1 - s.first > 250) {
        assert!(Instant::now() < deadline, "the restored replica retains as configured: {s:?}");
        thread::sleep(Duration::from_millis(20));
    }

    g.kill(lagging);
    let again = restore(&g, lagging, master);
    assert!(!again.status.success(), "a restore it does not need is refused: {again:?}");
    assert!(String::from_utf8_lossy(&again.stderr).contains("needs no restore"), "{again:?}");
}

/// Retention keeps what a connected replica has yet to be sent: one that is paused (its
/// link up, the window full) resumes and catches up by streaming, with no restore.
#[test]
fn retention_waits_for_a_connected_replica_that_is_behind() {
    let g = Group::start_with(&["--retain-entries", "200"]);
    let master = g.wait_master(Duration::from_secs(10));
    let paused = (master + 1) % 3;
    g.signal(paused, rustix::process::Signal::STOP);
    let durable = write(&g, master, 0, 3_000); // beyond its window of 1,024 entries
    let s = g.status(master).unwrap();
    let matched = s.peers.iter().find(|p| p.name == NAMES[paused]).and_then(|p| p.matched);
    assert!(s.first <= matched.unwrap_or(0) + 1, "the master keeps what it owes: {s:?}");
    g.signal(paused, rustix::process::Signal::CONT);
    wait_caught_up(&g, paused, durable.last().unwrap().0);
    g.assert_holds(paused, &durable[durable.len() - 150..]);
    assert!(!g.log_text(master).contains("needs a restore"), "{}", g.log_text(master));
    let deadline = Instant::now() + Duration::from_secs(10);
    while let Some(s) = g.status(master).filter(|s| s.vlsn + 1 - s.first > 250) {
        assert!(Instant::now() < deadline, "retention resumes once it caught up: {s:?}");
        thread::sleep(Duration::from_millis(20));
    }
}

/// A restore point handed out for a member holds retention until that member connects: a
/// node joining a busy group finds the entries after its point still there, however long it
/// takes to start, and retention resumes once it is connected.
#[test]
fn a_restore_point_handed_out_keeps_the_log_until_its_member_connects() {
    let mut g = Group::start_with(&["--retain-entries", "100"]);
    let master = g.wait_master(Duration::from_secs(10));
    write(&g, master, 0, 400);
    let new = FOUNDERS; // n4
    let spec = format!("{}={}", NAMES[new], g.listen[new]);
    assert!(harp(&["member", "add", &g.admin[master], &spec]).status.success());
    let request = Request::RestorePoint { member: Some(NAMES[new].into()) };
    let point = match admin_request(&g.admin[master], &request, Duration::from_secs(5)) {
        Ok(Reply::RestorePoint { restore_point, .. }) => restore_point.vlsn,
        other => panic!("{other:?}"),
    };
    let durable = write(&g, master, 400, 600); // six times the retention
    let s = g.status(master).unwrap();
    assert!(s.first <= point + 1, "the entries after the point are kept: {point} {s:?}");

    g.join = Some(master);
    g.spawn(new);
    wait_caught_up(&g, new, durable.last().unwrap().0);
    g.assert_holds(new, &durable[durable.len() - 50..]); // it retains 100 VLSNs too
    assert!(!g.log_text(master).contains("needs a restore"), "{}", g.log_text(master));
    let more = write(&g, master, 1_000, 300);
    wait_caught_up(&g, new, more.last().unwrap().0);
    let deadline = Instant::now() + Duration::from_secs(10);
    while let Some(s) = g.status(master).filter(|s| s.vlsn + 1 - s.first > 250) {
        assert!(Instant::now() < deadline, "retention resumes once it is connected: {s:?}");
        thread::sleep(Duration::from_millis(20));
    }
}

/// Runs the `harp` tool.
fn harp(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_harp")).args(args).output().unwrap()
}

/// Waits until node `i`'s process ends by itself; its exit status.
fn wait_exit(g: &mut Group, i: usize) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = g.children[i].as_mut().unwrap().try_wait().unwrap() {
            g.children[i] = None;
            return status;
        }
        assert!(Instant::now() < deadline, "{} did not stop: {}", NAMES[i], g.log_text(i));
        thread::sleep(Duration::from_millis(20));
    }
}

/// The VLSN `harp member` printed.
fn added_at(out: &std::process::Output) -> u64 {
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace().find_map(|w| w.parse().ok()).unwrap()
}

/// Waits until node `i` sees exactly `names` as the group.
fn wait_members(g: &Group, i: usize, names: &[&str]) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while g.status(i).is_none_or(|s| member_names(&s) != names) {
        assert!(Instant::now() < deadline, "{}: {:?}", NAMES[i], g.status(i));
        thread::sleep(Duration::from_millis(20));
    }
}

fn member_names(s: &Status) -> Vec<&str> {
    let mut names: Vec<&str> = s.members.iter().map(|m| m.name.as_str()).collect();
    names.sort();
    names
}

/// An operator grows the group by a node and an arbiter and shrinks it by another while it
/// serves: the new node joins from the master's compacted log, a member is removed once
/// shut down, the changes outlive compaction and restarts, a failover in the new group
/// loses nothing, and a replica moved to another address is redialled there.
#[test]
fn members_are_added_and_removed_through_the_master_and_it_lasts() {
    let mut g = Group::start_with(&["--retain-entries", "100"]);
    let master = g.wait_master(Duration::from_secs(10));
    let mut durable = write(&g, master, 0, 400);
    g.join = Some(master);
    let new = FOUNDERS; // n4
    let spec = format!("{}={}", NAMES[new], g.listen[new]);

    // Started before the master added it, the new node stops at once and says why.
    g.spawn(new);
    assert!(!wait_exit(&mut g, new).success());
    assert!(g.log_text(new).contains("does not list n4 as a member"), "{}", g.log_text(new));
    assert!(!g.data_dir(new).join("log").exists(), "nothing is left to clean up");
    let replica = (master + 1) % FOUNDERS;
    let refused = harp(&["member", "add", &g.admin[replica], &spec]);
    assert!(String::from_utf8_lossy(&refused.stderr).contains("the master is"), "{refused:?}");

    let added = harp(&["member", "add", &g.admin[master], &spec]);
    assert!(added.status.success(), "{added:?}");
    assert!(String::from_utf8_lossy(&added.stdout).contains("(durable)"), "{added:?}");
    let again = harp(&["member", "add", &g.admin[master], &spec]);
    assert!(String::from_utf8_lossy(&again.stderr).contains("already a member"), "{again:?}");
    g.spawn(new);
    wait_caught_up(&g, new, added_at(&added));
    let first = g.status(new).unwrap().first;
    assert!(first > 1, "it joined from the master's compacted log");
    durable.extend(write(&g, master, 400, 300)); // compacts past the addition everywhere
    wait_caught_up(&g, new, durable.last().unwrap().0);
    g.assert_holds(new, &durable[durable.len() - 100..]);
    let s = g.status(master).unwrap();
    assert_eq!(member_names(&s), ["n1", "n2", "n3", "n4"]);
    let n4 = s.members.iter().find(|m| m.name == "n4").unwrap();
    assert_eq!((n4.node_id, n4.address), (4, g.listen[new]), "a new id; the given address");
    assert!(s.peers.iter().any(|p| p.name == "n4" && p.connected), "{s:?}");

    // An arbiter (no log) joins too: it learns the group from the master's notices.
    let spec = format!("{}={},arbiter", NAMES[ARBITER], g.listen[ARBITER]);
    assert!(harp(&["member", "add", &g.admin[master], &spec]).status.success());
    g.spawn(ARBITER);
    wait_members(&g, ARBITER, &["n1", "n2", "n3", "n4", "n5"]);

    // A running member is not removed: it is shut down first, then removed; the group
    // goes on with the other three.
    let removed = replica;
    let out = harp(&["member", "remove", &g.admin[master], NAMES[removed]]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("shut it down first"), "{out:?}");
    let stop = harp(&["shutdown", &g.admin[removed]]);
    assert!(stop.status.success(), "{stop:?}");
    assert!(wait_exit(&mut g, removed).success());
    let out = harp(&["member", "remove", &g.admin[master], NAMES[removed]]);
    assert!(out.status.success(), "{out:?}");
    durable.extend(write(&g, master, 700, 300));
    let s = g.status(master).unwrap();
    assert!(!member_names(&s).contains(&NAMES[removed]), "{s:?}");
    let mut group = vec!["n1", "n2", "n3", "n4", "n5"];
    group.retain(|n| *n != NAMES[removed]);
    wait_members(&g, ARBITER, &group);
    g.kill(ARBITER); // it keeps the change it heard of: it has no log to find it in again
    g.spawn(ARBITER);
    wait_members(&g, ARBITER, &group);
    assert!(s.first > durable[700].0 - 200, "compacted past the removal: {s:?}");

    // The master fails; the new group (three voters, two of them alive) elects another,
    // and the old master, restarted from its files, still knows the group as changed.
    g.kill(master);
    let next = g.wait_master(Duration::from_secs(10));
    durable.extend(write(&g, next, 1_000, 50)); // within the retention: no restore needed
    g.spawn(master);
    wait_caught_up(&g, master, durable.last().unwrap().0);
    for i in g.live() {
        let s = g.status(i).unwrap();
        assert_eq!(member_names(&s), group, "{}", NAMES[i]);
        if i != ARBITER {
            g.assert_holds(i, &durable[durable.len() - 50..]);
        }
    }

    // A replica moves to another address: stopped, updated, started there. The one with
    // the largest name: the others dial it, at the address the update gives.
    let moved = g.live().into_iter().filter(|&i| i != next && i != ARBITER).max().unwrap();
    g.kill(moved);
    g.listen[moved] = free_port();
    let spec = format!("{}={}", NAMES[moved], g.listen[moved]);
    let out = harp(&["member", "update", &g.admin[next], &spec]);
    assert!(out.status.success(), "{out:?}");
    g.spawn(moved);
    durable.extend(write(&g, next, 1_050, 50));
    wait_caught_up(&g, moved, durable.last().unwrap().0);
    let s = g.status(next).unwrap();
    let record = s.members.iter().find(|m| m.name == NAMES[moved]).unwrap();
    assert_eq!(record.address, g.listen[moved], "{s:?}");
    let deadline = Instant::now() + Duration::from_secs(10);
    for i in g.live().into_iter().filter(|&i| i != moved) {
        let linked = |s: &Status| s.peers.iter().any(|p| p.name == NAMES[moved] && p.connected);
        while g.status(i).is_none_or(|s| !linked(&s)) {
            assert!(Instant::now() < deadline, "{}: {:?}", NAMES[i], g.status(i));
            thread::sleep(Duration::from_millis(20));
        }
    }

    // One more joins after the removal was compacted away: the base it starts from keeps
    // the removed member's slot, where it sits until its addition reaches its log.
    let last = NAMES.len() - 1;
    g.join = Some(next);
    let spec = format!("{}={}", NAMES[last], g.listen[last]);
    assert!(harp(&["member", "add", &g.admin[next], &spec]).status.success());
    spawn_and_catch_up(&mut g, last, next, &mut durable);

    // The arbiter's name is reused for a data node: the arbiter is shut down and removed,
    // and n5 is added again, Electable, under a new id. Its new machine joins from a
    // restore point whose base still holds the arbiter n5 (the removal is in the retained
    // log), and must start as itself, not as that arbiter.
    assert!(harp(&["shutdown", &g.admin[ARBITER]]).status.success());
    assert!(wait_exit(&mut g, ARBITER).success());
    let out = harp(&["member", "remove", &g.admin[next], NAMES[ARBITER]]);
    assert!(out.status.success(), "{out:?}");
    std::fs::remove_dir_all(g.data_dir(ARBITER)).unwrap();
    g.arbiter = false;
    let spec = format!("{}={}", NAMES[ARBITER], g.listen[ARBITER]);
    let added = harp(&["member", "add", &g.admin[next], &spec]);
    assert!(added.status.success(), "{added:?}");
    spawn_and_catch_up(&mut g, ARBITER, next, &mut durable);
    let s = g.status(next).unwrap();
    let n5 = s.members.iter().find(|m| m.name == NAMES[ARBITER]).unwrap();
    assert_eq!(n5.node_type, harp::NodeType::Electable, "{s:?}");
    assert!(n5.node_id > 6, "a new id: {s:?}");
    // It promised, in its election record, to vote only for logs that hold its Add: a
    // candidate whose log lacks it could count its vote as the removed arbiter's.
    let stdout = String::from_utf8_lossy(&added.stdout);
    let add_vlsn: u64 = stdout
        .split_whitespace()
        .skip_while(|w| *w != "VLSN")
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no VLSN in {stdout:?}"));
    let promised = election_record(&g.data_dir(ARBITER)).acknowledged;
    assert_eq!(promised.1, add_vlsn, "{stdout:?}");
    assert!(promised.0 > 0, "the master's term: {promised:?}");
}

/// The election record in `data_dir`.
fn election_record(data_dir: &std::path::Path) -> harp::storage::ElectionRecord {
    use harp::storage::{ElectionRecord, StableStore, MAX_RECORD};
    let mut store = harp_std::store::FileStore::open(&data_dir.join("election")).unwrap();
    let mut buf = [0u8; MAX_RECORD];
    let len = store.read(&mut buf).unwrap().expect("a record");
    ElectionRecord::decode(&buf[..len]).unwrap()
}

/// Starts node `i`, writes 50 more entries through `master` and waits until `i` holds them.
fn spawn_and_catch_up(g: &mut Group, i: usize, master: usize, durable: &mut Vec<(u64, String)>) {
    g.spawn(i);
    durable.extend(write(g, master, durable.len(), 50));
    wait_caught_up(g, i, durable.last().unwrap().0);
    g.assert_holds(i, &durable[durable.len() - 50..]);
}

/// A one-node group whose election file was deleted (a corrupt one refuses to start, and an
/// operator may remove it): the node starts in its log's last term, and its next term start
/// is above every term in its log. Before, it re-elected itself in term 1 and wrote term-1
/// entries after its later-term ones.
#[test]
fn a_node_whose_election_file_was_deleted_never_writes_a_lower_term() {
    use harp::replication::LogStore;
    use harp_std::config::HostConfig;
    use harp_std::host::Host;
    use harp_std::store::{Durability, FileLog};
    let dir = tempfile::tempdir().unwrap();
    let config = HostConfig::group(&["solo"], "g", &[free_port()], dir.path()).remove(0);
    let solo_master = |host: &Host| {
        let deadline = Instant::now() + Duration::from_secs(10);
        while host.status().unwrap().role != "master" {
            assert!(Instant::now() < deadline, "no master");
            thread::sleep(Duration::from_millis(10));
        }
        host.status().unwrap().term
    };
    // Three starts make term 3; then the record goes.
    for data in ["one", "two", "three"] {
        let host = Host::start(config.clone()).unwrap();
        solo_master(&host);
        host.append(vec![data.into()]).unwrap();
        host.shutdown().unwrap();
    }
    std::fs::remove_dir_all(config.data_dir.join("election")).unwrap();
    let host = Host::start(config.clone()).unwrap();
    assert_eq!(solo_master(&host), 4, "the term after its log's last");
    host.append(vec!["four".into()]).unwrap();
    host.shutdown().unwrap();
    let (log, _) = FileLog::open(&config.data_dir.join("log"), Durability::Os, 1 << 20).unwrap();
    let terms: Vec<u64> =
        (log.first_vlsn()..=log.last_vlsn()).map(|v| log.meta(v).unwrap().term).collect();
    // Per start: its term start, the entry, and the DTVLSN record that makes it durable.
    assert_eq!(terms, [1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4]);
}
