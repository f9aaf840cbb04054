//! The change log written by `backup-fs track` (fanotify) and read by change-tracked writes.
//!
//! Per store and source, under `STORE/tracking/<key>.log/`: one file per epoch (`epoch-<n>`).
//! Each file starts with a header (magic, format version, boot id, tracker session, epoch number,
//! the hash the epoch continues from) followed by fixed-size records: changed ranges per file
//! identity, whole-file and from-offset-to-end records, taints, and the cut that ends the epoch.
//! Records carry consecutive sequence numbers and a BLAKE3 hash chain. A cut is made when a
//! writer starts; after its snapshot is committed, `<key>.state` records which cut it used. The
//! next writer uses the log only when it can prove there was no gap since that cut: same boot,
//! same tracker session, every epoch present, sequence numbers contiguous, the chain intact, and
//! no taint. Otherwise it compares.
#![deny(clippy::indexing_slicing, clippy::unwrap_used)]

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use crate::codec::{Decoder, Encoder};
use crate::envelope::FORMAT_VERSION;
use crate::error::{Error, IoContext, Result};
use crate::ranges::RangeSet;

/// Magic of an epoch file. On disk: do not modify.
pub const MAGIC: &[u8; 8] = b"BKFSclog";
/// Bytes of an epoch file's header.
pub const HEADER_LEN: usize = 96;
/// Bytes of one record.
pub const RECORD_LEN: usize = 96;

/// What a record says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordKind {
    /// Bytes `offset..offset + length` may have changed.
    Range,
    /// The whole file may have changed.
    Whole,
    /// Everything from `offset` to the end may have changed.
    FromOffset,
    /// Changes may have been missed (queue overflow, tracker stopping): nothing in this epoch
    /// or earlier can be trusted.
    Taint,
    /// The end of the epoch: a writer is about to read.
    Cut,
}

impl RecordKind {
    fn code(self) -> u8 {
        match self {
            RecordKind::Range => 1,
            RecordKind::Whole => 2,
            RecordKind::FromOffset => 3,
            RecordKind::Taint => 4,
            RecordKind::Cut => 5,
        }
    }

    fn from_code(c: u8) -> Option<Self> {
        Some(match c {
            1 => RecordKind::Range,
            2 => RecordKind::Whole,
            3 => RecordKind::FromOffset,
            4 => RecordKind::Taint,
            5 => RecordKind::Cut,
            _ => return None,
        })
    }
}

/// The identity of a tracked file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct FileKey {
    /// Device.
    pub dev: u64,
    /// Inode.
    pub ino: u64,
    /// Inode generation where the filesystem has one (else 0).
    pub generation: u32,
    /// Birth time, ns since the epoch (else 0).
    pub btime_ns: i64,
}

/// One record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record {
    /// Sequence number (consecutive over the whole session).
    pub seq: u64,
    /// What it says.
    pub kind: RecordKind,
    /// The file (zero for taints and cuts).
    pub file: FileKey,
    /// Offset.
    pub offset: u64,
    /// Length (ranges).
    pub length: u64,
}

/// An epoch file's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochHeader {
    /// `/proc/sys/kernel/random/boot_id` when the tracker started.
    pub boot: [u8; 16],
    /// Random id of the tracker run.
    pub session: [u8; 16],
    /// Epoch number (consecutive within a session, from 0).
    pub epoch: u64,
    /// Sequence number of the first record.
    pub first_seq: u64,
    /// Hash the chain continues from (the previous epoch's last hash; zeros for epoch 0).
    pub prev_hash: [u8; 32],
}

impl EpochHeader {
    /// Encodes the header (fixed length).
    pub fn encode(&self) -> Vec<u8> {
        let mut e = Encoder::new();
        e.raw(MAGIC);
        e.u16(FORMAT_VERSION);
        e.raw(&[0u8; 6]);
        e.raw(&self.boot);
        e.raw(&self.session);
        e.u64(self.epoch);
        e.u64(self.first_seq);
        e.raw(&self.prev_hash);
        let mut b = e.into_bytes();
        b.resize(HEADER_LEN, 0);
        b
    }

