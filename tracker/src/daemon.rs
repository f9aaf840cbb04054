//! The tracker: three threads. The event thread reads fanotify events, queues each access to the
//! log thread and only then lets it go ahead, so a write is always recorded in the epoch it
//! happens in or an earlier one; it never touches the marked filesystem itself (a listener that
//! does deadlocks on its own event). The log thread merges accesses in memory, writes records
//! every two seconds and at cuts. The socket thread takes writers' cut requests.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use snapshot_store::RangeSet;
use snapshot_store::change_log::{CutPoint, FileKey, LogPaths, LogWriter, RecordKind};

use crate::access::{self, Access, FileId};
use crate::fanotify::Group;
use crate::scan::hidden_writers;

/// Why the tracker cannot run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrackerError {
    /// Another tracker holds the source.
    #[error("a tracker is already running for {}", .0.display())]
    AlreadyRunning(PathBuf),
    /// fanotify pre-content events are not usable here.
    #[error("fanotify change tracking is not available: {0}")]
    Unavailable(String),
    /// Files could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The change log could not be written.
    #[error(transparent)]
    Store(#[from] snapshot_store::Error),
}

enum Msg {
    Access {
        key: FileKey,
        offset: u64,
        count: u64,
        size: u64,
    },
    Overflow,
    Cut(mpsc::Sender<Result<CutPoint, String>>),
}

/// Records changes under `source` into the change log of the store at `store_root` until `stop`
/// is set (then taints the log, so that nothing recorded after is trusted). `ready` is called
/// once events are being recorded.
pub fn run(store_root: &Path, source: &Path, stop: Arc<AtomicBool>, ready: impl FnOnce()) -> Result<(), TrackerError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| TrackerError::Io { path, source }
    };
    let source = fs::canonicalize(source).map_err(io(source))?;
    let paths = LogPaths::new(store_root, &source);
    let base = paths.dir.parent().unwrap_or(store_root).to_path_buf();
    fs::create_dir_all(&base).map_err(io(&base))?;
    let lock = fs::File::create(&paths.lock).map_err(io(&paths.lock))?;
    if lock.try_lock().is_err() {
        return Err(TrackerError::AlreadyRunning(source));
    }
    let group = Group::new().map_err(|e| match e.raw_os_error() {
        Some(libc::EPERM) => TrackerError::Unavailable("it needs root (CAP_SYS_ADMIN)".into()),
        Some(libc::EINVAL) => {
            TrackerError::Unavailable("this kernel has no fanotify pre-content events (Linux 6.14 or newer)".into())
        }
        _ => TrackerError::Unavailable(e.to_string()),
    })?;
    group.mark_filesystem(&source).map_err(|e| match e.raw_os_error() {
        Some(libc::EOPNOTSUPP) | Some(libc::EINVAL) => TrackerError::Unavailable(format!(
            "the filesystem of {} does not support pre-content events ({e})",
            source.display()
        )),
        _ => TrackerError::Unavailable(e.to_string()),
    })?;
    let boot = boot_id();
    let session = session_id();
    let mut log = LogWriter::start(paths.clone(), boot, session)?;
    let _ = fs::remove_file(&paths.socket);
    let listener = UnixListener::bind(&paths.socket).map_err(io(&paths.socket))?;
    listener.set_nonblocking(true).map_err(io(&paths.socket))?;

    let (tx, rx) = mpsc::channel::<Msg>();
    let ignored: Arc<Mutex<HashSet<i32>>> = Arc::new(Mutex::new(HashSet::from([std::process::id() as i32])));
    let mut state = LogState::new(&source);
    // Files written in ways fanotify cannot see are whole-dirty from the start.
    state.mark_hidden_writers();
    ready();
    let result = std::thread::scope(|s| {
        let (stop_e, ignored_e, tx_e, source_e) = (Arc::clone(&stop), Arc::clone(&ignored), tx.clone(), source.clone());
        let group = &group;
        s.spawn(move || event_loop(group, &source_e, &ignored_e, &tx_e, &stop_e));
        let (stop_s, ignored_s, tx_s) = (Arc::clone(&stop), Arc::clone(&ignored), tx.clone());
        s.spawn(move || socket_loop(&listener, &ignored_s, &tx_s, &stop_s));
        drop(tx);
        log_loop(&mut log, &mut state, &rx, &stop)
    });
    let _ = fs::remove_file(&paths.socket);
    // Whatever happens next is not recorded: the log must not be trusted past this point.
    let _ = log.append(RecordKind::Taint, FileKey::default(), 0, 0);
    let _ = log.sync();
    result
}

