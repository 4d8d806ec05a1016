//! The `harp` command-line tool.

// The argument docs below are clap's help text, read by people: `NAME=ADDR[,TYPE]` is a
// usage pattern, not an intra-doc link.
#![allow(rustdoc::broken_intra_doc_links)]

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "harp", version, about = "harp replication protocol tool")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Decode a hex message (or, with --framed, a captured frame stream) to JSON lines.
    Decode {
        /// Hex bytes of one message, or with --framed the path of a capture file.
        input: String,
        /// Treat INPUT as a file holding a framed stream (optional preamble, then frames).
        #[arg(long)]
        framed: bool,
        /// Largest message accepted in --framed mode.
        #[arg(long, default_value_t = 16 * 1024 * 1024)]
        max_frame: usize,
    },
    /// Run the deterministic simulator: N seeds (summary as one JSON line), or one seed with
    /// a readable trace. Exits non-zero on any violation.
    Sim {
        /// How many seeds to run.
        #[arg(long, conflicts_with = "seed")]
        seeds: Option<u64>,
        /// The first seed of a sweep.
        #[arg(long, default_value_t = 0)]
        start: u64,
        /// Replay this one seed with a trace.
        #[arg(long)]
        seed: Option<u64>,
        /// Worker threads for a sweep (default: all cores).
        #[arg(long)]
        threads: Option<usize>,
        #[command(flatten)]
        variant: harp_std::sim::Variant,
    },
    /// Encode a JSON message (serde externally tagged form) to lowercase hex.
    Encode {
        /// The message, e.g. '{"Heartbeat":{"master_vlsn":5,"timestamp_ms":6}}'.
        json: String,
    },
    /// Run one node of a group (logs to stderr; level from RUST_LOG, default info).
    Node(Box<NodeArgs>),
    /// Print a node's state as JSON (name, role, term, master, vlsn, dtvlsn, peers).
    Status {
        /// The node's admin address.
        addr: String,
    },
    /// Append entries through the master and print their VLSNs once durable.
    Append {
        /// The master's admin address (a replica answers with the master's name).
        addr: String,
        /// The entries (UTF-8).
        #[arg(required = true)]
        data: Vec<String>,
    },
    /// Stop a node gracefully.
    Shutdown {
        /// The node's admin address.
        addr: String,
    },
    /// Add a member to the group or remove one, through the master; waits until the change
    /// is durable (see docs/hosted.md, "Changing the group").
    #[command(subcommand)]
    Member(MemberCommand),
    /// Bring back a stopped replica that fell behind the group's retained logs: replace its
    /// log with an empty one that starts where a running member's log starts; started
    /// again, it is streamed everything after (see docs/hosted.md, "Log retention").
    Restore {
        /// The stopped node's data directory.
        #[arg(long)]
        data_dir: std::path::PathBuf,
        /// A running member's admin address (the master's, or any member that is not
        /// itself behind).
        #[arg(long)]
        from: String,
    },
    /// Start a three-node group on loopback, write, kill the master, fail over, restart it,
    /// check that nothing durable was lost, and clean up.
    Demo {
        /// Entries to write (half before the crash, half after).
        #[arg(long, default_value_t = 4000)]
        entries: usize,
    },
    /// Hosted benchmarks beside raw-TCP baselines in the same run (one JSON line).
    Bench {
        /// 1 KiB entries for the throughput run (200 MB: about a second, long enough for a
        /// steady state rather than the first burst).
        #[arg(long, default_value_t = 200_000)]
        entries: usize,
        /// Failover runs (kill -9 of the master); 0 skips the failover benchmark.
        #[arg(long, default_value_t = 20)]
        failovers: usize,
    },
}

/// `harp node`: a TOML file, or flags.
#[derive(Subcommand)]
enum MemberCommand {
    /// Add a member; then start it with `harp node ... --join ADMIN`.
    Add {
        /// The master's admin address.
        addr: String,
        /// The new member: NAME=ADDR[,TYPE] (its listen address; type electable by default).
        member: String,
    },
    /// Move a member to a new address or change its type: stop it, update it, start it
    /// again at that address.
    Update {
        /// The master's admin address.
        addr: String,
        /// NAME=ADDR[,TYPE] (type unchanged if absent).
        member: String,
    },
    /// Remove a member (not the master), once it is shut down (`harp shutdown`).
    Remove {
        /// The master's admin address.
        addr: String,
        /// The member's name.
        name: String,
    },
}

