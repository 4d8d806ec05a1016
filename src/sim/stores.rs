//! Stores that survive simulated crashes and tell the checker what was written.

use crate::replication::{Entry, EntryMeta, LogStore};
use crate::storage::{ElectionRecord, StableStore, MAX_RECORD};
use alloc::vec::Vec;

/// A stable store that survives crashes and reports every record written.
#[derive(Debug, Default)]
pub struct SimStore {
    record: Option<Vec<u8>>,
    pub(super) written: Vec<ElectionRecord>,
    pub(super) fail_writes: bool,
}

impl SimStore {
    /// A store that already holds `record` (a group that existed before the run).
    pub fn with(record: ElectionRecord) -> Self {
        let mut buf = [0u8; MAX_RECORD];
        let record = record.encode(&mut buf).ok().and_then(|n| buf.get(..n)).map(<[u8]>::to_vec);
        SimStore { record, ..SimStore::default() }
    }

    /// The record as it is on "disk" now.
    pub fn persisted(&self) -> Option<ElectionRecord> {
        self.record.as_deref().and_then(|bytes| ElectionRecord::decode(bytes).ok())
    }
}

impl StableStore for SimStore {
    type Error = &'static str;

    fn read(&mut self, buf: &mut [u8; MAX_RECORD]) -> Result<Option<usize>, &'static str> {
        let Some(record) = &self.record else { return Ok(None) };
        let dst = buf.get_mut(..record.len()).ok_or("record too large")?;
        dst.copy_from_slice(record);
        Ok(Some(record.len()))
    }

    fn write(&mut self, record: &[u8]) -> Result<(), &'static str> {
        if self.fail_writes {
            return Err("injected write failure");
        }
        let decoded = ElectionRecord::decode(record).map_err(|_| "unreadable record")?;
        self.record = Some(record.to_vec());
        self.written.push(decoded);
        Ok(())
    }
}

/// One stored entry, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimEntry {
    /// Term and recorded DTVLSN.
    pub meta: EntryMeta,
    /// The entry type.
    pub entry_type: u8,
    /// The payload.
    pub data: Vec<u8>,
}

/// What happened to a log, for the checker.
#[derive(Debug, Clone)]
pub enum LogOp {
    /// An entry was appended at `vlsn`.
    Append {
        /// Where.
        vlsn: u64,
        /// What.
        entry: SimEntry,
        /// The term of the entry before it (0 for the first).
        term_before: u64,
    },
    /// Entries from `from` on were removed; `first` is the entry that was at `from`.
    Truncate {
        /// The first VLSN removed.
        from: u64,
        /// The entry removed at `from`.
        first: Option<SimEntry>,
    },
    /// An append not at the end (the store refuses it).
    Gap {
        /// The VLSN given.
        vlsn: u64,
    },
}

/// A log in memory whose unsynced suffix is lost in a crash.
#[derive(Debug, Default)]
pub struct SimLog {
    /// Every entry, also the compacted ones (the checker reads the whole history).
    pub(super) entries: Vec<SimEntry>,
    /// Entries up to here are compacted: the node no longer sees them.
    pub(super) compacted: u64,
    pub(super) synced: usize,
    pub(super) fail_sync: bool,
    pub(super) ops: Vec<LogOp>,
}

impl SimLog {
    /// Everything after the last successful sync is gone.
    pub fn crash(&mut self) {
        self.entries.truncate(self.synced);
    }

    /// The last synced VLSN.
    pub fn synced_vlsn(&self) -> u64 {
        self.synced as u64
    }

    /// The entry at `vlsn`.
    pub fn get(&self, vlsn: u64) -> Option<&SimEntry> {
        self.entries.get(usize::try_from(vlsn.checked_sub(1)?).ok()?)
    }
}

impl LogStore for SimLog {
    type Error = &'static str;

    fn first_vlsn(&self) -> u64 {
        self.compacted + 1
    }

    fn last_vlsn(&self) -> u64 {
        self.entries.len() as u64
    }

    fn entry(&self, vlsn: u64) -> Option<Entry<'_>> {
        let e = self.get(vlsn).filter(|_| vlsn > self.compacted)?;
        Some(Entry { meta: e.meta, entry_type: e.entry_type, data: &e.data })
    }

    fn append(
        &mut self,
        vlsn: u64,
        meta: EntryMeta,
        entry_type: u8,
        data: &[u8],
    ) -> Result<(), &'static str> {
        if vlsn != self.last_vlsn() + 1 {
            self.ops.push(LogOp::Gap { vlsn });
            return Err("append leaves a gap");
        }
        let entry = SimEntry { meta, entry_type, data: data.to_vec() };
        let term_before = self.entries.last().map_or(0, |e| e.meta.term);
        self.ops.push(LogOp::Append { vlsn, entry: entry.clone(), term_before });
        self.entries.push(entry);
        Ok(())
    }

    fn truncate(&mut self, vlsn: u64) -> Result<(), &'static str> {
        let keep = usize::try_from(vlsn.saturating_sub(1)).unwrap_or(usize::MAX);
        if keep < self.entries.len() {
            let first = self.entries.get(keep).cloned();
            self.ops.push(LogOp::Truncate { from: vlsn, first });
            self.entries.truncate(keep);
            self.synced = self.synced.min(keep);
        }
        Ok(())
    }

    fn sync(&mut self) -> Result<(), &'static str> {
        if self.fail_sync {
            return Err("injected sync failure");
        }
        self.synced = self.entries.len();
        Ok(())
    }

    fn compact(&mut self, vlsn: u64) -> Result<(), &'static str> {
        let to = vlsn.min(self.last_vlsn() + 1);
        self.compacted = self.compacted.max(to.saturating_sub(1));
        Ok(())
    }

    fn compacted_meta(&self) -> EntryMeta {
        self.get(self.compacted).map_or(EntryMeta::default(), |e| e.meta)
    }
}