fn event_loop(group: &Group, source: &Path, ignored: &Mutex<HashSet<i32>>, tx: &mpsc::Sender<Msg>, stop: &AtomicBool) {
    let mut buf = vec![0u8; 256 << 10];
    while !stop.load(Ordering::Relaxed) {
        let events = match group.read(&mut buf, 200) {
            Ok(e) => e,
            Err(_) => {
                let _ = tx.send(Msg::Overflow);
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        for ev in events {
            if ev.mask & libc::FAN_Q_OVERFLOW != 0 {
                let _ = tx.send(Msg::Overflow);
            }
            let Some(file) = ev.file else { continue };
            // Writers between their cut and the end of their write read the source; the tracker
            // itself never touches it. Everything else is recorded unless proven a read.
            let ignore = |tid| access::process_of(tid).is_some_and(|p| ignored.lock().contains(&p));
            if let Some((key, size)) = identify(&file, source)
                && !ignore(ev.tid)
                && access::classify(
                    ev.tid,
                    FileId {
                        dev: key.dev,
                        ino: key.ino,
                    },
                ) == Access::Write
            {
                let (offset, count) = ev.range.unwrap_or((0, 0));
                // Recorded before the access may proceed: it lands in this epoch or an earlier one.
                let _ = tx.send(Msg::Access {
                    key,
                    offset,
                    count,
                    size,
                });
            }
            group.allow(&file);
        }
    }
}

/// The identity and size of an event's file, if it is a regular file under `source`.
fn identify(file: &OwnedFd, source: &Path) -> Option<(FileKey, u64)> {
    use rustix::fs::{AtFlags, StatxFlags, statx};
    let x = statx(
        file,
        "",
        AtFlags::EMPTY_PATH,
        StatxFlags::BASIC_STATS | StatxFlags::BTIME,
    )
    .ok()?;
    if u32::from(x.stx_mode) & libc::S_IFMT != libc::S_IFREG {
        return None;
    }
    let path = fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd())).ok()?;
    if !path.starts_with(source) {
        return None;
    }
    let btime_ns = if x.stx_mask & StatxFlags::BTIME.bits() != 0 {
        x.stx_btime.tv_sec * 1_000_000_000 + i64::from(x.stx_btime.tv_nsec)
    } else {
        0
    };
    Some((
        FileKey {
            dev: rustix::fs::makedev(x.stx_dev_major, x.stx_dev_minor),
            ino: x.stx_ino,
            generation: 0,
            btime_ns,
        },
        x.stx_size,
    ))
}

