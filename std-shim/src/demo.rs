//! `harp demo`: a three-node group of real processes on loopback, a crash of the master, the
//! failover, the old master's return, and a check that nothing durable was lost.

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::free_local_addr;
use crate::host::{admin_request, Reply, Request, Status};

const NAMES: [&str; 3] = ["n1", "n2", "n3"];
const BATCH: usize = 100;

/// One node process of the demo.
struct Proc {
    name: &'static str,
    admin: String,
    args: Vec<String>,
    child: Option<Child>,
}

impl Proc {
    fn start(&mut self, exe: &Path, log_dir: &Path) -> Result<()> {
        let log = std::fs::File::create(log_dir.join(format!("{}.log", self.name)))?;
        let child = Command::new(exe)
            .args(&self.args)
            .env("RUST_LOG", std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", self.name))?;
        self.child = Some(child);
        Ok(())
    }

    fn kill(&mut self) -> Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill()?; // SIGKILL: no shutdown, no flush
            child.wait()?;
        }
        Ok(())
    }

    fn status(&self) -> Option<Status> {
        match admin_request(&self.admin, &Request::Status, Duration::from_secs(2)) {
            Ok(Reply::Status(s)) => Some(s),
            _ => None,
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.kill();
    }
}

/// Waits until one live node is master and every live node follows it; returns its index.
/// Failing, it says what each node answered, and the last log line of one that did not.
fn wait_for_master(procs: &[Proc], limit: Duration, log_dir: &Path) -> Result<usize> {
    let deadline = Instant::now() + limit;
    loop {
        let live: Vec<(usize, Status)> = procs
            .iter()
            .enumerate()
            .filter(|(_, p)| p.child.is_some())
            .filter_map(|(i, p)| p.status().map(|s| (i, s)))
            .collect();
        let master =
            live.iter().find(|(_, s)| s.role == "master").map(|(i, s)| (*i, s.name.clone()));
        if let Some((i, name)) = master {
            let all = procs.iter().filter(|p| p.child.is_some()).count();
            if live.len() == all
                && live.iter().all(|(_, s)| s.master.as_deref() == Some(name.as_str()))
            {
                return Ok(i);
            }
        }
        if Instant::now() > deadline {
            let states: Vec<String> = procs
                .iter()
                .filter(|p| p.child.is_some())
                .map(|p| match p.status() {
                    Some(s) => format!("{}: {} (master {:?})", p.name, s.role, s.master),
                    None => {
                        let log = std::fs::read_to_string(log_dir.join(format!("{}.log", p.name)));
                        let last = log.ok().and_then(|l| l.lines().last().map(str::to_string));
                        format!("{}: no answer (last log line: {last:?})", p.name)
                    }
                })
                .collect();
            bail!("no master within {limit:?}: {}", states.join("; "));
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// Writes `count` entries to the master in batches, each waited for until durable.
fn write(
    procs: &[Proc],
    master: usize,
    first: usize,
    count: usize,
    label: &str,
) -> Result<Vec<(u64, String)>> {
    let mut written = Vec::new();
    let mut k = first;
    while k < first + count {
        let batch: Vec<String> =
            (k..(k + BATCH).min(first + count)).map(|i| format!("entry-{i:06}")).collect();
        let reply = admin_request(
            &procs[master].admin,
            &Request::Append { data: batch.clone() },
            Duration::from_secs(30),
        )?;
        match reply {
            Reply::Appended { vlsns } => written.extend(vlsns.into_iter().zip(batch)),
            other => bail!("append failed: {other:?}"),
        }
        k += BATCH;
        progress(label, k - first, count);
    }
    eprintln!();
    Ok(written)
}

fn progress(label: &str, done: usize, total: usize) {
    let width = 30;
    let filled = (done.min(total) * width) / total.max(1);
    eprint!(
        "\r  {label:<24} [{}{}] {done:>5}/{total}",
        "#".repeat(filled),
        " ".repeat(width - filled)
    );
    let _ = std::io::stderr().flush();
}

/// Node `p` holds every entry in `durable`, byte for byte.
fn check_on(p: &Proc, durable: &[(u64, String)]) -> Result<()> {
    let Some(&(from, _)) = durable.first() else { return Ok(()) };
    let to = durable.last().map_or(from, |d| d.0);
    let reply = admin_request(
        &p.admin,
        &Request::Entries { from, limit: to - from + 1 },
        Duration::from_secs(10),
    )?;
    let Reply::Entries { entries, .. } = reply else { bail!("{}: no entries reply", p.name) };
    let held: std::collections::HashMap<u64, String> = entries.into_iter().collect();
    for (vlsn, data) in durable {
        if held.get(vlsn) != Some(data) {
            bail!("{} lacks durable entry {vlsn} ({data})", p.name);
        }
    }
    Ok(())
}

/// Waits until node `i` holds everything up to `vlsn`.
fn wait_caught_up(procs: &[Proc], i: usize, vlsn: u64, limit: Duration) -> Result<Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if procs[i].status().is_some_and(|s| s.role == "replica" && s.vlsn >= vlsn) {
            return Ok(start.elapsed());
        }
        thread::sleep(Duration::from_millis(10));
    }
    bail!("{} did not catch up within {limit:?}", procs[i].name)
}

/// Runs the demo; prints its story and a summary.
pub fn run(entries: usize) -> Result<()> {
    let exe = std::env::current_exe()?;
    let dir = tempfile::Builder::new().prefix("harp-demo-").tempdir()?;
    let listen: Vec<SocketAddr> =
        (0..3).map(|_| free_local_addr()).collect::<std::io::Result<_>>()?;
    let admin: Vec<SocketAddr> =
        (0..3).map(|_| free_local_addr()).collect::<std::io::Result<_>>()?;
    let mut procs: Vec<Proc> = (0..3)
        .map(|i| {
            let mut args = vec![
                "node".to_string(),
                "--name".into(),
                NAMES[i].into(),
                "--group".into(),
                "demo".into(),
                "--listen".into(),
                listen[i].to_string(),
                "--admin".into(),
                admin[i].to_string(),
                "--data-dir".into(),
                dir.path().join(NAMES[i]).display().to_string(),
            ];
            for j in (0..3).filter(|&j| j != i) {
                args.push("--peer".into());
                args.push(format!("{}={}", NAMES[j], listen[j]));
            }
            Proc { name: NAMES[i], admin: admin[i].to_string(), args, child: None }
        })
        .collect();
    println!("harp demo: three nodes on loopback, data in {}", dir.path().display());
    for p in procs.iter_mut() {
        p.start(&exe, dir.path())?;
    }
    let started = Instant::now();
    let first = wait_for_master(&procs, Duration::from_secs(10), dir.path())?;
    println!("elected: {} is master after {} ms", procs[first].name, started.elapsed().as_millis());

    let half = entries / 2;
    let t = Instant::now();
    let mut durable = write(&procs, first, 0, half, "writing to the master")?;
    let rate1 = half as f64 / t.elapsed().as_secs_f64();

    println!("kill -9 {} (the master)", procs[first].name);
    procs[first].kill()?;
    let killed = Instant::now();
    let second = wait_for_master(&procs, Duration::from_secs(10), dir.path())?;
    let failover = killed.elapsed();
    println!("failover: {} is master after {} ms", procs[second].name, failover.as_millis());
    check_on(&procs[second], &durable).context("after the failover")?;
    println!("checked: the new master holds all {} durable entries", durable.len());

    let t = Instant::now();
    durable.extend(write(&procs, second, half, entries - half, "writing to the new master")?);
    let rate2 = (entries - half) as f64 / t.elapsed().as_secs_f64();

    println!("restarting {} from its files", procs[first].name);
    procs[first].start(&exe, dir.path())?;
    let last = durable.last().map_or(0, |d| d.0);
    let catch_up = wait_caught_up(&procs, first, last, Duration::from_secs(30))?;
    println!(
        "caught up: {} is a replica holding VLSN {last} after {} ms",
        procs[first].name,
        catch_up.as_millis()
    );
    for i in (0..3).filter(|&i| i != second) {
        wait_caught_up(&procs, i, last, Duration::from_secs(30))?;
    }
    for p in &procs {
        check_on(p, &durable).context("after the restart")?;
    }
    println!("checked: all {} durable entries are on every node", durable.len());

    for p in procs.iter_mut() {
        let _ = admin_request(&p.admin, &Request::Shutdown, Duration::from_secs(5));
    }
    for p in procs.iter_mut() {
        if let Some(mut child) = p.child.take() {
            let deadline = Instant::now() + Duration::from_secs(5);
            while child.try_wait()?.is_none() && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
    println!(
        "{}",
        serde_json::json!({
            "entries": durable.len(),
            "failover_ms": failover.as_millis() as u64,
            "catch_up_ms": catch_up.as_millis() as u64,
            "entries_per_s_before": rate1.round(),
            "entries_per_s_after": rate2.round(),
            "lost_durable": 0,
        })
    );
    drop(dir);
    Ok(())
}
