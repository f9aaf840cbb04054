//! A store under a bucket prefix of an S3-compatible object store.
//!
//! Keys are the store's file names under the prefix (`PREFIX/config`, `PREFIX/objects/ab/ab…`).
//! Publication is a `PUT` with `If-None-Match: *`: 412 means the key exists and is kept, so
//! content-addressed files are uploaded once however often a write is repeated, and the
//! manifest's conditional `PUT` is the commit point. Large files go up in parts
//! ([`upload`]); reads of large files are ranged ([`blob`]).

mod blob;
mod client;
mod lock;
mod readers;
mod upload;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::Mutex;
use rusty_s3::actions::ListObjectsV2;
use rusty_s3::{Bucket, Credentials, UrlStyle};

pub use client::RemoteStats;
use client::{Body, Client, ClientOptions, Reply, Request, Verb};
#[cfg(test)]
pub(super) use upload::MULTIPART_MIN;

use super::{Backend, Blob, Key, LockHold, PutOutcome, ReaderHold, Staged};
use crate::error::{Error, RemoteFailure, Result};
use crate::store::LiveReader;
use crate::store::credentials::S3Credentials;
use crate::store::location::S3Location;

/// The files read on every open (and `prune/condemned`, by every writer) of which a copy is
/// kept locally with its ETag.
const KEPT: [&str; 4] = ["config", "prune/generation", "prune/epoch", "prune/condemned"];

/// Connections used by default for uploads and parallel reads.
pub const DEFAULT_CONNECTIONS: usize = 4;

/// Small reads (a whole small file, one frame) in flight per connection: each is one round
/// trip for few bytes, so the link is idle unless many wait at once.
const SMALL_READS_PER_CONNECTION: usize = 8;

/// How to talk to an object store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteOptions {
    /// Uploads and large reads in flight at once; small reads (a restore's small files) use
    /// eight times as many (see [`RemoteOptions::small_reads`]).
    pub connections: usize,
    /// Attempts after the first for a request that failed in a way a retry may mend.
    pub retries: u32,
    /// Virtual-host addressing (`BUCKET.HOST`) instead of path-style (`HOST/BUCKET`); `None`
    /// picks virtual-host for AWS endpoints and path-style for all others.
    pub virtual_host: Option<bool>,
    /// Keys per listing page (the server's maximum, 1000, when `None`).
    pub list_page: Option<usize>,
    /// How long the writer lock stays valid without a refresh (its holder refreshes it four
    /// times as often).
    pub lock_ttl: std::time::Duration,
    /// Write even to a server that ignores conditional writes (`If-None-Match`, `If-Match`):
    /// safe only while the store never has two writers at once.
    pub unsafe_no_conditional_writes: bool,
}

impl RemoteOptions {
    /// How many small reads (a whole small file, one frame) may be in flight at once: eight
    /// per connection, as each waits a round trip for few bytes.
    pub fn small_reads(&self) -> usize {
        self.connections.max(1) * SMALL_READS_PER_CONNECTION
    }
}

impl Default for RemoteOptions {
    fn default() -> Self {
        RemoteOptions {
            connections: DEFAULT_CONNECTIONS,
            retries: 6,
            virtual_host: None,
            list_page: None,
            lock_ttl: std::time::Duration::from_secs(120),
            unsafe_no_conditional_writes: false,
        }
    }
}

/// A store in a bucket prefix.
#[derive(Debug)]
pub(crate) struct S3Backend {
    client: Arc<Client>,
    pub(super) location: S3Location,
    /// `PREFIX/`, or empty for a whole bucket.
    prefix: String,
    spool: PathBuf,
    /// Where copies of the files in [`KEPT`] are kept with their ETags (see
    /// [`read_validated`](S3Backend::read_validated)), when there is a cache directory.
    kept: Option<PathBuf>,
    options: RemoteOptions,
    /// Part uploads in flight.
    part_slots: upload::PartSlots,
}