fn socket_loop(listener: &UnixListener, ignored: &Arc<Mutex<HashSet<i32>>>, tx: &mpsc::Sender<Msg>, stop: &AtomicBool) {
    std::thread::scope(|s| {
        while !stop.load(Ordering::Relaxed) {
            match listener.accept() {
                Ok((stream, _)) => {
                    let (ignored, tx) = (Arc::clone(ignored), tx.clone());
                    s.spawn(move || serve(stream, &ignored, &tx, stop));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    });
}

/// One writer's connection: `CUT <pid>` (ignore that process's reads, cut, answer `OK <cut>`),
/// then `DONE <pid>` or a closed connection.
fn serve(stream: UnixStream, ignored: &Mutex<HashSet<i32>>, tx: &mpsc::Sender<Msg>, stop: &AtomicBool) {
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    let Ok(mut w) = stream.try_clone() else { return };
    let mut reader = BufReader::new(stream);
    let mut pids = Vec::new();
    let mut line = String::new();
    while !stop.load(Ordering::Relaxed) {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => continue,
            Err(_) => break,
        }
        let mut parts = line.split_whitespace();
        match (parts.next(), parts.next().and_then(|p| p.parse::<i32>().ok())) {
            (Some("CUT"), Some(pid)) => {
                ignored.lock().insert(pid);
                pids.push(pid);
                let (reply_tx, reply_rx) = mpsc::channel();
                let answer = match tx.send(Msg::Cut(reply_tx)).ok().and_then(|()| reply_rx.recv().ok()) {
                    Some(Ok(cut)) => format!("OK {}", cut.to_text()),
                    Some(Err(e)) => format!("ERR {e}"),
                    None => "ERR the tracker is stopping".to_string(),
                };
                let _ = writeln!(w, "{answer}");
            }
            (Some("DONE"), Some(pid)) => {
                ignored.lock().remove(&pid);
                break;
            }
            _ => {
                let _ = writeln!(w, "ERR unknown request");
            }
        }
    }
    let mut ig = ignored.lock();
    for p in pids {
        ig.remove(&p);
    }
}

/// Accesses merged in memory until they are written out.
struct LogState {
    source: PathBuf,
    ranges: HashMap<FileKey, RangeSet>,
    whole: HashSet<FileKey>,
    epoch_start_ns: i64,
}

impl LogState {
    fn new(source: &Path) -> Self {
        LogState {
            source: source.to_path_buf(),
            ranges: HashMap::new(),
            whole: HashSet::new(),
            epoch_start_ns: now_ns(),
        }
    }

    fn access(&mut self, key: FileKey, offset: u64, count: u64, size: u64) {
        if key.btime_ns == 0 || key.btime_ns >= self.epoch_start_ns || count == 0 {
            // Born in this epoch (the inode may be a reused number), no birth time to tell, or
            // the whole file (a clone, a zero-length access).
            self.whole.insert(key);
            return;
        }
        let entry = self.ranges.entry(key).or_default();
        let end = offset.saturating_add(count);
        // And from the size at this moment to the end: O_APPEND writes report the file position,
        // and growth after truncation leaves zeros no event covers.
        let tail = size / 4096 * 4096;
        *entry = entry.union(&RangeSet::from_ranges([offset..end, tail..u64::MAX]));
    }

    fn mark_loop_backing_files(&mut self) {
        for (dev, ino, _) in crate::scan::loop_backing_files(&self.source) {
            self.whole.insert(FileKey {
                dev,
                ino,
                generation: 0,
                btime_ns: 0,
            });
        }
    }

    fn mark_hidden_writers(&mut self) {
        for (dev, ino, path) in hidden_writers(&self.source) {
            let btime_ns = fs::metadata(&path)
                .ok()
                .and_then(|m| m.created().ok())
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_nanos() as i64);
            self.whole.insert(FileKey {
                dev,
                ino,
                generation: 0,
                btime_ns,
            });
        }
    }

    fn flush(&mut self, log: &mut LogWriter) -> snapshot_store::Result<()> {
        for key in self.whole.drain() {
            self.ranges.remove(&key);
            log.append(RecordKind::Whole, key, 0, 0)?;
        }
        for (key, set) in self.ranges.drain() {
            for r in set.ranges() {
                if r.end == u64::MAX {
                    log.append(RecordKind::FromOffset, key, r.start, 0)?;
                } else {
                    log.append(RecordKind::Range, key, r.start, r.end - r.start)?;
                }
            }
        }
        Ok(())
    }
}

fn log_loop(
    log: &mut LogWriter,
    state: &mut LogState,
    rx: &mpsc::Receiver<Msg>,
    stop: &AtomicBool,
) -> Result<(), TrackerError> {
    let mut last_flush = Instant::now();
    let mut last_poll = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        // Loop devices write their backing files without events: look for them often, not only
        // at cuts (one set up and torn down between two looks is caught by the writer's check
        // of changes without records).
        if last_poll.elapsed() > Duration::from_millis(500) {
            state.mark_loop_backing_files();
            last_poll = Instant::now();
        }
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(Msg::Access {
                key,
                offset,
                count,
                size,
            }) => state.access(key, offset, count, size),
            Ok(Msg::Overflow) => {
                state.flush(log)?;
                log.append(RecordKind::Taint, FileKey::default(), 0, 0)?;
            }
            Ok(Msg::Cut(reply)) => {
                state.mark_hidden_writers();
                let cut = state.flush(log).and_then(|()| log.cut()).map_err(|e| e.to_string());
                state.epoch_start_ns = now_ns();
                let _ = reply.send(cut);
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        if last_flush.elapsed() > Duration::from_secs(2) {
            state.flush(log)?;
            log.sync()?;
            last_flush = Instant::now();
        }
    }
    state.flush(log)?;
    Ok(())
}

fn boot_id() -> [u8; 16] {
    let text = fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default();
    let hex: String = text.chars().filter(char::is_ascii_hexdigit).collect();
    let mut out = [0u8; 16];
    for (i, slot) in out.iter_mut().enumerate() {
        *slot = hex
            .get(2 * i..2 * i + 2)
            .and_then(|h| u8::from_str_radix(h, 16).ok())
            .unwrap_or(0);
    }
    out
}

fn session_id() -> [u8; 16] {
    let seed = format!("{} {} {:?}", std::process::id(), now_ns(), std::thread::current().id());
    let mut out = [0u8; 16];
    out.copy_from_slice(&blake3::hash(seed.as_bytes()).as_bytes()[..16]);
    out
}

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}