#[derive(clap::Args)]
struct NodeArgs {
    /// A TOML configuration file (see docs/hosted.md); the other flags are then not allowed.
    #[arg(long, conflicts_with_all = ["name", "group", "listen", "data_dir", "peer"])]
    config: Option<std::path::PathBuf>,
    /// This node's name.
    #[arg(long, required_unless_present = "config")]
    name: Option<String>,
    /// The group's name.
    #[arg(long, required_unless_present = "config")]
    group: Option<String>,
    /// electable, secondary, monitor or arbiter.
    #[arg(long = "type", default_value = "electable")]
    node_type: String,
    /// Election priority (0: never master).
    #[arg(long, default_value_t = 1)]
    priority: u32,
    /// The address peers connect to.
    #[arg(long, required_unless_present = "config")]
    listen: Option<std::net::SocketAddr>,
    /// The admin address for `harp status/append/shutdown`.
    #[arg(long)]
    admin: Option<std::net::SocketAddr>,
    /// A peer: NAME=ADDR[,TYPE[,PRIORITY]] (repeat for each).
    #[arg(long)]
    peer: Vec<String>,
    /// Where the log and the election record live.
    #[arg(long, required_unless_present = "config")]
    data_dir: Option<std::path::PathBuf>,
    /// all, simple-majority or none.
    #[arg(long, default_value = "simple-majority")]
    ack_policy: String,
    /// fsync (survives power loss) or os (survives a process crash).
    #[arg(long, default_value = "fsync")]
    durability: String,
    /// Heartbeat interval, ms.
    #[arg(long, default_value_t = 100)]
    heartbeat_ms: u64,
    /// Silence before an election, ms.
    #[arg(long, default_value_t = 500)]
    election_timeout_ms: u64,
    /// Keep at least this many of the newest log entries and compact older durable ones
    /// (default: keep the whole log).
    #[arg(long)]
    retain_entries: Option<u64>,
    /// Join a running group through this admin address of one of its members, after the
    /// master added this node (`harp member add`); on the first start, with an empty data
    /// directory. No --peer: the group comes from that member.
    #[arg(long)]
    join: Option<String>,
}

