//! The deterministic simulator: safety and liveness over many seeds, and replayability.
#![cfg(feature = "sim")]

use harp::sim::{self, Options, Summary};

fn seeds() -> u64 {
    std::env::var("HARP_SIM_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(500)
}

#[test]
fn sweep_has_no_violation_and_is_not_vacuous() {
    let summary = sim::sweep(0..seeds(), &Options::default());
    for (seed, what) in summary.violations.iter().take(5) {
        eprintln!(
            "seed {seed}: {what}\n  replay: cargo run -p harp-std --bin harp -- sim --seed {seed}"
        );
    }
    assert!(summary.violations.is_empty(), "{} failing seeds", summary.violations.len());
    assert_eq!(summary.vacuous(), None);
    eprintln!(
        "seeds {} elections {} crashes {} partitions {} failover p50 {:?} p99 {:?} recovery p99 {:?}",
        summary.seeds,
        summary.elections,
        summary.crashes,
        summary.partitions,
        Summary::percentile(&summary.failovers_ms, 50),
        Summary::percentile(&summary.failovers_ms, 99),
        Summary::percentile(&summary.recoveries_ms, 99),
    );
}
