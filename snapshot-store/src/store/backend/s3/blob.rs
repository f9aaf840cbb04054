//! Random-access reads of one object: opened by a suffix range GET, which returns the object's
//! length and its last bytes (a data object's index and trailer, a small file whole), and, for
//! the objects under `objects/`, a GET of its first bytes in parallel (a data object's header
//! and first frames); then one range GET per random read outside them. Sequential reads read ahead: a window that starts at
//! 1 MiB and doubles up to 16 MiB while the reads go on where the last one ended, with the next
//! window already being fetched by a thread of its own while this one is used; up to eight
//! sequential readers of one object each have their own window. A read that lands in a window
//! being fetched waits for it, and a new window stops where another reader's begins, so reads
//! that arrive out of order (the kernel sends them from several threads) fetch little twice.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;

use parking_lot::Mutex;

use super::S3Backend;
use super::client::{Body, Client};
use crate::error::{Error, RemoteFailure, Result};
use crate::store::backend::{Access, Backend, Blob, Key};

/// Bytes fetched from the end of an object when it is opened.
const TAIL: u64 = 64 << 10;
/// Bytes fetched from the start of an object under `objects/` when it is opened.
const HEAD: u64 = 64 << 10;
/// The longest file an open fetches whole when the caller expects no more.
const SMALL_WHOLE: u64 = 1 << 20;
/// The first read-ahead window of a sequential read.
const AHEAD_MIN: u64 = 1 << 20;
/// The largest read-ahead window.
const AHEAD_MAX: u64 = 16 << 20;
/// Read-ahead bytes all open objects of the process may hold; beyond, reads are exact.
const AHEAD_BUDGET: u64 = 512 << 20;

/// Read-ahead bytes held now, process-wide.
static AHEAD_HELD: AtomicU64 = AtomicU64::new(0);

/// Read-ahead bytes, counted in [`AHEAD_HELD`] while they live.
#[derive(Debug)]
struct Held(Vec<u8>);

impl Held {
    fn new(bytes: Vec<u8>) -> Held {
        AHEAD_HELD.fetch_add(bytes.len() as u64, Ordering::Relaxed);
        Held(bytes)
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        AHEAD_HELD.fetch_sub(self.0.len() as u64, Ordering::Relaxed);
    }
}

/// Sequential streams of one object followed at once (the decoding threads of one restore read
/// interleaved windows of a file).
const STREAMS: usize = 8;

/// The read-ahead state of one object: one [`Stream`] per sequential reader.
#[derive(Debug, Default)]
struct Ahead {
    streams: Vec<Stream>,
    /// Counts reads, for choosing the least recently used stream to replace.
    tick: u64,
}

impl Ahead {
    /// The stream a read of `[offset, end)` continues, or a new one (replacing the least
    /// recently used when there are [`STREAMS`]).
    fn stream_for(&mut self, offset: u64, end: u64) -> usize {
        self.tick += 1;
        let found = self.streams.iter().position(|s| {
            s.bytes
                .as_ref()
                .is_some_and(|b| offset >= s.start && end <= s.start + b.0.len() as u64)
                || s.next
                    .as_ref()
                    .is_some_and(|(start, len, _)| offset >= *start && end <= start + len)
                || s.last_end == offset
        });
        let i = match found {
            Some(i) => i,
            None if self.streams.len() < STREAMS => {
                self.streams.push(Stream::default());
                self.streams.len() - 1
            }
            None => {
                let lru = (0..self.streams.len())
                    .min_by_key(|&i| self.streams[i].used)
                    .unwrap_or(0);
                self.streams[lru] = Stream::default();
                lru
            }
        };
        self.streams[i].used = self.tick;
        i
    }
}

/// The read-ahead window of one sequential reader.
#[derive(Debug, Default)]
struct Stream {
    /// When it was last read (a tick of [`Ahead`]).
    used: u64,
    /// Bytes at `start`.
    start: u64,
    bytes: Option<Held>,
    /// The next window, being fetched: its start, its length and the thread fetching it.
    next: Option<(u64, u64, JoinHandle<Result<Held>>)>,
    /// The size of the last window.
    window: u64,
    /// Where the last sequential read ended.
    last_end: u64,
}

