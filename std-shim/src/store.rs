//! Durable files for a hosted node: the election record ([`FileStore`]) and the replicated
//! log ([`FileLog`]).
//!
//! The log is a directory of append-only segment files. Each record is
//!
//! ```text
//! len: u32 | vlsn: u64 | term: u64 | dtvlsn: u64 | entry_type: u8 | data[len] | crc: u32
//! ```
//!
//! (little-endian; the CRC-32C covers everything before it). Opening the log reads every
//! segment: a record cut short or failing its CRC at the end of the last segment is a torn
//! write from a crash and is truncated away (reported in [`Recovery`]); anything wrong
//! elsewhere is [`LogError::Corrupt`], never silently dropped: a damaged record, a VLSN out
//! of sequence, a segment whose name (its first VLSN) is 0 or not where the one before it
//! ended, segments that start after the compaction point, a compaction point failing its
//! CRC or whose DTVLSN is past its VLSN. No record is at VLSN `u64::MAX`
//! (no VLSN would follow it). A compaction point past the last entry held (a caller
//! compacted entries it had not synced, then crashed) leaves an empty log after the point,
//! its segments, which hold only compacted entries, deleted. The `file_log` fuzz target
//! checks that no directory panics `open` and that every log it opens takes the next
//! append and reopens the same. Each retained segment is also
//! kept in memory, byte for byte as on disk, so reads never touch the disk and an append
//! allocates nothing: the record is built in the segment's buffer, and `sync` writes the
//! unwritten tail of that buffer to the file.
//!
//! The first write, `fsync`, truncation or compaction that fails stops the log: every later
//! change is refused with [`LogError::Failed`] (see there why a retry is not safe), and a
//! hosted node stops with it (docs/hosted.md, "When the disk fails").

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use harp::checksum::crc32c;
use harp::replication::{Entry, EntryMeta, LogStore};
use harp::storage::{StableStore, MAX_RECORD};

const HEADER: usize = 4 + 8 + 8 + 8 + 1;
const CRC: usize = 4;
/// The file holding a [`FileLog`]'s compaction point ([`compaction_point`]).
const COMPACTED_FILE: &str = "compacted";
const RECORD_FILE: &str = "election.rec";
/// The data directory's lock file ([`DirLock`]).
const LOCK_FILE: &str = "lock";

/// When appended entries reach the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Durability {
    /// `sync` calls `fsync` (`File::sync_data`): an acknowledged entry survives power loss.
    #[default]
    Fsync,
    /// `sync` only hands the bytes to the OS: they survive a process crash (`kill -9`), not
    /// a power loss. For tests and benchmarks.
    Os,
}

/// Why the log failed.
#[derive(Debug)]
pub enum LogError {
    /// A file operation failed.
    Io(io::Error),
    /// A record that is not the torn tail of the last segment is damaged.
    Corrupt {
        /// The segment file.
        segment: PathBuf,
        /// The record's byte offset in it.
        offset: u64,
        /// What is wrong.
        what: &'static str,
    },
    /// An earlier write, sync, truncation or compaction failed (this is its error), so the
    /// log takes no more changes: after a failed `fsync` the OS may have dropped the pages it
    /// could not write while reporting later syncs as successful, and a write cut short
    /// leaves part of a record in the file, so going on could acknowledge entries that are
    /// not on disk. Reads still work. What reached the disk is recovered by the next
    /// [`FileLog::open`] (a record cut short at the end is cut off, as after a crash).
    Failed(String),
    /// An entry of this many bytes: records hold at most `u32::MAX`.
    TooLarge(usize),
    /// An append not at `last_vlsn() + 1`.
    Gap {
        /// The VLSN expected.
        expected: u64,
        /// The VLSN given.
        got: u64,
    },
}

impl std::fmt::Display for LogError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LogError::Io(e) => write!(f, "log i/o: {e}"),
            LogError::Corrupt { segment, offset, what } => {
                write!(f, "log segment {} at byte {offset}: {what}", segment.display())
            }
            LogError::Failed(first) => {
                write!(f, "the log stopped taking changes after a failure: {first}")
            }
            LogError::TooLarge(len) => write!(f, "an entry of {len} bytes (at most 4 GiB)"),
            LogError::Gap { expected, got } => {
                write!(f, "append at VLSN {got}, expected {expected}")
            }
        }
    }
}