    fn decode(bytes: &[u8], what: &str) -> Result<EpochHeader> {
        let mut d = Decoder::new(bytes, what);
        if d.take(8)? != MAGIC {
            return Err(d.error("not a change log (bad magic)"));
        }
        let version = d.u16()?;
        if version > FORMAT_VERSION {
            return Err(Error::UnsupportedVersion {
                what: what.to_string(),
                found: version,
                supported: FORMAT_VERSION,
            });
        }
        d.take(6)?;
        let mut boot = [0u8; 16];
        boot.copy_from_slice(d.take(16)?);
        let mut session = [0u8; 16];
        session.copy_from_slice(d.take(16)?);
        let epoch = d.u64()?;
        let first_seq = d.u64()?;
        let mut prev_hash = [0u8; 32];
        prev_hash.copy_from_slice(d.take(32)?);
        Ok(EpochHeader {
            boot,
            session,
            epoch,
            first_seq,
            prev_hash,
        })
    }
}

/// Encodes `r` chained to `prev` (the previous record's hash); returns the bytes and the new hash.
pub fn encode_record(r: &Record, prev: &[u8; 32]) -> (Vec<u8>, [u8; 32]) {
    let mut e = Encoder::new();
    e.u64(r.seq);
    e.u8(r.kind.code());
    e.raw(&[0u8; 3]);
    e.u32(r.file.generation);
    e.u64(r.file.dev);
    e.u64(r.file.ino);
    e.i64(r.file.btime_ns);
    e.u64(r.offset);
    e.u64(r.length);
    e.raw(&[0u8; 8]);
    let body = e.into_bytes();
    debug_assert_eq!(body.len() + 32, RECORD_LEN);
    let hash: [u8; 32] = *blake3::Hasher::new().update(prev).update(&body).finalize().as_bytes();
    let mut out = body;
    out.extend_from_slice(&hash);
    (out, hash)
}

fn decode_record(bytes: &[u8], prev: &[u8; 32], what: &str) -> Result<(Record, [u8; 32])> {
    let mut d = Decoder::new(bytes, what);
    let body = bytes.get(..RECORD_LEN - 32).unwrap_or_default();
    let seq = d.u64()?;
    let kind = RecordKind::from_code(d.u8()?).ok_or_else(|| d.error("unknown record kind"))?;
    d.take(3)?;
    let generation = d.u32()?;
    let file = FileKey {
        dev: d.u64()?,
        ino: d.u64()?,
        generation,
        btime_ns: d.i64()?,
    };
    let offset = d.u64()?;
    let length = d.u64()?;
    d.take(8)?;
    let stored = d.take(32)?;
    let hash: [u8; 32] = *blake3::Hasher::new().update(prev).update(body).finalize().as_bytes();
    if stored != hash {
        return Err(Error::corrupt(what, format!("hash chain broken at record {seq}")));
    }
    Ok((
        Record {
            seq,
            kind,
            file,
            offset,
            length,
        },
        hash,
    ))
}

/// Where one epoch ended: what the next writer proves continuity from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CutPoint {
    /// Boot of the tracker run.
    pub boot: [u8; 16],
    /// The tracker run.
    pub session: [u8; 16],
    /// The epoch the cut ended.
    pub epoch: u64,
    /// Sequence number of the cut record.
    pub seq: u64,
    /// Hash of the cut record.
    pub hash: [u8; 32],
}

impl CutPoint {
    /// Encodes as text (for the tracker's socket and the state file).
    pub fn to_text(&self) -> String {
        let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        format!(
            "{} {} {} {} {}",
            hex(&self.boot),
            hex(&self.session),
            self.epoch,
            self.seq,
            hex(&self.hash)
        )
    }