impl S3Backend {
    /// A backend for `location` signing with `credentials`, spooling into `spool`; sends
    /// nothing yet.
    pub(crate) fn new(
        location: &S3Location,
        credentials: &S3Credentials,
        options: &RemoteOptions,
        spool: PathBuf,
    ) -> Result<S3Backend> {
        let endpoint: url::Url = location.endpoint().parse().map_err(|e| Error::Remote {
            what: location.to_string(),
            kind: RemoteFailure::Protocol,
            reason: format!("the endpoint is not a URL: {e}"),
        })?;
        let aws = location.host.ends_with(".amazonaws.com") || location.host == "amazonaws.com";
        let style = match options.virtual_host.unwrap_or(aws && !location.bucket.contains('.')) {
            true => UrlStyle::VirtualHost,
            false => UrlStyle::Path,
        };
        let bucket =
            Bucket::new(endpoint, style, location.bucket.clone(), credentials.region.clone()).map_err(|e| {
                Error::Remote {
                    what: location.to_string(),
                    kind: RemoteFailure::Protocol,
                    reason: format!("cannot address bucket {}: {e}", location.bucket),
                }
            })?;
        let creds = match &credentials.session_token {
            Some(t) => Credentials::new_with_token(&credentials.access_key, &credentials.secret_key, t),
            None => Credentials::new(&credentials.access_key, &credentials.secret_key),
        };
        let client = Client::new(
            bucket,
            creds,
            ClientOptions {
                retries: options.retries,
                pool: options.small_reads(),
            },
        );
        let prefix = match location.prefix.as_str() {
            "" => String::new(),
            p => format!("{p}/"),
        };
        Ok(S3Backend {
            client: Arc::new(client),
            location: location.clone(),
            prefix,
            spool,
            kept: None,
            options: options.clone(),
            part_slots: upload::PartSlots::default(),
        })
    }

    /// Keeps copies of the files in [`KEPT`] in `dir` (named after the location, so that they
    /// are found before the store's id is known).
    pub(crate) fn set_kept_dir(&mut self, dir: PathBuf) {
        self.kept = Some(dir);
    }

    /// Puts the spool (`tmp/`) in `dir`, the store's local state directory (known once the
    /// store's id is read).
    pub(crate) fn set_local_dir(&mut self, dir: &Path) {
        self.spool = dir.join("tmp");
    }

    /// The request counters so far.
    pub(crate) fn stats(&self) -> RemoteStats {
        self.client.counters.snapshot()
    }

    /// A listing of at most one key of the store's prefix (404 when the bucket is missing).
    fn list_one(&self) -> Result<Reply> {
        let what = || format!("LIST {}", self.location);
        self.client.send(&what, &[200, 404], &|| {
            let mut action = self.client.bucket().list_objects_v2(Some(self.client.credentials()));
            if !self.prefix.is_empty() {
                action.with_prefix(self.prefix.as_str());
            }
            action.with_max_keys(1);
            Request::bare(rusty_s3::Method::Get, Verb::List, Client::sign(action, &[]))
        })
    }

    /// The error for a missing bucket.
    pub(super) fn missing_bucket(&self, advice: &str) -> Error {
        Error::Remote {
            what: format!("LIST {}", self.location),
            kind: RemoteFailure::NoSuchBucket,
            reason: format!(
                "bucket {} does not exist at {}{advice}",
                self.location.bucket,
                self.location.endpoint()
            ),
        }
    }

    /// Fails with a missing-bucket error when the bucket does not exist (a HEAD of a key in a
    /// missing bucket says only 404).
    pub(crate) fn check_bucket(&self) -> Result<()> {
        match self.list_one()?.status {
            404 => Err(self.missing_bucket("")),
            _ => Ok(()),
        }
    }