impl std::error::Error for LogError {}

impl From<io::Error> for LogError {
    fn from(e: io::Error) -> Self {
        LogError::Io(e)
    }
}

/// What opening the log found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Recovery {
    /// Entries read back.
    pub entries: u64,
    /// Bytes of a torn last record cut off the last segment (0 after a clean stop).
    pub torn_bytes: u64,
}

struct Segment {
    first_vlsn: u64,
    path: PathBuf,
    /// The segment's records, as in the file once `written` reaches `bytes.len()`.
    bytes: Vec<u8>,
    /// How many of `bytes` the file holds.
    written: usize,
}

/// A retained entry: where its record sits in memory.
struct Held {
    meta: EntryMeta,
    entry_type: u8,
    /// The segment (index into `segments`), the record's byte offset in it, and the data's
    /// length.
    segment: usize,
    offset: usize,
    len: usize,
}

/// Unwritten bytes of the last segment beyond which an append writes them to the file
/// without waiting for `sync` (what a `BufWriter` would do). Large: the page cache's cost is
/// per write and per folio, and `harp bench` throughput went from 0.51x to ~0.59x of raw TCP
/// when this went from 64 KiB to 1 MiB.
const WRITE_CHUNK: usize = 1024 * 1024;

/// A [`LogStore`] in segment files (see the [module docs](self)).
pub struct FileLog {
    dir: PathBuf,
    durability: Durability,
    segment_bytes: u64,
    segments: Vec<Segment>,
    /// The last segment's file, opened for appending.
    file: Option<File>,
    held: std::collections::VecDeque<Held>,
    /// The VLSN of `held[0]` (or the next VLSN when empty).
    first: u64,
    /// The metadata of the last entry compacted, `first - 1` (for a sync point below the
    /// first entry held).
    compacted: EntryMeta,
    /// The first I/O error of a change, after which the log takes no more
    /// ([`LogError::Failed`]).
    failure: Option<String>,
}