    /// Parses [`CutPoint::to_text`].
    pub fn from_text(s: &str) -> Option<CutPoint> {
        let mut it = s.split_whitespace();
        let mut bytes = |n: usize| -> Option<Vec<u8>> {
            let t = it.next()?;
            if t.len() != 2 * n {
                return None;
            }
            (0..n)
                .map(|i| u8::from_str_radix(t.get(2 * i..2 * i + 2)?, 16).ok())
                .collect()
        };
        let boot: [u8; 16] = bytes(16)?.try_into().ok()?;
        let session: [u8; 16] = bytes(16)?.try_into().ok()?;
        let epoch = it.next()?.parse().ok()?;
        let seq = it.next()?.parse().ok()?;
        let t = it.next()?;
        let hash: Vec<u8> = (0..32)
            .map(|i| u8::from_str_radix(t.get(2 * i..2 * i + 2)?, 16).ok())
            .collect::<Option<_>>()?;
        Some(CutPoint {
            boot,
            session,
            epoch,
            seq,
            hash: hash.try_into().ok()?,
        })
    }
}

/// The paths of the change log of one source in `store_root`.
#[derive(Debug, Clone)]
pub struct LogPaths {
    /// Directory of epoch files.
    pub dir: PathBuf,
    /// The tracker's socket.
    pub socket: PathBuf,
    /// The cut of the last committed snapshot.
    pub state: PathBuf,
    /// The tracker's lock (one tracker per source).
    pub lock: PathBuf,
}

impl LogPaths {
    /// Paths for `source` (canonical) in the store at `store_root`.
    pub fn new(store_root: &Path, source: &Path) -> LogPaths {
        let key = blake3::hash(&crate::write::os_bytes(source.as_os_str()));
        let base = store_root.join("tracking");
        let k = &key.to_hex()[..32];
        LogPaths {
            dir: base.join(format!("{k}.log")),
            socket: base.join(format!("{k}.sock")),
            state: base.join(format!("{k}.state")),
            lock: base.join(format!("{k}.lock")),
        }
    }

    /// The file of epoch `n`.
    pub fn epoch_file(&self, n: u64) -> PathBuf {
        self.dir.join(format!("epoch-{n:012}"))
    }
}

/// The changes recorded between two cuts, per file.
#[derive(Debug, Default)]
pub struct Changes {
    /// Changed ranges per file (`u64::MAX` ends mean "to the end").
    pub files: HashMap<(u64, u64), RangeSet>,
}

/// Reads the log from cut `from` (exclusive) to cut `to` (inclusive) and proves it complete;
/// `Err` with the reason when it is not (the writer then compares).
pub fn changes_between(paths: &LogPaths, from: &CutPoint, to: &CutPoint) -> std::result::Result<Changes, String> {
    if from.boot != to.boot {
        return Err("the machine rebooted since the last backup".into());
    }
    if from.session != to.session {
        return Err("the tracker was restarted since the last backup".into());
    }
    if to.epoch <= from.epoch {
        return Err("the cuts are out of order".into());
    }
    let mut changes = Changes::default();
    let mut expect_seq = from.seq + 1;
    let mut prev_hash = from.hash;
    for n in from.epoch + 1..=to.epoch {
        let path = paths.epoch_file(n);
        let what = format!("change log {}", path.display());
        let bytes = fs::read(&path).map_err(|e| format!("{what}: {e}"))?;
        let header =
            EpochHeader::decode(bytes.get(..HEADER_LEN).unwrap_or_default(), &what).map_err(|e| e.to_string())?;
        if header.session != to.session || header.boot != to.boot || header.epoch != n {
            return Err(format!("{what} belongs to another tracker run"));
        }
        if header.first_seq != expect_seq || header.prev_hash != prev_hash {
            return Err(format!("{what} does not continue the previous epoch"));
        }
        let body = bytes.get(HEADER_LEN..).unwrap_or_default();
        let mut ended = false;
        for chunk in body.chunks(RECORD_LEN) {
            if chunk.len() < RECORD_LEN {
                return Err(format!("{what} ends with a partial record"));
            }
            let (r, h) = decode_record(chunk, &prev_hash, &what).map_err(|e| e.to_string())?;
            if r.seq != expect_seq {
                return Err(format!("{what}: record {} where {expect_seq} was expected", r.seq));
            }
            expect_seq += 1;
            prev_hash = h;
            let key = (r.file.dev, r.file.ino);
            match r.kind {
                RecordKind::Range => {
                    let add = RangeSet::one(r.offset..r.offset.saturating_add(r.length));
                    let entry = changes.files.entry(key).or_default();
                    *entry = entry.union(&add);
                }
                RecordKind::Whole => {
                    changes.files.insert(key, RangeSet::one(0..u64::MAX));
                }
                RecordKind::FromOffset => {
                    let entry = changes.files.entry(key).or_default();
                    *entry = entry.union(&RangeSet::one(r.offset..u64::MAX));
                }
                RecordKind::Taint => {
                    return Err("the tracker may have missed changes (its queue overflowed or it stopped)".into());
                }
                RecordKind::Cut => {
                    ended = true;
                    break;
                }
            }
        }
        if !ended {
            return Err(format!("{what} has no cut (still being written?)"));
        }
    }
    if expect_seq != to.seq + 1 || prev_hash != to.hash {
        return Err("the log does not end at the writer's cut".into());
    }
    Ok(changes)
}

