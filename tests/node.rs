//! Engine tests of the replication stream: one input in, the exact outputs checked.
#![cfg(feature = "alloc")]

mod util;
use harp::election::Role;
use harp::membership::{Member, MemberId, Membership};
use harp::node::{AppendError, Node, NodeConfig, NodeEvent};
use harp::replication::{AckPolicy, EntryMeta, LogStore, RamLog, ENTRY_TERM_START};
use harp::storage::RamStore;
use harp::wire::{Extension, Message};
use harp::{MessageRef, NodeType};
use util::store_with;

type Log = RamLog<64, 4096>;
type TestNode = Node<RamStore, Log, 7>;

/// a: Electable p2, b: Electable p1, c: Electable p1, s: Secondary, m: Monitor, r: Arbiter.
/// Voters a, b, c, r: quorum 3.
fn group() -> Membership<7> {
    let mut g = Membership::named("g").unwrap();
    let spec = [
        ("a", NodeType::Electable, 2),
        ("b", NodeType::Electable, 1),
        ("c", NodeType::Electable, 1),
        ("s", NodeType::Secondary, 0),
        ("m", NodeType::Monitor, 0),
        ("r", NodeType::Arbiter, 0),
    ];
    for (i, (name, t, p)) in spec.iter().enumerate() {
        g.add(Member::new(name, *t, *p, 1 + i as u32).unwrap()).unwrap();
    }
    g
}

fn id(name: &str) -> MemberId {
    group().id_of(name).unwrap()
}

fn node_with(me: &str, config: NodeConfig, log: Log) -> TestNode {
    node_in_term(me, config, log, 0)
}

/// A node whose stable store says it has been in `term` (its next election is `term + 1`).
fn node_in_term(me: &str, config: NodeConfig, log: Log, term: u64) -> TestNode {
    let store = if term > 0 { store_with(term, None) } else { RamStore::new() };
    let mut node = Node::new(group(), id(me), config, store, log, 1, 0).unwrap();
    handshake_with_everyone(&mut node);
    node
}

/// Every peer and this node accept each other's handshakes (outputs drained).
fn handshake_with_everyone(node: &mut TestNode) {
    let me = node.election().me();
    for (peer, m) in group().iter().filter(|(p, _)| *p != me) {
        node.connect(peer);
        let hello =
            MessageRef::Handshake { node_name: &m.name, group_name: "g", node_type: m.node_type };
        node.handle(0, peer, &core(hello));
        let accepted = MessageRef::HandshakeResponse { accepted: true, reason: None };
        node.handle(0, peer, &core(accepted));
        assert!(node.is_connected(peer), "{peer} connected");
    }
    sent(node);
    events(node);
}

fn node(me: &str) -> TestNode {
    node_with(me, NodeConfig::default(), Log::new())
}

fn sent(n: &mut TestNode) -> Vec<String> {
    let mut out = Vec::new();
    while let Some(t) = n.poll_transmit() {
        out.push(format!("{} <- {:?}", t.recipient.name, t.message));
    }
    out
}

fn events(n: &mut TestNode) -> Vec<NodeEvent> {
    std::iter::from_fn(|| n.poll_event()).collect()
}

fn deliver(n: &mut TestNode, now: u64, from: &str, msg: Message<'_>) {
    n.handle(now, id(from), &msg);
}

fn core(m: MessageRef<'_>) -> Message<'_> {
    Message::Core(m)
}

fn entry(vlsn: u64, entry_type: u8, data: &[u8]) -> Message<'_> {
    core(MessageRef::LogEntry { vlsn, entry_type, data })
}

/// Runs `a`'s election of its next term: it times out, b and c grant its pre-vote, it hears
/// b, c and r, and b and c vote.
fn elect(a: &mut TestNode) {
    let deadline = a.poll_timeout().unwrap();
    a.handle_timeout(deadline);
    let term = a.election().term() + 1;
    for voter in ["b", "c"] {
        deliver(a, deadline, voter, Message::Ext(Extension::PreVote { term }));
    }
    assert_eq!(a.election().term(), term, "the pre-vote quorum starts the term");
    for voter in ["b", "c", "r"] {
        let proposal = MessageRef::ElectionProposal {
            node_name: voter,
            vlsn: 0,
            priority: 1,
            term,
            dtvlsn: 0,
        };
        deliver(a, 1000, voter, core(proposal));
    }
    for voter in ["b", "c"] {
        deliver(a, 1001, voter, core(MessageRef::ElectionVote { voter, granted: true, term }));
    }
    assert_eq!(a.role(), Role::Master);
}

/// `a` as master of term 1 (votes from b and c), everything it queued drained.
fn master_a(config: NodeConfig) -> TestNode {
    let mut a = node_with("a", config, Log::new());
    elect(&mut a);
    sent(&mut a);
    events(&mut a);
    a
}

/// `b` following master `a` in term 1, synced at VLSN 0.
fn replica_b() -> TestNode {
    let mut b = node("b");
    deliver(&mut b, 10, "a", core(MessageRef::ElectionResult { master: "a", term: 1 }));
    deliver(&mut b, 11, "a", Message::Ext(Extension::SyncPoint { vlsn: 0, log_term: 0 }));
    sent(&mut b);
    events(&mut b);
    b
}

fn term_start(term: u64) -> [u8; 8] {
    term.to_le_bytes()
}

// ----- start-up -----

/// A node whose election record is behind its log (the record was lost, or the log came
/// from elsewhere) starts in its last entry's term, as one that voted in it: it takes no
/// part in that term's election (the master that wrote the entries may have had its vote),
/// and its own next term is above every term in its log.
#[test]
fn a_log_ahead_of_the_election_record_starts_the_node_in_the_log_s_term() {
    let mut a = node_with("a", NodeConfig::default(), log_of_runs(&[(5, 2)]));
    assert_eq!(a.election().term(), 5);
    assert_eq!(a.election().vote(), Some(id("a")), "it may have voted in term 5");
    let proposal =
        MessageRef::ElectionProposal { node_name: "b", vlsn: 9, priority: 9, term: 5, dtvlsn: 0 };
    deliver(&mut a, 10, "b", core(proposal));
    assert_eq!(sent(&mut a), Vec::<String>::new(), "no vote, no proposal in term 5");
    elect(&mut a);
    assert_eq!(a.election().term(), 6);
    assert_eq!(a.log().meta(3), Some(EntryMeta { term: 6, dtvlsn: 0 }), "term start above 5");
}

/// A record at or past the log's last term is kept as it is.
#[test]
fn an_election_record_at_or_past_the_log_s_term_is_kept() {
    let a = node_in_term("a", NodeConfig::default(), log_of_runs(&[(5, 2)]), 5);
    assert_eq!((a.election().term(), a.election().vote()), (5, None));
    let a = node_in_term("a", NodeConfig::default(), log_of_runs(&[(5, 2)]), 8);
    assert_eq!((a.election().term(), a.election().vote()), (8, None));
}

// ----- master -----

#[test]
fn a_new_master_writes_its_term_start_and_syncs_every_data_node() {
    let mut a = node("a");
    elect(&mut a);
    assert_eq!(a.log().last_vlsn(), 1);
    let first = a.log().entry(1).unwrap();
    assert_eq!(
        (first.entry_type, first.data, first.meta.term),
        (ENTRY_TERM_START, &term_start(1)[..], 1)
    );
    let stream: Vec<String> = sent(&mut a)
        .into_iter()
        .filter(|l| {
            !["Election", "Heartbeat", "LogTerm", "PreProposal"].iter().any(|m| l.contains(m))
        })
        .collect();
    assert_eq!(
        stream,
        [
            "b <- SyncPoint { vlsn: 0, log_term: 0 }",
            "c <- SyncPoint { vlsn: 0, log_term: 0 }",
            "s <- SyncPoint { vlsn: 0, log_term: 0 }",
            "b <- LogEntry { vlsn: 1, entry_type: 255, data: [1, 0, 0, 0, 0, 0, 0, 0] }",
            "c <- LogEntry { vlsn: 1, entry_type: 255, data: [1, 0, 0, 0, 0, 0, 0, 0] }",
            "s <- LogEntry { vlsn: 1, entry_type: 255, data: [1, 0, 0, 0, 0, 0, 0, 0] }",
        ],
        "monitors and arbiters get no entries"
    );
}

#[test]
fn a_majority_of_acks_makes_an_entry_durable() {
    let mut a = master_a(NodeConfig::default());
    let v = a.append(7, b"x").unwrap();
    assert_eq!(v, 2);
    sent(&mut a);
    deliver(&mut a, 1100, "b", core(MessageRef::Ack { vlsn: 2 }));
    assert_eq!(events(&mut a), [], "2 of 4 voters (a, b): no quorum yet");
    deliver(&mut a, 1101, "c", core(MessageRef::Ack { vlsn: 2 }));
    assert_eq!(events(&mut a), [NodeEvent::Durable { vlsn: 2 }, NodeEvent::Committed { vlsn: 2 }]);
    assert_eq!(a.durable_vlsn(), 2);
}

/// A master frozen past its lease (a paused VM, a long GC) resumes with an acknowledgement
/// waiting in its socket: it runs its overdue heartbeat round first, finds the lease lapsed
/// and steps down, and does not count it (another master may have reported more since).
#[test]
fn a_master_resuming_past_its_lease_steps_down_before_it_counts_a_waiting_ack() {
    let mut a = master_a(NodeConfig::default());
    let v = a.append(7, b"x").unwrap();
    sent(&mut a);
    deliver(&mut a, 1100, "b", core(MessageRef::Ack { vlsn: v }));
    assert_eq!(events(&mut a), [], "2 of 4 voters: no quorum yet");
    let resumed = 1100 + 10 * a.election().config().lease_ms;
    deliver(&mut a, resumed, "c", core(MessageRef::Ack { vlsn: v }));
    assert_ne!(a.role(), Role::Master, "stepped down");
    let after = events(&mut a);
    assert!(!after.iter().any(|e| matches!(e, NodeEvent::Durable { .. })), "{after:?}");
    assert_eq!(a.durable_vlsn(), 0);
}

fn sync_point(vlsn: u64, log_term: u64) -> Message<'static> {
    Message::Ext(Extension::SyncPoint { vlsn, log_term })
}

#[test]
fn an_arbiter_is_asked_once_durability_stalls_and_its_acknowledgement_counts() {
    let mut a = master_a(NodeConfig::default());
    a.append(7, b"x").unwrap();
    sent(&mut a);
    deliver(&mut a, 1100, "b", core(MessageRef::Ack { vlsn: 2 }));
    assert_eq!(events(&mut a), [], "a and b: 2 of 4 voters; c is down");
    a.handle_timeout(1150);
    let ask = |m: &String| m.starts_with("r <- SyncPoint");
    assert!(!sent(&mut a).iter().any(ask), "not before a heartbeat interval");
    a.handle_timeout(1250);
    let asked: Vec<String> = sent(&mut a).into_iter().filter(ask).collect();
    assert_eq!(asked, ["r <- SyncPoint { vlsn: 2, log_term: 1 }"]);
    // An acknowledgement of another term's entry at that VLSN is not this log's: ignored.
    deliver(&mut a, 1260, "r", sync_point(2, 0));
    assert_eq!(a.durable_vlsn(), 0);
    deliver(&mut a, 1261, "r", sync_point(2, 1));
    assert_eq!(events(&mut a), [NodeEvent::Durable { vlsn: 2 }, NodeEvent::Committed { vlsn: 2 }]);
}

#[test]
fn an_arbiter_is_not_asked_while_replicas_keep_durability_moving() {
    let mut a = master_a(NodeConfig::default());
    let mut out = Vec::new();
    for (k, now) in [(2u64, 1100u64), (3, 1200), (4, 1300)] {
        a.append(7, b"x").unwrap();
        a.handle_timeout(now);
        out.extend(sent(&mut a));
        deliver(&mut a, now + 50, "b", core(MessageRef::Ack { vlsn: k }));
        deliver(&mut a, now + 50, "c", core(MessageRef::Ack { vlsn: k }));
        a.handle_timeout(now + 60);
        out.extend(sent(&mut a));
    }
    assert_eq!(a.durable_vlsn(), 4);
    assert!(!out.iter().any(|m| m.starts_with("r <- SyncPoint")), "{out:?}");
}