impl Stream {
    /// Copies `buf.len()` bytes at `offset` if the window holds them; the window is let go once
    /// read to its end.
    fn take(&mut self, buf: &mut [u8], offset: u64) -> bool {
        let Some(bytes) = &self.bytes else { return false };
        let end = offset + buf.len() as u64;
        if offset < self.start || end > self.start + bytes.0.len() as u64 {
            return false;
        }
        let at = (offset - self.start) as usize;
        buf.copy_from_slice(&bytes.0[at..at + buf.len()]);
        if end == self.start + bytes.0.len() as u64 {
            self.bytes = None;
        }
        true
    }
}

/// An object open for reads.
#[derive(Debug)]
pub(crate) struct S3Blob {
    client: Arc<Client>,
    object: String,
    /// The store file, for messages.
    describe: String,
    len: u64,
    /// The object's first bytes, when fetched at open (empty otherwise).
    head: Vec<u8>,
    /// Where [`S3Blob::tail`] starts in the object.
    tail_start: u64,
    tail: Vec<u8>,
    ahead: Mutex<Ahead>,
}

impl S3Blob {
    /// Opens store file `key` of `backend`, or `None` when there is none. `small` is the length
    /// the caller expects the file to have at most, when it knows one: up to [`SMALL_WHOLE`],
    /// one GET of that many last bytes then fetches all of it.
    pub(crate) fn open(backend: &S3Backend, key: &Key, small: Option<u64>) -> Result<Option<S3Blob>> {
        let small = small.filter(|len| *len <= SMALL_WHOLE);
        let suffix = small.unwrap_or(0).max(TAIL);
        let range = [("range", format!("bytes=-{suffix}"))];
        let first = [("range", format!("bytes=0-{}", HEAD - 1))];
        // The start of the object in parallel with its end: a data object's header is read
        // next, and its first frame soon after (unless the end is all of it).
        let wants_head = small.is_none() && key.as_str().starts_with("objects/");
        let (reply, head) = std::thread::scope(|scope| {
            let head = wants_head.then(|| scope.spawn(|| backend.get(key, &first, &[206])));
            let reply = backend.get(key, &range, &[200, 206, 416]);
            (reply, head.and_then(|h| h.join().ok()))
        });
        let reply = reply?;
        let (len, tail_start, tail) = match reply.status {
            404 => return Ok(None),
            // Empty objects have no suffix to give.
            416 => match backend.read(key)? {
                Some(body) => (body.len() as u64, 0, body),
                None => return Ok(None),
            },
            200 => (reply.body.len() as u64, 0, reply.body),
            _ => {
                let (start, total) = content_range(reply.header("content-range")).ok_or_else(|| Error::Remote {
                    what: backend.what("GET", key),
                    kind: RemoteFailure::Protocol,
                    reason: "a range reply without a valid Content-Range".into(),
                })?;
                if start + reply.body.len() as u64 != total {
                    return Err(Error::Remote {
                        what: backend.what("GET", key),
                        kind: RemoteFailure::Protocol,
                        reason: format!(
                            "asked for the last {suffix} bytes, got {} from byte {start} of {total}",
                            reply.body.len()
                        ),
                    });
                }
                (total, start, reply.body)
            }
        };
        // Kept when it is the object's start as the suffix found it (a failed or other reply is
        // only a read saved less).
        let head = match head {
            Some(Ok(h))
                if tail_start > 0
                    && h.status == 206
                    && content_range(h.header("content-range")) == Some((0, len))
                    && h.body.len() as u64 == HEAD.min(len) =>
            {
                h.body
            }
            _ => Vec::new(),
        };
        Ok(Some(S3Blob {
            client: Arc::clone(&backend.client),
            object: backend.object_key(key),
            describe: backend.describe(key),
            len,
            head,
            tail_start,
            tail,
            ahead: Mutex::new(Ahead::default()),
        }))
    }
}

impl Blob for S3Blob {
    fn len(&self) -> u64 {
        self.len
    }