    /// Checks that the bucket exists (creating it when `create_bucket`) and that the prefix
    /// holds nothing, for a new store.
    pub(crate) fn prepare_empty(&self, create_bucket: bool) -> Result<()> {
        let mut reply = self.list_one()?;
        if reply.status == 404 {
            if !create_bucket {
                return Err(self.missing_bucket(" (create it, or pass --create-bucket)"));
            }
            let create = || format!("PUT (create bucket) {}", self.location.bucket);
            // The body names the region (every region but us-east-1 needs it).
            let body = self.client.bucket().create_bucket(self.client.credentials()).body();
            let made = self.client.send(&create, &[200, 409], &|| Request {
                method: rusty_s3::Method::Put,
                verb: Verb::Put,
                url: Client::sign(self.client.bucket().create_bucket(self.client.credentials()), &[]),
                headers: Vec::new(),
                body: Body::Bytes(body.as_bytes()),
            })?;
            // 409 BucketAlreadyOwnedByYou: another init made it meanwhile. Any other 409 (the
            // name belongs to someone else) is an error.
            if made.status == 409 && client::error_code(&made.body).as_deref() != Some("BucketAlreadyOwnedByYou") {
                return Err(Error::Remote {
                    what: create(),
                    kind: RemoteFailure::Denied,
                    reason: format!(
                        "bucket {} exists and belongs to someone else ({})",
                        self.location.bucket,
                        client::error_code(&made.body).unwrap_or_else(|| "HTTP 409".into())
                    ),
                });
            }
            reply = self.list_one()?;
        }
        let text = String::from_utf8_lossy(&reply.body);
        let page = ListObjectsV2::parse_response(&text).map_err(|e| Error::Remote {
            what: format!("LIST {}", self.location),
            kind: RemoteFailure::Protocol,
            reason: format!("the listing does not parse: {e}"),
        })?;
        if reply.status != 200 || !page.contents.is_empty() {
            return Err(Error::AlreadyExists {
                path: PathBuf::from(self.location.to_string()),
            });
        }
        Ok(())
    }
    /// The ETag of store file `key` (a HEAD request), or `None` when there is none.
    pub(crate) fn head(&self, key: &Key) -> Result<Option<String>> {
        let object = self.object_key(key);
        let reply = self.client.send(&|| self.what("HEAD", key), &[200, 404], &|| {
            self.client
                .object(rusty_s3::Method::Head, &object, &[], &[], Body::Empty)
        })?;
        Ok((reply.status == 200).then(|| reply.header("etag").unwrap_or_default().to_string()))
    }

    /// The bytes of store file `key`, from `copy` (a local file of the ETag, a checksum and the
    /// bytes it had when last read, or [`ABSENT`] when it was missing) when a HEAD finds the
    /// same ETag (or still nothing); else read with one GET (no HEAD first when there is no
    /// valid copy), and `copy` rewritten.
    fn read_validated(&self, key: &Key, copy: &Path) -> Result<Option<Vec<u8>>> {
        let kept = std::fs::read(copy).ok();
        if let Some((etag, bytes)) = kept.as_deref().and_then(kept_parts) {
            match self.head(key)? {
                None if etag == ABSENT => return Ok(None),
                None => {
                    write_kept(copy, ABSENT, b"");
                    return Ok(None);
                }
                Some(now) if now == etag => return Ok(Some(bytes.to_vec())),
                Some(_) => {}
            }
        }
        let reply = self.get(key, &[], &[200])?;
        if reply.status != 200 {
            write_kept(copy, ABSENT, b"");
            return Ok(None);
        }
        let fresh = reply.header("etag").unwrap_or_default();
        if !fresh.is_empty() && !fresh.contains('\n') && fresh != ABSENT {
            write_kept(copy, fresh, &reply.body);
        }
        Ok(Some(reply.body))
    }

    /// Where the local copy of store file `key` is kept, if it is one of [`KEPT`] and there is
    /// a cache directory.
    pub(crate) fn kept_copy(&self, key: &Key) -> Option<PathBuf> {
        let dir = self.kept.as_ref()?;
        KEPT.contains(&key.as_str())
            .then(|| dir.join(key.as_str().replace('/', "%")))
    }

