//! Inputs the fuzz targets found, kept as regression tests.
#![cfg(feature = "sim")]

use harp::sim::{Op, Options, Sim};

/// Runs a driven group (the `group` target's options) through `ops`; every safety check
/// must hold after each.
fn replay(seed: u64, ops: &[Op]) {
    let opts = Options { manual: true, membership_changes: true, ..Options::default() };
    let mut sim = Sim::new(seed, opts);
    for &op in ops {
        sim.apply(op);
        assert!(sim.violations().is_empty(), "{op:?}: {:?}", sim.violations());
    }
}

/// `fuzz/fuzz_targets/group.rs` found that a driven run which crashes a node before the
/// first election tripped the check "the first (fault-free) election chooses the best-ranked
/// candidate"; that check only holds when nothing is injected before the first election, so
/// driven runs no longer make it. The safety checks still run after every step.
#[test]
fn a_driven_run_may_fault_before_the_first_election() {
    replay(
        18_410_741_181_157_736_447,
        &[
            Op::Crash { node: 2 },
            Op::Faults { on: true },
            Op::Advance { ms: 1_500 },
            Op::Append,
            Op::Restart { node: 2 },
            Op::Partition { side: 0b101, one_way: false },
            Op::Advance { ms: 1_999 },
            Op::ChangeMembership,
            Op::Heal,
            Op::Shutdown,
            Op::Advance { ms: 1_999 },
        ],
    );
}

/// `fuzz/fuzz_targets/group.rs` found a durable entry lost after a graceful shutdown amid
/// message loss: a replica whose log lacked the last two entries (one durable) but whose
/// DTVLSN was unknown (0) was elected, because JE's order ranks such a log by `(vlsn, 0)`
/// against the others' `(dtvlsn, vlsn)`, and voters checked "holds my entries" with that
/// order. They now compare last entries (term, then VLSN), as Raft does.
#[test]
fn a_log_with_an_unknown_dtvlsn_cannot_outrank_the_entries_voters_hold() {
    replay(
        18_374_923_612_694_973_754,
        &[
            Op::Faults { on: true },
            Op::Compact,
            Op::Advance { ms: 1_402 },
            Op::Append,
            Op::Append,
            Op::Shutdown,
            Op::Compact,
            Op::Advance { ms: 825 },
            Op::Advance { ms: 961 },
            Op::Shutdown,
            Op::ChangeMembership,
            Op::Advance { ms: 1_280 },
            Op::Advance { ms: 1_535 },
            Op::Crash { node: 255 },
            Op::Crash { node: 0 },
        ],
    );
}

/// `fuzz/fuzz_targets/group.rs` found a vote forgotten: a machine joining the group voted in
/// term 4, was restored from the master's compacted log, and while it replayed older
/// membership changes one made it a voter; it re-persisted its term with its vote mapped
/// through that older view, which lacked the member it had voted for: vote none, so it
/// could have voted again in term 4. It now re-persists the node id it recorded.
#[test]
fn a_joiner_replaying_older_memberships_keeps_its_vote() {
    replay(
        18_070_433_002_507_210_234,
        &[
            Op::Advance { ms: 831 },
            Op::Compact,
            Op::ChangeMembership,
            Op::Shutdown,
            Op::Compact,
            Op::ChangeMembership,
            Op::Advance { ms: 1843 },
            Op::Advance { ms: 1521 },
            Op::Advance { ms: 1143 },
            Op::ChangeMembership,
            Op::ChangeMembership,
            Op::Advance { ms: 1521 },
            Op::Advance { ms: 1143 },
            Op::Advance { ms: 1843 },
            Op::Advance { ms: 1521 },
            Op::Advance { ms: 1143 },
            Op::ChangeMembership,
            Op::Advance { ms: 1708 },
            Op::ChangeMembership,
            Op::Append,
            Op::Crash { node: 49 },
            Op::Advance { ms: 831 },
            Op::Compact,
            Op::ChangeMembership,
            Op::Advance { ms: 963 },
            Op::ChangeMembership,
            Op::Advance { ms: 963 },
            Op::Advance { ms: 214 },
            Op::Crash { node: 49 },
            Op::Advance { ms: 831 },
            Op::Compact,
            Op::ChangeMembership,
            Op::Advance { ms: 963 },
            Op::Crash { node: 49 },
            Op::Advance { ms: 1521 },
            Op::ChangeMembership,
            Op::Shutdown,
            Op::Compact,
            Op::ChangeMembership,
            Op::Advance { ms: 1651 },
            Op::Compact,
            Op::ChangeMembership,
            Op::Advance { ms: 701 },
            Op::Crash { node: 49 },
            Op::Compact,
            Op::ChangeMembership,
            Op::Shutdown,
            Op::Compact,
            Op::ChangeMembership,
            Op::Advance { ms: 1651 },
            Op::Compact,
            Op::Advance { ms: 1531 },
            Op::Compact,
            Op::Advance { ms: 113 },
            Op::Advance { ms: 963 },
            Op::Advance { ms: 910 },
            Op::ChangeMembership,
            Op::Advance { ms: 0 },
        ],
    );
}
