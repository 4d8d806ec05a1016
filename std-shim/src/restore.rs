//! `harp restore`: bringing back a replica that fell behind the group's retained logs.
//!
//! A node with log retention ([`HostConfig::retain_entries`](crate::config::HostConfig))
//! compacts entries once they are durable. A replica that was away longer than the
//! retention lacks entries no member holds any more: the master reports
//! `NodeEvent::NeedsRestore` ("replica needs a restore" in its log) and cannot stream to it.
//!
//! Every compacted entry is durable, so it is in the group's history for good; what the
//! replica needs is not those entries but a log that *starts* where a member's log starts.
//! [`restore`] replaces the stopped replica's log with an empty one compacted through a
//! member's [`RestorePoint`] (its first entry's predecessor: VLSN, term, DTVLSN), and the
//! master streams it everything after. The replica keeps its election record (its term and
//! vote are its own).
//!
//! It never discards an entry the group may need ([`check_restore`]): it refuses a log that
//! already agrees with the point (same term at its VLSN: the replica needs no restore) or
//! starts after it, and otherwise the replica holds nothing durable past the point (a
//! durable entry there would imply the same entry at the point, by the log's matching
//! property). The simulator restores replicas by the same rule and checks that no durable
//! entry is lost. The new log is built beside the old one and swapped in by renames; a
//! restore cut short by a crash is finished, or undone, by the next restore or start
//! ([`finish_interrupted`]).

use std::fs;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use harp::replication::{check_restore, EntryMeta, LogStore, RestoreRefusal};
use serde::{Deserialize, Serialize};

use crate::members::BaseMembers;
use crate::store::{sync_dir, DirLock, Durability, FileLog};

/// The log's directory in a node's data directory.
pub(crate) const LOG_DIR: &str = "log";
/// A restored log being built.
const STAGED_DIR: &str = "log.restore";
/// The log a restore replaced, until it is deleted.
const OLD_DIR: &str = "log.old";

/// Where a log starts: the last entry compacted (VLSN 0 if none) and its metadata. A log
/// compacted through it holds nothing the group needs; a replica restored to it is streamed
/// everything after it. A running node gives its own on the admin address
/// ([`Request::RestorePoint`](crate::host::Request::RestorePoint)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestorePoint {
    /// The entry's VLSN.
    pub vlsn: u64,
    /// The term of the master that wrote it.
    pub term: u64,
    /// The DTVLSN the log had recorded through it.
    pub dtvlsn: u64,
}

impl RestorePoint {
    /// The point a log starts from.
    pub fn of(log: &impl LogStore) -> RestorePoint {
        let meta = log.compacted_meta();
        RestorePoint {
            vlsn: log.first_vlsn().saturating_sub(1),
            term: meta.term,
            dtvlsn: meta.dtvlsn,
        }
    }
}

/// What [`restore`] replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Restored {
    /// The old log's first and last VLSN (its entries were discarded).
    pub old: (u64, u64),
}

/// Replaces the log in `data_dir` (a stopped node's) with an empty one compacted through
/// `point` (see the [module docs](self)), starting from `base`, the membership the member
/// that gave the point has there. Fails, changing nothing, if a node runs on `data_dir`,
/// its log cannot be read, or it needs no restore from this point.
pub fn restore(
    data_dir: &Path,
    point: RestorePoint,
    base: &BaseMembers,
    durability: Durability,
) -> Result<Restored> {
    if !data_dir.join(LOG_DIR).is_dir() && !data_dir.join(OLD_DIR).is_dir() {
        bail!("{} holds no log: not a node's data directory", data_dir.display());
    }
    let _lock = DirLock::acquire(data_dir)?;
    finish_interrupted(data_dir)?;
    let (log, _) = FileLog::open(&data_dir.join(LOG_DIR), durability, u64::MAX)
        .map_err(|e| anyhow!("opening the log: {e}"))?;
    check(&log, point)?;
    let old = (log.first_vlsn(), log.last_vlsn());
    drop(log);
    // A node that joined after `base` keeps its own record until a compaction carries it in.
    let joining = BaseMembers::load(&data_dir.join(LOG_DIR))?.and_then(|kept| kept.joining);
    let staged = stage_log(data_dir, point, &base.clone().joined_by(joining))?;
    fs::rename(data_dir.join(LOG_DIR), data_dir.join(OLD_DIR))?;
    fs::rename(&staged, data_dir.join(LOG_DIR))?;
    sync_dir(data_dir)?;
    fs::remove_dir_all(data_dir.join(OLD_DIR))?;
    Ok(Restored { old })
}