impl FileLog {
    /// Opens (or creates) the log in `dir`, recovering from a torn last record.
    pub fn open(
        dir: &Path,
        durability: Durability,
        segment_bytes: u64,
    ) -> Result<(Self, Recovery), LogError> {
        fs::create_dir_all(dir)?;
        let mut names: Vec<(u64, PathBuf)> = fs::read_dir(dir)?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let path = e.path();
                let first = path.file_name()?.to_str()?.strip_suffix(".seg")?.parse().ok()?;
                Some((first, path))
            })
            .collect();
        names.sort();
        let mut log = FileLog {
            dir: dir.to_path_buf(),
            durability,
            segment_bytes: segment_bytes.max(4096),
            segments: Vec::new(),
            file: None,
            held: Default::default(),
            first: names.first().map_or(1, |(first, _)| *first),
            compacted: EntryMeta::default(),
            failure: None,
        };
        let mut recovery = Recovery::default();
        let count = names.len();
        for (i, (first_vlsn, path)) in names.into_iter().enumerate() {
            let last_segment = i + 1 == count;
            let torn = log.load_segment(first_vlsn, path, last_segment)?;
            recovery.torn_bytes += torn;
        }
        log.skip_compacted()?;
        recovery.entries = log.held.len() as u64;
        Ok((log, recovery))
    }

    /// Forgets the entries before the recorded compaction point (their segment is only
    /// partly discarded).
    fn skip_compacted(&mut self) -> Result<(), LogError> {
        let bytes = match fs::read(self.dir.join(COMPACTED_FILE)) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        let field = |i: usize| {
            let chunk = bytes.get(i * 8..i * 8 + 8)?;
            <[u8; 8]>::try_from(chunk).ok().map(u64::from_le_bytes)
        };
        let corrupt =
            |what| LogError::Corrupt { segment: self.dir.join(COMPACTED_FILE), offset: 0, what };
        let (Some(last), Some(term), Some(dtvlsn), 28) =
            (field(0), field(1), field(2), bytes.len())
        else {
            return Err(corrupt("a compaction point is 28 bytes: VLSN, term, DTVLSN, CRC"));
        };
        let meta = EntryMeta { term, dtvlsn };
        if compaction_point(last, meta) != bytes {
            return Err(corrupt("a compaction point failing its CRC"));
        }
        if let Some(what) = impossible_point(last, meta) {
            return Err(corrupt(what));
        }
        let next = last.saturating_add(1); // below u64::MAX: checked just above
        if !self.segments.is_empty() && self.first > next {
            // Compaction records its point before it deletes a segment, so the first
            // segment left starts at or before the point's next entry.
            return Err(corrupt("the segments start after the compaction point: one is missing"));
        }
        let on_disk = self.next_vlsn();
        self.forget_before(next);
        self.compacted = meta;
        if on_disk.is_some_and(|end| end < next) {
            // Compacted past the last entry a crash left (a caller compacted entries not
            // yet synced): every segment holds only compacted entries, and the next append,
            // at `next`, starts a new one.
            self.drop_all_segments()?;
        }
        Ok(())
    }

    /// The VLSN the next record continues at (`None` past the last VLSN there is).
    fn next_vlsn(&self) -> Option<u64> {
        self.first.checked_add(self.held.len() as u64)
    }

    /// Deletes every segment file (they hold only compacted entries).
    fn drop_all_segments(&mut self) -> Result<(), LogError> {
        self.file = None;
        for gone in self.segments.drain(..) {
            fs::remove_file(&gone.path)?;
        }
        self.held.clear();
        self.sync_dir()?;
        Ok(())
    }

    /// Reads one segment's records into memory; returns the bytes of a torn tail cut off.
    fn load_segment(
        &mut self,
        first_vlsn: u64,
        path: PathBuf,
        last: bool,
    ) -> Result<u64, LogError> {
        let mut bytes = Vec::new();
        File::open(&path)?.read_to_end(&mut bytes)?;
        let index = self.segments.len();
        let mut offset = 0usize;
        let mut torn = 0u64;
        let corrupt = |offset: usize, what| LogError::Corrupt {
            segment: path.clone(),
            offset: offset as u64,
            what,
        };
        // A segment is named after its first VLSN (1 or later: VLSN 0 is the empty prefix)
        // and starts where the one before it ended: a file out of place or missing between
        // two is damage, not a log.
        if first_vlsn == 0 {
            return Err(corrupt(0, "a segment named VLSN 0 (VLSNs start at 1)"));
        }
        if Some(first_vlsn) != self.next_vlsn() {
            return Err(corrupt(0, "the segment's name does not continue the one before it"));
        }
        while offset < bytes.len() {
            match parse_record(bytes.get(offset..).unwrap_or_default()) {
                Ok((held, size)) => {
                    if Some(held.0) != self.next_vlsn() {
                        return Err(corrupt(offset, "VLSN out of sequence"));
                    }
                    if held.0 == u64::MAX {
                        return Err(corrupt(offset, "a record at the last VLSN there is"));
                    }
                    let (_, meta, entry_type, len) = held;
                    self.held.push_back(Held { meta, entry_type, segment: index, offset, len });
                    offset += size;
                }
                Err(_) if last => {
                    // A torn write from a crash: keep what is whole, cut the rest.
                    torn = (bytes.len() - offset) as u64;
                    let file = OpenOptions::new().write(true).open(&path)?;
                    file.set_len(offset as u64)?;
                    file.sync_all()?;
                    bytes.truncate(offset);
                }
                Err(what) => return Err(corrupt(offset, what)),
            }
        }
        let written = bytes.len();
        self.segments.push(Segment { first_vlsn, path, bytes, written });
        Ok(torn)
    }

    /// The segment files (for tests and tools).
    pub fn segment_paths(&self) -> Vec<PathBuf> {
        self.segments.iter().map(|s| s.path.clone()).collect()
    }

    /// Discards the entries before `vlsn` (durable ones: the caller's promise; a log a node
    /// holds is compacted through `Node::compact_log`). The point is recorded in the
    /// `compacted` file first, so the entries stay discarded across a restart; segment files
    /// holding only such entries are deleted, and the rest of a partly discarded segment
    /// stays on disk until its whole segment goes.
    pub fn compact(&mut self, vlsn: u64) -> Result<(), LogError> {
        self.change(|log| log.compact_through(vlsn))
    }

    /// The first failure of a change, after which the log takes no more
    /// ([`LogError::Failed`]); `None` while every change succeeded.
    pub fn failure(&self) -> Option<&str> {
        self.failure.as_deref()
    }

    /// Runs a change of the log, unless an earlier one failed; an I/O error in it is kept,
    /// and the log takes no more changes ([`LogError::Failed`]).
    fn change<T>(
        &mut self,
        change: impl FnOnce(&mut Self) -> Result<T, LogError>,
    ) -> Result<T, LogError> {
        if let Some(first) = &self.failure {
            return Err(LogError::Failed(first.clone()));
        }
        let result = change(self);
        if let Err(LogError::Io(e)) = &result {
            self.failure = Some(e.to_string());
        }
        result
    }

    fn compact_through(&mut self, vlsn: u64) -> Result<(), LogError> {
        let vlsn = vlsn.min(self.last_vlsn() + 1);
        if vlsn <= self.first {
            return Ok(());
        }
        let last = vlsn - 1;
        let meta =
            LogStore::meta(self, last).ok_or(LogError::Gap { expected: self.first, got: last })?;
        let point = compaction_point(last, meta);
        replace_file(&self.dir, COMPACTED_FILE, &point, self.durability)?;
        self.drop_segments_before(vlsn)?;
        self.forget_before(vlsn);
        self.compacted = meta;
        Ok(())
    }

    /// Starts an empty log in `dir` right after the entry at `vlsn`, which had `meta`: the
    /// log of a node that compacted everything through `vlsn` (what `harp restore` builds).
    /// `dir` must hold nothing yet, and the point must be one [`open`](Self::open) accepts:
    /// its DTVLSN at most its VLSN, and a VLSN after it.
    pub fn create_after(dir: &Path, vlsn: u64, meta: EntryMeta) -> Result<(), LogError> {
        if let Some(what) = impossible_point(vlsn, meta) {
            let what = format!("no log starts after VLSN {vlsn} (DTVLSN {}): {what}", meta.dtvlsn);
            return Err(LogError::Io(io::Error::other(what)));
        }
        fs::create_dir_all(dir)?;
        if fs::read_dir(dir)?.next().is_some() {
            let what = format!(
                "{} is not empty: a log is created only in an empty directory",
                dir.display()
            );
            return Err(LogError::Io(io::Error::other(what)));
        }
        replace_file(dir, COMPACTED_FILE, &compaction_point(vlsn, meta), Durability::Fsync)?;
        Ok(())
    }

    /// Forgets the held entries before `vlsn`; the next VLSN is at least `vlsn`.
    fn forget_before(&mut self, vlsn: u64) {
        while self.first < vlsn && self.held.pop_front().is_some() {
            self.first += 1;
        }
        self.first = self.first.max(vlsn);
    }

    /// Deletes the segment files that hold only entries before `vlsn`.
    fn drop_segments_before(&mut self, vlsn: u64) -> Result<(), LogError> {
        while self.segments.len() > 1 {
            let next_first = self.segments.get(1).map_or(u64::MAX, |s| s.first_vlsn);
            if next_first > vlsn {
                break;
            }
            let gone = self.segments.remove(0);
            fs::remove_file(&gone.path)?;
            while self.first < next_first {
                self.held.pop_front();
                self.first += 1;
            }
            for h in self.held.iter_mut() {
                h.segment -= 1;
            }
        }
        Ok(())
    }

    /// Starts a new segment at `vlsn` if the last one cannot take `record_len` more bytes.
    fn roll(&mut self, vlsn: u64, record_len: usize) -> Result<(), LogError> {
        let full = self.segments.last().is_none_or(|s| {
            !s.bytes.is_empty() && (s.bytes.len() + record_len) as u64 > self.segment_bytes
        });
        if full {
            self.flush(true)?;
            let path = self.dir.join(format!("{vlsn:020}.seg"));
            let file = OpenOptions::new().create(true).append(true).open(&path)?;
            self.sync_dir()?;
            let bytes = Vec::with_capacity(usize::try_from(self.segment_bytes).unwrap_or(0));
            self.segments.push(Segment { first_vlsn: vlsn, path, bytes, written: 0 });
            self.file = Some(file);
        }
        Ok(())
    }

    /// Writes the last segment's unwritten bytes to its file (and syncs it if `durable`
    /// and the durability asks for it).
    fn flush(&mut self, durable: bool) -> Result<(), LogError> {
        let Some(segment) = self.segments.last_mut() else { return Ok(()) };
        if segment.written < segment.bytes.len() {
            if self.file.is_none() {
                self.file = Some(OpenOptions::new().append(true).open(&segment.path)?);
            }
            if let Some(file) = self.file.as_mut() {
                let unwritten = segment.bytes.get(segment.written..).unwrap_or_default();
                #[cfg(test)]
                faults::before_write(&self.dir, file, unwritten)?;
                file.write_all(unwritten)?;
                segment.written = segment.bytes.len();
            }
        }
        if durable && self.durability == Durability::Fsync {
            if let Some(file) = self.file.as_ref() {
                #[cfg(test)]
                faults::before_sync(&self.dir)?;
                file.sync_data()?;
            }
        }
        Ok(())
    }

    fn sync_dir(&self) -> io::Result<()> {
        if self.durability == Durability::Fsync {
            sync_dir(&self.dir)?;
        }
        Ok(())
    }
}

