//! Engine tests of the election, in the style of openraft's: one input in, the exact outputs
//! (messages, events, persisted record) checked.
#![cfg(feature = "alloc")]

mod util;
use harp::election::{choose, Config, Election, Event, Rank, Role, StartError, StepDown};
use harp::membership::{Member, MemberId, Membership};
use harp::storage::{ElectionRecord, RamStore, RecordError, StableStore, MAX_RECORD};
use harp::wire::Extension;
use harp::{MessageRef, NodeType};
use util::store_with;

type Node = Election<RamStore, 7>;

/// a: Electable p1, b: Electable p2, c: Arbiter, s: Secondary, m: Monitor.
/// Voters a, b, c: quorum 2.
fn group() -> Membership<7> {
    let spec = [
        ("a", NodeType::Electable, 1),
        ("b", NodeType::Electable, 2),
        ("c", NodeType::Arbiter, 0),
        ("s", NodeType::Secondary, 0),
        ("m", NodeType::Monitor, 0),
    ];
    group_of(&spec)
}

fn group_of(spec: &[(&str, NodeType, u32)]) -> Membership<7> {
    let mut g = Membership::new();
    for (i, (name, t, p)) in spec.iter().enumerate() {
        g.add(Member::new(name, *t, *p, 1 + i as u32).unwrap()).unwrap();
    }
    g
}

fn id(g: &Membership<7>, name: &str) -> MemberId {
    g.known_id_of(name).unwrap()
}

fn node_in(g: Membership<7>, me: &str, config: Config, store: RamStore) -> Node {
    let me = id(&g, me);
    Election::new(g, me, config, store, 1, 0).unwrap()
}

fn node(me: &str) -> Node {
    node_in(group(), me, Config::default(), RamStore::new())
}

/// Every queued message as `"to <- Message"`.
fn sent(e: &mut Node) -> Vec<String> {
    let mut out = Vec::new();
    while let Some(t) = e.poll_transmit() {
        let to = t.recipient.name.clone();
        out.push(format!("{to} <- {:?}", t.message));
    }
    out
}

fn events(e: &mut Node) -> Vec<Event> {
    std::iter::from_fn(|| e.poll_event()).collect()
}

fn record(e: &Node) -> ElectionRecord {
    let mut store = e.store().clone();
    let mut buf = [0u8; MAX_RECORD];
    let len = store.read(&mut buf).unwrap().unwrap();
    ElectionRecord::decode(&buf[..len]).unwrap()
}

fn deliver(e: &mut Node, now: u64, from: &str, msg: MessageRef<'_>) {
    let from = id(e.members(), from);
    e.handle(now, from, &msg);
}

fn deliver_ext(e: &mut Node, now: u64, from: &str, ext: Extension) {
    let from = id(e.members(), from);
    e.handle_ext(now, from, &ext);
}

fn proposal(name: &str, term: u64, vlsn: u64, dtvlsn: u64, priority: u32) -> MessageRef<'_> {
    MessageRef::ElectionProposal { node_name: name, vlsn, priority, term, dtvlsn }
}

/// Fires `e`'s election timer, checks that it asks `granters` whether they would join the
/// next term, and delivers their `PreVote`s: the term starts. Returns the deadline.
fn start_term(e: &mut Node, granters: &[&str]) -> u64 {
    let deadline = e.poll_timeout().unwrap();
    e.handle_timeout(deadline);
    let term = e.term() + 1;
    let asked = sent(e);
    for granter in granters {
        let line = format!("{granter} <- PreProposal {{ term: {term} }}");
        assert!(asked.contains(&line), "{line} in {asked:?}");
        deliver_ext(e, deadline, granter, Extension::PreVote { term });
    }
    deadline
}

/// `a` has started term 1 and heard nothing yet (its outputs drained).
fn a_electing() -> Node {
    let mut a = node("a");
    a.set_log_position(0, 10, 8);
    start_term(&mut a, &["b"]);
    sent(&mut a);
    events(&mut a);
    a
}

/// `a` is master of term 1 (b voted for it), outputs drained.
fn a_master() -> Node {
    let mut a = a_electing();
    deliver(&mut a, 1000, "b", proposal("b", 1, 5, 4, 2));
    deliver(&mut a, 1000, "c", proposal("c", 1, 0, 0, 0));
    sent(&mut a);
    deliver(&mut a, 1001, "b", MessageRef::ElectionVote { voter: "b", granted: true, term: 1 });
    sent(&mut a);
    events(&mut a);
    a
}

// ----- starting and joining elections -----

#[test]
fn silent_master_starts_a_pre_vote_round_among_voters_only() {
    let mut a = node("a");
    a.set_log_position(0, 10, 8);
    let deadline = a.poll_timeout().unwrap();
    assert!((500..1000).contains(&deadline), "timeout drawn from [t, 2t): {deadline}");
    a.handle_timeout(deadline - 1);
    assert_eq!(sent(&mut a), Vec::<String>::new(), "nothing before the deadline");
    a.handle_timeout(deadline);
    assert_eq!(sent(&mut a), ["b <- PreProposal { term: 1 }", "c <- PreProposal { term: 1 }"]);
    assert_eq!(events(&mut a), [], "no term yet");
    assert_eq!(a.store().clone().read(&mut [0u8; MAX_RECORD]), Ok(None), "nothing persisted");
    assert_eq!((a.term(), a.role(), a.stats().pre_votes), (0, Role::Unknown, 1));
    let retry = a.poll_timeout().unwrap();
    assert!((deadline + 500..deadline + 1000).contains(&retry), "next round: {retry}");
}

#[test]
fn a_quorum_of_pre_votes_starts_the_term_and_proposes_to_voters_only() {
    let mut a = node("a");
    a.set_log_position(0, 10, 8);
    let deadline = a.poll_timeout().unwrap();
    a.handle_timeout(deadline);
    sent(&mut a);
    deliver_ext(&mut a, deadline + 2, "c", Extension::PreVote { term: 1 }); // with its own: 2 of 3
    let p = r#"ElectionProposal { node_name: "a", vlsn: 10, priority: 1, term: 1, dtvlsn: 8 }"#;
    let t = "LogTerm { term: 1, log_term: 0 }";
    assert_eq!(
        sent(&mut a),
        [format!("b <- {t}"), format!("c <- {t}"), format!("b <- {p}"), format!("c <- {p}")]
    );
    assert_eq!(events(&mut a), [Event::ElectionStarted { term: 1 }]);
    assert_eq!(
        record(&a),
        ElectionRecord { term: 1, vote: None, ..Default::default() },
        "term persisted first"
    );
    assert_eq!(a.role(), Role::Electing);
    assert_eq!(a.poll_timeout(), Some(deadline + 62), "vote at the end of the collection window");
    assert_eq!(a.stats().campaigns, 1);
}

#[test]
fn a_higher_term_proposal_is_joined_and_answered_with_own_rank() {
    let mut b = node("b");
    b.set_log_position(0, 5, 4);
    deliver(&mut b, 100, "a", proposal("a", 1, 10, 8, 1));
    let p = r#"ElectionProposal { node_name: "b", vlsn: 5, priority: 2, term: 1, dtvlsn: 4 }"#;
    let t = "LogTerm { term: 1, log_term: 0 }";
    assert_eq!(
        sent(&mut b),
        [format!("a <- {t}"), format!("c <- {t}"), format!("a <- {p}"), format!("c <- {p}")]
    );
    assert_eq!(events(&mut b), [Event::ElectionStarted { term: 1 }]);
    assert_eq!(record(&b), ElectionRecord { term: 1, vote: None, ..Default::default() });
}