#[test]
fn an_arbiter_persists_the_position_before_it_acknowledges_and_votes_only_for_logs_reaching_it() {
    use harp::storage::{ElectionRecord, StableStore, MAX_RECORD};
    let mut r = node("r");
    deliver(&mut r, 10, "a", core(MessageRef::ElectionResult { master: "a", term: 1 }));
    sent(&mut r);
    deliver(&mut r, 20, "b", sync_point(5, 1));
    assert_eq!(sent(&mut r), Vec::<String>::new(), "only the master may ask");
    deliver(&mut r, 21, "a", sync_point(5, 1));
    assert_eq!(sent(&mut r), ["a <- SyncPoint { vlsn: 5, log_term: 1 }"]);
    let mut buf = [0u8; MAX_RECORD];
    let (mut store, _) = r.into_stores();
    let n = store.read(&mut buf).unwrap().unwrap();
    let record = ElectionRecord::decode(&buf[..n]).unwrap();
    assert_eq!(record.acknowledged, (1, 5));
    // Restarted from its store, it still refuses a candidate whose log ends before (1, 5).
    let mut r =
        Node::new(group(), id("r"), NodeConfig::default(), store, Log::new(), 1, 0).unwrap();
    handshake_with_everyone(&mut r);
    assert_eq!(r.election().log_position().vlsn, 5);
    assert_eq!(r.election().log_position().log_term, 1);
}

#[test]
fn the_master_knows_each_replicas_position_and_round_trip() {
    let mut a = master_a(NodeConfig::default());
    a.append(7, b"x").unwrap();
    sent(&mut a);
    assert_eq!(
        a.progress(id("b")),
        Some(harp::node::Progress { matched: 0, round_trip_ms: None, needs_restore: false })
    );
    deliver(&mut a, 1100, "b", core(MessageRef::Ack { vlsn: 2 }));
    let echo = MessageRef::HeartbeatResponse { replica_vlsn: 2, timestamp_ms: 1090 };
    deliver(&mut a, 1113, "b", core(echo));
    assert_eq!(
        a.progress(id("b")),
        Some(harp::node::Progress { matched: 2, round_trip_ms: Some(23), needs_restore: false })
    );
    assert_eq!(a.progress(id("a")), None, "not of itself");
    assert_eq!(replica_b().progress(id("a")), None, "only a master tracks replicas");
}

#[test]
fn group_commit_syncs_once_and_acknowledges_the_batch_cumulatively() {
    use harp::node::SyncMode;
    let config = NodeConfig { sync: SyncMode::Batched, ..NodeConfig::default() };
    let mut b = node_with("b", config, Log::new());
    deliver(&mut b, 10, "a", core(MessageRef::ElectionResult { master: "a", term: 1 }));
    deliver(&mut b, 11, "a", Message::Ext(Extension::SyncPoint { vlsn: 0, log_term: 0 }));
    sent(&mut b);
    deliver(&mut b, 12, "a", entry(1, ENTRY_TERM_START, &term_start(1)));
    deliver(&mut b, 12, "a", entry(2, 7, b"x"));
    deliver(&mut b, 12, "a", entry(3, 7, b"y"));
    assert_eq!(b.log().last_vlsn(), 3, "appended at once");
    assert_eq!(sent(&mut b), ["a <- Ack { vlsn: 3 }"], "one sync, one cumulative ack");

    let mut a = master_a(config);
    let v = a.append(7, b"x").unwrap();
    a.append(7, b"y").unwrap();
    assert_eq!(a.durable_vlsn(), 0);
    let out = sent(&mut a);
    assert!(
        out.contains(&format!("b <- LogEntry {{ vlsn: {}, entry_type: 7, data: [120] }}", v)),
        "{out:?}"
    );
}

#[test]
fn secondaries_acks_never_count() {
    let mut a = master_a(NodeConfig::default());
    a.append(7, b"x").unwrap();
    sent(&mut a);
    deliver(&mut a, 1100, "b", core(MessageRef::Ack { vlsn: 2 }));
    deliver(&mut a, 1100, "s", core(MessageRef::Ack { vlsn: 2 }));
    assert_eq!(events(&mut a), []);
}

#[test]
fn an_entry_of_an_older_term_is_not_made_durable_by_counting() {
    // a's log holds an entry of term 1 (from an earlier master); a is master of term 2.
    let mut log = Log::new();
    log.append(1, EntryMeta { term: 1, dtvlsn: 0 }, 7, b"old").unwrap();
    let mut a = node_in_term("a", NodeConfig::default(), log, 1);
    elect(&mut a);
    assert_eq!(a.election().term(), 2);
    sent(&mut a);
    events(&mut a);
    // The replicas acknowledge the old entry (VLSN 1) only: nothing becomes durable.
    deliver(&mut a, 1100, "b", core(MessageRef::Ack { vlsn: 1 }));
    deliver(&mut a, 1100, "c", core(MessageRef::Ack { vlsn: 1 }));
    assert_eq!(events(&mut a), []);
    // The term-start entry (VLSN 2, this term) carries it.
    deliver(&mut a, 1101, "b", core(MessageRef::Ack { vlsn: 2 }));
    deliver(&mut a, 1101, "c", core(MessageRef::Ack { vlsn: 2 }));
    assert_eq!(events(&mut a), [NodeEvent::Durable { vlsn: 2 }, NodeEvent::Committed { vlsn: 2 }]);
}

#[test]
fn the_window_bounds_entries_in_flight() {
    let mut a = master_a(NodeConfig { window: 2, ..NodeConfig::default() });
    a.append(7, b"x").unwrap();
    a.append(7, b"y").unwrap();
    let to_b: Vec<String> = sent(&mut a).into_iter().filter(|l| l.starts_with("b <-")).collect();
    assert_eq!(
        to_b,
        ["b <- LogEntry { vlsn: 2, entry_type: 7, data: [120] }"],
        "1 and 2 in flight"
    );
    deliver(&mut a, 1100, "b", core(MessageRef::Ack { vlsn: 1 }));
    let to_b: Vec<String> = sent(&mut a).into_iter().filter(|l| l.starts_with("b <-")).collect();
    assert_eq!(to_b, ["b <- LogEntry { vlsn: 3, entry_type: 7, data: [121] }"]);
}

#[test]
fn a_nack_makes_the_master_resync_there() {
    let mut a = master_a(NodeConfig::default());
    deliver(&mut a, 1100, "b", Message::Ext(Extension::SyncNack { vlsn: 0 }));
    let to_b: Vec<String> = sent(&mut a).into_iter().filter(|l| l.starts_with("b <-")).collect();
    assert_eq!(
        to_b,
        [
            "b <- SyncPoint { vlsn: 0, log_term: 0 }",
            "b <- LogEntry { vlsn: 1, entry_type: 255, data: [1, 0, 0, 0, 0, 0, 0, 0] }"
        ]
    );
}

/// A log of `(term, entries)` runs, each run opening with its term-start entry.
fn log_of_runs(runs: &[(u64, u64)]) -> Log {
    let mut log = Log::new();
    for &(term, count) in runs {
        for i in 0..count {
            let (vlsn, meta) = (log.last_vlsn() + 1, EntryMeta { term, dtvlsn: 0 });
            let start = term_start(term);
            let (entry_type, data): (u8, &[u8]) =
                if i == 0 { (ENTRY_TERM_START, &start) } else { (7, b"e") };
            log.append(vlsn, meta, entry_type, data).unwrap();
        }
    }
    log
}

/// The stream lines `a` sent to `b` (no election or heartbeat traffic).
fn stream_to_b(a: &mut TestNode) -> Vec<String> {
    let stream = |l: &String| l.starts_with("b <- Sync") || l.starts_with("b <- LogEntry");
    sent(a).into_iter().filter(stream).collect()
}

/// Raft's fast backup, the master's half: b was master of term 2 and holds 3..=20 of it,
/// a holds 3..=10 of term 2, then term 3's 11..=12, and is master of term 4. b refuses
/// a's question at 12 with the start of its term-2 run; a's entry there is of term 2 too,
/// so a asks where its own term-2 run ends (10), not at 2: b holds 3..=10 already.
#[test]
fn a_nack_below_a_run_of_another_term_is_asked_again_where_that_run_ends() {
    let mut a = node_in_term("a", NodeConfig::default(), log_of_runs(&[(1, 2), (2, 8), (3, 2)]), 3);
    elect(&mut a);
    assert_eq!(stream_to_b(&mut a)[0], "b <- SyncPoint { vlsn: 12, log_term: 3 }");
    deliver(&mut a, 1100, "b", Message::Ext(Extension::SyncNack { vlsn: 2 }));
    assert_eq!(stream_to_b(&mut a)[0], "b <- SyncPoint { vlsn: 10, log_term: 2 }");
    // b's entry at 10 is of another term after all: its answer is the same start, and the
    // run there is now the term asked, so a asks at the start itself.
    deliver(&mut a, 1101, "b", Message::Ext(Extension::SyncNack { vlsn: 2 }));
    let stream = stream_to_b(&mut a);
    assert_eq!(stream[0], "b <- SyncPoint { vlsn: 2, log_term: 1 }");
}

/// A run of the term asked is not skipped: b's run at 3 disagrees with a's question at 12
/// and a's entries 3..=12 are all of that question's term.
#[test]
fn a_nack_below_a_run_of_the_asked_term_is_asked_again_at_the_hint() {
    let mut a = node_in_term("a", NodeConfig::default(), log_of_runs(&[(1, 2), (3, 10)]), 3);
    elect(&mut a);
    assert_eq!(stream_to_b(&mut a)[0], "b <- SyncPoint { vlsn: 12, log_term: 3 }");
    deliver(&mut a, 1100, "b", Message::Ext(Extension::SyncNack { vlsn: 2 }));
    assert_eq!(stream_to_b(&mut a)[0], "b <- SyncPoint { vlsn: 2, log_term: 1 }");
}

/// Delivers what `from` sends to `to` (encoded and decoded, as a link would), returning
/// the lines; whatever else it sends is dropped.
fn pass(from: &mut TestNode, to: &mut TestNode, now: u64) -> Vec<String> {
    let (mut lines, mut frames) = (Vec::new(), Vec::new());
    while let Some(t) = from.poll_transmit() {
        if t.to == to.election().me() {
            lines.push(format!("{:?}", t.message));
            let mut buf = vec![0u8; t.message.encoded_len()];
            t.message.encode_into(&mut buf).unwrap();
            frames.push((from.election().me(), buf));
        }
    }
    for (sender, frame) in &frames {
        to.handle(now, *sender, &Message::decode(frame).unwrap());
    }
    lines
}

/// Master and replica together: b holds a's whole term-2 run and a divergent tail of it;
/// a asks where its term-2 run ends and streams only what follows it.
#[test]
fn a_replica_holding_most_of_a_term_is_streamed_only_what_follows_it() {
    let mut a = node_in_term("a", NodeConfig::default(), log_of_runs(&[(1, 2), (2, 8), (3, 2)]), 3);
    let mut b = node_in_term("b", NodeConfig::default(), log_of_runs(&[(1, 2), (2, 18)]), 3);
    elect(&mut a);
    deliver(&mut b, 1002, "a", core(MessageRef::ElectionResult { master: "a", term: 4 }));
    sent(&mut b);
    let mut to_b = Vec::new();
    for now in 1100..1110 {
        to_b.extend(pass(&mut a, &mut b, now));
        pass(&mut b, &mut a, now);
    }
    let questions: Vec<&String> = to_b.iter().filter(|l| l.starts_with("SyncPoint")).collect();
    assert_eq!(
        questions,
        ["SyncPoint { vlsn: 12, log_term: 3 }", "SyncPoint { vlsn: 10, log_term: 2 }"]
    );
    let entry_vlsn =
        |l: &String| l.strip_prefix("LogEntry { vlsn: ")?.split(',').next()?.parse().ok();
    let entries: Vec<u64> = to_b.iter().filter_map(entry_vlsn).collect();
    assert_eq!(entries, [13, 11, 12, 13], "13 sent on the first question, then 11 on");
    assert_eq!(b.log().last_vlsn(), 13);
    assert_eq!(b.log().meta(12).unwrap().term, 3);
}