    fn whole(&self) -> Option<&[u8]> {
        (self.tail_start == 0).then_some(&self.tail[..])
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64, access: Access, what: &str) -> Result<()> {
        let end = offset + buf.len() as u64;
        if end > self.len {
            return Err(Error::corrupt(what, format!("truncated (ends before byte {end})")));
        }
        if buf.is_empty() {
            return Ok(());
        }
        if offset >= self.tail_start {
            let at = (offset - self.tail_start) as usize;
            buf.copy_from_slice(&self.tail[at..at + buf.len()]);
            return Ok(());
        }
        if end <= self.head.len() as u64 {
            buf.copy_from_slice(&self.head[offset as usize..end as usize]);
            return Ok(());
        }
        match access {
            Access::Random => self.read_exact_range(buf, offset, what),
            Access::Sequential => self.read_ahead(buf, offset, what),
        }
    }
}

impl S3Blob {
    /// Fills `buf` from `offset` with one range GET of exactly those bytes.
    fn read_exact_range(&self, buf: &mut [u8], offset: u64, what: &str) -> Result<()> {
        let len = buf.len() as u64;
        let got = fetch(&self.client, &self.object, &self.describe, self.len, offset, len, what)?;
        buf.copy_from_slice(&got);
        Ok(())
    }

    /// A sequential read through the read-ahead window.
    fn read_ahead(&self, buf: &mut [u8], offset: u64, what: &str) -> Result<()> {
        let mut all = self.ahead.lock();
        let end = offset + buf.len() as u64;
        let i = all.stream_for(offset, end);
        // The windows other streams hold or are fetching: a new window stops where the next of
        // them starts, and none is fetched ahead into one, so that no byte is fetched twice.
        let others: Vec<(u64, u64)> = (all.streams.iter().enumerate())
            .filter(|(j, _)| *j != i)
            .flat_map(|(_, s)| {
                let held = s.bytes.as_ref().map(|b| (s.start, s.start + b.0.len() as u64));
                [held, s.next.as_ref().map(|n| (n.0, n.0 + n.1))]
            })
            .flatten()
            .collect();
        let next_other = |from: u64| (others.iter().map(|w| w.0).filter(|&s| s > from).min()).unwrap_or(u64::MAX);
        let covered = |at: u64| others.iter().any(|&(s, e)| at >= s && at < e);
        let a = &mut all.streams[i];
        let sequential = offset == a.last_end;
        a.last_end = end;
        if a.take(buf, offset) {
            return Ok(());
        }
        // The window being fetched, if this read starts in it, or runs on into it from the end
        // of the window held (a frame across the two): its bytes join what is left of this
        // one, so that no byte is fetched twice.
        let held_end = a.bytes.as_ref().map(|b| a.start + b.0.len() as u64);
        // A read inside the window being fetched (another thread of the same reader got ahead)
        // waits for it too, rather than fetching those bytes again.
        let into_next = |next: u64, len: u64| {
            (offset >= next && end <= next + len)
                || (held_end == Some(next) && offset >= a.start && offset < next && end > next)
        };
        if let Some((start, len, _)) = &a.next
            && into_next(*start, *len)
            && let Some((start, _, handle)) = a.next.take()
        {
            let fetched = handle.join().map_err(|_| Error::Internal {
                what: format!("the read-ahead thread of {}", self.describe),
            })?;
            if let Ok(bytes) = fetched {
                match a.bytes.take() {
                    // Contiguous: one window of both. A read running on from the held part
                    // lets go of what it passed; one ahead of it (another thread's) keeps the
                    // held part's last window for the reads that still come.
                    Some(held) if held_end == Some(start) => {
                        let keep_from = if offset < start {
                            offset
                        } else {
                            start.saturating_sub(AHEAD_MAX).max(a.start)
                        };
                        let mut joined = held.0[(keep_from - a.start) as usize..].to_vec();
                        joined.extend_from_slice(&bytes.0);
                        drop((held, bytes));
                        a.start = keep_from;
                        a.bytes = Some(Held::new(joined));
                    }
                    _ => {
                        a.start = start;
                        a.bytes = Some(bytes);
                    }
                }
            }
        }
        if !a.take(buf, offset) {
            a.window = if sequential {
                (a.window * 2).clamp(AHEAD_MIN, AHEAD_MAX)
            } else {
                AHEAD_MIN
            };
            let stop = self.tail_start.max(end).min(next_other(offset).max(end));
            let len = a.window.max(buf.len() as u64).min(stop - offset);
            if AHEAD_HELD.load(Ordering::Relaxed) + len > AHEAD_BUDGET {
                return self.read_exact_range(buf, offset, what);
            }
            let got = fetch(&self.client, &self.object, &self.describe, self.len, offset, len, what)?;
            a.start = offset;
            a.bytes = Some(Held::new(got));
            if !a.take(buf, offset) {
                return Err(Error::corrupt(what, format!("truncated (ends before byte {end})")));
            }
        }
        // Keep the next window coming while this one is read.
        let next_start = a.start + a.bytes.as_ref().map_or(0, |b| b.0.len() as u64);
        let next_start = if a.bytes.is_some() { next_start } else { end };
        if sequential && a.next.is_none() && next_start < self.tail_start && !covered(next_start) {
            let len = (a.window * 2)
                .min(AHEAD_MAX)
                .min(self.tail_start.min(next_other(next_start)) - next_start);
            if AHEAD_HELD.load(Ordering::Relaxed) + len <= AHEAD_BUDGET {
                let (client, object, describe, total, what) = (
                    Arc::clone(&self.client),
                    self.object.clone(),
                    self.describe.clone(),
                    self.len,
                    what.to_string(),
                );
                let handle = std::thread::Builder::new()
                    .name("read ahead".into())
                    .spawn(move || fetch(&client, &object, &describe, total, next_start, len, &what).map(Held::new));
                if let Ok(h) = handle {
                    a.window = len;
                    a.next = Some((next_start, len, h));
                }
            }
        }
        Ok(())
    }
}