/// The cut of the last committed snapshot and that snapshot's id, if recorded.
pub fn read_state(paths: &LogPaths) -> Option<(String, CutPoint)> {
    let text = fs::read_to_string(&paths.state).ok()?;
    let (snap, cut) = text.trim().split_once(' ')?;
    Some((snap.to_string(), CutPoint::from_text(cut)?))
}

/// Records that `snapshot` was taken at `cut`, and deletes the epochs it made unnecessary.
pub fn write_state(paths: &LogPaths, tmp_dir: &Path, snapshot: &str, cut: &CutPoint) -> Result<()> {
    let text = format!("{snapshot} {}\n", cut.to_text());
    crate::fsio::write_atomic(&paths.state, tmp_dir, text.as_bytes())?;
    if let Ok(rd) = fs::read_dir(&paths.dir) {
        for e in rd.flatten() {
            let name = e.file_name();
            let n = name
                .to_str()
                .and_then(|n| n.strip_prefix("epoch-"))
                .and_then(|n| n.parse::<u64>().ok());
            if n.is_some_and(|n| n <= cut.epoch) {
                let _ = fs::remove_file(e.path());
            }
        }
    }
    Ok(())
}

/// Appends records to the current epoch file of a tracker run (used by the tracker).
pub struct LogWriter {
    paths: LogPaths,
    boot: [u8; 16],
    session: [u8; 16],
    epoch: u64,
    seq: u64,
    hash: [u8; 32],
    file: fs::File,
}

impl LogWriter {
    /// Starts a tracker run: epoch 0 of a new session.
    pub fn start(paths: LogPaths, boot: [u8; 16], session: [u8; 16]) -> Result<LogWriter> {
        fs::create_dir_all(&paths.dir).at(&paths.dir)?;
        let file = Self::create_epoch(&paths, boot, session, 0, 1, [0; 32])?;
        Ok(LogWriter {
            paths,
            boot,
            session,
            epoch: 0,
            seq: 1,
            hash: [0; 32],
            file,
        })
    }

    fn create_epoch(
        paths: &LogPaths,
        boot: [u8; 16],
        session: [u8; 16],
        epoch: u64,
        first_seq: u64,
        prev_hash: [u8; 32],
    ) -> Result<fs::File> {
        use std::io::Write;
        let path = paths.epoch_file(epoch);
        let mut f = fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(&path)
            .at(&path)?;
        let header = EpochHeader {
            boot,
            session,
            epoch,
            first_seq,
            prev_hash,
        };
        f.write_all(&header.encode()).at(&path)?;
        Ok(f)
    }