/// The `compacted` file's bytes: the last VLSN compacted, its term and DTVLSN (8 bytes
/// each, little-endian), and the CRC-32C of those 24 bytes.
///
/// ```
/// use harp::replication::EntryMeta;
/// let point = harp_std::store::compaction_point(100, EntryMeta { term: 3, dtvlsn: 99 });
/// assert_eq!(point.len(), 28);
/// assert_eq!(point[..8], 100u64.to_le_bytes());
/// ```
pub fn compaction_point(vlsn: u64, meta: EntryMeta) -> Vec<u8> {
    let mut point: Vec<u8> =
        [vlsn, meta.term, meta.dtvlsn].iter().flat_map(|f| f.to_le_bytes()).collect();
    let crc = crc32c(&point);
    point.extend_from_slice(&crc.to_le_bytes());
    point
}

/// What makes a compaction point at `vlsn` one no log can start after, if anything: a
/// DTVLSN past its VLSN, or no VLSN after it. `open` and `create_after` both refuse it.
fn impossible_point(vlsn: u64, meta: EntryMeta) -> Option<&'static str> {
    if meta.dtvlsn > vlsn {
        Some("a compaction point whose DTVLSN is past its VLSN")
    } else if vlsn == u64::MAX {
        Some("a compaction point at the last VLSN there is")
    } else {
        None
    }
}