/// `len` bytes at `offset` of `object` (`total` bytes long), by a range GET.
fn fetch(
    client: &Client,
    object: &str,
    describe: &str,
    total: u64,
    offset: u64,
    len: u64,
    what: &str,
) -> Result<Vec<u8>> {
    let end = offset + len;
    let request = || format!("GET {describe} bytes {offset}-{}", end - 1);
    let range = [("range", format!("bytes={offset}-{}", end - 1))];
    let reply = client.send(&request, &[200, 206], &|| {
        client.object(rusty_s3::Method::Get, object, &[], &range, Body::Empty)
    })?;
    let mut body = reply.body;
    match reply.status {
        // A server that ignores ranges sends the whole object.
        200 if body.len() as u64 == total => {
            body.truncate(end as usize);
            body.drain(..offset as usize);
        }
        206 if content_range(reply.headers.get("content-range").and_then(|v| v.to_str().ok()))
            == Some((offset, total)) => {}
        _ => {
            return Err(Error::corrupt(
                what,
                format!(
                    "the object changed while it was read ({} bytes where {len} were asked at {offset})",
                    body.len()
                ),
            ));
        }
    }
    if body.len() as u64 != len {
        return Err(Error::corrupt(what, format!("truncated (ends before byte {end})")));
    }
    Ok(body)
}

/// `(first byte, total length)` of a `Content-Range: bytes FIRST-LAST/TOTAL` header.
fn content_range(header: Option<&str>) -> Option<(u64, u64)> {
    let rest = header?.trim().strip_prefix("bytes ")?;
    let (span, total) = rest.split_once('/')?;
    let (first, _) = span.split_once('-')?;
    Some((first.trim().parse().ok()?, total.trim().parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::content_range;

    #[test]
    fn content_ranges_parse() {
        assert_eq!(content_range(Some("bytes 95-99/100")), Some((95, 100)));
        assert_eq!(content_range(Some("bytes 0-0/1")), Some((0, 1)));
        assert_eq!(content_range(Some("bytes */100")), None);
        assert_eq!(content_range(None), None);
    }
}