    /// Appends one record (`seq` is assigned).
    pub fn append(&mut self, kind: RecordKind, file: FileKey, offset: u64, length: u64) -> Result<()> {
        use std::io::Write;
        let r = Record {
            seq: self.seq,
            kind,
            file,
            offset,
            length,
        };
        let (bytes, hash) = encode_record(&r, &self.hash);
        let path = self.paths.epoch_file(self.epoch);
        self.file.write_all(&bytes).at(&path)?;
        self.seq += 1;
        self.hash = hash;
        Ok(())
    }

    /// Ends the epoch with a cut (flushed to disk) and starts the next; returns the cut.
    pub fn cut(&mut self) -> Result<CutPoint> {
        self.append(RecordKind::Cut, FileKey::default(), 0, 0)?;
        let path = self.paths.epoch_file(self.epoch);
        self.file.sync_all().at(&path)?;
        let cut = CutPoint {
            boot: self.boot,
            session: self.session,
            epoch: self.epoch,
            seq: self.seq - 1,
            hash: self.hash,
        };
        self.epoch += 1;
        self.file = Self::create_epoch(&self.paths, self.boot, self.session, self.epoch, self.seq, self.hash)?;
        Ok(cut)
    }

    /// Flushes to disk.
    pub fn sync(&mut self) -> Result<()> {
        let path = self.paths.epoch_file(self.epoch);
        self.file.sync_data().at(&path)
    }
}

/// The fanotify change source of a write: the changes recorded by `backup-fs track` since the
/// cut of the last change-tracked snapshot, when the log proves them complete.
pub struct FanotifyProvider {
    paths: LogPaths,
    tmp_dir: PathBuf,
    cut: Option<CutPoint>,
    changes: std::result::Result<Changes, String>,
    stream: parking_lot::Mutex<Option<std::os::unix::net::UnixStream>>,
}

impl FanotifyProvider {
    /// Asks the tracker of `source` (canonical) for a cut now. Never fails: an unavailable
    /// tracker or an incomplete log only means files are compared (see [`ChangeProvider::note`]).
    pub fn open(store: &crate::store::Store, source: &Path) -> FanotifyProvider {
        let paths = LogPaths::new(store.root(), source);
        let mut provider = FanotifyProvider {
            tmp_dir: store.tmp_dir(),
            cut: None,
            changes: Err(String::new()),
            stream: parking_lot::Mutex::new(None),
            paths,
        };
        provider.changes = provider.request_cut().and_then(|cut| {
            provider.cut = Some(cut);
            let (_, from) = read_state(&provider.paths).ok_or("no earlier change-tracked backup")?;
            changes_between(&provider.paths, &from, &cut)
        });
        provider
    }

    fn request_cut(&self) -> std::result::Result<CutPoint, String> {
        use std::io::{BufRead, BufReader, Write};
        let not_running =
            |e: std::io::Error| format!("the tracker is not running ({e}); start `backup-fs track SOURCE`");
        let stream = std::os::unix::net::UnixStream::connect(&self.paths.socket).map_err(not_running)?;
        let _ = stream.set_read_timeout(Some(std::time::Duration::from_secs(30)));
        let mut w = stream.try_clone().map_err(not_running)?;
        writeln!(w, "CUT {}", std::process::id()).map_err(not_running)?;
        let mut line = String::new();
        BufReader::new(stream.try_clone().map_err(not_running)?)
            .read_line(&mut line)
            .map_err(not_running)?;
        let cut = match line.trim().split_once(' ') {
            Some(("OK", rest)) => CutPoint::from_text(rest).ok_or("the tracker sent a malformed cut")?,
            _ => return Err(format!("the tracker refused the cut: {}", line.trim())),
        };
        *self.stream.lock() = Some(stream);
        Ok(cut)
    }

    fn done(&self) {
        use std::io::Write;
        if let Some(mut s) = self.stream.lock().take() {
            let _ = writeln!(s, "DONE {}", std::process::id());
        }
    }
}