/// Builds, in `data_dir`'s staging directory, an empty log that starts right after `point`
/// and from `base` (what a restore and a join put in place); returns the directory, for
/// the caller to rename into place. A restore or join cut short leaves only this
/// directory, which [`finish_interrupted`] deletes.
pub(crate) fn stage_log(
    data_dir: &Path,
    point: RestorePoint,
    base: &BaseMembers,
) -> Result<std::path::PathBuf> {
    let staged = data_dir.join(STAGED_DIR);
    if staged.exists() {
        fs::remove_dir_all(&staged).with_context(|| format!("removing {}", staged.display()))?;
    }
    let meta = EntryMeta { term: point.term, dtvlsn: point.dtvlsn };
    FileLog::create_after(&staged, point.vlsn, meta)
        .map_err(|e| anyhow!("creating the log: {e}"))?;
    base.save(&staged, Durability::Fsync)?;
    Ok(staged)
}

/// Refuses a restore that is not needed or would discard what the group may need
/// ([`check_restore`]).
fn check(log: &FileLog, point: RestorePoint) -> Result<()> {
    check_restore(log, point.vlsn, point.term).map_err(|refusal| match refusal {
        RestoreRefusal::StartsAfter { first } => anyhow!(
            "this log starts at VLSN {first}, after the restore point {}: it needs no restore \
             from it",
            point.vlsn
        ),
        RestoreRefusal::Agrees => anyhow!(
            "this log already agrees with the restore point (VLSN {}, term {}): it needs no \
             restore; start the node and it catches up",
            point.vlsn,
            point.term
        ),
    })
}