impl NodeArgs {
    fn into_config(self) -> anyhow::Result<harp_std::config::HostConfig> {
        use harp_std::config::{parse_type, HostConfig, PeerConfig};
        if let Some(path) = self.config {
            return HostConfig::from_toml_file(&path);
        }
        let peers = self
            .peer
            .iter()
            .map(|spec| {
                let (name, rest) = spec.split_once('=').ok_or_else(|| {
                    anyhow::anyhow!("--peer {spec:?}: expected NAME=ADDR[,TYPE[,PRIORITY]]")
                })?;
                let mut parts = rest.split(',');
                let address = parts
                    .next()
                    .unwrap_or_default()
                    .parse()
                    .map_err(|e| anyhow::anyhow!("--peer {spec:?}: bad address: {e}"))?;
                let node_type = parts.next().map_or(Ok(harp::NodeType::Electable), parse_type)?;
                let priority = parts.next().map_or(Ok(1), |p| {
                    p.parse().map_err(|e| anyhow::anyhow!("--peer {spec:?}: bad priority: {e}"))
                })?;
                Ok(PeerConfig { name: name.to_string(), address, node_type, priority })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let durability = match self.durability.as_str() {
            "fsync" => harp_std::store::Durability::Fsync,
            "os" => harp_std::store::Durability::Os,
            other => anyhow::bail!("unknown durability {other:?} (fsync, os)"),
        };
        let config = HostConfig {
            name: self.name.unwrap_or_default(),
            group: self.group.unwrap_or_default(),
            node_type: parse_type(&self.node_type)?,
            priority: self.priority,
            listen: self.listen.ok_or_else(|| anyhow::anyhow!("--listen is required"))?,
            admin: self.admin,
            peers,
            data_dir: self.data_dir.unwrap_or_default(),
            durability,
            ack_policy: self.ack_policy,
            heartbeat_ms: self.heartbeat_ms,
            election_timeout_ms: self.election_timeout_ms,
            retain_entries: self.retain_entries,
            join: self.join,
            ..HostConfig::new("", "", "0.0.0.0:0".parse()?, Default::default())
        };
        config.validate()?;
        Ok(config)
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Decode { input, framed: false, .. } => {
            println!("{}", harp_std::decode_hex(&input)?)
        }
        Command::Decode { input, framed: true, max_frame } => {
            for line in harp_std::decode_framed_file(&input, max_frame)? {
                println!("{line}");
            }
        }
        Command::Encode { json } => println!("{}", harp_std::encode_json(&json)?),
        Command::Node(args) => {
            let config = (*args).into_config()?;
            init_logging();
            let mut host = harp_std::host::Host::start(config)?;
            #[cfg(unix)]
            stop_on_signals(host.shutdown_handle())?;
            host.join()?;
        }
        Command::Status { addr } => match admin(&addr, &Request::Status)? {
            status @ Reply::Status(_) => println!("{}", serde_json::to_string(&status)?),
            other => refused(other)?,
        },
        Command::Append { addr, data } => match admin(&addr, &Request::Append { data })? {
            Reply::Appended { vlsns } => {
                for v in vlsns {
                    println!("{v}");
                }
            }
            other => refused(other)?,
        },
        Command::Member(command) => {
            let request = match command {
                MemberCommand::Add { ref member, .. } => {
                    let (name, address, node_type) = member_spec(member)?;
                    let node_type = harp_std::config::parse_type(node_type.unwrap_or("electable"))?;
                    Request::AddMember { name, address, node_type }
                }
                MemberCommand::Update { ref member, .. } => {
                    let (name, address, node_type) = member_spec(member)?;
                    let node_type = node_type.map(harp_std::config::parse_type).transpose()?;
                    Request::UpdateMember { name, address, node_type }
                }
                MemberCommand::Remove { ref name, .. } => {
                    Request::RemoveMember { name: name.clone() }
                }
            };
            let (MemberCommand::Add { addr, .. }
            | MemberCommand::Update { addr, .. }
            | MemberCommand::Remove { addr, .. }) = command;
            match admin(&addr, &request)? {
                Reply::Changed { changed_at } => {
                    println!("changed at VLSN {changed_at} (durable)");
                }
                other => refused(other)?,
            }
        }
        Command::Shutdown { addr } => match admin(&addr, &Request::Shutdown)? {
            Reply::Stopping { .. } => println!("stopping"),
            other => refused(other)?,
        },
        Command::Restore { data_dir, from } => {
            let (point, base) = match admin(&from, &Request::RestorePoint { member: None })? {
                Reply::RestorePoint { restore_point, members: Some(base), .. } => {
                    (restore_point, base)
                }
                other => anyhow::bail!("{from}: unexpected reply {other:?}"),
            };
            let durability = harp_std::store::Durability::Fsync;
            let restored = harp_std::restore::restore(&data_dir, point, &base, durability)?;
            println!(
                "restored {}: its log now starts after VLSN {} (term {}) instead of holding \
                 {}..={}; start the node to catch up",
                data_dir.display(),
                point.vlsn,
                point.term,
                restored.old.0,
                restored.old.1
            );
        }
        Command::Demo { entries } => harp_std::demo::run(entries)?,
        Command::Bench { entries, failovers } => harp_std::bench::run(entries, failovers)?,
        Command::Sim { seed: Some(seed), variant, .. } => {
            let opts = harp_std::sim::options(&variant);
            anyhow::ensure!(
                harp_std::sim::run_one(seed, &opts),
                "seed {seed} violated an invariant"
            );
        }
        Command::Sim { seeds, start, threads, seed: None, variant } => {
            let count = seeds.unwrap_or(1_000);
            let opts = harp_std::sim::options(&variant);
            anyhow::ensure!(
                harp_std::sim::run_sweep(start, count, threads, &opts),
                "the sweep failed (violations above, or it exercised no faults)"
            );
        }
    }
    Ok(())
}

use harp_std::host::{Reply, Request};

/// NAME=ADDR[,TYPE] of `harp member add / update`.
fn member_spec(spec: &str) -> anyhow::Result<(String, std::net::SocketAddr, Option<&str>)> {
    let (name, rest) = spec
        .split_once('=')
        .ok_or_else(|| anyhow::anyhow!("{spec:?}: expected NAME=ADDR[,TYPE]"))?;
    let (address, node_type) = match rest.split_once(',') {
        Some((address, node_type)) => (address, Some(node_type)),
        None => (rest, None),
    };
    let address = address.parse().map_err(|e| anyhow::anyhow!("{spec:?}: bad address: {e}"))?;
    Ok((name.to_string(), address, node_type))
}

/// The error an admin request was answered with (naming the master when the node is not).
fn refused(reply: Reply) -> anyhow::Result<()> {
    match reply {
        Reply::Error { error, master } if error == "not the master" => match master {
            Some(m) => anyhow::bail!("not the master; the master is {m}"),
            None => anyhow::bail!("not the master, and no master is known"),
        },
        Reply::Error { error, .. } => anyhow::bail!("{error}"),
        other => anyhow::bail!("unexpected reply {other:?}"),
    }
}

/// SIGTERM (systemd's stop) or SIGINT (Ctrl-C) stops the node gracefully, as `harp
/// shutdown` does: a master first lets a replica catch up and hands over. A second signal
/// stops the process at once (like a crash, which the group tolerates).
#[cfg(unix)]
fn stop_on_signals(node: harp_std::host::ShutdownHandle) -> anyhow::Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT])?;
    std::thread::Builder::new().name("harp-signals".into()).spawn(move || {
        let mut asked = false;
        for signal in signals.forever() {
            let name = if signal == SIGTERM { "SIGTERM" } else { "SIGINT" };
            if asked {
                tracing::warn!(signal = name, "second signal: stopping at once");
                std::process::exit(1);
            }
            asked = true;
            tracing::info!(signal = name, "stopping gracefully (a second signal stops at once)");
            if node.shutdown().is_err() {
                return; // the node has stopped already
            }
        }
    })?;
    Ok(())
}

fn admin(addr: &str, request: &Request) -> anyhow::Result<Reply> {
    harp_std::host::admin_request(addr, request, std::time::Duration::from_secs(60))
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use std::io::IsTerminal;
    let ansi = std::io::stderr().is_terminal();
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr)
        .init();
}

fn main() -> std::process::ExitCode {
    match run(Cli::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("harp: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