/// (VLSN, meta, entry type, data length) of a record.
type Parsed = (u64, EntryMeta, u8, usize);

/// One record from the front of `bytes`, and its size; or what is wrong with it.
fn parse_record(bytes: &[u8]) -> Result<(Parsed, usize), &'static str> {
    let header = bytes.get(..HEADER).ok_or("record header cut short")?;
    let u64_at = |at: usize| {
        header.get(at..at + 8).and_then(|b| b.try_into().ok()).map(u64::from_le_bytes).unwrap_or(0)
    };
    let len = header.get(..4).and_then(|b| b.try_into().ok()).map(u32::from_le_bytes).unwrap_or(0)
        as usize;
    let size = HEADER
        .checked_add(len)
        .and_then(|n| n.checked_add(CRC))
        .ok_or("record length overflows")?;
    let record = bytes.get(..size).ok_or("record cut short")?;
    let (body, crc) = record.split_at(size - CRC);
    let stored = u32::from_le_bytes(crc.try_into().map_err(|_| "record cut short")?);
    if crc32c(body) != stored {
        return Err("record fails its CRC-32C");
    }
    let meta = EntryMeta { term: u64_at(12), dtvlsn: u64_at(20) };
    let entry_type = header.get(28).copied().unwrap_or(0);
    Ok(((u64_at(4), meta, entry_type, len), size))
}

/// Appends the record of one entry to `out`.
fn encode_record(
    out: &mut Vec<u8>,
    vlsn: u64,
    meta: EntryMeta,
    entry_type: u8,
    data: &[u8],
) -> Result<(), LogError> {
    let len = u32::try_from(data.len()).map_err(|_| LogError::TooLarge(data.len()))?;
    let start = out.len();
    out.reserve(HEADER + data.len() + CRC);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&vlsn.to_le_bytes());
    out.extend_from_slice(&meta.term.to_le_bytes());
    out.extend_from_slice(&meta.dtvlsn.to_le_bytes());
    out.push(entry_type);
    out.extend_from_slice(data);
    let crc = crc32c(&out[start..]);
    out.extend_from_slice(&crc.to_le_bytes());
    Ok(())
}