/// Completes or undoes a restore a crash cut short: once the old log was moved aside the
/// new one is complete, so it is swapped in; before that, the half-built one is deleted
/// (the node keeps its old log, and the restore can run again). [`Host::start`] and
/// [`restore`] call it.
///
/// [`Host::start`]: crate::host::Host::start
pub fn finish_interrupted(data_dir: &Path) -> Result<()> {
    let (log, staged, old) =
        (data_dir.join(LOG_DIR), data_dir.join(STAGED_DIR), data_dir.join(OLD_DIR));
    if old.exists() {
        if !log.exists() {
            let next = if staged.exists() { &staged } else { &old };
            fs::rename(next, &log).context("finishing an interrupted restore")?;
            sync_dir(data_dir)?;
        }
        if old.exists() {
            fs::remove_dir_all(&old).context("removing the log a restore replaced")?;
        }
    } else if staged.exists() {
        fs::remove_dir_all(&staged).context("removing an unfinished restore")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const META: EntryMeta = EntryMeta { term: 2, dtvlsn: 0 };

    /// A data directory whose log holds VLSNs 1..=last in `term`.
    fn data_dir(last: u64, term: u64) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = FileLog::open(&dir.path().join(LOG_DIR), Durability::Os, 4096).unwrap();
        for vlsn in 1..=last {
            log.append(vlsn, EntryMeta { term, dtvlsn: vlsn - 1 }, 1, b"entry").unwrap();
        }
        log.sync().unwrap();
        dir
    }

    /// The membership a member's log starts from, as its restore point gives it.
    fn base() -> BaseMembers {
        let mut config = crate::config::HostConfig::new(
            "n1",
            "g",
            "127.0.0.1:7001".parse().unwrap(),
            "unused".into(),
        );
        config.peers.push(crate::config::PeerConfig {
            name: "n2".into(),
            address: "127.0.0.1:7002".parse().unwrap(),
            node_type: harp::NodeType::Electable,
            priority: 1,
        });
        BaseMembers::from_config(&config)
    }

    /// The point most tests restore to.
    const POINT: RestorePoint = RestorePoint { vlsn: 40, term: 2, dtvlsn: 39 };

    fn restore_at(dir: &Path, point: RestorePoint) -> Result<Restored> {
        restore(dir, point, &base(), Durability::Os)
    }

    fn open(dir: &Path) -> FileLog {
        FileLog::open(&dir.join(LOG_DIR), Durability::Os, 4096).unwrap().0
    }

    #[test]
    fn a_replica_behind_the_point_gets_an_empty_log_that_starts_after_it() {
        let dir = data_dir(5, 1);
        let point = RestorePoint { vlsn: 40, term: 2, dtvlsn: 39 };
        let restored = restore_at(dir.path(), point).unwrap();
        assert_eq!(restored, Restored { old: (1, 5) });
        let log = open(dir.path());
        assert_eq!((log.first_vlsn(), log.last_vlsn()), (41, 40));
        assert_eq!(log.meta(40), Some(EntryMeta { term: 2, dtvlsn: 39 }));
        assert_eq!(RestorePoint::of(&log), point);
        assert!(!dir.path().join(STAGED_DIR).exists() && !dir.path().join(OLD_DIR).exists());
        let kept = BaseMembers::load(&dir.path().join(LOG_DIR)).unwrap();
        assert_eq!(kept, Some(base()), "the log starts from the member's membership");
    }

    #[test]
    fn a_joined_node_keeps_its_own_record_until_the_base_holds_it() {
        let dir = data_dir(5, 1);
        let own = crate::members::MemberRecord {
            name: "n3".into(),
            node_type: harp::NodeType::Electable,
            priority: 1,
            node_id: 3,
            address: "127.0.0.1:7003".parse().unwrap(),
        };
        let own = crate::members::Joiner { member: own, added_at: (2, 33) };
        let joined = BaseMembers { joining: Some(own.clone()), ..base() };
        joined.save(&dir.path().join(LOG_DIR), Durability::Os).unwrap();
        let point = RestorePoint { vlsn: 40, term: 2, dtvlsn: 39 };
        restore_at(dir.path(), point).unwrap();
        let kept = BaseMembers::load(&dir.path().join(LOG_DIR)).unwrap().unwrap();
        assert_eq!(kept.joining, Some(own.clone()));

        let dir = data_dir(5, 1);
        joined.save(&dir.path().join(LOG_DIR), Durability::Os).unwrap();
        let mut holds_it = base();
        holds_it.members.push(own.member);
        restore(dir.path(), point, &holds_it, Durability::Os).unwrap();
        let kept = BaseMembers::load(&dir.path().join(LOG_DIR)).unwrap().unwrap();
        assert_eq!(kept, holds_it, "its addition is in the base now");
    }

    #[test]
    fn a_log_that_diverges_at_the_point_is_replaced() {
        let dir = data_dir(50, 1); // term 1 at VLSN 40; the group's is term 2
        restore_at(dir.path(), POINT).unwrap();
        assert_eq!(open(dir.path()).first_vlsn(), 41);
    }

    #[test]
    fn a_log_that_agrees_with_the_point_is_refused_and_kept() {
        let dir = data_dir(50, 2);
        let err = restore_at(dir.path(), POINT).unwrap_err();
        assert!(err.to_string().contains("already agrees"), "{err}");
        assert_eq!(open(dir.path()).last_vlsn(), 50);
        let err = restore_at(dir.path(), RestorePoint { vlsn: 0, term: 0, dtvlsn: 0 }).unwrap_err();
        assert!(err.to_string().contains("already agrees"), "{err}");
    }

    #[test]
    fn a_log_compacted_past_the_point_is_refused() {
        let dir = data_dir(50, 2);
        open(dir.path()).compact(45).unwrap();
        let err = restore_at(dir.path(), POINT).unwrap_err();
        assert!(err.to_string().contains("starts at VLSN 45"), "{err}");
    }

    #[test]
    fn an_impossible_point_is_refused_and_the_log_kept() {
        // Before, it was written and the node then refused to open its new log.
        let dir = data_dir(5, 1);
        for point in [
            RestorePoint { vlsn: 40, term: 2, dtvlsn: 41 },
            RestorePoint { vlsn: u64::MAX, term: 2, dtvlsn: 0 },
        ] {
            let err = restore_at(dir.path(), point).unwrap_err();
            assert!(err.to_string().contains("no log starts after VLSN"), "{err}");
            assert_eq!(open(dir.path()).last_vlsn(), 5);
        }
        restore_at(dir.path(), POINT).unwrap();
        assert_eq!(open(dir.path()).first_vlsn(), 41);
    }

    #[test]
    fn a_directory_without_a_log_is_refused_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let typo = dir.path().join("n3-typo");
        let err = restore_at(&typo, POINT).unwrap_err();
        assert!(err.to_string().contains("not a node's data directory"), "{err}");
        assert!(!typo.exists(), "nothing created");
    }

    #[test]
    fn a_running_node_s_directory_is_refused() {
        let dir = data_dir(5, 1);
        let _running = DirLock::acquire(dir.path()).unwrap();
        let err = restore_at(dir.path(), POINT).unwrap_err();
        assert!(err.to_string().contains("in use by another harp process"), "{err}");
        assert_eq!(open(dir.path()).last_vlsn(), 5);
    }

    #[test]
    fn a_restore_cut_after_the_old_log_moved_aside_is_finished() {
        let dir = data_dir(5, 1);
        FileLog::create_after(&dir.path().join(STAGED_DIR), 40, META).unwrap();
        fs::rename(dir.path().join(LOG_DIR), dir.path().join(OLD_DIR)).unwrap();
        finish_interrupted(dir.path()).unwrap();
        assert_eq!(open(dir.path()).first_vlsn(), 41);
        assert!(!dir.path().join(OLD_DIR).exists() && !dir.path().join(STAGED_DIR).exists());
    }

    #[test]
    fn a_restore_cut_after_the_swap_only_leaves_the_old_log_to_delete() {
        let dir = data_dir(5, 1);
        fs::rename(dir.path().join(LOG_DIR), dir.path().join(OLD_DIR)).unwrap();
        FileLog::create_after(&dir.path().join(LOG_DIR), 40, META).unwrap();
        finish_interrupted(dir.path()).unwrap();
        assert_eq!(open(dir.path()).first_vlsn(), 41);
        assert!(!dir.path().join(OLD_DIR).exists());
    }

    #[test]
    fn a_restore_cut_while_building_is_undone() {
        let dir = data_dir(5, 1);
        fs::create_dir_all(dir.path().join(STAGED_DIR)).unwrap(); // no compaction point yet
        finish_interrupted(dir.path()).unwrap();
        assert_eq!(open(dir.path()).last_vlsn(), 5);
        assert!(!dir.path().join(STAGED_DIR).exists());
    }
}