impl crate::tracked::ChangeProvider for FanotifyProvider {
    fn changes(
        &self,
        _path: &Path,
        _rel: &str,
        meta: &crate::snapshot::Metadata,
        prev: Option<&crate::filewrite::PrevEntry>,
    ) -> Option<crate::tracked::TrackedInput> {
        let changes = self.changes.as_ref().ok()?;
        let prev = prev?;
        if meta.dev != prev.meta.dev || meta.ino != prev.meta.ino {
            return None;
        }
        let ranges = match changes.files.get(&(meta.dev, meta.ino)) {
            Some(r) => r.clone(),
            // Changed, yet not one access was recorded: written in a way fanotify does not see
            // (a loop device between two looks, a descriptor older than the tracker). Compare.
            None if meta.ctime_ns != prev.meta.ctime_ns || meta.mtime_ns != prev.meta.mtime_ns => return None,
            None => RangeSet::new(),
        };
        Some(crate::tracked::TrackedInput {
            changes: Some(crate::tracked::TrackedChanges {
                source: crate::tracked::ChangeSource::Fanotify,
                ranges,
            }),
            data: None,
        })
    }

    fn committed(&self, snapshot: &crate::snapshot::Snapshot) {
        if let Some(cut) = &self.cut {
            let _ = write_state(&self.paths, &self.tmp_dir, snapshot.id.as_str(), cut);
        }
        self.done();
    }

    fn abandoned(&self) {
        self.done();
    }

    fn note(&self) -> Option<String> {
        self.changes.as_ref().err().filter(|e| !e.is_empty()).cloned()
    }
}

#[cfg(test)]
#[allow(clippy::single_range_in_vec_init)] // lists of ranges with one range
mod tests {
    use super::*;

    fn key(ino: u64) -> FileKey {
        FileKey {
            dev: 1,
            ino,
            ..FileKey::default()
        }
    }

    #[test]
    fn a_complete_log_gives_the_changes_and_gaps_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let paths = LogPaths::new(dir.path(), Path::new("/src"));
        let mut w = LogWriter::start(paths.clone(), [1; 16], [2; 16]).unwrap();
        let c0 = w.cut().unwrap();
        w.append(RecordKind::Range, key(7), 4096, 4096).unwrap();
        w.append(RecordKind::Range, key(7), 8192, 100).unwrap();
        w.append(RecordKind::FromOffset, key(8), 1000, 0).unwrap();
        let c1 = w.cut().unwrap();
        w.append(RecordKind::Whole, key(9), 0, 0).unwrap();
        let c2 = w.cut().unwrap();
        let ch = changes_between(&paths, &c0, &c2).unwrap();
        assert_eq!(ch.files[&(1, 7)].ranges(), &[4096..8292]);
        assert_eq!(ch.files[&(1, 8)].ranges(), &[1000..u64::MAX]);
        assert_eq!(ch.files[&(1, 9)].ranges(), &[0..u64::MAX]);
        assert_eq!(CutPoint::from_text(&c1.to_text()), Some(c1));
        // A taint in between: refused.
        w.append(RecordKind::Taint, FileKey::default(), 0, 0).unwrap();
        let c3 = w.cut().unwrap();
        assert!(changes_between(&paths, &c2, &c3).unwrap_err().contains("missed"));
        // Another session: refused.
        let mut other = c3;
        other.session = [9; 16];
        assert!(changes_between(&paths, &c2, &other).is_err());
        // A tampered record breaks the chain.
        let f = paths.epoch_file(c1.epoch);
        let mut bytes = fs::read(&f).unwrap();
        bytes[HEADER_LEN + 20] ^= 1;
        fs::write(&f, bytes).unwrap();
        assert!(changes_between(&paths, &c0, &c1).unwrap_err().contains("chain"));
        // A missing epoch: refused.
        fs::remove_file(paths.epoch_file(c2.epoch)).unwrap();
        assert!(changes_between(&paths, &c1, &c2).is_err());
    }
}
