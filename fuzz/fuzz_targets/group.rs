//! A whole group driven through an arbitrary sequence of operations (time passing with
//! deliveries, loss/duplication/reordering on or off, crashes, restarts, partitions (one-way
//! too), process pauses,
//! appends, membership changes, graceful shutdowns, log compactions and the restores they
//! lead to) with every safety invariant of the simulator checked after each step.
#![no_main]

use arbitrary::Arbitrary;
use harp::sim::{Op, Options, Sim};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
enum Step {
    Advance(u16),
    Crash(u8),
    Restart(u8),
    Partition(u8, bool),
    Pause(u8, u16),
    Heal,
    Faults(bool),
    Append,
    ChangeMembership,
    Shutdown,
    Compact,
}

#[derive(Debug, Arbitrary)]
struct Scenario {
    seed: u64,
    steps: Vec<Step>,
}

fuzz_target!(|scenario: Scenario| {
    let opts = Options { manual: true, membership_changes: true, ..Options::default() };
    let mut sim = Sim::new(scenario.seed, opts);
    for step in scenario.steps.into_iter().take(256) {
        let op = match step {
            Step::Advance(ms) => Op::Advance { ms: ms % 2_000 },
            Step::Crash(node) => Op::Crash { node },
            Step::Restart(node) => Op::Restart { node },
            Step::Partition(side, one_way) => Op::Partition { side, one_way },
            Step::Pause(node, ms) => Op::Pause { node, ms: ms % 4_000 },
            Step::Heal => Op::Heal,
            Step::Faults(on) => Op::Faults { on },
            Step::Append => Op::Append,
            Step::ChangeMembership => Op::ChangeMembership,
            Step::Shutdown => Op::Shutdown,
            Step::Compact => Op::Compact,
        };
        sim.apply(op);
        assert!(sim.violations().is_empty(), "seed {}: {:?}", scenario.seed, sim.violations());
    }
});
