//! Inputs the fuzz targets found, kept as regression tests.
#![cfg(feature = "sim")]

use harp::sim::{Op, Options, Sim};

/// `fuzz/fuzz_targets/group.rs` found that a driven run which crashes a node before the
/// first election tripped the check "the first (fault-free) election chooses the best-ranked
/// candidate"; that check only holds when nothing is injected before the first election, so
/// driven runs no longer make it. The safety checks still run after every step.
#[test]
fn a_driven_run_may_fault_before_the_first_election() {
    let opts = Options { manual: true, membership_changes: true, ..Options::default() };
    let mut sim = Sim::new(18_410_741_181_157_736_447, opts);
    for op in [
        Op::Crash { node: 2 },
        Op::Faults { on: true },
        Op::Advance { ms: 1_500 },
        Op::Append,
        Op::Restart { node: 2 },
        Op::Partition { side: 0b101 },
        Op::Advance { ms: 1_999 },
        Op::ChangeMembership,
        Op::Heal,
        Op::Shutdown,
        Op::Advance { ms: 1_999 },
    ] {
        sim.apply(op);
        assert!(sim.violations().is_empty(), "{op:?}: {:?}", sim.violations());
    }
}
