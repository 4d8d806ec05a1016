//! The `harp` command-line tool.

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
        /// Let masters add and remove members during the faults (see docs/protocol.md).
        #[arg(long)]
        membership_changes: bool,
    },
    /// Encode a JSON message (serde externally tagged form) to lowercase hex.
    Encode {
        /// The message, e.g. '{"Heartbeat":{"master_vlsn":5,"timestamp_ms":6}}'.
        json: String,
    },
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
        Command::Sim { seed: Some(seed), membership_changes, .. } => {
            anyhow::ensure!(
                harp_std::sim::run_one(seed, membership_changes),
                "seed {seed} violated an invariant"
            );
        }
        Command::Sim { seeds, start, threads, seed: None, membership_changes } => {
            let count = seeds.unwrap_or(1_000);
            anyhow::ensure!(
                harp_std::sim::run_sweep(start, count, threads, membership_changes),
                "the sweep failed (violations above, or it exercised no faults)"
            );
        }
    }
    Ok(())
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