#[test]
fn ack_policies_decide_committed() {
    let mut all = master_a(NodeConfig { ack_policy: AckPolicy::All, ..NodeConfig::default() });
    all.append(7, b"x").unwrap();
    sent(&mut all);
    deliver(&mut all, 1100, "b", core(MessageRef::Ack { vlsn: 2 }));
    deliver(&mut all, 1100, "c", core(MessageRef::Ack { vlsn: 1 }));
    assert_eq!(
        events(&mut all),
        [NodeEvent::Durable { vlsn: 1 }, NodeEvent::Committed { vlsn: 1 }],
        "a, b, c all hold 1 (the term start); c lacks 2"
    );
    deliver(&mut all, 1101, "c", core(MessageRef::Ack { vlsn: 2 }));
    assert_eq!(
        events(&mut all),
        [NodeEvent::Durable { vlsn: 2 }, NodeEvent::Committed { vlsn: 2 }]
    );

    let mut none = master_a(NodeConfig { ack_policy: AckPolicy::None, ..NodeConfig::default() });
    none.append(7, b"x").unwrap();
    assert_eq!(
        events(&mut none),
        [NodeEvent::Committed { vlsn: 2 }],
        "committed on the master alone; not durable"
    );
}

#[test]
fn appends_are_refused_off_the_master_and_for_reserved_types() {
    let mut b = replica_b();
    assert_eq!(b.append(7, b"x"), Err(AppendError::NotMaster { master: Some(id("a")) }));
    let mut a = master_a(NodeConfig::default());
    assert_eq!(a.append(0xF0, b"x"), Err(AppendError::ReservedType));
}

#[test]
fn a_replica_behind_the_retained_log_needs_a_restore() {
    let mut a = master_a(NodeConfig::default()); // replicas were sent entry 1
    for _ in 0..4 {
        a.append(7, b"x").unwrap();
    }
    a.log_mut().compact(4); // entries 2 and 3 are gone before anyone got them
    let asked: Vec<String> = sent(&mut a).into_iter().filter(|l| l.contains("Sync")).collect();
    let at_start = |n| format!("{n} <- SyncPoint {{ vlsn: 3, log_term: 1 }}");
    assert_eq!(asked, [at_start("b"), at_start("c"), at_start("s")], "asked at the log's start");
    assert_eq!(events(&mut a), [], "not yet known to lack anything");
    for r in ["b", "c", "s"] {
        deliver(&mut a, 1100, r, Message::Ext(Extension::SyncNack { vlsn: 1 }));
    }
    let asked: Vec<String> = sent(&mut a).into_iter().filter(|l| l.contains("Sync")).collect();
    assert_eq!(asked, [at_start("b"), at_start("c"), at_start("s")], "asked again at once");
    assert_eq!(events(&mut a), [], "a SyncNack may answer an earlier question");
    for r in ["b", "c", "s"] {
        // Before 1101, when the heartbeat round is due (it would queue heartbeats).
        deliver(&mut a, 1100, r, Message::Ext(Extension::SyncNack { vlsn: 1 }));
    }
    let restore = |name| NodeEvent::NeedsRestore { member: id(name), needed: 2 };
    assert_eq!(events(&mut a), [restore("b"), restore("c"), restore("s")]);
    a.append(7, b"y").unwrap();
    assert!(sent(&mut a).is_empty(), "no stream to a replica that needs a restore");
    // A resync asks again at the start; one that agrees now (restored) is streamed to.
    a.handle_timeout(1400);
    assert!(sent(&mut a).contains(&at_start("b")));
    deliver(&mut a, 1401, "b", core(MessageRef::Ack { vlsn: 3 }));
    let to_b: Vec<String> =
        sent(&mut a).into_iter().filter(|l| l.starts_with("b <- Log")).collect();
    assert_eq!(to_b.len(), 3, "entries 4 to 6: {to_b:?}");
}

/// Two questions in flight: the cautious SyncNack to a later question arrives after the
/// master asked at its start; the replica agrees there, so it is no restore.
#[test]
fn a_sync_nack_to_an_earlier_question_is_not_taken_for_a_restore() {
    let mut a = master_a(NodeConfig::default());
    for _ in 0..4 {
        a.append(7, b"x").unwrap();
    }
    sent(&mut a); // entries 2 to 5
    deliver(&mut a, 1100, "b", core(MessageRef::Ack { vlsn: 3 }));
    a.log_mut().compact(3); // the log starts at 3: its start is 2
    sent(&mut a);
    a.handle_timeout(1400); // b silent while behind: asked again from what it acknowledged
    let to_b = |a: &mut TestNode| -> Vec<String> {
        let stream = |l: &String| l.starts_with("b <- Sync") || l.starts_with("b <- LogEntry");
        sent(a)
            .into_iter()
            .filter(stream)
            .map(|l| l.split(',').next().unwrap()[5..].into())
            .collect()
    };
    let point = |v: u64| format!("SyncPoint {{ vlsn: {v}");
    let entry = |v: u64| format!("LogEntry {{ vlsn: {v}");
    assert_eq!(to_b(&mut a), [point(3), entry(4), entry(5)], "asked from what it acknowledged");
    // Its cautious answer (a hint below this log's start) to that question...
    deliver(&mut a, 1401, "b", Message::Ext(Extension::SyncNack { vlsn: 1 }));
    let at_start = [point(2), entry(3), entry(4), entry(5)];
    assert_eq!(to_b(&mut a), at_start, "asked at the start (2), entries 3 to 5 after it");
    // ...and, a resync later, the same cautious answer to a question still in flight.
    deliver(&mut a, 1402, "b", Message::Ext(Extension::SyncNack { vlsn: 1 }));
    assert_eq!(to_b(&mut a), at_start, "asked again, and still streamed to");
    assert_eq!(events(&mut a), [], "not reported: it may answer the earlier question");
    deliver(&mut a, 1403, "b", core(MessageRef::Ack { vlsn: 2 }));
    assert_eq!(a.progress(id("b")).map(|p| p.needs_restore), Some(false));
}

#[test]
fn acks_beyond_what_was_sent_and_from_non_replicas_are_ignored() {
    let mut a = master_a(NodeConfig::default());
    deliver(&mut a, 1100, "b", core(MessageRef::Ack { vlsn: 99 }));
    deliver(&mut a, 1100, "m", core(MessageRef::Ack { vlsn: 1 }));
    deliver(
        &mut a,
        1100,
        "b",
        core(MessageRef::HeartbeatResponse { replica_vlsn: 99, timestamp_ms: 1 }),
    );
    assert_eq!(a.stats().ignored.impossible, 2);
    assert_eq!(a.stats().ignored.not_replica, 1);
    assert_eq!(events(&mut a), []);
}

// ----- replica -----

#[test]
fn a_replica_persists_then_acknowledges_each_entry() {
    let mut b = replica_b();
    deliver(&mut b, 20, "a", entry(1, ENTRY_TERM_START, &term_start(1)));
    deliver(&mut b, 21, "a", entry(2, 7, b"x"));
    assert_eq!(sent(&mut b), ["a <- Ack { vlsn: 2 }"], "cumulative: one ack for both");
    assert_eq!(b.log().entry(2).unwrap().meta, EntryMeta { term: 1, dtvlsn: 0 });
}

#[test]
fn a_term_start_of_a_term_the_replica_missed_is_learned_as_a_result_and_synced_again() {
    // a won term 7 while b still follows it in term 1. Stored, the entry put b's log in a
    // term b had not entered: the simulator found b reporting term 7 from its log, then,
    // after a crash lost the unsynced entry, term 1 again. It may also have overtaken the
    // term's sync point, so b takes it only once synced again.
    let mut b = replica_b();
    deliver(&mut b, 20, "a", entry(1, ENTRY_TERM_START, &term_start(7)));
    assert_eq!(sent(&mut b), ["a <- SyncNack { vlsn: 0 }"]);
    assert_eq!((b.log().last_vlsn(), b.election().term()), (0, 7));
    assert_eq!(b.role(), Role::Replica { master: id("a") });
    assert_eq!(b.stats().ignored.not_master, 1);
    deliver(&mut b, 21, "a", entry(1, ENTRY_TERM_START, &term_start(7)));
    assert_eq!(sent(&mut b), Vec::<String>::new(), "not synced in term 7 yet");
    deliver(&mut b, 31, "a", Message::Ext(Extension::SyncPoint { vlsn: 0, log_term: 0 }));
    sent(&mut b);
    deliver(&mut b, 32, "a", entry(1, ENTRY_TERM_START, &term_start(7)));
    assert_eq!(sent(&mut b), ["a <- Ack { vlsn: 1 }"]);
    assert_eq!(b.log().meta(1), Some(EntryMeta { term: 7, dtvlsn: 0 }));
}

#[test]
fn a_matching_sync_point_is_acknowledged_and_a_conflicting_one_refused() {
    let mut log = Log::new();
    log.append(1, EntryMeta { term: 1, dtvlsn: 0 }, ENTRY_TERM_START, &term_start(1)).unwrap();
    log.append(2, EntryMeta { term: 1, dtvlsn: 0 }, 7, b"x").unwrap();
    log.append(3, EntryMeta { term: 1, dtvlsn: 0 }, 7, b"y").unwrap();
    let mut b = node_with("b", NodeConfig::default(), log.clone());
    deliver(&mut b, 10, "a", core(MessageRef::ElectionResult { master: "a", term: 2 }));
    deliver(&mut b, 11, "a", Message::Ext(Extension::SyncPoint { vlsn: 2, log_term: 1 }));
    assert_eq!(sent(&mut b), ["a <- Ack { vlsn: 2 }"]);

    let mut b = node_with("b", NodeConfig::default(), log);
    deliver(&mut b, 10, "a", core(MessageRef::ElectionResult { master: "a", term: 3 }));
    deliver(&mut b, 11, "a", Message::Ext(Extension::SyncPoint { vlsn: 3, log_term: 2 }));
    assert_eq!(sent(&mut b), ["a <- SyncNack { vlsn: 0 }"], "the whole term-1 run disagrees");
    deliver(&mut b, 12, "a", Message::Ext(Extension::SyncPoint { vlsn: 9, log_term: 2 }));
    assert_eq!(sent(&mut b), ["a <- SyncNack { vlsn: 3 }"], "beyond the own log: its end");
}

#[test]
fn a_conflicting_suffix_is_truncated_and_replaced() {
    let mut log = Log::new();
    log.append(1, EntryMeta { term: 1, dtvlsn: 0 }, ENTRY_TERM_START, &term_start(1)).unwrap();
    log.append(2, EntryMeta { term: 1, dtvlsn: 0 }, 7, b"stale").unwrap();
    let mut b = node_with("b", NodeConfig::default(), log);
    deliver(&mut b, 10, "a", core(MessageRef::ElectionResult { master: "a", term: 2 }));
    deliver(&mut b, 11, "a", Message::Ext(Extension::SyncPoint { vlsn: 1, log_term: 1 }));
    deliver(&mut b, 12, "a", entry(2, ENTRY_TERM_START, &term_start(2)));
    assert_eq!(events(&mut b).last(), Some(&NodeEvent::Truncated { from: 2 }));
    let e = b.log().entry(2).unwrap();
    assert_eq!((e.entry_type, e.meta.term), (ENTRY_TERM_START, 2));
    assert_eq!(sent(&mut b), ["a <- Ack { vlsn: 2 }"], "the sync point's ack, superseded");
}

