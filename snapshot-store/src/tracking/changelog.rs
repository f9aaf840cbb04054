//! The change log of one source on disk: the files under `STORE/tracking/<key>.log/`, the state
//! file naming the cut of the last change-tracked snapshot, the proof that the log between two
//! cuts is complete, and the writer the tracker appends with.
//!
//! Each epoch file starts with a header (magic, format version, boot id, tracker session, epoch
//! number, the hash the epoch continues from) followed by fixed-size records: changed ranges per
//! file identity, whole-file and from-offset-to-end records, taints, and the cut that ends the
//! epoch. Records carry consecutive sequence numbers and a BLAKE3 hash chain. A cut is made when
//! a writer starts; after its snapshot is committed, `<key>.state` records which cut it used. The
//! next writer uses the log only when it can prove there was no gap since that cut: same boot,
//! same tracker session, every epoch present, sequence numbers contiguous, the chain intact, and
//! no taint. Otherwise it compares.
#![deny(clippy::indexing_slicing, clippy::unwrap_used)]

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use crate::error::{IoContext, Result};
use crate::format::changelog::{
    CutPoint, EpochHeader, FileKey, HEADER_LEN, RECORD_LEN, Record, RecordKind, decode_record, encode_record,
};
use crate::tracking::ranges::RangeSet;

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
        let base = store_root.join("tracking");
        let k = crate::tracking::source_key(source);
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
    crate::os::file::write_atomic(&paths.state, tmp_dir, text.as_bytes())?;
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
