//! `harp bench`: hosted-node benchmarks beside raw-TCP baselines measured in the same run
//! (BENCHMARKS.md quotes them).
//!
//! - throughput: a three-node group on loopback (SIMPLE_MAJORITY, `os` durability so the
//!   disk does not dominate) replicating 1 KiB entries, beside one sender pushing the same
//!   bytes over raw TCP to two receivers that acknowledge every 32 entries (three
//!   alternating rounds, the median of each side), and the group again with log retention
//!   (the newest tenth of the entries kept);
//! - commit latency: one entry appended until durable, beside a raw TCP round trip;
//! - failover: `kill -9` of the master process to a new master, over several runs.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};

use crate::config::HostConfig;
use crate::free_local_addr;
use crate::host::{admin_request, Host, Reply, Request};
use crate::store::Durability;

const NAMES: [&str; 3] = ["n1", "n2", "n3"];
const ENTRY: usize = 1024;
const THROUGHPUT_ROUNDS: usize = 3;

/// Three in-process hosts on loopback, with log retention if `retain`; returns them and the
/// master's index.
fn group(dir: &std::path::Path, retain: Option<u64>) -> Result<(Vec<Host>, usize)> {
    let listen: Vec<SocketAddr> =
        (0..3).map(|_| free_local_addr()).collect::<std::io::Result<_>>()?;
    let mut hosts = Vec::new();
    for mut config in HostConfig::group(&NAMES, "bench", &listen, dir) {
        config.durability = Durability::Os;
        config.retain_entries = retain;
        hosts.push(Host::start(config)?);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let statuses: Vec<_> = hosts.iter().map(|h| h.status()).collect::<Result<_>>()?;
        if let Some(m) = statuses.iter().position(|s| s.role == "master") {
            if statuses.iter().all(|s| s.master.as_deref() == Some(NAMES[m])) {
                return Ok((hosts, m));
            }
        }
        if Instant::now() > deadline {
            bail!("no master");
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// MB/s of harp replicating `count` 1 KiB entries (batches of 1000 in flight from 4 clients),
/// and the first VLSN the master's log holds at the end (above 1 once retention compacted).
/// The batches are built before the clock starts, as the baseline's record is.
fn harp_throughput(count: usize, retain: Option<u64>) -> Result<(f64, u64)> {
    let dir = tempfile::tempdir()?;
    let (hosts, m) = group(dir.path(), retain)?;
    let entry = "x".repeat(ENTRY);
    let batches = client_batches(count, &entry);
    let start = Instant::now();
    thread::scope(|s| -> Result<()> {
        let clients: Vec<_> = batches
            .into_iter()
            .map(|batches| {
                let host = &hosts[m];
                s.spawn(move || -> Result<()> {
                    for batch in batches {
                        host.append(batch)?;
                    }
                    Ok(())
                })
            })
            .collect();
        for c in clients {
            c.join().map_err(|_| anyhow::anyhow!("client panicked"))??;
        }
        Ok(())
    })?;
    let secs = start.elapsed().as_secs_f64();
    let first = hosts[m].status()?.first;
    for h in hosts {
        h.shutdown()?;
    }
    Ok(((count * ENTRY) as f64 / secs / 1e6, first))
}

/// `count` copies of `entry` for 4 clients, in batches of at most 1,000: every entry
/// counted in the MB/s is appended.
fn client_batches(count: usize, entry: &str) -> Vec<Vec<Vec<String>>> {
    (0..4)
        .map(|client| {
            let mine = count / 4 + usize::from(client < count % 4);
            (0..mine)
                .step_by(1000)
                .map(|first| vec![entry.to_string(); (mine - first).min(1000)])
                .collect()
        })
        .collect()
}

/// MB/s of one sender writing `count` 1 KiB records to two receivers over raw TCP, each
/// acknowledging every 32 records; done when both acknowledged the last.
fn tcp_throughput(count: usize) -> Result<f64> {
    let receivers: Vec<(SocketAddr, thread::JoinHandle<Result<()>>)> = (0..2)
        .map(|_| -> Result<_> {
            let listener = TcpListener::bind("127.0.0.1:0")?;
            let addr = listener.local_addr()?;
            let handle = thread::spawn(move || -> Result<()> {
                let (mut s, _) = listener.accept()?;
                s.set_nodelay(true)?;
                let mut buf = vec![0u8; ENTRY];
                for k in 1..=count {
                    s.read_exact(&mut buf)?;
                    if k % 32 == 0 || k == count {
                        s.write_all(&(k as u64).to_le_bytes())?;
                    }
                }
                Ok(())
            });
            Ok((addr, handle))
        })
        .collect::<Result<_>>()?;
    let start = Instant::now();
    let senders: Vec<_> = receivers
        .iter()
        .map(|(addr, _)| -> Result<(TcpStream, TcpStream)> {
            let s = TcpStream::connect(addr)?;
            s.set_nodelay(true)?;
            Ok((s.try_clone()?, s))
        })
        .collect::<Result<_>>()?;
    let record = vec![7u8; ENTRY];
    let ackers: Vec<_> = senders
        .iter()
        .map(|(_, r)| {
            let mut r = r.try_clone().expect("clone");
            thread::spawn(move || {
                let mut ack = [0u8; 8];
                while r.read_exact(&mut ack).is_ok() {
                    if u64::from_le_bytes(ack) as usize == count {
                        break;
                    }
                }
            })
        })
        .collect();
    let mut writers: Vec<_> =
        senders.into_iter().map(|(w, _)| std::io::BufWriter::with_capacity(64 * 1024, w)).collect();
    for _ in 0..count {
        for w in writers.iter_mut() {
            w.write_all(&record)?;
        }
    }
    for w in writers.iter_mut() {
        w.flush()?;
    }
    for a in ackers {
        let _ = a.join();
    }
    let secs = start.elapsed().as_secs_f64();
    for (_, h) in receivers {
        h.join().map_err(|_| anyhow::anyhow!("receiver panicked"))??;
    }
    Ok((count * ENTRY) as f64 / secs / 1e6)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// The `p`th percentile (nearest rank above); `None` for no samples.
fn percentile(mut v: Vec<f64>, p: usize) -> Option<f64> {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get((v.len().checked_sub(1)? * p).div_ceil(100)).copied()
}

/// Median µs of appending one entry until durable.
fn harp_latency(runs: usize) -> Result<f64> {
    let dir = tempfile::tempdir()?;
    let (hosts, m) = group(dir.path(), None)?;
    let mut samples = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        hosts[m].append(vec!["x".repeat(64)])?;
        samples.push(t.elapsed().as_secs_f64() * 1e6);
    }
    for h in hosts {
        h.shutdown()?;
    }
    Ok(median(samples))
}

/// Median µs of a 64-byte ping-pong over raw TCP on loopback.
fn tcp_round_trip(runs: usize) -> Result<f64> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let echo = thread::spawn(move || -> Result<()> {
        let (mut s, _) = listener.accept()?;
        s.set_nodelay(true)?;
        let mut buf = [0u8; 64];
        while s.read_exact(&mut buf).is_ok() {
            s.write_all(&buf)?;
        }
        Ok(())
    });
    let mut s = TcpStream::connect(addr)?;
    s.set_nodelay(true)?;
    let mut buf = [0u8; 64];
    let mut samples = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        s.write_all(&buf)?;
        s.read_exact(&mut buf)?;
        samples.push(t.elapsed().as_secs_f64() * 1e6);
    }
    drop(s);
    let _ = echo.join();
    Ok(median(samples))
}

/// Milliseconds from `kill -9` of the master process to a new master, per run.
fn failovers(runs: usize) -> Result<Vec<f64>> {
    let exe = std::env::current_exe()?;
    let mut out = Vec::new();
    for _ in 0..runs {
        let dir = tempfile::tempdir()?;
        let listen: Vec<SocketAddr> =
            (0..3).map(|_| free_local_addr()).collect::<std::io::Result<_>>()?;
        let admin: Vec<String> = (0..3)
            .map(|_| free_local_addr().map(|a| a.to_string()))
            .collect::<std::io::Result<_>>()?;
        let mut children = Vec::new();
        for i in 0..3 {
            let mut cmd = Command::new(&exe);
            cmd.args(["node", "--name", NAMES[i], "--group", "bench", "--durability", "os"])
                .args(["--listen", &listen[i].to_string(), "--admin", &admin[i]])
                .args(["--data-dir", &dir.path().join(NAMES[i]).display().to_string()]);
            for j in (0..3).filter(|&j| j != i) {
                cmd.args(["--peer", &format!("{}={}", NAMES[j], listen[j])]);
            }
            children.push(Some(cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn()?));
        }
        let status =
            |i: usize| match admin_request(&admin[i], &Request::Status, Duration::from_secs(1)) {
                Ok(Reply::Status(s)) => Some(s),
                _ => None,
            };
        let master_of = |live: &[usize]| -> Option<usize> {
            let statuses: Vec<_> = live.iter().map(|&i| status(i)).collect();
            let m = live
                .iter()
                .zip(&statuses)
                .find(|(_, s)| s.as_ref().is_some_and(|s| s.role == "master"))?
                .0;
            statuses
                .iter()
                .all(|s| s.as_ref().is_some_and(|s| s.master.as_deref() == Some(NAMES[*m])))
                .then_some(*m)
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        let first = loop {
            if let Some(m) = master_of(&[0, 1, 2]) {
                break m;
            }
            if Instant::now() > deadline {
                bail!("no master");
            }
            thread::sleep(Duration::from_millis(5));
        };
        thread::sleep(Duration::from_millis(300)); // a steady state: heartbeats flowing
        let mut victim = children[first].take().ok_or_else(|| anyhow::anyhow!("no child"))?;
        victim.kill()?;
        let killed = Instant::now();
        victim.wait()?;
        let live: Vec<usize> = (0..3).filter(|&i| i != first).collect();
        loop {
            if master_of(&live).is_some() {
                break;
            }
            if killed.elapsed() > Duration::from_secs(10) {
                bail!("no failover");
            }
            thread::sleep(Duration::from_millis(2));
        }
        out.push(killed.elapsed().as_secs_f64() * 1e3);
        for mut c in children.into_iter().flatten() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
    Ok(out)
}

/// Runs every benchmark and prints one JSON line.
pub fn run(entries: usize, failover_runs: usize) -> Result<()> {
    // Three alternating rounds, each side's median: the loopback baseline alone moves by
    // a third between back-to-back runs on this machine.
    // With retention: the newest tenth of the entries kept, the rest compacted as it goes.
    let retain = (entries / 10).max(1) as u64;
    let (mut tcps, mut harps, mut retained) = (Vec::new(), Vec::new(), Vec::new());
    let mut first = 1;
    for _ in 0..THROUGHPUT_ROUNDS {
        tcps.push(tcp_throughput(entries)?);
        harps.push(harp_throughput(entries, None)?.0);
        let (mb_s, start) = harp_throughput(entries, Some(retain))?;
        retained.push(mb_s);
        first = start;
    }
    let (tcp, harp, kept) = (median(tcps.clone()), median(harps.clone()), median(retained.clone()));
    eprintln!(
        "throughput (median of {THROUGHPUT_ROUNDS} alternating rounds): harp {harp:.1} MB/s {harps:.1?}, raw TCP to two receivers {tcp:.1} MB/s {tcps:.1?} ({:.2}x)",
        harp / tcp
    );
    eprintln!(
        "with --retain-entries {retain}: harp {kept:.1} MB/s {retained:.1?} ({:.2}x of harp without; the master's log starts at {first})",
        kept / harp
    );
    let rtt = tcp_round_trip(2000)?;
    let commit = harp_latency(2000)?;
    eprintln!(
        "commit latency: harp {commit:.0} µs, raw TCP round trip {rtt:.0} µs ({:.1} round trips)",
        commit / rtt
    );
    let fo = failovers(failover_runs)?;
    let (p50, p99) = (percentile(fo.clone(), 50), percentile(fo.clone(), 99));
    if let (Some(p50), Some(p99)) = (p50, p99) {
        eprintln!(
            "failover (kill -9 to a new master, {} runs): p50 {p50:.0} ms, p99 {p99:.0} ms",
            fo.len()
        );
    }
    println!(
        "{}",
        serde_json::json!({
            "throughput_mb_s": (harp * 10.0).round() / 10.0,
            "tcp_baseline_mb_s": (tcp * 10.0).round() / 10.0,
            "throughput_ratio": (harp / tcp * 100.0).round() / 100.0,
            "retained_mb_s": (kept * 10.0).round() / 10.0,
            "retained_ratio": (kept / harp * 100.0).round() / 100.0,
            "retained_first_vlsn": first,
            "commit_us": commit.round(),
            "tcp_rtt_us": rtt.round(),
            "commit_round_trips": (commit / rtt * 10.0).round() / 10.0,
            "failover_ms_p50": p50.map(f64::round),
            "failover_ms_p99": p99.map(f64::round),
            "failover_runs": fo.len(),
        })
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::client_batches;

    #[test]
    fn the_client_batches_hold_exactly_the_entries_counted() {
        for count in [0, 1, 3, 999, 2_000, 4_001, 200_000] {
            let batches = client_batches(count, "e");
            let total: usize = batches.iter().flatten().map(Vec::len).sum();
            assert_eq!(total, count, "entries for --entries {count}");
            assert!(batches.iter().flatten().all(|b| !b.is_empty() && b.len() <= 1000));
        }
        assert_eq!(client_batches(200_000, "e")[0].len(), 50);
    }
}