impl LogStore for FileLog {
    type Error = LogError;

    fn compact(&mut self, vlsn: u64) -> Result<(), LogError> {
        FileLog::compact(self, vlsn)
    }

    fn compacted_meta(&self) -> EntryMeta {
        self.compacted
    }

    fn first_vlsn(&self) -> u64 {
        self.first
    }

    fn last_vlsn(&self) -> u64 {
        // At most u64::MAX - 1: no record is at u64::MAX (no VLSN would follow it).
        self.next_vlsn().unwrap_or(u64::MAX).saturating_sub(1)
    }

    fn entry(&self, vlsn: u64) -> Option<Entry<'_>> {
        let index = usize::try_from(vlsn.checked_sub(self.first)?).ok()?;
        let held = self.held.get(index)?;
        let start = held.offset.checked_add(HEADER)?;
        let data =
            self.segments.get(held.segment)?.bytes.get(start..start.checked_add(held.len)?)?;
        Some(Entry { meta: held.meta, entry_type: held.entry_type, data })
    }

    /// Appends the entry; on an error the log holds what it held before.
    fn append(
        &mut self,
        vlsn: u64,
        meta: EntryMeta,
        entry_type: u8,
        data: &[u8],
    ) -> Result<(), LogError> {
        self.change(|log| log.append_record(vlsn, meta, entry_type, data))
    }

    fn truncate(&mut self, vlsn: u64) -> Result<(), LogError> {
        self.change(|log| log.truncate_from(vlsn))
    }

    fn sync(&mut self) -> Result<(), LogError> {
        self.change(|log| log.flush(true))
    }
}

impl FileLog {
    fn append_record(
        &mut self,
        vlsn: u64,
        meta: EntryMeta,
        entry_type: u8,
        data: &[u8],
    ) -> Result<(), LogError> {
        let expected = self.last_vlsn().saturating_add(1);
        if vlsn != expected || vlsn == u64::MAX {
            return Err(LogError::Gap { expected, got: vlsn });
        }
        self.roll(vlsn, HEADER + data.len() + CRC)?;
        let segment = self.segments.len() - 1;
        let last = self.segments.last_mut().ok_or(LogError::Io(io::Error::other("no segment")))?;
        let offset = last.bytes.len();
        encode_record(&mut last.bytes, vlsn, meta, entry_type, data)?;
        if last.bytes.len() - last.written >= WRITE_CHUNK {
            if let Err(e) = self.flush(false) {
                // Not held: the record leaves memory (the file may keep part of it, a torn
                // tail the next open cuts off).
                if let Some(last) = self.segments.last_mut() {
                    last.bytes.truncate(offset);
                }
                return Err(e);
            }
        }
        if self.held.is_empty() {
            self.first = vlsn;
        }
        self.held.push_back(Held { meta, entry_type, segment, offset, len: data.len() });
        Ok(())
    }

    fn truncate_from(&mut self, vlsn: u64) -> Result<(), LogError> {
        let Some(index) = vlsn.checked_sub(self.first).and_then(|i| usize::try_from(i).ok()) else {
            return Ok(()); // before the retained log: nothing held there to drop
        };
        let Some(cut) = self.held.get(index).map(|h| (h.segment, h.offset)) else { return Ok(()) };
        let (segment, offset) = cut;
        self.file = None;
        for gone in self.segments.drain(segment + 1..) {
            fs::remove_file(&gone.path)?;
        }
        if let Some(s) = self.segments.get_mut(segment) {
            s.bytes.truncate(offset);
            if s.written > offset {
                let file = OpenOptions::new().write(true).open(&s.path)?;
                file.set_len(offset as u64)?;
                if self.durability == Durability::Fsync {
                    file.sync_all()?;
                }
                s.written = offset;
            }
        }
        self.held.truncate(index);
        self.sync_dir()?;
        Ok(())
    }
}

/// A [`StableStore`] in one file: written to a temporary file, synced, renamed over the old
/// one, and the directory synced, so a crash leaves either the old record or the new one.
pub struct FileStore {
    dir: PathBuf,
}

impl FileStore {
    /// The store in `dir` (created if missing).
    pub fn open(dir: &Path) -> io::Result<Self> {
        fs::create_dir_all(dir)?;
        Ok(FileStore { dir: dir.to_path_buf() })
    }
}

impl StableStore for FileStore {
    type Error = io::Error;