    /// The object key of store file `key`.
    fn object_key(&self, key: &Key) -> String {
        format!("{}{}", self.prefix, key.as_str())
    }

    /// `VERB s3:…/key`, for errors.
    fn what(&self, verb: &str, key: &Key) -> String {
        format!("{verb} {}", self.describe(key))
    }

    /// GET of store file `key`, with `headers`, expecting one of `expected` (404 other than a
    /// missing bucket is always accepted).
    fn get(&self, key: &Key, headers: &[(&'static str, String)], expected: &[u16]) -> Result<Reply> {
        let object = self.object_key(key);
        let mut accept = expected.to_vec();
        accept.push(404);
        let reply = self.client.send(&|| self.what("GET", key), &accept, &|| {
            self.client
                .object(rusty_s3::Method::Get, &object, &[], headers, Body::Empty)
        })?;
        if reply.status == 404 && client::error_code(&reply.body).as_deref() == Some("NoSuchBucket") {
            return Err(self.missing_bucket(""));
        }
        Ok(reply)
    }

    /// PUT of `body` as store file `key`, only if absent (`If-None-Match: *`).
    fn put_if_absent(&self, key: &Key, body: Body<'_>) -> Result<PutOutcome> {
        let reply = self.put(key, body, &[("if-none-match", "*".to_string())], &[200, 201, 412])?;
        Ok(match reply.status {
            412 => PutOutcome::Exists,
            _ => PutOutcome::Created,
        })
    }

    /// PUT of `body` as store file `key`, with the (signed) headers `signed`, expecting one of
    /// `expected`.
    pub(super) fn put(
        &self,
        key: &Key,
        body: Body<'_>,
        signed: &[(&'static str, String)],
        expected: &[u16],
    ) -> Result<Reply> {
        let object = self.object_key(key);
        self.client.send(&|| self.what("PUT", key), expected, &|| {
            self.client.object(rusty_s3::Method::Put, &object, signed, &[], body)
        })
    }

    /// Uploads staged file `file` unless its key exists.
    fn upload(&self, file: &Staged) -> Result<PutOutcome> {
        let len = std::fs::metadata(&file.temp)
            .map_err(|e| Error::io(&file.temp, e))?
            .len();
        if len >= upload::MULTIPART_MIN {
            return upload::multipart(self, file, len);
        }
        self.put_if_absent(
            &file.key,
            Body::File {
                path: &file.temp,
                offset: 0,
                len,
            },
        )
    }
}

/// The ETag of a kept copy of a file that was missing (never a server's: theirs are quoted).
const ABSENT: &str = "-";

/// Writes the kept copy `copy` of a file with `etag` and `bytes`: aside, then renamed, so that a
/// crash never leaves half a copy (a failure leaves no copy, which costs a GET).
fn write_kept(copy: &Path, etag: &str, bytes: &[u8]) {
    let mut kept = format!("{etag}\n{}\n", kept_sum(etag, bytes)).into_bytes();
    kept.extend_from_slice(bytes);
    if let Some(dir) = copy.parent()
        && std::fs::create_dir_all(dir).is_ok()
        && let Ok((mut f, temp)) = crate::os::file::create_temp(dir, "kept")
    {
        let written = std::io::Write::write_all(&mut f, &kept);
        drop(f);
        if written.is_err() || std::fs::rename(&temp, copy).is_err() {
            let _ = std::fs::remove_file(&temp);
        }
    }
}

/// The ETag and bytes of a kept copy (`ETag \n checksum \n bytes`), if it is whole.
fn kept_parts(kept: &[u8]) -> Option<(&str, &[u8])> {
    let mut parts = kept.splitn(3, |&b| b == b'\n');
    let (tag, sum, bytes) = (parts.next()?, parts.next()?, parts.next()?);
    let tag = std::str::from_utf8(tag).ok().filter(|t| !t.is_empty())?;
    (sum == kept_sum(tag, bytes).as_bytes()).then_some((tag, bytes))
}

/// The checksum of a kept copy: 32 hex digits of blake3(ETag, 0x00, bytes).
fn kept_sum(etag: &str, bytes: &[u8]) -> String {
    let mut h = blake3::Hasher::new();
    h.update(etag.as_bytes());
    h.update(&[0]);
    h.update(bytes);
    h.finalize().to_hex()[..32].to_string()
}

impl Backend for S3Backend {
    fn location(&self) -> String {
        self.location.to_string()
    }

    fn describe(&self, key: &Key) -> String {
        format!("{}/{}", self.location, key.as_str())
    }

    fn spool_dir(&self) -> &Path {
        &self.spool
    }

    fn read(&self, key: &Key) -> Result<Option<Vec<u8>>> {
        let reply = self.get(key, &[], &[200])?;
        Ok((reply.status == 200).then_some(reply.body))
    }

    fn open(&self, key: &Key) -> Result<Option<Box<dyn Blob>>> {
        blob::S3Blob::open(self, key, None).map(|b| b.map(|b| Box::new(b) as Box<dyn Blob>))
    }

    fn open_small(&self, key: &Key, len: u64) -> Result<Option<Box<dyn Blob>>> {
        blob::S3Blob::open(self, key, Some(len)).map(|b| b.map(|b| Box::new(b) as Box<dyn Blob>))
    }

    fn exists(&self, key: &Key) -> Result<bool> {
        Ok(self.head(key)?.is_some())
    }

    fn list(&self, dir: &str) -> Result<Vec<(Key, u64)>> {
        let prefix = format!("{}{dir}/", self.prefix);
        let what = || format!("LIST {}/{dir}/", self.location);
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let reply = self.client.send(&what, &[200], &|| {
                let mut action = self.client.bucket().list_objects_v2(Some(self.client.credentials()));
                action.with_prefix(prefix.as_str());
                if let Some(n) = self.options.list_page {
                    action.with_max_keys(n);
                }
                if let Some(t) = &token {
                    action.with_continuation_token(t.as_str());
                }
                Request::bare(rusty_s3::Method::Get, Verb::List, Client::sign(action, &[]))
            })?;
            let text = String::from_utf8_lossy(&reply.body);
            let page = ListObjectsV2::parse_response(&text).map_err(|e| Error::Remote {
                what: what(),
                kind: RemoteFailure::Protocol,
                reason: format!("the listing does not parse: {e}"),
            })?;
            for item in page.contents {
                if let Some(rest) = item.key.strip_prefix(&self.prefix) {
                    out.push((Key::new(rest), item.size.unwrap_or(0)));
                }
            }
            match page.next_continuation_token {
                Some(t) if !t.is_empty() => token = Some(t),
                _ => return Ok(out),
            }
        }
    }

    fn publish(&self, files: &[Staged]) -> Result<()> {
        let next = AtomicUsize::new(0);
        let failed: Mutex<Option<Error>> = Mutex::new(None);
        let workers = self.options.connections.clamp(1, files.len().max(1));
        std::thread::scope(|scope| {
            for _ in 0..workers {
                scope.spawn(|| {
                    while failed.lock().is_none() {
                        let Some(file) = files.get(next.fetch_add(1, Ordering::Relaxed)) else {
                            return;
                        };
                        match self.upload(file) {
                            Ok(_) => {
                                let _ = std::fs::remove_file(&file.temp);
                            }
                            Err(e) => {
                                failed.lock().get_or_insert(e);
                            }
                        }
                    }
                });
            }
        });
        match failed.into_inner() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn publish_one(&self, file: &Staged) -> Result<PutOutcome> {
        let bytes = std::fs::read(&file.temp).map_err(|e| Error::io(&file.temp, e))?;
        let outcome = match self.put_if_absent(&file.key, Body::Bytes(&bytes))? {
            // A reply lost after the first attempt succeeded makes its retry see its own file:
            // the same bytes are this call's success, never another writer's.
            PutOutcome::Exists if self.read(&file.key)?.as_deref() == Some(&bytes[..]) => PutOutcome::Created,
            other => other,
        };
        let _ = std::fs::remove_file(&file.temp);
        Ok(outcome)
    }

    fn create(&self, key: &Key, bytes: &[u8]) -> Result<PutOutcome> {
        Ok(match self.put_if_absent(key, Body::Bytes(bytes))? {
            // As for manifests: a retry after a lost reply finds its own bytes.
            PutOutcome::Exists if self.read(key)?.as_deref() == Some(bytes) => PutOutcome::Created,
            other => other,
        })
    }

    fn remote_stats(&self) -> Option<RemoteStats> {
        Some(self.stats())
    }

    fn lock(&self, wait: bool) -> Result<Box<dyn LockHold>> {
        Ok(Box::new(lock::acquire(self, wait)?))
    }

    fn replace(&self, key: &Key, bytes: &[u8]) -> Result<()> {
        self.put(key, Body::Bytes(bytes), &[], &[200, 201])?;
        Ok(())
    }

    fn read_current(&self, key: &Key) -> Result<Option<Vec<u8>>> {
        // The few files read on every open or write are kept with their ETags; others (merge
        // requests, journals) are read when needed, rarely.
        match self.kept_copy(key) {
            Some(copy) => self.read_validated(key, &copy),
            None => self.read(key),
        }
    }

    fn read_head(&self, key: &Key, len: usize) -> Result<Option<Vec<u8>>> {
        if len == 0 {
            return Ok(self.exists(key)?.then(Vec::new));
        }
        let range = [("range", format!("bytes=0-{}", len - 1))];
        let reply = self.get(key, &range, &[200, 206, 416])?;
        Ok(match reply.status {
            404 => None,
            416 => Some(Vec::new()), // an empty file
            _ => Some(reply.body.into_iter().take(len).collect()),
        })
    }

    fn delete(&self, key: &Key) -> Result<()> {
        let object = self.object_key(key);
        let reply = self.client.send(&|| self.what("DELETE", key), &[200, 204, 404], &|| {
            self.client
                .object(rusty_s3::Method::Delete, &object, &[], &[], Body::Empty)
        })?;
        if reply.status == 404 && client::error_code(&reply.body).as_deref() == Some("NoSuchBucket") {
            return Err(self.missing_bucket(""));
        }
        Ok(())
    }

    fn tidy(&self) {
        upload::abandon_stale(self);
    }

    fn register_reader(&self, generation: u64) -> Result<Box<dyn ReaderHold>> {
        Ok(Box::new(readers::register(self, generation)?))
    }

    fn live_readers(&self, own: Option<&str>) -> Result<Vec<LiveReader>> {
        readers::live(self, own)
    }
}

/// The fields of a small text object of ours (the lock, a reader registration): its first line
/// must be `title`, then one `name: value` line a field, in order. Returns a reader of the next
/// field by name (`None` when the next line is another field), or `None` for another title.
fn text_fields<'a>(text: &'a str, title: &str) -> Option<impl FnMut(&str) -> Option<String> + 'a> {
    let mut lines = text.lines();
    (lines.next()? == title)
        .then_some(move |name: &str| lines.next()?.strip_prefix(name)?.strip_prefix(": ").map(str::to_string))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_copies_are_used_only_whole() {
        let bytes = b"7\n";
        let kept = [format!("\"e1\"\n{}\n", kept_sum("\"e1\"", bytes)).as_bytes(), bytes].concat();
        assert_eq!(kept_parts(&kept), Some(("\"e1\"", &bytes[..])));
        for i in 0..kept.len() {
            let mut bad = kept.clone();
            bad[i] ^= 0x04;
            assert_eq!(kept_parts(&bad), None, "flip at {i}");
        }
        assert_eq!(kept_parts(&kept[..kept.len() - 1]), None, "truncated");
        assert_eq!(kept_parts(b"\nx\n7"), None, "no ETag");
    }
}
