//! The `harp` inspector commands, run as a real process.

use std::process::{Command, Stdio};

/// A `harp node` process, killed if the test ends (or fails) while it runs, so a failing
/// test leaves no node behind.
struct NodeProcess(std::process::Child);

impl NodeProcess {
    /// Starts `harp node` with `args`; its stderr is kept only if `keep_log`.
    fn start(args: &[&str], keep_log: bool) -> NodeProcess {
        let log = if keep_log { Stdio::piped() } else { Stdio::null() };
        let child = Command::new(env!("CARGO_BIN_EXE_harp"))
            .arg("node")
            .args(args)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        NodeProcess(child)
    }

    /// Waits (at most 20 s) for the process to end; its exit status and stderr.
    fn wait(&mut self) -> (std::process::ExitStatus, String) {
        use std::io::Read;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        let status = loop {
            if let Some(status) = self.0.try_wait().unwrap() {
                break status;
            }
            assert!(std::time::Instant::now() < deadline, "the node did not stop");
            std::thread::sleep(std::time::Duration::from_millis(50));
        };
        let mut log = String::new();
        if let Some(mut stderr) = self.0.stderr.take() {
            stderr.read_to_string(&mut log).unwrap();
        }
        (status, log)
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn harp(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_harp")).args(args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn decode_and_encode_round_trip_every_example() {
    let pairs = [
        (
            "01020000006e31010000006702",
            r#"{"Handshake":{"node_name":"n1","group_name":"g","node_type":"Secondary"}}"#,
        ),
        ("020001020000006e6f", r#"{"HandshakeResponse":{"accepted":false,"reason":"no"}}"#),
        ("020100", r#"{"HandshakeResponse":{"accepted":true,"reason":null}}"#),
        (
            "05ffffffffffffffff2a02000000dead",
            r#"{"LogEntry":{"vlsn":18446744073709551615,"entry_type":42,"data":"dead"}}"#,
        ),
    ];
    for (hex, json) in pairs.iter() {
        let (ok, out, err) = harp(&["decode", hex]);
        assert!(ok, "{err}");
        assert_eq!(out.trim(), *json);
        let (ok, out, err) = harp(&["encode", json]);
        assert!(ok, "{err}");
        assert_eq!(out.trim(), *hex);
    }
}

#[test]
fn group_change_json_shape() {
    let json = r#"{"GroupChange":{"change_type":"Remove","node":{"name":"a","node_type":"Arbiter","host":"h","port":5001,"node_id":7}}}"#;
    let (ok, out, _) = harp(&["encode", json]);
    assert!(ok);
    assert_eq!(out.trim(), "07010100000061030100000068891307000000");
    let (_, back, _) = harp(&["decode", out.trim()]);
    assert_eq!(back.trim(), json);
}

#[test]
fn bad_input_exits_non_zero_with_one_line() {
    for args in [
        vec!["decode", "zz"],
        vec!["decode", "063412"],
        vec!["decode", "0d"],
        vec!["decode", "020100ff"],
        vec!["encode", r#"{"Nope":{}}"#],
        vec!["encode", r#"{"Ack":{"vlsn":-1}}"#],
        vec!["encode", r#"{"LogEntry":{"vlsn":1,"entry_type":0,"data":"xyz"}}"#],
    ] {
        let (ok, out, err) = harp(&args);
        assert!(!ok, "{args:?} should fail");
        assert!(out.is_empty());
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.starts_with("harp: "), "{err}");
    }
    let (_, _, err) = harp(&["decode", "0d"]);
    assert!(err.contains("unknown message tag 13 at byte 0"), "{err}");
}

#[test]
fn decode_framed_capture() {
    use harp::MessageRef;
    let msgs = [MessageRef::Ack { vlsn: 1 }, MessageRef::Shutdown { reason: "bye" }];
    let bytes = harp_std::encode_framed(&msgs).unwrap();
    let dir = std::env::temp_dir().join(format!("harp-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("capture.bin");
    std::fs::write(&path, &bytes).unwrap();
    let (ok, out, err) = harp(&["decode", "--framed", path.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert_eq!(out, "{\"Ack\":{\"vlsn\":1}}\n{\"Shutdown\":{\"reason\":\"bye\"}}\n");

    // Corrupt the second frame's CRC: the error names the frame and its byte offset.
    let mut bad = bytes.clone();
    *bad.last_mut().unwrap() ^= 1;
    std::fs::write(&path, &bad).unwrap();
    let (ok, _, err) = harp(&["decode", "--framed", path.to_str().unwrap()]);
    assert!(!ok);
    assert!(err.contains("frame 1 at byte 23") && err.contains("checksum"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn sim_sweep_ends_with_a_json_summary() {
    let (ok, out, err) = harp(&["sim", "--seeds", "60", "--threads", "2"]);
    assert!(ok, "{err}");
    let last: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    assert_eq!(last["seeds"], 60);
    assert_eq!(last["violations"], 0);
    for key in ["elections", "crashes", "partitions", "failover_ms_p50", "failover_ms_p99"] {
        assert!(last[key].as_u64().is_some_and(|v| v > 0), "{key} in {last}");
    }
}

#[test]
fn sim_replays_one_seed_with_a_trace() {
    let (ok, out, err) = harp(&["sim", "--seed", "5"]);
    assert!(ok, "{err}");
    assert!(out.lines().next().unwrap().contains("group:"), "trace starts with the group");
    assert!(out.contains("BecameMaster"), "the trace shows the election");
    let (_, again, _) = harp(&["sim", "--seed", "5"]);
    let strip =
        |s: &str| s.lines().filter(|l| !l.contains("elapsed_s")).collect::<Vec<_>>().join("\n");
    assert_eq!(strip(&out), strip(&again), "a replay is identical");
}

#[test]
fn an_invalid_node_configuration_stops_with_one_line_before_anything_starts() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d").display().to_string();
    let cases: [(&[&str], &str); 6] = [
        (&["--peer", "n1=127.0.0.1:2"], "appears twice"),
        (&["--join", "127.0.0.1:3", "--peer", "n2=127.0.0.1:2"], "no peers"),
        (&["--type", "boss"], "unknown node type"),
        (&["--heartbeat-ms", "400"], "election_timeout_ms"),
        (&["--peer", "n2"], "NAME=ADDR"),
        (&["--retain-entries", "0"], "retain_entries must be at least 1"),
    ];
    for (args, expected) in cases {
        let mut all = vec!["node", "--name", "n1", "--group", "g", "--listen", "127.0.0.1:1"];
        all.extend_from_slice(&["--data-dir", &data]);
        all.extend_from_slice(args);
        let (ok, _, err) = harp(&all);
        assert!(!ok, "{args:?} was accepted");
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
        assert!(err.contains(expected), "{expected:?} not in {err}");
    }
    assert!(!dir.path().join("d").exists(), "nothing was created");
    let (ok, _, err) = harp(&["member", "add", "127.0.0.1:1", "n4"]);
    assert!(!ok && err.contains("expected NAME=ADDR[,TYPE]"), "{err}");
    let (ok, _, err) = harp(&["member", "add", "127.0.0.1:1", "n4=127.0.0.1:9,boss"]);
    assert!(!ok && err.contains("unknown node type"), "{err}");
    let (ok, _, err) = harp(&["member", "update", "127.0.0.1:1", "n4=nowhere"]);
    assert!(!ok && err.contains("bad address"), "{err}");
    let toml = dir.path().join("bad.toml");
    std::fs::write(&toml, "name = \"n1\"\ngroup = \"g\"\nlisten = \"127.0.0.1:1\"\ndata_dir = \"x\"\nfavourite_colour = \"red\"\n").unwrap();
    let (ok, _, err) = harp(&["node", "--config", toml.to_str().unwrap()]);
    assert!(!ok && err.contains("favourite_colour"), "{err}");
}

/// Asks `harp status` at `admin` until it answers (at most 20 s); its output.
fn wait_for_status(admin: &str, until: impl Fn(&str) -> bool) -> String {
    use std::time::{Duration, Instant};
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (ok, out, err) = harp(&["status", admin]);
        if ok && until(&out) {
            return out;
        }
        assert!(Instant::now() < deadline, "no such status at {admin}: {out}{err}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `harp node`, then `harp status`, `harp append` and `harp shutdown` against its admin
/// address, each as its own process (a one-member group: it elects itself).
#[test]
fn status_append_and_shutdown_drive_a_running_node() {
    let port = || harp_std::free_local_addr().unwrap();
    let (listen, admin) = (port().to_string(), port().to_string());
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("n1");
    let data = data.to_str().unwrap();
    let mut node = NodeProcess::start(
        &["--name", "n1", "--group", "g", "--listen", &listen, "--admin", &admin]
            .into_iter()
            .chain(["--durability", "os", "--data-dir", data])
            .collect::<Vec<_>>(),
        false,
    );
    let status = wait_for_status(&admin, |out| out.contains(r#""role":"master""#));
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    for key in ["name", "role", "term", "master", "vlsn", "first", "dtvlsn", "peers"] {
        assert!(status.get(key).is_some(), "status has {key}: {status}");
    }
    let other = port().to_string();
    let (ok, _, err) =
        harp(&["node", "--name", "n1", "--group", "g", "--listen", &other, "--data-dir", data]);
    assert!(
        !ok && err.contains("in use by another harp process"),
        "a second node on the same data directory is refused: {err}"
    );
    let (ok, out, err) = harp(&["append", &admin, "alpha", "beta"]);
    assert!(ok, "append failed: {err}");
    let vlsns: Vec<u64> = out.lines().map(|l| l.parse().unwrap()).collect();
    assert_eq!(vlsns.len(), 2);
    assert_eq!(vlsns[1], vlsns[0] + 1, "consecutive VLSNs: {out}");
    // The counters: this node won its own election and appended the two entries as master
    // (the term's start, which the master writes itself, is not counted).
    let (_, out, _) = harp(&["status", &admin]);
    let status: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(status["election"]["terms_won"], 1, "{status}");
    assert_eq!(status["election"]["ignored"]["spoofed"], 0, "{status}");
    assert_eq!(status["replication"]["appended"], 2, "{status}");
    let (ok, _, err) = harp(&["shutdown", &admin]);
    assert!(ok, "shutdown failed: {err}");
    let (exit, _) = node.wait();
    assert!(exit.success(), "the node exits 0 after a graceful shutdown: {exit}");
}

/// A node whose admin address is reachable from other hosts says so at start (anyone who
/// reaches it can append, change the membership and stop the node); one on loopback does not.
#[test]
fn a_node_warns_when_its_admin_address_is_not_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let mut warned = Vec::new();
    for (name, host) in [("n1", "0.0.0.0"), ("n2", "127.0.0.1")] {
        let listen = harp_std::free_local_addr().unwrap().to_string();
        let port = harp_std::free_local_addr().unwrap().port();
        let admin = format!("{host}:{port}");
        let data = dir.path().join(name);
        let mut node = NodeProcess::start(
            &["--name", name, "--group", "g", "--listen", &listen, "--admin", &admin]
                .into_iter()
                .chain(["--durability", "os", "--data-dir", data.to_str().unwrap()])
                .collect::<Vec<_>>(),
            true,
        );
        let local = format!("127.0.0.1:{port}");
        wait_for_status(&local, |_| true);
        let (ok, _, err) = harp(&["shutdown", &local]);
        assert!(ok, "shutdown failed: {err}");
        let (exit, log) = node.wait();
        assert!(exit.success());
        warned.push(log.contains("not a loopback"));
    }
    assert_eq!(warned, [true, false], "warned for 0.0.0.0, not for 127.0.0.1");
}

/// A flood of idle admin connections is bounded: beyond 256 at once, a connection is
/// answered "too many" at once (no thread, no wait); once they close, requests are served.
#[test]
fn admin_connections_beyond_the_limit_are_refused_at_once() {
    use std::time::{Duration, Instant};
    let dir = tempfile::tempdir().unwrap();
    let listen = harp_std::free_local_addr().unwrap().to_string();
    let admin = harp_std::free_local_addr().unwrap().to_string();
    let data = dir.path().join("n1");
    let mut node = NodeProcess::start(
        &["--name", "n1", "--group", "g", "--listen", &listen, "--admin", &admin]
            .into_iter()
            .chain(["--durability", "os", "--data-dir", data.to_str().unwrap()])
            .collect::<Vec<_>>(),
        false,
    );
    wait_for_status(&admin, |_| true);
    let idle: Vec<_> = (0..256).map(|_| std::net::TcpStream::connect(&admin).unwrap()).collect();
    // The node has taken every idle connection off its listen queue within moments (they
    // then wait 10 s for a request); from then on a request is refused, without waiting.
    let deadline = Instant::now() + Duration::from_secs(5);
    let err = loop {
        let started = Instant::now();
        let (ok, _, err) = harp(&["status", &admin]);
        if !ok {
            assert!(started.elapsed() < Duration::from_secs(2), "refused at once");
            break err;
        }
        assert!(Instant::now() < deadline, "a 257th connection is still served");
    };
    assert!(err.contains("too many admin connections"), "{err}");
    drop(idle);
    wait_for_status(&admin, |_| true); // served again once the idle connections closed
    assert!(harp(&["shutdown", &admin]).0);
    assert!(node.wait().0.success());
}