    fn read(&mut self, buf: &mut [u8; MAX_RECORD]) -> io::Result<Option<usize>> {
        let bytes = match fs::read(self.dir.join(RECORD_FILE)) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let dst = buf
            .get_mut(..bytes.len())
            .ok_or_else(|| io::Error::other("election record too large"))?;
        dst.copy_from_slice(&bytes);
        Ok(Some(bytes.len()))
    }

    fn write(&mut self, record: &[u8]) -> io::Result<()> {
        replace_file(&self.dir, RECORD_FILE, record, Durability::Fsync)
    }
}

/// An exclusive lock on a node's data directory (an OS file lock on its `lock` file, let go
/// when the process ends, however it ends): held while a node runs, or while `harp restore`
/// rewrites its log, so two processes never write the same stores.
#[derive(Debug)]
pub struct DirLock {
    _file: File,
}

impl DirLock {
    /// Takes the lock on `dir` (created if missing), or fails at once if another process
    /// (or another node in this one) holds it.
    pub fn acquire(dir: &Path) -> io::Result<DirLock> {
        fs::create_dir_all(dir)?;
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(LOCK_FILE))?;
        match file.try_lock() {
            Ok(()) => Ok(DirLock { _file: file }),
            Err(fs::TryLockError::WouldBlock) => Err(io::Error::other(format!(
                "{} is in use by another harp process",
                dir.display()
            ))),
            Err(fs::TryLockError::Error(e)) => Err(e),
        }
    }
}

/// Syncs a directory, so the renames and removals in it last.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Replaces `dir/name` with `bytes` atomically: a temporary file renamed over the old one,
/// so a crash leaves either the old contents or the new. With `Durability::Fsync` the file
/// and the directory are synced too, so the new contents also survive a power loss (the
/// election record always is; a log's compaction point as durably as its entries).
pub(crate) fn replace_file(
    dir: &Path,
    name: &str,
    bytes: &[u8],
    durability: Durability,
) -> io::Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    let mut file = File::create(&tmp)?;
    file.write_all(bytes)?;
    if durability == Durability::Fsync {
        file.sync_all()?;
    }
    fs::rename(&tmp, dir.join(name))?;
    if durability == Durability::Fsync {
        sync_dir(dir)?;
    }
    Ok(())
}

/// Disk failures that tests inject into the logs of chosen directories (the hosted tests
/// reach a running node's log this way).
#[cfg(test)]
pub(crate) mod faults {
    use std::fs::File;
    use std::io::{self, Write};
    use std::path::{Path, PathBuf};
    use std::sync::Mutex;

    /// What fails in one log directory.
    #[derive(Debug, Clone, Copy)]
    pub(crate) enum Fault {
        /// Writes take this many more bytes, then fail (a disk filling up mid-record).
        DiskFullAfter(usize),
        /// Every `fsync` fails (a disk that could not write the pages back).
        SyncFails,
    }

    static FAULTS: Mutex<Vec<(PathBuf, Fault)>> = Mutex::new(Vec::new());

    /// From now on, the log in `dir` meets `fault` (replacing an earlier one); `None` heals it.
    pub(crate) fn inject(dir: &Path, fault: Option<Fault>) {
        let mut faults = FAULTS.lock().unwrap();
        faults.retain(|(d, _)| d != dir);
        faults.extend(fault.map(|f| (dir.to_path_buf(), f)));
    }

    fn fault(dir: &Path) -> Option<Fault> {
        FAULTS.lock().unwrap().iter().find(|(d, _)| d == dir).map(|(_, f)| *f)
    }

    fn injected() -> io::Error {
        io::Error::other("injected: no space left on device")
    }

    /// Called before `bytes` are written to `file`: writes what the disk still takes and
    /// fails if that is not all of them.
    pub(crate) fn before_write(dir: &Path, file: &mut File, bytes: &[u8]) -> io::Result<()> {
        let Some(Fault::DiskFullAfter(room)) = fault(dir) else { return Ok(()) };
        if bytes.len() <= room {
            inject(dir, Some(Fault::DiskFullAfter(room - bytes.len())));
            return Ok(());
        }
        file.write_all(&bytes[..room])?;
        inject(dir, Some(Fault::DiskFullAfter(0)));
        Err(injected())
    }