#[test]
fn a_gap_asks_the_master_to_resume_and_duplicates_are_dropped() {
    let mut b = replica_b();
    deliver(&mut b, 20, "a", entry(1, ENTRY_TERM_START, &term_start(1)));
    sent(&mut b);
    deliver(&mut b, 21, "a", entry(1, ENTRY_TERM_START, &term_start(1)));
    assert_eq!(sent(&mut b), Vec::<String>::new(), "duplicate");
    deliver(&mut b, 22, "a", entry(3, 7, b"z"));
    assert_eq!(sent(&mut b), ["a <- SyncNack { vlsn: 1 }"], "entry 2 went missing");
    deliver(&mut b, 23, "a", entry(2, 7, b"y"));
    assert_eq!(sent(&mut b), Vec::<String>::new(), "nothing is stored until the next sync point");
    assert_eq!(b.log().last_vlsn(), 1);
}

#[test]
fn entries_from_anyone_but_the_master_are_ignored() {
    let mut b = replica_b();
    deliver(&mut b, 20, "c", entry(1, ENTRY_TERM_START, &term_start(1)));
    deliver(&mut b, 20, "c", Message::Ext(Extension::SyncPoint { vlsn: 0, log_term: 0 }));
    assert_eq!(b.stats().ignored.not_master, 2);
    assert_eq!(b.log().last_vlsn(), 0);
    let mut fresh = node("b"); // follows no one
    deliver(&mut fresh, 20, "a", entry(1, ENTRY_TERM_START, &term_start(1)));
    assert_eq!(fresh.stats().ignored.not_master, 1);
}

#[test]
fn a_durable_entry_is_never_overwritten() {
    let mut log = Log::new();
    log.append(1, EntryMeta { term: 1, dtvlsn: 0 }, ENTRY_TERM_START, &term_start(1)).unwrap();
    log.append(2, EntryMeta { term: 1, dtvlsn: 1 }, 0xFE, &1u64.to_le_bytes()).unwrap();
    let mut b = node_with("b", NodeConfig::default(), log);
    assert_eq!(b.durable_vlsn(), 1);
    deliver(&mut b, 10, "a", core(MessageRef::ElectionResult { master: "a", term: 3 }));
    deliver(&mut b, 11, "a", Message::Ext(Extension::SyncPoint { vlsn: 0, log_term: 0 }));
    deliver(&mut b, 12, "a", entry(1, ENTRY_TERM_START, &term_start(3)));
    assert_eq!(b.stats().ignored.impossible, 1);
    assert_eq!(b.log().entry(1).unwrap().meta.term, 1, "kept");
}

// ----- handshakes -----

fn fresh(me: &str) -> TestNode {
    Node::new(group(), id(me), NodeConfig::default(), RamStore::new(), Log::new(), 1, 0).unwrap()
}

