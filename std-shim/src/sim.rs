//! `harp sim`: many seeds of the deterministic simulator on all cores, or one with a trace.

use harp::sim::{self, Options, Summary};
use std::time::Instant;

/// Runs `count` seeds from `start` on `threads` threads.
pub fn sweep(start: u64, count: u64, threads: usize, opts: &Options) -> Summary {
    let threads = threads.max(1) as u64;
    let per = count.div_ceil(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let from = start.saturating_add(t * per);
                let to = from.saturating_add(per).min(start.saturating_add(count));
                scope.spawn(move || sim::sweep(from..to, opts))
            })
            .collect();
        let mut total = Summary::default();
        for handle in handles {
            total.merge(handle.join().unwrap_or_default());
        }
        total
    })
}

/// The one-line JSON summary `harp sim` prints last.
pub fn summary_json(summary: &Summary, elapsed_s: f64) -> String {
    let p = |v: &[u64], q| Summary::percentile(v, q);
    serde_json::json!({
        "seeds": summary.seeds,
        "violations": summary.violations.len(),
        "elections": summary.elections,
        "crashes": summary.crashes,
        "partitions": summary.partitions,
        "one_way_partitions": summary.one_way_partitions,
        "pauses": summary.pauses,
        "failover_ms_p50": p(&summary.failovers_ms, 50),
        "failover_ms_p99": p(&summary.failovers_ms, 99),
        "failover_ms_max": p(&summary.failovers_ms, 100),
        "failovers": summary.failovers_ms.len(),
        "fault_failover_ms_p50": p(&summary.fault_failovers_ms, 50),
        "graceful_failover_ms_p50": p(&summary.graceful_failovers_ms, 50),
        "graceful_failover_ms_p99": p(&summary.graceful_failovers_ms, 99),
        "fault_failover_ms_p99": p(&summary.fault_failovers_ms, 99),
        "recovery_ms_p50": p(&summary.recoveries_ms, 50),
        "recovery_ms_p99": p(&summary.recoveries_ms, 99),
        "recovery_ms_max": p(&summary.recoveries_ms, 100),
        "convergence_ms_p99": p(&summary.convergences_ms, 99),
        "convergence_ms_max": p(&summary.convergences_ms, 100),
        "writes": summary.writes,
        "durable_entries": summary.durable_entries,
        "lost_durable": summary.lost_durable,
        "membership_changes": summary.membership_changes,
        "new_machines_added": summary.new_machines.0,
        "new_machines_in_a_left_slot": summary.new_machines.1,
        "new_machines_under_a_reused_name": summary.reused_names,
        "misdirected_notices_ignored": summary.misdirected_notices,
        "type_changes": summary.type_changes,
        "compactions": summary.compactions.0,
        "compactions_past_a_membership_change": summary.compactions.1,
        "restores": summary.restores.0,
        "restores_refused": summary.restores.1,
        "arbiter_acks": summary.arbiter_acks,
        "early_fault_runs": summary.early_fault_runs,
        "overflows": {
            "pending": summary.overflows.pending,
            "node_events": summary.overflows.node_events,
            "outbox": summary.overflows.outbox,
            "election_events": summary.overflows.election_events,
        },
        "slowest_seeds": {
            "failover": summary.slowest.failover.map(|(_, seed)| seed),
            "recovery": summary.slowest.recovery.map(|(_, seed)| seed),
            "convergence": summary.slowest.convergence.map(|(_, seed)| seed),
        },
        "vacuous": summary.vacuous(),
        "elapsed_s": (elapsed_s * 10.0).round() / 10.0,
    })
    .to_string()
}

/// The simulator's options for `harp sim`'s flags.
pub fn options(variant: &Variant) -> Options {
    let mut opts = Options {
        membership_changes: variant.membership_changes,
        one_way_partitions: !variant.no_one_way_partitions,
        pauses: !variant.no_pauses,
        reused_names: !variant.no_reused_names,
        ..Options::default()
    };
    opts.election.pre_vote = !variant.no_pre_vote;
    opts
}

/// Which simulation `harp sim` runs (its flags).
#[derive(Debug, Clone, Copy, Default, clap::Args)]
pub struct Variant {
    /// Let masters add and remove members during the faults (see docs/protocol.md).
    #[arg(long)]
    pub membership_changes: bool,
    /// Run the nodes without pre-votes (election::Config::pre_vote off), to see what they
    /// prevent: a voter cut off from the group raising its term.
    #[arg(long)]
    pub no_pre_vote: bool,
    /// Cut every partition both ways, as the simulator did before one-way partitions
    /// (2026-12-07).
    #[arg(long)]
    pub no_one_way_partitions: bool,
    /// Freeze no node's process (faults before 2026-12-07 had no pauses). With
    /// `--no-one-way-partitions` too, a seed draws the faults it drew before then.
    #[arg(long)]
    pub no_pauses: bool,
    /// Give every new machine a name no member had (before 2026-12-07, a retired member's
    /// name was never reused). With the two flags above too, a seed with membership
    /// changes draws what it drew before then.
    #[arg(long)]
    pub no_reused_names: bool,
}

/// The flags that give `opts` again (for a replay line).
fn flags(opts: &Options) -> String {
    let mut flags = String::new();
    if opts.membership_changes {
        flags.push_str(" --membership-changes");
    }
    if !opts.election.pre_vote {
        flags.push_str(" --no-pre-vote");
    }
    if !opts.one_way_partitions {
        flags.push_str(" --no-one-way-partitions");
    }
    if !opts.pauses {
        flags.push_str(" --no-pauses");
    }
    if !opts.reused_names && opts.membership_changes {
        flags.push_str(" --no-reused-names");
    }
    flags
}

/// `harp sim --seeds N [--start S]`: prints failing seeds, then the summary; false on failure.
pub fn run_sweep(start: u64, count: u64, threads: Option<usize>, opts: &Options) -> bool {
    let threads =
        threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let began = Instant::now();
    let summary = sweep(start, count, threads, opts);
    for (seed, what) in &summary.violations {
        eprintln!("seed {seed}: {what}\n  replay: harp sim --seed {seed}{}", flags(opts));
    }
    println!("{}", summary_json(&summary, began.elapsed().as_secs_f64()));
    summary.violations.is_empty() && summary.vacuous().is_none()
}

/// `harp sim --seed S`: replays one seed with its trace; false on a violation.
pub fn run_one(seed: u64, opts: &Options) -> bool {
    let opts = Options { trace: true, ..opts.clone() };
    let began = Instant::now();
    let report = sim::run(seed, &opts);
    for line in &report.trace {
        println!("{line}");
    }
    let mut summary = Summary::default();
    summary.add(&report);
    for (seed, what) in &summary.violations {
        eprintln!("seed {seed}: {what}");
    }
    println!("{}", summary_json(&summary, began.elapsed().as_secs_f64()));
    report.violations.is_empty()
}