    /// Called before an `fsync` of the log in `dir`.
    pub(crate) fn before_sync(dir: &Path) -> io::Result<()> {
        match fault(dir) {
            Some(Fault::SyncFails) => Err(io::Error::other("injected: i/o error on write-back")),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::faults::{inject, Fault};
    use super::*;

    fn meta() -> EntryMeta {
        EntryMeta { term: 1, dtvlsn: 0 }
    }

    fn open(dir: &Path, durability: Durability) -> (FileLog, Recovery) {
        FileLog::open(dir, durability, 4 << 20).unwrap()
    }

    /// A log holding "entry 1" ..= "entry n", synced.
    fn synced(dir: &Path, durability: Durability, n: u64) -> FileLog {
        let (mut log, _) = open(dir, durability);
        for v in 1..=n {
            log.append(v, meta(), 1, format!("entry {v}").as_bytes()).unwrap();
        }
        log.sync().unwrap();
        log
    }

    /// Every change of `log` is refused with the first failure, which names `what`.
    fn assert_stopped(log: &mut FileLog, what: &str) {
        assert!(log.failure().is_some_and(|f| f.contains(what)), "{:?}", log.failure());
        let next = log.last_vlsn() + 1;
        let refusals = [
            log.sync(),
            log.append(next, meta(), 1, b"more"),
            log.truncate(1),
            LogStore::compact(log, 2),
        ];
        for refusal in refusals {
            match refusal {
                Err(LogError::Failed(first)) => assert!(first.contains(what), "{first}"),
                other => panic!("a change after the failure: {other:?}"),
            }
        }
    }

    #[test]
    fn a_write_cut_short_stops_the_log_and_the_next_open_keeps_what_was_whole() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = synced(dir.path(), Durability::Os, 3);
        log.append(4, meta(), 1, b"entry 4").unwrap();
        log.append(5, meta(), 1, b"entry 5").unwrap();
        let record = HEADER + b"entry 4".len() + CRC;
        inject(dir.path(), Some(Fault::DiskFullAfter(record + 10)));
        assert!(matches!(log.sync(), Err(LogError::Io(_))));
        inject(dir.path(), None); // space freed: the log still refuses, the file is torn
        assert_stopped(&mut log, "no space left");
        assert_eq!(log.last_vlsn(), 5, "reads go on");
        drop(log);
        let (mut log, recovery) = open(dir.path(), Durability::Os);
        assert_eq!((recovery.entries, recovery.torn_bytes), (4, 10));
        assert_eq!(log.entry(4).unwrap().data, b"entry 4");
        log.append(5, meta(), 1, b"entry 5 again").unwrap();
        log.sync().unwrap();
        drop(log);
        let (log, recovery) = open(dir.path(), Durability::Os);
        assert_eq!((recovery.entries, recovery.torn_bytes), (5, 0));
        assert_eq!(log.entry(5).unwrap().data, b"entry 5 again");
    }

    #[test]
    fn a_failed_fsync_stops_the_log_even_if_a_later_one_would_succeed() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = synced(dir.path(), Durability::Fsync, 2);
        log.append(3, meta(), 1, b"entry 3").unwrap();
        inject(dir.path(), Some(Fault::SyncFails));
        assert!(matches!(log.sync(), Err(LogError::Io(_))));
        inject(dir.path(), None);
        assert_stopped(&mut log, "write-back");
        drop(log);
        let (log, recovery) = open(dir.path(), Durability::Fsync);
        assert_eq!((log.first_vlsn(), recovery.torn_bytes), (1, 0));
        assert!(recovery.entries >= 2, "what was synced is kept");
    }

    #[test]
    fn an_append_whose_write_fails_leaves_the_log_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = synced(dir.path(), Durability::Os, 1);
        inject(dir.path(), Some(Fault::DiskFullAfter(100)));
        let big = vec![7u8; WRITE_CHUNK]; // an append this large writes at once
        assert!(matches!(log.append(2, meta(), 1, &big), Err(LogError::Io(_))));
        inject(dir.path(), None);
        assert_eq!(log.last_vlsn(), 1);
        assert_eq!(log.entry(2), None);
        assert_stopped(&mut log, "no space left");
        drop(log);
        let (log, recovery) = open(dir.path(), Durability::Os);
        assert_eq!((log.last_vlsn(), recovery.torn_bytes), (1, 100));
    }
}