#[test]
fn connecting_sends_a_handshake_and_an_acceptance_connects() {
    let mut b = fresh("b");
    b.connect(id("a"));
    assert_eq!(
        sent(&mut b),
        [r#"a <- Handshake { node_name: "b", group_name: "g", node_type: Electable }"#]
    );
    deliver(&mut b, 1, "a", core(MessageRef::HandshakeResponse { accepted: true, reason: None }));
    assert_eq!(events(&mut b), [NodeEvent::Connected { member: id("a") }]);
    assert!(!b.is_connected(id("a")), "a's own handshake is still to come");
    deliver(
        &mut b,
        2,
        "a",
        core(MessageRef::Handshake {
            node_name: "a",
            group_name: "g",
            node_type: NodeType::Electable,
        }),
    );
    assert_eq!(sent(&mut b), ["a <- HandshakeResponse { accepted: true, reason: None }"]);
    assert!(b.is_connected(id("a")));
}

/// A member's handshake may name Electable where the membership says Secondary, or the
/// reverse: an `Update` between them is in one log and not yet in the other, and only the
/// stream the link carries can bring it. A monitor's or arbiter's type must match.
#[test]
fn a_handshake_may_differ_from_the_membership_between_electable_and_secondary_only() {
    let mut b = fresh("b");
    let hello = |node_name, node_type| {
        core(MessageRef::Handshake { node_name, group_name: "g", node_type })
    };
    deliver(&mut b, 1, "s", hello("s", NodeType::Electable));
    assert_eq!(
        sent(&mut b).last().unwrap(),
        "s <- HandshakeResponse { accepted: true, reason: None }"
    );
    deliver(&mut b, 1, "a", hello("a", NodeType::Secondary));
    assert_eq!(
        sent(&mut b).last().unwrap(),
        "a <- HandshakeResponse { accepted: true, reason: None }"
    );
    deliver(&mut b, 1, "m", hello("m", NodeType::Electable));
    let refused = r#"m <- HandshakeResponse { accepted: false, reason: Some("node type does not match the membership") }"#;
    assert_eq!(sent(&mut b).last().unwrap(), refused);
}

#[test]
fn bad_handshakes_are_refused_with_the_reason() {
    let mut b = fresh("b");
    let cases = [
        (("a", "other", NodeType::Electable), "wrong group name"),
        (("zz", "g", NodeType::Electable), "not a member of the group"),
        (("a", "g", NodeType::Monitor), "node type does not match the membership"),
        (("c", "g", NodeType::Electable), "the name is not the connection's"),
    ];
    for ((name, group_name, node_type), reason) in cases {
        deliver(
            &mut b,
            1,
            "a",
            core(MessageRef::Handshake { node_name: name, group_name, node_type }),
        );
        assert_eq!(
            sent(&mut b),
            [format!(r#"a <- HandshakeResponse {{ accepted: false, reason: Some("{reason}") }}"#)]
        );
    }
    assert_eq!(b.stats().ignored.handshakes_refused, 4);
    assert!(!b.is_connected(id("a")));
}

#[test]
fn a_second_live_connection_under_a_name_is_refused() {
    let b = node("b"); // connected to everyone
    assert_eq!(
        b.check_handshake("a", "g", NodeType::Electable),
        Err(harp::node::HandshakeRefusal::AlreadyConnected)
    );
    let mut b = b;
    b.disconnect(id("a"));
    assert_eq!(b.check_handshake("a", "g", NodeType::Electable), Ok(id("a")));
}

#[test]
fn nothing_is_exchanged_before_the_handshake() {
    let mut b = fresh("b");
    deliver(&mut b, 10, "a", core(MessageRef::ElectionResult { master: "a", term: 1 }));
    assert_eq!(b.stats().ignored.not_connected, 1);
    assert_eq!(b.role(), Role::Unknown);
    b.handle_timeout(b.election().poll_timeout().unwrap()); // greets everyone, starts a term
    let out = sent(&mut b);
    assert!(out.iter().all(|l| l.contains("Handshake")), "only handshakes go out: {out:?}");
    assert!(b.stats().unconnected_drops > 0, "the election's proposals were not sent");
}

// ----- shutdown -----

#[test]
fn a_master_shuts_down_after_its_best_replica_caught_up() {
    let mut a = master_a(NodeConfig::default());
    a.append(7, b"x").unwrap();
    sent(&mut a);
    a.shutdown(1100, "maintenance");
    assert_eq!(a.append(7, b"y"), Err(AppendError::ShuttingDown));
    assert_eq!(events(&mut a), [], "b and c have not caught up yet");
    assert_eq!(a.role(), Role::Master);
    deliver(&mut a, 1101, "c", core(MessageRef::Ack { vlsn: 2 }));
    let notices: Vec<String> =
        sent(&mut a).into_iter().filter(|l| l.contains("Shutdown")).collect();
    let expected: Vec<String> = ["b", "c", "s", "m", "r"]
        .iter()
        .map(|n| format!(r#"{n} <- Shutdown {{ reason: "maintenance" }}"#))
        .collect();
    assert_eq!(notices, expected);
    assert_eq!(a.role(), Role::Stopped);
    assert!(events(&mut a).contains(&NodeEvent::Stopped));
    deliver(&mut a, 1200, "b", core(MessageRef::Ack { vlsn: 2 }));
    assert_eq!(events(&mut a), [], "a stopped node takes no input");
}

#[test]
fn a_long_shutdown_reason_is_cut_at_a_character_boundary() {
    let mut a = master_a(NodeConfig::default());
    sent(&mut a);
    let reason = format!("{}€ and more", "x".repeat(harp::node::REASON_CAP - 1));
    a.shutdown(1100, &reason);
    for r in ["b", "c"] {
        deliver(&mut a, 1101, r, core(MessageRef::Ack { vlsn: 1 }));
    }
    let kept = "x".repeat(harp::node::REASON_CAP - 1); // the 3-byte `€` would not fit
    let notice = format!(r#"b <- Shutdown {{ reason: "{kept}" }}"#);
    assert!(sent(&mut a).contains(&notice));
}

#[test]
fn a_master_gives_up_waiting_after_two_election_timeouts() {
    let mut a = master_a(NodeConfig::default());
    a.shutdown(1100, "going");
    for t in (1101..2100).step_by(100) {
        a.handle_timeout(t);
        for r in ["b", "c"] {
            let echo = MessageRef::HeartbeatResponse { replica_vlsn: 0, timestamp_ms: t };
            deliver(&mut a, t + 1, r, core(echo)); // alive, but never catching up
        }
        assert_eq!(a.role(), Role::Master, "still waiting at {t}");
    }
    a.handle_timeout(2101);
    assert_eq!(a.role(), Role::Stopped);
}

#[test]
fn a_shutting_down_master_is_woken_at_its_deadline() {
    let mut a = master_a(NodeConfig::default());
    a.shutdown(1150, "going"); // heartbeats fall on hundreds: the deadline, 2150, does not
    let mut now = 1150;
    while a.role() == Role::Master {
        now = a.poll_timeout().unwrap();
        assert!(now <= 2150, "the next deadline {now} is past the shutdown's");
        a.handle_timeout(now);
        for r in ["b", "c"] {
            let echo = MessageRef::HeartbeatResponse { replica_vlsn: 0, timestamp_ms: now };
            deliver(&mut a, now, r, core(echo)); // alive, but never catching up
        }
    }
    assert_eq!((now, a.role()), (2150, Role::Stopped));
}

#[test]
fn a_master_no_one_could_take_over_from_stops_at_once() {
    let mut solo = solo_master_on_flaky_log();
    solo.shutdown(5000, "going");
    assert_eq!(solo.role(), Role::Stopped);
    assert_eq!(
        solo.poll_event(),
        Some(NodeEvent::Election(harp::election::Event::SteppedDown {
            term: solo.election().term(),
            reason: harp::election::StepDown::Stopped,
        }))
    );
    assert_eq!(solo.poll_event(), Some(NodeEvent::Stopped));
}

#[test]
fn replicas_elect_at_once_when_their_master_shuts_down() {
    let mut b = replica_b();
    let before = b.election().term();
    deliver(&mut b, 30, "a", core(MessageRef::Shutdown { reason: "bye" }));
    assert_eq!(events(&mut b)[0], NodeEvent::PeerShutdown { member: id("a") });
    assert_eq!(b.election().term(), before + 1, "started the next term without waiting");
    assert_eq!(b.role(), Role::Electing);
    let mut c = replica_b();
    deliver(&mut c, 30, "c", core(MessageRef::Shutdown { reason: "bye" }));
    assert_eq!(c.election().term(), before, "a replica's shutdown starts no election");
}

// ----- membership -----

fn rep<'a>(name: &'a str, node_type: NodeType, node_id: u32) -> harp::RepNodeRef<'a> {
    harp::RepNodeRef { name, node_type, host: "h", port: 5001, node_id }
}

#[test]
fn the_master_adds_a_member_through_the_log() {
    use harp::GroupChangeType::Add;
    let mut a = master_a(NodeConfig::default());
    assert_eq!(
        a.change_membership(1040, Add, &rep("d", NodeType::Electable, 9)),
        Err(harp::node::ChangeError::Refused(harp::node::ChangeRefusal::TermNotDurable))
    );
    for r in ["b", "c"] {
        deliver(&mut a, 1045, r, core(MessageRef::Ack { vlsn: 1 }));
        deliver(
            &mut a,
            1050,
            r,
            core(MessageRef::HeartbeatResponse { replica_vlsn: 0, timestamp_ms: 1001 }),
        );
    }
    let vlsn = a.change_membership(1100, Add, &rep("d", NodeType::Electable, 9)).unwrap();
    assert_eq!(a.log().entry(vlsn).unwrap().entry_type, harp::replication::ENTRY_MEMBERSHIP);
    assert!(a.members().id_of("d").is_some(), "applied at once");
    assert_eq!(a.members().voter_count(), 5, "quorums follow: a, b, c, d, r");
    assert!(events(&mut a).contains(&NodeEvent::MembershipChanged { vlsn }));
    assert_eq!(
        a.change_membership(1100, Add, &rep("e", NodeType::Electable, 10)),
        Err(harp::node::ChangeError::Refused(harp::node::ChangeRefusal::ChangeInProgress))
    );
}

/// A name may be reused once its member's removal is durable, under a node id above the
/// removed member's: node ids never go back, which is how a view that missed the removal
/// tells a new member from the old (`Membership::apply`). The same id is the same member,
/// added back as it was.
#[test]
fn a_reused_name_needs_a_node_id_above_its_removed_member_s() {
    use harp::node::{ChangeError::Refused, ChangeRefusal::NodeIdBelowRemoved};
    use harp::GroupChangeType::{Add, Remove};
    let mut a = master_a_ready_for_changes();
    let removed = a.change_membership(1100, Remove, &rep("m", NodeType::Monitor, 5)).unwrap();
    sent(&mut a); // streamed
    for r in ["b", "c"] {
        deliver(&mut a, 1110, r, core(MessageRef::Ack { vlsn: removed }));
    }
    for node_id in [4, 1, 5] {
        let again = rep("m", NodeType::Electable, node_id);
        assert_eq!(a.change_membership(1120, Add, &again), Err(Refused(NodeIdBelowRemoved)));
    }
    // The same id and type: the same member, added back.
    let back = a.change_membership(1120, Add, &rep("m", NodeType::Monitor, 5)).unwrap();
    assert_eq!(back, removed + 1);
    let m = a.members().get(a.members().id_of("m").unwrap()).unwrap();
    assert_eq!((m.node_type, m.node_id), (NodeType::Monitor, 5));
}

/// Links are known by name, and a reused name's Add moves the name to another slot: the
/// link whose handshake this node accepted under the name, while it was a removed member's
/// slot, moves with it. The peer never sends another handshake, so before, everything it
/// sent under its new slot was ignored, and the master never streamed it its log (seed
/// 480,102,212 with membership changes).
#[test]
fn a_link_follows_its_name_to_the_slot_a_reused_name_s_add_gives_it() {
    use harp::GroupChangeType::{Add, Remove};
    let mut a = master_a_ready_for_changes();
    // c's slot is free for an Add, before s's, once both are removed.
    for (at, gone) in
        [(1100, rep("c", NodeType::Electable, 3)), (1110, rep("s", NodeType::Secondary, 4))]
    {
        let removed = a.change_membership(at, Remove, &gone).unwrap();
        sent(&mut a); // streamed
        deliver(&mut a, at + 5, "b", core(MessageRef::Ack { vlsn: removed }));
    }
    // The new machine greets `a` under the removed Secondary's name, which `a` accepts in
    // that member's slot (a removal may be undone).
    let hello =
        MessageRef::Handshake { node_name: "s", group_name: "g", node_type: NodeType::Electable };
    deliver(&mut a, 1115, "s", core(hello));
    let added = a.change_membership(1120, Add, &rep("s", NodeType::Electable, 20));
    assert!(added.is_ok(), "{added:?}");
    let s = a.members().id_of("s").unwrap();
    assert_ne!(s, id("s"), "the Add put it in a slot no member has had");
    a.handle(1125, s, &core(MessageRef::HandshakeResponse { accepted: true, reason: None }));
    let ignored = a.stats().ignored.not_connected;
    let beat = MessageRef::HeartbeatResponse { replica_vlsn: 0, timestamp_ms: 1001 };
    a.handle(1130, s, &core(beat));
    assert_eq!(a.stats().ignored.not_connected, ignored);
    assert!(a.is_connected(s));
}

/// Where the log holds a member's Add, by name and node id: what a node joining as that
/// member is started with (`Node::new_joining`), so that it votes only for logs holding it.
#[test]
fn the_log_tells_where_a_member_was_added() {
    use harp::GroupChangeType::{Add, Remove};
    let mut a = master_a_ready_for_changes();
    let removed = a.change_membership(1100, Remove, &rep("m", NodeType::Monitor, 5)).unwrap();
    sent(&mut a);
    for r in ["b", "c"] {
        deliver(&mut a, 1110, r, core(MessageRef::Ack { vlsn: removed }));
    }
    assert_eq!(a.addition_of("m", 5), None, "configured, not added through the log");
    let added = a.change_membership(1120, Add, &rep("m", NodeType::Electable, 20)).unwrap();
    assert_eq!(a.addition_of("m", 20), Some((1, added)));
    assert_eq!(a.addition_of("m", 5), None, "by node id too");
    assert_eq!(a.addition_of("d", 20), None, "and by name");
}

#[test]
fn unsafe_or_invalid_changes_are_refused_with_the_reason() {
    use harp::node::ChangeError::Refused;
    use harp::node::ChangeRefusal::*;
    use harp::GroupChangeType::{Add, Remove, Update};
    let mut a = master_a(NodeConfig::default());
    for r in ["b", "c"] {
        deliver(&mut a, 1045, r, core(MessageRef::Ack { vlsn: 1 })); // the term start is durable
    }
    assert_eq!(
        a.change_membership(1100, Remove, &rep("a", NodeType::Electable, 1)),
        Err(Refused(MasterRemovesItself))
    );
    let type_changes = [
        (rep("a", NodeType::Secondary, 1), MasterChangesItsType),
        (rep("m", NodeType::Electable, 5), TypeChangeAcrossLog),
        (rep("b", NodeType::Arbiter, 2), TypeChangeAcrossLog),
    ];
    for (node, refusal) in type_changes {
        assert_eq!(a.change_membership(1100, Update, &node), Err(Refused(refusal)), "{node:?}");
    }
    assert_eq!(
        a.change_membership(1100, Add, &rep("b", NodeType::Electable, 2)),
        Err(Refused(AlreadyMember))
    );
    assert_eq!(
        a.change_membership(1100, Remove, &rep("zz", NodeType::Electable, 99)),
        Err(Refused(NotMember))
    );
    assert_eq!(
        a.change_membership(1100, Add, &rep("d", NodeType::Electable, 2)),
        Err(Refused(NodeIdInUse))
    );
    assert_eq!(
        a.change_membership(1100, Add, &rep(&"d".repeat(33), NodeType::Electable, 9)),
        Err(Refused(NameTooLong))
    );
    assert_eq!(
        a.change_membership(1100, Update, &rep("b", NodeType::Electable, 99)),
        Err(Refused(NodeIdMismatch))
    );
    assert_eq!(
        a.change_membership(1100, Remove, &rep("c", NodeType::Electable, 99)),
        Err(Refused(NodeIdMismatch)),
        "a removal names its member by node id too (a reused name names another)"
    );
    assert_eq!(Refused(NodeIdMismatch).to_string(), "refused: node id does not match the member");
    // Nobody answered heartbeats: removing b leaves a, c, r, of whom only a is live.
    assert_eq!(
        a.change_membership(1500, Remove, &rep("b", NodeType::Electable, 2)),
        Err(Refused(NoLiveQuorum))
    );
    let mut b = replica_b();
    assert_eq!(
        b.change_membership(10, Add, &rep("d", NodeType::Electable, 9)),
        Err(harp::node::ChangeError::NotMaster)
    );
}

#[test]
fn compacting_the_log_carries_its_membership_changes_into_the_base() {
    use harp::node::CompactError;
    use harp::GroupChangeType::Add;
    let mut a = master_a_ready_for_changes();
    let vlsn = a.change_membership(1100, Add, &rep("d", NodeType::Electable, 9)).unwrap();
    assert!(a.base_members_before(vlsn).id_of("d").is_none());
    assert!(a.base_members_before(vlsn + 1).id_of("d").is_some(), "what a compaction leaves");
    let early = a.compact_log(vlsn + 1);
    assert_eq!(early, Err(CompactError::NotDurable { durable: vlsn - 1 }));
    let text = early.unwrap_err().to_string();
    assert_eq!(text, format!("only entries up to the durable VLSN {} can be compacted", vlsn - 1));
    sent(&mut a); // the change is streamed
    for r in ["b", "c"] {
        deliver(&mut a, 1110, r, core(MessageRef::Ack { vlsn }));
    }
    assert_eq!(a.durable_vlsn(), vlsn);
    a.compact_log(vlsn + 1).unwrap();
    assert_eq!(a.log().first_vlsn(), vlsn + 1, "the Add is no longer in the log");
    assert!(a.base_members().id_of("d").is_some(), "but in the base");
    assert!(a.members().id_of("d").is_some());
    // A restart from the base and the compacted log still knows d; from the configured
    // group it would not, which is why the base is handed back.
    let base = a.base_members().clone();
    let (store, log) = a.into_stores();
    let a = Node::new(base, id("a"), NodeConfig::default(), store, log, 1, 2000).unwrap();
    assert!(a.members().id_of("d").is_some());
}

#[test]
fn a_refused_compaction_changes_nothing() {
    let mut solo = solo_master_on_flaky_log();
    solo.append(1, b"x").unwrap();
    let last = solo.log().last_vlsn();
    assert_eq!(solo.durable_vlsn(), last);
    solo.log_mut().failing = true;
    let refused = solo.compact_log(last + 1);
    assert_eq!(refused, Err(harp::node::CompactError::Storage("the disk is gone")));
    assert_eq!(solo.log().first_vlsn(), 1);
    solo.log_mut().failing = false;
    solo.compact_log(last + 1).unwrap();
    assert_eq!((solo.log().first_vlsn(), solo.log().last_vlsn()), (last + 1, last));
}

#[test]
fn a_replica_applies_a_change_when_it_reaches_its_log_and_refuses_requests() {
    let mut b = replica_b();
    deliver(&mut b, 20, "a", entry(1, ENTRY_TERM_START, &term_start(1)));
    let mut buf = [0u8; 128];
    let change = MessageRef::GroupChange {
        change_type: harp::GroupChangeType::Remove,
        node: rep("c", NodeType::Electable, 3),
    };
    let n = change.encode_into(&mut buf).unwrap();
    deliver(&mut b, 21, "a", entry(2, harp::replication::ENTRY_MEMBERSHIP, &buf[..n]));
    assert!(b.members().id_of("c").is_none());
    assert!(events(&mut b).contains(&NodeEvent::MembershipChanged { vlsn: 2 }));
    sent(&mut b);
    let add_d = MessageRef::GroupChange {
        change_type: harp::GroupChangeType::Add,
        node: rep("d", NodeType::Electable, 9),
    };
    deliver(&mut b, 22, "m", core(add_d));
    assert_eq!(
        sent(&mut b),
        ["m <- GroupChangeResponse { accepted: false }"],
        "a request from a member without a log, to a replica"
    );
    deliver(&mut b, 23, "c", core(change));
    deliver(&mut b, 23, "a", core(add_d));
    assert_eq!(
        sent(&mut b),
        Vec::<String>::new(),
        "from members with a log (c removed but still recognised: the removal is not durable \
         yet), a GroupChange is a notice, which a member with a log ignores"
    );
    assert_eq!(b.stats().ignored.misdirected_notices, 2);
    assert!(b.members().id_of("d").is_none());
}

#[test]
fn the_master_answers_a_request_of_a_member_without_a_log_once_the_change_is_durable() {
    let mut a = master_a(NodeConfig::default());
    for r in ["b", "c"] {
        deliver(&mut a, 1045, r, core(MessageRef::Ack { vlsn: 1 })); // the term start is durable
    }
    let add_d = MessageRef::GroupChange {
        change_type: harp::GroupChangeType::Add,
        node: rep("d", NodeType::Electable, 9),
    };
    deliver(&mut a, 1100, "m", core(add_d));
    assert_eq!(a.log().last_vlsn(), 2);
    assert_eq!(a.log().entry(2).unwrap().entry_type, harp::replication::ENTRY_MEMBERSHIP);
    assert!(a.members().id_of("d").is_some());
    let streamed = sent(&mut a);
    assert_eq!(streamed.len(), 3, "the change to b, c and s: {streamed:?}");
    assert!(streamed.iter().all(|l| l.contains("LogEntry { vlsn: 2, entry_type: 253")));
    let answers = |a: &mut TestNode| -> Vec<String> {
        sent(a).into_iter().filter(|l| l.contains("GroupChangeResponse")).collect()
    };
    deliver(&mut a, 1110, "b", core(MessageRef::Ack { vlsn: 2 }));
    assert_eq!(answers(&mut a), Vec::<String>::new(), "a and b: 2 of the voters a, b, c, d, r");
    deliver(&mut a, 1120, "c", core(MessageRef::Ack { vlsn: 2 }));
    assert_eq!(answers(&mut a), ["m <- GroupChangeResponse { accepted: true }"]);
}

/// A replica whose log lacks the master's current type (a name removed as a monitor and
/// added again as Electable, say) takes the master for a member without a log and sends it
/// the membership history: the master must not take those notices for requests.
#[test]
fn the_master_ignores_a_membership_notice_from_a_replica() {
    let mut a = master_a(NodeConfig::default());
    for r in ["b", "c"] {
        deliver(&mut a, 1045, r, core(MessageRef::Ack { vlsn: 1 })); // the term start is durable
    }
    for change_type in [harp::GroupChangeType::Remove, harp::GroupChangeType::Add] {
        let notice = MessageRef::GroupChange { change_type, node: rep("r", NodeType::Arbiter, 6) };
        deliver(&mut a, 1100, "b", core(notice));
    }
    assert_eq!(sent(&mut a), Vec::<String>::new());
    assert_eq!(a.log().last_vlsn(), 1, "nothing appended");
    assert!(a.members().id_of("r").is_some());
    assert_eq!(a.stats().ignored.misdirected_notices, 2);
}

#[test]
fn members_without_a_log_learn_changes_from_members_with_one() {
    let mut m = node("m");
    let add = MessageRef::GroupChange {
        change_type: harp::GroupChangeType::Add,
        node: rep("d", NodeType::Secondary, 9),
    };
    deliver(&mut m, 10, "a", core(add));
    assert!(m.members().id_of("d").is_some());
    deliver(&mut m, 11, "s", core(add)); // a repeat is harmless
    assert_eq!(m.members().len(), 7);
}

/// A reused name: the history a member without a log hears again (on each connection and
/// every ten heartbeat intervals) adds and removes the old member of that name before it
/// adds the new one. Hearing it again changes nothing: a removal names its member by node
/// id too, so the old member's removal does not remove the new one.
#[test]
fn a_history_heard_again_leaves_a_reused_name_s_new_member_in_place() {
    use harp::GroupChangeType::{Add, Remove};
    let mut m = node("m");
    let history = [
        (Add, NodeType::Arbiter, 9),
        (Remove, NodeType::Arbiter, 9),
        (Add, NodeType::Electable, 20),
    ];
    let hear = |m: &mut TestNode, now: u64| {
        for (change_type, node_type, node_id) in history {
            let node = rep("d", node_type, node_id);
            deliver(m, now, "a", core(MessageRef::GroupChange { change_type, node }));
        }
    };
    hear(&mut m, 10);
    let changed =
        events(&mut m).into_iter().filter(|e| matches!(e, NodeEvent::MembershipChanged { .. }));
    assert_eq!(changed.count(), 3);
    hear(&mut m, 20);
    assert_eq!(events(&mut m), [], "nothing changes, not even for a moment");
    let d = m.members().get(m.members().id_of("d").unwrap()).unwrap();
    assert_eq!((d.node_type, d.node_id), (NodeType::Electable, 20));
}

/// A member without a log that was away while a name was reused, and while the master's
/// log was compacted past the old member's removal, hears only the new member's addition:
/// it replaces the old member (node ids only grow), rather than keep it for good.
#[test]
fn an_addition_under_a_name_whose_removal_was_missed_replaces_the_old_member() {
    use harp::GroupChangeType::Add;
    let mut m = node("m");
    let notice = |node_type, node_id| {
        core(MessageRef::GroupChange { change_type: Add, node: rep("d", node_type, node_id) })
    };
    deliver(&mut m, 10, "a", notice(NodeType::Arbiter, 9));
    deliver(&mut m, 20, "a", notice(NodeType::Electable, 20)); // d (9)'s removal: compacted
    let d = m.members().get(m.members().id_of("d").unwrap()).unwrap();
    assert_eq!((d.node_type, d.node_id), (NodeType::Electable, 20));
    assert_eq!(m.members().len(), 7, "a, b, c, s, m, r and the new d");
    deliver(&mut m, 30, "a", notice(NodeType::Arbiter, 9)); // the history, heard again
    let d = m.members().get(m.members().id_of("d").unwrap()).unwrap();
    assert_eq!((d.node_type, d.node_id), (NodeType::Electable, 20), "the past changes nothing");
}

/// `a` as master whose term start b and c acknowledged, and which heard both lately: it
/// may change the membership.
fn master_a_ready_for_changes() -> TestNode {
    let mut a = master_a(NodeConfig::default());
    for r in ["b", "c"] {
        deliver(&mut a, 1045, r, core(MessageRef::Ack { vlsn: 1 }));
        let beat = MessageRef::HeartbeatResponse { replica_vlsn: 0, timestamp_ms: 1001 };
        deliver(&mut a, 1050, r, core(beat));
    }
    a
}

/// `a` as master whose change adding `d` (Electable) is in its log at the returned VLSN, not
/// yet durable (b and c acknowledged the term start only).
fn master_a_adding_d() -> (TestNode, u64) {
    let mut a = master_a_ready_for_changes();
    let vlsn = a
        .change_membership(1100, harp::GroupChangeType::Add, &rep("d", NodeType::Electable, 9))
        .unwrap();
    sent(&mut a);
    (a, vlsn)
}

#[test]
fn members_without_a_log_are_told_of_a_change_only_once_it_is_durable() {
    let (mut a, vlsn) = master_a_adding_d();
    let notices = |a: &mut TestNode| {
        a.disconnect(id("m"));
        handshake_with_m(a)
    };
    assert_eq!(notices(&mut a), Vec::<String>::new(), "a failover could still undo it");
    for r in ["b", "c"] {
        deliver(&mut a, 1200, r, core(MessageRef::Ack { vlsn }));
    }
    assert_eq!(a.durable_vlsn(), vlsn);
    assert_eq!(
        notices(&mut a),
        [
            r#"m <- GroupChange { change_type: Add, node: RepNodeRef { name: "d", node_type: Electable, host: "h", port: 5001, node_id: 9 } }"#
        ]
    );
}

#[test]
fn a_connected_member_without_a_log_is_told_of_a_change_as_soon_as_it_is_durable() {
    let (mut a, vlsn) = master_a_adding_d();
    a.disconnect(id("m"));
    assert_eq!(handshake_with_m(&mut a), Vec::<String>::new(), "not durable yet");
    for r in ["b", "c"] {
        deliver(&mut a, 1310, r, core(MessageRef::Ack { vlsn }));
    }
    // At once, not at the next periodic announcement: a log compacted meanwhile would no
    // longer hold the change.
    let notices: Vec<String> =
        sent(&mut a).into_iter().filter(|l| l.starts_with("m <- GroupChange")).collect();
    assert_eq!(
        notices,
        [
            r#"m <- GroupChange { change_type: Add, node: RepNodeRef { name: "d", node_type: Electable, host: "h", port: 5001, node_id: 9 } }"#
        ]
    );
}

#[test]
fn a_member_without_a_log_hears_changes_compacted_away_from_the_base() {
    use harp::GroupChangeType::Remove;
    let (mut a, added) = master_a_adding_d();
    let removed = a.change_membership(1150, Remove, &rep("s", NodeType::Secondary, 4));
    assert!(removed.is_err(), "one change at a time");
    for r in ["b", "c"] {
        deliver(&mut a, 1200, r, core(MessageRef::Ack { vlsn: added }));
    }
    let removed = a.change_membership(1210, Remove, &rep("s", NodeType::Secondary, 4)).unwrap();
    sent(&mut a); // streamed
    for r in ["b", "c"] {
        deliver(&mut a, 1220, r, core(MessageRef::Ack { vlsn: removed }));
    }
    a.compact_log(removed + 1).unwrap();
    a.disconnect(id("m")); // down while both changes were compacted away
    let base = |change: &str, name: &str, node_type: &str, host: &str, port: u16, node_id: u32| {
        format!(
            r#"m <- GroupChange {{ change_type: {change}, node: RepNodeRef {{ name: "{name}", node_type: {node_type}, host: "{host}", port: {port}, node_id: {node_id} }} }}"#
        )
    };
    assert_eq!(
        handshake_with_m(&mut a),
        [
            base("Add", "a", "Electable", "", 0, 1),
            base("Add", "b", "Electable", "", 0, 2),
            base("Add", "c", "Electable", "", 0, 3),
            base("Remove", "s", "Secondary", "", 0, 4),
            base("Add", "m", "Monitor", "", 0, 5),
            base("Add", "r", "Arbiter", "", 0, 6),
            base("Add", "d", "Electable", "h", 5001, 9),
        ]
    );
    // Once the log names `s` again (a new machine: a new node id), its change announces
    // it, not the older base.
    let s_again = rep("s", NodeType::Secondary, 40);
    let added = a.change_membership(1300, harp::GroupChangeType::Add, &s_again).unwrap();
    sent(&mut a);
    for r in ["b", "c"] {
        deliver(&mut a, 1310, r, core(MessageRef::Ack { vlsn: added }));
    }
    a.disconnect(id("m"));
    let notices = handshake_with_m(&mut a);
    assert_eq!(notices.len(), 7, "{notices:?}");
    assert!(!notices.contains(&base("Remove", "s", "Secondary", "", 0, 4)), "{notices:?}");
    assert_eq!(notices.last(), Some(&base("Add", "s", "Secondary", "h", 5001, 40)));
}

/// A member its view has removed (by a change a failover may still undo) gets no
/// membership notices when it connects, though the view no longer says it keeps a log: it
/// may be master now, and a master takes a `GroupChange` for a request. (The simulator
/// found a replica restarted with an undurable removal of the master in its log: its
/// notices made the master add a member again whose removal was durable.)
#[test]
fn a_member_removed_in_this_view_gets_no_membership_notices() {
    let (mut a, added) = master_a_adding_d();
    for r in ["b", "c"] {
        deliver(&mut a, 1200, r, core(MessageRef::Ack { vlsn: added }));
    }
    assert_eq!(a.durable_vlsn(), added, "the addition of d is durable: it would be announced");
    a.change_membership(1210, harp::GroupChangeType::Remove, &rep("s", NodeType::Secondary, 4))
        .unwrap();
    assert!(a.members().id_of("s").is_none() && a.members().known(id("s")).is_some());
    sent(&mut a);
    a.disconnect(id("s"));
    a.connect(id("s"));
    events(&mut a);
    let hello =
        MessageRef::Handshake { node_name: "s", group_name: "g", node_type: NodeType::Secondary };
    deliver(&mut a, 1300, "s", core(hello));
    let accepted = MessageRef::HandshakeResponse { accepted: true, reason: None };
    deliver(&mut a, 1300, "s", core(accepted));
    assert_eq!(events(&mut a), [NodeEvent::Connected { member: id("s") }]);
    let to_s: Vec<String> = sent(&mut a).into_iter().filter(|l| l.starts_with("s <-")).collect();
    assert!(!to_s.iter().any(|l| l.contains("GroupChange")), "{to_s:?}");
}

/// `a` and monitor `m` accept each other's handshakes again; what `a` sends `m` after that.
fn handshake_with_m(a: &mut TestNode) -> Vec<String> {
    a.connect(id("m"));
    let hello =
        MessageRef::Handshake { node_name: "m", group_name: "g", node_type: NodeType::Monitor };
    a.handle(1300, id("m"), &core(hello));
    a.handle(1300, id("m"), &core(MessageRef::HandshakeResponse { accepted: true, reason: None }));
    sent(a).into_iter().filter(|l| l.starts_with("m <- GroupChange")).collect()
}

#[test]
fn a_member_without_a_log_keeps_its_view_when_a_new_master_is_elected() {
    let mut m = node("m");
    let add = MessageRef::GroupChange {
        change_type: harp::GroupChangeType::Add,
        node: rep("d", NodeType::Secondary, 9),
    };
    deliver(&mut m, 10, "a", core(add));
    deliver(&mut m, 20, "b", core(MessageRef::ElectionResult { master: "b", term: 2 }));
    assert!(m.members().id_of("d").is_some(), "a durable change is never undone");
}

/// A member without a log has no record of a change but its view: its base membership is
/// that view, and each notice that changes it is an event to persist it on.
#[test]
fn a_member_without_a_log_reports_each_change_its_base_to_persist() {
    let mut m = node("m");
    events(&mut m);
    let add = MessageRef::GroupChange {
        change_type: harp::GroupChangeType::Add,
        node: rep("d", NodeType::Secondary, 9),
    };
    deliver(&mut m, 10, "a", core(add));
    assert_eq!(events(&mut m), [NodeEvent::MembershipChanged { vlsn: 0 }]);
    assert!(m.base_members().id_of("d").is_some(), "the base is the view");
    deliver(&mut m, 11, "a", core(add));
    assert_eq!(events(&mut m), [], "a notice already applied changes nothing");
    let base = m.base_members().clone();
    let (stable, log) = m.into_stores();
    let restarted = Node::new(base, id("m"), NodeConfig::default(), stable, log, 7, 20).unwrap();
    assert!(restarted.members().id_of("d").is_some(), "restarted from its base, it knows d");
}

#[test]
fn a_removed_member_stays_reachable_while_its_removal_can_be_undone() {
    let mut b = replica_b();
    let remove = MessageRef::GroupChange {
        change_type: harp::GroupChangeType::Remove,
        node: rep("c", NodeType::Electable, 3),
    };
    let mut buf = [0u8; 64];
    let n = remove.encode_into(&mut buf).unwrap();
    deliver(&mut b, 20, "a", entry(1, ENTRY_TERM_START, &term_start(1)));
    deliver(&mut b, 21, "a", entry(2, harp::replication::ENTRY_MEMBERSHIP, &buf[..n]));
    assert!(b.members().id_of("c").is_none(), "applied when it reached the log");
    sent(&mut b);
    b.disconnect(id("c"));
    b.connect(id("c"));
    assert_eq!(
        sent(&mut b),
        [r#"c <- Handshake { node_name: "b", group_name: "g", node_type: Electable }"#],
        "c may be the next master if a failover drops the removal"
    );
}

/// `d` (Electable, priority 1, node id 9), started to join `members`.
fn joining_d(members: Membership<7>) -> TestNode {
    let own = Member::new("d", NodeType::Electable, 1, 9).unwrap();
    let at = (0, 0); // tests of the stream: the Add's position matters only to votes
    Node::new_joining(members, own, at, NodeConfig::default(), RamStore::new(), Log::new(), 1, 0)
        .unwrap()
}

/// What master `a` of `term` sends a joining node first: a greeting, the election's
/// result, a sync point at the start and its term start at VLSN 1.
fn greeted_and_streamed_by_a(d: &mut TestNode, term: u64) {
    let hello =
        MessageRef::Handshake { node_name: "a", group_name: "g", node_type: NodeType::Electable };
    d.handle(0, id("a"), &core(hello));
    d.handle(0, id("a"), &core(MessageRef::HandshakeResponse { accepted: true, reason: None }));
    d.handle(10, id("a"), &core(MessageRef::ElectionResult { master: "a", term }));
    d.handle(11, id("a"), &Message::Ext(Extension::SyncPoint { vlsn: 0, log_term: 0 }));
    d.handle(12, id("a"), &entry(1, ENTRY_TERM_START, &term_start(term)));
}

/// What a master sends a joining `d`: a greeting, the result of term 5, its stream from the
/// start, and the Add that makes `d` a member.
fn join_through_the_log(d: &mut TestNode) {
    greeted_and_streamed_by_a(d, 5);
    let mut buf = [0u8; 128];
    let add = MessageRef::GroupChange {
        change_type: harp::GroupChangeType::Add,
        node: rep("d", NodeType::Electable, 9),
    };
    let n = add.encode_into(&mut buf).unwrap();
    d.handle(13, id("a"), &entry(2, harp::replication::ENTRY_MEMBERSHIP, &buf[..n]));
}

/// A node joins in at least the term of its Add: a master of an earlier term lacks the Add
/// and, under a reused name, gives the name to the removed member, so it would count the
/// joiner's acknowledgements as that member's and call entries durable that the group
/// never had. The joiner refuses that master's result (its refusal carries its term, so
/// the stale master learns of it) and follows the master of the Add's term.
#[test]
fn a_joiner_never_follows_a_master_of_a_term_before_its_add() {
    let own = Member::new("d", NodeType::Electable, 1, 9).unwrap();
    let config = NodeConfig::default();
    let mut d = Node::new_joining(group(), own, (5, 30), config, RamStore::new(), Log::new(), 1, 0)
        .unwrap();
    assert_eq!(d.election().term(), 5, "the Add's term");
    assert_eq!(d.election().vote(), None);
    let hello =
        MessageRef::Handshake { node_name: "a", group_name: "g", node_type: NodeType::Electable };
    d.handle(0, id("a"), &core(hello));
    d.handle(0, id("a"), &core(MessageRef::HandshakeResponse { accepted: true, reason: None }));
    sent(&mut d);
    d.handle(10, id("a"), &core(MessageRef::ElectionResult { master: "a", term: 3 }));
    assert_eq!(sent(&mut d), [r#"a <- ElectionVote { voter: "d", granted: false, term: 5 }"#]);
    assert_eq!(d.role(), Role::Unknown);
    d.handle(20, id("a"), &core(MessageRef::ElectionResult { master: "a", term: 5 }));
    assert_eq!(d.role(), Role::Replica { master: id("a") });
}

#[test]
fn a_joining_node_becomes_a_member_through_the_log() {
    let mut d = joining_d(group());
    assert!(d.members().id_of("d").is_none(), "not a member yet");
    // It answers the master's greeting as "d", follows its stream and acks the Add.
    join_through_the_log(&mut d);
    let out = sent(&mut d);
    assert!(out.iter().any(|l| l.contains(r#"Handshake { node_name: "d""#)), "{out:?}");
    assert!(d.members().id_of("d").is_some(), "a member once the Add is in its log");
    assert!(d.election().votes_now());
    assert_eq!(out.last().map(String::as_str), Some("a <- Ack { vlsn: 2 }"));
}

/// A joining node sits in the group's free slot until its Add applies; an Add of another
/// node that takes that slot first leaves it in none (the group is full), never in the
/// other node's slot, and its own Add, after a removal, places it.
#[test]
fn a_joining_node_never_sits_in_another_member_s_slot() {
    let mut d = joining_d(group());
    assert_eq!(d.election().me(), MemberId::new(6), "the free slot");
    greeted_and_streamed_by_a(&mut d, 1);
    let change = |change_type, name, node_type, node_id| {
        let mut buf = [0u8; 128];
        let node = rep(name, node_type, node_id);
        let n = MessageRef::GroupChange { change_type, node }.encode_into(&mut buf).unwrap();
        buf[..n].to_vec()
    };
    let add_e = change(harp::GroupChangeType::Add, "e", NodeType::Electable, 8);
    d.handle(13, id("a"), &entry(2, harp::replication::ENTRY_MEMBERSHIP, &add_e));
    assert_eq!(d.members().id_of("e"), Some(MemberId::new(6)));
    assert_eq!(d.election().me(), MemberId::UNPLACED, "the group is full");
    let remove_m = change(harp::GroupChangeType::Remove, "m", NodeType::Monitor, 5);
    d.handle(14, id("a"), &entry(3, harp::replication::ENTRY_MEMBERSHIP, &remove_m));
    let add_d = change(harp::GroupChangeType::Add, "d", NodeType::Electable, 9);
    d.handle(15, id("a"), &entry(4, harp::replication::ENTRY_MEMBERSHIP, &add_d));
    assert_eq!(d.members().id_of("d"), Some(id("m")), "its Add placed it in m's old slot");
    assert_eq!(d.election().me(), id("m"));
}

/// A new Electable machine (node id 20) joining under the name of `m`, the monitor (node id
/// 5) the group removed, from a view that still knows the removed `m`.
fn joining_under_m_s_name() -> TestNode {
    let mut members = group();
    members.remove(id("m")).unwrap();
    let own = Member::new("m", NodeType::Electable, 1, 20).unwrap();
    let config = NodeConfig::default();
    Node::new_joining(members, own, (0, 0), config, RamStore::new(), Log::new(), 1, 0).unwrap()
}

/// A name the group gave a monitor before (`m`, node id 5) is reused for a new Electable
/// machine (node id 20). Streamed from the start, its log adds the old `m` back before it
/// removes it: the new node must not take that member for itself (it would stop keeping
/// the log, and take the removal for its own), only the member with its node id.
#[test]
fn a_node_joining_under_a_reused_name_is_not_the_member_that_had_it() {
    let mut n = joining_under_m_s_name();
    greeted_and_streamed_by_a(&mut n, 1);
    let change = |change_type, node_type, node_id| {
        let mut buf = [0u8; 128];
        let node = rep("m", node_type, node_id);
        let n = MessageRef::GroupChange { change_type, node }.encode_into(&mut buf).unwrap();
        buf[..n].to_vec()
    };
    let changes = [
        change(harp::GroupChangeType::Add, NodeType::Monitor, 5), // the old m, back
        change(harp::GroupChangeType::Remove, NodeType::Monitor, 5),
        change(harp::GroupChangeType::Add, NodeType::Electable, 20), // the new one
    ];
    for (vlsn, data) in (2..).zip(&changes) {
        n.handle(10 + vlsn, id("a"), &entry(vlsn, harp::replication::ENTRY_MEMBERSHIP, data));
        let out = sent(&mut n);
        assert!(out.contains(&format!("a <- Ack {{ vlsn: {vlsn} }}")), "{vlsn}: {out:?}");
        assert!(!events(&mut n).contains(&NodeEvent::Removed), "{vlsn}: the old m's removal");
    }
    let me = n.members().get(n.election().me()).unwrap();
    assert_eq!((me.name.as_str(), me.node_id), ("m", 20));
    assert!(n.election().votes_now());
}

/// A node joining under the name of `m`, a removed monitor its view still holds, refuses a
/// greeting under that name: it is its own (a transport that dials the old member's address,
/// now the new machine's, reaches itself), or the old machine's, which has left. Accepted,
/// it linked to itself and answered its own proposals as the old member (fuzz input
/// `grant_under_a_reused_name`).
#[test]
fn a_joiner_refuses_a_greeting_under_its_own_name_from_the_old_member_of_it() {
    let mut n = joining_under_m_s_name();
    n.connect(id("m"));
    let hello =
        MessageRef::Handshake { node_name: "m", group_name: "g", node_type: NodeType::Monitor };
    n.handle(0, id("m"), &core(hello));
    let refused = r#"m <- HandshakeResponse { accepted: false, reason: Some("a node cannot connect to itself") }"#;
    assert!(sent(&mut n).contains(&refused.to_string()));
    assert!(!n.is_connected(id("m")));
}

/// A joiner restored from a membership in which `m` is a removed member, while the group's
/// log (which it has not received yet) gave m's slot to a member again: that member's
/// greeting is not taken for the joiner's own (it waits in a slot no member has had), so
/// it can connect to it, which may be its master (seed 400,139,641 with membership changes).
#[test]
fn a_joiner_is_greeted_by_the_member_a_removed_member_s_slot_went_to() {
    let mut members = group();
    members.remove(id("m")).unwrap();
    let mut d = joining_d(members);
    assert_eq!(d.election().me(), MemberId::new(6));
    d.connect(id("m"));
    let hello =
        MessageRef::Handshake { node_name: "m", group_name: "g", node_type: NodeType::Monitor };
    d.handle(0, id("m"), &core(hello));
    let out = sent(&mut d);
    assert!(
        out.contains(&"m <- HandshakeResponse { accepted: true, reason: None }".to_string()),
        "{out:?}"
    );
}

/// A group that removed `m` (the monitor) keeps its slot as a removed member's; a node
/// joining then sits in that free slot until its Add applies, and must still introduce
/// itself as itself, not as the member the slot last held.
#[test]
fn a_node_joining_into_a_removed_member_s_slot_introduces_itself() {
    let mut members = group();
    members.remove(id("m")).unwrap();
    let mut d = joining_d(members);
    d.connect(id("a"));
    let hello: Vec<String> =
        sent(&mut d).into_iter().filter(|l| l.starts_with("a <- Handshake")).collect();
    assert_eq!(
        hello,
        [r#"a <- Handshake { node_name: "d", group_name: "g", node_type: Electable }"#]
    );
}

// ----- bounded queues -----

#[test]
fn a_repeated_handshake_is_answered_once() {
    let mut b = fresh("b");
    let hello =
        MessageRef::Handshake { node_name: "a", group_name: "g", node_type: NodeType::Electable };
    deliver(&mut b, 1, "a", core(hello));
    deliver(&mut b, 2, "a", core(hello));
    assert_eq!(
        sent(&mut b),
        [
            r#"a <- Handshake { node_name: "b", group_name: "g", node_type: Electable }"#,
            "a <- HandshakeResponse { accepted: true, reason: None }",
        ]
    );
}

/// A RamLog whose syncs fail while `failing` is set.
struct FlakyLog {
    inner: Log,
    failing: bool,
}

impl LogStore for FlakyLog {
    type Error = &'static str;

    fn first_vlsn(&self) -> u64 {
        self.inner.first_vlsn()
    }

    fn last_vlsn(&self) -> u64 {
        self.inner.last_vlsn()
    }

    fn entry(&self, vlsn: u64) -> Option<harp::replication::Entry<'_>> {
        self.inner.entry(vlsn)
    }

    fn append(
        &mut self,
        vlsn: u64,
        meta: EntryMeta,
        t: u8,
        data: &[u8],
    ) -> Result<(), &'static str> {
        self.inner.append(vlsn, meta, t, data).map_err(|_| "append")
    }

    fn truncate(&mut self, vlsn: u64) -> Result<(), &'static str> {
        self.inner.truncate(vlsn).map_err(|_| "truncate")
    }

    fn sync(&mut self) -> Result<(), &'static str> {
        if self.failing {
            Err("the disk is gone")
        } else {
            Ok(())
        }
    }

    fn compacted_meta(&self) -> EntryMeta {
        self.inner.compacted_meta()
    }

    fn compact(&mut self, vlsn: u64) -> Result<(), &'static str> {
        if self.failing {
            return Err("the disk is gone");
        }
        self.inner.compact(vlsn);
        Ok(())
    }
}

/// A one-member group's master over a log whose syncs can be made to fail, events drained.
fn solo_master_on_flaky_log() -> Node<RamStore, FlakyLog, 7> {
    let mut group = Membership::<7>::named("g").unwrap();
    let me = group.add(Member::new("solo", NodeType::Electable, 1, 1).unwrap()).unwrap();
    let log = FlakyLog { inner: Log::new(), failing: false };
    let mut solo = Node::new(group, me, NodeConfig::default(), RamStore::new(), log, 1, 0).unwrap();
    let deadline = solo.poll_timeout().unwrap();
    solo.handle_timeout(deadline);
    assert_eq!(solo.role(), Role::Master);
    while solo.poll_event().is_some() {}
    solo
}

#[test]
fn a_failing_store_is_reported_once_until_the_events_are_drained() {
    let mut solo = solo_master_on_flaky_log();
    solo.log_mut().failing = true;
    for data in [&b"x"[..], b"y", b"z"] {
        assert_eq!(solo.append(1, data), Err(AppendError::Storage));
    }
    let events: Vec<NodeEvent> = std::iter::from_fn(|| solo.poll_event()).collect();
    assert_eq!(events, [NodeEvent::StorageFailed]);
    assert_eq!(solo.stats().storage_failures, 3, "every failure is counted");
    assert_eq!(solo.append(1, b"w"), Err(AppendError::Storage));
    assert_eq!(solo.poll_event(), Some(NodeEvent::StorageFailed), "reported again once drained");
}

#[test]
fn a_storage_failure_lost_to_a_full_event_queue_is_reported_at_the_next_failure() {
    let mut solo = solo_master_on_flaky_log();
    // Every append of a solo master is durable at once: its events fill the queue.
    while solo.stats().event_overflows == 0 {
        solo.append(1, b"e").unwrap();
    }
    solo.log_mut().failing = true;
    assert_eq!(solo.append(1, b"x"), Err(AppendError::Storage));
    let events: Vec<NodeEvent> = std::iter::from_fn(|| solo.poll_event()).collect();
    assert!(!events.contains(&NodeEvent::StorageFailed), "the queue was full: {events:?}");
    assert_eq!(solo.append(1, b"y"), Err(AppendError::Storage));
    assert_eq!(solo.poll_event(), Some(NodeEvent::StorageFailed));
    assert_eq!(solo.stats().storage_failures, 2);
}

/// Term 4, a vote for b (node id 2).
fn store_in_term_4_voting_b() -> RamStore {
    store_with(4, Some(2))
}

#[test]
fn restore_then_start_is_new_in_two_steps() {
    let mut log = Log::new();
    for v in 1..=3 {
        log.append(v, EntryMeta { term: 3, dtvlsn: v - 1 }, 0, b"x").unwrap();
    }
    let config = NodeConfig::default();
    let mut new =
        Node::new(group(), id("b"), config, store_in_term_4_voting_b(), log.clone(), 9, 100)
            .unwrap();
    let mut store = store_in_term_4_voting_b();
    let restored = TestNode::restore(&group(), id("b"), &config, &mut store).unwrap();
    let mut started = Node::start(restored, group(), config, store.clone(), log.clone(), 9, 100);
    let mut slot = std::mem::MaybeUninit::uninit();
    let in_place = Node::start_in(&mut slot, restored, group(), config, store, log, 9, 100);

    // The same node three ways: the same state, and the same outputs for the same inputs.
    handshake_with_everyone(&mut new);
    let deadline = new.poll_timeout().unwrap();
    new.handle_timeout(deadline);
    let expected = (sent(&mut new), events(&mut new), new.role(), new.durable_vlsn());
    assert!(!expected.0.is_empty(), "the timeout sends something to compare");
    for node in [&mut started, in_place] {
        assert_eq!(node.election().term(), 4);
        assert_eq!(node.election().vote(), Some(id("b")));
        handshake_with_everyone(node);
        assert_eq!(node.poll_timeout(), Some(deadline));
        node.handle_timeout(deadline);
        assert_eq!((sent(node), events(node), node.role(), node.durable_vlsn()), expected);
    }
}

#[test]
fn restore_refuses_what_new_refuses() {
    use harp::election::{Config, StartError};
    use harp::storage::RecordError;
    let config = NodeConfig::default();
    let outsider = MemberId::new(6); // the seventh slot is empty
    let refused = TestNode::restore(&group(), outsider, &config, &mut RamStore::new());
    assert_eq!(refused, Err(StartError::NotAMember));

    let timings = Config { lease_ms: 900, election_timeout_ms: 500, ..Config::default() };
    let inconsistent = NodeConfig { election: timings, ..config };
    let refused = TestNode::restore(&group(), id("a"), &inconsistent, &mut RamStore::new());
    assert!(matches!(refused, Err(StartError::Config(_))), "{refused:?}");

    let mut corrupt = store_in_term_4_voting_b();
    corrupt.bytes_mut()[0] ^= 0x01;
    let refused = TestNode::restore(&group(), id("a"), &config, &mut corrupt);
    assert!(
        matches!(refused, Err(StartError::Record(RecordError::Checksum { .. }))),
        "{refused:?}"
    );
}

#[test]
fn restore_joining_then_start_joining_is_new_joining_in_two_steps() {
    let own = Member::new("d", NodeType::Electable, 1, 9).unwrap();
    let config = NodeConfig::default();
    // A joiner that restarts before its Add arrives: its record holds term 4, no vote.
    let mut new = Node::new_joining(
        group(),
        own.clone(),
        (0, 0),
        config,
        store_with(4, None),
        Log::new(),
        9,
        0,
    )
    .unwrap();
    let mut store = store_with(4, None);
    let joining = TestNode::restore_joining(&group(), own, (0, 0), &config, &mut store).unwrap();
    let mut started =
        Node::start_joining(joining.clone(), group(), config, store.clone(), Log::new(), 9, 0);
    let mut slot = std::mem::MaybeUninit::uninit();
    let in_place =
        Node::start_joining_in(&mut slot, joining, group(), config, store, Log::new(), 9, 0);

    // The same node three ways: the same state, and the same outputs for the same inputs.
    join_through_the_log(&mut new);
    let expected = (sent(&mut new), events(&mut new), new.durable_vlsn(), new.poll_timeout());
    assert!(expected.0.iter().any(|l| l.contains(r#"Handshake { node_name: "d""#)), "{expected:?}");
    assert_eq!(new.members().id_of("d"), Some(MemberId::new(6)), "the free slot, by the log");
    for node in [&mut started, in_place] {
        assert_eq!(node.election().term(), 4, "the restored term");
        assert!(node.members().id_of("d").is_none(), "a learner until its Add");
        join_through_the_log(node);
        assert_eq!(node.election().term(), 5);
        assert_eq!(node.members().id_of("d"), Some(MemberId::new(6)));
        let outputs = (sent(node), events(node), node.durable_vlsn(), node.poll_timeout());
        assert_eq!(outputs, expected);
    }
}

#[test]
fn restore_joining_refuses_what_new_joining_refuses() {
    use harp::election::{Config, StartError};
    use harp::storage::RecordError;
    let own = || Member::new("d", NodeType::Electable, 1, 9).unwrap();
    let timings = Config { lease_ms: 900, election_timeout_ms: 500, ..Config::default() };
    let inconsistent = NodeConfig { election: timings, ..NodeConfig::default() };
    let refused =
        TestNode::restore_joining(&group(), own(), (0, 0), &inconsistent, &mut RamStore::new());
    assert!(matches!(refused, Err(StartError::Config(_))), "{refused:?}");
    let by_new =
        Node::new_joining(group(), own(), (0, 0), inconsistent, RamStore::new(), Log::new(), 1, 0);
    assert!(matches!(by_new, Err(StartError::Config(_))));

    let mut corrupt = store_with(4, None);
    corrupt.bytes_mut()[0] ^= 0x01;
    let config = NodeConfig::default();
    let refused = TestNode::restore_joining(&group(), own(), (0, 0), &config, &mut corrupt.clone());
    assert!(
        matches!(refused, Err(StartError::Record(RecordError::Checksum { .. }))),
        "{refused:?}"
    );
    let by_new = Node::new_joining(group(), own(), (0, 0), config, corrupt, Log::new(), 1, 0);
    assert!(matches!(by_new, Err(StartError::Record(RecordError::Checksum { .. }))));
}