#[test]
fn having_heard_every_voter_it_votes_for_the_best_ranked_at_once() {
    let mut a = a_electing();
    deliver(&mut a, 1000, "b", proposal("b", 1, 20, 15, 2));
    assert_eq!(sent(&mut a), Vec::<String>::new(), "c not heard yet");
    deliver(&mut a, 1001, "c", proposal("c", 1, 0, 0, 0));
    assert_eq!(sent(&mut a), [r#"b <- ElectionVote { voter: "a", granted: true, term: 1 }"#]);
    assert_eq!(
        record(&a),
        ElectionRecord { term: 1, vote: Some(2), ..Default::default() },
        "vote persisted"
    );
    assert_eq!(a.vote(), Some(id(a.members(), "b")));
}

#[test]
fn at_the_end_of_the_window_it_votes_with_what_it_heard() {
    let mut a = a_electing();
    deliver(&mut a, 1000, "b", proposal("b", 1, 20, 15, 2));
    let window = a.poll_timeout().unwrap();
    a.handle_timeout(window);
    assert_eq!(sent(&mut a), [r#"b <- ElectionVote { voter: "a", granted: true, term: 1 }"#]);
}

#[test]
fn a_quorum_of_votes_makes_a_master_that_tells_every_member() {
    let mut a = a_electing();
    deliver(&mut a, 1000, "b", proposal("b", 1, 5, 4, 2));
    deliver(&mut a, 1000, "c", proposal("c", 1, 0, 0, 0));
    assert_eq!(sent(&mut a), Vec::<String>::new(), "a votes for itself: nothing to send");
    assert_eq!(record(&a).vote, Some(1));
    deliver(&mut a, 1001, "b", MessageRef::ElectionVote { voter: "b", granted: true, term: 1 });
    let result = r#"ElectionResult { master: "a", term: 1 }"#;
    let hb = "Heartbeat { master_vlsn: 10, timestamp_ms: 1001 }";
    let mut expected: Vec<String> =
        ["b", "c", "s", "m"].iter().map(|n| format!("{n} <- {result}")).collect();
    expected.extend(["b", "c", "s", "m"].iter().map(|n| format!("{n} <- {hb}")));
    assert_eq!(sent(&mut a), expected, "result to all, Monitors and Secondaries included");
    assert_eq!(events(&mut a), [Event::BecameMaster { term: 1 }]);
    assert_eq!(a.role(), Role::Master);
    assert_eq!(a.poll_timeout(), Some(1101), "next heartbeat");
}

/// A candidate frozen past both its collection window and its election deadline (a paused
/// VM) resumes holding a vote for it: its own vote makes it master, and the election timer,
/// long past too, does not end the term it has just won.
#[test]
fn a_candidate_resuming_past_its_deadlines_keeps_the_term_its_vote_won() {
    let mut a = a_electing();
    deliver(&mut a, 1000, "b", proposal("b", 1, 5, 4, 2));
    deliver(&mut a, 1000, "b", MessageRef::ElectionVote { voter: "b", granted: true, term: 1 });
    assert_eq!(a.role(), Role::Electing, "one vote of the two it needs");
    let resumed = 1000 + 10 * a.config().election_timeout_ms;
    a.handle_timeout(resumed);
    assert_eq!((a.role(), a.term()), (Role::Master, 1));
    assert_eq!(events(&mut a), [Event::BecameMaster { term: 1 }]);
    let asked: Vec<String> = sent(&mut a).into_iter().filter(|l| l.contains("Pre")).collect();
    assert_eq!(asked, Vec::<String>::new(), "no pre-vote round against its own term");
}

/// A master frozen past its lease steps down when it resumes; a vote for its term that
/// waited in its socket (the arbiter's, here) does not make it master of that term again:
/// votes count only in an election (the simulator's process pauses found it, seed
/// 160,119,228).
#[test]
fn a_master_that_stepped_down_does_not_win_its_term_again_with_a_late_vote() {
    let mut a = a_master();
    a.handle_timeout(1000 + 10 * a.config().election_timeout_ms);
    assert_eq!(events(&mut a), [Event::SteppedDown { term: 1, reason: StepDown::LostQuorum }]);
    sent(&mut a);
    let resumed = 1001 + 10 * a.config().election_timeout_ms;
    deliver(&mut a, resumed, "c", MessageRef::ElectionVote { voter: "c", granted: true, term: 1 });
    assert_eq!((a.role(), a.term()), (Role::Unknown, 1));
    assert_eq!(events(&mut a), []);
    assert_eq!(sent(&mut a), Vec::<String>::new(), "no result, no heartbeat");
    assert_eq!(a.stats().ignored.out_of_phase, 1);
}

#[test]
fn votes_from_fewer_than_a_quorum_do_not_make_a_master() {
    let mut a = a_electing();
    let window = a.poll_timeout().unwrap();
    a.handle_timeout(window); // heard only itself: votes for itself (1 of 2)
    assert_eq!(record(&a).vote, Some(1));
    assert_eq!(a.role(), Role::Electing);
    assert_eq!(events(&mut a), []);
}

#[test]
fn a_voter_votes_once_per_term() {
    let mut a = a_electing();
    deliver(&mut a, 1000, "b", proposal("b", 1, 20, 15, 2));
    deliver(&mut a, 1000, "c", proposal("c", 1, 0, 0, 0));
    sent(&mut a);
    // A better proposal in the same term arrives late: the vote stands.
    deliver(&mut a, 1002, "b", proposal("b", 1, 99, 99, 2));
    assert_eq!(sent(&mut a), Vec::<String>::new());
    assert_eq!(record(&a), ElectionRecord { term: 1, vote: Some(2), ..Default::default() });
    assert_eq!(a.stats().votes, 1);
}

#[test]
fn a_restarted_voter_keeps_its_term_and_promise() {
    let g = group();
    let mut a = node_in(g.clone(), "a", Config::default(), store_with(4, Some(2)));
    assert_eq!((a.term(), a.vote()), (4, Some(id(&g, "b"))));
    assert_eq!(a.role(), Role::Unknown);
    // A proposal in the term it already voted in gets no second vote.
    deliver(&mut a, 10, "c", proposal("c", 4, 0, 0, 0));
    assert_eq!(sent(&mut a), Vec::<String>::new());
    assert_eq!(record(&a), ElectionRecord { term: 4, vote: Some(2), ..Default::default() });
    // Its own next election is term 5, never 4 again.
    start_term(&mut a, &["c"]);
    assert_eq!(events(&mut a), [Event::ElectionStarted { term: 5 }]);
}

#[test]
fn split_vote_backs_off_to_a_randomised_later_term() {
    let mut a = a_electing();
    let window = a.poll_timeout().unwrap();
    a.handle_timeout(window); // votes for itself, no quorum
    let retry = a.poll_timeout().unwrap();
    assert!(retry >= window, "backoff deadline {retry}");
    start_term(&mut a, &["b"]);
    assert_eq!(events(&mut a), [Event::ElectionStarted { term: 2 }]);
    assert_eq!(record(&a), ElectionRecord { term: 2, vote: None, ..Default::default() });
}

// ----- learning results, stepping down -----

#[test]
fn a_stale_proposal_is_answered_with_the_current_term() {
    let mut b = node_in(group(), "b", Config::default(), store_with(5, None));
    deliver(&mut b, 10, "a", proposal("a", 3, 1, 1, 1));
    assert_eq!(sent(&mut b), [r#"a <- ElectionVote { voter: "b", granted: false, term: 5 }"#]);
    assert_eq!(b.stats().ignored.stale_term, 1);
    assert_eq!(b.term(), 5);
}

/// A Secondary answers proposals (its vote counts where a change it lacks made it
/// Electable), so it also tells a stale proposer the current term.
#[test]
fn a_secondary_answers_a_stale_proposal_with_the_current_term() {
    let mut s = node_in(group(), "s", Config::default(), store_with(5, None));
    deliver(&mut s, 10, "a", proposal("a", 3, 1, 1, 1));
    assert_eq!(sent(&mut s), [r#"a <- ElectionVote { voter: "s", granted: false, term: 5 }"#]);
    assert_eq!(s.term(), 5);
}

#[test]
fn a_refusal_with_a_higher_term_is_adopted() {
    let mut a = a_electing();
    deliver(&mut a, 1000, "b", MessageRef::ElectionVote { voter: "b", granted: false, term: 7 });
    assert_eq!(record(&a), ElectionRecord { term: 7, vote: None, ..Default::default() });
    assert_eq!(a.role(), Role::Unknown);
    assert_eq!(sent(&mut a), Vec::<String>::new());
}

#[test]
fn every_member_learns_the_result_monitors_included() {
    let mut m = node("m");
    deliver(&mut m, 10, "a", MessageRef::ElectionResult { master: "a", term: 1 });
    let a = id(m.members(), "a");
    assert_eq!(events(&mut m), [Event::MasterKnown { master: a, term: 1 }]);
    assert_eq!(m.role(), Role::Replica { master: a });
    deliver(&mut m, 20, "a", MessageRef::Heartbeat { master_vlsn: 3, timestamp_ms: 77 });
    assert_eq!(sent(&mut m), ["a <- HeartbeatResponse { replica_vlsn: 0, timestamp_ms: 77 }"]);
}

/// The `Update` that made a member Electable may sit in a suffix of this node's log that
/// only that master's stream can cut, so a result naming a member this view holds as
/// Secondary is followed; one naming a member that holds no log is not.
#[test]
fn a_result_naming_a_member_held_as_secondary_is_followed_one_without_a_log_is_not() {
    let mut b = node("b");
    deliver(&mut b, 10, "c", MessageRef::ElectionResult { master: "c", term: 1 });
    deliver(&mut b, 10, "m", MessageRef::ElectionResult { master: "m", term: 1 });
    assert_eq!(b.stats().ignored.impossible, 2, "an arbiter and a monitor hold no log");
    assert_eq!(events(&mut b), []);
    deliver(&mut b, 20, "s", MessageRef::ElectionResult { master: "s", term: 1 });
    let s = id(b.members(), "s");
    assert_eq!(events(&mut b), [Event::MasterKnown { master: s, term: 1 }]);
    assert_eq!(b.role(), Role::Replica { master: s });
}

#[test]
fn an_old_master_learns_of_the_new_one_and_steps_down() {
    let mut a = a_master();
    deliver(&mut a, 2000, "b", MessageRef::ElectionResult { master: "b", term: 2 });
    let b = id(a.members(), "b");
    assert_eq!(
        events(&mut a),
        [
            Event::SteppedDown { term: 1, reason: StepDown::HigherTerm },
            Event::MasterKnown { master: b, term: 2 }
        ]
    );
    assert_eq!(a.role(), Role::Replica { master: b });
    assert_eq!(record(&a), ElectionRecord { term: 2, vote: None, ..Default::default() });
}

#[test]
fn losing_the_masters_link_drops_the_random_part_of_the_wait() {
    let mut c = node("c");
    deliver(&mut c, 10, "b", MessageRef::ElectionResult { master: "b", term: 2 });
    events(&mut c);
    let timeout = Config::default().election_timeout_ms;
    let full = c.poll_timeout().unwrap();
    assert!(full > 10 + timeout, "a randomised wait: {full}");
    c.master_link_lost(id(c.members(), "a")); // not the master: no change
    assert_eq!(c.poll_timeout(), Some(full));
    c.master_link_lost(id(c.members(), "b"));
    assert_eq!(c.poll_timeout(), Some(10 + timeout));
    assert_eq!(start_term(&mut c, &["a"]), 10 + timeout);
    assert_eq!(events(&mut c), [Event::ElectionStarted { term: 3 }]);
    // A heartbeat from a master restores the randomised wait.
    deliver(&mut c, 20, "b", MessageRef::ElectionResult { master: "b", term: 4 });
    assert!(c.poll_timeout().unwrap() >= 20 + timeout);
}

#[test]
fn a_replica_answers_an_old_masters_heartbeat_with_the_current_result() {
    let mut c = node_in(group(), "c", Config::default(), store_with(2, Some(2)));
    deliver(&mut c, 10, "b", MessageRef::ElectionResult { master: "b", term: 2 });
    events(&mut c);
    deliver(&mut c, 20, "a", MessageRef::Heartbeat { master_vlsn: 9, timestamp_ms: 5 });
    assert_eq!(sent(&mut c), [r#"a <- ElectionResult { master: "b", term: 2 }"#]);
}

#[test]
fn a_master_resends_the_result_to_a_voter_that_does_not_follow() {
    let mut a = a_master();
    deliver(&mut a, 1050, "c", MessageRef::ElectionVote { voter: "c", granted: false, term: 1 });
    assert_eq!(sent(&mut a), [r#"c <- ElectionResult { master: "a", term: 1 }"#]);
}

#[test]
fn a_master_without_quorum_for_a_lease_steps_down() {
    let mut a = a_master(); // b's vote at 1001 counts as contact
    for t in [1101, 1201, 1301, 1401] {
        a.handle_timeout(t);
        assert_eq!(a.role(), Role::Master, "within the lease at {t}");
    }
    sent(&mut a);
    a.handle_timeout(1501);
    assert_eq!(events(&mut a), [Event::SteppedDown { term: 1, reason: StepDown::LostQuorum }]);
    assert_eq!(sent(&mut a), Vec::<String>::new(), "a deposed master sends no heartbeat");
    assert_eq!(a.role(), Role::Unknown);
}

#[test]
fn heartbeat_responses_keep_the_lease() {
    let mut a = a_master();
    for t in (1101..3000).step_by(100) {
        a.handle_timeout(t);
        deliver(
            &mut a,
            t + 5,
            "c",
            MessageRef::HeartbeatResponse { replica_vlsn: 0, timestamp_ms: t },
        );
    }
    assert_eq!(a.role(), Role::Master);
    assert_eq!(events(&mut a), []);
}

#[test]
fn a_master_resends_the_result_to_members_that_do_not_answer_heartbeats() {
    let mut a = a_master();
    a.handle_timeout(1101);
    deliver(
        &mut a,
        1105,
        "b",
        MessageRef::HeartbeatResponse { replica_vlsn: 10, timestamp_ms: 1101 },
    );
    a.handle_timeout(1201);
    a.handle_timeout(1301);
    let out = sent(&mut a);
    let results: Vec<&String> = out.iter().filter(|l| l.contains("ElectionResult")).collect();
    assert_eq!(
        results,
        [
            r#"c <- ElectionResult { master: "a", term: 1 }"#,
            r#"s <- ElectionResult { master: "a", term: 1 }"#,
            r#"m <- ElectionResult { master: "a", term: 1 }"#
        ],
        "b answered; the others are re-told"
    );
}

// ----- ranking (JE) and the arbiter rule -----

#[test]
fn ranking_is_dtvlsn_then_vlsn_then_priority() {
    let r = |vlsn, dtvlsn, priority| Rank { log_term: 0, vlsn, dtvlsn, priority };
    assert!(r(5, 9, 1).cmp_rank(&r(100, 8, 1)).is_gt(), "dtvlsn is major");
    assert!(r(6, 9, 1).cmp_rank(&r(5, 9, 1)).is_gt(), "vlsn is minor");
    assert!(
        r(7, 9, 1).cmp_rank(&r(10, 0, 1)).is_gt(),
        "dtvlsn 0 is none durable yet, not JE's unknown: (9,7) > (0,10)"
    );
    assert!(r(5, 9, 2).cmp_rank(&r(5, 9, 1)).is_gt(), "priority breaks a tie");
}

#[test]
fn the_term_of_the_last_entry_outranks_a_longer_log() {
    let r = |log_term, vlsn, dtvlsn| Rank { log_term, vlsn, dtvlsn, priority: 1 };
    assert!(r(3, 10, 9).cmp_rank(&r(2, 500, 400)).is_gt(), "newer log term wins over length");
    assert!(r(3, 11, 9).cmp_rank(&r(3, 10, 9)).is_gt(), "same term: JE's order");
}

#[test]
fn a_proposal_is_ranked_with_the_log_term_its_sender_announced() {
    let mut a = a_electing(); // a: log term 0, vlsn 10
    let b = id(a.members(), "b");
    a.handle_ext(0, b, &Extension::LogTerm { term: 1, log_term: 1 });
    deliver(&mut a, 1000, "b", proposal("b", 1, 3, 2, 2)); // shorter log, newer term
    deliver(&mut a, 1000, "c", proposal("c", 1, 0, 0, 0));
    assert_eq!(sent(&mut a), [r#"b <- ElectionVote { voter: "a", granted: true, term: 1 }"#]);
}

#[test]
fn a_proposal_without_its_log_term_ranks_lowest() {
    let mut a = node_in(group(), "a", Config::default(), store_with(2, None));
    a.set_log_position(2, 10, 8);
    start_term(&mut a, &["b"]);
    sent(&mut a);
    deliver(&mut a, 1000, "b", proposal("b", 3, 99, 98, 2)); // no LogTerm from b: unknown
    deliver(&mut a, 1000, "c", proposal("c", 3, 0, 0, 0));
    assert_eq!(sent(&mut a), Vec::<String>::new(), "a votes for itself, not for an unknown log");
    assert_eq!(record(&a).vote, Some(1));
}

#[test]
fn choice_breaks_full_ties_by_name_and_never_picks_priority_zero() {
    let g = group_of(&[
        ("x", NodeType::Electable, 1),
        ("y", NodeType::Electable, 1),
        ("z", NodeType::Electable, 0),
    ]);
    let r = |vlsn, priority| Rank { log_term: 0, vlsn, dtvlsn: 0, priority };
    let (x, y, z) = (id(&g, "x"), id(&g, "y"), id(&g, "z"));
    assert_eq!(
        choose(r(5, 1), &[(y, r(5, 1)), (x, r(5, 1))], &g),
        Some(x),
        "smaller name wins a full tie"
    );
    assert_eq!(
        choose(Rank::default(), &[(z, r(99, 0)), (y, r(5, 1))], &g),
        Some(y),
        "priority 0 is never chosen"
    );
    assert_eq!(choose(Rank::default(), &[(z, r(99, 0))], &g), None);
}

fn two_data_nodes_and_an_arbiter() -> Membership<7> {
    group_of(&[
        ("x", NodeType::Electable, 1),
        ("y", NodeType::Electable, 1),
        ("arb", NodeType::Arbiter, 0),
    ])
}

#[test]
fn arbiter_rule_one_data_node_behind_the_arbiter_chooses_no_one() {
    let g = two_data_nodes_and_an_arbiter();
    let r = |vlsn| Rank { log_term: 0, vlsn, dtvlsn: 0, priority: 1 };
    let (x, y, arb) = (id(&g, "x"), id(&g, "y"), id(&g, "arb"));
    assert_eq!(
        choose(r(5), &[(x, r(5)), (arb, r(9))], &g),
        None,
        "lone x lacks what the arbiter acked"
    );
    assert_eq!(choose(r(9), &[(x, r(9)), (arb, r(9))], &g), Some(x), "arbiter not ahead");
    assert_eq!(
        choose(r(5), &[(x, r(5)), (y, r(4)), (arb, r(9))], &g),
        Some(x),
        "two data nodes: arbiter ignored"
    );
}

#[test]
fn an_arbiter_votes_only_for_logs_holding_the_entry_it_acknowledged() {
    let g = two_data_nodes_and_an_arbiter();
    let (x, y, arb) = (id(&g, "x"), id(&g, "y"), id(&g, "arb"));
    let r = |log_term, vlsn, dtvlsn| Rank { log_term, vlsn, dtvlsn, priority: 1 };
    let acked = r(1, 5, 0); // the arbiter acknowledged the entry (term 1, VLSN 5)
    assert_eq!(choose(acked, &[(arb, acked), (x, r(1, 4, 4))], &g), None, "x lacks VLSN 5");
    assert_eq!(
        choose(acked, &[(arb, acked), (x, r(0, 9, 0))], &g),
        None,
        "x's 5 is another term's"
    );
    // JE's position would put (dtvlsn 3, vlsn 9) behind (5, 0); the entry is there all the same.
    assert_eq!(choose(acked, &[(arb, acked), (x, r(1, 9, 3))], &g), Some(x));
    assert_eq!(choose(acked, &[(arb, acked), (y, r(2, 3, 0))], &g), Some(y), "a later term's log");
    // A data node's own choice: a lone x behind the arbiter's position is not chosen.
    assert_eq!(choose(r(1, 4, 4), &[(x, r(1, 4, 4)), (arb, acked)], &g), None);
    assert_eq!(choose(r(1, 9, 3), &[(x, r(1, 9, 3)), (arb, acked)], &g), Some(x));
}

/// A voter chooses any candidate that holds its last entry, whatever its own type (a
/// joining arbiter sits in a slot its view does not hold yet) and whatever the DTVLSNs
/// say: JE's position would rank x, `(dtvlsn 106, vlsn 114)`, behind an unknown DTVLSN's
/// `(114, 0)`, though x holds every entry the voter does.
#[test]
fn a_voter_chooses_a_candidate_holding_its_last_entry_whatever_the_dtvlsns() {
    let g = group_of(&[("x", NodeType::Electable, 1), ("y", NodeType::Electable, 1)]);
    let (x, me) = (id(&g, "x"), MemberId::new(2)); // a node joining in slot 2
    let r = |log_term, vlsn, dtvlsn| Rank { log_term, vlsn, dtvlsn, priority: 1 };
    let heard = [(me, r(7, 114, 0)), (x, r(7, 114, 106))];
    assert_eq!(choose(heard[0].1, &heard, &g), Some(x), "x holds (7, 114)");
}

/// The fuzz target's find: a log with an unknown DTVLSN (0), then ranked by JE at
/// `(vlsn, 0)`, outranked the voters' `(dtvlsn, vlsn)` though it lacked two of their entries
/// (one durable). Voters refuse a candidate whose last entry is behind theirs whatever the
/// DTVLSNs say (here a proposal claims more durable than the voter's longer log records).
#[test]
fn a_voter_never_chooses_a_log_behind_its_own_whatever_the_dtvlsns() {
    let g = group_of(&[("x", NodeType::Electable, 1), ("y", NodeType::Electable, 1)]);
    let (x, y) = (id(&g, "x"), id(&g, "y"));
    let shorter = Rank { log_term: 2, vlsn: 42, dtvlsn: 42, priority: 3 };
    let own = Rank { log_term: 2, vlsn: 44, dtvlsn: 41, priority: 1 };
    assert!(shorter.cmp_rank(&own).is_gt(), "JE's order puts the shorter log first");
    assert_eq!(choose(own, &[(y, own), (x, shorter)], &g), Some(y));
}

/// The early-fault sweeps' find: with JE's `(vlsn, 0)` for a DTVLSN of 0, x's shorter log
/// (its term's first DTVLSN record never reached it) outranked y's, x chose itself and y
/// refused x (behind its own last entry): a two-node group split its vote in every term.
/// A DTVLSN of 0 ranks as none durable yet, so every voter chooses the longer log.
#[test]
fn voters_of_one_last_term_agree_on_the_longest_log_when_a_dtvlsn_is_0() {
    let g = group_of(&[("x", NodeType::Electable, 3), ("y", NodeType::Electable, 3)]);
    let (x, y) = (id(&g, "x"), id(&g, "y"));
    let heard = [
        (x, Rank { log_term: 9, vlsn: 32, dtvlsn: 0, priority: 3 }),
        (y, Rank { log_term: 9, vlsn: 36, dtvlsn: 28, priority: 3 }),
    ];
    assert_eq!(choose(heard[0].1, &heard, &g), Some(y));
    assert_eq!(choose(heard[1].1, &heard, &g), Some(y));
}

#[test]
fn an_abstaining_voter_sends_no_vote() {
    let g = two_data_nodes_and_an_arbiter();
    let mut arb = node_in(g, "arb", Config::default(), RamStore::new());
    assert!(arb.acknowledge_position(0, 9));
    let x_proposal =
        MessageRef::ElectionProposal { node_name: "x", vlsn: 5, priority: 1, term: 1, dtvlsn: 0 };
    arb.handle(10, MemberId::new(0), &x_proposal);
    sent(&mut arb);
    let window = arb.poll_timeout().unwrap();
    arb.handle_timeout(window);
    assert_eq!(sent(&mut arb), Vec::<String>::new());
    assert_eq!(arb.stats().abstentions, 1);
    assert_eq!(record(&arb), ElectionRecord { term: 1, vote: None, acknowledged: (0, 9) });
}

/// An arbiter whose own slot changes during an election (notices that remove and add it
/// again, as a restarted arbiter replays the history) forgets its own proposal, not the
/// position it acknowledged: it still refuses a candidate behind that position (the
/// simulator found one that voted for it, which lost a durable entry: seed 240,107,310 with
/// membership changes).
#[test]
fn an_arbiter_that_learns_its_own_addition_mid_election_still_refuses_a_log_behind_its_ack() {
    let g = two_data_nodes_and_an_arbiter();
    let mut arb = node_in(g.clone(), "arb", Config::default(), RamStore::new());
    assert!(arb.acknowledge_position(0, 9));
    let x_proposal =
        MessageRef::ElectionProposal { node_name: "x", vlsn: 5, priority: 1, term: 1, dtvlsn: 0 };
    arb.handle(10, MemberId::new(0), &x_proposal);
    sent(&mut arb);
    let mut without = g.clone();
    without.remove(id(&g, "arb")).unwrap();
    arb.set_members(without);
    arb.set_members(g);
    let window = arb.poll_timeout().unwrap();
    arb.handle_timeout(window);
    assert_eq!(sent(&mut arb), Vec::<String>::new(), "no vote for x, which lacks VLSN 9");
    assert_eq!(arb.stats().abstentions, 1);
    assert_eq!(record(&arb), ElectionRecord { term: 1, vote: None, acknowledged: (0, 9) });
}

#[test]
fn an_arbiter_never_becomes_master() {
    let mut c = node("c");
    let deadline = start_term(&mut c, &["a"]); // an arbiter may start an election...
    deliver(&mut c, deadline + 1, "a", proposal("a", 1, 1, 0, 1));
    deliver(&mut c, deadline + 1, "b", proposal("b", 1, 1, 0, 2));
    sent(&mut c);
    assert_eq!(record(&c).vote, Some(2), "...but votes for a candidate (b: higher priority)");
    deliver(
        &mut c,
        deadline + 2,
        "a",
        MessageRef::ElectionVote { voter: "a", granted: true, term: 1 },
    );
    deliver(
        &mut c,
        deadline + 2,
        "b",
        MessageRef::ElectionVote { voter: "b", granted: true, term: 1 },
    );
    assert_ne!(c.role(), Role::Master);
    assert_eq!(c.stats().ignored.out_of_phase, 2);
}

// ----- non-voters and bad input -----

#[test]
fn monitors_never_vote_or_start_elections() {
    let mut m = node("m");
    deliver(&mut m, 10, "a", proposal("a", 1, 1, 0, 1));
    assert_eq!(sent(&mut m), Vec::<String>::new());
    assert_eq!(m.stats().ignored.not_voter, 1);
    let deadline = m.poll_timeout().unwrap();
    m.handle_timeout(deadline);
    assert_eq!(sent(&mut m), Vec::<String>::new(), "a monitor never proposes");
    assert_eq!(events(&mut m), []);
    assert_eq!(m.term(), 0);
}

/// A Secondary answers a proposal with a persisted vote, as a Raft server answers whatever
/// its configuration says (its vote counts only for a candidate whose log made it
/// Electable by a change it has not received), but proposes nothing and never campaigns.
#[test]
fn a_secondary_votes_when_asked_but_never_proposes_or_campaigns() {
    let mut s = node("s");
    deliver(&mut s, 10, "a", proposal("a", 1, 1, 0, 1));
    assert_eq!(sent(&mut s), Vec::<String>::new(), "no proposal of its own");
    let window = s.poll_timeout().unwrap();
    s.handle_timeout(window);
    assert_eq!(sent(&mut s), [r#"a <- ElectionVote { voter: "s", granted: true, term: 1 }"#]);
    assert_eq!(record(&s), ElectionRecord { term: 1, vote: Some(1), ..Default::default() });
    for _ in 0..3 {
        let deadline = s.poll_timeout().unwrap();
        s.handle_timeout(deadline);
        assert_eq!(sent(&mut s), Vec::<String>::new(), "it never starts a term");
    }
    assert_eq!(s.term(), 1);
}

/// A member that starts voting re-persists its term with the vote it recorded, even when
/// the member it voted for is not in the new view (a joiner replaying the log meets
/// memberships older than its vote): the group fuzz target found the vote written back as
/// none, which would let the node vote again in that term.
#[test]
fn a_node_that_starts_voting_keeps_its_vote_whoever_its_view_holds() {
    let mut s = node("s");
    deliver(&mut s, 10, "a", proposal("a", 1, 1, 0, 1));
    let window = s.poll_timeout().unwrap();
    s.handle_timeout(window);
    assert_eq!(record(&s), ElectionRecord { term: 1, vote: Some(1), ..Default::default() });
    let mut view = group();
    view.remove(id(&view, "a")).unwrap();
    let mut promoted = view.get(id(&view, "s")).unwrap().clone();
    promoted.node_type = NodeType::Electable;
    view.update(&promoted).unwrap();
    s.set_members(view);
    assert!(s.votes_now());
    assert_eq!(record(&s), ElectionRecord { term: 1, vote: Some(1), ..Default::default() });
}

#[test]
fn a_monitor_that_loses_its_master_says_so() {
    let mut m = node("m");
    deliver(&mut m, 10, "a", MessageRef::ElectionResult { master: "a", term: 1 });
    events(&mut m);
    let deadline = m.poll_timeout().unwrap();
    m.handle_timeout(deadline);
    assert_eq!(events(&mut m), [Event::MasterLost { term: 1 }]);
    assert_eq!(m.role(), Role::Unknown);
}

#[test]
fn proposals_and_votes_from_non_voters_are_ignored_and_counted() {
    let mut a = a_electing();
    deliver(&mut a, 1000, "s", proposal("s", 1, 99, 99, 5));
    deliver(&mut a, 1000, "m", MessageRef::ElectionVote { voter: "m", granted: true, term: 1 });
    assert_eq!(sent(&mut a), Vec::<String>::new());
    assert_eq!(a.stats().ignored.not_voter, 2);
    assert_eq!(events(&mut a), []);
}

/// `group()` as `a` sees it after removing the arbiter `c`, a change `c` has not learnt:
/// voters a and b, quorum 2.
fn a_without_c() -> Node {
    let mut view = group();
    view.remove(id(&view, "c")).unwrap();
    let mut a = node_in(view, "a", Config::default(), RamStore::new());
    a.set_log_position(1, 20, 18);
    a
}

/// The removed arbiter keeps starting elections with the voters that still count it; a
/// voter that knows no master joins the later term and proposes itself, so that election
/// can elect it. It had stayed a term behind, refused every time (seed 420,116,438 with
/// membership changes).
#[test]
fn a_voter_without_a_master_joins_the_later_term_of_a_member_it_removed() {
    let mut a = a_without_c();
    deliver(&mut a, 10, "c", proposal("c", 3, 20, 0, 0));
    let p = r#"ElectionProposal { node_name: "a", vlsn: 20, priority: 1, term: 3, dtvlsn: 18 }"#;
    let t = "LogTerm { term: 3, log_term: 1 }";
    assert_eq!(sent(&mut a), [format!("b <- {t}"), format!("b <- {p}")]);
    assert_eq!(events(&mut a), [Event::ElectionStarted { term: 3 }]);
    assert_eq!(record(&a), ElectionRecord { term: 3, vote: None, ..Default::default() });
    assert_eq!(a.stats().ignored.not_voter, 1, "c's rank is not counted");
}

/// ... but a voter that follows a master is not moved by it.
#[test]
fn a_follower_ignores_the_later_term_of_a_member_it_removed() {
    let mut a = a_without_c();
    deliver(&mut a, 10, "b", MessageRef::ElectionResult { master: "b", term: 1 });
    events(&mut a);
    sent(&mut a);
    deliver(&mut a, 20, "c", proposal("c", 3, 20, 0, 0));
    assert_eq!(sent(&mut a), Vec::<String>::new());
    assert_eq!(events(&mut a), []);
    assert_eq!((a.term(), a.role()), (1, Role::Replica { master: id(a.members(), "b") }));
}

#[test]
fn a_name_that_is_not_the_senders_is_ignored() {
    let mut a = a_electing();
    deliver(&mut a, 1000, "c", MessageRef::ElectionVote { voter: "b", granted: true, term: 1 });
    deliver(&mut a, 1000, "c", proposal("b", 1, 99, 99, 5));
    assert_eq!(a.stats().ignored.spoofed, 2);
    assert_eq!(a.role(), Role::Electing);
}

#[test]
fn impossible_terms_are_ignored_and_change_nothing() {
    let mut b = node_in(group(), "b", Config::default(), store_with(3, None));
    deliver(&mut b, 10, "a", proposal("a", 0, 1, 1, 1));
    deliver(&mut b, 10, "a", proposal("a", u64::MAX, 1, 1, 1));
    deliver(&mut b, 10, "a", MessageRef::ElectionResult { master: "a", term: 3 + (1 << 32) + 1 });
    deliver(&mut b, 10, "a", MessageRef::ElectionResult { master: "c", term: 4 });
    deliver(&mut b, 10, "a", MessageRef::ElectionResult { master: "nobody", term: 4 });
    assert_eq!(b.stats().ignored.impossible, 5);
    assert_eq!(b.term(), 3);
    assert_eq!(sent(&mut b), Vec::<String>::new());
}

#[test]
fn messages_from_non_members_and_from_itself_are_ignored() {
    let mut a = a_electing();
    a.handle(1000, MemberId::new(200), &proposal("b", 1, 1, 1, 1));
    a.handle(1000, a.me(), &proposal("a", 1, 1, 1, 1));
    assert_eq!(a.stats().ignored.not_member, 2);
}

#[test]
fn a_granted_vote_for_a_term_never_proposed_is_impossible() {
    let mut a = node("a");
    deliver(&mut a, 10, "b", MessageRef::ElectionVote { voter: "b", granted: true, term: 9 });
    assert_eq!(a.stats().ignored.impossible, 1);
    assert_eq!(a.term(), 0);
}

#[test]
fn non_election_messages_are_left_to_other_layers() {
    let mut a = node("a");
    deliver(&mut a, 10, "b", MessageRef::Ack { vlsn: 3 });
    assert_eq!(a.stats().ignored.not_election, 1);
}

// ----- stable storage -----

#[test]
fn a_corrupt_record_is_an_error_never_a_fresh_start() {
    let mut store = store_with(7, Some(1));
    store.bytes_mut()[0] ^= 0x01;
    let g = group();
    let me = id(&g, "a");
    match Election::<RamStore, 7>::new(g, me, Config::default(), store, 1, 0) {
        Err(StartError::Record(RecordError::Checksum { .. })) => {}
        other => panic!("expected a checksum error, got {:?}", other.map(|e| e.term())),
    }
}

#[test]
fn a_vote_for_a_member_removed_since_still_binds() {
    let mut a = node_in(group(), "a", Config::default(), store_with(7, Some(99)));
    assert_eq!((a.term(), a.vote()), (7, None), "node 99 is not a member any more");
    deliver(&mut a, 10, "c", proposal("c", 7, 0, 0, 0));
    assert_eq!(sent(&mut a), Vec::<String>::new(), "no second vote in term 7");
    assert_eq!(record(&a), ElectionRecord { term: 7, vote: Some(99), ..Default::default() });
}

/// A store whose writes fail on demand.
#[derive(Default)]
struct Flaky {
    inner: RamStore,
    fail: bool,
}

impl StableStore for Flaky {
    type Error = &'static str;
    fn read(&mut self, buf: &mut [u8; MAX_RECORD]) -> Result<Option<usize>, &'static str> {
        self.inner.read(buf).map_err(|_| "read")
    }
    fn write(&mut self, record: &[u8]) -> Result<(), &'static str> {
        if self.fail {
            return Err("disk full");
        }
        self.inner.write(record).map_err(|_| "write")
    }
}

#[test]
fn nothing_that_depends_on_a_failed_write_is_sent() {
    let g = group();
    let me = id(&g, "b");
    let mut b =
        Election::<Flaky, 7>::new(g, me, Config::default(), Flaky::default(), 1, 0).unwrap();
    b.store_mut().fail = true;
    b.handle(10, MemberId::new(0), &proposal("a", 1, 10, 8, 1));
    assert!(b.poll_transmit().is_none(), "no proposal without a persisted term");
    assert_eq!(b.poll_event(), Some(Event::StorageFailed));
    assert_eq!(b.term(), 0);
    b.store_mut().fail = false;
    b.handle(20, MemberId::new(0), &proposal("a", 1, 10, 8, 1));
    assert_eq!(b.term(), 1);
    assert!(b.poll_transmit().is_some());
}

// ----- pre-vote (Raft's PreVote: a cut-off voter never raises its term) -----

fn pre_proposal(e: &mut Node, now: u64, from: &str, term: u64) {
    deliver_ext(e, now, from, Extension::PreProposal { term });
}

fn pre_vote(e: &mut Node, now: u64, from: &str, term: u64) {
    deliver_ext(e, now, from, Extension::PreVote { term });
}

/// `b` follows master `a` in term 1, heard at 10 (outputs drained).
fn b_following_a() -> Node {
    let mut b = node("b");
    deliver(&mut b, 10, "a", MessageRef::ElectionResult { master: "a", term: 1 });
    events(&mut b);
    b
}

/// A voter that heard its master within an election timeout refuses (naming the master);
/// from an election timeout after, it grants, and a grant binds nothing.
#[test]
fn a_voter_grants_a_pre_vote_only_an_election_timeout_after_it_last_heard_its_master() {
    let mut b = b_following_a();
    deliver(&mut b, 300, "a", MessageRef::Heartbeat { master_vlsn: 0, timestamp_ms: 300 });
    sent(&mut b);
    pre_proposal(&mut b, 799, "c", 2);
    assert_eq!(sent(&mut b), [r#"c <- ElectionResult { master: "a", term: 1 }"#]);
    pre_proposal(&mut b, 800, "c", 2);
    assert_eq!(sent(&mut b), ["c <- PreVote { term: 2 }"]);
    // No term, no vote, no event; the master is still followed.
    assert_eq!((b.term(), b.role()), (1, Role::Replica { master: id(b.members(), "a") }));
    assert_eq!(record(&b), ElectionRecord { term: 1, vote: None, ..Default::default() });
    assert_eq!(events(&mut b), []);
}

#[test]
fn a_relayed_result_names_the_master_but_is_no_contact_with_it() {
    let mut b = node("b"); // started at 0: grants from 500
    let deadline = b.poll_timeout().unwrap();
    deliver(&mut b, 100, "c", MessageRef::ElectionResult { master: "a", term: 1 });
    assert_eq!(events(&mut b), [Event::MasterKnown { master: id(b.members(), "a"), term: 1 }]);
    assert_eq!(b.poll_timeout(), Some(deadline), "the timer measures the master's own silence");
    pre_proposal(&mut b, 500, "c", 2);
    assert_eq!(sent(&mut b), ["c <- PreVote { term: 2 }"]);
    // The master's own result is contact.
    deliver(&mut b, 600, "a", MessageRef::ElectionResult { master: "a", term: 1 });
    assert!(b.poll_timeout().unwrap() >= 1100);
    pre_proposal(&mut b, 1099, "c", 2);
    assert_eq!(sent(&mut b), [r#"c <- ElectionResult { master: "a", term: 1 }"#]);
}

#[test]
fn a_master_refuses_every_pre_vote() {
    let mut a = a_master();
    pre_proposal(&mut a, 9_000, "b", 2);
    assert_eq!(sent(&mut a), [r#"b <- ElectionResult { master: "a", term: 1 }"#]);
    assert_eq!((a.role(), a.term()), (Role::Master, 1));
}

#[test]
fn a_pre_proposal_for_a_term_not_above_the_current_one_is_answered_as_stale() {
    let mut b = node_in(group(), "b", Config::default(), store_with(5, None));
    pre_proposal(&mut b, 2_000, "a", 5);
    assert_eq!(sent(&mut b), [r#"a <- ElectionVote { voter: "b", granted: false, term: 5 }"#]);
    assert_eq!(b.stats().ignored.stale_term, 1);
}

/// A node that just started may have a master it has not heard yet.
#[test]
fn a_started_node_grants_no_pre_vote_for_an_election_timeout() {
    let mut b = node("b"); // started at 0
    pre_proposal(&mut b, 499, "a", 1);
    assert_eq!(sent(&mut b), Vec::<String>::new(), "no master known: refused in silence");
    pre_proposal(&mut b, 500, "a", 1);
    assert_eq!(sent(&mut b), ["a <- PreVote { term: 1 }"]);
}

/// Taking part in an election counts as contact: a term being elected is not cut short.
#[test]
fn a_voter_in_an_election_grants_no_pre_vote_for_the_next_term_at_once() {
    let mut b = node("b");
    deliver(&mut b, 1_000, "a", proposal("a", 1, 1, 0, 1));
    sent(&mut b);
    pre_proposal(&mut b, 1_499, "c", 2);
    assert_eq!(sent(&mut b), Vec::<String>::new());
    pre_proposal(&mut b, 1_500, "c", 2);
    assert_eq!(sent(&mut b), ["c <- PreVote { term: 2 }"]);
}

#[test]
fn hearing_the_master_ends_a_pre_vote_round() {
    let mut b = b_following_a();
    let deadline = b.poll_timeout().unwrap();
    b.handle_timeout(deadline);
    assert_eq!(sent(&mut b), ["a <- PreProposal { term: 2 }", "c <- PreProposal { term: 2 }"]);
    assert_eq!(b.role(), Role::Replica { master: id(b.members(), "a") }, "still following");
    deliver(&mut b, deadline + 1, "a", MessageRef::Heartbeat { master_vlsn: 0, timestamp_ms: 7 });
    sent(&mut b);
    pre_vote(&mut b, deadline + 2, "c", 2); // a late grant starts nothing
    assert_eq!((b.term(), b.stats().ignored.out_of_phase), (1, 1));
    assert_eq!(events(&mut b), []);
}

#[test]
fn a_pre_vote_for_another_round_or_from_a_non_voter_is_not_counted() {
    let mut a = node("a");
    a.handle_timeout(a.poll_timeout().unwrap());
    sent(&mut a);
    pre_vote(&mut a, 1_000, "b", 3); // not the round's term
    pre_vote(&mut a, 1_000, "m", 1); // a monitor does not vote
    assert_eq!(a.term(), 0);
    assert_eq!((a.stats().ignored.out_of_phase, a.stats().ignored.not_voter), (1, 1));
    pre_vote(&mut a, 1_001, "c", 1); // an arbiter does
    assert_eq!(events(&mut a), [Event::ElectionStarted { term: 1 }]);
}

/// A Secondary answers pre-proposals as it answers proposals (it counts where an `Update`
/// it lacks made it Electable); a Monitor ignores them.
#[test]
fn a_secondary_grants_pre_votes_and_a_monitor_ignores_them() {
    let (mut s, mut m) = (node("s"), node("m"));
    pre_proposal(&mut s, 600, "a", 1);
    pre_proposal(&mut m, 600, "a", 1);
    assert_eq!(sent(&mut s), ["a <- PreVote { term: 1 }"]);
    assert_eq!((sent(&mut m), m.stats().ignored.not_voter), (Vec::<String>::new(), 1));
}

#[test]
fn a_broken_link_to_the_master_grants_pre_votes_at_once() {
    let mut b = b_following_a();
    b.master_link_lost(id(b.members(), "a"));
    pre_proposal(&mut b, 20, "c", 2);
    assert_eq!(sent(&mut b), ["c <- PreVote { term: 2 }"]);
}

/// The master said it is leaving: the term starts at once, with no pre-vote (the voters
/// that have not read the announcement yet would refuse one).
#[test]
fn a_masters_shutdown_starts_the_next_term_without_a_pre_vote() {
    let mut b = b_following_a();
    b.master_left(50, id(b.members(), "a"));
    assert_eq!(events(&mut b), [Event::ElectionStarted { term: 2 }]);
    let out = sent(&mut b);
    assert!(out.iter().any(|l| l.starts_with("c <- ElectionProposal")), "{out:?}");
    assert_eq!((b.stats().pre_votes, b.stats().campaigns), (0, 1));
}

#[test]
fn with_pre_votes_off_a_silent_master_starts_the_term_at_once() {
    let config = Config { pre_vote: false, ..Config::default() };
    let mut a = node_in(group(), "a", config, RamStore::new());
    a.handle_timeout(a.poll_timeout().unwrap());
    assert_eq!(events(&mut a), [Event::ElectionStarted { term: 1 }]);
    assert_eq!(a.stats().pre_votes, 0);
    // It still answers others' pre-proposals.
    pre_proposal(&mut a, 5_000, "b", 2);
    assert!(sent(&mut a).contains(&"b <- PreVote { term: 2 }".to_string()));
}

/// A member this master's log made Secondary, unaware of it, asks in a later term: the
/// master steps down into it, as for its proposals (else it would never follow this master
/// and never receive the change).
#[test]
fn a_master_makes_way_for_a_non_voter_that_asks_for_a_later_term() {
    let mut a = a_master();
    pre_proposal(&mut a, 2_000, "s", 3);
    assert_eq!(events(&mut a), [Event::SteppedDown { term: 1, reason: StepDown::HigherTerm }]);
    assert_eq!((a.term(), a.stats().ignored.not_voter), (3, 1));
    assert_eq!(sent(&mut a), Vec::<String>::new(), "it grants no pre-vote to a non-voter");
}

// ----- options -----

#[test]
fn a_designated_primary_may_be_master_alone_in_a_two_node_group() {
    let g = group_of(&[("p", NodeType::Electable, 1), ("q", NodeType::Electable, 1)]);
    let config = Config { designated_primary: true, ..Config::default() };
    let mut p = node_in(g.clone(), "p", config, RamStore::new());
    assert_eq!(p.quorum(), 1);
    let deadline = p.poll_timeout().unwrap();
    p.handle_timeout(deadline);
    p.handle_timeout(p.poll_timeout().unwrap());
    assert_eq!(p.role(), Role::Master);

    let mut q = node_in(g, "q", Config::default(), RamStore::new());
    assert_eq!(q.quorum(), 2);
    let deadline = q.poll_timeout().unwrap();
    q.handle_timeout(deadline);
    assert_eq!(sent(&mut q), ["p <- PreProposal { term: 1 }"], "the other node asks p first");
    assert_eq!(q.role(), Role::Unknown);
    start_term(&mut q, &["p"]);
    q.handle_timeout(q.poll_timeout().unwrap());
    assert_eq!(q.role(), Role::Electing, "and needs both votes");
}

#[test]
fn the_group_size_override_sets_the_quorum() {
    let g = group_of(&[
        ("v1", NodeType::Electable, 1),
        ("v2", NodeType::Electable, 1),
        ("v3", NodeType::Electable, 1),
        ("v4", NodeType::Electable, 1),
        ("v5", NodeType::Electable, 1),
    ]);
    let normal = node_in(g.clone(), "v1", Config::default(), RamStore::new());
    assert_eq!(normal.quorum(), 3);
    let config = Config { electable_group_size_override: Some(2), ..Config::default() };
    let overridden = node_in(g, "v1", config, RamStore::new());
    assert_eq!(overridden.quorum(), 2);
}

#[test]
fn inconsistent_timings_are_rejected() {
    let g = group();
    let me = id(&g, "a");
    let config = Config { lease_ms: 900, election_timeout_ms: 500, ..Config::default() };
    let result = Election::<RamStore, 7>::new(g, me, config, RamStore::new(), 1, 0);
    assert!(matches!(result, Err(StartError::Config(_))));
}

#[test]
fn stop_steps_a_master_down_and_silences_the_node() {
    let mut a = a_master();
    a.stop();
    assert_eq!(events(&mut a), [Event::SteppedDown { term: 1, reason: StepDown::Stopped }]);
    assert_eq!(a.poll_timeout(), None);
    deliver(&mut a, 5000, "b", proposal("b", 9, 1, 1, 1));
    assert_eq!(a.term(), 1, "a stopped node ignores input");
    a.start(6000);
    assert_eq!(a.role(), Role::Unknown);
}

#[test]
fn state_size_for_three_five_and_seven_members() {
    use harp::node::Node;
    use harp::replication::RamLog;
    let sizes = [
        std::mem::size_of::<Election<RamStore, 3>>(),
        std::mem::size_of::<Election<RamStore, 5>>(),
        std::mem::size_of::<Election<RamStore, 7>>(),
    ];
    // A node's own state, without its log's entries (RamLog<0, 0> holds none).
    let nodes = [
        std::mem::size_of::<Node<RamStore, RamLog<0, 0>, 3>>(),
        std::mem::size_of::<Node<RamStore, RamLog<0, 0>, 5>>(),
        std::mem::size_of::<Node<RamStore, RamLog<0, 0>, 7>>(),
    ];
    eprintln!("size_of Election<RamStore, 3/5/7> = {sizes:?}, Node (no log) = {nodes:?}");
    // docs/protocol.md quotes these numbers; keep a 7-member node under 8 KiB.
    assert!(sizes[2] < 4096 && nodes[2] < 8192, "{sizes:?} {nodes:?}");
}

// ----- arbitrary peer input -----

mod arbitrary {
    use super::*;
    use harp::ProtocolMessage;
    use proptest::prelude::*;

    fn name() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("a".to_string()),
            Just("b".to_string()),
            Just("c".to_string()),
            Just("s".to_string()),
            Just("m".to_string()),
            Just("stranger".to_string()),
        ]
    }

    fn term() -> impl Strategy<Value = u64> {
        prop_oneof![0u64..8, Just(u64::MAX), any::<u64>()]
    }

    fn input() -> impl Strategy<Value = ProtocolMessage> {
        prop_oneof![
            (name(), 0u64..50, 0u32..3, term(), 0u64..50).prop_map(
                |(node_name, vlsn, priority, term, dtvlsn)| {
                    ProtocolMessage::ElectionProposal { node_name, vlsn, priority, term, dtvlsn }
                }
            ),
            (name(), any::<bool>(), term()).prop_map(|(voter, granted, term)| {
                ProtocolMessage::ElectionVote { voter, granted, term }
            }),
            (name(), term())
                .prop_map(|(master, term)| ProtocolMessage::ElectionResult { master, term }),
            (0u64..50, 0u64..100_000).prop_map(|(master_vlsn, timestamp_ms)| {
                ProtocolMessage::Heartbeat { master_vlsn, timestamp_ms }
            }),
            (0u64..50, 0u64..100_000).prop_map(|(replica_vlsn, timestamp_ms)| {
                ProtocolMessage::HeartbeatResponse { replica_vlsn, timestamp_ms }
            }),
            Just(ProtocolMessage::Ack { vlsn: 1 }),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        /// Nothing a peer sends panics the machine, moves its term backwards, or overflows its
        /// bounded queues while the caller drains them.
        #[test]
        fn arbitrary_peer_input_is_safe(
            me in prop_oneof![Just("a"), Just("c"), Just("m")],
            steps in proptest::collection::vec((0u8..7, input(), 0u64..300), 1..120),
        ) {
            let mut e = node(me);
            let mut now = 0u64;
            let mut last_term = 0;
            for (from, msg, dt) in steps {
                now += dt;
                e.handle(now, MemberId::new(from), &msg.as_ref());
                if let Some(deadline) = e.poll_timeout().filter(|&d| d <= now) {
                    e.handle_timeout(deadline.max(now));
                }
                prop_assert!(e.term() >= last_term, "term went back");
                last_term = e.term();
                sent(&mut e);
                events(&mut e);
                prop_assert_eq!(e.stats().outbox_overflows, 0);
                prop_assert_eq!(e.stats().event_overflows, 0);
                if e.role() == Role::Master {
                    prop_assert!(e.term() > 0, "a master of term 0");
                }
            }
        }
    }
}

#[test]
fn a_master_re_tells_every_member_the_result_every_ten_intervals() {
    let mut a = a_master(); // elected at 1001
    let mut results_to_b = Vec::new();
    for t in (1101..=3001).step_by(100) {
        a.handle_timeout(t);
        deliver(&mut a, t, "b", MessageRef::HeartbeatResponse { replica_vlsn: 0, timestamp_ms: t });
        if sent(&mut a).iter().any(|l| l.starts_with("b <- ElectionResult")) {
            results_to_b.push(t);
        }
    }
    assert_eq!(results_to_b, [2001, 3001], "b answers every heartbeat yet is re-told each second");
}

// ----- joining nodes -----

/// An Electable node `name` (priority 1, `node_id`) joining `group()` without `m` (the
/// monitor it removed), added at `added_at`.
fn joining_without_m(name: &str, node_id: u32, added_at: (u64, u64)) -> Node {
    let mut members = group();
    members.remove(id(&members, "m")).unwrap();
    let mut d =
        Node::new_learner(members, added_at, Config::default(), RamStore::new(), 1, 0).unwrap();
    d.set_joining(Some(Member::new(name, NodeType::Electable, 1, node_id).unwrap()));
    d
}

/// A node joining a group that removed a member (`m`, a monitor) takes part in elections
/// under its own name: a proposal or vote under the removed member's name would be ignored
/// by the members, and a group whose log already counts the joiner could then never elect
/// a master. It waits in a slot no member has had, not in m's: a log it has not received
/// yet may have given m's slot to another member, whose messages it would take for its own.
#[test]
fn a_joiner_in_a_group_that_removed_a_member_proposes_and_votes_under_its_own_name() {
    let mut d = joining_without_m("d", 9, (0, 0));
    assert_eq!(d.me(), MemberId::new(5), "a slot no member has had, until its Add places it");
    // Its view does not count it: two of its view's three voters must grant.
    let deadline = start_term(&mut d, &["a", "b"]);
    let proposals: Vec<String> =
        sent(&mut d).into_iter().filter(|l| l.contains("ElectionProposal")).collect();
    assert!(!proposals.is_empty() && proposals.iter().all(|l| l.contains(r#"node_name: "d""#)));
    deliver(&mut d, deadline + 1, "a", proposal("a", 1, 50, 40, 1));
    deliver(&mut d, deadline + 1, "b", proposal("b", 1, 20, 10, 2));
    deliver(&mut d, deadline + 1, "c", proposal("c", 1, 0, 0, 0)); // every voter heard
    assert_eq!(sent(&mut d), [r#"a <- ElectionVote { voter: "d", granted: true, term: 1 }"#]);
}

/// A machine joining under a reused name (`m`, a monitor the group removed, back as an
/// Electable node with node id 20) votes only for candidates whose log reaches the master's
/// Add of it, at `(2, 30)`: the wire names a voter by name alone, and a candidate whose log
/// lacks the Add may still give the name to the removed member, count the vote as that
/// member's and win without a quorum that holds every durable entry (the `group` fuzz
/// target found a master elected so). The promise is in its election record.
#[test]
fn a_joiner_votes_only_for_a_candidate_whose_log_reaches_its_add() {
    let mut d = joining_without_m("m", 20, (2, 30));
    d.set_log_position(0, 0, 0); // its log is empty
    assert_eq!(record(&d).acknowledged, (2, 30), "promised before it can vote");
    let hear_all = |d: &mut Node, now: u64, term: u64, a_log: (u64, u64)| {
        deliver_ext(d, now, "a", Extension::LogTerm { term, log_term: a_log.0 });
        deliver(d, now, "a", proposal("a", term, a_log.1, 0, 1));
        deliver_ext(d, now, "b", Extension::LogTerm { term, log_term: 1 });
        deliver(d, now, "b", proposal("b", term, 60, 0, 2));
        deliver(d, now, "c", proposal("c", term, 0, 0, 0));
    };
    assert_eq!(d.term(), 2, "it starts in the Add's term");
    // Term 3: a's log ends at (2, 29), just before the Add, and b's at (1, 60).
    let deadline = start_term(&mut d, &["a", "b"]);
    sent(&mut d);
    hear_all(&mut d, deadline + 1, 3, (2, 29));
    assert_eq!(sent(&mut d), Vec::<String>::new(), "no vote for a log without its Add");
    assert_eq!(d.stats().abstentions, 1);
    // Term 4: a's log reaches the Add.
    let deadline = start_term(&mut d, &["a", "b"]);
    sent(&mut d);
    hear_all(&mut d, deadline + 1, 4, (2, 30));
    assert_eq!(sent(&mut d), [r#"a <- ElectionVote { voter: "m", granted: true, term: 4 }"#]);
}

/// A joiner restarted with its Add's position keeps the highest it promised: a restart
/// that names an older position (or none) does not lower it.
#[test]
fn a_joiner_s_promise_survives_a_restart_and_never_goes_back() {
    let mut store = RamStore::new();
    let config = Config::default();
    Node::restore_learner(&group(), (2, 30), &config, &mut store).unwrap();
    let restored = Node::restore_learner(&group(), (0, 0), &config, &mut store).unwrap();
    let d = Node::start_restored(restored, group(), config, store, 1, 0);
    assert_eq!(record(&d).acknowledged, (2, 30));
    assert_eq!(d.term(), 2);
}

/// A node joining a group whose every slot holds a member (its Add comes after a removal
/// still ahead in the log it will be streamed) starts, in no slot, and is no member.
#[test]
fn a_joiner_starts_even_when_every_slot_holds_a_member() {
    let spec: Vec<(String, NodeType, u32)> =
        (0..7).map(|i| (format!("n{i}"), NodeType::Electable, 1)).collect();
    let spec: Vec<(&str, NodeType, u32)> =
        spec.iter().map(|(n, t, p)| (n.as_str(), *t, *p)).collect();
    let full = group_of(&spec);
    let d = Node::new_learner(full, (0, 0), Config::default(), RamStore::new(), 1, 0).unwrap();
    assert_eq!(d.me(), MemberId::UNPLACED);
    assert!(d.members().get(d.me()).is_none() && d.role() != Role::Master);
}

/// A member the master's log made Secondary, which has not received that change, campaigns
/// in later terms and refuses the master's older one, so it would never follow and never
/// receive the change: the master steps down into that term (its proposal is not counted),
/// and the next election brings it a master of a term it accepts. A follower ignores it (a
/// voter that knows no master joins the term: `a_voter_without_a_master_joins_...`).
#[test]
fn a_master_makes_way_for_a_non_voter_that_campaigns_in_a_later_term() {
    let mut a = a_master();
    deliver(&mut a, 1100, "s", proposal("s", 5, 0, 0, 1));
    assert_eq!(events(&mut a), [Event::SteppedDown { term: 1, reason: StepDown::HigherTerm }]);
    assert_eq!((a.term(), a.role()), (5, Role::Unknown));
    assert_eq!(a.stats().ignored.not_voter, 1, "the proposal itself is not counted");
    let mut b = node("b");
    deliver(&mut b, 10, "a", MessageRef::ElectionResult { master: "a", term: 1 });
    deliver(&mut b, 20, "s", proposal("s", 5, 0, 0, 1));
    assert_eq!(b.term(), 1, "a follower does not make way");
}
